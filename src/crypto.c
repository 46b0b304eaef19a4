/* crypto.c: SHA-256, HMAC, randomness, constant-time compare, commitments
 * (see crypto.h). A failing RNG aborts: a predictable salt or key is worse
 * than a stopped server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "selo/codec.h"
#include "selo/crypto.h"

void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL)) {
		fprintf(stderr, "selo: SHA-256 failed\n");
		abort();
	}
}

void sha256_hex(const void *p, size_t n, char out[65])
{
	uint8_t d[32];
	sha256(p, n, d);
	hex_encode(d, 32, out);
}

void hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	if (!HMAC(EVP_sha256(), key, (int)keylen, p, n, out, &len)) {
		fprintf(stderr, "selo: HMAC-SHA-256 failed\n");
		abort();
	}
}

void random_bytes(uint8_t *p, size_t n)
{
	if (RAND_bytes(p, (int)n) != 1) {
		fprintf(stderr, "selo: random number generator failed\n");
		abort();
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
	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, salt, saltlen) ||
	    !EVP_DigestUpdate(c, value, vlen) || !EVP_DigestFinal_ex(c, d, &len)) {
		fprintf(stderr, "selo: SHA-256 failed\n");
		abort();
	}
	EVP_MD_CTX_free(c);
	memcpy(out, "sha256:", 7);
	hex_encode(d, 32, out + 7);
}
