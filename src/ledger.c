/* ledger.c: the sequencer, checkpoints, receipts and the audit of the
 * Merkle log (see ledger.h, docs/ledger.md). The tree's right edge lives in
 * memory (struct tlog_edge); everything else is read back from the store's
 * tiles. Integration is one store transaction per batch (indexes, tiles,
 * state); if it fails, the in-memory edge is restored from a copy, so memory
 * and disk never disagree. Errors are logged and retried on the next round:
 * the sequencer never stops the service. */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/diag.h"
#include "selo/evidence.h"
#include "selo/fileio.h"
#include "selo/id.h"
#include "selo/ledger.h"
#include "selo/note.h"
#include "selo/receipt.h"
#include "selo/tlog.h"
#include "selo/tsa.h"

#define BATCH_MAX 20000          /* events per integration transaction */
#define CHECKPOINT_EVERY_MS 1000 /* at most one checkpoint a second */
#define ROUND_MS 100             /* sequencer wake-up */
#define TSA_RETRY_MS 5000        /* after a TSA failure */
#define TSA_CATCHUP 16           /* timestamps per round */

struct ledger {
	struct selo *app;
	struct note_signer *signer;
	struct tsa *tsa;
	char origin[256];
	pthread_mutex_t mu;          /* one round at a time (thread or ledger_sync) */
	struct tlog_edge *edge;
	struct log_state state;
	uint64_t last_cp_size;
	int64_t last_cp_ms;
	int64_t tsa_retry_at;
	pthread_t thread;
	int running;
	int stop;
	pthread_mutex_t smu;
	pthread_cond_t scv;
};

/* ---- Tiles from the store */

struct tile_reader {
	struct store *s;
	struct buf b;
};

static int read_tile(void *arg, int level, uint64_t index, unsigned width, const uint8_t **data,
		     struct selo_err *err)
{
	struct tile_reader *r = arg;
	buf_reset(&r->b);
	int found = store_log_tile(r->s, level, index, &r->b, err);
	if (found < 0)
		return -1;
	if (found == 0 || r->b.len < (size_t)width * TLOG_HASH_LEN)
		return err_set(err, 500, "log-corrupt", "log tile %d/%llu is missing or shorter than %u "
			       "hashes", level, (unsigned long long)index, width);
	*data = (const uint8_t *)r->b.data;
	return 0;
}

/* ---- Opening */

static int ledger_reload(struct ledger *l, struct selo_err *err);

int ledger_open(struct selo *app, struct ledger **out, struct selo_err *err)
{
	struct ledger *l = xcalloc(1, sizeof(*l));
	l->app = app;
	l->edge = xmalloc(sizeof(*l->edge));
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->smu, NULL);
	pthread_cond_init(&l->scv, NULL);
	char keys[1100];
	config_path(&app->cfg, "keys", keys, sizeof(keys));
	if (note_signer_load(keys, &l->signer, err) != 0)
		goto fail;
	snprintf(l->origin, sizeof(l->origin), "%s", note_signer_name(l->signer));
	if (strcmp(l->origin, app->cfg.log_origin) != 0) {
		err_set(err, 500, "config", "log.origin is \"%s\" but the log key (keys/log.key) is named "
			"\"%s\": they must be equal (C2SP); fix log.origin", app->cfg.log_origin,
			l->origin);
		goto fail;
	}
	if (tsa_open(&app->cfg, &l->tsa, err) != 0 || ledger_reload(l, err) != 0)
		goto fail;
	struct checkpoint_rec cp;
	int found = store_checkpoint_find(app->store, 0, 0, &cp, err);
	if (found < 0)
		goto fail;
	if (found) {
		l->last_cp_size = cp.size;
		l->last_cp_ms = cp.created_ms;
		free(cp.note);
		free(cp.tst);
	}
	*out = l;
	return 0;
fail:
	ledger_close(l);
	return -1;
}

void ledger_close(struct ledger *l)
{
	if (!l)
		return;
	ledger_stop(l);
	note_signer_free(l->signer);
	tsa_close(l->tsa);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->smu);
	pthread_cond_destroy(&l->scv);
	free(l->edge);
	free(l);
}

struct tsa *ledger_tsa(struct ledger *l)
{
	return l->tsa;
}

const char *ledger_vkey(const struct ledger *l)
{
	return note_signer_vkey(l->signer);
}

/* ---- Integration */

struct full_tiles {
	struct log_tile_write *t;
	uint8_t *data;  /* ntiles * TLOG_TILE_BYTES, owned */
	size_t n, cap;
};

static int collect_full(void *arg, int level, uint64_t index, const uint8_t data[TLOG_TILE_BYTES])
{
	struct full_tiles *f = arg;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->t = xreallocarray(f->t, f->cap, sizeof(*f->t));
		f->data = xreallocarray(f->data, f->cap, TLOG_TILE_BYTES);
	}
	memcpy(f->data + f->n * TLOG_TILE_BYTES, data, TLOG_TILE_BYTES);
	f->t[f->n] = (struct log_tile_write){level, index, NULL, TLOG_TILE_BYTES};
	f->n++;
	return 0;
}

/* The tiles to write: every tile that filled, then each level's partial. */
static struct log_tile_write *tiles_to_write(const struct tlog_edge *e, struct full_tiles *f,
					     size_t *n)
{
	struct log_tile_write *w = xcalloc(f->n + TLOG_MAX_LEVELS, sizeof(*w));
	for (size_t i = 0; i < f->n; i++) {
		w[i] = f->t[i];
		w[i].data = f->data + i * TLOG_TILE_BYTES;
	}
	*n = f->n;
	for (int level = 0; level < TLOG_MAX_LEVELS; level++) {
		uint64_t idx;
		unsigned width;
		const uint8_t *data;
		tlog_edge_partial(e, level, &idx, &width, &data);
		if (width > 0)
			w[(*n)++] = (struct log_tile_write){level, idx, data, (size_t)width * TLOG_HASH_LEN};
	}
	return w;
}

/* Rebuilds the state and the edge from the store (at open, and when
 * another process has appended). */
static int ledger_reload(struct ledger *l, struct selo_err *err)
{
	if (store_log_state(l->app->store, &l->state, err) != 0)
		return -1;
	struct tile_reader rd = {l->app->store, BUF_INIT};
	int r = tlog_edge_load(l->edge, l->state.size, read_tile, &rd, err);
	buf_free(&rd.b);
	if (r != 0)
		return -1;
	uint8_t root[32];
	tlog_edge_root(l->edge, root);
	if (memcmp(root, l->state.root, 32) != 0)
		return err_set(err, 500, "log-corrupt", "the stored log tiles do not give the stored "
			       "root of the %llu-entry tree; run `selo log verify` to find the damage",
			       (unsigned long long)l->state.size);
	return 0;
}

static int integrate(struct ledger *l, struct selo_err *err)
{
	struct event_rec *ev = NULL;
	size_t n = 0;
	if (store_events_after(l->app->store, l->state.last_seq, BATCH_MAX, &ev, &n, err) != 0)
		return -1;
	if (n == 0) {
		free(ev);
		return 0;
	}
	struct tlog_edge *backup = xmalloc(sizeof(*backup));
	int64_t *seqs = xreallocarray(NULL, n, sizeof(*seqs));
	memcpy(backup, l->edge, sizeof(*backup));
	struct full_tiles full = {0};
	for (size_t i = 0; i < n; i++) {
		uint8_t leaf[32];
		tlog_leaf_hash(ev[i].entry, ev[i].len, leaf);
		tlog_edge_append(l->edge, leaf, collect_full, &full);
		seqs[i] = ev[i].seq;
	}
	size_t ntiles;
	struct log_tile_write *tiles = tiles_to_write(l->edge, &full, &ntiles);
	/* Fenced by the tree it grew from: an integrator on another node (or
	 * process) that moved the log makes this a 409 log-moved. */
	struct log_append a = {.first_index = l->state.size, .seqs = seqs, .n = n,
			       .tiles = tiles, .ntiles = ntiles};
	memcpy(a.old_root, l->state.root, 32);
	tlog_edge_root(l->edge, a.root);
	int r = store_log_append(l->app->store, &a, err);
	if (r == 0) {
		l->state.size += n;
		l->state.last_seq = seqs[n - 1];
		memcpy(l->state.root, a.root, 32);
	} else {
		memcpy(l->edge, backup, sizeof(*backup));
		/* 409 (log-moved, the fence, or an event already indexed): another
		 * process (`selo receipt`, `selo log checkpoint` while `selo serve`
		 * runs) or node integrated first; start again from the store. */
		if (err && err->status == 409)
			r = ledger_reload(l, err) == 0 ? 0 : -1;
	}
	free(tiles);
	free(full.t);
	free(full.data);
	free(backup);
	free(seqs);
	event_recs_free(ev, n);
	return r == 0 ? (int)n : -1;
}

static int checkpoint(struct ledger *l, int force, struct selo_err *err)
{
	int64_t now = clock_now_ms();
	if (l->state.size == 0 || l->state.size == l->last_cp_size)
		return 0;
	if (!force && now - l->last_cp_ms < CHECKPOINT_EVERY_MS)
		return 0;
	struct checkpoint c;
	memset(&c, 0, sizeof(c));
	snprintf(c.origin, sizeof(c.origin), "%s", l->origin);
	c.size = l->state.size;
	memcpy(c.root, l->state.root, 32);
	struct buf text = BUF_INIT, note = BUF_INIT;
	checkpoint_format(&c, &text);
	int r = note_sign(l->signer, text.data, text.len, &note, err);
	if (r == 0)
		r = store_checkpoint_add(l->app->store, c.size, note.data, now, err);
	buf_free(&text);
	buf_free(&note);
	/* 409: another process signed this very size (the same bytes: Ed25519
	 * is deterministic); nothing to add. 409 log-moved: the stored tree
	 * grew meanwhile (another node integrated): sign nothing over the old
	 * size; read the state again, and the next round signs the new one. */
	if (r != 0 && !(err && err->status == 409))
		return -1;
	if (r != 0 && !strcmp(err->type, "log-moved"))
		return ledger_reload(l, err);
	l->last_cp_size = c.size;
	l->last_cp_ms = now;
	return 0;
}

static int timestamp_pending(struct ledger *l, struct selo_err *err)
{
	int64_t now = clock_now_ms();
	if (now < l->tsa_retry_at)
		return 0;
	struct checkpoint_rec *cps = NULL;
	size_t n = 0;
	if (store_checkpoints_untimestamped(l->app->store, TSA_CATCHUP, &cps, &n, err) != 0)
		return -1;
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		uint8_t digest[32];
		sha256(cps[i].note, strlen(cps[i].note), digest);
		uint8_t *der = NULL;
		size_t len = 0;
		int64_t t = 0;
		r = tsa_timestamp(l->tsa, digest, &der, &len, &t, err);
		if (r == 0)
			r = store_checkpoint_timestamp(l->app->store, cps[i].size, der, len, t, err);
		free(der);
	}
	if (r != 0)
		l->tsa_retry_at = now + TSA_RETRY_MS;
	checkpoint_recs_free(cps, n);
	return r;
}

int ledger_sync(struct ledger *l, int force, struct selo_err *err)
{
	pthread_mutex_lock(&l->mu);
	/* A forced round drains everything; a sequencer round integrates one
	 * batch, so that under a steady stream checkpoints still come every
	 * second instead of waiting for the stream to pause. */
	int added = 0, n;
	while ((n = integrate(l, err)) > 0 && (added += n, force))
		;
	int r = n < 0 ? -1 : 0;
	if (r == 0)
		r = checkpoint(l, force, err);
	if (r == 0 && force)
		l->tsa_retry_at = 0;
	if (r == 0)
		r = timestamp_pending(l, err);
	pthread_mutex_unlock(&l->mu);
	return r == 0 ? added : -1;
}

/* ---- The sequencer thread */

/* On a node that does not integrate (store_lead: another node does), the
 * tree grows elsewhere: take the new state and edge from the store when it
 * moved, so receipts and proofs served here are of the current tree. */
static int ledger_follow(struct ledger *l, struct selo_err *err)
{
	struct log_state st;
	if (store_log_state(l->app->store, &st, err) != 0)
		return -1;
	pthread_mutex_lock(&l->mu);
	int r = st.size == l->state.size ? 0 : ledger_reload(l, err);
	pthread_mutex_unlock(&l->mu);
	return r;
}

/* One round: integrate, sign and timestamp when this node has the
 * integrator role, else follow. Returns what ledger_sync returns, or 0
 * when following went well. */
static int ledger_round(struct ledger *l, int stop, int *leading, struct selo_err *err)
{
	int lead = store_lead(l->app->store, STORE_ROLE_INTEGRATOR, err);
	if (lead == 1) {
		*leading = 1;
		return ledger_sync(l, stop, err);
	}
	if (*leading)
		diag_info("ledger: another node integrates the log now; this one follows");
	*leading = 0;
	if (lead < 0)
		return -1;
	return ledger_follow(l, err);
}

static void *sequencer(void *arg)
{
	struct ledger *l = arg;
	struct diag_limit fail_log = DIAG_LIMIT_INIT; /* a round fails every second on a full disk */
	int leading = 1;
	for (;;) {
		pthread_mutex_lock(&l->smu);
		if (!l->stop) {
			struct timespec ts = clock_deadline(CLOCK_REALTIME, ROUND_MS);
			pthread_cond_timedwait(&l->scv, &l->smu, &ts);
		}
		int stop = l->stop;
		pthread_mutex_unlock(&l->smu);
		struct selo_err err;
		err_clear(&err);
		/* On stop, one last round so that what was recorded is integrated.
		 * A failed round changed nothing (integrate keeps its edge): the
		 * next one tries the same events again. */
		if (ledger_round(l, stop, &leading, &err) < 0)
			diag_warn_limited(&fail_log, "ledger: %s (will retry)", err.msg);
		else
			diag_ended(&fail_log, "ledger: integrating works again");
		if (stop)
			break;
	}
	return NULL;
}

int ledger_start(struct ledger *l, struct selo_err *err)
{
	if (pthread_create(&l->thread, NULL, sequencer, l) != 0)
		return err_set(err, 500, "thread", "cannot start the ledger's sequencer");
	l->running = 1;
	return 0;
}

void ledger_stop(struct ledger *l)
{
	if (!l || !l->running)
		return;
	pthread_mutex_lock(&l->smu);
	l->stop = 1;
	pthread_cond_broadcast(&l->scv);
	pthread_mutex_unlock(&l->smu);
	pthread_join(l->thread, NULL);
	l->running = 0;
}

int ledger_latest_checkpoint(struct ledger *l, struct buf *note, struct selo_err *err)
{
	struct checkpoint_rec cp;
	int found = store_checkpoint_find(l->app->store, 0, 0, &cp, err);
	if (found <= 0)
		return found;
	buf_puts(note, cp.note);
	free(cp.note);
	free(cp.tst);
	return 1;
}

/* ---- Receipts */

/* Commitments to content (not addresses): what the short form withholds.
 * Returns them as the keys of a JSON object, from the submission's entry. */
static json_t *content_commitments(const struct event_rec *ev, size_t nev)
{
	json_t *set = json_object();
	static const char *const keys[] = {"vars", "subject", "text", "html", NULL};
	for (size_t i = 0; i < nev; i++) {
		if (strcmp(ev[i].type, EV_SUBMISSION_ACCEPTED) != 0)
			continue;
		json_t *e = json_loadb(ev[i].entry, ev[i].len, 0, NULL);
		for (size_t k = 0; keys[k]; k++) {
			const char *v = json_string_value(json_object_get(e, keys[k]));
			if (v)
				json_object_set_new(set, v, json_true());
		}
		size_t ai;
		json_t *a;
		json_array_foreach(json_object_get(e, "attachments"), ai, a) {
			const char *v = json_string_value(json_object_get(a, "filename"));
			if (v)
				json_object_set_new(set, v, json_true());
		}
		json_decref(e);
	}
	return set;
}

static json_t *ledger_receipt_log(struct ledger *l, const struct checkpoint_rec *cp,
				  struct selo_err *err)
{
	struct buf certs = BUF_INIT, tst = BUF_INIT;
	/* The chain of this token's own TSA certificate: right even after the
	 * TSA's certificate was renewed. */
	int nc = tsa_token_certs_pem(l->tsa, cp->tst, cp->tst_len, &certs, err);
	if (nc < 0) {
		buf_free(&certs);
		return NULL;
	}
	json_t *arr = json_array();
	for (size_t off = 0; off < certs.len;) {
		const char *pem = certs.data + off;
		json_array_append_new(arr, json_string(pem));
		off += strlen(pem) + 1;
	}
	buf_free(&certs);
	base64_encode(&tst, cp->tst, cp->tst_len, 0);
	json_t *log = json_pack("{s:s,s:s,s:s,s:o}", "verifier_key", ledger_vkey(l), "checkpoint",
				cp->note, "timestamp", buf_str(&tst), "tsa_certs", arr);
	buf_free(&tst);
	return log;
}

static json_t *ledger_receipt_events(struct ledger *l, const struct event_rec *ev, size_t nev,
			      uint64_t size, struct selo_err *err)
{
	struct tile_reader rd = {l->app->store, BUF_INIT};
	json_t *arr = json_array();
	for (size_t i = 0; i < nev; i++) {
		uint8_t proof[TLOG_MAX_PROOF][32];
		size_t np = 0;
		if (tlog_inclusion_proof((uint64_t)ev[i].log_index, size, read_tile, &rd, proof, &np,
					 err) != 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
		json_t *p = json_array();
		for (size_t k = 0; k < np; k++) {
			struct buf b = BUF_INIT;
			base64_encode(&b, proof[k], 32, 0);
			json_array_append_new(p, json_string(b.data));
			buf_free(&b);
		}
		json_array_append_new(arr, json_pack("{s:I,s:s%,s:o}", "index",
						     (json_int_t)ev[i].log_index, "entry", ev[i].entry,
						     ev[i].len, "proof", p));
	}
	buf_free(&rd.b);
	return arr;
}

static json_t *ledger_receipt_disclosure(struct ledger *l, const struct notice_rec *rec,
				  const struct event_rec *ev, size_t nev, int short_form,
				  struct selo_err *err)
{
	struct disclosures d = DISCLOSURES_INIT;
	if (store_disclosures_of(l->app->store, rec->id, &d, err) != 0 ||
	    evidence_disclosures(rec->id, rec->salt, &d, err) != 0) {
		disclosures_free(&d);
		return NULL;
	}
	json_t *values = json_object();
	json_t *content = short_form ? content_commitments(ev, nev) : NULL;
	for (size_t i = 0; i < d.n; i++) {
		if (content && json_object_get(content, d.v[i].commitment))
			continue;
		json_object_set_new(values, d.v[i].commitment,
				    json_stringn(d.v[i].value, d.v[i].len));
	}
	json_decref(content);
	disclosures_free(&d);
	char salt[65];
	hex_encode(rec->salt, 32, salt);
	return json_pack("{s:s,s:o}", "salt", salt, "values", values);
}

static json_t *ledger_receipt_message(struct ledger *l, const char *id, const struct event_rec *ev,
			       size_t nev, int short_form, struct selo_err *err)
{
	struct buf eml = BUF_INIT;
	char hex[65];
	/* hex is the digest the log seals, and the bytes are checked against it */
	int found = evidence_message_sealed(l->app->store, id, ev, nev, &eml, hex, err);
	if (found <= 0) {
		buf_free(&eml);
		if (found == 0)
			err_set(err, 409, "not-sealed", "notice %s has no sealed message, so there is "
				"nothing to prove delivery of", id);
		return NULL;
	}
	json_t *m = json_pack("{s:s}", "sha256", hex);
	if (!short_form) {
		struct buf b = BUF_INIT;
		base64_encode(&b, (const uint8_t *)eml.data, eml.len, 0);
		json_object_set_new(m, "eml_base64", json_string(b.data));
		buf_free(&b);
	}
	buf_free(&eml);
	return m;
}

int ledger_receipt(struct ledger *l, const char *notice_id, int short_form, json_t **out,
		   struct selo_err *err)
{
	/* The events first, then the row: a seal writes both in one
	 * transaction, so a row read after the events is at least as new as
	 * they are and a notice sealed meanwhile never looks damaged. */
	struct event_rec *ev = NULL;
	size_t nev = 0;
	if (store_events_of(l->app->store, notice_id, &ev, &nev, err) != 0)
		return -1;
	struct notice_rec rec;
	int found = store_notice_get(l->app->store, notice_id, -1, &rec, err);
	if (found <= 0) {
		event_recs_free(ev, nev);
		return found < 0 ? -1 : err_set(err, 404, "not-found", "no notice %s", notice_id);
	}
	int r = -1;
	json_t *log = NULL, *events = NULL, *msg = NULL, *disc = NULL;
	struct checkpoint_rec cp = {0};
	/* A receipt is only as good as its parts: each entry must be the one
	 * the log holds, and the row it discloses must be the one the events
	 * commit to (evidence.h). */
	if (evidence_entries(l->app->store, ev, nev, err) != 0 ||
	    evidence_notice(&rec, ev, nev, err) != 0)
		goto out;
	int64_t maxidx = -1;
	for (size_t i = 0; i < nev; i++) {
		if (ev[i].log_index < 0) {
			err_set(err, 503, "not-in-log-yet", "the notice's latest events are not in the "
				"log yet; try again in a few seconds");
			goto out;
		}
		if (ev[i].log_index > maxidx)
			maxidx = ev[i].log_index;
	}
	found = store_checkpoint_find(l->app->store, (uint64_t)(maxidx + 1), 1, &cp, err);
	if (found <= 0) {
		if (found == 0)
			err_set(err, 503, "not-timestamped-yet", "no timestamped checkpoint covers this "
				"notice's events yet; try again in a few seconds");
		goto out;
	}
	if (!(log = ledger_receipt_log(l, &cp, err)) ||
	    !(events = ledger_receipt_events(l, ev, nev, cp.size, err)) ||
	    !(msg = ledger_receipt_message(l, notice_id, ev, nev, short_form, err)) ||
	    !(disc = ledger_receipt_disclosure(l, &rec, ev, nev, short_form, err)))
		goto out;
	char now[32];
	clock_rfc3339(clock_now_ms(), now);
	*out = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o}", "format", RECEIPT_FORMAT, "notice",
			 notice_id, "issued_at", now, "log", log, "events", events, "message", msg,
			 "disclosure", disc);
	log = events = msg = disc = NULL;
	r = *out ? 0 : err_set(err, 500, "internal", "cannot build the receipt");
out:
	json_decref(log);
	json_decref(events);
	json_decref(msg);
	json_decref(disc);
	free(cp.note);
	free(cp.tst);
	event_recs_free(ev, nev);
	notice_rec_free(&rec);
	return r;
}

/* ---- Audit */

struct audit {
	struct ledger *l;
	void (*report)(void *, int, const char *);
	void *arg;
	struct tile_reader rd;
	struct note_verifier v;
	struct buf ca;
	struct log_state state; /* as read when the audit began: later growth is not audited */
	int failed;             /* the tree, a tile or a checkpoint: the walk stops */
	uint64_t bad_entries;   /* events whose row disagrees with the log: reported, walk on */
	struct tile_reader leaves; /* the level-0 tile of the entry in hand */
	int64_t leaf_tile;
	char line[700];
};

static void say(struct audit *a, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct audit *a, int ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->line, sizeof(a->line), fmt, ap);
	va_end(ap);
	if (!ok)
		a->failed = 1;
	if (a->report)
		a->report(a->arg, ok, a->line);
}

/* A damaged event row: a failure to report, after which the walk goes on. */
static void say_entry(struct audit *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say_entry(struct audit *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->line, sizeof(a->line), fmt, ap);
	va_end(ap);
	a->bad_entries++;
	if (a->report)
		a->report(a->arg, 0, a->line);
}

/* A tile that filled while recomputing must equal the stored one. */
static int compare_full(void *arg, int level, uint64_t index, const uint8_t data[TLOG_TILE_BYTES])
{
	struct audit *a = arg;
	const uint8_t *stored;
	struct selo_err err;
	err_clear(&err);
	if (read_tile(&a->rd, level, index, TLOG_TILE_WIDTH, &stored, &err) != 0 ||
	    memcmp(stored, data, TLOG_TILE_BYTES) != 0) {
		say(a, 0, "tile %d/%llu: stored tile differs from the hashes of the stored entries",
		    level, (unsigned long long)index);
		return 1;
	}
	return 0;
}

static int audit_checkpoint(struct audit *a, const struct checkpoint_rec *cp, const uint8_t root[32])
{
	struct buf text = BUF_INIT;
	struct selo_err err;
	err_clear(&err);
	struct checkpoint c;
	int ok = note_verify(&a->v, 1, cp->note, strlen(cp->note), &text, &err) == 0 &&
		 checkpoint_parse(text.data, text.len, &c, &err) == 0;
	buf_free(&text);
	if (!ok) {
		say(a, 0, "checkpoint %llu: %s", (unsigned long long)cp->size, err.msg);
		return -1;
	}
	if (c.size != cp->size || strcmp(c.origin, a->l->origin) != 0 || memcmp(c.root, root, 32)) {
		say(a, 0, "checkpoint %llu: its signed size, origin or root does not match the tree "
			  "recomputed from the entries", (unsigned long long)cp->size);
		return -1;
	}
	if (!cp->tst) {
		say(a, 1, "checkpoint %llu: signature and root ok; not timestamped yet",
		    (unsigned long long)cp->size);
		return 0;
	}
	uint8_t digest[32];
	sha256(cp->note, strlen(cp->note), digest);
	int64_t t;
	char name[256];
	if (tsa_verify_token(cp->tst, cp->tst_len, digest, a->ca.data, a->ca.len, NULL, 0, &t, name,
			     sizeof(name), &err) != 0) {
		say(a, 0, "checkpoint %llu: timestamp: %s", (unsigned long long)cp->size, err.msg);
		return -1;
	}
	char ts[32];
	clock_rfc3339(t, ts);
	say(a, 1, "checkpoint %llu: signature, root and timestamp (%s) ok",
	    (unsigned long long)cp->size, ts);
	return 0;
}

static int audit_consistency(struct audit *a, const struct checkpoint_rec *cps, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct buf t1 = BUF_INIT, t2 = BUF_INIT;
		struct checkpoint c1, c2;
		struct selo_err err;
		err_clear(&err);
		uint8_t proof[TLOG_MAX_PROOF][32];
		size_t np;
		int ok = note_verify(&a->v, 1, cps[i - 1].note, strlen(cps[i - 1].note), &t1, &err) == 0 &&
			 note_verify(&a->v, 1, cps[i].note, strlen(cps[i].note), &t2, &err) == 0 &&
			 checkpoint_parse(t1.data, t1.len, &c1, &err) == 0 &&
			 checkpoint_parse(t2.data, t2.len, &c2, &err) == 0 &&
			 tlog_consistency_proof(c1.size, c2.size, read_tile, &a->rd, proof, &np, &err) == 0 &&
			 tlog_verify_consistency(c1.size, c2.size, c1.root, c2.root,
						 (const uint8_t(*)[32])proof, np) == 0;
		buf_free(&t1);
		buf_free(&t2);
		if (!ok) {
			say(a, 0, "checkpoints %llu and %llu are not consistent%s%s",
			    (unsigned long long)cps[i - 1].size, (unsigned long long)cps[i].size,
			    err.msg[0] ? ": " : "", err.msg);
			return -1;
		}
	}
	if (n > 1)
		say(a, 1, "%zu checkpoints, each consistent with the next", n);
	return 0;
}

static int audit_trust(struct audit *a, struct selo_err *err)
{
	const struct selo_config *cfg = &a->l->app->cfg;
	char path[1100];
	if (cfg->tsa_url[0])
		snprintf(path, sizeof(path), "%s", cfg->tsa_ca);
	else
		config_path(cfg, "keys/ca.crt", path, sizeof(path));
	if (file_read(path, 1 << 20, &a->ca, err) != 0)
		return -1;
	return note_verifier_parse(ledger_vkey(a->l), &a->v, err);
}

/* An event row against the log: its columns against its entry's head, and
 * its entry against the leaf the log holds. Each mismatch is reported by
 * notice and the walk goes on; leaf gets the stored leaf hash, so the tree
 * is still recomputed from what the log holds and the checkpoints tell
 * whether the tiles are sound: the damage is then the event row alone. */
static void audit_entry(struct audit *a, const struct event_rec *e, uint64_t index,
			uint8_t leaf[32])
{
	struct selo_err err;
	err_clear(&err);
	if (evidence_entry_head(e, &err) != 0)
		say_entry(a, "log entry %llu (seq %lld): the event row's type, notice or time is not "
			  "what its entry says: the event row is damaged", (unsigned long long)index,
			  (long long)e->seq);
	tlog_leaf_hash(e->entry, e->len, leaf);
	int64_t tile = (int64_t)(index / TLOG_TILE_WIDTH);
	unsigned width = (unsigned)(index % TLOG_TILE_WIDTH) + 1;
	const uint8_t *stored;
	if (tile != a->leaf_tile || a->leaves.b.len < (size_t)width * TLOG_HASH_LEN) {
		a->leaf_tile = -1;
		if (read_tile(&a->leaves, 0, (uint64_t)tile, width, &stored, &err) != 0)
			return; /* the tree's walk reports the missing tile */
		a->leaf_tile = tile;
	}
	stored = (const uint8_t *)a->leaves.b.data + (index % TLOG_TILE_WIDTH) * TLOG_HASH_LEN;
	if (memcmp(stored, leaf, 32) == 0)
		return;
	memcpy(leaf, stored, 32);
	say_entry(a, "log entry %llu (notice %s, %s, seq %lld): the stored event does not hash to "
		  "its leaf in the log: the event row is damaged", (unsigned long long)index,
		  id_text_valid(e->notice_id) ? e->notice_id : "?", e->type, (long long)e->seq);
}

/* Streams the entries in index order, recomputing tiles and roots. */
static int audit_entries(struct audit *a, const struct checkpoint_rec *cps, size_t ncp,
			 struct tlog_edge *edge, struct selo_err *err)
{
	size_t ci = 0;
	uint64_t next = 0;
	for (;;) {
		struct event_rec *ev = NULL;
		size_t n = 0;
		if (next >= a->state.size)
			break;
		if (store_log_entries(a->l->app->store, next, 10000, &ev, &n, err) != 0)
			return -1;
		for (size_t i = 0; i < n && !a->failed && next < a->state.size; i++, next++) {
			if ((uint64_t)ev[i].log_index != next) {
				say(a, 0, "log entry %llu is missing", (unsigned long long)next);
				break;
			}
			uint8_t leaf[32];
			audit_entry(a, &ev[i], next, leaf);
			if (tlog_edge_append(edge, leaf, compare_full, a) != 0)
				break;
			while (ci < ncp && cps[ci].size == edge->size) {
				uint8_t root[32];
				tlog_edge_root(edge, root);
				if (audit_checkpoint(a, &cps[ci++], root) != 0)
					break;
			}
		}
		event_recs_free(ev, n);
		if (n == 0 || a->failed)
			break;
	}
	if (!a->failed && next < a->state.size)
		say(a, 0, "log entry %llu is missing", (unsigned long long)next);
	if (!a->failed && ci < ncp && cps[ci].size <= a->state.size)
		say(a, 0, "checkpoint %llu does not match the entries' tree",
		    (unsigned long long)cps[ci].size);
	return 0;
}

/* A running `selo serve` may integrate while the audit reads: a partial
 * tile then holds more hashes than the state the audit began from. Its
 * first hashes never change, so a longer tile is sound exactly when the
 * stored tree has grown since; in a store nobody writes, it is damage. */
static int audit_tree_grew(struct audit *a)
{
	struct log_state now;
	struct selo_err err;
	err_clear(&err);
	return store_log_state(a->l->app->store, &now, &err) == 0 && now.size > a->state.size;
}

static void audit_state(struct audit *a, const struct tlog_edge *edge)
{
	const struct log_state stored = a->state;
	struct selo_err err;
	err_clear(&err);
	uint8_t root[32];
	tlog_edge_root(edge, root);
	if (stored.size != edge->size || memcmp(stored.root, root, 32) != 0) {
		say(a, 0, "the stored tree state (size %llu) does not match the %llu stored entries",
		    (unsigned long long)stored.size, (unsigned long long)edge->size);
		return;
	}
	for (int level = 0; level < TLOG_MAX_LEVELS && !a->failed; level++) {
		uint64_t idx;
		unsigned width;
		const uint8_t *data, *stored_tile;
		tlog_edge_partial(edge, level, &idx, &width, &data);
		if (width && (read_tile(&a->rd, level, idx, width, &stored_tile, &err) != 0 ||
			      memcmp(stored_tile, data, width * 32) ||
			      (a->rd.b.len != (size_t)width * 32 && !audit_tree_grew(a))))
			say(a, 0, "partial tile %d/%llu differs from the stored entries", level,
			    (unsigned long long)idx);
	}
	int64_t unindexed = 0;
	if (store_log_unindexed(a->l->app->store, stored.last_seq, &unindexed, &err) != 0 || unindexed)
		say(a, 0, "%lld recorded event(s) before the last integrated one are not in the log",
		    (long long)unindexed);
	if (!a->failed && !a->bad_entries)
		say(a, 1, "%llu entries: every tile and the tree state match the stored entries",
		    (unsigned long long)edge->size);
	else if (!a->failed)
		say(a, 1, "%llu entries: every tile and the tree state match the log's leaves (the "
		    "event rows listed above do not)", (unsigned long long)edge->size);
}

/* Events recorded after the last integrated one have no leaf yet: only
 * their rows against their entries' heads can be checked. */
static int audit_tail(struct audit *a, struct selo_err *err)
{
	int64_t after = a->state.last_seq;
	uint64_t seen = 0;
	for (;;) {
		struct event_rec *ev = NULL;
		size_t n = 0;
		if (store_events_after(a->l->app->store, after, 10000, &ev, &n, err) != 0)
			return -1;
		for (size_t i = 0; i < n; i++) {
			struct selo_err e;
			err_clear(&e);
			if (evidence_entry_head(&ev[i], &e) != 0)
				say_entry(a, "event seq %lld (not in the log yet): its row's type, "
					  "notice or time is not what its entry says: the event row "
					  "is damaged", (long long)ev[i].seq);
		}
		seen += n;
		if (n)
			after = ev[n - 1].seq;
		event_recs_free(ev, n);
		if (n < 10000)
			break;
	}
	if (seen)
		say(a, 1, "%llu event(s) recorded after the last integrated one: not in the log yet "
		    "(`selo serve` integrates them within a second)", (unsigned long long)seen);
	return 0;
}

int ledger_audit(struct ledger *l, void (*report)(void *arg, int ok, const char *line), void *arg,
		 struct selo_err *err)
{
	struct audit a;
	memset(&a, 0, sizeof(a));
	a.l = l;
	a.report = report;
	a.arg = arg;
	a.rd.s = l->app->store;
	a.leaves.s = l->app->store;
	a.leaf_tile = -1;
	struct checkpoint_rec *cps = NULL;
	size_t ncp = 0;
	struct tlog_edge *edge = xmalloc(sizeof(*edge));
	tlog_edge_init(edge);
	int r = -1;
	pthread_mutex_lock(&l->mu);
	if (audit_trust(&a, err) != 0 || store_log_state(l->app->store, &a.state, err) != 0 ||
	    store_checkpoints_all(l->app->store, &cps, &ncp, err) != 0 ||
	    audit_entries(&a, cps, ncp, edge, err) != 0)
		goto out;
	if (!a.failed)
		audit_state(&a, edge);
	size_t ncovered = 0;
	while (ncovered < ncp && cps[ncovered].size <= a.state.size)
		ncovered++;
	if (!a.failed)
		audit_consistency(&a, cps, ncovered);
	if (audit_tail(&a, err) != 0)
		goto out;
	r = a.failed || a.bad_entries ? 1 : 0;
out:
	pthread_mutex_unlock(&l->mu);
	checkpoint_recs_free(cps, ncp);
	buf_free(&a.rd.b);
	buf_free(&a.leaves.b);
	buf_free(&a.ca);
	free(edge);
	return r;
}
