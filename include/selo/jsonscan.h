/* jsonscan.h: an incremental scanner of JSON structure, fed a request body
 * chunk by chunk as it arrives, before anything is parsed. It follows only
 * what costs memory once a parser builds it: the nesting depth, the number
 * of values, and the items of each array that is a member of the top-level
 * object (a batch's "notices"); it stops at the first limit crossed, so a
 * body that would make millions of values is refused after a few kilobytes.
 * It does not validate: the body is parsed afterwards (jansson), which
 * refuses what is not JSON. On valid JSON, and on every prefix of valid
 * JSON, its counts are exact; on anything else they may only be higher.
 * Chunks may split the text anywhere, inside a string or an escape too. */
#ifndef SELO_JSONSCAN_H
#define SELO_JSONSCAN_H
#include <stddef.h>
#include <stdint.h>

/* The most a limit on depth may be (the scanner's stack is one word). */
#define JSONSCAN_DEPTH_MAX 64

struct jsonscan_limits {
	unsigned max_depth;      /* 1..JSONSCAN_DEPTH_MAX; "[]" has depth 1, "[[]]" 2 */
	size_t max_values;       /* objects, arrays, strings, numbers, literals; keys are not values */
	size_t max_member_items; /* items of one array member of the top-level object; 0: any */
};

enum jsonscan_result {
	JSONSCAN_OK,
	JSONSCAN_TOO_DEEP,        /* nesting beyond max_depth */
	JSONSCAN_TOO_MANY_VALUES, /* more than max_values values */
	JSONSCAN_TOO_MANY_ITEMS,  /* a top-level member array with more than max_member_items */
};

/* The scanner's state; read its counts, change it only through the calls. */
struct jsonscan {
	struct jsonscan_limits lim;
	enum jsonscan_result result; /* the first limit crossed; stays once set */
	size_t values;               /* values begun so far */
	size_t items;                /* items of the top-level member array being read */
	unsigned depth;              /* containers open now */
	uint64_t arrays;             /* bit d-1 set: the open container at depth d is an array */
	unsigned char in_string, escaped, in_scalar, want_key;
};

/* A scanner at the start of a body. max_depth beyond JSONSCAN_DEPTH_MAX is
 * taken as JSONSCAN_DEPTH_MAX. */
void jsonscan_init(struct jsonscan *s, const struct jsonscan_limits *lim);

/* Scans the next n bytes of the body. Returns JSONSCAN_OK while every
 * limit holds, else the first limit crossed (from then on, at once, for any
 * bytes: the caller may stop reading). */
enum jsonscan_result jsonscan_feed(struct jsonscan *s, const void *p, size_t n);

#endif
