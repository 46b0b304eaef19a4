/* connguard.c: a deadline per request and room for new clients on a
 * libmicrohttpd listener (see connguard.h, docs/tracking.md "Slow clients").
 *
 * Every connection libmicrohttpd reports started gets a record, kept in
 * its socket context until libmicrohttpd reports it closed, and on its
 * listener thread's list, oldest first. The record's clock is one atomic
 * time: set when the connection opens or an answer is done, cleared when
 * a request has arrived. That is all a request costs (two atomic stores,
 * no lock: `make bench` showed no difference); the lists, the counters and
 * every cut are under one mutex. The reaper passes over all records every
 * GUARD_TICK_MS (a few thousand pointer hops); an eviction runs on the
 * thread that accepted the newcomer and looks only at that thread's
 * records, whose clocks that same thread sets, so none changes meanwhile.
 *
 * Why shutdown(2) is safe from another thread: libmicrohttpd 0.9.75 calls
 * the CLOSED notification before it closes the socket (checked with strace
 * on every path: a normal close, a cut, MHD_stop_daemon), and the
 * notification removes the record under the mutex a cut holds. A record's
 * descriptor is therefore still this connection's while a cut can see it.
 *
 * Functions: connguard_new, connguard_free, connguard_notify,
 * connguard_received, connguard_answered, connguard_counts.
 * Errors: only connguard_new fails (no thread). Cuts are counted and logged
 * at most once every ten seconds, without addresses. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/connguard.h"
#include "selo/crypto.h"
#include "selo/diag.h"

#define GUARD_ADDR_BUCKETS 8192 /* open connections counted per hashed address */
#define GUARD_EVICT_SCAN 32     /* waiting connections weighed per eviction, oldest first */
#define GUARD_EVICT_VISITS 1024 /* connections looked at, at most, to find them */
#define GUARD_HEADROOM_MAX 256  /* slots kept free under the hard limit, per thread */
#define GUARD_TICK_MS 250       /* the reaper's pass; a cut comes at most this late */
#define GUARD_LOG_MS 10000      /* at most one line about cuts this often */
#define GUARD_NOT_WAITING 0     /* since_ms of a connection whose request is in */

/* One open connection, in its socket context from STARTED to CLOSED. */
struct guard_conn {
	struct guard_conn *prev, *next; /* its thread's connections, oldest first */
	int fd;
	int cut;          /* shut down; libmicrohttpd has not closed it yet */
	unsigned worker;  /* index of its listener thread */
	uint32_t bucket;  /* its address's counter in addr_open */
	/* When its request's clock started (guard_now_ms), or GUARD_NOT_WAITING.
	 * Written without the lock by the connection's own thread, read by the
	 * reaper and by evictions on that same thread. */
	_Atomic int64_t since_ms;
};

/* One listener thread: libmicrohttpd's connection limit is per thread. */
struct guard_worker {
	pthread_t thread;
	int known;
	struct guard_conn *oldest, *newest; /* every open connection, by when it opened */
	unsigned open, cutting;
};

struct connguard {
	pthread_mutex_t mu;
	pthread_cond_t wake;     /* CLOCK_MONOTONIC; ends the reaper's sleep at stop */
	pthread_t reaper;
	int stopping;
	int64_t timeout_ms;
	int64_t tick_ms;
	unsigned soft;           /* per thread: above it, a new connection evicts one */
	unsigned nworkers;
	struct guard_worker *workers;
	uint16_t *addr_open;     /* GUARD_ADDR_BUCKETS */
	uint64_t seed;           /* random, so nobody can aim addresses at a counter */
	unsigned open;
	unsigned long long timed_out, evicted;
	unsigned long long logged_timed_out, logged_evicted;
	int64_t log_last_ms;
	char name[32];
};

/* The guard's clock: monotonic, coarse (a few ms) and cheap, as it is read
 * once per request; never GUARD_NOT_WAITING. */
static int64_t guard_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
}

/* ---- the connection lists (mu held) */

static void guard_list_append(struct guard_worker *w, struct guard_conn *e)
{
	e->next = NULL;
	e->prev = w->newest;
	if (w->newest)
		w->newest->next = e;
	else
		w->oldest = e;
	w->newest = e;
}

static void guard_list_remove(struct guard_worker *w, struct guard_conn *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		w->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		w->newest = e->prev;
	e->prev = e->next = NULL;
}

/* ---- bookkeeping (mu held) */

/* The listener thread calling now: STARTED runs on the thread that accepted
 * the connection, which serves it until it closes. */
static unsigned guard_worker_index(struct connguard *g)
{
	pthread_t self = pthread_self();
	for (unsigned i = 0; i < g->nworkers; i++) {
		if (!g->workers[i].known) {
			g->workers[i].thread = self;
			g->workers[i].known = 1;
			return i;
		}
		if (pthread_equal(g->workers[i].thread, self))
			return i;
	}
	return 0; /* more threads than configured: share the first one's count */
}

/* Counts an IPv6 client by its /64, as one host holds a whole /64. */
static uint32_t guard_bucket(const struct connguard *g, const struct sockaddr *sa)
{
	uint8_t key[9] = {0};
	if (sa && sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
	}
	uint64_t h = 1469598103934665603ull ^ g->seed; /* FNV-1a, seeded */
	for (size_t i = 0; i < sizeof(key); i++) {
		h ^= key[i];
		h *= 1099511628211ull;
	}
	return (uint32_t)(h % GUARD_ADDR_BUCKETS);
}

/* 1 when e can be cut for its request: still open, still waiting for it. */
static int guard_cuttable(const struct guard_conn *e)
{
	return !e->cut && e->fd >= 0 && atomic_load(&e->since_ms) != GUARD_NOT_WAITING;
}

/* Ends e's connection: libmicrohttpd reads the end of the stream and closes
 * it (and reports it CLOSED, which frees e). */
static void guard_cut(struct connguard *g, struct guard_conn *e)
{
	shutdown(e->fd, SHUT_RDWR);
	e->cut = 1;
	g->workers[e->worker].cutting++;
}

/* Makes room on w for a new connection (not `except`): cuts, among its
 * GUARD_EVICT_SCAN oldest connections still waiting for their request, the
 * one whose address holds the most connections (the oldest of those). A
 * client with a connection or two thus is the last to lose one to a crowd
 * from a few addresses. Runs on w's own thread, so no connection of w
 * changes state meanwhile. */
static void guard_evict(struct connguard *g, struct guard_worker *w,
			const struct guard_conn *except)
{
	struct guard_conn *victim = NULL;
	size_t seen = 0, visits = 0;
	for (struct guard_conn *e = w->oldest;
	     e && seen < GUARD_EVICT_SCAN && visits < GUARD_EVICT_VISITS; e = e->next, visits++) {
		if (e == except || !guard_cuttable(e))
			continue;
		seen++;
		if (!victim || g->addr_open[e->bucket] > g->addr_open[victim->bucket])
			victim = e;
	}
	if (!victim)
		return; /* nothing waiting: libmicrohttpd's own limit still holds */
	guard_cut(g, victim);
	g->evicted++;
}

/* ---- libmicrohttpd's callbacks */

static void guard_started(struct connguard *g, struct MHD_Connection *c, void **ctx)
{
	struct guard_conn *e = xcalloc(1, sizeof(*e));
	const union MHD_ConnectionInfo *fd =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *addr =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	e->fd = fd ? fd->connect_fd : -1;
	atomic_init(&e->since_ms, guard_now_ms());
	pthread_mutex_lock(&g->mu);
	e->worker = guard_worker_index(g);
	e->bucket = guard_bucket(g, addr ? addr->client_addr : NULL);
	if (g->addr_open[e->bucket] < UINT16_MAX)
		g->addr_open[e->bucket]++;
	struct guard_worker *w = &g->workers[e->worker];
	w->open++;
	g->open++;
	guard_list_append(w, e);
	if (w->open - w->cutting > g->soft)
		guard_evict(g, w, e);
	pthread_mutex_unlock(&g->mu);
	*ctx = e;
}

static void guard_closed(struct connguard *g, void **ctx)
{
	struct guard_conn *e = *ctx;
	if (!e)
		return;
	pthread_mutex_lock(&g->mu);
	struct guard_worker *w = &g->workers[e->worker];
	guard_list_remove(w, e);
	if (e->cut)
		w->cutting--;
	w->open--;
	g->open--;
	if (g->addr_open[e->bucket] > 0)
		g->addr_open[e->bucket]--;
	pthread_mutex_unlock(&g->mu);
	*ctx = NULL;
	free(e);
}

void connguard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		      enum MHD_ConnectionNotificationCode code)
{
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		guard_started(cls, c, socket_context);
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		guard_closed(cls, socket_context);
}

static struct guard_conn *guard_conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* These two run once per request: one atomic store each, no lock. */
void connguard_received(struct connguard *g, struct MHD_Connection *c)
{
	struct guard_conn *e = guard_conn_of(c);
	if (g && e)
		atomic_store(&e->since_ms, GUARD_NOT_WAITING);
}

void connguard_answered(struct connguard *g, struct MHD_Connection *c)
{
	struct guard_conn *e = guard_conn_of(c);
	if (g && e)
		atomic_store(&e->since_ms, guard_now_ms());
}

void connguard_counts(struct connguard *g, struct connguard_counts *out)
{
	pthread_mutex_lock(&g->mu);
	out->open = g->open;
	out->timed_out = g->timed_out;
	out->evicted = g->evicted;
	pthread_mutex_unlock(&g->mu);
}

/* ---- the reaper */

/* Cuts every connection whose request is late: a pass over all of them
 * (a few thousand pointer hops, every GUARD_TICK_MS). mu held. A request
 * that arrives during the pass may be cut with its connection: it came at
 * its deadline. */
static void guard_reap(struct connguard *g, int64_t now)
{
	for (unsigned i = 0; i < g->nworkers; i++) {
		for (struct guard_conn *e = g->workers[i].oldest; e; e = e->next) {
			if (!guard_cuttable(e) || now - atomic_load(&e->since_ms) < g->timeout_ms)
				continue;
			guard_cut(g, e);
			g->timed_out++;
		}
	}
}

/* One line at most every GUARD_LOG_MS while connections are being cut, so
 * an operator sees an attack without a line per connection. mu held; the
 * line is written after unlocking (into line, empty when none is due). */
static void guard_log_due(struct connguard *g, int64_t now, char *line, size_t n)
{
	line[0] = '\0';
	unsigned long long late = g->timed_out - g->logged_timed_out;
	unsigned long long evicted = g->evicted - g->logged_evicted;
	if ((!late && !evicted) || (g->log_last_ms && now - g->log_last_ms < GUARD_LOG_MS))
		return;
	snprintf(line, n, "%s: cut %llu connection(s) since the last line: %llu whose request was "
		 "not in after %g s, %llu still waiting for theirs to make room for new clients; "
		 "%u open", g->name, late + evicted, late, (double)g->timeout_ms / 1000.0, evicted,
		 g->open);
	g->logged_timed_out = g->timed_out;
	g->logged_evicted = g->evicted;
	g->log_last_ms = now;
}

static void guard_sleep(struct connguard *g, int64_t ms)
{
	struct timespec ts = clock_deadline(CLOCK_MONOTONIC, ms);
	pthread_cond_timedwait(&g->wake, &g->mu, &ts);
}

static void *guard_reaper_main(void *arg)
{
	struct connguard *g = arg;
	char line[256];
	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		int64_t now = guard_now_ms();
		guard_reap(g, now);
		guard_log_due(g, now, line, sizeof(line));
		if (line[0]) {
			pthread_mutex_unlock(&g->mu);
			diag_warn("%s", line);
			pthread_mutex_lock(&g->mu);
		}
		if (!g->stopping)
			guard_sleep(g, g->tick_ms);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* ---- lifetime */

/* The soft limit per thread: libmicrohttpd's share for the thread, less a
 * headroom for the connections accepted before the evicted ones are closed
 * (it accepts up to ten per turn of its loop and closes them on the next). */
static unsigned guard_soft_limit(const struct connguard_config *cfg)
{
	unsigned threads = cfg->threads > 1 ? cfg->threads : 1;
	unsigned hard = cfg->max_connections / threads;
	unsigned headroom = hard / 16;
	if (headroom < 2)
		headroom = 2;
	if (headroom > GUARD_HEADROOM_MAX)
		headroom = GUARD_HEADROOM_MAX;
	return hard > headroom ? hard - headroom : 1;
}

int connguard_new(const struct connguard_config *cfg, struct connguard **out,
		  struct selo_err *err)
{
	struct connguard *g = xcalloc(1, sizeof(*g));
	g->nworkers = cfg->threads > 1 ? cfg->threads : 1;
	g->workers = xcalloc(g->nworkers, sizeof(*g->workers));
	g->addr_open = xcalloc(GUARD_ADDR_BUCKETS, sizeof(*g->addr_open));
	g->timeout_ms = cfg->head_timeout_ms;
	g->tick_ms = cfg->head_timeout_ms / 4 < GUARD_TICK_MS ? cfg->head_timeout_ms / 4 : GUARD_TICK_MS;
	if (g->tick_ms < 10)
		g->tick_ms = 10;
	g->soft = guard_soft_limit(cfg);
	random_bytes((uint8_t *)&g->seed, sizeof(g->seed));
	snprintf(g->name, sizeof(g->name), "%s", cfg->name ? cfg->name : "listener");
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&g->reaper, NULL, guard_reaper_main, g) != 0) {
		g->stopping = 1; /* no reaper to join */
		connguard_free(g);
		return err_set(err, 500, "internal", "%s: cannot start the thread that ends "
			       "slow requests", cfg->name ? cfg->name : "listener");
	}
	*out = g;
	return 0;
}

void connguard_free(struct connguard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->mu);
	int running = !g->stopping;
	g->stopping = 1;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->mu);
	if (running)
		pthread_join(g->reaper, NULL);
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->mu);
	free(g->addr_open);
	free(g->workers);
	free(g);
}
