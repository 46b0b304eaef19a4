/* auth.c: API key creation and Bearer checking (see auth.h). Keys are
 * random and stored hashed; a presented key is checked by hashing it and
 * looking the hash up (see auth.h on why this leaks nothing by timing). */
#include <string.h>
#include <strings.h>
#include "selo/auth.h"
#include "selo/codec.h"
#include "selo/crypto.h"

void auth_key_new(char key[AUTH_KEY_LEN + 1], uint8_t hash[32], char prefix[16])
{
	uint8_t raw[24];
	random_bytes(raw, sizeof(raw));
	struct buf b = BUF_INIT;
	buf_puts(&b, "selo_");
	base64url_encode(&b, raw, sizeof(raw));
	memcpy(key, b.data, AUTH_KEY_LEN);
	key[AUTH_KEY_LEN] = '\0';
	buf_free(&b);
	sha256(key, AUTH_KEY_LEN, hash);
	memcpy(prefix, key, AUTH_PREFIX_LEN);
	prefix[AUTH_PREFIX_LEN] = '\0';
}

int auth_check_bearer(struct store *s, const char *header, struct apikey *key,
		      struct selo_err *err)
{
	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return err_set(err, 401, "unauthorized",
			       "missing API key: send the header Authorization: Bearer <key>"), 0;
	const char *k = header + 7;
	while (*k == ' ')
		k++;
	size_t n = strlen(k);
	if (n != AUTH_KEY_LEN || strncmp(k, "selo_", 5) != 0)
		return err_set(err, 401, "unauthorized", "invalid API key"), 0;
	uint8_t hash[32];
	sha256(k, n, hash);
	struct selo_err e2;
	err_clear(&e2);
	int r = store_apikey_find(s, hash, key, &e2);
	if (r < 0) {
		if (err)
			*err = e2;
		return -1;
	}
	if (r == 0)
		return err_set(err, 401, "unauthorized", "invalid or revoked API key"), 0;
	return 1;
}
