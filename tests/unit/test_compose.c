/* test_compose.c: a whole notice composed with real keys (keys_init in a
 * temporary data directory), then checked only with tools we did not
 * write: `openssl cms -verify` for the S/MIME signature, Python's email
 * parser for every part, dkimpy for both DKIM signatures. Also the link
 * rewriting rules, header injection through every personal field, the
 * size limit, text-only notices and use from several threads. */
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "selo/codec.h"
#include "selo/compose.h"
#include "selo/crypto.h"
#include "selo/id.h"
#include "selo/keys.h"
#include "selo/token.h"
#include "t.h"

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

#define PY "/usr/bin/python3"
#define BASE "http://127.0.0.1:8481"
#define URL1 "https://pagar.example.com/boleto?id=1&x=2&y=%C3%A9"
#define URL2 "http://example.com/ajuda"

/* ---- Fixture: one data directory with keys for the whole program. */

static char g_dir[64];
static struct selo_config g_cfg;
static uint8_t g_token_key[32];

static int fixture(void)
{
	if (g_dir[0])
		return 0;
	strcpy(g_dir, "/tmp/selo-t-compose-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	char keys[128];
	snprintf(keys, sizeof(keys), "%s/keys", g_dir);
	struct keys_report rep;
	struct selo_err err;
	err_clear(&err);
	if (keys_init(keys, "example.com", "notificacoes@example.com", "example.com/selo-log", 0, &rep,
		      &err) < 0) {
		fprintf(stderr, "  keys_init: %s\n", err.msg);
		return -1;
	}
	if (keys_load_token_key(keys, g_token_key, &err) < 0)
		return -1;
	memset(&g_cfg, 0, sizeof(g_cfg));
	snprintf(g_cfg.data_dir, sizeof(g_cfg.data_dir), "%s", g_dir);
	snprintf(g_cfg.track_base_url, sizeof(g_cfg.track_base_url), "%s", BASE);
	snprintf(g_cfg.mail_domain, sizeof(g_cfg.mail_domain), "example.com");
	snprintf(g_cfg.mail_from_address, sizeof(g_cfg.mail_from_address), "notificacoes@example.com");
	snprintf(g_cfg.mail_from_name, sizeof(g_cfg.mail_from_name), "Cobran\xC3\xA7" "as Exemplo Ltda");
	snprintf(g_cfg.dkim_domain, sizeof(g_cfg.dkim_domain), "example.com");
	snprintf(g_cfg.dkim_selector, sizeof(g_cfg.dkim_selector), "selo");
	g_cfg.max_message_bytes = 25u << 20;
	return 0;
}

__attribute__((destructor)) static void fixture_cleanup(void)
{
	if (!g_dir[0])
		return;
	if (getenv("SELO_TEST_KEEP")) {
		fprintf(stderr, "  kept %s\n", g_dir);
		return;
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "  could not remove %s\n", g_dir);
}

static struct composer *composer_make(size_t max_bytes)
{
	if (fixture() < 0)
		return NULL;
	struct selo_config cfg = g_cfg;
	if (max_bytes)
		cfg.max_message_bytes = max_bytes;
	struct composer *c = NULL;
	struct selo_err err;
	err_clear(&err);
	if (composer_new(&cfg, &c, &err) < 0)
		fprintf(stderr, "  composer_new: %s\n", err.msg);
	return c;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(p, 1, n, f);
	fclose(f);
}

/* Runs a command; its stdout (malloc'd) or NULL when it exits non-zero
 * (then printed, unless quiet: a failure the test expects). */
static char *run_q(const char *cmd, int quiet)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	struct buf out = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_append(&out, chunk, n);
	if (pclose(p) != 0) {
		if (!quiet)
			fprintf(stderr, "  command failed: %s\n%s\n", cmd, buf_str(&out));
		buf_free(&out);
		return NULL;
	}
	return buf_steal(&out, NULL);
}

static char *run(const char *cmd)
{
	return run_q(cmd, 0);
}

/* Every line ends in CRLF and none is longer than 998 octets. */
static int lines_ok(const char *s, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return 0;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return 0;
		if (s[i] == '\n') {
			if (i - 1 - start > 998)
				return 0;
			start = i + 1;
		}
	}
	return 1;
}

/* ---- Python: parse, decode, verify DKIM; answers one JSON object. */

static const char PY_READ[] =
	"import sys, json, hashlib, email, email.policy, dkim\n"
	"from html.parser import HTMLParser\n"
	"path, keys = sys.argv[1], sys.argv[2]\n"
	"raw = open(path, 'rb').read()\n"
	"m = email.message_from_bytes(raw, policy=email.policy.default)\n"
	"out = {'headers': [k for k in m.keys()], 'defects': [str(d) for d in m.defects]}\n"
	"out['subject'] = str(m['Subject'])\n"
	"to = m['To'].addresses[0]; fr = m['From'].addresses[0]\n"
	"out['to'] = to.addr_spec; out['to_name'] = to.display_name\n"
	"out['from'] = fr.addr_spec; out['from_name'] = fr.display_name\n"
	"out['message_id'] = str(m['Message-ID']); out['date'] = str(m['Date'])\n"
	"out['top_type'] = m.get_content_type(); out['protocol'] = m.get_param('protocol')\n"
	"out['types'] = []; out['atts'] = []\n"
	"class A(HTMLParser):\n"
	"    def __init__(s): super().__init__(); s.a = []; s.img = []\n"
	"    def handle_starttag(s, tag, attrs):\n"
	"        d = dict(attrs)\n"
	"        if tag == 'a' and 'href' in d: s.a.append(d['href'])\n"
	"        if tag == 'img': s.img.append(d.get('src'))\n"
	"for p in m.walk():\n"
	"    out['types'].append(p.get_content_type())\n"
	"    for d in p.defects: out['defects'].append(str(d))\n"
	"    if p.is_multipart(): continue\n"
	"    ct = p.get_content_type()\n"
	"    if p.get_content_disposition() == 'attachment':\n"
	"        b = p.get_payload(decode=True)\n"
	"        out['atts'].append({'name': p.get_filename(), 'type': ct, 'sha256': hashlib.sha256(b).hexdigest(), 'size': len(b)})\n"
	"    elif ct == 'text/plain': out['text'] = p.get_content().replace('\\r\\n', '\\n')\n"
	"    elif ct == 'text/html':\n"
	"        out['html'] = p.get_content().replace('\\r\\n', '\\n'); h = A(); h.feed(out['html']); out['hrefs'] = h.a; out['imgs'] = h.img\n"
	"txt = {}\n"
	"for sel, f in (('selo', 'dkim-rsa.txt'), ('selo-ed25519', 'dkim-ed25519.txt')):\n"
	"    txt[sel + '._domainkey.example.com.'] = open(keys + '/' + f, 'rb').read().strip()\n"
	"def dnsfunc(name, timeout=5):\n"
	"    n = name.decode() if isinstance(name, bytes) else name\n"
	"    return txt.get(n.lower(), b'')\n"
	"d = dkim.DKIM(raw)\n"
	"n = sum(1 for k in m.keys() if k.lower() == 'dkim-signature')\n"
	"def ver(i):\n"
	"    try: return bool(d.verify(idx=i, dnsfunc=dnsfunc))\n"
	"    except dkim.ValidationError: return False\n"
	"out['dkim'] = [ver(i) for i in range(n)]\n"
	"print(json.dumps(out))\n";

static json_t *py_read(const char *eml_path)
{
	char script[128], cmd[512];
	snprintf(script, sizeof(script), "%s/read.py", g_dir);
	write_file(script, PY_READ, strlen(PY_READ));
	snprintf(cmd, sizeof(cmd), PY " %s %s %s/keys", script, eml_path, g_dir);
	char *out = run(cmd);
	if (!out)
		return NULL;
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	free(out);
	return j;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int openssl_verifies_q(const char *eml_path, int quiet)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "openssl cms -verify -in %s -CAfile %s/keys/ca.crt -out /dev/null 2>&1", eml_path, g_dir);
	char *out = run_q(cmd, quiet);
	int ok = out && strstr(out, "Verification successful");
	free(out);
	return ok;
}

static int openssl_verifies(const char *eml_path)
{
	return openssl_verifies_q(eml_path, 0);
}

/* ---- The sample notice. */

static const char HTML[] =
	"<!DOCTYPE html><html><head><link rel=\"stylesheet\" href=\"https://fonts.example.com/a.css\">"
	"<style>a[href^=\"http://x\"] { color: red }</style></head>\n"
	"<body><p>Ol&aacute; Maria,</p>\n"
	"<!-- <a href=\"http://commented.example.com/\">no</a> -->\n"
	"<p>Sua fatura de R$ 1.234,56 venceu. <a class=\"btn\" href=\"https://pagar.example.com/boleto?id=1&amp;x=2&#38;y=\xC3\xA9\">Pagar agora</a></p>\n"
	"<p><A HREF='" URL2 "' title=\"Ajuda\">Ajuda</A> | <a href=\"mailto:cobranca@example.com\">e-mail</a>"
	" | <a href=\"tel:+551100000000\">tel</a> | <a href=\"#topo\">topo</a> | <a href=\"/relativo\">rel</a></p>\n"
	"</BODY></html>\n";

static const char TEXT[] =
	"Ol\xC3\xA1 Maria,\n\nSua fatura de R$ 1.234,56 venceu em S\xC3\xA3o Paulo.\n"
	"Pague em " URL1 "\n.\nFrom the desk of the collections team  \n";

#define SUBJECT "Notifica\xC3\xA7\xC3\xA3o de cobran\xC3\xA7" "a \xE2\x80\x94 S\xC3\xA3o Paulo"
#define TO_NAME "Maria da Concei\xC3\xA7\xC3\xA3o"
#define TO "maria.silva@example.net"
#define ATT_NAME "Boleto n\xC2\xBA 123 \xE2\x80\x94 mar\xC3\xA7o.pdf"

static uint8_t g_pdf[5000];

static void sample_input(struct compose_in *in, struct attachment_rec *att, char id[27],
			 uint8_t notice[16])
{
	id_new(notice);
	id_to_text(notice, id);
	memcpy(g_pdf, "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n", 15);
	for (size_t i = 15; i < sizeof(g_pdf); i++)
		g_pdf[i] = (uint8_t)(i * 131 + (i >> 7));
	att->filename = (char *)ATT_NAME;
	att->content_type = (char *)"application/pdf";
	att->data = g_pdf;
	att->len = sizeof(g_pdf);
	memset(in, 0, sizeof(*in));
	in->notice_id = id;
	in->to = TO;
	in->to_name = TO_NAME;
	in->subject = SUBJECT;
	in->text = TEXT;
	in->html = HTML;
	in->att = att;
	in->natt = 1;
	in->track_opens = in->track_clicks = in->track_read = 1;
	in->now_ms = 1795456800123; /* 2026-11-23 18:00:00.123 UTC */
}

static const struct compose_token *find_token(const struct compose_out *o, const char *tok)
{
	for (size_t i = 0; i < o->ntokens; i++)
		if (strcmp(o->tokens[i].token, tok) == 0)
			return &o->tokens[i];
	return NULL;
}

/* href BASE/c/TOKEN: the token is genuine, for this notice, and maps to want. */
static void check_click(const struct compose_out *o, const char *href, const uint8_t notice[16],
			int link, const char *want)
{
	size_t bl = strlen(BASE "/c/");
	CHECK(strncmp(href, BASE "/c/", bl) == 0);
	const char *tok = href + bl;
	CHECK(strlen(tok) == TOKEN_TEXT_LEN);
	struct token t;
	CHECK(token_parse(g_token_key, tok, strlen(tok), &t) == 0);
	CHECK(t.kind == TOKEN_CLICK && t.link == link);
	CHECK(memcmp(t.notice, notice, 16) == 0);
	const struct compose_token *ct = find_token(o, tok);
	CHECK(ct != NULL);
	if (ct) {
		CHECK_STR(ct->kind, "click");
		CHECK(ct->link == link);
		CHECK_STR(ct->url, want);
	}
}

TEST(full_message_verified_by_third_parties)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	sample_input(&in, &att, id, notice);
	struct compose_out out;
	struct selo_err err;
	err_clear(&err);
	int rc = compose_message(c, &in, &out, &err);
	if (rc < 0)
		fprintf(stderr, "  compose: %d %s %s\n", err.status, err.type, err.msg);
	CHECK(rc == 0);
	if (rc < 0) {
		composer_free(c);
		return;
	}
	CHECK(lines_ok(out.eml.data, out.eml.len));
	char sha[65];
	sha256_hex(out.eml.data, out.eml.len, sha);
	CHECK_STR(out.sha256, sha);
	CHECK(strncmp(out.message_id, id, 26) == 0);
	CHECK(strstr(out.message_id, "@example.com") != NULL);
	CHECK(strncmp(out.eml.data, "DKIM-Signature:", 15) == 0);
	CHECK(strstr(out.eml.data, "\r\nBcc:") == NULL && strstr(out.eml.data, "\r\nReturn-Path:") == NULL);

	char path[128];
	snprintf(path, sizeof(path), "%s/msg.eml", g_dir);
	write_file(path, out.eml.data, out.eml.len);
	CHECK(openssl_verifies(path));

	json_t *j = py_read(path);
	CHECK(j != NULL);
	if (j) {
		/* headers Selo writes, in order, after the two DKIM signatures */
		const char *want_h[] = {"DKIM-Signature", "DKIM-Signature", "Date", "From", "To", "Subject",
					"Message-ID", "MIME-Version", "Content-Type"};
		json_t *hs = json_object_get(j, "headers");
		CHECK(json_array_size(hs) == 9);
		for (size_t i = 0; i < 9 && i < json_array_size(hs); i++)
			CHECK_STR(json_string_value(json_array_get(hs, i)), want_h[i]);
		CHECK(json_array_size(json_object_get(j, "defects")) == 0);
		CHECK_STR(jstr(j, "subject"), SUBJECT);
		CHECK_STR(jstr(j, "to"), TO);
		CHECK_STR(jstr(j, "to_name"), TO_NAME);
		CHECK_STR(jstr(j, "from"), "notificacoes@example.com");
		CHECK_STR(jstr(j, "from_name"), "Cobran\xC3\xA7" "as Exemplo Ltda");
		CHECK_STR(jstr(j, "date"), "Mon, 23 Nov 2026 18:00:00 +0000");
		char mid[160];
		snprintf(mid, sizeof(mid), "<%s>", out.message_id);
		CHECK_STR(jstr(j, "message_id"), mid);
		CHECK_STR(jstr(j, "top_type"), "multipart/signed");
		CHECK_STR(jstr(j, "protocol"), "application/pkcs7-signature");
		const char *want_t[] = {"multipart/signed", "multipart/mixed", "multipart/alternative",
					"text/plain", "text/html", "application/pdf",
					"application/pkcs7-signature"};
		json_t *ts = json_object_get(j, "types");
		CHECK(json_array_size(ts) == 7);
		for (size_t i = 0; i < 7 && i < json_array_size(ts); i++)
			CHECK_STR(json_string_value(json_array_get(ts, i)), want_t[i]);

		/* text: as written (LF becomes CRLF on the wire, Python gives LF) */
		const char *text = jstr(j, "text");
		CHECK(strncmp(text, TEXT, strlen(TEXT)) == 0);
		CHECK(strstr(text, "\n\nConfirmar recebimento: " BASE "/r/") != NULL);

		/* html: links rewritten, others untouched, pixel and read link added */
		const char *html = jstr(j, "html");
		CHECK(strstr(html, "Sua fatura de R$ 1.234,56 venceu.") != NULL);
		CHECK(strstr(html, "href=\"https://fonts.example.com/a.css\"") != NULL);
		CHECK(strstr(html, "<a href=\"http://commented.example.com/\">") != NULL);
		CHECK(strstr(html, "a[href^=\"http://x\"]") != NULL);
		json_t *hrefs = json_object_get(j, "hrefs");
		CHECK(json_array_size(hrefs) == 7);
		if (json_array_size(hrefs) == 7) {
			check_click(&out, json_string_value(json_array_get(hrefs, 0)), notice, 1, URL1);
			check_click(&out, json_string_value(json_array_get(hrefs, 1)), notice, 2, URL2);
			CHECK_STR(json_string_value(json_array_get(hrefs, 2)), "mailto:cobranca@example.com");
			CHECK_STR(json_string_value(json_array_get(hrefs, 3)), "tel:+551100000000");
			CHECK_STR(json_string_value(json_array_get(hrefs, 4)), "#topo");
			CHECK_STR(json_string_value(json_array_get(hrefs, 5)), "/relativo");
			const char *r = json_string_value(json_array_get(hrefs, 6));
			CHECK(strncmp(r, BASE "/r/", strlen(BASE "/r/")) == 0);
			struct token t;
			CHECK(token_parse(g_token_key, r + strlen(BASE "/r/"), TOKEN_TEXT_LEN, &t) == 0);
			CHECK(t.kind == TOKEN_READ && memcmp(t.notice, notice, 16) == 0);
			CHECK(strstr(text, r) != NULL); /* the same link in the text part */
		}
		CHECK(strstr(html, ">Confirmar recebimento</a>") != NULL);
		json_t *imgs = json_object_get(j, "imgs");
		CHECK(json_array_size(imgs) == 1);
		const char *img = json_string_value(json_array_get(imgs, 0));
		CHECK(img && strncmp(img, BASE "/o/", strlen(BASE "/o/")) == 0);
		if (img && strlen(img) == strlen(BASE "/o/") + TOKEN_TEXT_LEN + 4) {
			struct token t;
			CHECK(token_parse(g_token_key, img + strlen(BASE "/o/"), TOKEN_TEXT_LEN, &t) == 0);
			CHECK(t.kind == TOKEN_OPEN);
			CHECK(strcmp(img + strlen(img) - 4, ".gif") == 0);
		}
		/* the pixel sits before </body> */
		const char *px = strstr(html, "<img "), *bd = strstr(html, "</BODY>");
		CHECK(px && bd && px < bd);

		/* attachment: same bytes, same name */
		json_t *atts = json_object_get(j, "atts"); /* the PDF, then smime.p7s */
		CHECK(json_array_size(atts) == 2);
		json_t *a = json_array_get(atts, 0);
		CHECK_STR(jstr(json_array_get(atts, 1), "type"), "application/pkcs7-signature");
		char pdfsha[65];
		sha256_hex(g_pdf, sizeof(g_pdf), pdfsha);
		CHECK_STR(jstr(a, "name"), ATT_NAME);
		CHECK_STR(jstr(a, "type"), "application/pdf");
		CHECK_STR(jstr(a, "sha256"), pdfsha);

		/* both DKIM signatures verify with dkimpy */
		json_t *dk = json_object_get(j, "dkim");
		CHECK(json_array_size(dk) == 2);
		for (size_t i = 0; i < json_array_size(dk); i++)
			CHECK(json_is_true(json_array_get(dk, i)));
		json_decref(j);
	}

	/* tokens: 2 clicks, open, read */
	CHECK(out.ntokens == 4);
	int kinds[4] = {0};
	for (size_t i = 0; i < out.ntokens; i++) {
		struct token t;
		CHECK(token_parse(g_token_key, out.tokens[i].token, strlen(out.tokens[i].token), &t) == 0);
		CHECK_STR(out.tokens[i].kind, token_kind_name(t.kind));
		CHECK(out.tokens[i].link == t.link);
		CHECK((out.tokens[i].url != NULL) == (t.kind == TOKEN_CLICK));
		kinds[t.kind]++;
	}
	CHECK(kinds[TOKEN_CLICK] == 2 && kinds[TOKEN_OPEN] == 1 && kinds[TOKEN_READ] == 1);
	compose_out_free(&out);
	composer_free(c);
}

TEST(tampering_is_detected)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	sample_input(&in, &att, id, notice);
	struct compose_out out;
	struct selo_err err;
	CHECK(compose_message(c, &in, &out, &err) == 0);
	/* one byte of the signed text part changed: S/MIME and DKIM both fail */
	char *p = strstr(out.eml.data, "Sua fatura");
	CHECK(p != NULL);
	if (p) {
		p[0] = 'T';
		char path[128];
		snprintf(path, sizeof(path), "%s/tampered.eml", g_dir);
		write_file(path, out.eml.data, out.eml.len);
		CHECK(!openssl_verifies_q(path, 1));
		json_t *j = py_read(path);
		CHECK(j != NULL);
		json_t *dk = json_object_get(j, "dkim");
		CHECK(json_array_size(dk) == 2);
		for (size_t i = 0; i < json_array_size(dk); i++)
			CHECK(json_is_false(json_array_get(dk, i)));
		json_decref(j);
	}
	compose_out_free(&out);
	composer_free(c);
}

TEST(event_fields_shape_and_privacy)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	sample_input(&in, &att, id, notice);
	struct compose_out out;
	struct selo_err err;
	CHECK(compose_message(c, &in, &out, &err) == 0);
	char *s = json_dumps(out.event_fields, JSON_COMPACT);
	CHECK(s != NULL);
	if (s) {
		/* keys in order */
		const char *order[] = {"\"sha256\":", "\"size\":", "\"message_id\":", "\"smime\":",
				       "\"dkim\":", "\"tracking\":", "\"attachments\":"};
		const char *prev = s;
		for (size_t i = 0; i < 7; i++) {
			const char *q = strstr(prev, order[i]);
			CHECK(q != NULL);
			if (q)
				prev = q;
		}
		/* no recipient, name, subject or file name */
		CHECK(strstr(s, "maria") == NULL);
		CHECK(strstr(s, "Maria") == NULL);
		CHECK(strstr(s, "Concei") == NULL);
		CHECK(strstr(s, "Notifica") == NULL);
		CHECK(strstr(s, "Boleto") == NULL);
		CHECK(strstr(s, "example.net") == NULL);
		free(s);
	}
	json_t *e = out.event_fields;
	CHECK_STR(json_string_value(json_object_get(e, "sha256")), out.sha256);
	CHECK(json_integer_value(json_object_get(e, "size")) == (json_int_t)out.eml.len);
	CHECK_STR(json_string_value(json_object_get(e, "message_id")), out.message_id);
	json_t *sm = json_object_get(e, "smime");
	CHECK(json_is_string(json_object_get(sm, "subject")));
	CHECK(strlen(jstr(sm, "cert_sha256")) == 64);
	CHECK(json_is_false(json_object_get(sm, "timestamped")));
	json_t *dk = json_object_get(e, "dkim");
	CHECK(json_array_size(dk) == 2);
	const char *algs[2] = {"rsa-sha256", "ed25519-sha256"};
	const char *sels[2] = {"selo", "selo-ed25519"};
	for (size_t i = 0; i < 2 && i < json_array_size(dk); i++) {
		json_t *d = json_array_get(dk, i);
		CHECK_STR(json_string_value(json_object_get(d, "d")), "example.com");
		/* either order: match by algorithm */
		const char *a = json_string_value(json_object_get(d, "a"));
		int k = a && strcmp(a, algs[1]) == 0;
		CHECK_STR(a, algs[k]);
		CHECK_STR(json_string_value(json_object_get(d, "s")), sels[k]);
	}
	json_t *tr = json_object_get(e, "tracking");
	CHECK(json_is_true(json_object_get(tr, "opens")));
	CHECK(json_integer_value(json_object_get(tr, "clicks")) == 2);
	CHECK(json_is_true(json_object_get(tr, "read")));
	json_t *a0 = json_array_get(json_object_get(e, "attachments"), 0);
	char pdfsha[65];
	sha256_hex(g_pdf, sizeof(g_pdf), pdfsha);
	CHECK_STR(json_string_value(json_object_get(a0, "sha256")), pdfsha);
	CHECK(json_integer_value(json_object_get(a0, "size")) == (json_int_t)sizeof(g_pdf));
	CHECK_STR(json_string_value(json_object_get(a0, "content_type")), "application/pdf");
	CHECK(json_object_size(a0) == 3);
	compose_out_free(&out);
	composer_free(c);
}

/* A TSA hook (the ledger's, in production) gets the SHA-256 of the
 * signature value; here `openssl ts` with the TSA key keys_init made
 * answers it, so the signature carries a real RFC 3161 token. */
static int tst_calls;
static int openssl_tsa(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		       struct selo_err *err)
{
	(void)arg;
	char hex[65], cmd[2048], path[160];
	hex_encode(digest, 32, hex);
	tst_calls++;
	snprintf(path, sizeof(path), "%s/tsa.cnf", g_dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return err_set(err, 500, "test", "tsa.cnf");
	fprintf(f, "[tsa]\ndefault_tsa = t\n[t]\nserial = %s/tsa.serial\nsigner_digest = sha256\n"
		   "default_policy = 1.3.6.1.4.1.99999.1\ndigests = sha256\ness_cert_id_alg = sha256\n"
		   "accuracy = secs:1\n", g_dir);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl ts -query -digest %s -sha256 -cert -out q.tsq 2>/dev/null && "
		 "openssl ts -reply -config tsa.cnf -queryfile q.tsq -signer keys/tsa.crt -inkey keys/tsa.pem "
		 "-token_out -out tok.der 2>/dev/null",
		 g_dir, hex);
	if (system(cmd) != 0)
		return err_set(err, 503, "tsa-unavailable", "openssl ts failed");
	snprintf(path, sizeof(path), "%s/tok.der", g_dir);
	f = fopen(path, "rb");
	if (!f)
		return err_set(err, 503, "tsa-unavailable", "no token");
	*der = malloc(65536);
	*len = fread(*der, 1, 65536, f);
	fclose(f);
	return 0;
}

static int failing_tsa(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		       struct selo_err *err)
{
	(void)arg;
	(void)digest;
	*der = NULL;
	*len = 0;
	tst_calls++;
	return err_set(err, 503, "tsa-unavailable", "test TSA is down");
}

TEST(tsa_hook_timestamps_signature)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	char serial[160];
	snprintf(serial, sizeof(serial), "%s/tsa.serial", g_dir);
	write_file(serial, "01\n", 3);
	composer_set_tsa(c, openssl_tsa, NULL);
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	sample_input(&in, &att, id, notice);
	struct compose_out out;
	struct selo_err err;
	err_clear(&err);
	tst_calls = 0;
	int rc = compose_message(c, &in, &out, &err);
	if (rc < 0)
		fprintf(stderr, "  compose: %s\n", err.msg);
	CHECK(rc == 0);
	CHECK(tst_calls == 1);
	if (rc == 0) {
		json_t *sm = json_object_get(out.event_fields, "smime");
		CHECK(json_is_true(json_object_get(sm, "timestamped")));
		char path[128];
		snprintf(path, sizeof(path), "%s/tst.eml", g_dir);
		write_file(path, out.eml.data, out.eml.len);
		CHECK(openssl_verifies(path));
		compose_out_free(&out);
	}
	/* never an untimestamped message when a timestamp was asked for */
	composer_set_tsa(c, failing_tsa, NULL);
	tst_calls = 0;
	err_clear(&err);
	CHECK(compose_message(c, &in, &out, &err) == -1);
	CHECK(tst_calls == 1);
	CHECK(err.status >= 500);
	CHECK(out.eml.len == 0 && out.tokens == NULL && out.event_fields == NULL);
	composer_free(c);
}

TEST(text_only_notice)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	sample_input(&in, &att, id, notice);
	in.html = NULL;
	in.natt = 0;
	in.to_name = NULL;
	struct compose_out out;
	struct selo_err err;
	err_clear(&err);
	CHECK(compose_message(c, &in, &out, &err) == 0);
	CHECK(out.ntokens == 1); /* only read: no HTML, so no pixel and no links */
	char path[128];
	snprintf(path, sizeof(path), "%s/text.eml", g_dir);
	write_file(path, out.eml.data, out.eml.len);
	CHECK(openssl_verifies(path));
	json_t *j = py_read(path);
	CHECK(j != NULL);
	if (j) {
		json_t *ts = json_object_get(j, "types");
		CHECK(json_array_size(ts) == 3);
		CHECK_STR(json_string_value(json_array_get(ts, 1)), "text/plain");
		CHECK(strncmp(jstr(j, "text"), TEXT, strlen(TEXT)) == 0);
		CHECK(strstr(jstr(j, "text"), "Confirmar recebimento: " BASE "/r/") != NULL);
		CHECK_STR(jstr(j, "to_name"), "");
		json_t *dk = json_object_get(j, "dkim");
		CHECK(json_array_size(dk) == 2);
		for (size_t i = 0; i < json_array_size(dk); i++)
			CHECK(json_is_true(json_array_get(dk, i)));
		json_decref(j);
	}
	json_t *tr = json_object_get(out.event_fields, "tracking");
	CHECK(json_is_false(json_object_get(tr, "opens")));
	CHECK(json_integer_value(json_object_get(tr, "clicks")) == 0);
	compose_out_free(&out);

	/* text with attachment, no tracking at all */
	in.natt = 1;
	in.track_opens = in.track_clicks = in.track_read = 0;
	CHECK(compose_message(c, &in, &out, &err) == 0);
	CHECK(out.ntokens == 0);
	/* The tracker's URL, not a bare "/r/": base64 (attachment, signature,
	 * DKIM) holds "/r/" by chance in about one message of fifty. */
	CHECK(strstr(out.eml.data, BASE "/r/") == NULL);
	CHECK(strstr(out.eml.data, BASE) == NULL);
	write_file(path, out.eml.data, out.eml.len);
	CHECK(openssl_verifies(path));
	j = py_read(path);
	CHECK(j != NULL);
	if (j) {
		json_t *ts = json_object_get(j, "types");
		CHECK(json_array_size(ts) == 5); /* signed, mixed, text, pdf, p7s */
		CHECK_STR(json_string_value(json_array_get(ts, 1)), "multipart/mixed");
		CHECK_STR(json_string_value(json_array_get(ts, 2)), "text/plain");
		CHECK_STR(json_string_value(json_array_get(ts, 3)), "application/pdf");
		CHECK_STR(jstr(j, "text"), TEXT);
		json_decref(j);
	}
	compose_out_free(&out);
	composer_free(c);
}

/* Injection through every personal field is refused with a 422 naming it. */
TEST(header_injection_refused)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	const struct {
		const char *field;
		const char *value;
		const char *err_field;
	} cases[] = {
		{"to", TO "\r\nBcc: victim@example.org", "to"},
		{"to", TO "\nBcc: victim@example.org", "to"},
		{"to", "\"x\r\nBcc: v@example.org\"@example.com", "to"},
		{"to", TO ">, victim@example.org", "to"},
		{"to_name", "Maria\r\nBcc: victim@example.org", "to_name"},
		{"to_name", "Maria\nBcc: victim@example.org", "to_name"},
		{"to_name", "Maria\rBcc: victim@example.org", "to_name"},
		{"subject", "Oi\r\nBcc: victim@example.org", "subject"},
		{"subject", "Oi\r\n\r\n<html>injected body", "subject"},
		{"subject", "Oi\x0b\x0c", "subject"},
		{"filename", "a.pdf\r\nBcc: victim@example.org", "attachments[0].filename"},
		{"filename", "a.pdf\"\r\nContent-Type: text/html", "attachments[0].filename"},
		{"content_type", "application/pdf\r\nBcc: victim@example.org", "attachments[0].content_type"},
		{"content_type", "application/pdf; name=\"x\"", "attachments[0].content_type"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		sample_input(&in, &att, id, notice);
		if (!strcmp(cases[i].field, "to"))
			in.to = cases[i].value;
		else if (!strcmp(cases[i].field, "to_name"))
			in.to_name = cases[i].value;
		else if (!strcmp(cases[i].field, "subject"))
			in.subject = cases[i].value;
		else if (!strcmp(cases[i].field, "filename"))
			att.filename = (char *)cases[i].value;
		else
			att.content_type = (char *)cases[i].value;
		struct compose_out out;
		struct selo_err err;
		err_clear(&err);
		int rc = compose_message(c, &in, &out, &err);
		if (rc != -1)
			fprintf(stderr, "  accepted %s = [%s]\n", cases[i].field, cases[i].value);
		CHECK(rc == -1);
		CHECK(err.status == 422);
		CHECK(err.nfields >= 1);
		CHECK_STR(err.fields[0].field, cases[i].err_field);
		CHECK(out.eml.len == 0);
	}
	/* odd but harmless values are written safely: one header line each */
	sample_input(&in, &att, id, notice);
	in.to_name = "Fulano \"Bcc: victim@example.org\" <x@y.com>";
	in.subject = "Bcc: victim@example.org";
	att.filename = (char *)"Bcc: x@y.com\\\".pdf";
	struct compose_out out;
	struct selo_err err;
	CHECK(compose_message(c, &in, &out, &err) == 0);
	CHECK(strstr(out.eml.data, "\r\nBcc:") == NULL);
	char path[128];
	snprintf(path, sizeof(path), "%s/odd.eml", g_dir);
	write_file(path, out.eml.data, out.eml.len);
	json_t *j = py_read(path);
	CHECK(j != NULL);
	if (j) {
		CHECK(json_array_size(json_object_get(j, "headers")) == 9);
		CHECK_STR(jstr(j, "to"), TO);
		CHECK_STR(jstr(j, "to_name"), in.to_name);
		CHECK_STR(jstr(j, "subject"), in.subject);
		CHECK_STR(jstr(json_array_get(json_object_get(j, "atts"), 0), "name"), att.filename);
		json_decref(j);
	}
	compose_out_free(&out);
	composer_free(c);
}

TEST(size_limit)
{
	struct composer *c = composer_make(6000); /* the 5000-byte PDF alone is 6800 in base64 */
	CHECK(c != NULL);
	if (!c)
		return;
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	sample_input(&in, &att, id, notice);
	struct compose_out out;
	struct selo_err err;
	err_clear(&err);
	CHECK(compose_message(c, &in, &out, &err) == -1);
	CHECK(err.status == 422);
	CHECK_STR(err.type, "message-too-large");
	composer_free(c);
	/* the signed message passes the limit only once signatures are added:
	 * a limit just under its size (the entity alone is far smaller) */
	in.natt = 0;
	c = composer_make(0);
	CHECK(c && compose_message(c, &in, &out, &err) == 0);
	size_t full = out.eml.len;
	compose_out_free(&out);
	composer_free(c);
	c = composer_make(full - 50);
	err_clear(&err);
	CHECK(c && compose_message(c, &in, &out, &err) == -1);
	CHECK(err.status == 422);
	CHECK_STR(err.type, "message-too-large");
	CHECK(out.eml.len == 0);
	composer_free(c);
}

/* ---- compose_rewrite_links alone. */

struct rw {
	struct buf out;
	struct compose_token *tokens;
	size_t n;
};

static void rewrite(struct composer *c, const char *html, struct rw *r)
{
	uint8_t notice[16];
	memset(notice, 7, 16);
	memset(r, 0, sizeof(*r));
	CHECK(compose_rewrite_links(c, notice, html, &r->out, &r->tokens, &r->n) == 0);
}

static void rw_free(struct rw *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->tokens[i].url);
	free(r->tokens);
	buf_free(&r->out);
}

/* html rewritten has exactly n tracked links with these URLs, and the rest
 * of the document is unchanged around them. */
static void expect_links(struct composer *c, const char *html, size_t n, const char *const *urls)
{
	struct rw r;
	rewrite(c, html, &r);
	CHECK(r.n == n);
	for (size_t i = 0; i < n && i < r.n; i++) {
		if (!r.tokens[i].url || strcmp(r.tokens[i].url, urls[i]) != 0)
			fprintf(stderr, "  in %s\n  url %zu: [%s] want [%s]\n", html, i,
				r.tokens[i].url ? r.tokens[i].url : "(null)", urls[i]);
		CHECK(r.tokens[i].url && strcmp(r.tokens[i].url, urls[i]) == 0);
		CHECK(r.tokens[i].link == (int)i + 1);
		char href[200];
		snprintf(href, sizeof(href), "\"" BASE "/c/%s\"", r.tokens[i].token);
		CHECK(strstr(buf_str(&r.out), href) != NULL);
	}
	if (n == 0)
		CHECK_STR(buf_str(&r.out), html);
	rw_free(&r);
}

TEST(rewrite_links_rules)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	const char *u1[] = {"http://a.example/x"};
	expect_links(c, "<a href=\"http://a.example/x\">x</a>", 1, u1);
	expect_links(c, "<a href='http://a.example/x'>x</a>", 1, u1);
	expect_links(c, "<a href=http://a.example/x>x</a>", 1, u1);
	expect_links(c, "<A\nclass=b\tHREF = \"http://a.example/x\" >x</A>", 1, u1);
	expect_links(c, "<a href=\"  http://a.example/x \n\">x</a>", 1, u1);
	expect_links(c, "<a href=\"http://a.exa\nmple/x\">x</a>", 1, u1); /* newlines dropped */
	expect_links(c, "<a href=\"&#104;ttp://a.example/x\">x</a>", 1, u1);
	expect_links(c, "<a href=\"HTTP://a.example/x\">x</a>", 1, (const char *const[]){"HTTP://a.example/x"});
	const char *amp[] = {"https://a.example/p?a=1&b=2&c=<3>&d=\"4\"&e=&f"};
	expect_links(c, "<a href=\"https://a.example/p?a=1&amp;b=2&#38;c=&lt;3&gt;&amp;d=&quot;4&quot;&amp;e=&f\">x</a>", 1, amp);
	const char *sq[] = {"https://a.example/?q=\"x\""};
	struct rw r;
	rewrite(c, "<a href='https://a.example/?q=\"x\"'>x</a>", &r);
	CHECK(r.n == 1 && r.tokens && strcmp(r.tokens[0].url, sq[0]) == 0);
	CHECK(strchr(buf_str(&r.out) + 9, '\'') == NULL); /* new value is double-quoted */
	rw_free(&r);
	const char *sp[] = {"https://a.example/caf%C3%A9%20com%20leite"};
	expect_links(c, "<a href=\"https://a.example/caf\xC3\xA9 com leite\">x</a>", 1, sp);
	const char *two[] = {"http://a.example/1", "http://a.example/2"};
	expect_links(c, "<p><a href=\"http://a.example/1\">1</a><a href=\"http://a.example/2\">2</a></p>", 2, two);
	/* the first href of a tag counts, as in browsers */
	expect_links(c, "<a href=\"http://a.example/1\" href=\"http://a.example/2\">x</a>", 1, two);
	/* left alone */
	expect_links(c, "<a href=\"mailto:a@b.com\">m</a><a href=\"tel:+55\">t</a><a href=\"#x\">a</a>"
			"<a href=\"/rel\">r</a><a href=\"rel.html\">r</a><a href=\"javascript:alert(1)\">j</a>"
			"<a href=\"ftp://a.example/\">f</a><a href=\"//a.example/\">p</a><a href=\"http://\">e</a>", 0, NULL);
	expect_links(c, "<link rel=stylesheet href=\"https://a.example/s.css\"><base href=\"http://a.example/\">", 0, NULL);
	expect_links(c, "<!-- <a href=\"http://a.example/\">x</a> -->", 0, NULL);
	expect_links(c, "<script>var s = '<a href=\"http://a.example/\">';</script>", 0, NULL);
	expect_links(c, "<abbr href=\"http://a.example/\">x</abbr><data-a href=\"http://a.example/\">", 0, NULL);
	expect_links(c, "<a data-href=\"http://a.example/\">x</a>", 0, NULL);
	expect_links(c, "<a href=\"http://\xC3\xA9xample.com/\">idn</a>", 0, NULL);
	/* broken HTML: never a crash, never lost text */
	expect_links(c, "<a href=\"http://a.example/unterminated", 0, NULL);
	expect_links(c, "<a href=", 0, NULL);
	expect_links(c, "<", 0, NULL);
	expect_links(c, "<a", 0, NULL);
	expect_links(c, "a < b and c > d", 0, NULL);
	expect_links(c, "", 0, NULL);
	/* <area> is a link too */
	expect_links(c, "<map><area shape=rect href=\"http://a.example/x\"></map>", 1, u1);
	composer_free(c);
}

/* The base URL is written attribute-safe. */
TEST(rewrite_links_base_escaped)
{
	if (fixture() < 0)
		return;
	struct selo_config cfg = g_cfg;
	snprintf(cfg.track_base_url, sizeof(cfg.track_base_url), "https://t.example.com/x?a=1&b=2/");
	struct composer *c = NULL;
	struct selo_err err;
	CHECK(composer_new(&cfg, &c, &err) == 0);
	if (!c)
		return;
	struct rw r;
	rewrite(c, "<a href=\"http://a.example/\">x</a>", &r);
	CHECK(r.n == 1);
	CHECK(strstr(buf_str(&r.out), "href=\"https://t.example.com/x?a=1&amp;b=2/c/") != NULL);
	rw_free(&r);
	composer_free(c);
	/* a base URL that could break out of an attribute is refused */
	snprintf(cfg.track_base_url, sizeof(cfg.track_base_url), "https://t.example.com/\"><script>");
	CHECK(composer_new(&cfg, &c, &err) == -1);
	snprintf(cfg.track_base_url, sizeof(cfg.track_base_url), "javascript:alert(1)");
	CHECK(composer_new(&cfg, &c, &err) == -1);
}

/* Random HTML-ish bytes: never a crash, and without http links the output
 * equals the input. */
TEST(rewrite_links_total)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	static const char *atoms[] = {"<", ">", "a", " ", "href", "=", "\"", "'", "http://x.example/",
				      "&amp;", "&#", "<!--", "-->", "<script>", "</script", "A", "\n",
				      "area", "/", "&", ";", "x"};
	for (int round = 0; round < 3000; round++) {
		struct buf h = BUF_INIT;
		uint8_t r[40];
		random_bytes(r, sizeof(r));
		for (size_t i = 0; i < sizeof(r); i++)
			buf_puts(&h, atoms[r[i] % (sizeof(atoms) / sizeof(*atoms))]);
		struct rw w;
		rewrite(c, buf_str(&h), &w);
		if (w.n == 0)
			CHECK_STR(buf_str(&w.out), buf_str(&h));
		for (size_t i = 0; i < w.n; i++)
			CHECK(w.tokens[i].url && strncmp(w.tokens[i].url, "http://x.example/", 17) == 0);
		rw_free(&w);
		buf_free(&h);
	}
	composer_free(c);
}

/* ---- Several threads share one composer. */

struct job {
	struct composer *c;
	int ok;
	char mid[4][128];
};

static void *compose_thread(void *arg)
{
	struct job *jb = arg;
	for (int k = 0; k < 4; k++) {
		struct compose_in in;
		struct attachment_rec att;
		char id[27];
		uint8_t notice[16];
		sample_input(&in, &att, id, notice);
		struct compose_out out;
		struct selo_err err;
		if (compose_message(jb->c, &in, &out, &err) == 0) {
			jb->ok++;
			memcpy(jb->mid[k], out.message_id, sizeof(jb->mid[k]));
			compose_out_free(&out);
		}
	}
	return NULL;
}

TEST(threads_share_a_composer)
{
	struct composer *c = composer_make(0);
	CHECK(c != NULL);
	if (!c)
		return;
	/* g_pdf is rewritten identically by every sample_input: fill it first */
	struct compose_in in;
	struct attachment_rec att;
	char id[27];
	uint8_t notice[16];
	sample_input(&in, &att, id, notice);
	struct job jobs[4];
	pthread_t th[4];
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 4; i++) {
		jobs[i].c = c;
		pthread_create(&th[i], NULL, compose_thread, &jobs[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++) {
		CHECK(jobs[i].ok == 4);
		for (int k = 0; k < 4; k++)
			for (int i2 = 0; i2 < 4; i2++)
				for (int k2 = 0; k2 < 4; k2++)
					if (i != i2 || k != k2)
						CHECK(strcmp(jobs[i].mid[k], jobs[i2].mid[k2]) != 0);
	}
	composer_free(c);
}

TEST(composer_new_errors)
{
	if (fixture() < 0)
		return;
	struct selo_config cfg = g_cfg;
	struct composer *c = (struct composer *)1;
	struct selo_err err;
	err_clear(&err);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/nonexistent", g_dir);
	CHECK(composer_new(&cfg, &c, &err) == -1);
	CHECK(c == NULL);
	CHECK(err.msg[0] != '\0');
	cfg = g_cfg;
	snprintf(cfg.mail_from_address, sizeof(cfg.mail_from_address), "not an address");
	CHECK(composer_new(&cfg, &c, &err) == -1);
	cfg = g_cfg;
	snprintf(cfg.mail_from_name, sizeof(cfg.mail_from_name), "Evil\r\nBcc: x@y.com");
	CHECK(composer_new(&cfg, &c, &err) == -1);
}
