/* dsn.h: bounces after acceptance (docs/bounces.md). Two halves:
 *
 * VERP. Every message goes out with its own envelope sender,
 *   <local>+<token>@<domain>, made from mail.return_path (<local>@<domain>)
 *   and the notice id, so a bounce comes back to an address that names the
 *   notice. token = 42 lowercase Crockford base32 digits of
 *   notice id (16 bytes) || HMAC-SHA-256(token key, "selo-verp-v1" || id)[:10]
 *   (208 bits, the last digit padded with two zero bits). MTAs may change
 *   the case of a local part, so the token reads the same in any case; the
 *   MAC (80 bits, compared in constant time) means nobody can make a bounce
 *   address for a notice from its id, which the public log shows.
 *
 * DSN. A delivery status notification (RFC 3464 inside an RFC 6522
 *   multipart/report; report-type=delivery-status) parsed with limits:
 *   DSN_MAX_BYTES of input, lines of DSN_LINE_MAX in every header section
 *   and in the status part, DSN_MAX_PARTS parts, DSN_MAX_RCPTS recipient
 *   blocks. Only the top-level report and the headers of a returned message
 *   are read: nothing nests deeper. LF or CRLF line ends both work (an MTA's
 *   pipe usually hands over LF). Field values come out unfolded, printable
 *   ASCII (other bytes as \xHH), cut at their buffer's size.
 *
 * Every function takes any bytes and fails cleanly; err says why in words
 * a person can act on (status 422 for a message that is not a DSN we take,
 * 400 for a bad argument, 500 for a return path that cannot carry a VERP). */
#ifndef SELO_DSN_H
#define SELO_DSN_H
#include <stddef.h>
#include <stdint.h>
#include "selo/err.h"
#include "selo/id.h"

#define DSN_KEY_LEN 32
#define DSN_VERP_TOKEN_LEN 42
#define DSN_ADDR_MAX 254            /* RFC 5321 path limit, without the brackets */
#define DSN_LOCAL_MAX 64            /* RFC 5321 local part limit */
/* The longest return-path local part that still leaves room for "+token". */
#define DSN_RETURN_LOCAL_MAX (DSN_LOCAL_MAX - 1 - DSN_VERP_TOKEN_LEN)

#define DSN_MAX_BYTES (1024 * 1024) /* a bounce longer than this is refused */
#define DSN_LINE_MAX 4096           /* header and status lines, without the line end */
#define DSN_MAX_PARTS 16
#define DSN_MAX_RCPTS 16
#define DSN_FIELD_MAX 512
#define DSN_DIAG_MAX 1024

/* 0 when return_path (local@domain, a plain dot-atom address) can carry a
 * VERP token: its local part at most DSN_RETURN_LOCAL_MAX octets, the whole
 * address then at most DSN_ADDR_MAX. -1 and a 500 "config" error naming
 * mail.return_path otherwise. */
int dsn_verp_check(const char *return_path, struct selo_err *err);

/* The VERP address of a notice (text id) into out. -1 as dsn_verp_check, or
 * 400 when notice_id is not an id. */
int dsn_verp_make(const uint8_t key[DSN_KEY_LEN], const char *return_path, const char *notice_id,
		  char out[DSN_ADDR_MAX + 1], struct selo_err *err);

/* 0 and the notice's text id (upper case, as stored) when addr (len bytes,
 * optionally in angle brackets) is local+token@domain with a token made
 * under key; -1 for anything else, without saying which part failed. The
 * local part before '+' and the domain are not checked: the MAC is the
 * proof, and the operator may route several addresses to `selo bounce`. */
int dsn_verp_parse(const uint8_t key[DSN_KEY_LEN], const char *addr, size_t len,
		   char notice_id[SELO_ID_TEXT + 1]);

/* Looks for a VERP address of ours in the message's own header fields:
 * every Delivered-To, then X-Original-To, Envelope-To (Exim), then To (the
 * MTA's records of the envelope recipient come first). 0 and the notice id and the address
 * found (addr may be NULL); -1 when none verifies (422 with the message). */
int dsn_find_verp(const uint8_t key[DSN_KEY_LEN], const char *msg, size_t len,
		  char notice_id[SELO_ID_TEXT + 1], char addr[DSN_ADDR_MAX + 1],
		  struct selo_err *err);

/* One per-recipient block of the delivery-status part. */
struct dsn_rcpt {
	char final_recipient[DSN_FIELD_MAX];    /* as given: "rfc822; a@b.example" */
	char original_recipient[DSN_FIELD_MAX]; /* "" when absent */
	char action[16];                        /* lowercase: failed, delayed, delivered,
						   relayed, expanded */
	char status[16];                        /* "5.1.1" */
	char remote_mta[DSN_FIELD_MAX];
	char diagnostic[DSN_DIAG_MAX];          /* Diagnostic-Code */
	char last_attempt[DSN_FIELD_MAX];       /* Last-Attempt-Date */
};

struct dsn {
	char reporting_mta[DSN_FIELD_MAX];
	char original_envelope_id[DSN_FIELD_MAX];
	char arrival_date[DSN_FIELD_MAX];
	struct dsn_rcpt rcpt[DSN_MAX_RCPTS];
	size_t nrcpt;
	int headers_returned;                   /* a text/rfc822-headers or message/rfc822 part */
	char message_id[DSN_FIELD_MAX];         /* its Message-ID without <>, "" when none */
};

/* Parses msg (len bytes) as a delivery status notification: 0 and *out, or
 * -1 and a 422 saying what it is instead ("not a delivery status
 * notification: Content-Type is text/plain", "the delivery-status part has
 * no recipient block", ...). A DSN of any Action parses; see dsn_failure. */
int dsn_parse(const char *msg, size_t len, struct dsn *out, struct selo_err *err);

/* The first recipient block that reports a failure: Action failed with a
 * Status of class 5 or 4 (an MTA that gave up on a temporary error, as
 * Postfix does with 4.4.1 when a message expires in its queue). Returns its
 * index, or -1 and a 422: "not a failure DSN (Action: delayed)", or
 * "Action: failed with Status 2.0.0 is contradictory". */
int dsn_failure(const struct dsn *d, struct selo_err *err);

#endif
