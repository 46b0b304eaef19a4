/* auth.c: API key creation and Bearer checking (see auth.h). Keys are
 * random and stored hashed; a presented key is checked by hashing it and
 * looking the hash up (see auth.h on why this leaks nothing by timing). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "selo/auth.h"
#include "selo/buf.h"
#include "selo/clock.h"
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

/* Why a present Authorization header is not a Bearer one. Says which
 * scheme was sent (Basic, Token...) when it is one short word, never the
 * credentials, which may be a real secret. */
static void bearer_missing(const char *header, struct selo_err *err)
{
	while (*header == ' ')
		header++;
	size_t word = strspn(header, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-");
	if (word == 6 && !strncasecmp(header, "Bearer", 6))
		err_set(err, 401, "unauthorized", "the Authorization header says Bearer but no key "
			"follows: send Authorization: Bearer <key>");
	else if (!strncmp(header, "selo_", 5))
		err_set(err, 401, "unauthorized", "the Authorization header holds the key without "
			"the word Bearer: send Authorization: Bearer <key>");
	else if (word > 0 && word <= 16 && (header[word] == ' ' || !header[word]))
		err_set(err, 401, "unauthorized", "the Authorization header uses the scheme "
			"\"%.*s\", not Bearer: send Authorization: Bearer <key>", (int)word, header);
	else
		err_set(err, 401, "unauthorized", "the Authorization header does not start with "
			"\"Bearer \": send Authorization: Bearer <key>");
}

/* The presented key's hash; 0 (err set, 401) when the header is not a key. */
static int bearer_hash(const char *header, uint8_t hash[32], struct selo_err *err)
{
	if (!header)
		return err_set(err, 401, "unauthorized",
			       "missing API key: send the header Authorization: Bearer <key>"), 0;
	if (strncasecmp(header, "Bearer ", 7) != 0)
		return bearer_missing(header, err), 0;
	const char *k = header + 7;
	while (*k == ' ')
		k++;
	size_t n = strlen(k);
	if (n != AUTH_KEY_LEN || strncmp(k, "selo_", 5) != 0)
		return err_set(err, 401, "unauthorized", "invalid API key"), 0;
	sha256(k, n, hash);
	return 1;
}

static int lookup(struct store *s, const uint8_t hash[32], struct apikey *key,
		  struct selo_err *err)
{
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

int auth_check_bearer(struct store *s, const char *header, struct apikey *key,
		      struct selo_err *err)
{
	uint8_t hash[32];
	if (!bearer_hash(header, hash, err))
		return 0;
	return lookup(s, hash, key, err);
}

/* Direct-mapped by the hash's first byte: the hashes are of random keys, and
 * a collision only costs a store lookup. */
#define AUTH_CACHE_SLOTS 64

struct auth_slot {
	uint8_t hash[32];
	struct apikey key;
	int64_t until_ms; /* clock_mono_ms; 0 = empty */
};

struct auth_cache {
	pthread_mutex_t mu;
	struct auth_slot slot[AUTH_CACHE_SLOTS];
};

struct auth_cache *auth_cache_new(void)
{
	struct auth_cache *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void auth_cache_free(struct auth_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

int auth_check_bearer_cached(struct auth_cache *c, struct store *s, const char *header,
			     struct apikey *key, struct selo_err *err)
{
	uint8_t hash[32];
	if (!bearer_hash(header, hash, err))
		return 0;
	struct auth_slot *sl = &c->slot[hash[0] % AUTH_CACHE_SLOTS];
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&c->mu);
	int hit = sl->until_ms > now && ct_equal(sl->hash, hash, 32);
	if (hit)
		*key = sl->key;
	pthread_mutex_unlock(&c->mu);
	if (hit)
		return 1;
	int r = lookup(s, hash, key, err);
	if (r != 1)
		return r;
	pthread_mutex_lock(&c->mu);
	memcpy(sl->hash, hash, 32);
	sl->key = *key;
	sl->until_ms = now + AUTH_CACHE_MS;
	pthread_mutex_unlock(&c->mu);
	return 1;
}
