/* transport.c: the transport interface (see transport.h). Picks the backend
 * named by cfg->smtp_mode (transport_maildir.c, transport_relay.c,
 * transport_mx.c), checks the caller's
 * messages before any backend sees them, and resets their out fields.
 * Functions: transport_open, transport_send, transport_close, transport_name,
 * transport_accept_event, transport_msg_reset_out, transport_msg_free.
 * Errors: open fills struct selo_err; send returns -1 only on misuse (NULL
 * arguments or a message missing an in field, which gets an error text). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/transport.h"

struct transport {
	const struct transport_ops *ops;
	void *state;
};

void transport_msg_reset_out(struct transport_msg *m)
{
	/* Until a backend decides, "retry later" is the safe answer: a message
	 * is never reported sent or bounced by default. */
	m->outcome = TRANSPORT_TEMPFAIL;
	m->code = 0;
	m->enhanced[0] = '\0';
	buf_reset(&m->reply);
	buf_reset(&m->transcript);
	m->peer[0] = '\0';
	m->tls[0] = '\0';
	m->tls_peer[0] = '\0';
	m->mx[0] = '\0';
	m->queue_id[0] = '\0';
	m->error[0] = '\0';
}

void transport_textf(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

void transport_queue_id(const char *reply, char out[64])
{
	out[0] = '\0';
	const char *p = reply ? strcasestr(reply, "queued as ") : NULL;
	if (!p)
		return;
	p += strlen("queued as ");
	size_t n = 0;
	while (n < 63 && (isalnum((unsigned char)p[n]) || strchr(".-_", p[n])) && p[n])
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
}

void transport_msg_free(struct transport_msg *m)
{
	if (!m)
		return;
	buf_free(&m->reply);
	buf_free(&m->transcript);
}

static const struct transport_ops *ops_for_mode(enum smtp_mode mode)
{
	switch (mode) {
	case SMTP_MAILDIR:
		return &transport_maildir_ops;
	case SMTP_RELAY:
		return &transport_relay_ops;
	case SMTP_MX:
		return &transport_mx_ops;
	}
	return NULL;
}

int transport_open(const struct selo_config *cfg, struct transport **out, struct selo_err *err)
{
	*out = NULL;
	const struct transport_ops *ops = ops_for_mode(cfg->smtp_mode);
	if (!ops)
		return err_set(err, 500, "config", "unknown smtp.mode %d", (int)cfg->smtp_mode);

	void *state = NULL;
	int r = cfg->smtp_mode == SMTP_MAILDIR ? transport_maildir_open(cfg, &state, err)
		: cfg->smtp_mode == SMTP_RELAY ? transport_relay_open(cfg, &state, err)
					       : transport_mx_open(cfg, &state, err);
	if (r != 0)
		return -1;
	struct transport *t = xcalloc(1, sizeof(*t));
	t->ops = ops;
	t->state = state;
	*out = t;
	return 0;
}

/* A message without its envelope or data is a bug in the caller; say which. */
static const char *missing_field(const struct transport_msg *m)
{
	if (!m->notice_id || !m->notice_id[0])
		return "notice_id";
	if (!m->mail_from)
		return "mail_from";
	if (!m->rcpt || !m->rcpt[0])
		return "rcpt";
	if (!m->data || m->len == 0)
		return "data";
	return NULL;
}

int transport_send(struct transport *t, struct transport_msg *msgs, size_t n)
{
	if (!t || (!msgs && n > 0))
		return -1;
	int misuse = 0;
	for (size_t i = 0; i < n; i++) {
		transport_msg_reset_out(&msgs[i]);
		const char *field = missing_field(&msgs[i]);
		if (field) {
			snprintf(msgs[i].error, sizeof(msgs[i].error),
				 "transport_send: message %zu has no %s", i, field);
			misuse = 1;
		}
	}
	if (misuse)
		return -1;
	if (n == 0)
		return 0;
	return t->ops->send(t->state, msgs, n);
}

void transport_close(struct transport *t)
{
	if (!t)
		return;
	t->ops->close(t->state);
	free(t);
}

const char *transport_name(const struct transport *t)
{
	return t->ops->name;
}

const char *transport_accept_event(const struct transport *t)
{
	return t->ops->accept_event;
}
