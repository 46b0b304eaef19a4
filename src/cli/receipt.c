/* receipt.c: `selo receipt ID --data DIR [-o FILE.json] [--form short]`:
 * brings the log up to date (integrating pending events, signing and
 * timestamping a checkpoint if needed), then writes the notice's
 * selo-receipt/v1 to FILE (or stdout) and, with --pdf, the signed PDF
 * receipt. Exit 1 for an unknown notice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "selo/export.h"
#include "selo/fileio.h"
#include "selo/id.h"
#include "selo/ledger.h"
#include "selo/selo.h"

static const char HELP[] =
	"usage: selo receipt ID --data DIR [-o FILE.json] [--pdf FILE.pdf]\n"
	"                       [--form full|short] [--lang pt-BR|en]\n"
	"\n"
	"Writes the notice's receipt (selo-receipt/v1, docs/receipt.md): every event\n"
	"with its inclusion proof to a signed, timestamped checkpoint, the exact\n"
	"message and the disclosed values. --form short leaves out the message bytes\n"
	"and the content (subject, text, variables, attachment names); addresses stay.\n"
	"--pdf also (or only) writes the receipt a person reads: a signed PDF (PAdES)\n"
	"in pt-BR (--lang en: English) with the JSON receipt and, in the full form, the\n"
	"exact .eml embedded (docs/receipt-pdf.md). Without -o or --pdf the JSON goes\n"
	"to standard output.\n"
	"Check either anywhere with: selo verify FILE --key <log verifier key>\n";

static int put_file(const char *path, const struct buf *b, struct selo_err *err)
{
	if (path && strcmp(path, "-") != 0)
		return file_write_atomic(path, b->data, b->len, 0644, err);
	if (fwrite(b->data, 1, b->len, stdout) != b->len || fflush(stdout) != 0)
		return err_set(err, 500, "io", "cannot write to standard output");
	return 0;
}

/* The JSON is made once and, with --pdf, embedded as is: the file -o writes
 * and the one inside the PDF are the same bytes. */
static int make_files(struct ledger *l, struct selo *app, const char *id, const char *json_out,
		      const char *pdf_out, int short_form, const char *lang,
		      struct selo_err *err)
{
	struct buf json = BUF_INIT, pdf = BUF_INIT;
	struct exporter *x = NULL;
	int rc = export_receipt_json(l, id, short_form, &json, err);
	if (rc == 0 && pdf_out)
		rc = exporter_open(&app->cfg, l, &x, err) != 0 ? -1
		     : export_receipt_pdf(x, id, short_form, lang, &json, &pdf, err);
	if (rc == 0 && pdf_out)
		rc = put_file(pdf_out, &pdf, err);
	if (rc == 0 && (json_out || !pdf_out))
		rc = put_file(json_out, &json, err);
	exporter_close(x);
	buf_free(&json);
	buf_free(&pdf);
	return rc;
}

static int write_receipt(struct selo *app, const char *id, const char *json_out,
			 const char *pdf_out, int short_form, const char *lang)
{
	struct selo_err err;
	err_clear(&err);
	struct ledger *l;
	if (ledger_open(app, &l, &err) != 0) {
		fprintf(stderr, "selo receipt: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc = ledger_sync(l, 1, &err) < 0 ? -1
		 : make_files(l, app, id, json_out, pdf_out, short_form, lang, &err);
	ledger_close(l);
	if (rc != 0) {
		fprintf(stderr, "selo receipt: %s\n", err.msg);
		return err.status == 404 ? EXIT_NOTFOUND : EXIT_USAGE;
	}
	return EXIT_OK;
}

int cmd_receipt(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {"o", 1, NULL}, {"out", 1, NULL},
				 {"form", 1, NULL}, {"pdf", 1, NULL}, {"lang", 1, NULL},
				 {NULL, 0, NULL}};
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
	const char *lang = export_lang(cli_get(opts, "lang"));
	if (!lang) {
		fprintf(stderr, "selo receipt: --lang is pt-BR or en\n");
		return EXIT_USAGE;
	}
	if (cli_get(opts, "lang") && !cli_get(opts, "pdf")) {
		fprintf(stderr, "selo receipt: --lang applies to the PDF: add --pdf FILE.pdf\n");
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
	int rc = write_receipt(&app, pos[0], out, cli_get(opts, "pdf"), !strcmp(form, "short"), lang);
	selo_close(&app);
	return rc;
}
