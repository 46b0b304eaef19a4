/* dkim.c: DKIM signing (RFC 6376, RFC 8463) with libopendkim (see dkim.h).
 * One DKIM_LIB serves the whole process: it is made once (pthread_once),
 * configured with the signed and over-signed header lists, and only read
 * afterwards; every signature gets its own DKIM handle, so threads may sign
 * at the same time. The signer keeps the PEM keys in memory (wiped on free).
 * Errors name the step and carry libopendkim's own explanation. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <opendkim/dkim.h>
#include "selo/dkim.h"
#include "selo/fileio.h"

#define DKIM_HDR "DKIM-Signature: "
#define LINE_MAX_OCTETS 998 /* RFC 5322 §2.1.1 */

/* Signed, in this order when present (dkim.h). From, To and Subject are
 * also over-signed: h= names them once more than they occur, so a copy
 * added in transit breaks the signature instead of being shown. The arrays
 * are static because libopendkim keeps a pointer to the over-sign list. */
static const char *sign_headers[] = {"from", "to", "subject", "date", "message-id",
				     "mime-version", "content-type", NULL};
static const char *oversign_headers[] = {"from", "to", "subject", NULL};

static pthread_once_t sign_lib_once = PTHREAD_ONCE_INIT;
static DKIM_LIB *sign_lib; /* written once under sign_lib_once, then only read */

struct dkim_signer {
	char domain[256];
	char selector[64];
	char *rsa_pem; /* NUL-terminated PEM, or NULL */
	char *ed_pem;
	size_t rsa_len, ed_len;
};

static void sign_lib_make(void)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	if (!lib)
		return;
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, sign_headers,
			 sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, oversign_headers,
			 sizeof(char **)) != DKIM_STAT_OK) {
		dkim_close(lib);
		return;
	}
	sign_lib = lib;
}

static DKIM_LIB *sign_lib_get(struct selo_err *err)
{
	pthread_once(&sign_lib_once, sign_lib_make);
	if (!sign_lib)
		err_set(err, 500, "dkim", "cannot initialise libopendkim");
	return sign_lib;
}

/* ---- loading --------------------------------------------------------- */

/* DNS labels: selectors and domains reach DNS names and the d=/s= tags. */
static int dns_name_valid(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (const char *p = s; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			 (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_';
		if (!ok || (*p == '.' && p[1] == '.'))
			return 0;
	}
	return 1;
}

static void pem_wipe_free(char *pem, size_t len)
{
	if (!pem)
		return;
	OPENSSL_cleanse(pem, len);
	free(pem);
}

/* Reads a PEM private key and checks it is what the selector promises:
 * libopendkim itself would only complain at the first signature. */
static int key_load(const char *path, const char *type, int min_bits, char **pem,
		    size_t *len, struct selo_err *err)
{
	struct buf b = BUF_INIT;
	if (file_read(path, 65536, &b, err) != 0) {
		buf_free(&b);
		return -1;
	}
	if (b.len == 0) { /* file_read leaves an empty buffer without its NUL */
		buf_free(&b);
		return err_set(err, 500, "invalid-key", "%s is empty", path);
	}
	BIO *bio = BIO_new_mem_buf(b.data, (int)b.len);
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	int is_type = k && EVP_PKEY_is_a(k, type);
	int bits = k ? EVP_PKEY_get_bits(k) : 0;
	EVP_PKEY_free(k);
	ERR_clear_error();
	/* libopendkim takes the key as a C string. */
	int has_nul = strlen(b.data) != b.len;
	*len = b.cap;
	*pem = buf_steal(&b, NULL);
	if (is_type && bits >= min_bits && !has_nul)
		return 0;
	pem_wipe_free(*pem, *len);
	*pem = NULL;
	if (!is_type || has_nul)
		return err_set(err, 500, "invalid-key", "%s is not an unencrypted PEM %s private key",
			       path, type);
	return err_set(err, 500, "invalid-key", "%s: %s key has %d bits; use %d or more", path,
		       type, bits, min_bits);
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
	if (!sign_lib_get(err))
		return -1;
	struct dkim_signer *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(err, 500, "internal", "out of memory");
	snprintf(s->domain, sizeof(s->domain), "%s", domain);
	snprintf(s->selector, sizeof(s->selector), "%s", selector);
	if ((rsa_key_path && key_load(rsa_key_path, "RSA", 1024, &s->rsa_pem, &s->rsa_len, err)) ||
	    (ed25519_key_path &&
	     key_load(ed25519_key_path, "ED25519", 0, &s->ed_pem, &s->ed_len, err))) {
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
	pem_wipe_free(s->rsa_pem, s->rsa_len);
	pem_wipe_free(s->ed_pem, s->ed_len);
	free(s);
}

/* ---- message parsing ------------------------------------------------- */

struct header_field {
	const char *p;
	size_t len; /* without the final CRLF; folded lines stay inside */
};

struct parsed_msg {
	struct header_field *h;
	size_t nh;
	const char *body;
	size_t body_len;
};

/* Splits msg into header fields (with their continuation lines) and body.
 * Only CRLF line ends are accepted: the signature must cover the exact
 * bytes that go on the wire. */
static int msg_parse(const char *msg, size_t len, struct parsed_msg *pm, struct selo_err *err)
{
	size_t cap = 32;
	pm->h = malloc(cap * sizeof(*pm->h));
	pm->nh = 0;
	if (!pm->h)
		return err_set(err, 500, "internal", "out of memory");
	size_t i = 0;
	while (i < len) {
		if (len - i >= 2 && msg[i] == '\r' && msg[i + 1] == '\n') {
			pm->body = msg + i + 2;
			pm->body_len = len - i - 2;
			return pm->nh ? 0 : err_set(err, 500, "internal", "DKIM: message has no header");
		}
		if (msg[i] == ' ' || msg[i] == '\t' || msg[i] == ':')
			return err_set(err, 500, "internal", "DKIM: malformed header at byte %zu", i);
		size_t start = i;
		for (;;) {
			const char *lf = memchr(msg + i, '\n', len - i);
			if (!lf || lf == msg + i || lf[-1] != '\r')
				return err_set(err, 500, "internal",
					       "DKIM: header at byte %zu does not end in CRLF", start);
			i = (size_t)(lf - msg) + 1;
			if (i >= len || (msg[i] != ' ' && msg[i] != '\t'))
				break;
		}
		if (!memchr(msg + start, ':', i - start))
			return err_set(err, 500, "internal", "DKIM: header at byte %zu has no colon", start);
		if (pm->nh == cap) {
			cap *= 2;
			struct header_field *nh = realloc(pm->h, cap * sizeof(*nh));
			if (!nh)
				return err_set(err, 500, "internal", "out of memory");
			pm->h = nh;
		}
		pm->h[pm->nh++] = (struct header_field){msg + start, i - start - 2};
	}
	return err_set(err, 500, "internal", "DKIM: message has no blank line after the header");
}

/* Feeds the whole message to a sign or verify handle. libopendkim's
 * prototypes take non-const pointers; headers are copied, the body is only
 * read. */
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

/* ---- signing --------------------------------------------------------- */

static int line_lengths_ok(const char *s, size_t len)
{
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n') {
			col = 0;
			continue;
		}
		if (++col > LINE_MAX_OCTETS + 1) /* +1: the CR */
			return 0;
	}
	return 1;
}

static int sign_one(struct dkim_signer *s, const struct parsed_msg *pm, const char *pem,
		    const char *selector, dkim_alg_t alg, struct buf *out, struct selo_err *err)
{
	DKIM_STAT st;
	DKIM *d = dkim_sign(sign_lib, (const u_char *)"selo", NULL, (dkim_sigkey_t)(uintptr_t)pem,
			    (const u_char *)selector, (const u_char *)s->domain, DKIM_CANON_RELAXED,
			    DKIM_CANON_RELAXED, alg, -1, &st);
	if (!d)
		return err_set(err, 500, "dkim", "DKIM signing (selector %s) could not start: %s",
			       selector, dkim_getresultstr(st));
	st = msg_feed(d, pm);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	u_char *val = NULL;
	size_t vlen = 0;
	if (st == DKIM_STAT_OK)
		st = dkim_getsighdr_d(d, strlen(DKIM_HDR), &val, &vlen);
	if (st != DKIM_STAT_OK) {
		const char *why = dkim_geterror(d);
		err_set(err, 500, "dkim", "DKIM signing (selector %s) failed: %s%s%s", selector,
			dkim_getresultstr(st), why ? ": " : "", why ? why : "");
		dkim_free(d);
		return -1;
	}
	size_t start = out->len;
	buf_puts(out, DKIM_HDR);
	buf_append(out, val, vlen);
	buf_puts(out, "\r\n");
	dkim_free(d);
	if (!line_lengths_ok(out->data + start, out->len - start))
		return err_set(err, 500, "dkim", "DKIM-Signature has a line over 998 octets");
	return 0;
}

int dkim_sign_message(struct dkim_signer *s, const char *msg, size_t len, struct buf *out,
		      struct selo_err *err)
{
	if (!s || !msg)
		return err_set(err, 500, "internal", "dkim_sign: no signer or message");
	if (!sign_lib_get(err))
		return -1;
	struct parsed_msg pm = {0};
	if (msg_parse(msg, len, &pm, err) != 0) {
		free(pm.h);
		return -1;
	}
	char ed_selector[sizeof(s->selector) + 8];
	snprintf(ed_selector, sizeof(ed_selector), "%s-ed25519", s->selector);
	size_t mark = out->len;
	/* RSA first: verifiers that look at one signature only know RSA. */
	int rc = 0;
	if (s->rsa_pem)
		rc = sign_one(s, &pm, s->rsa_pem, s->selector, DKIM_SIGN_RSASHA256, out, err);
	if (rc == 0 && s->ed_pem)
		rc = sign_one(s, &pm, s->ed_pem, ed_selector, DKIM_SIGN_ED25519SHA256, out, err);
	free(pm.h);
	if (rc != 0 && out->data) { /* all or nothing */
		out->len = mark;
		out->data[mark] = '\0';
	}
	return rc;
}

/* ---- verification (tests) -------------------------------------------- */

static int verify_lib_make(const char *keyfile, DKIM_LIB **out, struct selo_err *err)
{
	/* A private DKIM_LIB: the query options must not touch the shared
	 * signing library while other threads use it. */
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
	struct parsed_msg pm = {0};
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
