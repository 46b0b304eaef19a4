/* templates.c: `selo templates [NAME] --data DIR`: the templates this
 * server would load (templates.dir, or the built-in set), as one JSON
 * document on stdout in the same form as GET /v1/templates (all) or
 * GET /v1/templates/{name} (one). Exit 1 for an unknown NAME, 2 when the
 * configuration or a template does not load. Reads no database. */
#include <stdio.h>
#include <stdlib.h>
#include "cli.h"
#include "selo/buf.h"
#include "selo/config.h"
#include "selo/template.h"

static const char HELP[] =
	"usage: selo templates [NAME] --data DIR\n"
	"Prints the templates' metadata as JSON (as GET /v1/templates, or\n"
	"GET /v1/templates/{name} with NAME): description, language, required and\n"
	"optional variables, and the filters each variable is used with.\n";

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	printf("%s\n", s);
	free(s);
}

static int templates_show(const struct template_set *set, const char *name)
{
	if (name) {
		const struct template *t = template_find(set, name);
		if (!t) {
			fprintf(stderr, "selo templates: no template %s\n", name);
			return EXIT_NOTFOUND;
		}
		print_json(template_json(t));
		return EXIT_OK;
	}
	const char **names;
	size_t n = template_names(set, &names);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, template_json(template_find(set, names[i])));
	print_json(json_pack("{s:o}", "templates", arr));
	return EXIT_OK;
}

int cmd_templates(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (!cli_get(opts, "data")) {
		fprintf(stderr, "selo templates: --data DIR is required\n%s", HELP);
		return EXIT_USAGE;
	}
	struct selo_config *cfg = xcalloc(1, sizeof(*cfg));
	struct template_set *set = NULL;
	struct selo_err err;
	err_clear(&err);
	if (config_load(cli_get(opts, "data"), cfg, &err) != 0 ||
	    template_set_load(cfg->templates_dir, &set, &err) != 0) {
		fprintf(stderr, "selo templates: %s\n", err.msg);
		free(cfg);
		return EXIT_USAGE;
	}
	int rc = templates_show(set, npos ? pos[0] : NULL);
	template_set_free(set);
	free(cfg);
	return rc;
}
