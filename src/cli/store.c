/* store.c: `selo store check --data DIR [--quick]`: is the database file
 * sound, and is every notice's evidence intact? SQLite's own check first
 * (integrity_check; quick_check with --quick, what `selo serve` runs at
 * start), on a connection that writes nothing; then, unless --quick, Selo's
 * evidence checks of every notice (evidence_audit, as `selo log verify`),
 * through the store like any other command. Both may run beside `selo
 * serve` (WAL readers). Prints each finding; exit 0
 * sound, 1 damage found, 2 usage or I/O error. docs/operations.md, "A
 * damaged store".
 *
 * `selo store copy --data DIR [--to URL] [--audit]`: moves DIR/selo.db into an empty
 * PostgreSQL database with its log intact (store_pg_copy.h; docs/scale.md
 * "Moving from SQLite: selo store copy"). `selo serve` must be stopped: the
 * copy holds DIR/serve.lock (serve's own lock) while it runs, so it refuses
 * to start beside a serve and no serve starts on the file meanwhile. Prints
 * what was copied; exit 0 copied, 1 the check before COMMIT failed (nothing
 * committed), 2 refused or failed (nothing committed). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "cli.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/evidence.h"
#include "selo/ledger.h"
#include "selo/selo.h"
#include "selo/store_pg_copy.h"

static const char HELP[] =
	"usage: selo store check --data DIR [--quick]\n"
	"       selo store copy --data DIR [--to URL] [--audit]\n"
	"\n"
	"Checks DIR/selo.db (on PostgreSQL: step 2 only, and no --quick); it may run\n"
	"beside `selo serve` (the file check writes\n"
	"nothing; the notices are read as `selo status` reads them):\n"
	"  1. SQLite's PRAGMA integrity_check: every page, record and overflow chain,\n"
	"     every index against its table (--quick: PRAGMA quick_check, pages only:\n"
	"     what `selo serve` runs at start);\n"
	"  2. unless --quick, every notice: its row decodes and agrees with what its\n"
	"     events commit to, its sealed message hashes to the digest sealed in its\n"
	"     content_sealed event, its disclosed values match their commitments.\n"
	"Each finding names what is damaged (the notice, for evidence). `selo log\n"
	"verify` also re-audits the Merkle log. Exit 0 sound, 1 damage found, 2 usage\n"
	"or I/O error. What to do with a damaged store: docs/operations.md.\n"
	"\n"
	"copy moves DIR/selo.db into the PostgreSQL database URL (a libpq connection\n"
	"string; better without the password, which libpq also takes from PGPASSWORD\n"
	"or ~/.pgpass; without --to, store.url of selo.conf when store.backend is\n"
	"postgres), which must hold no Selo data. Stop `selo serve` first. Every\n"
	"row of every table is copied byte for byte in one transaction and checked\n"
	"before it commits (rows per table, the log's size, root and last event,\n"
	"every entry and tile, the latest checkpoint): all or nothing. Then set\n"
	"store.backend = postgres and store.url in selo.conf and start serve. Prints\n"
	"what was copied. --audit then runs `selo log verify`'s audit on the copy,\n"
	"through the PostgreSQL store with DIR's keys (the whole tree, every\n"
	"checkpoint, every notice's evidence). Exit 0 copied (and sound), 1 the check\n"
	"failed (nothing copied) or the audit found damage (the copy is committed:\n"
	"do not switch to it), 2 refused or failed (nothing copied).\n"
	"docs/scale.md, \"Moving from SQLite\".\n";

static void print_page(void *arg, const char *line)
{
	(void)arg;
	printf("FAIL the database file: %s\n", line);
}

static void print_finding(void *arg, int ok, const char *line)
{
	(void)arg;
	printf("%s %s\n", ok ? "ok  " : "FAIL", line);
}

/* SQLite's check of the file: 0 sound, 1 damaged, -1 not run. */
static int check_pages(const char *data_dir, int quick)
{
	char db[1100];
	snprintf(db, sizeof(db), "%s/selo.db", data_dir);
	struct selo_err err;
	err_clear(&err);
	int64_t t0 = clock_mono_ms();
	int r = store_check_file(db, !quick, 100, print_page, NULL, &err);
	if (r < 0)
		fprintf(stderr, "selo store check: %s\n", err.msg);
	else if (r == 0)
		printf("ok   the database file: PRAGMA %s finds it sound (%lld ms)\n",
		       quick ? "quick_check" : "integrity_check", (long long)(clock_mono_ms() - t0));
	return r;
}

/* Every notice's evidence: 0 sound, 1 damaged, -1 not run. A file too
 * damaged to open is damage. */
static int check_notices(const char *data_dir)
{
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, data_dir, &err) != 0) {
		int bad = !strcmp(err.type, "store-damaged");
		if (bad)
			printf("FAIL the store cannot be opened: %s\n", err.msg);
		else
			fprintf(stderr, "selo store check: %s\n", err.msg);
		return bad ? 1 : -1;
	}
	struct evidence_tally t;
	int r = evidence_audit(app.store, print_finding, NULL, &t, &err);
	if (r < 0)
		fprintf(stderr, "selo store check: %s\n", err.msg);
	selo_close(&app);
	return r;
}

/* serve's lock on DIR (serve.c lock_data_dir), taken so that no serve
 * runs while the copy reads: the descriptor, or -1 after saying why. */
static int copy_lock(const char *dir)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/serve.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "selo store copy: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	char pid[32] = "";
	ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
	pid[n > 0 ? n : 0] = '\0';
	pid[strcspn(pid, "\n")] = '\0';
	close(fd);
	fprintf(stderr, "selo store copy: selo serve (pid %s) is running on %s: stop it first, "
		"so that the copy is the store's last state\n", pid[0] ? pid : "?", dir);
	return -1;
}

static void copy_print(const char *db, const struct pgcopy_report *r)
{
	printf("copied %s to %s\n", db, r->target);
	for (size_t i = 0; i < r->ntables; i++)
		printf("rows %s %lld\n", r->tables[i].table, (long long)r->tables[i].rows);
	char root[65];
	hex_encode(r->root, 32, root);
	printf("events %lld\nlog_size %llu\nlog_root %s\nlast_seq %lld\n", (long long)r->events,
	       (unsigned long long)r->log_size, root, (long long)r->last_seq);
	if (!r->checkpoint) {
		printf("checkpoint none\n");
		return;
	}
	printf("checkpoint_size %llu\ncheckpoint:\n%s", (unsigned long long)r->checkpoint_size,
	       r->checkpoint);
}

/* `selo log verify`'s audit (the whole tree, every checkpoint, every
 * notice's evidence) of the copy, through the PostgreSQL store, with DIR's
 * configuration and keys: 0 sound, 1 damaged, -1 not run. selo_open opens
 * the store selo.conf names (DIR/selo.db here, until serve is switched);
 * the audit is of the copy, so that store is put in its place. */
static int copy_audit(const char *dir, const struct store_params *to)
{
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	struct store *pg = NULL;
	if (selo_open(&app, dir, &err) != 0) {
		fprintf(stderr, "selo store copy: the audit: %s\n", err.msg);
		return -1;
	}
	int r = -1;
	struct ledger *l = NULL;
	if (store_open_backend(to, &pg, &err) == 0) {
		store_close(app.store);
		app.store = pg;
		if (ledger_open(&app, &l, &err) == 0) {
			int log = ledger_audit(l, print_finding, NULL, &err);
			struct evidence_tally t;
			int notices = log < 0 ? -1 : evidence_audit(app.store, print_finding, NULL, &t, &err);
			r = log == 1 || notices == 1 ? 1 : log < 0 || notices < 0 ? -1 : 0;
			ledger_close(l);
		}
	}
	if (r < 0)
		fprintf(stderr, "selo store copy: the audit: %s\n", err.msg);
	selo_close(&app);
	return r;
}

/* The target: --to, else store.url when selo.conf already says postgres
 * (which keeps the password off the command line). NULL after saying why. */
static const char *copy_target(const char *dir, const char *to, struct selo_config *cfg)
{
	if (to && *to)
		return to;
	struct selo_err err;
	err_clear(&err);
	if (config_load(dir, cfg, &err) != 0) {
		fprintf(stderr, "selo store copy: %s\n", err.msg);
		return NULL;
	}
	if (config_store_postgres(cfg))
		return cfg->store_url;
	fprintf(stderr, "selo store copy: name the PostgreSQL database with --to URL, or with "
		"store.backend = postgres and store.url in %s/selo.conf\n%s", dir, HELP);
	return NULL;
}

static int cmd_store_copy(const char *dir, const char *to_arg, int audit)
{
	struct selo_config cfg;
	const char *url = copy_target(dir, to_arg, &cfg);
	if (!url)
		return EXIT_USAGE;
	char db[1100];
	snprintf(db, sizeof(db), "%s/selo.db", dir);
	if (access(db, R_OK) != 0) {
		fprintf(stderr, "selo store copy: %s: %s\n", db, strerror(errno));
		return EXIT_USAGE;
	}
	int lock = copy_lock(dir);
	if (lock < 0)
		return EXIT_USAGE;
	struct store_params to = {.backend = "postgres", .target = url, .node = "selo-store-copy"};
	struct pgcopy_report rep;
	struct selo_err err;
	err_clear(&err);
	int64_t t0 = clock_mono_ms();
	int rc = store_pg_copy(db, &to, &rep, &err);
	if (rc != 0) {
		close(lock);
		fprintf(stderr, "selo store copy: %s\n", err.msg);
		return !strcmp(err.type, "copy-mismatch") ? EXIT_NOTFOUND : EXIT_USAGE;
	}
	copy_print(db, &rep);
	fprintf(stderr, "selo store copy: copied in %lld ms\n", (long long)(clock_mono_ms() - t0));
	pgcopy_report_free(&rep);
	int bad = audit ? copy_audit(dir, &to) : 0;
	if (audit)
		printf("audit: %s\n", bad == 0 ? "CONSISTENT" : bad == 1 ? "MISMATCH" : "NOT CHECKED");
	if (bad == 0)
		fprintf(stderr, "selo store copy: now set store.backend = postgres and store.url in "
			"%s/selo.conf (if not done yet) and start selo serve\n", dir);
	else
		fprintf(stderr, "selo store copy: the copy is committed but %s: do not switch to it "
			"(docs/scale.md)\n", bad == 1 ? "its audit found damage" : "was not audited");
	close(lock);
	return bad == 0 ? EXIT_OK : bad == 1 ? EXIT_NOTFOUND : EXIT_USAGE;
}

int cmd_store(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {"quick", 0, NULL}, {"to", 1, NULL},
				 {"audit", 0, NULL}, {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	int copy = npos == 1 && !strcmp(pos[0], "copy");
	if (!cli_get(opts, "data") || npos != 1 || (strcmp(pos[0], "check") != 0 && !copy)) {
		fprintf(stderr, "selo store: the subcommands are check and copy, with --data DIR\n%s",
			HELP);
		return EXIT_USAGE;
	}
	const char *dir = cli_get(opts, "data");
	if (copy && cli_get(opts, "quick")) {
		fprintf(stderr, "selo store copy: --quick belongs to check\n");
		return EXIT_USAGE;
	}
	if (copy)
		return cmd_store_copy(dir, cli_get(opts, "to"), cli_get(opts, "audit") != NULL);
	if (cli_get(opts, "to") || cli_get(opts, "audit")) {
		fprintf(stderr, "selo store check: --to and --audit belong to copy\n");
		return EXIT_USAGE;
	}
	int quick = cli_get(opts, "quick") != NULL;
	/* On PostgreSQL there is no file of ours: PostgreSQL checks its pages
	 * (data checksums, amcheck); the evidence check is the same. */
	struct selo_config cfg;
	struct selo_err err;
	int pg = config_load(dir, &cfg, &err) == 0 && config_store_postgres(&cfg);
	if (pg && quick) {
		fprintf(stderr, "selo store check: --quick checks SQLite's file, and this store is "
				"PostgreSQL (store.backend); run it without --quick to check every "
				"notice's evidence (docs/scale.md)\n");
		return EXIT_USAGE;
	}
	int pages = 0;
	if (pg)
		printf("skip the database file: the store is PostgreSQL, which checks its own pages\n");
	else
		pages = check_pages(dir, quick);
	int notices = quick ? 0 : check_notices(dir);
	int damaged = pages == 1 || notices == 1;
	int unchecked = pages < 0 || notices < 0;
	printf("verdict: %s\n", damaged ? "DAMAGED" : unchecked ? "NOT CHECKED" : "SOUND");
	return damaged ? EXIT_NOTFOUND : unchecked ? EXIT_USAGE : EXIT_OK;
}
