/* sender.h: the sender workers of `selo serve`. Each worker claims due
 * notices in batches, seals those not yet sealed (render, compose, sign;
 * content_sealed), hands the batch to its own transport (one SMTP session
 * per batch), and records each outcome: relay_accepted/delivery_accepted,
 * delivery_deferred with the next attempt on an exponential backoff, or
 * delivery_failed (5xx, or past the lifetime). When the store fails (a
 * full disk), a worker keeps its batch and tries again until the seals,
 * then the results, are stored: nothing is sent before its seal is
 * durable, and nothing handed to SMTP is sent again because its result
 * was lost (docs/operations.md "A full disk"). */
#ifndef SELO_SENDER_H
#define SELO_SENDER_H
#include <stddef.h>
#include <stdint.h>
#include "selo/err.h"
#include "selo/selo.h"

int sender_start(struct selo *app, struct sender **out, struct selo_err *err);
/* Wakes idle workers (new notices were accepted). */
void sender_notify(struct sender *s);
/* The first step of a graceful stop: no worker claims another batch; each
 * finishes the batch it holds (seal, send, record the results) and exits.
 * Returns once no claim is in progress (a claim begun before the call may
 * still take notices accepted after it: it is waited for, at most
 * store.timeout), so nothing accepted afterwards is claimed. A worker whose seals cannot be stored gives up at once
 * (nothing of its batch was sent); one whose results cannot be recorded
 * keeps trying, names each such notice in the log a second before
 * sender.stop_timeout has passed, and lets go 10 s after that. */
void sender_stop_claiming(struct sender *s);
/* Notices held by workers right now (claimed, so `sending`, and not yet
 * recorded), and in *workers (may be NULL) how many workers hold them. */
size_t sender_inflight(struct sender *s, int *workers);
/* Waits until every worker has exited or clock_mono_ms() reaches
 * deadline_ms; returns how many workers are still running (0: all exited).
 * A worker stuck in an SMTP session keeps running past any deadline. */
int sender_wait(struct sender *s, int64_t deadline_ms);
/* Stops claiming, lets each worker finish its batch, joins them and frees.
 * Blocks as long as a worker does. */
void sender_stop(struct sender *s);

/* The delay before attempt number `attempts + 1`, given attempts already
 * failed (>= 1): base * 2^(attempts-1), capped at max. Seconds. */
int64_t sender_backoff_s(int attempts, int base_s, int max_s);

#endif
