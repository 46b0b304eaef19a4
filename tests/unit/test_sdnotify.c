/* test_sdnotify.c: the messages sdnotify.c sends to a NOTIFY_SOCKET this
 * test binds (an AF_UNIX datagram socket in a temp dir), the watchdog
 * interval read from WATCHDOG_USEC/WATCHDOG_PID, and silence without a
 * socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include "selo/sdnotify.h"
#include "t.h"

struct listener {
	char dir[32], path[64];
	int fd;
};

static int listener_open(struct listener *l)
{
	snprintf(l->dir, sizeof(l->dir), "/tmp/selo-sdn-XXXXXX");
	if (!mkdtemp(l->dir))
		return -1;
	snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->path);
	l->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct timeval tv = {1, 0};
	setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	setenv("NOTIFY_SOCKET", l->path, 1);
	return 0;
}

/* The next datagram, NUL-terminated, or "" after a second. */
static const char *listener_recv(struct listener *l, char *buf, size_t n)
{
	ssize_t r = recv(l->fd, buf, n - 1, 0);
	buf[r > 0 ? r : 0] = '\0';
	return buf;
}

static void listener_close(struct listener *l)
{
	close(l->fd);
	unlink(l->path);
	rmdir(l->dir);
	unsetenv("NOTIFY_SOCKET");
}

TEST(sdnotify_messages)
{
	struct listener l;
	char buf[1024];
	CHECK(listener_open(&l) == 0);
	sdnotify_ready("serving: api a, tracker t");
	CHECK_STR(listener_recv(&l, buf, sizeof(buf)), "READY=1\nSTATUS=serving: api a, tracker t");
	sdnotify_status("two\nlines %d", 2);
	CHECK_STR(listener_recv(&l, buf, sizeof(buf)), "STATUS=two lines 2");
	sdnotify_stopping(NULL);
	CHECK_STR(listener_recv(&l, buf, sizeof(buf)), "STOPPING=1");
	sdnotify_stopping("bye\n");
	CHECK_STR(listener_recv(&l, buf, sizeof(buf)), "STOPPING=1\nSTATUS=bye ");
	sdnotify_watchdog();
	CHECK_STR(listener_recv(&l, buf, sizeof(buf)), "WATCHDOG=1");
	listener_close(&l);
}

TEST(sdnotify_watchdog_interval)
{
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	CHECK(sdnotify_watchdog_interval_ms() == 0);
	setenv("WATCHDOG_USEC", "30000000", 1); /* WatchdogSec=30s */
	CHECK(sdnotify_watchdog_interval_ms() == 15000);
	setenv("WATCHDOG_PID", pid, 1);
	CHECK(sdnotify_watchdog_interval_ms() == 15000);
	setenv("WATCHDOG_PID", "1", 1); /* another process's watchdog */
	CHECK(sdnotify_watchdog_interval_ms() == 0);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

TEST(sdnotify_silent_without_socket)
{
	unsetenv("NOTIFY_SOCKET");
	/* Nothing to check but that nothing breaks: no socket, no message. */
	sdnotify_ready("x");
	sdnotify_watchdog();
	sdnotify_stopping(NULL);
	CHECK(1);
}
