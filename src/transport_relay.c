/* transport_relay.c: hands messages to a smarthost with libesmtp 1.1.0.
 * One SMTP session per transport_send carries the whole batch (libesmtp
 * pipelines when the server offers PIPELINING). STARTTLS no|try|require
 * always runs on this transport's own SSL_CTX (libesmtp 1.1.0 frees its
 * cached default context after the first session: use-after-free); AUTH uses
 * libesmtp's SASL plugins (PLAIN, LOGIN, CRAM-MD5) when a user is set.
 * The transcript is built from libesmtp's protocol monitor: "S: " server
 * lines, "C: " client lines, "-- " local notes; AUTH arguments and the SASL
 * exchange are replaced by "[redacted]", and the message body, which libesmtp
 * does not show, is one "C: <message data, N bytes>" line. Each message gets
 * only the session's preamble (up to the first MAIL FROM), its own
 * transaction and the session's closing: a transcript is evidence in that
 * notice's receipt and must not show the batch's other recipients. Lines are
 * attributed by order: a client MAIL FROM starts the next message's
 * transaction, QUIT starts the closing, and each server reply belongs to the
 * oldest command still waiting for one (PIPELINING: replies come back in
 * command order, possibly after the next MAIL FROM was written).
 * Functions: transport_relay_open and the ops (send, close).
 * Errors: open fails on a bad smtp.relay or an unreadable smtp.cafile. Each
 * message ends ACCEPTED (2xx to its data), PERMFAIL (5xx to MAIL, RCPT or
 * DATA; or a message SMTP cannot carry), or TEMPFAIL (4xx, or never reached:
 * refused, timeout, dropped, TLS or AUTH problems), with the reason in
 * msg->error. smtp_start_session's return value is not trusted (it reports
 * success after rejections); every message's own statuses decide.
 * Threads: one instance per thread; instances in several threads at once are
 * fine (each session is private to its thread; libesmtp's errno is
 * thread-local). SIGPIPE is blocked in the calling thread during a session. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <auth-client.h>
#include <libesmtp.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/diag.h"
#include "selo/transport.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/* A message's transcript is at most TRANSCRIPT_MAX bytes (a hostile server
 * cannot grow it further): each part has its own share, so a huge preamble
 * never crowds out the message's own transaction. */
#define TRANSCRIPT_MAX (256 * 1024)
#define PREAMBLE_MAX (TRANSCRIPT_MAX / 2)
#define TRANSACTION_MAX (TRANSCRIPT_MAX / 4)
#define CLOSING_MAX (TRANSCRIPT_MAX / 4)
#define TRUNCATED_NOTE "-- [transcript truncated]\n"
#define PENDING_MAX 64              /* commands awaiting a reply; libesmtp pipelines 2 or 3 */
#define LINE_MAX_KEEP 4096          /* a "line" without LF is cut here */
#define DEFAULT_PORT "587"          /* libesmtp's own default, made explicit */

struct relay {
	char server[300];  /* host:port as given to libesmtp and reported as peer */
	char helo[256];
	enum starttls_mode starttls;
	int tls_verify;
	long timeout_ms;
	char user[128];
	char pass[128];
	SSL_CTX *ssl_ctx;
};

/* One message of the batch, as libesmtp's callbacks see it. */
struct relay_item {
	struct transport_msg *msg;
	smtp_message_t m;
	smtp_recipient_t r;
	struct relay_session *s;
	size_t pos;        /* read position of the message callback */
	size_t counted;    /* bytes libesmtp reported sending (SMTP_EV_MESSAGEDATA) */
};

/* One part of the session's transcript, capped. */
struct part {
	struct buf text;
	size_t cap;
	int truncated;
};

/* What one session learns while it runs. The transcript is kept in parts:
 * part[0] the preamble (before the first MAIL FROM), part[1 + i] the
 * transaction of items[i], part[n + 1] the closing (from QUIT on). */
struct relay_session {
	struct relay *relay;
	struct relay_item *items;
	size_t n;
	struct part *part;
	size_t cur;                   /* part of the last command written; notes go there */
	size_t next_item;             /* the next MAIL FROM is the first queued item from here */
	size_t pending[PENDING_MAX];  /* parts of the commands awaiting a reply, oldest first */
	size_t pending_head, pending_len;
	size_t server_line_part;      /* part of the server line being cut (LINE_MAX_KEEP) */
	int cont[2];                  /* the next line of this direction continues a cut one */
	int quit_answered;            /* a 2xx in the closing: the session ended properly */
	struct buf partial[2];        /* unfinished line: [0] server, [1] client */
	int in_auth;                  /* between our AUTH and the server's verdict */
	char auth_refused[256];       /* the server's final non-2xx reply to AUTH */
	struct relay_item *data_item; /* data sent, its transcript note pending */
	char last_reply[256];         /* last final reply line from the server */
	char tls[160];
	char tls_peer[256];           /* the server certificate's subject */
	char failure[256];            /* a cause learnt from events (TLS, certificate) */
	struct timespec last_io;
	struct timespec starttls_sent; /* for the ticket drain's patience */
	smtp_session_t ss;            /* for the CHUNKING switch below */
	int chunking;                 /* the last EHLO reply announced CHUNKING */
	int blind;                    /* BDAT was sent: the monitor is off for good */
	int fd;                       /* the session's socket (relay_connect_fd), or -1 */
	int corked;                   /* TCP_CORK is on while a message's data is written */
};

/* ---- opening ------------------------------------------------------------ */

/* ---- IPv6 literals ---------------------------------------------------------
 * libesmtp 1.1.0's smtp_set_server cuts its argument at the first ':' and
 * gives the rest to getaddrinfo as the port, so "[2001:db8::25]:25" cannot
 * reach it. Selo hands libesmtp an IPv6 address as a name without colons,
 * "2001-db8--25.ipv6-literal.invalid" (.invalid is reserved by RFC 6761 and
 * never resolves, so the name cannot mean anything else), and the
 * getaddrinfo below, which the dynamic linker binds in place of libc's for
 * the whole process (libesmtp's call included), turns such a name back into
 * the numeric address (AI_NUMERICHOST: no DNS query). Any other name goes to
 * the next getaddrinfo (libc's, or a sanitizer's) unchanged. Selo's own
 * texts (peer, errors, transcripts) show the usual "[2001:db8::25]:25". */
#define V6_SUFFIX ".ipv6-literal.invalid"

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
			      struct addrinfo **);
static getaddrinfo_fn next_getaddrinfo;
static pthread_once_t next_getaddrinfo_once = PTHREAD_ONCE_INIT;

static void find_next_getaddrinfo(void)
{
	next_getaddrinfo = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
}

/* "2001-db8--25.ipv6-literal.invalid" -> "2001:db8::25"; 0 if node is not
 * such a name or not an IPv6 address once decoded. */
static int v6_name_decode(const char *node, char *out, size_t n)
{
	size_t len = strlen(node), sl = strlen(V6_SUFFIX);
	if (len <= sl || len - sl >= n || strcasecmp(node + len - sl, V6_SUFFIX) != 0)
		return 0;
	for (size_t i = 0; i < len - sl; i++)
		out[i] = node[i] == '-' ? ':' : node[i];
	out[len - sl] = '\0';
	struct in6_addr a;
	return inet_pton(AF_INET6, out, &a) == 1;
}

int getaddrinfo(const char *restrict node, const char *restrict service,
		const struct addrinfo *restrict hints, struct addrinfo **restrict res)
{
	pthread_once(&next_getaddrinfo_once, find_next_getaddrinfo);
	if (!next_getaddrinfo)
		return EAI_SYSTEM;
	char lit[INET6_ADDRSTRLEN];
	if (!node || !v6_name_decode(node, lit, sizeof(lit)))
		return next_getaddrinfo(node, service, hints, res);
	struct addrinfo h = hints ? *hints : (struct addrinfo){0};
	h.ai_family = AF_INET6;
	h.ai_flags |= AI_NUMERICHOST;
	return next_getaddrinfo(lit, service, &h, res);
}

/* ---- The session's socket -------------------------------------------------
 * libesmtp does not expose its socket, and Selo needs it twice: TCP_NODELAY
 * (see relay_socket_setup) and TCP_CORK while a message's data is written
 * (see read_message). libesmtp runs a session from connect() to QUIT in the
 * calling thread, so the connect() below, which the dynamic linker binds in
 * place of libc's for the whole process as it does getaddrinfo above, notes
 * in a thread-local variable the descriptor this thread last connected; the
 * session reads it at SMTP_EV_CONNECT, in the same thread, right after. It
 * changes nothing else: the next connect (libc's, or a sanitizer's) does
 * the work and errno is its. */
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
static connect_fn next_connect;
static pthread_once_t next_connect_once = PTHREAD_ONCE_INIT;
static __thread int relay_connect_fd = -1;

static void find_next_connect(void)
{
	next_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	pthread_once(&next_connect_once, find_next_connect);
	if (!next_connect) {
		errno = ENOSYS;
		return -1;
	}
	relay_connect_fd = fd;
	return next_connect(fd, addr, len);
}

/* "[v6]:port" -> "v6-with-dashes.ipv6-literal.invalid:port" for libesmtp;
 * anything else is copied. */
static void libesmtp_server(const char *server, char *out, size_t n)
{
	const char *close = server[0] == '[' ? strchr(server, ']') : NULL;
	if (!close || close[1] != ':') {
		snprintf(out, n, "%s", server);
		return;
	}
	char host[INET6_ADDRSTRLEN];
	snprintf(host, sizeof(host), "%.*s", (int)(close - server - 1), server + 1);
	for (char *p = host; *p; p++)
		if (*p == ':')
			*p = '-';
	snprintf(out, n, "%s%s%s", host, V6_SUFFIX, close + 1);
}

/* host:port, or [IPv6]:port (see above); a port is required for IPv6. */
static int parse_server(const char *spec, char *out, size_t n, struct selo_err *err)
{
	if (!spec[0])
		return err_set(err, 500, "config", "smtp.mode = relay needs smtp.relay = host:port");
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		char lit[INET6_ADDRSTRLEN];
		struct in6_addr a;
		char *end;
		long port = close && close[1] == ':' ? strtol(close + 2, &end, 10) : 0;
		if (!close || close[1] != ':' || *end || port < 1 || port > 65535 ||
		    (size_t)(close - spec - 1) >= sizeof(lit))
			return err_set(err, 500, "config", "smtp.relay = %s: expected [IPv6 address]:port",
				       spec);
		snprintf(lit, sizeof(lit), "%.*s", (int)(close - spec - 1), spec + 1);
		if (inet_pton(AF_INET6, lit, &a) != 1)
			return err_set(err, 500, "config", "smtp.relay = %s: %s is not an IPv6 address",
				       spec, lit);
		snprintf(out, n, "%s", spec);
		return 0;
	}
	if (strchr(spec, ']') || (strchr(spec, ':') != strrchr(spec, ':')))
		return err_set(err, 500, "config",
			       "smtp.relay = %s: write an IPv6 address in brackets, [2001:db8::25]:25",
			       spec);
	const char *colon = strchr(spec, ':');
	if (!colon) {
		snprintf(out, n, "%s:%s", spec, DEFAULT_PORT);
		return 0;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (colon == spec || *end || port < 1 || port > 65535)
		return err_set(err, 500, "config", "smtp.relay = %s: expected host:port", spec);
	snprintf(out, n, "%s", spec);
	return 0;
}

static SSL_CTX *make_ssl_ctx(const struct selo_config *cfg, struct selo_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		err_set(err, 500, "tls", "cannot create the TLS context");
		err_add_openssl(err);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* The handshake never fails on the certificate: libesmtp checks the
	 * verify result afterwards and asks on_event, which applies
	 * smtp.tls_verify. So the CAs must be loaded, or every server looks
	 * untrusted. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	int ok = cfg->smtp_cafile[0] ? SSL_CTX_load_verify_locations(ctx, cfg->smtp_cafile, NULL)
				     : SSL_CTX_set_default_verify_paths(ctx);
	if (!ok) {
		err_set(err, 500, "config", "cannot load CA certificates from %s",
			cfg->smtp_cafile[0] ? cfg->smtp_cafile : "the system's default paths");
		err_add_openssl(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int transport_relay_open(const struct selo_config *cfg, void **state, struct selo_err *err)
{
	*state = NULL;
	struct relay *r = xcalloc(1, sizeof(*r));
	if (parse_server(cfg->smtp_relay, r->server, sizeof(r->server), err) != 0) {
		free(r);
		return -1;
	}
	snprintf(r->helo, sizeof(r->helo), "%s", cfg->smtp_helo);
	r->starttls = cfg->starttls;
	r->tls_verify = cfg->smtp_tls_verify;
	r->timeout_ms = cfg->smtp_timeout_ms > 0 ? cfg->smtp_timeout_ms : 60000;
	snprintf(r->user, sizeof(r->user), "%s", cfg->smtp_auth_user);
	snprintf(r->pass, sizeof(r->pass), "%s", cfg->smtp_auth_password);
	r->ssl_ctx = make_ssl_ctx(cfg, err);
	if (!r->ssl_ctx) {
		OPENSSL_cleanse(r, sizeof(*r));
		free(r);
		return -1;
	}
	if (r->user[0] && r->starttls != STARTTLS_REQUIRE)
		diag_warn("smtp.auth_user is set but smtp.starttls is not require: "
			  "the password may cross the network in clear text");
	*state = r;
	return 0;
}

int transport_relay_open_direct(const struct selo_config *cfg, void **state,
				struct selo_err *err)
{
	*state = NULL;
	struct relay *r = xcalloc(1, sizeof(*r));
	snprintf(r->helo, sizeof(r->helo), "%s", cfg->smtp_helo);
	r->starttls = cfg->starttls;
	r->tls_verify = cfg->smtp_tls_verify;
	r->timeout_ms = cfg->smtp_timeout_ms > 0 ? cfg->smtp_timeout_ms : 60000;
	r->ssl_ctx = make_ssl_ctx(cfg, err);
	if (!r->ssl_ctx) {
		free(r);
		return -1;
	}
	*state = r;
	return 0;
}

static int relay_send(void *state, struct transport_msg *msgs, size_t n);

int transport_relay_session(void *state, const char *server, struct transport_msg *msgs,
			    size_t n)
{
	struct relay *r = state;
	transport_textf(r->server, sizeof(r->server), "%s", server);
	return relay_send(r, msgs, n);
}

static void relay_close(void *state)
{
	struct relay *r = state;
	if (!r)
		return;
	SSL_CTX_free(r->ssl_ctx);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

/* ---- transcript --------------------------------------------------------- */

/* Wire activity, for telling a timeout from a dropped connection. libesmtp
 * reports every line of the message (SMTP_EV_MESSAGEDATA), so this runs
 * hundreds of times a message: the coarse clock (a few ms) is enough. */
static void touch(struct relay_session *s)
{
	clock_gettime(CLOCK_MONOTONIC_COARSE, &s->last_io);
}

static long ms_between(const struct timespec *t, const struct timespec *now)
{
	return (long)(now->tv_sec - t->tv_sec) * 1000 + (now->tv_nsec - t->tv_nsec) / 1000000;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return ms_between(t, &now);
}

static long ms_since_touch(const struct relay_session *s)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	return ms_between(&s->last_io, &now);
}

static int is_clean(unsigned char c)
{
	return (c >= 0x20 && c < 0x7f) || c == '\t';
}

/* Appends bytes, escaping what is not printable ASCII as \xHH so that the
 * transcript is always valid UTF-8 text for the JSON log entry. */
static void put_clean(struct buf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (is_clean(c))
			buf_putc(b, (char)c);
		else
			buf_printf(b, "\\x%02X", c);
	}
}

static size_t clean_len(const char *p, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += is_clean((unsigned char)p[i]) ? 1 : 4;
	return len;
}

static size_t closing_part(const struct relay_session *s)
{
	return s->n + 1;
}

/* One line into one part; a part that is full gets the truncation note
 * (within its cap) and nothing more. */
static void emit_to(struct relay_session *s, size_t part, const char *prefix, const char *p, size_t n)
{
	struct part *pt = &s->part[part];
	if (pt->truncated)
		return;
	size_t need = strlen(prefix) + clean_len(p, n) + 1;
	if (pt->text.len + need + sizeof(TRUNCATED_NOTE) > pt->cap) {
		buf_puts(&pt->text, TRUNCATED_NOTE);
		pt->truncated = 1;
		return;
	}
	buf_puts(&pt->text, prefix);
	put_clean(&pt->text, p, n);
	buf_putc(&pt->text, '\n');
}

static void emit(struct relay_session *s, const char *prefix, const char *p, size_t n)
{
	emit_to(s, s->cur, prefix, p, n);
}

static void emitf_to(struct relay_session *s, size_t part, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void emitf_to(struct relay_session *s, size_t part, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit_to(s, part, "", line, strlen(line));
}

/* ---- attributing lines to messages --------------------------------------- */

/* A command was written to part: its reply (one, possibly multi-line) is
 * expected after those of the commands before it. libesmtp never has more
 * than a few outstanding; past PENDING_MAX, replies fall back to s->cur. */
static void pending_push(struct relay_session *s, size_t part)
{
	if (s->pending_len < PENDING_MAX)
		s->pending[(s->pending_head + s->pending_len++) % PENDING_MAX] = part;
}

/* The part a server line belongs to: the oldest command awaiting a reply;
 * with none (the greeting, an unsolicited line), the current part. */
static size_t pending_front(const struct relay_session *s)
{
	return s->pending_len ? s->pending[s->pending_head] : s->cur;
}

static void pending_pop(struct relay_session *s)
{
	if (!s->pending_len)
		return;
	s->pending_head = (s->pending_head + 1) % PENDING_MAX;
	s->pending_len--;
}

/* A MAIL FROM: libesmtp sends the queued messages in the order they were
 * added, each once, so this is the next queued item's transaction. */
static void start_transaction(struct relay_session *s)
{
	while (s->next_item < s->n && !s->items[s->next_item].r)
		s->next_item++;
	if (s->next_item < s->n)
		s->cur = 1 + s->next_item++;
}

/* The data is sent with the monitor off; the note goes in just before the
 * next thing on the wire, which is the server's answer to it. */
static void flush_data_note(struct relay_session *s)
{
	struct relay_item *it = s->data_item;
	if (!it)
		return;
	s->data_item = NULL;
	size_t part = 1 + (size_t)(it - s->items);
	emitf_to(s, part, "C: <message data, %zu bytes>", it->msg->len);
	emit_to(s, part, "C: ", ".", 1);
	pending_push(s, part); /* the end of data awaits the message's final reply */
	/* libesmtp counts header and body lines but not the blank line between
	 * them; any other difference means it rewrote a header (see
	 * docs/transports.md), so the bytes on the wire are not the stored ones. */
	if (it->counted + 2 != it->msg->len)
		diag_warn("notice %s: libesmtp sent %zu message bytes, expected %zu "
			  "(a header was added or dropped)", it->msg->notice_id,
			  it->counted + 2, it->msg->len);
}

static int starts_with_word(const char *p, size_t n, const char *word)
{
	size_t w = strlen(word);
	return n >= w && strncasecmp(p, word, w) == 0 && (n == w || p[w] == ' ');
}

static void copy_reply_text(struct buf *out, const char *text);

/* ---- CHUNKING ------------------------------------------------------------
 * With a server that announces CHUNKING, libesmtp 1.1.0 sends each message
 * with BDAT, and its BDAT code switches the protocol monitor off and never
 * back on (bdat.c: sio_set_monitorcb(conn, NULL, NULL)): without help the
 * transcript would end at the last command before the first BDAT. So:
 * (1) when the EHLO reply announces CHUNKING, ask libesmtp to wait for the
 * RCPT TO reply before the data (smtp_option_require_all_recipients; one
 * recipient per message, so the outcome rules are unchanged), so that RCPT
 * TO and its reply are still seen on the wire, verbatim; (2) from the first
 * BDAT on, the rest of the session is rebuilt from libesmtp's events and
 * the replies it parsed, in lines marked "C~ " and "S~ " (docs/transports.md):
 * the data as one line, BDAT 0 LAST, the reply to the message (code,
 * enhanced code, text), and the next messages' MAIL FROM and RCPT TO with
 * their replies. The QUIT after BDAT is not shown by libesmtp at all. A
 * server without CHUNKING gets DATA, pipelined as before, all verbatim. */
static void chunking_announced(struct relay_session *s)
{
	s->chunking = 1;
	if (s->ss)
		smtp_option_require_all_recipients(s->ss, 1);
}

/* One reply libesmtp parsed, as the lines the server sent (the enhanced
 * code on each line when the server uses them). It does not become
 * s->last_reply: that one feeds the closing's "session ended" note, which
 * every message of the batch shares, and a rebuilt reply may quote another
 * message's recipient (no QUIT reply follows it to take its place). */
static void emit_rebuilt_reply(struct relay_session *s, size_t part, const smtp_status_t *st)
{
	if (!st || st->code == 0) {
		emitf_to(s, part, "-- no reply seen");
		return;
	}
	char enh[24] = "";
	if (st->enh_class > 0)
		snprintf(enh, sizeof(enh), "%d.%d.%d ", st->enh_class % 10, st->enh_subject % 1000,
			 st->enh_detail % 1000);
	struct buf text = BUF_INIT;
	copy_reply_text(&text, st->text);
	const char *line = buf_str(&text);
	for (;;) {
		const char *nl = strchr(line, '\n');
		char head[40];
		snprintf(head, sizeof(head), "S~ %03d%c%s", st->code % 1000, nl ? '-' : ' ', enh);
		emit_to(s, part, head, line, nl ? (size_t)(nl - line) : strlen(line));
		if (!nl)
			break;
		line = nl + 1;
	}
	buf_free(&text);
}

static struct relay_item *item_of_recipient(struct relay_session *s, smtp_recipient_t r)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->items[i].r == r)
			return &s->items[i];
	return NULL;
}

static size_t item_part(const struct relay_session *s, const struct relay_item *it)
{
	return 1 + (size_t)(it - s->items);
}

/* The first message data of a CHUNKING session: the monitor is off now. */
static void chunking_data_starts(struct relay_session *s, struct relay_item *it)
{
	if (s->blind)
		return;
	s->blind = 1;
	emitf_to(s, item_part(s, it), "-- CHUNKING: libesmtp shows no BDAT to its monitor; lines "
		 "marked ~ are rebuilt from its events and parsed replies");
}

/* Events that carry what the monitor no longer shows (see above). */
static void chunking_event(struct relay_session *s, int event, va_list ap)
{
	if (event != SMTP_EV_DISCONNECT)
		touch(s); /* a reply was read: the wire is alive (timeout diagnosis) */
	if (event == SMTP_EV_MAILSTATUS) {
		const char *mailbox = va_arg(ap, const char *);
		smtp_message_t m = va_arg(ap, smtp_message_t);
		struct relay_item *it = smtp_message_get_application_data(m);
		if (!it)
			return;
		emitf_to(s, item_part(s, it), "-- CHUNKING: an earlier BDAT of this session turned "
			 "libesmtp's monitor off; lines marked ~ are rebuilt from its events and parsed replies");
		emitf_to(s, item_part(s, it), "C~ MAIL FROM:<%.320s>", mailbox ? mailbox : "");
		emit_rebuilt_reply(s, item_part(s, it), smtp_reverse_path_status(m));
	} else if (event == SMTP_EV_RCPTSTATUS) {
		const char *mailbox = va_arg(ap, const char *);
		smtp_recipient_t r = va_arg(ap, smtp_recipient_t);
		struct relay_item *it = item_of_recipient(s, r);
		if (!it)
			return;
		emitf_to(s, item_part(s, it), "C~ RCPT TO:<%.320s>", mailbox ? mailbox : "");
		emit_rebuilt_reply(s, item_part(s, it), smtp_recipient_status(r));
	} else if (event == SMTP_EV_MESSAGESENT) {
		smtp_message_t m = va_arg(ap, smtp_message_t);
		struct relay_item *it = smtp_message_get_application_data(m);
		if (!it)
			return;
		emitf_to(s, item_part(s, it), "C~ <message data, %zu bytes, in BDAT chunks>",
			 it->counted + 2);
		emitf_to(s, item_part(s, it), "C~ BDAT 0 LAST");
		emit_rebuilt_reply(s, item_part(s, it), smtp_message_transfer_status(m));
	} else if (event == SMTP_EV_DISCONNECT) {
		emitf_to(s, closing_part(s), "-- disconnected (after BDAT libesmtp shows nothing of "
			 "the wire: QUIT and its reply are not recorded)");
	}
}

/* Client lines: MAIL FROM opens the next message's transaction, QUIT the
 * closing; every command awaits one reply. AUTH's argument and every SASL
 * line after it are secrets. cont: the rest of a line cut at LINE_MAX_KEEP. */
static void client_line(struct relay_session *s, const char *p, size_t n, int cont)
{
	if (cont) {
		if (s->in_auth)
			emit(s, "C: ", "[redacted]", 10);
		else
			emit(s, "C: ", p, n);
		return;
	}
	if (s->in_auth) {
		pending_push(s, s->cur);
		emit(s, "C: ", "[redacted]", 10);
		return;
	}
	if (starts_with_word(p, n, "EHLO"))
		s->chunking = 0; /* each EHLO reply (again after STARTTLS) says it anew */
	if (starts_with_word(p, n, "MAIL"))
		start_transaction(s);
	else if (starts_with_word(p, n, "QUIT"))
		s->cur = closing_part(s);
	pending_push(s, s->cur);
	if (starts_with_word(p, n, "STARTTLS"))
		clock_gettime(CLOCK_MONOTONIC, &s->starttls_sent);
	if (!starts_with_word(p, n, "AUTH")) {
		emit(s, "C: ", p, n);
		return;
	}
	size_t start = n > 5 ? 5 : n, end = start;
	while (end < n && p[end] != ' ')
		end++;
	char line[96];
	snprintf(line, sizeof(line), "AUTH %.*s [redacted]", (int)(end - start > 40 ? 40 : end - start),
		 p + start);
	emit(s, "C: ", line, strlen(line));
	s->in_auth = 1;
	s->auth_refused[0] = '\0';
}

/* Server lines go to the part of the command they answer; a final line
 * ("250 ...", not "250-...") completes that reply. */
static void server_line(struct relay_session *s, const char *p, size_t n, int cont)
{
	if (cont) {
		emit_to(s, s->server_line_part, "S: ", p, n);
		return;
	}
	size_t part = pending_front(s);
	s->server_line_part = part;
	emit_to(s, part, "S: ", p, n);
	if (n >= 12 && strncmp(p, "250", 3) == 0 && starts_with_word(p + 4, n - 4, "CHUNKING"))
		chunking_announced(s);
	int final = n == 3 || (n > 3 && p[3] == ' ');
	if (!final || n < 3)
		return;
	pending_pop(s);
	if (part == closing_part(s) && p[0] == '2')
		s->quit_answered = 1;
	struct buf clean = BUF_INIT;
	put_clean(&clean, p, n < 200 ? n : 200);
	snprintf(s->last_reply, sizeof(s->last_reply), "%s", buf_str(&clean));
	buf_free(&clean);
	if (!s->in_auth || p[0] == '3')
		return;
	s->in_auth = 0;
	if (p[0] != '2')
		snprintf(s->auth_refused, sizeof(s->auth_refused), "%s", s->last_reply);
}

static void take_line(struct relay_session *s, int client, const char *p, size_t n, int cont)
{
	if (n && p[n - 1] == '\r')
		n--;
	if (client)
		client_line(s, p, n, cont);
	else
		server_line(s, p, n, cont);
}

static void flush_partials(struct relay_session *s)
{
	flush_data_note(s);
	for (int dir = 0; dir < 2; dir++) {
		struct buf *pb = &s->partial[dir];
		if (pb->len)
			take_line(s, dir, pb->data, pb->len, s->cont[dir]);
		s->cont[dir] = 0;
		if (pb->data)
			OPENSSL_cleanse(pb->data, pb->cap);
		buf_free(pb);
	}
}

/* libesmtp's monitor: buf is not NUL-terminated and holds any number of
 * lines, possibly starting or ending mid-line. */
static void on_monitor(const char *buf, int buflen, int writing, void *arg)
{
	struct relay_session *s = arg;
	touch(s);
	flush_data_note(s);
	if (writing == SMTP_CB_HEADERS || buflen <= 0)
		return;
	int client = writing == SMTP_CB_WRITING;
	struct buf *pb = &s->partial[client];
	const char *p = buf, *end = buf + buflen;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		buf_append(pb, p, n);
		p += n + (nl ? 1 : 0);
		if (nl || pb->len > LINE_MAX_KEEP) {
			take_line(s, client, pb->data, pb->len, s->cont[client]);
			s->cont[client] = !nl;
			OPENSSL_cleanse(pb->data, pb->len);
			buf_reset(pb);
		}
	}
}

/* ---- libesmtp callbacks ------------------------------------------------- */

/* libesmtp writes a message in 2,048-byte pieces, and with TCP_NODELAY each
 * becomes a packet of its own: seven for a 13 KB notice, each costing a
 * trip through the network stack (most of the sender's system time). Corked
 * from the message's first bytes until libesmtp asks for more after the
 * last, they leave in full-sized segments. Only with DATA: after BDAT,
 * libesmtp may wait for a reply between chunks, which a cork would hold
 * back until the kernel's 200 ms limit. Uncorking sends what is queued at
 * once; the final "." follows with TCP_NODELAY. */
static void data_cork(struct relay_session *s, int on)
{
	if (!s || s->fd < 0 || s->corked == on || (on && s->chunking))
		return;
	if (setsockopt(s->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) == 0)
		s->corked = on;
}

static const char *read_message(void **ctx, int *len, void *arg)
{
	struct relay_item *it = arg;
	(void)ctx; /* our position lives in the item, so libesmtp has nothing to free */
	if (!len) { /* rewind: libesmtp may read a message more than once */
		it->pos = 0;
		it->counted = 0;
		return NULL;
	}
	size_t left = it->msg->len - it->pos;
	size_t chunk = left > (1u << 20) ? (1u << 20) : left;
	const char *p = it->msg->data + it->pos;
	if (it->pos == 0 && chunk)
		data_cork(it->s, 1);
	else if (chunk == 0)
		data_cork(it->s, 0);
	it->pos += chunk;
	*len = (int)chunk;
	return p;
}

static int on_auth_interact(auth_client_request_t req, char **result, int fields, void *arg)
{
	struct relay *r = arg;
	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = r->user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = r->pass;
		else if (req[i].flags & AUTH_REALM)
			result[i] = (char *)"";
		else
			return 0; /* a mechanism wanting more than we have: next one */
	}
	return 1;
}

static void set_failure(struct relay_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_failure(struct relay_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
	va_end(ap);
	emitf_to(s, s->cur, "-- %s", s->failure);
}

/* TLS 1.3 servers send NewSessionTicket records just after the handshake.
 * If they arrive before libesmtp has flushed its EHLO, its protocol loop
 * handles "readable" first and waits for an EHLO reply that cannot come
 * until the timeout (libesmtp 1.1.0; on loopback, in about one TLS
 * session of thirty). So before libesmtp goes on, give the tickets time to
 * arrive (twice the handshake's duration, 20 ms to 1 s) and let OpenSSL take
 * them. SSL_peek never consumes application data, so nothing is lost for
 * libesmtp; the server sends nothing else before our EHLO. */
static void drain_session_tickets(struct relay_session *s, SSL *ssl)
{
	long patience = 2 * ms_since(&s->starttls_sent);
	if (patience < 20)
		patience = 20;
	if (patience > 1000)
		patience = 1000;
	if (patience > s->relay->timeout_ms)
		patience = s->relay->timeout_ms;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	struct pollfd pfd = {.fd = SSL_get_rfd(ssl), .events = POLLIN};
	char c;
	for (;;) {
		long left = patience - ms_since(&start);
		if (left <= 0 || pfd.fd < 0 || SSL_pending(ssl) > 0)
			return;
		if (poll(&pfd, 1, (int)left) <= 0)
			return; /* nothing came: this server sends no tickets */
		int n = SSL_peek(ssl, &c, 1);
		if (n > 0 || SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
			return; /* data or a closed connection: libesmtp's to handle */
		/* Took a record (a ticket); a second one usually follows at once. */
		patience = ms_since(&start) + 5;
	}
}

static void on_tls_ok(struct relay_session *s, SSL *ssl, const char *cipher, int bits)
{
	snprintf(s->tls, sizeof(s->tls), "%s %s %d", SSL_get_version(ssl), cipher ? cipher : "?", bits);
	emitf_to(s, s->cur, "-- TLS established: %s", s->tls);
	X509 *cert = SSL_get1_peer_certificate(ssl);
	BIO *b = cert ? BIO_new(BIO_s_mem()) : NULL;
	if (b && X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
		char *p = NULL;
		long n = BIO_get_mem_data(b, &p);
		transport_textf(s->tls_peer, sizeof(s->tls_peer), "%.*s", (int)(n > 255 ? 255 : n), p);
		emitf_to(s, s->cur, "-- server certificate: %s", s->tls_peer);
	}
	BIO_free(b);
	X509_free(cert);
	if (SSL_version(ssl) >= TLS1_3_VERSION)
		drain_session_tickets(s, ssl);
}

/* Certificate problems: accepted (and noted) unless smtp.tls_verify. On
 * refusal libesmtp sends QUIT, which the ticket race can stall as well. */
static void certificate_event(struct relay_session *s, int *ok, const char *problem, SSL *ssl)
{
	*ok = !s->relay->tls_verify;
	if (*ok) {
		emitf_to(s, s->cur, "-- %s; accepted (smtp.tls_verify = no)", problem);
		return;
	}
	set_failure(s, "%s: TLS refused (smtp.tls_verify = yes)", problem);
	if (ssl && SSL_version(ssl) >= TLS1_3_VERSION)
		drain_session_tickets(s, ssl);
}

/* libesmtp writes the end of each message (".\r\n") as a small segment
 * and then waits for the reply; with Nagle's algorithm on, the kernel holds
 * that segment until the previous one is acknowledged, and a peer that
 * delays its ACKs (40 ms on Linux) makes every message cost 40 ms: measured
 * 43 ms per message against Postfix's smtp-sink. So at connect time the
 * session takes its socket (the connect() above) and sets TCP_NODELAY. */
static void relay_socket_setup(struct relay_session *s)
{
	s->fd = relay_connect_fd;
	int one = 1;
	if (s->fd < 0 || setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		diag_debug("relay: cannot find the session's socket: no TCP_NODELAY, no TCP_CORK");
		s->fd = -1;
	}
}

static void on_event(smtp_session_t session, int event, void *arg, ...)
{
	struct relay_session *s = arg;
	va_list ap;
	(void)session;
	/* Only wire activity counts for timeout detection: DISCONNECT comes
	 * after the timeout it would otherwise hide. */
	if (event == SMTP_EV_CONNECT || event == SMTP_EV_MESSAGEDATA)
		touch(s);
	va_start(ap, arg);
	if (s->blind && (event == SMTP_EV_MAILSTATUS || event == SMTP_EV_RCPTSTATUS ||
			 event == SMTP_EV_MESSAGESENT || event == SMTP_EV_DISCONNECT)) {
		chunking_event(s, event, ap);
		va_end(ap);
		return;
	}
	switch (event) {
	case SMTP_EV_CONNECT:
		relay_socket_setup(s);
		/* The address the session went to is part of the evidence
		 * (an MX host's IPv4 or IPv6 address, or the relay). */
		emitf_to(s, 0, "-- connected to %s", s->relay->server);
		break;
	case SMTP_EV_MESSAGEDATA: {
		smtp_message_t m = va_arg(ap, smtp_message_t);
		int len = va_arg(ap, int);
		struct relay_item *it = smtp_message_get_application_data(m);
		if (it) {
			it->counted += (size_t)(len > 0 ? len : 0);
			if (s->chunking)
				chunking_data_starts(s, it);
			else
				s->data_item = it;
		}
		break;
	}
	case SMTP_EV_STARTTLS_OK: {
		SSL *ssl = va_arg(ap, SSL *);
		const char *cipher = va_arg(ap, const char *);
		int bits = va_arg(ap, int);
		on_tls_ok(s, ssl, cipher, bits);
		break;
	}
	case SMTP_EV_INVALID_PEER_CERTIFICATE: {
		long vfy = va_arg(ap, long);
		int *ok = va_arg(ap, int *);
		SSL *ssl = va_arg(ap, SSL *);
		char why[200];
		snprintf(why, sizeof(why), "server certificate not trusted (%s)",
			 X509_verify_cert_error_string(vfy));
		certificate_event(s, ok, why, ssl);
		break;
	}
	case SMTP_EV_NO_PEER_CERTIFICATE:
		certificate_event(s, va_arg(ap, int *), "server sent no certificate", NULL);
		break;
	case SMTP_EV_WRONG_PEER_CERTIFICATE: {
		int *ok = va_arg(ap, int *);
		const char *name = va_arg(ap, const char *);
		SSL *ssl = va_arg(ap, SSL *);
		char why[200];
		snprintf(why, sizeof(why), "server certificate names %.80s, not the host we asked for",
			 name && name[0] ? name : "another host");
		certificate_event(s, ok, why, ssl);
		break;
	}
	case SMTP_EV_WEAK_CIPHER: {
		int bits = va_arg(ap, int);
		int *ok = va_arg(ap, int *);
		*ok = 0;
		set_failure(s, "TLS cipher too weak (%d bits)", bits);
		break;
	}
	case SMTP_EV_EXTNA_8BITMIME:
		set_failure(s, "the relay does not offer 8BITMIME, which a message with 8-bit "
			       "bytes needs; nothing was sent");
		break;
	case SMTP_EV_EXTNA_STARTTLS:
		set_failure(s, "the relay does not offer STARTTLS and smtp.starttls = require; "
			       "nothing was sent");
		break;
	default:
		/* Other events either have nothing to record or, like
		 * SMTP_EV_EXTNA_DSN, leave *quit_now at its safe default. */
		break;
	}
	va_end(ap);
}

/* ---- checking what we hand to libesmtp ----------------------------------- */

/* libesmtp writes addresses into commands as they are: a CR, LF or '>'
 * would let a caller inject SMTP commands. */
static int address_ok(const char *a)
{
	size_t n = strlen(a);
	if (n > 320)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return 0;
	}
	return 1;
}

/* SMTP carries CRLF lines of at most 1000 octets; libesmtp neither fixes
 * nor refuses anything else. Sets *eightbit when BODY=8BITMIME is needed. */
static int message_ok(const struct transport_msg *m, int *eightbit, char *why, size_t n)
{
	const char *d = m->data;
	*eightbit = 0;
	if (m->len < 2 || d[m->len - 2] != '\r' || d[m->len - 1] != '\n')
		return snprintf(why, n, "message does not end with CRLF"), 0;
	size_t at = 0, line = 0;
	switch (crlf_lines_check(d, m->len, 1000, &at, &line, eightbit)) {
	case CRLF_OK:
		return 1;
	case CRLF_NUL:
		return snprintf(why, n, "NUL byte in line %zu", line), 0;
	case CRLF_BARE_CR:
		return snprintf(why, n, "bare CR in line %zu", line), 0;
	case CRLF_BARE_LF:
		return snprintf(why, n, "bare LF in line %zu", line), 0;
	case CRLF_LONG_LINE:
		return snprintf(why, n, "line %zu is longer than 1000 octets", line), 0;
	}
	return 0;
}

static void permfail_local(struct transport_msg *m, const char *why)
{
	m->outcome = TRANSPORT_PERMFAIL;
	snprintf(m->error, sizeof(m->error), "not sent: %s", why);
	buf_printf(&m->transcript, "-- not sent: %s\n", why);
}

/* Adds the message to the session; 0 if added, -1 if refused locally. */
static int add_message(smtp_session_t ss, struct relay_item *it)
{
	struct transport_msg *m = it->msg;
	char why[160];
	int eightbit;
	if (!address_ok(m->mail_from) || !address_ok(m->rcpt)) {
		permfail_local(m, "envelope address contains characters SMTP cannot carry");
		return -1;
	}
	if (!message_ok(m, &eightbit, why, sizeof(why))) {
		permfail_local(m, why);
		return -1;
	}
	it->m = smtp_add_message(ss);
	if (!it->m)
		return -1;
	smtp_set_reverse_path(it->m, m->mail_from[0] ? m->mail_from : NULL);
	smtp_set_messagecb(it->m, read_message, it);
	smtp_message_set_application_data_release(it->m, it, NULL);
	smtp_size_set_estimate(it->m, (unsigned long)m->len);
	if (eightbit)
		smtp_8bitmime_set_body(it->m, E8bitmime_8BITMIME);
	it->r = smtp_add_recipient(it->m, m->rcpt);
	return it->r ? 0 : -1;
}

static smtp_session_t make_session(struct relay *r, struct relay_session *s, auth_context_t *actx)
{
	static const int timeouts[] = {Timeout_GREETING, Timeout_ENVELOPE, Timeout_DATA,
				       Timeout_TRANSFER, Timeout_DATA2};
	static const enum starttls_option tls_mode[] = {
		[STARTTLS_NO] = Starttls_DISABLED,
		[STARTTLS_TRY] = Starttls_ENABLED,
		[STARTTLS_REQUIRE] = Starttls_REQUIRED,
	};
	*actx = NULL;
	smtp_session_t ss = smtp_create_session();
	if (!ss)
		return NULL;
	char wire[sizeof(r->server) + sizeof(V6_SUFFIX)];
	libesmtp_server(r->server, wire, sizeof(wire));
	smtp_set_server(ss, wire);
	if (r->helo[0])
		smtp_set_hostname(ss, r->helo);
	/* ms, and below the RFC 5321 minimums only with the override flag. */
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
		smtp_set_timeout(ss, timeouts[i] | Timeout_OVERRIDE_RFC2822_MINIMUM, r->timeout_ms);
	smtp_starttls_set_ctx(ss, r->ssl_ctx);
	smtp_starttls_enable(ss, (unsigned)r->starttls <= STARTTLS_REQUIRE ? tls_mode[r->starttls]
									: Starttls_REQUIRED);
	s->ss = ss;
	smtp_set_eventcb(ss, on_event, s);
	smtp_set_monitorcb(ss, on_monitor, s, 0);
	if (r->user[0]) {
		*actx = auth_create_context();
		if (*actx) {
			/* PLAIN and LOGIN send the password (base64): allowed,
			 * and redacted in the transcript. */
			auth_set_mechanism_flags(*actx, AUTH_PLUGIN_PLAIN, 0);
			auth_set_interact_cb(*actx, on_auth_interact, r);
			smtp_auth_set_context(ss, *actx);
		}
	}
	return ss;
}

/* ---- running the session ------------------------------------------------- */

/* libesmtp write()s to the socket, and a peer that closed it would kill the
 * process with SIGPIPE. Blocking it in this thread only, and taking back a
 * SIGPIPE the session raised, leaves the rest of the process untouched. */
struct sigpipe_guard {
	sigset_t old;
	int was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pending);
	if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* smtp_errno() is never cleared by libesmtp, so a stale error from an
 * earlier session would look like this one's. An API misuse sets it to
 * SMTP_ERR_INVAL first; anything else afterwards is this session's. */
static void prime_smtp_errno(void)
{
	smtp_starttls_enable(NULL, Starttls_DISABLED);
}

/* Why messages that were never answered did not go: the clearest cause
 * known, for a person reading the notice's history. Returns 1 when a cause
 * is known, 0 for the generic text. */
static int session_error(struct relay_session *s, int started, char *out, size_t n)
{
	const char *srv = s->relay->server;
	int e = smtp_errno();
	char text[160];
	if (s->failure[0]) {
		transport_textf(out, n, "%s", s->failure);
		return 1;
	}
	if (s->auth_refused[0]) {
		transport_textf(out, n, "%s refused our AUTH (%s); check smtp.auth_user and "
			 "smtp.auth_password", srv, s->auth_refused);
		return 1;
	}
	if (e == -ECONNREFUSED) {
		transport_textf(out, n, "connection refused by %s", srv);
		return 1;
	}
	if (e == SMTP_ERR_DROPPED_CONNECTION && ms_since_touch(s) >= s->relay->timeout_ms * 9 / 10) {
		transport_textf(out, n, "no answer from %s within %ld ms (timeout)", srv, s->relay->timeout_ms);
		return 1;
	}
	if (e == SMTP_ERR_DROPPED_CONNECTION) {
		transport_textf(out, n, "%s closed the connection%s%s", srv,
			 s->last_reply[0] ? " after: " : "", s->last_reply);
		return 1;
	}
	if (e != SMTP_ERR_INVAL && e != 0) {
		smtp_strerror(e, text, sizeof(text));
		transport_textf(out, n, "SMTP session with %s failed: %s", srv, text);
		return 1;
	}
	if (s->last_reply[0] && (s->last_reply[0] == '4' || s->last_reply[0] == '5')) {
		transport_textf(out, n, "%s refused the session: %s", srv, s->last_reply);
		return 1;
	}
	transport_textf(out, n, "%s ended the session before this message was sent%s", srv,
		 started ? "" : " (session could not start)");
	return 0;
}

/* The reply text libesmtp kept: CRLF between lines of a multi-line reply. */
static void copy_reply_text(struct buf *out, const char *text)
{
	if (!text)
		return;
	size_t n = strlen(text);
	while (n && (text[n - 1] == '\r' || text[n - 1] == '\n'))
		n--;
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\r')
			continue;
		if (text[i] == '\n')
			buf_putc(out, '\n');
		else
			put_clean(out, &text[i], 1);
	}
}

/* Enhanced status code: libesmtp's when the server announced
 * ENHANCEDSTATUSCODES, else read from the text if it starts with one of the
 * reply's class ("550 5.7.1 ..."). */
static void set_enhanced(struct transport_msg *m, const smtp_status_t *st)
{
	if (st->enh_class > 0) {
		snprintf(m->enhanced, sizeof(m->enhanced), "%d.%d.%d", st->enh_class % 10,
			 st->enh_subject % 1000, st->enh_detail % 1000);
		return;
	}
	int c, sub, det, used = 0;
	if (st->text && sscanf(st->text, "%1d.%3d.%3d%n", &c, &sub, &det, &used) == 3 &&
	    c == st->code / 100 && (st->text[used] == ' ' || st->text[used] == '\r' || !st->text[used]))
		snprintf(m->enhanced, sizeof(m->enhanced), "%d.%d.%d", c, sub, det);
}

/* A relay that wants (other) credentials is our configuration problem, not
 * the recipient's: retry after the operator fixes it, never bounce. */
static int is_auth_problem(const struct relay_session *s, const smtp_status_t *st)
{
	return st->code == 530 || (s->auth_refused[0] && st->code / 100 == 5);
}

static void decide(struct relay_session *s, struct relay_item *it, const char *why_unreached)
{
	struct transport_msg *m = it->msg;
	const smtp_status_t *rp = smtp_reverse_path_status(it->m);
	const smtp_status_t *rs = smtp_recipient_status(it->r);
	const smtp_status_t *ts = smtp_message_transfer_status(it->m);
	const smtp_status_t *st = NULL;
	if (rp && rp->code >= 400)
		st = rp;
	else if (rs && rs->code >= 400)
		st = rs;
	else if (ts && ts->code >= 200 && ts->code != 354) /* 354 alone: data never answered */
		st = ts;
	if (!st || st->code < 200 || st->code > 599) {
		m->outcome = TRANSPORT_TEMPFAIL;
		transport_textf(m->error, sizeof(m->error), "%s", why_unreached);
		return;
	}
	m->code = st->code;
	set_enhanced(m, st);
	copy_reply_text(&m->reply, st->text);
	if (st->code / 100 == 2) {
		m->outcome = TRANSPORT_ACCEPTED;
		return;
	}
	m->outcome = st->code / 100 == 5 ? TRANSPORT_PERMFAIL : TRANSPORT_TEMPFAIL;
	if (m->outcome == TRANSPORT_PERMFAIL && is_auth_problem(s, st)) {
		m->outcome = TRANSPORT_TEMPFAIL;
		if (s->auth_refused[0])
			transport_textf(m->error, sizeof(m->error), "%s refused our AUTH (%s); check "
				 "smtp.auth_user and smtp.auth_password", s->relay->server, s->auth_refused);
		else
			transport_textf(m->error, sizeof(m->error), "%s requires AUTH; set smtp.auth_user "
				 "and smtp.auth_password", s->relay->server);
	}
}

/* The message's transcript: the preamble, its own transaction, the closing. */
static void finish_message(struct relay_session *s, struct relay_item *it, const char *why)
{
	struct transport_msg *m = it->msg;
	decide(s, it, why);
	transport_textf(m->peer, sizeof(m->peer), "%s", s->relay->server);
	transport_textf(m->tls, sizeof(m->tls), "%s", s->tls);
	transport_textf(m->tls_peer, sizeof(m->tls_peer), "%s", s->tls_peer);
	if (m->outcome == TRANSPORT_ACCEPTED)
		transport_queue_id(buf_str(&m->reply), m->queue_id);
	const struct part *parts[3] = {&s->part[0], &s->part[1 + (size_t)(it - s->items)],
				       &s->part[closing_part(s)]};
	for (int i = 0; i < 3; i++)
		if (parts[i]->text.len)
			buf_append(&m->transcript, parts[i]->text.data, parts[i]->text.len);
}

static struct part *parts_new(size_t n)
{
	struct part *p = xcalloc(n + 2, sizeof(*p));
	p[0].cap = PREAMBLE_MAX;
	for (size_t i = 1; i <= n; i++)
		p[i].cap = TRANSACTION_MAX;
	p[n + 1].cap = CLOSING_MAX;
	return p;
}

static void parts_free(struct part *p, size_t n)
{
	if (!p)
		return;
	for (size_t i = 0; i < n + 2; i++)
		buf_free(&p[i].text);
	free(p);
}

static int relay_send(void *state, struct transport_msg *msgs, size_t n)
{
	struct relay *r = state;
	struct relay_session s = {.relay = r, .n = n, .fd = -1};
	struct relay_item *items = xcalloc(n, sizeof(*items));
	s.items = items;
	s.part = parts_new(n);
	auth_context_t actx = NULL;
	smtp_session_t ss = make_session(r, &s, &actx);
	if (!ss) {
		for (size_t i = 0; i < n; i++)
			snprintf(msgs[i].error, sizeof(msgs[i].error), "cannot create an SMTP session");
		parts_free(s.part, n);
		free(items);
		return 0;
	}
	size_t queued = 0;
	for (size_t i = 0; i < n; i++) {
		items[i].msg = &msgs[i];
		items[i].s = &s;
		if (add_message(ss, &items[i]) == 0)
			queued++;
		else if (!msgs[i].error[0])
			snprintf(msgs[i].error, sizeof(msgs[i].error), "cannot add message to the session");
	}

	int started = 0;
	char why[256];
	if (queued) {
		struct sigpipe_guard g;
		touch(&s);
		sigpipe_block(&g);
		prime_smtp_errno();
		relay_connect_fd = -1; /* only a connect of this session counts */
		started = smtp_start_session(ss);
		sigpipe_restore(&g);
		flush_partials(&s);
	}
	/* A session that ended without QUIT answered, for a known cause, says
	 * why in the closing: messages never reached have only the preamble and
	 * this. (No cause known: say nothing; with CHUNKING libesmtp stops
	 * showing the wire after the first BDAT, QUIT included.) */
	if (session_error(&s, started, why, sizeof(why)) && queued && !s.quit_answered)
		emitf_to(&s, closing_part(&s), "-- session ended: %s", why);
	for (size_t i = 0; i < n; i++)
		if (items[i].r)
			finish_message(&s, &items[i], why);

	smtp_destroy_session(ss);
	if (actx)
		auth_destroy_context(actx);
	ERR_clear_error(); /* TLS failures are reported above, not left for the next caller */
	parts_free(s.part, n);
	free(items);
	return 0;
}

const struct transport_ops transport_relay_ops = {
	.name = "relay",
	.accept_event = "relay_accepted",
	.send = relay_send,
	.close = relay_close,
};
