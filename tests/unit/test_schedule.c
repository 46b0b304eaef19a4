/* test_schedule.c: send windows, offsets and due dates (schedule.h), and
 * the store's side of scheduling (store.h "Scheduling and sequences"): a
 * scheduled notice is claimed only once due; cancel before a claim, never
 * after; a sequence stops and cancels its steps left, by a call or by a
 * hard bounce of one step, in the bounce's own transaction. */
#include "selo/clock.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/schedule.h"
#include "selo/store.h"
#include "t.h"
#include "t_store.h"

static int64_t at(const char *rfc3339)
{
	int64_t ms = 0;
	CHECK(clock_parse_rfc3339(rfc3339, &ms) == 0);
	return ms;
}

static int64_t next_in(const char *spec, const char *zone, const char *t)
{
	struct send_window w;
	char why[160];
	CHECK(schedule_window_parse(spec, zone, &w, why, sizeof(why)) == 0);
	return schedule_window_next(&w, at(t));
}

TEST(window_in_sao_paulo)
{
	/* America/Sao_Paulo is UTC-3 (no DST since 2019): 08:00 local = 11:00Z */
	CHECK(next_in("08:00-20:00", NULL, "2026-12-03T12:00:00Z") == at("2026-12-03T12:00:00Z"));
	CHECK(next_in("08:00-20:00", NULL, "2026-12-03T10:59:59Z") == at("2026-12-03T11:00:00Z"));
	CHECK(next_in("08:00-20:00", NULL, "2026-12-03T11:00:00Z") == at("2026-12-03T11:00:00Z"));
	/* 20:00 local is closed: tomorrow's opening */
	CHECK(next_in("08:00-20:00", NULL, "2026-12-03T23:00:00Z") == at("2026-12-04T11:00:00Z"));
	CHECK(next_in("08:00-20:00", NULL, "2026-12-04T02:30:00Z") == at("2026-12-04T11:00:00Z"));
	/* year end */
	CHECK(next_in("08:00-20:00", NULL, "2026-12-31T23:30:00Z") == at("2027-01-01T11:00:00Z"));
	/* in 2018 Sao Paulo still had DST (UTC-2 in December) */
	CHECK(next_in("08:00-20:00", "America/Sao_Paulo", "2018-12-03T09:00:00Z") ==
	      at("2018-12-03T10:00:00Z"));
}

TEST(window_across_midnight_and_other_zones)
{
	CHECK(next_in("22:00-06:00", "UTC", "2026-12-03T23:00:00Z") == at("2026-12-03T23:00:00Z"));
	CHECK(next_in("22:00-06:00", "UTC", "2026-12-03T05:59:00Z") == at("2026-12-03T05:59:00Z"));
	CHECK(next_in("22:00-06:00", "UTC", "2026-12-03T06:00:00Z") == at("2026-12-03T22:00:00Z"));
	CHECK(next_in("09:00-24:00", "UTC", "2026-12-03T23:59:00Z") == at("2026-12-03T23:59:00Z"));
	CHECK(next_in("09:00-24:00", "UTC", "2026-12-04T00:00:00Z") == at("2026-12-04T09:00:00Z"));
	/* Manaus is UTC-4 */
	CHECK(next_in("08:00-18:00", "America/Manaus", "2026-12-03T11:00:00Z") ==
	      at("2026-12-03T12:00:00Z"));
	/* keeps the milliseconds of a time already inside */
	CHECK(next_in("00:00-23:59", "UTC", "2026-12-03T10:00:00.123Z") ==
	      at("2026-12-03T10:00:00.123Z"));
	struct send_window none = {0};
	CHECK(schedule_window_next(&none, 1234) == 1234);
}

TEST(window_and_zone_refusals)
{
	struct send_window w;
	char why[160];
	const char *bad[] = {"", "8-20", "08:00", "08:00-20:00 ", "08:00_20:00", "24:00-08:00",
			     "08:60-20:00", "25:00-08:00", "08:00-24:01", "08:00-08:00",
			     "00:00-24:00", "ab:cd-ef:gh", NULL};
	for (int i = 0; bad[i]; i++) {
		why[0] = 0;
		CHECK(schedule_window_parse(bad[i], NULL, &w, why, sizeof(why)) == -1);
		CHECK(why[0] != 0);
	}
	const char *zones[] = {"Mars/Olympus", "/etc/passwd", "../../etc/passwd",
			       "America/../../etc/passwd", "America/Sao Paulo", "", NULL};
	for (int i = 0; zones[i]; i++)
		CHECK(schedule_zone_check(zones[i], why, sizeof(why)) == -1);
	CHECK(schedule_zone_check("America/Sao_Paulo", why, sizeof(why)) == 0);
	CHECK(schedule_zone_check("UTC", why, sizeof(why)) == 0);
	CHECK(schedule_window_parse("08:00-20:00", "Mars/Olympus", &w, why, sizeof(why)) == -1);
}

TEST(offsets)
{
	int64_t ms;
	CHECK(schedule_offset_parse("-5d", &ms) == 0 && ms == -5LL * 86400000);
	CHECK(schedule_offset_parse("0d", &ms) == 0 && ms == 0);
	CHECK(schedule_offset_parse("+3d", &ms) == 0 && ms == 3LL * 86400000);
	CHECK(schedule_offset_parse("15d", &ms) == 0 && ms == 15LL * 86400000);
	CHECK(schedule_offset_parse("+30s", &ms) == 0 && ms == 30000);
	CHECK(schedule_offset_parse("-90m", &ms) == 0 && ms == -90LL * 60000);
	CHECK(schedule_offset_parse("+2h", &ms) == 0 && ms == 7200000);
	CHECK(schedule_offset_parse("366d", &ms) == 0);
	const char *bad[] = {"", "d", "+d", "5", "5x", "5dd", "5 d", " 5d", "367d", "99999s",
			     "+-5d", "1.5d", "0x10d", NULL};
	for (int i = 0; bad[i]; i++)
		CHECK(schedule_offset_parse(bad[i], &ms) == -1);
}

TEST(due_dates)
{
	int64_t ms;
	char why[160];
	CHECK(schedule_due_parse("2026-12-10", NULL, NULL, &ms, why, sizeof(why)) == 0);
	CHECK(ms == at("2026-12-10T12:00:00Z")); /* 09:00 in Sao Paulo */
	CHECK(schedule_due_parse("2026-12-10", "UTC", "18:30", &ms, why, sizeof(why)) == 0);
	CHECK(ms == at("2026-12-10T18:30:00Z"));
	CHECK(schedule_due_parse("2026-12-10T09:00:00-03:00", NULL, NULL, &ms, why, sizeof(why)) == 0);
	CHECK(ms == at("2026-12-10T12:00:00Z"));
	const char *bad[] = {"10/12/2026", "2026-02-30", "2026-13-01", "2026-12-1", "tomorrow", "",
			     NULL};
	for (int i = 0; bad[i]; i++)
		CHECK(schedule_due_parse(bad[i], NULL, NULL, &ms, why, sizeof(why)) == -1);
	CHECK(schedule_due_parse("2026-12-10", NULL, "25:00", &ms, why, sizeof(why)) == -1);
}

/* ---- the store */

static void make_notice(struct notice_new *n, json_t *fields, int64_t due_ms)
{
	memset(n, 0, sizeof(*n));
	uint8_t id[SELO_ID_BYTES];
	id_new(id);
	id_to_text(id, n->id);
	random_bytes(n->salt, 32);
	n->apikey_id = 1;
	n->to = "devedor@destino.example";
	n->payload_json = "{}";
	n->event_fields = fields;
	n->due_ms = due_ms;
}

static void status_is(struct store *s, const char *id, const char *want)
{
	struct notice_rec r;
	struct selo_err err;
	err_clear(&err);
	CHECK(store_notice_get(s, id, -1, &r, &err) == 1);
	CHECK_STR(r.status, want);
	notice_rec_free(&r);
}

TEST(scheduled_is_claimed_only_when_due_and_cancel_wins_before)
{
	struct store_fx fx;
	CHECK(store_fx_open(&fx, "schedule") == 0);
	struct store *s = fx.s;
	json_t *f = json_object();
	struct notice_new n[3];
	int64_t now = clock_now_ms();
	make_notice(&n[0], f, now + 3600 * 1000);
	make_notice(&n[1], f, now + 3600 * 1000);
	make_notice(&n[2], f, 0);
	struct accept_result res[3];
	struct selo_err err;
	err_clear(&err);
	CHECK(store_notices_accept(s, n, 3, res, &err) == 0);
	CHECK_STR(res[0].status, "scheduled");
	CHECK_STR(res[2].status, "queued");
	CHECK(store_next_due(s) == now + 3600 * 1000);
	struct notice_rec *got = NULL;
	size_t k = 0;
	CHECK(store_claim_due(s, now, 10, &got, &k, &err) == 0);
	CHECK(k == 1 && !strcmp(got[0].id, n[2].id));
	notice_recs_free(got, k);
	/* the queued one is now being sent: 409; a scheduled one cancels once */
	CHECK(store_notice_cancel(s, n[2].id, -1, "paid", &err) == -1 && err.status == 409);
	err_clear(&err);
	CHECK(store_notice_cancel(s, n[0].id, 2, "paid", &err) == -1 && err.status == 404);
	err_clear(&err);
	CHECK(store_notice_cancel(s, n[0].id, 1, "paid", &err) == 0);
	CHECK(store_notice_cancel(s, n[0].id, 1, "paid", &err) == 1);
	status_is(s, n[0].id, "canceled");
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_of(s, n[0].id, &ev, &nev, &err) == 0);
	CHECK(nev == 2 && !strcmp(ev[1].type, "canceled"));
	CHECK(nev == 2 && strstr(ev[1].entry, "\"reason\":\"paid\",\"by\":\"api\""));
	event_recs_free(ev, nev);
	/* an hour later only the one still scheduled is claimed */
	got = NULL;
	k = 0;
	CHECK(store_claim_due(s, now + 3600 * 1000, 10, &got, &k, &err) == 0);
	CHECK(k == 1 && !strcmp(got[0].id, n[1].id));
	CHECK(k == 1 && got[0].send_at_ms == now + 3600 * 1000);
	notice_recs_free(got, k);
	json_decref(f);
	store_fx_close(&fx);
}

static void make_sequence(struct store *s, struct sequence_new *q, struct notice_new *steps,
			  size_t n, json_t *f)
{
	static char sid[32];
	uint8_t id[SELO_ID_BYTES];
	char text[27];
	id_new(id);
	id_to_text(id, text);
	snprintf(sid, sizeof(sid), "seq_%s", text);
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < n; i++) {
		make_notice(&steps[i], f, i == 0 ? 0 : now + (int64_t)i * 3600 * 1000);
		steps[i].sequence_id = sid;
		steps[i].step = (int)i;
	}
	memset(q, 0, sizeof(*q));
	q->id = sid;
	q->apikey_id = 1;
	q->request_json = "{\"steps\":[]}";
	q->steps = steps;
	q->n = n;
	struct selo_err err;
	err_clear(&err);
	char replay[32];
	CHECK(store_sequence_add(s, q, replay, &err) == 0);
}

TEST(stopping_a_sequence_cancels_its_steps_left)
{
	struct store_fx fx;
	CHECK(store_fx_open(&fx, "schedule") == 0);
	struct store *s = fx.s;
	json_t *f = json_object();
	struct notice_new steps[3];
	struct sequence_new q;
	make_sequence(s, &q, steps, 3, f);
	struct selo_err err;
	err_clear(&err);
	int64_t canceled = -1;
	CHECK(store_sequence_stop(s, q.id, 2, "paid", &canceled, &err) == -1 && err.status == 404);
	err_clear(&err);
	CHECK(store_sequence_stop(s, q.id, 1, "paid", &canceled, &err) == 0 && canceled == 3);
	CHECK(store_sequence_stop(s, q.id, 1, "agreement", &canceled, &err) == 1 && canceled == 0);
	struct sequence_rec r;
	CHECK(store_sequence_get(s, q.id, 1, &r, &err) == 1);
	CHECK_STR(r.status, "stopped");
	CHECK_STR(r.reason, "paid");
	CHECK(r.nsteps == 3 && r.steps[2].step == 2 && !strcmp(r.steps[2].status, "canceled"));
	sequence_rec_free(&r);
	CHECK(store_sequence_get(s, q.id, 2, &r, &err) == 0);
	json_decref(f);
	store_fx_close(&fx);
}

TEST(a_hard_bounce_of_a_step_stops_its_sequence)
{
	struct store_fx fx;
	CHECK(store_fx_open(&fx, "schedule") == 0);
	struct store *s = fx.s;
	json_t *f = json_object();
	struct notice_new steps[3];
	struct sequence_new q;
	make_sequence(s, &q, steps, 3, f);
	struct selo_err err;
	err_clear(&err);
	struct notice_rec *got = NULL;
	size_t k = 0;
	CHECK(store_claim_due(s, clock_now_ms(), 10, &got, &k, &err) == 0 && k == 1);
	notice_recs_free(got, k);
	json_t *fail = json_pack("{s:i,s:i,s:s,s:s}", "attempt", 1, "code", 550, "enhanced", "5.1.1",
				 "reason", "rejected");
	struct result_rec rr = {steps[0].id, EV_DELIVERY_FAILED, fail, "failed", 0,
				"550 5.1.1 no such user", NULL};
	CHECK(store_delivery_results(s, &rr, 1, &err) == 0);
	struct sequence_rec r;
	CHECK(store_sequence_get(s, q.id, -1, &r, &err) == 1);
	CHECK_STR(r.status, "stopped");
	CHECK_STR(r.reason, "hard_bounce");
	CHECK(r.nsteps == 3 && !strcmp(r.steps[0].status, "failed") &&
	      !strcmp(r.steps[1].status, "canceled") && !strcmp(r.steps[2].status, "canceled"));
	sequence_rec_free(&r);
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_of(s, steps[1].id, &ev, &nev, &err) == 0);
	CHECK(nev == 2 && strstr(ev[1].entry, "\"reason\":\"hard_bounce\",\"by\":\"sequence\""));
	CHECK(nev == 2 && strstr(ev[1].entry, steps[0].id));
	event_recs_free(ev, nev);
	json_decref(fail);
	json_decref(f);
	store_fx_close(&fx);
}

