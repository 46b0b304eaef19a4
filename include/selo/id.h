/* id.h: notice identifiers. An id is 16 bytes: 48-bit big-endian millisecond
 * time then 80 random bits (ULID layout), written as 26 Crockford base32
 * characters. Ids sort by creation time, which paging (`after=`) relies on. */
#ifndef SELO_ID_H
#define SELO_ID_H
#include <stdint.h>

#define SELO_ID_BYTES 16
#define SELO_ID_TEXT 26

void id_new(uint8_t out[SELO_ID_BYTES]);
void id_to_text(const uint8_t id[SELO_ID_BYTES], char out[SELO_ID_TEXT + 1]);
/* Accepts upper or lower case; returns 0 or -1 when s is not an id. */
int id_from_text(const char *s, uint8_t out[SELO_ID_BYTES]);
/* 1 when s is exactly 26 valid characters. */
int id_text_valid(const char *s);

#endif
