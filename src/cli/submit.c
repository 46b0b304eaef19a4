/* submit.c: `selo submit --data DIR FILE.json` ("-" reads stdin): the same
 * validation as POST /v1/notices, then queues the notice under the CLI's
 * own key id 0. Prints the notice id alone. A running `selo serve` on the
 * same DIR sends it (its workers poll the store at least once a second). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/notice.h"
#include "selo/selo.h"

static const char HELP[] =
	"usage: selo submit --data DIR [--idempotency-key K] FILE.json\n"
	"\n"
	"Validates FILE.json exactly as POST /v1/notices does (\"-\" reads stdin),\n"
	"stores the notice and prints its id. A running `selo serve` sends it.\n"
	"With --idempotency-key, submitting the same file again prints the first id.\n";

static int read_input(const char *path, struct buf *b, size_t max)
{
	struct selo_err err;
	err_clear(&err);
	if (strcmp(path, "-") != 0) {
		if (file_read(path, max, b, &err) != 0) {
			fprintf(stderr, "selo submit: %s\n", err.msg);
			return -1;
		}
		return 0;
	}
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
		if (b->len + n > max) {
			fprintf(stderr, "selo submit: input larger than %zu bytes\n", max);
			return -1;
		}
		buf_append(b, chunk, n);
	}
	return 0;
}

static void print_error(const struct selo_err *e)
{
	fprintf(stderr, "selo submit: %s\n", e->msg);
	for (int i = 0; i < e->nfields; i++)
		fprintf(stderr, "  %s: %s\n", e->fields[i].field, e->fields[i].msg);
}

static int submit(struct selo *app, const char *path, const char *idem)
{
	struct buf in = BUF_INIT;
	if (read_input(path, &in, app->cfg.api_max_body) != 0) {
		buf_free(&in);
		return EXIT_USAGE;
	}
	struct selo_err err;
	err_clear(&err);
	json_error_t je;
	json_t *body = json_loadb(in.data ? in.data : "", in.len, JSON_REJECT_DUPLICATES, &je);
	uint8_t sha[32];
	sha256(in.data ? in.data : "", in.len, sha);
	buf_free(&in);
	if (!body) {
		fprintf(stderr, "selo submit: %s is not valid JSON (line %d, column %d): %s\n", path,
			je.line, je.column, je.text);
		return EXIT_USAGE;
	}
	struct notice_req req;
	int r = notice_parse(body, &app->cfg, app->templates, &req, &err);
	json_decref(body);
	if (r != 0) {
		print_error(&err);
		return EXIT_USAGE;
	}
	struct notice_new n;
	json_t *fields;
	struct disclosures disc = DISCLOSURES_INIT;
	notice_prepare(&req, 0, idem, sha, &n, &fields, &disc);
	n.event_fields = fields;
	struct accept_result res;
	memset(&res, 0, sizeof(res));
	r = store_notices_accept(app->store, &n, 1, &res, &err);
	json_decref(fields);
	disclosures_free(&disc);
	free((char *)n.payload_json);
	notice_req_free(&req);
	if (r != 0 || res.failed) {
		print_error(r != 0 ? &err : &res.err);
		return EXIT_USAGE;
	}
	printf("%s\n", res.id);
	if (res.replay)
		fprintf(stderr, "selo: this idempotency key was used before: that notice's id\n");
	return EXIT_OK;
}

int cmd_submit(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {"idempotency-key", 1, NULL}, {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (!cli_get(opts, "data") || npos != 1) {
		fprintf(stderr, "selo submit: --data DIR and FILE.json are required\n%s", HELP);
		return EXIT_USAGE;
	}
	const char *idem = cli_get(opts, "idempotency-key");
	if (idem && (!*idem || strlen(idem) > 255)) {
		fprintf(stderr, "selo submit: --idempotency-key must be 1 to 255 characters\n");
		return EXIT_USAGE;
	}
	json_object_seed(0);
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		fprintf(stderr, "selo submit: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc = submit(&app, pos[0], idem);
	selo_close(&app);
	return rc;
}
