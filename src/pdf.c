/* pdf.c: the PDF bytes Selo adds and reads back (pdf.h, docs/receipt-pdf.md).
 *   pdf_finish         appends one incremental update (ISO 32000-1 7.5.6) to
 *                      a PDF cairo wrote: embedded files, a signature field
 *                      on page 1, a PAdES signature over the whole file but
 *                      its /Contents
 *   pdf_embedded_file  copies an embedded file out of any PDF, untrusted
 *   pdf_signature_check  whether a valid signature covers the whole file
 * Both read PDF syntax through one small parser: a value is a span of the
 * input (never copied into a tree), every offset is checked before use, and
 * nesting, reference chains, cross-reference sections, tree nodes and the
 * bytes lexed in all are capped, so any input costs at most a fixed
 * multiple of its size. Errors: 422 "invalid-pdf" naming the first problem
 * found, 404 "not-found" for a PDF without the file asked for, 500 for our
 * own failures (a bad argument, signing, a signature too large for the
 * room reserved), or the TSA's error. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/pdf.h"

#define MAX_DEPTH 32            /* arrays and dictionaries inside each other */
#define MAX_REF_CHAIN 8         /* an object whose value is again a reference */
#define MAX_SECTIONS 64         /* cross-reference sections followed by /Prev */
#define MAX_TREE_NODES 4096     /* page tree or name tree nodes visited */
#define MAX_OBJNUM 8388607u     /* ISO 32000-1 C.2: the largest object number */
#define MAX_XREF_ENTRIES (1u << 21)
#define MAX_ATTACHMENTS 16
#define NAME_MAX_BYTES 4096     /* longest file name decoded */
/* Room for the CMS in /Contents: the signer's certificate and chain, the
 * signature and the TSA's token (with its certificate) take about 4 KiB
 * with Selo's keys; 16 KiB leaves room for a real CA chain. */
#define SIG_RESERVE 16384
#define BYTERANGE_WIDTH 40      /* "[0 a b c]" and spaces, patched in place */

struct span {
	size_t b, e; /* [b, e) in the input */
};

struct xent {
	uint32_t num;
	uint16_t gen;
	uint8_t in_use;
	size_t off;
	size_t order; /* smaller wins: the newest section, the last definition */
};

struct doc {
	const uint8_t *p;
	size_t len;
	struct xent *x; /* from the cross-reference chain, one per number, sorted */
	size_t nx, xcap;
	struct xent *s; /* from scanning for "N G obj" (reader only) */
	size_t ns, scap;
	int xref_ok;
	int scan_ok;    /* reader: fall back to scanning; writer: strict */
	int scanned;
	struct span trailer; /* the newest trailer dictionary */
	size_t startxref;
	uint64_t work, work_max;
	char why[200];  /* the first problem found */
};

/* ---- lexing ----------------------------------------------------------- */

static int is_ws(uint8_t c)
{
	return c == 0 || c == 9 || c == 10 || c == 12 || c == 13 || c == 32;
}

static int is_delim(uint8_t c)
{
	return c == '(' || c == ')' || c == '<' || c == '>' || c == '[' || c == ']' || c == '{' ||
	       c == '}' || c == '/' || c == '%';
}

static int is_regular(uint8_t c)
{
	return !is_ws(c) && !is_delim(c);
}

static int fail(struct doc *d, const char *why)
{
	if (!d->why[0])
		snprintf(d->why, sizeof(d->why), "%s", why);
	return -1;
}

/* Every byte lexed is counted; past the budget every step fails, which
 * bounds the work of an input made to be re-read over and over. */
static int over(struct doc *d)
{
	return d->work > d->work_max ? fail(d, "it is too complex to read") : 0;
}

static size_t skip_ws(struct doc *d, size_t i)
{
	size_t s = i;
	while (i < d->len) {
		uint8_t c = d->p[i];
		if (is_ws(c)) {
			i++;
		} else if (c == '%') {
			while (i < d->len && d->p[i] != '\n' && d->p[i] != '\r')
				i++;
		} else {
			break;
		}
	}
	d->work += i - s;
	return i;
}

static size_t tok_end(struct doc *d, size_t i)
{
	size_t s = i;
	while (i < d->len && is_regular(d->p[i]))
		i++;
	d->work += i - s + 1;
	return i;
}

/* The keyword kw at i, as a whole token. */
static int kw_at(const struct doc *d, size_t i, const char *kw)
{
	size_t n = strlen(kw);
	return i <= d->len && d->len - i >= n && memcmp(d->p + i, kw, n) == 0 &&
	       (i + n == d->len || !is_regular(d->p[i + n]));
}

/* An unsigned integer token of 1 to maxd digits at i. */
static int uint_tok(struct doc *d, size_t i, size_t *end, uint64_t *v, int maxd)
{
	size_t e = tok_end(d, i);
	if (e == i || e - i > (size_t)maxd)
		return -1;
	uint64_t x = 0;
	for (size_t k = i; k < e; k++) {
		if (!isdigit(d->p[k]))
			return -1;
		x = x * 10 + (uint64_t)(d->p[k] - '0');
	}
	*end = e;
	*v = x;
	return 0;
}

static int is_number(const uint8_t *p, size_t n)
{
	size_t i = 0, digits = 0, dots = 0;
	if (n && (p[0] == '+' || p[0] == '-'))
		i++;
	for (; i < n; i++) {
		if (isdigit(p[i]))
			digits++;
		else if (p[i] == '.' && !dots)
			dots++;
		else
			return 0;
	}
	return digits > 0;
}

/* ---- values ------------------------------------------------------------ */

static int parse_value(struct doc *d, size_t i, int depth, struct span *out);

static int parse_dict(struct doc *d, size_t i, int depth, struct span *out)
{
	size_t j = i + 2;
	for (;;) {
		j = skip_ws(d, j);
		if (over(d) != 0)
			return -1;
		if (j + 1 < d->len && d->p[j] == '>' && d->p[j + 1] == '>') {
			*out = (struct span){i, j + 2};
			return 0;
		}
		if (j >= d->len || d->p[j] != '/')
			return fail(d, "a dictionary key is not a name (or the dictionary is cut short)");
		struct span v;
		if (parse_value(d, tok_end(d, j + 1), depth + 1, &v) != 0)
			return -1;
		j = v.e;
	}
}

static int parse_array(struct doc *d, size_t i, int depth, struct span *out)
{
	size_t j = i + 1;
	for (;;) {
		j = skip_ws(d, j);
		if (over(d) != 0)
			return -1;
		if (j < d->len && d->p[j] == ']') {
			*out = (struct span){i, j + 1};
			return 0;
		}
		struct span v;
		if (parse_value(d, j, depth + 1, &v) != 0)
			return -1;
		j = v.e;
	}
}

static int parse_literal(struct doc *d, size_t i, struct span *out)
{
	size_t nest = 0;
	for (size_t j = i; j < d->len; j++) {
		uint8_t c = d->p[j];
		if (c == '\\') {
			j++;
		} else if (c == '(') {
			nest++;
		} else if (c == ')' && --nest == 0) {
			d->work += j + 1 - i;
			*out = (struct span){i, j + 1};
			return 0;
		}
	}
	d->work += d->len - i;
	return fail(d, "a string is not closed");
}

static int parse_hex(struct doc *d, size_t i, struct span *out)
{
	for (size_t j = i + 1; j < d->len; j++) {
		uint8_t c = d->p[j];
		if (c == '>') {
			d->work += j + 1 - i;
			*out = (struct span){i, j + 1};
			return 0;
		}
		if (!isxdigit(c) && !is_ws(c))
			break;
	}
	return fail(d, "a hex string is malformed");
}

/* A number, true/false/null, or "N G R" as one value. */
static int parse_token(struct doc *d, size_t i, struct span *out)
{
	size_t e = tok_end(d, i), e2, e3, k;
	uint64_t num, gen;
	if (e == i)
		return fail(d, "an unexpected character where a value should be");
	if (uint_tok(d, i, &e2, &num, 10) == 0 && uint_tok(d, skip_ws(d, e), &e3, &gen, 5) == 0 &&
	    (k = skip_ws(d, e3)) < d->len && d->p[k] == 'R' &&
	    (k + 1 == d->len || !is_regular(d->p[k + 1]))) {
		*out = (struct span){i, k + 1};
		return 0;
	}
	if (!is_number(d->p + i, e - i) && !kw_at(d, i, "true") && !kw_at(d, i, "false") &&
	    !kw_at(d, i, "null"))
		return fail(d, "a keyword where a value should be (an object cut short?)");
	*out = (struct span){i, e};
	return 0;
}

/* One direct value starting at i (after white space and comments). */
static int parse_value(struct doc *d, size_t i, int depth, struct span *out)
{
	*out = (struct span){i, i};
	i = skip_ws(d, i);
	if (over(d) != 0)
		return -1;
	if (i >= d->len)
		return fail(d, "it ends in the middle of a value");
	if (depth > MAX_DEPTH)
		return fail(d, "arrays or dictionaries are nested too deeply");
	switch (d->p[i]) {
	case '<':
		if (i + 1 < d->len && d->p[i + 1] == '<')
			return parse_dict(d, i, depth, out);
		return parse_hex(d, i, out);
	case '[':
		return parse_array(d, i, depth, out);
	case '(':
		return parse_literal(d, i, out);
	case '/':
		*out = (struct span){i, tok_end(d, i + 1)};
		return 0;
	case ')': case '>': case ']': case '{': case '}':
		return fail(d, "an unexpected delimiter where a value should be");
	default:
		return parse_token(d, i, out);
	}
}

static int is_dict(const struct doc *d, struct span s)
{
	return s.e - s.b >= 4 && d->p[s.b] == '<' && d->p[s.b + 1] == '<';
}

static int is_array(const struct doc *d, struct span s)
{
	return s.e > s.b && d->p[s.b] == '[';
}

static int is_string(const struct doc *d, struct span s)
{
	return s.e > s.b && (d->p[s.b] == '(' || (d->p[s.b] == '<' && !is_dict(d, s)));
}

static int is_null(const struct doc *d, struct span s)
{
	return s.e - s.b == 4 && memcmp(d->p + s.b, "null", 4) == 0;
}

/* "N G R": its number and generation. */
static int span_ref(struct doc *d, struct span s, uint32_t *num, uint16_t *gen)
{
	size_t e, e2;
	uint64_t n, g;
	if (s.e <= s.b || d->p[s.e - 1] != 'R' || !isdigit(d->p[s.b]) ||
	    uint_tok(d, s.b, &e, &n, 10) != 0 || uint_tok(d, skip_ws(d, e), &e2, &g, 5) != 0 ||
	    n > MAX_OBJNUM || g > 65535)
		return 0;
	*num = (uint32_t)n;
	*gen = (uint16_t)g;
	return 1;
}

static int span_int(const struct doc *d, struct span s, int64_t *v)
{
	size_t i = s.b;
	int neg = 0;
	if (i < s.e && (d->p[i] == '+' || d->p[i] == '-'))
		neg = d->p[i++] == '-';
	if (i == s.e || s.e - i > 18)
		return -1;
	int64_t x = 0;
	for (; i < s.e; i++) {
		if (!isdigit(d->p[i]))
			return -1;
		x = x * 10 + (d->p[i] - '0');
	}
	*v = neg ? -x : x;
	return 0;
}

/* The name s (with its #XX escapes decoded) is want. */
static int name_is(const struct doc *d, struct span s, const char *want)
{
	if (s.e <= s.b || d->p[s.b] != '/')
		return 0;
	size_t i = s.b + 1;
	for (; *want; want++) {
		if (i >= s.e)
			return 0;
		int c = d->p[i];
		if (c == '#' && i + 2 < s.e && isxdigit(d->p[i + 1]) && isxdigit(d->p[i + 2])) {
			c = hex_digit_value(d->p[i + 1]) * 16 + hex_digit_value(d->p[i + 2]);
			i += 3;
		} else {
			i++;
		}
		if (c != (uint8_t)*want)
			return 0;
	}
	return i == s.e;
}

/* Next key and value of a dictionary span; *it starts at dict.b + 2.
 * 1, 0 at the end, -1 on a malformed entry. */
static int dict_next(struct doc *d, struct span dict, size_t *it, struct span *k, struct span *v)
{
	size_t j = skip_ws(d, *it);
	if (j + 2 >= dict.e)
		return 0;
	if (d->p[j] != '/')
		return fail(d, "a dictionary key is not a name");
	*k = (struct span){j, tok_end(d, j + 1)};
	if (parse_value(d, k->e, 1, v) != 0)
		return -1;
	*it = v->e;
	return 1;
}

/* 1 and the value of key in dict, 0 when dict has no such key, -1. */
static int dict_get(struct doc *d, struct span dict, const char *key, struct span *val)
{
	*val = (struct span){0, 0};
	if (!is_dict(d, dict))
		return 0;
	size_t it = dict.b + 2;
	struct span k = {0, 0}, v = {0, 0};
	int r;
	while ((r = dict_next(d, dict, &it, &k, &v)) == 1) {
		if (name_is(d, k, key)) {
			*val = v;
			return 1;
		}
	}
	return r;
}

/* Next element of an array span; *it starts at arr.b + 1. */
static int array_next(struct doc *d, struct span arr, size_t *it, struct span *v)
{
	size_t j = skip_ws(d, *it);
	if (j + 1 >= arr.e)
		return 0;
	if (parse_value(d, j, 1, v) != 0)
		return -1;
	*it = v->e;
	return 1;
}

/* ---- objects ----------------------------------------------------------- */

static int xent_cmp(const void *a, const void *b)
{
	const struct xent *x = a, *y = b;
	if (x->num != y->num)
		return x->num < y->num ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

/* Sorts by number and keeps, of each number, the entry that wins. */
static void index_finish(struct xent *x, size_t *n)
{
	if (*n == 0)
		return;
	qsort(x, *n, sizeof(*x), xent_cmp);
	size_t k = 0;
	for (size_t i = 0; i < *n; i++)
		if (k == 0 || x[k - 1].num != x[i].num)
			x[k++] = x[i];
	*n = k;
}

static const struct xent *index_find(const struct xent *x, size_t n, uint32_t num)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x[mid].num == num)
			return &x[mid];
		if (x[mid].num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int index_push(struct doc *d, struct xent **x, size_t *n, size_t *cap, struct xent e)
{
	if (*n >= MAX_XREF_ENTRIES)
		return fail(d, "it has too many objects");
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*x = xreallocarray(*x, *cap, sizeof(**x));
	}
	(*x)[(*n)++] = e;
	return 0;
}

/* "num gen obj" at off and the value after it; *after is where the value
 * ends (a stream's "stream" keyword follows). The writer also insists on
 * the generation the reference named. */
static int obj_at(struct doc *d, size_t off, uint32_t num, int gen, struct span *val,
		  size_t *after)
{
	size_t e, e2;
	uint64_t n, g;
	if (off >= d->len || uint_tok(d, off, &e, &n, 10) != 0 || n != num ||
	    uint_tok(d, skip_ws(d, e), &e2, &g, 5) != 0 || (gen >= 0 && g != (uint64_t)gen) ||
	    !kw_at(d, skip_ws(d, e2), "obj"))
		return fail(d, "a cross-reference offset does not point at its object");
	if (parse_value(d, skip_ws(d, e2) + 3, 0, val) != 0)
		return -1;
	*after = val->e;
	return 0;
}

static void scan_objects(struct doc *d);

/* The value of object num: 1, 0 when there is none (a free or missing
 * object is null), -1. */
static int obj_find(struct doc *d, uint32_t num, uint16_t gen, struct span *val, size_t *after)
{
	*val = (struct span){0, 0};
	*after = 0;
	const struct xent *x = index_find(d->x, d->nx, num);
	if (x && !x->in_use)
		return 0;
	if (!d->scan_ok)
		return !x ? 0 : obj_at(d, x->off, num, gen, val, after) == 0 ? 1 : -1;
	/* the reader: a wrong offset is not the end, scanning may find it */
	char why[sizeof(d->why)];
	memcpy(why, d->why, sizeof(why));
	if (x && obj_at(d, x->off, num, -1, val, after) == 0)
		return 1;
	memcpy(d->why, why, sizeof(why));
	if (over(d) != 0)
		return -1;
	if (!d->scanned)
		scan_objects(d);
	x = index_find(d->s, d->ns, num);
	if (!x)
		return 0;
	return obj_at(d, x->off, num, -1, val, after) == 0 ? 1 : -1;
}

/* v, or what the reference v leads to. 1 (a null value included), 0 when
 * the reference leads nowhere, -1. */
static int resolve(struct doc *d, struct span v, struct span *out)
{
	for (int k = 0; k <= MAX_REF_CHAIN; k++) {
		uint32_t num;
		uint16_t gen;
		size_t after;
		if (!span_ref(d, v, &num, &gen)) {
			*out = v;
			return 1;
		}
		int r = obj_find(d, num, gen, &v, &after);
		if (r <= 0)
			return r;
	}
	return fail(d, "references lead to references too many times (a loop?)");
}

/* dict's key, resolved: 1, 0 when absent, null or dangling, -1. */
static int get_resolved(struct doc *d, struct span dict, const char *key, struct span *out)
{
	struct span v;
	*out = (struct span){0, 0};
	int r = dict_get(d, dict, key, &v);
	if (r == 1)
		r = resolve(d, v, out);
	return r == 1 && is_null(d, *out) ? 0 : r;
}

/* ---- streams ----------------------------------------------------------- */

/* After a stream's dictionary: "stream" and its end of line (CRLF or LF,
 * 7.3.8.1); *data is the first byte of the data. */
static int stream_start(struct doc *d, size_t after, size_t *data)
{
	size_t i = skip_ws(d, after);
	if (!kw_at(d, i, "stream"))
		return fail(d, "an embedded file is not a stream");
	i += 6;
	if (i < d->len && d->p[i] == '\r')
		i++;
	if (i >= d->len || d->p[i] != '\n')
		return fail(d, "\"stream\" is not followed by an end of line");
	*data = i + 1;
	return 0;
}

static int endstream_at(struct doc *d, size_t i)
{
	return i <= d->len && kw_at(d, skip_ws(d, i), "endstream");
}

/* Scanning steps over a stream's data, so "N G obj" inside it is not
 * taken for an object: by a direct /Length that ends at "endstream", else
 * to the next "endstream". */
static size_t scan_past_stream(struct doc *d, struct span v)
{
	size_t data;
	struct span l;
	int64_t n;
	if (!is_dict(d, v) || !kw_at(d, skip_ws(d, v.e), "stream") ||
	    stream_start(d, v.e, &data) != 0)
		return v.e;
	if (dict_get(d, v, "Length", &l) == 1 && span_int(d, l, &n) == 0 && n >= 0 &&
	    (uint64_t)n <= d->len - data && endstream_at(d, data + (size_t)n))
		return data + (size_t)n;
	const uint8_t *q = memmem(d->p + data, d->len - data, "endstream", 9);
	d->work += q ? (size_t)(q - d->p) - data : d->len - data;
	return q ? (size_t)(q - d->p) + 9 : d->len;
}

/* "N G" right before the "obj" at k: *start is where N begins. */
static int obj_header_before(const struct doc *d, size_t k, uint32_t *num, size_t *start)
{
	size_t j = k, w = 0, ge, ne;
	while (j > 0 && is_ws(d->p[j - 1]) && w < 16)
		j--, w++;
	if (!w)
		return 0;
	for (ge = j; j > 0 && isdigit(d->p[j - 1]) && ge - j < 5;)
		j--;
	if (j == ge || (j > 0 && isdigit(d->p[j - 1])))
		return 0;
	for (w = 0; j > 0 && is_ws(d->p[j - 1]) && w < 16;)
		j--, w++;
	if (!w)
		return 0;
	for (ne = j; j > 0 && isdigit(d->p[j - 1]) && ne - j < 10;)
		j--;
	if (j == ne || (j > 0 && is_regular(d->p[j - 1])))
		return 0;
	uint64_t n = 0;
	for (size_t i = j; i < ne; i++)
		n = n * 10 + (uint64_t)(d->p[i] - '0');
	if (n > MAX_OBJNUM)
		return 0;
	*num = (uint32_t)n;
	*start = j;
	return 1;
}

/* The reader's fallback when the cross-reference chain is broken or does
 * not list an object: every "N G obj" in the file, the last one of each
 * number winning as it does after incremental updates. */
static void scan_objects(struct doc *d)
{
	char why[sizeof(d->why)];
	memcpy(why, d->why, sizeof(why));
	d->scanned = 1;
	size_t i = 0;
	while (i + 3 <= d->len && d->work <= d->work_max) {
		const uint8_t *q = memmem(d->p + i, d->len - i, "obj", 3);
		if (!q)
			break;
		size_t k = (size_t)(q - d->p), start;
		uint32_t num;
		d->work += k + 3 - i;
		i = k + 3;
		if ((i < d->len && is_regular(d->p[i])) || !obj_header_before(d, k, &num, &start))
			continue;
		struct xent e = {num, 0, 1, start, SIZE_MAX - start};
		if (index_push(d, &d->s, &d->ns, &d->scap, e) != 0)
			break;
		struct span v;
		if (parse_value(d, i, 0, &v) == 0)
			i = scan_past_stream(d, v);
	}
	index_finish(d->s, &d->ns);
	memcpy(d->why, why, sizeof(why));
}

/* ---- the cross-reference chain ---------------------------------------- */

static int startxref_find(struct doc *d, size_t *off)
{
	size_t from = d->len > 1024 ? d->len - 1024 : 0;
	const uint8_t *last = NULL, *q = d->p + from;
	while ((q = memmem(q, d->len - (size_t)(q - d->p), "startxref", 9)) != NULL) {
		last = q;
		q += 9;
	}
	size_t e;
	uint64_t v;
	if (!last)
		return fail(d, "it has no startxref at its end (is it cut short?)");
	if (uint_tok(d, skip_ws(d, (size_t)(last - d->p) + 9), &e, &v, 10) != 0 || v >= d->len)
		return fail(d, "its startxref is not an offset inside the file");
	*off = (size_t)v;
	return 0;
}

/* One subsection's entries: "offset gen n|f" each (7.5.4). */
static int xref_entries(struct doc *d, size_t *i, uint64_t start, uint64_t count, size_t order)
{
	for (uint64_t k = 0; k < count; k++) {
		size_t e, j;
		uint64_t off, gen;
		if (uint_tok(d, skip_ws(d, *i), &e, &off, 10) != 0 ||
		    uint_tok(d, skip_ws(d, e), &e, &gen, 5) != 0 || gen > 65535)
			return fail(d, "a cross-reference entry is malformed");
		j = skip_ws(d, e);
		if (!kw_at(d, j, "n") && !kw_at(d, j, "f"))
			return fail(d, "a cross-reference entry is neither n nor f");
		*i = j + 1;
		if (start + k == 0)
			continue; /* the head of the free list */
		struct xent x = {(uint32_t)(start + k), (uint16_t)gen, d->p[j] == 'n', (size_t)off,
				 order};
		if (index_push(d, &d->x, &d->nx, &d->xcap, x) != 0)
			return -1;
	}
	return 0;
}

/* The classic table at off and its trailer. */
static int xref_section(struct doc *d, size_t off, size_t order, struct span *trailer)
{
	size_t i = skip_ws(d, off);
	if (!kw_at(d, i, "xref"))
		return fail(d, "startxref does not point at a cross-reference table (cross-reference "
			       "streams are not read)");
	i += 4;
	for (;;) {
		size_t e;
		uint64_t start, count;
		i = skip_ws(d, i);
		if (over(d) != 0)
			return -1;
		if (kw_at(d, i, "trailer"))
			break;
		if (uint_tok(d, i, &e, &start, 10) != 0 ||
		    uint_tok(d, skip_ws(d, e), &e, &count, 10) != 0)
			return fail(d, "a cross-reference subsection header is malformed");
		if (start + count > (uint64_t)MAX_OBJNUM + 1 || count > (d->len - e) / 18)
			return fail(d, "a cross-reference subsection is larger than the file");
		i = e;
		if (xref_entries(d, &i, start, count, order) != 0)
			return -1;
	}
	if (parse_value(d, i + 7, 0, trailer) != 0 || !is_dict(d, *trailer))
		return fail(d, "its trailer is not a dictionary");
	return 0;
}

/* Follows startxref and each trailer's /Prev; the newest entry of each
 * object wins. */
static int xref_load(struct doc *d)
{
	size_t off = 0, seen[MAX_SECTIONS];
	if (startxref_find(d, &off) != 0)
		return -1;
	d->startxref = off;
	for (size_t n = 0;; n++) {
		for (size_t k = 0; k < n; k++)
			if (seen[k] == off)
				return fail(d, "its cross-reference sections form a loop");
		if (n == MAX_SECTIONS)
			return fail(d, "it has too many cross-reference sections");
		seen[n] = off;
		struct span tr, prev;
		if (xref_section(d, off, n, &tr) != 0)
			return -1;
		if (n == 0)
			d->trailer = tr;
		int r = dict_get(d, tr, "Prev", &prev);
		int64_t pv;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (span_int(d, prev, &pv) != 0 || pv < 0 || (uint64_t)pv >= d->len)
			return fail(d, "a trailer's /Prev is not an offset inside the file");
		off = (size_t)pv;
	}
	index_finish(d->x, &d->nx);
	d->xref_ok = 1;
	return 0;
}

static void doc_init(struct doc *d, const uint8_t *p, size_t len, int scan_ok)
{
	memset(d, 0, sizeof(*d));
	d->p = p;
	d->len = len;
	d->scan_ok = scan_ok;
	d->work_max = (uint64_t)len * 32 + (1u << 20);
}

static void doc_free(struct doc *d)
{
	free(d->x);
	free(d->s);
	d->x = d->s = NULL;
}

/* ---- strings ------------------------------------------------------------ */

/* The bytes of a literal or hex string (7.3.4), at most cap. */
static int string_bytes(const struct doc *d, struct span s, uint8_t *out, size_t cap, size_t *n)
{
	const uint8_t *p = d->p;
	size_t k = 0, i = s.b + 1, end = s.e - 1;
	if (p[s.b] == '<') {
		int half = -1;
		for (; i < end; i++) {
			if (is_ws(p[i]))
				continue;
			if (half < 0) {
				half = hex_digit_value(p[i]);
				continue;
			}
			if (k == cap)
				return -1;
			out[k++] = (uint8_t)(half * 16 + hex_digit_value(p[i]));
			half = -1;
		}
		if (half >= 0) {
			if (k == cap)
				return -1;
			out[k++] = (uint8_t)(half * 16);
		}
		*n = k;
		return 0;
	}
	while (i < end) {
		int c = p[i++];
		if (c == '\\' && i < end) {
			c = p[i++];
			switch (c) {
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case '\r':
				if (i < end && p[i] == '\n')
					i++;
				continue; /* a split line */
			case '\n':
				continue;
			default:
				if (c >= '0' && c <= '7') {
					c -= '0';
					for (int m = 0; m < 2 && i < end && p[i] >= '0' && p[i] <= '7'; m++)
						c = c * 8 + (p[i++] - '0');
					c &= 0xff;
				}
			}
		} else if (c == '\r') {
			c = '\n'; /* 7.3.4.2: an end of line in a string reads as LF */
			if (i < end && p[i] == '\n')
				i++;
		}
		if (k == cap)
			return -1;
		out[k++] = (uint8_t)c;
	}
	*n = k;
	return 0;
}

/* PDFDocEncoding 0x80..0xA0 (Annex D); 0 where it defines nothing. */
static const uint16_t PDFDOC_HIGH[33] = {
	0x2022, 0x2020, 0x2021, 0x2026, 0x2014, 0x2013, 0x0192, 0x2044, 0x2039, 0x203A, 0x2212,
	0x2030, 0x201E, 0x201C, 0x201D, 0x2018, 0x2019, 0x201A, 0x2122, 0xFB01, 0xFB02, 0x0141,
	0x0152, 0x0160, 0x0178, 0x017D, 0x0131, 0x0142, 0x0153, 0x0161, 0x017E, 0, 0x20AC};

/* Appends code point cp as UTF-8; controls become '_' so a name is safe to
 * print. -1 when out is full. */
static int put_cp(char *out, size_t cap, size_t *k, uint32_t cp)
{
	if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
		cp = '_';
	if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
		cp = 0xfffd;
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (*k + n >= cap)
		return -1;
	memcpy(out + *k, u, n);
	*k += n;
	out[*k] = '\0';
	return 0;
}

/* The code point at s[*i] (codec.h's strict step), moving *i past it; -1
 * when the bytes there are not one. */
static int pdf_utf8_next(const uint8_t *s, size_t n, size_t *i, uint32_t *cp)
{
	size_t k = utf8_decode(s + *i, n - *i, cp);
	if (!k)
		return -1;
	*i += k;
	return 0;
}

/* A text string (7.9.2.2: UTF-16BE with a BOM, UTF-8 with a BOM, or
 * PDFDocEncoding) as UTF-8 into out; -1 when it does not fit. */
static int text_utf8(const uint8_t *s, size_t n, char *out, size_t cap)
{
	size_t k = 0;
	out[0] = '\0';
	if (n >= 2 && s[0] == 0xfe && s[1] == 0xff) {
		for (size_t i = 2; i + 1 < n; i += 2) {
			uint32_t u = (uint32_t)s[i] << 8 | s[i + 1];
			if (u >= 0xd800 && u < 0xdc00 && i + 3 < n) {
				uint32_t lo = (uint32_t)s[i + 2] << 8 | s[i + 3];
				if (lo >= 0xdc00 && lo < 0xe000) {
					u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
					i += 2;
				}
			}
			if (put_cp(out, cap, &k, u) != 0)
				return -1;
		}
		return 0;
	}
	if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) {
		for (size_t i = 3; i < n;) {
			uint32_t cp;
			if (pdf_utf8_next(s, n, &i, &cp) != 0) {
				cp = 0xfffd;
				i++;
			}
			if (put_cp(out, cap, &k, cp) != 0)
				return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t cp = s[i];
		if (cp >= 0x80 && cp <= 0xa0)
			cp = PDFDOC_HIGH[cp - 0x80] ? PDFDOC_HIGH[cp - 0x80] : 0xfffd;
		else if (cp == 0xad)
			cp = 0xfffd;
		if (put_cp(out, cap, &k, cp) != 0)
			return -1;
	}
	return 0;
}

/* ---- reading: embedded files ------------------------------------------- */

struct want {
	const char *suffix;
	struct span stream;  /* the reference to the EmbeddedFile stream */
	char name[1024];
	int nodes;
};

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* A file specification whose /UF or /F ends with the suffix and that has
 * an embedded stream: 1 and w filled, 0, -1. */
static int filespec_match(struct doc *d, struct span v, struct want *w)
{
	static const char *const keys[] = {"UF", "F"};
	struct span fs, ef, s, st;
	int r = resolve(d, v, &fs);
	if (r <= 0 || !is_dict(d, fs))
		return r < 0 ? -1 : 0;
	for (int i = 0; i < 2; i++) {
		uint8_t raw[NAME_MAX_BYTES];
		char name[sizeof(w->name)];
		size_t n;
		r = get_resolved(d, fs, keys[i], &s);
		if (r < 0)
			return -1;
		if (r == 0 || !is_string(d, s) || string_bytes(d, s, raw, sizeof(raw), &n) != 0 ||
		    text_utf8(raw, n, name, sizeof(name)) != 0 || !ends_with(name, w->suffix))
			continue;
		if ((r = get_resolved(d, fs, "EF", &ef)) <= 0 || !is_dict(d, ef))
			return r < 0 ? -1 : 0;
		if ((r = dict_get(d, ef, keys[i], &st)) == 0)
			r = dict_get(d, ef, keys[1 - i], &st);
		if (r <= 0)
			return r;
		w->stream = st;
		memcpy(w->name, name, sizeof(name));
		return 1;
	}
	return 0;
}

/* A name tree node (7.9.6): its /Names pairs, then its /Kids. */
static int tree_walk(struct doc *d, struct span node, int depth, struct want *w)
{
	struct span names, kids, v;
	if (depth > MAX_DEPTH || ++w->nodes > MAX_TREE_NODES)
		return fail(d, "its EmbeddedFiles name tree is too deep or loops");
	int r = get_resolved(d, node, "Names", &names);
	if (r < 0)
		return -1;
	if (r == 1 && is_array(d, names)) {
		size_t it = names.b + 1;
		while ((r = array_next(d, names, &it, &v)) == 1) { /* the key */
			if ((r = array_next(d, names, &it, &v)) != 1)
				break;
			if ((r = filespec_match(d, v, w)) != 0)
				return r;
		}
		if (r < 0)
			return -1;
	}
	if ((r = get_resolved(d, node, "Kids", &kids)) <= 0 || !is_array(d, kids))
		return r < 0 ? -1 : 0;
	size_t it = kids.b + 1;
	while ((r = array_next(d, kids, &it, &v)) == 1) {
		struct span kid;
		int k = resolve(d, v, &kid);
		if (k < 0)
			return -1;
		if (k == 1 && is_dict(d, kid) && (k = tree_walk(d, kid, depth + 1, w)) != 0)
			return k;
	}
	return r;
}

/* The catalog's EmbeddedFiles tree, then its /AF array (PDF 2.0
 * associated files). */
static int files_find(struct doc *d, struct span cat, struct want *w)
{
	struct span names, ef, af, v;
	int r = get_resolved(d, cat, "Names", &names);
	if (r == 1 && is_dict(d, names) && (r = get_resolved(d, names, "EmbeddedFiles", &ef)) == 1 &&
	    is_dict(d, ef) && (r = tree_walk(d, ef, 0, w)) != 0)
		return r;
	if (r < 0 || (r = get_resolved(d, cat, "AF", &af)) <= 0 || !is_array(d, af))
		return r < 0 ? -1 : 0;
	size_t it = af.b + 1;
	while ((r = array_next(d, af, &it, &v)) == 1)
		if ((r = filespec_match(d, v, w)) != 0)
			return r;
	return r;
}

/* The newest trailer's /Root; else the last "trailer" in the file with
 * one; else the last object of /Type /Catalog. */
static int catalog_find(struct doc *d, struct span *cat)
{
	struct span tr, c, t;
	/* Guesses may fail on the way; only their outcome matters. */
	char why[sizeof(d->why)];
	memcpy(why, d->why, sizeof(why));
	if (d->xref_ok && get_resolved(d, d->trailer, "Root", &c) == 1 && is_dict(d, c)) {
		*cat = c;
		return 0;
	}
	int found = 0;
	const uint8_t *q = d->p;
	while ((q = memmem(q, d->len - (size_t)(q - d->p), "trailer", 7)) != NULL &&
	       d->work <= d->work_max) {
		q += 7;
		if (parse_value(d, (size_t)(q - d->p), 0, &tr) == 0 && is_dict(d, tr) &&
		    get_resolved(d, tr, "Root", &c) == 1 && is_dict(d, c)) {
			*cat = c; /* the last one wins */
			found = 1;
		}
	}
	d->work += d->len;
	if (!found && !d->scanned)
		scan_objects(d);
	size_t best = 0;
	for (size_t k = 0; !found && k < d->ns && d->work <= d->work_max; k++) {
		size_t after;
		const struct xent *x = &d->s[k];
		if (x->off >= best && obj_at(d, x->off, x->num, -1, &c, &after) == 0 &&
		    is_dict(d, c) && dict_get(d, c, "Type", &t) == 1 && name_is(d, t, "Catalog")) {
			*cat = c; /* the last one in the file wins */
			best = x->off;
		}
	}
	memcpy(d->why, why, sizeof(why));
	if (over(d) != 0)
		return -1;
	return found || cat->e > cat->b ? 0 : fail(d, "it has no document catalog");
}

/* zlib, with the output capped: a small stream can inflate to gigabytes. */
static int inflate_capped(struct doc *d, const uint8_t *p, size_t n, struct buf *out, size_t cap)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit(&z) != Z_OK)
		return fail(d, "zlib cannot start");
	z.next_in = (Bytef *)p;
	z.avail_in = (uInt)n;
	size_t start = out->len;
	int rc = Z_OK;
	while (rc == Z_OK) {
		if (out->len - start >= cap) {
			rc = Z_MEM_ERROR;
			fail(d, "an embedded file inflates to more than the limit");
			break;
		}
		buf_reserve(out, 1 << 16);
		size_t room = out->cap - out->len - 1;
		if (room > cap - (out->len - start))
			room = cap - (out->len - start) + 1;
		z.next_out = (Bytef *)out->data + out->len;
		z.avail_out = (uInt)room;
		rc = inflate(&z, Z_NO_FLUSH); /* Z_BUF_ERROR: input ended before the stream */
		out->len += room - z.avail_out;
		out->data[out->len] = '\0';
	}
	inflateEnd(&z);
	if (rc != Z_STREAM_END)
		return fail(d, "an embedded file's FlateDecode data is damaged or cut short");
	return 0;
}

/* /Filter: none, or FlateDecode alone (direct or in a one-element array),
 * without a predictor. 0 raw, 1 flate, -1 anything else. */
static int stream_filter(struct doc *d, struct span dict)
{
	struct span f, e, parms, pred;
	int r = get_resolved(d, dict, "Filter", &f);
	if (r <= 0)
		return r;
	if (is_array(d, f)) {
		size_t it = f.b + 1;
		if (array_next(d, f, &it, &e) != 1 || array_next(d, f, &it, &parms) != 0)
			return fail(d, "an embedded file has a chain of filters");
		f = e;
	}
	if (!name_is(d, f, "FlateDecode") && !name_is(d, f, "Fl"))
		return fail(d, "an embedded file uses a filter other than FlateDecode");
	if ((r = get_resolved(d, dict, "DecodeParms", &parms)) < 0)
		return -1;
	if (r == 1 && is_array(d, parms)) {
		size_t it = parms.b + 1;
		if (array_next(d, parms, &it, &e) == 1)
			parms = e;
	}
	int64_t v;
	if (r == 1 && get_resolved(d, parms, "Predictor", &pred) == 1 &&
	    (span_int(d, pred, &v) != 0 || v > 1))
		return fail(d, "an embedded file uses a FlateDecode predictor");
	return 1;
}

/* The stream that ref points at, decoded, appended to out. */
static int stream_read(struct doc *d, struct span ref, struct buf *out)
{
	uint32_t num;
	uint16_t gen;
	size_t after, data;
	struct span dict, l;
	int64_t n;
	if (!span_ref(d, ref, &num, &gen))
		return fail(d, "an embedded file is not an indirect stream");
	int r = obj_find(d, num, gen, &dict, &after);
	if (r <= 0 || !is_dict(d, dict))
		return r < 0 ? -1 : fail(d, "an embedded file's stream is missing");
	if (stream_start(d, after, &data) != 0)
		return -1;
	if (get_resolved(d, dict, "Length", &l) != 1 || span_int(d, l, &n) != 0 || n < 0 ||
	    (uint64_t)n > d->len - data)
		return fail(d, "an embedded file's /Length is missing or runs past the end of the file");
	if (!endstream_at(d, data + (size_t)n))
		return fail(d, "an embedded file's /Length does not end at \"endstream\"");
	int f = stream_filter(d, dict);
	if (f < 0)
		return -1;
	if (f == 0) {
		buf_append(out, d->p + data, (size_t)n);
		return 0;
	}
	return inflate_capped(d, d->p + data, (size_t)n, out, PDF_MAX_INPUT);
}

/* Copies name into out (cap bytes), cut at a UTF-8 character boundary. */
static void name_copy(char *out, size_t cap, const char *name)
{
	if (!out || cap == 0)
		return;
	size_t n = strlen(name);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((uint8_t)name[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, name, n);
	out[n] = '\0';
}

int pdf_embedded_file(const uint8_t *pdf, size_t len, const char *suffix, struct buf *out,
		      char *name, size_t name_len, struct selo_err *err)
{
	if (name && name_len)
		name[0] = '\0';
	if (!out)
		return err_set(err, 500, "internal", "pdf_embedded_file: no output buffer");
	if (!pdf || len < 8 || !memmem(pdf, len < 1024 ? len : 1024, "%PDF-", 5))
		return err_set(err, 422, "invalid-pdf", "this is not a PDF (no %%PDF- header)");
	if (len > PDF_MAX_INPUT)
		return err_set(err, 422, "invalid-pdf", "the PDF is larger than %u MiB",
			       PDF_MAX_INPUT >> 20);
	struct doc d;
	doc_init(&d, pdf, len, 1);
	if (xref_load(&d) != 0)
		d.why[0] = '\0'; /* a broken chain is not fatal: scanning takes over */
	struct want w = {suffix ? suffix : "", {0, 0}, "", 0};
	struct span cat = {0, 0};
	size_t was = out->len;
	int r = catalog_find(&d, &cat) == 0 ? files_find(&d, cat, &w) : -1;
	if (r == 1 && stream_read(&d, w.stream, out) != 0)
		r = -1;
	if (r == 1)
		name_copy(name, name_len, w.name);
	else if (r == 0)
		err_set(err, 404, "not-found", "the PDF embeds no file whose name ends with \"%s\"",
			w.suffix);
	else
		err_set(err, 422, "invalid-pdf", "the PDF cannot be read: %s",
			d.why[0] ? d.why : "it is malformed");
	if (r != 1 && out->data) {
		out->len = was;
		out->data[was] = '\0';
	}
	doc_free(&d);
	return r == 1 ? 0 : -1;
}

/* ---- reading: the document signature ------------------------------------ */

/* The first signature field's /V of the catalog's /AcroForm: 1, 0 none, -1. */
static int sig_dict_find(struct doc *d, struct span cat, struct span *sig)
{
	struct span form, fields, f, ft, v;
	int r = get_resolved(d, cat, "AcroForm", &form);
	if (r <= 0 || !is_dict(d, form))
		return r < 0 ? -1 : 0;
	if ((r = get_resolved(d, form, "Fields", &fields)) <= 0 || !is_array(d, fields))
		return r < 0 ? -1 : 0;
	size_t it = fields.b + 1;
	struct span item;
	while ((r = array_next(d, fields, &it, &item)) == 1) {
		if (resolve(d, item, &f) != 1 || !is_dict(d, f))
			continue;
		if (dict_get(d, f, "FT", &ft) == 1 && name_is(d, ft, "Sig") &&
		    get_resolved(d, f, "V", &v) == 1 && is_dict(d, v)) {
			*sig = v;
			return 1;
		}
	}
	return r < 0 ? -1 : 0;
}

/* /ByteRange [0 a b c]: the file but the /Contents string, which must sit
 * exactly in the gap (ISO 32000-1 12.8.1). What follows b + c was added
 * after signing (an incremental update): its length goes to *added. */
static int byte_range_read(struct doc *d, struct span sig, struct span contents, size_t r[4],
			   size_t *added)
{
	struct span br, v;
	if (get_resolved(d, sig, "ByteRange", &br) != 1 || !is_array(d, br))
		return fail(d, "the signature has no /ByteRange");
	size_t it = br.b + 1, k = 0;
	int rc;
	while ((rc = array_next(d, br, &it, &v)) == 1) {
		int64_t x;
		if (k == 4 || span_int(d, v, &x) != 0 || x < 0 || (uint64_t)x > d->len)
			return fail(d, "the /ByteRange is not four offsets within the file");
		r[k++] = (size_t)x;
	}
	if (rc < 0 || k != 4)
		return fail(d, "the /ByteRange is not four offsets within the file");
	if (r[0] != 0 || r[1] != contents.b || r[2] != contents.e || r[2] + r[3] > d->len)
		return fail(d, "the signature does not cover the file but its /Contents (its "
			    "/ByteRange leaves other bytes out, or bytes were moved after signing)");
	*added = d->len - (r[2] + r[3]);
	return 0;
}

static int cms_check(const uint8_t *pdf, const size_t r[4], const uint8_t *der, size_t n,
		     char *signer, size_t signer_len, struct selo_err *err)
{
	const unsigned char *q = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &q, (long)n);
	BIO *data = BIO_new(BIO_s_mem());
	int ok = cms && data && BIO_write(data, pdf, (int)r[1]) == (int)r[1] &&
		 BIO_write(data, pdf + r[2], (int)r[3]) == (int)r[3];
	/* The chain is the operator's to vouch for (a PDF reader with its
	 * CA, or pdfsig); here: the signature over these exact bytes. */
	ok = ok && CMS_verify(cms, NULL, NULL, data, NULL,
			      CMS_DETACHED | CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) == 1;
	STACK_OF(X509) *signers = ok ? CMS_get0_signers(cms) : NULL;
	X509 *cert = signers && sk_X509_num(signers) > 0 ? sk_X509_value(signers, 0) : NULL;
	if (cert && signer && signer_len) {
		BIO *b = BIO_new(BIO_s_mem());
		if (b && X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
			int w = BIO_read(b, signer, (int)signer_len - 1);
			signer[w > 0 ? w : 0] = '\0';
		}
		BIO_free(b);
	}
	sk_X509_free(signers);
	BIO_free(data);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	if (!ok)
		return err_set(err, 422, "invalid-signature",
			       "the document signature does not verify over the signed bytes: the "
			       "PDF was changed after it was signed");
	return 0;
}

int pdf_signature_check(const uint8_t *pdf, size_t len, char *signer, size_t signer_len,
			struct selo_err *err)
{
	if (signer && signer_len)
		signer[0] = '\0';
	if (!pdf || len < 8 || len > PDF_MAX_INPUT || !memmem(pdf, len < 1024 ? len : 1024, "%PDF-", 5))
		return err_set(err, 422, "invalid-pdf", "this is not a PDF this reader takes");
	struct doc d;
	doc_init(&d, pdf, len, 1);
	if (xref_load(&d) != 0)
		d.why[0] = '\0';
	struct span cat = {0, 0}, sig = {0, 0}, contents = {0, 0}, sub;
	size_t r[4], added = 0;
	int found = catalog_find(&d, &cat) == 0 ? sig_dict_find(&d, cat, &sig) : -1;
	int rc = -1;
	if (found == 0) {
		err_set(err, 404, "not-found", "the PDF is not signed");
	} else if (found < 0) {
		err_set(err, 422, "invalid-pdf", "the PDF cannot be read: %s",
			d.why[0] ? d.why : "it is malformed");
	} else if (get_resolved(&d, sig, "SubFilter", &sub) != 1 ||
		   (!name_is(&d, sub, "ETSI.CAdES.detached") &&
		    !name_is(&d, sub, "adbe.pkcs7.detached"))) {
		err_set(err, 422, "invalid-signature",
			"the signature is not a detached CMS (/SubFilter ETSI.CAdES.detached)");
	} else if (get_resolved(&d, sig, "Contents", &contents) != 1 || !is_string(&d, contents) ||
		   d.p[contents.b] != '<' || byte_range_read(&d, sig, contents, r, &added) != 0) {
		err_set(err, 422, "invalid-signature", "%s",
			d.why[0] ? d.why : "the signature has no hex /Contents");
	} else {
		size_t cap = (contents.e - contents.b) / 2 + 1, n = 0;
		uint8_t *der = xmalloc(cap);
		if (string_bytes(&d, contents, der, cap, &n) != 0)
			err_set(err, 422, "invalid-signature", "the signature's /Contents is not hex");
		else
			rc = cms_check(pdf, r, der, n, signer, signer_len, err);
		free(der);
	}
	/* A signature over an earlier revision holds, but the revision a
	 * reader shows is the last one: the pages are not what was signed. */
	if (rc == 0 && added) {
		rc = err_set(err, 422, "partial-signature",
			     "the signature is valid but covers only the first %zu of the file's %zu "
			     "bytes, not the whole file: %zu bytes were added after signing (an "
			     "incremental update), and they can change what the pages show",
			     r[2] + r[3], len, added);
	}
	doc_free(&d);
	return rc;
}

/* ---- writing: PDF syntax ------------------------------------------------ */

/* A name (7.3.5): bytes outside the regular printable set as #XX. */
static void put_name(struct buf *b, const char *s)
{
	buf_putc(b, '/');
	for (; *s; s++) {
		uint8_t c = (uint8_t)*s;
		if (c > 0x20 && c < 0x7f && is_regular(c) && c != '#')
			buf_putc(b, (char)c);
		else
			buf_printf(b, "#%02X", c);
	}
}

/* A string's bytes: a literal when all are printable ASCII, else hex. */
static void put_string(struct buf *b, const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] >= 0x20 && s[i] < 0x7f)
		i++;
	if (i < n) {
		buf_putc(b, '<');
		for (i = 0; i < n; i++)
			buf_printf(b, "%02X", s[i]);
		buf_putc(b, '>');
		return;
	}
	buf_putc(b, '(');
	for (i = 0; i < n; i++) {
		if (s[i] == '(' || s[i] == ')' || s[i] == '\\')
			buf_putc(b, '\\');
		buf_putc(b, (char)s[i]);
	}
	buf_putc(b, ')');
}

/* The bytes of a text string for UTF-8 s: s itself when it is printable
 * ASCII (the same in PDFDocEncoding), else UTF-16BE with a BOM. -1 when s
 * is not UTF-8. */
static int text_bytes(const char *s, struct buf *raw)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t n = strlen(s), i = 0;
	while (i < n && u[i] >= 0x20 && u[i] < 0x7f)
		i++;
	if (i == n) {
		buf_append(raw, s, n);
		return 0;
	}
	buf_append(raw, "\xfe\xff", 2);
	for (i = 0; i < n;) {
		uint32_t cp;
		if (pdf_utf8_next(u, n, &i, &cp) != 0)
			return -1;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			uint32_t hi = 0xd800 + (cp >> 10), lo = 0xdc00 + (cp & 0x3ff);
			uint8_t q[4] = {(uint8_t)(hi >> 8), (uint8_t)hi, (uint8_t)(lo >> 8), (uint8_t)lo};
			buf_append(raw, q, 4);
		} else {
			uint8_t q[2] = {(uint8_t)(cp >> 8), (uint8_t)cp};
			buf_append(raw, q, 2);
		}
	}
	return 0;
}

static void put_text(struct buf *b, const char *s)
{
	struct buf raw = BUF_INIT;
	if (text_bytes(s, &raw) == 0) /* checked by opts_check before */
		put_string(b, (const uint8_t *)raw.data, raw.len);
	buf_free(&raw);
}

/* D:YYYYMMDDHHmmSS+00'00' (7.9.4), in UTC. */
static void pdf_date(int64_t ms, char out[80])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 80, "D:%04d%02d%02d%02d%02d%02d+00'00'", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- writing: the incremental update ----------------------------------- */

struct wobj {
	uint32_t num;
	uint16_t gen;
	size_t off;
};

struct update {
	struct doc d;        /* the input, read strictly */
	struct buf *out;
	size_t base;         /* where the file starts in out */
	int version;         /* the header's, e.g. 15 for %PDF-1.5 */
	uint32_t size;       /* the old /Size: our first new object */
	uint32_t cat_num, page_num;
	uint16_t cat_gen, page_gen;
	struct span cat, page;
	uint32_t names, sig, widget;
	struct wobj obj[2 * MAX_ATTACHMENTS + 8];
	size_t nobj;
	size_t br_at;        /* the /ByteRange placeholder, in out */
	size_t contents_at;  /* the '<' of /Contents, in out */
	size_t contents_end; /* just past its '>' */
};

struct plan_att {
	const struct pdf_attachment *a;
	uint32_t ef, fs;
	struct buf key; /* the name as text-string bytes: the name tree's key */
};

static void obj_begin(struct update *u, uint32_t num, uint16_t gen)
{
	u->obj[u->nobj++] = (struct wobj){num, gen, u->out->len - u->base};
	buf_printf(u->out, "%u %u obj\n", num, gen);
}

static void obj_end(struct update *u)
{
	buf_puts(u->out, "\nendobj\n");
}

/* Copies dict's entries, but those named in skip, as they are. */
static int dict_copy_except(struct doc *d, struct span dict, const char *const *skip,
			    struct buf *b)
{
	size_t it = dict.b + 2;
	struct span k = {0, 0}, v = {0, 0};
	int r;
	while ((r = dict_next(d, dict, &it, &k, &v)) == 1) {
		int keep = 1;
		for (const char *const *s = skip; *s && keep; s++)
			keep = !name_is(d, k, *s);
		if (keep) {
			buf_putc(b, '\n');
			buf_append(b, d->p + k.b, v.e - k.b);
		}
	}
	return r;
}

static int array_copy(struct doc *d, struct span arr, struct buf *b)
{
	size_t it = arr.b + 1;
	struct span v;
	int r;
	while ((r = array_next(d, arr, &it, &v)) == 1) {
		buf_putc(b, ' ');
		buf_append(b, d->p + v.b, v.e - v.b);
	}
	return r;
}

/* The first page, depth first through /Kids (7.7.3.2). */
static int page_first(struct update *u, struct span ref, int depth, int *nodes)
{
	struct doc *d = &u->d;
	uint32_t num;
	uint16_t gen;
	size_t after;
	struct span v, t, kids, kid;
	if (!span_ref(d, ref, &num, &gen))
		return fail(d, "a page tree node is not an indirect object");
	if (depth > MAX_DEPTH || ++*nodes > MAX_TREE_NODES)
		return fail(d, "its page tree is too deep or loops");
	int r = obj_find(d, num, gen, &v, &after);
	if (r <= 0 || !is_dict(d, v))
		return r < 0 ? -1 : fail(d, "a page tree node is missing");
	if ((r = dict_get(d, v, "Type", &t)) < 0)
		return -1;
	if (r == 1 && name_is(d, t, "Page")) {
		u->page_num = num;
		u->page_gen = gen;
		u->page = v;
		return 1;
	}
	if ((r = get_resolved(d, v, "Kids", &kids)) <= 0 || !is_array(d, kids))
		return r < 0 ? -1 : 0;
	size_t it = kids.b + 1;
	while ((r = array_next(d, kids, &it, &kid)) == 1)
		if ((r = page_first(u, kid, depth + 1, nodes)) != 0)
			return r;
	return r;
}

/* The input as cairo writes it: header, one or more classic cross-
 * reference sections, a catalog, a page. */
static int update_read(struct update *u)
{
	struct doc *d = &u->d;
	struct span root, size, enc, pages;
	int64_t n;
	if (d->len < 16 || memcmp(d->p, "%PDF-", 5) != 0 || !isdigit(d->p[5]) || d->p[6] != '.' ||
	    !isdigit(d->p[7]))
		return fail(d, "it does not start with %PDF-n.n");
	u->version = (d->p[5] - '0') * 10 + (d->p[7] - '0');
	if (xref_load(d) != 0)
		return -1;
	if (dict_get(d, d->trailer, "Encrypt", &enc) != 0)
		return fail(d, "it is encrypted");
	if (dict_get(d, d->trailer, "Size", &size) != 1 || span_int(d, size, &n) != 0 || n < 1 ||
	    n > (int64_t)MAX_OBJNUM - (2 * MAX_ATTACHMENTS + 8))
		return fail(d, "its trailer has no usable /Size");
	u->size = (uint32_t)n;
	if (dict_get(d, d->trailer, "Root", &root) != 1 ||
	    !span_ref(d, root, &u->cat_num, &u->cat_gen))
		return fail(d, "its trailer has no /Root reference");
	size_t after;
	if (obj_find(d, u->cat_num, u->cat_gen, &u->cat, &after) != 1 || !is_dict(d, u->cat))
		return fail(d, "its catalog is missing or not a dictionary");
	int nodes = 0;
	if (dict_get(d, u->cat, "Pages", &pages) != 1)
		return fail(d, "its catalog has no /Pages");
	int r = page_first(u, pages, 0, &nodes);
	if (r <= 0)
		return r < 0 ? -1 : fail(d, "it has no page");
	if (u->cat_num >= u->size || u->page_num >= u->size)
		return fail(d, "its /Size is smaller than its objects' numbers");
	if (u->page_num == u->cat_num)
		return fail(d, "its first page is its catalog");
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct plan_att *x = a, *y = b;
	size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
	int r = memcmp(x->key.data, y->key.data, n);
	return r ? r : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

static void write_embedded(struct update *u, const struct plan_att *p, const char *date)
{
	const struct pdf_attachment *a = p->a;
	struct buf *b = u->out;
	uint8_t md[16];
	unsigned int mdlen = 0;
	char md5[33];
	/* /CheckSum is MD5 by definition (7.11.4.2); it is a reader's integrity
	 * hint, the signature is what protects the bytes. */
	EVP_Digest(a->data ? a->data : (const uint8_t *)"", a->len, md, &mdlen, EVP_md5(), NULL);
	hex_encode(md, 16, md5);
	obj_begin(u, p->ef, 0);
	buf_puts(b, "<< /Type /EmbeddedFile /Subtype ");
	put_name(b, a->mime);
	buf_printf(b, " /Length %zu\n/Params << /Size %zu /CheckSum <%s> /ModDate (%s) >>\n>>\n"
		   "stream\n", a->len, a->len, md5, date);
	if (a->len)
		buf_append(b, a->data, a->len);
	buf_puts(b, "\nendstream");
	obj_end(u);

	obj_begin(u, p->fs, 0);
	buf_puts(b, "<< /Type /Filespec /F ");
	struct buf ascii = BUF_INIT; /* /F for readers older than /UF: ASCII only */
	const uint8_t *s = (const uint8_t *)a->name;
	for (size_t i = 0, n = strlen(a->name); i < n;) {
		uint32_t cp = '_';
		if (pdf_utf8_next(s, n, &i, &cp) != 0)
			i++;
		buf_putc(&ascii, cp >= 0x20 && cp < 0x7f ? (char)cp : '_');
	}
	put_string(b, (const uint8_t *)ascii.data, ascii.len);
	buf_free(&ascii);
	buf_puts(b, " /UF ");
	put_string(b, (const uint8_t *)p->key.data, p->key.len);
	if (a->description) {
		buf_puts(b, "\n/Desc ");
		put_text(b, a->description);
	}
	buf_puts(b, " /AFRelationship ");
	put_name(b, a->relationship ? a->relationship : "Unspecified");
	buf_printf(b, "\n/EF << /F %u 0 R /UF %u 0 R >>\n>>", p->ef, p->ef);
	obj_end(u);
}

/* The EmbeddedFiles name tree: one root node, keys in byte order
 * (7.9.6). */
static void write_names(struct update *u, struct plan_att *p, size_t n)
{
	struct plan_att *sorted = xreallocarray(NULL, n, sizeof(*sorted));
	if (n)
		memcpy(sorted, p, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), key_cmp);
	obj_begin(u, u->names, 0);
	buf_puts(u->out, "<< /Names [");
	for (size_t i = 0; i < n; i++) {
		buf_putc(u->out, '\n');
		put_string(u->out, (const uint8_t *)sorted[i].key.data, sorted[i].key.len);
		buf_printf(u->out, " %u 0 R", sorted[i].fs);
	}
	buf_puts(u->out, "\n] >>");
	obj_end(u);
	free(sorted);
}

/* The signature dictionary with room for /ByteRange and /Contents, both
 * filled in once the file is complete. */
static void write_sig(struct update *u, const struct pdf_sign_opts *so, const char *date)
{
	struct buf *b = u->out;
	obj_begin(u, u->sig, 0);
	buf_puts(b, "<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached\n"
		    "/ByteRange ");
	u->br_at = b->len;
	buf_printf(b, "%-*s", BYTERANGE_WIDTH, "[0 0 0 0]");
	buf_puts(b, "\n/Contents ");
	u->contents_at = b->len;
	buf_putc(b, '<');
	buf_reserve(b, 2 * SIG_RESERVE + 1);
	memset(b->data + b->len, '0', 2 * SIG_RESERVE);
	b->len += 2 * SIG_RESERVE;
	buf_putc(b, '>');
	u->contents_end = b->len;
	buf_printf(b, "\n/M (%s)", date);
	const char *keys[] = {"Name", "Reason", "Location"};
	const char *vals[] = {so->name, so->reason, so->location};
	for (int i = 0; i < 3; i++) {
		if (!vals[i])
			continue;
		buf_printf(b, "\n/%s ", keys[i]);
		put_text(b, vals[i]);
	}
	buf_puts(b, "\n>>");
	obj_end(u);

	/* An invisible signature field merged with its widget (12.7.4.5):
	 * /F 132 = Print | Locked. */
	obj_begin(u, u->widget, 0);
	buf_printf(b, "<< /Type /Annot /Subtype /Widget /FT /Sig /T (Signature1) /V %u 0 R\n"
		   "/F 132 /Rect [0 0 0 0] /P %u %u R >>", u->sig, u->page_num, u->page_gen);
	obj_end(u);
}

/* Page 1 as it was, with the widget added to its /Annots. */
static int write_page(struct update *u)
{
	static const char *const skip[] = {"Annots", NULL};
	struct doc *d = &u->d;
	struct span annots;
	obj_begin(u, u->page_num, u->page_gen);
	buf_puts(u->out, "<<");
	if (dict_copy_except(d, u->page, skip, u->out) != 0)
		return -1;
	buf_puts(u->out, "\n/Annots [");
	int r = get_resolved(d, u->page, "Annots", &annots);
	if (r < 0 || (r == 1 && !is_array(d, annots)))
		return r < 0 ? -1 : fail(d, "page 1's /Annots is not an array");
	if (r == 1 && array_copy(d, annots, u->out) != 0)
		return -1;
	buf_printf(u->out, " %u 0 R ]\n>>", u->widget);
	obj_end(u);
	return 0;
}

/* "/1.7" and the like as 17; -1 for anything else. */
static int version_name(const struct doc *d, struct span s)
{
	if (s.e - s.b != 4 || d->p[s.b] != '/' || !isdigit(d->p[s.b + 1]) || d->p[s.b + 2] != '.' ||
	    !isdigit(d->p[s.b + 3]))
		return -1;
	return (d->p[s.b + 1] - '0') * 10 + (d->p[s.b + 3] - '0');
}

/* /Version: /UF and associated files are PDF 1.7 (2.0 for /AF) features;
 * the header of an incremental update cannot change, the catalog can. */
static int write_version(struct update *u)
{
	struct span v;
	int r = dict_get(&u->d, u->cat, "Version", &v);
	if (r < 0)
		return -1;
	int have = r == 1 ? version_name(&u->d, v) : -1;
	if (have >= 17 && have >= u->version)
		buf_printf(u->out, "\n/Version /%d.%d", have / 10, have % 10);
	else if (u->version < 17)
		buf_puts(u->out, "\n/Version /1.7");
	return 0;
}

/* /Names with our EmbeddedFiles tree, keeping any other trees. */
static int write_names_entry(struct update *u)
{
	static const char *const skip[] = {"EmbeddedFiles", NULL};
	struct doc *d = &u->d;
	struct span names, ef;
	int r = get_resolved(d, u->cat, "Names", &names);
	if (r < 0 || (r == 1 && !is_dict(d, names)))
		return r < 0 ? -1 : fail(d, "its catalog's /Names is not a dictionary");
	buf_puts(u->out, "\n/Names <<");
	if (r == 1) {
		if ((r = get_resolved(d, names, "EmbeddedFiles", &ef)) != 0)
			return r < 0 ? -1 : fail(d, "it already has embedded files");
		if (dict_copy_except(d, names, skip, u->out) != 0)
			return -1;
	}
	buf_printf(u->out, " /EmbeddedFiles %u 0 R >>", u->names);
	return 0;
}

/* A catalog array (/AF, /AcroForm /Fields) with our references added. */
static int write_array_plus(struct update *u, struct span dict, int have, const char *key,
			    const uint32_t *add, size_t n)
{
	struct doc *d = &u->d;
	struct span arr;
	int r = have ? get_resolved(d, dict, key, &arr) : 0;
	if (r < 0 || (r == 1 && !is_array(d, arr)))
		return r < 0 ? -1 : fail(d, "an existing /AF or /Fields is not an array");
	buf_printf(u->out, "/%s [", key);
	if (r == 1 && array_copy(d, arr, u->out) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		buf_printf(u->out, " %u 0 R", add[i]);
	buf_puts(u->out, " ]");
	return 0;
}

/* The catalog as it was, plus /Names /EmbeddedFiles, /AF and /AcroForm. */
static int write_catalog(struct update *u, const struct plan_att *p, size_t n)
{
	static const char *const skip[] = {"Names", "AF", "AcroForm", "Version", NULL};
	static const char *const form_skip[] = {"Fields", "SigFlags", NULL};
	struct doc *d = &u->d;
	struct span form;
	uint32_t fs[MAX_ATTACHMENTS];
	for (size_t i = 0; i < n; i++)
		fs[i] = p[i].fs;
	obj_begin(u, u->cat_num, u->cat_gen);
	buf_puts(u->out, "<<");
	if (dict_copy_except(d, u->cat, skip, u->out) != 0 || write_version(u) != 0 ||
	    write_names_entry(u) != 0)
		return -1;
	buf_putc(u->out, '\n');
	if (write_array_plus(u, u->cat, 1, "AF", fs, n) != 0)
		return -1;
	int r = get_resolved(d, u->cat, "AcroForm", &form);
	if (r < 0 || (r == 1 && !is_dict(d, form)))
		return r < 0 ? -1 : fail(d, "its /AcroForm is not a dictionary");
	buf_puts(u->out, "\n/AcroForm <<");
	if (r == 1 && dict_copy_except(d, form, form_skip, u->out) != 0)
		return -1;
	buf_putc(u->out, ' ');
	if (write_array_plus(u, form, r == 1, "Fields", &u->widget, 1) != 0)
		return -1;
	/* SignaturesExist | AppendOnly: readers keep later changes incremental */
	buf_puts(u->out, " /SigFlags 3 >>\n>>");
	obj_end(u);
	return 0;
}

static int wobj_cmp(const void *a, const void *b)
{
	const struct wobj *x = a, *y = b;
	return (x->num > y->num) - (x->num < y->num);
}

/* The new section: one subsection per run of consecutive numbers, 20-byte
 * entries (7.5.4); the trailer keeps every old entry but /Prev, /Size and
 * /ID (7.5.6), which it writes anew. */
static int write_xref(struct update *u)
{
	static const char *const skip[] = {"Size", "Prev", "ID", "XRefStm", NULL};
	struct doc *d = &u->d;
	struct buf *b = u->out;
	size_t at = b->len - u->base;
	qsort(u->obj, u->nobj, sizeof(u->obj[0]), wobj_cmp);
	buf_puts(b, "xref\n");
	for (size_t i = 0; i < u->nobj;) {
		size_t j = i + 1;
		while (j < u->nobj && u->obj[j].num == u->obj[j - 1].num + 1)
			j++;
		buf_printf(b, "%u %zu\n", u->obj[i].num, j - i);
		for (; i < j; i++)
			buf_printf(b, "%010zu %05u n \n", u->obj[i].off, u->obj[i].gen);
	}
	buf_puts(b, "trailer\n<<");
	if (dict_copy_except(d, d->trailer, skip, b) != 0)
		return -1;
	buf_printf(b, "\n/Size %u\n/Prev %zu", u->size + (uint32_t)(u->nobj - 2), d->startxref);
	struct span id, first;
	size_t it;
	int r = get_resolved(d, d->trailer, "ID", &id);
	if (r < 0)
		return -1;
	if (r == 1 && is_array(d, id) && (it = id.b + 1, array_next(d, id, &it, &first) == 1) &&
	    is_string(d, first)) {
		/* the first element names the document, the second this version */
		uint8_t fresh[16];
		char hex[33];
		random_bytes(fresh, sizeof(fresh));
		hex_encode(fresh, sizeof(fresh), hex);
		buf_puts(b, "\n/ID [");
		buf_append(b, d->p + first.b, first.e - first.b);
		buf_printf(b, " <%s>]", hex);
	}
	buf_printf(b, "\n>>\nstartxref\n%zu\n%%%%EOF\n", at);
	return 0;
}

/* Fills /ByteRange, signs both ranges and writes the CMS into /Contents. */
static int sign_contents(struct update *u, const struct pdf_sign_opts *so, struct selo_err *err)
{
	struct buf *b = u->out;
	size_t total = b->len - u->base, a = u->contents_at - u->base,
	       c = u->contents_end - u->base;
	char br[BYTERANGE_WIDTH + 1];
	int n = snprintf(br, sizeof(br), "[0 %zu %zu %zu]", a, c, total - c);
	if (n < 0 || n > BYTERANGE_WIDTH)
		return err_set(err, 500, "internal", "the PDF is too large for its /ByteRange");
	memcpy(b->data + u->br_at, br, (size_t)n);
	struct smime_part parts[2] = {{(const uint8_t *)b->data + u->base, a},
				      {(const uint8_t *)b->data + u->contents_end, total - c}};
	struct buf der = BUF_INIT;
	if (smime_sign_der(so->signer, parts, 2, so->tst, so->tst_arg, &der, err) != 0) {
		buf_free(&der);
		return -1;
	}
	int rc = 0;
	if (der.len > SIG_RESERVE) {
		rc = err_set(err, 500, "signature-too-large",
			     "the PDF signature (certificates and timestamp included) is %zu bytes; "
			     "the PDF has room for %d", der.len, SIG_RESERVE);
	} else {
		char *hex = xmalloc(2 * der.len + 1);
		hex_encode((const uint8_t *)der.data, der.len, hex);
		memcpy(b->data + u->contents_at + 1, hex, 2 * der.len);
		free(hex);
	}
	buf_free(&der);
	return rc;
}

static int attachments_check(const struct pdf_attachment *att, size_t n, struct plan_att *p,
			     struct selo_err *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct pdf_attachment *a = &att[i];
		const char *m = a->mime ? a->mime : "";
		if (!a->name || !a->name[0] || strlen(a->name) > 255 || !utf8_valid(a->name, strlen(a->name)))
			return err_set(err, 500, "internal", "attachment %zu: its name must be 1 to "
				       "255 bytes of UTF-8", i);
		if (!strchr(m, '/') || strlen(m) > 127 || strspn(m, "abcdefghijklmnopqrstuvwxyz"
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-/") != strlen(m))
			return err_set(err, 500, "internal", "attachment %s: %s is not a MIME type",
				       a->name, m);
		if (a->relationship && (!a->relationship[0] || strlen(a->relationship) > 32 ||
		    strspn(a->relationship, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
			    strlen(a->relationship)))
			return err_set(err, 500, "internal", "attachment %s: bad /AFRelationship",
				       a->name);
		if ((a->description && !utf8_valid(a->description, strlen(a->description))) || (a->len && !a->data) ||
		    a->len > PDF_MAX_INPUT)
			return err_set(err, 500, "internal", "attachment %s: bad description or data",
				       a->name);
		for (size_t k = 0; k < i; k++)
			if (strcmp(att[k].name, a->name) == 0)
				return err_set(err, 500, "internal", "two attachments are named %s",
					       a->name);
		p[i].a = a;
		text_bytes(a->name, &p[i].key);
	}
	return 0;
}

static int opts_check(const struct pdf_sign_opts *so, struct selo_err *err)
{
	if (!so || !so->signer || !so->tst)
		return err_set(err, 500, "internal", "pdf_finish: a signer and a TSA are required");
	const char *t[] = {so->name, so->reason, so->location};
	for (int i = 0; i < 3; i++)
		if (t[i] && !utf8_valid(t[i], strlen(t[i])))
			return err_set(err, 500, "internal", "pdf_finish: a signature text is not UTF-8");
	return 0;
}

/* Everything after the input, then the signature. */
static int update_write(struct update *u, struct plan_att *p, size_t n,
			const struct pdf_sign_opts *so, struct selo_err *err)
{
	char date[80];
	int64_t ms = so->when_ms > 0 ? so->when_ms : (int64_t)time(NULL) * 1000;
	pdf_date(ms, date);
	uint32_t next = u->size;
	for (size_t i = 0; i < n; i++) {
		p[i].ef = next++;
		p[i].fs = next++;
	}
	u->names = next++;
	u->sig = next++;
	u->widget = next++;
	uint8_t last = u->d.p[u->d.len - 1];
	buf_append(u->out, u->d.p, u->d.len);
	if (last != '\n' && last != '\r')
		buf_putc(u->out, '\n');
	for (size_t i = 0; i < n; i++)
		write_embedded(u, &p[i], date);
	write_names(u, p, n);
	write_sig(u, so, date);
	if (write_page(u) != 0 || write_catalog(u, p, n) != 0 || write_xref(u) != 0)
		return -1;
	return sign_contents(u, so, err);
}

int pdf_finish(const uint8_t *in, size_t len, const struct pdf_attachment *att, size_t n_att,
	       const struct pdf_sign_opts *sign, struct buf *out, struct selo_err *err)
{
	struct plan_att p[MAX_ATTACHMENTS];
	if (!in || !out || (n_att && !att) || n_att > MAX_ATTACHMENTS)
		return err_set(err, 500, "internal", "pdf_finish: no input, or more than %d "
			       "attachments", MAX_ATTACHMENTS);
	if (opts_check(sign, err) != 0)
		return -1;
	if (len > PDF_MAX_INPUT)
		return err_set(err, 422, "invalid-pdf", "the PDF is larger than %u MiB",
			       PDF_MAX_INPUT >> 20);
	memset(p, 0, sizeof(p));
	struct update *u = xcalloc(1, sizeof(*u));
	u->out = out;
	u->base = out->len;
	doc_init(&u->d, in, len, 0);
	int rc = attachments_check(att, n_att, p, err);
	if (rc == 0 && (update_read(u) != 0 || update_write(u, p, n_att, sign, err) != 0)) {
		if (u->d.why[0])
			err_set(err, 422, "invalid-pdf", "Selo cannot extend this PDF: %s", u->d.why);
		rc = -1;
	}
	if (rc != 0 && out->data) {
		out->len = u->base;
		out->data[out->len] = '\0';
	}
	for (size_t i = 0; i < n_att; i++)
		buf_free(&p[i].key);
	doc_free(&u->d);
	free(u);
	return rc;
}
