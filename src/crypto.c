/* crypto.c: SHA-256, HMAC, randomness, constant-time compare, commitments
 * (see crypto.h). A failing RNG aborts: a predictable salt or key is worse
 * than a stopped server. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "selo/codec.h"
#include "selo/crypto.h"

/* OpenSSL 3 looks the algorithm up in its provider tables on every call
 * that names it with EVP_sha256(), and HMAC() fetches a MAC implementation
 * each time: 0.45 and 1.7 us against 0.17 and 0.3 us with the digest
 * fetched once, measured here. Every event, commitment, Merkle node and
 * tracker token goes through these, so the digest is fetched once. */
static EVP_MD *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_fetch(void)
{
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!md_sha256) {
		fprintf(stderr, "selo: SHA-256 is not available from OpenSSL\n");
		abort();
	}
}

static const EVP_MD *md(void)
{
	pthread_once(&md_once, md_fetch);
	return md_sha256;
}

static void hash_failed(void)
{
	fprintf(stderr, "selo: SHA-256 failed\n");
	abort();
}

void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	if (!EVP_Digest(p, n, out, &len, md(), NULL))
		hash_failed();
}

void sha256_hex(const void *p, size_t n, char out[65])
{
	uint8_t d[32];
	sha256(p, n, d);
	hex_encode(d, 32, out);
}

/* RFC 2104 over the fetched digest: H((K ^ opad) || H((K ^ ipad) || m)),
 * K the key padded to the 64-byte block (hashed first when longer). */
void hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32])
{
	uint8_t k[64] = {0}, pad[64], inner[32];
	if (keylen > sizeof(k))
		sha256(key, keylen, k);
	else
		memcpy(k, key, keylen);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int len = 32;
	for (size_t i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	if (!c || !EVP_DigestInit_ex(c, md(), NULL) || !EVP_DigestUpdate(c, pad, 64) ||
	    !EVP_DigestUpdate(c, p, n) || !EVP_DigestFinal_ex(c, inner, &len))
		hash_failed();
	for (size_t i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	if (!EVP_DigestInit_ex(c, md(), NULL) || !EVP_DigestUpdate(c, pad, 64) ||
	    !EVP_DigestUpdate(c, inner, 32) || !EVP_DigestFinal_ex(c, out, &len))
		hash_failed();
	EVP_MD_CTX_free(c);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
}

/* The kernel's CSPRNG, through getrandom(2), not OpenSSL's RAND_bytes. In
 * OpenSSL 3.0, RAND_bytes takes a lock of the generator that the sender
 * threads' own random numbers (RSA blinding, CMS) also come from; a sender
 * at nice 19, preempted while holding it, left the API threads spinning on
 * it for up to a second (caught with perf in `make bench`). In a test of 16
 * threads against 4 signing at nice 19: RAND_bytes worst 0.8-1.6 s,
 * getrandom worst 0.9-4 ms. */
void random_bytes(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			fprintf(stderr, "selo: random number generator failed: %s\n",
				got < 0 ? strerror(errno) : "no bytes");
			abort();
		}
		p += got;
		n -= (size_t)got;
	}
}

int ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void commitment(const uint8_t *salt, size_t saltlen, const char *value, size_t vlen,
		char out[SELO_COMMIT_LEN + 1])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t d[32];
	unsigned int len = 32;
	if (!c || !EVP_DigestInit_ex(c, md(), NULL) || !EVP_DigestUpdate(c, salt, saltlen) ||
	    !EVP_DigestUpdate(c, value, vlen) || !EVP_DigestFinal_ex(c, d, &len))
		hash_failed();
	EVP_MD_CTX_free(c);
	memcpy(out, "sha256:", 7);
	hex_encode(d, 32, out + 7);
}
