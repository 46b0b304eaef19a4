/* bounce.c: `selo bounce --data DIR [--rcpt ADDRESS] [--mta]`: reads one
 * message on stdin, as the site's MTA hands it over (docs/bounces.md), and
 * when it is a failure DSN about one of our notices records the notice's
 * delivery_failed event (reason "bounced") and sets it `failed`. Anything
 * else is refused with a message that says why, and nothing is written.
 *
 * Checks, in order: the bounce address (--rcpt, else Delivered-To,
 * X-Original-To, Envelope-To, To) is a VERP address with a genuine MAC;
 * the message is a DSN (dsn.h) with a failed recipient; the notice exists
 * and was sealed; when the DSN returns the original headers, their
 * Message-ID is the notice's. Exit codes: 0 recorded (or recorded before),
 * 1 refused, 2 usage or I/O error or try later. With --mta (an MTA's
 * pipe): 0 also for a refused message (logged to syslog, so junk sent to
 * the bounce address bounces nowhere), 75 (EX_TEMPFAIL: the MTA keeps the
 * message and retries) for anything that is not the message's fault. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sysexits.h>
#include "cli.h"
#include "selo/buf.h"
#include "selo/crypto.h"
#include "selo/dsn.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/selo.h"
#include "selo/suppress.h"

static const char HELP[] =
	"usage: selo bounce --data DIR [--rcpt ADDRESS] [--mta] < MESSAGE\n"
	"\n"
	"Reads a bounce (a delivery status notification, RFC 3464) on stdin and,\n"
	"when it reports a failed delivery of one of our notices, records\n"
	"delivery_failed (reason bounced) and sets the notice failed. Anything\n"
	"else is refused and recorded nowhere.\n"
	"\n"
	"  --rcpt ADDRESS  the envelope recipient (the notice's bounce address);\n"
	"                  without it: Delivered-To, X-Original-To, Envelope-To, To\n"
	"  --mta           called by an MTA (e.g. a Postfix pipe): a refused message\n"
	"                  exits 0 and is logged to syslog (mail), a temporary problem\n"
	"                  exits 75 (EX_TEMPFAIL) so the MTA retries\n"
	"\n"
	"Exit codes: 0 recorded (or already recorded), 1 refused (not ours, not a\n"
	"failure DSN, or it does not match the notice), 2 usage or I/O error, or\n"
	"the notice is being sent right now (try again). docs/bounces.md.\n";

/* What became of the message; PASSED: a check passed, go on. */
enum verdict { PASSED, RECORDED, REFUSED, TRY_LATER };

struct run {
	int mta;
	struct selo *app;
	const char *msg;
	size_t len;
	const char *rcpt;     /* NULL: look in the headers */
	char id[SELO_ID_TEXT + 1];
};

/* One line for people: stderr always, syslog too when an MTA called us
 * (its pipe keeps no output of a command that exits 0). */
static void say(const struct run *r, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(const struct run *r, int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "selo bounce: %s\n", line);
	if (r->mta)
		syslog(prio, "%s", line);
}

static int exit_code(int mta, enum verdict v)
{
	switch (v) {
	case PASSED:
	case RECORDED:
		return EXIT_OK;
	case REFUSED:
		return mta ? EXIT_OK : EXIT_NOTFOUND;
	case TRY_LATER:
		break;
	}
	return mta ? EX_TEMPFAIL : EXIT_USAGE;
}

/* Reads stdin up to max bytes. 0 ok, 1 longer than max, -1 read error. An
 * MTA's pipe wants its whole message read, so with drain the rest of a long
 * one is read and thrown away. */
static int read_stdin(struct buf *b, size_t max, int drain)
{
	char chunk[65536];
	size_t n;
	int over = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
		if (!over && b->len + n > max)
			over = 1;
		if (!over)
			buf_append(b, chunk, n);
		else if (!drain)
			break;
	}
	if (ferror(stdin))
		return -1;
	return over;
}

/* The notice the bounce is addressed to, from its VERP address. */
static enum verdict find_notice(struct run *r)
{
	struct selo_err err;
	err_clear(&err);
	if (r->rcpt) {
		if (dsn_verp_parse(r->app->token_key, r->rcpt, strlen(r->rcpt), r->id) == 0)
			return PASSED;
		say(r, LOG_NOTICE, "refused: %.254s is not a bounce address of ours (no notice id "
		    "with a valid MAC); nothing recorded", r->rcpt);
		return REFUSED;
	}
	if (dsn_find_verp(r->app->token_key, r->msg, r->len, r->id, NULL, &err) == 0)
		return PASSED;
	say(r, LOG_NOTICE, "refused: %s (an MTA should pass the envelope recipient with --rcpt); "
	    "nothing recorded", err.msg);
	return REFUSED;
}

/* The Message-ID the DSN returned must be the notice's own, when it
 * returned one: a bounce of some other message sent to this address is
 * not this notice's. */
static enum verdict match_message(const struct run *r, const struct dsn *d,
				  const struct notice_rec *rec)
{
	if (!rec->message_id) {
		say(r, LOG_NOTICE, "refused: notice %s was never sealed, so no message of it can "
		    "have bounced; nothing recorded", r->id);
		return REFUSED;
	}
	if (d->message_id[0] && strcmp(d->message_id, rec->message_id) != 0) {
		say(r, LOG_NOTICE, "refused: the returned message's Message-ID <%.200s> is not "
		    "notice %s's <%.200s>; nothing recorded", d->message_id, r->id, rec->message_id);
		return REFUSED;
	}
	return PASSED;
}

static void set_str(json_t *f, const char *key, const char *v)
{
	if (v && *v)
		json_object_set_new(f, key, json_string(v));
}

/* The event's fields. The recipient's addresses and the diagnostic (which
 * usually quotes the address) are commitments under the notice's salt; the
 * receipt discloses them. */
static json_t *bounce_fields(const struct run *r, const struct dsn *d, const struct dsn_rcpt *rc,
			     const struct notice_rec *rec, struct disclosures *disc)
{
	json_t *f = json_pack("{s:s,s:s,s:s}", "reason", "bounced", "action", rc->action, "status",
			      rc->status);
	set_str(f, "reporting_mta", d->reporting_mta);
	set_str(f, "remote_mta", rc->remote_mta);
	const char *personal[][2] = {{"diagnostic", rc->diagnostic},
				     {"final_recipient", rc->final_recipient},
				     {"original_recipient", rc->original_recipient}};
	for (size_t i = 0; i < sizeof(personal) / sizeof(personal[0]); i++)
		if (personal[i][1][0])
			json_object_set_new(f, personal[i][0],
					    json_string(disclose(disc, rec->salt, personal[i][1],
								 strlen(personal[i][1]))));
	set_str(f, "arrival", d->arrival_date);
	set_str(f, "last_attempt", rc->last_attempt);
	set_str(f, "message_id", d->message_id);
	char hex[65];
	sha256_hex(r->msg, r->len, hex);
	json_object_set_new(f, "dsn_sha256", json_string(hex));
	return f;
}

static enum verdict store_bounce(const struct run *r, const struct dsn *d, const struct dsn_rcpt *rc,
				 const struct notice_rec *rec)
{
	struct disclosures disc = DISCLOSURES_INIT;
	json_t *f = bounce_fields(r, d, rc, rec, &disc);
	char last[320];
	snprintf(last, sizeof(last), "bounced (%s): %.280s", rc->status,
		 rc->diagnostic[0] ? rc->diagnostic : "no diagnostic given");
	struct selo_err err;
	err_clear(&err);
	int s = store_notice_bounced(r->app->store, r->id, f, &disc, last, &err);
	json_decref(f);
	disclosures_free(&disc);
	if (s == 0) {
		say(r, LOG_INFO, "notice %s: bounced, delivery_failed recorded (Action: failed, "
		    "Status: %s)%s", r->id, rc->status, suppress_status_hard(rc->status)
		    ? "; a hard bounce: the address is suppressed for the API key" : "");
		printf("%s\n", r->id);
		return RECORDED;
	}
	if (s == 1) {
		say(r, LOG_INFO, "notice %s: its bounce was already recorded; nothing new", r->id);
		printf("%s\n", r->id);
		return RECORDED;
	}
	if (err.status == 404) {
		say(r, LOG_NOTICE, "refused: no notice %s; nothing recorded", r->id);
		return REFUSED;
	}
	say(r, LOG_WARNING, "notice %s: %s; try again", r->id, err.msg);
	return TRY_LATER;
}

static enum verdict bounce(struct run *r)
{
	enum verdict v = find_notice(r);
	if (v != PASSED)
		return v;
	struct selo_err err;
	err_clear(&err);
	struct dsn *d = xcalloc(1, sizeof(*d));
	int failed = -1;
	if (dsn_parse(r->msg, r->len, d, &err) != 0 || (failed = dsn_failure(d, &err)) < 0) {
		say(r, LOG_NOTICE, "refused for notice %s: %s; nothing recorded", r->id, err.msg);
		free(d);
		return REFUSED;
	}
	struct notice_rec rec;
	int found = store_notice_get(r->app->store, r->id, -1, &rec, &err);
	if (found <= 0) {
		if (found < 0)
			say(r, LOG_WARNING, "%s; try again", err.msg);
		else
			say(r, LOG_NOTICE, "refused: no notice %s in this database (its bounce address "
			    "verifies: is this the right --data?); nothing recorded", r->id);
		free(d);
		return found < 0 ? TRY_LATER : REFUSED;
	}
	v = match_message(r, d, &rec);
	if (v == PASSED)
		v = store_bounce(r, d, &d->rcpt[failed], &rec);
	notice_rec_free(&rec);
	free(d);
	return v;
}

static int mta_flag(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--mta"))
			return 1;
	return 0;
}

int cmd_bounce(int argc, char **argv)
{
	/* Known before parsing, so that even a usage error in an MTA's
	 * configuration defers the bounce rather than losing it. */
	int mta = mta_flag(argc, argv);
	struct cli_opt opts[] = {{"data", 1, NULL}, {"rcpt", 1, NULL}, {"mta", 0, NULL},
				 {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 0, &npos, &help) != 0)
		return exit_code(mta, TRY_LATER);
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (!cli_get(opts, "data")) {
		fprintf(stderr, "selo bounce: --data DIR is required\n%s", HELP);
		return exit_code(mta, TRY_LATER);
	}
	if (mta)
		openlog("selo-bounce", LOG_PID, LOG_MAIL);
	struct run r = {.mta = mta, .rcpt = cli_get(opts, "rcpt")};
	struct buf in = BUF_INIT;
	int rd = read_stdin(&in, DSN_MAX_BYTES, mta);
	enum verdict v = TRY_LATER;
	if (rd < 0) {
		say(&r, LOG_WARNING, "cannot read the message on stdin");
	} else if (rd > 0) {
		say(&r, LOG_NOTICE, "refused: the message is longer than %d bytes, more than a "
		    "bounce may have; nothing recorded", DSN_MAX_BYTES);
		v = REFUSED;
	} else {
		struct selo app;
		struct selo_err err;
		err_clear(&err);
		json_object_seed(0);
		if (selo_open(&app, cli_get(opts, "data"), &err) != 0) {
			say(&r, LOG_WARNING, "%s", err.msg);
		} else {
			r.app = &app;
			r.msg = buf_str(&in);
			r.len = in.len;
			v = bounce(&r);
			selo_close(&app);
		}
	}
	buf_free(&in);
	if (mta)
		closelog();
	return exit_code(mta, v);
}
