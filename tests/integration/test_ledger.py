#!/usr/bin/python3
"""Ledger end to end (issue 3), through the real binary: notices sent through
`selo serve`, their receipts fetched over HTTP and with `selo receipt`, and
checked by `selo verify` (pinned key and TSA CA); `selo log verify` after
tampering with the database; an external RFC 3161 server whose answers come
from `openssl ts -reply`, each stored token accepted by `openssl ts -verify`;
and a kill -9 during a burst of events."""
import base64, hashlib, json, os, signal, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403
import pgtest

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'Maria Souza', 'template': 'vencimento',
          'reference': 'CTR-77',
          'vars': {'nome': 'Maria Souza', 'valor': 99.9, 'vencimento': '2026-12-10',
                   'credor': 'Financeira Exemplo S.A.'}}


# Events given a log index (store.md, "The ledger's tables": one log_ranges
# row per run of consecutive seqs), and those still waiting for one.
INDEXED = 'SELECT coalesce(sum(n), 0) FROM log_ranges'
UNINDEXED = f'SELECT (SELECT count(*) FROM events) - ({INDEXED})'


def sql(s, q):
    """One value read from the server's store, SQLite or PostgreSQL alike
    (s.sql), as text."""
    rows = s.sql(q)
    return rows[0][0] if rows and rows[0] else ''


def hexof(s, col, text=False):
    """The bytes of column col in hex, in the store's own SQL (SQLite's hex()
    is PostgreSQL's encode(.., 'hex'), which takes bytea: a text column is
    converted to its UTF-8 bytes first)."""
    if s.backend != 'postgres':
        return f'hex({col})'
    return f"encode(convert_to({col}, 'UTF8'), 'hex')" if text else f"encode({col}, 'hex')"


def tamper(s, lite, pg):
    """Changes the store behind the server's back: the statement lite on the
    SQLite file, pg on the PostgreSQL database (the two differ where bytes
    are concerned: BLOB literals, replace() on bytea)."""
    if s.backend == 'postgres':
        cmd = [os.path.join(pgtest.PG_BIN, 'psql'), '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
               '-d', s.conf['store']['url'], '-c', pg]
        what = 'psql'
    else:
        cmd = ['sqlite3', os.path.join(s.data, 'selo.db'), lite]
        what = 'sqlite3'
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise Fail(f'{what}: {p.stderr.decode()}')


def fetch_receipt(s, nid, form=None, timeout=20):
    path = f'/v1/notices/{nid}/receipt' + (f'?form={form}' if form else '')

    def get():
        st, hd, body = s.api('GET', path)
        if st == 503:
            check(hd.get('retry-after'), 'Retry-After on 503')
            return None
        eq(st, 200, f'GET receipt: {body}')
        return body
    return wait_until(get, timeout, 0.2, 'a receipt')


def verify(s, path, *extra):
    keys = os.path.join(s.data, 'keys')
    return run(['verify', path, '--key', os.path.join(keys, 'log.vkey'), '--tsa-ca',
                os.path.join(keys, 'ca.crt')] + list(extra))


def send_one(s, smtp):
    st, _, j = s.api('POST', '/v1/notices', NOTICE)
    eq(st, 202)
    s.wait_status(j['id'], ['relayed'])
    return j['id']


@test
def receipt_verifies_offline():
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        nid = send_one(s, smtp)
        r = fetch_receipt(s, nid)
        eq(r['format'], 'selo-receipt/v1')
        eq([json.loads(e['entry'])['type'] for e in r['events']],
           ['submission_accepted', 'content_sealed', 'relay_accepted'])
        eml, _ = smtp.messages()[0]
        eq(base64.b64decode(r['message']['eml_base64']), eml, 'the receipt holds the sent bytes')
        eq(r['message']['sha256'], hashlib.sha256(eml).hexdigest())
        check('devedor@destino.example' in r['disclosure']['values'].values(), 'address disclosed')
        with open(os.path.join(s.data, 'keys', 'log.vkey')) as f:
            eq(r['log']['verifier_key'], f.read().strip(), 'verifier key')
        path = os.path.join(s.dir, 'r.json')
        with open(path, 'w') as f:
            json.dump(r, f)
        rc, out, err = verify(s, path)
        eq(rc, 0, f'selo verify: {out}{err}')
        check('verdict: VALID' in out, out)
        # unpinned: still valid, with loud warnings
        rc, out, err = run(['verify', path])
        eq(rc, 0, out)
        check('WARN' in out and err, 'warnings when the key and CA are not pinned')
        # the same through the CLI, and the short form
        rc, _, err = run(['receipt', nid, '--data', s.data, '-o', os.path.join(s.dir, 'c.json')])
        eq(rc, 0, err)
        rc, out, _ = verify(s, os.path.join(s.dir, 'c.json'))
        eq(rc, 0, out)
        short = fetch_receipt(s, nid, 'short')
        check('eml_base64' not in short['message'], 'short form has no message bytes')
        vals = list(short['disclosure']['values'].values())
        check('devedor@destino.example' in vals, 'short form keeps the address')
        check(not any('Maria Souza' in v and 'valor' in v for v in vals), 'no template variables')
        spath = os.path.join(s.dir, 's.json')
        with open(spath, 'w') as f:
            json.dump(short, f)
        rc, out, _ = verify(s, spath)
        eq(rc, 0, f'short form verifies: {out}')
        # a changed entry byte is caught
        r2 = json.loads(json.dumps(r))
        r2['events'][2]['entry'] = r2['events'][2]['entry'].replace('"code":250', '"code":251')
        with open(path, 'w') as f:
            json.dump(r2, f)
        rc, out, _ = verify(s, path)
        eq(rc, 1, 'tampered receipt')
        check('FAIL inclusion' in out, out)
        # the log as a whole
        rc, out, _ = run(['log', 'checkpoint', '--data', s.data], check_rc=0)
        check(out.startswith('cobranca.example/selo-log\n') and '\n\u2014 ' in out, out)
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, out)
        check('verdict: CONSISTENT' in out, out)
        # unknown notice
        rc, _, _ = run(['receipt', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '--data', s.data])
        eq(rc, 1)
    finally:
        s.cleanup()
        smtp.stop()


@test
def smime_signature_carries_a_timestamp():
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        nid = send_one(s, smtp)
        sealed = s.notice(nid)['events'][1]['entry']
        eq(sealed['smime']['timestamped'], True, 'content_sealed says timestamped')
        eml, _ = smtp.messages()[0]
        d = tempfile.mkdtemp(prefix='selo-smime-')
        with open(os.path.join(d, 'm.eml'), 'wb') as f:
            f.write(eml)
        p = subprocess.run(['openssl', 'cms', '-verify', '-in', os.path.join(d, 'm.eml'),
                            '-CAfile', os.path.join(s.data, 'keys', 'ca.crt'), '-out', '/dev/null'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        eq(p.returncode, 0, p.stderr.decode())
        p = subprocess.run(['openssl', 'cms', '-cmsout', '-print', '-in', os.path.join(d, 'm.eml')],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(b'id-smime-aa-timeStampToken' in p.stdout, 'unsigned attribute timeStampToken')
        # docs/receipt.md's procedure: take the token out, check it with openssl ts
        p = subprocess.run([PY, os.path.join(ROOT, 'scripts', 'smime-timestamp.py'),
                            os.path.join(d, 'm.eml'), d], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        eq(p.returncode, 0, p.stderr.decode())
        digest = p.stdout.decode().strip()
        p = subprocess.run(['openssl', 'ts', '-verify', '-token_in', '-in', os.path.join(d, 'token.der'),
                            '-digest', digest, '-CAfile', os.path.join(s.data, 'keys', 'ca.crt')],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        check(b'Verification: OK' in p.stdout, f'openssl ts -verify: {p.stdout.decode()}')
        p = subprocess.run(['openssl', 'ts', '-verify', '-token_in', '-in', os.path.join(d, 'token.der'),
                            '-digest', '00' * 32, '-CAfile', os.path.join(s.data, 'keys', 'ca.crt')],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        check(b'Verification: OK' not in p.stdout, 'a wrong digest must not verify')
        subprocess.run(['rm', '-rf', d])
    finally:
        s.cleanup()
        smtp.stop()


@test
def log_verify_catches_tampering():
    s = Selo().start()
    try:
        for i in range(3):
            st, _, j = s.api('POST', '/v1/notices', dict(NOTICE, reference=f'T-{i}'))
            s.wait_status(j['id'], ['relayed'])
        fetch_receipt(s, j['id'])
        s.stop()
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, out)
        # one byte of an entry
        tamper(s, "UPDATE events SET entry = replace(entry, '\"v\":1', '\"v\":2') WHERE seq = 2",
               "UPDATE events SET entry = convert_to(replace(convert_from(entry, 'UTF8'),"
               " '\"v\":1', '\"v\":2'), 'UTF8') WHERE seq = 2")
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 1, f'entry changed: {out}')
        check('FAIL' in out and 'verdict: MISMATCH' in out, out)
        tamper(s, "UPDATE events SET entry = replace(entry, '\"v\":2', '\"v\":1') WHERE seq = 2",
               "UPDATE events SET entry = convert_to(replace(convert_from(entry, 'UTF8'),"
               " '\"v\":2', '\"v\":1'), 'UTF8') WHERE seq = 2")
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, f'restored: {out}')
        # a partial tile one hash longer than the tree, in a store nobody writes
        last = "level = 0 AND idx = (SELECT max(idx) FROM log_tiles WHERE level = 0)"
        tile = sql(s, f"SELECT {hexof(s, 'data')} FROM log_tiles WHERE {last}").strip()
        check(tile, 'the last tile of level 0')
        tamper(s, f"UPDATE log_tiles SET data = X'{tile}{'00' * 32}' WHERE {last}",
               f"UPDATE log_tiles SET data = decode('{tile}{'00' * 32}', 'hex') WHERE {last}")
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 1, f'partial tile longer than the tree: {out}')
        check('partial tile 0/0 differs' in out, out)
        tamper(s, f"UPDATE log_tiles SET data = X'{tile}' WHERE {last}",
               f"UPDATE log_tiles SET data = decode('{tile}', 'hex') WHERE {last}")
        rc, out, err = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, f'tile restored: {out} {err}')
        # one byte of a checkpoint
        q = ("UPDATE checkpoints SET note = replace(note, 'selo-log', 'selo-lag')"
             " WHERE size = (SELECT max(size) FROM checkpoints)")
        tamper(s, q, q)
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 1, f'checkpoint changed: {out}')
    finally:
        s.cleanup()


@test
def log_verify_while_serve_integrates():
    """`selo log verify` beside a running `selo serve` that keeps integrating:
    a partial tile that grew after the audit read the tree state is the
    log moving on, not damage (found by test_disk on CI)."""
    s = Selo().start()
    try:
        stop_load = threading.Event()

        def load():
            i = 0
            while not stop_load.is_set():
                s.api('POST', '/v1/notices', dict(NOTICE, reference=f'L-{i}'))
                i += 1
        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            verdicts = []
            for _ in range(15):
                rc, out, err = run(['log', 'verify', '--data', s.data])
                verdicts.append(rc)
                eq(rc, 0, f'selo log verify during integration: {out[-1200:]} {err[-300:]}')
        finally:
            stop_load.set()
            for t in threads:
                t.join()
        check(s.api('GET', '/v1/notices?limit=1')[0] == 200, 'the server still answers')
    finally:
        s.cleanup()


@test
def external_tsa_tokens_verify_with_openssl():
    keys_dir = tempfile.mkdtemp(prefix='selo-tsa-')
    # the external TSA: its own CA and key, made by another `selo init`
    run(['init', '--data', os.path.join(keys_dir, 'x'), '--domain', 'tsa.example'], check_rc=0)
    xk = os.path.join(keys_dir, 'x', 'keys')
    tsa = spawn([PY, os.path.join(ROOT, 'tests', 'integration', 'tsaserver.py'), '--port', '0',
                 '--key', os.path.join(xk, 'tsa.pem'), '--cert', os.path.join(xk, 'tsa.crt'),
                 '--chain', os.path.join(xk, 'ca.crt')], stdout=subprocess.PIPE)
    line = tsa.stdout.readline().decode()
    check(line.startswith('PORT '), f'tsaserver: {line!r}')
    port = int(line.split()[1])
    s = Selo(tsa={'url': f'http://127.0.0.1:{port}/', 'ca': os.path.join(xk, 'ca.crt')}).start()
    try:
        st, _, j = s.api('POST', '/v1/notices', NOTICE)
        s.wait_status(j['id'], ['relayed'])
        r = fetch_receipt(s, j['id'])
        path = os.path.join(s.dir, 'r.json')
        with open(path, 'w') as f:
            json.dump(r, f)
        rc, out, _ = run(['verify', path, '--key', os.path.join(s.data, 'keys', 'log.vkey'),
                          '--tsa-ca', os.path.join(xk, 'ca.crt')])
        eq(rc, 0, out)
        rows = [r[0] for r in s.sql("SELECT size FROM checkpoints WHERE tst IS NOT NULL")]
        check(rows, 'timestamped checkpoints')
        for size in rows:
            note, tst = s.sql(f"SELECT {hexof(s, 'note', text=True)}, {hexof(s, 'tst')}"
                              f" FROM checkpoints WHERE size = {size}")[0]
            with open(os.path.join(s.dir, 't.der'), 'wb') as f:
                f.write(bytes.fromhex(tst))
            digest = hashlib.sha256(bytes.fromhex(note)).hexdigest()
            p = subprocess.run(['openssl', 'ts', '-verify', '-token_in', '-in',
                                os.path.join(s.dir, 't.der'), '-digest', digest, '-CAfile',
                                os.path.join(xk, 'ca.crt')], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            check(b'Verification: OK' in p.stdout, f'openssl ts -verify: {p.stdout.decode()}')
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, out)
    finally:
        s.cleanup()
        stop(tsa)
        subprocess.run(['rm', '-rf', keys_dir])


@test
def tsa_down_delays_timestamps_never_the_log():
    dead = free_port()
    keys_dir = tempfile.mkdtemp(prefix='selo-tsa-')
    run(['init', '--data', os.path.join(keys_dir, 'x'), '--domain', 'tsa.example'], check_rc=0)
    s = Selo(tsa={'url': f'http://127.0.0.1:{dead}/',
                  'ca': os.path.join(keys_dir, 'x', 'keys', 'ca.crt'), 'timeout_ms': '500'}).start()
    try:
        st, _, j = s.api('POST', '/v1/notices', NOTICE)
        eq(st, 202)
        wait_until(lambda: int(sql(s, INDEXED).strip()) >= 1, 30, 0.1,
                   'events to reach the log while the TSA is down')
        wait_until(lambda: int(sql(s, 'SELECT count(*) FROM checkpoints').strip()) >= 1, 30, 0.1,
                   'a checkpoint signed while the TSA is down')
        eq(sql(s, 'SELECT count(*) FROM checkpoints WHERE tst IS NOT NULL').strip(), '0')
        st, _, body = s.api('GET', f'/v1/notices/{j["id"]}/receipt')
        eq(st, 503, f'no receipt without a timestamp: {body}')
    finally:
        s.cleanup()
        subprocess.run(['rm', '-rf', keys_dir])


@test
def cli_and_serve_share_the_log():
    """`selo receipt` and `selo log checkpoint` while `selo serve` runs: both
    may integrate and sign; neither may stall the other."""
    s = Selo().start()
    try:
        st, _, j = s.api('POST', '/v1/notices', NOTICE)
        s.wait_status(j['id'], ['relayed'])
        for i in range(5):
            st, _, k = s.api('POST', '/v1/notices', dict(NOTICE, reference=f'C-{i}'))
            rc, out, err = run(['log', 'checkpoint', '--data', s.data])
            eq(rc, 0, err)
            rc, _, err = run(['receipt', j['id'], '--data', s.data, '-o', os.path.join(s.dir, 'r.json')])
            eq(rc, 0, err)
        s.wait_status(k['id'], ['relayed'])
        r = fetch_receipt(s, k['id'])
        eq(len(r['events']), 3, 'the last notice reached the log through serve')
        wait_until(lambda: int(sql(s, UNINDEXED).strip()) == 0, 30, 0.1,
                   'serve to keep integrating after the CLI appended')
        s.stop()
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, out)
        check('stalled' not in s.serve_log() and 'will retry' not in s.serve_log(), s.serve_log())
    finally:
        s.cleanup()


@test
def kill_9_during_a_burst_loses_no_event():
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        batch = {'notices': [dict(NOTICE, reference=f'K-{i}') for i in range(200)]}
        st, _, j = s.api('POST', '/v1/notices/batch', batch)
        eq(j['accepted'], 200)
        time.sleep(0.3)
        s.stop(signal.SIGKILL)
        s.start()
        ids = [x['id'] for x in j['results']]

        def all_done():
            st, _, l = s.api('GET', '/v1/notices?reference=K-199')
            return all(s.notice(i)['status'] == 'relayed' for i in ids[-5:])
        wait_until(all_done, 60, 0.5, 'the burst to be sent after the restart')
        wait_until(lambda: int(sql(s, UNINDEXED).strip()) == 0, 30, 0.1,
                   'every event integrated')
        s.stop()
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, out)
        eq(sql(s, UNINDEXED).strip(), '0',
           'every event in the log')
        eq(int(sql(s, "SELECT count(*) FROM events WHERE type = 'submission_accepted'").strip()), 200)
    finally:
        s.cleanup()
        smtp.stop()


def mutations(r):
    """(description, check that must fail, mutated receipt) for a real receipt."""
    def m(desc, name, fn):
        x = json.loads(json.dumps(r))
        fn(x)
        return desc, name, x

    def flip_b64(s, i=0):
        raw = bytearray(base64.b64decode(s))
        raw[i] ^= 1
        return base64.b64encode(bytes(raw)).decode()
    out = [
        m('notice id', 'entries_notice', lambda x: x.__setitem__('notice', '01ARZ3NDEKTSV4RRFFQ69G5FAV')),
        m('format', 'format', lambda x: x.__setitem__('format', 'selo-receipt/v2')),
        m('verifier key name', 'key_pinned',
          lambda x: x['log'].__setitem__('verifier_key', 'x' + x['log']['verifier_key'])),
        m('checkpoint size', 'checkpoint_signature',
          lambda x: x['log'].__setitem__('checkpoint', x['log']['checkpoint'].replace('\n', '\n1', 1))),
        m('checkpoint signature byte', 'checkpoint_signature',
          lambda x: x['log'].__setitem__('checkpoint', x['log']['checkpoint'][:-6] +
                                         ('A' if x['log']['checkpoint'][-6] != 'A' else 'B') +
                                         x['log']['checkpoint'][-5:])),
        m('timestamp byte', 'checkpoint_timestamp',
          lambda x: x['log'].__setitem__('timestamp', flip_b64(x['log']['timestamp'], 200))),
        m('message digest', 'message_digest',
          lambda x: x['message'].__setitem__('sha256', '0' * 64)),
        m('one byte of the .eml', 'message_digest',
          lambda x: x['message'].__setitem__('eml_base64', flip_b64(x['message']['eml_base64'], 300))),
        m('salt', 'disclosures', lambda x: x['disclosure'].__setitem__('salt', '00' * 32)),
        m('a disclosed value', 'disclosures',
          lambda x: x['disclosure']['values'].__setitem__(
              next(iter(x['disclosure']['values'])), 'outro@destino.example')),
        m('an event removed', 'time_order', lambda x: x['events'].pop(0)),
        m('an event index', 'inclusion', lambda x: x['events'][1].__setitem__('index', x['events'][1]['index'] + 1)),
    ]
    for i, e in enumerate(r['events']):
        for k in range(len(e['proof'])):
            out.append(m(f'event {i} proof hash {k}', 'inclusion',
                         lambda x, i=i, k=k: x['events'][i]['proof'].__setitem__(
                             k, flip_b64(x['events'][i]['proof'][k], 5))))
        out.append(m(f'event {i} entry byte', 'inclusion',
                     lambda x, i=i: x['events'][i].__setitem__(
                         'entry', x['events'][i]['entry'].replace('"v":1', '"v":3'))))
    return out


@test
def every_field_of_a_real_receipt_is_protected():
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        r = fetch_receipt(s, send_one(s, smtp))
        path = os.path.join(s.dir, 'm.json')
        for desc, name, x in mutations(r):
            with open(path, 'w') as f:
                json.dump(x, f)
            rc, out, _ = verify(s, path)
            check(rc in (1, 2), f'{desc}: selo verify exit {rc}\n{out}')
            fails = [l.split()[1].rstrip(':') for l in out.splitlines() if l.startswith('FAIL')]
            check(name in fails, f'{desc}: expected check {name} to fail, failed: {fails}\n{out}')
        # a wrong pinned key
        with open(path, 'w') as f:
            json.dump(r, f)
        other = tempfile.mkdtemp(prefix='selo-other-')
        run(['init', '--data', other + '/d', '--domain', 'cobranca.example'], check_rc=0)
        rc, out, _ = run(['verify', path, '--key', os.path.join(other, 'd', 'keys', 'log.vkey'),
                          '--tsa-ca', os.path.join(other, 'd', 'keys', 'ca.crt')])
        eq(rc, 1, out)
        check('FAIL checkpoint_signature' in out and 'FAIL checkpoint_timestamp' in out, out)
        subprocess.run(['rm', '-rf', other])
        rc, out, _ = run(['verify', os.path.join(s.dir, 'nope.json')])
        eq(rc, 2, 'missing file')
        with open(path, 'w') as f:
            f.write('not json')
        rc, out, _ = run(['verify', path])
        eq(rc, 2, 'unreadable')
    finally:
        s.cleanup()
        smtp.stop()


if __name__ == '__main__':
    main()
