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

#endif
