/* token.c: self-authenticating tracking tokens (layout in token.h).
 * token_make writes 48 base64url characters; token_parse is the one place a
 * token from a request is read: it takes any bytes, reads exactly len of
 * them, and answers -1 for anything that is not a genuine token (length,
 * alphabet, version, kind, link index, MAC) without saying which. */
#include <string.h>
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/token.h"

#define TOKEN_VERSION 1
#define TOKEN_BODY 20 /* version, kind, link, notice id: what the MAC covers */
#define TOKEN_MAC 16
#define TOKEN_BYTES (TOKEN_BODY + TOKEN_MAC)

static void token_body(const struct token *t, uint8_t body[TOKEN_BODY])
{
	body[0] = TOKEN_VERSION;
	body[1] = (uint8_t)t->kind;
	body[2] = (uint8_t)(t->link >> 8);
	body[3] = (uint8_t)(t->link & 0xFF);
	memcpy(body + 4, t->notice, SELO_ID_BYTES);
}

static void token_mac(const uint8_t key[TOKEN_KEY_LEN], const uint8_t body[TOKEN_BODY],
		      uint8_t mac[32])
{
	hmac_sha256(key, TOKEN_KEY_LEN, body, TOKEN_BODY, mac);
}

void token_make(const uint8_t key[TOKEN_KEY_LEN], const struct token *t,
		char out[TOKEN_TEXT_LEN + 1])
{
	uint8_t raw[TOKEN_BYTES], mac[32];
	token_body(t, raw);
	token_mac(key, raw, mac);
	memcpy(raw + TOKEN_BODY, mac, TOKEN_MAC);
	struct buf b = BUF_INIT;
	base64url_encode(&b, raw, sizeof(raw));
	memcpy(out, b.data, TOKEN_TEXT_LEN); /* 36 bytes are exactly 48 symbols */
	out[TOKEN_TEXT_LEN] = '\0';
	buf_free(&b);
}

/* Only opens and reads have link 0, only clicks a link index from 1. */
static int kind_link_ok(int kind, unsigned link)
{
	switch (kind) {
	case TOKEN_OPEN:
	case TOKEN_READ:
		return link == 0;
	case TOKEN_CLICK:
		return link >= 1;
	default:
		return 0;
	}
}

int token_parse(const uint8_t key[TOKEN_KEY_LEN], const char *s, size_t len, struct token *t)
{
	uint8_t raw[TOKEN_BYTES], mac[32];
	if (!s || len != TOKEN_TEXT_LEN)
		return -1;
	/* strict decoder: alphabet only, and 48 symbols carry no spare bits, so
	 * each token has exactly one spelling */
	if (base64url_decode(s, len, raw, sizeof(raw)) != TOKEN_BYTES)
		return -1;
	if (raw[0] != TOKEN_VERSION)
		return -1;
	unsigned link = (unsigned)raw[2] << 8 | raw[3];
	if (!kind_link_ok(raw[1], link))
		return -1;
	token_mac(key, raw, mac);
	if (!ct_equal(mac, raw + TOKEN_BODY, TOKEN_MAC))
		return -1;
	if (t) {
		t->kind = (enum token_kind)raw[1];
		t->link = (uint16_t)link;
		memcpy(t->notice, raw + 4, SELO_ID_BYTES);
	}
	return 0;
}

const char *token_kind_name(enum token_kind k)
{
	switch (k) {
	case TOKEN_OPEN:
		return "open";
	case TOKEN_CLICK:
		return "click";
	case TOKEN_READ:
		return "read";
	}
	return "unknown";
}
