/* token.h: tracking tokens. A token names a notice, a kind (open, click,
 * read) and a link index, and carries a MAC under the token key, so the
 * tracker can refuse a forged, truncated or altered token before touching
 * the database. Layout before base64url (no padding):
 *   version(1)=1 | kind(1) | link(2, BE) | notice id(16) | HMAC-SHA-256(key,
 *   previous 20 bytes) truncated to 16  => 36 bytes, 48 characters. */
#ifndef SELO_TOKEN_H
#define SELO_TOKEN_H
#include <stddef.h>
#include <stdint.h>
#include "selo/id.h"

#define TOKEN_TEXT_LEN 48
#define TOKEN_KEY_LEN 32

enum token_kind { TOKEN_OPEN = 1, TOKEN_CLICK = 2, TOKEN_READ = 3 };

struct token {
	enum token_kind kind;
	uint16_t link;
	uint8_t notice[SELO_ID_BYTES];
};

void token_make(const uint8_t key[TOKEN_KEY_LEN], const struct token *t,
		char out[TOKEN_TEXT_LEN + 1]);
/* 0 and *t when s (len bytes) is a genuine token; -1 otherwise. The MAC is
 * compared in constant time. */
int token_parse(const uint8_t key[TOKEN_KEY_LEN], const char *s, size_t len, struct token *t);
/* "open", "click", "read". */
const char *token_kind_name(enum token_kind k);

#endif
