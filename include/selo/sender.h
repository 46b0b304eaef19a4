/* sender.h: the sender workers of `selo serve`. Each worker claims due
 * notices in batches, seals those not yet sealed (render, compose, sign;
 * content_sealed), hands the batch to its own transport (one SMTP session
 * per batch), and records each outcome: relay_accepted/delivery_accepted,
 * delivery_deferred with the next attempt on an exponential backoff, or
 * delivery_failed (5xx, or past the lifetime). */
#ifndef SELO_SENDER_H
#define SELO_SENDER_H
#include <stdint.h>
#include "selo/err.h"
#include "selo/selo.h"

int sender_start(struct selo *app, struct sender **out, struct selo_err *err);
/* Wakes idle workers (new notices were accepted). */
void sender_notify(struct sender *s);
/* Lets each worker finish its batch, then joins them. */
void sender_stop(struct sender *s);

/* The delay before attempt number `attempts + 1`, given attempts already
 * failed (>= 1): base * 2^(attempts-1), capped at max. Seconds. */
int64_t sender_backoff_s(int attempts, int base_s, int max_s);

#endif
