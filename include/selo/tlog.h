/* tlog.h: RFC 9162 (RFC 6962) Merkle tree math and C2SP tlog-tiles layout,
 * with no I/O: leaf and node hashes, roots, inclusion and consistency
 * proofs (made from stored tiles through a reader callback, and verified),
 * tile paths, and the "edge" the sequencer keeps in memory while it appends.
 *
 * Tiles (C2SP tlog-tiles): height 8, so a full tile holds 256 hashes (8192
 * bytes). Entry i of tile n at level l is the hash of the complete subtree of
 * leaves [(n*256+i)*256^l, (n*256+i+1)*256^l). A tile only ever grows: the
 * first w hashes of a tile never change once written, so a partial tile of
 * width w is a prefix of the later full tile. Every hash a proof or a root
 * needs is either such an entry or the fold (perfect binary tree) of up to
 * 128 consecutive entries of one tile; readers hand out tiles, this module
 * does the folding. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 with
 * the transparency-dev edge cases (documented in tlog.c). */
#ifndef SELO_TLOG_H
#define SELO_TLOG_H
#include <stddef.h>
#include <stdint.h>
#include "selo/err.h"

#define TLOG_HASH_LEN 32
#define TLOG_TILE_HEIGHT 8
#define TLOG_TILE_WIDTH 256
#define TLOG_TILE_BYTES (TLOG_TILE_WIDTH * TLOG_HASH_LEN)
#define TLOG_MAX_LEVELS 8   /* 256^8 = 2^64 leaves */
#define TLOG_MAX_PROOF 64

void tlog_leaf_hash(const void *entry, size_t len, uint8_t out[32]);   /* SHA-256(0x00||entry) */
void tlog_node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32]);
void tlog_empty_root(uint8_t out[32]);                                 /* SHA-256("") */

/* Reads the tile at (level, index) with at least `width` hashes (1..256):
 * sets *data to width*32 bytes (or more) owned by the reader, valid until the
 * next call. Returns 0, or -1 (with err) when the tile is not there. A wider
 * tile than asked (a later partial one, or the full tile) is right too: the
 * first w hashes of a tile never change, so old sizes stay provable after
 * their partial tiles are replaced. */
typedef int (*tlog_tile_reader)(void *arg, int level, uint64_t index, unsigned width,
				const uint8_t **data, struct selo_err *err);

/* Hash of the complete subtree of 2^height leaves starting at leaf
 * start (start a multiple of 2^height), from tiles. */
int tlog_subtree_hash(uint64_t start, int height, tlog_tile_reader rd, void *arg, uint8_t out[32],
		      struct selo_err *err);
/* Root of the first `size` leaves (size 0: the empty root). */
int tlog_root(uint64_t size, tlog_tile_reader rd, void *arg, uint8_t out[32],
	      struct selo_err *err);
/* Inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162
 * §2.1.3.1 order: leaf to root); *n hashes into proof. */
int tlog_inclusion_proof(uint64_t index, uint64_t size, tlog_tile_reader rd, void *arg,
			 uint8_t proof[TLOG_MAX_PROOF][32], size_t *n, struct selo_err *err);
/* Consistency proof from size m to size n (0 < m <= n; m == n gives none). */
int tlog_consistency_proof(uint64_t m, uint64_t n, tlog_tile_reader rd, void *arg,
			   uint8_t proof[TLOG_MAX_PROOF][32], size_t *np, struct selo_err *err);
/* Subtrees in the sense of Merkle Tree Certificates (draft-ietf-plants-
 * merkle-tree-certs): the range [start, end) of leaves, valid when start ==
 * 0, start == end, or start is a multiple of the smallest power of two >=
 * end - start. Such a range is a node of every tree of >= end leaves.
 * tlog_range_hash gives MTH(D[start:end]) (the empty root when start ==
 * end); tlog_range_inclusion_proof gives PATH(index - start, D[start:end]),
 * which tlog_verify_inclusion checks as (index - start, end - start) against
 * that hash. tlog_root and tlog_inclusion_proof are the start == 0 cases. */
int tlog_range_hash(uint64_t start, uint64_t end, tlog_tile_reader rd, void *arg, uint8_t out[32],
		    struct selo_err *err);
int tlog_range_inclusion_proof(uint64_t index, uint64_t start, uint64_t end, tlog_tile_reader rd,
			       void *arg, uint8_t proof[TLOG_MAX_PROOF][32], size_t *n,
			       struct selo_err *err);

/* 0 when the proof shows leaf hash `leaf` at `index` in the tree of `size`
 * leaves whose root is `root`; -1 otherwise. */
int tlog_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[32],
			  const uint8_t (*proof)[32], size_t n, const uint8_t root[32]);
/* 0 when the proof shows the tree of size m (root rm) is a prefix of the tree
 * of size n (root rn); -1 otherwise. m == 0 is refused (transparency-dev). */
int tlog_verify_consistency(uint64_t m, uint64_t n, const uint8_t rm[32], const uint8_t rn[32],
			    const uint8_t (*proof)[32], size_t np);

/* C2SP tile paths, relative to the log prefix: "tile/<L>/<N>[.p/<W>]" and
 * "tile/entries/<N>[.p/<W>]" (level -1 means entries). N is written in
 * 3-digit groups, all but the last prefixed 'x' (1234067 -> x001/x234/067).
 * width 256 means a full tile (no .p/ part). */
#define TLOG_TILE_PATH_MAX 64  /* longest path + NUL: "tile/entries/x018/.../615.p/255" */
int tlog_tile_path(int level, uint64_t index, unsigned width, char *out, size_t n);
/* Parses such a path strictly (no leading zeros beyond the 3-digit groups,
 * width 1..255 after .p/); 0 or -1. */
int tlog_tile_path_parse(const char *path, int *level, uint64_t *index, unsigned *width);
/* Width of tile (level, index) in a tree of `size` leaves: 256 for a full
 * tile, 1..255 for the rightmost partial one, 0 when it does not exist. */
unsigned tlog_tile_width(int level, uint64_t index, uint64_t size);

/* Entry bundles (tile/entries/...): each entry is a big-endian uint16
 * length and then its bytes, so an entry is at most 65535 bytes.
 * tlog_bundle_append adds one entry at out[*len] (cap bytes in all) and
 * advances *len; -1 when the entry is too long or does not fit.
 * tlog_bundle_next reads the entry at b[*off] (n bytes in all): 1 with
 * (*entry, *len) pointing into b and *off advanced, 0 at the end, -1 when
 * the bundle is truncated. */
#define TLOG_ENTRY_MAX 65535
int tlog_bundle_append(uint8_t *out, size_t cap, size_t *len, const void *entry, size_t n);
int tlog_bundle_next(const uint8_t *b, size_t n, size_t *off, const uint8_t **entry, size_t *len);

/* The right edge of the tree, kept in memory by the sequencer: the partial
 * (rightmost, not yet full) tile of each level. Appending leaf hashes fills
 * the level-0 tile; a tile that becomes full is handed to `full` and its
 * subtree hash (the fold of its 256 hashes) is appended one level up. */
struct tlog_edge {
	uint64_t size;                                 /* leaves appended */
	unsigned width[TLOG_MAX_LEVELS];               /* hashes in each level's partial tile */
	uint8_t hash[TLOG_MAX_LEVELS][TLOG_TILE_WIDTH][32];
};
typedef int (*tlog_full_tile_fn)(void *arg, int level, uint64_t index,
				 const uint8_t data[TLOG_TILE_BYTES]);
/* An empty edge (size 0). */
void tlog_edge_init(struct tlog_edge *e);
/* Rebuilds the edge of a tree of `size` leaves from its stored tiles (the
 * partial tile of each level). Nothing is checked: compare tlog_edge_root
 * with the stored root. On failure the edge is empty (size 0). */
int tlog_edge_load(struct tlog_edge *e, uint64_t size, tlog_tile_reader rd, void *arg,
		   struct selo_err *err);
/* Appends one leaf hash; calls full() for each tile that becomes full (a
 * non-zero return stops and is returned). On any failure the edge is as it
 * was, so the append can be retried (full() then sees the same tiles
 * again); -1 when the tree already has 2^64 - 1 leaves. full may be NULL. */
int tlog_edge_append(struct tlog_edge *e, const uint8_t leaf[32], tlog_full_tile_fn full,
		     void *arg);
/* Root of the tree of e->size leaves. */
void tlog_edge_root(const struct tlog_edge *e, uint8_t out[32]);
/* The partial tile of `level` as stored: (index, width, bytes) of the
 * rightmost tile; width 0 when the level has no partial tile. */
void tlog_edge_partial(const struct tlog_edge *e, int level, uint64_t *index, unsigned *width,
		       const uint8_t **data);

#endif
