/* stats.c: the indicators (stats.h, docs/stats.md).
 *
 * The follower turns events into per-notice facts and per-(dim, day)
 * rollups. It reads a batch of events past the cursor on a reader, looks up
 * the facts of their notices (a direct-mapped cache first: a flood of opens
 * of one notice costs a hash and a few additions per event), works out what
 * changed, and writes facts, rollups, delay samples and the new cursor in
 * one writer job that checks the cursor has not moved. Only the class field
 * of opened, clicked and read_confirmed entries is read from the entry bytes.
 *
 * A query sums the rollups of the whole days of its range (in STATS_ZONE)
 * and the facts of the notices accepted in the partial days at its edges,
 * then takes exact nearest-rank percentiles of the delay samples.
 *
 * Errors: store failures are reported as they come (500); a bad parameter
 * is a 400 naming it, a range that ends before it starts a 422. A failed
 * batch drops the cache, so the next round starts from what is stored. */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/diag.h"
#include "selo/stats.h"

#define CACHE_SLOTS 65536   /* notices whose facts the follower keeps in memory */
#define DIMS_MAX 1000000    /* dims remembered by the follower before it forgets them all */
#define STATS_IDLE_MS 250   /* the thread's pause once caught up */
#define STATS_FAIL_MAX_MS 5000 /* its longest pause between failed tries (a full disk) */
#define ZONE_MAX 64

/* ---- small pieces */

static uint64_t hash_bytes(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void vec_push(int64_t **v, size_t *n, size_t *cap, int64_t x)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = x;
}

/* A string -> index map with open addressing; keys owned by the map. */
struct smap {
	char **keys;
	size_t *vals;
	size_t cap, n;
};

static void smap_free(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static size_t *smap_slot(struct smap *m, const char *k, int *found)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct smap g = {xcalloc(m->cap ? m->cap * 2 : 64, sizeof(char *)),
				 xcalloc(m->cap ? m->cap * 2 : 64, sizeof(size_t)),
				 m->cap ? m->cap * 2 : 64, m->n};
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->keys[i])
				continue;
			size_t j = hash_bytes(m->keys[i], strlen(m->keys[i])) & (g.cap - 1);
			while (g.keys[j])
				j = (j + 1) & (g.cap - 1);
			g.keys[j] = m->keys[i];
			g.vals[j] = m->vals[i];
		}
		free(m->keys);
		free(m->vals);
		*m = g;
	}
	size_t j = hash_bytes(k, strlen(k)) & (m->cap - 1);
	while (m->keys[j] && strcmp(m->keys[j], k))
		j = (j + 1) & (m->cap - 1);
	*found = m->keys[j] != NULL;
	if (!*found) {
		m->keys[j] = xstrdup(k);
		m->n++;
	}
	return &m->vals[j];
}

/* ---- days in a zone. Days are counted from 1970-01-01 (day 0). */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static int32_t day_of(GTimeZone *tz, int64_t ms)
{
	int64_t secs = floor_div(ms, 1000);
	int iv = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, secs);
	int64_t off = iv >= 0 ? g_time_zone_get_offset(tz, iv) : 0;
	return (int32_t)floor_div(secs + off, 86400);
}

/* Howard Hinnant's civil_from_days. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Local midnight of the date in tz, in ms since the epoch; -1 when the date
 * cannot be represented. */
static int local_midnight(GTimeZone *tz, int y, int m, int d, int64_t *ms)
{
	GDateTime *dt = g_date_time_new(tz, y, m, d, 0, 0, 0);
	if (!dt)
		return -1;
	*ms = g_date_time_to_unix(dt) * 1000;
	g_date_time_unref(dt);
	return 0;
}

static int64_t day_start(GTimeZone *tz, int32_t day)
{
	int y, m, d;
	civil_from_days(day, &y, &m, &d);
	int64_t ms = (int64_t)day * 86400000;
	if (local_midnight(tz, y, m, d, &ms) != 0)
		return (int64_t)day * 86400000;
	return ms;
}

static void day_name(int32_t day, char out[16])
{
	int y, m, d;
	civil_from_days(day, &y, &m, &d);
	snprintf(out, 16, "%04d-%02d-%02d", y % 10000, m, d);
}

/* ---- the follower */

enum ev_kind { K_NONE, K_ACCEPTED, K_DELIVERED, K_DEFERRED, K_FAILED, K_CANCELED, K_OPENED,
	       K_CLICKED, K_READ, K_SUMMARY };
enum hit_class { CL_HUMAN, CL_PROXY, CL_SCANNER };

struct ev {
	int64_t t;
	char id[27];
	uint8_t kind, cls;
	uint32_t slot; /* its notice in the batch map */
	uint32_t hits; /* opened, clicked: how many hits (a summary's count) */
};

/* A notice during one batch. */
struct bent {
	struct stats_fact f;
	struct stats_notice_info info; /* read for a notice not counted yet */
	uint8_t used, known, dirty, has_info;
};

struct cent {
	struct stats_fact f;
	int valid;
};

struct stats_follower {
	struct store *s;
	GTimeZone *tz;
	struct cent *cache;          /* CACHE_SLOTS, direct-mapped by notice id */
	struct smap dims;            /* dkey -> dim id */
	int64_t mine;                /* the cursor this follower last wrote; -1: none */
	/* one batch */
	struct ev *evs;
	size_t nev, evcap;
	int64_t last_seq;
	struct bent *map;            /* open addressing, mapcap slots */
	size_t mapcap;
	struct stats_delta *deltas;
	size_t ndeltas, dcap;
	struct smap dmap;            /* "dim/day" -> delta index */
};

static enum ev_kind kind_of(const char *t)
{
	static const struct {
		const char *name;
		enum ev_kind k;
	} kinds[] = {
		{"submission_accepted", K_ACCEPTED}, {"delivery_accepted", K_DELIVERED},
		{"relay_accepted", K_DELIVERED},     {"delivery_deferred", K_DEFERRED},
		{"delivery_failed", K_FAILED},       {"canceled", K_CANCELED},
		{"opened", K_OPENED},                {"clicked", K_CLICKED},
		{"read_confirmed", K_READ},          {"tracking_summary", K_SUMMARY},
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(t, kinds[i].name))
			return kinds[i].k;
	return K_NONE;
}

/* The hit's class from our own entry bytes: the first "class" key (it comes
 * before any free text, and personal values are commitments). A hit without
 * a class we know is counted as a scanner's: never as a person's. */
static enum hit_class class_of(const char *entry, size_t len)
{
	static const char key[] = "\"class\":\"";
	const char *p = entry ? memmem(entry, len, key, sizeof(key) - 1) : NULL;
	if (!p)
		return CL_SCANNER;
	p += sizeof(key) - 1;
	size_t rest = len - (size_t)(p - entry);
	if (rest >= 6 && !memcmp(p, "human\"", 6))
		return CL_HUMAN;
	if (rest >= 6 && !memcmp(p, "proxy\"", 6))
		return CL_PROXY;
	return CL_SCANNER;
}

static struct ev *ev_push(struct stats_follower *f, const struct stats_event *e,
			  enum ev_kind k, enum hit_class cls, uint32_t hits)
{
	if (f->nev == f->evcap) {
		f->evcap = f->evcap ? f->evcap * 2 : 1024;
		f->evs = xrealloc(f->evs, f->evcap * sizeof(*f->evs));
	}
	struct ev *v = &f->evs[f->nev++];
	memset(v, 0, sizeof(*v));
	v->t = e->time_ms;
	memcpy(v->id, e->notice_id, sizeof(v->id));
	v->kind = (uint8_t)k;
	v->cls = (uint8_t)cls;
	v->hits = hits;
	return v;
}

/* A tracking_summary counts the hits it folded (docs/tracking.md "Floods"):
 * one opened or clicked per kind and class it names, with their number. */
static void collect_summary(struct stats_follower *f, const struct stats_event *e)
{
	static const char *const classes[] = {"human", "proxy", "scanner"};
	json_t *o = json_loadb(e->entry, e->entry_len, 0, NULL);
	for (int k = 0; k < 2; k++) {
		json_t *by = json_object_get(o, k == 0 ? "opened" : "clicked");
		for (int c = 0; c < 3; c++) {
			json_int_t n = json_integer_value(json_object_get(by, classes[c]));
			for (; n > 0; n -= UINT32_MAX)
				ev_push(f, e, k == 0 ? K_OPENED : K_CLICKED, (enum hit_class)c,
					n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);
		}
	}
	json_decref(o);
}

static int collect_event(void *arg, const struct stats_event *e)
{
	struct stats_follower *f = arg;
	f->last_seq = e->seq;
	enum ev_kind k = kind_of(e->type);
	if (k == K_SUMMARY)
		collect_summary(f, e);
	else if (k == K_OPENED || k == K_CLICKED || k == K_READ)
		ev_push(f, e, k, class_of(e->entry, e->entry_len), 1);
	else if (k != K_NONE)
		ev_push(f, e, k, CL_HUMAN, 0);
	return 0;
}

int stats_follower_new(struct store *s, struct stats_follower **out, struct selo_err *err)
{
	GTimeZone *tz = g_time_zone_new_identifier(STATS_ZONE);
	if (!tz)
		return err_set(err, 500, "no-zone", "stats: the time zone database lacks " STATS_ZONE
			       " (install tzdata)");
	struct stats_follower *f = xcalloc(1, sizeof(*f));
	f->s = s;
	f->tz = tz;
	f->cache = xcalloc(CACHE_SLOTS, sizeof(*f->cache));
	f->mine = -1;
	*out = f;
	return 0;
}

static void batch_reset(struct stats_follower *f)
{
	f->nev = 0;
	for (size_t i = 0; i < f->mapcap; i++)
		if (f->map[i].has_info)
			stats_notice_info_free(&f->map[i].info);
	if (f->map)
		memset(f->map, 0, f->mapcap * sizeof(*f->map));
	for (size_t i = 0; i < f->ndeltas; i++)
		for (int k = 0; k < SD_COUNT; k++)
			free(f->deltas[i].delays[k]);
	f->ndeltas = 0;
	smap_free(&f->dmap);
}

void stats_follower_free(struct stats_follower *f)
{
	if (!f)
		return;
	batch_reset(f);
	free(f->evs);
	free(f->map);
	free(f->deltas);
	free(f->cache);
	smap_free(&f->dims);
	g_time_zone_unref(f->tz);
	free(f);
}

static size_t cache_slot(const char *id)
{
	return hash_bytes(id, strlen(id)) & (CACHE_SLOTS - 1);
}

static void cache_drop(struct stats_follower *f)
{
	memset(f->cache, 0, CACHE_SLOTS * sizeof(*f->cache));
}

/* The batch entry of notice id, made (from the cache when it has it). */
static uint32_t map_get(struct stats_follower *f, const char *id)
{
	size_t j = hash_bytes(id, strlen(id)) & (f->mapcap - 1);
	while (f->map[j].used && strcmp(f->map[j].f.notice_id, id))
		j = (j + 1) & (f->mapcap - 1);
	struct bent *b = &f->map[j];
	if (!b->used) {
		b->used = 1;
		memcpy(b->f.notice_id, id, sizeof(b->f.notice_id));
		struct cent *c = &f->cache[cache_slot(id)];
		if (c->valid && !strcmp(c->f.notice_id, id)) {
			b->f = c->f;
			b->known = 1;
		}
	}
	return (uint32_t)j;
}

/* Facts the cache did not have, in one read. */
static int facts_load(struct stats_follower *f, struct selo_err *err)
{
	size_t n = 0;
	for (size_t i = 0; i < f->mapcap; i++)
		n += f->map[i].used && !f->map[i].known;
	if (!n)
		return 0;
	struct stats_fact *q = xcalloc(n, sizeof(*q));
	int *found = xcalloc(n, sizeof(*found));
	size_t *where = xcalloc(n, sizeof(*where));
	n = 0;
	for (size_t i = 0; i < f->mapcap; i++)
		if (f->map[i].used && !f->map[i].known) {
			memcpy(q[n].notice_id, f->map[i].f.notice_id, sizeof(q[n].notice_id));
			where[n++] = i;
		}
	int r = store_stats_facts_get(f->s, q, n, found, err);
	size_t m = 0;
	for (size_t i = 0; r == 0 && i < n; i++)
		if (found[i]) {
			f->map[where[i]].f = q[i];
			f->map[where[i]].known = 1;
		} else {
			where[m++] = where[i];
		}
	/* The others are new (or not notices): their columns, in one read. */
	const char **ids = xcalloc(m, sizeof(*ids));
	struct stats_notice_info *info = xcalloc(m, sizeof(*info));
	for (size_t i = 0; i < m; i++)
		ids[i] = f->map[where[i]].f.notice_id;
	if (r == 0 && m > 0)
		r = store_stats_notice_info(f->s, ids, m, info, found, err);
	for (size_t i = 0; i < m; i++)
		if (r == 0 && found[i]) {
			f->map[where[i]].info = info[i];
			f->map[where[i]].has_info = 1;
		} else {
			stats_notice_info_free(&info[i]);
		}
	free(ids);
	free(info);
	free(q);
	free(found);
	free(where);
	return r;
}

static struct stats_delta *delta_of(struct stats_follower *f, int64_t dim, int32_t day)
{
	char key[48];
	snprintf(key, sizeof(key), "%lld/%ld", (long long)dim, (long)day);
	int found;
	size_t *ix = smap_slot(&f->dmap, key, &found);
	if (!found) {
		if (f->ndeltas == f->dcap) {
			f->dcap = f->dcap ? f->dcap * 2 : 64;
			f->deltas = xrealloc(f->deltas, f->dcap * sizeof(*f->deltas));
		}
		*ix = f->ndeltas++;
		struct stats_delta *d = &f->deltas[*ix];
		memset(d, 0, sizeof(*d));
		d->dim = dim;
		d->day = day;
	}
	return &f->deltas[*ix];
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The notice's tags, sorted and without repeats, as a JSON array text;
 * NULL for none (or for a value that is not an array of strings). */
static char *tags_normal(const char *tags_json)
{
	json_t *t = tags_json ? json_loads(tags_json, 0, NULL) : NULL;
	size_t n = json_is_array(t) ? json_array_size(t) : 0;
	const char **v = xcalloc(n, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (json_is_string(json_array_get(t, i)))
			v[k++] = json_string_value(json_array_get(t, i));
	if (k > 1)
		qsort(v, k, sizeof(*v), cmp_str);
	json_t *out = json_array();
	for (size_t i = 0; i < k; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]))
			json_array_append_new(out, json_string(v[i]));
	char *s = json_array_size(out) ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	json_decref(t);
	free(v);
	return s;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The dim of a notice (made the first time a combination is seen). */
static int dim_of(struct stats_follower *f, const struct stats_notice_info *in, int64_t *dim,
		  struct selo_err *err)
{
	char *tags = tags_normal(in->tags_json);
	json_t *k = json_pack("[I,o,o,o]", (json_int_t)in->apikey_id, str_or_null(in->template_name),
			      str_or_null(in->segment), tags ? json_loads(tags, 0, NULL) : json_null());
	char *dkey = k ? json_dumps(k, JSON_COMPACT) : NULL;
	json_decref(k);
	int r = -1;
	if (!dkey) {
		err_set(err, 500, "stats-failed", "stats: a notice's dimensions cannot be encoded");
		free(tags);
		return -1;
	}
	if (f->dims.n >= DIMS_MAX)
		smap_free(&f->dims);
	int found;
	size_t *slot = smap_slot(&f->dims, dkey, &found);
	if (found) {
		*dim = (int64_t)*slot;
		r = 0;
	} else if (store_stats_dim(f->s, dkey, in->apikey_id, in->template_name, in->segment, tags,
				   dim, err) == 0) {
		*slot = (size_t)*dim;
		r = 0;
	} else {
		*slot = 0; /* looked up again next time */
		smap_free(&f->dims);
	}
	free(dkey);
	free(tags);
	return r;
}

static void count_once(struct stats_follower *f, struct bent *b, int counter)
{
	if (b->f.flags & (1u << counter))
		return;
	b->f.flags |= 1u << counter;
	delta_of(f, b->f.dim, b->f.day)->c[counter]++;
	b->dirty = 1;
}

static void sample(struct stats_follower *f, struct bent *b, int kind, int64_t from, int64_t to)
{
	struct stats_delta *d = delta_of(f, b->f.dim, b->f.day);
	vec_push(&d->delays[kind], &d->ndelays[kind], &d->cap[kind], to > from ? to - from : 0);
}

static int accept_notice(struct stats_follower *f, struct bent *b, int64_t t,
			 struct selo_err *err)
{
	if (!b->has_info)
		return 0; /* no such notice: nothing to count */
	int64_t dim = 0;
	int r = dim_of(f, &b->info, &dim, err);
	if (r == 0) {
		b->known = 1;
		b->f.apikey_id = b->info.apikey_id;
		b->f.dim = dim;
		b->f.accepted_ms = t;
		b->f.day = day_of(f->tz, t);
		count_once(f, b, SC_ACCEPTED);
	}
	return r;
}

static int apply_event(struct stats_follower *f, const struct ev *v, struct selo_err *err)
{
	struct bent *b = &f->map[v->slot];
	if (v->kind == K_ACCEPTED)
		return b->known ? 0 : accept_notice(f, b, v->t, err);
	if (!b->known)
		return 0; /* a notice the statistics never saw accepted */
	struct stats_fact *x = &b->f;
	int first;
	switch (v->kind) {
	case K_DELIVERED:
		first = !(x->flags & (1u << SC_DELIVERED));
		count_once(f, b, SC_DELIVERED);
		if (first) {
			x->delivered_ms = v->t;
			if (x->flags & (1u << SC_OPENED_HUMAN))
				sample(f, b, SD_OPEN, v->t, x->open_ms);
			if (x->flags & (1u << SC_READ))
				sample(f, b, SD_READ, v->t, x->read_ms);
		}
		break;
	case K_DEFERRED: count_once(f, b, SC_DEFERRED); break;
	case K_FAILED: count_once(f, b, SC_FAILED); break;
	case K_CANCELED: count_once(f, b, SC_CANCELED); break;
	case K_OPENED:
	case K_CLICKED: {
		int open = v->kind == K_OPENED;
		int hit = (open ? 0 : 3) + v->cls;
		x->hits[hit] += v->hits;
		delta_of(f, x->dim, x->day)->c[SC_NOTICE_COUNTERS + hit] += v->hits;
		b->dirty = 1;
		int counter = (open ? SC_OPENED_HUMAN : SC_CLICKED_HUMAN) + v->cls;
		first = !(x->flags & (1u << counter));
		count_once(f, b, counter);
		if (first && open && v->cls == CL_HUMAN) {
			x->open_ms = v->t;
			if (x->flags & (1u << SC_DELIVERED))
				sample(f, b, SD_OPEN, x->delivered_ms, v->t);
		}
		break;
	}
	case K_READ:
		/* A machine that POSTs the confirmation is recorded with its class;
		 * only a person's confirmation is a read. */
		if (v->cls != CL_HUMAN || (x->flags & (1u << SC_READ)))
			break;
		count_once(f, b, SC_READ);
		x->read_ms = v->t;
		if (x->flags & (1u << SC_DELIVERED))
			sample(f, b, SD_READ, x->delivered_ms, v->t);
		break;
	default:
		break;
	}
	return 0;
}

/* One attempt: 0 done, 1 the cursor moved under us, -1 failed. */
static int follow_once(struct stats_follower *f, size_t max, size_t *n, struct selo_err *err)
{
	batch_reset(f);
	int64_t cursor = 0, last = 0;
	f->last_seq = 0;
	if (store_stats_events(f->s, max, collect_event, f, &cursor, &last, err) != 0)
		return -1;
	if (cursor != f->mine) {
		/* Another process counted events since our last batch (or this is
		 * our first): facts we cached may have changed since. */
		cache_drop(f);
		f->mine = -1;
	}
	if (f->last_seq == 0) {
		*n = 0;
		return 0; /* caught up */
	}
	*n = (size_t)(f->last_seq - cursor);
	size_t want = 64;
	while (want < f->nev * 2)
		want *= 2;
	if (want > f->mapcap) {
		free(f->map);
		f->map = xcalloc(want, sizeof(*f->map));
		f->mapcap = want;
	}
	for (size_t i = 0; i < f->nev; i++)
		f->evs[i].slot = map_get(f, f->evs[i].id);
	if (facts_load(f, err) != 0)
		return -1;
	for (size_t i = 0; i < f->nev; i++)
		if (apply_event(f, &f->evs[i], err) != 0)
			return -1;
	size_t nf = 0;
	for (size_t i = 0; i < f->mapcap; i++)
		nf += f->map[i].dirty;
	struct stats_fact *facts = xcalloc(nf, sizeof(*facts));
	nf = 0;
	for (size_t i = 0; i < f->mapcap; i++)
		if (f->map[i].dirty)
			facts[nf++] = f->map[i].f;
	struct stats_batch b = {cursor, f->last_seq, facts, nf, f->deltas, f->ndeltas};
	struct selo_err e;
	err_clear(&e);
	int r = store_stats_apply(f->s, &b, &e);
	free(facts);
	if (r != 0) {
		if (e.status == 409)
			return 1;
		*err = e;
		return -1;
	}
	f->mine = f->last_seq;
	for (size_t i = 0; i < f->mapcap; i++)
		if (f->map[i].used && f->map[i].known) {
			struct cent *c = &f->cache[cache_slot(f->map[i].f.notice_id)];
			c->f = f->map[i].f;
			c->valid = 1;
		}
	return 0;
}

int stats_follow(struct stats_follower *f, size_t max, size_t *n, struct selo_err *err)
{
	*n = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		int r = follow_once(f, max ? max : STATS_BATCH, n, err);
		batch_reset(f);
		if (r <= 0) {
			if (r < 0)
				cache_drop(f);
			return r;
		}
		/* Another process counted these events: what we cached is stale. */
		cache_drop(f);
		smap_free(&f->dims);
		*n = 0;
	}
	return 0;
}

int stats_catch_up(struct stats_follower *f, struct selo_err *err)
{
	size_t n;
	do {
		if (stats_follow(f, STATS_BATCH, &n, err) != 0)
			return -1;
	} while (n > 0);
	return 0;
}

/* ---- the thread of `selo serve` */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	int started, stop;
	struct stats_follower *f;
} RUN = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *stats_main(void *arg)
{
	(void)arg;
	struct diag_limit fail_log = DIAG_LIMIT_INIT;
	int64_t delay = STATS_IDLE_MS;
	/* Counting may lag; the tracker and the API may not: when they compete
	 * for the cores the follower waits (nice 19, as the senders). It
	 * catches up when the flood ends; as_of says how far it is. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
		diag_warn("stats: cannot lower the follower's priority: %s", strerror(errno));
	pthread_mutex_lock(&RUN.mu);
	while (!RUN.stop) {
		pthread_mutex_unlock(&RUN.mu);
		struct selo_err err;
		err_clear(&err);
		size_t n = 0;
		/* On a store several nodes share, one follows at a time (the
		 * others wait: they would count the same events). */
		int lead = store_lead(RUN.f->s, STORE_ROLE_STATS, &err);
		int r = lead == 1 ? stats_follow(RUN.f, STATS_BATCH, &n, &err) : lead;
		/* A failed batch wrote nothing and is counted again; while the
		 * store fails (a full disk) the tries slow down to one every
		 * STATS_FAIL_MAX_MS, as reading and counting a batch is not free. */
		if (r != 0) {
			diag_warn_limited(&fail_log, "stats: counting events failed (retried): %s", err.msg);
			delay = delay * 2 < STATS_FAIL_MAX_MS ? delay * 2 : STATS_FAIL_MAX_MS;
		} else {
			diag_ended(&fail_log, "stats: counting events works again");
			delay = STATS_IDLE_MS;
		}
		pthread_mutex_lock(&RUN.mu);
		if (r == 0 && n >= STATS_BATCH)
			continue; /* behind: the next batch at once */
		struct timespec ts = clock_deadline(CLOCK_REALTIME, delay);
		if (!RUN.stop)
			pthread_cond_timedwait(&RUN.cv, &RUN.mu, &ts);
	}
	pthread_mutex_unlock(&RUN.mu);
	return NULL;
}

int stats_start(struct store *s, struct selo_err *err)
{
	if (RUN.started)
		return 0;
	if (stats_follower_new(s, &RUN.f, err) != 0)
		return -1;
	RUN.stop = 0;
	if (pthread_create(&RUN.th, NULL, stats_main, NULL) != 0) {
		stats_follower_free(RUN.f);
		RUN.f = NULL;
		return err_set(err, 500, "thread", "stats: cannot start the statistics thread");
	}
	RUN.started = 1;
	return 0;
}

void stats_stop(void)
{
	if (!RUN.started)
		return;
	pthread_mutex_lock(&RUN.mu);
	RUN.stop = 1;
	pthread_cond_broadcast(&RUN.cv);
	pthread_mutex_unlock(&RUN.mu);
	pthread_join(RUN.th, NULL);
	stats_follower_free(RUN.f);
	RUN.f = NULL;
	RUN.started = 0;
}

/* ---- percentiles */

static void swap64(int64_t *a, int64_t *b)
{
	int64_t t = *a;
	*a = *b;
	*b = t;
}

/* Quickselect: v[k] is the k-th smallest afterwards. Middle-of-three pivot
 * and a three-way split, so repeated values (common: whole seconds) and
 * sorted input stay linear. */
static int64_t select_kth(int64_t *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n; /* [lo, hi) holds the answer */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		int64_t a = v[lo], b = v[mid], c = v[hi - 1];
		int64_t p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
		size_t lt = lo, i = lo, gt = hi;
		while (i < gt) {
			if (v[i] < p)
				swap64(&v[lt++], &v[i++]);
			else if (v[i] > p)
				swap64(&v[i], &v[--gt]);
			else
				i++;
		}
		if (k < lt)
			hi = lt;
		else if (k >= gt)
			lo = gt;
		else
			return p;
	}
	return v[lo];
}

int64_t stats_percentile(int64_t *v, size_t n, int p)
{
	if (n == 0)
		return 0;
	if (p < 1)
		p = 1;
	if (p > 100)
		p = 100;
	size_t rank = (size_t)(((unsigned long long)p * n + 99) / 100); /* ceil(p n / 100) */
	return select_kth(v, n, rank ? rank - 1 : 0);
}

/* ---- queries */

enum group_by { BY_NONE, BY_TEMPLATE, BY_SEGMENT, BY_TAG, BY_DAY };

struct group {
	char *name; /* NULL: the null group */
	int64_t c[SC_COUNT];
	int64_t *d[SD_COUNT];
	size_t nd[SD_COUNT], capd[SD_COUNT];
};

struct qdim {
	int64_t id;
	size_t *groups; /* indexes into q->groups (not for BY_DAY) */
	size_t ngroups;
};

struct qstate {
	enum group_by by;
	GTimeZone *tz;   /* the query's zone */
	int fast;        /* tz is STATS_ZONE: fact.day is a day in it */
	struct qdim *dims;
	size_t ndims, capdims;
	struct group *groups;
	size_t ngroups, capgroups;
	struct smap index; /* "s:name" or "n" -> group */
	struct group total;
};

static size_t group_of(struct qstate *q, const char *name)
{
	size_t len = name ? strlen(name) : 0;
	char *key = xcalloc(len + 3, 1);
	if (name) {
		key[0] = 's', key[1] = ':';
		memcpy(key + 2, name, len);
	} else {
		key[0] = 'n';
	}
	int found;
	size_t *ix = smap_slot(&q->index, key, &found);
	free(key);
	if (!found) {
		if (q->ngroups == q->capgroups) {
			q->capgroups = q->capgroups ? q->capgroups * 2 : 16;
			q->groups = xrealloc(q->groups, q->capgroups * sizeof(*q->groups));
		}
		*ix = q->ngroups++;
		struct group *g = &q->groups[*ix];
		memset(g, 0, sizeof(*g));
		if (name)
			g->name = xstrdup(name);
	}
	return *ix;
}

static void qdim_add_group(struct qdim *d, size_t g)
{
	for (size_t i = 0; i < d->ngroups; i++)
		if (d->groups[i] == g)
			return;
	d->groups = xrealloc(d->groups, (d->ngroups + 1) * sizeof(*d->groups));
	d->groups[d->ngroups++] = g;
}

static void on_dim(void *arg, const struct stats_dim *sd)
{
	struct qstate *q = arg;
	if (q->ndims == q->capdims) {
		q->capdims = q->capdims ? q->capdims * 2 : 64;
		q->dims = xrealloc(q->dims, q->capdims * sizeof(*q->dims));
	}
	struct qdim *d = &q->dims[q->ndims++];
	memset(d, 0, sizeof(*d));
	d->id = sd->id;
	if (q->by == BY_TEMPLATE)
		qdim_add_group(d, group_of(q, sd->template_name));
	else if (q->by == BY_SEGMENT)
		qdim_add_group(d, group_of(q, sd->segment));
	if (q->by != BY_TAG)
		return;
	json_t *t = sd->tags_json ? json_loads(sd->tags_json, 0, NULL) : NULL;
	size_t i;
	json_t *v;
	json_array_foreach(t, i, v)
		if (json_is_string(v))
			qdim_add_group(d, group_of(q, json_string_value(v)));
	if (d->ngroups == 0)
		qdim_add_group(d, group_of(q, NULL));
	json_decref(t);
}

static struct qdim *dim_find(struct qstate *q, int64_t id)
{
	size_t lo = 0, hi = q->ndims;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (q->dims[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < q->ndims && q->dims[lo].id == id ? &q->dims[lo] : NULL;
}

/* Calls add(group) for the total and each group the row belongs to. */
#define FOR_GROUPS(q, d, day, g, ...)                                        \
	do {                                                                  \
		struct group *g = &(q)->total;                                \
		__VA_ARGS__;                                                         \
		if ((q)->by == BY_DAY) {                                      \
			char dn_[16];                                         \
			day_name(day, dn_);                                   \
			size_t gi_ = group_of(q, dn_);                        \
			g = &(q)->groups[gi_];                                \
			__VA_ARGS__;                                                 \
		} else {                                                      \
			for (size_t i_ = 0; i_ < (d)->ngroups; i_++) {        \
				g = &(q)->groups[(d)->groups[i_]];            \
				__VA_ARGS__;                                         \
			}                                                     \
		}                                                             \
	} while (0)

static void on_rollup(void *arg, int64_t dim, int32_t day, const int64_t c[SC_COUNT])
{
	struct qstate *q = arg;
	struct qdim *d = dim_find(q, dim);
	if (!d)
		return;
	FOR_GROUPS(q, d, day, g, for (int k = 0; k < SC_COUNT; k++) g->c[k] += c[k]);
}

static void group_samples(struct group *g, int kind, const int64_t *v, size_t n)
{
	if (n == 0)
		return;
	if (g->nd[kind] + n > g->capd[kind]) {
		size_t cap = g->capd[kind] ? g->capd[kind] : 64;
		while (cap < g->nd[kind] + n)
			cap *= 2;
		g->d[kind] = xrealloc(g->d[kind], cap * sizeof(int64_t));
		g->capd[kind] = cap;
	}
	memcpy(g->d[kind] + g->nd[kind], v, n * sizeof(int64_t));
	g->nd[kind] += n;
}

static void on_delays(void *arg, int64_t dim, int32_t day, int kind, const int64_t *v, size_t n)
{
	struct qstate *q = arg;
	struct qdim *d = dim_find(q, dim);
	if (!d)
		return;
	FOR_GROUPS(q, d, day, g, group_samples(g, kind, v, n));
}

static void on_fact(void *arg, const struct stats_fact *f)
{
	struct qstate *q = arg;
	struct qdim *d = dim_find(q, f->dim);
	if (!d)
		return;
	int64_t c[SC_COUNT] = {0};
	for (int k = 0; k < SC_NOTICE_COUNTERS; k++)
		c[k] = (f->flags >> k) & 1;
	for (int k = 0; k < STATS_NHITS; k++)
		c[SC_NOTICE_COUNTERS + k] = f->hits[k];
	int delivered = c[SC_DELIVERED] != 0;
	int64_t open = f->open_ms > f->delivered_ms ? f->open_ms - f->delivered_ms : 0;
	int64_t read = f->read_ms > f->delivered_ms ? f->read_ms - f->delivered_ms : 0;
	int has_open = delivered && c[SC_OPENED_HUMAN], has_read = delivered && c[SC_READ];
	int32_t day = q->fast ? f->day : day_of(q->tz, f->accepted_ms);
	FOR_GROUPS(q, d, day, g, {
		for (int k = 0; k < SC_COUNT; k++)
			g->c[k] += c[k];
		if (has_open)
			group_samples(g, SD_OPEN, &open, 1);
		if (has_read)
			group_samples(g, SD_READ, &read, 1);
	});
}

static void group_free(struct group *g)
{
	free(g->name);
	for (int k = 0; k < SD_COUNT; k++)
		free(g->d[k]);
}

static void qstate_free(struct qstate *q)
{
	for (size_t i = 0; i < q->ndims; i++)
		free(q->dims[i].groups);
	free(q->dims);
	for (size_t i = 0; i < q->ngroups; i++)
		group_free(&q->groups[i]);
	free(q->groups);
	group_free(&q->total);
	smap_free(&q->index);
	if (q->tz)
		g_time_zone_unref(q->tz);
}

static json_t *ratio(int64_t a, int64_t b)
{
	return b > 0 ? json_real((double)a / (double)b) : json_null();
}

static json_t *classes(const int64_t *c)
{
	return json_pack("{s:I,s:I,s:I}", "human", (json_int_t)c[0], "proxy", (json_int_t)c[1],
			 "scanner", (json_int_t)c[2]);
}

static json_t *delay_json(int64_t *v, size_t n)
{
	if (n == 0)
		return json_pack("{s:i,s:n,s:n}", "samples", 0, "median_s", "p90_s");
	double med = (double)stats_percentile(v, n, 50) / 1000.0;
	double p90 = (double)stats_percentile(v, n, 90) / 1000.0;
	return json_pack("{s:I,s:f,s:f}", "samples", (json_int_t)n, "median_s", med, "p90_s", p90);
}

static json_t *group_json(struct group *g, int named)
{
	const int64_t *c = g->c;
	json_t *o = json_object();
	if (named)
		json_object_set_new(o, "group", str_or_null(g->name));
	json_object_set_new(o, "accepted", json_integer(c[SC_ACCEPTED]));
	json_object_set_new(o, "delivered", json_integer(c[SC_DELIVERED]));
	json_object_set_new(o, "deferred", json_integer(c[SC_DEFERRED]));
	json_object_set_new(o, "failed", json_integer(c[SC_FAILED]));
	json_object_set_new(o, "canceled", json_integer(c[SC_CANCELED]));
	json_object_set_new(o, "opened", classes(c + SC_OPENED_HUMAN));
	json_object_set_new(o, "clicked", classes(c + SC_CLICKED_HUMAN));
	json_object_set_new(o, "read_confirmed", json_integer(c[SC_READ]));
	json_object_set_new(o, "hits", json_pack("{s:o,s:o}", "opened",
						 classes(c + SC_OPEN_HITS_HUMAN), "clicked",
						 classes(c + SC_CLICK_HITS_HUMAN)));
	json_object_set_new(o, "rates",
			    json_pack("{s:o,s:o,s:o,s:o,s:o}", "delivered",
				      ratio(c[SC_DELIVERED], c[SC_ACCEPTED]), "failed",
				      ratio(c[SC_FAILED], c[SC_ACCEPTED]), "human_opened",
				      ratio(c[SC_OPENED_HUMAN], c[SC_DELIVERED]), "human_clicked",
				      ratio(c[SC_CLICKED_HUMAN], c[SC_DELIVERED]), "read_confirmed",
				      ratio(c[SC_READ], c[SC_DELIVERED])));
	json_object_set_new(o, "time_to_human_open", delay_json(g->d[SD_OPEN], g->nd[SD_OPEN]));
	json_object_set_new(o, "time_to_read", delay_json(g->d[SD_READ], g->nd[SD_READ]));
	return o;
}

static int cmp_group(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	if (!x->name || !y->name)
		return !x->name - !y->name; /* null last */
	return strcmp(x->name, y->name);
}

/* A bound: "YYYY-MM-DD" (a whole day in tz: its start for from, the start
 * of the next day for to) or an RFC 3339 date-time. */
static int bound_parse(const char *s, GTimeZone *tz, int is_to, int64_t *ms)
{
	if (strlen(s) == 10) {
		int y, m, d;
		char tail;
		if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || s[4] != '-' ||
		    s[7] != '-' || y < 1 || !g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y))
			return -1;
		for (int i = 0; i < 10; i++)
			if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
				return -1;
		GDateTime *dt = g_date_time_new(tz, y, m, d, 0, 0, 0);
		if (!dt)
			return -1;
		if (is_to) {
			GDateTime *next = g_date_time_add_days(dt, 1);
			g_date_time_unref(dt);
			if (!next)
				return -1;
			dt = next;
		}
		*ms = g_date_time_to_unix(dt) * 1000;
		g_date_time_unref(dt);
		return 0;
	}
	return clock_parse_rfc3339(s, ms);
}

/* An IANA name ("America/Sao_Paulo", "UTC") or a fixed offset ("-03:00"):
 * GLib would also open an absolute path or walk out of the zone directory,
 * which a request must not make it do. */
static int zone_name_ok(const char *z)
{
	size_t n = strlen(z);
	if (n == 0 || n > ZONE_MAX || z[0] == '/' || strstr(z, "..") || strstr(z, "//"))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!g_ascii_isalnum(z[i]) && !strchr("/_+-:", z[i]))
			return 0;
	return 1;
}

static int params_check(const struct stats_params *p, struct qstate *q, int64_t *a, int64_t *b,
			int *has_a, int *has_b, struct selo_err *err)
{
	static const char *const names[] = {"template", "segment", "tag", "day"};
	q->by = BY_NONE;
	if (p->group_by && p->group_by[0]) {
		for (int i = 0; i < 4; i++)
			if (!strcmp(p->group_by, names[i]))
				q->by = (enum group_by)(BY_TEMPLATE + i);
		if (q->by == BY_NONE) {
			err_field(err, "group_by", "must be template, segment, tag or day");
			return err_set(err, 400, "invalid-query",
				       "group_by must be template, segment, tag or day");
		}
	}
	const char *zone = p->zone && p->zone[0] ? p->zone : STATS_ZONE;
	if (!zone_name_ok(zone) || !(q->tz = g_time_zone_new_identifier(zone))) {
		err_field(err, "zone", "must be an IANA time zone such as " STATS_ZONE " or UTC");
		return err_set(err, 400, "invalid-query",
			       "zone is not a time zone this server knows (an IANA name such as "
			       STATS_ZONE " or UTC)");
	}
	q->fast = !strcmp(zone, STATS_ZONE);
	*has_a = p->from && p->from[0];
	*has_b = p->to && p->to[0];
	if (*has_a && (strlen(p->from) > 40 || bound_parse(p->from, q->tz, 0, a) != 0))
		err_field(err, "from", "must be a date (YYYY-MM-DD) or an RFC 3339 date-time");
	if (*has_b && (strlen(p->to) > 40 || bound_parse(p->to, q->tz, 1, b) != 0))
		err_field(err, "to", "must be a date (YYYY-MM-DD) or an RFC 3339 date-time");
	if (err->nfields)
		return err_set(err, 400, "invalid-query",
			       "from and to must be dates (YYYY-MM-DD, whole days in the zone) or "
			       "RFC 3339 date-times such as 2026-12-01T00:00:00Z");
	if (*has_a && *has_b && *a >= *b) {
		err_field(err, "to", "must come after from");
		return err_set(err, 422, "invalid-range",
			       "the range is empty: to must come after from (a date as to includes "
			       "that whole day; a date-time as to is excluded)");
	}
	return 0;
}

/* Which rollup days and which fact ranges make [a, b). */
static void plan(struct qstate *q, int64_t a, int64_t b, int has_a, int has_b,
		 struct stats_scan *sc)
{
	sc->day_from = 1;
	sc->day_to = 0;
	sc->nranges = 0;
	int64_t lo = has_a ? a : INT64_MIN, hi = has_b ? b : INT64_MAX;
	if (!q->fast) {
		sc->ms_from[0] = lo, sc->ms_to[0] = hi, sc->nranges = 1;
		return;
	}
	int32_t d0 = INT32_MIN / 2, d1 = INT32_MAX / 2;
	if (has_a) {
		d0 = day_of(q->tz, a);
		if (day_start(q->tz, d0) != a)
			d0++;
	}
	if (has_b)
		d1 = day_of(q->tz, b) - 1;
	if (d0 > d1) {
		sc->ms_from[0] = lo, sc->ms_to[0] = hi, sc->nranges = 1;
		return;
	}
	sc->day_from = d0, sc->day_to = d1;
	if (has_a && a < day_start(q->tz, d0)) {
		sc->ms_from[sc->nranges] = a;
		sc->ms_to[sc->nranges++] = day_start(q->tz, d0);
	}
	if (has_b && day_start(q->tz, d1 + 1) < b) {
		sc->ms_from[sc->nranges] = day_start(q->tz, d1 + 1);
		sc->ms_to[sc->nranges++] = b;
	}
}

static json_t *time_or_null(int has, int64_t ms)
{
	if (!has)
		return json_null();
	char t[32];
	clock_rfc3339(ms, t);
	return json_string(t);
}

int stats_query(struct store *s, const struct stats_params *p, json_t **out,
		struct selo_err *err)
{
	*out = NULL;
	struct qstate q;
	memset(&q, 0, sizeof(q));
	int64_t a = 0, b = 0;
	int has_a = 0, has_b = 0;
	if (params_check(p, &q, &a, &b, &has_a, &has_b, err) != 0) {
		qstate_free(&q);
		return -1;
	}
	struct stats_scan sc;
	memset(&sc, 0, sizeof(sc));
	sc.apikey_id = p->apikey_id;
	sc.arg = &q;
	sc.dim = on_dim, sc.rollup = on_rollup, sc.delays = on_delays, sc.fact = on_fact;
	plan(&q, a, b, has_a, has_b, &sc);
	if (store_stats_scan(s, &sc, err) != 0) {
		qstate_free(&q);
		return -1;
	}
	if (q.ngroups > 1)
		qsort(q.groups, q.ngroups, sizeof(*q.groups), cmp_group);
	json_t *groups = json_array();
	for (size_t i = 0; i < q.ngroups; i++)
		json_array_append_new(groups, group_json(&q.groups[i], 1));
	static const char *const names[] = {NULL, "template", "segment", "tag", "day"};
	char asof[32];
	clock_rfc3339(sc.cursor_time_ms, asof);
	json_t *doc = json_object();
	json_object_set_new(doc, "from", time_or_null(has_a, a));
	json_object_set_new(doc, "to", time_or_null(has_b, b));
	json_object_set_new(doc, "zone", json_string(p->zone && p->zone[0] ? p->zone : STATS_ZONE));
	json_object_set_new(doc, "group_by", str_or_null(names[q.by]));
	json_object_set_new(doc, "as_of",
			    json_pack("{s:I,s:o,s:I}", "seq", (json_int_t)sc.cursor, "time",
				      sc.cursor ? json_string(asof) : json_null(), "pending_events",
				      (json_int_t)(sc.last_seq - sc.cursor)));
	json_object_set_new(doc, "totals", group_json(&q.total, 0));
	json_object_set_new(doc, "groups", groups);
	qstate_free(&q);
	*out = doc;
	return 0;
}

/* ---- the table of `selo stats` */

static void duration(const json_t *v, char out[32])
{
	if (!json_is_number(v)) {
		snprintf(out, 32, "-");
		return;
	}
	double s = json_number_value(v);
	long long t = (long long)(s + 0.5);
	if (s < 60)
		snprintf(out, 32, "%.1fs", s);
	else if (t < 3600)
		snprintf(out, 32, "%lldm%02llds", t / 60, t % 60);
	else if (t < 86400)
		snprintf(out, 32, "%lldh%02lldm", t / 3600, t % 3600 / 60);
	else
		snprintf(out, 32, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
}

static void percent(const json_t *v, char out[32])
{
	if (json_is_number(v))
		snprintf(out, 32, "%.1f%%", json_number_value(v) * 100);
	else
		snprintf(out, 32, "-");
}

static long long geti(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void row_print(FILE *out, const char *name, const json_t *g)
{
	const json_t *op = json_object_get(g, "opened"), *cl = json_object_get(g, "clicked");
	const json_t *r = json_object_get(g, "rates");
	const json_t *to = json_object_get(g, "time_to_human_open");
	const json_t *tr = json_object_get(g, "time_to_read");
	char dr[32], orr[32], rr[32], om[32], o9[32], rm[32], r9[32];
	percent(json_object_get(r, "delivered"), dr);
	percent(json_object_get(r, "human_opened"), orr);
	percent(json_object_get(r, "read_confirmed"), rr);
	duration(json_object_get(to, "median_s"), om);
	duration(json_object_get(to, "p90_s"), o9);
	duration(json_object_get(tr, "median_s"), rm);
	duration(json_object_get(tr, "p90_s"), r9);
	char opens[48], clicks[48];
	snprintf(opens, sizeof(opens), "%lld/%lld/%lld", geti(op, "human"), geti(op, "proxy"),
		 geti(op, "scanner"));
	snprintf(clicks, sizeof(clicks), "%lld/%lld/%lld", geti(cl, "human"), geti(cl, "proxy"),
		 geti(cl, "scanner"));
	fprintf(out, "%-24.24s %9lld %9lld %8lld %7lld %8lld %17s %17s %8lld %7s %7s %7s %8s %8s %8s %8s\n",
		name, geti(g, "accepted"), geti(g, "delivered"), geti(g, "deferred"), geti(g, "failed"),
		geti(g, "canceled"), opens, clicks, geti(g, "read_confirmed"), dr, orr, rr, om, o9,
		rm, r9);
}

void stats_print_table(const json_t *doc, FILE *out)
{
	const json_t *asof = json_object_get(doc, "as_of");
	const char *by = json_string_value(json_object_get(doc, "group_by"));
	const char *from = json_string_value(json_object_get(doc, "from"));
	const char *to = json_string_value(json_object_get(doc, "to"));
	fprintf(out, "Notices accepted from %s to %s (%s), events counted up to #%lld\n",
		from ? from : "the first", to ? to : "now",
		json_string_value(json_object_get(doc, "zone")), geti(asof, "seq"));
	fprintf(out, "opened and clicked: notices with a human/proxy/scanner hit; %% of accepted "
		     "(delivered) and of delivered (open, read); times from delivery\n\n");
	fprintf(out, "%-24s %9s %9s %8s %7s %8s %17s %17s %8s %7s %7s %7s %8s %8s %8s %8s\n",
		by ? by : "", "accepted", "delivered", "deferred", "failed", "canceled",
		"opened h/p/s", "clicked h/p/s", "read", "deliv%", "open%", "read%", "open-med",
		"open-p90", "read-med", "read-p90");
	size_t i;
	const json_t *g;
	json_array_foreach(json_object_get(doc, "groups"), i, g) {
		const char *name = json_string_value(json_object_get(g, "group"));
		row_print(out, name ? name : "(null)", g);
	}
	row_print(out, "TOTAL", json_object_get(doc, "totals"));
}
