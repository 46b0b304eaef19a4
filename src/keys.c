/* keys.c: makes and loads the key material under DIR/keys/ (see keys.h).
 * keys_init generates every key and certificate in memory first and writes
 * files only when all of them exist, so a failure (bad domain, OpenSSL
 * error) leaves the directory untouched; each file is written atomically,
 * private ones 0600 from their first byte. It refuses (409) to replace
 * existing keys without force, because DNS records, certificates and
 * receipts already point at them. Loaders parse strictly and say which file
 * is wrong and why. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/keys.h"

#define CA_DAYS (10 * 365 + 2)
#define SMIME_DAYS (2 * 365)
/* A receipt's timestamp must stay checkable for years: the TSA certificate
 * lives as long as the CA that issued it. */
#define TSA_DAYS CA_DAYS
#define CN_MAX 64 /* ub-common-name (RFC 5280) */
/* Extensions of the end-entity certificates, the same at init and renewal.
 * RFC 3161 §2.3: the TSA's one EKU is timeStamping, critical. */
#define SMIME_KU "critical,digitalSignature"
#define SMIME_EKU "emailProtection"
#define TSA_KU "critical,digitalSignature,nonRepudiation"
#define TSA_EKU "critical,timeStamping"

/* Every file keys_init writes, in the order it writes them. */
enum key_file {
	KF_DKIM_RSA_PEM, KF_DKIM_ED_PEM, KF_DKIM_RSA_TXT, KF_DKIM_ED_TXT,
	KF_LOG_KEY, KF_LOG_VKEY, KF_CA_KEY, KF_CA_CRT, KF_SMIME_PEM, KF_SMIME_CRT,
	KF_TSA_PEM, KF_TSA_CRT, KF_TOKEN_KEY, KF_COUNT
};

static const struct {
	const char *name;
	int secret; /* 0600 and wiped from memory after writing */
} key_files[KF_COUNT] = {
	[KF_DKIM_RSA_PEM] = {"dkim-rsa.pem", 1},  [KF_DKIM_ED_PEM] = {"dkim-ed25519.pem", 1},
	[KF_DKIM_RSA_TXT] = {"dkim-rsa.txt", 0},  [KF_DKIM_ED_TXT] = {"dkim-ed25519.txt", 0},
	[KF_LOG_KEY] = {"log.key", 1},            [KF_LOG_VKEY] = {"log.vkey", 0},
	[KF_CA_KEY] = {"ca.key", 1},              [KF_CA_CRT] = {"ca.crt", 0},
	[KF_SMIME_PEM] = {"smime.pem", 1},        [KF_SMIME_CRT] = {"smime.crt", 0},
	[KF_TSA_PEM] = {"tsa.pem", 1},            [KF_TSA_CRT] = {"tsa.crt", 0},
	[KF_TOKEN_KEY] = {"token.key", 1},
};

/* ---- C2SP signed-note keys ------------------------------------------- */

uint32_t note_key_id(const char *name, const uint8_t pub[32])
{
	struct buf b = BUF_INIT;
	buf_puts(&b, name);
	buf_putc(&b, '\n');
	buf_putc(&b, 0x01);
	buf_append(&b, pub, 32);
	uint8_t h[32];
	sha256(b.data, b.len, h);
	buf_free(&b);
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

/* C2SP signed-note: a key name is non-empty and has no '+' and no spaces.
 * We also keep it to printable ASCII so it is safe in files and logs. */
static int keys_note_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 255)
		return 0;
	for (const char *p = name; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == '+')
			return 0;
	return 1;
}

/* "<name>+<8 hex>+<base64(0x01||key32)>", the shape of both note keys. */
static int keys_note_key_format(const char *prefix, const char *name, uint32_t id,
			   const uint8_t key[32], char *out, size_t n)
{
	uint8_t typed[33];
	typed[0] = 0x01;
	memcpy(typed + 1, key, 32);
	struct buf b64 = BUF_INIT;
	base64_encode(&b64, typed, sizeof(typed), 0);
	OPENSSL_cleanse(typed, sizeof(typed));
	int w = snprintf(out, n, "%s%s+%08x+%s", prefix, name, (unsigned)id, buf_str(&b64));
	OPENSSL_cleanse(b64.data, b64.len);
	buf_free(&b64);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int note_vkey_format(const char *name, const uint8_t pub[32], char *out, size_t n)
{
	if (!keys_note_name_valid(name))
		return -1;
	return keys_note_key_format("", name, note_key_id(name, pub), pub, out, n);
}

/* Splits "<name>+<8 hex>+<base64(0x01||key)>" and checks the encoding;
 * the caller checks the key ID (it needs the public key for that). */
static int keys_note_key_parse(const char *s, size_t len, char *name, size_t namecap,
			  uint32_t *id, uint8_t key[32])
{
	const char *p1 = memchr(s, '+', len);
	if (!p1)
		return -1;
	const char *rest = p1 + 1;
	const char *p2 = memchr(rest, '+', len - (size_t)(rest - s));
	if (!p2 || p2 - rest != 8)
		return -1;
	size_t nlen = (size_t)(p1 - s);
	if (nlen == 0 || nlen >= namecap)
		return -1;
	memcpy(name, s, nlen);
	name[nlen] = '\0';
	if (!keys_note_name_valid(name))
		return -1;
	uint8_t idb[4];
	if (hex_decode(rest, 8, idb, sizeof(idb)) != 4)
		return -1;
	*id = (uint32_t)idb[0] << 24 | (uint32_t)idb[1] << 16 | (uint32_t)idb[2] << 8 | idb[3];
	const char *b64 = p2 + 1;
	uint8_t typed[33];
	ssize_t k = base64_decode(b64, len - (size_t)(b64 - s), typed, sizeof(typed));
	if (k != 33 || typed[0] != 0x01) {
		OPENSSL_cleanse(typed, sizeof(typed));
		return -1;
	}
	memcpy(key, typed + 1, 32);
	OPENSSL_cleanse(typed, sizeof(typed));
	return 0;
}

int note_vkey_parse(const char *vkey, char *name, size_t namecap, uint8_t pub[32],
		    struct selo_err *err)
{
	uint32_t id;
	if (keys_note_key_parse(vkey, strlen(vkey), name, namecap, &id, pub) != 0)
		return err_set(err, 400, "invalid-key",
			       "verifier key is not \"<name>+<8 hex digits>+<base64 of 0x01 and a "
			       "32-byte Ed25519 key>\"");
	if (note_key_id(name, pub) != id)
		return err_set(err, 400, "invalid-key",
			       "verifier key ID %08x does not match its name and public key "
			       "(the key was altered or mistyped)", (unsigned)id);
	return 0;
}

static int ed25519_public_from_seed(const uint8_t seed[32], uint8_t pub[32])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	size_t n = 32;
	int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == 32;
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

static void path_join(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* Reads a small text file and strips one trailing "\n" (editors add it). */
static int read_key_text(const char *dir, const char *name, size_t max, struct buf *out,
			 struct selo_err *err)
{
	char path[4096];
	path_join(path, sizeof(path), dir, name);
	if (file_read(path, max, out, err) != 0)
		return -1;
	/* file_read leaves an empty buffer without its NUL: do not look. */
	if (out->len == 0)
		return err_set(err, 500, "invalid-key", "%s is empty", path);
	if (out->data[out->len - 1] == '\n')
		out->data[--out->len] = '\0';
	if (strlen(out->data) != out->len)
		return err_set(err, 500, "invalid-key", "%s contains a NUL byte", path);
	return 0;
}

int keys_load_note_key(const char *keys_dir, char *name, size_t namecap, uint8_t seed[32],
		       uint8_t pub[32], struct selo_err *err)
{
	static const char prefix[] = "PRIVATE+KEY+";
	struct buf b = BUF_INIT;
	if (read_key_text(keys_dir, "log.key", 4096, &b, err) != 0) {
		buf_free(&b);
		return -1;
	}
	uint32_t id = 0;
	int bad = b.len < sizeof(prefix) - 1 || memcmp(b.data, prefix, sizeof(prefix) - 1) != 0 ||
		  keys_note_key_parse(b.data + sizeof(prefix) - 1, b.len - (sizeof(prefix) - 1), name,
				 namecap, &id, seed) != 0;
	OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	if (bad)
		return err_set(err, 500, "invalid-key",
			       "%s/log.key is not \"PRIVATE+KEY+<name>+<key id>+<base64 key>\"; "
			       "restore it from backup or run selo init --force", keys_dir);
	if (ed25519_public_from_seed(seed, pub) != 0) {
		err_set(err, 500, "crypto", "cannot derive the log public key");
		err_add_openssl(err);
		return -1;
	}
	if (note_key_id(name, pub) != id)
		return err_set(err, 500, "invalid-key",
			       "%s/log.key: key ID %08x does not match the key (file damaged?)",
			       keys_dir, (unsigned)id);
	return 0;
}

int keys_load_secret(const char *keys_dir, const char *name, const char *hint, uint8_t key[32],
		     struct selo_err *err)
{
	struct buf b = BUF_INIT;
	if (read_key_text(keys_dir, name, 256, &b, err) != 0) {
		buf_free(&b);
		return -1;
	}
	int ok = b.len == 64 && hex_decode(b.data, 64, key, 32) == 32;
	OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	if (!ok) {
		OPENSSL_cleanse(key, 32);
		return err_set(err, 500, "invalid-key",
			       "%s/%s must hold exactly 64 hex digits (32 bytes) and a newline; %s",
			       keys_dir, name, hint);
	}
	return 0;
}

int keys_make_secret(const char *keys_dir, const char *name, uint8_t key[32],
		     struct selo_err *err)
{
	char path[4096], hex[66];
	path_join(path, sizeof(path), keys_dir, name);
	random_bytes(key, 32);
	hex_encode(key, 32, hex);
	hex[64] = '\n';
	int r = file_write_atomic(path, hex, 65, 0600, err);
	OPENSSL_cleanse(hex, sizeof(hex));
	if (r != 0)
		OPENSSL_cleanse(key, 32);
	return r;
}

int keys_load_token_key(const char *keys_dir, uint8_t key[32], struct selo_err *err)
{
	return keys_load_secret(keys_dir, "token.key",
				"restore it from backup or run selo init --force", key, err);
}

/* ---- input checks ---------------------------------------------------- */

static int domain_valid(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || d[n - 1] == '.' || d[n - 1] == '-')
		return 0;
	for (const char *p = d; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			 (*p >= '0' && *p <= '9') || *p == '-' || *p == '.';
		if (!ok || (*p == '.' && p[1] == '.'))
			return 0;
	}
	return 1;
}

/* A plain ASCII addr-spec (dot-atom@domain): it becomes a certificate SAN
 * and a CN, where quoting and UTF-8 would only cause trouble. */
static int address_valid(const char *a)
{
	const char *at = strrchr(a, '@');
	if (!at || at == a || at - a > 64 || a[0] == '.' || at[-1] == '.')
		return 0;
	for (const char *p = a; p < at; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
			continue;
		if (!strchr("!#$%&'*+-/=?^_`{|}~.", *p) || (*p == '.' && p[1] == '.'))
			return 0;
	}
	return domain_valid(at + 1);
}

/* ---- key and certificate generation ---------------------------------- */

struct keyset {
	EVP_PKEY *ca, *smime, *tsa, *dkim_rsa, *dkim_ed, *log;
	X509 *ca_crt, *smime_crt, *tsa_crt;
};

static void keyset_free(struct keyset *k)
{
	EVP_PKEY_free(k->ca);
	EVP_PKEY_free(k->smime);
	EVP_PKEY_free(k->tsa);
	EVP_PKEY_free(k->dkim_rsa);
	EVP_PKEY_free(k->dkim_ed);
	EVP_PKEY_free(k->log);
	X509_free(k->ca_crt);
	X509_free(k->smime_crt);
	X509_free(k->tsa_crt);
}

static int keys_generate(struct keyset *k, struct selo_err *err)
{
	/* P-256 for the CA and the TSA: fast, and verifiable everywhere;
	 * RSA-2048 where mail clients and DKIM verifiers expect RSA. */
	k->ca = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k->tsa = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k->smime = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k->dkim_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k->dkim_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	k->log = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (k->ca && k->tsa && k->smime && k->dkim_rsa && k->dkim_ed && k->log)
		return 0;
	err_set(err, 500, "crypto", "key generation failed");
	err_add_openssl(err);
	return -1;
}

static int name_add(X509_NAME *n, const char *field, const char *value)
{
	return X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, (const unsigned char *)value,
					  -1, -1, 0) == 1 ? 0 : -1;
}

/* Subject "CN=<cn>, O=Selo"; a CN longer than RFC 5280 allows falls back
 * to fallback_cn rather than failing the whole init. */
static X509_NAME *subject_make(const char *cn, const char *fallback_cn)
{
	X509_NAME *n = X509_NAME_new();
	if (!n)
		return NULL;
	if (name_add(n, "CN", strlen(cn) <= CN_MAX ? cn : fallback_cn) != 0 ||
	    name_add(n, "O", "Selo") != 0) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

static int serial_set(X509 *x)
{
	uint8_t r[16];
	random_bytes(r, sizeof(r));
	r[0] = (uint8_t)((r[0] & 0x7f) | 0x40); /* positive, and always 16 bytes long */
	BIGNUM *bn = BN_bin2bn(r, sizeof(r), NULL);
	ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	int ok = ai && X509_set_serialNumber(x, ai) == 1;
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return ok ? 0 : -1;
}

/* Adds one extension written in openssl.cnf syntax (constant strings only:
 * nothing from the user goes through the config parser). */
static int ext_add(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = e && X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* subjectAltName rfc822Name, built directly so that no character of the
 * address is interpreted as config syntax. */
static int san_email_add(X509 *x, const char *addr)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	int ok = gens && g && s && ASN1_STRING_set(s, addr, (int)strlen(addr)) == 1;
	if (ok) {
		GENERAL_NAME_set0_value(g, GEN_EMAIL, s);
		s = NULL;
		ok = sk_GENERAL_NAME_push(gens, g) > 0;
		if (ok)
			g = NULL;
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_APPEND) == 1;
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

struct cert_spec {
	const char *cn, *fallback_cn;
	const X509_NAME *subject; /* when set, used as is instead of cn (renewal) */
	int days;
	const char *basic, *key_usage, *ext_key_usage; /* openssl.cnf values; eku may be NULL */
	const char *san_email;                         /* or NULL */
};

/* Makes a certificate for key, signed by issuer_key; issuer NULL means
 * self-signed. */
static X509 *cert_make(const struct cert_spec *sp, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *subj = sp->subject ? X509_NAME_dup(sp->subject)
				      : subject_make(sp->cn, sp->fallback_cn);
	int ok = x && subj && X509_set_version(x, 2) == 1 && serial_set(x) == 0 &&
		 X509_set_subject_name(x, subj) == 1 &&
		 X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subj) == 1 &&
		 X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
		 X509_time_adj_ex(X509_getm_notAfter(x), sp->days, 0, NULL) &&
		 X509_set_pubkey(x, key) == 1;
	X509_NAME_free(subj);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	/* SKI before AKI: for the self-signed CA, AKI copies its own SKI. */
	ok = ok && ext_add(x, &ctx, NID_basic_constraints, sp->basic) == 0 &&
	     ext_add(x, &ctx, NID_key_usage, sp->key_usage) == 0 &&
	     (!sp->ext_key_usage || ext_add(x, &ctx, NID_ext_key_usage, sp->ext_key_usage) == 0) &&
	     ext_add(x, &ctx, NID_subject_key_identifier, "hash") == 0 &&
	     ext_add(x, &ctx, NID_authority_key_identifier, "keyid:always") == 0 &&
	     (!sp->san_email || san_email_add(x, sp->san_email) == 0) &&
	     X509_sign(x, issuer_key, EVP_sha256()) > 0;
	if (ok)
		return x;
	X509_free(x);
	return NULL;
}

static int certs_make(struct keyset *k, const char *domain, const char *from,
		      struct selo_err *err)
{
	char ca_cn[300], tsa_cn[300];
	snprintf(ca_cn, sizeof(ca_cn), "Selo development CA (%s)", domain);
	snprintf(tsa_cn, sizeof(tsa_cn), "Selo TSA (%s)", domain);
	const struct cert_spec ca = {ca_cn, "Selo development CA", NULL, CA_DAYS,
				     "critical,CA:TRUE", "critical,keyCertSign,cRLSign", NULL, NULL};
	const struct cert_spec smime = {from, "Selo notices", NULL, SMIME_DAYS, "CA:FALSE",
					SMIME_KU, SMIME_EKU, from};
	/* RFC 3161 §2.3: exactly one EKU, timeStamping, and critical. */
	const struct cert_spec tsa = {tsa_cn, "Selo TSA", NULL, TSA_DAYS, "CA:FALSE",
				      TSA_KU, TSA_EKU, NULL};
	k->ca_crt = cert_make(&ca, k->ca, NULL, k->ca);
	if (k->ca_crt) {
		k->smime_crt = cert_make(&smime, k->smime, k->ca_crt, k->ca);
		k->tsa_crt = cert_make(&tsa, k->tsa, k->ca_crt, k->ca);
	}
	if (k->ca_crt && k->smime_crt && k->tsa_crt)
		return 0;
	err_set(err, 500, "crypto", "cannot make the development certificates");
	err_add_openssl(err);
	return -1;
}

/* ---- file contents --------------------------------------------------- */

/* Private keys go through a secure-memory BIO so the PEM text is wiped
 * when the BIO is freed. */
static int pem_private(EVP_PKEY *k, struct buf *out)
{
	BIO *b = BIO_new(BIO_s_secmem());
	int ok = b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1;
	char *p;
	long n = ok ? BIO_get_mem_data(b, &p) : 0;
	if (ok && n > 0) {
		buf_reserve(out, (size_t)n); /* one allocation: no stray copies */
		buf_append(out, p, (size_t)n);
	}
	BIO_free(b);
	return ok && n > 0 ? 0 : -1;
}

static int pem_cert(X509 *x, struct buf *out)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ok = b && PEM_write_bio_X509(b, x) == 1;
	char *p;
	long n = ok ? BIO_get_mem_data(b, &p) : 0;
	if (ok && n > 0)
		buf_append(out, p, (size_t)n);
	BIO_free(b);
	return ok && n > 0 ? 0 : -1;
}

static int dkim_rsa_txt(EVP_PKEY *k, struct buf *out)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);
	if (n <= 0)
		return -1;
	buf_puts(out, "v=DKIM1; k=rsa; p=");
	base64_encode(out, der, (size_t)n, 0);
	OPENSSL_free(der);
	return 0;
}

/* RFC 8463 §4.2: p= is the raw 32-byte key, not an SPKI. */
static int dkim_ed_txt(EVP_PKEY *k, struct buf *out)
{
	uint8_t pub[32];
	size_t n = sizeof(pub);
	if (EVP_PKEY_get_raw_public_key(k, pub, &n) != 1 || n != 32)
		return -1;
	buf_puts(out, "v=DKIM1; k=ed25519; p=");
	base64_encode(out, pub, 32, 0);
	return 0;
}

static int log_key_texts(EVP_PKEY *k, const char *origin, struct buf *key, struct buf *vkey)
{
	uint8_t seed[32], pub[32];
	size_t sn = 32, pn = 32;
	if (EVP_PKEY_get_raw_private_key(k, seed, &sn) != 1 ||
	    EVP_PKEY_get_raw_public_key(k, pub, &pn) != 1 || sn != 32 || pn != 32) {
		OPENSSL_cleanse(seed, sizeof(seed));
		return -1;
	}
	char line[600];
	int r = keys_note_key_format("PRIVATE+KEY+", origin, note_key_id(origin, pub), seed, line,
				sizeof(line));
	OPENSSL_cleanse(seed, sizeof(seed));
	if (r == 0) {
		buf_reserve(key, strlen(line) + 1);
		buf_puts(key, line);
	}
	OPENSSL_cleanse(line, sizeof(line));
	if (r != 0 || note_vkey_format(origin, pub, line, sizeof(line)) != 0)
		return -1;
	buf_puts(vkey, line);
	return 0;
}

static void keys_token_key_text(struct buf *out)
{
	uint8_t k[32];
	char hex[65];
	random_bytes(k, sizeof(k));
	hex_encode(k, sizeof(k), hex);
	buf_reserve(out, 66);
	buf_puts(out, hex);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(hex, sizeof(hex));
}

static int contents_make(struct keyset *k, const char *origin, struct buf f[KF_COUNT],
			 struct selo_err *err)
{
	int ok = pem_private(k->dkim_rsa, &f[KF_DKIM_RSA_PEM]) == 0 &&
		 pem_private(k->dkim_ed, &f[KF_DKIM_ED_PEM]) == 0 &&
		 dkim_rsa_txt(k->dkim_rsa, &f[KF_DKIM_RSA_TXT]) == 0 &&
		 dkim_ed_txt(k->dkim_ed, &f[KF_DKIM_ED_TXT]) == 0 &&
		 log_key_texts(k->log, origin, &f[KF_LOG_KEY], &f[KF_LOG_VKEY]) == 0 &&
		 pem_private(k->ca, &f[KF_CA_KEY]) == 0 && pem_cert(k->ca_crt, &f[KF_CA_CRT]) == 0 &&
		 pem_private(k->smime, &f[KF_SMIME_PEM]) == 0 &&
		 pem_cert(k->smime_crt, &f[KF_SMIME_CRT]) == 0 &&
		 pem_private(k->tsa, &f[KF_TSA_PEM]) == 0 && pem_cert(k->tsa_crt, &f[KF_TSA_CRT]) == 0;
	if (!ok) {
		err_set(err, 500, "crypto", "cannot encode the generated keys");
		err_add_openssl(err);
		return -1;
	}
	keys_token_key_text(&f[KF_TOKEN_KEY]);
	/* One-line text files end in a newline like any text file; the loaders
	 * accept it. */
	static const enum key_file lines[] = {KF_DKIM_RSA_TXT, KF_DKIM_ED_TXT, KF_LOG_KEY,
					      KF_LOG_VKEY, KF_TOKEN_KEY};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		buf_putc(&f[lines[i]], '\n');
	return 0;
}

static void contents_free(struct buf f[KF_COUNT])
{
	for (int i = 0; i < KF_COUNT; i++) {
		if (key_files[i].secret && f[i].data)
			OPENSSL_cleanse(f[i].data, f[i].cap);
		buf_free(&f[i]);
	}
}

static int report_fill(const struct buf f[KF_COUNT], struct keys_report *rep,
		       struct selo_err *err)
{
	/* The report holds the values without the file's newline. */
	struct { char *dst; size_t cap; enum key_file src; } r[] = {
		{rep->dkim_rsa_txt, sizeof(rep->dkim_rsa_txt), KF_DKIM_RSA_TXT},
		{rep->dkim_ed25519_txt, sizeof(rep->dkim_ed25519_txt), KF_DKIM_ED_TXT},
		{rep->log_vkey, sizeof(rep->log_vkey), KF_LOG_VKEY},
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		size_t n = f[r[i].src].len - 1;
		if (n >= r[i].cap)
			return err_set(err, 500, "internal", "%s is too long for the report",
				       key_files[r[i].src].name);
		memcpy(r[i].dst, f[r[i].src].data, n);
		r[i].dst[n] = '\0';
	}
	return 0;
}

/* ---- keys_init ------------------------------------------------------- */

static int keys_dir_prepare(const char *dir, int force, struct selo_err *err)
{
	if (dir_make(dir, 0700, err) != 0)
		return -1;
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return err_set(err, 500, "io", "%s is not a directory", dir);
	/* An existing directory may have been made with a looser umask. */
	if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) != 0)
		return err_set(err, 500, "io", "cannot make %s private (chmod 0700): %s", dir,
			       strerror(errno));
	if (force)
		return 0;
	for (int i = 0; i < KF_COUNT; i++) {
		char path[4096];
		path_join(path, sizeof(path), dir, key_files[i].name);
		if (lstat(path, &st) == 0)
			return err_set(err, 409, "keys-exist",
				       "%s already exists; no key was changed. Use --force to "
				       "replace every key (the DKIM DNS records, certificates and "
				       "log verifier key then change too)", path);
		if (errno != ENOENT)
			return err_set(err, 500, "io", "cannot check %s: %s", path, strerror(errno));
	}
	return 0;
}

static int contents_write(const char *dir, const struct buf f[KF_COUNT], struct selo_err *err)
{
	for (int i = 0; i < KF_COUNT; i++) {
		char path[4096];
		path_join(path, sizeof(path), dir, key_files[i].name);
		mode_t mode = key_files[i].secret ? 0600 : 0644;
		if (file_write_atomic(path, f[i].data, f[i].len, mode, err) != 0)
			return -1;
	}
	return 0;
}

static int keys_init_args_check(const char *dir, const char *domain, const char *from,
				const char *origin, struct selo_err *err)
{
	if (!dir || !*dir || strlen(dir) > 3000)
		return err_set(err, 400, "invalid-request", "the keys directory path is empty or too long");
	if (!domain || !domain_valid(domain))
		return err_set(err, 400, "invalid-request",
			       "domain \"%s\" is not a DNS name (letters, digits, '-' and '.')",
			       domain ? domain : "");
	if (!from || !address_valid(from))
		return err_set(err, 400, "invalid-request",
			       "from address \"%s\" is not a plain ASCII address like "
			       "notices@example.com", from ? from : "");
	if (!origin || !keys_note_name_valid(origin))
		return err_set(err, 400, "invalid-request",
			       "log origin \"%s\" must be 1-255 printable characters without "
			       "spaces or '+', e.g. example.com/selo", origin ? origin : "");
	return 0;
}

int keys_init(const char *keys_dir, const char *domain, const char *from_address,
	      const char *origin, int force, struct keys_report *rep, struct selo_err *err)
{
	if (keys_init_args_check(keys_dir, domain, from_address, origin, err) != 0)
		return -1;
	if (keys_dir_prepare(keys_dir, force, err) != 0)
		return -1;
	struct keyset k = {0};
	struct buf f[KF_COUNT];
	for (int i = 0; i < KF_COUNT; i++)
		f[i] = (struct buf)BUF_INIT;
	int rc = -1;
	if (keys_generate(&k, err) != 0 || certs_make(&k, domain, from_address, err) != 0 ||
	    contents_make(&k, origin, f, err) != 0)
		goto out;
	if (rep && report_fill(f, rep, err) != 0)
		goto out;
	rc = contents_write(keys_dir, f, err);
out:
	contents_free(f);
	keyset_free(&k);
	return rc;
}

/* ---- DKIM selectors (keys.h, docs/keys.md) ---------------------------- */

#define DKIM_STATE_FILE "dkim-selectors"

static const char *const dkim_state_names[] = {"pending", "active", "retiring", "retired"};

const char *dkim_sel_state_name(enum dkim_sel_state st)
{
	return (unsigned)st < 4 ? dkim_state_names[st] : "?";
}

/* A selector is one DNS label, and "NAME-ed25519" must fit one too. */
static int selector_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 55 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return 0;
	return 1;
}

static int keys_dkim_state_parse_line(const char *line, struct dkim_selector *d)
{
	char state[16];
	long long since;
	memset(d, 0, sizeof(*d));
	if (sscanf(line, "%63s %15s %lld %79s", d->name, state, &since, d->dir) != 4)
		return -1;
	d->since = since;
	for (int i = 0; i < 4; i++)
		if (!strcmp(state, dkim_state_names[i])) {
			d->state = (enum dkim_sel_state)i;
			return selector_valid(d->name) && strstr(d->dir, "..") == NULL ? 0 : -1;
		}
	return -1;
}

int keys_dkim_list(const char *keys_dir, const char *config_selector, struct dkim_selector *out,
		   size_t *n, struct selo_err *err)
{
	char path[4096];
	path_join(path, sizeof(path), keys_dir, DKIM_STATE_FILE);
	*n = 0;
	if (access(path, F_OK) != 0) {
		/* Before the first rotation: what `selo init` made. */
		memset(&out[0], 0, sizeof(out[0]));
		snprintf(out[0].name, sizeof(out[0].name), "%s", config_selector);
		out[0].state = DKIM_SEL_ACTIVE;
		snprintf(out[0].dir, sizeof(out[0].dir), ".");
		*n = 1;
		return 0;
	}
	struct buf b = BUF_INIT;
	if (file_read(path, 64 * 1024, &b, err) != 0) {
		buf_free(&b);
		return -1;
	}
	int rc = 0, lineno = 0;
	for (char *save = NULL, *l = b.len ? strtok_r(b.data, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (*l == '#' || !*l)
			continue;
		if (*n == DKIM_SEL_MAX || keys_dkim_state_parse_line(l, &out[*n]) != 0) {
			rc = err_set(err, 500, "invalid-key",
				     "%s line %d is not \"SELECTOR pending|active|retiring|retired "
				     "UNIX-SECONDS DIR\" (or there are over %d selectors)",
				     path, lineno, DKIM_SEL_MAX);
			break;
		}
		(*n)++;
	}
	buf_free(&b);
	return rc;
}

static int keys_dkim_state_write(const char *keys_dir, const struct dkim_selector *sel, size_t n,
			    struct selo_err *err)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "# DKIM selectors, written by `selo keys` (docs/keys.md): "
		     "name state since(unix seconds) dir\n");
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s %s %lld %s\n", sel[i].name, dkim_sel_state_name(sel[i].state),
			   (long long)sel[i].since, sel[i].dir);
	char path[4096];
	path_join(path, sizeof(path), keys_dir, DKIM_STATE_FILE);
	int rc = file_write_atomic(path, b.data, b.len, 0644, err);
	buf_free(&b);
	return rc;
}

static void keys_dkim_file_path(const char *keys_dir, const struct dkim_selector *s, const char *file,
			   char *out, size_t n)
{
	if (!strcmp(s->dir, "."))
		snprintf(out, n, "%s/%s", keys_dir, file);
	else
		snprintf(out, n, "%s/%s/%s", keys_dir, s->dir, file);
}

static int keys_dkim_find(const struct dkim_selector *sel, size_t n, enum dkim_sel_state st)
{
	for (size_t i = 0; i < n; i++)
		if (sel[i].state == st)
			return (int)i;
	return -1;
}

int keys_dkim_active(const char *keys_dir, const char *config_selector, char selname[64],
		     char rsa_path[4096], char ed_path[4096], struct selo_err *err)
{
	struct dkim_selector sel[DKIM_SEL_MAX];
	size_t n;
	if (keys_dkim_list(keys_dir, config_selector, sel, &n, err) != 0)
		return -1;
	int a = keys_dkim_find(sel, n, DKIM_SEL_ACTIVE);
	if (a < 0)
		return err_set(err, 500, "invalid-key",
			       "%s/" DKIM_STATE_FILE " names no active DKIM selector", keys_dir);
	snprintf(selname, 64, "%s", sel[a].name);
	keys_dkim_file_path(keys_dir, &sel[a], "dkim-rsa.pem", rsa_path, 4096);
	keys_dkim_file_path(keys_dir, &sel[a], "dkim-ed25519.pem", ed_path, 4096);
	if (access(rsa_path, R_OK) != 0)
		rsa_path[0] = '\0';
	if (access(ed_path, R_OK) != 0)
		ed_path[0] = '\0';
	return 0;
}

int keys_dkim_txt(const char *keys_dir, const struct dkim_selector *s, const char *alg,
		  struct buf *out, struct selo_err *err)
{
	char path[4096], file[32];
	snprintf(file, sizeof(file), "dkim-%s.txt", alg);
	keys_dkim_file_path(keys_dir, s, file, path, sizeof(path));
	if (file_read(path, 4096, out, err) != 0)
		return -1;
	while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
		out->data[--out->len] = '\0';
	return 0;
}

/* Writes the four files of a fresh selector into dir (made 0700). */
static int keys_dkim_files_make(const char *dir, struct selo_err *err)
{
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	struct buf f[4] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	static const char *const names[4] = {"dkim-rsa.pem", "dkim-ed25519.pem", "dkim-rsa.txt",
					     "dkim-ed25519.txt"};
	int rc = -1;
	if (!rsa || !ed || pem_private(rsa, &f[0]) != 0 || pem_private(ed, &f[1]) != 0 ||
	    dkim_rsa_txt(rsa, &f[2]) != 0 || dkim_ed_txt(ed, &f[3]) != 0) {
		err_set(err, 500, "crypto", "DKIM key generation failed");
		err_add_openssl(err);
		goto out;
	}
	buf_putc(&f[2], '\n');
	buf_putc(&f[3], '\n');
	if (dir_make(dir, 0700, err) != 0)
		goto out;
	rc = 0;
	for (int i = 0; i < 4 && rc == 0; i++) {
		char path[4096];
		path_join(path, sizeof(path), dir, names[i]);
		rc = file_write_atomic(path, f[i].data, f[i].len, i < 2 ? 0600 : 0644, err);
	}
out:
	for (int i = 0; i < 4; i++) {
		if (i < 2 && f[i].data)
			OPENSSL_cleanse(f[i].data, f[i].cap);
		buf_free(&f[i]);
	}
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	return rc;
}

int keys_dkim_new(const char *keys_dir, const char *config_selector, const char *name,
		  struct dkim_selector *made, struct selo_err *err)
{
	if (!selector_valid(name))
		return err_set(err, 400, "invalid-request",
			       "selector \"%s\" must be 1-55 letters, digits, '-' or '_' (its "
			       "Ed25519 twin is \"%s-ed25519\")", name, name);
	struct dkim_selector sel[DKIM_SEL_MAX];
	size_t n;
	if (keys_dkim_list(keys_dir, config_selector, sel, &n, err) != 0)
		return -1;
	int p = keys_dkim_find(sel, n, DKIM_SEL_PENDING);
	if (p >= 0)
		return err_set(err, 409, "pending-exists",
			       "selector %s is already waiting: publish its records and run "
			       "`selo keys rotate dkim --activate` first", sel[p].name);
	if (n == DKIM_SEL_MAX)
		return err_set(err, 409, "too-many", "%d selectors already; retire old ones",
			       DKIM_SEL_MAX);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(sel[i].name);
		int twin = !strncasecmp(sel[i].name, name, l) && !strcasecmp(name + l, "-ed25519");
		if (!strcasecmp(sel[i].name, name) || twin)
			return err_set(err, 409, "selector-exists",
				       "selector %s exists already (state %s); choose another with "
				       "--selector", name, dkim_sel_state_name(sel[i].state));
	}
	char dir[3500];
	snprintf(dir, sizeof(dir), "%s/dkim", keys_dir);
	if (dir_make(dir, 0700, err) != 0)
		return -1;
	struct dkim_selector *d = &sel[n];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->state = DKIM_SEL_PENDING;
	d->since = clock_now_ms() / 1000;
	snprintf(d->dir, sizeof(d->dir), "dkim/%s", name);
	snprintf(dir, sizeof(dir), "%s/%s", keys_dir, d->dir);
	/* Keys first, the state file last: a crash in between leaves an
	 * unlisted folder, never a listed selector without keys. */
	if (keys_dkim_files_make(dir, err) != 0 || keys_dkim_state_write(keys_dir, sel, n + 1, err) != 0)
		return -1;
	*made = *d;
	return 0;
}

int keys_dkim_activate(const char *keys_dir, const char *config_selector,
		       struct dkim_selector *now_active, struct selo_err *err)
{
	struct dkim_selector sel[DKIM_SEL_MAX];
	size_t n;
	if (keys_dkim_list(keys_dir, config_selector, sel, &n, err) != 0)
		return -1;
	int p = keys_dkim_find(sel, n, DKIM_SEL_PENDING);
	if (p < 0)
		return err_set(err, 409, "nothing-pending",
			       "no selector is pending: run `selo keys rotate dkim` first");
	int64_t now = clock_now_ms() / 1000;
	int a = keys_dkim_find(sel, n, DKIM_SEL_ACTIVE);
	if (a >= 0) {
		sel[a].state = DKIM_SEL_RETIRING;
		sel[a].since = now;
	}
	sel[p].state = DKIM_SEL_ACTIVE;
	sel[p].since = now;
	if (keys_dkim_state_write(keys_dir, sel, n, err) != 0)
		return -1;
	*now_active = sel[p];
	return 0;
}

int keys_dkim_retire(const char *keys_dir, const char *config_selector, const char *name,
		     int64_t min_age_s, struct selo_err *err)
{
	struct dkim_selector sel[DKIM_SEL_MAX];
	size_t n;
	if (keys_dkim_list(keys_dir, config_selector, sel, &n, err) != 0)
		return -1;
	size_t i = 0;
	while (i < n && strcmp(sel[i].name, name))
		i++;
	if (i == n)
		return err_set(err, 404, "not-found", "no DKIM selector %s (see selo keys list)", name);
	if (sel[i].state == DKIM_SEL_RETIRED)
		return 0;
	if (sel[i].state != DKIM_SEL_RETIRING)
		return err_set(err, 409, "in-use",
			       "selector %s is %s: only a selector replaced by "
			       "`selo keys rotate dkim --activate` can be retired", name,
			       dkim_sel_state_name(sel[i].state));
	int64_t age = clock_now_ms() / 1000 - sel[i].since;
	if (min_age_s > 0 && age < min_age_s)
		return err_set(err, 409, "too-early",
			       "selector %s stopped signing %lld hours ago; messages it signed may "
			       "still be in queues or verified again. Wait until %lld hours have "
			       "passed (--min-days), or use --force", name, (long long)(age / 3600),
			       (long long)(min_age_s / 3600));
	static const char *const priv[] = {"dkim-rsa.pem", "dkim-ed25519.pem"};
	for (int k = 0; k < 2; k++) {
		char path[4096];
		keys_dkim_file_path(keys_dir, &sel[i], priv[k], path, sizeof(path));
		if (unlink(path) != 0 && errno != ENOENT)
			return err_set(err, 500, "io", "cannot delete %s: %s", path, strerror(errno));
	}
	sel[i].state = DKIM_SEL_RETIRED;
	sel[i].since = clock_now_ms() / 1000;
	return keys_dkim_state_write(keys_dir, sel, n, err);
}

/* ---- S/MIME and TSA renewal ------------------------------------------ */

static X509 *cert_read(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return x;
}

static EVP_PKEY *key_read(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return k;
}

/* The first rfc822Name of the certificate (the S/MIME sender address). */
static int cert_email(X509 *x, char *out, size_t n)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int found = 0;
	for (int i = 0; g && i < sk_GENERAL_NAME_num(g) && !found; i++) {
		GENERAL_NAME *e = sk_GENERAL_NAME_value(g, i);
		if (e->type != GEN_EMAIL)
			continue;
		const ASN1_IA5STRING *s = e->d.rfc822Name;
		int len = ASN1_STRING_length(s);
		if (len > 0 && (size_t)len < n) {
			memcpy(out, ASN1_STRING_get0_data(s), (size_t)len);
			out[len] = '\0';
			found = 1;
		}
	}
	GENERAL_NAMES_free(g);
	return found ? 0 : -1;
}

/* A certificate should not outlive its issuer: clip notAfter to the CA's. */
static int cert_clip_to_issuer(X509 *x, X509 *ca, EVP_PKEY *ca_key)
{
	if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) <= 0)
		return 0;
	return X509_set1_notAfter(x, X509_get0_notAfter(ca)) == 1 &&
		       X509_sign(x, ca_key, EVP_sha256()) > 0 ? 0 : -1;
}

struct renewal {
	X509 *ca, *old, *crt;
	EVP_PKEY *ca_key, *key;
	struct buf key_pem, crt_pem, old_pem;
};

static void renewal_free(struct renewal *r)
{
	X509_free(r->ca);
	X509_free(r->old);
	X509_free(r->crt);
	EVP_PKEY_free(r->ca_key);
	EVP_PKEY_free(r->key);
	if (r->key_pem.data)
		OPENSSL_cleanse(r->key_pem.data, r->key_pem.cap);
	buf_free(&r->key_pem);
	buf_free(&r->crt_pem);
	buf_free(&r->old_pem);
}

static int renewal_load(const char *keys_dir, const char *what, struct renewal *r,
			struct selo_err *err)
{
	char path[4096], file[32];
	path_join(path, sizeof(path), keys_dir, "ca.key");
	if (access(path, R_OK) != 0)
		return err_set(err, 409, "no-ca-key",
			       "%s is not here: the %s certificate was not issued by Selo's own CA. "
			       "Ask the CA that issued it for a new one and install it as %s/%s.crt "
			       "with its key %s/%s.pem (certs/README.md)", path, what, keys_dir, what,
			       keys_dir, what);
	r->ca_key = key_read(path);
	path_join(path, sizeof(path), keys_dir, "ca.crt");
	r->ca = cert_read(path);
	snprintf(file, sizeof(file), "%s.crt", what);
	path_join(path, sizeof(path), keys_dir, file);
	r->old = cert_read(path);
	if (!r->ca_key || !r->ca || !r->old) {
		ERR_clear_error();
		return err_set(err, 500, "invalid-key",
			       "cannot read %s/ca.key, ca.crt and %s.crt as PEM", keys_dir, what);
	}
	if (X509_check_private_key(r->ca, r->ca_key) != 1 ||
	    X509_check_issued(r->ca, r->old) != X509_V_OK) {
		ERR_clear_error();
		return err_set(err, 409, "not-our-ca",
			       "%s/%s.crt was not issued by %s/ca.crt (with ca.key): renew it "
			       "where it came from", keys_dir, what, keys_dir);
	}
	return 0;
}

static int renewal_make(const char *what, struct renewal *r, struct selo_err *err)
{
	int smime = !strcmp(what, "smime");
	char email[256] = "";
	if (smime && cert_email(r->old, email, sizeof(email)) != 0)
		return err_set(err, 500, "invalid-key", "smime.crt has no e-mail address to keep");
	/* The same kind of key as `selo init` makes for each role. */
	r->key = smime ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
		       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	const struct cert_spec sp = {
		"", "", X509_get_subject_name(r->old), smime ? SMIME_DAYS : TSA_DAYS, "CA:FALSE",
		smime ? SMIME_KU : TSA_KU, smime ? SMIME_EKU : TSA_EKU, smime ? email : NULL};
	r->crt = r->key ? cert_make(&sp, r->key, r->ca, r->ca_key) : NULL;
	if (!r->crt || cert_clip_to_issuer(r->crt, r->ca, r->ca_key) != 0 ||
	    pem_private(r->key, &r->key_pem) != 0 || pem_cert(r->crt, &r->crt_pem) != 0 ||
	    pem_cert(r->old, &r->old_pem) != 0) {
		err_set(err, 500, "crypto", "cannot make the new %s certificate", what);
		err_add_openssl(err);
		return -1;
	}
	return 0;
}

int keys_renew_cert(const char *keys_dir, const char *what, char archived[4096],
		    struct selo_err *err)
{
	if (strcmp(what, "smime") && strcmp(what, "tsa"))
		return err_set(err, 400, "invalid-request", "renewal is for smime or tsa, not %s", what);
	struct renewal r = {0};
	r.key_pem = r.crt_pem = r.old_pem = (struct buf)BUF_INIT;
	int rc = -1;
	if (renewal_load(keys_dir, what, &r, err) != 0 || renewal_make(what, &r, err) != 0)
		goto out;
	char dir[3500], stamp[32], path[4096];
	snprintf(dir, sizeof(dir), "%s/archive", keys_dir);
	clock_rfc3339(clock_now_ms(), stamp);
	stamp[19] = '\0'; /* 2026-12-07T21:30:00 */
	for (char *p = stamp; *p; p++)
		if (*p == ':')
			*p = '-';
	snprintf(archived, 4096, "%s/%s-%sZ.crt", dir, what, stamp);
	/* The old certificate first (it is what old receipts carry, kept for
	 * the record), then the new key, then the new certificate. */
	char file[32];
	if (dir_make(dir, 0700, err) != 0 ||
	    file_write_atomic(archived, r.old_pem.data, r.old_pem.len, 0644, err) != 0)
		goto out;
	snprintf(file, sizeof(file), "%s.pem", what);
	path_join(path, sizeof(path), keys_dir, file);
	if (file_write_atomic(path, r.key_pem.data, r.key_pem.len, 0600, err) != 0)
		goto out;
	snprintf(file, sizeof(file), "%s.crt", what);
	path_join(path, sizeof(path), keys_dir, file);
	rc = file_write_atomic(path, r.crt_pem.data, r.crt_pem.len, 0644, err);
out:
	renewal_free(&r);
	return rc;
}
