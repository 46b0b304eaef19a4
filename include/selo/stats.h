/* stats.h: the indicators of GET /v1/stats and `selo stats` (docs/stats.md).
 *
 * A follower reads the events past its cursor in seq order and keeps, in
 * the store, one fact row per notice and counters per (API key, template,
 * segment, tags) x acceptance day, with the delay samples (delivery to the
 * first human open, to the read confirmation) that give exact percentiles.
 * Each batch of events is one store transaction that also moves the cursor,
 * so a crash neither loses nor double-counts an event. A query sums the
 * rollups of the whole days in its range and the facts of the notices at its
 * edges. */
#ifndef SELO_STATS_H
#define SELO_STATS_H
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include "selo/err.h"
#include "selo/store.h"

/* The zone of "day": acceptance days, group_by=day, and date bounds. */
#define STATS_ZONE "America/Sao_Paulo"
#define STATS_BATCH 5000 /* events per follower transaction */

/* The follower's memory: its notices cache and dims. One per process that
 * counts (the thread of `selo serve`, or `selo stats` catching up). */
struct stats_follower;
int stats_follower_new(struct store *s, struct stats_follower **out, struct selo_err *err);
void stats_follower_free(struct stats_follower *f);
/* Counts up to max events past the cursor in one transaction; *n = events
 * looked at (0: caught up). A cursor moved by another process is not an
 * error: the cache is dropped and *n = 0 for this round. */
int stats_follow(struct stats_follower *f, size_t max, size_t *n, struct selo_err *err);
/* Follows until no event is left. */
int stats_catch_up(struct stats_follower *f, struct selo_err *err);

/* The thread of `selo serve`: follows every STATS_IDLE_MS when idle, at
 * once while behind. One per process (module state). */
int stats_start(struct store *s, struct selo_err *err);
void stats_stop(void);

struct stats_params {
	const char *from, *to;   /* RFC 3339 date or date-time; NULL: unbounded */
	const char *group_by;    /* template, segment, tag, day; NULL or "": totals only */
	const char *zone;        /* IANA zone of dates and days; NULL: STATS_ZONE */
	int64_t apikey_id;       /* < 0: every key's notices (the CLI) */
};
/* The statistics document (docs/stats.md); 400 for a bad parameter, 422 for
 * a range that ends before it starts. */
int stats_query(struct store *s, const struct stats_params *p, json_t **out,
		struct selo_err *err);

/* Writes the document as a table for people. */
void stats_print_table(const json_t *doc, FILE *out);

/* Nearest-rank percentile (the smallest sample with at least p% of the
 * samples at or below it), 1 <= p <= 100; reorders v. n > 0. */
int64_t stats_percentile(int64_t *v, size_t n, int p);

#endif
