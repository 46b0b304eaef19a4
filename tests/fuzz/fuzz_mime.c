/* fuzz_mime.c: libFuzzer target for the header-safety checks: whatever
 * mime_addr_check and mime_header_text_check accept must produce header
 * lines with no CR or LF except the CRLF that ends (or folds) a line, no NUL,
 * and no line over 998 octets. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "selo/mime.h"

static void check_lines(const struct buf *b)
{
	size_t col = 0;
	for (size_t i = 0; i < b->len; i++) {
		char c = b->data[i];
		if (c == '\0')
			abort();
		if (c == '\r') {
			if (i + 1 >= b->len || b->data[i + 1] != '\n')
				abort();
			/* a CRLF either ends the header or folds: then WSP follows */
			if (i + 2 < b->len && b->data[i + 2] != ' ' && b->data[i + 2] != '\t')
				abort();
			col = 0;
			i++;
			continue;
		}
		if (c == '\n' || ++col > 998)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct selo_err err;
	err_clear(&err);
	struct buf b = BUF_INIT;
	if (mime_header_text_check(s, 4096, "f", &err) == 0 && mime_write_header(&b, "Subject", s) == 0)
		check_lines(&b);
	buf_reset(&b);
	err_clear(&err);
	if (mime_addr_check(s, "to", &err) == 0 && mime_write_address(&b, "To", "Nome", s) == 0)
		check_lines(&b);
	buf_free(&b);
	free(s);
	return 0;
}
