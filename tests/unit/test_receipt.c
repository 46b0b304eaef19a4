/* test_receipt.c: receipt_verify (receipt.h) on a genuine selo-receipt/v1
 * built here without the ledger: keys from keys_init in a mkdtemp
 * directory, a tree of 40 entries (three of them events of the receipt's
 * notice, with real commitments) appended with tlog_edge and read back by
 * an in-memory tile reader, a checkpoint signed with note_sign and
 * timestamped by the built-in TSA. Then: VALID pinned and (with two
 * warnings) unpinned; every kind of tampering fails the named check; every
 * ASCII byte of the receipt's strings and every byte of the token changed
 * fails; a wrong key or TSA CA fails; more events than report lines (a
 * tree of 300); the `selo verify` command's output and exit codes; and
 * scripts/verify-receipt.py (the same code as docs/receipt.md's) and the
 * documented openssl commands accept the genuine receipt and refuse a
 * tampered one. The directory is removed at exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/config.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/fileio.h"
#include "selo/id.h"
#include "selo/keys.h"
#include "selo/note.h"
#include "selo/receipt.h"
#include "selo/tlog.h"
#include "selo/tsa.h"
#include "t.h"
#include "t_run.h"

#define PY "/usr/bin/python3"
#define NENTRIES 40     /* the fixture's tree */
#define NMANY 300       /* a tree with a full tile and a notice of ~90 events */
#define FULL_TILES 4

/* ---- an in-memory log --------------------------------------------------- */

struct tree {
	struct tlog_edge edge;
	struct {
		int level;
		uint64_t index;
		uint8_t data[TLOG_TILE_BYTES];
	} full[FULL_TILES];
	int nfull;
};

static int tree_keep_full(void *arg, int level, uint64_t index, const uint8_t data[TLOG_TILE_BYTES])
{
	struct tree *t = arg;
	if (t->nfull == FULL_TILES)
		return -1;
	t->full[t->nfull].level = level;
	t->full[t->nfull].index = index;
	memcpy(t->full[t->nfull++].data, data, TLOG_TILE_BYTES);
	return 0;
}

static int tree_read(void *arg, int level, uint64_t index, unsigned width, const uint8_t **data,
		     struct selo_err *err)
{
	struct tree *t = arg;
	for (int i = 0; i < t->nfull; i++)
		if (t->full[i].level == level && t->full[i].index == index) {
			*data = t->full[i].data;
			return 0;
		}
	uint64_t pi;
	unsigned pw;
	const uint8_t *pd;
	tlog_edge_partial(&t->edge, level, &pi, &pw, &pd);
	if (pw && pi == index && pw >= width) {
		*data = pd;
		return 0;
	}
	return err_set(err, 404, "not-found", "no tile %d/%llu", level, (unsigned long long)index);
}

/* ---- the fixture: keys, TSA, and one genuine receipt ---------------------- */

struct fixture {
	int ready;
	char root[64], keys[128], other_root[64];
	char vkey[512];
	struct buf ca, other_ca;  /* keys/ca.crt here, and another deployment's */
	json_t *receipt;          /* long form */
	char notice[SELO_ID_TEXT + 1];
	char bin[1024];           /* the selo binary next to the tests, or "" */
};
static struct fixture fx;

static void rm_tree(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (dir[0] && strncmp(dir, "/tmp/selo-test-", 15) == 0 && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", dir);
}

static void fixture_free(void)
{
	json_decref(fx.receipt);
	buf_free(&fx.ca);
	buf_free(&fx.other_ca);
	rm_tree(fx.root);
	rm_tree(fx.other_root);
}

static int make_keys(char *root, size_t n, char *keys, size_t kn)
{
	struct keys_report rep;
	struct selo_err err;
	err_clear(&err);
	snprintf(root, n, "/tmp/selo-test-receipt-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	snprintf(keys, kn, "%s/keys", root);
	if (keys_init(keys, "example.com", "notificacoes@example.com", "example.com/selo-log", 0,
		      &rep, &err) != 0) {
		fprintf(stderr, "  keys_init: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void add_entry(struct tree *t, json_t *entries, const char *type, const char *notice,
		      int64_t ms, json_t *fields)
{
	struct buf e = BUF_INIT;
	if (event_entry_encode(&e, type, notice, ms, fields) != 0)
		fprintf(stderr, "  cannot encode an entry\n");
	json_decref(fields);
	uint8_t leaf[32];
	tlog_leaf_hash(e.data, e.len, leaf);
	if (tlog_edge_append(&t->edge, leaf, tree_keep_full, t) != 0)
		fprintf(stderr, "  cannot append an entry\n");
	json_array_append_new(entries, json_stringn(e.data, e.len));
	buf_free(&e);
}

static const char EML[] = "From: Selo <notificacoes@example.com>\r\n"
			  "To: Maria <maria@example.org>\r\n"
			  "Subject: Lembrete\r\n"
			  "Message-ID: <abc@example.com>\r\n"
			  "\r\n"
			  "Seu boleto vence amanha.\r\n";

/* Entries of the receipt's notice: 3, 11, 27, and with many every third
 * from 30 on ("opened"); the rest are another notice's. */
static int is_ours(int i, int many)
{
	return i == 3 || i == 11 || i == 27 || (many && i >= 30 && i % 3 == 0);
}

static json_t *make_entries(struct tree *t, const char *notice, const uint8_t salt[32],
			    struct disclosures *dis, int64_t base, int size, int many)
{
	char other[SELO_ID_TEXT + 1], eml_hex[65];
	uint8_t id[SELO_ID_BYTES];
	id_new(id);
	id_to_text(id, other);
	sha256_hex(EML, sizeof(EML) - 1, eml_hex);
	json_t *entries = json_array();
	for (int i = 0; i < size; i++) {
		int64_t ms = base + i * 100;
		if (i == 3)
			add_entry(t, entries, EV_SUBMISSION_ACCEPTED, notice, ms, json_pack(
				"{s:s,s:s,s:s,s:s,s:{s:s},s:{s:b,s:b,s:b}}", "api_key", "k1",
				"to", disclose(dis, salt, "maria@example.org", 17),
				"to_name", disclose(dis, salt, "Maria da Silva", 14),
				"template", "lembrete", "vars", "valor",
				disclose(dis, salt, "123,45", 6), "track", "opens", 1, "clicks", 1,
				"read_confirmation", 1));
		else if (i == 11)
			add_entry(t, entries, EV_CONTENT_SEALED, notice, ms, json_pack(
				"{s:s,s:I,s:s}", "sha256", eml_hex, "size", (json_int_t)(sizeof(EML) - 1),
				"message_id", "<abc@example.com>"));
		else if (i == 27)
			add_entry(t, entries, EV_RELAY_ACCEPTED, notice, ms, json_pack(
				"{s:i,s:s,s:s,s:i,s:s}", "attempt", 1, "transport", "relay", "peer",
				"127.0.0.1:2525", "code", 250, "reply",
				disclose(dis, salt, "250 2.0.0 Ok: queued", 20)));
		else if (is_ours(i, many))
			add_entry(t, entries, "opened", notice, ms, json_pack("{s:s}", "class", "human"));
		else
			add_entry(t, entries, EV_RELAY_ACCEPTED, other, ms,
				  json_pack("{s:i,s:i}", "attempt", 1, "code", 250));
	}
	return entries;
}

static json_t *proof_json(struct tree *t, uint64_t index, uint64_t size)
{
	uint8_t proof[TLOG_MAX_PROOF][32];
	size_t n = 0;
	struct selo_err err;
	if (tlog_inclusion_proof(index, size, tree_read, t, proof, &n, &err) != 0)
		fprintf(stderr, "  inclusion proof: %s\n", err.msg);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		struct buf b = BUF_INIT;
		base64_encode(&b, proof[i], 32, 0);
		json_array_append_new(a, json_string(buf_str(&b)));
		buf_free(&b);
	}
	return a;
}

/* The signed checkpoint of the tree, its timestamp and the TSA's chain. */
static int sign_and_stamp(struct tree *t, uint64_t size, struct buf *note, json_t **log)
{
	struct note_signer *s = NULL;
	struct tsa *tsa = NULL;
	struct selo_config cfg;
	struct selo_err err;
	err_clear(&err);
	config_defaults(&cfg, fx.root);
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", fx.root);
	if (note_signer_load(fx.keys, &s, &err) != 0 || tsa_open(&cfg, &tsa, &err) != 0) {
		fprintf(stderr, "  signer/TSA: %s\n", err.msg);
		note_signer_free(s);
		return -1;
	}
	snprintf(fx.vkey, sizeof(fx.vkey), "%s", note_signer_vkey(s));
	struct checkpoint cp = {.size = size};
	snprintf(cp.origin, sizeof(cp.origin), "%s", note_signer_name(s));
	tlog_edge_root(&t->edge, cp.root);
	struct buf text = BUF_INIT, certs = BUF_INIT, tok64 = BUF_INIT;
	checkpoint_format(&cp, &text);
	uint8_t digest[32], *der = NULL;
	size_t len = 0;
	int64_t when;
	int n = -1;
	if (note_sign(s, text.data, text.len, note, &err) == 0) {
		sha256(note->data, note->len, digest);
		if (tsa_timestamp(tsa, digest, &der, &len, &when, &err) == 0)
			n = tsa_certs_pem(tsa, &certs, &err);
	}
	if (n > 0) {
		base64_encode(&tok64, der, len, 0);
		json_t *ca = json_array();
		for (const char *p = certs.data; p < certs.data + certs.len; p += strlen(p) + 1)
			json_array_append_new(ca, json_string(p));
		*log = json_pack("{s:s,s:s,s:s,s:o}", "verifier_key", fx.vkey, "checkpoint",
				 buf_str(note), "timestamp", buf_str(&tok64), "tsa_certs", ca);
	} else {
		fprintf(stderr, "  sign/timestamp: %s\n", err.msg);
	}
	free(der);
	buf_free(&text);
	buf_free(&certs);
	buf_free(&tok64);
	tsa_close(tsa);
	note_signer_free(s);
	return n > 0 ? 0 : -1;
}

/* A genuine long-form receipt for a new notice (its id into notice) in a
 * tree of size entries. */
static json_t *make_receipt(char notice[SELO_ID_TEXT + 1], int size, int many)
{
	struct tree *t = calloc(1, sizeof(*t));
	uint8_t id[SELO_ID_BYTES], salt[32];
	id_new(id);
	id_to_text(id, notice);
	random_bytes(salt, sizeof(salt));
	tlog_edge_init(&t->edge);
	struct disclosures dis = DISCLOSURES_INIT;
	int64_t base = clock_now_ms() - 120000;
	json_t *entries = make_entries(t, notice, salt, &dis, base, size, many);
	json_t *events = json_array(), *values = json_object(), *log = NULL;
	for (int i = 0; i < size; i++)
		if (is_ours(i, many))
			json_array_append_new(events, json_pack(
				"{s:i,s:O,s:o}", "index", i, "entry", json_array_get(entries, (size_t)i),
				"proof", proof_json(t, (uint64_t)i, (uint64_t)size)));
	for (size_t i = 0; i < dis.n; i++)
		json_object_set_new(values, dis.v[i].commitment, json_string(dis.v[i].value));
	struct buf note = BUF_INIT, eml64 = BUF_INIT;
	char salt_hex[65], eml_hex[65], issued[32];
	hex_encode(salt, 32, salt_hex);
	sha256_hex(EML, sizeof(EML) - 1, eml_hex);
	base64_encode(&eml64, (const uint8_t *)EML, sizeof(EML) - 1, 0);
	clock_rfc3339(clock_now_ms(), issued);
	json_t *r = NULL;
	if (sign_and_stamp(t, (uint64_t)size, &note, &log) == 0)
		r = json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:s,s:s},s:{s:s,s:o}}", "format",
			      RECEIPT_FORMAT, "notice", notice, "issued_at", issued, "log", log,
			      "events", events, "message", "sha256", eml_hex, "eml_base64",
			      buf_str(&eml64), "disclosure", "salt", salt_hex, "values", values);
	else
		json_decref(events), json_decref(values);
	json_decref(entries);
	disclosures_free(&dis);
	buf_free(&note);
	buf_free(&eml64);
	free(t);
	return r;
}

/* The selo binary built with this test: BUILD/tests/test_receipt -> BUILD/selo. */
static void find_binary(void)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	fx.bin[0] = '\0';
	if (n <= 0)
		return;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(fx.bin, sizeof(fx.bin), "%s/selo", self);
	if (access(fx.bin, X_OK) != 0)
		fx.bin[0] = '\0';
}

static int fixture(void)
{
	if (fx.ready)
		return fx.ready > 0;
	fx.ready = -1;
	atexit(fixture_free);
	struct selo_err err;
	char path[256], other_keys[128];
	if (make_keys(fx.root, sizeof(fx.root), fx.keys, sizeof(fx.keys)) != 0 ||
	    make_keys(fx.other_root, sizeof(fx.other_root), other_keys, sizeof(other_keys)) != 0)
		return 0;
	snprintf(path, sizeof(path), "%s/ca.crt", fx.keys);
	if (file_read(path, 1 << 20, &fx.ca, &err) != 0)
		return 0;
	snprintf(path, sizeof(path), "%s/ca.crt", other_keys);
	if (file_read(path, 1 << 20, &fx.other_ca, &err) != 0)
		return 0;
	fx.receipt = make_receipt(fx.notice, NENTRIES, 0);
	if (!fx.receipt)
		return 0;
	find_binary();
	fx.ready = 1;
	return 1;
}

/* A test that cannot make its fixture fails: it never passes by testing nothing. */
#define NEED_FIXTURE()                                                          \
	do {                                                                    \
		if (!fixture()) {                                               \
			CHECK(!"the fixture (keys and a receipt) could be made");    \
			return;                                                 \
		}                                                               \
	} while (0)

/* ---- verifying ----------------------------------------------------------- */

static char *dump(json_t *doc)
{
	return json_dumps(doc, JSON_PRESERVE_ORDER | JSON_INDENT(1));
}

static enum receipt_verdict verify_doc(json_t *doc, int pinned, struct receipt_report *rep)
{
	char *s = dump(doc);
	enum receipt_verdict v = receipt_verify(s, strlen(s), pinned ? fx.vkey : NULL,
						pinned ? fx.ca.data : NULL, fx.ca.len, rep);
	free(s);
	return v;
}

static void print_report(const struct receipt_report *rep)
{
	for (int i = 0; i < rep->n; i++)
		fprintf(stderr, "    %s %s: %s\n", rep->checks[i].ok > 0 ? "ok  " :
			rep->checks[i].ok == 0 ? "FAIL" : "WARN", rep->checks[i].name,
			rep->checks[i].detail);
	fprintf(stderr, "    verdict %d\n", rep->verdict);
}

static int count(const struct receipt_report *rep, const char *name, int ok)
{
	int n = 0;
	for (int i = 0; i < rep->n; i++)
		if ((!name || !strcmp(rep->checks[i].name, name)) && rep->checks[i].ok == ok)
			n++;
	return n;
}

/* The tampered doc (consumed) must be INVALID (or UNREADABLE when
 * unreadable is set) with check `name` failing. */
static void expect(json_t *doc, int pinned, enum receipt_verdict want, const char *name,
		   const char *what)
{
	static struct receipt_report rep;
	enum receipt_verdict v = verify_doc(doc, pinned, &rep);
	json_decref(doc);
	if (v != want || (name && count(&rep, name, 0) == 0)) {
		fprintf(stderr, "  %s: wanted verdict %d with %s failing\n", what, want, name);
		print_report(&rep);
		t_failed_now = 1;
	}
}

static json_t *copy(void)
{
	return json_deep_copy(fx.receipt);
}

static json_t *at(json_t *doc, const char *path)
{
	json_t *j = doc;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *save = NULL, *p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save))
		j = json_is_array(j) ? json_array_get(j, strtoul(p, NULL, 10)) : json_object_get(j, p);
	return j;
}

/* Sets string at path (parent path + key or array index). */
static void set_str(json_t *doc, const char *parent, const char *key, const char *val)
{
	json_t *p = parent[0] ? at(doc, parent) : doc;
	if (json_is_array(p))
		json_array_set_new(p, strtoul(key, NULL, 10), json_string(val));
	else
		json_object_set_new(p, key, json_string(val));
}

/* Changes the ASCII byte at pos of the string (not to a quote or backslash,
 * which JSON escapes, but any other is fair). */
static void poke(json_t *s, size_t pos)
{
	char *v = strdup(json_string_value(s));
	v[pos] = v[pos] == 'A' ? 'B' : 'A';
	json_string_set(s, v);
	free(v);
}

/* Base64 text with one bit of the decoded bytes flipped at byte pos
 * (negative: from the end). */
static char *b64_flip(const char *b64, long pos)
{
	size_t n = strlen(b64), cap = base64_decoded_max(n);
	uint8_t *d = malloc(cap);
	ssize_t k = base64_decode(b64, n, d, cap);
	if (k <= 0) {
		free(d);
		return strdup(b64);
	}
	size_t at_ = pos < 0 ? (size_t)(k + pos) : (size_t)pos;
	d[at_ % (size_t)k] ^= 0x01;
	struct buf b = BUF_INIT;
	base64_encode(&b, d, (size_t)k, 0);
	free(d);
	return buf_steal(&b, NULL);
}

static void flip_b64_at(json_t *doc, const char *parent, const char *key, long pos)
{
	json_t *p = at(doc, parent);
	json_t *s = json_is_array(p) ? json_array_get(p, strtoul(key, NULL, 10))
				     : json_object_get(p, key);
	char *v = b64_flip(json_string_value(s), pos);
	json_string_set(s, v);
	free(v);
}

/* ---- VALID --------------------------------------------------------------- */

TEST(genuine_pinned_valid)
{
	NEED_FIXTURE();
	static struct receipt_report rep;
	enum receipt_verdict v = verify_doc(fx.receipt, 1, &rep);
	CHECK(v == RECEIPT_VALID);
	CHECK(count(&rep, NULL, 0) == 0);
	CHECK(count(&rep, NULL, -1) == 0);
	CHECK(count(&rep, "inclusion", 1) == 3);
	CHECK_STR(rep.notice, fx.notice);
	static const char *order[] = {"format", "notice", "checkpoint_signature", "key_pinned",
				      "checkpoint_origin", "checkpoint_timestamp", "tsa_pinned",
				      "inclusion", "inclusion", "inclusion", "entries_notice",
				      "time_order", "entries_before_timestamp", "message_digest",
				      "disclosures"};
	CHECK(rep.n == (int)(sizeof(order) / sizeof(order[0])));
	for (int i = 0; i < rep.n && i < (int)(sizeof(order) / sizeof(order[0])); i++)
		CHECK_STR(rep.checks[i].name, order[i]);
	if (v != RECEIPT_VALID)
		print_report(&rep);
}

TEST(genuine_unpinned_valid_with_two_warnings)
{
	NEED_FIXTURE();
	static struct receipt_report rep;
	CHECK(verify_doc(fx.receipt, 0, &rep) == RECEIPT_VALID);
	CHECK(count(&rep, NULL, 0) == 0);
	CHECK(count(&rep, NULL, -1) == 2);
	CHECK(count(&rep, "key_pinned", -1) == 1);
	CHECK(count(&rep, "tsa_pinned", -1) == 1);
}

TEST(short_form_valid)
{
	NEED_FIXTURE();
	json_t *d = copy();
	json_object_del(at(d, "message"), "eml_base64");
	static struct receipt_report rep;
	CHECK(verify_doc(d, 1, &rep) == RECEIPT_VALID);
	CHECK(count(&rep, "message_digest", 1) == 1);
	int found = 0;
	for (int i = 0; i < rep.n; i++)
		if (!strcmp(rep.checks[i].name, "message_digest"))
			found = strstr(rep.checks[i].detail, "short form: no message bytes") != NULL;
	CHECK(found);
	json_decref(d);
}

/* More events than the report has lines for: the first 79 get a line each,
 * the rest one summary line; a tree of 300 entries also has a full tile. */
TEST(many_events_share_a_summary_line)
{
	NEED_FIXTURE();
	char notice[SELO_ID_TEXT + 1];
	json_t *d = make_receipt(notice, NMANY, 1);
	CHECK(d != NULL);
	if (!d)
		return;
	size_t nev = json_array_size(at(d, "events"));
	CHECK(nev > 85);
	static struct receipt_report rep;
	CHECK(verify_doc(d, 1, &rep) == RECEIPT_VALID);
	CHECK(rep.n <= RECEIPT_MAX_CHECKS);
	CHECK(count(&rep, "inclusion", 1) == RECEIPT_MAX_CHECKS - 16);
	CHECK(count(&rep, "disclosures", 1) == 1);
	if (rep.verdict != RECEIPT_VALID)
		print_report(&rep);
	/* A bad proof among the summarised events still fails. */
	json_t *last = json_array_get(at(d, "events"), nev - 1);
	json_t *h = json_array_get(json_object_get(last, "proof"), 0);
	char *v = b64_flip(json_string_value(h), 3);
	json_string_set(h, v);
	free(v);
	expect(d, 1, RECEIPT_INVALID, "inclusion", "the last of many events");
}

/* ---- tampering, field by field ------------------------------------------- */

TEST(unreadable_inputs)
{
	static const char *bad[] = {"", "not json", "[]", "{}", "{\"format\":1}",
				    "{\"format\":\"selo-receipt/v2\"}", "\xff\xfe{}", "null"};
	static struct receipt_report rep;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(receipt_verify(bad[i], strlen(bad[i]), NULL, NULL, 0, &rep) ==
		      RECEIPT_UNREADABLE);
		CHECK(rep.n == 1 && !strcmp(rep.checks[0].name, "format") && rep.checks[0].ok == 0);
	}
	CHECK(receipt_verify(NULL, 0, NULL, NULL, 0, &rep) == RECEIPT_UNREADABLE);
	NEED_FIXTURE();
	json_t *d = copy();
	set_str(d, "", "format", "selo-receipt/v2");
	expect(d, 1, RECEIPT_UNREADABLE, "format", "format v2");
}

TEST(tamper_top_level)
{
	NEED_FIXTURE();
	json_t *d = copy();
	char other[SELO_ID_TEXT + 1];
	snprintf(other, sizeof(other), "%s", fx.notice);
	other[25] = other[25] == '0' ? '1' : '0';
	set_str(d, "", "notice", other);
	expect(d, 1, RECEIPT_INVALID, "entries_notice", "another notice id");
	d = copy();
	set_str(d, "", "notice", "01J!notanid");
	expect(d, 1, RECEIPT_INVALID, "notice", "a malformed notice id");
	d = copy();
	set_str(d, "", "issued_at", "2001-01-01T00:00:00.000Z");
	expect(d, 1, RECEIPT_INVALID, "time_order", "issued before its events");
	d = copy();
	set_str(d, "", "issued_at", "yesterday");
	expect(d, 1, RECEIPT_INVALID, "format", "issued_at not a time");
	d = copy();
	json_object_del(d, "disclosure");
	expect(d, 1, RECEIPT_INVALID, "format", "a missing field");
	d = copy();
	json_object_set_new(d, "index", json_integer(0));
	expect(d, 1, RECEIPT_INVALID, "format", "an unknown top-level field");
	static const char *objs[] = {"log", "message", "disclosure", "events.0"};
	for (size_t i = 0; i < 4; i++) {
		d = copy();
		json_object_set_new(at(d, objs[i]), "note", json_string("x"));
		expect(d, 1, RECEIPT_INVALID, "format", objs[i]);
	}
}

TEST(tamper_checkpoint_and_key)
{
	NEED_FIXTURE();
	struct note_signer *s = NULL;
	struct selo_err err;
	uint8_t seed[32] = {7};
	CHECK(note_signer_new("example.com/selo-log", seed, &s, &err) == 0);
	if (!s)
		return;
	char wrong[512];
	snprintf(wrong, sizeof(wrong), "%s", note_signer_vkey(s));
	note_signer_free(s);
	/* The receipt names another key: unpinned, the signature fails; pinned,
	 * the signature verifies with the right key but the receipt is caught. */
	json_t *d = copy();
	set_str(d, "log", "verifier_key", wrong);
	expect(d, 0, RECEIPT_INVALID, "checkpoint_signature", "another key in the receipt");
	d = copy();
	set_str(d, "log", "verifier_key", wrong);
	expect(d, 1, RECEIPT_INVALID, "key_pinned", "another key in the receipt, pinned");
	/* The verifier's key is not the log's. */
	static struct receipt_report rep;
	char *txt = dump(fx.receipt);
	CHECK(receipt_verify(txt, strlen(txt), wrong, fx.ca.data, fx.ca.len, &rep) ==
	      RECEIPT_INVALID);
	CHECK(count(&rep, "checkpoint_signature", 0) == 1);
	CHECK(receipt_verify(txt, strlen(txt), fx.vkey, fx.other_ca.data, fx.other_ca.len, &rep) ==
	      RECEIPT_INVALID);
	CHECK(count(&rep, "checkpoint_timestamp", 0) == 1);
	CHECK(count(&rep, "checkpoint_signature", 1) == 1);
	free(txt);

	/* The checkpoint text: size, root, origin; a signature byte. */
	const char *note = json_string_value(at(fx.receipt, "log.checkpoint"));
	const char *nl1 = strchr(note, '\n'), *nl2 = strchr(nl1 + 1, '\n');
	size_t cuts[] = {0, (size_t)(nl1 - note) + 1, (size_t)(nl2 - note) + 5};
	const char *what[] = {"origin", "size", "root"};
	for (int i = 0; i < 3; i++) {
		d = copy();
		poke(at(d, "log.checkpoint"), cuts[i]);
		expect(d, 1, RECEIPT_INVALID, "checkpoint_signature", what[i]);
		d = copy();
		poke(at(d, "log.checkpoint"), cuts[i]);
		expect(d, 1, RECEIPT_INVALID, "checkpoint_timestamp", what[i]);
	}
	d = copy();
	json_t *cp = at(d, "log.checkpoint");
	char *v = strdup(json_string_value(cp));
	char *sig = strrchr(v, ' ') + 1;
	sig[strlen(sig) - 1] = '\0';
	char *flipped = b64_flip(sig, 20); /* inside the signature, after the key ID */
	char *nv = NULL;
	if (asprintf(&nv, "%.*s%s\n", (int)(sig - v), v, flipped) > 0)
		json_string_set(cp, nv);
	free(nv);
	free(flipped);
	free(v);
	expect(d, 1, RECEIPT_INVALID, "checkpoint_signature", "a signature bit");
}

TEST(tamper_timestamp_and_certs)
{
	NEED_FIXTURE();
	json_t *d = copy();
	flip_b64_at(d, "log", "timestamp", -1);
	expect(d, 1, RECEIPT_INVALID, "checkpoint_timestamp", "the token's last byte");
	d = copy();
	flip_b64_at(d, "log", "timestamp", -1);
	expect(d, 0, RECEIPT_INVALID, "checkpoint_timestamp", "the token's last byte, unpinned");
	size_t n = json_array_size(at(fx.receipt, "log.tsa_certs"));
	CHECK(n >= 2);
	for (size_t i = 0; i < n; i++) {
		for (int pinned = 0; pinned < 2; pinned++) {
			/* A bit of the certificate's signature, in canonical PEM. */
			d = copy();
			json_t *s = json_array_get(at(d, "log.tsa_certs"), i);
			BIO *in = BIO_new_mem_buf(json_string_value(s), -1), *out = BIO_new(BIO_s_mem());
			X509 *x = PEM_read_bio_X509(in, NULL, NULL, NULL);
			unsigned char *der = NULL;
			int len = x ? i2d_X509(x, &der) : 0;
			char *p = NULL;
			if (len > 0) {
				der[len - 1] ^= 1;
				PEM_write_bio(out, "CERTIFICATE", "", der, len);
				long m = BIO_get_mem_data(out, &p);
				json_t *nv = json_stringn(p, (size_t)m);
				json_array_set_new(at(d, "log.tsa_certs"), i, nv);
			}
			OPENSSL_free(der);
			X509_free(x);
			BIO_free(in);
			BIO_free(out);
			char what[64];
			snprintf(what, sizeof(what), "tsa_certs[%zu], pinned %d", i, pinned);
			expect(d, pinned, RECEIPT_INVALID, "checkpoint_timestamp", what);
		}
	}
	/* Not in the exact PEM form: an extra line end. */
	d = copy();
	json_t *s = json_array_get(at(d, "log.tsa_certs"), 0);
	char *v = NULL;
	if (asprintf(&v, "%s\n", json_string_value(s)) > 0)
		json_string_set(s, v);
	free(v);
	expect(d, 1, RECEIPT_INVALID, "format", "a PEM with an extra newline");
	/* Swapped order. */
	d = copy();
	json_array_append(at(d, "log.tsa_certs"), json_array_get(at(d, "log.tsa_certs"), 0));
	json_array_remove(at(d, "log.tsa_certs"), 0);
	expect(d, 1, RECEIPT_INVALID, "checkpoint_timestamp", "certificates out of order");
}

TEST(tamper_events)
{
	NEED_FIXTURE();
	static const char *check_of[] = {"inclusion", "inclusion", "inclusion"};
	for (size_t i = 0; i < 3; i++) {
		char parent[32];
		snprintf(parent, sizeof(parent), "events.%zu", i);
		json_t *d = copy();
		json_t *ev = at(d, parent);
		json_object_set_new(ev, "index", json_integer(json_integer_value(
							json_object_get(ev, "index")) + 1));
		expect(d, 1, RECEIPT_INVALID, check_of[i], "an index");
		size_t np = json_array_size(at(fx.receipt, parent) ? json_object_get(
						  at(fx.receipt, parent), "proof") : NULL);
		CHECK(np > 0);
		for (size_t j = 0; j < np; j++) {
			char pp[48], key[24];
			snprintf(pp, sizeof(pp), "%s.proof", parent);
			snprintf(key, sizeof(key), "%zu", j);
			d = copy();
			flip_b64_at(d, pp, key, (long)(j % 32));
			expect(d, 1, RECEIPT_INVALID, "inclusion", "a proof hash");
		}
		d = copy();
		json_array_remove(json_object_get(at(d, parent), "proof"), 0);
		expect(d, 1, RECEIPT_INVALID, "inclusion", "a proof hash less");
		/* Every byte of the entry. */
		const char *entry = json_string_value(json_object_get(at(fx.receipt, parent), "entry"));
		for (size_t k = 0; k < strlen(entry); k++) {
			if (entry[k] == '"' || entry[k] == '\\')
				continue;
			d = copy();
			poke(json_object_get(at(d, parent), "entry"), k);
			expect(d, 1, RECEIPT_INVALID, "inclusion", "an entry byte");
		}
	}
	/* Removing an event: the one that seals the message, the one with a
	 * disclosed reply, the first. */
	json_t *d = copy();
	json_array_remove(at(d, "events"), 1);
	expect(d, 1, RECEIPT_INVALID, "message_digest", "content_sealed removed");
	d = copy();
	json_array_remove(at(d, "events"), 2);
	expect(d, 1, RECEIPT_INVALID, "disclosures", "relay_accepted removed");
	d = copy();
	json_array_remove(at(d, "events"), 0);
	expect(d, 1, RECEIPT_INVALID, "time_order", "submission_accepted removed");
	d = copy();
	json_array_clear(at(d, "events"));
	expect(d, 1, RECEIPT_INVALID, "format", "no events");
	/* Out of order, and an event of another notice (really in the log). */
	d = copy();
	json_array_append(at(d, "events"), json_array_get(at(d, "events"), 0));
	json_array_remove(at(d, "events"), 0);
	expect(d, 1, RECEIPT_INVALID, "format", "events out of order");
}

TEST(tamper_message_and_disclosure)
{
	NEED_FIXTURE();
	json_t *d = copy();
	flip_b64_at(d, "message", "eml_base64", 10);
	expect(d, 1, RECEIPT_INVALID, "message_digest", "a byte of the message");
	d = copy();
	poke(at(d, "message.sha256"), 5);
	expect(d, 1, RECEIPT_INVALID, "format", "message.sha256 not hex");
	d = copy();
	json_t *h = at(d, "message.sha256");
	char *v = strdup(json_string_value(h));
	v[5] = v[5] == '0' ? '1' : '0';
	json_string_set(h, v);
	expect(d, 1, RECEIPT_INVALID, "message_digest", "message.sha256");
	d = copy();
	json_string_set(at(d, "message.sha256"), v);
	json_object_del(at(d, "message"), "eml_base64");
	expect(d, 1, RECEIPT_INVALID, "message_digest", "message.sha256, short form");
	free(v);

	d = copy();
	json_t *salt = at(d, "disclosure.salt");
	v = strdup(json_string_value(salt));
	v[0] = v[0] == '0' ? '1' : '0';
	json_string_set(salt, v);
	free(v);
	expect(d, 1, RECEIPT_INVALID, "disclosures", "the salt");
	d = copy();
	set_str(d, "disclosure", "salt", "00");
	expect(d, 1, RECEIPT_INVALID, "format", "a short salt");

	const char *k;
	json_t *val;
	json_object_foreach(at(fx.receipt, "disclosure.values"), k, val) {
		d = copy();
		json_t *vals = at(d, "disclosure.values");
		poke(json_object_get(vals, k), 0);
		expect(d, 1, RECEIPT_INVALID, "disclosures", "a disclosed value");
		/* The same value under a commitment that no entry holds. */
		d = copy();
		vals = at(d, "disclosure.values");
		char other[SELO_COMMIT_LEN + 1];
		uint8_t s2[32] = {1};
		commitment(s2, 32, "x", 1, other);
		json_object_set(vals, other, json_object_get(vals, k));
		expect(d, 1, RECEIPT_INVALID, "disclosures", "an uncommitted disclosure");
	}
	d = copy();
	json_object_set_new(at(d, "disclosure.values"), "sha256:00", json_integer(1));
	expect(d, 1, RECEIPT_INVALID, "format", "a disclosed number");
}

/* Every ASCII byte of every short string field, and a sample of the long
 * ones, changed: never VALID; pinned and unpinned for the log's fields
 * (where the difference matters), pinned elsewhere. The entries' bytes are
 * tamper_events' (each must fail inclusion). */
static void sweep(json_t *j, const char *path, int *tried)
{
	size_t plen = strlen(path);
	if (plen > 6 && !strcmp(path + plen - 6, ".entry"))
		return;
	int first_mode = strncmp(path, "receipt.log.", 12) == 0 ? 0 : 1;
	if (json_is_string(j)) {
		char *s = strdup(json_string_value(j)); /* j's own text is replaced below */
		size_t n = strlen(s), step = n > 400 ? 37 : 1;
		for (size_t k = 0; k < n; k += step) {
			if ((unsigned char)s[k] >= 0x80 || s[k] == '"' || s[k] == '\\')
				continue;
			char saved = s[k];
			poke(j, k);
			static struct receipt_report rep;
			for (int pinned = first_mode; pinned < 2; pinned++)
				if (verify_doc(fx.receipt, pinned, &rep) == RECEIPT_VALID) {
					fprintf(stderr, "  %s byte %zu ('%c'), pinned %d: still VALID\n",
						path, k, saved, pinned);
					t_failed_now = 1;
				}
			json_string_set(j, s);
			(*tried)++;
		}
		free(s);
		return;
	}
	const char *key;
	json_t *v;
	size_t i;
	char sub[160];
	if (json_is_object(j))
		json_object_foreach(j, key, v) {
			snprintf(sub, sizeof(sub), "%s.%.60s", path, key);
			sweep(v, sub, tried);
		}
	else if (json_is_array(j))
		json_array_foreach(j, i, v) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			sweep(v, sub, tried);
		}
}

TEST(every_byte_changed_fails)
{
	NEED_FIXTURE();
	int tried = 0;
	sweep(fx.receipt, "receipt", &tried);
	CHECK(tried > 500);
	static struct receipt_report rep;
	CHECK(verify_doc(fx.receipt, 1, &rep) == RECEIPT_VALID); /* restored */
}

/* Each byte of the timestamp token flipped. */
TEST(every_token_byte_flipped_fails)
{
	NEED_FIXTURE();
	const char *b64 = json_string_value(at(fx.receipt, "log.timestamp"));
	size_t cap = base64_decoded_max(strlen(b64));
	uint8_t *der = malloc(cap);
	ssize_t n = base64_decode(b64, strlen(b64), der, cap);
	CHECK(n > 100);
	int missed = 0;
	for (ssize_t i = 0; i < n; i++) {
		json_t *d = copy();
		flip_b64_at(d, "log", "timestamp", (long)i);
		static struct receipt_report rep;
		if (verify_doc(d, 1, &rep) == RECEIPT_VALID && missed++ < 5)
			fprintf(stderr, "  token byte %zd of %zd flipped: still VALID\n", i, n);
		json_decref(d);
	}
	CHECK(missed == 0);
	free(der);
}

/* ---- the command ---------------------------------------------------------- */


static void write_doc(json_t *doc, const char *path)
{
	char *s = dump(doc);
	struct selo_err err;
	if (file_write_atomic(path, s, strlen(s), 0644, &err) != 0)
		fprintf(stderr, "  cannot write %s: %s\n", path, err.msg);
	free(s);
}

TEST(selo_verify_command)
{
	NEED_FIXTURE();
	if (!fx.bin[0])
		SKIP("no selo binary next to the tests");
	char good[256], bad[256], pdf[256], cmd[2048];
	snprintf(good, sizeof(good), "%s/good.json", fx.root);
	snprintf(bad, sizeof(bad), "%s/bad.json", fx.root);
	snprintf(pdf, sizeof(pdf), "%s/r.pdf", fx.root);
	write_doc(fx.receipt, good);
	json_t *d = copy();
	flip_b64_at(d, "message", "eml_base64", 3);
	write_doc(d, bad);
	json_decref(d);
	struct selo_err err;
	file_write_atomic(pdf, "%PDF-1.7\n", 9, 0644, &err);

	struct buf out = BUF_INIT;
	snprintf(cmd, sizeof(cmd), "%s verify %s --key %s/log.vkey --tsa-ca %s/ca.crt", fx.bin,
		 good, fx.keys, fx.keys);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "ok   checkpoint_signature: ") != NULL);
	CHECK(strstr(buf_str(&out), "\nverdict: VALID\n") != NULL);
	CHECK(strstr(buf_str(&out), "WARN") == NULL);
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "%s verify --key '%s' %s", fx.bin, fx.vkey, good);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "WARN tsa_pinned: ") != NULL);
	CHECK(strstr(buf_str(&out), "WARNING: no --tsa-ca") != NULL);
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "%s verify - < %s", fx.bin, good);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "WARN key_pinned: ") != NULL);
	CHECK(strstr(buf_str(&out), "WARNING: no --key") != NULL);
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "%s verify %s --key %s/log.vkey --tsa-ca %s/ca.crt", fx.bin,
		 bad, fx.keys, fx.keys);
	CHECK(run(cmd, &out) == 1);
	CHECK(strstr(buf_str(&out), "FAIL message_digest: ") != NULL);
	CHECK(strstr(buf_str(&out), "\nverdict: INVALID\n") != NULL);
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "%s verify %s", fx.bin, pdf);
	CHECK(run(cmd, &out) == 2);
	CHECK(strstr(buf_str(&out), "the PDF cannot be read") != NULL);
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "echo '{}' | %s verify -", fx.bin);
	CHECK(run(cmd, &out) == 2);
	CHECK(strstr(buf_str(&out), "verdict: UNREADABLE") != NULL);
	snprintf(cmd, sizeof(cmd), "%s verify %s --key nonsense", fx.bin, good);
	CHECK(run(cmd, NULL) == 2);
	snprintf(cmd, sizeof(cmd), "%s verify", fx.bin);
	CHECK(run(cmd, NULL) == 2);
	snprintf(cmd, sizeof(cmd), "%s verify --help", fx.bin);
	CHECK(run(cmd, NULL) == 0);
	buf_free(&out);
}

/* ---- by hand: the documented script and openssl commands ------------------ */

/* The script in docs/receipt.md is scripts/verify-receipt.py, byte for byte. */
TEST(doc_script_is_the_script)
{
	struct buf doc = BUF_INIT, py = BUF_INIT;
	struct selo_err err;
	CHECK(file_read("docs/receipt.md", 1 << 20, &doc, &err) == 0);
	CHECK(file_read("scripts/verify-receipt.py", 1 << 20, &py, &err) == 0);
	const char *start = strstr(buf_str(&doc), "```python\n");
	const char *end = start ? strstr(start + 10, "\n```\n") : NULL;
	CHECK(start && end);
	if (start && end)
		CHECK((size_t)(end + 1 - (start + 10)) == py.len &&
		      !memcmp(start + 10, py.data, py.len));
	buf_free(&doc);
	buf_free(&py);
}

TEST(python_script_and_openssl)
{
	NEED_FIXTURE();
	char good[256], bad[256], dir[256], cmd[2048];
	snprintf(good, sizeof(good), "%s/py-good.json", fx.root);
	snprintf(bad, sizeof(bad), "%s/py-bad.json", fx.root);
	snprintf(dir, sizeof(dir), "%s/extract", fx.root);
	write_doc(fx.receipt, good);
	struct buf out = BUF_INIT;
	snprintf(cmd, sizeof(cmd), PY " scripts/verify-receipt.py %s --extract %s", good, dir);
	int rc = run(cmd, &out);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "%s", buf_str(&out));

	/* The documented openssl steps on the extracted files. */
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "cd %s && openssl pkeyutl -verify -pubin -inkey log-key.pem "
		 "-rawin -in checkpoint-text.txt -sigfile checkpoint.sig", dir);
	rc = run(cmd, &out);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "%s", buf_str(&out));
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "cd %s && openssl ts -verify -token_in -in tok.der -digest "
		 "$(sha256sum checkpoint.txt | cut -d' ' -f1) -CAfile %s/ca.crt -untrusted "
		 "tsa-certs.pem", dir, fx.keys);
	rc = run(cmd, &out);
	CHECK(rc == 0 && strstr(buf_str(&out), "Verification: OK"));
	if (rc != 0)
		fprintf(stderr, "%s", buf_str(&out));

	/* Tampered: an entry byte, a disclosed value, the message. */
	static const char *what[] = {"entry", "value", "message"};
	for (int i = 0; i < 3; i++) {
		json_t *d = copy();
		if (i == 0) {
			poke(json_object_get(at(d, "events.1"), "entry"), 30);
		} else if (i == 1) {
			const char *k;
			json_t *v;
			json_object_foreach(at(d, "disclosure.values"), k, v) {
				poke(v, 0);
				break;
			}
		} else {
			flip_b64_at(d, "message", "eml_base64", 0);
		}
		write_doc(d, bad);
		json_decref(d);
		buf_reset(&out);
		snprintf(cmd, sizeof(cmd), PY " scripts/verify-receipt.py %s", bad);
		rc = run(cmd, &out);
		if (rc != 1)
			fprintf(stderr, "  %s: script exit %d\n%s", what[i], rc, buf_str(&out));
		CHECK(rc == 1);
	}
	buf_free(&out);
}

/* A short-form receipt in the fuzz corpus: SELO_RECEIPT_SEEDS=DIR writes one. */
TEST(write_fuzz_seed)
{
	const char *dir = getenv("SELO_RECEIPT_SEEDS");
	if (!dir || !fixture())
		return;
	json_t *d = copy();
	json_object_del(at(d, "message"), "eml_base64");
	char *s = json_dumps(d, JSON_PRESERVE_ORDER | JSON_COMPACT);
	char path[512];
	snprintf(path, sizeof(path), "%s/genuine-short.json", dir);
	struct selo_err err;
	CHECK(file_write_atomic(path, s, strlen(s), 0644, &err) == 0);
	free(s);
	json_decref(d);
}
