/* fuzz_jsonscan.c: libFuzzer target for the JSON structure scanner, which
 * sees every API body before the parser does. Whatever the bytes: no
 * crash, the same answer whichever way the bytes are cut into chunks; and
 * when jansson parses them, the scanner's counts are jansson's exactly
 * (values, depth, top-level member array items): each limit holds at the
 * true figure and is crossed one below it. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "selo/jsonscan.h"

struct shape {
	size_t values, depth, items; /* items: the longest array member of a top-level object */
};

static void shape_of(const json_t *j, size_t depth, struct shape *s)
{
	s->values++;
	if (!json_is_object(j) && !json_is_array(j))
		return;
	if (depth + 1 > s->depth)
		s->depth = depth + 1;
	if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			shape_of(json_array_get(j, i), depth + 1, s);
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v) {
		if (depth == 0 && json_is_array(v) && json_array_size(v) > s->items)
			s->items = json_array_size(v);
		shape_of(v, depth + 1, s);
	}
}

static enum jsonscan_result scan_chunks(const uint8_t *data, size_t size,
					const struct jsonscan_limits *lim, size_t step)
{
	struct jsonscan s;
	jsonscan_init(&s, lim);
	for (size_t i = 0; i < size; i += step)
		jsonscan_feed(&s, data + i, size - i < step ? size - i : step);
	return s.result;
}

static enum jsonscan_result scan_whole(const uint8_t *data, size_t size,
				       const struct jsonscan_limits *lim)
{
	struct jsonscan s;
	jsonscan_init(&s, lim);
	return jsonscan_feed(&s, data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonscan_limits lim = {1 + (size % JSONSCAN_DEPTH_MAX), 1 + size / 3,
				      size % 7};
	enum jsonscan_result whole = scan_whole(data, size, &lim);
	for (size_t step = 1; step <= 17; step += 4)
		if (scan_chunks(data, size, &lim, step) != whole)
			abort();

	json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			       NULL);
	if (!j)
		return 0;
	struct shape sh = {0, 0, 0};
	shape_of(j, 0, &sh);
	json_decref(j);
	if (sh.depth > JSONSCAN_DEPTH_MAX)
		return 0;
	struct jsonscan_limits exact = {(unsigned)(sh.depth ? sh.depth : 1), sh.values, sh.items};
	if (exact.max_member_items == 0)
		exact.max_member_items = SIZE_MAX;
	if (scan_whole(data, size, &exact) != JSONSCAN_OK)
		abort();
	struct jsonscan_limits less = exact;
	less.max_values--;
	if (scan_whole(data, size, &less) != JSONSCAN_TOO_MANY_VALUES)
		abort();
	if (sh.depth > 1) {
		less = exact;
		less.max_depth--;
		if (scan_whole(data, size, &less) != JSONSCAN_TOO_DEEP)
			abort();
	}
	if (sh.items > 1) {
		less = exact;
		less.max_member_items--;
		if (scan_whole(data, size, &less) != JSONSCAN_TOO_MANY_ITEMS)
			abort();
	}
	return 0;
}
