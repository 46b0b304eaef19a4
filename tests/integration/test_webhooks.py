#!/usr/bin/python3
"""Webhooks (issue 9, part 1): `selo serve` POSTs signed events to a receiver
this test runs on 127.0.0.1. The receiver checks every signature with its own
HMAC code (Standard Webhooks: v1 = base64 HMAC-SHA256 of id.timestamp.body
under the whsec_ secret) and records what it saw per webhook-id. Covered:
the normal flow (payload entry = the receipt's entry at that log index; the
v1a Ed25519 signature checked with `openssl pkeyutl` against the published
key), a
receiver down then up, 500 twice then 200, a stall past webhooks.timeout_ms,
SIGKILL of selo mid-retry, 410 disabling the webhook, giving up at the end
of the schedule, a redirect that is not followed, API keys that only see
their own webhooks and events, and with allow_private off: loopback, private,
link-local, IPv4-mapped, SIIT (::ffff:0:0:0/96) and the other special IPv6
targets refused at registration (422) and at connection time. No packet leaves loopback: outside a namespace the public
URLs registered are IP literals (no DNS) and nothing is delivered to them;
deliveries to a public address, and a name rebound to loopback after its
registration, run inside `unshare -rnm` (only loopback, carrying that
address, and a private /etc/hosts)."""
import base64, hashlib, hmac, http.server, json, os, signal, socket, subprocess, sys, tempfile, \
    threading, time, traceback
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import selotest
from selotest import *  # noqa: F401,F403

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'João da Silva',
          'subject': 'Aviso de cobrança', 'text': 'Olá, sua fatura venceu.',
          'reference': 'FAT-2026-0042'}
FAST = {'allow_private': 'yes', 'timeout_ms': '1000', 'retry_speedup': '2000', 'workers': '4'}


def verify_signature(secret, msg_id, ts, body, header):
    """The receiver's check, as docs/api.md teaches it."""
    key = base64.b64decode(secret[len('whsec_'):])
    mac = hmac.new(key, f'{msg_id}.{ts}.'.encode() + body, hashlib.sha256).digest()
    want = base64.b64encode(mac).decode()
    for part in header.split(' '):
        version, _, sig = part.partition(',')
        if version == 'v1' and hmac.compare_digest(sig, want):
            return True
    return False


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread. behave[path](n) says what to
    answer to the n-th request (from 1) on path: a status, ('stall', s,
    status), or ('redirect', url)."""

    def __init__(self, port=0, host='127.0.0.1'):
        self.host = host
        self.secrets = {}
        self.behave = {}
        self.seen = []  # dicts: path, id, ts, body, json, ok, status
        self.count = {}
        self.lock = threading.Lock()
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
                rcv.handle(self, body)

            def do_GET(self):
                rcv.handle(self, b'')

        self.srv = http.server.ThreadingHTTPServer((host, port), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        return f'http://{self.host}:{self.port}{path}'

    def handle(self, h, body):
        path = h.path
        with self.lock:
            n = self.count[path] = self.count.get(path, 0) + 1
        what = self.behave.get(path, lambda n: 200)(n)
        if isinstance(what, tuple) and what[0] == 'stall':
            time.sleep(what[1])
            what = what[2]
        ok = None
        secret = self.secrets.get(path)
        if secret:
            ok = verify_signature(secret, h.headers.get('webhook-id', ''),
                                  h.headers.get('webhook-timestamp', ''), body,
                                  h.headers.get('webhook-signature', ''))
        status = what[0] if isinstance(what, tuple) else what
        rec = {'path': path, 'id': h.headers.get('webhook-id'), 'method': h.command,
               'sig': h.headers.get('webhook-signature', ''),
               'ts': h.headers.get('webhook-timestamp'), 'body': body, 'ok': ok,
               'status': 302 if status == 'redirect' else status,
               'json': json.loads(body) if body else None}
        with self.lock:
            self.seen.append(rec)
        try:
            if status == 'redirect':
                h.send_response(302)
                h.send_header('Location', what[1])
            else:
                h.send_response(status)
            h.send_header('Content-Length', '2')
            h.end_headers()
            h.wfile.write(b'ok')
        except OSError:
            pass  # the client gave up (timeout)

    def on(self, path):
        with self.lock:
            return [r for r in self.seen if r['path'] == path]

    def delivered(self, path):
        """{webhook-id: record} of the 2xx answers."""
        return {r['id']: r for r in self.on(path) if 200 <= r['status'] < 300}

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def register(s, url, events=('*',), key=None):
    st, hd, j = s.api('POST', '/v1/webhooks', {'url': url, 'events': list(events)}, key=key)
    eq(st, 201, f'register {url}: {j}')
    check(j['secret'].startswith('whsec_') and len(base64.b64decode(j['secret'][6:])) == 32,
          'whsec_ + base64 of 32 bytes')
    eq(hd.get('location'), f'/v1/webhooks/{j["id"]}')
    return j


def send(s, **over):
    n = dict(NOTICE)
    n.update(over)
    st, _, j = s.api('POST', '/v1/notices', n)
    eq(st, 202, f'POST notice: {j}')
    return j['id']


def events_of(s, nid, types=None):
    return [e for e in s.notice(nid)['events'] if types is None or e['type'] in types]


def fetch_receipt(s, nid):
    def get():
        st, _, body = s.api('GET', f'/v1/notices/{nid}/receipt')
        return body if st == 200 else None
    return wait_until(get, 30, 0.2, 'a receipt')


def ed25519_verified(pem_path, rec, tmp):
    """The v1a signature, checked by openssl (not by our code)."""
    sigs = [p.partition(',')[2] for p in rec['sig'].split(' ') if p.startswith('v1a,')]
    check(len(sigs) == 1, f'one v1a signature in {rec["sig"]!r}')
    msg = os.path.join(tmp, 'msg')
    sig = os.path.join(tmp, 'sig')
    with open(msg, 'wb') as f:
        f.write(f'{rec["id"]}.{rec["ts"]}.'.encode() + rec['body'])
    with open(sig, 'wb') as f:
        f.write(base64.b64decode(sigs[0]))
    p = subprocess.run(['openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', pem_path, '-rawin',
                        '-in', msg, '-sigfile', sig], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    return p.returncode == 0 and b'Signature Verified Successfully' in p.stdout


def all_signed(rcv, path):
    recs = rcv.on(path)
    check(recs, f'nothing arrived on {path}')
    bad = [r for r in recs if r['ok'] is not True]
    check(not bad, f'{len(bad)} request(s) with a bad signature on {path}')


def fast_selo(**extra):
    conf = dict(FAST)
    conf.update(extra)
    return Selo(webhooks=conf).start()


@test
def events_arrive_signed_with_the_log_entry():
    rcv = Receiver()
    s = fast_selo()
    try:
        wh = register(s, rcv.url('/all'))
        rcv.secrets['/all'] = wh['secret']
        eq(wh['events'], ['*'])
        eq(wh['status'], 'active')
        only = register(s, rcv.url('/sealed'), ['notice.content_sealed', 'notice.content_sealed'])
        eq(only['events'], ['notice.content_sealed'], 'duplicates folded')
        rcv.secrets['/sealed'] = only['secret']
        nid = send(s)
        s.wait_status(nid, ('relayed', 'delivered'))
        want = {e['seq'] for e in events_of(s, nid)}

        def all_there():
            return len(rcv.delivered('/all')) >= len(want)
        wait_until(all_there, 30, 0.1, 'every event on /all')
        all_signed(rcv, '/all')
        all_signed(rcv, '/sealed')
        got = rcv.delivered('/all')
        types = sorted(r['json']['type'] for r in got.values())
        for t in ('notice.submission_accepted', 'notice.content_sealed'):
            check(t in types, f'{t} in {types}')
        check('notice.relay_accepted' in types or 'notice.delivery_accepted' in types, types)
        receipt = fetch_receipt(s, nid)
        by_index = {e['index']: e['entry'] for e in receipt['events']}
        for r in got.values():
            j = r['json']
            eq(sorted(j), ['data', 'timestamp', 'type'])
            d = j['data']
            eq(d['notice'], nid)
            eq(d['reference'], 'FAT-2026-0042')
            eq(d['entry'], by_index[d['log_index']], 'the entry at that log index')
            entry = json.loads(d['entry'])
            eq('notice.' + entry['type'], j['type'])
            eq(entry['time'], j['timestamp'])
            check(r['id'].startswith('msg_'), r['id'])
            check(abs(int(r['ts']) - time.time()) < 60, 'webhook-timestamp is now')
        time.sleep(0.5)
        sealed = rcv.delivered('/sealed')
        eq([r['json']['type'] for r in sealed.values()], ['notice.content_sealed'])
        eq(len(rcv.on('/sealed')), 1, 'each event once when the receiver says 2xx')
        st, _, pk = s.api('GET', '/v1/webhooks/public-key')
        eq(st, 200, f'public key: {pk}')
        check(pk['public_key'].startswith('whpk_'), pk)
        eq(len(base64.b64decode(pk['public_key'][5:])), 32)
        pem = os.path.join(s.dir, 'webhook-pub.pem')
        with open(pem, 'w') as f:
            f.write(pk['pem'])
        for r in rcv.on('/all'):
            check(ed25519_verified(pem, r, s.dir), f'v1a of {r["id"]}')
        forged = dict(got[next(iter(got))])
        forged['body'] = forged['body'].replace(b'"notice"', b'"n0tice"', 1)
        check(not ed25519_verified(pem, forged, s.dir), 'an altered body fails v1a')
        check(not verify_signature(wh['secret'], forged['id'], forged['ts'], forged['body'],
                                   forged['sig']), 'an altered body fails v1')
        st, _, g = s.api('GET', f'/v1/webhooks/{wh["id"]}')
        eq(st, 200)
        check('secret' not in g, 'the secret is shown once')
        eq(g['created_at'], wh['created_at'])
        eq(g['deliveries']['delivered'], len(got))
        eq(g['deliveries']['pending'], 0)
        st, _, lst = s.api('GET', '/v1/webhooks')
        eq(sorted(w['id'] for w in lst['webhooks']), sorted([wh['id'], only['id']]))
        check(all('secret' not in w for w in lst['webhooks']), 'no secret in the list')
        st, _, _ = s.api('DELETE', f'/v1/webhooks/{only["id"]}')
        eq(st, 204)
        eq(s.api('GET', f'/v1/webhooks/{only["id"]}')[0], 404)
        eq(s.api('DELETE', f'/v1/webhooks/{only["id"]}')[0], 404)
    finally:
        s.cleanup()
        rcv.stop()


@test
def a_key_sees_only_its_webhooks_and_its_notices():
    rcv = Receiver()
    s = fast_selo()
    try:
        _, other, _ = run(['apikey', 'create', 'outro', '--data', s.data], check_rc=0)
        other = other.strip()
        mine = register(s, rcv.url('/mine'))
        theirs = register(s, rcv.url('/theirs'), key=other)
        st, _, lst = s.api('GET', '/v1/webhooks', key=other)
        eq([w['id'] for w in lst['webhooks']], [theirs['id']])
        eq(s.api('GET', f'/v1/webhooks/{mine["id"]}', key=other)[0], 404)
        eq(s.api('DELETE', f'/v1/webhooks/{mine["id"]}', key=other)[0], 404)
        eq(s.api('GET', '/v1/webhooks', key='selo_nope')[0], 401)
        nid = send(s)
        s.wait_status(nid, ('relayed', 'delivered'))
        wait_until(lambda: len(rcv.delivered('/mine')) >= 3, 30, 0.1, 'events on /mine')
        time.sleep(1)
        eq(rcv.on('/theirs'), [], "another key's notices never reach its webhooks")
    finally:
        s.cleanup()
        rcv.stop()


@test
def bad_registrations_are_refused():
    s = fast_selo()
    try:
        cases = [({'url': 'http://127.0.0.1/'}, 'events'),
                 ({'url': 'http://127.0.0.1/', 'events': []}, 'events'),
                 ({'url': 'http://127.0.0.1/', 'events': ['notice.paid']}, 'events'),
                 ({'url': 'http://127.0.0.1/', 'events': ['opened']}, 'events'),
                 ({'url': 'http://127.0.0.1/', 'events': ['*', 'notice.opened']}, 'events'),
                 ({'events': ['*']}, 'url'),
                 ({'url': 'ftp://127.0.0.1/', 'events': ['*']}, 'url'),
                 ({'url': 'http://127.0.0.1/', 'events': ['*'], 'x': 1}, 'x')]
        for body, field in cases:
            st, hd, j = s.api('POST', '/v1/webhooks', body)
            eq(st, 422, f'{body}: {j}')
            eq(hd.get('content-type'), 'application/problem+json')
            check(field in [e['field'] for e in j['errors']], f'{field} named in {j}')
        eq(s.api('POST', '/v1/webhooks', raw=b'{bad')[0], 400)
        eq(s.api('PUT', '/v1/webhooks')[0], 405)
        eq(s.api('POST', '/v1/webhooks/wh_x')[0], 405)
        st, _, _ = s.api('GET', '/v1/webhooks')
        eq(st, 200)
    finally:
        s.cleanup()


@test
def events_before_the_registration_are_not_sent():
    rcv = Receiver()
    s = fast_selo()
    try:
        before = send(s)
        s.wait_status(before, ('relayed', 'delivered'))
        time.sleep(1.5)  # integrated by the ledger too
        register(s, rcv.url('/new'), ['notice.submission_accepted'])
        after = send(s)
        wait_until(lambda: rcv.delivered('/new'), 30, 0.1, 'the new notice')
        time.sleep(1)
        eq([r['json']['data']['notice'] for r in rcv.on('/new')], [after])
    finally:
        s.cleanup()
        rcv.stop()


@test
def receiver_down_then_up():
    port = free_port()
    s = fast_selo()
    rcv = None
    try:
        wh = register(s, f'http://127.0.0.1:{port}/late', ['notice.submission_accepted'])
        nid = send(s)
        # attempts at 0, 2.5 ms, 150 ms fail: nobody listens
        wait_until(lambda: metric(s, 'selo_webhook_failed_attempts_total') >= 3, 30, 0.05,
                   'three attempts failed while the receiver was down')
        rcv = Receiver(port)
        rcv.secrets['/late'] = wh['secret']
        wait_until(lambda: rcv.delivered('/late'), 30, 0.1, 'the late delivery')
        all_signed(rcv, '/late')
        eq([r['json']['data']['notice'] for r in rcv.on('/late')], [nid])
    finally:
        s.cleanup()
        if rcv:
            rcv.stop()


@test
def answered_500_twice_then_200():
    rcv = Receiver()
    rcv.behave['/flaky'] = lambda n: 500 if n <= 2 else 200
    s = fast_selo()
    try:
        wh = register(s, rcv.url('/flaky'), ['notice.submission_accepted'])
        rcv.secrets['/flaky'] = wh['secret']
        send(s)
        wait_until(lambda: rcv.delivered('/flaky'), 30, 0.1, 'the third attempt')
        recs = rcv.on('/flaky')
        eq([r['status'] for r in recs], [500, 500, 200])
        eq(len({r['id'] for r in recs}), 1, 'one webhook-id across retries')
        eq(len({r['body'] for r in recs}), 1, 'the same body on every attempt')
        all_signed(rcv, '/flaky')
        st, _, g = s.api('GET', f'/v1/webhooks/{wh["id"]}')
        eq(g['deliveries']['delivered'], 1)
        st, _, m = curl('GET', s.url + '/metrics')
        check(b'selo_webhook_deliveries_total 1\n' in m, m)
        check(b'selo_webhook_failed_attempts_total 2\n' in m, m)
    finally:
        s.cleanup()
        rcv.stop()


@test
def a_stall_past_the_timeout_is_retried():
    rcv = Receiver()
    rcv.behave['/slow'] = lambda n: ('stall', 2.5, 200) if n == 1 else 200
    s = fast_selo()
    try:
        wh = register(s, rcv.url('/slow'), ['notice.submission_accepted'])
        rcv.secrets['/slow'] = wh['secret']
        t0 = time.time()
        send(s)
        wait_until(lambda: len(rcv.on('/slow')) >= 2 and rcv.on('/slow')[1]['status'] == 200,
                   30, 0.1, 'the retry after the timeout')
        recs = rcv.on('/slow')
        eq(recs[0]['id'], recs[1]['id'])
        check(time.time() - t0 < 10, 'the 1 s timeout cut the stalled attempt short')
        all_signed(rcv, '/slow')
    finally:
        s.cleanup()
        rcv.stop()


@test
def a_stop_waits_for_a_stalled_delivery_at_most_the_timeout():
    rcv = Receiver()
    rcv.behave['/stall'] = lambda n: ('stall', 8, 200) if n == 1 else 200
    s = fast_selo()
    try:
        register(s, rcv.url('/stall'), ['notice.submission_accepted'])
        send(s)
        wait_until(lambda: rcv.count.get('/stall'), 30, 0.05, 'the stalled request')
        t0 = time.time()
        eq(s.stop(), 0, 'graceful stop')
        check(time.time() - t0 < 5, f'stopped after {time.time() - t0:.1f} s (timeout 1 s)')
        s.start()
        wait_until(lambda: rcv.delivered('/stall'), 30, 0.1, 'the delivery after the restart')
    finally:
        s.cleanup()
        rcv.stop()


@test
def a_stalled_webhook_does_not_hold_back_another():
    rcv = Receiver()
    rcv.behave['/stuck'] = lambda n: ('stall', 3, 200)
    s = fast_selo(workers='4')
    try:
        register(s, rcv.url('/stuck'), ['*'])
        register(s, rcv.url('/fine'), ['*'])
        nids = [send(s) for _ in range(10)]
        for nid in nids:
            s.wait_status(nid, ('relayed', 'delivered'))
        want = sum(len(events_of(s, nid)) for nid in nids)
        t0 = time.time()
        wait_until(lambda: len(rcv.delivered('/fine')) >= want, 30, 0.1,
                   'every event on the healthy webhook')
        check(time.time() - t0 < 10, f'{time.time() - t0:.1f} s behind the stalled one')
    finally:
        s.cleanup()
        rcv.stop()


@test
def sigkill_mid_retry_loses_nothing():
    rcv = Receiver()
    failing = {'on': True}
    rcv.behave['/crash'] = lambda n: 503 if failing['on'] else 200
    # retries at 0, 50 ms, 3 s, 12 s (speed-up 100): the kill lands in between
    s = Selo(webhooks=dict(FAST, retry_speedup='100')).start()
    try:
        wh = register(s, rcv.url('/crash'), ['*'])
        rcv.secrets['/crash'] = wh['secret']
        nid = send(s)
        s.wait_status(nid, ('relayed', 'delivered'))
        wait_until(lambda: len({r['id'] for r in rcv.on('/crash')}) >= 3 and
                   len(rcv.on('/crash')) >= 6, 30, 0.05, 'two failed attempts per event')
        s.stop(signal.SIGKILL)
        failing['on'] = False
        s.start()
        want = {e['seq'] for e in events_of(s, nid)}
        wait_until(lambda: len(rcv.delivered('/crash')) >= len(want), 60, 0.1,
                   'every event delivered after the restart')
        all_signed(rcv, '/crash')
        got = rcv.delivered('/crash')
        eq(sorted(json.loads(r['json']['data']['entry'])['type'] for r in got.values()),
           sorted(e['type'] for e in events_of(s, nid)), 'every event once per webhook-id')
        # the receiver has the last 200 before Selo has recorded it
        wait_until(lambda: s.api('GET', f'/v1/webhooks/{wh["id"]}')[2]['deliveries']['pending']
                   == 0, 30, 0.1, 'no delivery left pending')
    finally:
        s.cleanup()
        rcv.stop()


@test
def gone_410_disables_the_webhook():
    rcv = Receiver()
    rcv.behave['/gone'] = lambda n: 410
    s = fast_selo()
    try:
        wh = register(s, rcv.url('/gone'), ['*'])
        keep = register(s, rcv.url('/keep'), ['notice.submission_accepted'])
        send(s)
        wait_until(lambda: rcv.on('/gone'), 30, 0.1, 'the first attempt')

        def disabled():
            g = s.api('GET', f'/v1/webhooks/{wh["id"]}')[2]
            return g if g['status'] == 'disabled' else None
        g = wait_until(disabled, 10, 0.1, 'the webhook disabled')
        check('410' in g['disabled_reason'], g)
        check(g['disabled_at'], g)
        n = len(rcv.on('/gone'))
        send(s)
        wait_until(lambda: len(rcv.delivered('/keep')) >= 2, 30, 0.1, 'the other webhook')
        time.sleep(0.5)
        eq(len(rcv.on('/gone')), n, 'nothing more to a disabled webhook')
        eq(s.api('GET', f'/v1/webhooks/{keep["id"]}')[2]['status'], 'active')
    finally:
        s.cleanup()
        rcv.stop()


@test
def gives_up_at_the_end_of_the_schedule():
    rcv = Receiver()
    rcv.behave['/never'] = lambda n: 500
    # the whole 77.6 h schedule in 2.8 s
    s = fast_selo(retry_speedup='100000')
    try:
        wh = register(s, rcv.url('/never'), ['notice.submission_accepted'])
        send(s)

        def failed():
            g = s.api('GET', f'/v1/webhooks/{wh["id"]}')[2]
            return g if g['deliveries']['failed'] == 1 else None
        wait_until(failed, 30, 0.2, 'the delivery to fail for good')
        eq(len(rcv.on('/never')), 13, '13 attempts, then none')
        time.sleep(0.5)
        eq(len(rcv.on('/never')), 13)
    finally:
        s.cleanup()
        rcv.stop()


@test
def redirects_are_not_followed():
    rcv = Receiver()
    rcv.behave['/moved'] = lambda n: ('redirect', rcv.url('/target'))
    s = fast_selo()
    try:
        register(s, rcv.url('/moved'), ['notice.submission_accepted'])
        send(s)
        wait_until(lambda: len(rcv.on('/moved')) >= 3, 30, 0.1, 'retries of the 302')
        eq(len({r['id'] for r in rcv.on('/moved')}), 1, 'a 302 is a failed attempt')
        eq(rcv.on('/target'), [], 'the redirect target is never fetched')
    finally:
        s.cleanup()
        rcv.stop()


@test
def private_targets_refused_without_allow_private():
    s = Selo(webhooks={'timeout_ms': '1000', 'retry_speedup': '2000'}).start()
    try:
        for url in ['http://127.0.0.1:9/', 'http://localhost:9/', 'http://[::1]/',
                    'http://[::ffff:10.0.0.1]/', 'http://[::ffff:127.0.0.1]/',
                    'http://10.1.2.3/', 'http://192.168.1.1/', 'http://172.16.0.1/',
                    'http://100.64.0.1/', 'http://169.254.169.254/', 'http://0.0.0.0/',
                    'http://[fe80::1]/', 'http://[fd00::1]/', 'http://2130706433/']:
            st, _, j = s.api('POST', '/v1/webhooks', {'url': url, 'events': ['*']})
            eq(st, 422, f'{url}: {j}')
            eq([e['field'] for e in j['errors']], ['url'], url)
        eq(s.api('GET', '/v1/webhooks')[2]['webhooks'], [], 'nothing stored')
        # A public literal is accepted without any connection (no DNS, and no
        # notice is sent while it exists), then deleted.
        wh = register(s, 'http://93.184.216.34/hook', ['notice.opened'])
        eq(s.api('DELETE', f'/v1/webhooks/{wh["id"]}')[0], 204)
    finally:
        s.cleanup()


@test
def the_connected_address_is_checked_again():
    """A URL stored while loopback was allowed, delivered after allow_private
    was turned off: the connection itself is refused (the check that stops
    DNS rebinding), nothing reaches the receiver, the delivery stays pending."""
    rcv = Receiver()
    s = fast_selo()
    try:
        wh = register(s, rcv.url('/rebind'), ['notice.submission_accepted'])
        s.stop()
        s.conf['webhooks']['allow_private'] = 'no'
        s.write_conf()
        s.start()
        send(s)
        # the attempt is made, refused at connection, and counted as failed
        wait_until(lambda: metric(s, 'selo_webhook_failed_attempts_total') >= 1, 30, 0.05,
                   'the attempt refused at connection')
        eq(rcv.on('/rebind'), [], 'no request reached the loopback receiver')
        g = s.api('GET', f'/v1/webhooks/{wh["id"]}')[2]
        eq(g['deliveries']['pending'], 1)
        check('not a public address' in s.serve_log(), s.serve_log())
    finally:
        s.cleanup()
        rcv.stop()


@test
def ipv6_special_ranges_refused_at_registration_and_at_connection():
    """SIIT's IPv4-translated ::ffff:0:0:0/96 (issue 17: ::ffff:0:7f00:1 was
    accepted with 201 and connected to) and the other IPv6 ranges that are
    not global unicast, or are special inside it: 422 naming the address at
    registration; a URL stored while allow_private was on is refused at
    connection time once it is off."""
    s = Selo(webhooks={'timeout_ms': '1000', 'retry_speedup': '2000'}).start()
    try:
        for addr in ['::ffff:0:7f00:1', '::ffff:0:808:808', '64:ff9b:1::a00:1', '64:ff9b::a9fe:a9fe',
                     '2002:a00:1::1', '2001::1', '2001:2::1', '3fff::1', '100::1',
                     '100:0:0:1::1', '5f00::1', 'fe00::1', '::2']:
            st, _, j = s.api('POST', '/v1/webhooks', {'url': f'http://[{addr}]:8080/hook', 'events': ['*']})
            eq(st, 422, f'{addr}: {j}')
            eq([e['field'] for e in j['errors']], ['url'], addr)
            msg = j['errors'][0]['detail']
            check(f'{addr} is not a public address' in msg, f'{addr}: {msg}')
        eq(s.api('GET', '/v1/webhooks')[2]['webhooks'], [], 'nothing stored')
    finally:
        s.cleanup()
    rcv = Receiver()
    s = fast_selo()
    try:
        wh = register(s, f'http://[::ffff:0:7f00:1]:{rcv.port}/siit', ['notice.submission_accepted'])
        s.stop()
        s.conf['webhooks']['allow_private'] = 'no'
        s.write_conf()
        s.start()
        send(s)
        wait_until(lambda: 'refused to connect to ::ffff:0:7f00:1' in s.serve_log_all(), 30, 0.2,
                   'the delivery refused at connection time')
        eq(rcv.on('/siit'), [], 'no request reached the receiver')
        eq(s.api('GET', f'/v1/webhooks/{wh["id"]}')[2]['deliveries']['pending'], 1)
    finally:
        s.cleanup()
        rcv.stop()


PUBLIC = '93.184.216.34'  # only ever reached inside the namespace below


def in_netns():
    """Runs inside `unshare -rnm`: a network namespace whose only interface
    is loopback, carrying PUBLIC as well, and a mount namespace whose
    /etc/hosts this test writes. Nothing here can reach a real network."""
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    subprocess.run(['ip', 'addr', 'add', f'{PUBLIC}/32', 'dev', 'lo'], check=True)
    hosts = tempfile.NamedTemporaryFile('w', suffix='.hosts', delete=False)
    hosts.write(f'127.0.0.1 localhost\n{PUBLIC} hook.example\n')
    hosts.close()
    subprocess.run(['mount', '--bind', hosts.name, '/etc/hosts'], check=True)
    pub = Receiver(host=PUBLIC)
    loop = Receiver(port=pub.port)  # where hook.example will point next
    # On PostgreSQL the store is a database of the outer test's cluster, given
    # by its URL: its Unix socket is a file, reachable from this network
    # namespace (no TCP needed), and no cluster can start in here (we are
    # root in a user namespace mapping only root: initdb refuses root, and
    # `nobody`, the owner pgtest uses for root, does not exist here).
    store = os.environ.get('SELO_NETNS_STORE_URL')
    extra = {'store': {'backend': 'postgres', 'url': store}} if store else {}
    s = Selo(webhooks={'timeout_ms': '1000', 'retry_speedup': '2000'}, **extra).start()
    try:
        lit = register(s, pub.url('/lit'), ['notice.submission_accepted'])
        named = register(s, f'http://hook.example:{pub.port}/named', ['notice.submission_accepted'])
        pub.secrets['/lit'] = lit['secret']
        pub.secrets['/named'] = named['secret']
        nid = send(s)
        wait_until(lambda: pub.delivered('/lit') and pub.delivered('/named'), 30, 0.1,
                   'deliveries to the public address, allow_private off')
        all_signed(pub, '/lit')
        all_signed(pub, '/named')
        eq([r['json']['data']['notice'] for r in pub.on('/named')], [nid])
        # DNS rebinding: the name now points at loopback. A new webhook on it
        # is refused; the one registered before gets no request through.
        with open(hosts.name, 'w') as f:
            f.write(f'127.0.0.1 localhost hook.example\n')
        st, _, j = s.api('POST', '/v1/webhooks', {'url': f'http://hook.example:{pub.port}/x',
                                                    'events': ['*']})
        eq(st, 422, f'{j}')
        s.stop()  # new delivery threads: no name cached from before
        s.start()
        send(s)
        wait_until(lambda: len(pub.delivered('/lit')) == 2, 30, 0.1, 'the literal delivered again')
        time.sleep(2)
        eq(loop.on('/named'), [], 'nothing reached loopback through the rebound name')
        eq(len(pub.on('/named')), 1, 'and nothing more reached the old address')
        check('refused to connect to 127.0.0.1' in s.serve_log(), s.serve_log())
    finally:
        s.cleanup()
        pub.stop()
        loop.stop()
        os.unlink(hosts.name)


@test
def at_most_20_webhooks_per_key_even_when_registered_at_once():
    s = fast_selo()
    try:
        results = []

        def reg(i):
            st, _, j = s.api('POST', '/v1/webhooks', {'url': f'http://127.0.0.1:9/w{i}',
                                                       'events': ['*']})
            results.append((st, j))
        threads = [threading.Thread(target=reg, args=(i,)) for i in range(26)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        eq(sorted(st for st, _ in results), [201] * 20 + [422] * 6, f'{results}')
        for st, j in results:
            if st == 422:
                check(j['type'].endswith(':too-many-webhooks') and '20' in j['detail'], j)
        st, _, lst = s.api('GET', '/v1/webhooks')
        eq(len(lst['webhooks']), 20)
        other = run(['apikey', 'create', 'outra', '--data', s.data], check_rc=0)[1].strip()
        eq(register(s, 'http://127.0.0.1:9/other', key=other)['url'], 'http://127.0.0.1:9/other',
           'another key has its own 20')
    finally:
        s.cleanup()


def age_finished_deliveries(s, done_ms):
    """Backdates every finished delivery of s's store (selo stopped): the
    SQLite file, or the PostgreSQL database through psql and its URL.
    s.sql only reads; this is the one write the test makes behind selo."""
    q = f"UPDATE webhook_outbox SET done_ms = {int(done_ms)} WHERE state != 'pending'"
    if s.backend != 'postgres':
        import sqlite3
        db = sqlite3.connect(os.path.join(s.data, 'selo.db'))
        with db:
            db.execute(q)
        db.close()
        return
    psql(s.conf['store']['url'], q)


def psql(url, q):
    """Runs q with psql on the PostgreSQL database at url (a libpq
    connection string); returns its unaligned output."""
    import pgtest
    return subprocess.run([os.path.join(pgtest.PG_BIN, 'psql'), '-X', '-q', '-At', '-v',
                           'ON_ERROR_STOP=1', '-d', url, '-c', q], check=True,
                          stdout=subprocess.PIPE, timeout=60).stdout.decode().strip()


@test
def finished_deliveries_older_than_keep_days_are_dropped():
    rcv = Receiver()
    s = fast_selo()
    try:
        ok = register(s, rcv.url('/ok'), ['*'])
        rcv.secrets['/ok'] = ok['secret']
        dead = register(s, 'http://127.0.0.1:9/dead', ['*'])
        nid = send(s)
        s.wait_status(nid, ('relayed', 'delivered'))
        n_events = len(events_of(s, nid))
        wait_until(lambda: len(rcv.delivered('/ok')) >= n_events, 30, 0.1, 'all delivered')
        s.stop()
        age_finished_deliveries(s, (time.time() - 31 * 86400) * 1000)

        def count(state):
            wh = ok['id'] if state == 'delivered' else dead['id']
            return int(s.sql(f"SELECT count(*) FROM webhook_outbox WHERE webhook_id = '{wh}'"
                             f" AND state = '{state}'")[0][0])
        eq(count('delivered'), n_events)
        pending = count('pending')
        check(pending >= 1, 'the dead endpoint has pending deliveries')
        s.start()
        wait_until(lambda: count('delivered') == 0, 20, 0.2, 'finished deliveries pruned')
        eq(count('pending'), pending, 'pending deliveries are kept, whatever their age')
        st, _, g = s.api('GET', f'/v1/webhooks/{ok["id"]}')
        eq((st, g['deliveries']['delivered']), (200, 0))
    finally:
        s.cleanup()
        rcv.stop()


@test
def a_damaged_sealing_key_stops_the_start_and_is_kept():
    """keys/webhook.key seals every webhook secret: one that cannot be read
    must never be replaced by a fresh key (every secret would be lost)."""
    s = fast_selo()
    try:
        register(s, 'http://127.0.0.1:9/x')
        s.stop()
        path = os.path.join(s.data, 'keys', 'webhook.key')
        eq(os.stat(path).st_mode & 0o777, 0o600, 'webhook.key mode')
        with open(path, 'w') as f:
            f.write('not hex\n')
        try:
            s.start()
            raise Fail('selo serve started with a damaged webhook.key')
        except Fail as e:
            check('webhook.key must hold exactly 64 hex digits' in str(e), str(e))
        s.p = None
        with open(path) as f:
            eq(f.read(), 'not hex\n', 'the damaged key is left for the operator')
    finally:
        s.cleanup()


@test
def public_targets_and_dns_rebinding_in_a_network_namespace():
    if subprocess.run(['unshare', '-rnm', 'true'], stderr=subprocess.DEVNULL).returncode != 0:
        skip('unshare -rnm is not permitted here')
    env = dict(os.environ)
    url = env['SELO_NETNS_STORE_URL'] = pg_database() if selotest.STORE == 'postgres' else ''
    p = subprocess.run(['unshare', '-rnm', PY, os.path.abspath(__file__), '--in-netns'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180, env=env)
    out = p.stdout.decode('utf-8', 'replace')
    check(p.returncode == 0 and 'netns ok' in out, f'in the namespace: {out[-3000:]}')
    if url:  # the namespace's selo kept its webhooks in that database
        eq(psql(url, 'SELECT count(*) FROM webhooks'), '2')


if __name__ == '__main__':
    if sys.argv[1:] == ['--in-netns']:
        try:
            in_netns()
        except Exception:
            traceback.print_exc(file=sys.stdout)
            sys.exit(1)
        finally:
            for p in list(selotest._procs):
                stop(p, signal.SIGKILL)
        print('netns ok')
        sys.exit(0)
    main()
