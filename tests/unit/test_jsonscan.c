/* test_jsonscan.c: the JSON structure scanner: exact counts of values,
 * depth and top-level member items; keys, brackets and escapes inside
 * strings; every limit refused one past it and accepted at it; and the same
 * answer whatever the chunking, with splits inside strings and escapes. */
#include <stdint.h>
#include "selo/jsonscan.h"
#include "t.h"

static const struct jsonscan_limits WIDE = {JSONSCAN_DEPTH_MAX, SIZE_MAX, 0};

static struct jsonscan scan(const char *text, const struct jsonscan_limits *lim)
{
	struct jsonscan s;
	jsonscan_init(&s, lim);
	jsonscan_feed(&s, text, strlen(text));
	return s;
}

static size_t values_of(const char *text)
{
	struct jsonscan s = scan(text, &WIDE);
	return s.result == JSONSCAN_OK ? s.values : (size_t)-1;
}

TEST(counts_values_not_keys)
{
	CHECK(values_of("") == 0);
	CHECK(values_of("0") == 1);
	CHECK(values_of(" -12.5e+3 ") == 1);
	CHECK(values_of("[]") == 1);
	CHECK(values_of("{}") == 1);
	CHECK(values_of("[0,1,true,false,null,\"s\"]") == 7);
	CHECK(values_of("{\"a\":1}") == 2);
	CHECK(values_of("{\"a\":\"b\",\"c\":[\"d\",{\"e\":null}]}") == 6);
	CHECK(values_of("[ 1 , 2 ,\n\t3\r]") == 4);
	CHECK(values_of("{\"to\":\"a@b.example\",\"vars\":{\"x\":\"1\",\"y\":2}}") == 5);
}

TEST(strings_hold_no_structure)
{
	CHECK(values_of("[\"[{,:}]\"]") == 2);
	CHECK(values_of("[\"\\\"[\",\"x\"]") == 3);         /* ["\"[","x"] */
	CHECK(values_of("[\"\\\\\",[]]") == 3);             /* ["\\",[]] */
	CHECK(values_of("[\"\\\\\\\"]\",0]") == 3);         /* ["\\\"]",0] */
	CHECK(values_of("[\"\\u0022]\",0]") == 3);          /* \u0022 is a quote, escaped */
	CHECK(values_of("{\"k[{\":\"v}]\",\"k2\":0}") == 3);
	struct jsonscan s = scan("[\"[[[[[[", &WIDE);
	CHECK(s.depth == 1 && s.in_string);
}

TEST(depth_limit_exact)
{
	struct jsonscan_limits lim = {3, SIZE_MAX, 0};
	CHECK(scan("[[[]]]", &lim).result == JSONSCAN_OK);
	CHECK(scan("{\"a\":[{}]}", &lim).result == JSONSCAN_OK);
	CHECK(scan("[[[[]]]]", &lim).result == JSONSCAN_TOO_DEEP);
	CHECK(scan("{\"a\":[{\"b\":[]}]}", &lim).result == JSONSCAN_TOO_DEEP);
	/* Siblings do not add up; closing brings the depth back. */
	CHECK(scan("[[[]],[[]],[[]]]", &lim).result == JSONSCAN_OK);
	struct jsonscan s = scan("[[[]],[", &lim);
	CHECK(s.depth == 2);
	lim.max_depth = 1000;
	s = scan("[]", &lim);
	CHECK(s.lim.max_depth == JSONSCAN_DEPTH_MAX);
}

TEST(values_limit_exact)
{
	struct jsonscan_limits lim = {16, 4, 0};
	CHECK(scan("[1,2,3]", &lim).result == JSONSCAN_OK);
	CHECK(scan("[1,2,3,4]", &lim).result == JSONSCAN_TOO_MANY_VALUES);
	CHECK(scan("{\"a\":1,\"b\":2,\"c\":3}", &lim).result == JSONSCAN_OK);
	CHECK(scan("[{},[],\"\",0]", &lim).result == JSONSCAN_TOO_MANY_VALUES);
	/* Refused at the first byte past the limit, whatever follows. */
	struct jsonscan s;
	jsonscan_init(&s, &lim);
	CHECK(jsonscan_feed(&s, "[0,0,0,0", 8) == JSONSCAN_TOO_MANY_VALUES);
	CHECK(s.values == 5);
	CHECK(jsonscan_feed(&s, "]", 1) == JSONSCAN_TOO_MANY_VALUES);
}

TEST(member_items_limit_exact)
{
	struct jsonscan_limits lim = {16, SIZE_MAX, 3};
	CHECK(scan("{\"notices\":[{},{},{}]}", &lim).result == JSONSCAN_OK);
	CHECK(scan("{\"notices\":[{},{},{},{}]}", &lim).result == JSONSCAN_TOO_MANY_ITEMS);
	/* Items are the array's own values, not theirs. */
	CHECK(scan("{\"notices\":[[1,2,3,4],{\"a\":[1,2,3,4]},\"x,y,z,w\"]}", &lim).result ==
	      JSONSCAN_OK);
	/* Each member array is counted on its own. */
	CHECK(scan("{\"a\":[1,2,3],\"b\":[1,2,3]}", &lim).result == JSONSCAN_OK);
	CHECK(scan("{\"a\":[1,2,3],\"b\":[1,2,3,4]}", &lim).result == JSONSCAN_TOO_MANY_ITEMS);
	/* Only under a top-level object: a top-level array or deeper ones are not. */
	CHECK(scan("[1,2,3,4,5]", &lim).result == JSONSCAN_OK);
	CHECK(scan("[[1,2,3,4,5]]", &lim).result == JSONSCAN_OK);
	CHECK(scan("{\"a\":{\"b\":[1,2,3,4,5]}}", &lim).result == JSONSCAN_OK);
	/* A key with an escape still gets the limit (a parser would decode it). */
	CHECK(scan("{\"notic\\u0065s\":[0,0,0,0]}", &lim).result == JSONSCAN_TOO_MANY_ITEMS);
	lim.max_member_items = 0;
	CHECK(scan("{\"notices\":[0,0,0,0,0,0]}", &lim).result == JSONSCAN_OK);
}

/* The result and counts of text fed in one piece, in two pieces at every
 * split, and byte by byte, must all be the same. */
static void same_in_any_chunks(const char *text, const struct jsonscan_limits *lim)
{
	size_t n = strlen(text);
	struct jsonscan whole = scan(text, lim);
	for (size_t cut = 0; cut <= n; cut++) {
		struct jsonscan s;
		jsonscan_init(&s, lim);
		jsonscan_feed(&s, text, cut);
		jsonscan_feed(&s, text + cut, n - cut);
		CHECK(s.result == whole.result && s.values == whole.values && s.depth == whole.depth &&
		      s.items == whole.items && s.in_string == whole.in_string);
		if (s.result != whole.result || s.values != whole.values)
			fprintf(stderr, "  split at %zu of %s\n", cut, text);
	}
	struct jsonscan s;
	jsonscan_init(&s, lim);
	for (size_t i = 0; i < n; i++)
		jsonscan_feed(&s, text + i, 1);
	CHECK(s.result == whole.result && s.values == whole.values && s.depth == whole.depth);
}

TEST(chunk_boundaries_anywhere)
{
	static const char *const texts[] = {
		"{\"notices\":[{\"to\":\"a@b.example\",\"vars\":{\"x\":\"\\\"]}\"}},{}]}",
		"[\"\\\\\",\"\\\\\\\"\",\"\\u005b\\u005d\",true,null,-0.5e10]",
		"{\"k\\\"{[\":[\"\\\\\\\\\",{\"\\\\\":0}],\"z\":\"\\/\"}",
		"{\"notices\":[0,1,2,3,4,5]}",
		"[[[[[[[[[[[[]]]]]]]]]]]]",
		"[1,2,3,4,5,6,7,8,9,10,11,12]",
	};
	struct jsonscan_limits lims[] = {WIDE, {5, 8, 4}, {16, SIZE_MAX, 2}};
	for (size_t t = 0; t < sizeof(texts) / sizeof(*texts); t++)
		for (size_t l = 0; l < sizeof(lims) / sizeof(*lims); l++)
			same_in_any_chunks(texts[t], &lims[l]);
	/* A chunk ending just after a backslash: the quote that follows is text. */
	struct jsonscan s;
	jsonscan_init(&s, &WIDE);
	jsonscan_feed(&s, "[\"a\\", 4);
	CHECK(s.in_string && s.escaped);
	jsonscan_feed(&s, "\"[", 2);
	CHECK(s.in_string && s.depth == 1);
	jsonscan_feed(&s, "\",0]", 4);
	CHECK(!s.in_string && s.depth == 0 && s.values == 3);
}

TEST(flood_refused_early)
{
	/* 32 MiB of {"notices":[{},{},...]} is refused within its first items. */
	struct jsonscan_limits lim = {16, 168000, 1000};
	struct jsonscan s;
	jsonscan_init(&s, &lim);
	jsonscan_feed(&s, "{\"notices\":[", 12);
	size_t fed = 12;
	while (s.result == JSONSCAN_OK && fed < (32u << 20)) {
		jsonscan_feed(&s, "{},", 3);
		fed += 3;
	}
	CHECK(s.result == JSONSCAN_TOO_MANY_ITEMS);
	CHECK(fed == 12 + 3 * 1001);
}
