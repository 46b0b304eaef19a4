/* api.h: the private HTTP API (libmicrohttpd + jansson) on api.listen:
 * POST /v1/notices, POST /v1/notices/batch, GET /v1/notices/{id},
 * GET /v1/notices, GET /v1/notices/{id}/message, GET /healthz, GET /metrics.
 * Requests are authenticated with Bearer API keys; errors are RFC 9457
 * problem+json. docs/api.md is the reference. */
#ifndef SELO_API_H
#define SELO_API_H
#include <stdint.h>
#include "selo/err.h"
#include "selo/selo.h"

/* Starts listening; returns once the socket is bound. */
int api_start(struct selo *app, struct api **out, struct selo_err *err);
/* The first step of a graceful stop: closes the listening socket, answers
 * 503 (Retry-After, Connection: close) to any new request on a connection
 * already open, and waits until the requests in progress have been answered
 * or clock_mono_ms() reaches deadline_ms. */
void api_drain(struct api *a, int64_t deadline_ms);
/* Stops accepting, finishes the requests in progress, frees. */
void api_stop(struct api *a);

/* host:port (IPv4, "[v6]:port" or "localhost:port") into a sockaddr;
 * shared with the tracker. Returns 0 or -1. */
struct sockaddr_storage;
int api_parse_listen(const char *listen, struct sockaddr_storage *ss, unsigned *len);

#endif
