/* smime.c: S/MIME signing with OpenSSL CMS (see smime.h). smime_sign makes
 * a detached CAdES-BES SignedData over the exact entity bytes (CMS_BINARY:
 * no canonicalisation by OpenSSL, the caller already wrote CRLF), may add
 * a signature timestamp as the unsigned attribute id-aa-timeStampToken
 * (CAdES-T), and writes the multipart/signed wrapper itself so that the
 * signed part is byte for byte the entity. smime_sign_der makes the
 * PAdES form for pdf.c: the same SignedData over caller-given bytes, but
 * with no signing-time, so it signs the signed attributes itself (OpenSSL
 * 3.0 would add one). Errors say which file or step
 * failed, with OpenSSL's reasons appended. A loaded signer is never written
 * to again, so threads may share it. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/smime.h"

struct smime_signer {
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) *chain; /* intermediates to include; may be empty */
	char subject[1024];
	char cert_sha256[65];
};

/* ---- loading --------------------------------------------------------- */

static int load_key(const char *path, EVP_PKEY **out, struct selo_err *err)
{
	BIO *b = BIO_new_file(path, "r");
	if (!b) {
		err_set(err, 500, "io", "cannot open S/MIME key %s", path);
		err_add_openssl(err);
		return -1;
	}
	*out = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!*out) {
		err_set(err, 500, "invalid-key", "%s is not an unencrypted PEM private key", path);
		err_add_openssl(err);
		return -1;
	}
	/* OpenSSL 3.0 cannot sign CMS with Ed25519 (no default digest). */
	if (!EVP_PKEY_is_a(*out, "RSA") && !EVP_PKEY_is_a(*out, "EC"))
		return err_set(err, 500, "invalid-key",
			       "%s: S/MIME needs an RSA (2048 bits or more) or ECDSA P-256 key", path);
	if (EVP_PKEY_is_a(*out, "RSA") && EVP_PKEY_get_bits(*out) < 2048)
		return err_set(err, 500, "invalid-key", "%s: RSA key has %d bits; use 2048 or more",
			       path, EVP_PKEY_get_bits(*out));
	return 0;
}

static int load_cert(const char *path, X509 **out, struct selo_err *err)
{
	BIO *b = BIO_new_file(path, "r");
	if (!b) {
		err_set(err, 500, "io", "cannot open S/MIME certificate %s", path);
		err_add_openssl(err);
		return -1;
	}
	*out = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!*out) {
		err_set(err, 500, "invalid-cert", "%s is not a PEM certificate", path);
		err_add_openssl(err);
		return -1;
	}
	return 0;
}

static int load_chain(const char *path, STACK_OF(X509) *chain, struct selo_err *err)
{
	BIO *b = BIO_new_file(path, "r");
	if (!b) {
		err_set(err, 500, "io", "cannot open certificate chain %s", path);
		err_add_openssl(err);
		return -1;
	}
	X509 *x;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(chain, x)) {
			X509_free(x);
			break;
		}
	}
	BIO_free(b);
	ERR_clear_error(); /* the read that ended the loop hit end of file */
	if (sk_X509_num(chain) == 0)
		return err_set(err, 500, "invalid-cert", "%s holds no PEM certificate", path);
	return 0;
}

static int describe_cert(struct smime_signer *s, struct selo_err *err)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b || X509_NAME_print_ex(b, X509_get_subject_name(s->cert), 0, XN_FLAG_RFC2253) < 0) {
		BIO_free(b);
		err_set(err, 500, "crypto", "cannot print the S/MIME certificate subject");
		err_add_openssl(err);
		return -1;
	}
	int n = BIO_read(b, s->subject, (int)sizeof(s->subject) - 1);
	s->subject[n > 0 ? n : 0] = '\0';
	BIO_free(b);
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (X509_digest(s->cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
		err_set(err, 500, "crypto", "cannot hash the S/MIME certificate");
		err_add_openssl(err);
		return -1;
	}
	hex_encode(md, 32, s->cert_sha256);
	return 0;
}

/* Refuses a key/certificate pair that recipients would reject anyway. An
 * e-mail signer needs the S/MIME purpose; a document signer (a PDF receipt)
 * only a key usage that allows signatures: a real document-signing
 * certificate, e.g. ICP-Brasil A1, often has no emailProtection. */
static int check_pair(struct smime_signer *s, const char *key_path, const char *cert_path,
		      int document, struct selo_err *err)
{
	if (X509_check_private_key(s->cert, s->key) != 1) {
		ERR_clear_error();
		return err_set(err, 500, "invalid-cert", "%s does not belong to the key in %s",
			       cert_path, key_path);
	}
	/* Also fills the certificate's extension cache now, so that later
	 * concurrent signing only reads it. */
	int smime = X509_check_purpose(s->cert, X509_PURPOSE_SMIME_SIGN, 0) == 1;
	ERR_clear_error();
	if (document) {
		uint32_t ku = X509_get_key_usage(s->cert);
		if (!(ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)))
			return err_set(err, 500, "invalid-cert",
				       "%s cannot sign documents: its keyUsage allows neither "
				       "digitalSignature nor nonRepudiation", cert_path);
		return 0;
	}
	if (!smime)
		return err_set(err, 500, "invalid-cert",
			       "%s cannot sign e-mail: it needs extendedKeyUsage emailProtection "
			       "and keyUsage digitalSignature (see certs/README.md)", cert_path);
	return 0;
}

static int signer_load(const char *key_path, const char *cert_path, const char *chain_path,
		       int document, struct smime_signer **out, struct selo_err *err)
{
	*out = NULL;
	struct smime_signer *s = xcalloc(1, sizeof(*s));
	s->chain = sk_X509_new_null();
	if (!s->chain || load_key(key_path, &s->key, err) != 0 ||
	    load_cert(cert_path, &s->cert, err) != 0 ||
	    (chain_path && load_chain(chain_path, s->chain, err) != 0) ||
	    check_pair(s, key_path, cert_path, document, err) != 0 || describe_cert(s, err) != 0) {
		if (!s->chain)
			err_set(err, 500, "internal", "out of memory");
		smime_signer_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

int smime_signer_load(const char *key_path, const char *cert_path, const char *chain_path,
		      struct smime_signer **out, struct selo_err *err)
{
	return signer_load(key_path, cert_path, chain_path, 0, out, err);
}

int smime_signer_load_document(const char *key_path, const char *cert_path,
			       const char *chain_path, struct smime_signer **out,
			       struct selo_err *err)
{
	return signer_load(key_path, cert_path, chain_path, 1, out, err);
}

void smime_signer_free(struct smime_signer *s)
{
	if (!s)
		return;
	EVP_PKEY_free(s->key);
	X509_free(s->cert);
	sk_X509_pop_free(s->chain, X509_free);
	free(s);
}

const char *smime_signer_subject(const struct smime_signer *s)
{
	return s->subject;
}

const char *smime_signer_cert_sha256(const struct smime_signer *s)
{
	return s->cert_sha256;
}

/* ---- signing --------------------------------------------------------- */

static CMS_ContentInfo *cms_sign_detached(struct smime_signer *s, const char *entity,
					  size_t len, struct selo_err *err)
{
	/* CADES adds signingCertificateV2; NOSMIMECAP drops the legacy cipher
	 * list; PARTIAL lets us finalise with the exact bytes below. */
	int fl = CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP | CMS_CADES | CMS_PARTIAL;
	BIO *in = BIO_new_mem_buf(entity, (int)len);
	CMS_ContentInfo *cms = in ? CMS_sign(s->cert, s->key, s->chain, NULL, (unsigned)fl) : NULL;
	if (cms && CMS_final(cms, in, NULL, (unsigned)(fl & ~CMS_PARTIAL)) != 1) {
		CMS_ContentInfo_free(cms);
		cms = NULL;
	}
	BIO_free(in);
	if (!cms) {
		err_set(err, 500, "crypto", "CMS signing failed");
		err_add_openssl(err);
	}
	return cms;
}

/* Steps into (or, with skip, over) the DER element at *p of the given
 * class and tag; definite lengths only. 0, or -1 when it is not there. */
static int der_step(const unsigned char **p, long *left, int cls, int tag, int constructed,
		    int skip)
{
	const unsigned char *q = *p;
	long len;
	int t, c;
	int r = ASN1_get_object(&q, &len, &t, &c, *left);
	if ((r & 0x80) || (r & 0x01) || t != tag || c != cls ||
	    !(r & V_ASN1_CONSTRUCTED) != !constructed)
		return -1;
	long head = (long)(q - *p);
	*p = skip ? q + len : q;
	*left = skip ? *left - head - len : len;
	return 0;
}

/* The TSTInfo of a DER TimeStampToken, found by walking the ContentInfo
 * (RFC 3161 2.4.2: SignedData whose eContent is id-ct-TSTInfo). A full
 * d2i_PKCS7 also decodes every embedded certificate's key, which cost a
 * tenth of a sealed message's CPU; the token's signature is the TSA
 * layer's to check. NULL when the shape is not that. */
static TS_TST_INFO *smime_token_tst_info(const uint8_t *der, size_t len)
{
	static const unsigned char TSTINFO_OID[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
						   0x09, 0x10, 0x01, 0x04}; /* 1.2.840.113549.1.9.16.1.4 */
	const unsigned char *p = der;
	long left = (long)len;
	/* ContentInfo, with nothing after it */
	if (der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1, 0) ||
	    (size_t)(p - der) + (size_t)left != len)
		return NULL;
	if (der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_OBJECT, 0, 1) ||
	    der_step(&p, &left, V_ASN1_CONTEXT_SPECIFIC, 0, 1, 0) ||
	    der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1, 0) || /* SignedData */
	    der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_INTEGER, 0, 1) ||
	    der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_SET, 1, 1) ||
	    der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, 1, 0)) /* EncapContentInfo */
		return NULL;
	const unsigned char *oid = p;
	long oid_left = left;
	if (der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_OBJECT, 0, 0) ||
	    left != (long)sizeof(TSTINFO_OID) || memcmp(p, TSTINFO_OID, sizeof(TSTINFO_OID)) != 0)
		return NULL;
	p = oid;
	left = oid_left;
	if (der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_OBJECT, 0, 1) ||
	    der_step(&p, &left, V_ASN1_CONTEXT_SPECIFIC, 0, 1, 0) ||
	    der_step(&p, &left, V_ASN1_UNIVERSAL, V_ASN1_OCTET_STRING, 0, 0))
		return NULL;
	const unsigned char *end = p + left;
	TS_TST_INFO *tst = d2i_TS_TST_INFO(NULL, &p, left);
	if (tst && p != end) {
		TS_TST_INFO_free(tst);
		return NULL;
	}
	return tst;
}

/* A token is accepted only if it is a timestamp over exactly this
 * signature: a wrong or garbled token must not be sealed into a notice. */
static int smime_token_check(const uint8_t *der, size_t len, const uint8_t digest[32],
		       struct selo_err *err)
{
	TS_TST_INFO *tst = smime_token_tst_info(der, len);
	TS_MSG_IMPRINT *mi = tst ? TS_TST_INFO_get_msg_imprint(tst) : NULL;
	ASN1_OCTET_STRING *h = mi ? TS_MSG_IMPRINT_get_msg(mi) : NULL;
	X509_ALGOR *alg = mi ? TS_MSG_IMPRINT_get_algo(mi) : NULL;
	const ASN1_OBJECT *oid = NULL;
	if (alg)
		X509_ALGOR_get0(&oid, NULL, NULL, alg);
	int ok = h && oid && OBJ_obj2nid(oid) == NID_sha256 && ASN1_STRING_length(h) == 32 &&
		 memcmp(ASN1_STRING_get0_data(h), digest, 32) == 0;
	int shaped = tst != NULL;
	TS_TST_INFO_free(tst);
	ERR_clear_error();
	if (!shaped)
		return err_set(err, 502, "tsa", "the TSA returned a token that is not DER CMS "
			       "SignedData of a TSTInfo");
	if (!ok)
		return err_set(err, 502, "tsa",
			       "the timestamp token does not cover this signature (expected a "
			       "SHA-256 imprint of the signature value)");
	return 0;
}

static int cms_timestamp(CMS_ContentInfo *cms, smime_tst_fn tst, void *arg,
			 struct selo_err *err)
{
	CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
	ASN1_OCTET_STRING *sv = si ? CMS_SignerInfo_get0_signature(si) : NULL;
	if (!sv)
		return err_set(err, 500, "crypto", "the CMS has no signature to timestamp");
	/* CAdES-T / RFC 3161 Appendix A: the token covers the signature value. */
	uint8_t digest[32];
	sha256(ASN1_STRING_get0_data(sv), (size_t)ASN1_STRING_length(sv), digest);
	uint8_t *der = NULL;
	size_t len = 0;
	if (tst(arg, digest, &der, &len, err) != 0) {
		free(der);
		return -1;
	}
	if (!der || len == 0 || len > 1 << 20) {
		free(der);
		return err_set(err, 502, "tsa", "the TSA returned an empty or oversized token");
	}
	int rc = smime_token_check(der, len, digest, err);
	if (rc == 0 &&
	    CMS_unsigned_add1_attr_by_NID(si, NID_id_smime_aa_timeStampToken, V_ASN1_SEQUENCE, der,
					  (int)len) != 1) {
		err_set(err, 500, "crypto", "cannot add the timestamp to the signature");
		err_add_openssl(err);
		rc = -1;
	}
	free(der);
	return rc;
}

static int cms_der(CMS_ContentInfo *cms, struct buf *out, struct selo_err *err)
{
	unsigned char *der = NULL;
	int n = i2d_CMS_ContentInfo(cms, &der);
	if (n <= 0) {
		err_set(err, 500, "crypto", "cannot encode the CMS signature");
		err_add_openssl(err);
		return -1;
	}
	buf_append(out, der, (size_t)n);
	OPENSSL_free(der);
	return 0;
}

/* A random boundary that does not occur in the entity (RFC 2046 §5.1.1). */
static void boundary_make(const char *entity, size_t len, char out[64])
{
	for (;;) {
		uint8_t r[16];
		char hex[33];
		random_bytes(r, sizeof(r));
		hex_encode(r, sizeof(r), hex);
		snprintf(out, 64, "selo-%s", hex);
		if (!memmem(entity, len, out, strlen(out)))
			return;
	}
}

/* Folded after the protocol parameter: with "Content-Type: " in front no
 * line exceeds 78 characters. */
static void content_type_write(struct buf *ct, const char *boundary)
{
	buf_printf(ct,
		   "multipart/signed; protocol=\"application/pkcs7-signature\";\r\n"
		   " micalg=sha-256; boundary=\"%s\"", boundary);
}

/* RFC 1847 / RFC 8551 §3.5: the CRLF before each delimiter belongs to the
 * delimiter, so part 1 is exactly the entity bytes. */
static void body_write(struct buf *body, const char *b, const char *entity, size_t len,
		       const struct buf *sig)
{
	buf_reserve(body, len + sig->len * 4 / 3 + sig->len / 38 + 512);
	buf_printf(body, "This is an S/MIME signed message\r\n--%s\r\n", b);
	buf_append(body, entity, len);
	buf_printf(body,
		   "\r\n--%s\r\n"
		   "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
		   "Content-Transfer-Encoding: base64\r\n"
		   "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
		   "\r\n", b);
	base64_encode(body, (const uint8_t *)sig->data, sig->len, 76);
	buf_printf(body, "\r\n--%s--\r\n", b);
}

int smime_sign(struct smime_signer *s, const char *entity, size_t len, smime_tst_fn tst,
	       void *tst_arg, struct smime_signed *out, struct selo_err *err)
{
	*out = (struct smime_signed){BUF_INIT, BUF_INIT, 0};
	if (!s || !entity || len == 0 || len > (size_t)1 << 30)
		return err_set(err, 500, "internal", "smime_sign: nothing to sign");
	CMS_ContentInfo *cms = cms_sign_detached(s, entity, len, err);
	if (!cms)
		return -1;
	struct buf sig = BUF_INIT;
	int rc = -1;
	if (tst && cms_timestamp(cms, tst, tst_arg, err) != 0)
		goto out;
	if (cms_der(cms, &sig, err) != 0)
		goto out;
	char boundary[64];
	boundary_make(entity, len, boundary);
	content_type_write(&out->content_type, boundary);
	body_write(&out->body, boundary, entity, len, &sig);
	out->timestamped = tst != NULL;
	rc = 0;
out:
	buf_free(&sig);
	CMS_ContentInfo_free(cms);
	return rc;
}

void smime_signed_free(struct smime_signed *o)
{
	if (!o)
		return;
	buf_free(&o->content_type);
	buf_free(&o->body);
	o->timestamped = 0;
}

/* ---- detached signatures over arbitrary bytes (PAdES) ------------------ */

/* SHA-256 of the parts, read where they are. */
static int parts_digest(const struct smime_part *parts, size_t nparts, uint8_t md[32],
			struct selo_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < nparts; i++)
		ok = EVP_DigestUpdate(ctx, parts[i].data, parts[i].len) == 1;
	unsigned int n = 0;
	ok = ok && EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		err_set(err, 500, "crypto", "cannot hash the bytes to sign");
		err_add_openssl(err);
		return -1;
	}
	return 0;
}

struct der_item {
	unsigned char *p;
	int n;
};

static int der_item_cmp(const void *a, const void *b)
{
	const struct der_item *x = a, *y = b;
	int r = memcmp(x->p, y->p, (size_t)(x->n < y->n ? x->n : y->n));
	return r ? r : (x->n > y->n) - (x->n < y->n);
}

/* The DER the signature is computed over (RFC 5652 5.4): the signed
 * attributes as a SET OF with its universal tag, not the [0] IMPLICIT
 * form stored in the SignerInfo. DER orders a SET OF by the encodings of
 * its elements; OpenSSL sorts the same way (memcmp, then length) when it
 * writes the SignerInfo, so the bytes signed here are the bytes a verifier
 * re-reads from the file. */
static int signed_attrs_der(CMS_SignerInfo *si, struct buf *out, struct selo_err *err)
{
	int n = CMS_signed_get_attr_count(si);
	if (n <= 0 || n > 16)
		return err_set(err, 500, "crypto", "unexpected signed attributes (%d)", n);
	struct der_item it[16];
	size_t total = 0;
	int got = 0, rc = 0;
	for (; got < n; got++) {
		it[got].p = NULL;
		it[got].n = i2d_X509_ATTRIBUTE(CMS_signed_get_attr(si, got), &it[got].p);
		if (it[got].n <= 0) {
			err_set(err, 500, "crypto", "cannot encode a signed attribute");
			err_add_openssl(err);
			rc = -1;
			break;
		}
		total += (size_t)it[got].n;
	}
	if (rc == 0) {
		qsort(it, (size_t)n, sizeof(it[0]), der_item_cmp);
		uint8_t head[6] = {0x31};
		size_t hl = 1;
		if (total < 0x80) {
			head[hl++] = (uint8_t)total;
		} else {
			int bytes = total > 0xffffff ? 4 : total > 0xffff ? 3 : total > 0xff ? 2 : 1;
			head[hl++] = (uint8_t)(0x80 | bytes);
			for (int b = bytes - 1; b >= 0; b--)
				head[hl++] = (uint8_t)(total >> (8 * b));
		}
		buf_append(out, head, hl);
		for (int i = 0; i < n; i++)
			buf_append(out, it[i].p, (size_t)it[i].n);
	}
	for (int i = 0; i < got; i++)
		OPENSSL_free(it[i].p);
	return rc;
}

/* Signs the signed attributes with the signer's key and stores the value
 * in the SignerInfo. OpenSSL 3.0's CMS_SignerInfo_sign would do this but
 * always adds signingTime first, which PAdES B-B forbids. */
static int signed_attrs_sign(struct smime_signer *s, CMS_SignerInfo *si, struct selo_err *err)
{
	struct buf tbs = BUF_INIT;
	if (signed_attrs_der(si, &tbs, err) != 0)
		return -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t n = 0;
	int ok = ctx && EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, s->key, NULL) == 1 &&
		 EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)tbs.data, tbs.len) == 1 &&
		 (sig = OPENSSL_malloc(n ? n : 1)) != NULL &&
		 EVP_DigestSign(ctx, sig, &n, (const unsigned char *)tbs.data, tbs.len) == 1 &&
		 n <= INT_MAX && ASN1_STRING_set(CMS_SignerInfo_get0_signature(si), sig, (int)n) == 1;
	OPENSSL_free(sig);
	EVP_MD_CTX_free(ctx);
	buf_free(&tbs);
	if (!ok) {
		err_set(err, 500, "crypto", "cannot sign the signed attributes");
		err_add_openssl(err);
		return -1;
	}
	return 0;
}

/* A SignedData with one SignerInfo whose signed attributes are exactly
 * content-type, message-digest and signing-certificate-v2 (CMS_CADES adds
 * the last), signed. */
static CMS_ContentInfo *cms_sign_attrs(struct smime_signer *s, const uint8_t md[32],
				       struct selo_err *err)
{
	unsigned int fl = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL;
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, s->chain, NULL, fl);
	CMS_SignerInfo *si = cms ? CMS_add1_signer(cms, s->cert, s->key, EVP_sha256(),
						   fl | CMS_NOSMIMECAP | CMS_CADES)
				 : NULL;
	int ok = si &&
		 CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
					     OBJ_nid2obj(NID_pkcs7_data), -1) == 1 &&
		 CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING, md,
					     32) == 1;
	if (!ok) {
		err_set(err, 500, "crypto", "cannot build the CMS signature");
		err_add_openssl(err);
	} else if (signed_attrs_sign(s, si, err) != 0) {
		ok = 0;
	}
	if (!ok) {
		CMS_ContentInfo_free(cms);
		return NULL;
	}
	return cms;
}

int smime_sign_der(struct smime_signer *s, const struct smime_part *parts, size_t nparts,
		   smime_tst_fn tst, void *tst_arg, struct buf *der, struct selo_err *err)
{
	if (!s || (!parts && nparts) || !der)
		return err_set(err, 500, "internal", "smime_sign_der: nothing to sign");
	uint8_t md[32];
	if (parts_digest(parts, nparts, md, err) != 0)
		return -1;
	CMS_ContentInfo *cms = cms_sign_attrs(s, md, err);
	if (!cms)
		return -1;
	size_t was = der->len;
	int rc = -1;
	if ((!tst || cms_timestamp(cms, tst, tst_arg, err) == 0) && cms_der(cms, der, err) == 0)
		rc = 0;
	CMS_ContentInfo_free(cms);
	if (rc != 0 && der->data) {
		der->len = was;
		der->data[was] = '\0';
	}
	return rc;
}
