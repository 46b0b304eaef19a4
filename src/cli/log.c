/* log.c: `selo log checkpoint --data DIR` prints the latest signed
 * checkpoint (after integrating pending events); `selo log verify --data
 * DIR` re-audits everything the evidence rests on and prints each finding:
 * the database file's pages (quick_check), the whole log (ledger_audit:
 * every event row against its leaf, the tree, every checkpoint) and every
 * notice (evidence_audit: its row against its events, its sealed message
 * re-hashed against its content_sealed digest, its disclosures). Exit 1
 * when anything is damaged, 2 when a part could not run. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "selo/evidence.h"
#include "selo/ledger.h"
#include "selo/selo.h"

static const char HELP[] =
	"usage: selo log checkpoint --data DIR   the latest signed checkpoint (C2SP note)\n"
	"       selo log verify --data DIR       recompute the whole Merkle tree from the\n"
	"                                        stored entries and check every tile,\n"
	"                                        checkpoint signature, timestamp and the\n"
	"                                        consistency of each checkpoint with the next;\n"
	"                                        check the database file's pages, every event\n"
	"                                        row against its leaf, every notice's row\n"
	"                                        against its events and every sealed message\n"
	"                                        against its content_sealed digest\n"
	"Exit 0 consistent, 1 damage found (each finding names its notice), 2 not checked.\n";

static void print_finding(void *arg, int ok, const char *line)
{
	(void)arg;
	printf("%s %s\n", ok ? "ok  " : "FAIL", line);
}

static void print_page_finding(void *arg, const char *line)
{
	(void)arg;
	printf("FAIL the database file: %s\n", line);
}

/* The three parts, each run whatever the others found: 0, 1 found damage,
 * -1 could not run. */
static int verify_all(struct selo *app, struct ledger *l)
{
	struct selo_err err;
	err_clear(&err);
	char db[1100];
	config_path(&app->cfg, "selo.db", db, sizeof(db));
	int pages = 0;
	if (config_store_postgres(&app->cfg))
		printf("skip the database file: the store is PostgreSQL, which checks its own pages\n");
	else
		pages = store_check_file(db, 0, 20, print_page_finding, NULL, &err);
	if (pages < 0)
		fprintf(stderr, "selo log verify: %s\n", err.msg);
	else if (pages == 0 && !config_store_postgres(&app->cfg))
		printf("ok   the database file: quick_check finds every page sound\n");
	err_clear(&err);
	int log = ledger_audit(l, print_finding, NULL, &err);
	if (log < 0)
		fprintf(stderr, "selo log verify: %s\n", err.msg);
	err_clear(&err);
	struct evidence_tally t;
	int notices = evidence_audit(app->store, print_finding, NULL, &t, &err);
	if (notices < 0)
		fprintf(stderr, "selo log verify: %s\n", err.msg);
	if (pages == 1 || log == 1 || notices == 1)
		return 1;
	return pages < 0 || log < 0 || notices < 0 ? -1 : 0;
}

static int log_run(struct selo *app, const char *sub)
{
	struct selo_err err;
	err_clear(&err);
	struct ledger *l;
	if (ledger_open(app, &l, &err) != 0) {
		fprintf(stderr, "selo log: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc;
	if (!strcmp(sub, "checkpoint")) {
		struct buf note = BUF_INIT;
		int found = ledger_sync(l, 0, &err) < 0 ? -1 : ledger_latest_checkpoint(l, &note, &err);
		if (found > 0)
			fputs(note.data, stdout);
		else
			fprintf(stderr, "selo log: %s\n", found == 0 ? "the log is empty: no checkpoint yet"
								     : err.msg);
		rc = found > 0 ? EXIT_OK : found == 0 ? EXIT_NOTFOUND : EXIT_USAGE;
		buf_free(&note);
	} else {
		int r = verify_all(app, l);
		printf("verdict: %s\n", r == 0 ? "CONSISTENT" : r == 1 ? "MISMATCH" : "NOT CHECKED");
		rc = r == 0 ? EXIT_OK : r == 1 ? EXIT_NOTFOUND : EXIT_USAGE;
	}
	ledger_close(l);
	return rc;
}

int cmd_log(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (!cli_get(opts, "data") || npos != 1 ||
	    (strcmp(pos[0], "checkpoint") && strcmp(pos[0], "verify"))) {
		fputs(HELP, stderr);
		return EXIT_USAGE;
	}
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		fprintf(stderr, "selo log: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc = log_run(&app, pos[0]);
	selo_close(&app);
	return rc;
}
