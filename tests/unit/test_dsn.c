/* test_dsn.c: bounce addresses (VERP) and the DSN parser (dsn.h), and the
 * store's bounce record (store_notice_bounced; on PostgreSQL too in
 * test_dsn_onpg.c). VERP: round trip, any case,
 * angle brackets, every altered or forged token refused, return paths too
 * long to carry one. DSNs modelled on what Postfix, Exim and Gmail send,
 * with CRLF and LF line ends; delayed vs failed, several recipients,
 * encoded status parts, missing parts, garbage, oversized input. */
#include <ctype.h>
#include <stdint.h>
#include <unistd.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/dsn.h"
#include "selo/id.h"
#include "selo/mime.h"
#include "selo/store.h"
#include "t.h"
#include "t_store.h"

#define NOTICE "01KBCDEFGHJKMNPQRSTVWXYZ12"

static void key_of(uint8_t key[DSN_KEY_LEN], uint8_t seed)
{
	for (int i = 0; i < DSN_KEY_LEN; i++)
		key[i] = (uint8_t)(seed + 17 * i);
}

static void verp_of(char out[DSN_ADDR_MAX + 1])
{
	uint8_t key[DSN_KEY_LEN];
	key_of(key, 1);
	struct selo_err e;
	err_clear(&e);
	if (dsn_verp_make(key, "avisos@cobranca.example", NOTICE, out, &e) != 0)
		out[0] = '\0';
}

/* ---- VERP */

TEST(verp_round_trip)
{
	uint8_t key[DSN_KEY_LEN];
	key_of(key, 1);
	char addr[DSN_ADDR_MAX + 1], id[SELO_ID_TEXT + 1];
	struct selo_err e;
	err_clear(&e);
	CHECK(dsn_verp_make(key, "avisos@cobranca.example", NOTICE, addr, &e) == 0);
	CHECK(strncmp(addr, "avisos+", 7) == 0);
	CHECK(strlen(addr) == strlen("avisos@cobranca.example") + 1 + DSN_VERP_TOKEN_LEN);
	CHECK(strcmp(addr + 7 + DSN_VERP_TOKEN_LEN, "@cobranca.example") == 0);
	for (const char *p = addr + 7; p < addr + 7 + DSN_VERP_TOKEN_LEN; p++)
		CHECK((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z'));
	CHECK(dsn_verp_parse(key, addr, strlen(addr), id) == 0);
	CHECK_STR(id, NOTICE);
	/* a lower-case id is the same notice */
	char addr2[DSN_ADDR_MAX + 1];
	CHECK(dsn_verp_make(key, "avisos@cobranca.example", "01kbcdefghjkmnpqrstvwxyz12", addr2, &e) == 0);
	CHECK_STR(addr2, addr);
	/* deterministic, and it is an address mime.h would send from */
	CHECK(mime_addr_check(addr, "mail_from", &e) == 0);
	/* every notice its own address */
	uint8_t raw[SELO_ID_BYTES];
	char other[SELO_ID_TEXT + 1];
	id_new(raw);
	id_to_text(raw, other);
	CHECK(dsn_verp_make(key, "avisos@cobranca.example", other, addr2, &e) == 0);
	CHECK(strcmp(addr2, addr) != 0);
	CHECK(dsn_verp_parse(key, addr2, strlen(addr2), id) == 0);
	CHECK_STR(id, other);
}

TEST(verp_any_case_and_brackets)
{
	uint8_t key[DSN_KEY_LEN];
	key_of(key, 1);
	char addr[DSN_ADDR_MAX + 1], id[SELO_ID_TEXT + 1], b[DSN_ADDR_MAX + 3];
	verp_of(addr);
	for (char *p = addr; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	CHECK(dsn_verp_parse(key, addr, strlen(addr), id) == 0);
	CHECK_STR(id, NOTICE);
	snprintf(b, sizeof(b), "<%s>", addr);
	CHECK(dsn_verp_parse(key, b, strlen(b), id) == 0);
	CHECK_STR(id, NOTICE);
	/* only exactly len bytes are read */
	CHECK(dsn_verp_parse(key, b, strlen(b) - 1, id) != 0);
}

TEST(verp_forged_or_altered_refused)
{
	uint8_t key[DSN_KEY_LEN], other[DSN_KEY_LEN];
	key_of(key, 1);
	key_of(other, 2);
	char addr[DSN_ADDR_MAX + 1], id[SELO_ID_TEXT + 1], bad[DSN_ADDR_MAX + 8];
	verp_of(addr);
	CHECK(dsn_verp_parse(other, addr, strlen(addr), id) != 0);
	CHECK(id[0] == '\0');
	/* every digit of the token changed to every other digit */
	static const char digits[] = "0123456789abcdefghjkmnpqrstvwxyz";
	int accepted = 0;
	for (size_t i = 7; i < 7 + DSN_VERP_TOKEN_LEN; i++) {
		for (const char *d = digits; *d; d++) {
			if (*d == addr[i])
				continue;
			snprintf(bad, sizeof(bad), "%s", addr);
			bad[i] = *d;
			accepted += dsn_verp_parse(key, bad, strlen(bad), id) == 0;
		}
	}
	CHECK(accepted == 0);
	/* the id of another notice with this MAC */
	snprintf(bad, sizeof(bad), "%s", addr);
	bad[8] = bad[8] == '0' ? '1' : '0';
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	/* letters outside the alphabet, truncation, extension, no '+', no domain */
	snprintf(bad, sizeof(bad), "%s", addr);
	bad[10] = 'u';
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	const char *at = strchr(addr, '@');
	snprintf(bad, sizeof(bad), "avisos+%.*s@cobranca.example", DSN_VERP_TOKEN_LEN - 1, addr + 7);
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	snprintf(bad, sizeof(bad), "avisos+%.*s0%s", DSN_VERP_TOKEN_LEN, addr + 7, at);
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	snprintf(bad, sizeof(bad), "avisos%.*s%s", DSN_VERP_TOKEN_LEN, addr + 7, at);
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	snprintf(bad, sizeof(bad), "%.*s", (int)(at - addr), addr);
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	snprintf(bad, sizeof(bad), "%.*s@", (int)(at - addr), addr);
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	snprintf(bad, sizeof(bad), "+%.*s%s", DSN_VERP_TOKEN_LEN, addr + 7, at);
	CHECK(dsn_verp_parse(key, bad, strlen(bad), id) != 0);
	CHECK(dsn_verp_parse(key, "", 0, id) != 0);
	CHECK(dsn_verp_parse(key, NULL, 0, id) != 0);
	CHECK(dsn_verp_parse(key, "avisos@cobranca.example", 23, id) != 0);
	/* the padding bits of the last digit must be zero: one spelling only */
	int spellings = 0;
	for (const char *d = digits; *d; d++) {
		snprintf(bad, sizeof(bad), "%s", addr);
		bad[7 + DSN_VERP_TOKEN_LEN - 1] = *d;
		spellings += dsn_verp_parse(key, bad, strlen(bad), id) == 0;
	}
	CHECK(spellings == 1);
}

TEST(verp_return_path_limits)
{
	uint8_t key[DSN_KEY_LEN];
	key_of(key, 1);
	char addr[DSN_ADDR_MAX + 1], rp[400];
	struct selo_err e;
	err_clear(&e);
	/* the longest local part that fits, and one more */
	snprintf(rp, sizeof(rp), "%.*s@cobranca.example", DSN_RETURN_LOCAL_MAX,
		 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop");
	CHECK(dsn_verp_check(rp, &e) == 0);
	CHECK(dsn_verp_make(key, rp, NOTICE, addr, &e) == 0);
	CHECK(strchr(addr, '@') - addr == DSN_LOCAL_MAX);
	snprintf(rp, sizeof(rp), "%.*s@cobranca.example", DSN_RETURN_LOCAL_MAX + 1,
		 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop");
	err_clear(&e);
	CHECK(dsn_verp_check(rp, &e) != 0);
	CHECK(e.status == 500 && strstr(e.msg, "mail.return_path") && strstr(e.msg, "at most 21"));
	CHECK(dsn_verp_make(key, rp, NOTICE, addr, &e) != 0 && addr[0] == '\0');
	/* a domain so long that the address would pass 254 octets */
	char dom[300] = "";
	for (int i = 0; i < 4; i++)
		strcat(dom, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
	strcat(dom, "example");
	snprintf(rp, sizeof(rp), "avisos@%s", dom);
	err_clear(&e);
	CHECK(dsn_verp_check(rp, &e) != 0);
	CHECK(strstr(e.msg, "shorter domain") != NULL);
	/* not an address at all */
	err_clear(&e);
	CHECK(dsn_verp_check("avisos", &e) != 0 && strstr(e.msg, "mail.return_path"));
	CHECK(dsn_verp_check("\"a b\"@cobranca.example", &e) != 0);
	CHECK(dsn_verp_check(NULL, &e) != 0);
	CHECK(dsn_verp_make(key, "avisos@cobranca.example", "not-an-id", addr, &e) != 0);
	CHECK(e.status == 400);
}

/* ---- DSNs */

#define PF_BOUNDARY "3F2A1.1764507605/relay.cobranca.example"

/* A Postfix bounce; %s: the bounce address, the Action/Status lines, the
 * returned Message-ID. */
static const char POSTFIX[] =
	"Return-Path: <>\n"
	"Delivered-To: %s\n"
	"Received: by relay.cobranca.example (Postfix) id 3F2A1; Mon, 30 Nov 2026 10:00:05 -0300\n"
	"Date: Mon, 30 Nov 2026 10:00:05 -0300 (BRT)\n"
	"From: MAILER-DAEMON@relay.cobranca.example (Mail Delivery System)\n"
	"Subject: Undelivered Mail Returned to Sender\n"
	"To: %s\n"
	"Auto-Submitted: auto-replied\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/report; report-type=delivery-status;\n"
	"\tboundary=\"" PF_BOUNDARY "\"\n"
	"Content-Transfer-Encoding: 8bit\n"
	"Message-Id: <20261130130005.3F2A1@relay.cobranca.example>\n"
	"\n"
	"This is a MIME-encapsulated message.\n"
	"\n"
	"--" PF_BOUNDARY "\n"
	"Content-Description: Notification\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: 8bit\n"
	"\n"
	"This is the mail system at host relay.cobranca.example.\n"
	"\n"
	"I'm sorry to have to inform you that your message could not\n"
	"be delivered to one or more recipients. It's attached below.\n"
	"\n"
	"<devedor@destino.example>: host mx.destino.example[203.0.113.25] said: 550\n"
	"    5.1.1 <devedor@destino.example>: Recipient address rejected: User unknown\n"
	"    (in reply to RCPT TO command)\n"
	"\n"
	"--" PF_BOUNDARY "\n"
	"Content-Description: Delivery report\n"
	"Content-Type: message/delivery-status\n"
	"\n"
	"Reporting-MTA: dns; relay.cobranca.example\n"
	"X-Postfix-Queue-ID: 3F2A1\n"
	"X-Postfix-Sender: rfc822; avisos@cobranca.example\n"
	"Arrival-Date: Mon, 30 Nov 2026 10:00:01 -0300 (BRT)\n"
	"\n"
	"Final-Recipient: rfc822; devedor@destino.example\n"
	"Original-Recipient: rfc822;devedor@destino.example\n"
	"%s"
	"Remote-MTA: dns; mx.destino.example\n"
	"Diagnostic-Code: smtp; 550 5.1.1 <devedor@destino.example>: Recipient address\n"
	"    rejected: User unknown\n"
	"\n"
	"--" PF_BOUNDARY "\n"
	"Content-Description: Undelivered Message Headers\n"
	"Content-Type: text/rfc822-headers\n"
	"Content-Transfer-Encoding: 8bit\n"
	"\n"
	"Return-Path: <avisos@cobranca.example>\n"
	"From: =?utf-8?q?Cobran=C3=A7a?= <cobranca@cobranca.example>\n"
	"To: devedor@destino.example\n"
	"Subject: Lembrete\n"
	"Message-ID:\n <%s>\n"
	"MIME-Version: 1.0\n"
	"\n"
	"--" PF_BOUNDARY "--\n";

static const char FAILED_511[] = "Action: failed\nStatus: 5.1.1\n";

static void postfix(struct buf *b, const char *status_lines, const char *msgid, int crlf)
{
	char addr[DSN_ADDR_MAX + 1];
	verp_of(addr);
	struct buf lf = BUF_INIT;
	buf_printf(&lf, POSTFIX, addr, addr, status_lines, msgid);
	buf_reset(b);
	for (size_t i = 0; i < lf.len; i++) {
		if (crlf && lf.data[i] == '\n')
			buf_putc(b, '\r');
		buf_putc(b, lf.data[i]);
	}
	buf_free(&lf);
}

static struct dsn *parse_ok(const struct buf *b)
{
	static struct dsn d;
	struct selo_err e;
	err_clear(&e);
	int r = dsn_parse(b->data, b->len, &d, &e);
	if (r != 0)
		fprintf(stderr, "  dsn_parse: %s\n", e.msg);
	return r == 0 ? &d : NULL;
}

static int parse_fails(const char *msg, size_t len, const char *want)
{
	static struct dsn d;
	struct selo_err e;
	err_clear(&e);
	if (dsn_parse(msg, len, &d, &e) == 0) {
		fprintf(stderr, "  parsed, wanted \"%s\"\n", want);
		return 0;
	}
	if (!strstr(e.msg, want)) {
		fprintf(stderr, "  \"%s\" does not say \"%s\"\n", e.msg, want);
		return 0;
	}
	return e.status == 422 && d.nrcpt == 0;
}

TEST(postfix_failed_crlf_and_lf)
{
	struct buf b = BUF_INIT;
	for (int crlf = 0; crlf < 2; crlf++) {
		postfix(&b, FAILED_511, "20261130.01KB@cobranca.example", crlf);
		struct dsn *d = parse_ok(&b);
		CHECK(d != NULL);
		if (!d)
			continue;
		CHECK_STR(d->reporting_mta, "dns; relay.cobranca.example");
		CHECK_STR(d->arrival_date, "Mon, 30 Nov 2026 10:00:01 -0300 (BRT)");
		CHECK(d->nrcpt == 1);
		CHECK_STR(d->rcpt[0].final_recipient, "rfc822; devedor@destino.example");
		CHECK_STR(d->rcpt[0].original_recipient, "rfc822;devedor@destino.example");
		CHECK_STR(d->rcpt[0].action, "failed");
		CHECK_STR(d->rcpt[0].status, "5.1.1");
		CHECK_STR(d->rcpt[0].remote_mta, "dns; mx.destino.example");
		CHECK_STR(d->rcpt[0].diagnostic, "smtp; 550 5.1.1 <devedor@destino.example>: "
						 "Recipient address rejected: User unknown");
		CHECK(d->headers_returned == 1);
		CHECK_STR(d->message_id, "20261130.01KB@cobranca.example");
		struct selo_err e;
		err_clear(&e);
		CHECK(dsn_failure(d, &e) == 0);
	}
	buf_free(&b);
}

TEST(postfix_delayed_is_not_a_failure)
{
	struct buf b = BUF_INIT;
	postfix(&b, "Action: delayed\nStatus: 4.4.1\nWill-Retry-Until: Sat, 5 Dec 2026\n", "x@y", 1);
	struct dsn *d = parse_ok(&b);
	CHECK(d != NULL);
	struct selo_err e;
	err_clear(&e);
	CHECK(d && dsn_failure(d, &e) == -1);
	CHECK_STR(e.msg, "not a failure DSN (Action: delayed)");
	CHECK(e.status == 422);
	/* delivered and relayed neither */
	postfix(&b, "Action: delivered\nStatus: 2.0.0\n", "x@y", 0);
	d = parse_ok(&b);
	err_clear(&e);
	CHECK(d && dsn_failure(d, &e) == -1 && strstr(e.msg, "(Action: delivered)"));
	postfix(&b, "Action: relayed (to a non-DSN MTA)\nStatus: 2.0.0\n", "x@y", 0);
	d = parse_ok(&b);
	err_clear(&e);
	CHECK(d && dsn_failure(d, &e) == -1 && strstr(e.msg, "(Action: relayed)"));
	/* Postfix gives up on a message that stayed too long in its queue:
	 * failed with a 4.x.x status is still a failure */
	postfix(&b, "Action: failed\nStatus: 4.4.1 (connection timed out)\n", "x@y", 0);
	d = parse_ok(&b);
	CHECK(d && dsn_failure(d, &e) == 0 && !strcmp(d->rcpt[0].status, "4.4.1"));
	/* but failed with a success status is nonsense */
	postfix(&b, "Action: failed\nStatus: 2.0.0\n", "x@y", 0);
	d = parse_ok(&b);
	err_clear(&e);
	CHECK(d && dsn_failure(d, &e) == -1 && strstr(e.msg, "contradictory"));
	buf_free(&b);
}

TEST(recipient_blocks_must_be_complete)
{
	struct buf b = BUF_INIT;
	postfix(&b, "Status: 5.1.1\n", "x@y", 0);
	CHECK(parse_fails(b.data, b.len, "recipient block 1 has no Action"));
	postfix(&b, "Action: bounced\nStatus: 5.1.1\n", "x@y", 0);
	CHECK(parse_fails(b.data, b.len, "recipient block 1 has no Action"));
	postfix(&b, "Action: failed\n", "x@y", 0);
	CHECK(parse_fails(b.data, b.len, "has no Status"));
	postfix(&b, "Action: failed\nStatus: 5.1\n", "x@y", 0);
	CHECK(parse_fails(b.data, b.len, "has no Status"));
	postfix(&b, "Action: failed\nStatus: 3.1.1\n", "x@y", 0);
	CHECK(parse_fails(b.data, b.len, "has no Status"));
	postfix(&b, "Action: failed\nStatus: 5.1111.1\n", "x@y", 0);
	CHECK(parse_fails(b.data, b.len, "has no Status"));
	buf_free(&b);
}

static const char EXIM[] =
	"Return-path: <>\r\n"
	"Envelope-to: avisos+x@cobranca.example\r\n"
	"X-Failed-Recipients: devedor@destino.example\r\n"
	"Auto-Submitted: auto-replied\r\n"
	"From: Mail Delivery System <Mailer-Daemon@mail.destino.example>\r\n"
	"To: avisos+x@cobranca.example\r\n"
	"Content-Type: multipart/report; report-type=delivery-status; boundary=1764507605-eximdsn-1804289383\r\n"
	"MIME-Version: 1.0\r\n"
	"Subject: Mail delivery failed: returning message to sender\r\n"
	"Message-Id: <E1vQ8aP-0001Xy-2B@mail.destino.example>\r\n"
	"\r\n"
	"--1764507605-eximdsn-1804289383\r\n"
	"Content-type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"This message was created automatically by mail delivery software.\r\n"
	"\r\n"
	"A message that you sent could not be delivered to one or more of its\r\n"
	"recipients. This is a permanent error. The following address(es) failed:\r\n"
	"\r\n"
	"  devedor@destino.example\r\n"
	"    No Such User Here\r\n"
	"\r\n"
	"--1764507605-eximdsn-1804289383\r\n"
	"Content-type: message/delivery-status\r\n"
	"\r\n"
	"Reporting-MTA: dns; mail.destino.example\r\n"
	"\r\n"
	"Action: failed\r\n"
	"Final-Recipient: rfc822;devedor@destino.example\r\n"
	"Status: 5.0.0\r\n"
	"\r\n"
	"--1764507605-eximdsn-1804289383\r\n"
	"Content-type: message/rfc822\r\n"
	"\r\n"
	"Return-path: <avisos+x@cobranca.example>\r\n"
	"Received: from relay.cobranca.example ([198.51.100.7])\r\n"
	"\tby mail.destino.example with esmtp (Exim 4.96)\r\n"
	"\tid 1vQ8aO-0001Xw-1x\r\n"
	"\tfor devedor@destino.example;\r\n"
	"\tMon, 30 Nov 2026 13:00:04 +0000\r\n"
	"message-id: <exim.01KB@cobranca.example> (comment)\r\n"
	"Subject: Lembrete\r\n"
	"\r\n"
	"the whole message came back, body and all\r\n"
	"--1764507605-eximdsn-1804289383\r\n"
	"--1764507605-eximdsn-1804289383--\r\n";

TEST(exim_failed_with_whole_message)
{
	struct dsn *d = calloc(1, sizeof(*d));
	struct selo_err e;
	err_clear(&e);
	CHECK(dsn_parse(EXIM, strlen(EXIM), d, &e) == 0);
	CHECK_STR(d->reporting_mta, "dns; mail.destino.example");
	CHECK(d->nrcpt == 1);
	CHECK_STR(d->rcpt[0].action, "failed");
	CHECK_STR(d->rcpt[0].status, "5.0.0");
	CHECK_STR(d->rcpt[0].final_recipient, "rfc822;devedor@destino.example");
	CHECK(d->rcpt[0].diagnostic[0] == '\0' && d->rcpt[0].remote_mta[0] == '\0');
	CHECK_STR(d->message_id, "exim.01KB@cobranca.example");
	CHECK(dsn_failure(d, &e) == 0);
	free(d);
}

static const char GMAIL[] =
	"Delivered-To: \"Avisos\" <%s>\r\n"
	"Return-Path: <>\r\n"
	"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
	"To: avisos@cobranca.example\r\n"
	"Subject: Delivery Status Notification (Failure)\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/report; boundary=\"000000000000b1c2\"; report-type=delivery-status\r\n"
	"\r\n"
	"--000000000000b1c2\r\n"
	"Content-Type: multipart/related; boundary=\"000000000000c3d4\"\r\n"
	"\r\n"
	"--000000000000c3d4\r\n"
	"Content-Type: multipart/alternative; boundary=\"000000000000e5f6\"\r\n"
	"\r\n"
	"--000000000000e5f6\r\n"
	"Content-Type: text/plain; charset=\"UTF-8\"\r\n"
	"\r\n"
	"** Address not found **\r\n"
	"--000000000000e5f6--\r\n"
	"--000000000000c3d4--\r\n"
	"--000000000000b1c2\r\n"
	"Content-Type: message/delivery-status\r\n"
	"\r\n"
	"Reporting-MTA: dns; googlemail.com\r\n"
	"Received-From-MTA: dns; avisos@cobranca.example\r\n"
	"Arrival-Date: Mon, 30 Nov 2026 05:00:01 -0800 (PST)\r\n"
	"X-Original-Message-ID: <gm.01KB@cobranca.example>\r\n"
	"\r\n"
	"Final-Recipient: rfc822; devedor@gmail.example\r\n"
	"Action: failed\r\n"
	"Status: 5.1.1\r\n"
	"Remote-MTA: dns; gmail-smtp-in.l.google.com. (142.250.1.26, the server for the domain\r\n"
	" gmail.example.)\r\n"
	"Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.\r\n"
	" 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser\r\n"
	"Last-Attempt-Date: Mon, 30 Nov 2026 05:00:02 -0800 (PST)\r\n"
	"\r\n"
	"--000000000000b1c2\r\n"
	"Content-Type: text/rfc822-headers\r\n"
	"\r\n"
	"Message-ID: <gm.01KB@cobranca.example>\r\n"
	"Subject: Lembrete\r\n"
	"--000000000000b1c2--\r\n";

TEST(gmail_nested_human_part_and_folded_fields)
{
	char addr[DSN_ADDR_MAX + 1];
	verp_of(addr);
	struct buf b = BUF_INIT;
	buf_printf(&b, GMAIL, addr);
	struct dsn *d = parse_ok(&b);
	CHECK(d != NULL);
	if (d) {
		CHECK_STR(d->rcpt[0].remote_mta, "dns; gmail-smtp-in.l.google.com. (142.250.1.26, the "
						 "server for the domain gmail.example.)");
		CHECK_STR(d->rcpt[0].diagnostic,
			  "smtp; 550-5.1.1 The email account that you tried to reach does not exist. "
			  "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser");
		CHECK_STR(d->rcpt[0].last_attempt, "Mon, 30 Nov 2026 05:00:02 -0800 (PST)");
		CHECK_STR(d->message_id, "gm.01KB@cobranca.example");
	}
	/* the bounce address is found in the headers, display name and all */
	uint8_t key[DSN_KEY_LEN];
	key_of(key, 1);
	char id[SELO_ID_TEXT + 1], found[DSN_ADDR_MAX + 1];
	struct selo_err e;
	err_clear(&e);
	CHECK(dsn_find_verp(key, b.data, b.len, id, found, &e) == 0);
	CHECK_STR(id, NOTICE);
	CHECK_STR(found, addr);
	buf_free(&b);
}

TEST(find_verp_in_headers)
{
	uint8_t key[DSN_KEY_LEN], other[DSN_KEY_LEN];
	key_of(key, 1);
	key_of(other, 9);
	char addr[DSN_ADDR_MAX + 1], id[SELO_ID_TEXT + 1];
	verp_of(addr);
	struct buf b = BUF_INIT;
	struct selo_err e;
	/* folded To with several addresses, ours last */
	buf_printf(&b, "From: x@y.example\nTo: a@b.example,\n \"Avisos, Cobran\xc3\xa7" "a\" <%s>\n"
		       "Subject: x\n\nbody\n", addr);
	err_clear(&e);
	CHECK(dsn_find_verp(key, b.data, b.len, id, NULL, &e) == 0);
	CHECK_STR(id, NOTICE);
	err_clear(&e);
	CHECK(dsn_find_verp(other, b.data, b.len, id, NULL, &e) == -1);
	CHECK(strstr(e.msg, "none of the") && e.status == 422);
	/* an address in the body does not count */
	buf_reset(&b);
	buf_printf(&b, "From: x@y.example\nTo: avisos@cobranca.example\n\nTo: %s\n", addr);
	err_clear(&e);
	CHECK(dsn_find_verp(key, b.data, b.len, id, NULL, &e) == -1);
	/* X-Original-To, Envelope-To */
	buf_reset(&b);
	buf_printf(&b, "X-Original-To: %s\nTo: avisos@cobranca.example\n\n", addr);
	CHECK(dsn_find_verp(key, b.data, b.len, id, NULL, &e) == 0);
	buf_reset(&b);
	buf_printf(&b, "envelope-to: %s\nTo: avisos@cobranca.example\n\n", addr);
	CHECK(dsn_find_verp(key, b.data, b.len, id, NULL, &e) == 0);
	CHECK(dsn_find_verp(key, "", 0, id, NULL, &e) == -1);
	CHECK(dsn_find_verp(key, NULL, 0, id, NULL, &e) == -1);
	buf_free(&b);
}

TEST(several_recipients_and_no_per_message_fields)
{
	static const char msg[] =
		"Content-Type: multipart/report; report-type=\"Delivery-Status\"; boundary=b\n"
		"\n"
		"--b\n"
		"Content-Type: message/delivery-status\n"
		"\n"
		"\n"
		"Final-Recipient: rfc822; a@lista.example\n"
		"Action: expanded\n"
		"Status: 2.0.0\n"
		"\n"
		"\n"
		"Final-Recipient: rfc822; b@destino.example\n"
		"Action: delivered\n"
		"Status: 2.0.0\n"
		"\n"
		"Final-Recipient: rfc822; c@destino.example\n"
		"Action: FAILED\n"
		"Status: 5.2.2\n"
		"Diagnostic-Code: smtp; 552 mailbox full\n"
		"--b--\n";
	struct dsn *d = calloc(1, sizeof(*d));
	struct selo_err e;
	err_clear(&e);
	CHECK(dsn_parse(msg, strlen(msg), d, &e) == 0);
	CHECK(d->nrcpt == 3);
	CHECK(d->reporting_mta[0] == '\0');
	CHECK(dsn_failure(d, &e) == 2);
	CHECK_STR(d->rcpt[2].action, "failed");
	CHECK_STR(d->rcpt[2].diagnostic, "smtp; 552 mailbox full");
	CHECK(d->headers_returned == 0 && d->message_id[0] == '\0');
	free(d);
}

TEST(encoded_status_parts)
{
	static const char status[] = "Reporting-MTA: dns; r.example\r\n\r\nFinal-Recipient: rfc822; "
				     "a@b.example\r\nAction: failed\r\nStatus: 5.7.1\r\n";
	struct buf b64 = BUF_INIT, msg = BUF_INIT;
	base64_encode(&b64, (const uint8_t *)status, strlen(status), 76);
	buf_printf(&msg, "Content-Type: multipart/report; report-type=delivery-status; boundary=\"x y\"\r\n"
			 "\r\n--x y\r\nContent-Type: message/delivery-status\r\n"
			 "Content-Transfer-Encoding: BASE64\r\n\r\n%s\r\n--x y--\r\n", b64.data);
	struct dsn *d = parse_ok(&msg);
	CHECK(d && d->nrcpt == 1 && !strcmp(d->rcpt[0].status, "5.7.1"));
	buf_reset(&msg);
	buf_printf(&msg, "Content-Type: multipart/report; report-type=delivery-status; boundary=q\n"
			 "\n--q\nContent-Type: message/delivery-status\n"
			 "Content-Transfer-Encoding: quoted-printable\n\n"
			 "Reporting-MTA: dns; r.example\n\nFinal-Recipient: rfc822; a@b.exa=\nmple\n"
			 "Action: fail=65d\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 n=C3=A3o existe\n--q--\n");
	d = parse_ok(&msg);
	CHECK(d && d->nrcpt == 1);
	if (d) {
		CHECK_STR(d->rcpt[0].final_recipient, "rfc822; a@b.example");
		CHECK_STR(d->rcpt[0].action, "failed");
		CHECK_STR(d->rcpt[0].diagnostic, "smtp; 550 n\\xC3\\xA3o existe");
	}
	buf_reset(&msg);
	buf_printf(&msg, "Content-Type: multipart/report; report-type=delivery-status; boundary=q\n"
			 "\n--q\nContent-Type: message/delivery-status\n"
			 "Content-Transfer-Encoding: base64\n\n!!not base64!!\n--q--\n");
	CHECK(parse_fails(msg.data, msg.len, "not valid base64"));
	buf_reset(&msg);
	buf_printf(&msg, "Content-Type: multipart/report; report-type=delivery-status; boundary=q\n"
			 "\n--q\nContent-Type: message/delivery-status\n"
			 "Content-Transfer-Encoding: x-uuencode\n\nbegin 644\n--q--\n");
	CHECK(parse_fails(msg.data, msg.len, "unknown Content-Transfer-Encoding 'x-uuencode'"));
	buf_free(&b64);
	buf_free(&msg);
}

TEST(not_a_dsn_says_why)
{
	static const char plain[] = "From: joao@destino.example\nSubject: Re: Lembrete\n\nJa paguei!\n";
	CHECK(parse_fails(plain, strlen(plain), "Content-Type is text/plain, not multipart/report"));
	static const char arf[] =
		"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n--b--\n";
	CHECK(parse_fails(arf, strlen(arf), "report-type=feedback-report, not delivery-status"));
	static const char mixed[] = "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n";
	CHECK(parse_fails(mixed, strlen(mixed), "multipart/mixed"));
	static const char nob[] = "Content-Type: multipart/report; report-type=delivery-status\n\nx\n";
	CHECK(parse_fails(nob, strlen(nob), "no boundary"));
	static const char noparts[] =
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\nno parts\n";
	CHECK(parse_fails(noparts, strlen(noparts), "no part delimited"));
	static const char nostatus[] =
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
		"--b\nContent-Type: text/plain\n\nsorry\n--b\nContent-Type: text/rfc822-headers\n\n"
		"Message-ID: <a@b>\n--b--\n";
	CHECK(parse_fails(nostatus, strlen(nostatus), "no message/delivery-status part"));
	static const char norcpt[] =
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
		"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n--b--\n";
	CHECK(parse_fails(norcpt, strlen(norcpt), "no recipient block"));
	static const char badline[] =
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
		"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
		"Final-Recipient: rfc822; a@b\nthis is no field\nAction: failed\nStatus: 5.0.0\n--b--\n";
	CHECK(parse_fails(badline, strlen(badline), "not a field"));
	static const char badhead[] = "Content-Type: multipart/report\nno colon here\n\nx\n";
	CHECK(parse_fails(badhead, strlen(badhead), "not a field"));
	CHECK(parse_fails("", 0, "empty"));
	CHECK(parse_fails(NULL, 0, "empty"));
	/* a boundary that is only a prefix of a line is no delimiter */
	static const char prefix[] =
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
		"--bb\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b\n"
		"Action: failed\nStatus: 5.0.0\n--bb--\n";
	CHECK(parse_fails(prefix, strlen(prefix), "no part delimited"));
}

TEST(limits)
{
	/* oversized */
	size_t big = DSN_MAX_BYTES + 1;
	char *p = malloc(big);
	memset(p, 'a', big);
	CHECK(parse_fails(p, big, "more than the 1048576"));
	/* one header line too long */
	struct buf b = BUF_INIT;
	buf_puts(&b, "Content-Type: multipart/report; report-type=delivery-status; boundary=b\nX: ");
	buf_append(&b, p, DSN_LINE_MAX);
	buf_puts(&b, "\n\n--b--\n");
	CHECK(parse_fails(b.data, b.len, "longer than 4096"));
	/* too many parts */
	buf_reset(&b);
	buf_puts(&b, "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n");
	for (int i = 0; i <= DSN_MAX_PARTS; i++)
		buf_puts(&b, "--b\n\nx\n");
	buf_puts(&b, "--b--\n");
	CHECK(parse_fails(b.data, b.len, "more than 16 parts"));
	/* too many recipients */
	buf_reset(&b);
	buf_puts(&b, "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
		     "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n");
	for (int i = 0; i <= DSN_MAX_RCPTS; i++)
		buf_puts(&b, "\nFinal-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.0.0\n");
	buf_puts(&b, "--b--\n");
	CHECK(parse_fails(b.data, b.len, "more than 16 recipient blocks"));
	/* a very long diagnostic is cut, not refused */
	buf_reset(&b);
	buf_puts(&b, "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
		     "--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b\n"
		     "Action: failed\nStatus: 5.0.0\nDiagnostic-Code: smtp; ");
	for (int i = 0; i < 40; i++) {
		buf_append(&b, p, 60);
		buf_puts(&b, "\n ");
	}
	buf_puts(&b, "end\n--b--\n");
	struct dsn *d = parse_ok(&b);
	CHECK(d != NULL);
	if (d) {
		size_t n = strlen(d->rcpt[0].diagnostic);
		CHECK(n == DSN_DIAG_MAX - 1);
		CHECK(!strcmp(d->rcpt[0].diagnostic + n - 3, "..."));
	}
	buf_free(&b);
	free(p);
}

TEST(garbage_never_parses)
{
	/* random bytes, and random bytes behind a plausible header */
	uint8_t r[4096];
	struct buf b = BUF_INIT;
	for (int i = 0; i < 200; i++) {
		random_bytes(r, sizeof(r));
		size_t n = 1 + r[0] * 16u;
		static struct dsn d;
		struct selo_err e;
		err_clear(&e);
		CHECK(dsn_parse((const char *)r, n, &d, &e) == -1);
		buf_reset(&b);
		buf_puts(&b, "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\n");
		buf_append(&b, r, n);
		err_clear(&e);
		CHECK(dsn_parse(b.data, b.len, &d, &e) == -1);
		CHECK(e.msg[0] != '\0');
	}
	buf_free(&b);
}

/* ---- The store's bounce record */

static int sfx_notice(struct store_fx *f, char id[SELO_ID_TEXT + 1], uint8_t salt[32])
{
	struct notice_new n;
	memset(&n, 0, sizeof(n));
	uint8_t raw[SELO_ID_BYTES];
	id_new(raw);
	id_to_text(raw, n.id);
	random_bytes(n.salt, sizeof(n.salt));
	n.to = "devedor@destino.example";
	n.payload_json = "{}";
	n.event_fields = json_pack("{s:s}", "to", "sha256:00");
	struct accept_result res;
	memset(&res, 0, sizeof(res));
	struct selo_err e;
	err_clear(&e);
	int r = store_notices_accept(f->s, &n, 1, &res, &e);
	json_decref(n.event_fields);
	memcpy(id, n.id, SELO_ID_TEXT + 1);
	memcpy(salt, n.salt, 32);
	return r == 0 && !res.failed ? 0 : -1;
}

static int count_type(struct store *s, const char *id, const char *type)
{
	struct event_rec *ev = NULL;
	size_t n = 0;
	struct selo_err e;
	err_clear(&e);
	int c = 0;
	if (store_events_of(s, id, &ev, &n, &e) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		c += !strcmp(ev[i].type, type);
	event_recs_free(ev, n);
	return c;
}

TEST(store_bounce_once_not_in_flight)
{
	struct store_fx f;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_fx_open(&f, "dsn") == 0);
	if (!f.s)
		return;
	char id[SELO_ID_TEXT + 1];
	uint8_t salt[32];
	CHECK(sfx_notice(&f, id, salt) == 0);
	struct disclosures disc = DISCLOSURES_INIT;
	json_t *fields = json_pack("{s:s,s:s,s:s}", "reason", "bounced", "status", "5.1.1",
				   "final_recipient",
				   disclose(&disc, salt, "rfc822; devedor@destino.example", 31));
	/* queued (never claimed): recorded, and the notice is failed */
	CHECK(store_notice_bounced(f.s, id, fields, &disc, "bounced (5.1.1)", &e) == 0);
	if (e.msg[0])
		fprintf(stderr, "  %s\n", e.msg);
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, id, -1, &rec, &e) == 1);
	CHECK_STR(rec.status, "failed");
	CHECK_STR(rec.last_error, "bounced (5.1.1)");
	notice_rec_free(&rec);
	CHECK(count_type(f.s, id, EV_DELIVERY_FAILED) == 1);
	/* a second bounce: nothing new */
	CHECK(store_notice_bounced(f.s, id, fields, &disc, "again", &e) == 1);
	CHECK(count_type(f.s, id, EV_DELIVERY_FAILED) == 1);
	struct disclosures got = DISCLOSURES_INIT;
	CHECK(store_disclosures_of(f.s, id, &got, &e) == 0);
	CHECK(got.n == 1 && !strcmp(got.v[0].value, "rfc822; devedor@destino.example"));
	disclosures_free(&got);
	/* unknown notice: 404; in flight: 409, nothing written */
	err_clear(&e);
	CHECK(store_notice_bounced(f.s, "01KBZZZZZZZZZZZZZZZZZZZZZZ", fields, &disc, "x", &e) == -1);
	CHECK(e.status == 404);
	char id2[SELO_ID_TEXT + 1];
	/* the 5.1.1 bounce suppressed the address (test_suppression.c): lift it */
	CHECK(store_suppression_delete(f.s, 0, "devedor@destino.example", &e) == 1);
	CHECK(sfx_notice(&f, id2, salt) == 0);
	struct notice_rec *claimed = NULL;
	size_t nc = 0;
	CHECK(store_claim_due(f.s, INT64_MAX / 2, 10, &claimed, &nc, &e) == 0 && nc == 1);
	notice_recs_free(claimed, nc);
	err_clear(&e);
	CHECK(store_notice_bounced(f.s, id2, fields, &disc, "x", &e) == -1);
	CHECK(e.status == 409 && strstr(e.msg, "being sent"));
	CHECK(count_type(f.s, id2, EV_DELIVERY_FAILED) == 0);
	/* fields without reason bounced are refused */
	json_t *wrong = json_pack("{s:s}", "reason", "rejected");
	err_clear(&e);
	CHECK(store_notice_bounced(f.s, id, wrong, NULL, "x", &e) == -1 && e.status == 400);
	json_decref(wrong);
	json_decref(fields);
	disclosures_free(&disc);
	store_fx_close(&f);
}
