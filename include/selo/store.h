/* store.h: everything Selo keeps, behind one interface that each backend
 * implements (store_backend.h: SQLite in store_sqlite*.c; PostgreSQL, for
 * several nodes, to follow). No SQL leaves a backend. What follows on
 * concurrency and durability is what the SQLite backend does; what every
 * backend must guarantee is in docs/store.md "The interface and its backends".
 *
 * Concurrency: any thread may call any function. Reads run on a pool of read
 * connections (SQLite WAL: readers never block the writer). Every write goes
 * to one writer thread that groups the writes waiting at that moment into one
 * transaction (group commit), each in its own savepoint so one failing write
 * does not undo the others, and returns only once the transaction is durable
 * (synchronous=FULL): a 202 means the notice is on disk.
 *
 * Event entries are encoded inside the writer (event.h), stamped with a time
 * that never goes backwards, so the order of `seq` is the order of time.
 *
 * Return values: 0 ok, -1 error (err filled: 4xx for a caller's mistake such
 * as a reused idempotency key, 500 for storage failure); lookups return 1
 * found, 0 not found. */
#ifndef SELO_STORE_H
#define SELO_STORE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"
#include "selo/event.h"

/* The store's state belongs to its backend: callers hold a pointer and pass
 * it back. store.c hands each call to the backend's op of the same name
 * (store_backend.h, for backends only). */
struct store;

/* Opens (creating if needed) the SQLite database at path, applies pending
 * migrations in order, starts the writer thread. */
int store_open(const char *path, struct store **out, struct selo_err *err);
/* Which store to open, and how (docs/scale.md): from store.backend,
 * store.url (or the data directory's selo.db), store.timeout, store.lease
 * and node.name. */
struct store_params {
	const char *backend; /* "sqlite" (NULL or "": sqlite) | "postgres" */
	const char *target;  /* sqlite: the database file; postgres: a libpq connection string */
	const char *node;    /* node.name: marks claims, leases and migrations (postgres) */
	int timeout_ms;      /* store.timeout: the longest a call waits for the database (postgres) */
	int lease_ms;        /* store.lease: how long a node's claim on work holds (postgres) */
	int pool_size;       /* connections kept (postgres; 0: the backend's default) */
};
/* Opens the store p names, as store_open does for SQLite. -1 with err 400
 * "invalid-config" when no backend has that name, else the backend's. */
int store_open_backend(const struct store_params *p, struct store **out, struct selo_err *err);
/* Runs every queued write, then frees the store: no other thread may still
 * be calling into it (the caller stops the API, senders and followers first). */
void store_close(struct store *s);
/* The schema version after migrations (for `selo status`/tests). */
int store_schema_version(struct store *s);

/* SQLite's own check of the database file at path, on a connection of its
 * own that writes nothing (it may run beside `selo serve`): full = 0 runs
 * PRAGMA quick_check (every page's structure, records and overflow chains;
 * linear in the file's size), full = 1 PRAGMA integrity_check (also every
 * index against its table and the UNIQUE constraints). line(arg, text) is
 * called for each problem found, at most max_lines (SQLite stops at 100).
 * Returns 0 sound, 1 damage found, -1 with err when the check could not run
 * (no such file, I/O). docs/operations.md, "A damaged store". */
int store_check_file(const char *path, int full, int max_lines,
		     void (*line)(void *arg, const char *text), void *arg, struct selo_err *err);

/* ---- Backups (backup.c): a consistent copy of the database file at
 * src_path into the new file dst_path, taken while `selo serve` may be
 * writing (a WAL reader: the writer is never blocked), as of one commit,
 * as one self-contained file (rollback journal). *out describes the copy:
 * what the log held at that commit. 0, or -1 with err (dst_path may then
 * be left half written: the caller removes it). */
struct store_copy_info {
	int schema_version;
	uint64_t tree_size;       /* leaves integrated into the log */
	uint8_t root[32];         /* the tree's root */
	int64_t last_seq;         /* the last event integrated */
	uint64_t checkpoint_size; /* the latest signed checkpoint's tree size */
	char *checkpoint;         /* its note text; NULL when there is none yet */
};
int store_copy_file(const char *src_path, const char *dst_path, struct store_copy_info *out,
		    struct selo_err *err);
/* The same description of a database file nobody writes (a restored copy),
 * read on a connection that writes nothing. */
int store_describe_file(const char *path, struct store_copy_info *out, struct selo_err *err);
void store_copy_info_free(struct store_copy_info *info);

/* ---- API keys: only SHA-256 of the key is stored; prefix is the first
 * characters of the key, shown by `apikey list` to tell keys apart. */
struct apikey {
	int64_t id;
	char name[128];
	char prefix[16];
	int64_t created_ms;
	int64_t revoked_ms; /* 0 = active */
};
int store_apikey_add(struct store *s, const char *name, const uint8_t hash[32],
		     const char *prefix, int64_t *id_out, struct selo_err *err);
/* 1 and *out when an active key has this hash, 0 when none (or revoked). */
int store_apikey_find(struct store *s, const uint8_t hash[32], struct apikey *out,
		      struct selo_err *err);
/* *out is malloc'd (free()); ordered by id. */
int store_apikey_list(struct store *s, struct apikey **out, size_t *n, struct selo_err *err);
/* 1 revoked now, 0 no such active key. */
int store_apikey_revoke(struct store *s, int64_t id, struct selo_err *err);

/* ---- Notices. States: queued (accepted) -> sending (claimed by a sender)
 * -> relayed | delivered | deferred (retry at next_attempt_ms) | failed.
 * A notice due later starts `scheduled` (claimed once next_attempt_ms has
 * come); one withdrawn before it was handed to SMTP ends `canceled`. */
struct attachment_in {
	const char *filename;
	const char *content_type;
	const uint8_t *data;
	size_t len;
};

struct notice_new {
	char id[27];                 /* text id (id.h) */
	int64_t apikey_id;
	const char *idempotency_key; /* NULL: none */
	uint8_t request_sha256[32];  /* of the request, to refuse a reused key with another body */
	uint8_t salt[32];            /* commitment salt, never in the log */
	const char *to;
	const char *template_name;   /* NULL in raw mode */
	const char *reference;       /* may be NULL */
	const char *segment;         /* may be NULL */
	const char *tags_json;       /* JSON array text or NULL */
	const char *payload_json;    /* the validated submission without attachment bytes */
	const struct attachment_in *att;
	size_t natt;
	json_t *event_fields;        /* fields of submission_accepted (borrowed) */
	const struct disclosures *disc; /* committed values of the event, kept beside it */
	int64_t due_ms;              /* 0: send now; else status `scheduled` until then */
	const char *sequence_id;     /* the sequence it is a step of, or NULL */
	int step;                    /* its step's index in the sequence */
	int key_active;              /* 1: accept only while apikey_id is an active key,
					checked in the accept's transaction (the API's
					keys may come from a cache, auth.h); else 401 */
};

struct accept_result {
	int replay;                  /* 1: the idempotency key was seen; id is the first notice */
	char id[27];
	char status[16];
	int failed;                  /* 1: err holds why (e.g. 422 reused key) */
	struct selo_err err;
};

/* Accepts n notices in one transaction; results[i] for each. Returns -1 only
 * when the storage itself failed or a notice's key_active check did (401):
 * then nothing was accepted. */
int store_notices_accept(struct store *s, const struct notice_new *ns, size_t n,
			 struct accept_result *results, struct selo_err *err);

struct notice_rec {
	char id[27];
	int64_t apikey_id;
	char status[16];
	char *to;
	char *template_name;   /* NULL in raw mode */
	char *reference;
	char *segment;
	char *tags_json;
	char *payload_json;
	uint8_t salt[32];
	int attempts;
	int64_t created_ms;
	int64_t updated_ms;
	int64_t next_attempt_ms;
	char *message_id;      /* set once sealed */
	char sha256[65];       /* of the sealed message, "" before */
	char *last_error;
	int64_t send_at_ms;    /* when it was first due (its acceptance, unless scheduled) */
	char *sequence_id;     /* NULL: not a sequence step */
	int step;
	char *damage;          /* store_notice_scan only: NULL, or why the row could not be
				* decoded (a column of the wrong type, not UTF-8, ...) */
};
void notice_rec_free(struct notice_rec *r);
void notice_recs_free(struct notice_rec *r, size_t n);

/* apikey_id < 0: any key (CLI); otherwise only that key's notices. A row
 * that cannot be decoded as the schema says (a column of another type or
 * NULL where none belongs, text that is not UTF-8, a salt that is not 32
 * bytes: what a damaged file reads as) is never returned as a notice: -1
 * with err 500 "store-damaged" naming the notice and the column. The same
 * holds for store_notice_list and store_sequence_get. */
int store_notice_get(struct store *s, const char *id, int64_t apikey_id, struct notice_rec *out,
		     struct selo_err *err);

struct notice_filter {
	int64_t apikey_id;     /* < 0: any */
	const char *reference; /* NULL: any */
	const char *status;    /* NULL: any */
	const char *after;     /* id to start after (exclusive), NULL: from the first */
	int limit;             /* 1..1000 */
};
/* Ordered by id (creation time). *out malloc'd, notice_recs_free(). */
int store_notice_list(struct store *s, const struct notice_filter *f, struct notice_rec **out,
		      size_t *n, struct selo_err *err);

struct event_rec {
	int64_t seq;           /* global order of events */
	char type[32];
	int64_t time_ms;
	char *entry;           /* exact entry bytes, NUL-terminated */
	size_t len;
	char notice_id[27];    /* the notice the event is about */
	int64_t log_index;     /* its index in the Merkle log, -1 until integrated */
};
void event_recs_free(struct event_rec *e, size_t n);
/* Every notice row in storage order, for audits (`selo log verify`): up to
 * max rows after *cursor (0: from the first), read in one snapshot; *cursor
 * moves past them, and *n = 0 means the end. A row that cannot be decoded
 * comes back with rec.damage set (its other fields as far as they read),
 * so that one damaged row never hides the next. *out malloc'd,
 * notice_recs_free(). */
int store_notice_scan(struct store *s, int64_t *cursor, size_t max, struct notice_rec **out,
		      size_t *n, struct selo_err *err);

/* A notice's events, ordered by seq. *out malloc'd, event_recs_free(). */
int store_events_of(struct store *s, const char *notice_id, struct event_rec **out, size_t *n,
		    struct selo_err *err);
/* The notice's first event of this type (by seq): 1 and *out (free its
 * entry with event_rec_free), 0 none. Reads only the notice's events up to
 * that one, however many opens follow it. */
int store_event_first(struct store *s, const char *notice_id, const char *type,
		      struct event_rec *out, struct selo_err *err);
void event_rec_free(struct event_rec *e);
/* The notice's read_confirmed events only, in log order (an index of their
 * own: the confirmation page asks on every view, however many opens the
 * notice has). */
int store_confirmations_of(struct store *s, const char *notice_id, struct event_rec **out,
			   size_t *n, struct selo_err *err);
/* Up to max events with seq > after_seq, ordered by seq (for the ledger:
 * readers see whole commits, and the single writer assigns seq in commit
 * order, so a reader never sees seq N+1 without seq N). max is capped at
 * 100000. *out malloc'd, event_recs_free(). */
int store_events_after(struct store *s, int64_t after_seq, size_t max, struct event_rec **out,
		       size_t *n, struct selo_err *err);

struct attachment_rec {
	char *filename;
	char *content_type;
	uint8_t *data;
	size_t len;
};
void attachment_recs_free(struct attachment_rec *a, size_t n);
int store_attachments_of(struct store *s, const char *notice_id, struct attachment_rec **out,
			 size_t *n, struct selo_err *err);

/* The sealed message: 1 and its exact bytes (appended to eml) and SHA-256
 * hex, 0 if not sealed. */
int store_message_get(struct store *s, const char *notice_id, struct buf *eml, char sha256[65],
		      struct selo_err *err);

/* ---- Sender side. */

/* Moves up to max notices that are due (queued, or deferred with
 * next_attempt_ms <= now_ms) to `sending` and returns them, oldest first.
 * Only one caller ever gets a given notice. */
int store_claim_due(struct store *s, int64_t now_ms, size_t max, struct notice_rec **out,
		    size_t *n, struct selo_err *err);

/* Earliest next_attempt_ms of a deferred notice, or 0 when none. */
int64_t store_next_due(struct store *s);

/* Tracking tokens of a sealed message (kind: "open", "click", "read"). */
struct token_rec {
	const char *token;
	const char *kind;
	int link;              /* link index for clicks, 0 otherwise */
	const char *url;       /* click target, NULL otherwise */
};

struct seal_rec {
	const char *id;
	const char *eml;
	size_t len;
	char sha256[65];
	const char *message_id;
	const struct token_rec *tokens;
	size_t ntokens;
	json_t *event_fields;  /* content_sealed fields (borrowed) */
	const struct disclosures *disc; /* may be NULL */
};
/* Stores each message and its tokens with its content_sealed event. A notice
 * already sealed keeps its first message (a resend sends the same bytes). */
int store_notices_sealed(struct store *s, const struct seal_rec *r, size_t n,
			 struct selo_err *err);

struct result_rec {
	const char *id;
	const char *event_type;  /* relay_accepted, delivery_accepted, delivery_deferred, delivery_failed */
	json_t *event_fields;    /* borrowed */
	const char *state;       /* relayed | delivered | deferred | failed */
	int64_t next_attempt_ms; /* for deferred */
	const char *last_error;  /* NULL or a short text for the API */
	const struct disclosures *disc; /* committed values (e.g. the transcript), may be NULL */
};
/* Records attempt outcomes (attempts += 1) with their events, one transaction. */
int store_delivery_results(struct store *s, const struct result_rec *r, size_t n,
			   struct selo_err *err);

/* Events about existing notices that change no state (the tracker's opened,
 * clicked, read_confirmed), in one transaction, durable on return. An
 * unknown notice fails the whole call (404). The fields come either as a
 * jansson object or, when fields is NULL, as text made by event_field_*()
 * (event.h; the tracker's hot path), or neither. */
struct event_new {
	const char *notice_id;
	const char *type;
	json_t *fields;                 /* borrowed, may be NULL */
	const struct disclosures *disc; /* may be NULL */
	const char *fields_text;        /* used when fields is NULL; NULL: none */
	size_t fields_len;
};
int store_events_add(struct store *s, const struct event_new *ev, size_t n, struct selo_err *err);

/* ---- Tracker hits, bounded per notice (docs/tracking.md "Floods").
 * Whoever holds a pixel or link URL can hit it without end, so a notice
 * logs only the first full_max hits of each (kind, class) as their own
 * events; the hits after them are counted in the notice's open fold
 * (counts per kind and class, distinct client addresses, first and last
 * arrival), which a tracking_summary event closes once it is due. The
 * rule's numbers are the caller's; the backend applies them inside the
 * transaction that writes the hits, so no two writers can exceed them. */
enum { HIT_KIND_OPENED, HIT_KIND_CLICKED, HIT_KINDS };
enum { HIT_CLASS_HUMAN, HIT_CLASS_PROXY, HIT_CLASS_SCANNER, HIT_CLASSES };

struct hit_new {
	struct event_new ev;   /* the hit's own event, written when not folded */
	int kind, cls;         /* HIT_KIND_*, HIT_CLASS_* */
	uint8_t addr[32];      /* a digest of the client address, keyed per notice */
	int64_t arrived_ms;
};

struct fold_rule {
	int full_max;          /* hits of one (kind, class) logged in full, >= 1 */
	int64_t window_ms;     /* a notice's first fold is due this long after it opens... */
	int64_t window_max_ms; /* ... each next one twice as long, up to this */
};

/* One notice's open fold, as a summary is made of it. */
struct hit_fold {
	char notice_id[27];
	int64_t first_ms, last_ms;           /* arrival of the first and last hit folded */
	int64_t hits[HIT_KINDS][HIT_CLASSES];
	int64_t addresses;                   /* distinct addresses among them */
	int64_t summaries;                   /* summaries this notice had before this one */
};

/* Writes each hit as its event or counts it in its notice's fold, in one
 * transaction, durable on return. An unknown notice fails the whole call
 * (404), as store_events_add. *folded (may be NULL) counts the hits folded. */
int store_hits_add(struct store *s, const struct hit_new *h, size_t n, const struct fold_rule *rule,
		   size_t *folded, struct selo_err *err);

/* Makes a summary's fields from a fold: a jansson object the caller owns
 * (NULL: out of memory). Called inside the writer: no store calls. */
typedef json_t *(*fold_fields_fn)(const struct hit_fold *f, void *arg);

/* Closes up to max folds due at now_ms: for each, one tracking_summary
 * event with fields(f) is written and the fold emptied, in one transaction.
 * *closed (may be NULL) says how many. */
int store_folds_close(struct store *s, int64_t now_ms, size_t max, fold_fields_fn fields,
		      void *arg, size_t *closed, struct selo_err *err);

/* A bounce that came back after the notice was handed over (`selo bounce`,
 * docs/bounces.md): its delivery_failed event (fields with
 * "reason":"bounced", else 400) and status `failed` with last_error, in one
 * transaction. Once a notice has a bounced delivery_failed event, another
 * bounce writes nothing. Returns 0 recorded, 1 already recorded, -1 with
 * err: 404 no such notice, 409 the notice is being sent right now (its
 * sender would overwrite the status; try again once the attempt is
 * recorded). */
int store_notice_bounced(struct store *s, const char *id, json_t *fields,
			 const struct disclosures *disc, const char *last_error,
			 struct selo_err *err);

/* ---- Scheduling and sequences (schedule.h; docs/api.md "Scheduling" and
 * "Sequences"). Withdrawing a notice writes its `canceled` event (fields
 * reason, by: api | sequence, and sequence / bounced_notice when they
 * apply) in the transaction that sets status `canceled`. */

/* Cancels a notice never handed to SMTP (scheduled, or queued and never
 * claimed). 0 canceled now, 1 it was canceled already (nothing written),
 * -1 with err: 404 no such notice for this key (apikey_id < 0: any), 409
 * it was handed to SMTP (or is being, right now). */
int store_notice_cancel(struct store *s, const char *id, int64_t apikey_id, const char *reason,
			struct selo_err *err);

struct sequence_new {
	const char *id;
	int64_t apikey_id;
	const char *request_json;     /* the normalised request, with each step's plan */
	const char *idempotency_key;  /* NULL: none */
	uint8_t request_sha256[32];
	const struct notice_new *steps; /* the step notices (sequence_id, step set), to the
					 * same recipient; steps skipped because their time
					 * had passed are in request_json only */
	size_t n;
};
/* Stores the sequence and all its step notices in one transaction, or
 * nothing: 0 stored, 1 the idempotency key was seen with this request
 * (replay_id is the first sequence), -1 with err (422 the recipient is
 * suppressed, 422 the idempotency key came with another request). */
int store_sequence_add(struct store *s, const struct sequence_new *q, char replay_id[32],
		       struct selo_err *err);

struct sequence_rec {
	char id[32];
	int64_t apikey_id;
	char status[16];        /* active | stopped */
	char *reason;           /* why it stopped: paid, agreement, disputed, other, hard_bounce */
	char *request_json;
	int64_t created_ms, stopped_ms;
	struct notice_rec *steps; /* by step */
	size_t nsteps;
};
void sequence_rec_free(struct sequence_rec *q);
/* 1 and *out when the key (apikey_id < 0: any) has this sequence. */
int store_sequence_get(struct store *s, const char *id, int64_t apikey_id,
		       struct sequence_rec *out, struct selo_err *err);
/* Stops an active sequence and cancels its steps not yet handed to SMTP
 * (*canceled of them). 0 stopped now, 1 it had stopped already, -1 with err
 * (404). A hard bounce of one of its steps stops it the same way, with
 * reason hard_bounce, in the transaction that records the bounce. */
int store_sequence_stop(struct store *s, const char *id, int64_t apikey_id, const char *reason,
			int64_t *canceled, struct selo_err *err);

/* ---- Suppressions (docs/api.md "Suppressions", suppress.h). A hard
 * bounce (suppress_fields_hard) recorded by store_delivery_results or
 * store_notice_bounced suppresses the notice's address for its API key in
 * the same transaction; store_notices_accept then refuses a notice of that
 * key to that address (422 "suppressed", checked in its own transaction,
 * so no notice slips in after the suppression commits). The first hard
 * bounce stays until the entry is deleted. */
struct suppression_rec {
	int64_t id;              /* grows with time: the paging cursor */
	char *address;           /* as the notice had it, domain lowercased */
	char enhanced[16];       /* "5.1.1" */
	char *reason;            /* the reply or the DSN's diagnostic */
	char notice_id[27];      /* the notice that bounced */
	int64_t created_ms;
};
void suppression_recs_free(struct suppression_rec *r, size_t n);
/* The key's suppressions, newest first, with id < before (0: from the
 * newest), at most limit (1..1000). *out malloc'd. */
int store_suppression_list(struct store *s, int64_t apikey_id, int64_t before, int limit,
			   struct suppression_rec **out, size_t *n, struct selo_err *err);
/* 1 deleted, 0 the key has no suppression of this address (compared
 * case-insensitively). */
int store_suppression_delete(struct store *s, int64_t apikey_id, const char *address,
			     struct selo_err *err);

/* ---- Tracker lookups. */
struct token_info {
	char notice_id[27];
	char kind[8];          /* open | click | read */
	int link;
	char *url;             /* click target (malloc'd), NULL otherwise */
};
/* 1 and *out when the token was stored for a sealed message, 0 when not
 * (e.g. the notice's data was erased). */
int store_token_lookup(struct store *s, const char *token, struct token_info *out,
		       struct selo_err *err);
/* A notice's commitment salt and the time its message was accepted by a
 * relay or the recipient's server (0: not yet): 1 found, 0 no such notice. */
int store_notice_brief(struct store *s, const char *id, uint8_t salt[32], int64_t *accepted_ms,
		       struct selo_err *err);

/* At start: notices left in `sending` by a crash go back to `queued` (they
 * are resent with the same sealed bytes). Returns how many, or -1. */
int store_recover_inflight(struct store *s, struct selo_err *err);

/* Counts per state, for /metrics and /healthz. */
struct store_counts {
	int64_t queued, sending, deferred, relayed, delivered, failed, events;
	int64_t scheduled, canceled;
};
int store_counts(struct store *s, struct store_counts *out, struct selo_err *err);

/* The WAL is started again from its beginning once it holds `frames` pages
 * (default 16384, 64 MiB; 0 restores it): docs/store.md "Durability". For
 * tests and tuning. store_wal_restarts counts the restarts done since open. */
void store_wal_limit(struct store *s, int frames);
int64_t store_wal_restarts(struct store *s);

/* ---- Ledger: the Merkle log over the events (ledger.c, tlog.h). An
 * event's entry bytes are the log entry; the sequencer gives each event its
 * log index, in seq order, in the same transaction that writes the tiles and
 * the new tree state, so the tree and the events never disagree. */
struct log_state {
	uint64_t size;         /* leaves in the tree */
	uint8_t root[32];      /* its root (SHA-256("") when empty) */
	int64_t last_seq;      /* the last event integrated (0: none) */
};
int store_log_state(struct store *s, struct log_state *out, struct selo_err *err);

struct log_tile_write {
	int level;
	uint64_t index;
	const uint8_t *data;   /* width * 32 bytes; replaces a stored partial tile */
	size_t len;
};
/* A log_append is fenced: it writes only over the tree it grew from, the
 * stored size first_index and root old_root, checked under the write lock
 * of the same transaction; another tree there (a process or node that
 * integrated meanwhile) is 409 "log-moved" and nothing is written, so an
 * integrator that lost its lock can never publish a second tree: it reads
 * the state again. A full tile (256 hashes) never changes: writing other
 * bytes over one is 409 "log-tile-immutable". */
struct log_append {
	uint64_t first_index;  /* must equal the stored size (else 409 log-moved) */
	const int64_t *seqs;   /* the events, rising and after the last integrated seq (else
				* 409), that get indexes first_index..; each run of
				* consecutive seqs is stored as one row, not per event */
	size_t n;
	const struct log_tile_write *tiles;
	size_t ntiles;
	uint8_t root[32];      /* root of the tree of first_index + n leaves */
	uint8_t old_root[32];  /* root of the stored tree grown from (else 409 log-moved);
				* all zero: not known to the caller, only the size fences */
};
int store_log_append(struct store *s, const struct log_append *a, struct selo_err *err);
/* The stored tile (level, index): 1 and its bytes appended to data, 0 none. */
int store_log_tile(struct store *s, int level, uint64_t index, struct buf *data,
		   struct selo_err *err);
/* Events in log order from index `from`, at most max (audits). */
int store_log_entries(struct store *s, uint64_t from, size_t max, struct event_rec **out,
		      size_t *n, struct selo_err *err);
/* Events with seq <= last_seq that have no log index: must be 0. */
int store_log_unindexed(struct store *s, int64_t last_seq, int64_t *count, struct selo_err *err);

struct checkpoint_rec {
	uint64_t size;
	char *note;            /* the signed note, exact text */
	int64_t created_ms;
	uint8_t *tst;          /* RFC 3161 token over SHA-256(note), NULL until timestamped */
	size_t tst_len;
	int64_t tst_time_ms;
};
void checkpoint_recs_free(struct checkpoint_rec *c, size_t n);
/* Only for the stored tree's size (else 409 log-moved); a size already
 * checkpointed is 409 conflict. */
int store_checkpoint_add(struct store *s, uint64_t size, const char *note, int64_t created_ms,
			 struct selo_err *err);
int store_checkpoint_timestamp(struct store *s, uint64_t size, const uint8_t *tst, size_t len,
			       int64_t tst_time_ms, struct selo_err *err);
/* The latest checkpoint with size >= min_size (and a timestamp, if asked):
 * 1 and *out, 0 none. */
int store_checkpoint_find(struct store *s, uint64_t min_size, int timestamped,
			  struct checkpoint_rec *out, struct selo_err *err);
/* Checkpoints without a timestamp, newest first, at most max. */
int store_checkpoints_untimestamped(struct store *s, size_t max, struct checkpoint_rec **out,
				    size_t *n, struct selo_err *err);
/* Every checkpoint, by size. */
int store_checkpoints_all(struct store *s, struct checkpoint_rec **out, size_t *n,
			  struct selo_err *err);

/* Every value a notice's events commit to, with its commitment, in the
 * order stored (for receipts). *out malloc'd; disclosures_free() on a
 * struct disclosures {out, n, n}. */
int store_disclosures_of(struct store *s, const char *notice_id, struct disclosures *out,
			 struct selo_err *err);

/* Runs `PRAGMA quick_check`; 0 when the database answers and is sane. */
int store_ping(struct store *s, struct selo_err *err);

/* ---- Work only one node does at a time (docs/scale.md "What only one
 * node does"). On a store several nodes share, integrating the log and
 * signing checkpoints, following the statistics and pruning the webhook
 * outbox run on one node at a time. store_lead asks to hold role, or to
 * go on holding it: 1 this process holds it now, 0 another node does, -1
 * with err when the store cannot say (unreachable: act as 0). Ask before
 * each round of the work: a role is lost with the backend's session (a
 * database restart, a network cut), and then another node may take it. A
 * store for one node (SQLite) always answers 1. Holding a role never
 * replaces the fences of the writes themselves (store_log_append). */
enum store_role { STORE_ROLE_INTEGRATOR, STORE_ROLE_STATS, STORE_ROLE_PRUNER, STORE_ROLE_COUNT };
int store_lead(struct store *s, enum store_role role, struct selo_err *err);
/* Keeps this node's claims (store.h "Notices": notices being sent;
 * webhook deliveries in flight) from lapsing while their work runs: a
 * claim lasts store.lease, and an SMTP session or a slow webhook may take
 * longer. Renews them all by store.lease; *next_ms gets when to call again
 * (ms from now; -1: never, a store for one node has no leases). 0, or -1
 * with err (the claims then lapse after store.lease, and another node may
 * take the work over: at worst a resend with the same Message-ID). */
int store_claims_renew(struct store *s, int64_t *next_ms, struct selo_err *err);
/* The role's name for logs: "integrator", "stats", "pruner". */
const char *store_role_name(enum store_role role);

/* ---- Health of writes (docs/operations.md "A full disk"). The writer
 * knows whether its transactions commit. A write that fails for a reason
 * of the storage (the disk is full, an I/O error, a read-only file, damage,
 * the database locked by another process for too long) makes the store
 * `failing` until a transaction that writes commits again and no write has
 * failed for STORE_HEALTHY_AFTER_MS: on a disk with a little room left,
 * small writes pass while large ones (a sealed message) fail, and the
 * store is failing then. A mistake of the caller (a 4xx) and a transaction
 * that writes nothing prove nothing either way. While its last write
 * failed, the writer tries a one-page write of its own whenever nothing
 * else tried to write for STORE_PROBE_MS, so health clears without
 * traffic. The writer logs the change both ways (rate-limited, diag.h). */
#define STORE_PROBE_MS 1000
#define STORE_HEALTHY_AFTER_MS 10000
enum store_fault {
	STORE_FAULT_NONE,
	STORE_FAULT_DISK_FULL, /* ENOSPC, EDQUOT, SQLITE_FULL */
	STORE_FAULT_IO,        /* another I/O error, or the file cannot be opened */
	STORE_FAULT_READ_ONLY, /* EROFS, SQLITE_READONLY */
	STORE_FAULT_LOCKED,    /* another process held the write lock past the busy timeout */
	STORE_FAULT_DAMAGED,   /* SQLITE_CORRUPT, SQLITE_NOTADB */
	STORE_FAULT_OTHER,     /* a commit failed for another reason */
};
struct store_health {
	int failing;              /* 1: failing (see above) */
	enum store_fault fault;   /* the last fault seen (NONE: never since open) */
	int64_t failing_since_ms; /* wall clock of the first failure of this run; 0: not failing */
	int64_t last_failure_ms;  /* wall clock of the last failed write; 0: none since open */
	int64_t failures;         /* writes (groups of jobs) that failed since open; not the probes */
};
void store_health(struct store *s, struct store_health *out);
/* The fault's name for /healthz and logs: "disk-full", "io-error",
 * "read-only", "locked", "damaged", "other"; "" for STORE_FAULT_NONE. */
const char *store_fault_name(enum store_fault f);

/* ---- Webhooks (webhook.h; docs/api.md "Webhooks", docs/store.md "The
 * webhook outbox"). A webhook belongs to the API key that registered it and
 * receives events of that key's notices recorded after its registration.
 * Deliveries are derived from the log: store_webhook_fanout turns events
 * the ledger has integrated into outbox rows, one per (webhook, event), and
 * advances a stored cursor in the same transaction, so a crash at any point
 * either redoes the fan-out or finds it done. */
struct webhook_rec {
	char id[32];
	int64_t apikey_id;
	char *url;
	char *events;          /* "*" or ",type,...," (log event types) */
	uint8_t *secret;       /* the secret as stored (sealed by webhook.c) */
	size_t secret_len;
	int64_t from_seq;      /* events with a seq above it are delivered */
	int64_t created_ms;
	int64_t disabled_ms;   /* 0: active */
	char *disabled_reason;
	int64_t old_secret_until_ms; /* > now: the previous secret still signs (rotation) */
	int64_t pending, delivered, failed, dropped; /* deliveries (store_webhook_get only) */
};
void webhook_recs_free(struct webhook_rec *w, size_t n);
/* Stores a new webhook (id, apikey_id, url, events, secret, created_ms or
 * 0 for now); its from_seq is the last event recorded when it commits. 409
 * when the id exists; 422 too-many-webhooks when the key already has
 * max_per_key (counted in the same transaction as the insert). */
int store_webhook_add(struct store *s, const struct webhook_rec *w, size_t max_per_key,
		      struct selo_err *err);
/* The key's webhooks by id (apikey_id < 0: every key's). *out malloc'd. */
int store_webhook_list(struct store *s, int64_t apikey_id, struct webhook_rec **out, size_t *n,
		       struct selo_err *err);
/* 1 and *out (with the delivery counts) when the key has this webhook. */
int store_webhook_get(struct store *s, const char *id, int64_t apikey_id, struct webhook_rec *out,
		      struct selo_err *err);
/* 1 deleted (with its deliveries), 0 the key has no such webhook. */
int store_webhook_delete(struct store *s, const char *id, int64_t apikey_id,
			 struct selo_err *err);
/* Writes outbox rows for up to max integrated events past the cursor that
 * active webhooks want; *added = rows written. */
int store_webhook_fanout(struct store *s, size_t max, size_t *added, struct selo_err *err);
/* Secret rotation: secret (as sealed) replaces the webhook's, which is kept
 * and signs too until old_until_ms (store_webhook_prune then deletes it).
 * 1 rotated, 0 the key has no such webhook. */
int store_webhook_rotate_secret(struct store *s, const char *id, int64_t apikey_id,
				const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
				struct selo_err *err);

struct webhook_delivery {
	int64_t outbox_id;     /* the message id is "msg_" + this */
	char webhook_id[32];
	char *url;
	uint8_t *secret;       /* as stored */
	size_t secret_len;
	uint8_t *old_secret;   /* the previous one during a rotation's overlap, else NULL */
	size_t old_secret_len;
	int attempts;          /* made before this one */
	char type[32];         /* the event type */
	char notice_id[27];
	char *reference;       /* NULL when the notice has none */
	int64_t log_index;
	int64_t time_ms;       /* the event's time */
	char *entry;           /* its exact log entry */
	size_t entry_len;
};
void webhook_deliveries_free(struct webhook_delivery *d, size_t n);
/* The active webhooks' ids, by id. *ids malloc'd. */
int store_webhook_active(struct store *s, char (**ids)[32], size_t *n, struct selo_err *err);
/* One active webhook's pending deliveries due at now_ms, oldest first (read
 * per webhook, so that one's backlog never hides another's). */
int store_webhook_due(struct store *s, const char *webhook_id, int64_t now_ms, size_t max,
		      struct webhook_delivery **out, size_t *n, struct selo_err *err);

enum webhook_outcome {
	WEBHOOK_RETRY,         /* stays pending until next_ms */
	WEBHOOK_DELIVERED,     /* a 2xx */
	WEBHOOK_GAVE_UP,       /* the last attempt of the schedule failed */
	WEBHOOK_GONE,          /* a 410: the webhook is disabled, its pending rows dropped */
};
struct webhook_result {
	int64_t outbox_id;
	const char *webhook_id;
	enum webhook_outcome outcome;
	int64_t next_ms;       /* WEBHOOK_RETRY */
	int http_status;       /* 0: no answer */
	const char *error;     /* short text (no secrets), may be NULL */
};
/* Records attempts (attempts + 1 each) in one transaction. */
int store_webhook_results(struct store *s, const struct webhook_result *r, size_t n,
			  struct selo_err *err);
/* Deletes up to max finished deliveries (delivered, failed, dropped) that
 * finished before before_ms, oldest first; *pruned = how many. Pending
 * ones are never touched. Also deletes old webhook secrets past their
 * rotation overlap. */
int store_webhook_prune(struct store *s, int64_t before_ms, size_t max, size_t *pruned,
			struct selo_err *err);

/* ---- Statistics (stats.h, docs/stats.md; migration 9). The follower in
 * stats.c reads events past its cursor and writes per-notice facts and
 * per-(dim, day) rollups; a dim is one (API key, template, segment, tags)
 * combination, a day the notice's acceptance day in stats.h's zone. */

/* The rollup's counters, in column order. Notice counts first (each is also
 * a bit of stats_fact.flags), then hit counts. */
enum stats_counter {
	SC_ACCEPTED, SC_DELIVERED, SC_DEFERRED, SC_FAILED, SC_CANCELED,
	SC_OPENED_HUMAN, SC_OPENED_PROXY, SC_OPENED_SCANNER,
	SC_CLICKED_HUMAN, SC_CLICKED_PROXY, SC_CLICKED_SCANNER,
	SC_READ,
	SC_NOTICE_COUNTERS, /* the ones above are notices, the ones below hits */
	SC_OPEN_HITS_HUMAN = SC_NOTICE_COUNTERS, SC_OPEN_HITS_PROXY, SC_OPEN_HITS_SCANNER,
	SC_CLICK_HITS_HUMAN, SC_CLICK_HITS_PROXY, SC_CLICK_HITS_SCANNER,
	SC_COUNT
};
#define STATS_NHITS (SC_COUNT - SC_NOTICE_COUNTERS)
enum stats_delay_kind { SD_OPEN, SD_READ, SD_COUNT }; /* delivery to first human open, to read */

/* One event as the follower sees it; entry is valid during the callback only. */
struct stats_event {
	int64_t seq;
	char notice_id[27];
	char type[32];
	int64_t time_ms;
	const char *entry;
	size_t entry_len;
};
/* Calls fn (which returns 0, or -1 to stop) for up to max events after the
 * stats cursor, in seq order; *cursor is the cursor read, *last the newest
 * event's seq. */
int store_stats_events(struct store *s, size_t max,
		       int (*fn)(void *arg, const struct stats_event *e), void *arg,
		       int64_t *cursor, int64_t *last, struct selo_err *err);

/* What the statistics know of one notice. Times are 0 until known. */
struct stats_fact {
	char notice_id[27];
	int64_t apikey_id;
	int64_t dim;
	int32_t day;           /* acceptance day: days since 1970-01-01 in stats.h's zone */
	uint32_t flags;        /* bit c set: counted in notice counter c (< SC_NOTICE_COUNTERS) */
	int64_t accepted_ms, delivered_ms, open_ms, read_ms; /* open, read: the first human one */
	int64_t hits[STATS_NHITS]; /* counter SC_NOTICE_COUNTERS + k */
};
/* Fills f[i] (notice_id set by the caller) and found[i] = 1 for each
 * notice the statistics have seen, 0 for the others. One read snapshot. */
int store_stats_facts_get(struct store *s, struct stats_fact *f, size_t n, int *found,
			  struct selo_err *err);

/* The notice columns a dim is made of, for n notices in one read; found[i]
 * = 0 when there is no such notice. Free each with stats_notice_info_free. */
struct stats_notice_info {
	int64_t apikey_id;
	char *template_name, *segment, *tags_json; /* NULL when absent */
};
int store_stats_notice_info(struct store *s, const char *const *ids, size_t n,
			    struct stats_notice_info *out, int *found, struct selo_err *err);
void stats_notice_info_free(struct stats_notice_info *i);

/* The id of the dim named dkey (stats.c's canonical text of the other
 * arguments), made if new (a small write of its own). */
int store_stats_dim(struct store *s, const char *dkey, int64_t apikey_id,
		    const char *template_name, const char *segment, const char *tags_json,
		    int64_t *id, struct selo_err *err);

/* Additions to one rollup row and its delay samples (milliseconds). */
struct stats_delta {
	int64_t dim;
	int32_t day;
	int64_t c[SC_COUNT];
	int64_t *delays[SD_COUNT];
	size_t ndelays[SD_COUNT], cap[SD_COUNT];
};
struct stats_batch {
	int64_t cursor_from;   /* the cursor the events were read after */
	int64_t cursor_to;     /* the last event looked at */
	const struct stats_fact *facts;   /* new or changed, written whole */
	size_t nfacts;
	const struct stats_delta *deltas;
	size_t ndeltas;
};
/* One transaction: facts, rollups, delay samples and the cursor. 409 (and
 * nothing written) when the cursor is no longer cursor_from: another
 * process counted these events. */
int store_stats_apply(struct store *s, const struct stats_batch *b, struct selo_err *err);

struct stats_dim {
	int64_t id, apikey_id;
	const char *template_name, *segment, *tags_json; /* NULL when absent */
};
/* A statistics query: which rows to read, and where to hand them. Rollups
 * and delay samples of days [day_from, day_to]; facts of notices accepted in
 * each [ms_from[i], ms_to[i]). apikey_id < 0: every key's. Pointers passed to
 * the callbacks are valid during the call only. */
struct stats_scan {
	int64_t apikey_id;
	int32_t day_from, day_to;        /* day_from > day_to: no rollups */
	int64_t ms_from[2], ms_to[2];
	int nranges;
	void *arg;
	void (*dim)(void *arg, const struct stats_dim *d);
	void (*rollup)(void *arg, int64_t dim, int32_t day, const int64_t c[SC_COUNT]);
	void (*delays)(void *arg, int64_t dim, int32_t day, int kind, const int64_t *v, size_t n);
	void (*fact)(void *arg, const struct stats_fact *f);
	int64_t cursor, last_seq, cursor_time_ms; /* out: what the rows include */
};
/* Reads in one snapshot: the dims, then rollups, delays and facts. */
int store_stats_scan(struct store *s, struct stats_scan *q, struct selo_err *err);

#endif
