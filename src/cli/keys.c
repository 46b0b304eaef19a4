/* keys.c: `selo keys ...`, rotating the keys an operator may rotate
 * (docs/keys.md): DKIM selectors through pending -> active -> retiring ->
 * retired, and renewal of the S/MIME and built-in TSA certificates under
 * Selo's own CA. DNS records and lists go to stdout (machine-readable);
 * what to do next goes to stderr. A running `selo serve` reads keys at
 * start: restart it after --activate and after a renewal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "selo/clock.h"
#include "selo/config.h"
#include "selo/keys.h"

#define RETIRE_MIN_DAYS 7 /* docs/keys.md: why a week */

static const char HELP[] =
	"usage: selo keys list --data DIR\n"
	"           DKIM selectors: name, state, since (UTC), DNS names\n"
	"       selo keys dns dkim [SELECTOR] --data DIR\n"
	"           the DNS TXT records of every published selector, or of one\n"
	"       selo keys rotate dkim --data DIR [--selector NAME]\n"
	"           make a new pending selector (RSA and Ed25519); prints its records\n"
	"       selo keys rotate dkim --activate --data DIR\n"
	"           the pending selector signs from the next start; the old one retires\n"
	"       selo keys retire dkim SELECTOR --data DIR [--min-days N] [--force]\n"
	"           delete a retiring selector's private keys (after N days, default 7)\n"
	"       selo keys rotate smime|tsa --data DIR\n"
	"           a new key and certificate from Selo's CA; the old certificate\n"
	"           goes to keys/archive/\n"
	"Restart `selo serve` after --activate and after rotate smime|tsa.\n";

struct keys_ctx {
	struct selo_config cfg;
	char keys_dir[4096];
	const char *selector; /* the configured [dkim] selector */
	const char *domain;   /* d= */
};

/* One zone-file line, the value split in strings of at most 255 bytes
 * (RFC 1035 character-strings), as `selo init` prints it. */
static void print_txt(const char *name, const char *domain, const char *value)
{
	printf("%s._domainkey.%s. IN TXT", name, domain);
	size_t n = strlen(value);
	for (size_t i = 0; i < n; i += 255)
		printf(" \"%.*s\"", (int)(n - i < 255 ? n - i : 255), value + i);
	printf("\n");
}

static int print_records(struct keys_ctx *k, const struct dkim_selector *s)
{
	static const char *const algs[] = {"rsa", "ed25519"};
	for (int i = 0; i < 2; i++) {
		struct buf v = BUF_INIT;
		struct selo_err err;
		err_clear(&err);
		if (keys_dkim_txt(k->keys_dir, s, algs[i], &v, &err) != 0) {
			buf_free(&v);
			/* an operator may have published only one algorithm */
			continue;
		}
		char name[80];
		snprintf(name, sizeof(name), "%s%s", s->name, i ? "-ed25519" : "");
		print_txt(name, k->domain, buf_str(&v));
		buf_free(&v);
	}
	return 0;
}

static int load_list(struct keys_ctx *k, struct dkim_selector *sel, size_t *n)
{
	struct selo_err err;
	err_clear(&err);
	if (keys_dkim_list(k->keys_dir, k->selector, sel, n, &err) != 0) {
		fprintf(stderr, "selo keys: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int keys_list(struct keys_ctx *k)
{
	struct dkim_selector sel[DKIM_SEL_MAX];
	size_t n;
	if (load_list(k, sel, &n) != 0)
		return EXIT_USAGE;
	for (size_t i = 0; i < n; i++) {
		char since[32] = "-";
		if (sel[i].since)
			clock_rfc3339(sel[i].since * 1000, since);
		printf("dkim\t%s\t%s\t%s\t%s._domainkey.%s %s-ed25519._domainkey.%s\n", sel[i].name,
		       dkim_sel_state_name(sel[i].state), since, sel[i].name, k->domain, sel[i].name,
		       k->domain);
	}
	return EXIT_OK;
}

static int keys_dns(struct keys_ctx *k, const char *only)
{
	struct dkim_selector sel[DKIM_SEL_MAX];
	size_t n;
	if (load_list(k, sel, &n) != 0)
		return EXIT_USAGE;
	int shown = 0;
	for (size_t i = 0; i < n; i++) {
		/* without a name: what must be in DNS now */
		if (only ? strcmp(only, sel[i].name) != 0 : sel[i].state == DKIM_SEL_RETIRED)
			continue;
		print_records(k, &sel[i]);
		shown++;
	}
	if (only && !shown) {
		fprintf(stderr, "selo keys: no DKIM selector %s (see selo keys list)\n", only);
		return EXIT_NOTFOUND;
	}
	return EXIT_OK;
}

/* Default name of a new selector: the configured one and today's date. */
static void selector_default(const char *base, char out[64])
{
	char today[32];
	clock_rfc3339(clock_now_ms(), today);
	snprintf(out, 64, "%.40s-%.4s%.2s%.2s", base, today, today + 5, today + 8);
}

static int dkim_rotate(struct keys_ctx *k, const char *name)
{
	struct selo_err err;
	err_clear(&err);
	char def[64];
	if (!name) {
		selector_default(k->selector, def);
		name = def;
	}
	struct dkim_selector made;
	if (keys_dkim_new(k->keys_dir, k->selector, name, &made, &err) != 0) {
		fprintf(stderr, "selo keys: %s\n", err.msg);
		return EXIT_USAGE;
	}
	print_records(k, &made);
	fprintf(stderr,
		"selo: new DKIM selector %s (pending; nothing signs with it yet)\n"
		"  1. publish the two TXT records above and check them, e.g.\n"
		"     dig +short TXT %s._domainkey.%s\n"
		"  2. after the DNS TTL has passed everywhere (a day is safe):\n"
		"     selo keys rotate dkim --activate --data %s   and restart selo serve\n",
		made.name, made.name, k->domain, k->cfg.data_dir);
	return EXIT_OK;
}

static int dkim_activate(struct keys_ctx *k)
{
	struct selo_err err;
	err_clear(&err);
	struct dkim_selector now;
	if (keys_dkim_activate(k->keys_dir, k->selector, &now, &err) != 0) {
		fprintf(stderr, "selo keys: %s\n", err.msg);
		return EXIT_USAGE;
	}
	printf("%s\n", now.name);
	fprintf(stderr,
		"selo: DKIM selector %s is active: restart selo serve to sign with it.\n"
		"  Keep the old selector's records published for at least %d days, then\n"
		"  selo keys retire dkim OLD_SELECTOR --data %s\n",
		now.name, RETIRE_MIN_DAYS, k->cfg.data_dir);
	return EXIT_OK;
}

static int dkim_retire(struct keys_ctx *k, const char *name, const char *min_days, int force)
{
	char *end = NULL;
	long days = min_days ? strtol(min_days, &end, 10) : RETIRE_MIN_DAYS;
	if (min_days && (*end || end == min_days || days < 0 || days > 3650)) {
		fprintf(stderr, "selo keys: --min-days must be a number of days (0-3650)\n");
		return EXIT_USAGE;
	}
	struct selo_err err;
	err_clear(&err);
	if (keys_dkim_retire(k->keys_dir, k->selector, name, force ? 0 : (int64_t)days * 86400,
			     &err) != 0) {
		fprintf(stderr, "selo keys: %s\n", err.msg);
		return err.status == 404 ? EXIT_NOTFOUND : EXIT_USAGE;
	}
	fprintf(stderr,
		"selo: DKIM selector %s retired: its private keys are deleted. Its records\n"
		"  (selo keys dns dkim %s) may now leave DNS; messages it signed then no\n"
		"  longer pass DKIM, while their receipts still verify (docs/keys.md).\n",
		name, name);
	return EXIT_OK;
}

static int cert_rotate(struct keys_ctx *k, const char *what)
{
	struct selo_err err;
	err_clear(&err);
	char archived[4096];
	if (keys_renew_cert(k->keys_dir, what, archived, &err) != 0) {
		fprintf(stderr, "selo keys: %s\n", err.msg);
		return EXIT_USAGE;
	}
	printf("%s/%s.crt\n", k->keys_dir, what);
	fprintf(stderr,
		"selo: new %s key and certificate from the same CA (%s/ca.crt); the old\n"
		"  certificate is kept as %s. Restart selo serve to use the new one.\n"
		"  Receipts made before carry their certificates and still verify.\n",
		!strcmp(what, "tsa") ? "TSA" : "S/MIME", k->keys_dir, archived);
	return EXIT_OK;
}

static int ctx_open(struct keys_ctx *k, const char *data)
{
	struct selo_err err;
	err_clear(&err);
	if (config_load(data, &k->cfg, &err) != 0) {
		fprintf(stderr, "selo keys: %s\n", err.msg);
		return -1;
	}
	config_path(&k->cfg, "keys", k->keys_dir, sizeof(k->keys_dir));
	k->selector = k->cfg.dkim_selector[0] ? k->cfg.dkim_selector : "selo";
	k->domain = k->cfg.dkim_domain[0] ? k->cfg.dkim_domain : k->cfg.mail_domain;
	return 0;
}

static int usage(void)
{
	fputs(HELP, stderr);
	return EXIT_USAGE;
}

int cmd_keys(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL},     {"selector", 1, NULL}, {"activate", 0, NULL},
				 {"min-days", 1, NULL}, {"force", 0, NULL},    {NULL, 0, NULL}};
	const char *pos[3];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 3, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (npos < 1 || !cli_get(opts, "data"))
		return usage();
	const char *verb = pos[0], *what = npos > 1 ? pos[1] : "";
	struct keys_ctx k;
	if (ctx_open(&k, cli_get(opts, "data")) != 0)
		return EXIT_USAGE;
	if (!strcmp(verb, "list") && npos == 1)
		return keys_list(&k);
	if (!strcmp(verb, "dns") && !strcmp(what, "dkim") && npos <= 3)
		return keys_dns(&k, npos == 3 ? pos[2] : NULL);
	if (!strcmp(verb, "rotate") && !strcmp(what, "dkim") && npos == 2)
		return cli_get(opts, "activate") ? dkim_activate(&k)
						 : dkim_rotate(&k, cli_get(opts, "selector"));
	if (!strcmp(verb, "rotate") && (!strcmp(what, "smime") || !strcmp(what, "tsa")) && npos == 2)
		return cert_rotate(&k, what);
	if (!strcmp(verb, "retire") && !strcmp(what, "dkim") && npos == 3)
		return dkim_retire(&k, pos[2], cli_get(opts, "min-days"), cli_get(opts, "force") != NULL);
	return usage();
}
