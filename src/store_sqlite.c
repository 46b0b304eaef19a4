/* store_sqlite.c: the SQLite backend of store.h (its ops table, store_backend.h),
 * and the machinery its other files share (store_sqlite_int.h lists them):
 * open and close, connections and their statement cache, the writer thread
 * and group commit, the health of writes, the WAL, ping. Everything Selo
 * keeps lives in one WAL-mode database file; docs/store.md describes the
 * schema, the states, the migrations and the durability argument.
 *
 * Concurrency: one writer thread owns the only read-write connection. A
 * public write wraps its work in a job, queues it and sleeps until the writer
 * has run it. The writer takes every job waiting (up to GROUP_MAX), runs them
 * in one BEGIN IMMEDIATE transaction, each inside its own SAVEPOINT (a failing
 * job is undone alone), commits once (synchronous=FULL: one fsync for the
 * whole group) and only then wakes the callers. Event entries are encoded by
 * the writer with a clock that never goes backwards, so seq order is time
 * order. Reads use a pool of up to READERS_MAX read-only connections opened
 * on demand; in WAL mode they see the last commit and never block the writer.
 * Every statement is prepared once per connection and cached; user text only
 * ever reaches SQLite as a bound parameter.
 *
 * Failure: every function fills struct selo_err with what failed and SQLite's
 * message, status 500 for storage failures and 4xx for the caller's
 * mistakes. A failed COMMIT fails every job of its group (none is durable).
 * Memory exhaustion aborts, as in buf.c. Messages name notice ids, never
 * addresses or other personal data. */
#include "store_sqlite_int.h"

#define GROUP_MAX 256          /* jobs per transaction: bounds one group's latency */
#define READERS_MAX 8          /* read connections; more readers wait for one */
#define BUSY_TIMEOUT_MS 5000   /* another process (selo CLI) holding the write lock */
#define PING_FULL_EVERY_MS (10 * 60 * 1000) /* quick_check reads the whole file */

static const struct store_ops store_sqlite_ops;
static void sqlite_close(struct store *base);

/* ---- Small helpers. */

char *sqlite_xmemdup(const void *p, size_t n)
{
	char *d = xcalloc(n + 1, 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

/* Doubles *cap when n has reached it. */
void *sqlite_grow(void *p, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 16;
	return xrealloc(p, *cap * size);
}

/* SQLite found the file's bytes inconsistent: not a failure to retry but
 * damage, which the operator must repair (docs/operations.md). */
int sqlite_damaged_file(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* Keeps the failure's codes on the connection (the writer's health needs
 * them after the statement is reset) and fills err. */
int sqlite_db_err(struct selo_err *err, struct conn *c, const char *what)
{
	c->last_rc = sqlite3_extended_errcode(c->db);
	c->last_errno = sqlite3_system_errno(c->db);
	if (sqlite_damaged_file(c->last_rc))
		return err_set(err, 500, "store-damaged",
			       "store: %s: the database file is damaged (%s); run `selo store check "
			       "--data DIR` and restore it from a backup (docs/operations.md, \"A "
			       "damaged store\")",
			       what, sqlite3_errmsg(c->db));
	return err_set(err, 500, "storage-failed", "store: %s: %s", what, sqlite3_errmsg(c->db));
}

sqlite3_stmt *sqlite_stmt_get(struct conn *c, enum stmt_id id, struct selo_err *err)
{
	if (c->st[id])
		return c->st[id];
	if (sqlite3_prepare_v3(c->db, sqlite_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL) !=
	    SQLITE_OK) {
		err_set(err, 500, "storage-failed", "store: preparing \"%.48s\": %s", sqlite_stmt_sql[id],
			sqlite3_errmsg(c->db));
		sqlite3_finalize(c->st[id]);
		c->st[id] = NULL;
	}
	return c->st[id];
}

/* Returns a cached statement to its unbound state, releasing its read lock. */
void sqlite_stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no row, then resets it. */
int sqlite_step_done(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	c->last_rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(c->db);
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, what);
	sqlite_stmt_done(st);
	return r;
}

int sqlite_run_simple(struct conn *c, enum stmt_id id, struct selo_err *err, const char *what)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, id, err);
	return st ? sqlite_step_done(c, st, err, what) : -1;
}

/* Bind failures (a blob over SQLite's size limit) are reported like step
 * failures; the statement is reset so the cache stays clean. */
int sqlite_bind_failed(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what)
{
	sqlite_db_err(err, c, what);
	sqlite_stmt_done(st);
	return -1;
}

int sqlite_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* A zero-length blob must not become NULL (the columns are NOT NULL). */
int sqlite_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	if (!p || !n)
		return sqlite3_bind_zeroblob(st, i, 0);
	return sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);
}

char *sqlite_col_text(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	const unsigned char *t = sqlite3_column_text(st, i);
	return sqlite_xmemdup(t ? (const char *)t : "", t ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

void sqlite_col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* A blob column as malloc'd bytes with a NUL after them (entries are text). */
char *sqlite_col_bytes(sqlite3_stmt *st, int i, size_t *len)
{
	const void *p = sqlite3_column_blob(st, i);
	*len = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
	return sqlite_xmemdup(p, *len);
}

/* ---- Connections. */

struct conn *sqlite_conn_open(const char *path, int flags, struct selo_err *err)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	/* Savepoint journals and sorts in memory: on disk, the writer's
	 * per-job savepoints spilled into a new temporary file (created,
	 * unlinked, written, closed, its blocks freed) about 290 times a second
	 * under load (`perf trace`, make bench). They hold at most one group's
	 * changed pages. */
	rc = sqlite3_exec(c->db, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return c;
fail:
	err_set(err, 500, "storage-failed", "store: opening %s: %s", path,
		c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	sqlite3_close(c->db);
	free(c);
	return NULL;
}

void sqlite_conn_close(struct conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

static int text_cb(void *arg, int ncol, char **vals, char **names)
{
	(void)names;
	if (ncol > 0 && vals[0])
		snprintf(arg, 16, "%s", vals[0]);
	return 0;
}

static int writer_setup(struct conn *c, struct selo_err *err)
{
	char mode[16] = "";
	if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", text_cb, mode, NULL) != SQLITE_OK)
		return sqlite_db_err(err, c, "setting WAL mode");
	if (strcmp(mode, "wal") != 0)
		return err_set(err, 500, "storage-failed",
			       "store: the database refused WAL mode (journal_mode is \"%s\"); it "
			       "must be on a local file system",
			       mode);
	/* FULL: a commit is on disk before its callers hear of it (a 202 is a promise).
	 * journal_size_limit: the WAL shrinks back to 256 MiB after a burst, but
	 * not below: the writer restarts it at 64 MiB (wal_restart), and a
	 * truncation in every cycle would free and reallocate its blocks (on a
	 * file system mounted with `discard`, a synchronous discard inside a
	 * commit: 50 ms measured). */
	/* wal_autocheckpoint=0: the writer never copies the WAL back itself (a
	 * checkpoint after a burst of sealed messages took hundreds of ms, and
	 * every waiting commit with it); the checkpointer thread does. */
	if (sqlite3_exec(c->db,
			 "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
			 " PRAGMA journal_size_limit=268435456; PRAGMA wal_autocheckpoint=0",
			 NULL, NULL, NULL) != SQLITE_OK)
		return sqlite_db_err(err, c, "setting pragmas");
	return 0;
}

/* Creating the file ourselves gives it mode 0600 (it holds personal data);
 * SQLite gives its -wal and -shm files the same mode. */
static int file_precreate(const char *path, struct selo_err *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, 500, "storage-failed", "store: cannot open %s: %s", path,
			       strerror(errno));
	close(fd);
	return 0;
}

/* Seeds the event clock with the newest event's time, so that time order
 * holds across restarts even if the wall clock was set back meanwhile. */
static int last_event_time_load(struct store_sqlite *s, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(s->w, S_LAST_EVENT_TIME, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		s->last_event_ms = sqlite3_column_int64(st, 0);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_db_err(err, s->w, "reading the last event");
	sqlite_stmt_done(st);
	return r;
}

/* ---- The writer. */

/* The time of the next event: the wall clock, held still rather than let it
 * go backwards, so that seq order and time order agree. */
int64_t sqlite_writer_time(struct store_sqlite *s)
{
	int64_t t = clock_now_ms();
	if (t < s->last_event_ms)
		t = s->last_event_ms;
	s->last_event_ms = t;
	return t;
}

/* Ends a savepoint: kept when ok, else undone. Returns 0 when kept, 1 when
 * undone, -1 when neither worked (the transaction must not commit). */
int sqlite_savepoint_end(struct conn *c, enum stmt_id release, enum stmt_id undo, int ok,
			 struct selo_err *err)
{
	if (ok && sqlite_run_simple(c, release, err, "releasing a savepoint") == 0)
		return 0;
	struct selo_err e2;
	if (sqlite_run_simple(c, undo, &e2, "undoing a savepoint") != 0 ||
	    sqlite_run_simple(c, release, &e2, "releasing a savepoint") != 0) {
		if (err)
			*err = e2;
		return -1;
	}
	return 1;
}

/* ---- Health of writes (store.h "Health of writes"). */

/* The class of a failure from SQLite's extended code and the errno behind
 * it; NONE for codes that are not the storage's fault (a constraint, a
 * blob too big, a bug's sqlite_stmt_sql error). */
static enum store_fault fault_of(int rc, int sys_errno)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return STORE_FAULT_DISK_FULL;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		if (sys_errno == ENOSPC || sys_errno == EDQUOT)
			return STORE_FAULT_DISK_FULL;
		return sys_errno == EROFS ? STORE_FAULT_READ_ONLY : STORE_FAULT_IO;
	case SQLITE_READONLY:
		return STORE_FAULT_READ_ONLY;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return STORE_FAULT_LOCKED;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return STORE_FAULT_DAMAGED;
	case SQLITE_NOMEM:
		return STORE_FAULT_OTHER;
	default:
		return STORE_FAULT_NONE;
	}
}

/* Notes the writer connection's last failure as the group's fault, when
 * it is the storage's and the group has none yet. */
static void group_fault(struct store_sqlite *s)
{
	enum store_fault f = fault_of(s->w->last_rc, s->w->last_errno);
	if (f == STORE_FAULT_NONE || s->g_fault != STORE_FAULT_NONE)
		return;
	s->g_fault = f;
	s->g_rc = s->w->last_rc;
}

/* Called by SQLite inside a commit that wrote frames to the WAL: that
 * commit proves that writes reach the disk. */
static int writer_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	(void)frames;
	struct store_sqlite *s = arg;
	s->g_wrote = 1;
	return SQLITE_OK;
}

/* What store_health reports: failing while the last write that proved
 * anything failed, and for STORE_HEALTHY_AFTER_MS after any failure (h:
 * the writer's record, whose `failing` is the last outcome). */
static int health_failing(const struct store_health *h, int64_t now)
{
	return h->failing || (h->last_failure_ms && now - h->last_failure_ms < STORE_HEALTHY_AFTER_MS);
}

/* Publishes what the last group (or probe) learned: a fault makes the
 * store failing; a commit that wrote and met no fault ends the run of
 * failures (store_health still says failing for a while: health_failing). */
static void health_note(struct store_sqlite *s, int probe)
{
	enum store_fault f = s->g_fault;
	if (f == STORE_FAULT_NONE && !s->g_wrote && !probe)
		return;
	s->tried_ms = clock_mono_ms();
	if (f == STORE_FAULT_NONE && !s->g_wrote)
		return; /* a probe that committed without writing: cannot happen, proves nothing */
	int64_t now = clock_now_ms();
	pthread_mutex_lock(&s->hmu);
	struct store_health *h = &s->health;
	if (f != STORE_FAULT_NONE) {
		if (!health_failing(h, now))
			h->failing_since_ms = now;
		h->fault = f;
		h->last_failure_ms = now;
		h->failures += !probe;
		h->failing = 1;
	} else {
		h->failing = 0;
	}
	pthread_mutex_unlock(&s->hmu);
	if (f != STORE_FAULT_NONE)
		diag_error_limited(&s->fail_log, "store: a write failed (%s: %s); /healthz answers 503 "
				   "until one succeeds", store_fault_name(f), sqlite3_errstr(s->g_rc));
	else
		diag_ended(&s->fail_log, "store: writes succeed again");
}

static void sqlite_health(struct store *base, struct store_health *out)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t now = clock_now_ms();
	pthread_mutex_lock(&s->hmu);
	*out = s->health;
	pthread_mutex_unlock(&s->hmu);
	out->failing = health_failing(out, now);
	if (!out->failing)
		out->failing_since_ms = 0;
}

static int probe_int_cb(void *arg, int ncol, char **vals, char **names)
{
	(void)names;
	if (ncol > 0 && vals[0])
		*(int *)arg = atoi(vals[0]);
	return 0;
}

/* The probe: rewrites the header's user_version with the value it has (one
 * page written and committed; no row changes, nothing a reader sees). */
static void write_probe(struct store_sqlite *s)
{
	sqlite3 *db = s->w->db;
	s->g_fault = STORE_FAULT_NONE;
	s->g_wrote = 0;
	int v = 0;
	char sql[48];
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA user_version", probe_int_cb, &v, NULL);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		s->w->last_rc = sqlite3_extended_errcode(db);
		s->w->last_errno = sqlite3_system_errno(db);
		group_fault(s);
		if (s->g_fault == STORE_FAULT_NONE) {
			s->g_fault = STORE_FAULT_OTHER;
			s->g_rc = s->w->last_rc;
		}
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	health_note(s, 1);
}

static int writes_failing(struct store_sqlite *s)
{
	pthread_mutex_lock(&s->hmu);
	int f = s->health.failing;
	pthread_mutex_unlock(&s->hmu);
	return f;
}

/* ---- Running a group. */

/* A group that cannot commit failed for the storage's reason, whichever
 * it was (OTHER when SQLite's code names none). */
static void group_abort(struct store_sqlite *s, struct job **g, size_t n, const char *why)
{
	group_fault(s);
	if (s->g_fault == STORE_FAULT_NONE) {
		s->g_fault = STORE_FAULT_OTHER;
		s->g_rc = s->w->last_rc;
	}
	if (!sqlite3_get_autocommit(s->w->db))
		sqlite3_exec(s->w->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		g[i]->rc = -1;
		err_set(g[i]->err, 500, "storage-failed", "%s (nothing of this write was stored)", why);
	}
}

/* One transaction for the whole group, one savepoint per job. A job that
 * fails for the storage's reason is the group's fault even when the others
 * commit (s->g_fault, for health_note). */
static void group_run(struct store_sqlite *s, struct job **g, size_t n)
{
	struct selo_err e;
	err_clear(&e);
	s->g_fault = STORE_FAULT_NONE;
	s->g_wrote = 0;
	if (sqlite_run_simple(s->w, S_BEGIN, &e, "starting a transaction") != 0) {
		group_abort(s, g, n, e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = g[i];
		s->w->last_rc = SQLITE_OK;
		j->rc = sqlite_run_simple(s->w, S_JOB_SAVE, j->err, "opening a savepoint");
		if (j->rc == 0)
			j->rc = j->run(s, j);
		if (j->rc != 0)
			group_fault(s);
		int end = sqlite_savepoint_end(s->w, S_JOB_RELEASE, S_JOB_UNDO, j->rc == 0, &e);
		if (end == 1 && j->rc == 0) {
			j->rc = -1;
			if (j->err)
				*j->err = e;
			group_fault(s);
		}
		/* An I/O error can end the transaction under us; then nothing of
		 * the group is left to commit. */
		if (end < 0 || sqlite3_get_autocommit(s->w->db)) {
			snprintf(e.msg, sizeof(e.msg), "store: a write failed and the transaction was "
				 "rolled back: %s", sqlite3_errmsg(s->w->db));
			group_abort(s, g, n, e.msg);
			return;
		}
	}
	if (sqlite_run_simple(s->w, S_COMMIT, &e, "committing") != 0)
		group_abort(s, g, n, e.msg);
}

/* ---- Keeping the WAL small under a steady load. */

/* SQLite starts the WAL again from its first frame only when a write
 * transaction begins with every frame copied back and no reader on an older
 * snapshot. Under a steady stream of commits the checkpointer never gets
 * there (the writer adds frames while it copies), so the WAL grew by tens of
 * MB a second (2.6 GB in `make bench`), and appending to a growing file made
 * every commit's fsync write the file's metadata too. So once the WAL is
 * past RESTART_FRAMES (store_wal_limit), the checkpointer asks the writer,
 * between two groups, to finish the job: a RESTART checkpoint on the
 * writer's connection copies the little the checkpointer has not (what came
 * during its last pass) and waits at most 10 ms for the readers still on the
 * WAL; the next transaction then writes over the same file from its start.
 * Measured in `make bench`: 7-19 ms per restart, about one a second, and a
 * WAL of 130-145 MiB instead of 2.6 GB. */
#define RESTART_FRAMES 16384   /* 64 MiB of 4 KiB pages */
#define RESTART_WAIT_TRIES 40  /* x 250 us: a slow reader makes us try later */

static int restart_busy(void *arg, int tries)
{
	(void)arg;
	if (tries >= RESTART_WAIT_TRIES)
		return 0;
	usleep(250);
	return 1;
}

static void wal_restart(struct store_sqlite *s)
{
	sqlite3_busy_handler(s->w->db, restart_busy, NULL);
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(s->w->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
	sqlite3_busy_timeout(s->w->db, BUSY_TIMEOUT_MS);
	if (rc == SQLITE_OK)
		atomic_fetch_add(&s->restarts, 1);
	else if (rc != SQLITE_BUSY)
		diag_warn("store: restarting the WAL failed: %s", sqlite3_errmsg(s->w->db));
}

static void sqlite_wal_limit(struct store *base, int frames)
{
	struct store_sqlite *s = store_sqlite_of(base);
	atomic_store(&s->restart_frames, frames > 0 ? frames : RESTART_FRAMES);
}

static int64_t sqlite_wal_restarts(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return atomic_load(&s->restarts);
}

/* How long the writer may wait before its next probe: -1 no probe (writes
 * are not failing), 0 now. A group that tried to write counts as a probe;
 * groups that write nothing (a claim with nothing due) do not, so the
 * probe also comes between them. */
static int64_t probe_wait_ms(struct store_sqlite *s)
{
	if (!writes_failing(s))
		return -1;
	int64_t left = s->tried_ms + STORE_PROBE_MS - clock_mono_ms();
	return left > 0 ? left : 0;
}

/* With qmu held: waits for a job at most ms. */
static void writer_timed_wait(struct store_sqlite *s, int64_t ms)
{
	struct timespec ts = clock_deadline(CLOCK_REALTIME, ms);
	pthread_cond_timedwait(&s->qcv, &s->qmu, &ts);
}

/* No lock is held while a job's submitter is woken, and a submitter holds
 * qmu only to append its job: the senders run at nice 19, and one woken
 * writer used to preempt a sender that still held qmu (it signalled inside
 * it), so the writer and every API thread then waited 2-14 ms for the sender
 * to get a CPU again (`perf trace`: the writer's futex waits on qmu). */
static void *writer_main(void *arg)
{
	struct store_sqlite *s = arg;
	struct job *g[GROUP_MAX];
	for (;;) {
		pthread_mutex_lock(&s->qmu);
		int64_t wait;
		while (!s->qhead && !s->stopping && (wait = probe_wait_ms(s)) != 0) {
			if (wait < 0)
				pthread_cond_wait(&s->qcv, &s->qmu);
			else
				writer_timed_wait(s, wait);
		}
		size_t n = 0;
		while (s->qhead && n < GROUP_MAX) {
			g[n++] = s->qhead;
			s->qhead = s->qhead->next;
		}
		if (!s->qhead)
			s->qtail = NULL;
		int stopping = s->stopping;
		pthread_mutex_unlock(&s->qmu);
		if (n == 0 && stopping)
			break; /* every queued job has run */
		if (n > 0) {
			group_run(s, g, n);
			health_note(s, 0); /* before the callers hear: a 500 shows in /healthz */
			for (size_t i = 0; i < n; i++)
				sem_post(&g[i]->done); /* the job may be gone after this */
		}
		if (probe_wait_ms(s) == 0)
			write_probe(s);
		if (atomic_exchange(&s->restart_wanted, 0))
			wal_restart(s);
	}
	return NULL;
}

/* Queues j and sleeps until the writer has committed (or failed) it. */
static int job_submit(struct store_sqlite *s, struct job *j)
{
	j->rc = -1;
	j->next = NULL;
	if (sem_init(&j->done, 0, 0) != 0)
		return err_set(j->err, 500, "storage-failed", "store: cannot create a semaphore");
	pthread_mutex_lock(&s->qmu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->qmu);
		sem_destroy(&j->done);
		return err_set(j->err, 503, "store-closed", "store: the store is closing");
	}
	if (s->qtail)
		s->qtail->next = j;
	else
		s->qhead = j;
	s->qtail = j;
	pthread_mutex_unlock(&s->qmu);
	/* After the unlock: the writer either saw the job or is already waiting. */
	pthread_cond_signal(&s->qcv);
	while (sem_wait(&j->done) != 0)
		; /* EINTR only: the semaphore is valid */
	sem_destroy(&j->done);
	return j->rc;
}

int sqlite_job_do(struct store_sqlite *s, int (*run)(struct store_sqlite *, struct job *),
		  void *arg, struct selo_err *err, int64_t *ival)
{
	struct job j;
	memset(&j, 0, sizeof(j));
	j.run = run;
	j.arg = arg;
	j.err = err;
	int r = job_submit(s, &j);
	if (ival)
		*ival = j.ival;
	return r;
}

/* ---- Writer-side building blocks (run inside a job). */

/* Inserts with a constraint failure reported as the caller's (409): 0 ok,
 * 1 constraint, -1 storage failure. */
int sqlite_step_insert(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what,
		       const char *id)
{
	if (sqlite_step_done(c, st, err, what) == 0)
		return 0;
	if ((c->last_rc & 0xff) != SQLITE_CONSTRAINT)
		return -1;
	err_set(err, 409, "conflict", "store: %s for notice %s: %s", what, id ? id : "-",
		sqlite3_errmsg(c->db));
	return 1;
}

static int disc_memo_has(struct disc_memo *m, const char *id, const char *commitment)
{
	if (!m)
		return 0;
	if (!m->notice || strcmp(m->notice, id) != 0) {
		m->notice = id;
		m->n = m->next = 0;
		return 0;
	}
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->commitment[i], commitment))
			return 1;
	return 0;
}

static void disc_memo_add(struct disc_memo *m, const char *commitment)
{
	if (!m)
		return;
	snprintf(m->commitment[m->next], sizeof(m->commitment[0]), "%s", commitment);
	m->next = (m->next + 1) % DISC_MEMO;
	if (m->n < DISC_MEMO)
		m->n++;
}

static int disclosures_add(struct conn *c, const char *id, const struct disclosures *d,
			   struct disc_memo *m, struct selo_err *err)
{
	sqlite3_stmt *st = d && d->n ? sqlite_stmt_get(c, S_DISC_ADD, err) : NULL;
	if (d && d->n && !st)
		return -1;
	for (size_t i = 0; d && i < d->n; i++) {
		if (disc_memo_has(m, id, d->v[i].commitment))
			continue;
		if (sqlite_bind_text(st, 1, id) | sqlite_bind_text(st, 2, d->v[i].commitment) |
		    sqlite_bind_blob(st, 3, d->v[i].value, d->v[i].len))
			return sqlite_bind_failed(c, st, err, "storing a disclosure");
		if (sqlite_step_done(c, st, err, "storing a disclosure") != 0)
			return -1;
		disc_memo_add(m, d->v[i].commitment);
	}
	return 0;
}

/* Stores one encoded event (entry bytes in e) with its disclosures. 0 ok,
 * 1 constraint (the caller's), -1 storage failure. */
int store_sqlite_event_row_add(struct conn *c, const char *id, const char *type, int64_t t,
			       const struct buf *e, const struct disclosures *d,
			       struct disc_memo *m, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_EVENT_ADD, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id) | sqlite_bind_text(st, 2, type) | sqlite3_bind_int64(st, 3, t) |
	    sqlite_bind_blob(st, 4, e->data, e->len))
		return sqlite_bind_failed(c, st, err, "storing an event");
	int r = sqlite_step_insert(c, st, err, "storing an event", id);
	return r == 0 ? disclosures_add(c, id, d, m, err) : r;
}

int store_sqlite_event_unencodable(struct selo_err *err, const char *id, const char *type)
{
	err_set(err, 422, "invalid-event",
		"store: the %s event of notice %s cannot be encoded (fields must be an "
		"object without the keys v, type, notice, time)",
		type, id);
	return 1;
}

/* Encodes and stores one event with its disclosures. 0 ok, 1 the fields
 * cannot be encoded (the caller's mistake), -1 storage failure. */
int store_sqlite_event_add(struct conn *c, const char *id, const char *type, int64_t t,
			   const json_t *fields, const struct disclosures *d, struct selo_err *err)
{
	struct buf e = BUF_INIT;
	int r = event_entry_encode(&e, type, id, t, fields) != 0
			? store_sqlite_event_unencodable(err, id, type)
			: store_sqlite_event_row_add(c, id, type, t, &e, d, NULL, err);
	buf_free(&e);
	return r;
}

/* ---- Open and close. */

/* Readers close first: the last connection to close checkpoints and removes
 * the WAL, and only the writer can. */
static void store_free(struct store_sqlite *s)
{
	while (s->rfree) {
		struct conn *c = s->rfree;
		s->rfree = c->next;
		sqlite_conn_close(c);
	}
	sqlite_conn_close(s->ck);
	sqlite_conn_close(s->w);
	pthread_cond_destroy(&s->ckcv);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	pthread_mutex_destroy(&s->rmu);
	pthread_cond_destroy(&s->rcv);
	pthread_mutex_destroy(&s->hmu);
	free(s->path);
	free(s);
}

/* Every CKPT_MS, a PASSIVE checkpoint on its own connection: it copies
 * what it can without waiting for or blocking the writer or readers, so the
 * WAL stays small and no commit ever pays for a checkpoint. */
#define CKPT_MS 500

/* A failing checkpoint leaves the WAL growing: say so, at most once a
 * minute (a reader holding a snapshot only delays it, and is not this). */
static void ckpt_failed(struct store_sqlite *s)
{
	int64_t now = clock_mono_ms();
	if (s->ck_warned_ms && now - s->ck_warned_ms < 60000)
		return;
	s->ck_warned_ms = now;
	diag_warn("store: checkpointing the WAL failed: %s", sqlite3_errmsg(s->ck->db));
}

static void *checkpointer_main(void *arg)
{
	struct store_sqlite *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->qmu);
		struct timespec ts = clock_deadline(CLOCK_REALTIME, CKPT_MS);
		if (!s->stopping)
			pthread_cond_timedwait(&s->ckcv, &s->qmu, &ts);
		int stop = s->stopping;
		pthread_mutex_unlock(&s->qmu);
		if (stop)
			return NULL;
		int log = 0, done = 0;
		if (sqlite3_wal_checkpoint_v2(s->ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
					      &done) != SQLITE_OK || log < 0)
			ckpt_failed(s);
		else if (log >= atomic_load(&s->restart_frames))
			atomic_store(&s->restart_wanted, 1);
	}
}

/* The checkpointer's connection. A connection that has not read the
 * database yet does not know it is in WAL mode, and a checkpoint on it is
 * a silent no-op (SQLite reports the log as -1 frames): the WAL then grew
 * without bound. Asking for the journal mode makes it open the WAL. */
static struct conn *checkpointer_conn(const char *path, struct selo_err *err)
{
	struct conn *c = sqlite_conn_open(path, SQLITE_OPEN_READWRITE, err);
	if (!c)
		return NULL;
	char mode[16] = "";
	if (sqlite3_exec(c->db, "PRAGMA journal_mode", text_cb, mode, NULL) != SQLITE_OK ||
	    strcmp(mode, "wal") != 0) {
		err_set(err, 500, "storage-failed", "store: the checkpointer cannot open the WAL of %s",
			path);
		sqlite_conn_close(c);
		return NULL;
	}
	return c;
}

int store_sqlite_open(const char *path, struct store **out, struct selo_err *err)
{
	*out = NULL;
	if (!sqlite3_threadsafe())
		return err_set(err, 500, "storage-failed",
			       "store: this SQLite library was built without thread support");
	if (file_precreate(path, err) != 0)
		return -1;
	struct store_sqlite *s = xcalloc(1, sizeof(*s));
	s->base.ops = &store_sqlite_ops;
	s->path = sqlite_xmemdup(path, strlen(path));
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	pthread_mutex_init(&s->rmu, NULL);
	pthread_cond_init(&s->rcv, NULL);
	pthread_mutex_init(&s->hmu, NULL);
	s->w = sqlite_conn_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
	pthread_cond_init(&s->ckcv, NULL);
	if (!s->w || writer_setup(s->w, err) || sqlite_migrate(s, err) || last_event_time_load(s, err))
		goto fail;
	s->ck = checkpointer_conn(path, err);
	if (!s->ck)
		goto fail;
	atomic_init(&s->restart_wanted, 0);
	atomic_init(&s->restart_frames, RESTART_FRAMES);
	atomic_init(&s->restarts, 0);
	/* Tells a commit that wrote from one that had nothing to write (the
	 * health of writes); wal_autocheckpoint=0 left no hook to replace. */
	sqlite3_wal_hook(s->w->db, writer_wal_hook, s);
	int rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc != 0) {
		err_set(err, 500, "storage-failed", "store: cannot start the writer thread: %s",
			strerror(rc));
		goto fail;
	}
	s->writer_started = 1;
	rc = pthread_create(&s->ckpt, NULL, checkpointer_main, s);
	if (rc != 0) {
		err_set(err, 500, "storage-failed", "store: cannot start the checkpointer thread: %s",
			strerror(rc));
		sqlite_close(&s->base); /* stops the writer */
		return -1;
	}
	s->ckpt_started = 1;
	*out = &s->base;
	return 0;
fail:
	store_free(s);
	return -1;
}

static void sqlite_close(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!s)
		return;
	if (s->writer_started) {
		pthread_mutex_lock(&s->qmu);
		s->stopping = 1;
		pthread_cond_signal(&s->qcv);
		pthread_cond_broadcast(&s->ckcv);
		pthread_mutex_unlock(&s->qmu);
		pthread_join(s->writer, NULL);
		if (s->ckpt_started)
			pthread_join(s->ckpt, NULL);
	}
	/* Lets SQLite refresh its planner statistics where they have drifted. */
	sqlite3_exec(s->w->db, "PRAGMA optimize", NULL, NULL, NULL);
	store_free(s);
}

static int sqlite_schema_version(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return s->version;
}

/* ---- Readers. */

struct conn *sqlite_reader_take(struct store_sqlite *s, struct selo_err *err)
{
	pthread_mutex_lock(&s->rmu);
	while (!s->rfree && s->nreaders >= READERS_MAX)
		pthread_cond_wait(&s->rcv, &s->rmu);
	struct conn *c = s->rfree;
	if (c) {
		s->rfree = c->next;
		pthread_mutex_unlock(&s->rmu);
		return c;
	}
	s->nreaders++; /* reserve the slot, open outside the lock */
	pthread_mutex_unlock(&s->rmu);
	c = sqlite_conn_open(s->path, SQLITE_OPEN_READONLY, err);
	if (c)
		return c;
	pthread_mutex_lock(&s->rmu);
	s->nreaders--;
	pthread_cond_signal(&s->rcv);
	pthread_mutex_unlock(&s->rmu);
	return NULL;
}

void sqlite_reader_give(struct store_sqlite *s, struct conn *c)
{
	pthread_mutex_lock(&s->rmu);
	c->next = s->rfree;
	s->rfree = c;
	pthread_mutex_unlock(&s->rmu);
	pthread_cond_signal(&s->rcv); /* outside the lock, as job_submit */
}

static int check_on(struct conn *c, enum stmt_id id, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, id, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	char first[128] = "";
	if (rc == SQLITE_ROW)
		sqlite_col_copy(st, 0, first, sizeof(first));
	int r = 0;
	if (rc != SQLITE_ROW)
		r = sqlite_db_err(err, c, "checking the database");
	else if (id == S_QUICK_CHECK && strcmp(first, "ok") != 0)
		r = err_set(err, 500, "storage-failed", "store: quick_check found damage: %s", first);
	sqlite_stmt_done(st);
	return r;
}

/* quick_check reads the whole file, which /healthz must not do on every
 * probe of a large database: the full check runs at most every
 * PING_FULL_EVERY_MS, and in between a cheap query proves the file answers. */
static int sqlite_ping(struct store *base, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&s->rmu);
	int full = !s->last_full_check_ms || now - s->last_full_check_ms >= PING_FULL_EVERY_MS;
	pthread_mutex_unlock(&s->rmu);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = check_on(c, full ? S_QUICK_CHECK : S_CHEAP_CHECK, err);
	sqlite_reader_give(s, c);
	if (r == 0 && full) {
		pthread_mutex_lock(&s->rmu);
		s->last_full_check_ms = now;
		pthread_mutex_unlock(&s->rmu);
	}
	return r;
}

static const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.schema_version = sqlite_schema_version,
	.apikey_add = sqlite_apikey_add,
	.apikey_find = sqlite_apikey_find,
	.apikey_list = sqlite_apikey_list,
	.apikey_revoke = sqlite_apikey_revoke,
	.notices_accept = sqlite_notices_accept,
	.notice_get = sqlite_notice_get,
	.notice_list = sqlite_notice_list,
	.notice_scan = sqlite_notice_scan,
	.events_of = sqlite_events_of,
	.event_first = sqlite_event_first,
	.confirmations_of = sqlite_confirmations_of,
	.events_after = sqlite_events_after,
	.attachments_of = sqlite_attachments_of,
	.message_get = sqlite_message_get,
	.claim_due = sqlite_claim_due,
	.next_due = sqlite_next_due,
	.notices_sealed = sqlite_notices_sealed,
	.delivery_results = sqlite_delivery_results,
	.events_add = sqlite_events_add,
	.hits_add = sqlite_hits_add,
	.folds_close = sqlite_folds_close,
	.notice_bounced = sqlite_notice_bounced,
	.notice_cancel = sqlite_notice_cancel,
	.sequence_add = sqlite_sequence_add,
	.sequence_get = sqlite_sequence_get,
	.sequence_stop = sqlite_sequence_stop,
	.suppression_list = sqlite_suppression_list,
	.suppression_delete = sqlite_suppression_delete,
	.token_lookup = sqlite_token_lookup,
	.notice_brief = sqlite_notice_brief,
	.recover_inflight = sqlite_recover_inflight,
	.counts = sqlite_counts,
	.wal_limit = sqlite_wal_limit,
	.wal_restarts = sqlite_wal_restarts,
	.log_state = sqlite_log_state,
	.log_append = sqlite_log_append,
	.log_tile = sqlite_log_tile,
	.log_entries = sqlite_log_entries,
	.log_unindexed = sqlite_log_unindexed,
	.checkpoint_add = sqlite_checkpoint_add,
	.checkpoint_timestamp = sqlite_checkpoint_timestamp,
	.checkpoint_find = sqlite_checkpoint_find,
	.checkpoints_untimestamped = sqlite_checkpoints_untimestamped,
	.checkpoints_all = sqlite_checkpoints_all,
	.disclosures_of = sqlite_disclosures_of,
	.ping = sqlite_ping,
	.health = sqlite_health,
	.webhook_add = sqlite_webhook_add,
	.webhook_list = sqlite_webhook_list,
	.webhook_get = sqlite_webhook_get,
	.webhook_delete = sqlite_webhook_delete,
	.webhook_fanout = sqlite_webhook_fanout,
	.webhook_rotate_secret = sqlite_webhook_rotate_secret,
	.webhook_active = sqlite_webhook_active,
	.webhook_due = sqlite_webhook_due,
	.webhook_results = sqlite_webhook_results,
	.webhook_prune = sqlite_webhook_prune,
	.stats_events = sqlite_stats_events,
	.stats_facts_get = sqlite_stats_facts_get,
	.stats_notice_info = sqlite_stats_notice_info,
	.stats_dim = sqlite_stats_dim,
	.stats_apply = sqlite_stats_apply,
	.stats_scan = sqlite_stats_scan,
};
