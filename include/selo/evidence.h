/* evidence.h: the one gate evidence passes on its way out of Selo. The
 * store keeps bytes and the log commits to them; a damaged file (a flipped
 * bit on a disk, a bad copy) can change the bytes while SQLite reads them
 * happily. So before a sealed message (GET /v1/notices/{id}/message, a
 * receipt's eml_base64, the PDF that embeds it) or a receipt leaves, its
 * parts are compared with what the log commits to: the message with the
 * digest and size sealed in the notice's content_sealed entry, each entry
 * with its leaf in the log's tiles, each disclosed value with its
 * commitment under the notice's salt, the notice's row with its events.
 * A mismatch is an error (500, type "evidence-damaged") that names the
 * notice and what disagrees; the bytes are never handed out. `selo log
 * verify` runs the same checks over every notice (evidence_audit).
 * docs/operations.md, "A damaged store". */
#ifndef SELO_EVIDENCE_H
#define SELO_EVIDENCE_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"
#include "selo/event.h"
#include "selo/store.h"

#define EVIDENCE_DAMAGED "evidence-damaged"

/* The notice's sealed message, checked: 1 with its bytes appended to eml
 * and sha256 the digest sealed in its content_sealed entry (64 hex); 0 when
 * the notice is not sealed (no content_sealed event and no message); -1
 * with err: 500 evidence-damaged when the bytes do not hash to that digest
 * or differ in size, when the message or the event is missing while the
 * other is there, when the entry cannot be decoded or does not hash to its
 * leaf in the log; else the store's error. */
int evidence_message(struct store *s, const char *notice_id, struct buf *eml, char sha256[65],
		     struct selo_err *err);

/* As evidence_message, with the notice's events in hand (ev, n: its
 * content_sealed among them, or none), already checked against their
 * leaves (evidence_entries): a receipt has every event of the notice anyway. */
int evidence_message_sealed(struct store *s, const char *notice_id, const struct event_rec *ev,
			    size_t n, struct buf *eml, char sha256[65], struct selo_err *err);

/* Each event's entry against its leaf in the log (the level-0 tile that
 * holds it); events not yet in the log (log_index < 0) have no leaf to
 * compare and pass. 0, or -1 with err (500 evidence-damaged). */
int evidence_entries(struct store *s, const struct event_rec *ev, size_t n,
		     struct selo_err *err);

/* An event row's own columns (type, notice, time) against the head of its
 * entry, which the log commits to: a row whose columns were damaged would
 * file the event under another notice or type. 0, or -1 with err. */
int evidence_entry_head(const struct event_rec *e, struct selo_err *err);

/* The notice's row against its events (the first submission_accepted and
 * content_sealed among ev): its id, API key and template, the commitments
 * to its address and reference under its salt; the message id and digest
 * sealed, or none when nothing sealed it. 0 when they agree, else -1 with
 * err (500 evidence-damaged). */
int evidence_notice(const struct notice_rec *r, const struct event_rec *ev, size_t n,
		    struct selo_err *err);

/* Every disclosed value of the notice against its commitment under salt. */
int evidence_disclosures(const char *notice_id, const uint8_t salt[32],
			 const struct disclosures *d, struct selo_err *err);

struct evidence_tally {
	uint64_t notices;        /* rows read */
	uint64_t damaged;        /* notices with at least one finding */
	uint64_t messages;       /* sealed messages re-hashed */
	uint64_t message_bytes;
	uint64_t disclosures;    /* values checked against their commitments */
};

/* Every notice, in storage order: its row decodes and agrees with its
 * events, its sealed message hashes to its content_sealed digest, its
 * disclosures match their commitments (entries against leaves are the log
 * audit's part, ledger_audit). Calls report(arg, 0, line) for each finding,
 * by notice, and report(arg, ok, summary) at the end. Reads a few hundred
 * notices per snapshot, so memory stays flat. Returns 0 all sound, 1 damage
 * found, -1 with err when it could not run. */
int evidence_audit(struct store *s, void (*report)(void *arg, int ok, const char *line),
		   void *arg, struct evidence_tally *t, struct selo_err *err);

#endif
