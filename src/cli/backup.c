/* backup.c: `selo backup --data DIR -o FILE [--force] [--compress zstd|gzip|none]`
 * writes one archive of the database (a consistent copy taken beside a
 * running `selo serve`), the keys and selo.conf, and prints its manifest;
 * `selo restore FILE --data NEWDIR` checks an archive entirely and puts it
 * in place as a new data directory, then prints the restored log's
 * checkpoint. The work is backup.c's (docs/backup.md). Exit 0 done, 2
 * refused or failed (with why); nothing is left half written. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "selo/backup.h"
#include "selo/config.h"

static const char BACKUP_HELP[] =
	"usage: selo backup --data DIR -o FILE [--force] [--compress zstd|gzip|none]\n"
	"\n"
	"Writes one archive (tar; zstd unless --compress says otherwise) holding\n"
	"manifest.json (every file's path, size, mode and SHA-256, and the log's\n"
	"tree size, root and latest checkpoint), selo.conf, DIR/keys (modes kept)\n"
	"and a consistent copy of DIR/selo.db. It may run beside `selo serve`: the\n"
	"copy is read as one snapshot and never blocks the server. The archive is\n"
	"written beside FILE, synced and renamed into place, mode 0600 (it holds\n"
	"the private keys). An existing FILE is kept unless --force. Prints the\n"
	"manifest on stdout. Exit 0 written, 2 refused or failed (nothing written).\n"
	"On PostgreSQL (store.backend) it refuses: use PostgreSQL's own backups.\n";

static const char RESTORE_HELP[] =
	"usage: selo restore FILE --data NEWDIR [--seen CHECKPOINT|RECEIPT.json]...\n"
	"\n"
	"Restores a `selo backup` archive as the data directory NEWDIR, which must\n"
	"not exist or be empty. Every entry is checked against the manifest (only\n"
	"the files a backup writes, no links, sizes bounded, every SHA-256), the\n"
	"database must pass SQLite's quick_check and hold the log the manifest\n"
	"names; only then does NEWDIR appear (extracted beside it, then renamed).\n"
	"Each --seen file (a signed checkpoint kept outside Selo, such as a monitor's\n"
	"copy of /log/checkpoint, or a receipt a client holds) must be signed by the\n"
	"restored log key and be in the restored log; one past it means the log was\n"
	"published beyond the backup and a serve on it would fork the log.\n"
	"Prints the restored log's latest checkpoint on stdout. Before serving from\n"
	"NEWDIR, read docs/backup.md (\"Before the restored log signs again\").\n"
	"Exit 0 restored, 1 a seen checkpoint is not in the restored log, 2 refused\n"
	"(NEWDIR left as it was in both cases).\n";

static int parse_compress(const char *v, enum backup_compress *c)
{
	if (!v || !strcmp(v, "zstd"))
		*c = BACKUP_ZSTD;
	else if (!strcmp(v, "gzip"))
		*c = BACKUP_GZIP;
	else if (!strcmp(v, "none"))
		*c = BACKUP_NONE;
	else
		return -1;
	return 0;
}

static void print_log(const char *cmd, const struct backup_summary *s)
{
	fprintf(stderr, "selo %s: the log: %llu entries", cmd, (unsigned long long)s->log.tree_size);
	if (s->log.checkpoint)
		fprintf(stderr, ", latest checkpoint at tree size %llu\n",
			(unsigned long long)s->log.checkpoint_size);
	else
		fprintf(stderr, ", no checkpoint yet\n");
}

int cmd_backup(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {"o", 1, NULL}, {"output", 1, NULL},
				 {"force", 0, NULL}, {"compress", 1, NULL}, {NULL, 0, NULL}};
	/* -o is the one short option: cli_parse knows long ones only. */
	char *args[64];
	int n = 0;
	for (int i = 0; i < argc && n < 64; i++)
		args[n++] = !strcmp(argv[i], "-o") ? "--o" : argv[i];
	const char *pos[1];
	int npos, help;
	if (argc > 64 || cli_parse(n, args, opts, pos, 0, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(BACKUP_HELP, stdout);
		return EXIT_OK;
	}
	struct backup_opts o = {.data_dir = cli_get(opts, "data"),
				.out_path = cli_get(opts, "o") ? cli_get(opts, "o")
							       : cli_get(opts, "output"),
				.force = cli_get(opts, "force") != NULL};
	if (!o.data_dir || !o.out_path || parse_compress(cli_get(opts, "compress"), &o.compress)) {
		fputs(BACKUP_HELP, stderr);
		return EXIT_USAGE;
	}
	struct selo_err err;
	err_clear(&err);
	struct selo_config cfg;
	if (config_load(o.data_dir, &cfg, &err) == 0 && config_store_postgres(&cfg)) {
		fprintf(stderr, "selo backup: this store is PostgreSQL (store.backend): back the "
				"database up with PostgreSQL's tools (pg_basebackup, or pg_dump) and "
				"DIR/keys and DIR/selo.conf beside it (docs/scale.md); `selo backup` "
				"copies SQLite's DIR/selo.db\n");
		return EXIT_USAGE;
	}
	struct backup_summary s;
	if (backup_create(&o, &s, &err) != 0) {
		fprintf(stderr, "selo backup: %s\n", err.msg);
		return EXIT_USAGE;
	}
	/* The manifest is the archive's first entry; say what it holds. */
	fprintf(stderr, "selo backup: wrote %s (%llu bytes; %zu files, the database %llu bytes, "
		"copied at %s)\n", o.out_path, (unsigned long long)s.archive_bytes, s.files,
		(unsigned long long)s.db_bytes, s.created);
	print_log("backup", &s);
	printf("%s\n", s.manifest);
	backup_summary_free(&s);
	return EXIT_OK;
}

int cmd_restore(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {NULL, 0, NULL}};
	/* --seen may be given several times: taken out before cli_parse, which
	 * keeps one value per option. */
	const char *seen[64];
	char *rest[128];
	size_t nseen = 0;
	int n = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--seen") && i + 1 < argc && nseen < 64)
			seen[nseen++] = argv[++i];
		else if (!strncmp(argv[i], "--seen=", 7) && nseen < 64)
			seen[nseen++] = argv[i] + 7;
		else if (n < 128 && strcmp(argv[i], "--seen") != 0)
			rest[n++] = argv[i];
		else {
			fputs(RESTORE_HELP, stderr);
			return EXIT_USAGE;
		}
	}
	const char *pos[1];
	int npos, help;
	if (cli_parse(n, rest, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(RESTORE_HELP, stdout);
		return EXIT_OK;
	}
	if (npos != 1 || !cli_get(opts, "data")) {
		fputs(RESTORE_HELP, stderr);
		return EXIT_USAGE;
	}
	struct selo_err err;
	err_clear(&err);
	struct backup_summary s;
	if (backup_restore(pos[0], cli_get(opts, "data"), seen, nseen, &s, &err) != 0) {
		fprintf(stderr, "selo restore: %s\n", err.msg);
		return !strcmp(err.type, "log-fork") ? EXIT_NOTFOUND : EXIT_USAGE;
	}
	fprintf(stderr, "selo restore: restored %s into %s: %zu files, every SHA-256 matches; the "
		"database (%llu bytes, copied at %s) passes quick_check\n", pos[0],
		cli_get(opts, "data"), s.files, (unsigned long long)s.db_bytes, s.created);
	print_log("restore", &s);
	if (nseen)
		fprintf(stderr, "selo restore: each of the %zu checkpoint(s) seen elsewhere is in the "
			"restored log (none is past it)\n", s.seen_ok);
	fprintf(stderr, "selo restore: next: `selo log verify --data %s`; before `selo serve` "
		"signs on it, make sure no checkpoint past tree size %llu was published "
		"(docs/backup.md)\n", cli_get(opts, "data"), (unsigned long long)s.log.tree_size);
	if (s.log.checkpoint)
		fputs(s.log.checkpoint, stdout);
	backup_summary_free(&s);
	return EXIT_OK;
}
