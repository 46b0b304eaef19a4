/* init.c: `selo init --data DIR [--domain D] [--selector S] [--origin O]
 * [--force]`: creates DIR (0700), DIR/keys/ with every key and certificate,
 * DIR/selo.conf, DIR/selo.db and a first API key. Prints to stdout the API
 * key, the DKIM DNS records and the log verifier key, then hints on stderr,
 * then `export SELO_KEY=<key>` last on stdout (print_report); refuses to
 * overwrite anything without --force. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "selo/auth.h"
#include "selo/config.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "selo/store.h"

static const char HELP[] =
	"usage: selo init --data DIR [--domain D] [--selector S] [--origin O] [--force]\n"
	"\n"
	"Creates DIR/selo.conf, DIR/selo.db and DIR/keys/ (private keys 0600): the\n"
	"Ed25519 log key, DKIM keys (RSA-2048 and Ed25519), the S/MIME key and\n"
	"certificate, a development CA, the built-in TSA key and certificate, and\n"
	"the token key; then makes a first API key.\n"
	"  --domain D    mail domain (From, Message-ID, DKIM d=); default example.com\n"
	"  --selector S  DKIM selector (Ed25519 uses S-ed25519); default selo\n"
	"  --origin O    transparency log origin; default D/selo-log\n"
	"  --force       replace existing keys and configuration\n"
	"Prints on stdout the API key (api_key KEY), the DKIM DNS TXT records and\n"
	"the log verifier key (log_vkey ...); then hints on stderr; then, last, on\n"
	"stdout, the API key as a shell line: export SELO_KEY=KEY.\n";

/* A DNS TXT value longer than 255 bytes is written as several strings. */
static void print_txt(const char *name, const char *value)
{
	printf("%s IN TXT", name);
	size_t n = strlen(value);
	for (size_t i = 0; i < n; i += 255)
		printf(" \"%.*s\"", (int)(n - i < 255 ? n - i : 255), value + i);
	printf("\n");
}

/* What init prints, in an order that reads right when stdout and stderr
 * share one terminal or log: the machine-readable lines on stdout (the API
 * key, the DKIM TXT records, the log verifier key), then the hints for
 * people on stderr, then, last, on stdout, the API key again as a line a
 * shell takes as it is: `export SELO_KEY=...`. Each stream is flushed before
 * the other writes, so the order survives pipes and redirections. */
static void print_report(const char *dir, const char *domain, const char *selector,
			 const char *key, int64_t id, const struct keys_report *rep)
{
	printf("api_key %s\n", key);
	char name[400];
	snprintf(name, sizeof(name), "%s._domainkey.%s.", selector, domain);
	print_txt(name, rep->dkim_rsa_txt);
	snprintf(name, sizeof(name), "%s-ed25519._domainkey.%s.", selector, domain);
	print_txt(name, rep->dkim_ed25519_txt);
	printf("log_vkey %s\n", rep->log_vkey);
	fflush(stdout);
	fprintf(stderr,
		"selo: initialised %s\n"
		"  - publish the two DKIM TXT records above in DNS for %s\n"
		"  - give the log verifier key (log_vkey, also in %s/keys/log.vkey) to whoever\n"
		"    verifies receipts\n"
		"  - start with: selo serve --data %s\n",
		dir, domain, dir, dir);
	if (!strcmp(domain, "example.com"))
		fprintf(stderr, "  - the mail domain is example.com: for real mail run init with "
				"--domain YOUR.DOMAIN (make run DOMAIN=YOUR.DOMAIN)\n");
	fprintf(stderr,
		"  - the API key (id %lld, \"default\") is shown once, here: keep it; the next\n"
		"    line sets it for the README's examples (paste it into your shell):\n",
		(long long)id);
	fflush(stderr);
	printf("export SELO_KEY=%s\n", key);
	fflush(stdout);
}

static int valid_label_text(const char *s)
{
	if (!s || !*s || strlen(s) > 200)
		return 0;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '+' || *p == '"' || *p == '\\')
			return 0;
	return 1;
}

int cmd_init(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL},     {"domain", 1, NULL}, {"selector", 1, NULL},
				 {"origin", 1, NULL},   {"force", 0, NULL},  {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 0, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	const char *dir = cli_get(opts, "data");
	const char *domain = cli_get(opts, "domain") ? cli_get(opts, "domain") : "example.com";
	const char *selector = cli_get(opts, "selector") ? cli_get(opts, "selector") : "selo";
	int force = cli_get(opts, "force") != NULL;
	if (!dir || !*dir) {
		fprintf(stderr, "selo init: --data DIR is required\n%s", HELP);
		return EXIT_USAGE;
	}
	char origin[300];
	snprintf(origin, sizeof(origin), "%s/selo-log", domain);
	if (cli_get(opts, "origin"))
		snprintf(origin, sizeof(origin), "%s", cli_get(opts, "origin"));
	if (!valid_label_text(domain) || !strchr(domain, '.') || !valid_label_text(selector) ||
	    !valid_label_text(origin)) {
		fprintf(stderr, "selo init: --domain, --selector and --origin must be plain names "
				"(no spaces, quotes or '+'); the domain needs a dot\n");
		return EXIT_USAGE;
	}
	char conf[1100], keys[1100], db[1100];
	snprintf(conf, sizeof(conf), "%s/selo.conf", dir);
	snprintf(keys, sizeof(keys), "%s/keys", dir);
	snprintf(db, sizeof(db), "%s/selo.db", dir);
	if (!force && access(conf, F_OK) == 0) {
		fprintf(stderr, "selo init: %s exists; nothing changed (use --force to replace "
				"the configuration and keys)\n", conf);
		return EXIT_USAGE;
	}
	struct selo_err err;
	err_clear(&err);
	char from[320];
	snprintf(from, sizeof(from), "notificacoes@%s", domain);
	struct keys_report rep;
	if (dir_make(dir, 0700, &err) != 0 ||
	    keys_init(keys, domain, from, origin, force, &rep, &err) != 0 ||
	    config_write_initial(conf, domain, selector, origin, &err) != 0) {
		fprintf(stderr, "selo init: %s\n", err.msg);
		return EXIT_USAGE;
	}
	struct store *st;
	if (store_open(db, &st, &err) != 0) {
		fprintf(stderr, "selo init: %s\n", err.msg);
		return EXIT_USAGE;
	}
	char key[AUTH_KEY_LEN + 1], prefix[16];
	uint8_t hash[32];
	int64_t id;
	auth_key_new(key, hash, prefix);
	int r = store_apikey_add(st, "default", hash, prefix, &id, &err);
	store_close(st);
	if (r != 0) {
		fprintf(stderr, "selo init: %s\n", err.msg);
		return EXIT_USAGE;
	}
	chmod(db, 0600);
	print_report(dir, domain, selector, key, id, &rep);
	return EXIT_OK;
}
