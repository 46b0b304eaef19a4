/* store_sqlite_file.c: a SQLite database file as a file, on connections
 * of its own beside any running store: store_check_file (SQLite's own
 * checks), store_copy_file (a consistent copy while `selo serve` writes,
 * for backup.c) and store_describe_file. Errors: -1 with err (500) when the
 * file cannot be read or written; damage found is a result, not an error. */
#include "store_sqlite_int.h"

/* ---- SQLite's own checks of a file. */

/* Hands each line of a check's finding to line(), up to max in all. */
static void check_lines(const char *t, int *lines, int max,
			void (*line)(void *arg, const char *text), void *arg)
{
	while (line && *t && *lines < max) {
		size_t n = strcspn(t, "\n");
		char one[512];
		snprintf(one, sizeof(one), "%.*s", (int)n, t);
		if (one[0])
			line(arg, one);
		(*lines)++;
		t += n + (t[n] == '\n');
	}
}

/* Runs the check on a connection of its own: a fresh one sees the file as
 * it is (the pool's may hold pages in their caches), and query_only makes
 * sure the check writes nothing. The check's own failure to read a page
 * that is damaged is a finding too, not an error. */
int store_check_file(const char *path, int full, int max_lines,
		     void (*line)(void *arg, const char *text), void *arg, struct selo_err *err)
{
	if (access(path, F_OK) != 0)
		return err_set(err, 500, "storage-failed", "store: %s: %s", path, strerror(errno));
	struct conn *c = sqlite_conn_open(path, SQLITE_OPEN_READWRITE, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_exec(c->db, "PRAGMA query_only=1", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(c->db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check",
					-1, &st, NULL);
	int found = 0, lines = 0;
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = SQLITE_OK; /* on to the next row */
		const char *t = (const char *)sqlite3_column_text(st, 0);
		if (t && !strcmp(t, "ok"))
			continue;
		found = 1;
		check_lines(t ? t : "(no text)", &lines, max_lines, line, arg);
	}
	int r = found;
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		int code = sqlite3_extended_errcode(c->db);
		if (sqlite_damaged_file(code)) {
			check_lines(sqlite3_errmsg(c->db), &lines, max_lines, line, arg);
			r = 1;
		} else {
			r = err_set(err, 500, "storage-failed", "store: checking %s: %s", path,
				    sqlite3_errmsg(c->db));
		}
	}
	sqlite3_finalize(st);
	sqlite_conn_close(c);
	return r;
}

/* ---- A consistent copy of the file while `selo serve` writes (backup.c).
 * The source is read on a connection of its own (query_only, as the check
 * above): in WAL mode a reader never blocks the writer nor waits for it.
 * sqlite3_backup_step(-1) copies every page inside one read transaction, so
 * the copy is the database as of one commit; a step in pieces would restart
 * each time the writer commits. The copy is then switched to a rollback
 * journal, so it is one self-contained file (serve turns WAL back on). */

/* The latest checkpoint in the copy: 1 and its size and note, 0 none. */
static int copy_checkpoint(struct conn *c, struct store_copy_info *out, struct selo_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, "SELECT size, note FROM checkpoints ORDER BY size DESC "
				    "LIMIT 1", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->checkpoint_size = (uint64_t)sqlite3_column_int64(st, 0);
		const char *note = (const char *)sqlite3_column_text(st, 1);
		struct buf b = BUF_INIT;
		buf_puts(&b, note ? note : "");
		buf_putc(&b, '\0');
		out->checkpoint = buf_steal(&b, NULL);
	}
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading the copy");
	sqlite3_finalize(st);
	return r;
}

/* What the copy holds: schema version, tree state, latest checkpoint. */
static int copy_describe(struct conn *c, struct store_copy_info *out, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_MIG_VERSION, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	out->schema_version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite_stmt_done(st);
	if (rc != SQLITE_ROW)
		return sqlite_db_err(err, c, "reading the copy's schema version");
	struct log_state ls;
	if (sqlite_log_state_on(c, &ls, err) != 0)
		return -1;
	out->tree_size = ls.size;
	memcpy(out->root, ls.root, 32);
	out->last_seq = ls.last_seq;
	return copy_checkpoint(c, out, err) < 0 ? -1 : 0;
}

/* Copies every page of src into dst's connection, retrying a busy source
 * (a WAL being recovered) for a few seconds. */
static int copy_pages(struct conn *src, struct conn *dst, struct selo_err *err)
{
	sqlite3_backup *b = sqlite3_backup_init(dst->db, "main", src->db, "main");
	if (!b)
		return sqlite_db_err(err, dst, "starting the copy");
	int rc;
	for (int tries = 0;; tries++) {
		rc = sqlite3_backup_step(b, -1);
		if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= 50)
			break;
		sqlite3_sleep(100);
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE)
		return sqlite_db_err(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? src : dst, "copying the "
			      "database");
	return 0;
}

int store_copy_file(const char *src_path, const char *dst_path, struct store_copy_info *out,
		    struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (access(src_path, F_OK) != 0)
		return err_set(err, 500, "storage-failed", "store: %s: %s", src_path, strerror(errno));
	struct conn *src = sqlite_conn_open(src_path, SQLITE_OPEN_READWRITE, err);
	if (!src)
		return -1;
	int r = -1;
	struct conn *dst = NULL;
	if (sqlite3_exec(src->db, "PRAGMA query_only=1", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite_db_err(err, src, "opening the database read-only");
		goto out;
	}
	dst = sqlite_conn_open(dst_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
	if (!dst || copy_pages(src, dst, err) != 0)
		goto out;
	if (sqlite3_exec(dst->db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite_db_err(err, dst, "making the copy a single file");
		goto out;
	}
	r = copy_describe(dst, out, err);
out:
	sqlite_conn_close(dst);
	sqlite_conn_close(src);
	if (r != 0)
		store_copy_info_free(out);
	return r;
}

int store_describe_file(const char *path, struct store_copy_info *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (access(path, F_OK) != 0)
		return err_set(err, 500, "storage-failed", "store: %s: %s", path, strerror(errno));
	struct conn *c = sqlite_conn_open(path, SQLITE_OPEN_READWRITE, err);
	if (!c)
		return -1;
	int r = -1;
	if (sqlite3_exec(c->db, "PRAGMA query_only=1", NULL, NULL, NULL) != SQLITE_OK)
		sqlite_db_err(err, c, "opening the database read-only");
	else
		r = copy_describe(c, out, err);
	sqlite_conn_close(c);
	if (r != 0)
		store_copy_info_free(out);
	return r;
}
