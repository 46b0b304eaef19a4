/* mime.h: the pieces of an Internet message (RFC 5322, 2045-2047, 2231),
 * written as exact CRLF bytes. Every header value goes through here, and
 * nothing here lets CR, LF or NUL from a value reach the output: values are
 * checked by the *_check functions at submission and the writers still
 * refuse (return -1) what the checks would have refused. */
#ifndef SELO_MIME_H
#define SELO_MIME_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/codec.h" /* utf8_valid, once declared here */
#include "selo/err.h"

/* An SMTP mailbox we are willing to send to (RFC 5321 §4.1.2, §4.5.3.1):
 * ASCII, local@domain, local part dot-atom (or rejected), at most 64 octets,
 * domain of LDH labels (or an IP literal, refused), at most 254 octets in
 * all. On failure adds a field error for `field` and returns -1 (422). */
int mime_addr_check(const char *addr, const char *field, struct selo_err *err);

/* A value for one header line (subject, display name, filename): valid
 * UTF-8, at most max bytes, and none of the code points mime_text_refused
 * names. Field error and -1 (422) otherwise, naming the code point and its
 * byte offset. */
int mime_header_text_check(const char *s, size_t max, const char *field, struct selo_err *err);

/* What a header text may not hold: NULL when cp is fine, else what cp is
 * ("a control character", "LINE SEPARATOR", ...). Refused: C0 and C1
 * controls with DEL (U+0000-U+001F, U+007F-U+009F), U+2028 and U+2029, the
 * bidirectional embeddings and overrides U+202A-U+202E and isolates
 * U+2066-U+2069. */
const char *mime_text_refused(uint32_t cp);

/* "Name: value\r\n" for an unstructured value: plain when it is printable
 * ASCII, else RFC 2047 encoded words (UTF-8, B or Q), folded so that no line
 * exceeds 78 characters. -1 if value fails mime_header_text_check. */
int mime_write_header(struct buf *out, const char *name, const char *value);
/* "Name: display <addr>\r\n"; display may be NULL; it is quoted or encoded
 * as needed (one quoted-string when ASCII and short, else word by word:
 * atoms, quoted words, encoded words for non-ASCII runs). -1 if either
 * part is invalid. */
int mime_write_address(struct buf *out, const char *name, const char *display, const char *addr);

/* A fresh random boundary, 40 characters ("=_selo_" + 33 base64url),
 * never found in base64/QP text ("=_" cannot occur there). */
void mime_boundary(char out[48]);

/* A text part (headers + body): Content-Type text/<subtype>;
 * charset=utf-8, quoted-printable (RFC 2045 §6.7, lines <= 76, CRLF line
 * ends; bare LF in text becomes CRLF). The body ends with the text's last
 * character: the CRLF before the next boundary is the caller's. */
void mime_write_text_part(struct buf *out, const char *subtype, const char *text, size_t n);
/* An attachment part: Content-Type with name, Content-Disposition
 * attachment with filename (RFC 2231 filename* when not ASCII, plus an RFC
 * 2047 name= for older clients), base64 in 76-character lines. -1 if the
 * filename or content type is invalid. */
int mime_write_attachment(struct buf *out, const char *content_type, const char *filename,
			  const uint8_t *data, size_t n);
/* A content type we accept for attachments: type/subtype tokens only. */
int mime_content_type_check(const char *ct, const char *field, struct selo_err *err);

/* Quoted-printable body encoding, exposed for tests. Besides RFC 2045, a
 * '.' or "From " at the start of an output line is encoded (=2E, =46rom)
 * so that no relay alters the line and breaks the S/MIME signature. */
void mime_qp_encode(struct buf *out, const char *text, size_t n);

#endif
