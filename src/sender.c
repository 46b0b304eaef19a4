/* sender.c: sender workers (see sender.h). Each worker owns a transport
 * and loops: claim a batch of due notices, seal the unsealed ones (the
 * sealed bytes are stored and committed BEFORE anything is sent, so a resend
 * after a crash sends the very same bytes), send the batch, record the
 * outcomes in one transaction. Idle workers sleep until sender_notify or
 * the next deferred notice is due (at most a second).
 *
 * When the store fails (a full disk), a worker keeps what it holds and
 * tries again with backoff, claiming nothing meanwhile: the seals before
 * sending (a stop gives up on them: nothing was sent), the results after
 * (never given up while the process may still record them: a message
 * handed to SMTP whose result is lost would be sent again at the next
 * start). Repeated errors are logged once per interval (diag.h). */
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "selo/clock.h"
#include "selo/compose.h"
#include "selo/diag.h"
#include "selo/dsn.h"
#include "selo/evidence.h"
#include "selo/event.h"
#include "selo/notice.h"
#include "selo/schedule.h"
#include "selo/sender.h"
#include "selo/suppress.h"
#include "selo/transport.h"

struct sender {
	struct selo *app;
	pthread_t *threads;
	int nthreads;
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* wakes idle workers */
	pthread_cond_t done_cv;  /* a worker put its batch down or exited (CLOCK_MONOTONIC) */
	int stop;
	unsigned long gen;       /* bumped by sender_notify */
	int running;             /* workers that have not exited */
	int busy;                /* workers holding a claimed batch */
	int claiming;            /* workers inside store_claim_due: a stop waits for them */
	size_t held;             /* notices in those batches: `sending` until recorded */
	int64_t stop_ms;         /* clock_mono_ms when claiming stopped */
	/* Errors that repeat per batch or per notice (diag.h). */
	struct diag_limit claim_log, compose_log, seal_log, record_log;
};

/* Retrying writes the store refused: the first retry after RETRY_FIRST_MS,
 * doubling up to RETRY_MAX_MS, so the work goes on within a second of the
 * space coming back (a retry that fails costs a transaction that fails
 * at its first write: nothing to spare a worker from). */
#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS 1000
/* After naming the results it could not record at a stop, a worker tries
 * this much longer before it lets go (`selo serve` has exited by then). */
#define RECORD_GRACE_MS 10000

/* One notice's way through a batch. */
struct item {
	struct notice_rec rec;
	struct buf eml;          /* the sealed bytes */
	struct compose_out out;  /* when sealed in this batch */
	int sealed_now;
	int failed;              /* could not be sealed: fails without sending */
	int unsealed_retry;      /* could not be sealed for now (TSA down): retried later */
	char fail_reason[320];
	struct transport_msg msg;
	json_t *fields;
	struct disclosures disc;
	char mail_from[DSN_ADDR_MAX + 1]; /* its envelope sender, alive until the batch is recorded */
};

int64_t sender_backoff_s(int attempts, int base_s, int max_s)
{
	int64_t d = base_s;
	for (int i = 1; i < attempts && d < max_s; i++)
		d *= 2;
	return d < max_s ? d : max_s;
}

/* Renders the stored submission into subject/text/html. */
static int render_payload(struct selo *app, const json_t *p, struct rendered *r,
			  struct selo_err *err)
{
	memset(r, 0, sizeof(*r));
	const char *tname = json_string_value(json_object_get(p, "template"));
	if (tname) {
		const struct template *t = template_find(app->templates, tname);
		if (!t)
			return err_set(err, 500, "render", "template %s is no longer available", tname);
		return template_render(t, json_object_get(p, "vars"), r, err);
	}
	const char *s = json_string_value(json_object_get(p, "subject"));
	const char *t = json_string_value(json_object_get(p, "text"));
	const char *h = json_string_value(json_object_get(p, "html"));
	r->subject = xstrdup(s ? s : "");
	r->text = xstrdup(t ? t : "");
	r->html = h ? xstrdup(h) : NULL;
	return 0;
}

static int track_flag(const json_t *p, const char *name)
{
	json_t *v = json_object_get(json_object_get(p, "track"), name);
	return v ? json_is_true(v) : 1;
}

static int seal_one(struct selo *app, struct item *it, struct selo_err *err)
{
	json_t *p = json_loads(it->rec.payload_json, 0, NULL);
	if (!p)
		return err_set(err, 500, "render", "stored submission is not readable");
	struct rendered r;
	struct attachment_rec *att = NULL;
	size_t natt = 0;
	int rc = -1;
	if (render_payload(app, p, &r, err) != 0)
		goto out;
	/* The payload lists the attachments (notice.c). Without any, no read:
	 * this thread runs at nice 19, and every read takes SQLite's lock on
	 * the WAL index, which the API threads and the writer wait for while a
	 * preempted sender holds it. */
	if (json_array_size(json_object_get(p, "attachments")) > 0 &&
	    store_attachments_of(app->store, it->rec.id, &att, &natt, err) != 0)
		goto out_r;
	struct compose_in in = {
		.notice_id = it->rec.id,
		.to = it->rec.to,
		.to_name = json_string_value(json_object_get(p, "to_name")),
		.subject = r.subject,
		.text = r.text,
		.html = r.html,
		.att = att,
		.natt = natt,
		.track_opens = track_flag(p, "opens"),
		.track_clicks = track_flag(p, "clicks"),
		.track_read = track_flag(p, "read_confirmation"),
		.now_ms = clock_now_ms(),
	};
	rc = compose_message(app->composer, &in, &it->out, err);
	if (rc == 0) {
		it->sealed_now = 1;
		buf_append(&it->eml, it->out.eml.data, it->out.eml.len);
	}
	attachment_recs_free(att, natt);
out_r:
	rendered_free(&r);
out:
	json_decref(p);
	return rc;
}

/* Gets the bytes to send: the stored message, or a newly composed one. A
 * stored message (a retry, a resend after a crash) is sent only if it is
 * still the one its content_sealed event seals (evidence.h): damaged bytes
 * never leave, the notice fails naming why. */
static void prepare_item(struct sender *s, struct item *it)
{
	struct selo *app = s->app;
	struct selo_err err;
	err_clear(&err);
	if (it->rec.sha256[0]) {
		char hex[65];
		if (evidence_message(app->store, it->rec.id, &it->eml, hex, &err) == 1)
			return;
		if (!err.msg[0])
			err_set(&err, 500, EVIDENCE_DAMAGED, "notice %s: its sealed message is missing",
				it->rec.id);
	} else if (seal_one(app, it, &err) == 0) {
		return;
	}
	/* A timestamp authority that does not answer (503) delays the notice,
	 * it does not fail it. */
	it->failed = 1;
	it->unsealed_retry = err.status == 503;
	snprintf(it->fail_reason, sizeof(it->fail_reason), "the message could not be composed: %.250s",
		 err.msg);
	diag_error_limited(&s->compose_log, "notice %s: %s", it->rec.id, it->fail_reason);
}

static int sender_store_seals(struct selo *app, struct item *items, size_t n, struct selo_err *err)
{
	struct seal_rec *seals = xcalloc(n, sizeof(*seals));
	struct token_rec **toks = xcalloc(n, sizeof(*toks));
	size_t ns = 0;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (!it->sealed_now)
			continue;
		struct compose_out *o = &it->out;
		toks[ns] = xcalloc(o->ntokens + 1, sizeof(struct token_rec));
		for (size_t k = 0; k < o->ntokens; k++)
			toks[ns][k] = (struct token_rec){o->tokens[k].token, o->tokens[k].kind,
							  o->tokens[k].link, o->tokens[k].url};
		seals[ns] = (struct seal_rec){it->rec.id, o->eml.data, o->eml.len, {0}, o->message_id,
					      toks[ns], o->ntokens, o->event_fields, NULL};
		memcpy(seals[ns].sha256, o->sha256, 65);
		ns++;
	}
	int r = ns ? store_notices_sealed(app->store, seals, ns, err) : 0;
	if (r == 0)
		atomic_fetch_add(&app->metrics.messages_sealed, (long long)ns);
	for (size_t i = 0; i < ns; i++)
		free(toks[i]);
	free(toks);
	free(seals);
	return r;
}

static json_t *attempt_fields(struct item *it, const char *transport, int attempt)
{
	struct transport_msg *m = &it->msg;
	const uint8_t *salt = it->rec.salt;
	json_t *f = json_pack("{s:i,s:s,s:s}", "attempt", attempt, "transport", transport, "peer",
			      m->peer);
	if (m->code)
		json_object_set_new(f, "code", json_integer(m->code));
	if (m->enhanced[0])
		json_object_set_new(f, "enhanced", json_string(m->enhanced));
	/* Replies and transcripts can quote the recipient's address: commitments. */
	if (m->reply.len)
		json_object_set_new(f, "reply", json_string(disclose(&it->disc, salt, m->reply.data,
								     m->reply.len)));
	if (m->mx[0])
		json_object_set_new(f, "mx", json_string(m->mx));
	if (m->queue_id[0])
		json_object_set_new(f, "queue_id", json_string(m->queue_id));
	if (m->tls[0])
		json_object_set_new(f, "tls", json_string(m->tls));
	if (m->tls_peer[0])
		json_object_set_new(f, "tls_peer", json_string(m->tls_peer));
	if (m->error[0])
		json_object_set_new(f, "error", json_string(m->error));
	if (m->transcript.len)
		json_object_set_new(f, "transcript",
				    json_string(disclose(&it->disc, salt, m->transcript.data,
							 m->transcript.len)));
	return f;
}

/* When to try again: after the backoff, inside the notice's send window
 * (a collection notice asked for 08:00-20:00 is not retried at night). */
static int64_t retry_time(const struct selo_config *cfg, const struct item *it, int attempt,
			  int64_t now)
{
	int64_t next = now + sender_backoff_s(attempt, cfg->retry_base_s, cfg->retry_max_s) * 1000;
	struct send_window w;
	notice_window_of(it->rec.payload_json, &w);
	return schedule_window_next(&w, next);
}

static void decide(struct selo *app, struct transport *t, struct item *it, int64_t now,
		   struct result_rec *out)
{
	const struct selo_config *cfg = &app->cfg;
	int attempt = it->rec.attempts + 1;
	memset(out, 0, sizeof(*out));
	out->id = it->rec.id;
	out->disc = &it->disc;
	if (it->failed && it->unsealed_retry) {
		int64_t next = retry_time(cfg, it, attempt, now);
		char ts[32];
		clock_rfc3339(next, ts);
		it->fields = json_pack("{s:i,s:s,s:s}", "attempt", attempt, "error", it->fail_reason,
				       "retry_at", ts);
		*out = (struct result_rec){it->rec.id, EV_DELIVERY_DEFERRED, it->fields, "deferred", next,
					   it->fail_reason, &it->disc};
		atomic_fetch_add(&app->metrics.messages_deferred, 1);
		return;
	}
	if (it->failed) {
		it->fields = json_pack("{s:i,s:s}", "attempt", attempt, "reason", it->fail_reason);
		*out = (struct result_rec){it->rec.id, EV_DELIVERY_FAILED, it->fields, "failed", 0,
					   it->fail_reason, &it->disc};
		atomic_fetch_add(&app->metrics.messages_failed, 1);
		return;
	}
	it->fields = attempt_fields(it, transport_name(t), attempt);
	const char *summary = it->msg.error[0] ? it->msg.error : buf_str(&it->msg.reply);
	static __thread char last[320];
	snprintf(last, sizeof(last), "%d %s", it->msg.code, summary);
	switch (it->msg.outcome) {
	case TRANSPORT_ACCEPTED:
		*out = (struct result_rec){it->rec.id, transport_accept_event(t), it->fields,
					   !strcmp(transport_accept_event(t), EV_DELIVERY_ACCEPTED)
						   ? "delivered" : "relayed",
					   0, NULL, &it->disc};
		atomic_fetch_add(&app->metrics.messages_accepted, 1);
		return;
	case TRANSPORT_PERMFAIL:
		json_object_set_new(it->fields, "reason", json_string("rejected"));
		*out = (struct result_rec){it->rec.id, EV_DELIVERY_FAILED, it->fields, "failed", 0,
					   xstrdup(last), &it->disc};
		atomic_fetch_add(&app->metrics.messages_failed, 1);
		return;
	case TRANSPORT_TEMPFAIL:
		break;
	}
	/* The lifetime counts from when the notice was due, not accepted. */
	int64_t next = retry_time(cfg, it, attempt, now);
	int64_t since = it->rec.send_at_ms > it->rec.created_ms ? it->rec.send_at_ms
								 : it->rec.created_ms;
	if (next - since > (int64_t)cfg->lifetime_s * 1000) {
		json_object_set_new(it->fields, "reason", json_string("expired"));
		*out = (struct result_rec){it->rec.id, EV_DELIVERY_FAILED, it->fields, "failed", 0,
					   xstrdup(last), &it->disc};
		atomic_fetch_add(&app->metrics.messages_failed, 1);
		return;
	}
	char ts[32];
	clock_rfc3339(next, ts);
	json_object_set_new(it->fields, "retry_at", json_string(ts));
	*out = (struct result_rec){it->rec.id, EV_DELIVERY_DEFERRED, it->fields, "deferred", next,
				   xstrdup(last), &it->disc};
	atomic_fetch_add(&app->metrics.messages_deferred, 1);
}

/* The notice's own bounce address (VERP, dsn.h), so that a bounce coming
 * back after the relay took the message names the notice; `selo bounce`
 * records it. selo_open checked mail.return_path, so this cannot fail but
 * for a bad id; then the plain return path still gets the bounce to a person. */
static const char *envelope_from(struct selo *app, struct item *it)
{
	struct selo_err err;
	err_clear(&err);
	if (dsn_verp_make(app->token_key, app->cfg.mail_return_path, it->rec.id, it->mail_from,
			  &err) == 0)
		return it->mail_from;
	diag_error("notice %s: no bounce address: %s", it->rec.id, err.msg);
	return app->cfg.mail_return_path;
}

/* Sleeps ms, or less when a stop begins during the sleep (a stop that had
 * begun before does not cut it short). Returns whether the sender stops. */
static int retry_sleep(struct sender *s, int64_t ms)
{
	pthread_mutex_lock(&s->mu);
	int was = s->stop;
	int64_t until = clock_mono_ms() + ms;
	while (s->stop == was) {
		int64_t left = until - clock_mono_ms();
		if (left <= 0)
			break;
		struct timespec ts = clock_deadline(CLOCK_REALTIME, left);
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	int stop = s->stop;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

/* Whether a write failed because the store does (store.h "Health of
 * writes"), or because the database does not answer (503: PostgreSQL down,
 * a failover): worth trying again. Another failure would fail the same way. */
static int sender_store_failing(struct selo *app, const struct selo_err *err)
{
	if (err->status == 503)
		return 1;
	if (err->status != 500)
		return 0;
	struct store_health h;
	store_health(app->store, &h);
	return h.failing;
}

static int64_t retry_next(int64_t *delay)
{
	int64_t d = *delay;
	*delay = d * 2 < RETRY_MAX_MS ? d * 2 : RETRY_MAX_MS;
	return d;
}

/* The seals of the batch must be durable before anything is sent. While
 * the store fails, the worker keeps the composed messages and tries again.
 * A stop ends the tries: nothing of the batch was sent, so its notices,
 * left `sending`, are sent once, by the next start. */
static int seals_store(struct sender *s, struct item *items, size_t n)
{
	int64_t delay = RETRY_FIRST_MS;
	struct selo_err err;
	for (int tries = 1;; tries++) {
		err_clear(&err);
		if (sender_store_seals(s->app, items, n, &err) == 0) {
			if (tries > 1)
				diag_ended(&s->seal_log, "sealed messages stored on try %d; sending", tries);
			return 0;
		}
		if (!sender_store_failing(s->app, &err)) {
			diag_error("cannot store sealed messages: %s", err.msg);
			return -1; /* not the storage's fault: trying again would not help */
		}
		diag_error_limited(&s->seal_log, "cannot store the sealed messages of a batch of %zu "
				   "notice(s); nothing is sent before they are stored; trying again: %s",
				   n, err.msg);
		pthread_mutex_lock(&s->mu);
		int stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop || retry_sleep(s, retry_next(&delay))) {
			diag_warn("stopping: the sealed messages of a batch of %zu notice(s) could not be "
				  "stored; none was sent; they stay `sending` and the next start sends them",
				  n);
			return -1;
		}
	}
}

/* When a stopping worker names the results it could not record: a second
 * before `selo serve`'s deadline (sender.stop_timeout), so the names are
 * in the log before it exits. INT64_MAX while not stopping. */
static int64_t name_time(struct sender *s)
{
	pthread_mutex_lock(&s->mu);
	int stop = s->stop;
	int64_t at = s->stop_ms;
	pthread_mutex_unlock(&s->mu);
	if (!stop)
		return INT64_MAX;
	int64_t bound = (int64_t)s->app->cfg.sender_stop_timeout_s * 1000;
	return at + bound - (bound / 2 < 1000 ? bound / 2 : 1000);
}

static void results_name(const struct result_rec *res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		diag_error("stopping: notice %s was handed to SMTP (%s) but its result cannot be "
			   "recorded (the store fails); it stays `sending` and the next start sends "
			   "it again", res[i].id, res[i].event_type);
}

/* The messages were handed to SMTP: a result lost means a second copy
 * after the next start. So while the store fails the worker keeps the
 * results and tries again until they are recorded, claiming nothing
 * meanwhile. A stop makes it try every RETRY_FIRST_MS; shortly before the
 * stop's deadline it names each notice still unrecorded, and it lets go
 * RECORD_GRACE_MS later (the process has exited by then). */
static void results_record(struct sender *s, const struct result_rec *res, size_t n)
{
	int64_t delay = RETRY_FIRST_MS;
	int named = 0;
	struct selo_err err;
	for (int tries = 1;; tries++) {
		err_clear(&err);
		if (store_delivery_results(s->app->store, res, n, &err) == 0) {
			if (tries > 1)
				diag_ended(&s->record_log, "delivery results of %zu notice(s) recorded on "
					   "try %d", n, tries);
			if (named)
				diag_warn("stopping: the results named above were recorded after all");
			return;
		}
		if (!sender_store_failing(s->app, &err)) {
			diag_error("cannot record delivery results: %s", err.msg);
			return;
		}
		diag_error_limited(&s->record_log, "cannot record delivery results of %zu notice(s) "
				   "handed to SMTP; kept, and tried again until recorded: %s", n, err.msg);
		int64_t now = clock_mono_ms(), at = name_time(s);
		if (!named && now >= at) {
			results_name(res, n);
			named = 1;
		}
		if (named && now >= at + RECORD_GRACE_MS)
			return;
		retry_sleep(s, at == INT64_MAX ? retry_next(&delay) : RETRY_FIRST_MS);
	}
}

/* Why, for the log: the local failure, or the server's reply with its
 * code, scrubbed of anything that looks like an address (servers like to
 * quote the recipient). */
static void outcome_reason(const struct item *it, char *out, size_t n)
{
	const struct transport_msg *m = &it->msg;
	const char *why = it->failed ? it->fail_reason : m->error[0] ? m->error : NULL;
	char raw[400];
	if (why)
		snprintf(raw, sizeof(raw), "%s", why);
	else
		snprintf(raw, sizeof(raw), "%d %.*s", m->code,
			 (int)(m->reply.len < 380 ? m->reply.len : 380), m->reply.len ? m->reply.data : "");
	diag_scrub(raw, strlen(raw), out, n);
}

/* One line at info per outcome (docs/operations.md "Logs"): which notice,
 * which attempt, what the other side said. Never the recipient's address,
 * a variable, a token or the reference: the notice id says which. */
static void outcome_log(const struct item *it, const struct result_rec *r)
{
	const struct transport_msg *m = &it->msg;
	char reason[320], next[32] = "";
	outcome_reason(it, reason, sizeof(reason));
	struct diag_field f[8];
	int nf = 0;
	f[nf++] = (struct diag_field){.key = "event", .str = r->event_type};
	if (m->peer[0])
		f[nf++] = (struct diag_field){.key = "peer", .str = m->peer};
	if (m->mx[0])
		f[nf++] = (struct diag_field){.key = "mx", .str = m->mx};
	if (m->code)
		f[nf++] = (struct diag_field){.key = "code", .num = m->code};
	if (m->enhanced[0])
		f[nf++] = (struct diag_field){.key = "enhanced", .str = m->enhanced};
	if (m->queue_id[0])
		f[nf++] = (struct diag_field){.key = "queue_id", .str = m->queue_id};
	if (r->next_attempt_ms) {
		clock_rfc3339(r->next_attempt_ms, next);
		f[nf++] = (struct diag_field){.key = "next_attempt", .str = next};
	}
	struct diag_ids ids = {.notice = it->rec.id, .attempt = it->rec.attempts + 1,
			       .fields = f, .nfields = nf};
	const char *enhanced = NULL;
	/* "rejected" (5xx), "expired" (the lifetime ran out), or none (not composed). */
	const char *kind = json_string_value(json_object_get(r->event_fields, "reason"));
	if (!strcmp(r->state, "deferred"))
		diag_with(DIAG_INFO, &ids, "deferred until %s: %s", next, reason);
	else if (!strcmp(r->state, "failed") && suppress_fields_hard(r->event_fields, &enhanced))
		diag_with(DIAG_INFO, &ids, "bounced (hard, %s): the address is suppressed for the API "
			  "key (and the notice's sequence, if any, stops): %s",
			  enhanced ? enhanced : "5.x.x", reason);
	else if (!strcmp(r->state, "failed"))
		diag_with(DIAG_INFO, &ids, "failed (%s): %s", kind ? kind : "not sent", reason);
	else
		diag_with(DIAG_INFO, &ids, "%s: %s", r->state, reason);
}

static void process_batch(struct sender *s, struct transport *t, struct notice_rec *recs,
			  size_t n)
{
	struct selo *app = s->app;
	struct item *items = xcalloc(n, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		items[i].rec = recs[i];
		prepare_item(s, &items[i]);
	}
	if (seals_store(s, items, n) != 0)
		goto out;
	struct transport_msg *msgs = xcalloc(n, sizeof(*msgs));
	size_t *which = xcalloc(n, sizeof(*which));
	size_t nm = 0;
	for (size_t i = 0; i < n; i++) {
		if (items[i].failed)
			continue;
		msgs[nm] = (struct transport_msg){.notice_id = items[i].rec.id,
						  .mail_from = envelope_from(app, &items[i]),
						  .rcpt = items[i].rec.to,
						  .data = items[i].eml.data,
						  .len = items[i].eml.len};
		which[nm++] = i;
	}
	if (nm) {
		atomic_fetch_add(&app->metrics.smtp_sessions, 1);
		transport_send(t, msgs, nm);
	}
	for (size_t k = 0; k < nm; k++)
		items[which[k]].msg = msgs[k];
	free(msgs);
	free(which);

	struct result_rec *res = xcalloc(n, sizeof(*res));
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < n; i++)
		decide(app, t, &items[i], now, &res[i]);
	results_record(s, res, n);
	for (size_t i = 0; i < n && diag_enabled(DIAG_INFO); i++)
		outcome_log(&items[i], &res[i]);
	for (size_t i = 0; i < n; i++)
		if (res[i].last_error && res[i].last_error != items[i].fail_reason)
			free((char *)res[i].last_error);
	free(res);
out:
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		buf_free(&it->eml);
		if (it->sealed_now)
			compose_out_free(&it->out);
		transport_msg_free(&it->msg);
		json_decref(it->fields);
		disclosures_free(&it->disc);
		notice_rec_free(&it->rec);
	}
	free(items);
	free(recs);
}

static void wait_for_work(struct sender *s, unsigned long seen)
{
	int64_t now = clock_now_ms();
	int64_t due = store_next_due(s->app->store);
	int64_t wait = 1000;
	if (due > 0 && due - now < wait)
		wait = due - now > 10 ? due - now : 10;
	struct timespec ts = clock_deadline(CLOCK_REALTIME, wait);
	pthread_mutex_lock(&s->mu);
	while (!s->stop && s->gen == seen)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
			break;
	pthread_mutex_unlock(&s->mu);
}

/* Claims and processes batches until told to stop. A batch once claimed is
 * always finished (sealed, sent, recorded): its notices are `sending`, and
 * leaving them there would mean a resend at the next start. */
static void worker_loop(struct sender *s, struct transport *t)
{
	struct selo *app = s->app;
	struct selo_err err;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		int stop = s->stop;
		unsigned long seen = s->gen;
		s->claiming += !stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			return;
		struct notice_rec *recs = NULL;
		size_t n = 0;
		err_clear(&err);
		int rc = store_claim_due(app->store, clock_now_ms(), (size_t)app->cfg.sender_batch,
					 &recs, &n, &err);
		/* A claim that began before a stop may still take what the API
		 * accepted after it (on PostgreSQL a claim can wait for a new
		 * connection): sender_stop_claiming waits for it, and sees its batch. */
		pthread_mutex_lock(&s->mu);
		s->claiming--;
		if (rc == 0 && n > 0) {
			s->busy++;
			s->held += n;
		}
		pthread_cond_broadcast(&s->done_cv);
		pthread_mutex_unlock(&s->mu);
		if (rc != 0) {
			diag_error_limited(&s->claim_log, "cannot claim notices: %s", err.msg);
			wait_for_work(s, seen);
			continue;
		}
		diag_ended(&s->claim_log, "claiming notices works again");
		if (n == 0) {
			free(recs);
			wait_for_work(s, seen);
			continue;
		}
		process_batch(s, t, recs, n);
		pthread_mutex_lock(&s->mu);
		s->busy--;
		s->held -= n;
		pthread_cond_broadcast(&s->done_cv);
		pthread_mutex_unlock(&s->mu);
	}
}

static void *worker(void *arg)
{
	struct sender *s = arg;
	/* Sending is throughput work (signing is most of the CPU); accepting is
	 * latency work. Lower this thread's priority (Linux: per thread) so the
	 * API and the store's writer answer first when both compete: nice 19,
	 * the lowest (with nice 10 the senders still took about a tenth of a
	 * core from a busy API; make bench showed no loss of sending rate). */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
		diag_debug("cannot lower the sender's priority");
	struct selo_err err;
	err_clear(&err);
	struct transport *t = NULL;
	if (transport_open(&s->app->cfg, &t, &err) == 0) {
		worker_loop(s, t);
		transport_close(t);
	} else {
		diag_error("sender worker cannot start: %s", err.msg);
	}
	pthread_mutex_lock(&s->mu);
	s->running--;
	pthread_cond_broadcast(&s->done_cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int sender_start(struct selo *app, struct sender **out, struct selo_err *err)
{
	struct sender *s = xcalloc(1, sizeof(*s));
	s->app = app;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	s->threads = xcalloc((size_t)app->cfg.sender_workers, sizeof(pthread_t));
	for (int i = 0; i < app->cfg.sender_workers; i++) {
		pthread_mutex_lock(&s->mu);
		s->running++;
		pthread_mutex_unlock(&s->mu);
		if (pthread_create(&s->threads[i], NULL, worker, s) != 0) {
			pthread_mutex_lock(&s->mu);
			s->running--;
			pthread_mutex_unlock(&s->mu);
			sender_stop(s);
			return err_set(err, 500, "thread", "cannot start sender worker %d", i);
		}
		s->nthreads++;
	}
	*out = s;
	return 0;
}

void sender_notify(struct sender *s)
{
	pthread_mutex_lock(&s->mu);
	s->gen++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

void sender_stop_claiming(struct sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->stop)
		s->stop_ms = clock_mono_ms();
	s->stop = 1;
	pthread_cond_broadcast(&s->cv);
	/* Claims in progress end within store.timeout: after this, nothing the
	 * API accepts is claimed before the next start. */
	while (s->claiming > 0)
		pthread_cond_wait(&s->done_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

size_t sender_inflight(struct sender *s, int *workers)
{
	pthread_mutex_lock(&s->mu);
	size_t held = s->held;
	if (workers)
		*workers = s->busy;
	pthread_mutex_unlock(&s->mu);
	return held;
}

int sender_wait(struct sender *s, int64_t deadline_ms)
{
	struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
	pthread_mutex_lock(&s->mu);
	while (s->running > 0)
		if (pthread_cond_timedwait(&s->done_cv, &s->mu, &ts) != 0)
			break;
	int running = s->running;
	pthread_mutex_unlock(&s->mu);
	return running;
}

void sender_stop(struct sender *s)
{
	if (!s)
		return;
	sender_stop_claiming(s);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->done_cv);
	free(s->threads);
	free(s);
}
