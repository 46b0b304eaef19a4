#!/usr/bin/python3
"""Statistics (issue 9, item 5; docs/stats.md) through the real binary.

1. A store of 10^5 generated notices (written with sqlite3 in the real
   schema, entries in the real format; several API keys, templates, segments,
   tags, classes, days, deferred/failed/canceled): `selo stats --json` and
   GET /v1/stats of a running `selo serve` equal this file's own count over
   the events, for every group_by, counts and exact percentiles, over whole
   days, date-time edges and another zone; a key sees only its own notices.
   `selo serve` killed (SIGKILL) while counting loses and doubles nothing.
2. End to end through the API and the tracker: a browser's open counts as
   human, a Gmail proxy's as proxy only, with its time from delivery.
3. Bad parameters answer 400/422 problem+json naming the parameter."""
import datetime, json, os, random, re, signal, sqlite3, subprocess, sys, time, urllib.parse
import zoneinfo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

N = int(os.environ.get('SELO_STATS_NOTICES', '100000'))
ZONE = zoneinfo.ZoneInfo('America/Sao_Paulo')
CHROME = ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
          'Chrome/131.0.0.0 Safari/537.36')
GMAIL_PROXY = 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)'
CLASSES = ('human', 'proxy', 'scanner')
BY = ('template', 'segment', 'tag', 'day')


def rfc3339(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%S.') + f'{ms % 1000:03d}Z'


def entry(kind, nid, ms, extra=''):
    return (f'{{"v":1,"type":"{kind}","notice":"{nid}","time":"{rfc3339(ms)}"{extra}}}').encode()


def hit_fields(ms, cls, method='GET'):
    return (f',"arrived":"{rfc3339(ms - 40)}","method":"{method}","class":"{cls}",'
            f'"reason":"generated","detail":"class \\"human\\" says nothing",'
            f'"ip":"sha256:{"ab" * 32}","seconds_after_delivery":12')


def generate(data, keys, n=N):
    """Writes n notices and their events; returns the events as
    (notice, type, time_ms, class) in seq order and the notices' columns."""
    rnd = random.Random(9)
    t0 = int(datetime.datetime(2026, 10, 20, tzinfo=datetime.timezone.utc).timestamp() * 1000)
    span = 40 * 86400 * 1000
    notices, events = {}, []
    for i in range(n):
        nid = f'01STATS{i:019d}'
        key = keys[0] if rnd.random() < 0.6 else keys[1]
        tpl = rnd.choice(['lembrete', 'vencimento', 'atraso', 'acordo', None])
        seg = rnd.choice(['varejo', 'atacado', 'pj', None])
        tags = rnd.sample(['boleto', 'pix', 'cartao', 'vip'], rnd.choice([0, 0, 1, 1, 2]))
        if tags and rnd.random() < 0.05:
            tags.append(tags[0])  # a repeated tag counts once
        t = t0 + rnd.randrange(span)
        notices[nid] = (key, tpl, seg, json.dumps(tags) if tags or rnd.random() < 0.5 else None, t)
        ev = [(t, 'submission_accepted', None)]
        r = rnd.random()
        if r < 0.05:
            ev.append((t + 3_600_000, 'canceled', None))
        elif r < 0.10:
            ev.append((t + rnd.randrange(1, 60_000), 'delivery_failed', None))
        else:
            d = t + rnd.randrange(1_000, 600_000)
            if r < 0.20:
                ev.append((t + 500, 'delivery_deferred', None))
                if rnd.random() < 0.3:
                    ev.append((t + 700, 'delivery_deferred', None))
                if rnd.random() < 0.3:
                    ev.append((d + 3_600_000, 'delivery_failed', None))
                    d = None
            if d is not None:
                ev.append((d - 200, 'content_sealed', None))
                ev.append((d, rnd.choice(['delivery_accepted', 'relay_accepted']), None))
                if rnd.random() < 0.01:
                    ev.append((d + 86_400_000, 'delivery_failed', None))  # a later bounce
                if rnd.random() < 0.3:
                    ev.append((d + rnd.randrange(1_000, 100_000), 'opened', 'proxy'))
                if rnd.random() < 0.1:
                    ev.append((d + rnd.randrange(100, 5_000), 'opened', 'scanner'))
                if rnd.random() < 0.5:
                    first = d + int(rnd.expovariate(1 / 21_600_000))
                    if rnd.random() < 0.02:
                        first = max(t + 1, d - rnd.randrange(1, 5_000))  # before the delivery
                    for k in range(rnd.choice([1, 1, 2, 3])):
                        ev.append((first + k * 60_000, 'opened', 'human'))
                for cls, p in (('human', 0.2), ('scanner', 0.2), ('proxy', 0.05)):
                    if rnd.random() < p:
                        ev.append((d + rnd.randrange(1_000, 90_000_000), 'clicked', cls))
                if rnd.random() < 0.15:
                    ev.append((d + rnd.randrange(60_000, 200_000_000), 'read_confirmed', 'human'))
                if rnd.random() < 0.03:
                    ev.append((d + 2_000, 'read_confirmed', 'scanner'))
        events += [(tm, nid, kind, cls) for tm, kind, cls in ev]
    events.sort()
    db = sqlite3.connect(os.path.join(data, 'selo.db'))
    db.executemany(
        'INSERT INTO notices(id, apikey_id, status, to_addr, template, reference, segment,'
        ' tags_json, payload_json, salt, created_ms, updated_ms, next_attempt_ms)'
        ' VALUES(?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)',
        [(nid, k, 'delivered', 'devedor@destino.example', tpl, seg, tags, '{}', b'\0' * 32,
          t, t, t) for nid, (k, tpl, seg, tags, t) in notices.items()])
    rows = []
    for tm, nid, kind, cls in events:
        extra = hit_fields(tm, cls, 'POST' if kind == 'read_confirmed' else 'GET') if cls else ''
        rows.append((nid, kind, tm, entry(kind, nid, tm, extra)))
    db.executemany('INSERT INTO events(notice_id, type, time_ms, entry) VALUES(?, ?, ?, ?)', rows)
    db.commit()
    db.close()
    return notices, [(nid, kind, tm, cls) for tm, nid, kind, cls in events]


def facts(notices, events):
    """This file's own count: per notice, what the statistics should know."""
    f = {}
    for nid, kind, tm, cls in events:
        if kind == 'submission_accepted':
            f[nid] = {'acc': tm, 'flags': set(), 'hits': {}, 'deliv': None, 'open': None,
                      'read': None}
            continue
        x = f[nid]
        if kind in ('delivery_accepted', 'relay_accepted'):
            x['flags'].add('delivered')
            x['deliv'] = x['deliv'] or tm
        elif kind in ('delivery_deferred', 'delivery_failed', 'canceled'):
            x['flags'].add({'delivery_deferred': 'deferred', 'delivery_failed': 'failed'}
                           .get(kind, kind))
        elif kind in ('opened', 'clicked'):
            x['flags'].add(f'{kind}_{cls}')
            x['hits'][f'{kind}_{cls}'] = x['hits'].get(f'{kind}_{cls}', 0) + 1
            if kind == 'opened' and cls == 'human' and x['open'] is None:
                x['open'] = tm
        elif kind == 'read_confirmed' and cls == 'human' and x['read'] is None:
            x['flags'].add('read')
            x['read'] = tm
    return f


def local_midnight(date):
    return int(datetime.datetime(date.year, date.month, date.day, tzinfo=ZONE).timestamp() * 1000)


def bound(s, is_to):
    if len(s) == 10:
        d = datetime.date.fromisoformat(s)
        return local_midnight(d + datetime.timedelta(days=1) if is_to else d)
    return int(datetime.datetime.fromisoformat(s.replace('Z', '+00:00')).timestamp() * 1000)


def pct(v, p):
    v = sorted(v)
    return v[(p * len(v) + 99) // 100 - 1] / 1000


def expected(notices, f, key=None, by=None, frm=None, to=None, zone=ZONE):
    lo = bound(frm, False) if frm else -2**63
    hi = bound(to, True) if to else 2**63
    groups = {}

    def add(name, x):
        g = groups.setdefault(name, {'n': {}, 'open': [], 'read': []})
        for k in x['flags'] | {'accepted'}:
            g['n'][k] = g['n'].get(k, 0) + 1
        for k, v in x['hits'].items():
            g['n']['hits_' + k] = g['n'].get('hits_' + k, 0) + v
        if x['deliv'] is not None and x['open'] is not None:
            g['open'].append(max(0, x['open'] - x['deliv']))
        if x['deliv'] is not None and x['read'] is not None:
            g['read'].append(max(0, x['read'] - x['deliv']))
    for nid, x in f.items():
        k, tpl, seg, tags, _ = notices[nid]
        if (key is not None and k != key) or not lo <= x['acc'] < hi:
            continue
        add('\0total', x)
        if by == 'template':
            add(tpl, x)
        elif by == 'segment':
            add(seg, x)
        elif by == 'tag':
            tl = set(json.loads(tags)) if tags else set()
            for t in tl or [None]:
                add(t, x)
        elif by == 'day':
            add(datetime.datetime.fromtimestamp(x['acc'] / 1000, zone).date().isoformat(), x)
    return groups


def same(doc, exp, what):
    """The document's groups equal the expected ones: every count, rate and
    percentile."""
    got = {g['group']: g for g in doc['groups']}
    got['\0total'] = doc['totals']
    names = set(exp) | ({'\0total'} if not exp else set())
    eq(sorted(map(str, got)), sorted(map(str, names)), f'{what}: groups')
    for name, g in got.items():
        e = exp.get(name, {'n': {}, 'open': [], 'read': []})
        n = e['n']
        want = {'accepted': n.get('accepted', 0), 'delivered': n.get('delivered', 0),
                'deferred': n.get('deferred', 0), 'failed': n.get('failed', 0),
                'canceled': n.get('canceled', 0), 'read_confirmed': n.get('read', 0),
                'opened': {c: n.get(f'opened_{c}', 0) for c in CLASSES},
                'clicked': {c: n.get(f'clicked_{c}', 0) for c in CLASSES},
                'hits': {k: {c: n.get(f'hits_{k}_{c}', 0) for c in CLASSES}
                         for k in ('opened', 'clicked')}}
        for k, v in want.items():
            eq(g[k], v, f'{what}: group {name!r} {k}')
        acc, dl = want['accepted'], want['delivered']
        rates = {'delivered': (dl, acc), 'failed': (want['failed'], acc),
                 'human_opened': (want['opened']['human'], dl),
                 'human_clicked': (want['clicked']['human'], dl),
                 'read_confirmed': (want['read_confirmed'], dl)}
        for k, (a, b) in rates.items():
            r = g['rates'][k]
            check((r is None) if b == 0 else abs(r - a / b) < 1e-9,
                  f'{what}: group {name!r} rate {k} {r} != {a}/{b}')
        for k, v in (('time_to_human_open', e['open']), ('time_to_read', e['read'])):
            t = g[k]
            eq(t['samples'], len(v), f'{what}: group {name!r} {k} samples')
            for p, field in ((50, 'median_s'), (90, 'p90_s')):
                want_p = pct(v, p) if v else None
                check(want_p is None and t[field] is None or
                      t[field] is not None and abs(t[field] - want_p) < 1e-6,
                      f'{what}: group {name!r} {k} {field} {t[field]} != {want_p}')


def new_key(s, name):
    rc, out, err = run(['apikey', 'create', name, '--data', s.data], check_rc=0)
    key = out.split()[1] if out.startswith('api_key') else out.strip().split()[-1]
    db = sqlite3.connect(os.path.join(s.data, 'selo.db'))
    kid = db.execute('SELECT max(id) FROM apikeys').fetchone()[0]
    db.close()
    return kid, key


def api_stats(s, key, **q):
    qs = urllib.parse.urlencode({k: v for k, v in q.items() if v is not None})
    return s.api('GET', '/v1/stats' + ('?' + qs if qs else ''), key=key)


@test
def generated_store_matches_an_independent_count():
    s = Selo()
    try:
        k2, key2 = new_key(s, 'second')
        k3, key3 = new_key(s, 'third')
        t = time.time()
        notices, events = generate(s.data, [1, k2])
        f = facts(notices, events)
        print(f'  generated {N} notices, {len(events)} events ({time.time() - t:.1f}s)')
        t = time.time()
        rc, out, err = run(['stats', '--data', s.data, '--json'], check_rc=0)
        print(f'  selo stats counted them ({time.time() - t:.1f}s)')
        doc = json.loads(out)
        eq(doc['as_of']['pending_events'], 0, 'caught up')
        same(doc, expected(notices, f), 'cli, all keys')
        for by in BY:
            rc, out, err = run(['stats', '--data', s.data, '--json', '--group-by', by, '--key', '1'],
                               check_rc=0)
            same(json.loads(out), expected(notices, f, 1, by), f'cli key 1 by {by}')
        rc, out, err = run(['stats', '--data', s.data, '--group-by', 'template'], check_rc=0)
        check('lembrete' in out and 'TOTAL' in out and '(null)' in out, f'a table: {out[:500]}')
        s.start()
        ranges = [(None, None), ('2026-11-01', '2026-11-10'), ('2026-11-03', '2026-11-03'),
                  ('2026-11-03T15:30:00Z', '2026-11-20T08:00:00-03:00'),
                  ('2026-10-25T01:00:00.500Z', '2026-10-25T22:00:00Z')]
        for key, kid in ((s.key, 1), (key2, k2)):
            for by in BY:
                for frm, to in ranges:
                    t = time.time()
                    st, _, d = api_stats(s, key, group_by=by, **{'from': frm, 'to': to})
                    ms = (time.time() - t) * 1000
                    eq(st, 200, f'GET /v1/stats {by} {frm} {to}: {d}')
                    same(d, expected(notices, f, kid, by, frm, to), f'api key {kid} {by} {frm}..{to}')
            print(f'  key {kid}: every group_by and range agrees (last answer {ms:.0f} ms)')
        st, _, d = api_stats(s, s.key, group_by='day', zone='UTC', **{'from': '2026-11-02',
                                                                      'to': '2026-11-05'})
        eq(st, 200, f'zone=UTC: {d}')
        utc = datetime.timezone.utc
        lo = int(datetime.datetime(2026, 11, 2, tzinfo=utc).timestamp() * 1000)
        hi = int(datetime.datetime(2026, 11, 6, tzinfo=utc).timestamp() * 1000)
        exp = expected(notices, f, 1, 'day', rfc3339(lo), rfc3339(hi), utc)
        same(d, exp, 'zone=UTC by day')
        st, _, d = api_stats(s, key3, group_by='template')
        eq(st, 200)
        eq(d['totals']['accepted'], 0, 'a key without notices sees none of the others\'')
        eq(d['groups'], [], 'and no group')
    finally:
        s.cleanup()


@test
def a_crash_while_counting_neither_loses_nor_doubles():
    """SIGKILL `selo serve` while its follower is counting, twice; after the
    restart every group equals the independent count."""
    s = Selo()
    try:
        notices, events = generate(s.data, [1, 1], 30000)
        f = facts(notices, events)
        db = os.path.join(s.data, 'selo.db')

        def cursor():
            c = sqlite3.connect(db, timeout=10)
            try:
                return c.execute('SELECT coalesce((SELECT seq FROM stats_cursor), 0)').fetchone()[0]
            finally:
                c.close()
        # Each kill lands once the follower has moved past where the last
        # one stopped (it counted and committed something) and before it is
        # done: that is "while counting", checked rather than hoped for.
        cursors = [0]
        for _ in range(2):
            s.start()
            wait_until(lambda: cursor() > cursors[-1], 60, 0.005, 'the follower to count a batch')
            s.stop(signal.SIGKILL)
            cursors.append(cursor())
        print(f'  killed with the cursor at {cursors[1:]} of {len(events)} events')
        check(cursors[1] < cursors[2] < len(events),
              f'both kills landed while counting: cursor at {cursors[1:]} of {len(events)}')
        s.start()

        def done():
            st, _, d = api_stats(s, None, group_by='tag')
            return d if st == 200 and d['as_of']['pending_events'] == 0 and \
                d['as_of']['seq'] >= len(events) else None
        same(wait_until(done, 60, 0.2, 'the count to finish'), expected(notices, f, 1, 'tag'),
             'after two crashes')
    finally:
        s.cleanup()


def pixel_of(s, nid):
    """The pixel URL in the message the maildir transport wrote for nid."""
    st, _, j = s.api('GET', f'/v1/notices/{nid}/message')
    eq(st, 200, 'the message')
    eml = j.decode('latin-1').replace('=\r\n', '').replace('=3D', '=')
    return re.search(r'http://127\.0\.0\.1:\d+/o/[A-Za-z0-9_-]+\.gif', eml).group(0)


def fetch(url, ua):
    p = subprocess.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-A', ua,
                        '--max-time', '10', url], stdout=subprocess.PIPE, timeout=30)
    eq(p.stdout.decode(), '200', f'GET {url}')


@test
def a_proxy_open_is_not_a_persons():
    s = Selo().start()
    try:
        body = {'to': 'devedor@destino.example', 'subject': 'Aviso', 'text': 'Aviso',
                'html': '<p>Aviso</p>', 'segment': 'varejo', 'tags': ['boleto', 'pix']}
        ids = []
        for _ in range(2):
            st, _, j = s.api('POST', '/v1/notices', body)
            eq(st, 202, f'accepted: {j}')
            ids.append(j['id'])
        for nid in ids:
            s.wait_status(nid, ['delivered', 'relayed'])
        fetch(pixel_of(s, ids[0]), CHROME)
        fetch(pixel_of(s, ids[0]), GMAIL_PROXY)
        fetch(pixel_of(s, ids[1]), GMAIL_PROXY)
        fetch(pixel_of(s, ids[1]), GMAIL_PROXY)

        def counted():
            st, _, d = api_stats(s, None, group_by='tag')
            return d if st == 200 and d['totals']['hits']['opened']['proxy'] == 3 and \
                d['as_of']['pending_events'] == 0 else None
        d = wait_until(counted, 20, 0.2, 'the hits to be counted')
        t = d['totals']
        eq(t['accepted'], 2)
        eq(t['delivered'], 2)
        eq(t['opened'], {'human': 1, 'proxy': 2, 'scanner': 0}, 'notices opened per class')
        eq(t['hits']['opened'], {'human': 1, 'proxy': 3, 'scanner': 0}, 'hits per class')
        eq(t['rates']['human_opened'], 0.5, 'one person of two recipients')
        eq(t['time_to_human_open']['samples'], 1, 'the proxy open gives no time to open')
        check(t['time_to_human_open']['median_s'] >= 0, 'a time from delivery')
        eq([g['group'] for g in d['groups']], ['boleto', 'pix'], 'both tags')
        eq(d['groups'][0]['opened']['human'], 1)
        rc, out, err = run(['stats', '--data', s.data, '--json', '--group-by', 'segment'],
                           check_rc=0)
        c = json.loads(out)
        eq(c['groups'][0]['group'], 'varejo')
        eq(c['groups'][0]['opened'], t['opened'], 'selo stats agrees with the API')
    finally:
        s.cleanup()


@test
def bad_parameters_are_refused():
    s = Selo().start()
    try:
        for q, status, field in (({'group_by': 'reference'}, 400, 'group_by'),
                                 ({'from': '2026-02-30'}, 400, 'from'),
                                 ({'from': '2026-11-01T25:00:00Z'}, 400, 'from'),
                                 ({'to': 'yesterday'}, 400, 'to'),
                                 ({'from': '+02026-11-01'}, 400, 'from'),
                                 ({'from': '2026-11-10', 'to': '2026-11-01'}, 422, 'to'),
                                 ({'from': '2026-11-10T00:00:00Z', 'to': '2026-11-10T00:00:00Z'},
                                  422, 'to'),
                                 ({'zone': 'Mars/Olympus_Mons'}, 400, 'zone'),
                                 ({'zone': '../../etc/passwd'}, 400, 'zone'),
                                 ({'zone': '/etc/passwd'}, 400, 'zone'),
                                 ({'zone': 'x' * 5000}, 400, 'zone')):
            st, hd, d = api_stats(s, None, **q)
            eq(st, status, f'{q}: {d}')
            check(hd['content-type'].startswith('application/problem+json'), f'{q}: problem+json')
            check(any(e['field'] == field for e in d.get('errors', [])), f'{q}: names {field}: {d}')
        st, _, d = s.api('GET', '/v1/stats?from=2026-11-01&to=2026-11-01')
        eq(st, 200, f'one whole day: {d}')
        st, _, _ = s.api('GET', '/v1/stats', key='selo_live_not_a_key')
        eq(st, 401, 'a key is required')
        st, _, _ = s.api('POST', '/v1/stats', {})
        eq(st, 405)
        rc, out, err = run(['stats', '--data', s.data, '--group-by', 'week'])
        eq(rc, 2, 'selo stats: a bad --group-by is a usage error')
        check('group_by' in err, err)
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
