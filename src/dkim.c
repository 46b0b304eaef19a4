/* dkim.c: DKIM signing (RFC 6376; ed25519-sha256 per RFC 8463) with
 * OpenSSL, and verification with libopendkim for tests (see dkim.h).
 *
 * Why signing is not done by libopendkim: Debian 12's libopendkim
 * (2.11.0~beta2) leaks about 500 bytes per ed25519-sha256 signature
 * (dkim_free never frees the Ed25519 key; upstream issue #30, fixed by
 * PR #321 after that release), which a long-running sender cannot afford and
 * which LeakSanitizer reports in every test that signs. Relaxed/relaxed
 * canonicalisation is short and exactly specified, and the tests check
 * every signature with two independent verifiers: libopendkim and dkimpy.
 * Owning the code also fixes the output: tags in one order, folded with
 * CRLF TAB at 78 columns.
 *
 * A signer holds its parsed keys and is read-only after load, so threads
 * may share it. Messages must be CRLF throughout (the bytes signed are the
 * bytes sent); anything else is refused with the byte offset. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/dkim.h"
#include "selo/fileio.h"

#define FOLD_AT 78 /* RFC 5322 §2.1.1: SHOULD; the hard limit is 998 */

/* Signed, in this order when present (dkim.h). */
static const char *const sign_headers[] = {"From", "To", "Subject", "Date", "Message-ID",
					   "MIME-Version", "Content-Type"};
/* Over-signed: h= names them once more than they occur, so a copy added
 * in transit breaks the signature instead of being shown to the reader. */
static const char *const oversign_headers[] = {"From", "To", "Subject"};

struct dkim_signer {
	char domain[254];
	char selector[64];
	EVP_PKEY *rsa; /* either may be NULL */
	EVP_PKEY *ed25519;
};

/* ---- loading --------------------------------------------------------- */

/* Selectors and domains become DNS names and the d=/s= tags. */
static int dns_name_valid(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max || s[0] == '.' || s[n - 1] == '.' || s[0] == '-')
		return 0;
	for (const char *p = s; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			 (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_';
		if (!ok || (*p == '.' && p[1] == '.'))
			return 0;
	}
	return 1;
}

/* Reads a PEM private key and checks it is what its selector promises. */
static int key_load(const char *path, const char *type, int min_bits, EVP_PKEY **out,
		    struct selo_err *err)
{
	BIO *b = BIO_new_file(path, "r");
	if (!b) {
		err_set(err, 500, "io", "cannot open DKIM key %s", path);
		err_add_openssl(err);
		return -1;
	}
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (!k || !EVP_PKEY_is_a(k, type)) {
		EVP_PKEY_free(k);
		return err_set(err, 500, "invalid-key", "%s is not an unencrypted PEM %s private key",
			       path, type);
	}
	if (EVP_PKEY_get_bits(k) < min_bits) {
		int bits = EVP_PKEY_get_bits(k);
		EVP_PKEY_free(k);
		return err_set(err, 500, "invalid-key", "%s: %s key has %d bits; use %d or more",
			       path, type, bits, min_bits);
	}
	*out = k;
	return 0;
}

int dkim_signer_load(const char *domain, const char *selector, const char *rsa_key_path,
		     const char *ed25519_key_path, struct dkim_signer **out, struct selo_err *err)
{
	*out = NULL;
	if (!domain || !dns_name_valid(domain, 253))
		return err_set(err, 500, "invalid-config", "DKIM domain \"%s\" is not a DNS name",
			       domain ? domain : "");
	/* "S-ed25519" must still fit a 63-octet label. */
	if (!selector || !dns_name_valid(selector, 63 - 8) || strchr(selector, '.'))
		return err_set(err, 500, "invalid-config",
			       "DKIM selector \"%s\" must be 1-55 letters, digits, '-' or '_'",
			       selector ? selector : "");
	if (!rsa_key_path && !ed25519_key_path)
		return err_set(err, 500, "invalid-config", "DKIM needs an RSA or an Ed25519 key");
	struct dkim_signer *s = xcalloc(1, sizeof(*s));
	snprintf(s->domain, sizeof(s->domain), "%s", domain);
	snprintf(s->selector, sizeof(s->selector), "%s", selector);
	if ((rsa_key_path && key_load(rsa_key_path, "RSA", 1024, &s->rsa, err) != 0) ||
	    (ed25519_key_path && key_load(ed25519_key_path, "ED25519", 0, &s->ed25519, err) != 0)) {
		dkim_signer_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (!s)
		return;
	EVP_PKEY_free(s->rsa);
	EVP_PKEY_free(s->ed25519);
	free(s);
}

/* ---- message parsing ------------------------------------------------- */

struct header_field {
	const char *p;
	size_t len;      /* without the final CRLF; folded lines stay inside */
	size_t name_len; /* up to the colon, without WSP before it */
};

struct parsed_msg {
	struct header_field *h;
	size_t nh;
	const char *body;
	size_t body_len;
};

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Every CR is followed by LF and every LF follows a CR, and no NUL: what
 * is signed must survive SMTP unchanged. */
static int crlf_check(const char *msg, size_t len, struct selo_err *err)
{
	size_t at = 0, line = 0;
	int eightbit;
	if (crlf_lines_check(msg, len, 0, &at, &line, &eightbit) == CRLF_OK)
		return 0;
	return err_set(err, 500, "internal",
		       "DKIM: message has a bare CR, LF or NUL at byte %zu (lines must end in CRLF)",
		       at);
}

/* RFC 5322 §2.2: a field name is printable ASCII without ':'. The
 * obsolete WSP before the colon is refused: verifiers disagree on it
 * (dkimpy does not match "From :" to From). */
static size_t field_name_len(const char *p, size_t len)
{
	const char *colon = memchr(p, ':', len);
	if (!colon || colon == p)
		return 0;
	size_t n = (size_t)(colon - p);
	for (size_t i = 0; i < n; i++)
		if (p[i] < 33 || p[i] > 126)
			return 0;
	return n;
}

static void header_push(struct parsed_msg *pm, size_t *cap, struct header_field f)
{
	if (pm->nh == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		pm->h = xreallocarray(pm->h, *cap, sizeof(*pm->h));
	}
	pm->h[pm->nh++] = f;
}

/* Splits msg into header fields (with their continuation lines) and body. */
static int msg_parse(const char *msg, size_t len, struct parsed_msg *pm, struct selo_err *err)
{
	memset(pm, 0, sizeof(*pm));
	if (crlf_check(msg, len, err) != 0)
		return -1;
	size_t cap = 0, i = 0;
	while (i < len) {
		if (msg[i] == '\r') { /* the empty line: CRLF checked above */
			pm->body = msg + i + 2;
			pm->body_len = len - i - 2;
			if (pm->nh == 0)
				return err_set(err, 500, "internal", "DKIM: message has no header");
			/* RFC 6376 adds the missing CRLF, dkimpy does not: avoid
			 * the question (SMTP ends every message with CRLF anyway). */
			if (pm->body_len && msg[len - 1] != '\n')
				return err_set(err, 500, "internal",
					       "DKIM: message body does not end in CRLF");
			return 0;
		}
		size_t start = i;
		do { /* a field runs until a line that does not start with WSP */
			const char *lf = memchr(msg + i, '\n', len - i);
			if (!lf)
				return err_set(err, 500, "internal",
					       "DKIM: message has no blank line after the header");
			i = (size_t)(lf - msg) + 1;
		} while (i < len && is_wsp(msg[i]));
		struct header_field f = {msg + start, i - start - 2, 0};
		f.name_len = field_name_len(f.p, f.len);
		if (f.name_len == 0)
			return err_set(err, 500, "internal", "DKIM: malformed header at byte %zu", start);
		header_push(pm, &cap, f);
	}
	return err_set(err, 500, "internal", "DKIM: message has no blank line after the header");
}

/* ---- relaxed canonicalisation (RFC 6376 §3.4.2, §3.4.4) -------------- */

/* "name:value\r\n": name lowercased, value unfolded, WSP runs made one SP,
 * WSP after the colon and at the end removed (msg_parse refused WSP
 * before it). */
static void canon_header(const char *p, size_t len, size_t name_len, struct buf *out)
{
	for (size_t i = 0; i < name_len; i++) {
		char c = p[i];
		buf_putc(out, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
	buf_putc(out, ':');
	const char *v = memchr(p, ':', len) + 1;
	int pending = 0, started = 0;
	for (; v < p + len; v++) {
		if (*v == '\r' || *v == '\n')
			continue; /* unfold: the WSP after it becomes the separator */
		if (is_wsp(*v)) {
			pending = 1;
			continue;
		}
		if (pending && started)
			buf_putc(out, ' ');
		pending = 0;
		started = 1;
		buf_putc(out, *v);
	}
	buf_puts(out, "\r\n");
}

/* One body line (without its CRLF) in relaxed form, appended to out: WSP
 * runs become one SP, WSP at the end goes. Runs without WSP are copied
 * whole. */
static void canon_body_line(const char *p, size_t n, struct buf *out)
{
	size_t i = 0;
	while (i < n) {
		size_t start = i;
		while (i < n && !is_wsp(p[i]))
			i++;
		buf_append(out, p + start, i - start);
		size_t wsp = i;
		while (i < n && is_wsp(p[i]))
			i++;
		if (i > wsp && i < n)
			buf_putc(out, ' ');
	}
}

/* A line that relaxed canonicalisation makes empty. */
static int wsp_only(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_wsp(p[i]))
			return 0;
	return 1;
}

/* SHA-256 of the relaxed body: WSP runs become one SP, WSP at line ends
 * goes, empty lines at the end go; an empty body stays empty. The
 * canonical text is hashed in pieces of at most BODY_PIECE bytes, so a
 * large attachment is never copied whole. msg_parse checked the CRLFs, so
 * every LF ends a line. */
#define BODY_PIECE 65536
static int body_hash(const char *b, size_t n, uint8_t out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	struct buf canon = BUF_INIT;
	buf_reserve(&canon, (n < BODY_PIECE ? n : BODY_PIECE) + 1024);
	size_t empty_lines = 0, i = 0;
	int ok = 1;
	while (i < n && ok) {
		const char *lf = memchr(b + i, '\n', n - i);
		size_t end = lf ? (size_t)(lf - b) - 1 : n; /* the line's CR, or the end */
		if (wsp_only(b + i, end - i)) {
			empty_lines++; /* kept only if a line with text follows */
		} else {
			for (; empty_lines; empty_lines--)
				buf_append(&canon, "\r\n", 2);
			canon_body_line(b + i, end - i, &canon);
			buf_append(&canon, "\r\n", 2);
		}
		if (canon.len >= BODY_PIECE) {
			ok = EVP_DigestUpdate(md, canon.data, canon.len) == 1;
			buf_reset(&canon);
		}
		i = lf ? end + 2 : n;
	}
	unsigned int mdlen = 0;
	ok = ok && EVP_DigestUpdate(md, canon.data, canon.len) == 1 &&
	     EVP_DigestFinal_ex(md, out, &mdlen) == 1 && mdlen == 32;
	buf_free(&canon);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* ---- the signature header -------------------------------------------- */

/* Writes tags into a header, breaking lines with CRLF TAB before FOLD_AT. */
struct folder {
	struct buf *out;
	size_t col;
};

static void fold_break(struct folder *f)
{
	buf_puts(f->out, "\r\n\t");
	f->col = 1;
}

/* One unbreakable piece, preceded by sep (" " or "") when it and room
 * more characters fit on the line; otherwise on a new line. */
static void fold_piece(struct folder *f, const char *sep, const char *s, size_t n, size_t room)
{
	if (f->col + strlen(sep) + n + room > FOLD_AT && f->col > 1)
		fold_break(f);
	else {
		buf_puts(f->out, sep);
		f->col += strlen(sep);
	}
	buf_append(f->out, s, n);
	f->col += n;
}

static int name_eq(const struct header_field *h, const char *name)
{
	return strlen(name) == h->name_len && strncasecmp(h->p, name, h->name_len) == 0;
}

static size_t header_count(const struct parsed_msg *pm, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < pm->nh; i++)
		n += name_eq(&pm->h[i], name);
	return n;
}

static int is_oversigned(const char *name)
{
	for (size_t i = 0; i < sizeof(oversign_headers) / sizeof(oversign_headers[0]); i++)
		if (strcmp(name, oversign_headers[i]) == 0)
			return 1;
	return 0;
}

/* h= as a list of names: each signed header once per occurrence, and the
 * over-signed ones once more. */
static size_t signed_names(const struct parsed_msg *pm, const char **names, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof(sign_headers) / sizeof(sign_headers[0]); i++) {
		size_t k = header_count(pm, sign_headers[i]) + is_oversigned(sign_headers[i]);
		for (; k && n < cap; k--)
			names[n++] = sign_headers[i];
	}
	return n;
}

/* Canonical headers in h= order; repeated names take instances from the
 * bottom up (RFC 6376 §5.4.2); a name with no instance left adds nothing. */
static void signed_headers_canon(const struct parsed_msg *pm, const char **names, size_t n,
				 struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		size_t seen = 0; /* earlier uses of the same name in h= */
		for (size_t j = 0; j < i; j++)
			seen += strcmp(names[j], names[i]) == 0;
		for (size_t k = pm->nh; k-- > 0;) {
			if (!name_eq(&pm->h[k], names[i]))
				continue;
			if (seen-- == 0) {
				canon_header(pm->h[k].p, pm->h[k].len, pm->h[k].name_len, out);
				break;
			}
		}
	}
}

/* "DKIM-Signature: v=1; ...; b=" exactly as it will be sent, b= empty. */
static void sig_header_start(const struct dkim_signer *s, const char *alg, const char *selector,
			     const char **names, size_t nnames, const uint8_t bh[32], struct buf *out)
{
	struct folder f = {out, 0};
	char tag[300];
	fold_piece(&f, "", "DKIM-Signature:", 15, 0);
	snprintf(tag, sizeof(tag), "v=1; a=%s; c=relaxed/relaxed;", alg);
	fold_piece(&f, " ", tag, strlen(tag), 0);
	snprintf(tag, sizeof(tag), "d=%s;", s->domain);
	fold_piece(&f, " ", tag, strlen(tag), 0);
	snprintf(tag, sizeof(tag), "s=%s;", selector);
	fold_piece(&f, " ", tag, strlen(tag), 0);
	snprintf(tag, sizeof(tag), "t=%lld;", (long long)time(NULL));
	fold_piece(&f, " ", tag, strlen(tag), 0);
	for (size_t i = 0; i < nnames; i++) {
		snprintf(tag, sizeof(tag), "%s%s%s", i ? "" : "h=", names[i], i + 1 < nnames ? ":" : ";");
		fold_piece(&f, i ? "" : " ", tag, strlen(tag), 0);
	}
	struct buf b64 = BUF_INIT;
	base64_encode(&b64, bh, 32, 0);
	snprintf(tag, sizeof(tag), "bh=%s;", b64.data);
	buf_free(&b64);
	fold_piece(&f, " ", tag, strlen(tag), 0);
	/* Keep some of the value on the line of "b=": a fold right after the
	 * "=" would be whitespace outside the value. */
	fold_piece(&f, " ", "b=", 2, 8);
}

/* Appends the b= value, folded inside the value (its whitespace is
 * removed with the value when verifying), and the final CRLF. */
static void sig_header_finish(struct buf *out, const uint8_t *sig, size_t n)
{
	struct buf b64 = BUF_INIT;
	base64_encode(&b64, sig, n, 0);
	const char *last_nl = strrchr(out->data, '\n');
	size_t col = out->len - (last_nl ? (size_t)(last_nl - out->data) : 0);
	for (size_t i = 0; i < b64.len;) {
		if (col >= FOLD_AT) {
			buf_puts(out, "\r\n\t");
			col = 1;
		}
		size_t take = FOLD_AT - col;
		if (take > b64.len - i)
			take = b64.len - i;
		buf_append(out, b64.data + i, take);
		col += take;
		i += take;
	}
	buf_free(&b64);
	buf_puts(out, "\r\n");
}

/* RSA: PKCS#1 v1.5 over SHA-256 of the data. Ed25519 (RFC 8463 §3):
 * PureEdDSA over the SHA-256 of the data. */
static int sig_compute(EVP_PKEY *key, int ed, const struct buf *data, uint8_t *sig,
		       size_t *siglen)
{
	uint8_t digest[32];
	const void *msg = data->data;
	size_t len = data->len;
	if (ed) {
		sha256(data->data, data->len, digest);
		msg = digest;
		len = sizeof(digest);
	}
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok = m && EVP_DigestSignInit(m, NULL, ed ? NULL : EVP_sha256(), NULL, key) == 1 &&
		 EVP_DigestSign(m, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(m);
	return ok ? 0 : -1;
}

static int sign_one(const struct dkim_signer *s, const struct parsed_msg *pm,
		    const uint8_t bh[32], EVP_PKEY *key, int ed, struct buf *out,
		    struct selo_err *err)
{
	const char *names[64];
	size_t nnames = signed_names(pm, names, sizeof(names) / sizeof(names[0]));
	if (nnames == sizeof(names) / sizeof(names[0]))
		return err_set(err, 500, "internal", "DKIM: too many From/To/Subject/... headers");
	char selector[80];
	snprintf(selector, sizeof(selector), "%s%s", s->selector, ed ? "-ed25519" : "");
	struct buf hdr = BUF_INIT, data = BUF_INIT;
	sig_header_start(s, ed ? "ed25519-sha256" : "rsa-sha256", selector, names, nnames, bh, &hdr);
	signed_headers_canon(pm, names, nnames, &data);
	/* The signature header itself comes last, canonical, without CRLF. */
	canon_header(hdr.data, hdr.len, strlen("DKIM-Signature"), &data);
	data.len -= 2;
	data.data[data.len] = '\0';
	uint8_t sig[1024];
	size_t siglen = sizeof(sig);
	int rc = 0;
	if (EVP_PKEY_get_size(key) > (int)sizeof(sig) || sig_compute(key, ed, &data, sig, &siglen) != 0) {
		err_set(err, 500, "crypto", "DKIM %s signature failed", ed ? "Ed25519" : "RSA");
		err_add_openssl(err);
		rc = -1;
	} else {
		sig_header_finish(&hdr, sig, siglen);
		buf_append(out, hdr.data, hdr.len);
	}
	buf_free(&hdr);
	buf_free(&data);
	return rc;
}

int dkim_sign_message(struct dkim_signer *s, const char *msg, size_t len, struct buf *out,
		      struct selo_err *err)
{
	if (!s || !msg)
		return err_set(err, 500, "internal", "dkim_sign_message: no signer or message");
	struct parsed_msg pm;
	if (msg_parse(msg, len, &pm, err) != 0) {
		free(pm.h);
		return -1;
	}
	uint8_t bh[32];
	int rc = body_hash(pm.body, pm.body_len, bh);
	if (rc != 0) {
		err_set(err, 500, "crypto", "DKIM body hash failed");
		err_add_openssl(err);
	}
	/* Both signatures or none: sign into a scratch buffer first. RSA
	 * comes first because verifiers that read one signature know RSA. */
	struct buf sigs = BUF_INIT;
	if (rc == 0 && s->rsa)
		rc = sign_one(s, &pm, bh, s->rsa, 0, &sigs, err);
	if (rc == 0 && s->ed25519)
		rc = sign_one(s, &pm, bh, s->ed25519, 1, &sigs, err);
	if (rc == 0)
		buf_append(out, sigs.data, sigs.len);
	buf_free(&sigs);
	free(pm.h);
	return rc;
}

/* ---- verification with libopendkim (tests) --------------------------- */

/* A DKIM_LIB per call: the key file is a library option. */
static int verify_lib_make(const char *keyfile, DKIM_LIB **out, struct selo_err *err)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	if (!lib)
		return err_set(err, 500, "dkim", "cannot initialise libopendkim");
	int method = DKIM_QUERY_FILE;
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof(method)) !=
		    DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)(uintptr_t)keyfile,
			 strlen(keyfile)) != DKIM_STAT_OK) {
		dkim_close(lib);
		return err_set(err, 500, "dkim", "cannot set the DKIM key file %s", keyfile);
	}
	*out = lib;
	return 0;
}

/* Feeds the message to a verify handle. libopendkim's prototypes take
 * non-const pointers: headers are copied; the body is only read. */
static DKIM_STAT msg_feed(DKIM *d, const struct parsed_msg *pm)
{
	struct buf h = BUF_INIT;
	DKIM_STAT st = DKIM_STAT_OK;
	for (size_t i = 0; i < pm->nh && st == DKIM_STAT_OK; i++) {
		buf_reset(&h);
		buf_append(&h, pm->h[i].p, pm->h[i].len);
		st = dkim_header(d, (u_char *)h.data, h.len);
	}
	buf_free(&h);
	if (st == DKIM_STAT_OK)
		st = dkim_eoh(d);
	if (st == DKIM_STAT_OK && pm->body_len)
		st = dkim_body(d, (u_char *)(uintptr_t)pm->body, pm->body_len);
	return st;
}

static int count_valid(DKIM *d)
{
	DKIM_SIGINFO **sigs = NULL;
	int n = 0, valid = 0;
	if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK)
		return 0;
	for (int i = 0; i < n; i++)
		if (DKIM_SIG_CHECK(sigs[i]))
			valid++;
	return valid;
}

int dkim_verify_with_keyfile(const char *msg, size_t len, const char *keyfile,
			     struct selo_err *err)
{
	struct parsed_msg pm;
	if (msg_parse(msg, len, &pm, err) != 0) {
		free(pm.h);
		return -1;
	}
	DKIM_LIB *lib = NULL;
	if (verify_lib_make(keyfile, &lib, err) != 0) {
		free(pm.h);
		return -1;
	}
	DKIM_STAT st;
	int rc = -1;
	DKIM *d = dkim_verify(lib, (const u_char *)"selo-verify", NULL, &st);
	if (!d) {
		err_set(err, 500, "dkim", "DKIM verification could not start: %s",
			dkim_getresultstr(st));
		goto out;
	}
	st = msg_feed(d, &pm);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	/* A failed signature is an answer (fewer valid ones), not an error. */
	if (st == DKIM_STAT_OK || st == DKIM_STAT_BADSIG || st == DKIM_STAT_NOSIG ||
	    st == DKIM_STAT_NOKEY || st == DKIM_STAT_CANTVRFY || st == DKIM_STAT_REVOKED)
		rc = count_valid(d);
	else
		err_set(err, 500, "dkim", "DKIM verification failed: %s", dkim_getresultstr(st));
	dkim_free(d);
out:
	dkim_close(lib);
	free(pm.h);
	return rc;
}
