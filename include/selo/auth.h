/* auth.h: API keys. A key is "selo_" + 32 base64url characters (192 random
 * bits), shown once; only its SHA-256 is stored. A presented key is hashed
 * and looked up by its hash: an attacker timing the index lookup learns at
 * most how a hash of their own guess compares, which says nothing about a
 * stored key (no comparison ever touches a secret byte directly). */
#ifndef SELO_AUTH_H
#define SELO_AUTH_H
#include <stdint.h>
#include "selo/err.h"
#include "selo/store.h"

#define AUTH_KEY_LEN 37
#define AUTH_PREFIX_LEN 12

/* New key text (AUTH_KEY_LEN + 1 bytes), its hash and display prefix. */
void auth_key_new(char key[AUTH_KEY_LEN + 1], uint8_t hash[32], char prefix[16]);
/* Resolves "Bearer <key>" (the Authorization header value, may be NULL):
 * 1 and *key filled when valid and active; 0 otherwise (err says why, 401). */
int auth_check_bearer(struct store *s, const char *header, struct apikey *key,
		      struct selo_err *err);

/* Keys found active in the last AUTH_CACHE_MS, kept in memory so that an
 * accept does not open a read transaction for its key: each one takes
 * SQLite's lock on the WAL index, the lock the API threads waited longest
 * for under load (docs/operations.md). Only requests whose write checks the
 * key again inside its transaction may use it (store_notices_accept does),
 * so a revoked key still changes nothing from the moment it is revoked. */
#define AUTH_CACHE_MS 1000
struct auth_cache;
struct auth_cache *auth_cache_new(void);
void auth_cache_free(struct auth_cache *c);
/* As auth_check_bearer, answered from c when the key is there and fresh. */
int auth_check_bearer_cached(struct auth_cache *c, struct store *s, const char *header,
			     struct apikey *key, struct selo_err *err);

#endif
