/* note.c: C2SP signed notes with Ed25519 keys, and tlog checkpoints
 * (note.h). A signer holds one EVP_PKEY, made once and never changed, so
 * threads may sign with it at the same time. note_parse is the one place a
 * note from outside is read: it checks the whole note (UTF-8, no control
 * characters, the split at the last blank line, every signature line, at
 * most NOTE_MAX_SIGS of them) before any signature is looked at; note_open
 * then checks every line signed by a known (name, key ID) pair and ignores
 * the others. checkpoint_parse reads a note's text as a C2SP checkpoint.
 * Failures return -1 with err: 400 malformed, 403 no trusted signature or a
 * trusted signature that fails, 422 a size-0 checkpoint without the empty
 * root, 500 when OpenSSL fails. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/keys.h"
#include "selo/note.h"

#define KEY_ID_LEN 4
#define ED25519_SIG_LEN 64
#define SIG_PREFIX "\xE2\x80\x94 " /* U+2014 EM DASH, then a space */
#define SIG_PREFIX_LEN 4

struct note_signer {
	char name[256];
	uint32_t id;
	char vkey[512];
	EVP_PKEY *key; /* never modified after note_signer_new: safe to share */
};

/* ---- text rules ------------------------------------------------------- */

/* Note text and signature lines: valid UTF-8 with no control character
 * below U+0020 except "\n" (so no "\r" either). */
static int text_chars_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_decode(p + i, n - i, &cp);
		if (k == 0 || (cp < 0x20 && cp != '\n'))
			return 0;
		i += k;
	}
	return 1;
}

/* Go's unicode.IsSpace: the Unicode White_Space characters. */
static int unicode_space(uint32_t c)
{
	switch (c) {
	case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
	case 0x202F: case 0x205F: case 0x3000:
		return 1;
	default:
		return (c >= 0x09 && c <= 0x0D) || (c >= 0x2000 && c <= 0x200A);
	}
}

/* A key name in a signature line: non-empty, no Unicode space, no '+'
 * (C2SP signed-note). Longer or non-ASCII names are legal here even though
 * Selo's own keys (keys.c) are shorter ASCII: they are someone else's. */
static int sig_name_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_decode(p + i, n - i, &cp);
		if (k == 0 || unicode_space(cp) || cp == '+')
			return 0;
		i += k;
	}
	return 1;
}

/* Why text cannot be signed, or NULL when it can. */
static const char *sign_text_problem(const char *text, size_t len)
{
	if (len == 0)
		return "it is empty";
	if (text[len - 1] != '\n')
		return "it does not end in a newline";
	/* A final empty line would sit next to the separating blank line. */
	if (len == 1 || text[len - 2] == '\n')
		return "it ends in an empty line";
	if (!text_chars_ok(text, len))
		return "it is not UTF-8, or has control characters other than newline";
	return NULL;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- Ed25519 (one-shot: OpenSSL has no streaming Ed25519) ------------- */

static int ed25519_sign(EVP_PKEY *key, const void *msg, size_t n, uint8_t sig[64])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t sl = ED25519_SIG_LEN;
	int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, key) == 1 &&
		 EVP_DigestSign(c, sig, &sl, msg, n) == 1 && sl == ED25519_SIG_LEN;
	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

/* 1 when sig is pub's signature of msg. Any OpenSSL failure counts as a
 * bad signature; its error queue is dropped so it cannot leak into the
 * next err_add_openssl of this thread. */
static int ed25519_verify(const uint8_t pub[32], const uint8_t sig[64], const void *msg,
			  size_t n)
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = k && c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1 &&
		 EVP_DigestVerify(c, sig, ED25519_SIG_LEN, msg, n) == 1;
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return ok;
}

/* ---- signer ------------------------------------------------------------ */

int note_signer_new(const char *name, const uint8_t seed[32], struct note_signer **out,
		    struct selo_err *err)
{
	*out = NULL;
	struct note_signer *s = xcalloc(1, sizeof(*s));
	s->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	uint8_t pub[32];
	size_t pn = sizeof(pub);
	if (!s->key || EVP_PKEY_get_raw_public_key(s->key, pub, &pn) != 1 || pn != 32) {
		err_set(err, 500, "crypto", "cannot make the Ed25519 note key");
		err_add_openssl(err);
		note_signer_free(s);
		return -1;
	}
	if (strlen(name) >= sizeof(s->name) ||
	    note_vkey_format(name, pub, s->vkey, sizeof(s->vkey)) != 0) {
		note_signer_free(s);
		return err_set(err, 400, "invalid-key",
			       "note key name \"%.64s\" must be 1 to 255 printable ASCII characters "
			       "without spaces or '+'", name);
	}
	memcpy(s->name, name, strlen(name) + 1);
	s->id = note_key_id(name, pub);
	*out = s;
	return 0;
}

int note_signer_load(const char *keys_dir, struct note_signer **out, struct selo_err *err)
{
	char name[256];
	uint8_t seed[32], pub[32];
	*out = NULL;
	if (keys_load_note_key(keys_dir, name, sizeof(name), seed, pub, err) != 0) {
		OPENSSL_cleanse(seed, sizeof(seed));
		return -1;
	}
	int r = note_signer_new(name, seed, out, err);
	OPENSSL_cleanse(seed, sizeof(seed));
	return r;
}

void note_signer_free(struct note_signer *s)
{
	if (!s)
		return;
	EVP_PKEY_free(s->key);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

const char *note_signer_name(const struct note_signer *s)
{
	return s->name;
}

const char *note_signer_vkey(const struct note_signer *s)
{
	return s->vkey;
}

int note_sign(const struct note_signer *s, const char *text, size_t len, struct buf *out,
	      struct selo_err *err)
{
	const char *why = sign_text_problem(text, len);
	if (why)
		return err_set(err, 400, "note-malformed", "cannot sign this note text: %s", why);
	uint8_t raw[KEY_ID_LEN + ED25519_SIG_LEN];
	raw[0] = (uint8_t)(s->id >> 24);
	raw[1] = (uint8_t)(s->id >> 16);
	raw[2] = (uint8_t)(s->id >> 8);
	raw[3] = (uint8_t)s->id;
	if (ed25519_sign(s->key, text, len, raw + KEY_ID_LEN) != 0) {
		err_set(err, 500, "crypto", "Ed25519 signing of the note failed");
		err_add_openssl(err);
		return -1;
	}
	buf_append(out, text, len);
	buf_putc(out, '\n');
	buf_append(out, SIG_PREFIX, SIG_PREFIX_LEN);
	buf_puts(out, s->name);
	buf_putc(out, ' ');
	base64_encode(out, raw, sizeof(raw), 0);
	buf_putc(out, '\n');
	return 0;
}

/* ---- parsing ------------------------------------------------------------ */

int note_verifier_parse(const char *vkey, struct note_verifier *v, struct selo_err *err)
{
	struct note_verifier tmp;
	memset(&tmp, 0, sizeof(tmp));
	if (note_vkey_parse(vkey, tmp.name, sizeof(tmp.name), tmp.pub, err) != 0)
		return -1;
	tmp.id = note_key_id(tmp.name, tmp.pub);
	*v = tmp;
	return 0;
}

static int malformed(struct selo_err *err, const char *why)
{
	return err_set(err, 400, "note-malformed", "not a well-formed signed note: %s", why);
}

/* Offset of the last "\n\n" in s, or -1: the text may hold blank lines of
 * its own, the signature block cannot. */
static ptrdiff_t last_blank_line(const char *s, size_t n)
{
	for (size_t i = n; i >= 2; i--)
		if (s[i - 2] == '\n' && s[i - 1] == '\n')
			return (ptrdiff_t)(i - 2);
	return -1;
}

static size_t count_newlines(const char *s, size_t n)
{
	size_t k = 0;
	for (const char *p = s; (p = memchr(p, '\n', n - (size_t)(p - s))) != NULL; p++)
		k++;
	return k;
}

/* Parses one line "— <name> <base64>\n" (n bytes with the newline) into s;
 * scratch (cap bytes) holds the decoded bytes. Returns why it is wrong, or
 * NULL. The name ends at the first space, as in Go's x/mod. */
static const char *sig_line_parse(const char *line, size_t n, uint8_t *scratch, size_t cap,
				  struct note_sig *s)
{
	if (n < SIG_PREFIX_LEN + 1 || memcmp(line, SIG_PREFIX, SIG_PREFIX_LEN) != 0)
		return "does not start with an em dash (U+2014) and a space";
	const char *name = line + SIG_PREFIX_LEN;
	size_t rest = n - SIG_PREFIX_LEN - 1; /* name, space, base64 */
	const char *sp = memchr(name, ' ', rest);
	if (!sp)
		return "has no space between the key name and the signature";
	size_t namelen = (size_t)(sp - name);
	if (!sig_name_ok(name, namelen))
		return "has an empty key name, or one with a space or '+'";
	const char *b64 = sp + 1;
	size_t b64len = rest - namelen - 1;
	ssize_t k = b64len ? base64_decode(b64, b64len, scratch, cap) : -1;
	if (k < KEY_ID_LEN + 1)
		return "does not hold standard padded base64 of a key ID and a signature";
	*s = (struct note_sig){.line = line, .linelen = n, .name = name, .namelen = namelen,
			       .b64 = b64, .b64len = b64len, .id = be32(scratch),
			       .siglen = (size_t)k - KEY_ID_LEN};
	return NULL;
}

/* Parses every line of the signature block (blen bytes ending in "\n"). */
static int sig_block_parse(const char *block, size_t blen, struct note_sig *sigs,
			   size_t *nsigs, struct selo_err *err)
{
	struct buf scratch = BUF_INIT;
	size_t cap = base64_decoded_max(blen);
	buf_reserve(&scratch, cap);
	size_t n = 0;
	const char *end = block + blen;
	for (const char *p = block; p < end; n++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (size_t)(nl - p) + 1;
		const char *why = sig_line_parse(p, ll, (uint8_t *)scratch.data, cap, &sigs[n]);
		if (why) {
			buf_free(&scratch);
			return err_set(err, 400, "note-malformed",
				       "not a well-formed signed note: signature line %zu %s", n + 1,
				       why);
		}
		p += ll;
	}
	buf_free(&scratch);
	*nsigs = n;
	return 0;
}

int note_parse(const char *note, size_t len, size_t *textlen, struct note_sig sigs[NOTE_MAX_SIGS],
	       size_t *nsigs, struct selo_err *err)
{
	if (!text_chars_ok(note, len))
		return malformed(err, "it is not UTF-8, or has control characters other than "
				      "newline");
	ptrdiff_t split = last_blank_line(note, len);
	if (split < 0)
		return malformed(err, "no blank line separates the text from the signatures");
	const char *block = note + split + 2;
	size_t blen = len - (size_t)split - 2;
	if (blen == 0)
		return malformed(err, "no signature line follows the blank line");
	if (block[blen - 1] != '\n')
		return malformed(err, "the last signature line does not end in a newline");
	/* Counted before any decoding, so a huge block costs one scan. */
	size_t lines = count_newlines(block, blen);
	if (lines > NOTE_MAX_SIGS)
		return err_set(err, 400, "note-malformed",
			       "not a well-formed signed note: %zu signature lines, at most %d "
			       "are accepted", lines, NOTE_MAX_SIGS);
	if (sig_block_parse(block, blen, sigs, nsigs, err) != 0)
		return -1;
	*textlen = (size_t)split + 1;
	return 0;
}

/* ---- verification --------------------------------------------------------- */

/* Index of the key with the line's (name, ID), or -1. */
static int key_find(const struct note_verifier *keys, size_t nkeys, const struct note_sig *s)
{
	for (size_t i = 0; i < nkeys; i++)
		if (keys[i].id == s->id && strnlen(keys[i].name, sizeof(keys[i].name)) == s->namelen &&
		    memcmp(keys[i].name, s->name, s->namelen) == 0)
			return (int)i;
	return -1;
}

/* 1 when line i repeats an earlier line byte for byte: its result is
 * already known, so it is neither checked again nor reported twice. */
static int line_repeated(const struct note_sig *sigs, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (sigs[j].linelen == sigs[i].linelen &&
		    memcmp(sigs[j].line, sigs[i].line, sigs[i].linelen) == 0)
			return 1;
	return 0;
}

/* A line by a known key must be a valid Ed25519 signature of the text:
 * a wrong length is a failure too, not a reason to ignore it. */
static int sig_check(const struct note_verifier *k, const struct note_sig *s, const char *text,
		     size_t tlen, struct selo_err *err)
{
	uint8_t raw[KEY_ID_LEN + ED25519_SIG_LEN];
	if (s->siglen == ED25519_SIG_LEN &&
	    base64_decode(s->b64, s->b64len, raw, sizeof(raw)) == (ssize_t)sizeof(raw) &&
	    ed25519_verify(k->pub, raw + KEY_ID_LEN, text, tlen))
		return 0;
	return err_set(err, 403, "note-invalid-signature",
		       "the signature by trusted key %s (ID %08x) does not verify: the note was "
		       "altered, or signed by a different key", k->name, (unsigned)k->id);
}

/* Names the first signer, so a person sees which key would be needed. */
static int unverified(struct selo_err *err, const struct note_sig *first)
{
	size_t n = first ? first->namelen : 0;
	return err_set(err, 403, "note-unverified",
		       "the note has no signature by a trusted key (first signer: %.*s)",
		       (int)(n > 200 ? 200 : n), first ? first->name : "");
}

int note_open(const struct note_verifier *keys, size_t nkeys, const char *note, size_t len,
	      struct buf *text, unsigned char *verified, struct buf *unknown,
	      struct selo_err *err)
{
	struct note_sig sigs[NOTE_MAX_SIGS];
	int match[NOTE_MAX_SIGS];
	size_t textlen = 0, n = 0, good = 0;
	if (note_parse(note, len, &textlen, sigs, &n, err) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		match[i] = key_find(keys, nkeys, &sigs[i]);
		if (match[i] < 0 || line_repeated(sigs, i))
			continue;
		if (sig_check(&keys[match[i]], &sigs[i], note, textlen, err) != 0)
			return -1;
		good++;
	}
	if (good == 0)
		return unverified(err, n ? &sigs[0] : NULL);
	buf_append(text, note, textlen);
	if (verified) {
		memset(verified, 0, nkeys);
		for (size_t i = 0; i < n; i++)
			if (match[i] >= 0)
				verified[match[i]] = 1;
	}
	for (size_t i = 0; unknown && i < n; i++)
		if (match[i] < 0 && !line_repeated(sigs, i))
			buf_append(unknown, sigs[i].line, sigs[i].linelen);
	return 0;
}

int note_verify(const struct note_verifier *keys, size_t nkeys, const char *note, size_t len,
		struct buf *text, struct selo_err *err)
{
	return note_open(keys, nkeys, note, len, text, NULL, NULL, err);
}

/* ---- checkpoints ---------------------------------------------------------- */

void checkpoint_format(const struct checkpoint *c, struct buf *out)
{
	buf_printf(out, "%s\n%" PRIu64 "\n", c->origin, c->size);
	base64_encode(out, c->root, sizeof(c->root), 0);
	buf_putc(out, '\n');
}

int checkpoint_parse_size(const char *s, size_t n, uint64_t *size)
{
	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*size = v;
	return 0;
}

/* Takes the next "\n"-terminated line from *p (before end): its start and
 * length without the newline. 0 when no line is left. */
static int next_line(const char **p, const char *end, const char **line, size_t *n)
{
	if (*p >= end)
		return 0;
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl)
		return 0;
	*line = *p;
	*n = (size_t)(nl - *p);
	*p = nl + 1;
	return 1;
}

static int cp_bad(struct selo_err *err, const char *why)
{
	return err_set(err, 400, "checkpoint-malformed", "not a C2SP checkpoint: %s", why);
}

int checkpoint_parse_ext(const char *text, size_t len, struct checkpoint *c, size_t *ext_off,
			 struct selo_err *err)
{
	if (len == 0 || text[len - 1] != '\n')
		return cp_bad(err, "the text does not end in a newline");
	if (!text_chars_ok(text, len))
		return cp_bad(err, "it is not UTF-8, or has control characters other than newline "
				   "(lines end in \"\\n\" alone)");
	const char *p = text, *end = text + len, *origin, *size, *root;
	size_t on, sn, rn;
	if (!next_line(&p, end, &origin, &on) || !next_line(&p, end, &size, &sn) ||
	    !next_line(&p, end, &root, &rn))
		return cp_bad(err, "it has fewer than 3 lines (origin, size, root hash)");
	if (on == 0 || on >= sizeof(c->origin))
		return cp_bad(err, "the origin line is empty or longer than 255 bytes");
	struct checkpoint tmp;
	memset(&tmp, 0, sizeof(tmp));
	if (checkpoint_parse_size(size, sn, &tmp.size) != 0)
		return cp_bad(err, "the tree size is not a decimal number without leading zeros");
	if (base64_decode(root, rn, tmp.root, sizeof(tmp.root)) != (ssize_t)sizeof(tmp.root))
		return cp_bad(err, "the root hash is not standard base64 of 32 bytes");
	size_t off = (size_t)(p - text);
	const char *ext;
	size_t en;
	while (next_line(&p, end, &ext, &en))
		if (en == 0)
			return cp_bad(err, "it has an empty extension line");
	uint8_t empty[32];
	sha256("", 0, empty);
	if (tmp.size == 0 && memcmp(tmp.root, empty, sizeof(empty)) != 0)
		return err_set(err, 422, "checkpoint-malformed",
			       "a checkpoint of size 0 must carry the empty tree's root, "
			       "SHA-256(\"\")");
	memcpy(tmp.origin, origin, on);
	*c = tmp;
	if (ext_off)
		*ext_off = off;
	return 0;
}

int checkpoint_parse(const char *text, size_t len, struct checkpoint *c, struct selo_err *err)
{
	return checkpoint_parse_ext(text, len, c, NULL, err);
}
