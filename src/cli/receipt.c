/* receipt.c: `selo receipt ID --data DIR [-o FILE.json] [--form short]`:
 * brings the log up to date (integrating pending events, signing and
 * timestamping a checkpoint if needed), then writes the notice's
 * selo-receipt/v1 to FILE (or stdout). Exit 1 for an unknown notice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "selo/fileio.h"
#include "selo/id.h"
#include "selo/ledger.h"
#include "selo/selo.h"

static const char HELP[] =
	"usage: selo receipt ID --data DIR [-o FILE.json] [--form full|short]\n"
	"\n"
	"Writes the notice's receipt (selo-receipt/v1, docs/receipt.md): every event\n"
	"with its inclusion proof to a signed, timestamped checkpoint, the exact\n"
	"message and the disclosed values. --form short leaves out the message bytes\n"
	"and the content (subject, text, variables, attachment names); addresses stay.\n"
	"Check it anywhere with: selo verify FILE.json --key <log verifier key>\n";

static int write_receipt(struct selo *app, const char *id, const char *out, int short_form)
{
	struct selo_err err;
	err_clear(&err);
	struct ledger *l;
	if (ledger_open(app, &l, &err) != 0) {
		fprintf(stderr, "selo receipt: %s\n", err.msg);
		return EXIT_USAGE;
	}
	json_t *r = NULL;
	int rc = ledger_sync(l, 1, &err) < 0 ? -1 : ledger_receipt(l, id, short_form, &r, &err);
	ledger_close(l);
	if (rc != 0) {
		fprintf(stderr, "selo receipt: %s\n", err.msg);
		return err.status == 404 ? EXIT_NOTFOUND : EXIT_USAGE;
	}
	char *text = json_dumps(r, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(r);
	size_t len = strlen(text);
	text = realloc(text, len + 2);
	text[len++] = '\n';
	text[len] = '\0';
	int ok;
	if (out && strcmp(out, "-") != 0) {
		ok = file_write_atomic(out, text, len, 0644, &err) == 0;
		if (!ok)
			fprintf(stderr, "selo receipt: %s\n", err.msg);
	} else {
		ok = fwrite(text, 1, len, stdout) == len;
	}
	free(text);
	return ok ? EXIT_OK : EXIT_USAGE;
}

int cmd_receipt(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {"o", 1, NULL}, {"out", 1, NULL},
				 {"form", 1, NULL}, {"pdf", 1, NULL}, {NULL, 0, NULL}};
	/* -o is the documented spelling: accept it like --o. */
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "-o"))
			argv[i] = "--o";
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	const char *form = cli_get(opts, "form") ? cli_get(opts, "form") : "full";
	if (!cli_get(opts, "data") || npos != 1 || (strcmp(form, "full") && strcmp(form, "short"))) {
		fprintf(stderr, "selo receipt: ID and --data DIR are required; --form is full or short\n%s",
			HELP);
		return EXIT_USAGE;
	}
	if (cli_get(opts, "pdf")) {
		fprintf(stderr, "selo receipt: PDF receipts are not available yet; use -o FILE.json\n");
		return EXIT_USAGE;
	}
	if (!id_text_valid(pos[0])) {
		fprintf(stderr, "selo receipt: %s is not a notice id\n", pos[0]);
		return EXIT_NOTFOUND;
	}
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		fprintf(stderr, "selo receipt: %s\n", err.msg);
		return EXIT_USAGE;
	}
	const char *out = cli_get(opts, "o") ? cli_get(opts, "o") : cli_get(opts, "out");
	int rc = write_receipt(&app, pos[0], out, !strcmp(form, "short"));
	selo_close(&app);
	return rc;
}
