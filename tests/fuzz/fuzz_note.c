/* fuzz_note.c: libFuzzer target for C2SP signed notes and checkpoints, which
 * come from outside (witness requests, receipts, other logs): note_parse,
 * note_open and checkpoint_parse must refuse malformed bytes without
 * reading out of bounds, and what they accept must be consistent: an
 * accepted note's text is a prefix of it, a checkpoint without extension
 * lines formats back to the same bytes, and any text note_sign accepts
 * verifies back to itself. The keys are the public x/mod test key
 * (PeterNeumann, as in the seeds) and a fixed seed for signing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "selo/note.h"

static const char peter_vkey[] =
	"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

/* Made on the first input and kept for the process: a fuzzer harness, not
 * library state. */
static struct note_signer *signer;
static struct note_verifier keys[2];

static void setup(void)
{
	static const uint8_t seed[32] = {7, 7, 7};
	struct selo_err err;
	if (note_signer_new("fuzz.example/log", seed, &signer, &err) != 0 ||
	    note_verifier_parse(note_signer_vkey(signer), &keys[0], &err) != 0 ||
	    note_verifier_parse(peter_vkey, &keys[1], &err) != 0)
		abort();
}

static void check_open(const char *p, size_t size)
{
	struct buf text = BUF_INIT, unknown = BUF_INIT;
	unsigned char verified[2];
	struct note_sig sigs[NOTE_MAX_SIGS];
	size_t textlen = 0, nsigs = 0;
	struct selo_err err;
	int parsed = note_parse(p, size, &textlen, sigs, &nsigs, &err) == 0;
	if (note_open(keys, 2, p, size, &text, verified, &unknown, &err) == 0) {
		if (!parsed || text.len != textlen || memcmp(text.data, p, textlen) != 0 ||
		    !(verified[0] || verified[1]))
			abort();
	}
	buf_free(&text);
	buf_free(&unknown);
}

static void check_checkpoint(const char *p, size_t size)
{
	struct checkpoint c;
	struct selo_err err;
	size_t ext = 0;
	if (checkpoint_parse_ext(p, size, &c, &ext, &err) != 0 || ext != size)
		return;
	struct buf again = BUF_INIT;
	checkpoint_format(&c, &again);
	if (again.len != size || memcmp(again.data, p, size) != 0)
		abort();
	buf_free(&again);
}

static void check_sign(const char *p, size_t size)
{
	struct buf note = BUF_INIT, text = BUF_INIT;
	struct selo_err err;
	if (note_sign(signer, p, size, &note, &err) == 0) {
		if (note_verify(keys, 1, note.data, note.len, &text, &err) != 0 ||
		    text.len != size || memcmp(text.data, p, size) != 0)
			abort();
	}
	buf_free(&note);
	buf_free(&text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!signer)
		setup();
	const char *p = (const char *)data;
	check_open(p, size);
	check_checkpoint(p, size);
	check_sign(p, size);
	uint64_t v;
	(void)checkpoint_parse_size(p, size, &v);
	return 0;
}
