/* webpage.c: the static pages of the public listener (webpage.h,
 * docs/verify-page.md). The bytes come from the table scripts/embed-web.sh
 * generates out of src/web/, so serving needs no file system and no
 * state: a lookup, then one response over the static bytes. The page runs
 * every receipt check in the browser and must never load or send anything
 * elsewhere, hence the Content-Security-Policy on every answer (assets
 * included: a script or style sheet opened directly is still confined). */
#include <string.h>
#include "selo/accesslog.h"
#include "selo/webpage.h"

#define PREFIX "/verify"
#define PREFIX_LEN 7
#define NAME_MAX_LEN 64

/* Scripts and styles only from this origin, no inline code, fetch only to
 * this origin (the page reads /log/checkpoint), no framing, no forms. */
static const char CSP[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
			  "img-src 'self'; connect-src 'self'; object-src 'none'; "
			  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static const char NOT_FOUND[] = "Não encontrado.\n";
static const char BAD_METHOD[] = "Método não permitido.\n";

static const struct {
	const char *ext, *type;
} TYPES[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".json", "application/json"},
};

static const char *content_type(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++) {
		size_t e = strlen(TYPES[i].ext);
		if (n > e && !strcmp(path + n - e, TYPES[i].ext))
			return TYPES[i].type;
	}
	return "application/octet-stream";
}

int webpage_handles(const char *url)
{
	return !strncmp(url, PREFIX, PREFIX_LEN) && (url[PREFIX_LEN] == '\0' ||
						     url[PREFIX_LEN] == '/');
}

/* A file name as the embedded table has them: no path, no dot files, a
 * short plain alphabet, so no URL can reach outside the table's names. */
static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX_LEN || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

int webpage_find(const char *url, struct webpage *out)
{
	if (!webpage_handles(url))
		return -1;
	/* The page is /verify only: its relative asset URLs would not resolve
	 * from /verify/index.html. */
	if (url[PREFIX_LEN] && !strcmp(url + PREFIX_LEN + 1, "index.html"))
		return -1;
	const char *name = url[PREFIX_LEN] ? url + PREFIX_LEN + 1 : "index.html";
	if (!name_ok(name))
		return -1;
	for (const struct webpage_file *f = selo_web_files; f->path; f++) {
		/* Table paths are "verify/<name>". */
		if (strncmp(f->path, PREFIX + 1, PREFIX_LEN - 1) != 0 || f->path[PREFIX_LEN - 1] != '/' ||
		    strcmp(f->path + PREFIX_LEN, name) != 0)
			continue;
		*out = (struct webpage){f->data, f->len, f->etag, content_type(f->path)};
		return 0;
	}
	return -1;
}

static void common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy", CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *body,
				 const char *name, const char *value)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (name)
		MHD_add_response_header(r, name, value);
	common_headers(r);
	accesslog_note(c, strlen(body));
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* If-None-Match holds "*" or a list of (possibly weak) quoted tags. */
static int not_modified(struct MHD_Connection *c, const char *etag)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	if (!h)
		return 0;
	if (!strcmp(h, "*"))
		return 1;
	return strstr(h, etag) != NULL;
}

enum MHD_Result webpage_serve(struct MHD_Connection *c, const char *url, const char *method)
{
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, BAD_METHOD, "Allow", "GET, HEAD");
	/* The page's assets are relative to /verify; "/verify/" would resolve
	 * them one level too deep. */
	if (!strcmp(url, PREFIX "/"))
		return send_text(c, MHD_HTTP_MOVED_PERMANENTLY, "", "Location", "../verify");
	struct webpage p;
	if (webpage_find(url, &p) != 0)
		return send_text(c, MHD_HTTP_NOT_FOUND, NOT_FOUND, NULL, NULL);
	int same = not_modified(c, p.etag);
	struct MHD_Response *r = MHD_create_response_from_buffer(same ? 0 : p.len, (void *)p.data,
								 MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", p.content_type);
	MHD_add_response_header(r, "ETag", p.etag);
	/* Cached, but checked on every load: a new binary serves a new page. */
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	common_headers(r);
	accesslog_note(c, same ? 0 : p.len);
	enum MHD_Result ret = MHD_queue_response(c, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}
