/* clock.h: wall-clock time in milliseconds and RFC 3339 formatting (UTC,
 * millisecond precision, e.g. "2026-11-23T18:00:00.123Z"), and the RFC 5322
 * Date header form. */
#ifndef SELO_CLOCK_H
#define SELO_CLOCK_H
#include <stdint.h>
#include <time.h>

int64_t clock_now_ms(void);      /* CLOCK_REALTIME in ms since the epoch */
int64_t clock_mono_ms(void);     /* CLOCK_MONOTONIC in ms, for timeouts */
/* out has at least 25 bytes. */
void clock_rfc3339(int64_t ms, char out[32]);
/* Parses the exact form clock_rfc3339 writes (and without ".mmm", or with a
 * numeric offset); returns 0 and sets *ms, or -1. */
int clock_parse_rfc3339(const char *s, int64_t *ms);
/* The moment ms milliseconds from now on clock (CLOCK_REALTIME for a
 * condition variable with default attributes, CLOCK_MONOTONIC for one set
 * to it), as pthread_cond_timedwait wants it. */
struct timespec clock_deadline(clockid_t clock, int64_t ms);
/* RFC 5322 date-time in UTC: "Mon, 23 Nov 2026 18:00:00 +0000". */
void clock_rfc5322(int64_t ms, char out[40]);

#endif
