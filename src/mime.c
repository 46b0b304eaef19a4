/* mime.c: the bytes of an Internet message (see mime.h): address and header
 * value checks, RFC 2047 encoded words with folding, quoted-printable text
 * parts, base64 attachments with RFC 2231 filenames, random boundaries.
 * Checks fill a field error and return -1 (422); writers refuse (-1, nothing
 * useful written) any value the checks would refuse, so no CR, LF or NUL
 * from a value can ever start a header line of its own. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/mime.h"

#define LINE_MAX_SOFT 78      /* RFC 5322 §2.1.1 SHOULD */
#define EW_MAX 75             /* RFC 2047 §2: an encoded word */
#define QP_LINE 76            /* RFC 2045 §6.7 (5) */
#define HEADER_VALUE_MAX 16384 /* writers' own sanity limit; callers check tighter */
#define FILENAME_MAX_BYTES 255

/* ---- UTF-8 and character classes. */

static int is_printable_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7E)
			return 0;
	return 1;
}

/* RFC 5322 atext. */
static int is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* ---- Checks (submission time). */

static int addr_fail(struct selo_err *err, const char *field, const char *why)
{
	err_field(err, field, "%s", why);
	return err_set(err, 422, "validation-failed", "%s: %s", field, why);
}

static int local_part_check(const char *local, size_t n, const char *field, struct selo_err *err)
{
	if (n == 0)
		return addr_fail(err, field, "the part before '@' is empty");
	if (n > 64)
		return addr_fail(err, field, "the part before '@' is longer than 64 characters");
	if (local[0] == '"')
		return addr_fail(err, field, "quoted local parts (\"...\"@domain) are not supported");
	if (local[0] == '.' || local[n - 1] == '.')
		return addr_fail(err, field, "the part before '@' may not start or end with '.'");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)local[i];
		if (c == '.' && local[i + 1] == '.')
			return addr_fail(err, field, "the part before '@' may not contain '..'");
		if (c != '.' && !is_atext(c))
			return addr_fail(err, field, "the part before '@' has a character not allowed in an address");
	}
	return 0;
}

static int domain_check(const char *dom, size_t n, const char *field, struct selo_err *err)
{
	if (n == 0)
		return addr_fail(err, field, "the domain after '@' is empty");
	if (dom[0] == '[')
		return addr_fail(err, field, "IP address literals ([...]) are not accepted; use a domain name");
	size_t labels = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && dom[i] != '.') {
			if (!is_ldh((unsigned char)dom[i]))
				return addr_fail(err, field, "the domain may only contain letters, digits, '-' and '.'");
			continue;
		}
		size_t len = i - start;
		if (len == 0)
			return addr_fail(err, field, "the domain has an empty label (\"..\" or a leading/trailing '.')");
		if (len > 63)
			return addr_fail(err, field, "a domain label is longer than 63 characters");
		if (dom[start] == '-' || dom[i - 1] == '-')
			return addr_fail(err, field, "a domain label may not start or end with '-'");
		labels++;
		start = i + 1;
	}
	if (labels < 2)
		return addr_fail(err, field, "the domain needs at least two labels (e.g. example.com)");
	const char *tld = strrchr(dom, '.') + 1;
	int numeric = 1;
	for (const char *p = tld; p < dom + n; p++)
		if (*p < '0' || *p > '9')
			numeric = 0;
	if (numeric)
		return addr_fail(err, field, "the top-level domain may not be all digits (IP addresses are not accepted)");
	return 0;
}

int mime_addr_check(const char *addr, const char *field, struct selo_err *err)
{
	if (!addr || !*addr)
		return addr_fail(err, field, "an e-mail address is required");
	if (addr[0] == '"')
		return addr_fail(err, field, "quoted local parts (\"...\"@domain) are not supported");
	size_t n = strlen(addr);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c >= 0x80)
			return addr_fail(err, field, "only ASCII addresses are supported (internationalised addresses, SMTPUTF8, are not)");
		if (c <= 0x20 || c == 0x7F)
			return addr_fail(err, field, "the address contains a space, line break or control character");
	}
	if (n > 254)
		return addr_fail(err, field, "the address is longer than 254 characters");
	const char *at = strchr(addr, '@');
	if (!at)
		return addr_fail(err, field, "the address has no '@'");
	if (strchr(at + 1, '@'))
		return addr_fail(err, field, "the address has more than one '@'");
	if (local_part_check(addr, (size_t)(at - addr), field, err) < 0)
		return -1;
	return domain_check(at + 1, n - (size_t)(at - addr) - 1, field, err);
}

/* What a header text may not hold, besides invalid UTF-8: controls break a
 * header line or hide text, the separators are line breaks to some
 * readers, and the bidirectional embeddings, overrides and isolates make
 * a name or subject display as something else than its characters (a
 * "Maria" that reads backwards, an extension moved, Trojan Source).
 * The implicit marks U+200E, U+200F and U+061C stay: they only settle
 * the direction of what is next to them, as right-to-left names need. */
static const struct {
	uint32_t lo, hi;
	const char *what;
} TEXT_REFUSED[] = {
	{0x0000, 0x001F, "a control character"},
	{0x007F, 0x009F, "a control character"},
	{0x2028, 0x2028, "LINE SEPARATOR"},
	{0x2029, 0x2029, "PARAGRAPH SEPARATOR"},
	{0x202A, 0x202A, "LEFT-TO-RIGHT EMBEDDING"},
	{0x202B, 0x202B, "RIGHT-TO-LEFT EMBEDDING"},
	{0x202C, 0x202C, "POP DIRECTIONAL FORMATTING"},
	{0x202D, 0x202D, "LEFT-TO-RIGHT OVERRIDE"},
	{0x202E, 0x202E, "RIGHT-TO-LEFT OVERRIDE"},
	{0x2066, 0x2066, "LEFT-TO-RIGHT ISOLATE"},
	{0x2067, 0x2067, "RIGHT-TO-LEFT ISOLATE"},
	{0x2068, 0x2068, "FIRST STRONG ISOLATE"},
	{0x2069, 0x2069, "POP DIRECTIONAL ISOLATE"},
};

const char *mime_text_refused(uint32_t cp)
{
	for (size_t i = 0; i < sizeof(TEXT_REFUSED) / sizeof(TEXT_REFUSED[0]); i++)
		if (cp >= TEXT_REFUSED[i].lo && cp <= TEXT_REFUSED[i].hi)
			return TEXT_REFUSED[i].what;
	return NULL;
}

int mime_header_text_check(const char *s, size_t max, const char *field, struct selo_err *err)
{
	if (!s)
		return addr_fail(err, field, "a value is required");
	size_t n = strlen(s);
	if (n > max) {
		err_field(err, field, "longer than %zu bytes", max);
		return err_set(err, 422, "validation-failed", "%s: longer than %zu bytes", field, max);
	}
	const uint8_t *p = (const uint8_t *)s;
	uint32_t cp;
	for (size_t i = 0, k; i < n; i += k) {
		char why[224];
		const char *what;
		if (!(k = utf8_decode(p + i, n - i, &cp))) {
			snprintf(why, sizeof(why), "not valid UTF-8 (byte %zu)", i);
			return addr_fail(err, field, why);
		}
		if (!(what = mime_text_refused(cp)))
			continue;
		/* Fits a field error's 224 bytes. */
		snprintf(why, sizeof(why),
			 "contains U+%04X (%s) at byte %zu; refused are the control characters "
			 "U+0000-U+001F and U+007F-U+009F, U+2028, U+2029 and the bidi controls "
			 "U+202A-U+202E, U+2066-U+2069", (unsigned)cp, what, i);
		return addr_fail(err, field, why);
	}
	return 0;
}

int mime_content_type_check(const char *ct, const char *field, struct selo_err *err)
{
	static const char tspecials[] = "()<>@,;:\\\"/[]?=";
	if (!ct || !*ct)
		return addr_fail(err, field, "a content type is required (e.g. application/pdf)");
	const char *slash = strchr(ct, '/');
	if (!slash || slash == ct || !slash[1] || strlen(ct) > 255)
		return addr_fail(err, field, "must be type/subtype, e.g. application/pdf (no parameters)");
	for (const char *p = ct; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (p == slash)
			continue;
		if (c <= 0x20 || c >= 0x7F || strchr(tspecials, c))
			return addr_fail(err, field, "must be type/subtype, e.g. application/pdf (no parameters)");
	}
	return 0;
}

/* A header field name (RFC 5322 ftext). */
static int header_name_ok(const char *name)
{
	if (!name || !*name)
		return 0;
	for (; *name; name++)
		if ((unsigned char)*name < 33 || (unsigned char)*name > 126 || *name == ':')
			return 0;
	return 1;
}

/* ---- RFC 2047 encoded words. */

/* Q characters safe in any position, including a phrase (RFC 2047 §5(3)). */
static int q_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_cost(unsigned char c)
{
	return (q_safe(c) || c == ' ') ? 1 : 3;
}

/* Q when it is no longer than B: readable, and short for Portuguese text. */
static int choose_q(const char *s, size_t n)
{
	size_t q = 0;
	for (size_t i = 0; i < n; i++)
		q += q_cost((unsigned char)s[i]);
	return q <= (n + 2) / 3 * 4;
}

static size_t ew_text_len(int q, const char *s, size_t n)
{
	if (!q)
		return (n + 2) / 3 * 4;
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += q_cost((unsigned char)s[i]);
	return len;
}

static void ew_put(struct buf *out, int q, const char *s, size_t n)
{
	static const char HEX[] = "0123456789ABCDEF";
	buf_puts(out, q ? "=?UTF-8?Q?" : "=?UTF-8?B?");
	if (!q)
		base64_encode(out, (const uint8_t *)s, n, 0);
	for (size_t i = 0; q && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ')
			buf_putc(out, '_');
		else if (q_safe(c))
			buf_putc(out, (char)c);
		else {
			char e[3] = {'=', HEX[c >> 4], HEX[c & 15]};
			buf_append(out, e, 3);
		}
	}
	buf_puts(out, "?=");
}

/* Bytes of s (whole UTF-8 characters) that fit in an encoded word of at
 * most room characters; 0 if not even one character fits. */
static size_t ew_take(int q, const char *s, size_t n, size_t room)
{
	if (room <= 12)
		return 0;
	size_t take = 0;
	uint32_t cp;
	while (take < n) {
		size_t k = utf8_decode((const uint8_t *)s + take, n - take, &cp);
		if (!k)
			k = 1; /* callers validated; never loop forever */
		if (12 + ew_text_len(q, s, take + k) > room)
			break;
		take += k;
	}
	return take;
}

/* take, shortened to end just after a space in its second half when the
 * word does not take all n bytes. */
static size_t split_at_space(const char *s, size_t n, size_t take)
{
	if (take == 0 || take >= n)
		return take;
	for (size_t k = take; k > take / 2; k--)
		if (s[k - 1] == ' ')
			return k;
	return take;
}

/* Writes s as encoded words separated by folding white space. *col is the
 * current column; each word goes on the current line when it fits within
 * limit, else on a new line; every word is preceded by one space (the
 * folding white space that decoders drop between adjacent words). phrase:
 * split after a space when one is near, since some decoders (Python's
 * email) wrongly keep a space between adjacent words in a display name, and
 * an extra space is better than a word cut in two. */
static void ew_write(struct buf *out, const char *s, size_t n, size_t *col, size_t limit, int q,
		     int phrase)
{
	size_t i = 0;
	while (i < n) {
		size_t room = limit > *col + 1 ? limit - *col - 1 : 0;
		if (room > EW_MAX)
			room = EW_MAX;
		size_t take = ew_take(q, s + i, n - i, room);
		if (phrase)
			take = split_at_space(s + i, n - i, take);
		if (take == 0) {
			buf_puts(out, "\r\n");
			*col = 0;
			room = limit - 1 < EW_MAX ? limit - 1 : EW_MAX;
			take = ew_take(q, s + i, n - i, room);
			if (phrase)
				take = split_at_space(s + i, n - i, take);
			if (take == 0) /* cannot happen for valid UTF-8 */
				take = 1;
		}
		buf_putc(out, ' ');
		size_t before = out->len;
		ew_put(out, q, s + i, take);
		*col += 1 + (out->len - before);
		i += take;
	}
}

/* ---- Headers. */

/* A printable-ASCII value we can write as is and still read back exactly:
 * no leading/trailing or doubled spaces (folding and unfolding would not
 * keep them), nothing that looks like an encoded word, and no word too
 * long to fold within 78 columns. */
static int plain_ok(const char *name, const char *v)
{
	size_t n = strlen(v);
	if (!is_printable_ascii(v) || strstr(v, "=?"))
		return 0;
	if (n && (v[0] == ' ' || v[n - 1] == ' ' || strstr(v, "  ")))
		return 0;
	size_t first = strlen(name) + 2; /* "Name: " */
	size_t w = 0, wi = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != ' ') {
			w++;
			continue;
		}
		size_t need = (wi == 0 ? first : 1) + w;
		if (need > LINE_MAX_SOFT)
			return 0;
		w = 0;
		wi++;
	}
	return 1;
}

static void write_plain_folded(struct buf *out, const char *v, size_t col)
{
	const char *p = v;
	int first = 1;
	while (*p) {
		const char *sp = strchr(p, ' ');
		size_t w = sp ? (size_t)(sp - p) : strlen(p);
		if (!first && col + 1 + w > LINE_MAX_SOFT) {
			buf_puts(out, "\r\n");
			col = 0;
		}
		if (!first) {
			buf_putc(out, ' ');
			col++;
		}
		buf_append(out, p, w);
		col += w;
		first = 0;
		p += w;
		if (*p == ' ')
			p++;
	}
}

int mime_write_header(struct buf *out, const char *name, const char *value)
{
	if (!header_name_ok(name) || mime_header_text_check(value, HEADER_VALUE_MAX, "header", NULL) < 0)
		return -1;
	buf_printf(out, "%s:", name);
	size_t col = strlen(name) + 1;
	if (plain_ok(name, value)) {
		buf_putc(out, ' ');
		write_plain_folded(out, value, col + 1);
	} else {
		size_t n = strlen(value);
		ew_write(out, value, n, &col, LINE_MAX_SOFT, choose_q(value, n), 0);
	}
	buf_puts(out, "\r\n");
	return 0;
}

/* Display names that can be a quoted-string: printable ASCII with no "=?"
 * (some readers decode encoded words even inside quotes). */
static void write_quoted_n(struct buf *out, const char *s, size_t n)
{
	buf_putc(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_putc(out, '\\');
		buf_putc(out, s[i]);
	}
	buf_putc(out, '"');
}

static void write_quoted(struct buf *out, const char *s)
{
	write_quoted_n(out, s, strlen(s));
}

static size_t quoted_len(const char *s)
{
	size_t n = 2;
	for (; *s; s++)
		n += (*s == '"' || *s == '\\') ? 2 : 1;
	return n;
}

/* Word classes of a display name written as an RFC 5322 phrase. */
enum word_kind { W_ATOM, W_QUOTED, W_ENCODED };

static enum word_kind word_kind(const char *w, size_t n)
{
	int atom = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w[i];
		if (c < 0x20 || c > 0x7E)
			return W_ENCODED;
		if (c == '=' && i + 1 < n && w[i + 1] == '?')
			return W_ENCODED; /* would read as an encoded word */
		if (!is_atext(c))
			atom = 0;
	}
	return atom ? W_ATOM : W_QUOTED;
}

/* Places a token of len characters: on this line if it fits, else on a
 * new one; always after one space. */
static void phrase_space(struct buf *out, size_t *col, size_t len)
{
	if (*col + 1 + len > LINE_MAX_SOFT) {
		buf_puts(out, "\r\n");
		*col = 0;
	}
	buf_putc(out, ' ');
	(*col)++;
}

/* The display name word by word: atoms as they are, other ASCII words
 * quoted, runs of words with other characters as encoded words. Readable,
 * and ASCII words never depend on a decoder's handling of encoded words.
 * Names with leading, trailing or doubled spaces are encoded whole, which
 * keeps every space. */
static void write_phrase(struct buf *out, const char *d, size_t *col)
{
	size_t n = strlen(d);
	if (n == 0 || d[0] == ' ' || d[n - 1] == ' ' || strstr(d, "  ")) {
		ew_write(out, d, n, col, LINE_MAX_SOFT, choose_q(d, n), 1);
		return;
	}
	size_t i = 0;
	while (i < n) {
		size_t e = i + strcspn(d + i, " ");
		enum word_kind k = word_kind(d + i, e - i);
		if (k == W_ENCODED) {
			/* extend the run over following words that need encoding */
			while (e < n) {
				size_t e2 = e + 1 + strcspn(d + e + 1, " ");
				if (word_kind(d + e + 1, e2 - e - 1) != W_ENCODED)
					break;
				e = e2;
			}
			ew_write(out, d + i, e - i, col, LINE_MAX_SOFT, choose_q(d + i, e - i), 1);
		} else {
			struct buf w = BUF_INIT;
			if (k == W_ATOM)
				buf_append(&w, d + i, e - i);
			else
				write_quoted_n(&w, d + i, e - i);
			phrase_space(out, col, w.len);
			buf_append(out, w.data, w.len);
			*col += w.len;
			buf_free(&w);
		}
		i = e < n ? e + 1 : n;
	}
}

int mime_write_address(struct buf *out, const char *name, const char *display, const char *addr)
{
	if (!header_name_ok(name) || mime_addr_check(addr, "address", NULL) < 0)
		return -1;
	if (display && mime_header_text_check(display, HEADER_VALUE_MAX, "display", NULL) < 0)
		return -1;
	buf_printf(out, "%s:", name);
	size_t col = strlen(name) + 1;
	if (!display || !*display) {
		buf_printf(out, " %s\r\n", addr);
		return 0;
	}
	/* the common case: one quoted-string, as every client writes it */
	if (is_printable_ascii(display) && !strstr(display, "=?") &&
	    col + 1 + quoted_len(display) <= LINE_MAX_SOFT) {
		buf_putc(out, ' ');
		write_quoted(out, display);
		col += 1 + quoted_len(display);
	} else {
		write_phrase(out, display, &col);
	}
	if (col + 3 + strlen(addr) > LINE_MAX_SOFT)
		buf_puts(out, "\r\n");
	buf_printf(out, " <%s>\r\n", addr);
	return 0;
}

/* ---- Boundaries. */

void mime_boundary(char out[48])
{
	/* "=_" cannot occur in QP (after '=' come two hex digits or CRLF) nor in
	 * base64 (where '=' is only final padding), so no body line can ever
	 * match the boundary. 25 random bytes give 33 symbols: 7 + 33 = 40. */
	uint8_t rnd[25];
	struct buf b = BUF_INIT;
	random_bytes(rnd, sizeof(rnd));
	base64url_encode(&b, rnd, sizeof(rnd));
	memcpy(out, "=_selo_", 7);
	memcpy(out + 7, b.data, 33);
	out[40] = '\0';
	buf_free(&b);
}

/* ---- Quoted-printable (RFC 2045 §6.7). */

/* The encoder writes into space reserved once for the worst case (every
 * byte as =XX, a soft break after every 25 of those, a hard break's CRLF
 * for every LF): it ran per character through buf_append before, and was
 * the largest per-byte cost of composing a message. */
struct qp {
	char *w;    /* the next byte to write */
	size_t col; /* the output line's length so far */
};

/* Emits one encoded unit (1 or 3 characters), breaking the line softly
 * first when it would pass 76 columns with the '='. */
static void qp_unit(struct qp *q, const char *u, size_t n, int last_on_line)
{
	size_t limit = last_on_line ? QP_LINE : QP_LINE - 1;
	if (q->col + n > limit) {
		memcpy(q->w, "=\r\n", 3);
		q->w += 3;
		q->col = 0;
	}
	memcpy(q->w, u, n);
	q->w += n;
	q->col += n;
}

static void qp_hex(char u[3], unsigned char c)
{
	static const char HEX[] = "0123456789ABCDEF";
	u[0] = '=';
	u[1] = HEX[c >> 4];
	u[2] = HEX[c & 15];
}

/* One line (without its line break). Whitespace before the line end is
 * encoded; so are '.' and "From " at the start of an output line, which
 * some relays alter (and an altered byte breaks the S/MIME signature). */
static int qp_plain(unsigned char c)
{
	return (c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t';
}

/* How many bytes from s[i] go out as they are, at once: plain bytes, not
 * the line's last (trailing whitespace is encoded), on an output line
 * already begun (its start has the '.' / "From " rule) and without
 * reaching the column where qp_unit would break it. */
static size_t qp_run(const struct qp *q, const char *s, size_t i, size_t n)
{
	if (q->col == 0 || q->col >= QP_LINE - 1)
		return 0;
	size_t room = QP_LINE - 1 - q->col, k = 0;
	while (k < room && i + k + 1 < n && qp_plain((unsigned char)s[i + k]))
		k++;
	return k;
}

static void qp_line(struct qp *q, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t run = qp_run(q, s, i, n);
		if (run) {
			memcpy(q->w, s + i, run);
			q->w += run;
			q->col += run;
			i += run - 1;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		int last = (i + 1 == n);
		char u[3];
		size_t un = 1;
		u[0] = (char)c;
		int literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
		if (!literal)
			qp_hex(u, c), un = 3;
		/* the unit may land at column 0 after a soft break: decide after */
		size_t limit = last ? QP_LINE : QP_LINE - 1;
		int at_start = q->col == 0 || q->col + un > limit;
		if (un == 1 && at_start &&
		    (c == '.' || (c == 'F' && n - i >= 5 && memcmp(s + i, "From ", 5) == 0)))
			qp_hex(u, c), un = 3;
		qp_unit(q, u, un, last);
	}
}

void mime_qp_encode(struct buf *out, const char *text, size_t n)
{
	/* 3 per byte, 3 more per 25 encoded bytes (a soft break at most every
	 * 75 columns), 2 per hard break (LF becomes CRLF; 1 byte already counted) */
	buf_reserve(out, n * 3 + (n / 25 + 1) * 3 + n + 16);
	struct qp q = {out->data + out->len, 0};
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && text[i] != '\n')
			continue;
		size_t end = i;
		if (i < n && end > start && text[end - 1] == '\r')
			end--; /* CRLF and LF are both one hard break */
		qp_line(&q, text + start, end - start);
		if (i < n) {
			memcpy(q.w, "\r\n", 2);
			q.w += 2;
			q.col = 0;
		}
		start = i + 1;
	}
	out->len = (size_t)(q.w - out->data);
	out->data[out->len] = '\0';
}

void mime_write_text_part(struct buf *out, const char *subtype, const char *text, size_t n)
{
	buf_printf(out,
		   "Content-Type: text/%s; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
		   subtype);
	mime_qp_encode(out, text, n);
}

/* ---- Attachments. */

/* RFC 2231 attribute-char: token characters other than '*', '\'', '%'. */
static int attr_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7F)
		return 0;
	return !strchr("*'%()<>@,;:\\\"/[]?=", c);
}

/* ; param="value" for a filename, on its own line. ASCII values are a
 * quoted-string; others are RFC 2047 words inside the quotes (not standard,
 * but what older clients read), folded between words. */
static void write_name_param(struct buf *out, const char *param, const char *fn)
{
	buf_printf(out, ";\r\n %s=", param);
	if (is_printable_ascii(fn) && !strstr(fn, "=?")) {
		write_quoted(out, fn);
		return;
	}
	size_t n = strlen(fn), col = 1 + strlen(param) + 2, i = 0; /* ' name="' */
	int q = choose_q(fn, n), sep = 0;
	buf_putc(out, '"');
	while (i < n) {
		size_t used = col + 1 + (size_t)sep; /* keep room for the closing '"' */
		size_t room = used < LINE_MAX_SOFT ? LINE_MAX_SOFT - used : 0;
		size_t take = ew_take(q, fn + i, n - i, room > EW_MAX ? EW_MAX : room);
		if (take == 0) {
			buf_puts(out, "\r\n ");
			col = 1;
			sep = 0;
			continue;
		}
		if (sep) {
			buf_putc(out, ' ');
			col++;
		}
		size_t before = out->len;
		ew_put(out, q, fn + i, take);
		col += out->len - before;
		i += take;
		sep = 1;
	}
	buf_putc(out, '"');
}

static void write_2231_param(struct buf *out, const char *param, const char *fn)
{
	static const char HEX[] = "0123456789ABCDEF";
	buf_printf(out, ";\r\n %s*=UTF-8''", param);
	for (const unsigned char *p = (const unsigned char *)fn; *p; p++) {
		if (attr_char(*p)) {
			buf_putc(out, (char)*p);
			continue;
		}
		char e[3] = {'%', HEX[*p >> 4], HEX[*p & 15]};
		buf_append(out, e, 3);
	}
}

int mime_write_attachment(struct buf *out, const char *content_type, const char *filename,
			  const uint8_t *data, size_t n)
{
	if (mime_content_type_check(content_type, "content_type", NULL) < 0)
		return -1;
	if (mime_header_text_check(filename, FILENAME_MAX_BYTES, "filename", NULL) < 0 || !*filename)
		return -1;
	buf_printf(out, "Content-Type: %s", content_type);
	write_name_param(out, "name", filename);
	buf_puts(out, "\r\nContent-Disposition: attachment");
	write_name_param(out, "filename", filename);
	if (!is_printable_ascii(filename) || strstr(filename, "=?"))
		write_2231_param(out, "filename", filename);
	buf_puts(out, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	base64_encode(out, data, n, 76);
	return 0;
}
