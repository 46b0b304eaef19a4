/* serve.c: `selo serve --data DIR`: opens everything, recovers notices a
 * crash left in flight, starts the sender workers and the API listener, and
 * runs until SIGTERM or SIGINT; then stops taking requests, lets the workers
 * finish their batches and closes the store (which drains its writes). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "selo/api.h"
#include "selo/compose.h"
#include "selo/diag.h"
#include "selo/ledger.h"
#include "selo/tsa.h"
#include "selo/selo.h"
#include "selo/sender.h"
#include "selo/tracker.h"

static const char HELP[] =
	"usage: selo serve --data DIR\n"
	"\n"
	"Runs the API (api.listen), the public tracker (track.listen), the sender\n"
	"workers and the ledger (the Merkle log's sequencer) until SIGTERM or\n"
	"SIGINT. Configuration: DIR/selo.conf\n"
	"(docs/operations.md).\n";

static int stamp_signature(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
			   struct selo_err *err)
{
	int64_t t;
	return tsa_timestamp(arg, digest, der, len, &t, err);
}

static int serve_run(struct selo *app)
{
	struct selo_err err;
	err_clear(&err);
	if (composer_new(&app->cfg, &app->composer, &err) != 0 ||
	    ledger_open(app, &app->ledger, &err) != 0) {
		fprintf(stderr, "selo serve: %s\n", err.msg);
		return EXIT_USAGE;
	}
	/* Every S/MIME signature carries an RFC 3161 timestamp from the same TSA. */
	composer_set_tsa(app->composer, stamp_signature, ledger_tsa(app->ledger));
	int n = store_recover_inflight(app->store, &err);
	if (n < 0) {
		fprintf(stderr, "selo serve: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (n > 0)
		diag_warn("%d notice(s) were in flight at the last stop; queued again", n);
	if (ledger_start(app->ledger, &err) != 0 || sender_start(app, &app->sender, &err) != 0 ||
	    api_start(app, &app->api, &err) != 0 || tracker_start(app, &app->tracker, &err) != 0) {
		fprintf(stderr, "selo serve: %s\n", err.msg);
		return EXIT_USAGE;
	}
	diag_info("listening: api %s, tracker %s; transport %s; %d sender worker(s)",
		  app->cfg.api_listen, app->cfg.track_listen,
		  app->cfg.smtp_mode == SMTP_RELAY ? "relay" : app->cfg.smtp_mode == SMTP_MX ? "mx"
											 : "maildir",
		  app->cfg.sender_workers);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int sig = 0;
	sigwait(&set, &sig);
	diag_info("signal %d: stopping", sig);
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
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	json_object_seed(0);
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
		fprintf(stderr, "selo serve: %s\n", err.msg);
		return EXIT_USAGE;
	}
	int rc = serve_run(&app);
	api_stop(app.api);
	tracker_stop(app.tracker); /* records the hits still queued */
	sender_stop(app.sender);
	ledger_close(app.ledger); /* its last round integrates what the senders recorded */
	composer_free(app.composer);
	selo_close(&app);
	diag_info("stopped");
	return rc;
}
