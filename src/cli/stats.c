/* stats.c: `selo stats --data DIR [--from D] [--to D] [--group-by G]
 * [--zone Z] [--key ID] [--json]`: the indicators of GET /v1/stats
 * (docs/stats.md) over every API key's notices, or one key's with --key.
 * It first counts the events recorded since the last count (in this
 * process; `selo serve` may be counting at the same time, the store keeps
 * them from counting an event twice), then prints a table on stdout, or
 * with --json the same document as the API. Exit 2 on a bad option. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "cli.h"
#include "selo/selo.h"
#include "selo/stats.h"

static const char HELP[] =
	"usage: selo stats --data DIR [--from D] [--to D] [--group-by template|segment|tag|day]\n"
	"                  [--zone ZONE] [--key ID] [--json]\n"
	"Counts per group of notices accepted in [from, to]: accepted, delivered, deferred,\n"
	"failed, canceled, opened and clicked per class, read confirmed, rates, and the\n"
	"median and p90 time from delivery to the first human open and to the read\n"
	"confirmation. D is a date (YYYY-MM-DD, a whole day in the zone; default zone\n"
	"America/Sao_Paulo) or an RFC 3339 date-time (to excluded). --key limits it to one\n"
	"API key's notices; --json prints the document of GET /v1/stats.\n";

static int run(struct selo *app, const struct cli_opt *opts)
{
	struct stats_params p = {cli_get(opts, "from"), cli_get(opts, "to"),
				 cli_get(opts, "group-by"), cli_get(opts, "zone"), -1};
	const char *key = cli_get(opts, "key");
	if (key) {
		char *end = NULL;
		errno = 0;
		long long k = strtoll(key, &end, 10);
		if (end == key || *end || k < 1 || errno) {
			fprintf(stderr, "selo stats: --key takes an API key id (see selo apikey list)\n");
			return EXIT_USAGE;
		}
		p.apikey_id = k;
	}
	struct selo_err err;
	err_clear(&err);
	struct stats_follower *f = NULL;
	if (stats_follower_new(app->store, &f, &err) != 0 || stats_catch_up(f, &err) != 0) {
		stats_follower_free(f);
		fprintf(stderr, "selo stats: %s\n", err.msg);
		return EXIT_USAGE;
	}
	stats_follower_free(f);
	json_t *doc = NULL;
	if (stats_query(app->store, &p, &doc, &err) != 0) {
		fprintf(stderr, "selo stats: %s\n", err.msg);
		for (int i = 0; i < err.nfields; i++)
			fprintf(stderr, "  --%s: %s\n", err.fields[i].field, err.fields[i].msg);
		return EXIT_USAGE;
	}
	if (cli_get(opts, "json")) {
		char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
	} else {
		stats_print_table(doc, stdout);
	}
	json_decref(doc);
	return EXIT_OK;
}

int cmd_stats(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL},     {"from", 1, NULL}, {"to", 1, NULL},
				 {"group-by", 1, NULL}, {"zone", 1, NULL}, {"key", 1, NULL},
				 {"json", 0, NULL},     {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 0, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (!cli_get(opts, "data")) {
		fprintf(stderr, "selo stats: --data DIR is required\n%s", HELP);
		return EXIT_USAGE;
	}
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		fprintf(stderr, "selo stats: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc = run(&app, opts);
	selo_close(&app);
	return rc;
}
