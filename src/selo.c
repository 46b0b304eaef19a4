/* selo.c: opening and closing the process context (see selo.h): the
 * configuration, then the store, then the templates; closed in reverse. */
#include <string.h>
#include "selo/clock.h"
#include "selo/selo.h"

int selo_open(struct selo *app, const char *data_dir, struct selo_err *err)
{
	memset(app, 0, sizeof(*app));
	app->started_ms = clock_now_ms();
	if (config_load(data_dir, &app->cfg, err) != 0)
		return -1;
	char path[1100];
	if (store_open(config_path(&app->cfg, "selo.db", path, sizeof(path)), &app->store, err) != 0)
		return -1;
	if (template_set_load(app->cfg.templates_dir, &app->templates, err) != 0) {
		store_close(app->store);
		app->store = NULL;
		return -1;
	}
	return 0;
}

void selo_close(struct selo *app)
{
	template_set_free(app->templates);
	store_close(app->store);
	app->templates = NULL;
	app->store = NULL;
}
