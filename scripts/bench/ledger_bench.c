/* ledger_bench.c: `make bench`'s ledger figures (prints, never asserts).
 * usage: ledger_bench DATA_DIR [N]
 *   1. stores N notices (one submission_accepted event each) straight into
 *      the store, in transactions of 1000;
 *   2. integrates them all (ledger_sync): entries per second;
 *   3. runs the sequencer while a producer adds events at a steady rate for
 *      a few seconds: checkpoint latency (event committed -> a signed
 *      checkpoint covering it), p50 and p99;
 *   4. receipt export (ledger_receipt) and offline verification
 *      (receipt_verify) for notices in that log: mean and max per receipt. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "selo/clock.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/ledger.h"
#include "selo/receipt.h"
#include "selo/selo.h"

static int add_notices(struct selo *app, size_t n, char (*ids)[27])
{
	struct notice_new *ns = calloc(n, sizeof(*ns));
	struct accept_result *res = calloc(n, sizeof(*res));
	struct selo_err err;
	err_clear(&err);
	for (size_t i = 0; i < n; i++) {
		uint8_t id[16];
		id_new(id);
		id_to_text(id, ns[i].id);
		random_bytes(ns[i].salt, 32);
		ns[i].apikey_id = 1;
		ns[i].to = "devedor@destino.example";
		ns[i].payload_json = "{}";
		/* what a real submission commits to: receipts check the row against it */
		char c[SELO_COMMIT_LEN + 1];
		commitment(ns[i].salt, 32, ns[i].to, strlen(ns[i].to), c);
		ns[i].event_fields = json_pack("{s:i,s:s}", "api_key", 1, "to", c);
		if (ids)
			memcpy(ids[i], ns[i].id, 27);
	}
	int r = store_notices_accept(app->store, ns, n, res, &err);
	if (r != 0)
		fprintf(stderr, "accept: %s\n", err.msg);
	for (size_t i = 0; i < n; i++)
		json_decref(ns[i].event_fields);
	free(ns);
	free(res);
	return r;
}

static void seal(struct selo *app, const char *id)
{
	static const char eml[] = "From: a@b.example\r\n\r\nbody\r\n";
	json_t *f = json_object();
	char hex[65];
	sha256_hex(eml, sizeof(eml) - 1, hex);
	json_object_set_new(f, "sha256", json_string(hex));
	json_object_set_new(f, "size", json_integer((json_int_t)sizeof(eml) - 1));
	json_object_set_new(f, "message_id", json_string("m@b.example"));
	struct seal_rec r = {id, eml, sizeof(eml) - 1, {0}, "m@b.example", NULL, 0, f, NULL};
	memcpy(r.sha256, hex, 65);
	struct selo_err err;
	err_clear(&err);
	if (store_notices_sealed(app->store, &r, 1, &err) != 0)
		fprintf(stderr, "seal: %s\n", err.msg);
	json_decref(f);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Producer at `rate` events/s for `secs` (events about existing notices,
 * as the tracker records them), each batch's last event being a fresh
 * notice's submission so it can be found again: its commit time is matched
 * with the first checkpoint covering it afterwards. */
static void checkpoint_latency(struct selo *app, struct ledger *l, const char *about, int rate,
			       int secs)
{
	int per = rate / 20; /* a batch every 50 ms */
	int nb = secs * 20;
	char (*last)[27] = calloc((size_t)nb, 27);
	int64_t *t = calloc((size_t)nb, sizeof(int64_t));
	struct event_new *ev = calloc((size_t)per, sizeof(*ev));
	json_t *f = json_pack("{s:s,s:s}", "class", "human", "ip", "sha256:00");
	for (int i = 0; i < per; i++)
		ev[i] = (struct event_new){about, "opened", f, NULL, NULL, 0};
	struct selo_err err;
	err_clear(&err);
	ledger_start(l, &err);
	int64_t start = clock_mono_ms();
	for (int b = 0; b < nb; b++) {
		if (store_events_add(app->store, ev, (size_t)per - 1, &err) != 0)
			fprintf(stderr, "events: %s\n", err.msg);
		add_notices(app, 1, &last[b]);
		t[b] = clock_now_ms();
		int64_t due = start + (b + 1) * 50, now = clock_mono_ms();
		if (due > now)
			usleep((useconds_t)(due - now) * 1000);
	}
	double achieved = (double)nb * per / ((double)(clock_mono_ms() - start) / 1000.0);
	sleep(3);
	ledger_stop(l);
	int64_t *lat = calloc((size_t)nb, sizeof(int64_t));
	int nl = 0;
	for (int b = 0; b < nb; b++) {
		struct event_rec *er;
		size_t n;
		struct checkpoint_rec cp;
		if (store_events_of(app->store, last[b], &er, &n, &err) != 0 || n == 0)
			continue;
		if (er[0].log_index >= 0 &&
		    store_checkpoint_find(app->store, (uint64_t)er[0].log_index + 1, 0, &cp, &err) == 1) {
			/* the first (smallest) covering checkpoint is what we want: search up */
			struct checkpoint_rec *all;
			size_t na;
			store_checkpoints_all(app->store, &all, &na, &err);
			for (size_t k = 0; k < na; k++)
				if (all[k].size > (uint64_t)er[0].log_index) {
					lat[nl++] = all[k].created_ms - t[b];
					break;
				}
			checkpoint_recs_free(all, na);
			free(cp.note);
			free(cp.tst);
		}
		event_recs_free(er, n);
		b += 1; /* sample one batch in 2 */
	}
	qsort(lat, (size_t)nl, sizeof(int64_t), cmp64);
	if (nl)
		printf("checkpoint latency at %.0f events/s (%d s): p50 %lld ms, p99 %lld ms, max %lld ms "
		       "(%d samples)\n", achieved, secs, (long long)lat[nl / 2],
		       (long long)lat[nl * 99 / 100], (long long)lat[nl - 1], nl);
	free(lat);
	free(last);
	free(t);
	free(ev);
	json_decref(f);
}

static void receipts(struct selo *app, struct ledger *l, char (*ids)[27], int n)
{
	struct selo_err err;
	err_clear(&err);
	for (int i = 0; i < n; i++)
		seal(app, ids[i]);
	ledger_sync(l, 1, &err);
	double sum_b = 0, max_b = 0, sum_v = 0, max_v = 0;
	int ok = 0;
	for (int i = 0; i < n; i++) {
		json_t *r;
		int64_t t0 = clock_mono_ms();
		struct timespec a, b, c;
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (ledger_receipt(l, ids[i], 0, &r, &err) != 0) {
			fprintf(stderr, "receipt: %s\n", err.msg);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		char *s = json_dumps(r, JSON_COMPACT);
		static struct receipt_report rep;
		enum receipt_verdict v = receipt_verify(s, strlen(s), ledger_vkey(l), NULL, 0, &rep);
		clock_gettime(CLOCK_MONOTONIC, &c);
		(void)t0;
		double tb = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
		double tv = (c.tv_sec - b.tv_sec) * 1e3 + (c.tv_nsec - b.tv_nsec) / 1e6;
		sum_b += tb, sum_v += tv;
		max_b = tb > max_b ? tb : max_b;
		max_v = tv > max_v ? tv : max_v;
		ok += v != RECEIPT_UNREADABLE;
		free(s);
		json_decref(r);
	}
	struct log_state st;
	store_log_state(app->store, &st, &err);
	printf("receipts in a log of %llu entries: export mean %.2f ms (max %.2f), verify mean %.2f ms "
	       "(max %.2f), %d receipts\n", (unsigned long long)st.size, sum_b / n, max_b, sum_v / n,
	       max_v, ok);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: ledger_bench DATA_DIR [N]\n");
		return 2;
	}
	size_t total = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	struct selo app;
	struct selo_err err;
	err_clear(&err);
	if (selo_open(&app, argv[1], &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	int64_t t0 = clock_mono_ms();
	char (*sample)[27] = calloc(1000, 27);
	for (size_t done = 0; done < total; done += 1000)
		add_notices(&app, 1000, done == 0 ? sample : NULL);
	int64_t t1 = clock_mono_ms();
	printf("stored %zu events in %.1f s (setup)\n", total, (t1 - t0) / 1000.0);
	struct ledger *l;
	if (ledger_open(&app, &l, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	int n = ledger_sync(l, 1, &err);
	int64_t t2 = clock_mono_ms();
	printf("integrated %d entries in %.2f s: %.0f entries/s (tiles, indexes, state; one "
	       "transaction per 20000)\n", n, (t2 - t1) / 1000.0, n / ((t2 - t1) / 1000.0));
	char about[1][27];
	add_notices(&app, 1, about); /* the producer's events are about this one */
	checkpoint_latency(&app, l, about[0], 50000, 5);
	receipts(&app, l, sample, 100);
	ledger_close(l);
	selo_close(&app);
	free(sample);
	return 0;
}
