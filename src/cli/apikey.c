/* apikey.c: `selo apikey create NAME | list | revoke ID --data DIR`.
 * create prints the new key alone on stdout (it is shown only this once);
 * list prints one key per line: id, prefix, name, created, state (tabs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "selo/auth.h"
#include "selo/clock.h"
#include "selo/mime.h"
#include "selo/selo.h"

static const char HELP[] =
	"usage: selo apikey create NAME --data DIR   print a new key (shown once)\n"
	"       selo apikey list --data DIR          id, prefix, name, created, state\n"
	"       selo apikey revoke ID --data DIR     the key stops working at once\n";

static int apikey_create(struct selo *app, const char *name)
{
	struct selo_err err;
	err_clear(&err);
	if (!*name || mime_header_text_check(name, 120, "name", &err) != 0) {
		fprintf(stderr, "selo apikey: NAME must be 1 to 120 characters without control characters\n");
		return EXIT_USAGE;
	}
	char key[AUTH_KEY_LEN + 1], prefix[16];
	uint8_t hash[32];
	int64_t id;
	auth_key_new(key, hash, prefix);
	if (store_apikey_add(app->store, name, hash, prefix, &id, &err) != 0) {
		fprintf(stderr, "selo apikey: %s\n", err.msg);
		return EXIT_USAGE;
	}
	printf("%s\n", key);
	fprintf(stderr, "selo: API key %lld (\"%s\") created; it is shown only now\n", (long long)id,
		name);
	return EXIT_OK;
}

static int apikey_list(struct selo *app)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey *keys = NULL;
	size_t n = 0;
	if (store_apikey_list(app->store, &keys, &n, &err) != 0) {
		fprintf(stderr, "selo apikey: %s\n", err.msg);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++) {
		char created[32];
		clock_rfc3339(keys[i].created_ms, created);
		printf("%lld\t%s\t%s\t%s\t%s\n", (long long)keys[i].id, keys[i].prefix, keys[i].name,
		       created, keys[i].revoked_ms ? "revoked" : "active");
	}
	free(keys);
	return EXIT_OK;
}

static int apikey_revoke(struct selo *app, const char *idtext)
{
	char *end;
	long long id = strtoll(idtext, &end, 10);
	if (*end || end == idtext || id <= 0) {
		fprintf(stderr, "selo apikey revoke: ID must be a key id as `selo apikey list` shows\n");
		return EXIT_USAGE;
	}
	struct selo_err err;
	err_clear(&err);
	int r = store_apikey_revoke(app->store, id, &err);
	if (r < 0) {
		fprintf(stderr, "selo apikey: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (r == 0) {
		fprintf(stderr, "selo apikey: no active key with id %lld\n", id);
		return EXIT_NOTFOUND;
	}
	fprintf(stderr, "selo: API key %lld revoked\n", id);
	return EXIT_OK;
}

int cmd_apikey(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {NULL, 0, NULL}};
	const char *pos[2];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 2, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	const char *sub = npos > 0 ? pos[0] : NULL;
	int want = sub && !strcmp(sub, "list") ? 1 : 2;
	if (!sub || !cli_get(opts, "data") || npos != want ||
	    (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke"))) {
		fputs(HELP, stderr);
		return EXIT_USAGE;
	}
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		fprintf(stderr, "selo apikey: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc = !strcmp(sub, "create") ? apikey_create(&app, pos[1])
		 : !strcmp(sub, "list") ? apikey_list(&app) : apikey_revoke(&app, pos[1]);
	selo_close(&app);
	return rc;
}
