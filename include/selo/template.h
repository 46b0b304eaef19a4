/* template.h: notice templates. A template is a folder <name>/ with
 * subject.txt, body.txt, body.html and template.ini:
 *
 *   [template]
 *   language = pt-BR
 *   description = ...
 *   required = nome, valor, vencimento     ; comma-separated
 *   optional = linha_digitavel, ...
 *
 * Placeholders are {{var}} or {{var|filter}} (spaces inside the braces are
 * allowed). Filters: brl (number -> "R$ 1.234,56"), data (YYYY-MM-DD ->
 * "01/12/2026"). In body.html every value is HTML-escaped; in subject.txt
 * and body.txt it is inserted as is. A variable used by a template must be
 * listed as required or optional; a missing optional one renders as "".
 * Templates are loaded from the binary (scripts/embed-templates.sh) or from
 * a directory given in the configuration, and checked when loaded: a
 * malformed placeholder or an unknown filter is a load error. */
#ifndef SELO_TEMPLATE_H
#define SELO_TEMPLATE_H
#include <jansson.h>
#include <stddef.h>
#include "selo/buf.h"
#include "selo/err.h"

/* Also (docs/templates.md): a third filter, url (an absolute http(s) URL),
 * and sections: {{#var}}...{{/var}} is kept only when var is given and not
 * blank, {{^var}}...{{/var}} only when it is not; a section tag alone on its
 * line removes that whole line. Blank (only spaces) counts as not given. */

struct embedded_file {
	const char *path; /* "<template>/<file>" */
	const unsigned char *data;
	size_t len;
};
/* Generated at build time from templates/; ends with {NULL, NULL, 0}. */
extern const struct embedded_file selo_embedded_templates[];

struct template_set;
struct template;

/* dir NULL or "": the embedded templates. */
int template_set_load(const char *dir, struct template_set **out, struct selo_err *err);
void template_set_free(struct template_set *set);
const struct template *template_find(const struct template_set *set, const char *name);
/* Names of all templates, sorted; valid while the set lives. */
size_t template_names(const struct template_set *set, const char ***names);
const char *template_name(const struct template *t);
const char *template_language(const struct template *t);
/* The description line of template.ini ("" when none). */
const char *template_description(const struct template *t);
/* The variables t declares: the required ones first, then the optional ones,
 * each in template.ini order; the first *nrequired are required (nrequired
 * may be NULL). Valid while the set lives. Lets a caller that shares one vars
 * object between templates (sequences) pass each only what it declares. */
size_t template_vars(const struct template *t, const char *const **names, size_t *nrequired);
/* t's metadata as GET /v1/templates/{name} and `selo templates NAME` show
 * it (docs/api.md "Templates"): {"name", "description", "language",
 * "required": [var...], "optional": [var...], "filters": {var: [filter...]}}
 * where filters holds each variable used with a filter (brl, data, url). */
json_t *template_json(const struct template *t);

/* Checks vars (a JSON object of strings and numbers) against t: every
 * required variable is present and non-empty, no unknown variable, values
 * have no control characters and fit limit bytes, and values used with a
 * filter are valid for it. Adds one field error per problem, named
 * "vars.<name>", and returns -1 with status 422 if any. */
int template_check(const struct template *t, const json_t *vars, size_t limit,
		   struct selo_err *err);

struct rendered {
	char *subject; /* one line */
	char *text;    /* LF or CRLF line ends, as in the template */
	char *html;
};
int template_render(const struct template *t, const json_t *vars, struct rendered *out,
		    struct selo_err *err);
void rendered_free(struct rendered *r);

/* Filters, exposed for tests. value is the JSON number or string text.
 * Return 0, or -1 when the value is not valid for the filter. */
int filter_brl(const char *value, struct buf *out);
int filter_data(const char *value, struct buf *out);
/* url: an absolute http:// or https:// URL of printable ASCII without
 * spaces, quotes, < > \ or `; written unchanged. Keeps "javascript:" and
 * the like out of href attributes. */
int filter_url(const char *value, struct buf *out);
/* Appends s HTML-escaped (& < > " ' ) to out. */
void html_escape(struct buf *out, const char *s, size_t n);

#endif
