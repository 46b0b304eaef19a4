/* tracker.h: the public listener (track.listen), facing recipients and
 * log monitors. DESIGN "Tracker":
 *   GET|HEAD /o/{token}.gif   43-byte transparent GIF, never cached; records `opened`
 *   GET|HEAD /c/{token}       302 to the URL stored for that link; records `clicked`
 *   GET|HEAD /r/{token}       the pt-BR confirmation page (a button that POSTs)
 *   POST /r/{token}           records `read_confirmed`, answers once it is durable;
 *                             a repeat answers the same and records nothing new
 *   GET /log/checkpoint, GET /log/tile/...  the public log (C2SP tlog-tiles)
 * Tokens are checked by MAC (token.h) before any database work: a forged,
 * truncated or altered token is a 404 that costs no read and no write.
 * Pixel and click hits are answered at once and recorded by a recorder
 * thread in group commits within about 100 ms; every hit is classified
 * (classify.h) and its IP and user agent enter the event as commitments.
 * Per-IP token buckets bound what one address can make us record; beyond it
 * the answer is 429 and nothing is recorded. A request must arrive within
 * track.head_timeout, and room is kept for new clients, however many
 * connections trickle (connguard.h). docs/tracking.md. */
#ifndef SELO_TRACKER_H
#define SELO_TRACKER_H
#include "selo/err.h"
#include "selo/selo.h"

struct tracker;

/* Starts listening on app->cfg.track_listen (app->store, app->ledger must
 * be open; app->ledger may be NULL, then /log/ answers 503). */
int tracker_start(struct selo *app, struct tracker **out, struct selo_err *err);
/* Stops accepting, records every hit still queued, frees. */
void tracker_stop(struct tracker *t);

/* Open files `selo serve` wants so the tracker can hold
 * track.max_connections (serve raises its limit to this; docs/operations.md). */
unsigned long tracker_fds_wanted(const struct selo_config *cfg);

/* For tests: how many store (or ledger) calls the tracker has made so far,
 * from its handlers and its recorder. A request with a forged token must
 * leave it unchanged. */
long long tracker_store_calls(struct tracker *t);

#endif
