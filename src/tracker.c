/* tracker.c: the public listener (see tracker.h, docs/tracking.md).
 *
 * GET and HEAD are answered on the access handler's second call, once
 * libmicrohttpd knows the request is complete: a response queued on the
 * first call (headers only) makes it close the connection, and a pixel
 * served without keep-alive costs a TCP handshake per hit (17k against
 * 120k requests/s here). POST /r/ is checked on the first call, before
 * its small form body is read and discarded; other methods are refused
 * on the first call. The order of work for a tracking path is fixed: the token's MAC
 * (no I/O), then the per-IP token bucket (429 beyond it), then whatever
 * the path needs from the store. Pixel and click hits are copied into a
 * bounded queue and answered at once; the recorder thread classifies them
 * in arrival order and encodes each batch, and its writer thread writes the
 * batch as one store_events_add (one group commit) while the recorder
 * prepares the next. Confirmations are written by the handler itself, so
 * the answer comes only after the event is durable.
 *
 * Functions: tracker_start, tracker_stop, tracker_store_calls (tests).
 * Errors: tracker_start fails with a message naming the key or address;
 * after that nothing fails loudly: storage errors become a 500 for that
 * request, or a diag line for the recorder's batch. Diag lines never carry
 * tokens, addresses or user agents. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include "selo/accesslog.h"
#include "selo/api.h"
#include "selo/classify.h"
#include "selo/clock.h"
#include "selo/connguard.h"
#include "selo/crypto.h"
#include "selo/diag.h"
#include "selo/event.h"
#include "selo/keys.h"
#include "selo/ledger.h"
#include "selo/mime.h"
#include "selo/netlist.h"
#include "selo/tlog.h"
#include "selo/token.h"
#include "selo/tracker.h"
#include "selo/webpage.h"


#define QUEUE_CAP 32768     /* hits waiting for the recorder: well under a second's worth */
#define QUEUE_WAIT_MS 1000  /* a handler waits this long for room, then answers 503 */
#define BATCH_WAKE 1000     /* hits waiting that wake the recorder before FLUSH_MS */
#define BATCH_MAX 8192      /* most hits in one group commit (a backlog drains in few) */
#define FLUSH_MS 100        /* longest a hit waits in the queue when the store keeps up */
#define UA_MAX 512          /* bytes of User-Agent kept as evidence */
#define PURPOSE_MAX 64      /* bytes of Purpose / Sec-Purpose kept */
#define POST_BODY_MAX 1024  /* the form posts nothing; a little slack for odd clients */
#define URL_MAX 8192        /* longest stored click target we redirect to */
#define RATE_SETS 2048      /* per-IP buckets: RATE_SETS * RATE_WAYS addresses remembered */
#define RATE_WAYS 8
#define BRIEF_SLOTS 1024    /* notices whose salt the recorder remembers */
#define BRIEF_TTL_MS 5000   /* ... for this long, so acceptance times stay fresh */
#define SWEEP_MS 1000       /* how often the recorder closes the hit folds that are due */
#define SWEEP_MAX 256       /* folds closed in one transaction */
#define FOLD_WINDOW_MAX_MS (30LL * 86400 * 1000) /* a fold stays open at most this long */
#define RETRY_FIRST_MS 250  /* a batch the store refused is tried again after this, */
#define RETRY_MAX_MS 5000   /* doubling up to this */
#define RETRY_AT_STOP 3     /* attempts left for a batch once the tracker stops */

/* ---- static bodies */

/* The standard transparent 1x1 GIF89a (43 bytes). */
static const unsigned char GIF[] = {
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
	0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
	0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

/* One body for every refusal, so a forged token, an unknown path and a
 * token of the wrong kind look the same. */
static const char NOT_FOUND[] = "Não encontrado.\n";
static const char TOO_MANY[] = "Muitas solicitações; tente novamente em instantes.\n";
static const char TOO_LARGE[] = "Corpo da solicitação grande demais.\n";
static const char BAD_METHOD[] = "Método não permitido.\n";
static const char INTERNAL[] = "Erro interno; tente novamente mais tarde.\n";
static const char NO_LEDGER[] = "O log não está disponível agora.\n";
static const char BUSY[] = "Serviço sobrecarregado; tente novamente em instantes.\n";

#define PAGE_HEAD                                                                          \
	"<!doctype html>\n<html lang=\"pt-BR\">\n<head>\n<meta charset=\"utf-8\">\n"          \
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"          \
	"<title>%s</title>\n<style>\n"                                                         \
	"body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;"       \
	"margin:0;padding:2rem 1rem;background:#f4f5f7;color:#1b1f24;line-height:1.5}\n"       \
	"main{max-width:34rem;margin:0 auto;background:#fff;border:1px solid #c9d1d9;"         \
	"border-radius:8px;padding:1.5rem}\n"                                                  \
	"h1{font-size:1.5rem;margin:0 0 1rem}\n"                                              \
	"button{font:inherit;font-size:1.125rem;padding:.75rem 1.5rem;border:0;"               \
	"border-radius:6px;background:#0a4fc4;color:#fff;cursor:pointer}\n"                    \
	"button:hover{background:#083f9c}\n"                                                   \
	"button:focus-visible{outline:3px solid #1b1f24;outline-offset:3px}\n"                 \
	"</style>\n</head>\n<body>\n<main>\n"
#define PAGE_TAIL "</main>\n</body>\n</html>\n"

/* The form posts back to its own address; nothing in it depends on the
 * token, so one shared response serves every notice. */
static const char PAGE_FORM_TITLE[] = "Confirmar recebimento";
static const char PAGE_FORM_BODY[] =
	"<h1>Confirmar recebimento</h1>\n"
	"<p>Ao pressionar o botão abaixo, você confirma que recebeu esta notificação.</p>\n"
	"<form method=\"post\"><button type=\"submit\">Confirmar recebimento</button></form>\n";
static const char PAGE_GONE_TITLE[] = "Link indisponível";
static const char PAGE_GONE_BODY[] =
	"<h1>Link indisponível</h1>\n<p>Este link não está mais disponível.</p>\n";

/* ---- state */

/* One hit waiting for the recorder; the strings live in the same
 * allocation, after the struct. */
struct hit_rec {
	enum hit_kind kind;
	char method[8];
	int link;
	int64_t time_ms;
	char notice[SELO_ID_TEXT + 1];
	char ip[INET6_ADDRSTRLEN];
	const char *user_agent;   /* NULL: none sent */
	const char *purpose;      /* NULL: none sent */
	char text[];
};

struct hit_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* CLOCK_MONOTONIC; hits arrived */
	pthread_cond_t room;      /* CLOCK_MONOTONIC; the recorder took some */
	struct hit_rec **ring;
	size_t head, n;
	unsigned long long refused; /* 503s for a full queue, since the last warning */
	pthread_cond_t stop_cv;   /* CLOCK_MONOTONIC; the tracker stops */
	int stopping;
};



/* A token bucket per client address (IPv6 by /64: one host holds a whole
 * /64). Set-associative: an address hashes to one set of RATE_WAYS slots
 * and evicts the set's least recently seen slot, which bounds memory under
 * a flood from many addresses at the cost of forgetting idle ones. */
struct rate_slot {
	uint8_t key[9];           /* family tag, then 4 (v4) or 8 (v6 /64) bytes */
	uint8_t used;
	double tokens;
	int64_t last_ms;
};

struct rate_table {
	pthread_mutex_t mu;
	struct rate_slot *slots;  /* RATE_SETS * RATE_WAYS */
	uint64_t seed;            /* random, so nobody can aim addresses at one set */
	double per_ms, burst;
};

/* What the recorder remembers of a notice: one read per notice every
 * BRIEF_TTL_MS even when a flood hits it. Direct-mapped; recorder only. */
struct brief_slot {
	char id[SELO_ID_TEXT + 1];
	int found;
	uint8_t salt[32];
	int64_t accepted_ms;
	int64_t until_ms;         /* monotonic */
};

struct tracker {
	struct selo *app;
	struct MHD_Daemon *d;
	struct connguard *guard;  /* request deadline, room for new clients */
	uint8_t token_key[TOKEN_KEY_LEN];
	struct classifier *cls;
	struct hit_queue q;
	struct rate_table rate;
	struct brief_slot *briefs;
	pthread_t recorder;
	int recorder_running;
	pthread_mutex_t post_mu;  /* one confirmation at a time: no double event */
	pthread_mutex_t log_mu;   /* libmicrohttpd's messages, at most one a second */
	int64_t log_last_ms;
	unsigned long long log_suppressed;
	atomic_llong store_calls;
	struct diag_limit write_failed, sweep_failed, read_failed; /* a failing store, said once per interval */
	struct MHD_Response *gif, *not_found, *too_many, *too_large, *internal, *no_ledger,
		*busy, *form_page, *gone_page, *allow_get, *allow_post;
};

/* POST /r/ body accounting, in *con_cls between the calls of one request. */
struct post_req {
	struct token tok;
	char token_text[TOKEN_TEXT_LEN + 1];
	size_t got;
};

/* ---- responses */

static void add_headers(struct MHD_Response *r, const char *const *h)
{
	for (size_t i = 0; h && h[i]; i += 2)
		MHD_add_response_header(r, h[i], h[i + 1]);
}

/* A response shared by every request until stop: over static bytes
 * (PERSISTENT), or over a copy made once (MUST_COPY) for pages rendered at
 * start. */
static struct MHD_Response *shared_mode(const void *p, size_t n, const char *ctype,
					const char *const *headers, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)p, mode);
	if (!r)
		return NULL;
	accesslog_remember(r, n);
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	add_headers(r, headers);
	return r;
}

static struct MHD_Response *shared(const void *p, size_t n, const char *ctype,
				   const char *const *headers)
{
	return shared_mode(p, n, ctype, headers, MHD_RESPMEM_PERSISTENT);
}

static const char *const TEXT_HDRS[] = {"Cache-Control", "no-store", NULL};
static const char *const HTML_HDRS[] = {
	"Cache-Control", "no-store",
	"Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
	"X-Frame-Options", "DENY",
	"Referrer-Policy", "no-referrer",
	NULL};

static enum MHD_Result send_copy(struct MHD_Connection *c, unsigned status, const char *ctype,
				 const void *p, size_t n, const char *const *headers)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	add_headers(r, headers);
	accesslog_note(c, n);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void page_render(struct buf *b, const char *title, const char *body)
{
	buf_printf(b, PAGE_HEAD, title);
	buf_puts(b, body);
	buf_puts(b, PAGE_TAIL);
}

/* The confirmation page in its confirmed state: the time is the event's
 * (when the store made it durable), in UTC, as a person in Brazil writes
 * dates. */
static enum MHD_Result send_confirmed(struct MHD_Connection *c, int64_t when_ms)
{
	char iso[32], human[48];
	clock_rfc3339(when_ms, iso);
	time_t secs = (time_t)(when_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(human, sizeof(human), "%d/%m/%Y às %H:%M:%S UTC", &tm);
	struct buf body = BUF_INIT, page = BUF_INIT;
	buf_printf(&body, "<h1>Recebimento confirmado</h1>\n<p>Recebimento confirmado em "
			  "<time datetime=\"%s\">%s</time>. Obrigado.</p>\n", iso, human);
	page_render(&page, "Recebimento confirmado", buf_str(&body));
	enum MHD_Result r = send_copy(c, MHD_HTTP_OK, "text/html; charset=utf-8", page.data, page.len,
				      HTML_HDRS);
	buf_free(&body);
	buf_free(&page);
	return r;
}

static int responses_make(struct tracker *t)
{
	/* Every open is a fetch: no cache, proxy or old HTTP/1.0 client may
	 * keep the pixel. */
	static const char *const gif_hdrs[] = {
		"Cache-Control", "no-store, no-cache, must-revalidate, max-age=0",
		"Pragma", "no-cache", "Expires", "0", NULL};
	static const char *const retry[] = {"Cache-Control", "no-store", "Retry-After", "1", NULL};
	static const char *const get_only[] = {"Cache-Control", "no-store", "Allow", "GET, HEAD", NULL};
	static const char *const get_post[] = {"Cache-Control", "no-store", "Allow", "GET, HEAD, POST",
					       NULL};
	static const char *const later[] = {"Cache-Control", "no-store", "Retry-After", "2", NULL};
	const char *txt = "text/plain; charset=utf-8";
	const char *html = "text/html; charset=utf-8";
	struct buf form = BUF_INIT, gone = BUF_INIT;
	page_render(&form, PAGE_FORM_TITLE, PAGE_FORM_BODY);
	page_render(&gone, PAGE_GONE_TITLE, PAGE_GONE_BODY);
	t->gif = shared(GIF, sizeof(GIF), "image/gif", gif_hdrs);
	t->not_found = shared(NOT_FOUND, sizeof(NOT_FOUND) - 1, txt, TEXT_HDRS);
	t->too_many = shared(TOO_MANY, sizeof(TOO_MANY) - 1, txt, retry);
	t->too_large = shared(TOO_LARGE, sizeof(TOO_LARGE) - 1, txt, TEXT_HDRS);
	t->internal = shared(INTERNAL, sizeof(INTERNAL) - 1, txt, TEXT_HDRS);
	t->no_ledger = shared(NO_LEDGER, sizeof(NO_LEDGER) - 1, txt, later);
	t->busy = shared(BUSY, sizeof(BUSY) - 1, txt, later);
	t->allow_get = shared(BAD_METHOD, sizeof(BAD_METHOD) - 1, txt, get_only);
	t->allow_post = shared(BAD_METHOD, sizeof(BAD_METHOD) - 1, txt, get_post);
	t->form_page = shared_mode(form.data, form.len, html, HTML_HDRS, MHD_RESPMEM_MUST_COPY);
	t->gone_page = shared_mode(gone.data, gone.len, html, HTML_HDRS, MHD_RESPMEM_MUST_COPY);
	buf_free(&form);
	buf_free(&gone);
	const struct MHD_Response *all[] = {t->gif, t->not_found, t->too_many, t->too_large,
					    t->internal, t->no_ledger, t->busy, t->allow_get, t->allow_post,
					    t->form_page, t->gone_page};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!all[i])
			return -1;
	return 0;
}

static void responses_free(struct tracker *t)
{
	struct MHD_Response *all[] = {t->gif, t->not_found, t->too_many, t->too_large, t->internal,
				      t->no_ledger, t->busy, t->allow_get, t->allow_post, t->form_page,
				      t->gone_page};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i])
			MHD_destroy_response(all[i]);
}

/* ---- untrusted header values */

/* Length of the UTF-8 sequence a lead byte starts (1 for anything else). */
static size_t utf8_len(unsigned char lead)
{
	return lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
}

/* How many bytes of a header to keep: at most max, not ending inside a
 * UTF-8 character the cap cut in half. */
static size_t header_len(const char *in, size_t max)
{
	size_t n = strnlen(in, max);
	if (n < max || in[n] == '\0')
		return n;
	size_t k = n;
	while (k > 0 && n - k < 3 && ((unsigned char)in[k - 1] & 0xC0) == 0x80)
		k--;
	if (k > 0 && (unsigned char)in[k - 1] >= 0xC0 && k - 1 + utf8_len((unsigned char)in[k - 1]) > n)
		return k - 1;
	return n;
}

/* Copies n bytes of a header (header_len) into out (n + 1 bytes). The value
 * becomes a disclosure a receipt prints as JSON text, so it must be valid
 * UTF-8 without control bytes: when it is not, every byte outside
 * printable ASCII becomes '?'. */
static void header_copy(const char *in, size_t n, char *out)
{
	memcpy(out, in, n);
	out[n] = '\0';
	int clean = utf8_valid(out, n);
	for (size_t i = 0; clean && i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			clean = 0;
	if (!clean)
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
				out[i] = '?';
}

static const char *purpose_header(struct MHD_Connection *c)
{
	const char *p = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Purpose");
	return p ? p : MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Purpose");
}

/* X-Forwarded-For headers, in the order received, for netlist_client.
 * Past XFF_MAX the oldest are dropped: the walk starts from the right. */
#define XFF_MAX 16
struct xff_list {
	const char *v[XFF_MAX];
	size_t n;
};

static enum MHD_Result xff_collect(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	(void)kind;
	struct xff_list *x = cls;
	if (strcasecmp(key, "X-Forwarded-For") != 0)
		return MHD_YES;
	if (x->n == XFF_MAX) {
		memmove(x->v, x->v + 1, (XFF_MAX - 1) * sizeof(x->v[0]));
		x->n--;
	}
	x->v[x->n++] = value ? value : "";
	return MHD_YES;
}

/* The client's address into out: the TCP peer, unless the peer is one of
 * track.trusted_proxies; then the address its X-Forwarded-For names (the
 * rightmost one that is not a trusted proxy, docs/deploy.md). The header
 * is read only then, so nobody else can choose the address recorded, the
 * classifier's input or the rate bucket. 0, or -1 for a non-IP socket. */
static int client_addr(const struct tracker *t, struct MHD_Connection *c,
		       struct sockaddr_storage *out)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *peer = ci ? ci->client_addr : NULL;
	const struct netlist *trusted = &t->app->cfg.track_trusted_proxies;
	struct xff_list x = {{0}, 0};
	if (trusted->n && netlist_has(trusted, peer))
		MHD_get_connection_values(c, MHD_HEADER_KIND, xff_collect, &x);
	return netlist_client(trusted, peer, x.v, x.n, out) < 0 ? -1 : 0;
}

static void client_ip_text(const struct tracker *t, struct MHD_Connection *c,
			   char out[INET6_ADDRSTRLEN])
{
	struct sockaddr_storage ss;
	out[0] = '\0';
	if (client_addr(t, c, &ss) != 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&ss)->sin_addr, out, INET6_ADDRSTRLEN);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&ss)->sin6_addr, out,
			  INET6_ADDRSTRLEN);
}

/* ---- per-IP token buckets */

static int rate_key(const struct sockaddr *sa, uint8_t key[9])
{
	memset(key, 0, 9);
	if (sa && sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa && sa->sa_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
		return 0;
	}
	return -1;
}

static size_t rate_set(const struct rate_table *rt, const uint8_t key[9])
{
	uint64_t h = 1469598103934665603ull ^ rt->seed; /* FNV-1a, seeded */
	for (size_t i = 0; i < 9; i++) {
		h ^= key[i];
		h *= 1099511628211ull;
	}
	return (size_t)(h % RATE_SETS);
}

/* The slot of key in its set; a new one (full bucket) replaces the set's
 * free or least recently seen slot. Called with rt->mu held. */
static struct rate_slot *rate_slot_get(struct rate_table *rt, const uint8_t key[9], int64_t now)
{
	struct rate_slot *set = rt->slots + rate_set(rt, key) * RATE_WAYS;
	struct rate_slot *victim = &set[0];
	for (size_t i = 0; i < RATE_WAYS; i++) {
		if (set[i].used && !memcmp(set[i].key, key, 9))
			return &set[i];
		if (!set[i].used || (victim->used && set[i].last_ms < victim->last_ms))
			victim = &set[i];
	}
	memcpy(victim->key, key, 9);
	victim->used = 1;
	victim->tokens = rt->burst;
	victim->last_ms = now;
	return victim;
}

/* 1 when this client may make one more recorded hit now. */
static int rate_allow(struct tracker *t, struct MHD_Connection *c)
{
	uint8_t key[9];
	struct sockaddr_storage ss;
	if (client_addr(t, c, &ss) != 0 || rate_key((const struct sockaddr *)&ss, key) != 0)
		return 1; /* not an IP socket: nothing to key on */
	struct rate_table *rt = &t->rate;
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&rt->mu);
	struct rate_slot *s = rate_slot_get(rt, key, now);
	s->tokens += (double)(now - s->last_ms) * rt->per_ms;
	if (s->tokens > rt->burst)
		s->tokens = rt->burst;
	s->last_ms = now;
	int ok = s->tokens >= 1.0;
	if (ok)
		s->tokens -= 1.0;
	pthread_mutex_unlock(&rt->mu);
	return ok;
}

/* ---- the hit queue */

static struct hit_rec *hit_capture(const struct tracker *t, struct MHD_Connection *c,
				   enum hit_kind kind, const char *method, const struct token *tok)
{
	const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
	const char *pu = purpose_header(c);
	size_t ul = ua ? header_len(ua, UA_MAX) : 0, pl = pu ? header_len(pu, PURPOSE_MAX) : 0;
	struct hit_rec *h = xmalloc(sizeof(*h) + ul + 1 + pl + 1);
	memset(h, 0, sizeof(*h));
	h->kind = kind;
	/* strnlen and memcpy: snprintf showed in the handler's profile */
	size_t ml = strnlen(method, sizeof(h->method) - 1);
	memcpy(h->method, method, ml);
	h->method[ml] = '\0';
	h->link = kind == HIT_CLICK ? tok->link : 0;
	h->time_ms = clock_now_ms();
	id_to_text(tok->notice, h->notice);
	client_ip_text(t, c, h->ip);
	if (ua) {
		header_copy(ua, ul, h->text);
		h->user_agent = h->text;
	}
	if (pu) {
		header_copy(pu, pl, h->text + ul + 1);
		h->purpose = h->text + ul + 1;
	}
	return h;
}

/* Hands h to the recorder: 0, or -1 (h freed) when the queue stayed full
 * for QUEUE_WAIT_MS or the tracker is stopping. A full queue slows the
 * handlers down to the recorder's pace instead of losing hits: every hit
 * answered 200 or 302 is recorded, and memory stays bounded. */
static int hit_enqueue(struct tracker *t, struct hit_rec *h)
{
	struct hit_queue *q = &t->q;
	pthread_mutex_lock(&q->mu);
	if (q->n == QUEUE_CAP && !q->stopping) {
		struct timespec dl = clock_deadline(CLOCK_MONOTONIC, QUEUE_WAIT_MS);
		while (q->n == QUEUE_CAP && !q->stopping)
			if (pthread_cond_timedwait(&q->room, &q->mu, &dl) == ETIMEDOUT)
				break;
	}
	if (q->n == QUEUE_CAP || q->stopping) {
		q->refused++;
		pthread_mutex_unlock(&q->mu);
		free(h);
		return -1;
	}
	q->ring[(q->head + q->n) % QUEUE_CAP] = h;
	q->n++;
	if (q->n == 1 || q->n == BATCH_WAKE)
		pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

/* 0 when the hit is queued; -1 when it is not (the caller answers 503). */
static int record_hit(struct tracker *t, struct MHD_Connection *c, enum hit_kind kind,
		      const char *method, const struct token *tok)
{
	return hit_enqueue(t, hit_capture(t, c, kind, method, tok));
}

/* Waits up to SWEEP_MS for hits, then up to FLUSH_MS more so they group
 * (less when BATCH_MAX wait or the tracker stops), and takes up to max of
 * them. Returns how many; *done is set when stopping with nothing left. */
static size_t queue_take(struct hit_queue *q, struct hit_rec **out, size_t max, int *done)
{
	pthread_mutex_lock(&q->mu);
	struct timespec dl = clock_deadline(CLOCK_MONOTONIC, SWEEP_MS);
	while (q->n == 0 && !q->stopping)
		if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT)
			break;
	*done = q->n == 0 && q->stopping;
	if (q->n == 0) {
		pthread_mutex_unlock(&q->mu);
		return 0;
	}
	dl = clock_deadline(CLOCK_MONOTONIC, FLUSH_MS);
	while (!q->stopping && q->n < BATCH_WAKE)
		if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT)
			break;
	size_t n = q->n < max ? q->n : max;
	for (size_t i = 0; i < n; i++) {
		out[i] = q->ring[q->head];
		q->head = (q->head + 1) % QUEUE_CAP;
	}
	q->n -= n;
	if (n)
		pthread_cond_broadcast(&q->room);
	unsigned long long refused = q->refused;
	q->refused = 0;
	pthread_mutex_unlock(&q->mu);
	if (refused)
		diag_warn("tracker: the recorder is behind; %llu hit(s) answered 503, not recorded",
			  refused);
	return n;
}

/* ---- the recorder */

static uint32_t tracker_id_slot(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++) {
		h ^= (unsigned char)*id;
		h *= 16777619u;
	}
	return h % BRIEF_SLOTS;
}

/* The notice's salt and acceptance time, from the cache or the store; NULL
 * when the store failed (the caller skips the hit). Unknown notices are
 * cached too, so a flood on an erased notice costs one read. */
static const struct brief_slot *brief_get(struct tracker *t, const char *id)
{
	struct brief_slot *b = &t->briefs[tracker_id_slot(id)];
	int64_t now = clock_mono_ms();
	if (b->until_ms > now && !strcmp(b->id, id))
		return b;
	struct selo_err err;
	err_clear(&err);
	atomic_fetch_add(&t->store_calls, 1);
	int64_t acc = 0;
	int r = store_notice_brief(t->app->store, id, b->salt, &acc, &err);
	if (r < 0) {
		b->until_ms = 0;
		diag_error("tracker: reading notice %s: %s", id, err.msg);
		return NULL;
	}
	snprintf(b->id, sizeof(b->id), "%s", id);
	b->found = r == 1;
	b->accepted_ms = r == 1 ? acc : 0;
	b->until_ms = now + BRIEF_TTL_MS;
	return b;
}

static struct hit hit_view(const struct hit_rec *h, int64_t accepted_ms)
{
	struct hit v = {.kind = h->kind, .method = h->method, .user_agent = h->user_agent,
			.purpose = h->purpose, .ip = h->ip, .link = h->link, .time_ms = h->time_ms,
			.accepted_ms = accepted_ms};
	memcpy(v.notice, h->notice, sizeof(v.notice));
	return v;
}

/* The event's own fields, in the documented order, appended to f as entry
 * text (event_field_*: a jansson object per hit cost more than the rest of
 * recording it); personal values (IP, user agent) and the free-text Purpose
 * header enter only as commitments under the notice's salt, disclosed
 * through d. Every value is ASCII or checked UTF-8 by construction; a field
 * that still failed would be left out, as jansson left it out before. */
static void hit_fields(const struct hit_rec *h, const struct verdict *v, const uint8_t salt[32],
		       int64_t accepted_ms, struct disclosures *d, struct buf *f)
{
	/* The entry's "time" is when the store wrote it (the recorder batches
	 * for up to 100 ms); "arrived" is when the request came in. */
	char arrived[32];
	clock_rfc3339(h->time_ms, arrived);
	event_field_str(f, "arrived", arrived);
	event_field_str(f, "method", h->method);
	event_field_str(f, "class", v->class_name);
	event_field_str(f, "reason", v->reason);
	event_field_str(f, "detail", v->detail);
	if (h->kind == HIT_CLICK)
		event_field_int(f, "link", h->link);
	if (h->ip[0])
		event_field_str(f, "ip", disclose(d, salt, h->ip, strlen(h->ip)));
	if (h->user_agent)
		event_field_str(f, "user_agent",
				disclose(d, salt, h->user_agent, strlen(h->user_agent)));
	if (h->purpose)
		event_field_str(f, "purpose", disclose(d, salt, h->purpose, strlen(h->purpose)));
	if (accepted_ms > 0)
		event_field_int(f, "seconds_after_delivery", (h->time_ms - accepted_ms) / 1000);
}

static const char *tracker_event_type(enum hit_kind k)
{
	return k == HIT_OPEN ? EV_OPENED : k == HIT_CLICK ? EV_CLICKED : EV_READ_CONFIRMED;
}

static int class_index(const char *cls)
{
	return !strcmp(cls, CLASS_HUMAN) ? HIT_CLASS_HUMAN
	       : !strcmp(cls, CLASS_PROXY) ? HIT_CLASS_PROXY : HIT_CLASS_SCANNER;
}

static int tracker_stopping(struct tracker *t)
{
	pthread_mutex_lock(&t->q.mu);
	int s = t->q.stopping;
	pthread_mutex_unlock(&t->q.mu);
	return s;
}

/* Sleeps ms, or less once the tracker stops (a stop retries at once). */
static void pause_unless_stopping(struct tracker *t, int64_t ms)
{
	pthread_mutex_lock(&t->q.mu);
	struct timespec dl = clock_deadline(CLOCK_MONOTONIC, ms);
	while (!t->q.stopping)
		if (pthread_cond_timedwait(&t->q.stop_cv, &t->q.mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&t->q.mu);
}

/* The store's rule for bounding a notice's hits (docs/tracking.md "Floods"). */
static struct fold_rule fold_rule_of(const struct selo_config *cfg)
{
	int64_t w = (int64_t)cfg->track_summary_window_s * 1000;
	return (struct fold_rule){cfg->track_full_hits, w,
				  w > FOLD_WINDOW_MAX_MS ? w : FOLD_WINDOW_MAX_MS};
}

/* One store call for the batch: 0 written, 1 refused (a hit's notice was
 * erased meanwhile: 404; or a hit the store will not take: 4xx), -1 the
 * store failed (5xx: a full disk, an I/O error), which a retry may cure. */
static int hits_store(struct tracker *t, const struct hit_new *h, size_t n, struct selo_err *err)
{
	struct fold_rule rule = fold_rule_of(&t->app->cfg);
	size_t folded = 0;
	err_clear(err);
	atomic_fetch_add(&t->store_calls, 1);
	if (store_hits_add(t->app->store, h, n, &rule, &folded, err) == 0) {
		atomic_fetch_add(&t->app->metrics.track_hits_folded, (long long)folded);
		return 0;
	}
	return err->status >= 400 && err->status < 500 ? 1 : -1;
}

/* Writes the batch in one commit. A refused batch (a notice erased between
 * our read and the write: 404) is written a hit at a time, so the others
 * still count; a single refused hit is dropped (logged unless its notice
 * is gone). A failing store (a full disk) is tried again, with a growing
 * pause, until it takes the batch: every hit answered 200 or 302 is
 * recorded, and meanwhile the queue fills and the handlers slow down to
 * its pace. Only a stop gives up, after RETRY_AT_STOP more attempts, and
 * says how many hits were lost. */
static void hits_write(struct tracker *t, const struct hit_new *h, size_t n)
{
	struct selo_err err;
	int64_t pause = RETRY_FIRST_MS;
	int left = RETRY_AT_STOP, r;
	if (n == 0)
		return;
	while ((r = hits_store(t, h, n, &err)) < 0) {
		diag_error_limited(&t->write_failed, "tracker: %zu hit(s) not recorded yet, trying "
				   "again: %s", n, err.msg);
		if (tracker_stopping(t) && --left <= 0) {
			diag_error("tracker: stopping: %zu hit(s) were answered but not recorded: %s",
				   n, err.msg);
			return;
		}
		pause_unless_stopping(t, pause);
		pause = pause * 2 < RETRY_MAX_MS ? pause * 2 : RETRY_MAX_MS;
	}
	diag_ended(&t->write_failed, "tracker: hits are recorded again");
	if (r == 0)
		return;
	if (n == 1) {
		if (err.status != 404)
			diag_error("tracker: a hit was not recorded: %s", err.msg);
		return;
	}
	for (size_t i = 0; i < n; i++)
		hits_write(t, &h[i], 1);
}

/* The recorder's working space, allocated once: a fresh calloc of BATCH_MAX
 * long arrays per batch went through mmap and page faults. */
struct batch_space {
	struct hit_rec **hits;
	size_t n;                 /* hits taken */
	struct hit_new *hn;
	size_t m;                 /* hits to write */
	size_t *text_at;          /* where each event's fields start in text */
	struct disclosures *disc;
	struct buf text;          /* the batch's fields, one event after another */
	struct buf one;           /* the fields of the hit being built */
};

/* Classifies every hit in arrival order and encodes the events of those
 * whose notice still exists. Page views are classified only (they feed the
 * burst rule) and never recorded: see serve_read_page. */
static void batch_prepare(struct tracker *t, struct batch_space *bs)
{
	size_t m = 0;
	buf_reset(&bs->text);
	for (size_t i = 0; i < bs->n; i++) {
		struct hit_rec *h = bs->hits[i];
		struct verdict v;
		if (h->kind == HIT_READ_VIEW) {
			struct hit hv = hit_view(h, 0);
			classify_hit(t->cls, &hv, &v);
			continue;
		}
		const struct brief_slot *b = brief_get(t, h->notice);
		if (!b || !b->found)
			continue;
		struct hit hv = hit_view(h, b->accepted_ms);
		classify_hit(t->cls, &hv, &v);
		memset(&bs->disc[m], 0, sizeof(bs->disc[m]));
		buf_reset(&bs->one);
		hit_fields(h, &v, b->salt, b->accepted_ms, &bs->disc[m], &bs->one);
		bs->text_at[m] = bs->text.len;
		buf_append(&bs->text, bs->one.data, bs->one.len);
		struct hit_new *hn = &bs->hn[m];
		hn->ev = (struct event_new){h->notice, tracker_event_type(h->kind), NULL, &bs->disc[m], NULL,
					    bs->one.len};
		hn->kind = h->kind == HIT_OPEN ? HIT_KIND_OPENED : HIT_KIND_CLICKED;
		hn->cls = class_index(v.class_name);
		/* Keyed by the notice's salt: the store counts distinct
		 * addresses without keeping any. */
		hmac_sha256(b->salt, sizeof(b->salt), h->ip, strlen(h->ip), hn->addr);
		hn->arrived_ms = h->time_ms;
		m++;
	}
	/* Only now: appending may have moved the text. */
	for (size_t i = 0; i < m; i++)
		bs->hn[i].ev.fields_text = bs->text.data + bs->text_at[i];
	bs->m = m;
}

/* Writes a prepared batch (one group commit) and frees its hits. */
static void batch_write(struct tracker *t, struct batch_space *bs)
{
	hits_write(t, bs->hn, bs->m);
	for (size_t i = 0; i < bs->m; i++)
		disclosures_free(&bs->disc[i]);
	for (size_t i = 0; i < bs->n; i++)
		free(bs->hits[i]);
	bs->n = bs->m = 0;
}

static void batch_space_init(struct batch_space *bs)
{
	*bs = (struct batch_space){xmalloc(BATCH_MAX * sizeof(*bs->hits)), 0,
				   xmalloc(BATCH_MAX * sizeof(*bs->hn)), 0,
				   xmalloc(BATCH_MAX * sizeof(*bs->text_at)),
				   xmalloc(BATCH_MAX * sizeof(*bs->disc)), BUF_INIT, BUF_INIT};
}

static void batch_space_free(struct batch_space *bs)
{
	free(bs->hits);
	free(bs->hn);
	free(bs->text_at);
	free(bs->disc);
	buf_free(&bs->text);
	buf_free(&bs->one);
}

/* ---- summaries of folded hits */

static json_t *class_counts(const int64_t c[HIT_CLASSES])
{
	return json_pack("{sIsIsI}", CLASS_HUMAN, (json_int_t)c[HIT_CLASS_HUMAN], CLASS_PROXY,
			 (json_int_t)c[HIT_CLASS_PROXY], CLASS_SCANNER,
			 (json_int_t)c[HIT_CLASS_SCANNER]);
}

/* A tracking_summary's fields (docs/tracking.md "Floods"): the period the
 * folded hits arrived in, their counts by kind and class, how many
 * distinct addresses sent them, and the rule that folded them. No address
 * or agent: a count is all a flood is worth in the log. */
static json_t *summary_fields(const struct hit_fold *f, void *arg)
{
	const struct tracker *t = arg;
	char from[32], to[32];
	clock_rfc3339(f->first_ms, from);
	clock_rfc3339(f->last_ms, to);
	json_t *o = json_object();
	json_object_set_new(o, "from", json_string(from));
	json_object_set_new(o, "to", json_string(to));
	json_object_set_new(o, EV_OPENED, class_counts(f->hits[HIT_KIND_OPENED]));
	json_object_set_new(o, EV_CLICKED, class_counts(f->hits[HIT_KIND_CLICKED]));
	json_object_set_new(o, "addresses", json_integer(f->addresses));
	json_object_set_new(o, "summary", json_integer(f->summaries + 1));
	json_object_set_new(o, "first_logged", json_integer(t->app->cfg.track_full_hits));
	return o;
}

/* Closes the folds that are due, SWEEP_MAX per transaction. A failure is
 * left for the next sweep: the folds stay in the store until written. */
static void folds_sweep(struct tracker *t)
{
	size_t closed;
	do {
		struct selo_err err;
		err_clear(&err);
		if (store_folds_close(t->app->store, clock_now_ms(), SWEEP_MAX, summary_fields, t,
				      &closed, &err) != 0) {
			diag_error_limited(&t->sweep_failed, "tracker: hit summaries due not written "
					   "yet, trying again: %s", err.msg);
			return;
		}
		diag_ended(&t->sweep_failed, "tracker: hit summaries are written again");
	} while (closed == SWEEP_MAX);
}

/* Recording is two stages on two threads: the recorder classifies and
 * encodes batch k+1 while the writer thread waits for batch k's commit
 * (store_events_add returns after the fsync). A batch then takes the longer
 * of the two stages instead of their sum, so the queue drains faster and
 * fills less often. One batch at most waits between them: hand-off blocks
 * while the writer is busy, which keeps the recorder's pace the store's. */
struct batch_handoff {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch_space *full;  /* prepared, not yet taken by the writer */
	int writing;               /* the writer holds a batch */
	int stopping;
};

struct batch_writer {
	struct tracker *t;
	struct batch_handoff h;
};

static void *batch_writer_main(void *arg)
{
	struct batch_writer *w = arg;
	struct batch_handoff *h = &w->h;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->full && !h->stopping)
			pthread_cond_wait(&h->cv, &h->mu);
		if (!h->full)
			break;
		struct batch_space *bs = h->full;
		h->full = NULL;
		h->writing = 1;
		pthread_mutex_unlock(&h->mu);
		batch_write(w->t, bs);
		pthread_mutex_lock(&h->mu);
		h->writing = 0;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Waits until the writer has finished the batch before (so the space the
 * recorder fills next is free again), then hands bs over. */
static void batch_hand_over(struct batch_handoff *h, struct batch_space *bs)
{
	pthread_mutex_lock(&h->mu);
	while (h->full || h->writing)
		pthread_cond_wait(&h->cv, &h->mu);
	h->full = bs;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* Lets the writer finish what it holds, then stops it. */
static void batch_writer_stop(struct batch_writer *w, pthread_t th)
{
	pthread_mutex_lock(&w->h.mu);
	while (w->h.full || w->h.writing)
		pthread_cond_wait(&w->h.cv, &w->h.mu);
	w->h.stopping = 1;
	pthread_cond_broadcast(&w->h.cv);
	pthread_mutex_unlock(&w->h.mu);
	pthread_join(th, NULL);
}

static void *recorder_main(void *arg)
{
	struct tracker *t = arg;
	struct batch_space bs[2];
	batch_space_init(&bs[0]);
	batch_space_init(&bs[1]);
	struct batch_writer w = {t, {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0}};
	pthread_t th;
	/* Without a second thread, each batch is written here, in turn. */
	int staged = pthread_create(&th, NULL, batch_writer_main, &w) == 0;
	if (!staged)
		diag_warn("tracker: cannot start the recorder's writer thread; recording in one");
	int64_t sweep_at = clock_mono_ms() + SWEEP_MS;
	for (int cur = 0, done = 0; !done;) {
		bs[cur].n = queue_take(&t->q, bs[cur].hits, BATCH_MAX, &done);
		if (bs[cur].n > 0) {
			batch_prepare(t, &bs[cur]);
			if (staged)
				batch_hand_over(&w.h, &bs[cur]);
			else
				batch_write(t, &bs[cur]);
			cur ^= 1;
		}
		if (!done && clock_mono_ms() >= sweep_at) {
			folds_sweep(t);
			sweep_at = clock_mono_ms() + SWEEP_MS;
		}
	}
	if (staged)
		batch_writer_stop(&w, th);
	pthread_mutex_destroy(&w.h.mu);
	pthread_cond_destroy(&w.h.cv);
	batch_space_free(&bs[0]);
	batch_space_free(&bs[1]);
	return NULL;
}

/* ---- tracking paths */

/* The token in url after prefix (3 bytes) and before suffix, when the
 * path has exactly that shape and the MAC and kind check out. No I/O. */
static int path_token(const struct tracker *t, const char *url, const char *suffix,
		      enum token_kind kind, struct token *tok, char text[TOKEN_TEXT_LEN + 1])
{
	size_t sl = strlen(suffix);
	if (strlen(url) != 3 + TOKEN_TEXT_LEN + sl || strcmp(url + 3 + TOKEN_TEXT_LEN, suffix) != 0)
		return -1;
	if (token_parse(t->token_key, url + 3, TOKEN_TEXT_LEN, tok) != 0 || tok->kind != kind)
		return -1;
	memcpy(text, url + 3, TOKEN_TEXT_LEN);
	text[TOKEN_TEXT_LEN] = '\0';
	return 0;
}

static enum MHD_Result send_shared(struct MHD_Connection *c, unsigned status,
				   struct MHD_Response *r)
{
	accesslog_note_shared(c, r);
	return MHD_queue_response(c, status, r);
}

static int is_get(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "HEAD");
}

static enum MHD_Result serve_open(struct tracker *t, struct MHD_Connection *c,
				  const char *method, const struct token *tok)
{
	if (!rate_allow(t, c))
		return send_shared(c, MHD_HTTP_TOO_MANY_REQUESTS, t->too_many);
	/* The pixel answers the same for every genuine token, erased or not;
	 * the recorder drops hits of notices that no longer exist. */
	if (record_hit(t, c, HIT_OPEN, method, tok) != 0)
		return send_shared(c, MHD_HTTP_SERVICE_UNAVAILABLE, t->busy);
	return send_shared(c, MHD_HTTP_OK, t->gif);
}

/* A read of the store failed: a database that does not answer (503, within
 * store.timeout) is worth a retry and says so (Retry-After), anything else
 * is our fault (500). Pixels never get here: they read nothing. */
static enum MHD_Result store_down_reply(struct tracker *t, struct MHD_Connection *c,
					const struct selo_err *err)
{
	if (err->status == 503)
		return send_shared(c, MHD_HTTP_SERVICE_UNAVAILABLE, t->busy);
	return send_shared(c, MHD_HTTP_INTERNAL_SERVER_ERROR, t->internal);
}

/* An absolute http(s) URL with nothing a header could be split on. */
static int redirect_ok(const char *u)
{
	if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
		return 0;
	size_t n = strnlen(u, URL_MAX + 1);
	if (n > URL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
			return 0;
	return 1;
}

static enum MHD_Result serve_click(struct tracker *t, struct MHD_Connection *c,
				   const char *method, const struct token *tok, const char *text)
{
	if (!rate_allow(t, c))
		return send_shared(c, MHD_HTTP_TOO_MANY_REQUESTS, t->too_many);
	struct token_info ti;
	struct selo_err err;
	err_clear(&err);
	atomic_fetch_add(&t->store_calls, 1);
	int r = store_token_lookup(t->app->store, text, &ti, &err);
	if (r < 0) {
		diag_error_limited(&t->read_failed, "tracker: reading a click token: %s", err.msg);
		return store_down_reply(t, c, &err);
	}
	/* Erased (or never sealed): the link still answers, without error. */
	if (r == 0 || !ti.url || strcmp(ti.kind, "click") != 0 || !redirect_ok(ti.url)) {
		if (r == 1 && ti.url && !redirect_ok(ti.url))
			diag_warn("tracker: notice %s has a click target that is not a plain http(s) "
				  "URL; not redirecting", ti.notice_id);
		free(ti.url);
		return send_shared(c, MHD_HTTP_OK, t->gone_page);
	}
	if (record_hit(t, c, HIT_CLICK, method, tok) != 0) {
		free(ti.url);
		return send_shared(c, MHD_HTTP_SERVICE_UNAVAILABLE, t->busy);
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_NO;
	if (resp) {
		MHD_add_response_header(resp, "Location", ti.url);
		MHD_add_response_header(resp, "Cache-Control", "no-store");
		MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
		accesslog_note(c, 0);
		ret = MHD_queue_response(c, MHD_HTTP_FOUND, resp);
		MHD_destroy_response(resp);
	}
	free(ti.url);
	return ret;
}

/* The time of this notice's read_confirmed event of class cls: 1 and
 * *when, 0 none, -1 error. Only the confirmations are read (an index of
 * their own), so a notice flooded with opens costs a view no more. */
static int confirmation_find(struct tracker *t, const char *notice, const char *cls,
			     int64_t *when, struct selo_err *err)
{
	struct event_rec *ev = NULL;
	size_t n = 0;
	atomic_fetch_add(&t->store_calls, 1);
	if (store_confirmations_of(t->app->store, notice, &ev, &n, err) != 0)
		return -1;
	int found = 0;
	for (size_t i = 0; i < n && !found; i++) {
		json_t *e = json_loadb(ev[i].entry, ev[i].len, 0, NULL);
		const char *c = json_string_value(json_object_get(e, "class"));
		if (c && !strcmp(c, cls)) {
			*when = ev[i].time_ms;
			found = 1;
		}
		json_decref(e);
	}
	event_recs_free(ev, n);
	return found;
}

/* 1 when the token is stored for a sealed message (its notice's data
 * still exists), 0 when not, -1 error. */
static int read_token_known(struct tracker *t, const char *text, struct selo_err *err)
{
	struct token_info ti;
	atomic_fetch_add(&t->store_calls, 1);
	int r = store_token_lookup(t->app->store, text, &ti, err);
	free(ti.url);
	return r == 1 && strcmp(ti.kind, "read") != 0 ? 0 : r;
}

/* GET /r/: the form, or the confirmed state once a person pressed it.
 * Viewing the page records no event: scanners fetch every link, so a view
 * proves nothing a click would not, and the log keeps the facts that
 * matter (the POST). The view still feeds the classifier's burst memory
 * through the queue, so a scanner that walks every link is caught. */
static enum MHD_Result serve_read_page(struct tracker *t, struct MHD_Connection *c,
				       const char *method, const struct token *tok,
				       const char *text)
{
	if (!rate_allow(t, c))
		return send_shared(c, MHD_HTTP_TOO_MANY_REQUESTS, t->too_many);
	struct selo_err err;
	err_clear(&err);
	int r = read_token_known(t, text, &err);
	if (r == 0)
		return send_shared(c, MHD_HTTP_OK, t->gone_page);
	int64_t when = 0;
	char notice[SELO_ID_TEXT + 1];
	id_to_text(tok->notice, notice);
	if (r == 1)
		r = confirmation_find(t, notice, CLASS_HUMAN, &when, &err);
	if (r < 0) {
		diag_error_limited(&t->read_failed, "tracker: reading a confirmation page's notice: %s",
				   err.msg);
		return store_down_reply(t, c, &err);
	}
	record_hit(t, c, HIT_READ_VIEW, method, tok);
	return r == 1 ? send_confirmed(c, when) : send_shared(c, MHD_HTTP_OK, t->form_page);
}

/* Records one read_confirmed for (notice, verdict class) unless there is
 * one already; *when is the time of the one that stands. Called with
 * post_mu held, so two presses at once make one event. 0, or -1. */
static int confirmation_record(struct tracker *t, struct MHD_Connection *c,
			       const struct token *tok, const char *notice,
			       const uint8_t salt[32], int64_t accepted_ms, int64_t *when,
			       struct selo_err *err)
{
	struct hit_rec *h = hit_capture(t, c, HIT_READ_CONFIRM, "POST", tok);
	struct hit hv = hit_view(h, accepted_ms);
	struct verdict v;
	classify_hit(t->cls, &hv, &v);
	/* One event per class: a machine that POSTs (it would be labelled
	 * scanner) cannot use up the person's confirmation. */
	int r = confirmation_find(t, notice, v.class_name, when, err);
	if (r != 0) {
		free(h);
		return r < 0 ? -1 : 0;
	}
	struct disclosures d = DISCLOSURES_INIT;
	struct buf f = BUF_INIT;
	hit_fields(h, &v, salt, accepted_ms, &d, &f);
	struct event_new ev = {notice, EV_READ_CONFIRMED, NULL, &d, f.data, f.len};
	atomic_fetch_add(&t->store_calls, 1);
	r = store_events_add(t->app->store, &ev, 1, err);
	buf_free(&f);
	disclosures_free(&d);
	free(h);
	if (r != 0)
		return -1;
	/* Show the time the store gave the event, not ours. */
	r = confirmation_find(t, notice, v.class_name, when, err);
	return r == 1 ? 0 : r < 0 ? -1 : err_set(err, 500, "internal", "a confirmation vanished");
}

static enum MHD_Result serve_confirm(struct tracker *t, struct MHD_Connection *c,
				     const struct post_req *pr)
{
	char notice[SELO_ID_TEXT + 1];
	id_to_text(pr->tok.notice, notice);
	struct selo_err err;
	err_clear(&err);
	uint8_t salt[32];
	int64_t accepted = 0, when = 0;
	pthread_mutex_lock(&t->post_mu);
	int r = read_token_known(t, pr->token_text, &err);
	if (r == 1) {
		atomic_fetch_add(&t->store_calls, 1);
		r = store_notice_brief(t->app->store, notice, salt, &accepted, &err);
	}
	if (r == 1)
		r = confirmation_record(t, c, &pr->tok, notice, salt, accepted, &when, &err) == 0
			    ? 1
			    : -1;
	pthread_mutex_unlock(&t->post_mu);
	explicit_bzero(salt, sizeof(salt));
	if (r == 0)
		return send_shared(c, MHD_HTTP_OK, t->gone_page);
	if (r < 0) {
		diag_error("tracker: recording a confirmation: %s", err.msg);
		return send_shared(c, MHD_HTTP_INTERNAL_SERVER_ERROR, t->internal);
	}
	return send_confirmed(c, when);
}

/* POST /r/ first call: check the token and the rate before reading any
 * body, then keep counting it in *con_cls until the final call. */
static enum MHD_Result confirm_begin(struct tracker *t, struct MHD_Connection *c,
				     const struct token *tok, const char *text, void **con_cls)
{
	if (!rate_allow(t, c))
		return send_shared(c, MHD_HTTP_TOO_MANY_REQUESTS, t->too_many);
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > POST_BODY_MAX)
		return send_shared(c, MHD_HTTP_CONTENT_TOO_LARGE, t->too_large);
	struct post_req *pr = xcalloc(1, sizeof(*pr));
	pr->tok = *tok;
	memcpy(pr->token_text, text, sizeof(pr->token_text));
	*con_cls = pr;
	return MHD_YES;
}

static enum MHD_Result confirm_continue(struct tracker *t, struct MHD_Connection *c,
					struct post_req *pr, size_t *upload_size)
{
	if (*upload_size) {
		pr->got += *upload_size; /* the body is discarded: the press is the fact */
		*upload_size = 0;
		return MHD_YES;
	}
	if (pr->got > POST_BODY_MAX)
		return send_shared(c, MHD_HTTP_CONTENT_TOO_LARGE, t->too_large);
	return serve_confirm(t, c, pr);
}

/* ---- the public log */

static enum MHD_Result serve_checkpoint(struct tracker *t, struct MHD_Connection *c)
{
	struct buf note = BUF_INIT;
	struct selo_err err;
	err_clear(&err);
	atomic_fetch_add(&t->store_calls, 1);
	int r = ledger_latest_checkpoint(t->app->ledger, &note, &err);
	enum MHD_Result ret;
	if (r < 0) {
		diag_error("tracker: reading the checkpoint: %s", err.msg);
		ret = send_shared(c, MHD_HTTP_INTERNAL_SERVER_ERROR, t->internal);
	} else if (r == 0) {
		ret = send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
	} else {
		/* Monitors poll it; it changes every second or so. */
		static const char *const h[] = {"Cache-Control", "no-cache", NULL};
		ret = send_copy(c, MHD_HTTP_OK, "text/plain; charset=utf-8", note.data, note.len, h);
	}
	buf_free(&note);
	return ret;
}

static const char *const IMMUTABLE[] = {"Cache-Control", "public, max-age=31536000, immutable",
					NULL};

/* A hash tile of `width` hashes exists once the tree is big enough for it;
 * its first width hashes never change after, so a partial tile is as
 * immutable as a full one. */
static enum MHD_Result serve_hash_tile(struct tracker *t, struct MHD_Connection *c, int level,
				       uint64_t index, unsigned width)
{
	struct buf data = BUF_INIT;
	struct selo_err err;
	err_clear(&err);
	atomic_fetch_add(&t->store_calls, 1);
	int r = store_log_tile(t->app->store, level, index, &data, &err);
	enum MHD_Result ret;
	if (r < 0) {
		diag_error("tracker: reading a log tile: %s", err.msg);
		ret = send_shared(c, MHD_HTTP_INTERNAL_SERVER_ERROR, t->internal);
	} else if (r == 0 || data.len < (size_t)width * TLOG_HASH_LEN) {
		ret = send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
	} else {
		ret = send_copy(c, MHD_HTTP_OK, "application/octet-stream", data.data,
				(size_t)width * TLOG_HASH_LEN, IMMUTABLE);
	}
	buf_free(&data);
	return ret;
}

/* Entries index*256 .. +width, each as a uint16 length and its bytes. */
static int bundle_make(const struct event_rec *ev, size_t n, uint64_t first, struct buf *out)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (ev[i].log_index < 0 || (uint64_t)ev[i].log_index != first + i)
			return -1;
		total += 2 + ev[i].len;
	}
	buf_reserve(out, total);
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		if (tlog_bundle_append((uint8_t *)out->data, total, &len, ev[i].entry, ev[i].len) != 0)
			return -1;
	out->len = len;
	return 0;
}

static enum MHD_Result serve_bundle(struct tracker *t, struct MHD_Connection *c, uint64_t index,
				    unsigned width)
{
	struct event_rec *ev = NULL;
	size_t n = 0;
	struct selo_err err;
	err_clear(&err);
	uint64_t first = index * TLOG_TILE_WIDTH;
	atomic_fetch_add(&t->store_calls, 1);
	if (store_log_entries(t->app->store, first, width, &ev, &n, &err) != 0) {
		diag_error("tracker: reading log entries: %s", err.msg);
		return send_shared(c, MHD_HTTP_INTERNAL_SERVER_ERROR, t->internal);
	}
	struct buf b = BUF_INIT;
	enum MHD_Result ret;
	if (n != width || bundle_make(ev, n, first, &b) != 0)
		ret = send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
	else
		ret = send_copy(c, MHD_HTTP_OK, "application/octet-stream", b.data, b.len, IMMUTABLE);
	buf_free(&b);
	event_recs_free(ev, n);
	return ret;
}

/* /log/tile/...: only what the committed tree already holds. */
static enum MHD_Result serve_tile(struct tracker *t, struct MHD_Connection *c, const char *path)
{
	int level;
	uint64_t index;
	unsigned width;
	if (tlog_tile_path_parse(path, &level, &index, &width) != 0)
		return send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
	struct log_state st;
	struct selo_err err;
	err_clear(&err);
	atomic_fetch_add(&t->store_calls, 1);
	if (store_log_state(t->app->store, &st, &err) != 0) {
		diag_error("tracker: reading the log state: %s", err.msg);
		return send_shared(c, MHD_HTTP_INTERNAL_SERVER_ERROR, t->internal);
	}
	unsigned have = tlog_tile_width(level < 0 ? 0 : level, index, st.size);
	int exists = width == TLOG_TILE_WIDTH ? have == TLOG_TILE_WIDTH : have >= width;
	if (!exists)
		return send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
	if (level < 0)
		return serve_bundle(t, c, index, width);
	return serve_hash_tile(t, c, level, index, width);
}

static enum MHD_Result serve_log(struct tracker *t, struct MHD_Connection *c, const char *url,
				 const char *method)
{
	if (!is_get(method))
		return send_shared(c, MHD_HTTP_METHOD_NOT_ALLOWED, t->allow_get);
	if (!t->app->ledger)
		return send_shared(c, MHD_HTTP_SERVICE_UNAVAILABLE, t->no_ledger);
	if (!strcmp(url, "/log/checkpoint"))
		return serve_checkpoint(t, c);
	if (!strncmp(url, "/log/tile/", 10))
		return serve_tile(t, c, url + 5);
	return send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
}

/* ---- routing */

static enum MHD_Result route(struct tracker *t, struct MHD_Connection *c, const char *url,
			     const char *method, void **con_cls)
{
	struct token tok;
	char text[TOKEN_TEXT_LEN + 1];
	int get = is_get(method);
	if (!strncmp(url, "/o/", 3)) {
		if (!get)
			return send_shared(c, MHD_HTTP_METHOD_NOT_ALLOWED, t->allow_get);
		if (path_token(t, url, ".gif", TOKEN_OPEN, &tok, text) != 0)
			return send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
		return serve_open(t, c, method, &tok);
	}
	if (!strncmp(url, "/c/", 3)) {
		if (!get)
			return send_shared(c, MHD_HTTP_METHOD_NOT_ALLOWED, t->allow_get);
		if (path_token(t, url, "", TOKEN_CLICK, &tok, text) != 0)
			return send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
		return serve_click(t, c, method, &tok, text);
	}
	if (!strncmp(url, "/r/", 3)) {
		int post = !strcmp(method, "POST");
		if (!get && !post)
			return send_shared(c, MHD_HTTP_METHOD_NOT_ALLOWED, t->allow_post);
		if (path_token(t, url, "", TOKEN_READ, &tok, text) != 0)
			return send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
		if (post)
			return confirm_begin(t, c, &tok, text, con_cls);
		return serve_read_page(t, c, method, &tok, text);
	}
	if (!strncmp(url, "/log/", 5))
		return serve_log(t, c, url, method);
	if (webpage_handles(url)) /* the static verification page (webpage.h) */
		return webpage_serve(c, url, method);
	return send_shared(c, MHD_HTTP_NOT_FOUND, t->not_found);
}

/* Marks a GET or HEAD whose headers are in. A body sent with one (no
 * client of ours does) is refused with 413 rather than read. */
static const char GET_TAG;

static enum MHD_Result tracker_answer(struct tracker *t, struct MHD_Connection *c,
				      const char *url, const char *method, size_t *upload_size,
				      void **con_cls)
{
	if (*con_cls == &GET_TAG) { /* answered now: the request is over */
		connguard_received(t->guard, c);
		if (*upload_size) {
			*upload_size = 0;
			return send_shared(c, MHD_HTTP_CONTENT_TOO_LARGE, t->too_large);
		}
		return route(t, c, url, method, con_cls);
	}
	if (*con_cls) {
		if (!*upload_size) /* the form's body is in */
			connguard_received(t->guard, c);
		return confirm_continue(t, c, *con_cls, upload_size);
	}
	if (is_get(method)) {
		*con_cls = (void *)&GET_TAG;
		return MHD_YES;
	}
	enum MHD_Result r = route(t, c, url, method, con_cls);
	if (!*con_cls) /* answered on its head: no body to wait for */
		connguard_received(t->guard, c);
	return r;
}

static enum MHD_Result tracker_access(void *cls, struct MHD_Connection *c, const char *url,
				      const char *method, const char *version, const char *upload,
				      size_t *upload_size, void **con_cls)
{
	(void)version, (void)upload;
	struct tracker *t = cls;
	if (!t->app->cfg.track_access_log)
		return tracker_answer(t, c, url, method, upload_size, con_cls);
	int64_t t0 = accesslog_begin(); /* track.access_log (accesslog.h) */
	enum MHD_Result r = tracker_answer(t, c, url, method, upload_size, con_cls);
	if (accesslog_answered(c)) {
		char ip[INET6_ADDRSTRLEN];
		client_ip_text(t, c, ip); /* the address the tracker records for a hit */
		accesslog_end(ACCESSLOG_TRACKER, c, method, url, ip, t0);
	}
	return r;
}

static void tracker_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	struct tracker *t = cls;
	if (*con_cls != &GET_TAG)
		free(*con_cls);
	*con_cls = NULL;
	connguard_answered(t->guard, c); /* a keep-alive's next request: a new clock */
}

/* ---- lifetime */

static void tracker_free(struct tracker *t)
{
	if (t->d)
		MHD_stop_daemon(t->d);
	connguard_free(t->guard);
	if (t->recorder_running) {
		pthread_mutex_lock(&t->q.mu);
		t->q.stopping = 1;
		pthread_cond_signal(&t->q.cv);
		pthread_cond_broadcast(&t->q.stop_cv);
		pthread_mutex_unlock(&t->q.mu);
		pthread_join(t->recorder, NULL);
	}
	for (size_t i = 0; i < t->q.n; i++)
		free(t->q.ring[(t->q.head + i) % QUEUE_CAP]);
	responses_free(t);
	classifier_free(t->cls);
	pthread_mutex_destroy(&t->q.mu);
	pthread_cond_destroy(&t->q.cv);
	pthread_cond_destroy(&t->q.room);
	pthread_cond_destroy(&t->q.stop_cv);
	pthread_mutex_destroy(&t->rate.mu);
	pthread_mutex_destroy(&t->post_mu);
	pthread_mutex_destroy(&t->log_mu);
	if (t->briefs)
		explicit_bzero(t->briefs, BRIEF_SLOTS * sizeof(*t->briefs));
	explicit_bzero(t->token_key, sizeof(t->token_key));
	free(t->briefs);
	free(t->rate.slots);
	free(t->q.ring);
	free(t);
}

static struct tracker *tracker_alloc(struct selo *app)
{
	struct tracker *t = xcalloc(1, sizeof(*t));
	t->app = app;
	t->q.ring = xcalloc(QUEUE_CAP, sizeof(*t->q.ring));
	t->rate.slots = xcalloc((size_t)RATE_SETS * RATE_WAYS, sizeof(*t->rate.slots));
	t->briefs = xcalloc(BRIEF_SLOTS, sizeof(*t->briefs));
	pthread_mutex_init(&t->q.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->q.cv, &ca);
	pthread_cond_init(&t->q.room, &ca);
	pthread_cond_init(&t->q.stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&t->rate.mu, NULL);
	pthread_mutex_init(&t->post_mu, NULL);
	pthread_mutex_init(&t->log_mu, NULL);
	random_bytes((uint8_t *)&t->rate.seed, sizeof(t->rate.seed));
	t->rate.per_ms = (double)app->cfg.track_rate_per_ip / 1000.0;
	t->rate.burst = (double)app->cfg.track_rate_burst;
	atomic_init(&t->store_calls, 0);
	return t;
}

/* libmicrohttpd's own messages (refused connections under a flood, ...)
 * go through diag, at most one a second, so a flood cannot fill the
 * operator's log; they name no client. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct tracker *t = cls;
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&t->log_mu);
	if (t->log_last_ms && now - t->log_last_ms < 1000) {
		t->log_suppressed++;
		pthread_mutex_unlock(&t->log_mu);
		return;
	}
	unsigned long long suppressed = t->log_suppressed;
	t->log_suppressed = 0;
	t->log_last_ms = now;
	pthread_mutex_unlock(&t->log_mu);
	char msg[256];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	if (suppressed)
		diag_warn("tracker (libmicrohttpd): %s (%llu more like it since the last line)",
			  msg, suppressed);
	else
		diag_warn("tracker (libmicrohttpd): %s", msg);
}

/* Descriptors `selo serve` keeps for everything but the tracker's
 * connections: the API's 1024 connections, the store, the ledger, SMTP
 * sessions, webhooks, logs. */
#define FD_RESERVE 1280u

unsigned long tracker_fds_wanted(const struct selo_config *cfg)
{
	return (unsigned long)cfg->track_max_connections + FD_RESERVE;
}

/* track.max_connections, lowered to what the open-file limit can hold: past
 * it accept(2) fails (EMFILE), libmicrohttpd stops accepting until some
 * connection closes, and the store and the senders cannot open files. */
static unsigned listener_limit(const struct selo_config *cfg)
{
	unsigned want = (unsigned)cfg->track_max_connections;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= tracker_fds_wanted(cfg))
		return want;
	rlim_t fit = rl.rlim_cur > FD_RESERVE + 64 ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 4;
	if (fit < 16)
		fit = 16;
	diag_warn("the open-file limit (%llu) cannot hold track.max_connections = %u and the "
		  "rest of selo serve; the tracker takes at most %llu connections. Raise the "
		  "limit to %lu or more (systemd LimitNOFILE=, or ulimit -n)",
		  (unsigned long long)rl.rlim_cur, want, (unsigned long long)fit,
		  tracker_fds_wanted(cfg));
	return (unsigned)fit;
}

/* The listener's connections pass through a guard (connguard.h): each
 * request gets track.head_timeout to arrive, and above a soft limit under
 * `limit` a new connection evicts one still waiting for its request, so a
 * crowd of trickling clients cannot hold every slot. */
static int guard_start(struct tracker *t, unsigned limit, struct selo_err *err)
{
	const struct selo_config *cfg = &t->app->cfg;
	struct connguard_config gc = {
		.head_timeout_ms = cfg->track_head_timeout_s * 1000,
		.max_connections = limit,
		.threads = cfg->track_threads > 1 ? (unsigned)cfg->track_threads : 1u,
		.name = "tracker",
	};
	return connguard_new(&gc, &t->guard, err);
}

static struct MHD_Daemon *daemon_start(struct tracker *t, const struct sockaddr_storage *ss,
				       unsigned limit)
{
	const struct selo_config *cfg = &t->app->cfg;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The connection limit is split across the pool's threads by MHD. */
	return MHD_start_daemon(flags, 0, NULL, NULL, tracker_access, t,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, t, /* first, or MHD complains */
				MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
				/* one thread is MHD's own, not a pool: MHD warns for a
				 * pool size of 0 or 1, so then the slot repeats the
				 * idle timeout below instead (the same unsigned value) */
				cfg->track_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE
						       : MHD_OPTION_CONNECTION_TIMEOUT,
				cfg->track_threads > 1 ? (unsigned)cfg->track_threads : 10u,
				MHD_OPTION_CONNECTION_LIMIT, limit,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				(unsigned)cfg->track_per_ip_connections,
				/* idle time; the request's own deadline is the guard's */
				MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				/* also bounds the request line and headers */
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
				MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
				MHD_OPTION_NOTIFY_COMPLETED, tracker_completed, t,
				MHD_OPTION_NOTIFY_CONNECTION, connguard_notify, t->guard,
				MHD_OPTION_END);
}

int tracker_start(struct selo *app, struct tracker **out, struct selo_err *err)
{
	struct sockaddr_storage ss;
	unsigned sl;
	if (api_parse_listen(app->cfg.track_listen, &ss, &sl) != 0)
		return err_set(err, 500, "config", "track.listen = %s is not host:port",
			       app->cfg.track_listen);
	struct tracker *t = tracker_alloc(app);
	char keys[1100];
	struct classify_config cc;
	classify_config_defaults(&cc);
	cc.after_delivery_s = app->cfg.track_after_delivery_s;
	cc.burst_window_ms = app->cfg.track_burst_window_ms;
	cc.burst_links = app->cfg.track_burst_links;
	if (keys_load_token_key(config_path(&app->cfg, "keys", keys, sizeof(keys)), t->token_key,
				err) != 0)
		goto fail;
	t->cls = classifier_new(&cc);
	if (responses_make(t) != 0) {
		err_set(err, 500, "internal", "tracker: libmicrohttpd could not make its answers");
		goto fail;
	}
	if (pthread_create(&t->recorder, NULL, recorder_main, t) != 0) {
		err_set(err, 500, "internal", "tracker: cannot start the recorder thread");
		goto fail;
	}
	t->recorder_running = 1;
	unsigned limit = listener_limit(&app->cfg);
	if (guard_start(t, limit, err) != 0)
		goto fail;
	t->d = daemon_start(t, &ss, limit);
	if (!t->d) {
		err_set(err, 500, "listen", "cannot listen on %s (track.listen): address in use or "
			"not allowed", app->cfg.track_listen);
		goto fail;
	}
	*out = t;
	return 0;
fail:
	tracker_free(t);
	return -1;
}

void tracker_stop(struct tracker *t)
{
	if (t)
		tracker_free(t);
}

long long tracker_store_calls(struct tracker *t)
{
	return atomic_load(&t->store_calls);
}
