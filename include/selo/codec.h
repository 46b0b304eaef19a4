/* codec.h: hex and base64 (RFC 4648 standard with padding, and base64url
 * without padding), strict decoders, the one UTF-8 step and its encoder,
 * and the one quoted-printable decoder: every module decodes with these,
 * so there is one judgement of what is valid. Decoders
 * return the decoded length or -1 on any invalid character, bad padding or
 * overflow of out. */
#ifndef SELO_CODEC_H
#define SELO_CODEC_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "selo/buf.h"

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void hex_encode(const uint8_t *p, size_t n, char *out);
/* The value of one hex digit, either case, or -1 for any other byte. */
int hex_digit_value(int c);
ssize_t hex_decode(const char *s, size_t slen, uint8_t *out, size_t outcap);

/* Standard base64 with padding; line_len > 0 inserts CRLF every line_len
 * output characters (76 for MIME), 0 means one line. Appends to out. */
void base64_encode(struct buf *out, const uint8_t *p, size_t n, size_t line_len);
/* Strict: no whitespace, correct padding. */
ssize_t base64_decode(const char *s, size_t slen, uint8_t *out, size_t outcap);
/* Tolerates CR/LF/space (MIME bodies); otherwise strict. */
ssize_t base64_decode_mime(const char *s, size_t slen, uint8_t *out, size_t outcap);
/* Bytes needed to decode slen characters (an upper bound). */
size_t base64_decoded_max(size_t slen);

/* base64url without padding (RFC 4648 §5). */
void base64url_encode(struct buf *out, const uint8_t *p, size_t n);
ssize_t base64url_decode(const char *s, size_t slen, uint8_t *out, size_t outcap);

/* One UTF-8 character at s (n bytes left): its length, 1 to 4, with its
 * code point in *cp; 0 when the bytes there are not one (RFC 3629 section 4:
 * no overlong forms, no surrogates, nothing past U+10FFFF, no truncated
 * sequence) or n is 0. */
size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
/* Valid UTF-8 throughout (utf8_decode's judgement)? 1/0. */
int utf8_valid(const char *s, size_t n);
/* Appends cp as UTF-8 (1 to 4 bytes); callers pass a code point they
 * decoded or checked (at most U+10FFFF). */
void utf8_put(struct buf *out, uint32_t cp);

/* Quoted-printable (RFC 2045 section 6.7), leniently as its note advises:
 * soft line breaks (=CRLF, =LF) dropped, =XX decoded (either case), and a
 * '=' that starts neither kept as it is. Appends to out. */
void qp_decode(const char *s, size_t n, struct buf *out);

/* The lines of a message as SMTP and signatures need them (RFC 5321
 * sections 2.3.8 and 4.5.3.1.6): every CR followed by LF, every LF after a
 * CR, no NUL, and with max_line > 0 no line longer than max_line octets
 * with its CRLF. CRLF_OK when all hold; else the first fault in byte
 * order, with *at its offset and *line its line (from 1). *eightbit: some
 * byte before the fault (any, when CRLF_OK) is 0x80 or above. Line by line
 * with memchr: it runs over every byte of every message. */
enum crlf_fault { CRLF_OK, CRLF_NUL, CRLF_BARE_CR, CRLF_BARE_LF, CRLF_LONG_LINE };
enum crlf_fault crlf_lines_check(const char *p, size_t n, size_t max_line, size_t *at,
				 size_t *line, int *eightbit);

#endif
