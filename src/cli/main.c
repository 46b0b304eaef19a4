/* main.c: the `selo` command: dispatches to a subcommand and holds the
 * shared option parser. Everything for people goes to stderr; only
 * machine-readable results go to stdout. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "selo/diag.h"

static const char USAGE[] =
	"usage: selo <command> [options]\n"
	"\n"
	"  init    --data DIR [--domain D] [--selector S] [--origin O] [--force]\n"
	"          create the configuration, database and keys\n"
	"  serve   --data DIR      run the API, tracker, senders and ledger\n"
	"  apikey  create NAME | list | revoke ID  --data DIR\n"
	"  submit  --data DIR FILE.json   queue a notice; prints its id\n"
	"  status  ID --data DIR   the notice and its events, as JSON\n"
	"  verify  FILE.json [--key VERIFIER_KEY] [--tsa-ca FILE]\n"
	"          check a receipt offline; exit 0 valid, 1 invalid\n"
	"  receipt ID --data DIR [-o FILE.json] [--form short]   the notice's receipt\n"
	"  log     checkpoint|verify --data DIR   the latest checkpoint; a full audit\n"
	"  bounce  --data DIR [--rcpt ADDRESS] [--mta] < MESSAGE\n"
	"          record a bounce (DSN) of one of our notices; for the MTA\n"
	"  stats   --data DIR [--from D] [--to D] [--group-by G] [--json]\n"
	"          delivery, open and read indicators (docs/stats.md)\n"
	"  store   check --data DIR [--quick]   is the database file sound, and every\n"
	"          notice's evidence intact? exit 0 sound, 1 damage found\n"
	"  store   copy --data DIR [--to URL] [--audit]   move DIR/selo.db into an empty\n"
	"          PostgreSQL database, log intact (serve stopped; docs/scale.md)\n"
	"  version                 the version of this binary (also --version)\n"
	"  backup  --data DIR -o FILE [--force] [--compress zstd|gzip|none]\n"
	"          one archive of the database (beside a running serve), keys, config\n"
	"  restore FILE --data NEWDIR   check a backup and restore it as a new directory\n"
	"  templates [NAME] --data DIR   the templates' variables and filters, as JSON\n"
	"  keys    list | dns dkim | rotate dkim|smime|tsa | retire dkim SEL  --data DIR\n"
	"          rotate DKIM selectors and certificates (docs/keys.md)\n"
	"\n"
	"`selo <command> --help` for details. Exit codes: 0 ok, 1 not found or\n"
	"verification failed, 2 usage or I/O error.\n";

int cli_parse(int argc, char **argv, struct cli_opt *opts, const char **pos, int maxpos, int *npos,
	      int *help)
{
	*npos = 0;
	*help = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			*help = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || !a[2]) {
			if (*npos >= maxpos) {
				fprintf(stderr, "selo: unexpected argument '%s'\n", a);
				return -1;
			}
			pos[(*npos)++] = a;
			continue;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		struct cli_opt *o = NULL;
		for (struct cli_opt *p = opts; p->name; p++)
			if (strlen(p->name) == nlen && !strncmp(p->name, name, nlen))
				o = p;
		if (!o) {
			fprintf(stderr, "selo: unknown option '--%.*s' (see --help)\n", (int)nlen, name);
			return -1;
		}
		if (!o->takes_value) {
			if (eq) {
				fprintf(stderr, "selo: option '--%s' takes no value\n", o->name);
				return -1;
			}
			o->value = "";
		} else if (eq) {
			o->value = eq + 1;
		} else if (i + 1 < argc) {
			o->value = argv[++i];
		} else {
			fprintf(stderr, "selo: option '--%s' needs a value\n", o->name);
			return -1;
		}
	}
	return 0;
}

const char *cli_get(const struct cli_opt *opts, const char *name)
{
	for (const struct cli_opt *p = opts; p->name; p++)
		if (!strcmp(p->name, name))
			return p->value;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(USAGE, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(USAGE, stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V"))
		return cmd_version(argc - 2, argv + 2);
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{"init", cmd_init}, {"serve", cmd_serve}, {"apikey", cmd_apikey},
		{"submit", cmd_submit}, {"status", cmd_status}, {"receipt", cmd_receipt},
		{"log", cmd_log}, {"verify", cmd_verify}, {"bounce", cmd_bounce},
		{"stats", cmd_stats}, {"store", cmd_store}, {"version", cmd_version},
		{"backup", cmd_backup}, {"restore", cmd_restore}, {"templates", cmd_templates},
		{"keys", cmd_keys},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmd, cmds[i].name))
			return cmds[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "selo: unknown command '%s'\n\n%s", cmd, USAGE);
	return EXIT_USAGE;
}
