/* test_receipt_pdf.c: the PDF receipt's pages (receipt_pdf.h) from real
 * receipts. One data directory made as `selo init` makes one (keys_init,
 * config_write_initial, selo_open) in a mkdtemp directory; notices go
 * through the same steps as a submission and a send (notice_parse,
 * notice_prepare, store_notices_accept, template_render, compose_message
 * with the ledger's TSA, store_notices_sealed), then their outcomes and
 * tracker hits are stored as the sender and the tracker store them, the
 * ledger integrates and timestamps, and ledger_receipt makes the
 * selo-receipt/v1 the PDF is laid out from. Pages are written to
 * tests/out/receipt_pdf/ and read back only with tools we did not write:
 * pdftotext -layout (every event's label in log order, the recipient, the
 * checkpoint's root, the labels of each language, the ETSI names; no
 * subject and no body text in the short form), qpdf --check, pdfinfo (A4,
 * the page count, the metadata), pdffonts (every font embedded). Also: a
 * failed delivery after retries, 20 and 60 events, an event type the
 * layout does not know, garbage inputs (422, never a crash), São Paulo's
 * offset through the tz database, and the layout time of 20 events. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/compose.h"
#include "selo/config.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/keys.h"
#include "selo/ledger.h"
#include "selo/notice.h"
#include "selo/receipt_pdf.h"
#include "selo/selo.h"
#include "selo/smime.h"
#include "selo/store.h"
#include "selo/template.h"
#include "selo/tsa.h"
#include "t.h"
#include "t_run.h"

#define OUT_DIR "tests/out/receipt_pdf"
#define VERIFY_URL "https://rastreio.example.com/verify?checkpoint"
#define TO "maria.silva@example.org"
#define TO_NAME "Maria da Silva Conceição"
#define MX "mx1.example.org (10)"

/* ---- the fixture: a data directory, its ledger and composer --------------- */

static struct {
	int ready, failed;
	char dir[64];
	struct selo app;
	struct ledger *ledger;
	struct composer *comp;
} fx;

static int stamp(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		 struct selo_err *err)
{
	int64_t when;
	return tsa_timestamp(arg, digest, der, len, &when, err);
}

static void fx_teardown(void)
{
	receipt_pdf_fonts_release();
	if (!fx.ready)
		return;
	composer_free(fx.comp);
	ledger_close(fx.ledger);
	selo_close(&fx.app);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	if (!strncmp(fx.dir, "/tmp/selo-test-rpdf-", 20) && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", fx.dir);
	fx.ready = 0;
}

static int fx_build(void)
{
	struct selo_err e;
	err_clear(&e);
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/selo-test-rpdf-XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	char keys[128], conf[128];
	snprintf(keys, sizeof(keys), "%s/keys", fx.dir);
	snprintf(conf, sizeof(conf), "%s/selo.conf", fx.dir);
	struct keys_report rep;
	if (keys_init(keys, "example.com", "notificacoes@example.com", "example.com/selo-log", 0,
		      &rep, &e) != 0 ||
	    config_write_initial(conf, "example.com", "selo", "example.com/selo-log", &e) != 0 ||
	    selo_open(&fx.app, fx.dir, &e) != 0) {
		fprintf(stderr, "  fixture: %s\n", e.msg);
		return -1;
	}
	fx.ready = 1;
	if (ledger_open(&fx.app, &fx.ledger, &e) != 0 || composer_new(&fx.app.cfg, &fx.comp, &e) != 0) {
		fprintf(stderr, "  fixture: %s\n", e.msg);
		return -1;
	}
	composer_set_tsa(fx.comp, stamp, ledger_tsa(fx.ledger));
	mkdir("tests/out", 0755);
	if (mkdir(OUT_DIR, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int fixture(void)
{
	if (fx.ready || fx.failed)
		return fx.failed ? -1 : 0;
	/* OpenSSL's exit handler must run after our teardown (atexit is LIFO). */
	OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	atexit(fx_teardown);
	if (fx_build() != 0) {
		fx.failed = 1;
		return -1;
	}
	return 0;
}

#define FIXTURE()                    \
	do {                             \
		if (fixture() != 0) {        \
			CHECK(!"fixture");       \
			return;                  \
		}                            \
	} while (0)

/* ---- notices, the way the API and the sender make them ------------------------ */

struct notice {
	char id[SELO_ID_TEXT + 1];
	uint8_t salt[32];
};

/* Accepted as POST /v1/notices accepts body. */
static int notice_accept(const char *body, struct notice *n)
{
	struct selo_err e;
	err_clear(&e);
	json_t *j = json_loads(body, 0, NULL);
	struct notice_req req;
	if (!j || notice_parse(j, &fx.app.cfg, fx.app.templates, &req, &e) != 0) {
		fprintf(stderr, "  notice_parse: %s %s\n", e.msg, e.nfields ? e.fields[0].msg : "");
		json_decref(j);
		return -1;
	}
	uint8_t sha[32];
	sha256(body, strlen(body), sha);
	struct notice_new nn;
	json_t *fields;
	struct disclosures disc = DISCLOSURES_INIT;
	notice_prepare(&req, 1, NULL, sha, &nn, &fields, &disc);
	nn.event_fields = fields;
	struct accept_result ar;
	memset(&ar, 0, sizeof(ar));
	int r = store_notices_accept(fx.app.store, &nn, 1, &ar, &e);
	memcpy(n->id, nn.id, sizeof(n->id));
	memcpy(n->salt, nn.salt, sizeof(n->salt));
	json_decref(fields);
	disclosures_free(&disc);
	free((char *)nn.payload_json);
	notice_req_free(&req);
	json_decref(j);
	if (r != 0 || ar.failed)
		fprintf(stderr, "  accept: %s %s\n", e.msg, ar.err.msg);
	return r != 0 || ar.failed ? -1 : 0;
}

/* Rendered, composed (S/MIME with a signature timestamp, DKIM) and sealed
 * as sender.c seals. */
static int notice_seal(const struct notice *n, const char *body)
{
	struct selo_err e;
	err_clear(&e);
	json_t *p = json_loads(body, 0, NULL);
	struct rendered rd = {0};
	const char *tname = json_string_value(json_object_get(p, "template"));
	int rc = -1;
	if (tname) {
		if (template_render(template_find(fx.app.templates, tname), json_object_get(p, "vars"),
				    &rd, &e) != 0)
			goto out;
	} else {
		rd.subject = strdup(json_string_value(json_object_get(p, "subject")));
		rd.text = strdup(json_string_value(json_object_get(p, "text")));
		const char *h = json_string_value(json_object_get(p, "html"));
		rd.html = h ? strdup(h) : NULL;
	}
	struct attachment_rec *att = NULL;
	size_t natt = 0;
	if (store_attachments_of(fx.app.store, n->id, &att, &natt, &e) != 0)
		goto out;
	struct compose_in in = {.notice_id = n->id, .to = TO,
				.to_name = json_string_value(json_object_get(p, "to_name")),
				.subject = rd.subject, .text = rd.text, .html = rd.html, .att = att,
				.natt = natt, .track_opens = 1, .track_clicks = 1, .track_read = 1,
				.now_ms = clock_now_ms()};
	struct compose_out co;
	memset(&co, 0, sizeof(co));
	if (compose_message(fx.comp, &in, &co, &e) == 0) {
		struct token_rec tk[16];
		size_t nt = co.ntokens < 16 ? co.ntokens : 16;
		for (size_t k = 0; k < nt; k++)
			tk[k] = (struct token_rec){co.tokens[k].token, co.tokens[k].kind,
						   co.tokens[k].link, co.tokens[k].url};
		struct seal_rec s = {.id = n->id, .eml = co.eml.data, .len = co.eml.len,
				     .message_id = co.message_id, .tokens = tk, .ntokens = nt,
				     .event_fields = co.event_fields};
		memcpy(s.sha256, co.sha256, 65);
		rc = store_notices_sealed(fx.app.store, &s, 1, &e);
		compose_out_free(&co);
	}
	attachment_recs_free(att, natt);
out:
	if (rc != 0)
		fprintf(stderr, "  seal: %s\n", e.msg);
	rendered_free(&rd);
	json_decref(p);
	return rc;
}

/* One SMTP outcome as sender.c's attempt_fields writes it. */
static int notice_outcome(const struct notice *n, const char *type, int attempt, int code,
			  const char *enhanced, const char *reply, const char *reason)
{
	struct disclosures disc = DISCLOSURES_INIT;
	json_t *f = json_pack("{s:i,s:s,s:s}", "attempt", attempt, "transport", "mx", "peer",
			      "203.0.113.25:25");
	json_object_set_new(f, "code", json_integer(code));
	json_object_set_new(f, "enhanced", json_string(enhanced));
	json_object_set_new(f, "reply", json_string(disclose(&disc, n->salt, reply, strlen(reply))));
	json_object_set_new(f, "mx", json_string(MX));
	if (code / 100 == 2)
		json_object_set_new(f, "queue_id", json_string("4XyZ1k2Lmn"));
	json_object_set_new(f, "tls", json_string("TLSv1.3"));
	json_object_set_new(f, "tls_peer", json_string("CN=mx1.example.org"));
	const char *transcript = "220 mx1.example.org ESMTP\r\nEHLO example.com\r\n...";
	json_object_set_new(f, "transcript",
			    json_string(disclose(&disc, n->salt, transcript, strlen(transcript))));
	if (reason)
		json_object_set_new(f, "reason", json_string(reason));
	if (!strcmp(type, EV_DELIVERY_DEFERRED))
		json_object_set_new(f, "retry_at", json_string("2030-01-01T12:00:00.000Z"));
	const char *state = !strcmp(type, EV_DELIVERY_ACCEPTED) ? "delivered"
		: !strcmp(type, EV_DELIVERY_DEFERRED) ? "deferred" : "failed";
	struct result_rec rr = {.id = n->id, .event_type = type, .event_fields = f, .state = state,
				.disc = &disc};
	struct selo_err e;
	err_clear(&e);
	int rc = store_delivery_results(fx.app.store, &rr, 1, &e);
	if (rc != 0)
		fprintf(stderr, "  outcome: %s\n", e.msg);
	json_decref(f);
	disclosures_free(&disc);
	return rc;
}

/* A tracker hit as tracker.c's hit_fields writes it. */
static int notice_hit(const struct notice *n, const char *type, const char *cls,
		      const char *rule, const char *detail, const char *agent, int link)
{
	struct disclosures disc = DISCLOSURES_INIT;
	char arrived[32];
	clock_rfc3339(clock_now_ms(), arrived);
	const char *method = !strcmp(type, EV_READ_CONFIRMED) ? "POST" : "GET";
	json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s}", "arrived", arrived, "method", method, "class",
			      cls, "reason", rule, "detail", detail);
	if (link)
		json_object_set_new(f, "link", json_integer(link));
	json_object_set_new(f, "ip", json_string(disclose(&disc, n->salt, "198.51.100.7", 12)));
	json_object_set_new(f, "user_agent",
			    json_string(disclose(&disc, n->salt, agent, strlen(agent))));
	json_object_set_new(f, "seconds_after_delivery", json_integer(42));
	struct event_new ev = {.notice_id = n->id, .type = type, .fields = f, .disc = &disc};
	struct selo_err e;
	err_clear(&e);
	int rc = store_events_add(fx.app.store, &ev, 1, &e);
	if (rc != 0)
		fprintf(stderr, "  hit: %s\n", e.msg);
	json_decref(f);
	disclosures_free(&disc);
	return rc;
}

/* The notice's receipt as `selo receipt -o` writes it (malloc'd). */
static char *receipt_of(const struct notice *n, int short_form)
{
	struct selo_err e;
	err_clear(&e);
	json_t *r = NULL;
	if (ledger_sync(fx.ledger, 1, &e) < 0 || ledger_receipt(fx.ledger, n->id, short_form, &r, &e) != 0) {
		fprintf(stderr, "  receipt: %s\n", e.msg);
		return NULL;
	}
	char *s = json_dumps(r, JSON_PRESERVE_ORDER | JSON_INDENT(2));
	json_decref(r);
	return s;
}

static const char TEMPLATE_BODY[] =
	"{\"to\":\"" TO "\",\"to_name\":\"" TO_NAME "\",\"template\":\"lembrete\","
	"\"reference\":\"CONTRATO-2026-0042\",\"vars\":{\"nome\":\"Maria\",\"credor\":"
	"\"Cobranças Exemplo Ltda\",\"valor\":\"1234.56\",\"vencimento\":\"2026-12-01\","
	"\"link_pagamento\":\"https://pagar.example.com/boleto?id=42\"},\"attachments\":[{"
	"\"filename\":\"boleto-dezembro.pdf\",\"content_type\":\"application/pdf\","
	"\"content_base64\":\"JVBERi0xLjQKJcOkw7zDtsOfCg==\"}]}";

static const char RAW_BODY[] =
	"{\"to\":\"" TO "\",\"subject\":\"Notificação extrajudicial — contrato 77\","
	"\"text\":\"Prezada senhora,\\nconsta em aberto o contrato 77.\","
	"\"html\":\"<p>Prezada senhora,</p><p>consta em aberto o <b>contrato 77</b> &amp; "
	"encargos.</p>\"}";

/* A delivered notice: accepted, sealed, deferred once, delivered, then the
 * hits a real mailbox gets (a proxy's fetch, a browser's, a scanner's
 * link check, a person's click and the confirmation), plus extra opens
 * and an event type of the future until it has `events` events. */
static int make_delivered(struct notice *n, int events)
{
	if (notice_accept(TEMPLATE_BODY, n) || notice_seal(n, TEMPLATE_BODY) ||
	    notice_outcome(n, EV_DELIVERY_DEFERRED, 1, 451, "4.7.1",
			   "4.7.1 Greylisted, please try again later", NULL) ||
	    notice_outcome(n, EV_DELIVERY_ACCEPTED, 2, 250, "2.0.0", "2.0.0 Ok: queued as 4XyZ1k2Lmn",
			   NULL) ||
	    notice_hit(n, EV_OPENED, "proxy", "gmail-proxy",
		       "user agent contains \"GoogleImageProxy\": fetched through Gmail's image proxy",
		       "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
		       0) ||
	    notice_hit(n, EV_OPENED, "human", "no-rule", "no machine rule matched",
		       "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", 0) ||
	    notice_hit(n, EV_CLICKED, "scanner", "known-scanner-agent",
		       "user agent contains \"python-requests\": an automated client",
		       "python-requests/2.31", 1) ||
	    notice_hit(n, EV_CLICKED, "human", "no-rule", "no machine rule matched",
		       "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", 1) ||
	    notice_hit(n, EV_READ_CONFIRMED, "human", "button",
		       "the confirmation button was pressed (POST); scanners do not POST",
		       "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", 0))
		return -1;
	for (int i = 9; i < events; i++) {
		if (i == 12) {
			json_t *f = json_pack("{s:s,s:i}", "reason", "retention", "kept", 3);
			struct event_new ev = {.notice_id = n->id, .type = "erased_in_future", .fields = f};
			struct selo_err e;
			int rc = store_events_add(fx.app.store, &ev, 1, &e);
			json_decref(f);
			if (rc != 0)
				return -1;
			continue;
		}
		if (notice_hit(n, EV_OPENED, "human", "no-rule", "no machine rule matched",
			       "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15", 0))
			return -1;
	}
	return 0;
}

/* A notice that never got through: three deferrals, then expired. */
static int make_failed(struct notice *n)
{
	if (notice_accept(RAW_BODY, n) || notice_seal(n, RAW_BODY))
		return -1;
	for (int i = 1; i <= 3; i++)
		if (notice_outcome(n, EV_DELIVERY_DEFERRED, i, 421, "4.4.2",
				   "4.4.2 mx1.example.org Error: timeout exceeded", NULL))
			return -1;
	return notice_outcome(n, EV_DELIVERY_FAILED, 4, 421, "4.4.2",
			      "4.4.2 mx1.example.org Error: timeout exceeded", "expired");
}

/* ---- the PDF and what tools read from it ------------------------------------ */

struct pdf {
	struct buf bytes, text, info, fonts;
	char path[256];
	int pages;
};

static void pdf_free(struct pdf *p)
{
	buf_free(&p->bytes);
	buf_free(&p->text);
	buf_free(&p->info);
	buf_free(&p->fonts);
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n)
		fprintf(stderr, "  cannot write %s\n", path);
	if (f)
		fclose(f);
}

/* Lays out json, writes OUT_DIR/name.pdf and reads it back with poppler. */
static int pdf_make(const char *json, const char *lang, const char *name, struct pdf *p)
{
	memset(p, 0, sizeof(*p));
	struct receipt_pdf_opts o = {lang, VERIFY_URL, clock_now_ms()};
	struct selo_err e;
	err_clear(&e);
	if (receipt_pdf_layout(json, strlen(json), &o, &p->bytes, &e) != 0) {
		fprintf(stderr, "  layout %s: %d %s\n", name, e.status, e.msg);
		return -1;
	}
	snprintf(p->path, sizeof(p->path), OUT_DIR "/%s.pdf", name);
	write_file(p->path, p->bytes.data, p->bytes.len);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "pdftotext -layout %s -", p->path);
	if (run(cmd, &p->text) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "pdfinfo %s", p->path);
	if (run(cmd, &p->info) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "pdffonts %s", p->path);
	if (run(cmd, &p->fonts) != 0)
		return -1;
	const char *pg = strstr(buf_str(&p->info), "\nPages:");
	p->pages = pg ? atoi(pg + 7) : 0;
	return 0;
}

static int has(const struct pdf *p, const char *s)
{
	return strstr(buf_str(&p->text), s) != NULL;
}

/* Each of want[] found in the text after the one before it. */
static int in_order(const struct pdf *p, const char *const *want, size_t n)
{
	const char *at = buf_str(&p->text);
	for (size_t i = 0; i < n; i++) {
		const char *f = strstr(at, want[i]);
		if (!f) {
			fprintf(stderr, "  %s: \"%s\" missing (or out of order)\n", p->path, want[i]);
			return 0;
		}
		at = f + strlen(want[i]);
	}
	return 1;
}

/* qpdf finds no error; A4 pages; every font embedded; the metadata. */
static void check_pdf_file(const struct pdf *p, const char *title)
{
	char cmd[512];
	struct buf out = BUF_INIT;
	snprintf(cmd, sizeof(cmd), "qpdf --check %s", p->path);
	int rc = run(cmd, &out);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "%s", buf_str(&out));
	buf_free(&out);
	CHECK(strstr(buf_str(&p->info), "595.276 x 841.89 pts (A4)") != NULL);
	CHECK(p->pages >= 1);
	CHECK(strstr(buf_str(&p->info), "Author:          Selo\n") != NULL);
	char t[160];
	snprintf(t, sizeof(t), "Title:           %s\n", title);
	CHECK(strstr(buf_str(&p->info), t) != NULL);
	CHECK(strstr(buf_str(&p->info), "CreationDate:") != NULL);
	/* pdffonts: two header lines, then one line per font whose fifth
	 * column from the end ("emb") must be "yes". */
	char *copy = strdup(buf_str(&p->fonts)), *save = NULL;
	int line = 0, fonts = 0;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (line++ < 2)
			continue;
		char *tok[32];
		int nt = 0;
		for (char *s2 = NULL, *w = strtok_r(l, " ", &s2); w && nt < 32; w = strtok_r(NULL, " ", &s2))
			tok[nt++] = w;
		fonts++;
		CHECK(nt >= 6 && !strcmp(tok[nt - 5], "yes"));
	}
	CHECK(fonts >= 2);
	CHECK(strstr(buf_str(&p->fonts), "DejaVuSans") != NULL);
	free(copy);
}

/* The checkpoint's root hash (third line of the note), base64. */
static void root_of(const char *json, char *out, size_t n)
{
	json_t *r = json_loads(json, 0, NULL);
	const char *note = json_string_value(json_object_get(json_object_get(r, "log"), "checkpoint"));
	out[0] = '\0';
	const char *l2 = note ? strchr(note, '\n') : NULL;
	const char *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
	const char *end = l3 ? strchr(l3 + 1, '\n') : NULL;
	if (end)
		snprintf(out, n, "%.*s", (int)(end - l3 - 1), l3 + 1);
	json_decref(r);
}

/* ---- the tests ------------------------------------------------------------ */

static const char *const LABELS_PT[] = {
	"Pedido de envio aceito", "Mensagem lacrada e assinada", "Tentativa adiada",
	"Entregue ao servidor de e-mail do destinatário", "Imagem buscada por um proxy de e-mail",
	"Imagem de rastreamento carregada", "Link verificado por um programa automático",
	"Link da mensagem acessado", "Recebimento confirmado (botão)"};
static const char *const LABELS_EN[] = {
	"Submission accepted", "Message sealed and signed", "Attempt deferred",
	"Handed to the recipient's mail server", "Image fetched by a mail proxy",
	"Tracking image fetched", "Link checked by an automated client",
	"Link in the message followed", "Receipt confirmed (button)"};
#define NLABELS (sizeof(LABELS_PT) / sizeof(LABELS_PT[0]))

static const char *const WORDS_PT[] = {
	"Recibo de notificação eletrônica", "A notificação", "Destinatário", "Linha do tempo",
	"Evidências e verificação", "Como verificar", "Texto da notificação",
	"O que este recibo prova", "Prova:", "Não prova:", "página 1 de"};
static const char *const WORDS_EN[] = {
	"Electronic notice receipt", "The notice", "Recipient", "Timeline",
	"Evidence and verification", "How to verify", "The notice's text",
	"What this receipt proves", "Proves:", "Does not prove:", "page 1 of"};

static struct notice g_delivered;
static char *g_full, *g_short;

static int delivered_receipts(void)
{
	if (g_full)
		return 0;
	if (make_delivered(&g_delivered, 9) != 0)
		return -1;
	g_full = receipt_of(&g_delivered, 0);
	g_short = receipt_of(&g_delivered, 1);
	return g_full && g_short ? 0 : -1;
}

__attribute__((destructor)) static void receipts_free(void)
{
	free(g_full);
	free(g_short);
}

TEST(full_receipt_pt)
{
	FIXTURE();
	CHECK(delivered_receipts() == 0);
	if (!g_full)
		return;
	struct pdf p;
	CHECK(pdf_make(g_full, NULL, "delivered-full-pt", &p) == 0);
	check_pdf_file(&p, "Recibo de notificação eletrônica");
	CHECK(in_order(&p, LABELS_PT, NLABELS));
	for (size_t i = 0; i < sizeof(WORDS_PT) / sizeof(WORDS_PT[0]); i++)
		CHECK(in_order(&p, &WORDS_PT[i], 1));
	char root[64];
	root_of(g_full, root, sizeof(root));
	CHECK(root[0] && has(&p, root));
	CHECK(has(&p, TO));
	CHECK(has(&p, TO_NAME));
	CHECK(has(&p, g_delivered.id));
	CHECK(has(&p, "CONTRATO-2026-0042"));
	CHECK(has(&p, "Selo <notificacoes@example.com>"));  /* From, unquoted */
	CHECK(has(&p, "SubmissionAcceptance"));
	CHECK(has(&p, "RelayToNonERDS"));
	CHECK(has(&p, "Lembrete de pagamento"));         /* the subject */
	CHECK(has(&p, "boleto-dezembro.pdf"));            /* the attachment's name */
	CHECK(has(&p, "Se você já fez o pagamento"));     /* the body */
	CHECK(has(&p, "[link rastreado]"));               /* never the tracker's URL */
	CHECK(!has(&p, "/c/"));
	CHECK(has(&p, "4.7.1 Greylisted"));               /* the deferral's reply */
	CHECK(has(&p, "2.0.0 Ok: queued as 4XyZ1k2Lmn")); /* the MX's reply */
	CHECK(has(&p, "mx1.example.org (10)"));
	CHECK(has(&p, "TLSv1.3"));
	CHECK(has(&p, "gmail-proxy"));
	CHECK(has(&p, "proxy de e-mail — regra gmail-proxy"));
	CHECK(has(&p, "São Paulo (UTC-03:00)"));
	CHECK(has(&p, "selo verify recibo.pdf --key example.com/selo-log+"));
	CHECK(has(&p, VERIFY_URL));
	CHECK(has(&p, "Carimbo do tempo da assinatura"));
	CHECK(!has(&p, "Handed to"));                     /* one language only */
	pdf_free(&p);
}

TEST(full_receipt_en)
{
	FIXTURE();
	CHECK(delivered_receipts() == 0);
	if (!g_full)
		return;
	struct pdf p;
	CHECK(pdf_make(g_full, "en", "delivered-full-en", &p) == 0);
	check_pdf_file(&p, "Electronic notice receipt");
	CHECK(in_order(&p, LABELS_EN, NLABELS));
	for (size_t i = 0; i < sizeof(WORDS_EN) / sizeof(WORDS_EN[0]); i++)
		CHECK(in_order(&p, &WORDS_EN[i], 1));
	CHECK(has(&p, TO));
	CHECK(has(&p, "RelayToNonERDS"));
	CHECK(has(&p, "[tracked link]"));
	CHECK(!has(&p, "Entregue"));
	CHECK(!has(&p, "Linha do tempo"));
	pdf_free(&p);
}

/* The short form: the same events and addresses, no subject, no
 * variables, no attachment names, no text. */
TEST(short_receipt_both_languages)
{
	FIXTURE();
	CHECK(delivered_receipts() == 0);
	if (!g_short)
		return;
	static const char *const langs[] = {"pt-BR", "en"};
	for (int l = 0; l < 2; l++) {
		struct pdf p;
		char name[64];
		snprintf(name, sizeof(name), "delivered-short-%s", l ? "en" : "pt");
		CHECK(pdf_make(g_short, langs[l], name, &p) == 0);
		check_pdf_file(&p, l ? "Electronic notice receipt" : "Recibo de notificação eletrônica");
		CHECK(in_order(&p, l ? LABELS_EN : LABELS_PT, NLABELS));
		CHECK(has(&p, TO));
		CHECK(has(&p, TO_NAME));
		CHECK(has(&p, l ? "short (without" : "resumida (sem"));
		CHECK(!has(&p, "Lembrete de pagamento"));
		CHECK(!has(&p, "Se você já fez o pagamento"));
		CHECK(!has(&p, "Olá, Maria"));
		CHECK(!has(&p, "boleto-dezembro.pdf"));
		CHECK(!has(&p, "1234.56"));
		CHECK(!has(&p, l ? "The notice's text" : "Texto da notificação"));
		CHECK(has(&p, l ? "What this receipt proves" : "O que este recibo prova"));
		pdf_free(&p);
	}
}

/* Diligence: every attempt with its reply, then the final failure. */
TEST(failed_delivery)
{
	FIXTURE();
	struct notice n;
	CHECK(make_failed(&n) == 0);
	char *json = receipt_of(&n, 0);
	CHECK(json != NULL);
	if (!json)
		return;
	struct pdf p;
	CHECK(pdf_make(json, NULL, "failed-full-pt", &p) == 0);
	check_pdf_file(&p, "Recibo de notificação eletrônica");
	static const char *const want[] = {"Pedido de envio aceito", "Mensagem lacrada",
					   "Tentativa adiada", "Tentativa adiada", "Tentativa adiada",
					   "Entrega falhou", "RelayToNonERDSFailure",
					   "prazo de tentativas esgotado"};
	CHECK(in_order(&p, want, sizeof(want) / sizeof(want[0])));
	CHECK(has(&p, "4.4.2 mx1.example.org Error: timeout exceeded"));
	CHECK(has(&p, "Notificação extrajudicial — contrato 77")); /* an RFC 2047 subject */
	CHECK(has(&p, "contrato 77 & encargos"));                  /* entities decoded */
	CHECK(!has(&p, "Entregue ao servidor de e-mail do destinatário,"));
	pdf_free(&p);
	CHECK(pdf_make(json, "en", "failed-full-en", &p) == 0);
	static const char *const want_en[] = {"Attempt deferred", "Attempt deferred",
					      "Attempt deferred", "Delivery failed", "retry period over"};
	CHECK(in_order(&p, want_en, sizeof(want_en) / sizeof(want_en[0])));
	pdf_free(&p);
	free(json);
}

/* A flood's tracking_summary (docs/tracking.md "Floods") is a row of its
 * own, with its counts, in both languages. */
TEST(tracking_summary_row)
{
	FIXTURE();
	struct notice n;
	CHECK(make_failed(&n) == 0);
	json_t *f = json_pack("{s:s,s:s,s:{s:i,s:i,s:i},s:{s:i,s:i,s:i},s:i,s:i,s:i}", "from",
			      "2026-12-07T18:00:00.512Z", "to", "2026-12-07T18:07:41.930Z", "opened",
			      "human", 19990, "proxy", 3, "scanner", 0, "clicked", "human", 0,
			      "proxy", 0, "scanner", 7, "addresses", 19991, "summary", 1,
			      "first_logged", 10);
	struct event_new ev = {.notice_id = n.id, .type = EV_TRACKING_SUMMARY, .fields = f};
	struct selo_err e;
	err_clear(&e);
	CHECK(store_events_add(fx.app.store, &ev, 1, &e) == 0);
	json_decref(f);
	char *json = receipt_of(&n, 0);
	CHECK(json != NULL);
	if (!json)
		return;
	struct pdf p;
	CHECK(pdf_make(json, NULL, "summary-pt", &p) == 0);
	static const char *const want[] = {"Entrega falhou", "Resumo de acessos posteriores",
					   "Primeiro acesso resumido", "Último acesso resumido",
					   "19990", "Endereços IP distintos: 19991"};
	CHECK(in_order(&p, want, sizeof(want) / sizeof(want[0])));
	CHECK(!has(&p, "Evento de outro tipo"));
	pdf_free(&p);
	CHECK(pdf_make(json, "en", "summary-en", &p) == 0);
	static const char *const want_en[] = {"Summary of later hits", "Image fetched",
					      "Links followed", "Distinct IP addresses: 19991"};
	CHECK(in_order(&p, want_en, sizeof(want_en) / sizeof(want_en[0])));
	pdf_free(&p);
	free(json);
}

static void signed_receipt(const char *json, const char *id, int full, const char *name);

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* 20 events lay out cleanly (with one of a type the layout does not know),
 * and how long it takes: a figure, not an assertion. */
TEST(twenty_events_and_layout_time)
{
	FIXTURE();
	struct notice n;
	CHECK(make_delivered(&n, 20) == 0);
	char *json = receipt_of(&n, 0);
	CHECK(json != NULL);
	if (!json)
		return;
	write_file(OUT_DIR "/events-20.json", json, strlen(json)); /* for benchmarks */
	struct pdf p;
	CHECK(pdf_make(json, NULL, "events-20-pt", &p) == 0);
	check_pdf_file(&p, "Recibo de notificação eletrônica");
	CHECK(in_order(&p, LABELS_PT, NLABELS));
	CHECK(has(&p, "Evento de outro tipo"));
	CHECK(has(&p, "erased_in_future"));
	char last[32];
	snprintf(last, sizeof(last), "página %d de %d", p.pages, p.pages);
	CHECK(has(&p, last));
	pdf_free(&p);
	double best = 1e9, total = 0;
	const int runs = 7;
	for (int i = 0; i < runs; i++) {
		struct buf out = BUF_INIT;
		struct receipt_pdf_opts o = {NULL, VERIFY_URL, clock_now_ms()};
		struct selo_err e;
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		CHECK(receipt_pdf_layout(json, strlen(json), &o, &out, &e) == 0);
		double ms = ms_since(&t0);
		best = ms < best ? ms : best;
		total += ms;
		buf_free(&out);
	}
	printf("  layout of a 20-event receipt: best %.1f ms, mean %.1f ms over %d runs\n", best,
	       total / runs, runs);
	signed_receipt(json, n.id, 1, "events-20-signed");
	free(json);
}

/* 60 events flow onto further pages, each numbered, the table's header on
 * each. */
TEST(sixty_events)
{
	FIXTURE();
	struct notice n;
	CHECK(make_delivered(&n, 60) == 0);
	char *json = receipt_of(&n, 1);
	CHECK(json != NULL);
	if (!json)
		return;
	struct pdf p;
	CHECK(pdf_make(json, "en", "events-60-short-en", &p) == 0);
	check_pdf_file(&p, "Electronic notice receipt");
	CHECK(p.pages >= 4);
	char last[32];
	snprintf(last, sizeof(last), "page %d of %d", p.pages, p.pages);
	CHECK(has(&p, last));
	int rows = 0, headers = 0;
	for (const char *s = buf_str(&p.text); (s = strstr(s, "log entry #")); s++)
		rows++;
	for (const char *s = buf_str(&p.text); (s = strstr(s, "Time (UTC / São Paulo)")); s++)
		headers++;
	CHECK(rows == 60);
	CHECK(headers >= 2);
	pdf_free(&p);
	free(json);
}

/* Anything that is not a selo-receipt/v1 is a 422, never a crash; an
 * unknown language a 400. */
TEST(garbage_is_422)
{
	static const char *const bad[] = {
		"", "{", "null", "[]", "42", "\"selo-receipt/v1\"", "{}",
		"{\"format\":\"selo-receipt/v2\"}",
		"{\"format\":\"selo-receipt/v1\",\"notice\":\"nope\"}",
		"{\"format\":\"selo-receipt/v1\",\"notice\":\"01M84VJ05ERGCZ5BMM6E4FVST3\","
		"\"issued_at\":\"x\",\"log\":{},\"events\":[],\"message\":{},\"disclosure\":{}}",
		"{\"format\":\"selo-receipt/v1\",\"notice\":\"01M84VJ05ERGCZ5BMM6E4FVST3\","
		"\"issued_at\":\"x\",\"log\":{\"verifier_key\":\"k\",\"checkpoint\":\"c\","
		"\"timestamp\":\"t\",\"tsa_certs\":[\"x\"]},\"events\":[{\"index\":1,\"entry\":5}],"
		"\"message\":{\"sha256\":\"00\"},\"disclosure\":{\"values\":{}}}",
		"{\"format\":\"selo-receipt/v1\",\"format\":\"selo-receipt/v1\"}",
		"\xff\xfe{\"format\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf out = BUF_INIT;
		struct selo_err e;
		err_clear(&e);
		struct receipt_pdf_opts o = {NULL, VERIFY_URL, 0};
		int rc = receipt_pdf_layout(bad[i], strlen(bad[i]), &o, &out, &e);
		CHECK(rc == -1 && e.status == 422 && out.len == 0);
		if (rc != -1 || e.status != 422)
			fprintf(stderr, "  input %zu: rc %d status %d %s\n", i, rc, e.status, e.msg);
		buf_free(&out);
	}
	struct selo_err e;
	err_clear(&e);
	struct buf out = BUF_INIT;
	CHECK(receipt_pdf_layout(NULL, 0, NULL, &out, &e) == -1 && e.status == 422);
	if (fixture() == 0 && delivered_receipts() == 0) {
		struct receipt_pdf_opts o = {"fr", VERIFY_URL, 0};
		err_clear(&e);
		CHECK(receipt_pdf_layout(g_full, strlen(g_full), &o, &out, &e) == -1 &&
		      e.status == 400);
		/* The whole receipt cut anywhere: 422 or a PDF, never a crash. */
		size_t n = strlen(g_full);
		for (size_t cut = 0; cut < n; cut += n / 97 + 1) {
			buf_reset(&out);
			err_clear(&e);
			o.lang = NULL;
			int rc = receipt_pdf_layout(g_full, cut, &o, &out, &e);
			CHECK(rc == -1 && e.status == 422);
		}
	}
	buf_free(&out);
}

/* Hostile values inside a genuine-looking receipt: markup, control and
 * bidi characters, invalid UTF-8 in the message, huge values. */
TEST(hostile_values)
{
	FIXTURE();
	CHECK(delivered_receipts() == 0);
	if (!g_full)
		return;
	json_t *r = json_loads(g_full, 0, NULL);
	json_t *values = json_object_get(json_object_get(r, "disclosure"), "values");
	const char *k;
	json_t *v;
	char *huge = malloc(200001);
	memset(huge, 'A', 200000);
	huge[200000] = '\0';
	int i = 0;
	json_object_foreach(values, k, v) {
		if (i++ % 2)
			json_object_set_new(values, k, json_string(huge));
		else
			json_object_set_new(values, k, json_string("<b>x</b> &amp; \x01\x1b[31m "
								   "\xe2\x80\xae" "gnp.exe <span"));
	}
	free(huge);
	/* An .eml that is not MIME at all. */
	json_object_set_new(json_object_get(r, "message"), "eml_base64",
			    json_string("AAECAwQFBgcICQoLDA0ODxAREhP/////"));
	char *s = json_dumps(r, JSON_PRESERVE_ORDER);
	json_decref(r);
	struct pdf p;
	CHECK(pdf_make(s, NULL, "hostile-pt", &p) == 0);
	check_pdf_file(&p, "Recibo de notificação eletrônica");
	CHECK(has(&p, "<b>x</b> &amp;"));                 /* shown as text, not markup */
	CHECK(!strstr(buf_str(&p.text), "\xe2\x80\xae")); /* no right-to-left override */
	CHECK(has(&p, "\xe2\x80\xa6"));                   /* long values cut */
	pdf_free(&p);
	free(s);
}

/* The whole receipt (receipt_pdf: the pages, then pdf.c's embedded files
 * and signature): the JSON comes out byte for byte, the .eml only in the
 * full form, and it is timed with the signing. */
static void signed_receipt(const char *json, const char *id, int full, const char *name)
{
	char key[160], crt[160], path[256], cmd[1200];
	snprintf(key, sizeof(key), "%s/keys/smime.pem", fx.dir);
	snprintf(crt, sizeof(crt), "%s/keys/smime.crt", fx.dir);
	struct smime_signer *signer = NULL;
	struct selo_err e;
	err_clear(&e);
	CHECK(smime_signer_load(key, crt, NULL, &signer, &e) == 0);
	if (!signer)
		return;
	struct pdf_sign_opts sign = {.signer = signer, .tst = stamp, .tst_arg = ledger_tsa(fx.ledger),
				     .name = "Selo", .reason = "Recibo", .when_ms = clock_now_ms()};
	struct receipt_pdf_opts o = {NULL, VERIFY_URL, clock_now_ms()};
	struct buf out = BUF_INIT, list = BUF_INIT, back = BUF_INIT;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = receipt_pdf(json, strlen(json), &o, &sign, &out, &e);
	double ms = ms_since(&t0);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "  receipt_pdf: %d %s\n", e.status, e.msg);
	else
		printf("  %s: layout and signing %.1f ms, %zu bytes\n", name, ms, out.len);
	snprintf(path, sizeof(path), OUT_DIR "/%s.pdf", name);
	write_file(path, out.data, out.len);
	snprintf(cmd, sizeof(cmd), "qpdf --check %s >/dev/null && pdfdetach -list %s", path, path);
	CHECK(rc != 0 || run(cmd, &list) == 0);
	char want[96];
	snprintf(want, sizeof(want), "receipt-%s.json", id);
	CHECK(rc != 0 || strstr(buf_str(&list), want) != NULL);
	snprintf(want, sizeof(want), "message-%s.eml", id);
	CHECK(rc != 0 || (strstr(buf_str(&list), want) != NULL) == full);
	snprintf(cmd, sizeof(cmd), "pdfdetach -savefile receipt-%s.json -o %s.json %s && cat %s.json",
		 id, path, path, path);
	CHECK(rc != 0 || (run(cmd, &back) == 0 && back.len == strlen(json) &&
			  !memcmp(back.data, json, back.len)));
	buf_free(&out);
	buf_free(&list);
	buf_free(&back);
	smime_signer_free(signer);
}

TEST(receipt_pdf_signed_with_attachments)
{
	FIXTURE();
	CHECK(delivered_receipts() == 0);
	if (!g_full)
		return;
	signed_receipt(g_full, g_delivered.id, 1, "delivered-signed-full");
	signed_receipt(g_short, g_delivered.id, 0, "delivered-signed-short");
}

/* g_full with its message replaced by eml (the layout shows, it does not
 * verify), laid out as OUT_DIR/name.pdf. */
static int with_message(const char *eml, size_t n, const char *name, struct pdf *p)
{
	json_t *r = json_loads(g_full, 0, NULL);
	struct buf b64 = BUF_INIT;
	base64_encode(&b64, (const uint8_t *)eml, n, 0);
	json_object_set_new(json_object_get(r, "message"), "eml_base64", json_string(buf_str(&b64)));
	char *s = json_dumps(r, JSON_PRESERVE_ORDER);
	int rc = pdf_make(s, NULL, name, p);
	free(s);
	buf_free(&b64);
	json_decref(r);
	return rc;
}

/* MIME as others write it: nested multiparts, quoted-printable Latin-1,
 * base64 HTML with every kind of entity, scripts, comments, images,
 * tracker and plain links, an attachment, an empty Subject, an RFC 2047
 * From; then a message nested too deep and one with too many parts. */
TEST(crafted_messages)
{
	FIXTURE();
	CHECK(delivered_receipts() == 0);
	if (!g_full)
		return;
	static const char html[] =
		"<html><head><title>T\xc3\xadtulo</title><style>p{}</style></head><body>"
		"<p>Ol&aacute; &eacute;&#233;&#xe9; &bogus; &#0; &amp;amp; &lt;b&gt;</p>"
		"<script>alert(1)</script><!-- escondido -->"
		"<p><a href=\"https://t.example/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\">pagar</a> "
		"<a href='https://ex.com/'>https://ex.com/</a> <a href=https://ajuda.example.com>ajuda</a>"
		"<img src=\"x\" alt=\"logotipo\"><img src=\"p\" width=\"1\" height=\"1\" alt=\"px\"></p>"
		"<ul><li>um</li><li>dois</li></ul>fim <a href=\"x";
	struct buf eml = BUF_INIT, h64 = BUF_INIT;
	base64_encode(&h64, (const uint8_t *)html, sizeof(html) - 1, 76);
	buf_printf(&eml,
		   "From: =?utf-8?B?Q29icmFuw6dhcw==?= =?utf-8?Q?_Exemplo?= <a@example.com>\r\n"
		   "Subject:\r\n"
		   "Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n\r\n"
		   "preamble\r\n--outer\r\n"
		   "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
		   "--inner\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		   "Content-Transfer-Encoding: quoted-printable\r\n\r\nOl=E1 texto=\r\n simples\r\n"
		   "--inner\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
		   "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--inner--\r\n"
		   "--outer\r\nContent-Type: text/plain; name=a.txt\r\n"
		   "Content-Disposition: attachment; filename=a.txt\r\n\r\nANEXO SECRETO\r\n--outer--\r\n",
		   buf_str(&h64));
	struct pdf p;
	CHECK(with_message(eml.data, eml.len, "crafted-html", &p) == 0);
	static const char *const want[] = {"Cobranças Exemplo", "Olá ééé &bogus; \xef\xbf\xbd &amp; <b>",
					   "pagar [link rastreado]", "https://ex.com/ ajuda <https://ajuda.example.com>",
					   "[imagem: logotipo]", "• um", "• dois", "fim"};
	CHECK(in_order(&p, want, sizeof(want) / sizeof(want[0])));
	CHECK(!has(&p, "alert(1)"));
	CHECK(!has(&p, "escondido"));
	CHECK(!has(&p, "Título"));
	CHECK(!has(&p, "ANEXO SECRETO"));
	CHECK(!has(&p, "[imagem: px]"));
	CHECK(!has(&p, "t.example/c/"));
	pdf_free(&p);

	/* Text only, Latin-1 quoted-printable. */
	static const char plain[] = "Subject: =?iso-8859-1?Q?Aviso_n=BA_7?=\r\n"
				    "Content-Type: text/plain; charset=iso-8859-1\r\n"
				    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
				    "Ol=E1, voc=EA deve=\r\n R$ 10.\r\n";
	CHECK(with_message(plain, sizeof(plain) - 1, "crafted-plain", &p) == 0);
	CHECK(has(&p, "Aviso nº 7"));
	CHECK(has(&p, "Olá, você deve R$ 10."));
	CHECK(has(&p, "Parte de texto simples"));
	pdf_free(&p);

	/* Too deep, too many parts, a boundary never closed: no crash. */
	buf_reset(&eml);
	for (int i = 0; i < 40; i++)
		buf_printf(&eml, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
	buf_puts(&eml, "Content-Type: text/plain\r\n\r\nfundo demais\r\n");
	CHECK(with_message(eml.data, eml.len, "crafted-deep", &p) == 0);
	CHECK(!has(&p, "fundo demais"));
	pdf_free(&p);
	buf_reset(&eml);
	buf_puts(&eml, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
	for (int i = 0; i < 300; i++)
		buf_printf(&eml, "--x\r\nContent-Type: image/png\r\n\r\n%d\r\n", i);
	buf_puts(&eml, "--x\r\nContent-Type: text/plain\r\n\r\nparte 301\r\n");
	CHECK(with_message(eml.data, eml.len, "crafted-many", &p) == 0);
	CHECK(!has(&p, "parte 301"));
	pdf_free(&p);
	buf_free(&eml);
	buf_free(&h64);
}

/* Layouts in several threads at once (each with its own font map, as in
 * the API's threads) give the very bytes one thread gives: the layout is
 * deterministic for a given receipt, language and time. */
struct job {
	const char *json;
	struct buf out;
	int rc;
};

static void *layout_job(void *arg)
{
	struct job *j = arg;
	for (int i = 0; i < 3 && j->rc == 0; i++) {
		struct receipt_pdf_opts o = {"en", VERIFY_URL, 1795000000000};
		struct selo_err e;
		buf_reset(&j->out);
		j->rc = receipt_pdf_layout(j->json, strlen(j->json), &o, &j->out, &e);
	}
	return NULL;
}

TEST(layouts_in_threads)
{
	FIXTURE();
	CHECK(delivered_receipts() == 0);
	if (!g_full)
		return;
	struct job one = {g_full, BUF_INIT, 0}, jobs[4];
	layout_job(&one);
	CHECK(one.rc == 0 && one.out.len > 0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (struct job){g_full, BUF_INIT, 0};
		CHECK(pthread_create(&t[i], NULL, layout_job, &jobs[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(jobs[i].rc == 0 && jobs[i].out.len == one.out.len &&
		      !memcmp(jobs[i].out.data, one.out.data, one.out.len));
		buf_free(&jobs[i].out);
	}
	buf_free(&one.out);
}

/* São Paulo's offset from the tz database, with Brazil's DST until 2019. */
TEST(sao_paulo_offset)
{
	int off = 0;
	int64_t dst = 1543665600000;    /* 2018-12-01T12:00:00Z: DST, UTC-2 */
	int64_t winter = 1559390400000; /* 2019-06-01T12:00:00Z: UTC-3 */
	int64_t now = 1795000000000;    /* 2026-11-18: no DST since 2019 */
	CHECK(receipt_pdf_local_offset(dst, &off) == 0 && off == -7200);
	CHECK(receipt_pdf_local_offset(winter, &off) == 0 && off == -10800);
	CHECK(receipt_pdf_local_offset(now, &off) == 0 && off == -10800);
}
