/* sdnotify.h: tells systemd (or whoever set NOTIFY_SOCKET) how `selo serve`
 * is doing, through libsystemd's sd_notify: READY=1 once both listeners are
 * bound, STOPPING=1 when the first stop signal arrives, WATCHDOG=1 while the
 * service proves it is alive, and STATUS= lines a person reads in
 * `systemctl status selo`. Without NOTIFY_SOCKET every call does nothing,
 * so `selo serve` from a shell behaves as before. Failures to send are not
 * errors of the service: they are logged once, at debug. */
#ifndef SELO_SDNOTIFY_H
#define SELO_SDNOTIFY_H
#include <stdint.h>

/* READY=1 with a STATUS= line (status may be NULL). */
void sdnotify_ready(const char *status);

/* STOPPING=1 with a STATUS= line (status may be NULL). */
void sdnotify_stopping(const char *status);

/* STATUS=<formatted line>; newlines are replaced by spaces. */
void sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The interval at which WATCHDOG=1 must be sent, in ms: half of the
 * WATCHDOG_USEC systemd asked for (WatchdogSec=), so that one late ping is
 * not yet a restart; 0 when no watchdog is set for this process (no
 * WATCHDOG_USEC, or WATCHDOG_PID names another process). */
int64_t sdnotify_watchdog_interval_ms(void);

/* WATCHDOG=1: call it only from a place that has just proved the service
 * alive (serve.c's main loop, after the store answered). */
void sdnotify_watchdog(void);

#endif
