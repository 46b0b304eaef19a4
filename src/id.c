/* id.c: ULID-layout notice ids (see id.h): sortable by time, 80 random bits
 * so they cannot be guessed or enumerated. */
#include <string.h>
#include "selo/clock.h"
#include "selo/crypto.h"
#include "selo/id.h"

static const char CROCK[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void id_new(uint8_t out[SELO_ID_BYTES])
{
	uint64_t ms = (uint64_t)clock_now_ms();
	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)(ms >> (40 - 8 * i));
	random_bytes(out + 6, SELO_ID_BYTES - 6);
}

/* 128 bits as 26 base32 digits: the first digit carries the top 3 bits. */
void id_to_text(const uint8_t id[SELO_ID_BYTES], char out[SELO_ID_TEXT + 1])
{
	for (int k = 0; k < SELO_ID_TEXT; k++) {
		int bit = 130 - 5 * (k + 1); /* position of this digit's lowest bit, in a 130-bit frame */
		unsigned v = 0;
		for (int b = 4; b >= 0; b--) {
			int pos = bit + b; /* bit index from the least significant end */
			unsigned x = 0;
			if (pos < 128)
				x = id[15 - pos / 8] >> (pos % 8) & 1;
			v = v << 1 | x;
		}
		out[k] = CROCK[v];
	}
	out[SELO_ID_TEXT] = '\0';
}

static int crock_val(char c)
{
	if (c >= 'a' && c <= 'z')
		c = (char)(c - 32);
	const char *p = c ? strchr(CROCK, c) : NULL;
	return p ? (int)(p - CROCK) : -1;
}

int id_from_text(const char *s, uint8_t out[SELO_ID_BYTES])
{
	if (!id_text_valid(s))
		return -1;
	memset(out, 0, SELO_ID_BYTES);
	for (int k = 0; k < SELO_ID_TEXT; k++) {
		unsigned v = (unsigned)crock_val(s[k]);
		int bit = 130 - 5 * (k + 1);
		for (int b = 0; b < 5; b++) {
			int pos = bit + b;
			if (pos < 128 && (v >> b & 1))
				out[15 - pos / 8] |= (uint8_t)(1u << (pos % 8));
		}
	}
	return 0;
}

int id_text_valid(const char *s)
{
	if (!s || strlen(s) != SELO_ID_TEXT)
		return 0;
	for (int k = 0; k < SELO_ID_TEXT; k++)
		if (crock_val(s[k]) < 0)
			return 0;
	return crock_val(s[0]) < 8; /* the first digit holds only 3 bits */
}
