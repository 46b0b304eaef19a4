/* serve.c: `selo serve --data DIR`: takes the data directory's lock (one
 * `selo serve` per database), opens everything, recovers notices a crash
 * left in flight, starts the ledger, the sender workers, the API and the
 * tracker, and runs until SIGTERM or SIGINT. Before any of that it checks
 * the database file's pages (PRAGMA quick_check) and refuses to start on a
 * damaged one (docs/operations.md, "A damaged store").
 *
 * Stopping (docs/operations.md, "Stopping"): the first signal stops taking
 * work (the API listener closes, open connections get 503, no worker claims
 * another batch), lets the batches in flight finish and record their results
 * for at most sender.stop_timeout seconds, flushes the tracker and the
 * ledger and exits 0. A second signal exits at once. Neither loses anything
 * acknowledged: it is committed before it is acknowledged, and notices left
 * in `sending` are sent again, same bytes, at the next start.
 *
 * Under systemd (Type=notify, docs/install.md) it says READY=1 only once
 * both listeners are bound, STOPPING=1 at the first signal, and WATCHDOG=1
 * from the main loop after the store answered, when WatchdogSec= is set. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "selo/api.h"
#include "selo/baseurl.h"
#include "selo/clock.h"
#include "selo/compose.h"
#include "selo/diag.h"
#include "selo/ledger.h"
#include "selo/sdnotify.h"
#include "selo/tsa.h"
#include "selo/selo.h"
#include "selo/sender.h"
#include "selo/stats.h"
#include "selo/tracker.h"
#include "selo/webhook.h"

static const char HELP[] =
	"usage: selo serve --data DIR\n"
	"\n"
	"Runs the API (api.listen), the public tracker (track.listen), the sender\n"
	"workers and the ledger (the Merkle log's sequencer) until SIGTERM or\n"
	"SIGINT. The first signal stops gracefully (up to sender.stop_timeout\n"
	"seconds); a second one exits at once. Configuration: DIR/selo.conf\n"
	"(docs/operations.md). At start it checks DIR/selo.db with SQLite's\n"
	"quick_check and refuses a damaged file (`selo store check` is the full check).\n"
	"With store.backend = postgres (docs/scale.md) it connects to store.url\n"
	"instead, and refuses to start (exit 2) when the database cannot be reached\n"
	"or records other keys than this node's (log key, token key).\n";

static int stamp_signature(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
			   struct selo_err *err)
{
	int64_t t;
	return tsa_timestamp(arg, digest, der, len, &t, err);
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* Recovery moves every `sending` notice back to the queue, which is only
 * right when no other process is sending them: a second `selo serve` on the
 * same database would resend the first one's notices while it sends them.
 * The lock is the file DIR/serve.lock (flock, released when the process
 * ends, however it ends); it holds the owner's pid for the message. */
static int lock_data_dir(const struct selo_config *cfg, struct selo_err *err)
{
	char path[1100];
	config_path(cfg, "serve.lock", path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, 500, "lock", "cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		return err_set(err, 409, "locked", "another selo serve (pid %s) is running on %s",
			       pid[0] ? pid : "?", cfg->data_dir);
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		diag_warn("cannot write the pid into %s: %s", path, strerror(errno));
	return fd;
}

/* Each tracker connection is a descriptor, and a shell or systemd often
 * starts us with a soft limit of 1024: raise it to the hard limit when it
 * is lower than track.max_connections needs (the tracker warns, and takes
 * fewer connections, when even the hard limit is too low). */
static void raise_open_files(const struct selo_config *cfg)
{
	struct rlimit rl;
	unsigned long want = tracker_fds_wanted(cfg);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= want || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		diag_warn("cannot raise the open-file limit from %llu: %s", (unsigned long long)was,
			  strerror(errno));
		return;
	}
	diag_info("open-file limit raised from %llu to %llu: track.max_connections = %d wants "
		  "about %lu", (unsigned long long)was, (unsigned long long)rl.rlim_cur,
		  cfg->track_max_connections, want);
}

struct startup_findings {
	const char *db;
	int n;
};

static void startup_finding(void *arg, const char *line)
{
	struct startup_findings *f = arg;
	if (f->n++ == 0)
		fprintf(stderr, "selo serve: refusing to start: the database file %s is damaged; "
			"PRAGMA quick_check found:\n", f->db);
	fprintf(stderr, "    %s\n", line);
}

/* A damaged file must not be served: it answers with altered bytes or
 * "malformed" errors, request after request. quick_check reads every page
 * once (about 0.1 s for a 290 MB store of 20,000 notices, docs/store.md);
 * index contents against their tables are left to the full check, which
 * costs more and finds what a lookup would trip over only later. 0 sound
 * (or no file yet: store_open makes it), else refused with the reasons. */
static int startup_check(const char *data_dir)
{
	char db[1100];
	snprintf(db, sizeof(db), "%s/selo.db", data_dir);
	struct stat st;
	if (stat(db, &st) != 0)
		return 0;
	struct selo_err err;
	err_clear(&err);
	struct startup_findings f = {db, 0};
	int64_t t0 = clock_mono_ms();
	int r = store_check_file(db, 0, 20, startup_finding, &f, &err);
	if (r == 0) {
		diag_info("store: quick_check of %s (%lld MB) found every page sound in %lld ms", db,
			  (long long)(st.st_size >> 20), (long long)(clock_mono_ms() - t0));
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "selo serve: cannot check the database file: %s\n", err.msg);
		return -1;
	}
	fprintf(stderr, "What to do: keep this file aside for inspection and restore %s from the "
		"last backup (docs/operations.md, \"A damaged store\"); `selo store check --data %s` "
		"runs the full check and names the notices whose evidence is damaged.\n",
		db, data_dir);
	return -1;
}

/* Opens and starts everything; 0 when running, else a message on stderr. */
static int serve_start(struct selo *app)
{
	struct selo_err err;
	err_clear(&err);
	raise_open_files(&app->cfg);
	if (composer_new(&app->cfg, &app->composer, &err) != 0 ||
	    ledger_open(app, &app->ledger, &err) != 0 ||
	    webhooks_open(app, &app->webhooks, &err) != 0)
		goto fail;
	/* Every S/MIME signature carries an RFC 3161 timestamp from the same TSA. */
	composer_set_tsa(app->composer, stamp_signature, ledger_tsa(app->ledger));
	int n = store_recover_inflight(app->store, &err);
	if (n < 0)
		goto fail;
	if (n > 0)
		diag_warn("%d notice(s) were in flight at the last stop; queued again, to be sent "
			  "with their stored bytes", n);
	if (ledger_start(app->ledger, &err) != 0 || webhooks_start(app->webhooks, &err) != 0 ||
	    stats_start(app->store, &err) != 0 ||
	    sender_start(app, &app->sender, &err) != 0 ||
	    api_start(app, &app->api, &err) != 0 || tracker_start(app, &app->tracker, &err) != 0)
		goto fail;
	diag_info("listening: api %s, tracker %s; transport %s; %d sender worker(s)",
		  app->cfg.api_listen, app->cfg.track_listen,
		  app->cfg.smtp_mode == SMTP_RELAY ? "relay" : app->cfg.smtp_mode == SMTP_MX ? "mx"
											 : "maildir",
		  app->cfg.sender_workers);
	baseurl_warn(&app->cfg); /* last, so that it is what a person starting us sees */
	/* Both MHD daemons have bound and listen: a client may connect now. */
	char status[600];
	snprintf(status, sizeof(status), "serving: api %.200s, tracker %.200s", app->cfg.api_listen,
		 app->cfg.track_listen);
	sdnotify_ready(status);
	return 0;
fail:
	sdnotify_status("failed to start: %s", err.msg);
	fprintf(stderr, "selo serve: %s\n", err.msg);
	return -1;
}

/* After the first stop signal, the next one ends the process here. */
static void *second_signal(void *arg)
{
	(void)arg;
	sigset_t set;
	stop_signals(&set);
	int sig = 0;
	if (sigwait(&set, &sig) != 0)
		return NULL;
	diag_warn("signal %d again: exiting now; notices in flight stay `sending` and are sent "
		  "again at the next start", sig);
	_exit(128 + sig);
}

/* Stops taking work, then waits for what is in flight, up to the bound.
 * Returns only when every worker has exited; otherwise ends the process. */
static void serve_stop(struct selo *app, int sig)
{
	int timeout_s = app->cfg.sender_stop_timeout_s;
	int64_t deadline = clock_mono_ms() + (int64_t)timeout_s * 1000;
	sender_stop_claiming(app->sender);
	int workers = 0;
	size_t held = sender_inflight(app->sender, &workers);
	sdnotify_stopping("stopping: finishing the notices in flight");
	diag_info("signal %d: stopping; the API refuses new requests and no more notices are "
		  "claimed; waiting up to %d s (sender.stop_timeout) for %d worker(s) to send %zu "
		  "notice(s) in flight and record their results; a second signal exits at once",
		  sig, timeout_s, workers, held);
	api_drain(app->api, deadline);
	api_stop(app->api);
	app->api = NULL;
	tracker_stop(app->tracker); /* records the hits still queued */
	app->tracker = NULL;
	if (sender_wait(app->sender, deadline) > 0) {
		held = sender_inflight(app->sender, &workers);
		diag_warn("after %d s, %d worker(s) still hold %zu notice(s) (an SMTP session or a "
			  "timestamp that has not ended, or results the store cannot write: the log "
			  "names those); they stay `sending` and are sent again, with the same bytes "
			  "if sealed, at the next start", timeout_s, workers, held);
		ledger_stop(app->ledger); /* a last round integrates what was recorded */
		diag_info("stopped");
		/* The stuck workers still use the store and the composer: nothing can
		 * be freed under them, and every write they made is committed. */
		_exit(EXIT_OK);
	}
	sender_stop(app->sender);
	app->sender = NULL;
	diag_info("sender workers finished; every notice they sent has its result recorded (one "
		  "whose seal the store could not take was not sent and is sent at the next start)");
}

/* One watchdog tick: the main thread runs, and a query through the store's
 * reader pool came back (store_ping, as /healthz does). A wedged store or a
 * main loop that no longer turns sends no WATCHDOG=1, and systemd restarts
 * the service. A store that answers with an error (a damaged file, say) is
 * not a hang: a restart would not mend it, so it is said in STATUS= and the
 * log, and the ping still goes. */
static void serve_alive(struct selo *app)
{
	static struct diag_limit failing = DIAG_LIMIT_INIT;
	struct selo_err err;
	err_clear(&err);
	if (store_ping(app->store, &err) != 0) {
		diag_warn_limited(&failing, "watchdog: the store answers with an error: %s", err.msg);
		sdnotify_status("serving, but the store answers with an error: %s", err.msg);
	} else if (diag_ended(&failing, "watchdog: the store answers again")) {
		sdnotify_status("serving: api %s, tracker %s", app->cfg.api_listen,
				app->cfg.track_listen);
	}
	sdnotify_watchdog();
}

/* Renews this node's claims when due (store_claims_renew: a store several
 * nodes share); returns when to renew next (monotonic ms), or -1. */
static int64_t serve_renew(struct selo *app)
{
	static struct diag_limit failing = DIAG_LIMIT_INIT;
	struct selo_err err;
	err_clear(&err);
	int64_t next = -1;
	if (store_claims_renew(app->store, &next, &err) != 0)
		diag_warn_limited(&failing, "cannot renew this node's claims (they lapse after "
				  "store.lease): %s", err.msg);
	else
		diag_ended(&failing, "this node's claims are renewed again");
	return next < 0 ? -1 : clock_mono_ms() + next;
}

/* Waits for a stop signal and returns it. Meanwhile: with a watchdog it
 * wakes every half interval (sdnotify_watchdog_interval_ms) to prove the
 * service alive; on a store several nodes share it renews this node's
 * claims as often as the store asks. */
static int serve_wait(struct selo *app)
{
	sigset_t set;
	stop_signals(&set);
	int64_t every = sdnotify_watchdog_interval_ms();
	if (every > 0)
		diag_info("watchdog: WATCHDOG=1 every %lld ms while the store answers",
			  (long long)every);
	int64_t now = clock_mono_ms(), alive_at = every > 0 ? now + every : -1;
	int64_t renew_at = serve_renew(app);
	for (;;) {
		int sig = 0;
		if (alive_at < 0 && renew_at < 0) {
			if (sigwait(&set, &sig) == 0)
				return sig;
			continue;
		}
		int64_t wake = alive_at < 0 ? renew_at : renew_at < 0 ? alive_at
				 : alive_at < renew_at ? alive_at : renew_at;
		int64_t wait = wake - clock_mono_ms();
		if (wait < 1)
			wait = 1;
		struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
		sig = sigtimedwait(&set, NULL, &ts);
		if (sig > 0)
			return sig;
		now = clock_mono_ms(); /* EAGAIN: a wake-up came; EINTR: as good a time */
		if (alive_at >= 0 && now >= alive_at) {
			serve_alive(app);
			alive_at = now + every;
		}
		if (renew_at >= 0 && now >= renew_at)
			renew_at = serve_renew(app);
	}
}

static int serve_run(struct selo *app)
{
	if (serve_start(app) != 0)
		return EXIT_USAGE;
	int sig = serve_wait(app);
	pthread_t watcher;
	int watching = pthread_create(&watcher, NULL, second_signal, NULL) == 0;
	serve_stop(app, sig);
	webhooks_stop(app->webhooks); /* deliveries in flight end (webhooks.timeout_ms at most) */
	ledger_close(app->ledger); /* its last round integrates what the senders recorded */
	app->ledger = NULL;
	if (watching) {
		pthread_cancel(watcher);
		pthread_join(watcher, NULL);
	}
	return EXIT_OK;
}

int cmd_serve(int argc, char **argv)
{
	struct cli_opt opts[] = {{"data", 1, NULL}, {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 0, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (!cli_get(opts, "data")) {
		fprintf(stderr, "selo serve: --data DIR is required\n%s", HELP);
		return EXIT_USAGE;
	}
	/* Block the stop signals in every thread; the main thread waits for them. */
	sigset_t set;
	stop_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	json_object_seed(0);
	/* log.level and log.format from the first line on (config_load applies
	 * them); a bad file is reported by selo_open below. */
	static struct selo_config early;
	struct selo_err early_err;
	(void)config_load(cli_get(opts, "data"), &early, &early_err);
	sdnotify_status("starting: checking the database file");
	/* On PostgreSQL there is no file of ours to check. */
	if (!config_store_postgres(&early) && startup_check(cli_get(opts, "data")) != 0) {
		sdnotify_status("failed to start: the database file is damaged or cannot be "
				"checked (the log says which)");
		return EXIT_USAGE;
	}
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		sdnotify_status("failed to start: %s", err.msg);
		fprintf(stderr, "selo serve: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int lock = lock_data_dir(&app.cfg, &err);
	if (lock < 0) {
		sdnotify_status("failed to start: %s", err.msg);
		fprintf(stderr, "selo serve: %s\n", err.msg);
		selo_close(&app);
		return EXIT_USAGE;
	}
	int rc = serve_run(&app);
	/* After a failed start: whatever did start stops here. */
	api_stop(app.api);
	tracker_stop(app.tracker);
	sender_stop(app.sender);
	webhooks_close(app.webhooks);
	ledger_close(app.ledger);
	stats_stop(); /* the statistics' follower (stats.h): its batch in flight commits or not */
	composer_free(app.composer);
	selo_close(&app);
	close(lock);
	diag_info("stopped");
	return rc;
}
