/* test_smime.c: S/MIME signatures checked by a third party, the openssl
 * CLI: a signed message verifies against the dev CA made by keys_init and
 * yields the exact entity; a changed byte fails; a real RFC 3161 token
 * (made here with OpenSSL's TS_RESP_CTX and the TSA key from keys_init)
 * sits in unsignedAttrs, covers the signature value, and keeps the message
 * valid. Works in a mkdtemp directory under /tmp, removed after. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "selo/smime.h"
#include "t.h"
#include "t_run.h"

static const char ENTITY[] =
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 7bit\r\n"
	"\r\n"
	"Prezado cliente,\r\n"
	"this notice is about invoice 42.\r\n"
	"\r\n"
	"Trailing spaces stay as they are.   \r\n";

struct fixture {
	char root[64];
	char keys[128];
	struct smime_signer *signer;
};


static int fixture_make(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/selo-test-smime-XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->root);
	struct keys_report rep;
	struct selo_err err = {0};
	if (keys_init(f->keys, "example.com", "notices@example.com", "example.com/selo", 0, &rep,
		      &err) != 0) {
		fprintf(stderr, "  keys_init: %s\n", err.msg);
		return -1;
	}
	char key[256], crt[256];
	snprintf(key, sizeof(key), "%s/smime.pem", f->keys);
	snprintf(crt, sizeof(crt), "%s/smime.crt", f->keys);
	if (smime_signer_load(key, crt, NULL, &f->signer, &err) != 0) {
		fprintf(stderr, "  smime_signer_load: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void fixture_free(struct fixture *f)
{
	smime_signer_free(f->signer);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (strncmp(f->root, "/tmp/selo-test-", 15) == 0 && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", f->root);
}

/* Wraps the multipart/signed in a message, as the composer does. */
static int message_write(const struct fixture *f, const char *name, const struct smime_signed *s)
{
	struct buf m = BUF_INIT;
	buf_printf(&m,
		   "From: notices@example.com\r\nTo: maria@example.org\r\nSubject: test\r\n"
		   "MIME-Version: 1.0\r\nContent-Type: %s\r\n\r\n", buf_str(&s->content_type));
	buf_append(&m, s->body.data, s->body.len);
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", f->root, name);
	struct selo_err err;
	int rc = file_write_atomic(path, m.data, m.len, 0644, &err);
	buf_free(&m);
	return rc;
}

/* openssl cms -verify on root/name; on success out.bin holds the content. */
static int openssl_verify(const struct fixture *f, const char *name, struct buf *out)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && rm -f out.bin && openssl cms -verify -in %s -CAfile keys/ca.crt -out out.bin",
		 f->root, name);
	struct buf log = BUF_INIT;
	int rc = run(cmd, &log);
	if (rc == 0 && out) {
		char path[256];
		snprintf(path, sizeof(path), "%s/out.bin", f->root);
		struct selo_err err;
		if (file_read(path, 1 << 20, out, &err) != 0)
			rc = -1;
	}
	buf_free(&log);
	return rc;
}

static int max_line_len(const char *s, size_t n)
{
	int max = 0, col = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n') {
			col = 0;
			continue;
		}
		if (s[i] != '\r' && ++col > max)
			max = col;
	}
	return max;
}

TEST(signer_describes_its_certificate)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	CHECK_STR(smime_signer_subject(f.signer), "O=Selo,CN=notices@example.com");
	char cmd[512];
	struct buf out = BUF_INIT;
	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/smime.crt' -noout -fingerprint -sha256 | "
		 "sed 's/.*=//; s/://g' | tr A-F a-f", f.keys);
	CHECK(run(cmd, &out) == 0);
	CHECK(out.len == 65 && strncmp(out.data, smime_signer_cert_sha256(f.signer), 64) == 0);
	buf_free(&out);
	fixture_free(&f);
}

TEST(signed_message_verifies_with_openssl_and_yields_the_entity)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct smime_signed s;
	struct selo_err err = {0};
	CHECK(smime_sign(f.signer, ENTITY, strlen(ENTITY), NULL, NULL, &s, &err) == 0);
	CHECK(s.timestamped == 0);
	const char *ct = buf_str(&s.content_type);
	CHECK(strncmp(ct, "multipart/signed; protocol=\"application/pkcs7-signature\";", 57) == 0);
	CHECK(strstr(ct, "micalg=sha-256; boundary=\"") != NULL);
	/* "Content-Type: " + the value, and the wrapper itself, fit 78 columns. */
	CHECK(strchr(ct, '\r') && (strchr(ct, '\r') - ct) + 14 <= 78);
	CHECK(max_line_len(ct, strlen(ct)) <= 78);
	const char *sig_part = strstr(s.body.data, "\r\n--selo-");
	CHECK(sig_part && max_line_len(sig_part, s.body.len - (size_t)(sig_part - s.body.data)) <= 78);
	CHECK(strncmp(s.body.data, "This is an S/MIME signed message\r\n--selo-", 41) == 0);
	/* The entity sits between the delimiters byte for byte. */
	CHECK(memmem(s.body.data, s.body.len, ENTITY, strlen(ENTITY)) != NULL);
	CHECK(s.body.len > 6 && memcmp(s.body.data + s.body.len - 4, "--\r\n", 4) == 0);

	CHECK(message_write(&f, "msg.eml", &s) == 0);
	struct buf out = BUF_INIT;
	CHECK(openssl_verify(&f, "msg.eml", &out) == 0);
	CHECK(out.len == strlen(ENTITY) && memcmp(out.data, ENTITY, out.len) == 0);

	/* CAdES-BES: the signing certificate is bound by signingCertificateV2. */
	char cmd[512];
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl cms -cmsout -print -in msg.eml", f.root);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "id-smime-aa-signingCertificateV2") != NULL);
	const char *ua = strstr(buf_str(&out), "unsignedAttrs:");
	CHECK(ua && strncmp(ua + 14 + strspn(ua + 14, " \n"), "<ABSENT>", 8) == 0);
	buf_free(&out);
	smime_signed_free(&s);
	fixture_free(&f);
}

TEST(changed_byte_fails_verification)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct smime_signed s;
	struct selo_err err = {0};
	CHECK(smime_sign(f.signer, ENTITY, strlen(ENTITY), NULL, NULL, &s, &err) == 0);
	CHECK(message_write(&f, "good.eml", &s) == 0);
	CHECK(openssl_verify(&f, "good.eml", NULL) == 0);
	char *p = memmem(s.body.data, s.body.len, "invoice 42", 10);
	CHECK(p != NULL);
	if (p)
		p[8] = '3'; /* invoice 43 */
	CHECK(message_write(&f, "bad.eml", &s) == 0);
	CHECK(openssl_verify(&f, "bad.eml", NULL) != 0);
	smime_signed_free(&s);
	fixture_free(&f);
}

/* ---- a real RFC 3161 TSA, in the test ---------------------------------- */

struct tsa {
	X509 *cert;
	EVP_PKEY *key;
	uint8_t last_digest[32];
	uint8_t *last_token;
	size_t last_len;
	int corrupt; /* 1: timestamp another digest; 2: fail; 3: a stray byte after the token;
		      * 4: the token cut short; 5: its TSTInfo OID changed */
};

static int tsa_load(struct tsa *t, const char *keys)
{
	memset(t, 0, sizeof(*t));
	char path[256];
	snprintf(path, sizeof(path), "%s/tsa.crt", keys);
	FILE *fp = fopen(path, "r");
	t->cert = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
	if (fp)
		fclose(fp);
	snprintf(path, sizeof(path), "%s/tsa.pem", keys);
	fp = fopen(path, "r");
	t->key = fp ? PEM_read_PrivateKey(fp, NULL, NULL, NULL) : NULL;
	if (fp)
		fclose(fp);
	return t->cert && t->key ? 0 : -1;
}

static void tsa_free(struct tsa *t)
{
	X509_free(t->cert);
	EVP_PKEY_free(t->key);
	free(t->last_token);
}

static ASN1_INTEGER *serial_cb(TS_RESP_CTX *ctx, void *data)
{
	(void)ctx;
	(void)data;
	uint8_t r[8];
	random_bytes(r, sizeof(r));
	r[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(r, sizeof(r), NULL);
	ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return ai;
}

/* DER TimeStampReq for a SHA-256 digest, with certReq so the token
 * carries the TSA certificate. */
static BIO *ts_request(const uint8_t digest[32])
{
	TS_REQ *rq = TS_REQ_new();
	TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
	X509_ALGOR *alg = X509_ALGOR_new();
	X509_ALGOR_set_md(alg, EVP_sha256());
	TS_MSG_IMPRINT_set_algo(mi, alg);
	TS_MSG_IMPRINT_set_msg(mi, (unsigned char *)digest, 32);
	TS_REQ_set_version(rq, 1);
	TS_REQ_set_msg_imprint(rq, mi);
	TS_REQ_set_cert_req(rq, 1);
	BIO *b = BIO_new(BIO_s_mem());
	i2d_TS_REQ_bio(b, rq);
	X509_ALGOR_free(alg);
	TS_MSG_IMPRINT_free(mi);
	TS_REQ_free(rq);
	return b;
}

static int tsa_stamp(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		     struct selo_err *err)
{
	struct tsa *t = arg;
	if (t->corrupt == 2)
		return err_set(err, 503, "tsa", "TSA unavailable (test)");
	uint8_t d[32];
	memcpy(d, digest, 32);
	if (t->corrupt == 1)
		d[0] ^= 1;
	memcpy(t->last_digest, digest, 32);
	TS_RESP_CTX *rc = TS_RESP_CTX_new();
	ASN1_OBJECT *policy = OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1);
	TS_RESP_CTX_set_signer_cert(rc, t->cert);
	TS_RESP_CTX_set_signer_key(rc, t->key);
	TS_RESP_CTX_set_def_policy(rc, policy);
	TS_RESP_CTX_add_md(rc, EVP_sha256());
	TS_RESP_CTX_set_signer_digest(rc, EVP_sha256());
	TS_RESP_CTX_set_ess_cert_id_digest(rc, EVP_sha256());
	TS_RESP_CTX_set_serial_cb(rc, serial_cb, NULL);
	TS_RESP_CTX_set_accuracy(rc, 1, 0, 0);
	BIO *req = ts_request(d);
	TS_RESP *resp = TS_RESP_create_response(rc, req);
	int granted = resp && ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(
				      TS_RESP_get_status_info(resp))) == TS_STATUS_GRANTED;
	int rc_out = -1;
	if (granted) {
		unsigned char *p = NULL;
		int n = i2d_PKCS7(TS_RESP_get_token(resp), &p);
		if (n > 0) {
			free(t->last_token);
			*der = malloc((size_t)n);
			t->last_token = malloc((size_t)n);
			if (*der && t->last_token) {
				memcpy(*der, p, (size_t)n);
				memcpy(t->last_token, p, (size_t)n);
				*len = t->last_len = (size_t)n;
				rc_out = 0;
			}
		}
		OPENSSL_free(p);
	}
	TS_RESP_free(resp);
	BIO_free(req);
	ASN1_OBJECT_free(policy);
	TS_RESP_CTX_free(rc);
	if (rc_out != 0) {
		err_set(err, 500, "tsa", "test TSA failed");
		err_add_openssl(err);
		return rc_out;
	}
	if (t->corrupt == 3) {
		uint8_t *more = realloc(*der, *len + 1);
		if (more) {
			more[(*len)++] = 0;
			*der = more;
		}
	} else if (t->corrupt == 4) {
		*len -= 40;
	} else if (t->corrupt == 5) {
		static const uint8_t oid[] = {0x09, 0x10, 0x01, 0x04};
		uint8_t *at = memmem(*der, *len, oid, sizeof(oid));
		if (at)
			at[3] = 0x05;
	}
	return rc_out;
}

/* SHA-256 of the SignerInfo signature value, read back from smime.p7s. */
static int signature_digest_from_body(const struct smime_signed *s, uint8_t out[32])
{
	const char *h = strstr(s->body.data, "filename=\"smime.p7s\"\r\n\r\n");
	if (!h)
		return -1;
	h += strlen("filename=\"smime.p7s\"\r\n\r\n");
	const char *end = strstr(h, "\r\n--selo-");
	if (!end)
		return -1;
	size_t cap = base64_decoded_max((size_t)(end - h));
	uint8_t *der = malloc(cap);
	ssize_t n = base64_decode_mime(h, (size_t)(end - h), der, cap);
	const unsigned char *p = der;
	CMS_ContentInfo *cms = n > 0 ? d2i_CMS_ContentInfo(NULL, &p, n) : NULL;
	CMS_SignerInfo *si = cms ? sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0) : NULL;
	ASN1_OCTET_STRING *sv = si ? CMS_SignerInfo_get0_signature(si) : NULL;
	if (sv)
		sha256(ASN1_STRING_get0_data(sv), (size_t)ASN1_STRING_length(sv), out);
	CMS_ContentInfo_free(cms);
	free(der);
	return sv ? 0 : -1;
}

TEST(timestamp_token_is_embedded_and_message_still_verifies)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa t;
	CHECK(tsa_load(&t, f.keys) == 0);
	struct smime_signed s;
	struct selo_err err = {0};
	int rc = smime_sign(f.signer, ENTITY, strlen(ENTITY), tsa_stamp, &t, &s, &err);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "  %s\n", err.msg);
	CHECK(s.timestamped == 1);
	CHECK(message_write(&f, "msg.eml", &s) == 0);
	struct buf out = BUF_INIT;
	CHECK(openssl_verify(&f, "msg.eml", &out) == 0);
	CHECK(out.len == strlen(ENTITY) && memcmp(out.data, ENTITY, out.len) == 0);

	buf_reset(&out);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl cms -cmsout -print -in msg.eml", f.root);
	CHECK(run(cmd, &out) == 0);
	const char *ua = strstr(buf_str(&out), "unsignedAttrs:");
	CHECK(ua && strstr(ua, "id-smime-aa-timeStampToken") != NULL);

	/* The token covers the signature value found in the message, and the
	 * openssl CLI accepts it against the same CA. */
	uint8_t d[32];
	CHECK(signature_digest_from_body(&s, d) == 0);
	CHECK(memcmp(d, t.last_digest, 32) == 0);
	char tok[256], hex[65];
	snprintf(tok, sizeof(tok), "%s/token.der", f.root);
	CHECK(file_write_atomic(tok, t.last_token, t.last_len, 0644, &err) == 0);
	hex_encode(d, 32, hex);
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && openssl ts -verify -token_in -in token.der -digest %s -CAfile keys/ca.crt",
		 f.root, hex);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "Verification: OK") != NULL);
	/* The embedded token is byte for byte the one the TSA returned. */
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && openssl cms -cmsout -in msg.eml -outform DER -out sig.der", f.root);
	CHECK(run(cmd, &out) == 0);
	struct buf sig = BUF_INIT;
	char sigp[256];
	snprintf(sigp, sizeof(sigp), "%s/sig.der", f.root);
	CHECK(file_read(sigp, 1 << 20, &sig, &err) == 0);
	CHECK(memmem(sig.data, sig.len, t.last_token, t.last_len) != NULL);
	buf_free(&sig);
	buf_free(&out);
	smime_signed_free(&s);
	tsa_free(&t);
	fixture_free(&f);
}

TEST(wrong_or_failed_timestamp_is_refused)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa t;
	CHECK(tsa_load(&t, f.keys) == 0);
	struct smime_signed s;
	struct selo_err err = {0};
	t.corrupt = 1;
	CHECK(smime_sign(f.signer, ENTITY, strlen(ENTITY), tsa_stamp, &t, &s, &err) == -1);
	CHECK(err.status == 502 && strstr(err.msg, "does not cover") != NULL);
	CHECK(s.body.len == 0 && s.content_type.len == 0);
	smime_signed_free(&s);
	t.corrupt = 2;
	err_clear(&err);
	CHECK(smime_sign(f.signer, ENTITY, strlen(ENTITY), tsa_stamp, &t, &s, &err) == -1);
	CHECK(err.status == 503 && strstr(err.msg, "unavailable") != NULL);
	smime_signed_free(&s);
	for (int c = 3; c <= 5; c++) {
		t.corrupt = c;
		err_clear(&err);
		CHECK(smime_sign(f.signer, ENTITY, strlen(ENTITY), tsa_stamp, &t, &s, &err) == -1);
		CHECK(err.status == 502 && strstr(err.msg, "not DER CMS") != NULL);
		CHECK(s.body.len == 0);
		smime_signed_free(&s);
	}
	tsa_free(&t);
	fixture_free(&f);
}

static int garbage_stamp(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
			 struct selo_err *err)
{
	(void)arg;
	(void)digest;
	(void)err;
	static const uint8_t seq[] = {0x30, 0x03, 0x02, 0x01, 0x05}; /* SEQUENCE { INTEGER 5 } */
	*der = malloc(sizeof(seq));
	if (!*der)
		return -1;
	memcpy(*der, seq, sizeof(seq));
	*len = sizeof(seq);
	return 0;
}

TEST(garbage_token_is_refused)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct smime_signed s;
	struct selo_err err = {0};
	CHECK(smime_sign(f.signer, ENTITY, strlen(ENTITY), garbage_stamp, NULL, &s, &err) == -1);
	CHECK(err.status == 502);
	smime_signed_free(&s);
	fixture_free(&f);
}

TEST(load_refuses_mismatched_or_unsuitable_files)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	char key[256], crt[256], tkey[256], tcrt[256], ca[256];
	snprintf(key, sizeof(key), "%s/smime.pem", f.keys);
	snprintf(crt, sizeof(crt), "%s/smime.crt", f.keys);
	snprintf(tkey, sizeof(tkey), "%s/tsa.pem", f.keys);
	snprintf(tcrt, sizeof(tcrt), "%s/tsa.crt", f.keys);
	snprintf(ca, sizeof(ca), "%s/ca.crt", f.keys);
	struct smime_signer *s = NULL;
	struct selo_err err = {0};
	CHECK(smime_signer_load(tkey, crt, NULL, &s, &err) == -1 && s == NULL);
	CHECK(strstr(err.msg, "does not belong") != NULL);
	err_clear(&err);
	CHECK(smime_signer_load(tkey, tcrt, NULL, &s, &err) == -1);
	CHECK(strstr(err.msg, "emailProtection") != NULL);
	/* A document signer (PDF receipts) needs a signing key usage, not the
	 * S/MIME purpose: the TSA's pair (digitalSignature, no
	 * emailProtection) will do. */
	err_clear(&err);
	CHECK(smime_signer_load_document(tkey, tcrt, NULL, &s, &err) == 0 && s != NULL);
	smime_signer_free(s);
	s = NULL;
	err_clear(&err);
	CHECK(smime_signer_load(crt, crt, NULL, &s, &err) == -1);
	CHECK(strstr(err.msg, "private key") != NULL);
	err_clear(&err);
	CHECK(smime_signer_load(key, "/nonexistent/smime.crt", NULL, &s, &err) == -1);
	CHECK(strstr(err.msg, "/nonexistent/smime.crt") != NULL);
	char ed[256];
	snprintf(ed, sizeof(ed), "%s/dkim-ed25519.pem", f.keys);
	err_clear(&err);
	CHECK(smime_signer_load(ed, crt, NULL, &s, &err) == -1);
	CHECK(strstr(err.msg, "RSA") != NULL);
	err_clear(&err);
	CHECK(smime_signer_load(key, crt, key, &s, &err) == -1); /* a chain without certs */
	/* A chain file is accepted and its certificates travel in the CMS. */
	err_clear(&err);
	CHECK(smime_signer_load(key, crt, ca, &s, &err) == 0);
	struct smime_signed sg;
	CHECK(s && smime_sign(s, ENTITY, strlen(ENTITY), NULL, NULL, &sg, &err) == 0);
	CHECK(message_write(&f, "chain.eml", &sg) == 0);
	char cmd[512];
	struct buf out = BUF_INIT;
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl cms -cmsout -print -in chain.eml | "
		 "grep -c 'subject: CN=Selo development CA'", f.root);
	CHECK(run(cmd, &out) == 0 && atoi(out.data) == 1);
	CHECK(openssl_verify(&f, "chain.eml", NULL) == 0);
	buf_free(&out);
	smime_signed_free(&sg);
	smime_signer_free(s);
	fixture_free(&f);
}

/* One signer, several threads: every signature must come out whole. */
struct worker {
	struct smime_signer *s;
	int ok;
};

static void *sign_worker(void *arg)
{
	struct worker *w = arg;
	w->ok = 1;
	for (int i = 0; i < 5; i++) {
		struct smime_signed out;
		struct selo_err err = {0};
		if (smime_sign(w->s, ENTITY, strlen(ENTITY), NULL, NULL, &out, &err) != 0)
			w->ok = 0;
		smime_signed_free(&out);
	}
	return NULL;
}

TEST(signer_is_shared_by_threads)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){f.signer, 0};
		CHECK(pthread_create(&th[i], NULL, sign_worker, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].ok);
	}
	fixture_free(&f);
}
