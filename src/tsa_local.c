/* tsa_local.c: the built-in RFC 3161 TSA (tsa.url empty), OpenSSL's TS API
 * with DIR/keys/tsa.pem + tsa.crt, trusted through DIR/keys/ca.crt.
 * tsa_local_open loads and cross-checks the files, then stamps a probe digest
 * so a broken key or chain fails at start, not at the first notice;
 * local_timestamp builds a TimeStampReq in-process, answers it with a fresh
 * TS_RESP_CTX (they keep state, so one per call and no lock). The self-test
 * hands the DER answer to tsa_response_accept, the very check an http TSA's
 * answer gets; later tokens get the same checks but the signature's, on the
 * answer in memory (tsa_response_accept_obj). Policy 2.25.207994476491351263116839556265121365311 (a UUID OID,
 * X.667), SHA-256 everywhere, ESSCertIDv2, accuracy 1 s, genTime to the
 * millisecond, serials of 128 random bits (no counter to keep or lose), the
 * TSA name, the signer's certificate and ca.crt's intermediates (not its
 * roots) in every token. Errors: 500
 * at open naming the file and what to do; 503 from a call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include "selo/buf.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/tsa.h"

/* UUID 9c7a4770-1852-4093-976f-6c9cde333d3f as an OID under 2.25 (ITU-T
 * X.667 §6.3): needs no registration and squats on nobody's arc. */
#define TSA_LOCAL_POLICY "2.25.207994476491351263116839556265121365311"
#define TSA_LOCAL_WHO "the built-in TSA (keys/tsa.crt)"
#define CA_MAX_BYTES (1 << 20)

struct tsa_local {
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *extra; /* ca.crt's intermediates, put in every token */
	ASN1_OBJECT *policy;
	struct buf ca_pem;     /* ca.crt: the trust anchors */
	struct buf certs;      /* verified chain, PEM texts each NUL-terminated */
	int ncerts;
	int self_tested;       /* a token's signature and chain verified at open */
};

static void local_close(void *state)
{
	struct tsa_local *s = state;
	if (!s)
		return;
	EVP_PKEY_free(s->key);
	X509_free(s->cert);
	sk_X509_pop_free(s->extra, X509_free);
	ASN1_OBJECT_free(s->policy);
	buf_free(&s->ca_pem);
	buf_free(&s->certs);
	free(s);
}

/* ---- loading ----------------------------------------------------------- */

static int load_key(const char *path, EVP_PKEY **out, struct selo_err *err)
{
	BIO *b = BIO_new_file(path, "r");
	*out = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (*out)
		return 0;
	err_set(err, 500, "invalid-key", "cannot read the TSA key %s as an unencrypted PEM "
		"private key (run `selo init` or restore it)", path);
	err_add_openssl(err);
	return -1;
}

static int load_cert(const char *path, X509 **out, struct selo_err *err)
{
	BIO *b = BIO_new_file(path, "r");
	*out = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (*out)
		return 0;
	err_set(err, 500, "invalid-cert", "cannot read the TSA certificate %s as PEM (run `selo "
		"init` or restore it)", path);
	err_add_openssl(err);
	return -1;
}

/* The certificates of ca.crt a verifier may lack: all but self-signed
 * roots, which must come from the verifier's own trust store anyway (a copy
 * in the token would be bytes nobody checks). */
static STACK_OF(X509) *intermediates(const struct buf *pem, const char *path,
				     struct selo_err *err)
{
	BIO *b = BIO_new_mem_buf(pem->data, (int)pem->len);
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;
	int n = 0;
	while (b && sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		n++;
		if (X509_self_signed(x, 0) == 1 || !sk_X509_push(sk, x))
			X509_free(x);
	}
	BIO_free(b);
	ERR_clear_error(); /* the loop ends on "no start line" */
	if (sk && n > 0)
		return sk;
	sk_X509_free(sk);
	err_set(err, 500, "invalid-cert", "%s holds no PEM certificate (run `selo init` or "
		"restore it)", path);
	return NULL;
}

static int local_load(const struct selo_config *cfg, struct tsa_local *s, struct selo_err *err)
{
	char key[1100], crt[1100], ca[1100];
	config_path(cfg, "keys/tsa.pem", key, sizeof(key));
	config_path(cfg, "keys/tsa.crt", crt, sizeof(crt));
	config_path(cfg, "keys/ca.crt", ca, sizeof(ca));
	if (load_key(key, &s->key, err) != 0 || load_cert(crt, &s->cert, err) != 0)
		return -1;
	if (file_read(ca, CA_MAX_BYTES, &s->ca_pem, err) != 0)
		return err_set(err, 500, "invalid-cert", "cannot read the TSA's CA %s (run `selo "
			       "init` or restore it)", ca);
	if (!(s->extra = intermediates(&s->ca_pem, ca, err)))
		return -1;
	if (X509_check_private_key(s->cert, s->key) != 1) {
		ERR_clear_error();
		return err_set(err, 500, "invalid-key", "%s does not belong to the certificate %s",
			       key, crt);
	}
	if (X509_check_purpose(s->cert, X509_PURPOSE_TIMESTAMP_SIGN, 0) != 1)
		return err_set(err, 500, "invalid-cert", "%s cannot sign timestamps: it needs "
			       "extendedKeyUsage = critical,timeStamping and nothing else", crt);
	s->policy = OBJ_txt2obj(TSA_LOCAL_POLICY, 1);
	if (!s->policy)
		return err_set(err, 500, "crypto", "cannot encode the TSA policy OID");
	return 0;
}

/* ---- answering a request ----------------------------------------------- */

/* 128 random bits: unique without a counter that could be lost or rolled
 * back with a restored backup (RFC 3161 §2.4.2 allows up to 160 bits). */
static ASN1_INTEGER *serial_random(TS_RESP_CTX *rc, void *data)
{
	(void)data;
	uint8_t r[16];
	random_bytes(r, sizeof(r));
	BIGNUM *bn = BN_bin2bn(r, sizeof(r), NULL);
	ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	BN_free(bn);
	if (!ai) {
		TS_RESP_CTX_set_status_info(rc, TS_STATUS_REJECTION, "cannot make a serial number");
		TS_RESP_CTX_add_failure_info(rc, TS_INFO_ADD_INFO_NOT_AVAILABLE);
	}
	return ai;
}

static TS_RESP_CTX *responder_make(const struct tsa_local *s)
{
	TS_RESP_CTX *rc = TS_RESP_CTX_new();
	if (!rc)
		return NULL;
	int ok = TS_RESP_CTX_set_signer_cert(rc, s->cert) &&
		 TS_RESP_CTX_set_signer_key(rc, s->key) &&
		 TS_RESP_CTX_set_certs(rc, s->extra) &&
		 TS_RESP_CTX_set_def_policy(rc, s->policy) &&
		 TS_RESP_CTX_add_md(rc, EVP_sha256()) &&
		 TS_RESP_CTX_set_signer_digest(rc, EVP_sha256()) &&
		 TS_RESP_CTX_set_ess_cert_id_digest(rc, EVP_sha256()) &&
		 TS_RESP_CTX_set_accuracy(rc, 1, 0, 0) &&
		 TS_RESP_CTX_set_clock_precision_digits(rc, 3);
	if (!ok) {
		TS_RESP_CTX_free(rc);
		return NULL;
	}
	TS_RESP_CTX_set_serial_cb(rc, serial_random, NULL);
	TS_RESP_CTX_add_flags(rc, TS_TSA_NAME);
	return rc;
}

/* OpenSSL's TimeStampResp for a DER TimeStampReq (granted or not: the
 * caller checks, as it would for any TSA); NULL when none could be made. */
static TS_RESP *respond(const struct tsa_local *s, const uint8_t *req, size_t req_len,
			struct selo_err *err)
{
	TS_RESP_CTX *rc = responder_make(s);
	BIO *in = rc ? BIO_new_mem_buf(req, (int)req_len) : NULL;
	TS_RESP *r = in ? TS_RESP_create_response(rc, in) : NULL;
	BIO_free(in);
	TS_RESP_CTX_free(rc);
	if (!r) {
		err_set(err, 503, "tsa-unavailable", "%s could not answer a request", TSA_LOCAL_WHO);
		err_add_openssl(err);
	}
	return r;
}

/* The self-test's path: the answer as DER through tsa_response_accept,
 * exactly what an http TSA's answer gets, signature and chain included. */
static int accept_as_der(const struct tsa_local *s, TS_RESP *r, const uint8_t *req,
			 size_t req_len, uint8_t **der, size_t *len, int64_t *gen_time_ms,
			 struct selo_err *err)
{
	unsigned char *p = NULL;
	int n = i2d_TS_RESP(r, &p);
	if (n <= 0) {
		err_set(err, 503, "tsa-unavailable", "%s could not encode its answer", TSA_LOCAL_WHO);
		err_add_openssl(err);
		return -1;
	}
	int rc = tsa_response_accept(TSA_LOCAL_WHO, req, req_len, p, (size_t)n, s->ca_pem.data,
				     s->ca_pem.len, "keys/ca.crt", der, len, gen_time_ms, err);
	OPENSSL_free(p);
	return rc;
}

static int local_timestamp(void *state, const uint8_t digest[32], uint8_t **der, size_t *len,
			   int64_t *gen_time_ms, struct selo_err *err)
{
	const struct tsa_local *s = state;
	uint8_t *req = NULL;
	size_t req_len = 0;
	int rc = -1;
	TS_RESP *r = NULL;
	if (tsa_request_make(digest, &req, &req_len, err) == 0)
		r = respond(s, req, req_len, err);
	/* After the self-test verified a token's signature and chain over
	 * DER, tokens made since by the same key and code skip only that (it
	 * costs more than making the token) and the DER round trip (parsing
	 * the certificates back cost as much again); status, version,
	 * imprint, nonce and genTime are still checked on every one. */
	if (r && !s->self_tested)
		rc = accept_as_der(s, r, req, req_len, der, len, gen_time_ms, err);
	else if (r)
		rc = tsa_response_accept_obj(TSA_LOCAL_WHO, r, req, req_len, NULL, 0, "keys/ca.crt",
					     der, len, gen_time_ms, err);
	TS_RESP_free(r);
	free(req);
	return rc;
}

static int local_certs_pem(void *state, struct buf *certs, struct selo_err *err)
{
	(void)err;
	const struct tsa_local *s = state;
	buf_append(certs, s->certs.data, s->certs.len);
	return s->ncerts;
}

/* One token end to end, kept for its verified chain (tsa_certs_pem). */
static int local_self_test(struct tsa_local *s, struct selo_err *err)
{
	static const char probe[] = "selo: built-in TSA self-test";
	uint8_t digest[32], *tok = NULL;
	size_t tok_len = 0;
	int64_t when;
	sha256(probe, sizeof(probe) - 1, digest);
	if (local_timestamp(s, digest, &tok, &tok_len, &when, err) != 0) {
		char why[sizeof(err->msg)];
		snprintf(why, sizeof(why), "%s", err ? err->msg : "");
		return err_set(err, 500, "invalid-cert", "the built-in TSA fails its self-test "
			       "(check keys/tsa.crt against keys/ca.crt): %.400s", why);
	}
	s->ncerts = tsa_token_chain_pem(tok, tok_len, s->ca_pem.data, s->ca_pem.len, &s->certs,
					err);
	free(tok);
	s->self_tested = s->ncerts > 0;
	return s->ncerts > 0 ? 0 : -1;
}

int tsa_local_open(const struct selo_config *cfg, void **state, struct selo_err *err)
{
	*state = NULL;
	struct tsa_local *s = xcalloc(1, sizeof(*s));
	if (local_load(cfg, s, err) != 0 || local_self_test(s, err) != 0) {
		local_close(s);
		return -1;
	}
	*state = s;
	return 0;
}

static const char *local_trust_pem(void *state, size_t *len)
{
	const struct tsa_local *s = state;
	*len = s->ca_pem.len;
	return s->ca_pem.data;
}

const struct tsa_ops tsa_local_ops = {
	.kind = "local",
	.timestamp = local_timestamp,
	.certs_pem = local_certs_pem,
	.close = local_close,
	.trust_pem = local_trust_pem,
};
