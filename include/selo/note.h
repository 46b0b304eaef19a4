/* note.h: C2SP signed notes (signed-note.md) with Ed25519 keys (type 0x01),
 * and C2SP tlog-checkpoints (tlog-checkpoint.md). A note is text (ending in
 * "\n"), a blank line, and signature lines "— <name> <base64(keyid||sig)>\n"
 * (U+2014 EM DASH then a space). The signed message is the text including
 * its final newline. Verification: signatures by unknown (name, id) pairs
 * are ignored, a known key whose signature fails rejects the note, at least
 * one known signature must verify, and notes with more than 100 signature
 * lines are refused (as Go's x/mod). Key IDs and verifier-key strings: see
 * keys.h (note_key_id, note_vkey_format, note_vkey_parse). */
#ifndef SELO_NOTE_H
#define SELO_NOTE_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"

/* An Ed25519 note key. Read-only once made: threads may share one signer
 * and call note_sign at the same time. */
struct note_signer;

/* From DIR/keys/log.key (keys_load_note_key). */
int note_signer_load(const char *keys_dir, struct note_signer **out, struct selo_err *err);
/* From a name and a 32-byte Ed25519 seed (tests, vectors). */
int note_signer_new(const char *name, const uint8_t seed[32], struct note_signer **out,
		    struct selo_err *err);
void note_signer_free(struct note_signer *s);
const char *note_signer_name(const struct note_signer *s);
/* The verifier key string of this signer ("<name>+<id>+<base64>"). */
const char *note_signer_vkey(const struct note_signer *s);
/* Appends text, a blank line and this signer's signature line to out. text
 * must be valid note text (UTF-8, ends in "\n", no other control characters
 * than "\n", no blank line at its end). */
int note_sign(const struct note_signer *s, const char *text, size_t len, struct buf *out,
	      struct selo_err *err);

struct note_verifier {
	char name[256];
	uint32_t id;
	uint8_t pub[32];
};
/* Parses a verifier key string. */
int note_verifier_parse(const char *vkey, struct note_verifier *v, struct selo_err *err);
/* Verifies note (len bytes) against the known keys; on success appends the
 * note's text (without signatures) to text and returns 0. -1 with err on any
 * failure, naming it (malformed, unknown keys only, bad signature, ...).
 * err->type tells them apart: "note-malformed" (status 400),
 * "note-unverified" (403: no signature by a known key), and
 * "note-invalid-signature" (403: a known key's signature fails). */
int note_verify(const struct note_verifier *keys, size_t nkeys, const char *note, size_t len,
		struct buf *text, struct selo_err *err);

/* Signature lines a note may carry (Go's x/mod limit; C2SP asks for 16). */
#define NOTE_MAX_SIGS 100

/* One signature line as parsed, not verified. Pointers go into the note. */
struct note_sig {
	const char *line;  /* from the dash to the "\n", inclusive */
	size_t linelen;
	const char *name;  /* key name, namelen bytes, not NUL-terminated */
	size_t namelen;
	const char *b64;   /* base64 of key ID || signature, b64len bytes */
	size_t b64len;
	uint32_t id;       /* key ID (big-endian first 4 decoded bytes) */
	size_t siglen;     /* decoded bytes after the key ID (at least 1) */
};
/* Parses a signed note without checking any signature (to read the origin
 * of a checkpoint before choosing keys, or to look at cosignatures): the
 * text is note[0..*textlen) (ending in "\n"), the signature lines go into
 * sigs (*nsigs of them, 1..NOTE_MAX_SIGS). -1 ("note-malformed", 400) when
 * it is not a well-formed note. */
int note_parse(const char *note, size_t len, size_t *textlen, struct note_sig sigs[NOTE_MAX_SIGS],
	       size_t *nsigs, struct selo_err *err);
/* note_verify, also saying who signed: verified (nkeys flags, or NULL) gets
 * verified[i] = 1 when keys[i]'s signature verified, 0 otherwise; unknown
 * (or NULL) gets the distinct signature lines by keys not in keys (each
 * ending in "\n"), for example witness cosignatures. text, verified and
 * unknown are only written on success. */
int note_open(const struct note_verifier *keys, size_t nkeys, const char *note, size_t len,
	      struct buf *text, unsigned char *verified, struct buf *unknown,
	      struct selo_err *err);

/* A checkpoint body: origin, tree size, root hash (and no extension lines
 * from Selo; extension lines are accepted and ignored when parsing). */
struct checkpoint {
	char origin[256];
	uint64_t size;
	uint8_t root[32];
};
/* "<origin>\n<size>\n<base64 root>\n". */
void checkpoint_format(const struct checkpoint *c, struct buf *out);
/* Strict: origin non-empty, size decimal without leading zeros, root
 * base64 of exactly 32 bytes, every line ends in "\n". Extension lines
 * must be non-empty. Size 0 must carry SHA-256("") (tlog-witness; status
 * 422). Everything else is status 400, type "checkpoint-malformed". */
int checkpoint_parse(const char *text, size_t len, struct checkpoint *c, struct selo_err *err);
/* checkpoint_parse that also says where the extension lines start: *ext_off
 * is the offset in text of the first one (len when there are none). */
int checkpoint_parse_ext(const char *text, size_t len, struct checkpoint *c, size_t *ext_off,
			 struct selo_err *err);
/* The size rule of a checkpoint (ASCII decimal, no sign, no leading zeros,
 * "0" allowed, fits in 64 bits) on s[0..n); tlog-witness's "old <size>"
 * line uses it too. 0 or -1. */
int checkpoint_parse_size(const char *s, size_t n, uint64_t *size);

#endif
