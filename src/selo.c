/* selo.c: opening and closing the process context (see selo.h): the
 * configuration and the token key, then the store, then the templates;
 * closed in reverse. */
#include <string.h>
#include <openssl/crypto.h>
#include "selo/clock.h"
#include "selo/dsn.h"
#include "selo/keys.h"
#include "selo/selo.h"

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
	if (store_open(config_path(&app->cfg, "selo.db", path, sizeof(path)), &app->store, err) != 0)
		goto fail;
	if (template_set_load(app->cfg.templates_dir, &app->templates, err) != 0) {
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
