/* test_connguard.c: the request deadline and the eviction of connguard.h,
 * on a small libmicrohttpd listener like the tracker's (epoll, one thread,
 * the same callbacks) on a free loopback port. Clients are plain sockets
 * bound to 127.0.0.x, so each address is another client: a request head
 * that never ends is cut after the deadline, a finished one is answered
 * and its keep-alive connection gets a new clock, and above the soft limit
 * a new connection evicts one from the address holding the most, never the
 * client with a single connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "selo/clock.h"
#include "selo/connguard.h"
#include "t.h"

struct srv {
	struct MHD_Daemon *d;
	struct connguard *g;
	int port;
};

static const char TAG;

static enum MHD_Result srv_access(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)url, (void)method, (void)version, (void)upload, (void)upload_size;
	struct srv *s = cls;
	if (!*con_cls) {
		*con_cls = (void *)&TAG;
		return MHD_YES;
	}
	connguard_received(s->g, c);
	struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)"ok",
								 MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	struct srv *s = cls;
	*con_cls = NULL;
	connguard_answered(s->g, c);
}

static int srv_start(struct srv *s, int timeout_ms, unsigned limit)
{
	struct connguard_config gc = {.head_timeout_ms = timeout_ms, .max_connections = limit,
				      .threads = 1, .name = "test"};
	struct selo_err err;
	if (connguard_new(&gc, &s->g, &err) != 0)
		return -1;
	s->d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, 0, NULL, NULL,
				srv_access, s, MHD_OPTION_CONNECTION_LIMIT, limit,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
				MHD_OPTION_NOTIFY_CONNECTION, connguard_notify, s->g, MHD_OPTION_END);
	if (!s->d)
		return -1;
	s->port = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT)->port;
	return 0;
}

static void srv_stop(struct srv *s)
{
	if (s->d)
		MHD_stop_daemon(s->d);
	connguard_free(s->g);
}

/* A connection from 127.0.0.<host> that has sent `head`. */
static int client(const struct srv *s, int host, const char *head)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)host);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)s->port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    write(fd, head, strlen(head)) != (ssize_t)strlen(head)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Waits up to ms for fd to end; returns the ms it took, or -1 if it did not.
 * Bytes of an answer are read and skipped (into got, if given). */
static int64_t ends_within(int fd, int ms, char *got, size_t n)
{
	int64_t t0 = clock_mono_ms();
	size_t have = 0;
	for (;;) {
		int64_t left = t0 + ms - clock_mono_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		char buf[512];
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			return clock_mono_ms() - t0;
		if (got && have + 1 < n) {
			size_t k = (size_t)r < n - 1 - have ? (size_t)r : n - 1 - have;
			memcpy(got + have, buf, k);
			have += k;
			got[have] = '\0';
		}
	}
}

/* An answer arrives on fd within ms (the connection may stay open). */
static int answered_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char buf[512];
	if (poll(&p, 1, ms) <= 0)
		return 0;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	return strstr(buf, "200 OK") != NULL;
}

TEST(a_head_that_never_ends_is_cut)
{
	struct srv s = {0};
	CHECK(srv_start(&s, 400, 64) == 0);
	int slow = client(&s, 2, "GET /o/abc");
	CHECK(slow >= 0);
	int64_t t0 = clock_mono_ms();
	/* trickle: one byte every 100 ms, which an idle timeout would forgive */
	int cut = 0;
	for (int i = 0; i < 20 && !cut; i++) {
		cut = ends_within(slow, 100, NULL, 0) >= 0;
		if (!cut && write(slow, "x", 1) != 1)
			cut = 1;
	}
	int64_t took = clock_mono_ms() - t0;
	CHECK(cut);
	CHECK(took >= 350 && took < 1800);
	struct connguard_counts n;
	connguard_counts(s.g, &n);
	CHECK(n.timed_out == 1 && n.evicted == 0);
	close(slow);
	srv_stop(&s);
}

TEST(a_finished_request_is_answered_and_keep_alive_gets_a_new_clock)
{
	struct srv s = {0};
	CHECK(srv_start(&s, 400, 64) == 0);
	int fd = client(&s, 1, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(fd >= 0);
	CHECK(answered_within(fd, 2000));
	usleep(300 * 1000); /* most of a deadline, idle; the next request still fits */
	const char *again = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(write(fd, again, strlen(again)) == (ssize_t)strlen(again));
	CHECK(answered_within(fd, 2000));
	/* then idle: the next request's clock runs out */
	CHECK(ends_within(fd, 2000, NULL, 0) >= 300);
	close(fd);
	srv_stop(&s);
}

TEST(above_the_soft_limit_the_crowd_loses_connections_not_the_single_client)
{
	struct srv s = {0};
	/* 32 slots, soft limit 30 (a headroom of 2); a deadline that never fires here */
	CHECK(srv_start(&s, 60000, 32) == 0);
	int crowd[40], single;
	for (int i = 0; i < 29; i++)
		CHECK((crowd[i] = client(&s, 2, "GET /o/")) >= 0);
	CHECK((single = client(&s, 3, "GET /o/")) >= 0); /* older than the next ones */
	usleep(100 * 1000);
	for (int i = 29; i < 40; i++) /* each of these evicts one */
		CHECK((crowd[i] = client(&s, 2, "GET /o/")) >= 0);
	usleep(300 * 1000);
	int fd = client(&s, 1, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(fd >= 0 && answered_within(fd, 2000)); /* a newcomer is served */
	CHECK(ends_within(single, 200, NULL, 0) < 0); /* the single client still holds its one */
	int ended = 0;
	for (int i = 0; i < 40; i++)
		ended += ends_within(crowd[i], 50, NULL, 0) >= 0;
	CHECK(ended >= 10 && ended <= 12);
	struct connguard_counts n;
	connguard_counts(s.g, &n);
	CHECK(n.evicted >= 10 && n.timed_out == 0);
	for (int i = 0; i < 40; i++)
		close(crowd[i]);
	close(single);
	close(fd);
	srv_stop(&s);
}
