/* tsa.c: the RFC 3161 front (see tsa.h): tsa_open picks the backend
 * (tsa_local.c when tsa.url is empty, tsa_http.c otherwise) and the
 * tsa_timestamp/certs_pem/close/kind wrappers dispatch to it. Here too is
 * everything both backends share, so a token is accepted by one code path
 * whatever made it: tsa_request_make (the TimeStampReq), tsa_response_accept
 * (status, signature, chain + timeStamping EKU, ESS certificate id, imprint,
 * nonce, TSA name), and the offline checks tsa_verify_token and
 * tsa_token_chain_pem. Failures fill selo_err with the step that failed and
 * OpenSSL's reasons: 503 "tsa-unavailable" for a TSA's answer, 422
 * "invalid-timestamp" for a token checked offline, 400 for a bad CA bundle.
 * Nothing here keeps state between calls. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "selo/buf.h"
#include "selo/crypto.h"
#include "selo/tsa.h"

/* A token or a response is a few KiB; anything near this is not one. */
#define TSA_MAX_DER (64 * 1024)

struct tsa {
	const struct tsa_ops *ops;
	void *state;
};

/* ---- dispatch ---------------------------------------------------------- */

int tsa_open(const struct selo_config *cfg, struct tsa **out, struct selo_err *err)
{
	*out = NULL;
	struct tsa *t = xcalloc(1, sizeof(*t));
	t->ops = cfg->tsa_url[0] ? &tsa_http_ops : &tsa_local_ops;
	int rc = cfg->tsa_url[0] ? tsa_http_open(cfg, &t->state, err)
				 : tsa_local_open(cfg, &t->state, err);
	if (rc != 0) {
		free(t);
		return -1;
	}
	*out = t;
	return 0;
}

void tsa_close(struct tsa *t)
{
	if (!t)
		return;
	t->ops->close(t->state);
	free(t);
}

const char *tsa_kind(const struct tsa *t)
{
	return t->ops->kind;
}

int tsa_timestamp(struct tsa *t, const uint8_t digest[32], uint8_t **der, size_t *len,
		  int64_t *gen_time_ms, struct selo_err *err)
{
	*der = NULL;
	*len = 0;
	return t->ops->timestamp(t->state, digest, der, len, gen_time_ms, err);
}

int tsa_certs_pem(struct tsa *t, struct buf *certs, struct selo_err *err)
{
	return t->ops->certs_pem(t->state, certs, err);
}

int tsa_token_certs_pem(struct tsa *t, const uint8_t *der, size_t len, struct buf *certs,
			struct selo_err *err)
{
	size_t ca_len = 0;
	const char *ca = t->ops->trust_pem(t->state, &ca_len);
	return tsa_token_chain_pem(der, len, ca, ca_len, certs, err);
}

/* ---- small helpers ----------------------------------------------------- */

/* Every certificate of a PEM bundle. Returns how many (at least one), or -1
 * with status on err. what names the bundle in messages. */
static int pem_certs(const char *pem, size_t len, STACK_OF(X509) **out, const char *what,
		     int status, struct selo_err *err)
{
	*out = NULL;
	if (!pem || len == 0)
		return err_set(err, status, "invalid-ca", "%s is empty: give a PEM bundle", what);
	if (len > INT_MAX)
		return err_set(err, status, "invalid-ca", "%s is too large", what);
	/* tsa_certs_pem's list separates the texts with NULs; PEM wants lines. */
	char *text = memchr(pem, '\0', len) ? xmalloc(len) : NULL;
	if (text) {
		for (size_t i = 0; i < len; i++)
			text[i] = pem[i] ? pem[i] : '\n';
		pem = text;
	}
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	STACK_OF(X509) *sk = sk_X509_new_null();
	if (!b || !sk) {
		BIO_free(b);
		sk_X509_free(sk);
		free(text);
		return err_set(err, 500, "oom", "out of memory reading %s", what);
	}
	ERR_set_mark();
	X509 *x;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			X509_free(x);
	/* The loop ends on "no start line" at the end of the text; any other
	 * error is a damaged certificate. */
	unsigned long e = ERR_peek_last_error();
	int clean = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
	BIO_free(b);
	free(text);
	if (!clean || sk_X509_num(sk) == 0) {
		sk_X509_pop_free(sk, X509_free);
		if (!clean) {
			ERR_clear_last_mark();
			err_set(err, status, "invalid-ca", "%s holds a damaged PEM certificate", what);
			err_add_openssl(err);
			return -1;
		}
		ERR_pop_to_mark();
		return err_set(err, status, "invalid-ca", "%s holds no PEM certificate", what);
	}
	ERR_pop_to_mark();
	*out = sk;
	return sk_X509_num(sk);
}

/* An X509_STORE trusting every certificate of the bundle. */
static X509_STORE *pem_store(const char *pem, size_t len, const char *what, int status,
			     struct selo_err *err)
{
	STACK_OF(X509) *sk;
	if (pem_certs(pem, len, &sk, what, status, err) < 0)
		return NULL;
	X509_STORE *st = X509_STORE_new();
	for (int i = 0; st && i < sk_X509_num(sk); i++)
		if (!X509_STORE_add_cert(st, sk_X509_value(sk, i))) {
			X509_STORE_free(st);
			st = NULL;
		}
	sk_X509_pop_free(sk, X509_free);
	if (!st) {
		err_set(err, 500, "crypto", "cannot build a certificate store from %s", what);
		err_add_openssl(err);
	}
	return st;
}

/* GeneralizedTime (with optional fraction) as milliseconds since 1970. */
static int gentime_ms(const ASN1_GENERALIZEDTIME *t, int64_t *ms)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -1;
	int64_t s = (int64_t)timegm(&tm);
	const char *p = (const char *)ASN1_STRING_get0_data(t);
	int n = ASN1_STRING_length(t);
	const char *dot = memchr(p, '.', (size_t)n);
	int frac = 0;
	if (dot)
		for (int i = 1, scale = 100; dot + i < p + n && isdigit((unsigned char)dot[i]) &&
					     scale > 0; i++, scale /= 10)
			frac += (dot[i] - '0') * scale;
	*ms = s * 1000 + frac;
	return 0;
}

/* i2d into a malloc'd copy (callers free() it, not OPENSSL_free()). */
static int tsa_token_der(PKCS7 *tok, uint8_t **der, size_t *len)
{
	unsigned char *p = NULL;
	int n = tok ? i2d_PKCS7(tok, &p) : -1;
	if (n <= 0)
		return -1;
	*der = xmalloc((size_t)n);
	memcpy(*der, p, (size_t)n);
	OPENSSL_free(p);
	*len = (size_t)n;
	return 0;
}

/* Appends printable ASCII of s (n bytes) to out, at most cap bytes total. */
static void append_printable(char *out, size_t cap, const unsigned char *s, int n)
{
	size_t len = strlen(out);
	for (int i = 0; i < n && len + 1 < cap; i++)
		out[len++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
	out[len] = '\0';
}

/* ---- why a check failed ------------------------------------------------ */

static const char *ts_reason_text(int lib, int reason)
{
	if (lib == ERR_LIB_ESS)
		return "its signing-certificate attribute (ESS) does not name the signer's certificate";
	if (lib != ERR_LIB_TS)
		return NULL;
	switch (reason) {
	case TS_R_CERTIFICATE_VERIFY_ERROR:
		return "its certificate does not chain to a trusted CA";
	case TS_R_SIGNATURE_FAILURE:
		return "its signature does not verify";
	case TS_R_MESSAGE_IMPRINT_MISMATCH:
		return "it covers a different digest (wrong message imprint)";
	case TS_R_NONCE_MISMATCH:
	case TS_R_NONCE_NOT_RETURNED:
		return "its nonce is not the request's (a stale or mixed-up answer)";
	case TS_R_UNSUPPORTED_VERSION:
		return "its TSTInfo version is not 1";
	case TS_R_TSA_NAME_MISMATCH:
		return "its TSA name is not the signer's";
	case TS_R_POLICY_MISMATCH:
		return "its policy is not the requested one";
	case TS_R_THERE_MUST_BE_ONE_SIGNER:
	case TS_R_WRONG_CONTENT_TYPE:
	case TS_R_NO_CONTENT:
	case TS_R_INVALID_NULL_POINTER:
		return "it is not a well-formed timestamp token";
	default:
		return NULL;
	}
}

/* Fills err after a failed TS_RESP_verify_*: the first reason we can name,
 * then OpenSSL's own strings (which carry e.g. the X509 verify error). */
static int verify_failure(struct selo_err *err, int status, const char *type, const char *who,
			  const char *anchors)
{
	const char *why = NULL;
	char detail[320] = "";
	unsigned long e;
	const char *data;
	int flags;
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (!why && ERR_GET_LIB(e) == ERR_LIB_TS &&
		    ERR_GET_REASON(e) == TS_R_CERTIFICATE_VERIFY_ERROR && (flags & ERR_TXT_STRING) &&
		    data && strstr(data, "purpose"))
			why = "its certificate lacks the critical timeStamping extended key usage "
			      "(it is not a TSA certificate)";
		if (!why)
			why = ts_reason_text(ERR_GET_LIB(e), ERR_GET_REASON(e));
		const char *r = ERR_reason_error_string(e);
		size_t len = strlen(detail);
		snprintf(detail + len, sizeof(detail) - len, "%s%s%s%s%s", len ? "; " : "",
			 r ? r : "unknown", (flags & ERR_TXT_STRING) && data && *data ? " (" : "",
			 (flags & ERR_TXT_STRING) && data ? data : "",
			 (flags & ERR_TXT_STRING) && data && *data ? ")" : "");
	}
	return err_set(err, status, type, "%s: token rejected: %s (checked against %s)%s%s", who,
		       why ? why : "it does not verify", anchors, detail[0] ? ": " : "", detail);
}

/* "rejection, text \"...\", failure badAlg" from a TS_STATUS_INFO. */
static void status_describe(const TS_STATUS_INFO *si, char *out, size_t cap)
{
	static const char *const names[] = {"granted",           "grantedWithMods",
					    "rejection",         "waiting",
					    "revocationWarning", "revocationNotification"};
	static const struct { int bit; const char *name; } fails[] = {
		{TS_INFO_BAD_ALG, "badAlg"},
		{TS_INFO_BAD_REQUEST, "badRequest"},
		{TS_INFO_BAD_DATA_FORMAT, "badDataFormat"},
		{TS_INFO_TIME_NOT_AVAILABLE, "timeNotAvailable"},
		{TS_INFO_UNACCEPTED_POLICY, "unacceptedPolicy"},
		{TS_INFO_UNACCEPTED_EXTENSION, "unacceptedExtension"},
		{TS_INFO_ADD_INFO_NOT_AVAILABLE, "addInfoNotAvailable"},
		{TS_INFO_SYSTEM_FAILURE, "systemFailure"},
	};
	long st = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(si));
	if (st >= 0 && st < (long)(sizeof(names) / sizeof(names[0])))
		snprintf(out, cap, "status %s", names[st]);
	else
		snprintf(out, cap, "status %ld (unknown)", st);
	const STACK_OF(ASN1_UTF8STRING) *text = TS_STATUS_INFO_get0_text(si);
	for (int i = 0; i < sk_ASN1_UTF8STRING_num(text); i++) {
		const ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(text, i);
		size_t len = strlen(out);
		snprintf(out + len, cap - len, i ? " / " : ", text \"");
		append_printable(out, cap - 1, ASN1_STRING_get0_data(s), ASN1_STRING_length(s));
		if (i + 1 == sk_ASN1_UTF8STRING_num(text)) {
			len = strlen(out);
			snprintf(out + len, cap - len, "\"");
		}
	}
	const ASN1_BIT_STRING *fi = TS_STATUS_INFO_get0_failure_info(si);
	for (size_t i = 0, first = 1; fi && i < sizeof(fails) / sizeof(fails[0]); i++) {
		if (!ASN1_BIT_STRING_get_bit(fi, fails[i].bit))
			continue;
		size_t len = strlen(out);
		snprintf(out + len, cap - len, "%s%s", first ? ", failure " : ",", fails[i].name);
		first = 0;
	}
}

/* ---- the request ------------------------------------------------------- */

/* A random positive integer of n bytes (the nonce). */
static ASN1_INTEGER *random_integer(size_t n)
{
	uint8_t r[32];
	if (n == 0 || n > sizeof(r))
		return NULL;
	random_bytes(r, n);
	BIGNUM *bn = BN_bin2bn(r, (int)n, NULL);
	ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	BN_free(bn);
	return ai;
}

static TS_REQ *request_build(const uint8_t digest[32])
{
	TS_REQ *rq = TS_REQ_new();
	TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_INTEGER *nonce = random_integer(8);
	int ok = rq && mi && alg && nonce && TS_REQ_set_version(rq, 1);
	if (ok) {
		X509_ALGOR_set_md(alg, EVP_sha256());
		ok = TS_MSG_IMPRINT_set_algo(mi, alg) &&
		     TS_MSG_IMPRINT_set_msg(mi, (unsigned char *)digest, 32) &&
		     TS_REQ_set_msg_imprint(rq, mi) && TS_REQ_set_nonce(rq, nonce) &&
		     TS_REQ_set_cert_req(rq, 1);
	}
	/* The setters copy their arguments. */
	X509_ALGOR_free(alg);
	TS_MSG_IMPRINT_free(mi);
	ASN1_INTEGER_free(nonce);
	if (!ok) {
		TS_REQ_free(rq);
		return NULL;
	}
	return rq;
}

int tsa_request_make(const uint8_t digest[32], uint8_t **req, size_t *req_len,
		     struct selo_err *err)
{
	*req = NULL;
	*req_len = 0;
	TS_REQ *rq = request_build(digest);
	unsigned char *p = NULL;
	int n = rq ? i2d_TS_REQ(rq, &p) : -1;
	TS_REQ_free(rq);
	if (n > 0) {
		*req = xmalloc((size_t)n);
		memcpy(*req, p, (size_t)n);
		*req_len = (size_t)n;
	}
	OPENSSL_free(p);
	if (!*req) {
		err_set(err, 500, "crypto", "cannot build the RFC 3161 request");
		err_add_openssl(err);
		return -1;
	}
	return 0;
}

/* ---- accepting a response ---------------------------------------------- */

static TS_RESP *response_parse(const char *who, const uint8_t *resp, size_t len,
			       struct selo_err *err)
{
	if (len == 0 || len > TSA_MAX_DER) {
		err_set(err, 503, "tsa-unavailable", "%s answered %zu bytes, not a timestamp response",
			who, len);
		return NULL;
	}
	const unsigned char *p = resp;
	TS_RESP *r = d2i_TS_RESP(NULL, &p, (long)len);
	if (!r) {
		ERR_clear_error();
		err_set(err, 503, "tsa-unavailable", "%s answered bytes that are not an RFC 3161 "
			"TimeStampResp (check that tsa.url is a timestamp server)", who);
		return NULL;
	}
	if (p != resp + len) {
		TS_RESP_free(r);
		err_set(err, 503, "tsa-unavailable", "%s answered a TimeStampResp followed by %zu "
			"stray bytes", who, (size_t)(resp + len - p));
		return NULL;
	}
	return r;
}

static int response_granted(const char *who, TS_RESP *r, struct selo_err *err)
{
	const TS_STATUS_INFO *si = TS_RESP_get_status_info(r);
	long st = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(si));
	if (st == TS_STATUS_GRANTED || st == TS_STATUS_GRANTED_WITH_MODS)
		return 0;
	char what[400];
	status_describe(si, what, sizeof(what));
	return err_set(err, 503, "tsa-unavailable", "%s refused to timestamp: %s", who, what);
}

static int response_verify(const char *who, TS_RESP *r, const uint8_t *req, size_t req_len,
			   const char *ca_pem, size_t ca_len, const char *anchors,
			   struct selo_err *err)
{
	const unsigned char *p = req;
	TS_REQ *rq = d2i_TS_REQ(NULL, &p, (long)req_len);
	if (!rq) {
		err_set(err, 500, "internal", "the timestamp request does not parse");
		err_add_openssl(err);
		return -1;
	}
	/* No CA: the built-in TSA, whose key and chain its self-test verified
	 * at open; its later tokens get every check but the signature's. */
	X509_STORE *st = ca_pem ? pem_store(ca_pem, ca_len, anchors, 503, err) : NULL;
	/* Copies imprint, its algorithm and the nonce; flags all but signature
	 * and an expected TSA name, so the signature is added. */
	TS_VERIFY_CTX *vc = st || !ca_pem ? TS_REQ_to_TS_VERIFY_CTX(rq, NULL) : NULL;
	TS_REQ_free(rq);
	if (!vc) {
		if (!st)
			return -1;
		X509_STORE_free(st);
		err_set(err, 500, "crypto", "cannot set up timestamp verification");
		err_add_openssl(err);
		return -1;
	}
	if (st) {
		TS_VERIFY_CTX_add_flags(vc, TS_VFY_SIGNATURE | TS_VFY_SIGNER | TS_VFY_VERSION);
		TS_VERIFY_CTX_set_store(vc, st); /* vc owns it now */
	} else {
		/* TS_VFY_SIGNER needs the verified signer: without a signature
		 * check, keep only what the token itself can show. */
		TS_VERIFY_CTX_set_flags(vc, TS_VFY_VERSION | TS_VFY_IMPRINT | TS_VFY_NONCE);
	}
	ERR_clear_error();
	int ok = TS_RESP_verify_response(vc, r) == 1;
	TS_VERIFY_CTX_free(vc);
	if (!ok)
		return verify_failure(err, 503, "tsa-unavailable", who, anchors);
	return 0;
}

int tsa_response_accept_obj(const char *who, TS_RESP *r, const uint8_t *req, size_t req_len,
			    const char *ca_pem, size_t ca_len, const char *anchors,
			    uint8_t **token, size_t *token_len, int64_t *gen_time_ms,
			    struct selo_err *err)
{
	*token = NULL;
	*token_len = 0;
	int rc = -1;
	if (response_granted(who, r, err) != 0 ||
	    response_verify(who, r, req, req_len, ca_pem, ca_len, anchors, err) != 0)
		goto out;
	int64_t ms;
	if (gentime_ms(TS_TST_INFO_get_time(TS_RESP_get_tst_info(r)), &ms) != 0) {
		err_set(err, 503, "tsa-unavailable", "%s answered a token with an unreadable genTime",
			who);
		goto out;
	}
	if (tsa_token_der(TS_RESP_get_token(r), token, token_len) != 0) {
		err_set(err, 500, "crypto", "cannot encode the timestamp token");
		err_add_openssl(err);
		goto out;
	}
	*gen_time_ms = ms;
	rc = 0;
out:
	ERR_clear_error();
	return rc;
}

int tsa_response_accept(const char *who, const uint8_t *req, size_t req_len,
			const uint8_t *resp, size_t resp_len, const char *ca_pem, size_t ca_len,
			const char *anchors, uint8_t **token, size_t *token_len,
			int64_t *gen_time_ms, struct selo_err *err)
{
	*token = NULL;
	*token_len = 0;
	TS_RESP *r = response_parse(who, resp, resp_len, err);
	if (!r)
		return -1;
	int rc = tsa_response_accept_obj(who, r, req, req_len, ca_pem, ca_len, anchors, token,
					 token_len, gen_time_ms, err);
	TS_RESP_free(r);
	return rc;
}

/* ---- offline checks ---------------------------------------------------- */

/* A DER token (ContentInfo SignedData of a TSTInfo), no trailing bytes. */
static PKCS7 *tsa_token_parse(const uint8_t *der, size_t len, TS_TST_INFO **tst, struct selo_err *err)
{
	*tst = NULL;
	if (!der || len == 0 || len > TSA_MAX_DER) {
		err_set(err, 422, "invalid-timestamp", "the timestamp token is empty or larger than "
			"%d bytes", TSA_MAX_DER);
		return NULL;
	}
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	if (p7 && p != der + len) {
		err_set(err, 422, "invalid-timestamp", "the timestamp token has %zu stray bytes "
			"after its DER", (size_t)(der + len - p));
		PKCS7_free(p7);
		ERR_clear_error();
		return NULL;
	}
	*tst = p7 ? PKCS7_to_TS_TST_INFO(p7) : NULL;
	if (!*tst) {
		err_set(err, 422, "invalid-timestamp", "not an RFC 3161 timestamp token (a DER "
			"ContentInfo with a TSTInfo)");
		PKCS7_free(p7);
		ERR_clear_error();
		return NULL;
	}
	return p7;
}

static int tst_is_sha256(const TS_TST_INFO *tst)
{
	const TS_MSG_IMPRINT *mi = TS_TST_INFO_get_msg_imprint((TS_TST_INFO *)tst);
	const X509_ALGOR *alg = TS_MSG_IMPRINT_get_algo((TS_MSG_IMPRINT *)mi);
	const ASN1_OBJECT *obj;
	X509_ALGOR_get0(&obj, NULL, NULL, alg);
	return OBJ_obj2nid(obj) == NID_sha256;
}

static void subject_rfc2253(X509 *x, char *out, size_t n)
{
	if (!out || n == 0)
		return;
	out[0] = '\0';
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return;
	X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
	char *p;
	long len = BIO_get_mem_data(b, &p);
	snprintf(out, n, "%.*s", (int)len, p);
	BIO_free(b);
}

/* Builds the verify context of tsa_verify_token; the context owns store,
 * imprint and untrusted certificates. */
static TS_VERIFY_CTX *offline_ctx(const uint8_t digest[32], const char *ca_pem, size_t ca_len,
				  const char *untrusted_pem, size_t untrusted_len,
				  STACK_OF(X509) **untrusted, struct selo_err *err)
{
	*untrusted = NULL;
	if (untrusted_pem && untrusted_len &&
	    pem_certs(untrusted_pem, untrusted_len, untrusted, "the untrusted certificates", 400,
		      err) < 0)
		return NULL;
	X509_STORE *st = pem_store(ca_pem, ca_len, "the trusted CA bundle", 400, err);
	TS_VERIFY_CTX *vc = st ? TS_VERIFY_CTX_new() : NULL;
	unsigned char *imp = vc ? OPENSSL_memdup(digest, 32) : NULL;
	if (!imp) {
		if (st && !vc)
			err_set(err, 500, "oom", "out of memory verifying a timestamp");
		X509_STORE_free(st);
		TS_VERIFY_CTX_free(vc);
		sk_X509_pop_free(*untrusted, X509_free);
		*untrusted = NULL;
		return NULL;
	}
	TS_VERIFY_CTX_set_flags(vc, TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_IMPRINT |
					    TS_VFY_SIGNER);
	TS_VERIFY_CTX_set_imprint(vc, imp, 32);
	TS_VERIFY_CTX_set_store(vc, st);
	if (*untrusted)
		TS_VERIFY_CTX_set_certs(vc, *untrusted);
	return vc;
}

int tsa_verify_token(const uint8_t *der, size_t len, const uint8_t digest[32],
		     const char *ca_pem, size_t ca_len, const char *untrusted_pem,
		     size_t untrusted_len, int64_t *gen_time_ms, char *tsa_name, size_t name_len,
		     struct selo_err *err)
{
	TS_TST_INFO *tst;
	PKCS7 *p7 = tsa_token_parse(der, len, &tst, err);
	if (!p7)
		return -1;
	STACK_OF(X509) *untrusted;
	TS_VERIFY_CTX *vc =
		offline_ctx(digest, ca_pem, ca_len, untrusted_pem, untrusted_len, &untrusted, err);
	int rc = -1;
	if (!vc)
		goto out;
	ERR_clear_error();
	if (TS_RESP_verify_token(vc, p7) != 1) {
		verify_failure(err, 422, "invalid-timestamp", "timestamp", "the given CA bundle");
		goto out;
	}
	if (!tst_is_sha256(tst)) {
		err_set(err, 422, "invalid-timestamp", "timestamp: the imprint is not SHA-256");
		goto out;
	}
	if (gentime_ms(TS_TST_INFO_get_time(tst), gen_time_ms) != 0) {
		err_set(err, 422, "invalid-timestamp", "timestamp: unreadable genTime");
		goto out;
	}
	STACK_OF(X509) *signers = PKCS7_get0_signers(p7, untrusted, 0);
	if (signers && sk_X509_num(signers) == 1)
		subject_rfc2253(sk_X509_value(signers, 0), tsa_name, name_len);
	sk_X509_free(signers);
	rc = 0;
out:
	TS_VERIFY_CTX_free(vc);
	TS_TST_INFO_free(tst);
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}

static int chain_append_pem(STACK_OF(X509) *chain, struct buf *certs, struct selo_err *err)
{
	for (int i = 0; i < sk_X509_num(chain); i++) {
		BIO *b = BIO_new(BIO_s_mem());
		if (!b || !PEM_write_bio_X509(b, sk_X509_value(chain, i))) {
			BIO_free(b);
			err_set(err, 500, "crypto", "cannot write a certificate as PEM");
			err_add_openssl(err);
			return -1;
		}
		char *p;
		long n = BIO_get_mem_data(b, &p);
		buf_append(certs, p, (size_t)n);
		buf_putc(certs, '\0');
		BIO_free(b);
	}
	return sk_X509_num(chain);
}

/* Verifies signer up to st with the timestamping purpose and appends the
 * chain. */
static int signer_chain(X509 *signer, STACK_OF(X509) *untrusted, X509_STORE *st,
			struct buf *certs, struct selo_err *err)
{
	X509_STORE_CTX *xc = X509_STORE_CTX_new();
	if (!xc || !X509_STORE_CTX_init(xc, st, signer, untrusted)) {
		X509_STORE_CTX_free(xc);
		return err_set(err, 500, "crypto", "cannot set up certificate verification");
	}
	X509_STORE_CTX_set_purpose(xc, X509_PURPOSE_TIMESTAMP_SIGN);
	int rc;
	if (X509_verify_cert(xc) == 1)
		rc = chain_append_pem(X509_STORE_CTX_get0_chain(xc), certs, err);
	else
		rc = err_set(err, 422, "invalid-timestamp", "the TSA certificate does not verify "
			     "against the CA bundle for timestamping: %s",
			     X509_verify_cert_error_string(X509_STORE_CTX_get_error(xc)));
	X509_STORE_CTX_free(xc);
	return rc;
}

int tsa_token_chain_pem(const uint8_t *der, size_t len, const char *ca_pem, size_t ca_len,
			struct buf *certs, struct selo_err *err)
{
	TS_TST_INFO *tst;
	PKCS7 *p7 = tsa_token_parse(der, len, &tst, err);
	if (!p7)
		return -1;
	int rc = -1;
	X509_STORE *st = pem_store(ca_pem, ca_len, "the trusted CA bundle", 400, err);
	STACK_OF(X509) *signers = st ? PKCS7_get0_signers(p7, NULL, 0) : NULL;
	if (st && (!signers || sk_X509_num(signers) != 1))
		err_set(err, 422, "invalid-timestamp", "the token does not carry its signer's "
			"certificate (it was requested without certReq)");
	else if (st)
		rc = signer_chain(sk_X509_value(signers, 0), p7->d.sign->cert, st, certs, err);
	sk_X509_free(signers);
	X509_STORE_free(st);
	TS_TST_INFO_free(tst);
	PKCS7_free(p7);
	ERR_clear_error();
	return rc;
}
