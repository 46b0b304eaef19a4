/* webpage.h: static web pages compiled into the binary and served by the
 * public tracker listener (docs/verify-page.md). Today one page: the
 * receipt verification page, GET|HEAD /verify and its assets under
 * /verify/ (the files of src/web/verify, embedded by scripts/embed-web.sh).
 * The files never change while the process runs, so each has a strong
 * ETag made at build time (a SHA-256 prefix of its bytes). */
#ifndef SELO_WEBPAGE_H
#define SELO_WEBPAGE_H
#include <stddef.h>
#include <microhttpd.h>

/* One embedded file; the generated table ends with {NULL, NULL, 0, NULL}. */
struct webpage_file {
	const char *path;           /* "<page>/<file>", e.g. "verify/verify.js" */
	const unsigned char *data;
	size_t len;
	const char *etag;           /* quoted, e.g. "\"3f2a...\"" */
};
extern const struct webpage_file selo_web_files[];

/* What a URL path resolves to. */
struct webpage {
	const unsigned char *data;
	size_t len;
	const char *etag;
	const char *content_type;
};

/* 1 when url ("/verify", "/verify/...") belongs to the pages: the tracker
 * hands such a request to webpage_serve whatever the answer will be. */
int webpage_handles(const char *url);

/* Looks url up: 0 with *out filled, -1 when no such file. "/verify" is
 * the page itself (verify/index.html). */
int webpage_find(const char *url, struct webpage *out);

/* Answers a request for a url webpage_handles accepted: 200 with the file
 * (HEAD: headers only, libmicrohttpd drops the body), 304 when
 * If-None-Match names its ETag, 404 for an unknown file, 405 for methods
 * other than GET and HEAD. Every answer carries the page's strict
 * Content-Security-Policy, nosniff and no-referrer. */
enum MHD_Result webpage_serve(struct MHD_Connection *c, const char *url, const char *method);

#endif
