/* receipt.c: receipt_verify (receipt.h), the offline check of a
 * selo-receipt/v1 document (docs/receipt.md). The JSON is read once into a
 * struct doc by the "format" check (every field present, typed and decoded,
 * nothing unknown), then one function per named check runs, in the order of
 * receipt.h, each adding one line to the report. Nothing in the receipt is
 * trusted: sizes are capped, decoders are strict, and no input aborts; a
 * check that cannot run because an earlier one failed says so and fails,
 * so the verdict is VALID only when every line passed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/keys.h"
#include "selo/note.h"
#include "selo/receipt.h"
#include "selo/tlog.h"
#include "selo/tsa.h"

/* Limits: a long-form receipt carries the message (25 MiB by default,
 * a third more in base64); entries are at most 65535 bytes (tlog-tiles). */
#define MAX_RECEIPT_BYTES ((size_t)64 << 20)
#define MAX_EVENTS 10000
#define MAX_ENTRY 65535
#define MAX_NOTE 65536
#define MAX_TOKEN 65536
#define MAX_CERTS 8
#define MAX_CERT_PEM 65536
#define MAX_VKEY 1024
/* The report has RECEIPT_MAX_CHECKS lines: the fixed checks take at most
 * 12; events beyond INCLUSION_LINES share one summary line. */
#define INCLUSION_LINES (RECEIPT_MAX_CHECKS - 16)
#define TS_TOLERANCE_MS 1000

struct ev {
	uint64_t index;
	const char *entry;          /* exact entry bytes, owned by doc.root */
	size_t len;
	uint8_t (*proof)[32];
	size_t nproof;
	json_t *obj;                /* the entry parsed, when it is a JSON object */
	const char *type;           /* its "type", or "?" */
	int64_t time_ms;
	int time_ok;
};

struct doc {
	json_t *root;
	const char *notice, *issued_at, *vkey, *note, *sha256;
	size_t note_len;
	uint8_t *tst;
	size_t tst_len;
	X509 *cert[MAX_CERTS];
	size_t ncert;
	struct buf certs_pem;       /* every certificate, concatenated (untrusted) */
	const char *last_pem;       /* the last one, the default trust anchor */
	size_t last_len;
	struct ev *ev;
	size_t nev;
	uint8_t *eml;
	size_t eml_len;
	int has_eml;
	uint8_t salt[32];
	json_t *values;
};

struct ctx {
	struct receipt_report *rep;
	struct doc d;
	struct buf text;            /* the checkpoint's note text */
	char key_name[256];         /* name of the key the checkpoint was checked with */
	struct checkpoint cp;
	int cp_ok;
	int64_t gen_ms;             /* the timestamp's genTime, when it verified */
	int ts_ok;
};

/* ---- report lines ---------------------------------------------------- */

/* Details carry text from the receipt: keep them one printable line of
 * valid UTF-8 so a terminal or a web page shows them as they are. */
static void sanitize(char *s)
{
	size_t n = strlen(s), i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
			: (c & 0xf8) == 0xf0 ? 4 : 0;
		int good = k > 0 && i + k <= n && (k == 1 || c >= 0xc2);
		for (size_t j = 1; good && j < k; j++)
			good = ((unsigned char)s[i + j] & 0xc0) == 0x80;
		if (!good && i + k > n && k > 1) {
			s[i] = '\0'; /* a character cut by truncation */
			return;
		}
		if (!good || c < 0x20 || c == 0x7f) {
			s[i++] = '?';
			continue;
		}
		i += k;
	}
}

static void vadd(struct ctx *c, const char *name, int ok, const char *fmt, va_list ap)
{
	struct receipt_report *r = c->rep;
	if (r->n >= RECEIPT_MAX_CHECKS) {
		/* Never drop a failure: it takes the last line's place. */
		if (ok != 0)
			return;
		r->n = RECEIPT_MAX_CHECKS - 1;
	}
	struct receipt_check *k = &r->checks[r->n++];
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->ok = ok;
	vsnprintf(k->detail, sizeof(k->detail), fmt, ap);
	sanitize(k->detail);
}

__attribute__((format(printf, 4, 5))) static void add(struct ctx *c, const char *name, int ok,
						    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vadd(c, name, ok, fmt, ap);
	va_end(ap);
}

static void time_text(int64_t ms, char out[32])
{
	clock_rfc3339(ms, out);
}

/* ---- format: reading the document ------------------------------------- */

struct problems {
	int n;
	int fatal;                  /* the document cannot be used by later checks */
	char first[320];
};

__attribute__((format(printf, 3, 4))) static void bad(struct problems *p, int fatal,
						      const char *fmt, ...)
{
	if (fatal)
		p->fatal = 1;
	if (p->n++)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->first, sizeof(p->first), fmt, ap);
	va_end(ap);
}

/* Every key of o must be in allowed (NULL-terminated). */
static void only_keys(json_t *o, const char *const *allowed, const char *where,
		      struct problems *p)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], k))
			i++;
		if (!allowed[i])
			bad(p, 0, "unknown field \"%.40s\" in %s", k, where);
	}
}

static const char *get_string(json_t *o, const char *key, const char *where, size_t max,
			      struct problems *p)
{
	json_t *v = json_object_get(o, key);
	if (!v) {
		bad(p, 1, "%s.%s is missing", where, key);
		return NULL;
	}
	if (!json_is_string(v)) {
		bad(p, 1, "%s.%s is not a string", where, key);
		return NULL;
	}
	if (json_string_length(v) > max) {
		bad(p, 1, "%s.%s is longer than %zu bytes", where, key, max);
		return NULL;
	}
	return json_string_value(v);
}

static json_t *get_typed(json_t *o, const char *key, const char *where, int want_object,
			 struct problems *p)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		bad(p, 1, "%s.%s is missing", where, key);
	else if (want_object ? !json_is_object(v) : !json_is_array(v))
		bad(p, 1, "%s.%s is not %s", where, key, want_object ? "an object" : "an array");
	else
		return v;
	return NULL;
}

static int lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Decodes strict base64 into a malloc'd buffer; NULL when invalid. */
static uint8_t *b64_dup(const char *s, size_t slen, size_t *n)
{
	size_t cap = base64_decoded_max(slen) + 1;
	uint8_t *out = xmalloc(cap);
	ssize_t k = base64_decode(s, slen, out, cap);
	if (k < 0) {
		free(out);
		return NULL;
	}
	*n = (size_t)k;
	return out;
}

/* A certificate must be in the exact PEM form OpenSSL writes, so that the
 * text has one meaning and no byte of it can change unnoticed. */
static X509 *cert_from_pem(const char *pem, size_t len)
{
	BIO *in = BIO_new_mem_buf(pem, (int)len);
	X509 *x = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
	BIO_free(in);
	if (!x)
		return NULL;
	BIO *out = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n = out && PEM_write_bio_X509(out, x) == 1 ? BIO_get_mem_data(out, &p) : 0;
	int same = n > 0 && (size_t)n == len && memcmp(p, pem, len) == 0;
	BIO_free(out);
	if (!same) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static void read_certs(struct doc *d, json_t *arr, struct problems *p)
{
	size_t n = json_array_size(arr);
	if (n == 0 || n > MAX_CERTS) {
		bad(p, 1, "log.tsa_certs must hold 1 to %d certificates, not %zu", MAX_CERTS, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		if (!json_is_string(v) || json_string_length(v) > MAX_CERT_PEM) {
			bad(p, 1, "log.tsa_certs[%zu] is not a PEM certificate", i);
			return;
		}
		const char *pem = json_string_value(v);
		size_t len = json_string_length(v);
		X509 *x = cert_from_pem(pem, len);
		if (!x) {
			bad(p, 1, "log.tsa_certs[%zu] is not one certificate in PEM as OpenSSL "
				  "writes it", i);
			return;
		}
		d->cert[d->ncert++] = x;
		buf_append(&d->certs_pem, pem, len);
		d->last_pem = pem;
		d->last_len = len;
	}
}

static void read_log(struct doc *d, json_t *log, struct problems *p)
{
	static const char *const keys[] = {"verifier_key", "checkpoint", "timestamp", "tsa_certs",
					   NULL};
	only_keys(log, keys, "log", p);
	d->vkey = get_string(log, "verifier_key", "log", MAX_VKEY, p);
	if (d->vkey) {
		char name[256];
		uint8_t pub[32];
		struct selo_err err;
		char canon[MAX_VKEY + 1];
		if (note_vkey_parse(d->vkey, name, sizeof(name), pub, &err) != 0)
			bad(p, 0, "log.verifier_key: %s", err.msg);
		else if (note_vkey_format(name, pub, canon, sizeof(canon)) != 0 ||
			 strcmp(canon, d->vkey) != 0)
			bad(p, 0, "log.verifier_key is not written in its one form (%.100s)", canon);
	}
	d->note = get_string(log, "checkpoint", "log", MAX_NOTE, p);
	if (d->note)
		d->note_len = strlen(d->note);
	const char *ts = get_string(log, "timestamp", "log", MAX_TOKEN * 2, p);
	if (ts && !(d->tst = b64_dup(ts, strlen(ts), &d->tst_len)))
		bad(p, 1, "log.timestamp is not base64");
	json_t *certs = get_typed(log, "tsa_certs", "log", 0, p);
	if (certs)
		read_certs(d, certs, p);
}

static int read_proof(struct ev *e, json_t *arr, size_t i, struct problems *p)
{
	size_t n = json_array_size(arr);
	if (n > TLOG_MAX_PROOF) {
		bad(p, 1, "events[%zu].proof has %zu hashes, more than %d", i, n, TLOG_MAX_PROOF);
		return -1;
	}
	e->proof = xcalloc(n, 32);
	for (size_t j = 0; j < n; j++) {
		json_t *h = json_array_get(arr, j);
		if (!json_is_string(h) ||
		    base64_decode(json_string_value(h), json_string_length(h), e->proof[j], 32) != 32) {
			bad(p, 1, "events[%zu].proof[%zu] is not the base64 of a 32-byte hash", i, j);
			return -1;
		}
	}
	e->nproof = n;
	return 0;
}

static void read_event(struct ev *e, json_t *o, size_t i, struct problems *p)
{
	static const char *const keys[] = {"index", "entry", "proof", NULL};
	char where[32];
	snprintf(where, sizeof(where), "events[%zu]", i);
	if (!json_is_object(o)) {
		bad(p, 1, "%s is not an object", where);
		return;
	}
	only_keys(o, keys, where, p);
	json_t *ix = json_object_get(o, "index");
	if (!json_is_integer(ix) || json_integer_value(ix) < 0) {
		bad(p, 1, "%s.index is not a non-negative integer", where);
		return;
	}
	e->index = (uint64_t)json_integer_value(ix);
	e->entry = get_string(o, "entry", where, MAX_ENTRY, p);
	if (e->entry)
		e->len = strlen(e->entry);
	json_t *proof = get_typed(o, "proof", where, 0, p);
	if (proof)
		read_proof(e, proof, i, p);
}

static void read_events(struct doc *d, json_t *arr, struct problems *p)
{
	size_t n = json_array_size(arr);
	if (n == 0 || n > MAX_EVENTS) {
		bad(p, 1, "events must hold 1 to %d events, not %zu", MAX_EVENTS, n);
		return;
	}
	d->ev = xcalloc(n, sizeof(*d->ev));
	d->nev = n;
	for (size_t i = 0; i < n; i++) {
		read_event(&d->ev[i], json_array_get(arr, i), i, p);
		if (i > 0 && d->ev[i].index <= d->ev[i - 1].index)
			bad(p, 0, "events are not in log order: events[%zu].index %llu follows %llu",
			    i, (unsigned long long)d->ev[i].index,
			    (unsigned long long)d->ev[i - 1].index);
	}
}

static void read_message(struct doc *d, json_t *m, struct problems *p)
{
	static const char *const keys[] = {"sha256", "eml_base64", NULL};
	only_keys(m, keys, "message", p);
	d->sha256 = get_string(m, "sha256", "message", 64, p);
	if (d->sha256 && !lower_hex(d->sha256, 64))
		bad(p, 0, "message.sha256 is not 64 lowercase hex digits");
	json_t *eml = json_object_get(m, "eml_base64");
	if (!eml)
		return;
	if (!json_is_string(eml) ||
	    !(d->eml = b64_dup(json_string_value(eml), json_string_length(eml), &d->eml_len))) {
		bad(p, 1, "message.eml_base64 is not base64");
		return;
	}
	d->has_eml = 1;
}

static void read_disclosure(struct doc *d, json_t *o, struct problems *p)
{
	static const char *const keys[] = {"salt", "values", NULL};
	only_keys(o, keys, "disclosure", p);
	const char *salt = get_string(o, "salt", "disclosure", 64, p);
	if (salt && (!lower_hex(salt, 64) || hex_decode(salt, 64, d->salt, 32) != 32))
		bad(p, 1, "disclosure.salt is not 64 lowercase hex digits");
	d->values = get_typed(o, "values", "disclosure", 1, p);
	const char *k;
	json_t *v;
	if (d->values)
		json_object_foreach(d->values, k, v)
			if (!json_is_string(v))
				bad(p, 1, "disclosure.values[\"%.24s\"] is not a string", k);
}

/* A time as the store writes it ("2026-11-23T18:00:00.123Z"), the one form. */
static int time_canonical(const char *s)
{
	int64_t ms;
	char canon[32];
	if (clock_parse_rfc3339(s, &ms) != 0)
		return 0;
	clock_rfc3339(ms, canon);
	return strcmp(canon, s) == 0;
}

static void read_doc(struct doc *d, json_t *root, struct problems *p)
{
	static const char *const keys[] = {"format", "notice", "issued_at", "log", "events",
					   "message", "disclosure", NULL};
	only_keys(root, keys, "the receipt", p);
	d->notice = get_string(root, "notice", "receipt", 64, p);
	d->issued_at = get_string(root, "issued_at", "receipt", 64, p);
	if (d->issued_at && !time_canonical(d->issued_at))
		bad(p, 0, "issued_at is not an RFC 3339 UTC time with milliseconds");
	json_t *o;
	if ((o = get_typed(root, "log", "receipt", 1, p)))
		read_log(d, o, p);
	if ((o = get_typed(root, "events", "receipt", 0, p)))
		read_events(d, o, p);
	if ((o = get_typed(root, "message", "receipt", 1, p)))
		read_message(d, o, p);
	if ((o = get_typed(root, "disclosure", "receipt", 1, p)))
		read_disclosure(d, o, p);
}

/* The entries are the log's own JSON: parsed here once for the checks on
 * their content; an entry that is not an object keeps obj NULL. */
static void parse_entries(struct doc *d)
{
	for (size_t i = 0; i < d->nev; i++) {
		struct ev *e = &d->ev[i];
		e->type = "?";
		json_t *o = json_loadb(e->entry, e->len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(o)) {
			json_decref(o);
			continue;
		}
		e->obj = o;
		json_t *t = json_object_get(o, "type");
		if (json_is_string(t))
			e->type = json_string_value(t);
		json_t *tm = json_object_get(o, "time");
		e->time_ok = json_is_string(tm) &&
			     clock_parse_rfc3339(json_string_value(tm), &e->time_ms) == 0;
	}
}

/* Returns 0 when the document can go on to the other checks, 1 when it is
 * not a selo-receipt/v1 at all (UNREADABLE), -1 when a field is unusable. */
static int check_format(struct ctx *c, const char *json, size_t len)
{
	if (!json || len == 0 || len > MAX_RECEIPT_BYTES) {
		add(c, "format", 0, "not a receipt: %s", !json || !len ? "empty input"
			: "larger than 64 MiB");
		return 1;
	}
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		add(c, "format", 0, "not a JSON document (line %d, column %d: %s)", jerr.line,
		    jerr.column, jerr.text);
		return 1;
	}
	c->d.root = root;
	json_t *f = json_object_get(root, "format");
	if (!json_is_object(root) || !json_is_string(f)) {
		add(c, "format", 0, "JSON, but not a Selo receipt (no \"format\" field)");
		return 1;
	}
	if (strcmp(json_string_value(f), RECEIPT_FORMAT) != 0) {
		add(c, "format", 0, "format is \"%.60s\"; this verifier reads " RECEIPT_FORMAT,
		    json_string_value(f));
		return 1;
	}
	struct problems p = {0};
	read_doc(&c->d, root, &p);
	if (p.n) {
		add(c, "format", 0, "%s%s", p.first, p.n > 1 ? " (and more problems)" : "");
		if (p.fatal)
			return -1;
	} else {
		add(c, "format", 1, RECEIPT_FORMAT ", every field present and well formed; %zu "
				    "event%s, %s", c->d.nev, c->d.nev == 1 ? "" : "s",
		    c->d.has_eml ? "with the message bytes" : "short form (no message bytes)");
	}
	parse_entries(&c->d);
	return 0;
}

static void doc_free(struct doc *d)
{
	for (size_t i = 0; i < d->nev; i++) {
		free(d->ev[i].proof);
		json_decref(d->ev[i].obj);
	}
	free(d->ev);
	for (size_t i = 0; i < d->ncert; i++)
		X509_free(d->cert[i]);
	buf_free(&d->certs_pem);
	free(d->tst);
	free(d->eml);
	json_decref(d->root);
}

/* ---- notice ----------------------------------------------------------- */

static void check_notice(struct ctx *c)
{
	const char *id = c->d.notice;
	snprintf(c->rep->notice, sizeof(c->rep->notice), "%s", id);
	sanitize(c->rep->notice);
	if (!id_text_valid(id)) {
		add(c, "notice", 0, "\"%.40s\" is not a notice id (26 characters of Crockford "
				    "base32)", id);
		return;
	}
	add(c, "notice", 1, "the receipt is for notice %s", id);
}

/* ---- checkpoint signature, origin -------------------------------------- */

/* When the signature does not verify the other checks still read the note
 * text (everything up to the last blank line), to say what else is wrong. */
static void receipt_note_text_unverified(struct ctx *c)
{
	buf_reset(&c->text);
	const char *n = c->d.note;
	for (size_t i = c->d.note_len; i >= 2; i--)
		if (n[i - 1] == '\n' && n[i - 2] == '\n') {
			buf_append(&c->text, n, i - 1);
			return;
		}
}

/* Trims the line end a verifier key read from a file keeps. */
static void vkey_copy(const char *in, char out[MAX_VKEY + 1])
{
	snprintf(out, MAX_VKEY + 1, "%s", in);
	size_t n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		out[--n] = '\0';
}

static int same_key(const char *a, const char *b)
{
	char na[256], nb[256];
	uint8_t pa[32], pb[32];
	struct selo_err err;
	return note_vkey_parse(a, na, sizeof(na), pa, &err) == 0 &&
	       note_vkey_parse(b, nb, sizeof(nb), pb, &err) == 0 && !strcmp(na, nb) &&
	       !memcmp(pa, pb, 32);
}

static void check_signature(struct ctx *c, const char *pinned)
{
	const char *use = pinned ? pinned : c->d.vkey;
	const char *whose = pinned ? "the key given to the verifier" : "the key inside the receipt";
	struct note_verifier v;
	struct selo_err err;
	memset(&v, 0, sizeof(v));
	receipt_note_text_unverified(c);
	if (note_vkey_parse(use, v.name, sizeof(v.name), v.pub, &err) != 0) {
		add(c, "checkpoint_signature", 0, "%s cannot be used: %s", whose, err.msg);
		return;
	}
	v.id = note_key_id(v.name, v.pub);
	snprintf(c->key_name, sizeof(c->key_name), "%s", v.name);
	struct buf text = BUF_INIT;
	int r = note_verify(&v, 1, c->d.note, c->d.note_len, &text, &err);
	if (r != 0) {
		buf_free(&text);
		add(c, "checkpoint_signature", 0, "the checkpoint is not validly signed by %s (%.80s "
		    "%08x): %s", whose, v.name, (unsigned)v.id, err.msg);
		return;
	}
	buf_free(&c->text);
	c->text = text;
	add(c, "checkpoint_signature", 1, "the checkpoint carries a valid Ed25519 signature by "
	    "%.80s (key ID %08x), %s%s", v.name, (unsigned)v.id, whose,
	    pinned && !same_key(pinned, c->d.vkey) ? "; the receipt names a different key" : "");
}

static void check_key_pinned(struct ctx *c, const char *pinned)
{
	if (!pinned) {
		add(c, "key_pinned", -1, "the log key came from the receipt itself (%.160s): compare "
		    "it with the key the operator publishes, or give it (--key)", c->d.vkey);
		return;
	}
	if (!same_key(pinned, c->d.vkey)) {
		add(c, "key_pinned", 0, "the receipt names the log key %.140s, not the key given "
		    "(%.140s): it was altered or belongs to another log", c->d.vkey, pinned);
		return;
	}
	add(c, "key_pinned", 1, "the log key is the one given to the verifier, and the one the "
	    "receipt names");
}

static void check_origin(struct ctx *c)
{
	struct selo_err err;
	if (checkpoint_parse(buf_str(&c->text), c->text.len, &c->cp, &err) != 0) {
		add(c, "checkpoint_origin", 0, "the checkpoint text is not a C2SP checkpoint: %s",
		    err.msg);
		return;
	}
	c->cp_ok = 1; /* its root still serves the inclusion checks */
	if (!c->key_name[0] || strcmp(c->cp.origin, c->key_name) != 0) {
		add(c, "checkpoint_origin", 0, "the checkpoint's origin \"%.100s\" is not the name "
		    "of the key checked (\"%.100s\")", c->cp.origin, c->key_name);
		return;
	}
	char root[64];
	struct buf b = BUF_INIT;
	base64_encode(&b, c->cp.root, 32, 0);
	snprintf(root, sizeof(root), "%s", buf_str(&b));
	buf_free(&b);
	add(c, "checkpoint_origin", 1, "log %.100s, tree size %llu, root %s; the origin is the "
	    "signing key's name", c->cp.origin, (unsigned long long)c->cp.size, root);
}

/* ---- timestamp --------------------------------------------------------- */

static void subject_of(X509 *x, char *out, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long len = 0;
	if (b && X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0)
		len = BIO_get_mem_data(b, &p);
	snprintf(out, n, "%.*s", (int)(len > 0 ? len : 0), p ? p : "");
	BIO_free(b);
}

/* Each certificate must be issued (and signed) by the next and the last
 * must be a self-signed root: so no certificate in the list is decoration
 * whose bytes could change without the verdict changing. */
static int chain_linked(const struct doc *d, char *why, size_t n)
{
	for (size_t i = 0; i < d->ncert; i++) {
		X509 *issuer = d->cert[i + 1 < d->ncert ? i + 1 : i];
		EVP_PKEY *k = X509_get0_pubkey(issuer);
		if (X509_check_issued(issuer, d->cert[i]) != X509_V_OK || !k ||
		    X509_verify(d->cert[i], k) != 1) {
			snprintf(why, n, i + 1 < d->ncert ? "log.tsa_certs[%zu] is not signed by the "
				 "certificate after it" : "the last of log.tsa_certs (%zu) is not a "
				 "self-signed root", i);
			return 0;
		}
	}
	return 1;
}

/* An algorithm's parameters: absent or NULL, the only two encodings in use
 * for SHA-2, RSA and ECDSA (anything else is an unsigned variation). */
static int params_plain(const X509_ALGOR *a)
{
	int type;
	const void *val;
	X509_ALGOR_get0(NULL, &type, &val, a);
	return type == V_ASN1_UNDEF || type == V_ASN1_NULL;
}

static int is_one_of(X509 *x, const struct doc *d)
{
	for (size_t i = 0; i < d->ncert; i++)
		if (X509_cmp(x, d->cert[i]) == 0)
			return 1;
	return 0;
}

/* The signature algorithm named beside a signer's signature is not signed
 * and OpenSSL goes by the key: it must name the signer's digest and key
 * type (or be the bare rsaEncryption that PKCS #7 signers also write). */
static int sig_alg_consistent(const PKCS7_SIGNER_INFO *si, X509 *signer)
{
	int enc = OBJ_obj2nid(si->digest_enc_alg->algorithm);
	int md = OBJ_obj2nid(si->digest_alg->algorithm);
	EVP_PKEY *k = X509_get0_pubkey(signer);
	int kt = k ? EVP_PKEY_get_base_id(k) : NID_undef;
	int sig_md, sig_pk;
	if (enc != NID_undef && OBJ_find_sigid_algs(enc, &sig_md, &sig_pk))
		return sig_pk == kt && (sig_md == md || sig_md == NID_undef);
	return enc == EVP_PKEY_RSA && kt == EVP_PKEY_RSA;
}

/* The signature of a token covers its TSTInfo, not the SignedData around
 * it. So that no byte of a receipt can change without the verdict
 * changing, the unsigned parts must have their only form: canonical DER,
 * SignedData version 3, one signer (version 1, no unsigned attributes, its
 * signature algorithm consistent with its key), plain algorithm parameters,
 * no CRLs, and only certificates the receipt lists (the first one is the
 * TSA's, receipt.h).
 * NULL when so; otherwise what is not. */
static const char *receipt_token_unsigned_parts(const struct doc *d)
{
	const unsigned char *p = d->tst;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)d->tst_len);
	const char *why = NULL;
	unsigned char *again = NULL;
	int n = p7 ? i2d_PKCS7(p7, &again) : -1;
	if (!p7 || !PKCS7_type_is_signed(p7) || !p7->d.sign || p != d->tst + d->tst_len ||
	    n != (int)d->tst_len || memcmp(again, d->tst, d->tst_len) != 0) {
		why = "it is not one token in canonical DER";
		goto out;
	}
	PKCS7_SIGNED *s = p7->d.sign;
	PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_num(s->signer_info) == 1
					? sk_PKCS7_SIGNER_INFO_value(s->signer_info, 0) : NULL;
	if (ASN1_INTEGER_get(s->version) != 3 || !si || ASN1_INTEGER_get(si->version) != 1 ||
	    si->unauth_attr || s->crl || !params_plain(si->digest_alg) ||
	    !params_plain(si->digest_enc_alg) || !sig_alg_consistent(si, d->cert[0])) {
		why = "its SignedData has an unexpected version, signer, algorithm parameters, "
		      "CRLs or unsigned attributes";
		goto out;
	}
	X509_ALGOR *md = sk_X509_ALGOR_num(s->md_algs) == 1 ? sk_X509_ALGOR_value(s->md_algs, 0)
							    : NULL;
	if (!md || !params_plain(md) || OBJ_cmp(md->algorithm, si->digest_alg->algorithm) != 0)
		why = "its digest algorithms are not exactly the signer's";
	for (int i = 0; i < sk_X509_num(s->cert); i++)
		if (!is_one_of(sk_X509_value(s->cert, i), d))
			why = "it embeds a certificate that is not in log.tsa_certs";
out:
	OPENSSL_free(again);
	PKCS7_free(p7);
	return why;
}

static void check_timestamp(struct ctx *c, const char *ca_pem, size_t ca_len)
{
	const struct doc *d = &c->d;
	char why[160];
	if (!chain_linked(d, why, sizeof(why))) {
		add(c, "checkpoint_timestamp", 0, "the TSA certificates do not form a chain: %s", why);
		return;
	}
	const char *odd = receipt_token_unsigned_parts(d);
	if (odd) {
		add(c, "checkpoint_timestamp", 0, "the timestamp token was altered outside its "
		    "signature: %s", odd);
		return;
	}
	uint8_t digest[32];
	char hex[65], name[256] = "", when[32], root[160];
	sha256(d->note, d->note_len, digest);
	hex_encode(digest, 32, hex);
	struct selo_err err;
	err_clear(&err);
	const char *ca = ca_pem ? ca_pem : d->last_pem;
	size_t calen = ca_pem ? ca_len : d->last_len;
	if (tsa_verify_token(d->tst, d->tst_len, digest, ca, calen, buf_str(&d->certs_pem),
			     d->certs_pem.len, &c->gen_ms, name, sizeof(name), &err) != 0) {
		add(c, "checkpoint_timestamp", 0, "the RFC 3161 timestamp does not verify over "
		    "SHA-256 of the checkpoint (%.16s...): %s", hex, err.msg);
		return;
	}
	c->ts_ok = 1;
	time_text(c->gen_ms, when);
	subject_of(d->cert[d->ncert - 1], root, sizeof(root));
	add(c, "checkpoint_timestamp", 1, "RFC 3161 timestamp over SHA-256 of the checkpoint "
	    "(%.16s...): time %s (UTC), TSA %.120s, chain to %.100s", hex, when, name, root);
}

static void check_tsa_pinned(struct ctx *c, int pinned)
{
	char root[160];
	if (pinned) {
		add(c, "tsa_pinned", 1, "the TSA's certificate was checked against the CA "
		    "certificates given to the verifier");
		return;
	}
	subject_of(c->d.cert[c->d.ncert - 1], root, sizeof(root));
	add(c, "tsa_pinned", -1, "the TSA's CA came from the receipt itself (%.150s): compare it "
	    "with the TSA's published CA, or give it (--tsa-ca)", root);
}

/* ---- inclusion --------------------------------------------------------- */

/* 1 when event e is in the checkpoint's tree; otherwise why into out. */
static int included(const struct ctx *c, const struct ev *e, char *out, size_t n)
{
	if (!c->cp_ok) {
		snprintf(out, n, "there is no readable checkpoint to check the proof against");
		return 0;
	}
	if (e->index >= c->cp.size) {
		snprintf(out, n, "the index is beyond the checkpoint's tree size %llu",
			 (unsigned long long)c->cp.size);
		return 0;
	}
	uint8_t leaf[32];
	tlog_leaf_hash(e->entry, e->len, leaf);
	if (tlog_verify_inclusion(e->index, c->cp.size, leaf, (const uint8_t(*)[32])e->proof,
				  e->nproof, c->cp.root) != 0) {
		snprintf(out, n, "the proof does not lead from the entry's hash to the checkpoint's "
			 "root: the entry, its index or the proof was changed");
		return 0;
	}
	snprintf(out, n, "the entry's hash and its %zu-hash proof lead to the root of the "
		 "checkpoint's tree of %llu", e->nproof, (unsigned long long)c->cp.size);
	return 1;
}

static void check_inclusion(struct ctx *c)
{
	const struct doc *d = &c->d;
	char why[200];
	size_t each = d->nev <= INCLUSION_LINES ? d->nev : INCLUSION_LINES - 1;
	for (size_t i = 0; i < each; i++) {
		int ok = included(c, &d->ev[i], why, sizeof(why));
		add(c, "inclusion", ok, "event #%llu (%.40s): %s",
		    (unsigned long long)d->ev[i].index, d->ev[i].type, why);
	}
	if (each == d->nev)
		return;
	size_t failed = 0, first = 0;
	for (size_t i = each; i < d->nev; i++)
		if (!included(c, &d->ev[i], why, sizeof(why)) && !failed++)
			first = i;
	if (failed)
		add(c, "inclusion", 0, "%zu of events #%llu and after fail, first #%llu (%.40s)", failed,
		    (unsigned long long)d->ev[each].index, (unsigned long long)d->ev[first].index,
		    d->ev[first].type);
	else
		add(c, "inclusion", 1, "the %zu events from #%llu on: every entry's proof leads to "
		    "the checkpoint's root", d->nev - each, (unsigned long long)d->ev[each].index);
}

/* ---- what the entries say ---------------------------------------------- */

/* NULL when e is a version-1 event of the notice; otherwise what is wrong. */
static const char *entry_problem(const struct ev *e, const char *notice)
{
	if (!e->obj)
		return "the entry is not a JSON object (or repeats a key)";
	json_t *v = json_object_get(e->obj, "v");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return "\"v\" is not 1";
	if (!json_is_string(json_object_get(e->obj, "type")))
		return "\"type\" is missing";
	if (!json_is_string(json_object_get(e->obj, "time")))
		return "\"time\" is missing";
	json_t *n = json_object_get(e->obj, "notice");
	if (!json_is_string(n) || strcmp(json_string_value(n), notice) != 0)
		return "it is an event of another notice";
	return NULL;
}

static void check_entries_notice(struct ctx *c)
{
	const struct doc *d = &c->d;
	for (size_t i = 0; i < d->nev; i++) {
		const char *why = entry_problem(&d->ev[i], d->notice);
		if (why) {
			add(c, "entries_notice", 0, "event #%llu: %s", (unsigned long long)d->ev[i].index,
			    why);
			return;
		}
	}
	add(c, "entries_notice", 1, "all %zu entries are version-1 events of notice %.40s", d->nev,
	    d->notice);
}

static void check_time_order(struct ctx *c)
{
	const struct doc *d = &c->d;
	for (size_t i = 0; i < d->nev; i++) {
		const struct ev *e = &d->ev[i];
		if (!e->time_ok) {
			add(c, "time_order", 0, "event #%llu has no RFC 3339 \"time\"",
			    (unsigned long long)e->index);
			return;
		}
		if (i > 0 && e->time_ms < d->ev[i - 1].time_ms) {
			add(c, "time_order", 0, "event #%llu (%.40s) is dated before the event logged "
			    "ahead of it", (unsigned long long)e->index, e->type);
			return;
		}
	}
	if (strcmp(d->ev[0].type, EV_SUBMISSION_ACCEPTED) != 0) {
		add(c, "time_order", 0, "the first event is %.40s, not submission_accepted",
		    d->ev[0].type);
		return;
	}
	int64_t issued = 0;
	const struct ev *last = &d->ev[d->nev - 1];
	if (clock_parse_rfc3339(d->issued_at, &issued) != 0 || issued < last->time_ms) {
		add(c, "time_order", 0, "issued_at (%.40s) is not a time after the last event",
		    d->issued_at);
		return;
	}
	char a[32], b[32];
	time_text(d->ev[0].time_ms, a);
	time_text(last->time_ms, b);
	add(c, "time_order", 1, "%zu events from %s to %s (UTC) in log order, the first "
	    "submission_accepted; receipt issued %.40s", d->nev, a, b, d->issued_at);
}

static void check_before_timestamp(struct ctx *c)
{
	const struct doc *d = &c->d;
	if (!c->ts_ok) {
		add(c, "entries_before_timestamp", 0, "cannot be checked: the timestamp did not "
		    "verify");
		return;
	}
	char ts[32], t[32];
	time_text(c->gen_ms, ts);
	for (size_t i = 0; i < d->nev; i++) {
		const struct ev *e = &d->ev[i];
		if (!e->time_ok || e->time_ms > c->gen_ms + TS_TOLERANCE_MS) {
			if (e->time_ok)
				time_text(e->time_ms, t);
			add(c, "entries_before_timestamp", 0, "event #%llu (%.40s) is dated %s, after "
			    "the timestamp's %s", (unsigned long long)e->index, e->type,
			    e->time_ok ? t : "(no time)", ts);
			return;
		}
	}
	add(c, "entries_before_timestamp", 1, "every event is dated no later than the timestamp "
	    "(%s, 1 s tolerance): they existed when it was made", ts);
}

/* ---- message ----------------------------------------------------------- */

static const struct ev *sealed_event(const struct doc *d, const struct ev **any)
{
	*any = NULL;
	for (size_t i = 0; i < d->nev; i++) {
		const struct ev *e = &d->ev[i];
		if (!e->obj || strcmp(e->type, EV_CONTENT_SEALED) != 0)
			continue;
		*any = e;
		json_t *h = json_object_get(e->obj, "sha256");
		if (d->sha256 && json_is_string(h) && !strcmp(json_string_value(h), d->sha256))
			return e;
	}
	return NULL;
}

static void check_message(struct ctx *c)
{
	const struct doc *d = &c->d;
	const struct ev *any, *e = sealed_event(d, &any);
	if (!e) {
		if (any)
			add(c, "message_digest", 0, "message.sha256 is not the digest sealed in event "
			    "#%llu (content_sealed)", (unsigned long long)any->index);
		else
			add(c, "message_digest", 0, "no content_sealed event in the receipt: nothing "
			    "seals the message");
		return;
	}
	if (!d->has_eml) {
		add(c, "message_digest", 1, "message SHA-256 %.16s... is the one sealed in event "
		    "#%llu; short form: no message bytes", d->sha256, (unsigned long long)e->index);
		return;
	}
	char hex[65];
	sha256_hex(d->eml, d->eml_len, hex);
	json_t *size = json_object_get(e->obj, "size");
	if (strcmp(hex, d->sha256) != 0) {
		add(c, "message_digest", 0, "the message bytes hash to %.16s..., not to the sealed "
		    "%.16s...: the message was changed", hex, d->sha256);
		return;
	}
	if (json_is_integer(size) && (json_int_t)d->eml_len != json_integer_value(size)) {
		add(c, "message_digest", 0, "the message has %zu bytes, the sealed event says %lld",
		    d->eml_len, (long long)json_integer_value(size));
		return;
	}
	add(c, "message_digest", 1, "the %zu message bytes hash to %.16s..., the digest sealed in "
	    "event #%llu", d->eml_len, hex, (unsigned long long)e->index);
}

/* ---- disclosures ------------------------------------------------------- */

struct committed {
	const char *value;          /* a "sha256:<hex>" string in an entry */
	const char *type, *field;
};
struct committed_list {
	struct committed *v;
	size_t n, cap;
};

static void collect(struct committed_list *l, json_t *j, const char *type, const char *field)
{
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		if (json_string_length(j) != SELO_COMMIT_LEN || strncmp(s, "sha256:", 7) != 0)
			return;
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 16;
			l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
		}
		l->v[l->n++] = (struct committed){s, type, field};
		return;
	}
	size_t i;
	const char *k;
	json_t *v;
	if (json_is_object(j))
		json_object_foreach(j, k, v)
			collect(l, v, type, k);
	else if (json_is_array(j))
		json_array_foreach(j, i, v)
			collect(l, v, type, field);
}

static int committed_cmp(const void *a, const void *b)
{
	return strcmp(((const struct committed *)a)->value, ((const struct committed *)b)->value);
}

/* Appends "type.field" to the list of what was disclosed, once each. */
static void name_field(struct buf *names, const struct committed *w)
{
	char item[128];
	snprintf(item, sizeof(item), "%.40s.%.40s", w->type, w->field);
	const char *p = buf_str(names);
	size_t n = strlen(item);
	for (const char *q = strstr(p, item); q; q = strstr(q + 1, item))
		if ((q == p || q[-1] == ' ') && (q[n] == ',' || q[n] == '\0'))
			return;
	if (names->len)
		buf_puts(names, ", ");
	buf_puts(names, item);
}

static void check_disclosures(struct ctx *c)
{
	const struct doc *d = &c->d;
	struct committed_list l = {0};
	for (size_t i = 0; i < d->nev; i++)
		if (d->ev[i].obj)
			collect(&l, d->ev[i].obj, d->ev[i].type, "?");
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), committed_cmp);
	struct buf names = BUF_INIT;
	const char *k;
	json_t *v;
	size_t n = 0;
	int failed = 0;
	json_object_foreach(d->values, k, v) {
		char mine[SELO_COMMIT_LEN + 1];
		commitment(d->salt, 32, json_string_value(v), json_string_length(v), mine);
		struct committed key = {k, NULL, NULL};
		const struct committed *w = l.n ? bsearch(&key, l.v, l.n, sizeof(*l.v),
							  committed_cmp) : NULL;
		if (strcmp(mine, k) != 0) {
			add(c, "disclosures", 0, "the value disclosed for %.24s... does not match that "
			    "commitment under the salt: the value or the salt was changed", k);
			failed = 1;
			break;
		}
		if (!w) {
			add(c, "disclosures", 0, "%.24s... is disclosed but no entry commits to it", k);
			failed = 1;
			break;
		}
		name_field(&names, w);
		n++;
	}
	if (!failed && n == 0)
		add(c, "disclosures", 1, "nothing disclosed");
	else if (!failed)
		add(c, "disclosures", 1, "%zu disclosed value%s match%s the commitments in the entries "
		    "(%.300s)", n, n == 1 ? "" : "s", n == 1 ? "es" : "", buf_str(&names));
	buf_free(&names);
	free(l.v);
}

/* ---- the whole ---------------------------------------------------------- */

static enum receipt_verdict verdict_of(const struct receipt_report *rep)
{
	for (int i = 0; i < rep->n; i++)
		if (rep->checks[i].ok == 0)
			return RECEIPT_INVALID;
	return RECEIPT_VALID;
}

static void run_checks(struct ctx *c, const char *vkey, const char *ca_pem, size_t ca_len)
{
	char pinned[MAX_VKEY + 1];
	if (vkey)
		vkey_copy(vkey, pinned);
	check_notice(c);
	check_signature(c, vkey ? pinned : NULL);
	check_key_pinned(c, vkey ? pinned : NULL);
	check_origin(c);
	check_timestamp(c, ca_pem, ca_len);
	check_tsa_pinned(c, ca_pem != NULL);
	check_inclusion(c);
	check_entries_notice(c);
	check_time_order(c);
	check_before_timestamp(c);
	check_message(c);
	check_disclosures(c);
}

enum receipt_verdict receipt_verify(const char *json, size_t len, const char *vkey,
				    const char *tsa_ca_pem, size_t ca_len,
				    struct receipt_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	struct ctx c;
	memset(&c, 0, sizeof(c));
	c.rep = rep;
	int r = check_format(&c, json, len);
	if (r == 0)
		run_checks(&c, vkey, tsa_ca_pem, ca_len);
	buf_free(&c.text);
	doc_free(&c.d);
	rep->verdict = r > 0 ? RECEIPT_UNREADABLE : verdict_of(rep);
	return rep->verdict;
}
