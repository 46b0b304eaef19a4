/* store.c: `selo store check --data DIR [--quick]`: is the database file
 * sound, and is every notice's evidence intact? SQLite's own check first
 * (integrity_check; quick_check with --quick, what `selo serve` runs at
 * start), on a connection that writes nothing; then, unless --quick, Selo's
 * evidence checks of every notice (evidence_audit, as `selo log verify`),
 * through the store like any other command. Both may run beside `selo
 * serve` (WAL readers). Prints each finding; exit 0
 * sound, 1 damage found, 2 usage or I/O error. docs/operations.md, "A
 * damaged store". (`selo store copy`, DESIGN's move to PostgreSQL, is to
 * come with that backend.) */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "selo/clock.h"
#include "selo/evidence.h"
#include "selo/selo.h"

static const char HELP[] =
	"usage: selo store check --data DIR [--quick]\n"
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
	"or I/O error. What to do with a damaged store: docs/operations.md.\n";

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

int cmd_store(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {"quick", 0, NULL}, {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (!cli_get(opts, "data") || npos != 1 || strcmp(pos[0], "check") != 0) {
		fprintf(stderr, "selo store: the subcommand is check, with --data DIR\n%s", HELP);
		return EXIT_USAGE;
	}
	const char *dir = cli_get(opts, "data");
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
