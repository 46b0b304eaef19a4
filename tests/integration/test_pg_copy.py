#!/usr/bin/python3
"""`selo store copy --data DIR --to URL` (issue 19, "Copy"), through the real
binary and a private PostgreSQL (pgtest.py): `selo init`, a serve on SQLite
writing to its maildir, receipts of the first notices exported, 10,000
notices accepted (sent or still queued when serve stops: both are copied);
the copy is refused while serve runs; serve stopped; the copy, with
`--audit`: `selo log verify`'s audit (the whole tree, every checkpoint,
every notice's evidence) passes on the copy through the PostgreSQL store;
then, read from PostgreSQL: every table's row count equals SQLite's, every event entry
equals SQLite's byte for byte, the receipts' entries are in the copy and
the copy's tiles give the root of each receipt's checkpoint and of the
last SQLite checkpoint (so receipts exported before the copy verify against
the copy's log), the password never printed; a second copy refused with
nothing changed.

When this selo has the PostgreSQL store's config keys (store.backend and
store.url in src/config.c), a serve on the copy follows: `selo log verify`
passes, the old receipts verify, and the copy's next checkpoint extends
the last SQLite one (its first N leaves' root from the public tiles is the
SQLite checkpoint's root). Skipped without the PostgreSQL 15 binaries."""
import base64, hashlib, json, os, sqlite3, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403
import pgtest
import selotest

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'Maria Souza', 'template': 'vencimento',
          'reference': 'CTR-COPY',
          'vars': {'nome': 'Maria Souza', 'valor': 99.9, 'vencimento': '2026-12-10',
                   'credor': 'Financeira Exemplo S.A.'}}
# The figure; SELO_COPY_LOAD=300 for a quick run.
LOAD = int(os.environ.get('SELO_COPY_LOAD', '10000'))
BATCH = 1000
PASSWORD = 'Copy-Pw-n3ver-Sh0wn'
TABLES = ['apikeys', 'notices', 'attachments', 'messages', 'tokens', 'idempotency', 'events',
          'disclosures', 'log_state', 'log_tiles', 'log_ranges', 'checkpoints', 'webhooks',
          'webhook_outbox', 'webhook_cursor', 'suppressions', 'sequences', 'stats_cursor',
          'stats_dims', 'stats_notices', 'stats_rollup', 'stats_delays', 'hit_tally',
          'hit_fold_addrs']


def need_pg():
    if not pgtest.available():
        skip(f'no PostgreSQL binaries in {pgtest.PG_BIN} (Debian package postgresql)')
    if selotest.STORE != 'sqlite':
        skip('the copy starts from a SQLite store: it runs in the SQLite pass')


def post_load(s):
    """LOAD notices in batches of BATCH; their ids."""
    ids = []
    while len(ids) < LOAD:
        n = min(BATCH, LOAD - len(ids))
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': [NOTICE] * n})
        eq(st, 200, f'batch: {str(j)[:300]}')
        eq(j['accepted'], n, 'every notice of the batch accepted')
        ids += [r['id'] for r in j['results']]
    return ids


def fetch_receipt(s, nid, timeout=60):
    def get():
        st, _, body = s.api('GET', f'/v1/notices/{nid}/receipt')
        if st == 503:
            return None
        eq(st, 200, f'GET receipt: {body}')
        return body
    return wait_until(get, timeout, 0.2, 'a receipt')


def verify(path, keys):
    return run(['verify', path, '--key', os.path.join(keys, 'log.vkey'),
                '--tsa-ca', os.path.join(keys, 'ca.crt')])


def parse_checkpoint(text):
    lines = text.split('\n')
    return {'size': int(lines[1]), 'root': base64.b64decode(lines[2])}


def mth(h):
    """RFC 9162 Merkle tree hash of the leaf hashes h."""
    if len(h) == 1:
        return h[0]
    k = 1
    while k * 2 < len(h):
        k *= 2
    return hashlib.sha256(b'\1' + mth(h[:k]) + mth(h[k:])).digest()


def pg_leaves(c, size):
    """The first `size` leaf hashes, from the copy's level-0 tiles."""
    out = b''
    for k in range((size + 255) // 256):
        w = min(256, size - 256 * k)
        hexdata = c.psql(f"SELECT encode(data, 'hex') FROM log_tiles WHERE level = 0 AND idx = {k}")
        data = bytes.fromhex(hexdata)
        check(len(data) >= 32 * w, f'tile 0/{k} holds {w} hashes')
        out += data[:32 * w]
    return [out[i:i + 32] for i in range(0, len(out), 32)]


def sqlite_one(db, sql):
    with sqlite3.connect(f'file:{db}?mode=ro', uri=True) as c:
        return c.execute(sql).fetchone()


def has_pg_config():
    with open(os.path.join(ROOT, 'src', 'config.c')) as f:
        src = f.read()
    return '"backend"' in src and 'store' in src


class OnCopy(Selo):
    """`selo serve` on the same data directory, its store the copy."""

    def __init__(self, orig, url):
        self.dir, self.data, self.key, self.domain = orig.dir, orig.data, orig.key, orig.domain
        self.api_port, self.track_port = orig.api_port, orig.track_port
        self.conf = json.loads(json.dumps(orig.conf))
        self.conf['store'] = {'backend': 'postgres', 'url': url}
        self.write_conf()
        self.p = self.log = None


@test
def copy_of_a_served_store_keeps_its_log():
    need_pg()
    s = Selo().start()
    with pgtest.PgCluster(password=PASSWORD) as pg:
        try:
            first = []
            for _ in range(3):
                st, _, j = s.api('POST', '/v1/notices', NOTICE)
                eq(st, 202)
                first.append(j['id'])
            for nid in first:
                s.wait_status(nid, ['relayed', 'delivered'], timeout=120)
            receipts = {}
            for nid in first:
                path = os.path.join(s.dir, f'receipt-{nid}.json')
                with open(path, 'w') as f:
                    json.dump(fetch_receipt(s, nid), f)
                receipts[nid] = path
            ids = first + post_load(s)
            # some of the load sent and integrated, the rest still queued
            s.wait_status(ids[3], ['relayed', 'delivered'], timeout=300)
            url = pg.url()

            # refused beside a running serve, and nothing written
            rc, out, err = run(['store', 'copy', '--data', s.data, '--to', url])
            eq(rc, 2, f'copy beside serve: {err}')
            check('selo serve (pid' in err and 'stop it first' in err, err)
            s.stop()

            rc, cp_last, err = run(['log', 'checkpoint', '--data', s.data], check_rc=0)
            last = parse_checkpoint(cp_last)
            db = os.path.join(s.data, 'selo.db')
            t0 = time.time()
            rc, out, err = run(['store', 'copy', '--data', s.data, '--to', url, '--audit'])
            eq(rc, 0, f'selo store copy: {out[-3000:]} {err}')
            check('audit: CONSISTENT' in out, out[-3000:])
            check('FAIL' not in out, 'no finding of the audit')
            audit = out[out.index('\naudit') - 400:] if '\naudit' in out else out
            print('     the audit: ' + ' / '.join(l[5:70] for l in audit.splitlines()[-4:-1]),
                  flush=True)
            print(f'     {len(ids)} notices copied in {time.time() - t0:.1f}s: '
                  + ', '.join(l for l in out.splitlines() if l.startswith(('rows notices',
                              'rows events', 'log_size'))), flush=True)
            check(PASSWORD not in out + err, 'the password is never printed')
            check('password=***' in out, out)
            report = dict(l.split(' ', 1) for l in out.splitlines()[1:]
                          if l.startswith(('events', 'log_', 'last_seq', 'checkpoint_size')))
            rows = {l.split()[1]: int(l.split()[2]) for l in out.splitlines()
                    if l.startswith('rows ')}
            eq(sorted(rows), sorted(TABLES), 'every table reported')
            for t in TABLES:
                n = sqlite_one(db, f'SELECT count(*) FROM {t}')[0]
                eq(rows[t], n, f'rows of {t} reported')
                eq(int(pg.psql(f'SELECT count(*) FROM {t}')), n, f'rows of {t} in PostgreSQL')
            eq(rows['notices'], len(ids), 'every notice')
            eq(int(report['checkpoint_size']), last['size'], 'the latest checkpoint reported')
            check(cp_last in out, 'the latest checkpoint printed')

            # the log, byte for byte: every entry, the state, the latest checkpoint
            with sqlite3.connect(f'file:{db}?mode=ro', uri=True) as c:
                want = hashlib.sha256(b''.join(
                    hashlib.sha256(e).digest() for (e,) in
                    c.execute('SELECT entry FROM events ORDER BY seq'))).hexdigest()
                size, root, last_seq = c.execute(
                    'SELECT size, root, last_seq FROM log_state').fetchone()
            eq(pg.psql("SELECT encode(sha256(string_agg(sha256(entry), ''::bytea ORDER BY seq)),"
                       " 'hex') FROM events"), want, 'every event entry')
            eq(pg.psql("SELECT size || ' ' || encode(root, 'hex') || ' ' || last_seq"
                       " FROM log_state"), f'{size} {root.hex()} {last_seq}', 'log_state')
            eq(pg.psql('SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1'),
               cp_last.strip(), 'the latest checkpoint')
            eq(pg.psql('SELECT seq FROM event_clock'),
               str(sqlite_one(db, 'SELECT max(seq) FROM events')[0]), 'the event clock')
            eq(pg.psql('SELECT count(*) FROM notices WHERE claimed_by IS NOT NULL'), '0',
               'no claims')

            # the copy's tiles give the roots receipts and the last checkpoint commit to
            leaves = pg_leaves(pg, size)
            eq(mth(leaves).hex(), root.hex(), 'the tiles give the stored root')
            eq(mth(leaves[:last['size']]), last['root'], 'the last SQLite checkpoint')
            for nid, path in receipts.items():
                with open(path) as f:
                    r = json.load(f)
                cp = parse_checkpoint(r['log']['checkpoint'])
                eq(mth(leaves[:cp['size']]), cp['root'], f'receipt {nid}: its checkpoint')
                for ev in r['events']:
                    eq(pg.psql(f"SELECT count(*) FROM events WHERE notice_id = '{nid}'"
                               f" AND convert_from(entry, 'UTF8') = $${ev['entry']}$$"), '1',
                       f'receipt {nid}: entry {ev["index"]} in the copy')
                    eq(leaves[ev['index']],
                       hashlib.sha256(b'\0' + ev['entry'].encode()).digest(),
                       f'receipt {nid}: leaf {ev["index"]}')
                rc, vout, verr = verify(path, os.path.join(s.data, 'keys'))
                eq(rc, 0, f'selo verify {nid}: {vout} {verr}')

            # a second copy is refused and changes nothing; without --to, the
            # target is store.url of selo.conf (when this selo has the keys)
            before = pg.psql('SELECT count(*) FROM events') + pg.psql('SELECT seq FROM event_clock')
            argv = ['store', 'copy', '--data', s.data, '--to', url]
            if has_pg_config():
                s.conf['store'] = {'backend': 'postgres', 'url': url}
                s.write_conf()
                argv = argv[:-2]
            rc, out2, err = run(argv)
            eq(rc, 2, f'second copy: {err}')
            check('already holds Selo data' in err, err)
            check(PASSWORD not in out2 + err, 'the password is never printed')
            eq(pg.psql('SELECT count(*) FROM events') + pg.psql('SELECT seq FROM event_clock'),
               before, 'nothing changed')

            if not has_pg_config():
                print('     (this selo has no store.backend yet: serving on the copy is not '
                      'tested)', flush=True)
                return
            serve_on_copy(s, url, last, receipts)
        finally:
            s.cleanup()


def serve_on_copy(orig, url, last, receipts):
    """A serve on the copy: `selo log verify`, the old receipts, and a next
    checkpoint that extends the last SQLite one."""
    p = OnCopy(orig, url).start()
    try:
        # accepted on the copy (its delivery waits behind the copied queue:
        # its acceptance event alone grows the log)
        st, _, j = p.api('POST', '/v1/notices', NOTICE)
        eq(st, 202, f'a notice on the copy: {j}')
        base = f'http://127.0.0.1:{p.track_port}'

        def newer():
            st, _, body = curl('GET', base + '/log/checkpoint')
            eq(st, 200)
            cp = parse_checkpoint(body.decode())
            return cp if cp['size'] > last['size'] else None
        cp = wait_until(newer, 120, 0.2, 'a checkpoint past the copied one')
        leaves = []
        for k in range((cp['size'] + 255) // 256):
            w = min(256, cp['size'] - 256 * k)
            idx = f'{k:03d}' if k < 1000 else f'x{k // 1000:03d}/{k % 1000:03d}'
            st, _, data = curl('GET', base + f'/log/tile/0/{idx}' + (f'.p/{w}' if w < 256 else ''))
            eq(st, 200, 'a public tile')
            leaves += [data[i:i + 32] for i in range(0, len(data), 32)]
        eq(mth(leaves[:cp['size']]), cp['root'], 'the new checkpoint')
        eq(mth(leaves[:last['size']]), last['root'], 'it extends the last SQLite checkpoint')
        print(f'     serving on the copy: checkpoint {cp["size"]} extends the last SQLite '
              f'one ({last["size"]})', flush=True)
        p.stop()
        rc, out, err = run(['log', 'verify', '--data', p.data])
        eq(rc, 0, f'selo log verify on the copy: {out} {err}')
        for nid, path in receipts.items():
            rc, vout, verr = verify(path, os.path.join(p.data, 'keys'))
            eq(rc, 0, f'selo verify {nid}: {vout} {verr}')
    finally:
        p.stop()


if __name__ == '__main__':
    main()
