/* codec.c: hex and base64 encoders and strict decoders, the UTF-8 step and
 * encoder, and quoted-printable decoding (see codec.h). The decoders reject anything not canonical so that two
 * different strings never decode to the same bytes (receipts compare
 * encodings). */
#include <stdint.h>
#include <string.h>
#include "selo/codec.h"

static const char HEX[] = "0123456789abcdef";
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void hex_encode(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = HEX[p[i] >> 4];
		out[2 * i + 1] = HEX[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int hex_digit_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

ssize_t hex_decode(const char *s, size_t slen, uint8_t *out, size_t outcap)
{
	if (slen % 2 || slen / 2 > outcap)
		return -1;
	for (size_t i = 0; i < slen / 2; i++) {
		int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (ssize_t)(slen / 2);
}

static void b64_core(struct buf *out, const uint8_t *p, size_t n, const char *alpha,
		     int pad, size_t line_len)
{
	size_t col = 0;
	buf_reserve(out, (n + 2) / 3 * 4 + (line_len ? (n / line_len + 1) * 2 * 4 / 3 + 4 : 0));
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = n - i;
		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		char q[4] = {alpha[v >> 18 & 63], alpha[v >> 12 & 63], alpha[v >> 6 & 63], alpha[v & 63]};
		size_t emit = left >= 3 ? 4 : left + 1;
		for (size_t k = 0; k < 4; k++) {
			if (k >= emit && !pad)
				break;
			if (line_len && col == line_len) {
				buf_append(out, "\r\n", 2);
				col = 0;
			}
			buf_putc(out, k < emit ? q[k] : '=');
			col++;
		}
	}
}

void base64_encode(struct buf *out, const uint8_t *p, size_t n, size_t line_len)
{
	b64_core(out, p, n, B64, 1, line_len);
}

void base64url_encode(struct buf *out, const uint8_t *p, size_t n)
{
	b64_core(out, p, n, B64URL, 0, 0);
}

size_t base64_decoded_max(size_t slen)
{
	return slen / 4 * 3 + 3;
}

static int b64val(char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/* Decodes the unpadded symbols s[0..n); rejects non-zero trailing bits. */
static ssize_t b64_symbols(const char *s, size_t n, int url, uint8_t *out, size_t outcap)
{
	if (n % 4 == 1)
		return -1;
	size_t olen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (olen > outcap)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val(s[i], url);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (ssize_t)o;
}

ssize_t base64_decode(const char *s, size_t slen, uint8_t *out, size_t outcap)
{
	if (slen % 4)
		return -1;
	size_t n = slen;
	if (n && s[n - 1] == '=')
		n--;
	if (n && s[n - 1] == '=')
		n--;
	if (slen - n && (n % 4) + (slen - n) != 4)
		return -1;
	return b64_symbols(s, n, 0, out, outcap);
}

ssize_t base64_decode_mime(const char *s, size_t slen, uint8_t *out, size_t outcap)
{
	struct buf clean = BUF_INIT;
	for (size_t i = 0; i < slen; i++)
		if (s[i] != '\r' && s[i] != '\n' && s[i] != ' ' && s[i] != '\t')
			buf_putc(&clean, s[i]);
	ssize_t r = base64_decode(buf_str(&clean), clean.len, out, outcap);
	buf_free(&clean);
	return r;
}

ssize_t base64url_decode(const char *s, size_t slen, uint8_t *out, size_t outcap)
{
	return b64_symbols(s, slen, 1, out, outcap);
}

size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
	if (n == 0)
		return 0;
	uint32_t c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	/* The lead byte fixes the length and the range of the second byte,
	 * which is where overlong forms, surrogates and values past U+10FFFF
	 * show (RFC 3629 section 4). */
	size_t len;
	uint8_t lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2, c &= 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF, c &= 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF, c &= 0x07;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
		c = c << 6 | (s[i] & 0x3F);
	}
	*cp = c;
	return len;
}

int utf8_valid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	uint32_t cp;
	while (i < n) {
		size_t k = utf8_decode(p + i, n - i, &cp);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

void utf8_put(struct buf *out, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	buf_append(out, u, n);
}

void qp_decode(const char *s, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '=') {
			buf_putc(out, s[i]);
			continue;
		}
		int hi = i + 2 < n ? hex_digit_value(s[i + 1]) : -1;
		int lo = i + 2 < n ? hex_digit_value(s[i + 2]) : -1;
		if (i + 1 < n && s[i + 1] == '\n') {
			i += 1;
		} else if (i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
		} else if (hi >= 0 && lo >= 0) {
			buf_putc(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			buf_putc(out, '=');
		}
	}
}

/* Any byte of p[0, n) at 0x80 or above: eight at a time. */
static int high_bit_any(const char *p, size_t n)
{
	uint64_t acc = 0, w;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= (uint8_t)p[i];
	return (acc & 0x8080808080808080ull) != 0;
}

enum crlf_fault crlf_lines_check(const char *p, size_t n, size_t max_line, size_t *at,
				 size_t *line, int *eightbit)
{
	size_t i = 0, no = 1;
	*eightbit = 0;
	while (i < n) {
		const char *lf = memchr(p + i, '\n', n - i);
		size_t end = lf ? (size_t)(lf - p) : n;
		int crlf = lf && end > i && p[end - 1] == '\r';
		size_t text = crlf ? end - 1 : end; /* the line without its CRLF */
		const char *cr = memchr(p + i, '\r', text - i);
		const char *nul = memchr(p + i, '\0', text - i);
		const char *bad = cr && (!nul || cr < nul) ? cr : nul;
		if (!*eightbit)
			*eightbit = high_bit_any(p + i, (bad ? (size_t)(bad - p) : end) - i);
		*line = no;
		if (bad) {
			*at = (size_t)(bad - p);
			return bad == nul ? CRLF_NUL : CRLF_BARE_CR;
		}
		if (lf && !crlf) {
			*at = end;
			return CRLF_BARE_LF;
		}
		if (max_line && end + 1 - i > max_line) {
			*at = i;
			return CRLF_LONG_LINE;
		}
		i = end + 1;
		no++;
	}
	return CRLF_OK;
}
