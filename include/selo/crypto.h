/* crypto.h: small OpenSSL wrappers used everywhere: SHA-256, HMAC-SHA-256,
 * random bytes, constant-time comparison, and the salted commitments that
 * keep personal data out of the public log. */
#ifndef SELO_CRYPTO_H
#define SELO_CRYPTO_H
#include <stddef.h>
#include <stdint.h>

void sha256(const void *p, size_t n, uint8_t out[32]);
/* Lowercase hex SHA-256 of p: out has 65 bytes. */
void sha256_hex(const void *p, size_t n, char out[65]);
void hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32]);
/* Fills p with n cryptographically random bytes; aborts if the RNG fails
 * (never hand out predictable ids, salts or keys). */
void random_bytes(uint8_t *p, size_t n);
/* 1 if equal, 0 otherwise, in time independent of the contents. */
int ct_equal(const void *a, const void *b, size_t n);

/* Commitment to a personal value: "sha256:" + hex(SHA-256(salt || value)).
 * out has SELO_COMMIT_LEN + 1 bytes. */
#define SELO_COMMIT_LEN (7 + 64)
void commitment(const uint8_t *salt, size_t saltlen, const char *value, size_t vlen,
		char out[SELO_COMMIT_LEN + 1]);

#endif
