/* jsonscan.c: the incremental JSON structure scanner (see jsonscan.h). One
 * pass over the bytes with a little state carried between chunks: inside a
 * string only '"' and a backslash matter (the byte after a backslash never
 * ends it); outside, brackets push and pop a one-word stack of container
 * kinds, and the first byte of each value counts it. Keys are told from
 * string values by position: in an object, after '{' or ',' and before ':'. */
#include <string.h>
#include "selo/jsonscan.h"

void jsonscan_init(struct jsonscan *s, const struct jsonscan_limits *lim)
{
	memset(s, 0, sizeof(*s));
	s->lim = *lim;
	if (s->lim.max_depth > JSONSCAN_DEPTH_MAX)
		s->lim.max_depth = JSONSCAN_DEPTH_MAX;
}

/* 1 when the open container at depth d (1-based) is an array. */
static int jsonscan_is_array(const struct jsonscan *s, unsigned d)
{
	return d > 0 && ((s->arrays >> (d - 1)) & 1u);
}

/* A value begins in the container open now: count it, and count it as an
 * item when that container is an array member of the top-level object. */
static enum jsonscan_result jsonscan_value(struct jsonscan *s)
{
	if (s->depth == 2 && !jsonscan_is_array(s, 1) && jsonscan_is_array(s, 2)) {
		s->items++;
		if (s->lim.max_member_items && s->items > s->lim.max_member_items)
			return s->result = JSONSCAN_TOO_MANY_ITEMS;
	}
	if (++s->values > s->lim.max_values)
		return s->result = JSONSCAN_TOO_MANY_VALUES;
	return JSONSCAN_OK;
}

/* '{' or '[': a value, then one level deeper. */
static enum jsonscan_result jsonscan_open(struct jsonscan *s, int array)
{
	if (jsonscan_value(s) != JSONSCAN_OK)
		return s->result;
	if (s->depth >= s->lim.max_depth)
		return s->result = JSONSCAN_TOO_DEEP;
	uint64_t bit = (uint64_t)1 << s->depth;
	s->arrays = array ? s->arrays | bit : s->arrays & ~bit;
	s->depth++;
	if (s->depth == 2)
		s->items = 0;
	s->want_key = !array;
	return JSONSCAN_OK;
}

/* Bytes of a string from p; returns how many were consumed (up to and with
 * the closing quote, or all n when the string goes on in the next chunk). */
static size_t jsonscan_string(struct jsonscan *s, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s->escaped) {
			s->escaped = 0;
		} else if (p[i] == '\\') {
			s->escaped = 1;
		} else if (p[i] == '"') {
			s->in_string = 0;
			return i + 1;
		}
	}
	return n;
}

/* One byte outside strings. */
static enum jsonscan_result jsonscan_byte(struct jsonscan *s, unsigned char c)
{
	int scalar = 0;
	switch (c) {
	case '{':
	case '[':
		jsonscan_open(s, c == '[');
		break;
	case '}':
	case ']':
		if (s->depth > 0)
			s->depth--;
		s->want_key = 0;
		break;
	case ',':
		s->want_key = s->depth > 0 && !jsonscan_is_array(s, s->depth);
		break;
	case ':':
		s->want_key = 0;
		break;
	case '"':
		s->in_string = 1;
		if (!s->want_key)
			jsonscan_value(s);
		break;
	case ' ':
	case '\t':
	case '\r':
	case '\n':
		break;
	default:
		/* Numbers and literals: a run of other bytes is one value. */
		scalar = 1;
		if (!s->in_scalar)
			jsonscan_value(s);
		break;
	}
	s->in_scalar = (unsigned char)scalar;
	return s->result;
}

enum jsonscan_result jsonscan_feed(struct jsonscan *s, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i = 0;
	while (i < n && s->result == JSONSCAN_OK) {
		if (s->in_string)
			i += jsonscan_string(s, b + i, n - i);
		else
			jsonscan_byte(s, b[i++]);
	}
	return s->result;
}
