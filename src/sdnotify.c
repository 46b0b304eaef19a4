/* sdnotify.c: the service manager's notification protocol (sdnotify.h) over
 * libsystemd's sd_notify(3). libsystemd does the protocol's details (the
 * abstract-namespace socket names, the credentials systemd checks with
 * NotifyAccess=main); this file only chooses the messages. unset_environment
 * stays 0: the watchdog reads WATCHDOG_USEC again, and `selo serve` starts
 * no children that could misuse NOTIFY_SOCKET. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include "selo/diag.h"
#include "selo/sdnotify.h"

/* A refused send (a socket gone, a full queue) is said once: repeating it
 * every watchdog tick would only fill the log. */
static atomic_int sdnotify_failed_said;

static void sdnotify_send(const char *msg)
{
	int r = sd_notify(0, msg);
	if (r < 0 && !atomic_exchange(&sdnotify_failed_said, 1))
		diag_debug("sd_notify failed (%s); further failures are not logged", strerror(-r));
}

/* STATUS= is one line: a newline would start another assignment. */
static void sdnotify_one_line(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
}

static void sdnotify_state(const char *state, const char *status)
{
	char msg[600];
	if (status)
		snprintf(msg, sizeof(msg), "%s\nSTATUS=%.500s", state, status);
	else
		snprintf(msg, sizeof(msg), "%s", state);
	if (status)
		sdnotify_one_line(msg + strlen(state) + 1);
	sdnotify_send(msg);
}

void sdnotify_ready(const char *status)
{
	sdnotify_state("READY=1", status);
}

void sdnotify_stopping(const char *status)
{
	sdnotify_state("STOPPING=1", status);
}

void sdnotify_status(const char *fmt, ...)
{
	char msg[600] = "STATUS=";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
	va_end(ap);
	sdnotify_one_line(msg);
	sdnotify_send(msg);
}

int64_t sdnotify_watchdog_interval_ms(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	int64_t ms = (int64_t)(usec / 2000);
	return ms > 0 ? ms : 1;
}

void sdnotify_watchdog(void)
{
	sdnotify_send("WATCHDOG=1");
}
