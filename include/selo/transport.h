/* transport.h: how a sealed message leaves Selo. One interface, one backend
 * per file (as OpenSMTPD's queue backends): transport_maildir.c (default: write
 * the .eml under DIR/outbox, no network) and transport_relay.c (libesmtp to
 * a smarthost, STARTTLS no|try|require, optional AUTH) and transport_mx.c
 * (each recipient domain's own MX hosts, found in DNS; its SMTP sessions are
 * the relay backend's, pointed at one MX address at a time). A transport sends a batch of messages, over one SMTP session when
 * it can, and reports each message's outcome with the evidence (reply, TLS,
 * peer, and its own transcript: the session's greeting, EHLO and TLS, its
 * own transaction and the QUIT, never another message's lines; AUTH redacted).
 * A transport instance is used by one thread at a time (one per worker). */
#ifndef SELO_TRANSPORT_H
#define SELO_TRANSPORT_H
#include <stddef.h>
#include "selo/buf.h"
#include "selo/config.h"
#include "selo/err.h"

enum transport_outcome {
	TRANSPORT_ACCEPTED,  /* 2xx to the message data (or written to the maildir) */
	TRANSPORT_TEMPFAIL,  /* 4xx, connection/TLS/timeout failures: retry later */
	TRANSPORT_PERMFAIL,  /* 5xx to the sender, recipient or data */
};

struct transport_msg {
	/* in */
	const char *notice_id;
	const char *mail_from;       /* envelope sender */
	const char *rcpt;            /* envelope recipient */
	const char *data;            /* the exact message, CRLF, not dot-stuffed */
	size_t len;
	/* out */
	enum transport_outcome outcome;
	int code;                    /* the deciding SMTP reply code, 0 if none */
	char enhanced[16];           /* its enhanced status code "2.0.0", or "" */
	struct buf reply;            /* its reply text (may hold several lines) */
	struct buf transcript;       /* this message's part of the session (docs/transports.md) */
	char peer[160];              /* host:port that answered, or the maildir path */
	char tls[160];               /* "TLSv1.3 TLS_AES_256_GCM_SHA384 256" or "" */
	char tls_peer[256];          /* the server certificate's subject (RFC 2253), or "" */
	char mx[300];                /* mx: the MX host answered ("mx1.example (10)"), or "" */
	char queue_id[64];           /* the server's queue id from "250 ... queued as ID", or "" */
	char error[256];             /* local failure (refused, timeout, TLS) or "" */
};
void transport_msg_reset_out(struct transport_msg *m);
/* The queue id a 2xx reply names ("250 2.0.0 Ok: queued as 4dXq1r3Kz9z"
 * from Postfix, "... queued as <id>" from others): letters, digits and
 * ".-_" after "queued as ", at most 63 bytes; "" when the reply has none. */
void transport_queue_id(const char *reply, char out[64]);
void transport_msg_free(struct transport_msg *m);

struct transport;

/* Picks the backend named by cfg->smtp_mode. */
int transport_open(const struct selo_config *cfg, struct transport **out, struct selo_err *err);
/* Sends n messages; fills the out fields of each. Returns 0 when every
 * message has an outcome (even a rejection), -1 only on misuse. */
int transport_send(struct transport *t, struct transport_msg *msgs, size_t n);
void transport_close(struct transport *t);
/* "maildir", "relay", "mx". */
const char *transport_name(const struct transport *t);
/* The event type an accepted message gets: relay_accepted for maildir and
 * relay, delivery_accepted for mx (the recipient's own server said 250). */
const char *transport_accept_event(const struct transport *t);

/* Backend vtable, for the transport_*.c files. */
struct transport_ops {
	const char *name;
	const char *accept_event;
	int (*send)(void *state, struct transport_msg *msgs, size_t n);
	void (*close)(void *state);
};
int transport_maildir_open(const struct selo_config *cfg, void **state, struct selo_err *err);
int transport_relay_open(const struct selo_config *cfg, void **state, struct selo_err *err);
int transport_mx_open(const struct selo_config *cfg, void **state, struct selo_err *err);
extern const struct transport_ops transport_maildir_ops;
extern const struct transport_ops transport_relay_ops;
extern const struct transport_ops transport_mx_ops;

/* snprintf for the backends' fixed-size texts (errors, peers, host names),
 * which are meant to be cut at the buffer's end when long. */
void transport_textf(char *dst, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* For transport_mx.c: a relay-backend state with no smarthost and no AUTH
 * (TLS, timeouts and transcripts as configured), and one SMTP session of it
 * to server ("a.b.c.d:port"), with the relay's outcome rules. */
int transport_relay_open_direct(const struct selo_config *cfg, void **state,
				struct selo_err *err);
int transport_relay_session(void *state, const char *server, struct transport_msg *msgs,
			    size_t n);

#endif
