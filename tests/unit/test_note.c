/* test_note.c: C2SP signed notes and checkpoints (note.h). Runs every case
 * of tests/vectors/tlog/signed_notes.json (open, vkey and deterministic
 * sign cases, the private keys also loaded through log.key files),
 * checkpoints.json and witness_requests.json; checks that Selo's signatures
 * verify with `openssl pkeyutl -verify -rawin`, that flipping any bit of the
 * text or signature is caught, the strict line rules, the 100-line limit,
 * and that note_signer_load reads a keys directory made by keys_init.
 * Temporary files live in a mkdtemp directory under /tmp, removed after. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "selo/note.h"
#include "t.h"

#define VECTORS "tests/vectors/tlog/"
#define DASH "\xE2\x80\x94 "

/* ---- helpers --------------------------------------------------------------- */

static json_t *vectors_load(const char *file)
{
	char path[256];
	json_error_t je;
	snprintf(path, sizeof(path), VECTORS "%s", file);
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		fprintf(stderr, "  cannot load %s: %s (line %d)\n", path, je.text, je.line);
	return j;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The case's note bytes: "note" verbatim, or "note_b64" decoded. */
static void case_bytes(json_t *c, const char *key, const char *b64key, struct buf *out)
{
	json_t *s = json_object_get(c, key);
	if (s) {
		buf_append(out, json_string_value(s), json_string_length(s));
		return;
	}
	const char *b = jstr(c, b64key);
	if (!b)
		return;
	size_t n = strlen(b);
	buf_reserve(out, base64_decoded_max(n));
	ssize_t k = base64_decode(b, n, (uint8_t *)out->data + out->len, base64_decoded_max(n));
	if (k > 0)
		out->len += (size_t)k;
}

struct tmp {
	char root[64];
};

static int tmp_make(struct tmp *t)
{
	snprintf(t->root, sizeof(t->root), "/tmp/selo-test-note-XXXXXX");
	return mkdtemp(t->root) ? 0 : -1;
}

static void tmp_remove(struct tmp *t)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	if (strncmp(t->root, "/tmp/selo-test-", 15) == 0 && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", t->root);
}

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* Splits "PRIVATE+KEY+<name>+<hex id>+<base64(0x01||seed)>" (x/mod's form). */
static int skey_split(const char *skey, char *name, size_t namecap, uint8_t seed[32])
{
	static const char prefix[] = "PRIVATE+KEY+";
	if (strncmp(skey, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	const char *n = skey + sizeof(prefix) - 1;
	const char *p1 = strchr(n, '+');
	if (!p1 || (size_t)(p1 - n) >= namecap || strlen(p1) < 10 || p1[9] != '+')
		return -1;
	memcpy(name, n, (size_t)(p1 - n));
	name[p1 - n] = '\0';
	uint8_t typed[33];
	const char *b = p1 + 10;
	if (base64_decode(b, strlen(b), typed, sizeof(typed)) != 33 || typed[0] != 0x01)
		return -1;
	memcpy(seed, typed + 1, 32);
	return 0;
}

/* Names of the signature lines in lines (as note_open's unknown gives). */
static size_t line_names(const struct buf *lines, char names[][256], size_t cap)
{
	size_t n = 0;
	const char *p = buf_str(lines), *end = p + lines->len;
	while (p < end && n < cap) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *name = p + 4, *sp = memchr(name, ' ', (size_t)(nl - name));
		snprintf(names[n++], 256, "%.*s", (int)(sp - name), name);
		p = nl + 1;
	}
	return n;
}

static const uint8_t seed_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t seed_b[32] = {32, 31, 30};

static struct note_signer *signer(const char *name, const uint8_t seed[32])
{
	struct note_signer *s = NULL;
	struct selo_err err;
	err_clear(&err);
	if (note_signer_new(name, seed, &s, &err) != 0)
		fprintf(stderr, "  note_signer_new: %s\n", err.msg);
	return s;
}

static void verifier_of(const struct note_signer *s, struct note_verifier *v)
{
	struct selo_err err;
	if (note_verifier_parse(note_signer_vkey(s), v, &err) != 0)
		fprintf(stderr, "  note_verifier_parse: %s\n", err.msg);
}

/* note_verify's outcome as the vectors name it. */
static const char *outcome(const struct note_verifier *keys, size_t nkeys, const char *note,
			   size_t len)
{
	struct buf text = BUF_INIT;
	struct selo_err err;
	err_clear(&err);
	int r = note_verify(keys, nkeys, note, len, &text, &err);
	buf_free(&text);
	if (r == 0)
		return "ok";
	if (strcmp(err.type, "note-malformed") == 0)
		return err.status == 400 ? "malformed" : "bad-status";
	if (strcmp(err.type, "note-unverified") == 0)
		return err.status == 403 ? "unverified" : "bad-status";
	if (strcmp(err.type, "note-invalid-signature") == 0)
		return err.status == 403 ? "invalid_signature" : "bad-status";
	return "unexpected-error-type";
}

/* ---- signed_notes.json --------------------------------------------------- */

static void open_case_ok(json_t *c, const struct note_verifier *keys, size_t nkeys,
			 const struct buf *note)
{
	struct buf text = BUF_INIT, unknown = BUF_INIT;
	unsigned char verified[8] = {0};
	struct selo_err err;
	err_clear(&err);
	CHECK(note_open(keys, nkeys, note->data, note->len, &text, verified, &unknown, &err) == 0);
	json_t *want = json_object_get(c, "verified");
	size_t i, nv = 0;
	json_t *v;
	for (i = 0; i < nkeys; i++)
		nv += verified[i];
	CHECK(nv == json_array_size(want));
	json_array_foreach(want, i, v) {
		int found = 0;
		for (size_t k = 0; k < nkeys; k++)
			found |= verified[k] && strcmp(keys[k].name, json_string_value(v)) == 0;
		CHECK(found);
	}
	/* Ignored lines, duplicates collapsed, in note order. */
	char names[8][256];
	size_t nu = line_names(&unknown, names, 8);
	json_t *unv = json_object_get(c, "unverified");
	CHECK(nu == json_array_size(unv));
	json_array_foreach(unv, i, v)
		if (i < nu)
			CHECK_STR(names[i], json_string_value(v));
	if (jstr(c, "text"))
		CHECK_STR(buf_str(&text), jstr(c, "text"));
	buf_free(&text);
	buf_free(&unknown);
}

static void open_case(json_t *c)
{
	struct note_verifier keys[8];
	size_t nkeys = 0, i;
	json_t *v;
	struct selo_err err;
	json_array_foreach(json_object_get(c, "vkeys"), i, v)
		if (nkeys < 8)
			CHECK(note_verifier_parse(json_string_value(v), &keys[nkeys++], &err) == 0);
	struct buf note = BUF_INIT;
	case_bytes(c, "note", "note_b64", &note);
	const char *want = jstr(c, "want");
	const char *got = outcome(keys, nkeys, buf_str(&note), note.len);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "  case %s: got %s, want %s\n", jstr(c, "id"), got, want);
	CHECK_STR(got, want);
	if (strcmp(want, "ok") == 0)
		open_case_ok(c, keys, nkeys, &note);
	/* A case that is well formed but unverified still has its text. */
	size_t textlen, nsigs;
	struct note_sig sigs[NOTE_MAX_SIGS];
	if (strcmp(want, "malformed") != 0 && jstr(c, "text")) {
		CHECK(note_parse(buf_str(&note), note.len, &textlen, sigs, &nsigs, &err) == 0);
		CHECK(textlen == strlen(jstr(c, "text")) &&
		      memcmp(buf_str(&note), jstr(c, "text"), textlen) == 0);
	}
	buf_free(&note);
}

TEST(vectors_signed_note_open_cases)
{
	json_t *j = vectors_load("signed_notes.json");
	CHECK(j != NULL);
	size_t i, n = 0;
	json_t *c;
	json_array_foreach(json_object_get(j, "open_cases"), i, c) {
		open_case(c);
		n++;
	}
	CHECK(n == 20);
	json_decref(j);
}

TEST(vectors_vkey_cases)
{
	json_t *j = vectors_load("signed_notes.json");
	size_t i, n = 0;
	json_t *c;
	json_array_foreach(json_object_get(j, "vkey_cases"), i, c) {
		struct note_verifier v;
		struct selo_err err;
		err_clear(&err);
		int r = note_verifier_parse(jstr(c, "vkey"), &v, &err);
		if (json_is_true(json_object_get(c, "want_ok"))) {
			CHECK(r == 0);
			CHECK_STR(v.name, jstr(c, "name"));
			char id[9];
			snprintf(id, sizeof(id), "%08" PRIx32, v.id);
			CHECK_STR(id, jstr(c, "key_id"));
		} else {
			CHECK(r == -1 && err.status == 400);
		}
		n++;
	}
	CHECK(n == 9);
	json_decref(j);
}

/* The same case through keys_load_note_key: skey written as DIR/log.key. */
static void sign_case_from_file(json_t *c, const char *dir)
{
	char line[512];
	snprintf(line, sizeof(line), "%s\n", jstr(c, "skey"));
	CHECK(write_file(dir, "log.key", line, strlen(line)) == 0);
	struct note_signer *s = NULL;
	struct selo_err err;
	err_clear(&err);
	CHECK(note_signer_load(dir, &s, &err) == 0);
	if (!s)
		return;
	CHECK_STR(note_signer_vkey(s), jstr(c, "vkey"));
	struct buf out = BUF_INIT;
	const char *text = jstr(c, "text");
	CHECK(note_sign(s, text, strlen(text), &out, &err) == 0);
	CHECK_STR(buf_str(&out), jstr(c, "want_note"));
	buf_free(&out);
	note_signer_free(s);
}

TEST(vectors_sign_cases)
{
	json_t *j = vectors_load("signed_notes.json");
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	size_t i, n = 0;
	json_t *c;
	json_array_foreach(json_object_get(j, "sign_cases"), i, c) {
		char name[256];
		uint8_t seed[32];
		CHECK(skey_split(jstr(c, "skey"), name, sizeof(name), seed) == 0);
		struct note_signer *s = signer(name, seed);
		CHECK(s != NULL);
		if (!s)
			continue;
		CHECK_STR(note_signer_name(s), name);
		CHECK_STR(note_signer_vkey(s), jstr(c, "vkey"));
		struct buf out = BUF_INIT, text = BUF_INIT;
		struct selo_err err;
		const char *txt = jstr(c, "text");
		CHECK(note_sign(s, txt, strlen(txt), &out, &err) == 0);
		CHECK_STR(buf_str(&out), jstr(c, "want_note"));
		struct note_verifier v;
		CHECK(note_verifier_parse(jstr(c, "vkey"), &v, &err) == 0);
		CHECK(note_verify(&v, 1, out.data, out.len, &text, &err) == 0);
		CHECK_STR(buf_str(&text), txt);
		buf_free(&out);
		buf_free(&text);
		note_signer_free(s);
		sign_case_from_file(c, t.root);
		n++;
	}
	CHECK(n == 3);
	tmp_remove(&t);
	json_decref(j);
}

/* ---- checkpoints.json ------------------------------------------------------ */

/* The "signatures" of a parse case: names, decoded lengths, and for a
 * cosignature its timestamp and the message it covers. */
static void checkpoint_sigs(json_t *c, const char *in, size_t textlen,
			    const struct note_sig *sigs, size_t nsigs)
{
	json_t *want = json_object_get(c, "signatures"), *w;
	size_t i;
	CHECK(nsigs == json_array_size(want));
	json_array_foreach(want, i, w) {
		if (i >= nsigs)
			break;
		const char *name = jstr(w, "name");
		CHECK(sigs[i].namelen == strlen(name) && memcmp(sigs[i].name, name, sigs[i].namelen) == 0);
		CHECK((json_int_t)(sigs[i].siglen + 4) == json_integer_value(json_object_get(w, "decoded_len")));
		json_t *ts = json_object_get(w, "cosignature_timestamp");
		if (!ts)
			continue;
		uint8_t raw[128];
		CHECK(base64_decode(sigs[i].b64, sigs[i].b64len, raw, sizeof(raw)) == 76);
		uint64_t t = 0;
		for (int k = 4; k < 12; k++)
			t = t << 8 | raw[k];
		CHECK((json_int_t)t == json_integer_value(ts));
		struct buf msg = BUF_INIT;
		buf_printf(&msg, "cosignature/v1\ntime %" PRIu64 "\n", t);
		buf_append(&msg, in, textlen);
		CHECK_STR(buf_str(&msg), jstr(c, "cosigned_message"));
		buf_free(&msg);
	}
}

static void checkpoint_ok(json_t *c, const char *text, size_t len, const struct checkpoint *cp,
			  size_t ext_off)
{
	CHECK_STR(cp->origin, jstr(c, "origin"));
	CHECK((json_int_t)cp->size == json_integer_value(json_object_get(c, "size")));
	char hex[65];
	hex_encode(cp->root, 32, hex);
	CHECK_STR(hex, jstr(c, "root_hex"));
	/* Extension lines, in order, from ext_off. */
	json_t *ext = json_object_get(c, "extensions"), *e;
	size_t i, n = 0;
	const char *p = text + ext_off, *end = text + len;
	json_array_foreach(ext, i, e) {
		const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		CHECK(nl != NULL);
		if (!nl)
			break;
		CHECK((size_t)(nl - p) == strlen(json_string_value(e)) &&
		      memcmp(p, json_string_value(e), (size_t)(nl - p)) == 0);
		p = nl + 1;
		n++;
	}
	CHECK(p == end && n == json_array_size(ext));
	/* Without extensions the text is exactly what checkpoint_format writes. */
	if (n == 0) {
		struct buf again = BUF_INIT;
		checkpoint_format(cp, &again);
		CHECK(again.len == len && memcmp(again.data, text, len) == 0);
		buf_free(&again);
	}
}

TEST(vectors_checkpoints)
{
	json_t *j = vectors_load("checkpoints.json");
	size_t i, n = 0;
	json_t *c;
	json_array_foreach(json_object_get(j, "parse_cases"), i, c) {
		json_t *in = json_object_get(c, "input");
		const char *s = json_string_value(in);
		size_t len = json_string_length(in), textlen = len, nsigs = 0, ext_off = 0;
		struct note_sig sigs[NOTE_MAX_SIGS];
		struct selo_err err;
		/* An input with signatures is a signed note: its text is the checkpoint. */
		if (note_parse(s, len, &textlen, sigs, &nsigs, &err) != 0)
			textlen = len;
		if (json_object_get(c, "signatures"))
			checkpoint_sigs(c, s, textlen, sigs, nsigs);
		struct checkpoint cp;
		err_clear(&err);
		int r = checkpoint_parse_ext(s, textlen, &cp, &ext_off, &err);
		int want = json_is_true(json_object_get(c, "want_ok"));
		if ((r == 0) != want)
			fprintf(stderr, "  case %s: got %d (%s)\n", jstr(c, "id"), r, err.msg);
		CHECK((r == 0) == want);
		if (r == 0 && want)
			checkpoint_ok(c, s, textlen, &cp, ext_off);
		if (r != 0)
			CHECK(strcmp(err.type, "checkpoint-malformed") == 0 &&
			      (err.status == 400 || err.status == 422));
		n++;
	}
	CHECK(n == 16);
	json_decref(j);
}

/* ---- witness_requests.json ------------------------------------------------- */

/* A tlog-witness add-checkpoint body: "old N\n", up to 63 base64 proof
 * hashes, a blank line, the signed checkpoint. Parsed here with note.h's
 * pieces (the witness endpoint itself is not part of note.c): the size rule
 * of checkpoint_parse_size, note_parse for the note, checkpoint_parse for
 * its text. Returns 0 when well formed. */
static int witness_body_parse(const char *b, size_t len, uint64_t *old, size_t *nproof,
			      struct checkpoint *cp)
{
	const char *blank = memmem(b, len, "\n\n", 2);
	if (!blank || len < 4 || memcmp(b, "old ", 4) != 0)
		return -1;
	const char *nl = memchr(b, '\n', len);
	if (checkpoint_parse_size(b + 4, (size_t)(nl - b - 4), old) != 0)
		return -1;
	*nproof = 0;
	for (const char *p = nl + 1; p <= blank; (*nproof)++) {
		const char *e = memchr(p, '\n', (size_t)(blank + 1 - p));
		uint8_t h[32];
		if (*nproof == 63 || base64_decode(p, (size_t)(e - p), h, 32) != 32)
			return -1;
		p = e + 1;
	}
	const char *note = blank + 2;
	size_t nlen = len - (size_t)(note - b), textlen, nsigs;
	struct note_sig sigs[NOTE_MAX_SIGS];
	struct selo_err err;
	if (note_parse(note, nlen, &textlen, sigs, &nsigs, &err) != 0)
		return -1;
	return checkpoint_parse(note, textlen, cp, &err);
}

TEST(vectors_witness_requests)
{
	json_t *j = vectors_load("witness_requests.json");
	size_t i, n = 0;
	json_t *c;
	json_array_foreach(json_object_get(j, "cases"), i, c) {
		json_t *body = json_object_get(c, "body");
		const char *b = json_string_value(body);
		size_t len = json_string_length(body), nproof = 0;
		uint64_t old = 0;
		struct checkpoint cp;
		int r = witness_body_parse(b, len, &old, &nproof, &cp);
		int want = json_is_true(json_object_get(c, "want_ok"));
		CHECK((r == 0) == want);
		if (r == 0 && want) {
			CHECK((json_int_t)old == json_integer_value(json_object_get(c, "old_size")));
			CHECK((json_int_t)nproof == json_integer_value(json_object_get(c, "proof_len")));
			CHECK((json_int_t)cp.size ==
			      json_integer_value(json_object_get(c, "checkpoint_size")));
			CHECK_STR(cp.origin, "example.com/behind-the-sofa");
		}
		n++;
	}
	CHECK(n == 3);
	/* The specific refusals: a leading zero in "old", and a body with no
	 * blank line, which is not a signed note either. */
	CHECK(checkpoint_parse_size("020852014", 9, &(uint64_t){0}) == -1);
	static const char nb[] = "old 5\nexample.com/behind-the-sofa\n20852163\n"
				 "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
	size_t tl, ns;
	struct note_sig sigs[NOTE_MAX_SIGS];
	struct selo_err err;
	CHECK(note_parse(nb, sizeof(nb) - 1, &tl, sigs, &ns, &err) == -1);
	CHECK_STR(err.type, "note-malformed");
	json_decref(j);
}

/* ---- Selo's own signatures ------------------------------------------------- */

/* Writes pub as a PEM SubjectPublicKeyInfo for the openssl CLI. */
static int pub_pem(const char *dir, const uint8_t pub[32])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	char path[256];
	snprintf(path, sizeof(path), "%s/pub.pem", dir);
	FILE *f = fopen(path, "w");
	int ok = k && f && PEM_write_PUBKEY(f, k) == 1;
	if (f)
		ok = fclose(f) == 0 && ok;
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

/* The 64 signature bytes of the note's last line. */
static int last_sig(const struct buf *note, uint8_t sig[64])
{
	const char *sp = NULL;
	for (size_t i = note->len - 1; i > 0 && !sp; i--)
		if (note->data[i - 1] == ' ')
			sp = note->data + i;
	uint8_t raw[68];
	if (!sp || base64_decode(sp, (size_t)(note->data + note->len - 1 - sp), raw, 68) != 68)
		return -1;
	memcpy(sig, raw + 4, 64);
	return 0;
}

static int openssl_verify(const char *dir, const char *msgfile)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && /usr/bin/openssl pkeyutl -verify -pubin -inkey pub.pem -rawin "
		 "-in %s -sigfile sig.bin >/dev/null 2>&1", dir, msgfile);
	return system(cmd);
}

TEST(signature_verifies_with_openssl_cli)
{
	static const char text[] = "selo.example/log\n42\n"
				   "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
	struct note_signer *s = signer("selo.example/log", seed_a);
	struct note_verifier v;
	verifier_of(s, &v);
	struct buf note = BUF_INIT, out = BUF_INIT;
	struct selo_err err;
	CHECK(note_sign(s, text, sizeof(text) - 1, &note, &err) == 0);
	CHECK(note_verify(&v, 1, note.data, note.len, &out, &err) == 0);
	CHECK_STR(buf_str(&out), text);
	uint8_t sig[64];
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	CHECK(last_sig(&note, sig) == 0);
	CHECK(pub_pem(t.root, v.pub) == 0);
	CHECK(write_file(t.root, "sig.bin", sig, sizeof(sig)) == 0);
	CHECK(write_file(t.root, "msg.txt", text, sizeof(text) - 1) == 0);
	CHECK(openssl_verify(t.root, "msg.txt") == 0);
	/* The message is the text with its final newline, nothing more or less. */
	CHECK(write_file(t.root, "short.txt", text, sizeof(text) - 2) == 0);
	CHECK(openssl_verify(t.root, "short.txt") != 0);
	CHECK(write_file(t.root, "long.txt", note.data, sizeof(text)) == 0);
	CHECK(openssl_verify(t.root, "long.txt") != 0);
	tmp_remove(&t);
	buf_free(&note);
	buf_free(&out);
	note_signer_free(s);
}

TEST(any_flipped_bit_is_caught)
{
	static const char text[] = "Notice 01J0000000000000000000000\ndelivered\n";
	struct note_signer *s = signer("selo.example/log", seed_a);
	struct note_verifier v;
	verifier_of(s, &v);
	struct buf note = BUF_INIT;
	struct selo_err err;
	CHECK(note_sign(s, text, sizeof(text) - 1, &note, &err) == 0);
	CHECK_STR(outcome(&v, 1, note.data, note.len), "ok");
	int fails = 0;
	for (size_t i = 0; i < note.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			note.data[i] ^= (char)(1 << bit);
			fails += strcmp(outcome(&v, 1, note.data, note.len), "ok") != 0;
			note.data[i] ^= (char)(1 << bit);
		}
	CHECK(fails == (int)note.len * 8);
	/* Every bit of the raw signature, re-encoded as valid base64. */
	uint8_t raw[68];
	const char *b64 = note.data + sizeof(text) + 4 + strlen(note_signer_name(s)) + 1;
	size_t b64len = note.len - (size_t)(b64 - note.data) - 1;
	CHECK(base64_decode(b64, b64len, raw, sizeof(raw)) == 68);
	fails = 0;
	for (size_t i = 4; i < 68; i++)
		for (int bit = 0; bit < 8; bit++) {
			raw[i] ^= (uint8_t)(1 << bit);
			struct buf bad = BUF_INIT;
			buf_append(&bad, note.data, (size_t)(b64 - note.data));
			base64_encode(&bad, raw, sizeof(raw), 0);
			buf_putc(&bad, '\n');
			fails += strcmp(outcome(&v, 1, bad.data, bad.len), "invalid_signature") == 0;
			buf_free(&bad);
			raw[i] ^= (uint8_t)(1 << bit);
		}
	CHECK(fails == 64 * 8);
	buf_free(&note);
	note_signer_free(s);
}

TEST(sign_refuses_invalid_text)
{
	struct note_signer *s = signer("selo.example/log", seed_a);
	static const char *bad[] = {"", "no newline", "ends blank\n\n", "\n", "ctl\x01\n",
				    "cr\r\n", "tab\there\n", "nul\0x\n", "\xff\n", "\xc0\xaf\n",
				    "\xed\xa0\x80\n", "\xf4\x90\x80\x80\n", "\xe2\x80\n", NULL};
	static const size_t badlen[] = {0, 10, 12, 1, 5, 4, 9, 6, 2, 3, 4, 5, 3};
	struct selo_err err;
	for (int i = 0; bad[i]; i++) {
		struct buf out = BUF_INIT;
		err_clear(&err);
		CHECK(note_sign(s, bad[i], badlen[i], &out, &err) == -1);
		CHECK(out.len == 0 && err.status == 400);
		buf_free(&out);
	}
	/* Inner blank lines and any valid UTF-8 are fine; the split still finds
	 * the text because it is made at the last blank line. */
	static const char good[] = "Aviso de cobrança\n\ndébito — R$ 10\n\xf0\x9f\x93\x9c\n";
	struct note_verifier v;
	verifier_of(s, &v);
	struct buf out = BUF_INIT, text = BUF_INIT;
	CHECK(note_sign(s, good, sizeof(good) - 1, &out, &err) == 0);
	CHECK(note_verify(&v, 1, out.data, out.len, &text, &err) == 0);
	CHECK_STR(buf_str(&text), good);
	buf_free(&out);
	buf_free(&text);
	note_signer_free(s);
	/* Key names follow keys.c's rule for Selo's own keys. */
	struct note_signer *x = NULL;
	CHECK(note_signer_new("bad name", seed_a, &x, &err) == -1 && x == NULL);
	CHECK(note_signer_new("bad+name", seed_a, &x, &err) == -1 && x == NULL);
	CHECK(note_signer_new("", seed_a, &x, &err) == -1 && x == NULL);
}

/* A note signed by a and b (two lines), built from two single signatures. */
static void two_signers(struct note_signer *a, struct note_signer *b, const char *text,
			struct buf *note)
{
	struct buf nb = BUF_INIT;
	struct selo_err err;
	CHECK(note_sign(a, text, strlen(text), note, &err) == 0);
	CHECK(note_sign(b, text, strlen(text), &nb, &err) == 0);
	buf_append(note, nb.data + strlen(text) + 1, nb.len - strlen(text) - 1);
	buf_free(&nb);
}

TEST(known_and_unknown_keys)
{
	struct note_signer *a = signer("log.example/a", seed_a);
	struct note_signer *b = signer("witness.example/b", seed_b);
	struct note_signer *a2 = signer("log.example/a", seed_b); /* same name, other key */
	struct note_verifier va, vb, va2;
	verifier_of(a, &va);
	verifier_of(b, &vb);
	verifier_of(a2, &va2);
	CHECK(va.id != va2.id);
	struct buf note = BUF_INIT;
	two_signers(a, b, "hello\n", &note);
	struct note_verifier both[2] = {va, vb};
	unsigned char ver[2] = {9, 9};
	struct buf text = BUF_INIT, unk = BUF_INIT;
	struct selo_err err;
	CHECK(note_open(both, 2, note.data, note.len, &text, ver, &unk, &err) == 0);
	CHECK(ver[0] == 1 && ver[1] == 1 && unk.len == 0);
	CHECK_STR(outcome(&vb, 1, note.data, note.len), "ok");
	/* Same name, other key: a different key ID, so the line is ignored. */
	CHECK_STR(outcome(&va2, 1, note.data, note.len), "unverified");
	struct note_verifier mixed[2] = {va2, vb};
	buf_reset(&unk);
	CHECK(note_open(mixed, 2, note.data, note.len, &text, ver, &unk, &err) == 0);
	CHECK(ver[0] == 0 && ver[1] == 1);
	CHECK(unk.len > 0 && memcmp(unk.data, DASH "log.example/a ", 18) == 0);
	/* A forged key with the right name and ID but another public key is a
	 * known key whose signature fails. */
	struct note_verifier forged = va;
	forged.pub[0] ^= 1;
	CHECK_STR(outcome(&forged, 1, note.data, note.len), "invalid_signature");
	buf_free(&note);
	buf_free(&text);
	buf_free(&unk);
	note_signer_free(a);
	note_signer_free(b);
	note_signer_free(a2);
}

/* Replaces the last signature line's base64 with base64(id || bytes). */
static void note_with_sig(const char *text, const char *name, uint32_t id, const uint8_t *sig,
			  size_t n, struct buf *out)
{
	uint8_t raw[256];
	raw[0] = (uint8_t)(id >> 24), raw[1] = (uint8_t)(id >> 16);
	raw[2] = (uint8_t)(id >> 8), raw[3] = (uint8_t)id;
	memcpy(raw + 4, sig, n);
	buf_printf(out, "%s\n" DASH "%s ", text, name);
	base64_encode(out, raw, n + 4, 0);
	buf_putc(out, '\n');
}

TEST(signature_line_rules)
{
	struct note_signer *a = signer("log.example/a", seed_a);
	struct note_verifier va;
	verifier_of(a, &va);
	struct buf good = BUF_INIT;
	struct selo_err err;
	CHECK(note_sign(a, "t\n", 2, &good, &err) == 0);
	struct buf n = BUF_INIT;
	uint8_t sig[100] = {0};
	/* A known key's line must hold 64 signature bytes; 65 or 63 is a failure. */
	note_with_sig("t\n", "log.example/a", va.id, sig, 65, &n);
	CHECK_STR(outcome(&va, 1, n.data, n.len), "invalid_signature");
	buf_reset(&n);
	note_with_sig("t\n", "log.example/a", va.id, sig, 63, &n);
	CHECK_STR(outcome(&va, 1, n.data, n.len), "invalid_signature");
	/* A cosignature-shaped line (72 bytes) under another ID is ignored. */
	buf_reset(&n);
	buf_append(&n, good.data, good.len);
	uint8_t cosig[76] = {0xde, 0xad, 0xbe, 0xef};
	buf_puts(&n, DASH "log.example/a ");
	base64_encode(&n, cosig, sizeof(cosig), 0);
	buf_putc(&n, '\n');
	CHECK_STR(outcome(&va, 1, n.data, n.len), "ok");
	/* Malformed lines. */
	static const char *bad_lines[] = {
		DASH "log.example/a AAAA\n",                 /* 3 bytes: no signature */
		DASH "log.example/a AAAAAAA\n",              /* no padding */
		DASH "log.example/a AAAAAA==\n",             /* 4 bytes: a key ID alone */
		DASH "log.example/a AAAAAA-_\n",             /* base64url */
		DASH "log.example/a \n",                     /* empty base64 */
		DASH " AAAAAAA=\n",                          /* empty name */
		DASH "log\xc2\xa0name AAAAAAA=\n",           /* U+00A0 in the name */
		DASH "log\xe3\x80\x80name AAAAAAA=\n",       /* U+3000 in the name */
		DASH "log+name AAAAAAA=\n",                  /* '+' */
		"- log.example/a AAAAAAA=\n",                /* ASCII hyphen */
		"\xE2\x80\x94log.example/a AAAAAAA=\n",      /* no space after the dash */
		DASH "log.example/a AAAAAAB=\n",             /* non-zero trailing bits */
		DASH "log.example/a  AAAAAAA=\n",            /* two spaces */
		NULL};
	for (int i = 0; bad_lines[i]; i++) {
		buf_reset(&n);
		buf_append(&n, good.data, good.len);
		buf_puts(&n, bad_lines[i]);
		if (strcmp(outcome(&va, 1, n.data, n.len), "malformed") != 0)
			fprintf(stderr, "  bad line %d accepted\n", i);
		CHECK_STR(outcome(&va, 1, n.data, n.len), "malformed");
	}
	/* A well-formed unknown line is fine; 5 decoded bytes is the minimum. */
	buf_reset(&n);
	buf_append(&n, good.data, good.len);
	buf_puts(&n, DASH "other\xc3\xa9 AAAAAAA=\n");
	CHECK_STR(outcome(&va, 1, n.data, n.len), "ok");
	buf_free(&n);
	buf_free(&good);
	note_signer_free(a);
}

TEST(duplicates_and_line_limit)
{
	struct note_signer *a = signer("log.example/a", seed_a);
	struct note_verifier va;
	verifier_of(a, &va);
	struct buf good = BUF_INIT, n = BUF_INIT, unk = BUF_INIT, text = BUF_INIT;
	struct selo_err err;
	CHECK(note_sign(a, "t\n", 2, &good, &err) == 0);
	const char *line = good.data + 3;
	size_t linelen = good.len - 3;
	/* The same good line twice: accepted. */
	buf_append(&n, good.data, good.len);
	buf_append(&n, line, linelen);
	CHECK_STR(outcome(&va, 1, n.data, n.len), "ok");
	/* A second, different, bad line by the same known key: rejected
	 * (stricter than x/mod, which checks only a key's first line). */
	uint8_t zero[64] = {0};
	buf_reset(&n);
	note_with_sig("t\n", "log.example/a", va.id, zero, 64, &n);
	struct buf two = BUF_INIT;
	buf_append(&two, good.data, good.len);
	buf_append(&two, n.data + 3, n.len - 3);
	CHECK_STR(outcome(&va, 1, two.data, two.len), "invalid_signature");
	buf_free(&two);
	/* 100 lines (1 good, 99 distinct unknown) are accepted, 101 are not. */
	buf_reset(&n);
	buf_append(&n, good.data, good.len);
	for (int i = 0; i < 99; i++) {
		uint8_t raw[8] = {0, 0, 0, (uint8_t)i, 1, 2, 3, 4};
		buf_printf(&n, DASH "w%d ", i % 3);
		base64_encode(&n, raw, sizeof(raw), 0);
		buf_putc(&n, '\n');
	}
	CHECK(note_open(&va, 1, n.data, n.len, &text, NULL, &unk, &err) == 0);
	char names[128][256];
	CHECK(line_names(&unk, names, 128) == 99);
	buf_append(&n, line, linelen);
	CHECK_STR(outcome(&va, 1, n.data, n.len), "malformed");
	/* The limit is on lines, whoever signed them: duplicates count. */
	buf_reset(&n);
	buf_append(&n, good.data, good.len);
	for (int i = 0; i < 100; i++)
		buf_append(&n, line, linelen);
	CHECK_STR(outcome(&va, 1, n.data, n.len), "malformed");
	buf_free(&n);
	buf_free(&good);
	buf_free(&unk);
	buf_free(&text);
	note_signer_free(a);
}

TEST(note_parse_shapes)
{
	struct note_sig sigs[NOTE_MAX_SIGS];
	size_t tl = 0, ns = 0;
	struct selo_err err;
	/* The smallest note x/mod accepts: the text is a single newline. */
	static const char tiny[] = "\n\n" DASH "a AAAAAAA=\n";
	CHECK(note_parse(tiny, sizeof(tiny) - 1, &tl, sigs, &ns, &err) == 0);
	CHECK(tl == 1 && ns == 1 && sigs[0].namelen == 1 && sigs[0].siglen == 1);
	static const char *bad[] = {"", "\n", "\n\n", "a\n\n" DASH "a AAAAAAA=",
				    "a\n\n" DASH "a AAAAAAA=\r\n", "a\n\n\n" DASH "a AAAAAAA=\n\n",
				    NULL};
	for (int i = 0; bad[i]; i++)
		CHECK(note_parse(bad[i], strlen(bad[i]), &tl, sigs, &ns, &err) == -1);
	/* note_verify with no keys never accepts anything. */
	CHECK_STR(outcome(NULL, 0, tiny, sizeof(tiny) - 1), "unverified");
}

/* ---- checkpoints ----------------------------------------------------------- */

TEST(checkpoint_format_parse_round_trip)
{
	static const uint64_t sizes[] = {0, 1, 9, 10, 255, 256, 20852163, UINT64_MAX};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct checkpoint c = {.size = sizes[i]}, back;
		snprintf(c.origin, sizeof(c.origin), "selo.example/log");
		if (c.size == 0)
			sha256("", 0, c.root);
		else
			random_bytes(c.root, sizeof(c.root));
		struct buf t = BUF_INIT;
		struct selo_err err;
		checkpoint_format(&c, &t);
		size_t ext = 0;
		CHECK(checkpoint_parse_ext(t.data, t.len, &back, &ext, &err) == 0);
		CHECK(memcmp(&c, &back, sizeof(c)) == 0 && ext == t.len);
		buf_free(&t);
	}
	uint64_t v;
	CHECK(checkpoint_parse_size("18446744073709551615", 20, &v) == 0 && v == UINT64_MAX);
	CHECK(checkpoint_parse_size("18446744073709551616", 20, &v) == -1);
	CHECK(checkpoint_parse_size("0", 1, &v) == 0 && v == 0);
	CHECK(checkpoint_parse_size("00", 2, &v) == -1);
	CHECK(checkpoint_parse_size("", 0, &v) == -1);
	CHECK(checkpoint_parse_size("-1", 2, &v) == -1);
	CHECK(checkpoint_parse_size("1 ", 2, &v) == -1);
	CHECK(checkpoint_parse_size("000000000000000000001", 21, &v) == -1);
}

TEST(checkpoint_limits)
{
	struct checkpoint c;
	struct selo_err err;
	struct buf t = BUF_INIT;
	static const char root[] = "rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=";
	/* 255-byte origins fit struct checkpoint; 256 do not. */
	for (int i = 0; i < 255; i++)
		buf_putc(&t, 'o');
	buf_printf(&t, "\n3\n%s\n", root);
	CHECK(checkpoint_parse(t.data, t.len, &c, &err) == 0 && strlen(c.origin) == 255);
	buf_reset(&t);
	for (int i = 0; i < 256; i++)
		buf_putc(&t, 'o');
	buf_printf(&t, "\n3\n%s\n", root);
	CHECK(checkpoint_parse(t.data, t.len, &c, &err) == -1);
	static const char *bad[] = {
		"o\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n\n",      /* empty ext line */
		"o\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\nx\n\n",   /* ...after one */
		"o\n3\n rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n",       /* space */
		"o\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc\n",         /* no padding */
		"o\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\nx",       /* no final \n */
		"o\t\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n",      /* control */
		"\xff\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n",     /* not UTF-8 */
		"", "\n", NULL};
	for (int i = 0; bad[i]; i++)
		CHECK(checkpoint_parse(bad[i], strlen(bad[i]), &c, &err) == -1);
	/* The origin may have spaces (the Go sumdb's "go.sum database tree"). */
	static const char spaced[] = "a b\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\nx\n";
	size_t ext = 0;
	CHECK(checkpoint_parse_ext(spaced, sizeof(spaced) - 1, &c, &ext, &err) == 0);
	CHECK_STR(c.origin, "a b");
	CHECK(ext == sizeof(spaced) - 3);
	/* Size 0 without the empty root: 422, as tlog-witness answers. */
	static const char zero[] = "o\n0\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n";
	CHECK(checkpoint_parse(zero, sizeof(zero) - 1, &c, &err) == -1 && err.status == 422);
	buf_free(&t);
}

TEST(signed_checkpoint_end_to_end)
{
	struct note_signer *s = signer("selo.example/log", seed_a);
	struct note_verifier v;
	verifier_of(s, &v);
	struct checkpoint c = {.size = 7}, back;
	snprintf(c.origin, sizeof(c.origin), "%s", note_signer_name(s));
	random_bytes(c.root, sizeof(c.root));
	struct buf t = BUF_INIT, note = BUF_INIT, text = BUF_INIT;
	struct selo_err err;
	checkpoint_format(&c, &t);
	CHECK(note_sign(s, t.data, t.len, &note, &err) == 0);
	CHECK(note_verify(&v, 1, note.data, note.len, &text, &err) == 0);
	CHECK(checkpoint_parse(text.data, text.len, &back, &err) == 0);
	CHECK(memcmp(&c, &back, sizeof(c)) == 0);
	buf_free(&t);
	buf_free(&note);
	buf_free(&text);
	note_signer_free(s);
}

/* ---- keys_init ----------------------------------------------------------- */

TEST(signer_load_from_keys_init)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	char keys[128];
	snprintf(keys, sizeof(keys), "%s/keys", t.root);
	struct keys_report rep;
	struct selo_err err;
	err_clear(&err);
	CHECK(keys_init(keys, "example.com", "notices@example.com", "example.com/selo", 0, &rep,
			&err) == 0);
	struct note_signer *s = NULL;
	CHECK(note_signer_load(keys, &s, &err) == 0);
	if (s) {
		char path[256];
		snprintf(path, sizeof(path), "%s/log.vkey", keys);
		struct buf file = BUF_INIT, want = BUF_INIT, note = BUF_INIT, text = BUF_INIT;
		CHECK(file_read(path, 4096, &file, &err) == 0);
		buf_printf(&want, "%s\n", note_signer_vkey(s));
		CHECK_STR(buf_str(&file), buf_str(&want));
		CHECK_STR(note_signer_vkey(s), rep.log_vkey);
		CHECK_STR(note_signer_name(s), "example.com/selo");
		struct note_verifier v;
		CHECK(note_verifier_parse(rep.log_vkey, &v, &err) == 0);
		CHECK(note_sign(s, "x\n", 2, &note, &err) == 0);
		CHECK(note_verify(&v, 1, note.data, note.len, &text, &err) == 0);
		buf_free(&file);
		buf_free(&want);
		buf_free(&note);
		buf_free(&text);
		note_signer_free(s);
	}
	s = (struct note_signer *)1;
	CHECK(note_signer_load(t.root, &s, &err) == -1 && s == NULL); /* no log.key */
	tmp_remove(&t);
}
