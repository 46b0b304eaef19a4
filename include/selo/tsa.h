/* tsa.h: RFC 3161 timestamps, behind one interface: tsa_local.c (a built-in
 * TSA with OpenSSL's TS API, DIR/keys/tsa.pem + tsa.crt, whose certificate
 * has the critical timeStamping EKU) and tsa_http.c (any RFC 3161 server at
 * tsa.url over libcurl). Every token is verified before it is returned (the
 * built-in TSA's own signature and chain once, at open: docs/tsa.md): the
 * signature, the certificate chain to the trusted CAs, the ESS certificate
 * identifier, the message imprint and the nonce. A tsa may be used by
 * several threads at once: each call builds its own OpenSSL and curl
 * contexts, and the little shared state (http: the last token, for
 * tsa_certs_pem) is behind a mutex. docs/tsa.md has the details. */
#ifndef SELO_TSA_H
#define SELO_TSA_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/config.h"
#include "selo/err.h"

struct tsa;

/* tsa_local when cfg->tsa_url is empty, else tsa_http. Trust anchors:
 * DIR/keys/ca.crt for the local TSA; cfg->tsa_ca (PEM bundle; a relative
 * path is taken from cfg->data_dir) for http. The local TSA makes and
 * checks one token at open, so a key that does not match its certificate,
 * or a certificate that does not chain to ca.crt, fails here (500). The
 * http TSA is not contacted at open. */
int tsa_open(const struct selo_config *cfg, struct tsa **out, struct selo_err *err);
void tsa_close(struct tsa *t);
/* "local" or "http". */
const char *tsa_kind(const struct tsa *t);

/* A TimeStampToken (DER ContentInfo, as openssl ts -token_out writes) over
 * a SHA-256 digest. *der is malloc'd. *gen_time_ms: the token's genTime. A
 * TSA that does not answer, answers late (tsa.timeout_ms) or answers with
 * anything but a valid granted token is an error (status 503) and nothing is
 * returned. */
int tsa_timestamp(struct tsa *t, const uint8_t digest[32], uint8_t **der, size_t *len,
		  int64_t *gen_time_ms, struct selo_err *err);

/* The certificates a verifier needs (TSA certificate first, then the chain
 * up to and including the root), as PEM texts: appends each to certs as a
 * separate NUL-terminated string; returns how many, or -1. local: the chain
 * of tsa.crt to ca.crt. http: the verified chain of the signer of the last
 * token this tsa accepted (one probe timestamp if there was none yet); for
 * the chain of one particular token use tsa_token_certs_pem. */
int tsa_certs_pem(struct tsa *t, struct buf *certs, struct selo_err *err);

/* The verified chain of one token this tsa made (as tsa_certs_pem writes
 * it), against the tsa's own trust anchors: what a receipt should carry
 * for that token, even after the TSA's certificate was renewed. */
int tsa_token_certs_pem(struct tsa *t, const uint8_t *der, size_t len, struct buf *certs,
			struct selo_err *err);

/* Offline: verifies token (DER) over digest against the PEM CA bundle
 * (trusted roots) plus the untrusted intermediates in `untrusted_pem` (may be
 * NULL); the signer must carry the timeStamping EKU. On success sets
 * *gen_time_ms and the TSA's subject (RFC 2253) into tsa_name (may be
 * NULL). Checks: signature, chain at the current time with the critical
 * timeStamping EKU, ESS certificate id, version 1, SHA-256 imprint equal to
 * digest, TSA name (if any) = signer. Both PEM inputs may be plain
 * concatenations or tsa_certs_pem's NUL-separated list. Errors: 422
 * "invalid-timestamp" (malformed or not verifying, with the reason), 400
 * "invalid-ca" (a bundle without certificates). */
int tsa_verify_token(const uint8_t *der, size_t len, const uint8_t digest[32],
		     const char *ca_pem, size_t ca_len, const char *untrusted_pem,
		     size_t untrusted_len, int64_t *gen_time_ms, char *tsa_name, size_t name_len,
		     struct selo_err *err);

/* The verified chain of the token's signer (signer first, then up to and
 * including the root from ca_pem), as tsa_certs_pem writes it. The token's
 * own certificates serve as intermediates. Returns how many, or -1 (422
 * when the token is malformed or its signer does not chain to ca_pem with
 * the timeStamping EKU). */
int tsa_token_chain_pem(const uint8_t *der, size_t len, const char *ca_pem, size_t ca_len,
			struct buf *certs, struct selo_err *err);

/* Shared by the backends, so a built-in token passes exactly the checks an
 * external one does. */

/* A DER TimeStampReq: version 1, SHA-256 imprint of digest, a fresh random
 * 64-bit nonce, certReq true. *req is malloc'd. */
int tsa_request_make(const uint8_t digest[32], uint8_t **req, size_t *req_len,
		     struct selo_err *err);

/* Accepts a DER TimeStampResp answering req (DER, from tsa_request_make)
 * only if: it parses with no trailing bytes; its status is granted (else
 * the TSA's status, text and failure codes are reported); the signature
 * verifies; the signer chains to a certificate of ca_pem with the critical
 * timeStamping EKU; the ESS signing-certificate attribute names the signer;
 * the version is 1; the imprint (algorithm SHA-256 and bytes) is req's;
 * the nonce is req's; a TSA name, when present, is the signer's. Then *token (malloc'd;
 * the DER ContentInfo) and *gen_time_ms. who names the TSA in messages
 * ("TSA http://...", "the built-in TSA"), anchors the CA bundle ("tsa.ca
 * /etc/...", "keys/ca.crt"). ca_pem NULL skips only the signature and chain
 * check: for the built-in TSA, after its self-test verified both. Failures
 * are status 503, type "tsa-unavailable". */
int tsa_response_accept(const char *who, const uint8_t *req, size_t req_len,
			const uint8_t *resp, size_t resp_len, const char *ca_pem, size_t ca_len,
			const char *anchors, uint8_t **token, size_t *token_len,
			int64_t *gen_time_ms, struct selo_err *err);
/* The same checks on a response already in memory (OpenSSL's TS_RESP),
 * for the built-in TSA: it skips a DER round trip whose parse of the
 * embedded certificates cost more than making the token. r stays the
 * caller's. */
struct TS_resp_st;
int tsa_response_accept_obj(const char *who, struct TS_resp_st *r, const uint8_t *req,
			    size_t req_len, const char *ca_pem, size_t ca_len, const char *anchors,
			    uint8_t **token, size_t *token_len, int64_t *gen_time_ms,
			    struct selo_err *err);

/* Backends. */
struct tsa_ops {
	const char *kind;
	int (*timestamp)(void *state, const uint8_t digest[32], uint8_t **der, size_t *len,
			 int64_t *gen_time_ms, struct selo_err *err);
	int (*certs_pem)(void *state, struct buf *certs, struct selo_err *err);
	void (*close)(void *state);
	/* The trust anchors (PEM text) tokens are checked against. */
	const char *(*trust_pem)(void *state, size_t *len);
};
int tsa_local_open(const struct selo_config *cfg, void **state, struct selo_err *err);
int tsa_http_open(const struct selo_config *cfg, void **state, struct selo_err *err);
extern const struct tsa_ops tsa_local_ops;
extern const struct tsa_ops tsa_http_ops;

#endif
