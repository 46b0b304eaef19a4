/* connguard.h: keeps a libmicrohttpd listener answering new clients while
 * others hold connections open by trickling their requests (slowloris).
 *
 * libmicrohttpd has an idle timeout, which one byte every few seconds
 * resets, and a hard connection limit, beyond which new clients wait in
 * the kernel's backlog. The guard registers every connection it is told of
 * (MHD_OPTION_NOTIFY_CONNECTION) and runs a clock per request: it starts
 * when the connection opens or its previous answer is done, and stops when
 * the request has arrived in full. Then:
 *   - a request that has not arrived within head_timeout_ms is cut;
 *   - above a soft limit, a little under libmicrohttpd's hard one (per
 *     listener thread: libmicrohttpd splits its limit across them), each
 *     new connection cuts one that is still waiting for its request, from
 *     the address holding the most connections, the oldest first. So the
 *     hard limit is not reached and a newcomer always finds a slot.
 * Cutting is shutdown(2): libmicrohttpd sees the stream end and closes the
 * connection itself. It happens under the registry's lock, and
 * libmicrohttpd reports a connection closed before it closes the socket,
 * so a cut never reaches a descriptor reused by another connection.
 * docs/tracking.md ("Slow clients"). */
#ifndef SELO_CONNGUARD_H
#define SELO_CONNGUARD_H
#include <microhttpd.h>
#include "selo/err.h"

struct connguard;

struct connguard_config {
	int head_timeout_ms;      /* a request must arrive within this */
	unsigned max_connections; /* the listener's MHD_OPTION_CONNECTION_LIMIT */
	unsigned threads;         /* its MHD_OPTION_THREAD_POOL_SIZE (0 or 1: one thread) */
	const char *name;         /* for log lines, e.g. "tracker" */
};

/* Makes a guard and starts its reaper thread (it cuts late requests).
 * Pass connguard_notify with the guard to MHD_OPTION_NOTIFY_CONNECTION. */
int connguard_new(const struct connguard_config *cfg, struct connguard **out,
		  struct selo_err *err);
/* Stops the reaper and frees; call after MHD_stop_daemon (which reports
 * every connection closed). NULL is fine. */
void connguard_free(struct connguard *g);

/* The MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void connguard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		      enum MHD_ConnectionNotificationCode code);
/* From the access handler: c's request has arrived in full (its head, and
 * its body if it has one); its clock stops. */
void connguard_received(struct connguard *g, struct MHD_Connection *c);
/* From MHD_OPTION_NOTIFY_COMPLETED: c's answer is done; the clock of its
 * next request (keep-alive) starts now. */
void connguard_answered(struct connguard *g, struct MHD_Connection *c);

struct connguard_counts {
	unsigned open;                 /* connections registered now */
	unsigned long long timed_out;  /* cut for a late request, since the start */
	unsigned long long evicted;    /* cut to make room, since the start */
};
void connguard_counts(struct connguard *g, struct connguard_counts *out);

#endif
