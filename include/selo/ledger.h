/* ledger.h: the signed, timestamped Merkle log of every event (RFC 9162
 * hashing, C2SP tlog-tiles storage, C2SP checkpoints signed as notes with
 * the Ed25519 log key, RFC 3161 timestamps over SHA-256 of each signed
 * checkpoint). Append, integrate, serve, as transparency-dev/tessera:
 *
 * - the sequencer (a thread in `selo serve`) takes events in seq order,
 *   appends their entries as leaves in batches, and writes their log
 *   indexes, the changed tiles and the new tree state in ONE transaction;
 * - at least once a second, when the tree grew, it signs a checkpoint of the
 *   committed tree (never of anything uncommitted) and stores it; then asks
 *   the TSA for a timestamp. A TSA that fails delays timestamps, never the
 *   log: untimestamped checkpoints are caught up later;
 * - receipts (receipt.h) and audits read the tiles back.
 * docs/ledger.md has the details. */
#ifndef SELO_LEDGER_H
#define SELO_LEDGER_H
#include <jansson.h>
#include <stdint.h>
#include "selo/err.h"
#include "selo/selo.h"

struct ledger;
struct tsa;

/* Loads the log key (its name must equal log.origin), opens the TSA and
 * rebuilds the tree's edge from the stored tiles. */
int ledger_open(struct selo *app, struct ledger **out, struct selo_err *err);
void ledger_close(struct ledger *l);
/* The TSA the ledger uses (shared with the composer's signature stamps). */
struct tsa *ledger_tsa(struct ledger *l);
/* The log's verifier key string. */
const char *ledger_vkey(const struct ledger *l);

/* Starts / stops the sequencer thread. */
int ledger_start(struct ledger *l, struct selo_err *err);
void ledger_stop(struct ledger *l);

/* One round, for the CLI and tests: integrates every pending event, signs a
 * checkpoint if the tree grew (force: even within a second of the last),
 * then timestamps pending checkpoints. Returns the number of entries added. */
int ledger_sync(struct ledger *l, int force, struct selo_err *err);

/* The latest signed checkpoint (note text); 1 found, 0 none yet. */
int ledger_latest_checkpoint(struct ledger *l, struct buf *note, struct selo_err *err);

/* selo-receipt/v1 for a notice (receipt.h): its events with inclusion
 * proofs to the latest timestamped checkpoint that covers them all.
 * short_form: no message bytes and no disclosed content (subject, text,
 * html, template variables, attachment names). 404 unknown notice; 503 when
 * its events are not yet covered by a timestamped checkpoint (a few seconds
 * after the last event). */
int ledger_receipt(struct ledger *l, const char *notice_id, int short_form, json_t **out,
		   struct selo_err *err);

/* `selo log verify`'s audit of the log: recomputes the whole tree from the
 * stored entries and compares every stored tile, the state, every
 * checkpoint (signature, root, timestamp) and consistency between
 * consecutive checkpoints, and that every event up to the last integrated
 * one is in the log; checks each event row against its entry's head and its
 * leaf (evidence.h), reporting each damaged row by notice and walking on.
 * Calls report(arg, ok, line) for each finding; returns 0 when all is
 * consistent, 1 when something is not (a tile or checkpoint mismatch stops
 * the walk), -1 when it could not run. */
int ledger_audit(struct ledger *l, void (*report)(void *arg, int ok, const char *line), void *arg,
		 struct selo_err *err);

#endif
