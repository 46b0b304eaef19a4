/* tlog.c: RFC 9162 Merkle trees stored as C2SP tlog-tiles (see tlog.h and
 * docs/tlog.md).
 * - hashes: tlog_leaf_hash, tlog_node_hash, tlog_empty_root;
 * - from tiles, through the caller's reader: tlog_subtree_hash, tlog_root,
 *   tlog_range_hash, tlog_inclusion_proof, tlog_range_inclusion_proof,
 *   tlog_consistency_proof;
 * - verification: tlog_verify_inclusion, tlog_verify_consistency;
 * - layout: tlog_tile_path, tlog_tile_path_parse, tlog_tile_width, entry
 *   bundles;
 * - the sequencer's right edge: tlog_edge_*.
 * Failures: generators return -1 with err (400 "invalid-request" for sizes
 * or indexes that make no sense, the reader's error when a tile is missing);
 * verifiers return -1 for any proof that does not check, without saying why
 * (a proof is right or wrong). Nothing here allocates (except a digest
 * context for entries over 1 KiB), does I/O or keeps state between calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "selo/crypto.h"
#include "selo/tlog.h"

#define H TLOG_HASH_LEN
#define LEAF_STACK_MAX 1024 /* entries up to this size are hashed from a stack copy */

/* ---- Hashes */

void tlog_leaf_hash(const void *entry, size_t len, uint8_t out[32])
{
	if (len <= LEAF_STACK_MAX) {
		uint8_t b[1 + LEAF_STACK_MAX];
		b[0] = 0x00;
		if (len)
			memcpy(b + 1, entry, len);
		sha256(b, len + 1, out);
		return;
	}
	static const uint8_t prefix = 0x00;
	unsigned int olen = H;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, &prefix, 1) ||
	    !EVP_DigestUpdate(c, entry, len) || !EVP_DigestFinal_ex(c, out, &olen)) {
		/* Same policy as crypto.c: a hash that silently fails would
		 * put garbage in a log that can never be rewritten. */
		fprintf(stderr, "selo: SHA-256 failed\n");
		abort();
	}
	EVP_MD_CTX_free(c);
}

/* out may alias left or right: the input is copied first. */
void tlog_node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32])
{
	uint8_t b[1 + 2 * H];
	b[0] = 0x01;
	memcpy(b + 1, left, H);
	memcpy(b + 1 + H, right, H);
	sha256(b, sizeof(b), out);
}

void tlog_empty_root(uint8_t out[32])
{
	sha256("", 0, out);
}

/* The root of the perfect tree over `count` (a power of two, <= 256)
 * consecutive hashes. A stack of pending left subtrees keeps it one pass:
 * after pushing hash i, merge once per trailing zero bit of i + 1. */
static void fold_perfect(const uint8_t *h, unsigned count, uint8_t out[32])
{
	uint8_t stack[TLOG_TILE_HEIGHT + 1][H];
	int top = 0;
	for (unsigned i = 0; i < count; i++) {
		memcpy(stack[top++], h + (size_t)i * H, H);
		for (unsigned k = i + 1; !(k & 1); k >>= 1) {
			top--;
			tlog_node_hash(stack[top - 1], stack[top], stack[top - 1]);
		}
	}
	memcpy(out, stack[0], H);
}

/* Largest power of two strictly less than n (n >= 2): RFC 9162's k. */
static uint64_t split_point(uint64_t n)
{
	return 1ull << (63 - __builtin_clzll(n - 1));
}

static int height_of(uint64_t pow2)
{
	return __builtin_ctzll(pow2);
}

/* A valid MTC subtree [start, end): see tlog.h. */
static int range_valid(uint64_t start, uint64_t end)
{
	if (start > end)
		return 0;
	uint64_t n = end - start;
	if (n <= 1 || start == 0)
		return 1;
	if (n > (1ull << 63))
		return 0; /* its power of two would be 2^64: only start 0 fits */
	uint64_t ceil = 1ull << (64 - __builtin_clzll(n - 1));
	return (start & (ceil - 1)) == 0;
}

/* ---- Reading hashes from tiles */

/* A cursor over the caller's reader that remembers the last tile: the
 * hashes of a proof come in runs from the same few tiles, and the reader's
 * data stays valid until its next call, so a run costs one read. `size` is
 * the tree the hashes belong to (0: unknown); asking for the tile's whole
 * width in that tree lets later hashes from the same tile reuse the read. */
struct tiles {
	tlog_tile_reader rd;
	void *arg;
	struct selo_err *err;
	uint64_t size;
	int level;
	uint64_t index;
	unsigned width;
	const uint8_t *data; /* NULL: nothing held */
};

static void tiles_init(struct tiles *t, tlog_tile_reader rd, void *arg, uint64_t size,
		       struct selo_err *err)
{
	*t = (struct tiles){rd, arg, err, size, -1, 0, 0, NULL};
}

static int tiles_get(struct tiles *t, int level, uint64_t index, unsigned need)
{
	if (t->data && t->level == level && t->index == index && t->width >= need)
		return 0;
	unsigned want = need;
	if (t->size) {
		unsigned w = tlog_tile_width(level, index, t->size);
		if (w > want)
			want = w;
	}
	t->data = NULL; /* whatever the reader said before is no longer valid */
	const uint8_t *data = NULL;
	if (t->rd(t->arg, level, index, want, &data, t->err) != 0) {
		if (t->err && t->err->status == 0)
			err_set(t->err, 500, "log-corrupt", "log tile %d/%llu (%u hashes) could not be read",
				level, (unsigned long long)index, want);
		return -1;
	}
	if (!data)
		return err_set(t->err, 500, "internal", "the tile reader returned no data for tile "
			       "%d/%llu", level, (unsigned long long)index);
	t->level = level;
	t->index = index;
	t->width = want;
	t->data = data;
	return 0;
}

/* Hash of the perfect subtree of 2^height leaves at `start` (a multiple of
 * 2^height): with height = 8l + j, the fold of 2^j consecutive entries of a
 * level-l tile. Aligned, so those entries never straddle two tiles. */
static int perfect_hash(struct tiles *t, uint64_t start, int height, uint8_t out[32])
{
	int level = height / TLOG_TILE_HEIGHT;
	unsigned count = 1u << (height % TLOG_TILE_HEIGHT);
	uint64_t entry = start >> (level * TLOG_TILE_HEIGHT);
	uint64_t index = entry >> TLOG_TILE_HEIGHT;
	unsigned pos = (unsigned)(entry & (TLOG_TILE_WIDTH - 1));
	if (tiles_get(t, level, index, pos + count) != 0)
		return -1;
	fold_perfect(t->data + (size_t)pos * H, count, out);
	return 0;
}

/* MTH(D[start:end]) for a valid range: its leaves split, by the binary
 * digits of end - start, into perfect subtrees from the largest on the
 * left, and the RFC's recursion folds them from the right. */
static int range_hash(struct tiles *t, uint64_t start, uint64_t end, uint8_t out[32])
{
	uint64_t n = end - start;
	if (n == 0) {
		tlog_empty_root(out);
		return 0;
	}
	uint8_t part[64][H];
	int k = 0;
	uint64_t pos = start;
	for (int h = 63; h >= 0; h--) {
		if (!((n >> h) & 1))
			continue;
		if (perfect_hash(t, pos, h, part[k++]) != 0)
			return -1;
		pos += 1ull << h;
	}
	memcpy(out, part[k - 1], H);
	for (int i = k - 2; i >= 0; i--)
		tlog_node_hash(part[i], out, out);
	return 0;
}

int tlog_subtree_hash(uint64_t start, int height, tlog_tile_reader rd, void *arg, uint8_t out[32],
		      struct selo_err *err)
{
	if (height < 0 || height > 63)
		return err_set(err, 400, "invalid-request", "subtree height %d is not 0..63", height);
	uint64_t span = 1ull << height;
	if ((start & (span - 1)) != 0 || start > UINT64_MAX - (span - 1))
		return err_set(err, 400, "invalid-request", "no subtree of 2^%d leaves starts at leaf "
			       "%llu", height, (unsigned long long)start);
	struct tiles t;
	tiles_init(&t, rd, arg, 0, err);
	return perfect_hash(&t, start, height, out);
}

int tlog_range_hash(uint64_t start, uint64_t end, tlog_tile_reader rd, void *arg, uint8_t out[32],
		    struct selo_err *err)
{
	if (!range_valid(start, end))
		return err_set(err, 400, "invalid-request", "[%llu, %llu) is not a subtree of the log",
			       (unsigned long long)start, (unsigned long long)end);
	struct tiles t;
	tiles_init(&t, rd, arg, end, err);
	return range_hash(&t, start, end, out);
}

int tlog_root(uint64_t size, tlog_tile_reader rd, void *arg, uint8_t out[32],
	      struct selo_err *err)
{
	return tlog_range_hash(0, size, rd, arg, out, err);
}

/* ---- Making proofs */

static void reverse(uint8_t (*p)[32], size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		uint8_t tmp[H];
		memcpy(tmp, p[i], H);
		memcpy(p[i], p[n - 1 - i], H);
		memcpy(p[n - 1 - i], tmp, H);
	}
}

/* PATH(index - start, D[start:end]) (RFC 9162 §2.1.3.1), walking down from
 * the root: at each split the sibling of the side holding the leaf joins
 * the path. That gives root-to-leaf order; the RFC wants leaf to root. Each
 * step at least halves the range, so there are at most 64 hashes. */
static int inclusion_path(struct tiles *t, uint64_t index, uint64_t start, uint64_t end,
			  uint8_t proof[TLOG_MAX_PROOF][32], size_t *np)
{
	size_t n = 0;
	uint64_t lo = start, hi = end;
	while (hi - lo > 1) {
		uint64_t k = split_point(hi - lo);
		int r;
		if (index < lo + k) {
			r = range_hash(t, lo + k, hi, proof[n++]);
			hi = lo + k;
		} else {
			r = perfect_hash(t, lo, height_of(k), proof[n++]);
			lo += k;
		}
		if (r != 0)
			return -1;
	}
	reverse(proof, n);
	*np = n;
	return 0;
}

int tlog_range_inclusion_proof(uint64_t index, uint64_t start, uint64_t end, tlog_tile_reader rd,
			       void *arg, uint8_t proof[TLOG_MAX_PROOF][32], size_t *n,
			       struct selo_err *err)
{
	*n = 0;
	if (!range_valid(start, end))
		return err_set(err, 400, "invalid-request", "[%llu, %llu) is not a subtree of the log",
			       (unsigned long long)start, (unsigned long long)end);
	if (index < start || index >= end)
		return err_set(err, 400, "invalid-request", "leaf %llu is not in [%llu, %llu)",
			       (unsigned long long)index, (unsigned long long)start,
			       (unsigned long long)end);
	struct tiles t;
	tiles_init(&t, rd, arg, end, err);
	return inclusion_path(&t, index, start, end, proof, n);
}

int tlog_inclusion_proof(uint64_t index, uint64_t size, tlog_tile_reader rd, void *arg,
			 uint8_t proof[TLOG_MAX_PROOF][32], size_t *n, struct selo_err *err)
{
	*n = 0;
	if (index >= size)
		return err_set(err, 400, "invalid-request", "leaf %llu is not in the tree of %llu "
			       "leaves", (unsigned long long)index, (unsigned long long)size);
	return tlog_range_inclusion_proof(index, 0, size, rd, arg, proof, n, err);
}

/* PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (RFC 9162 §2.1.4.1), walking
 * down: while the old tree's edge m is inside the current subtree
 * [lo, hi), the right part joins the proof when m is in the left half, the
 * (perfect) left half when m is beyond it. The walk ends at a subtree
 * [lo, m), which is perfect because it is always reached by a left step;
 * it is part of the proof unless it is the whole old tree (b still true).
 * At most 63 split steps plus that one hash. */
static int consistency_path(struct tiles *t, uint64_t m, uint64_t n,
			    uint8_t proof[TLOG_MAX_PROOF][32], size_t *np)
{
	size_t k_out = 0;
	uint64_t lo = 0, hi = n;
	int whole = 1;
	while (m < hi) {
		uint64_t k = split_point(hi - lo);
		int r;
		if (m - lo <= k) {
			r = range_hash(t, lo + k, hi, proof[k_out++]);
			hi = lo + k;
		} else {
			r = perfect_hash(t, lo, height_of(k), proof[k_out++]);
			lo += k;
			whole = 0;
		}
		if (r != 0)
			return -1;
	}
	if (!whole && range_hash(t, lo, hi, proof[k_out++]) != 0)
		return -1;
	reverse(proof, k_out);
	*np = k_out;
	return 0;
}

int tlog_consistency_proof(uint64_t m, uint64_t n, tlog_tile_reader rd, void *arg,
			   uint8_t proof[TLOG_MAX_PROOF][32], size_t *np, struct selo_err *err)
{
	*np = 0;
	if (m == 0 || m > n)
		return err_set(err, 400, "invalid-request", "no consistency proof from size %llu to "
			       "size %llu (need 0 < old <= new)", (unsigned long long)m,
			       (unsigned long long)n);
	if (m == n)
		return 0;
	struct tiles t;
	tiles_init(&t, rd, arg, n, err);
	return consistency_path(&t, m, n, proof, np);
}

/* ---- Verifying proofs */

/* RFC 9162 step "right-shift fn and sn until LSB(fn) is set or fn is 0",
 * written so that fn == 0 stops it: the public bug `while !lsb(fn) || fn ==
 * 0` spins forever there. At most 64 shifts. */
static void climb_right_edge(uint64_t *fn, uint64_t *sn)
{
	while (*fn != 0 && !(*fn & 1)) {
		*fn >>= 1;
		*sn >>= 1;
	}
}

/* RFC 9162 §2.1.3.2. fn is the node's index at the current level, sn the
 * last node's: each proof hash takes one level, so a proof longer than the
 * tree is tall meets sn == 0 and fails, and the loop is bounded by n. */
int tlog_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[32],
			  const uint8_t (*proof)[32], size_t n, const uint8_t root[32])
{
	if (index >= size)
		return -1;
	uint64_t fn = index, sn = size - 1;
	uint8_t r[H];
	memcpy(r, leaf, H);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return -1;
		if ((fn & 1) || fn == sn) {
			tlog_node_hash(proof[i], r, r);
			if (!(fn & 1))
				climb_right_edge(&fn, &sn);
		} else {
			tlog_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(r, root, H) == 0 ? 0 : -1;
}

/* RFC 9162 §2.1.4.2 with transparency-dev's edge cases (merkle
 * proof/verify.go): old > new fails; old == new needs an empty proof and
 * equal roots; old == 0 fails, even 0 == 0 (a proof from the empty tree
 * proves nothing; C2SP tlog-witness's "old 0 is always consistent" is the
 * witness's rule to apply before calling this). */
int tlog_verify_consistency(uint64_t m, uint64_t n, const uint8_t rm[32], const uint8_t rn[32],
			    const uint8_t (*proof)[32], size_t np)
{
	if (m == 0 || m > n)
		return -1;
	if (m == n)
		return np == 0 && memcmp(rm, rn, H) == 0 ? 0 : -1;
	if (np == 0)
		return -1;
	/* Step 2: when m is a power of two the old root is itself a node of
	 * the new tree and the proof leaves it out; start from it. */
	size_t i = 0;
	const uint8_t *seed = (m & (m - 1)) == 0 ? rm : proof[i++];
	uint64_t fn = m - 1, sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	uint8_t fr[H], sr[H];
	memcpy(fr, seed, H);
	memcpy(sr, seed, H);
	for (; i < np; i++) {
		if (sn == 0)
			return -1;
		if ((fn & 1) || fn == sn) {
			tlog_node_hash(proof[i], fr, fr);
			tlog_node_hash(proof[i], sr, sr);
			if (!(fn & 1))
				climb_right_edge(&fn, &sn);
		} else {
			tlog_node_hash(sr, proof[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(fr, rm, H) == 0 && memcmp(sr, rn, H) == 0 ? 0 : -1;
}

/* ---- Tile paths and widths */

/* N in 3-digit groups, all but the last prefixed 'x': 1234067 ->
 * "x001/x234/067". out has room for 7 groups (2^64 - 1 has 20 digits). */
#define INDEX_TEXT_MAX 40
static void format_index(uint64_t index, char out[INDEX_TEXT_MAX])
{
	unsigned group[7];
	int ng = 0;
	do {
		group[ng++] = (unsigned)(index % 1000);
		index /= 1000;
	} while (index);
	size_t o = 0;
	for (int g = ng - 1; g >= 0; g--)
		o += (size_t)snprintf(out + o, INDEX_TEXT_MAX - o, g ? "x%03u/" : "%03u", group[g]);
}

int tlog_tile_path(int level, uint64_t index, unsigned width, char *out, size_t n)
{
	if (!out || level < -1 || level > 63 || width < 1 || width > TLOG_TILE_WIDTH)
		return -1;
	char num[INDEX_TEXT_MAX];
	format_index(index, num);
	int k = level < 0 ? snprintf(out, n, "tile/entries/%s", num)
			  : snprintf(out, n, "tile/%d/%s", level, num);
	if (k < 0 || (size_t)k >= n)
		return -1;
	if (width == TLOG_TILE_WIDTH)
		return 0;
	int p = snprintf(out + k, n - (size_t)k, ".p/%u", width);
	return p < 0 || (size_t)p >= n - (size_t)k ? -1 : 0;
}

/* Exactly `digits` decimal digits at *s (advanced). */
static int take_digits(const char **s, int digits, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < digits; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return -1;
		*v = *v * 10 + (unsigned)(c - '0');
	}
	*s += digits;
	return 0;
}

/* One to three digits at *s (advanced). */
static int take_small(const char **s, unsigned *v)
{
	int d = 0;
	while (d < 3 && (*s)[d] >= '0' && (*s)[d] <= '9')
		d++;
	return d == 0 ? -1 : take_digits(s, d, v);
}

static int parse_index(const char **s, uint64_t *index)
{
	uint64_t acc = 0;
	for (;;) {
		int more = **s == 'x';
		*s += more;
		unsigned g;
		if (take_digits(s, 3, &g) != 0 || acc > (UINT64_MAX - g) / 1000)
			return -1;
		acc = acc * 1000 + g;
		if (!more)
			break;
		if (**s != '/')
			return -1;
		(*s)++;
	}
	*index = acc;
	return 0;
}

/* Parsed loosely, then required to be exactly what tlog_tile_path writes:
 * that one comparison rules out leading zeros ("01", "x000/", ".p/07"),
 * widths 0 or 256 after .p/, and anything trailing. */
int tlog_tile_path_parse(const char *path, int *level, uint64_t *index, unsigned *width)
{
	if (!path || strnlen(path, TLOG_TILE_PATH_MAX) >= TLOG_TILE_PATH_MAX ||
	    strncmp(path, "tile/", 5) != 0)
		return -1;
	const char *s = path + 5;
	int l;
	if (strncmp(s, "entries/", 8) == 0) {
		l = -1;
		s += 8;
	} else {
		unsigned v;
		if (take_small(&s, &v) != 0 || v > 63 || *s != '/')
			return -1;
		l = (int)v;
		s++;
	}
	uint64_t idx;
	if (parse_index(&s, &idx) != 0)
		return -1;
	unsigned w = TLOG_TILE_WIDTH;
	if (strncmp(s, ".p/", 3) == 0) {
		s += 3;
		if (take_small(&s, &w) != 0 || w < 1 || w >= TLOG_TILE_WIDTH)
			return -1;
	}
	char again[TLOG_TILE_PATH_MAX];
	if (*s != '\0' || tlog_tile_path(l, idx, w, again, sizeof(again)) != 0 ||
	    strcmp(again, path) != 0)
		return -1;
	*level = l;
	*index = idx;
	*width = w;
	return 0;
}

unsigned tlog_tile_width(int level, uint64_t index, uint64_t size)
{
	if (level < -1 || level >= TLOG_MAX_LEVELS)
		return 0;
	if (level < 0)
		level = 0; /* entry bundles follow the level-0 tiles */
	uint64_t entries = size >> (level * TLOG_TILE_HEIGHT);
	uint64_t full = entries >> TLOG_TILE_HEIGHT;
	if (index < full)
		return TLOG_TILE_WIDTH;
	if (index == full)
		return (unsigned)(entries & (TLOG_TILE_WIDTH - 1));
	return 0;
}

/* ---- Entry bundles */

int tlog_bundle_append(uint8_t *out, size_t cap, size_t *len, const void *entry, size_t n)
{
	if (n > TLOG_ENTRY_MAX || *len > cap || cap - *len < 2 + n)
		return -1;
	out[*len] = (uint8_t)(n >> 8);
	out[*len + 1] = (uint8_t)n;
	if (n)
		memcpy(out + *len + 2, entry, n);
	*len += 2 + n;
	return 0;
}

int tlog_bundle_next(const uint8_t *b, size_t n, size_t *off, const uint8_t **entry, size_t *len)
{
	if (*off == n)
		return 0;
	if (*off > n || n - *off < 2)
		return -1;
	size_t l = (size_t)b[*off] << 8 | b[*off + 1];
	if (n - *off - 2 < l)
		return -1;
	*entry = b + *off + 2;
	*len = l;
	*off += 2 + l;
	return 1;
}

/* ---- The edge */

void tlog_edge_init(struct tlog_edge *e)
{
	e->size = 0;
	memset(e->width, 0, sizeof(e->width));
}

int tlog_edge_load(struct tlog_edge *e, uint64_t size, tlog_tile_reader rd, void *arg,
		   struct selo_err *err)
{
	tlog_edge_init(e);
	for (int level = 0; level < TLOG_MAX_LEVELS; level++) {
		uint64_t entries = size >> (level * TLOG_TILE_HEIGHT);
		unsigned w = (unsigned)(entries & (TLOG_TILE_WIDTH - 1));
		if (w == 0)
			continue;
		const uint8_t *data = NULL;
		if (rd(arg, level, entries >> TLOG_TILE_HEIGHT, w, &data, err) != 0 || !data) {
			if (err && err->status == 0)
				err_set(err, 500, "log-corrupt", "partial tile %d/%llu (%u hashes) of the "
					"tree of %llu leaves could not be read", level,
					(unsigned long long)(entries >> TLOG_TILE_HEIGHT), w,
					(unsigned long long)size);
			tlog_edge_init(e);
			return -1;
		}
		memcpy(e->hash[level], data, (size_t)w * H);
		e->width[level] = w;
	}
	e->size = size;
	return 0;
}

/* The new hash is written into the free slot after each level's partial
 * tile and the widths change only once every full() has said yes, so a
 * refused tile leaves the edge as it was; the retry hands the same
 * (immutable) tiles to full() again. */
int tlog_edge_append(struct tlog_edge *e, const uint8_t leaf[32], tlog_full_tile_fn full,
		     void *arg)
{
	if (e->size == UINT64_MAX)
		return -1;
	uint64_t size = e->size + 1;
	int level = 0;
	memcpy(e->hash[0][e->width[0]], leaf, H);
	while (e->width[level] + 1 == TLOG_TILE_WIDTH && level + 1 < TLOG_MAX_LEVELS) {
		uint64_t index = (size >> ((level + 1) * TLOG_TILE_HEIGHT)) - 1;
		if (full) {
			int r = full(arg, level, index, &e->hash[level][0][0]);
			if (r != 0)
				return r;
		}
		fold_perfect(&e->hash[level][0][0], TLOG_TILE_WIDTH,
			     e->hash[level + 1][e->width[level + 1]]);
		level++;
	}
	for (int l = 0; l < level; l++)
		e->width[l] = 0;
	e->width[level]++;
	e->size = size;
	return 0;
}

/* The binary digits of the size, read in base 256, are the edge: level l's
 * partial tile holds digit l hashes, and each set bit j of it is a perfect
 * subtree of 2^(8l+j) leaves. Smallest (rightmost) first, folded leftwards. */
void tlog_edge_root(const struct tlog_edge *e, uint8_t out[32])
{
	int have = 0;
	for (int level = 0; level < TLOG_MAX_LEVELS; level++) {
		unsigned w = e->width[level];
		for (int j = 0; j < TLOG_TILE_HEIGHT; j++) {
			if (!(w & (1u << j)))
				continue;
			unsigned first = w & ~((2u << j) - 1);
			uint8_t h[H];
			fold_perfect(e->hash[level][first], 1u << j, h);
			if (have) {
				tlog_node_hash(h, out, out);
			} else {
				memcpy(out, h, H);
				have = 1;
			}
		}
	}
	if (!have)
		tlog_empty_root(out);
}

void tlog_edge_partial(const struct tlog_edge *e, int level, uint64_t *index, unsigned *width,
		       const uint8_t **data)
{
	*index = 0;
	*width = 0;
	*data = NULL;
	if (level < 0 || level >= TLOG_MAX_LEVELS || e->width[level] == 0)
		return;
	*index = (e->size >> (level * TLOG_TILE_HEIGHT)) >> TLOG_TILE_HEIGHT;
	*width = e->width[level];
	*data = &e->hash[level][0][0];
}
