/* backup.h: `selo backup` and `selo restore` (docs/backup.md): one archive
 * (POSIX tar, zstd by default, written with libarchive) that holds a
 * consistent copy of DIR/selo.db taken beside a running `selo serve`, the
 * keys (DIR/keys, modes kept) and DIR/selo.conf, led by manifest.json: each
 * file's path, size, mode and SHA-256, and what the log held at the copy
 * (tree size, root, latest checkpoint). A restore checks every byte against
 * the manifest before the new data directory appears. */
#ifndef SELO_BACKUP_H
#define SELO_BACKUP_H
#include <stddef.h>
#include <stdint.h>
#include "selo/err.h"
#include "selo/store.h"

#define BACKUP_FORMAT "selo-backup/v1"

enum backup_compress { BACKUP_ZSTD, BACKUP_GZIP, BACKUP_NONE };

struct backup_opts {
	const char *data_dir;
	const char *out_path;          /* the archive to write */
	int force;                     /* replace an existing file at out_path */
	enum backup_compress compress;
};

/* What a backup holds, or what a restore put in place. */
struct backup_summary {
	struct store_copy_info log;    /* the database's log state (checkpoint malloc'd) */
	size_t files;                  /* files in the archive, the database included */
	uint64_t db_bytes;             /* size of the database copy */
	uint64_t archive_bytes;        /* size of the archive (backup only) */
	char created[32];              /* when the copy was taken, RFC 3339 */
	char *manifest;                /* backup only: manifest.json's text (malloc'd) */
	size_t seen_ok;                /* restore only: checkpoints seen elsewhere, all in the log */
};
void backup_summary_free(struct backup_summary *s);

/* Writes the archive: the database copy first (in a temporary file beside
 * out_path), then the archive into a temporary file there, fsync, rename
 * over out_path, fsync of the directory; mode 0600. Refuses (status 400,
 * nothing written) a missing or unwritable directory, an existing file
 * without force, a data directory that is not Selo's. */
int backup_create(const struct backup_opts *o, struct backup_summary *out, struct selo_err *err);

/* Extracts archive_path into a new temporary directory beside new_dir,
 * checks every entry against the manifest (paths, types, sizes, SHA-256),
 * runs SQLite's quick_check on the database and compares its log state with
 * the manifest's, checks each of the nseen files in seen (a signed
 * checkpoint, or a receipt carrying one, kept outside Selo) against the
 * restored log, then renames the directory to new_dir. Refuses (status
 * 400; "backup-damaged" for the archive's faults; "log-fork", 409, when a
 * seen checkpoint is past the backup or has another root) a new_dir that
 * exists and is not empty, and any damage; new_dir is then left as it was. */
int backup_restore(const char *archive_path, const char *new_dir, const char *const *seen,
		   size_t nseen, struct backup_summary *out, struct selo_err *err);

#endif
