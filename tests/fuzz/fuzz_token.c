/* fuzz_token.c: libFuzzer target for tracking tokens, the tracker's first
 * contact with untrusted bytes: token_parse must refuse anything not made
 * by token_make under the key, without reading out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "selo/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[TOKEN_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct token t;
	if (token_parse(key, (const char *)data, size, &t) == 0) {
		/* A token that parses must be exactly what token_make writes. */
		char again[TOKEN_TEXT_LEN + 1];
		token_make(key, &t, again);
		if (size != TOKEN_TEXT_LEN || memcmp(again, data, size) != 0)
			abort();
	}
	return 0;
}
