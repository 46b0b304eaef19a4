#!/usr/bin/python3
"""Request limits of the API (issue 17, item 3): one API key must not be able
to exhaust the server's memory. Bodies built to make the JSON parser
allocate millions of values (32 MiB of `{"notices":[{},{},...]}`, 32 MiB of
`[0,0,...]`), three at once, must be refused with 413 or 422 within a few
seconds while the server's peak RSS stays under 512 MB; the JSON limits of
docs/api.md hold exactly; and beyond `api.large_requests` large bodies at
once the API answers 503 with Retry-After.

A watchdog polls the server's RSS and kills it (by its PID) above 1.5 GB, so
that running these tests against a server without the limits fails them
without taking the machine's memory."""
import json, os, signal, socket, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

MAX_BODY = 32 << 20      # api.max_body's default
RSS_BOUND = 512 << 20    # the bound for three such requests at once
KILL_AT = 1536 << 20     # the watchdog's: far past the bound, far from the machine's RAM
ANSWER_S = 5.0           # "quickly": each refusal, from the first byte sent

NOTICE = {'to': 'devedor@destino.example', 'template': 'lembrete',
          'vars': {'nome': 'Ana', 'credor': 'Loja Exemplo', 'valor': '10.00',
                   'vencimento': '2026-12-01'}}


def flood(head, item, tail, size):
    """head + item,item,...,item + tail, as close to size bytes as fits."""
    n = (size - len(head) - len(tail) + 1) // (len(item) + 1)
    return head + b','.join([item] * n) + tail


def proc_kb(pid, field):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Watchdog:
    """Polls VmRSS of pid; kills the process past KILL_AT and remembers it."""

    def __init__(self, pid):
        self.pid, self.peak, self.killed = pid, 0, False
        self.done = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.done.wait(0.02):
            rss = proc_kb(self.pid, 'VmRSS')
            self.peak = max(self.peak, rss)
            if rss > KILL_AT and not self.killed:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)

    def stop(self):
        self.done.set()
        self.t.join()


def read_answer(sock, deadline):
    """(status, headers, body) of one HTTP/1.1 response read from sock."""
    data = b''
    while b'\r\n\r\n' not in data:
        sock.settimeout(max(0.01, deadline - time.time()))
        chunk = sock.recv(65536)
        if not chunk:
            raise Fail(f'connection closed before an answer: {data[:200]!r}')
        data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(':')
        hdrs[k.strip().lower()] = v.strip()
    want = int(hdrs.get('content-length', '0'))
    while len(body) < want:
        sock.settimeout(max(0.01, deadline - time.time()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), hdrs, body


def request_head(s, path, length=None, key=None, chunked=False):
    h = (f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n'
         f'Authorization: Bearer {key or s.key}\r\nContent-Type: application/json\r\n')
    h += 'Transfer-Encoding: chunked\r\n' if chunked else f'Content-Length: {length}\r\n'
    return (h + '\r\n').encode()


def post(s, path, body, timeout=30):
    """POSTs body on a socket of its own; (status, headers, json, seconds)."""
    t0 = time.time()
    with socket.create_connection(('127.0.0.1', s.api_port), timeout=timeout) as c:
        try:
            c.sendall(request_head(s, path, len(body)) + body)
        except OSError:
            pass  # the server may answer and close before it has read it all
        st, hd, b = read_answer(c, t0 + timeout)
    return st, hd, json.loads(b) if b else None, time.time() - t0


def refused_quickly(st, hd, j, secs, what, ptype):
    check(st in (413, 422), f'{what}: {st} {j}')
    eq(hd.get('content-type'), 'application/problem+json', what)
    eq(j['type'], 'urn:selo:problem:' + ptype, what)
    check(secs < ANSWER_S, f'{what}: answered after {secs:.1f} s, not within {ANSWER_S} s')


@test
def three_huge_batches_at_once_are_refused_quickly_in_bounded_memory():
    s = Selo().start()
    dog = Watchdog(s.p.pid)
    try:
        batch = flood(b'{"notices":[', b'{}', b']}', MAX_BODY - 1024)
        check(len(batch) <= MAX_BODY)
        out = [None] * 3

        def one(i):
            try:
                out[i] = post(s, '/v1/notices/batch', batch)
            except Exception as e:  # noqa: BLE001 (reported below)
                out[i] = e
        ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        check(not dog.killed, f'selo serve went past {KILL_AT >> 20} MB of RSS and was killed')
        for i, r in enumerate(out):
            check(not isinstance(r, Exception), f'batch {i}: {r}')
            st, hd, j, secs = r
            refused_quickly(st, hd, j, secs, f'batch {i}', 'batch-too-large')
            eq([e['field'] for e in j.get('errors', [])], ['notices'], f'batch {i}')

        zeros = flood(b'[', b'0', b']', MAX_BODY - 1024)
        st, hd, j, secs = post(s, '/v1/notices', zeros)
        check(not dog.killed, f'selo serve went past {KILL_AT >> 20} MB of RSS and was killed')
        refused_quickly(st, hd, j, secs, 'array of zeros', 'json-too-complex')

        hwm = proc_kb(s.p.pid, 'VmHWM')
        check(hwm < RSS_BOUND, f'peak RSS {hwm >> 20} MB (watchdog saw {dog.peak >> 20} MB), '
                               f'not under {RSS_BOUND >> 20} MB')
        st, _, j = s.api('POST', '/v1/notices', NOTICE)
        eq(st, 202, f'a normal notice afterwards: {j}')
        rss = proc_kb(s.p.pid, 'VmRSS')
        check(rss < RSS_BOUND, f'RSS afterwards {rss >> 20} MB')
    finally:
        dog.stop()
        if dog.killed:
            s.p.wait()
        s.cleanup()


@test
def json_limits_hold_exactly():
    s = Selo(limits={'max_batch': '3'}).start()
    try:
        st, _, j, _ = post(s, '/v1/notices/batch', b'{"notices":[{},{},{}]}')
        eq((st, j['rejected']), (200, 3), f'3 items, the limit: {j}')
        st, _, j, _ = post(s, '/v1/notices/batch', b'{"notices":[{},{},[1,2,3,4],{}]}')
        eq((st, j['type']), (413, 'urn:selo:problem:batch-too-large'), f'4 items: {j}')
        eq([e['field'] for e in j['errors']], ['notices'])
        check('at most 3' in j['errors'][0]['detail'], j)
        # Strings and escapes hold no structure.
        tricky = json.dumps({'notices': ['[{"\\', 'é],[{', {'a\\"[': ']]}}"[,'}]}).encode()
        check(b'\\u00e9' in tricky and b'\\\\' in tricky, tricky)
        st, _, j, _ = post(s, '/v1/notices/batch', tricky)
        eq((st, j.get('rejected')), (200, 3), f'3 items with brackets in strings: {j}')

        deep = lambda n: b'[' * n + b']' * n  # noqa: E731
        st, _, j, _ = post(s, '/v1/notices', deep(16))
        eq(st, 400, f'16 levels, the limit: {j}')
        st, _, j, _ = post(s, '/v1/notices', deep(17))
        eq((st, j['type']), (413, 'urn:selo:problem:json-too-complex'), f'17 levels: {j}')
        check('16' in j['detail'], j)

        # A single request: 64 notices' worth of 128 + 4 x 10 attachments values.
        values = 64 * (128 + 4 * 10)
        arr = lambda n: b'[' + b','.join([b'0'] * (n - 1)) + b']'  # noqa: E731
        st, _, j, _ = post(s, '/v1/notices', arr(values))
        eq(st, 400, f'{values} values, the limit: {j}')
        st, _, j, _ = post(s, '/v1/notices', arr(values + 1))
        eq((st, j['type']), (413, 'urn:selo:problem:json-too-complex'), f'{values + 1} values')
        check(str(values) in j['detail'], j)
        # A batch: max_batch notices' worth; object keys are not values.
        values = 3 * (128 + 4 * 10)
        st, _, j, _ = post(s, '/v1/notices/batch', b'{"notices":[' + arr(values - 2) + b']}')
        eq((st, j.get('rejected')), (200, 1), f'a batch of {values} values, the limit: {j}')
        st, _, j, _ = post(s, '/v1/notices/batch', b'{"notices":[' + arr(values - 1) + b']}')
        eq((st, j['type']), (413, 'urn:selo:problem:json-too-complex'), f'{values + 1} values')

        st, _, j = s.api('POST', '/v1/notices', NOTICE)
        eq(st, 202, f'a normal notice: {j}')
    finally:
        s.cleanup()


@test
def large_requests_beyond_the_bound_get_503():
    s = Selo(api={'large_body': '64k', 'large_requests': '1'}).start()
    socks = []
    try:
        # A valid notice, made large by whitespace.
        big = json.dumps(dict(NOTICE, reference='L-1')).encode()[:-1] + b' ' * (100 << 10) + b'}'
        check(len(big) > 64 << 10)
        # A holds the one large slot: its head and half its body are in.
        a = socket.create_connection(('127.0.0.1', s.api_port), timeout=30)
        socks.append(a)
        a.sendall(request_head(s, '/v1/notices', len(big)) + big[:len(big) // 2])
        time.sleep(0.3)

        # B declares a large body: 503 at once, before sending it.
        b = socket.create_connection(('127.0.0.1', s.api_port), timeout=30)
        socks.append(b)
        t0 = time.time()
        b.sendall(request_head(s, '/v1/notices', len(big)))
        st, hd, body = read_answer(b, t0 + 10)
        j = json.loads(body)
        eq((st, j['type']), (503, 'urn:selo:problem:busy'), f'a second large request: {j}')
        eq(hd.get('content-type'), 'application/problem+json')
        check(hd.get('retry-after', '').isdigit(), f'Retry-After: {hd}')
        check(time.time() - t0 < 2, 'the 503 comes without waiting for the body')

        # A chunked body that grows past api.large_body meanwhile: 503 too.
        c = socket.create_connection(('127.0.0.1', s.api_port), timeout=30)
        socks.append(c)
        c.sendall(request_head(s, '/v1/notices', chunked=True))
        for i in range(0, len(big), 16 << 10):
            part = big[i:i + (16 << 10)]
            c.sendall(b'%x\r\n' % len(part) + part + b'\r\n')
        c.sendall(b'0\r\n\r\n')
        st, hd, body = read_answer(c, time.time() + 10)
        eq((st, json.loads(body)['type']), (503, 'urn:selo:problem:busy'), 'chunked, grown large')
        check(hd.get('retry-after', '').isdigit(), f'Retry-After: {hd}')

        # So does a small batch whose JSON holds more values than a request
        # other than a batch may (64 notices' worth): parsed, it would cost more.
        many = b'{"notices":[[' + b','.join([b'0'] * (64 * 168 + 1)) + b']]}'
        check(len(many) < 64 << 10)
        st, hd, j, _ = post(s, '/v1/notices/batch', many)
        eq((st, j['type']), (503, 'urn:selo:problem:busy'), 'a small body of many values')

        # Small requests are not held back.
        st, _, j = s.api('POST', '/v1/notices', dict(NOTICE, reference='S-1'))
        eq(st, 202, f'a small request meanwhile: {j}')
        # A large one with a bad key is refused before its body is read.
        d = socket.create_connection(('127.0.0.1', s.api_port), timeout=30)
        socks.append(d)
        d.sendall(request_head(s, '/v1/notices', len(big), key='sk_not_a_key'))
        st, _, _ = read_answer(d, time.time() + 10)
        eq(st, 401, 'a large request with a bad key')

        # A finishes; its slot is free again.
        a.sendall(big[len(big) // 2:])
        st, _, body = read_answer(a, time.time() + 30)
        eq(st, 202, f'the large request that held the slot: {body[:300]!r}')
        st, _, j, _ = post(s, '/v1/notices', big.replace(b'L-1', b'L-2'))
        eq(st, 202, f'a large request after: {j}')
    finally:
        for x in socks:
            x.close()
        s.cleanup()


@test
def a_trickled_body_is_cut_and_frees_its_slot():
    # a key holder sending a large body a byte at a time kept its slot (and
    # its connection) for as long as it liked: each byte reset the idle
    # timeout. api.request_timeout bounds the whole request.
    s = Selo(api={'large_body': '64k', 'large_requests': '1', 'request_timeout': '2'}).start()
    try:
        big = json.dumps(dict(NOTICE, reference='T-1')).encode()[:-1] + b' ' * (100 << 10) + b'}'
        slow = socket.create_connection(('127.0.0.1', s.api_port), timeout=30)
        slow.sendall(request_head(s, '/v1/notices', len(big)) + big[:70 << 10])
        t0, cut = time.time(), False
        while time.time() - t0 < 8:
            try:
                slow.sendall(b' ')
                slow.settimeout(0.5)
                if slow.recv(4096) == b'':
                    cut = True
                    break
            except socket.timeout:
                continue
            except OSError:
                cut = True
                break
        slow.close()
        check(cut, 'the trickling request was cut')
        check(time.time() - t0 < 6, f'within the deadline ({time.time() - t0:.1f} s)')
        st, _, j, _ = post(s, '/v1/notices', big.replace(b'T-1', b'T-2'))
        eq(st, 202, f'its slot is free again: {j}')
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
