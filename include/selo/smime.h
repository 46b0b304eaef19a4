/* smime.h: S/MIME signing (RFC 8551) with OpenSSL CMS: a detached signature
 * over the exact CRLF bytes of a MIME entity, written as a multipart/signed
 * (RFC 1847) that `openssl cms -verify` and mail clients accept. The signer
 * key is RSA-2048+ or ECDSA P-256 (OpenSSL 3.0 cannot sign CMS with
 * Ed25519). A signer may be shared by threads (it is read-only). */
#ifndef SELO_SMIME_H
#define SELO_SMIME_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"

struct smime_signer;

/* chain_path: PEM of intermediate certificates to include, or NULL. */
int smime_signer_load(const char *key_path, const char *cert_path, const char *chain_path,
		      struct smime_signer **out, struct selo_err *err);
/* The same for a document signer (PDF receipts, smime_sign_der): the
 * certificate needs keyUsage digitalSignature or nonRepudiation, not the
 * S/MIME purpose. */
int smime_signer_load_document(const char *key_path, const char *cert_path,
			       const char *chain_path, struct smime_signer **out,
			       struct selo_err *err);
void smime_signer_free(struct smime_signer *s);
/* The certificate's subject as RFC 2253 text, and its SHA-256 fingerprint
 * (hex of the DER). */
const char *smime_signer_subject(const struct smime_signer *s);
const char *smime_signer_cert_sha256(const struct smime_signer *s);

/* Obtains an RFC 3161 TimeStampToken (DER ContentInfo) over digest, the
 * SHA-256 of the CMS signature value; *der is malloc'd. (Set by the ledger
 * issue; NULL means the signature carries no timestamp.) */
typedef int (*smime_tst_fn)(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
			    struct selo_err *err);

struct smime_signed {
	struct buf content_type; /* value for the top-level Content-Type header (may be folded with CRLF SP) */
	struct buf body;         /* the multipart/signed body: part 1 = entity, part 2 = smime.p7s */
	int timestamped;         /* 1 when a TimeStampToken was added */
};

/* entity: the exact bytes of the MIME entity to sign (its headers, a blank
 * line, its body; CRLF line ends). Writes the multipart/signed into out. */
int smime_sign(struct smime_signer *s, const char *entity, size_t len, smime_tst_fn tst,
	       void *tst_arg, struct smime_signed *out, struct selo_err *err);
void smime_signed_free(struct smime_signed *o);

/* One piece of the bytes smime_sign_der signs. A PDF signature covers two
 * (the file before and after its /Contents), so they are passed in place
 * rather than copied into one buffer. */
struct smime_part {
	const uint8_t *data;
	size_t len;
};

/* A detached CMS SignedData over the concatenation of parts, as PAdES
 * baseline (ETSI EN 319 142-1, SubFilter ETSI.CAdES.detached) wants it:
 * SHA-256; signed attributes content-type (id-data), message-digest and
 * ESS signing-certificate-v2 only (no signing-time: the PDF's /M carries
 * the claimed time, and B-B forbids the attribute; no S/MIME
 * capabilities); the signer's certificate and chain; and, when tst is not
 * NULL, an RFC 3161 token over SHA-256 of the signature value as the
 * unsigned attribute id-aa-timeStampToken, checked as smime_sign checks
 * it. Appends the DER to der (left as it was on error). Errors: 500
 * "crypto"; the tst's own error, or 502 "tsa" for a token that is not
 * over this signature. */
int smime_sign_der(struct smime_signer *s, const struct smime_part *parts, size_t nparts,
		   smime_tst_fn tst, void *tst_arg, struct buf *der, struct selo_err *err);

#endif
