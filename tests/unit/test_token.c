/* test_token.c: tracking tokens: round trip, the exact layout of token.h,
 * and refusal of every alteration, truncation, extension, other key and
 * random input (token_parse must be total). */
#include <stdint.h>
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/token.h"
#include "t.h"

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void key_of(uint8_t key[TOKEN_KEY_LEN], uint8_t seed)
{
	for (int i = 0; i < TOKEN_KEY_LEN; i++)
		key[i] = (uint8_t)(seed + 31 * i);
}

static struct token sample(enum token_kind k, uint16_t link)
{
	struct token t;
	t.kind = k;
	t.link = link;
	for (int i = 0; i < SELO_ID_BYTES; i++)
		t.notice[i] = (uint8_t)(0xA0 + i);
	return t;
}

TEST(round_trip)
{
	uint8_t key[TOKEN_KEY_LEN];
	key_of(key, 7);
	struct token in[] = {sample(TOKEN_OPEN, 0), sample(TOKEN_READ, 0), sample(TOKEN_CLICK, 1),
			     sample(TOKEN_CLICK, 2), sample(TOKEN_CLICK, 65535)};
	for (size_t i = 0; i < sizeof(in) / sizeof(*in); i++) {
		char s[TOKEN_TEXT_LEN + 1];
		token_make(key, &in[i], s);
		CHECK(strlen(s) == TOKEN_TEXT_LEN);
		CHECK(strspn(s, B64URL) == TOKEN_TEXT_LEN);
		struct token out;
		memset(&out, 0, sizeof(out));
		CHECK(token_parse(key, s, strlen(s), &out) == 0);
		CHECK(out.kind == in[i].kind);
		CHECK(out.link == in[i].link);
		CHECK(memcmp(out.notice, in[i].notice, SELO_ID_BYTES) == 0);
	}
	CHECK_STR(token_kind_name(TOKEN_OPEN), "open");
	CHECK_STR(token_kind_name(TOKEN_CLICK), "click");
	CHECK_STR(token_kind_name(TOKEN_READ), "read");
}

/* The layout is a contract (token.h): check it byte by byte, MAC included. */
TEST(layout)
{
	uint8_t key[TOKEN_KEY_LEN], raw[36], mac[32];
	key_of(key, 1);
	struct token t = sample(TOKEN_CLICK, 0x0102);
	char s[TOKEN_TEXT_LEN + 1];
	token_make(key, &t, s);
	CHECK(base64url_decode(s, TOKEN_TEXT_LEN, raw, sizeof(raw)) == 36);
	CHECK(raw[0] == 1 && raw[1] == TOKEN_CLICK && raw[2] == 1 && raw[3] == 2);
	CHECK(memcmp(raw + 4, t.notice, 16) == 0);
	hmac_sha256(key, TOKEN_KEY_LEN, raw, 20, mac);
	CHECK(memcmp(raw + 20, mac, 16) == 0);
}

TEST(deterministic)
{
	uint8_t key[TOKEN_KEY_LEN];
	key_of(key, 3);
	struct token t = sample(TOKEN_OPEN, 0);
	char a[TOKEN_TEXT_LEN + 1], b[TOKEN_TEXT_LEN + 1];
	token_make(key, &t, a);
	token_make(key, &t, b);
	CHECK_STR(a, b);
	t.notice[15] ^= 1;
	token_make(key, &t, b);
	CHECK(strcmp(a, b) != 0);
}

TEST(every_alteration_refused)
{
	uint8_t key[TOKEN_KEY_LEN];
	key_of(key, 9);
	struct token t = sample(TOKEN_CLICK, 3), out;
	char s[TOKEN_TEXT_LEN + 1];
	token_make(key, &t, s);
	int refused = 0, tried = 0;
	/* every position, every other character of the alphabet and some outside it */
	for (int i = 0; i < TOKEN_TEXT_LEN; i++) {
		const char extra[] = "=+/.~ \r\n\t\x80\xFF";
		for (int k = 0; k < 64 + (int)sizeof(extra) - 1 + 1; k++) {
			char c = k < 64 ? B64URL[k] : k < 64 + (int)sizeof(extra) - 1 ? extra[k - 64] : '\0';
			if (c == s[i])
				continue;
			char m[TOKEN_TEXT_LEN + 1];
			memcpy(m, s, sizeof(m));
			m[i] = c;
			tried++;
			refused += token_parse(key, m, TOKEN_TEXT_LEN, &out) == -1;
		}
	}
	CHECK(tried > 48 * 63);
	CHECK(refused == tried);
}

TEST(every_bit_of_the_bytes_refused)
{
	uint8_t key[TOKEN_KEY_LEN], raw[36];
	key_of(key, 11);
	struct token t = sample(TOKEN_READ, 0), out;
	char s[TOKEN_TEXT_LEN + 1];
	token_make(key, &t, s);
	CHECK(base64url_decode(s, TOKEN_TEXT_LEN, raw, sizeof(raw)) == 36);
	for (int i = 0; i < 36 * 8; i++) {
		uint8_t m[36];
		memcpy(m, raw, 36);
		m[i / 8] ^= (uint8_t)(1u << (i % 8));
		struct buf b = BUF_INIT;
		base64url_encode(&b, m, 36);
		CHECK(token_parse(key, b.data, b.len, &out) == -1);
		buf_free(&b);
	}
}

TEST(length_refused)
{
	uint8_t key[TOKEN_KEY_LEN];
	key_of(key, 13);
	struct token t = sample(TOKEN_OPEN, 0), out;
	char s[TOKEN_TEXT_LEN + 8];
	token_make(key, &t, s);
	for (size_t n = 0; n < TOKEN_TEXT_LEN; n++)
		CHECK(token_parse(key, s, n, &out) == -1);
	strcat(s, "A");
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN + 1, &out) == -1);
	strcpy(s + TOKEN_TEXT_LEN, ".gif");
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN + 4, &out) == -1);
	CHECK(token_parse(key, NULL, TOKEN_TEXT_LEN, &out) == -1);
	CHECK(token_parse(key, "", 0, &out) == -1);
}

TEST(wrong_key_refused)
{
	uint8_t key[TOKEN_KEY_LEN], other[TOKEN_KEY_LEN];
	key_of(key, 17);
	memcpy(other, key, sizeof(other));
	other[31] ^= 0x80;
	struct token t = sample(TOKEN_CLICK, 1), out;
	char s[TOKEN_TEXT_LEN + 1];
	token_make(key, &t, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == 0);
	CHECK(token_parse(other, s, TOKEN_TEXT_LEN, &out) == -1);
}

/* A MAC-valid token with a field we do not issue is still refused. */
static void forge(const uint8_t key[TOKEN_KEY_LEN], uint8_t ver, uint8_t kind, uint16_t link,
		  char out[TOKEN_TEXT_LEN + 1])
{
	uint8_t raw[36], mac[32];
	raw[0] = ver;
	raw[1] = kind;
	raw[2] = (uint8_t)(link >> 8);
	raw[3] = (uint8_t)link;
	memset(raw + 4, 0x42, 16);
	hmac_sha256(key, TOKEN_KEY_LEN, raw, 20, mac);
	memcpy(raw + 20, mac, 16);
	struct buf b = BUF_INIT;
	base64url_encode(&b, raw, 36);
	memcpy(out, b.data, TOKEN_TEXT_LEN + 1);
	buf_free(&b);
}

TEST(fields_checked)
{
	uint8_t key[TOKEN_KEY_LEN];
	key_of(key, 19);
	char s[TOKEN_TEXT_LEN + 1];
	struct token out;
	forge(key, 1, TOKEN_CLICK, 5, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == 0); /* the control */
	forge(key, 2, TOKEN_CLICK, 5, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1); /* version */
	forge(key, 0, TOKEN_CLICK, 5, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1);
	forge(key, 1, 0, 0, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1); /* kind */
	forge(key, 1, 4, 0, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1);
	forge(key, 1, 255, 0, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1);
	forge(key, 1, TOKEN_CLICK, 0, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1); /* clicks count from 1 */
	forge(key, 1, TOKEN_OPEN, 1, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1); /* opens have no link */
	forge(key, 1, TOKEN_READ, 7, s);
	CHECK(token_parse(key, s, TOKEN_TEXT_LEN, &out) == -1);
}

/* Totality: random bytes of every length, exactly len bytes read (the
 * buffer is exactly len long, so ASan catches any read past it). */
TEST(random_input_total)
{
	uint8_t key[TOKEN_KEY_LEN];
	key_of(key, 23);
	struct token out;
	for (int round = 0; round < 20000; round++) {
		uint8_t r[2];
		random_bytes(r, 2);
		size_t n = round < 200 ? (size_t)(round % 100) : (r[0] % 2 ? TOKEN_TEXT_LEN : r[1] % 100);
		char *s = malloc(n ? n : 1);
		random_bytes((uint8_t *)s, n);
		if (round % 3 == 0)
			for (size_t i = 0; i < n; i++)
				s[i] = B64URL[(unsigned char)s[i] % 64];
		CHECK(token_parse(key, s, n, &out) == -1);
		free(s);
	}
}
