/* accesslog.h: the optional access log of the HTTP listeners (api.access_log,
 * track.access_log; docs/operations.md "Logs"): one line at info per
 * answered request, module "access", through diag.h (so log.format
 * applies): the listener, method, path, status, body bytes, the time from
 * the request having arrived to its answer being queued (ms, fractional),
 * and the client's IP as the listener attributes it.
 *
 * What it never writes: query strings (libmicrohttpd's url has none), the
 * tracker's tokens (/o/:token.gif, /c/:token, /r/:token), path segments that
 * hold an '@' (an address: /v1/suppressions/:address), headers (so no
 * Authorization), bodies (so no variables). Off, it costs a branch per
 * request and a thread-local store per answer.
 *
 * Use: the listener's access handler calls accesslog_begin before its own
 * work and accesslog_end after, when its access log is on; the places that
 * queue responses call accesslog_note (or accesslog_note_shared for the
 * responses made once at start, registered with accesslog_remember) so
 * the line can give the body size. */
#ifndef SELO_ACCESSLOG_H
#define SELO_ACCESSLOG_H
#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>

enum accesslog_listener { ACCESSLOG_API, ACCESSLOG_TRACKER };

/* The body size of the response about to be queued for c (this thread). */
void accesslog_note(struct MHD_Connection *c, size_t bytes);
/* A response shared by many requests, and its body size (up to 64 are
 * remembered per process; beyond, the size shows as unknown). */
void accesslog_remember(const struct MHD_Response *r, size_t bytes);
/* accesslog_note with the remembered size of r (unknown: -1). */
void accesslog_note_shared(struct MHD_Connection *c, const struct MHD_Response *r);

/* A monotonic start in microseconds; forgets this thread's last note. */
int64_t accesslog_begin(void);
/* Writes the line when the call that began at start_us queued c's answer;
 * nothing otherwise (the head of a request whose body follows, a chunk of
 * it). ip: the client address as the listener attributes it, or NULL for
 * the connection's peer. */
void accesslog_end(enum accesslog_listener l, struct MHD_Connection *c, const char *method,
		   const char *url, const char *ip, int64_t start_us);

/* Whether c's answer is queued (so accesslog_end would write): lets a
 * listener skip working out the client's IP for the calls that do not answer. */
int accesslog_answered(struct MHD_Connection *c);

/* The path as logged (exposed for tests): tokens and addresses replaced,
 * at most n - 1 bytes. */
void accesslog_path(enum accesslog_listener l, const char *url, char *out, size_t n);

#endif
