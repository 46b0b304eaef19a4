/* status.c: `selo status ID --data DIR`: the notice and its events as one
 * JSON document on stdout (the same form as GET /v1/notices/{id}); exit 1
 * when there is no such notice, 2 when its row is damaged (it cannot be
 * decoded, or disagrees with what its events commit to: evidence.h). */
#include <stdio.h>
#include <stdlib.h>
#include "cli.h"
#include "selo/evidence.h"
#include "selo/id.h"
#include "selo/notice.h"
#include "selo/selo.h"

static const char HELP[] = "usage: selo status ID --data DIR\n"
			   "Prints the notice and its events as JSON (as GET /v1/notices/{id}).\n";

static int show(struct selo *app, const char *id)
{
	struct selo_err err;
	err_clear(&err);
	/* The events first, then the row: a running `selo serve` writes a
	 * seal's row and event in one transaction, so a row read after the
	 * events is at least as new as they are and never seems to disagree. */
	struct event_rec *ev = NULL;
	size_t nev = 0;
	if (id_text_valid(id) && store_events_of(app->store, id, &ev, &nev, &err) != 0) {
		fprintf(stderr, "selo status: %s\n", err.msg);
		return EXIT_USAGE;
	}
	struct notice_rec rec;
	int found = id_text_valid(id) ? store_notice_get(app->store, id, -1, &rec, &err) : 0;
	if (found <= 0) {
		event_recs_free(ev, nev);
		if (found < 0)
			fprintf(stderr, "selo status: %s\n", err.msg);
		else
			fprintf(stderr, "selo status: no notice %s\n", id);
		return found < 0 ? EXIT_USAGE : EXIT_NOTFOUND;
	}
	/* A row that disagrees with what its events commit to is damage, told
	 * as such: never a document with a value silently wrong or missing. */
	if (evidence_notice(&rec, ev, nev, &err) != 0) {
		notice_rec_free(&rec);
		event_recs_free(ev, nev);
		fprintf(stderr, "selo status: %s\n", err.msg);
		return EXIT_USAGE;
	}
	json_t *o = notice_json(&rec, ev, nev);
	notice_rec_free(&rec);
	event_recs_free(ev, nev);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	printf("%s\n", s);
	free(s);
	return EXIT_OK;
}

int cmd_status(int argc, char **argv)
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
	if (!cli_get(opts, "data") || npos != 1) {
		fprintf(stderr, "selo status: ID and --data DIR are required\n%s", HELP);
		return EXIT_USAGE;
	}
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		fprintf(stderr, "selo status: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc = show(&app, pos[0]);
	selo_close(&app);
	return rc;
}
