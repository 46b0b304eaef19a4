/* selo.c: opening and closing the process context (see selo.h): the
 * configuration and the token key, then the store (SQLite's DIR/selo.db or
 * PostgreSQL's store.url, from [store] and [node]), then the templates;
 * closed in reverse. On PostgreSQL several nodes share the database, so
 * the keys every node must hold alike are checked against what it records. */
#include <string.h>
#include <openssl/crypto.h>
#include "selo/clock.h"
#include "selo/crypto.h"
#include "selo/dsn.h"
#include "selo/keys.h"
#include "selo/selo.h"
#include "store_pg_int.h" /* pgstore_meta_check: the one PostgreSQL-only call */

/* Opens the store the configuration names. */
static int selo_store_open(struct selo *app, struct selo_err *err)
{
	char path[1100];
	int pg = config_store_postgres(&app->cfg);
	struct store_params p = {
		.backend = app->cfg.store_backend,
		.target = pg ? app->cfg.store_url : config_path(&app->cfg, "selo.db", path, sizeof(path)),
		.node = app->cfg.node_name,
		.timeout_ms = app->cfg.store_timeout_ms,
		.lease_ms = app->cfg.store_lease_ms,
		.pool_size = app->cfg.store_pool,
	};
	return store_open_backend(&p, &app->store, err);
}

/* Nodes sharing a database must sign the log with the same key and MAC
 * tokens with the same key, else one node's receipts and links fail on
 * another: the database records the first node's verifier key and the token
 * key's fingerprint (never the key), and a node with others is refused,
 * naming which (500 store-keys-differ). */
static int selo_keys_check(struct selo *app, struct selo_err *err)
{
	char dir[1100], name[300], vkey[600], token_sha[65];
	uint8_t seed[32], pub[32];
	config_path(&app->cfg, "keys", dir, sizeof(dir));
	int r = keys_load_note_key(dir, name, sizeof(name), seed, pub, err);
	OPENSSL_cleanse(seed, sizeof(seed));
	if (r != 0)
		return -1;
	if (note_vkey_format(name, pub, vkey, sizeof(vkey)) != 0)
		return err_set(err, 500, "keys", "the log's verifier key does not fit");
	sha256_hex(app->token_key, sizeof(app->token_key), token_sha);
	struct pgstore *pg = pgstore_of(app->store);
	if (pgstore_meta_check(pg, "log_vkey", vkey, err) != 0 ||
	    pgstore_meta_check(pg, "token_key_sha256", token_sha, err) != 0)
		return -1;
	return 0;
}

int selo_open(struct selo *app, const char *data_dir, struct selo_err *err)
{
	memset(app, 0, sizeof(*app));
	app->started_ms = clock_now_ms();
	if (config_load(data_dir, &app->cfg, err) != 0)
		return -1;
	char path[1100];
	/* Loaded once here: every sent message's envelope sender carries a MAC
	 * under it (sender.c), and `selo bounce` checks that MAC. */
	if (keys_load_token_key(config_path(&app->cfg, "keys", path, sizeof(path)), app->token_key,
				err) != 0 ||
	    dsn_verp_check(app->cfg.mail_return_path, err) != 0)
		goto fail;
	if (selo_store_open(app, err) != 0)
		goto fail;
	if ((config_store_postgres(&app->cfg) && selo_keys_check(app, err) != 0) ||
	    template_set_load(app->cfg.templates_dir, &app->templates, err) != 0) {
		store_close(app->store);
		app->store = NULL;
		goto fail;
	}
	return 0;
fail:
	OPENSSL_cleanse(app->token_key, sizeof(app->token_key));
	return -1;
}

void selo_close(struct selo *app)
{
	template_set_free(app->templates);
	store_close(app->store);
	OPENSSL_cleanse(app->token_key, sizeof(app->token_key));
	app->templates = NULL;
	app->store = NULL;
}
