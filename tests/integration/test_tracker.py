#!/usr/bin/python3
"""Tracker (issue 4) through the real binary with curl: every endpoint, every
classification rule, forged tokens, open-redirect attempts, a flood within the
rate limits, events landing in the log and the receipt, and the public log
(checkpoint, tiles, entry bundles) checked against the entries it serves."""
import base64, email, email.policy, hashlib, json, os, re, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

CHROME = ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
          'Chrome/131.0.0.0 Safari/537.36')
GMAIL_PREFETCH = ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
                  'Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0')
HTML = ('<html><body><p>Olá</p><a href="https://pagar.example/boleto?id=7&amp;v=1">Pagar</a> '
        '<a href="https://ajuda.example/faq">Dúvidas</a></body></html>')


def hit(url, method='GET', ua=CHROME, headers=None, data=None):
    argv = ['curl', '-s', '-o', '/dev/null', '-D', '-', '-X', method, '--max-time', '10']
    if method == 'HEAD':
        argv = ['curl', '-s', '-I', '--max-time', '10']
    if ua is not None:
        argv += ['-A', ua]
    for k, v in (headers or {}).items():
        argv += ['-H', f'{k}: {v}']
    if data is not None:
        argv += ['--data-binary', data]
    p = subprocess.run(argv + [url], stdout=subprocess.PIPE, timeout=30)
    head = p.stdout.decode('latin-1').split('\r\n')
    status = int(head[0].split()[1]) if head and head[0] else 0
    hd = {l.split(':', 1)[0].lower(): l.split(':', 1)[1].strip() for l in head[1:] if ':' in l}
    return status, hd


def body(url, method='GET', ua=CHROME):
    p = subprocess.run(['curl', '-s', '-X', method, '-A', ua, '--max-time', '10', url],
                       stdout=subprocess.PIPE, timeout=30)
    return p.stdout


class World:
    """A sent notice with two links, and the URLs its message carries."""

    def __init__(self, **conf):
        self.smtp = SMTPServer()
        c = {'smtp': {'mode': 'relay', 'relay': f'127.0.0.1:{self.smtp.port}', 'starttls': 'no'},
             'track': {'after_delivery_s': '2', 'burst_window_ms': '2000'}}
        for k, v in conf.items():
            c.setdefault(k, {}).update(v)
        self.s = Selo(**c).start()
        st, _, j = self.s.api('POST', '/v1/notices', {'to': 'devedor@destino.example',
                                                      'subject': 'Aviso', 'text': 'Aviso',
                                                      'html': HTML})
        eq(st, 202)
        self.id = j['id']
        self.s.wait_status(self.id, ['relayed'])
        eml, _ = self.smtp.messages()[0]
        m = email.message_from_bytes(eml, policy=email.policy.default)
        html = next(p for p in m.walk() if p.get_content_type() == 'text/html').get_content()
        base = f'http://127.0.0.1:{self.s.track_port}'
        self.pixel = re.search(re.escape(base) + r'/o/[A-Za-z0-9_-]+\.gif', html).group(0)
        self.clicks = re.findall(re.escape(base) + r'/c/[A-Za-z0-9_-]+', html)
        self.confirm = re.search(re.escape(base) + r'/r/[A-Za-z0-9_-]+', html).group(0)
        self.base = base
        check(len(self.clicks) == 2, f'two tracked links: {self.clicks}')

    def events(self, types=('opened', 'clicked', 'read_confirmed')):
        return [e['entry'] for e in self.s.notice(self.id)['events'] if e['type'] in types]

    def wait_events(self, n, types=('opened', 'clicked', 'read_confirmed')):
        return wait_until(lambda: (lambda ev: ev if len(ev) >= n else None)(self.events(types)),
                          10, 0.1, f'{n} tracker events')

    def barrier(self):
        """Every hit made before this call has been recorded, or never will
        be: one more pixel goes through the same first-in first-out queue,
        and its open appearing means the recorder has passed them all."""
        before = len(self.events(('opened',)))
        st, _ = hit(self.pixel)
        eq(st, 200, 'the barrier pixel')
        wait_until(lambda: len(self.events(('opened',))) > before, 30, 0.05, 'the barrier pixel')

    def close(self):
        self.s.cleanup()
        self.smtp.stop()


@test
def pixel_click_and_confirmation():
    w = World()
    try:
        st, hd = hit(w.pixel)
        eq(st, 200, 'pixel')
        eq(hd.get('content-type'), 'image/gif')
        check('no-store' in hd.get('cache-control', ''), hd)
        gif = body(w.pixel)
        eq(len(gif), 43, 'a 43-byte GIF')
        check(gif.startswith(b'GIF89a'), gif[:6])
        # keep-alive: curl fetches three pixels over one connection (a
        # tracker that closes after each answer costs a handshake per hit)
        p = subprocess.run(['curl', '-sv', '-A', CHROME, '-o', '/dev/null', '-o', '/dev/null',
                            '-o', '/dev/null', w.pixel, w.pixel, w.pixel],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        log = p.stderr.decode('latin-1')
        eq(log.count('Connected to'), 1, f'one connection for three pixels: {log[-600:]}')
        check('Connection: close' not in log, 'no Connection: close')
        time.sleep(2.2)  # past track.after_delivery_s
        st, hd = hit(w.clicks[0])
        eq(st, 302, 'click')
        eq(hd.get('location'), 'https://pagar.example/boleto?id=7&v=1', 'the stored URL, entities decoded')
        page = body(w.confirm).decode()
        check('Confirmar recebimento' in page and '<form' in page and 'method="post"' in page.lower(), page[:400])
        check('lang="pt-BR"' in page, 'pt-BR page')
        check('http://' not in page.replace(w.base, '') and 'https://' not in page, 'no external assets')
        st, _ = hit(w.confirm, 'POST', data='')
        eq(st, 200, 'POST /r')
        check('Recebimento confirmado' in body(w.confirm).decode(), 'the page now says it is confirmed')
        st, _ = hit(w.confirm, 'POST', data='')
        eq(st, 200, 'a second POST')
        ev = wait_until(lambda: (lambda e: e if {'opened', 'clicked', 'read_confirmed'} <=
                                                {x['type'] for x in e} else None)(w.events()),
                        10, 0.1, 'opened, clicked and read_confirmed')
        w.barrier()
        ev = w.events()
        types = [e['type'] for e in ev]
        eq(types.count('read_confirmed'), 1, f'read_confirmed once: {types}')
        eq(types.count('opened'), 6, 'five pixel fetches and the barrier, six opens')
        by = {}
        for e in ev:
            by.setdefault(e['type'], e)
        eq((by['opened']['class'], by['opened']['reason']), ('human', 'no-rule'))
        eq((by['clicked']['class'], by['clicked']['link']), ('human', 1))
        eq((by['read_confirmed']['class'], by['read_confirmed']['reason']), ('human', 'button-pressed'))
        for e in ev:
            check(e['ip'].startswith('sha256:') and e['user_agent'].startswith('sha256:'),
                  f'IP and user agent as commitments: {e}')
            check('127.0.0.1' not in json.dumps(e) and 'Chrome' not in json.dumps(e), e)
        # they reach the log and the receipt, which verifies
        def receipt():
            st, _, r = w.s.api('GET', f'/v1/notices/{w.id}/receipt')
            if st != 200:
                return None
            t = [json.loads(e['entry'])['type'] for e in r['events']]
            return r if 'read_confirmed' in t and 'clicked' in t else None
        r = wait_until(receipt, 15, 0.3, 'tracker events in the receipt')
        path = os.path.join(w.s.dir, 'r.json')
        with open(path, 'w') as f:
            json.dump(r, f)
        rc, out, _ = run(['verify', path, '--key', os.path.join(w.s.data, 'keys', 'log.vkey'),
                          '--tsa-ca', os.path.join(w.s.data, 'keys', 'ca.crt')])
        eq(rc, 0, out)
        check('127.0.0.1' in r['disclosure']['values'].values(), 'the IP is disclosed in the receipt')
    finally:
        w.close()


@test
def every_classification_rule():
    w = World()
    try:
        cases = [  # (url kind, method, ua, headers, class, reason)
            ('pixel', 'HEAD', CHROME, None, 'scanner', 'head-request'),
            ('pixel', 'GET', CHROME, {'Sec-Purpose': 'prefetch'}, 'scanner', 'prefetch-header'),
            ('pixel', 'GET', 'Mozilla/5.0', None, 'proxy', 'apple-mpp'),
            ('pixel', 'GET', GMAIL_PREFETCH, None, 'proxy', 'gmail-prefetch'),
            ('pixel', 'GET', 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)',
             None, 'proxy', 'gmail-proxy'),
            ('pixel', 'GET', 'YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html',
             None, 'proxy', 'yahoo-proxy'),
            ('pixel', 'GET', 'curl/7.88.1', None, 'scanner', 'known-scanner-agent'),
            ('click0', 'GET', CHROME, None, 'scanner', 'seconds-after-delivery'),
        ]
        for kind, method, ua, hdrs, cls, reason in cases:
            url = w.pixel if kind == 'pixel' else w.clicks[0]
            hit(url, method, ua, hdrs)
        ev = w.wait_events(len(cases))
        got = [(e['class'], e['reason']) for e in ev]
        for (_, _, _, _, cls, reason), g in zip(cases, got):
            eq(g, (cls, reason), 'rule')
        time.sleep(2.5)
        hit(w.clicks[0])
        hit(w.clicks[1])  # a second link of the notice right after: a burst
        ev = w.wait_events(len(cases) + 2)
        eq((ev[-2]['class'], ev[-1]['class'], ev[-1]['reason']), ('human', 'scanner', 'link-burst'))
    finally:
        w.close()


@test
def forged_tokens_and_open_redirects():
    w = World()
    try:
        tok = w.clicks[0].rsplit('/', 1)[1]
        flipped = tok[:10] + ('A' if tok[10] != 'A' else 'B') + tok[11:]
        pix = w.pixel.rsplit('/', 1)[1][:-4]
        for path in [f'/c/{flipped}', f'/c/{tok[:-1]}', f'/c/{tok}x', f'/c/{pix}', f'/o/{tok}.gif',
                     f'/r/{tok}', '/c/', '/o/.gif', '/nowhere', f'/c/{tok}/https://evil.example',
                     '/c/%2F%2Fevil.example', f'/c//evil.example/{tok}']:
            st, hd = hit(w.base + path)
            eq(st, 404, f'{path}')
            check('location' not in hd, f'{path} redirected')
        for q in ['?url=https://evil.example', '?next=//evil.example', '?u=%2F%2Fevil.example']:
            st, hd = hit(w.clicks[0] + q)
            eq((st, hd.get('location')), (302, 'https://pagar.example/boleto?id=7&v=1'), q)
        w.barrier()
        eq([e['type'] for e in w.events()].count('clicked'), 3, 'only the genuine clicks were recorded')
    finally:
        w.close()


@test
def flood_is_bounded():
    w = World(track={'rate_per_ip': '20', 'rate_burst': '40', 'summary_window': '1'})
    try:
        urls = []
        for _ in range(300):
            urls += ['-o', '/dev/null', w.pixel]
        p = subprocess.run(['curl', '-s', '-w', '%{http_code}\\n', '-A', CHROME,
                            '--parallel', '--parallel-max', '20'] + urls,
                           stdout=subprocess.PIPE, timeout=120)
        codes = p.stdout.decode().split()
        eq(len(codes), 300)
        check(codes.count('429') > 0 and codes.count('200') >= 40, f'{codes.count("200")} ok, '
              f'{codes.count("429")} refused')
        eq(curl('GET', w.s.url + '/healthz')[0], 200, 'the service still answers')
        # the first 10 (track.full_hits) are logged alone, the rest counted
        # in one summary once its window (track.summary_window = 1 s) ends
        summary = wait_until(lambda: w.events(('tracking_summary',)), 10, 0.1, 'the summary')
        eq(len(summary), 1, 'one summary')
        eq(len(w.events(('opened',))), 10, 'the first 10 hits in full')
        eq(10 + summary[0]['opened']['human'], codes.count('200'),
           'every answered hit recorded, none of the refused')
        eq(summary[0]['addresses'], 1, 'from one address')
    finally:
        w.close()


def flood(port, path, n, ua=CHROME, width=256):
    """n GETs of path, each from its own loopback address (127.1.x.y),
    width at a time over plain sockets; returns {status: count}."""
    import selectors, socket
    sel = selectors.DefaultSelector()
    req = (f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {ua}\r\n'
           'Connection: close\r\n\r\n').encode()
    codes, started, live = {}, 0, 0

    def start(i):
        k = socket.socket()
        k.bind((f'127.1.{i // 250}.{i % 250 + 1}', 0))
        k.setblocking(False)
        k.connect_ex(('127.0.0.1', port))
        sel.register(k, selectors.EVENT_WRITE, [b''])

    while started < n or live:
        while started < n and live < width:
            start(started)
            started += 1
            live += 1
        for key, ev in sel.select(5):
            k, got = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE:
                k.sendall(req)
                sel.modify(k, selectors.EVENT_READ, got)
                continue
            try:
                chunk = k.recv(4096)
            except OSError:
                chunk = b''
            if chunk:
                got[0] += chunk
                continue
            head = got[0].split(b'\r\n', 1)[0].split()
            st = int(head[1]) if len(head) > 1 else 0
            codes[st] = codes.get(st, 0) + 1
            sel.unregister(k)
            k.close()
            live -= 1
    return codes


@test
def a_flood_from_many_addresses_keeps_the_receipt_valid():
    # issue 17: 20,000 pixel hits, each from its own address, made the
    # receipt hold 20,004 events, past what a receipt may hold (INVALID)
    w = World(track={'summary_window': '1'})
    try:
        path = w.pixel[len(w.base):]
        codes = flood(w.s.track_port, path, 20000)
        eq(codes, {200: 20000}, 'every pixel answered')
        summary = wait_until(lambda: w.events(('tracking_summary',)), 20, 0.2, 'the summary')
        eq(len(summary), 1, 'one summary closes the flood')
        s = summary[0]
        eq(s['opened'], {'human': 19990, 'proxy': 0, 'scanner': 0}, 'hits past the first 10')
        eq(s['clicked'], {'human': 0, 'proxy': 0, 'scanner': 0})
        eq(s['addresses'], 19990, 'from as many addresses')
        eq((s['summary'], s['first_logged']), (1, 10))
        check(s['from'] <= s['to'], s)
        check('127.1.' not in json.dumps(s), 'no address in the summary')
        opened = w.events(('opened',))
        eq(len(opened), 10, 'the first 10 opens in full')

        def receipt():
            st, _, r = w.s.api('GET', f'/v1/notices/{w.id}/receipt')
            t = [json.loads(e['entry'])['type'] for e in r['events']] if st == 200 else []
            return r if 'tracking_summary' in t else None
        r = wait_until(receipt, 15, 0.3, 'the summary in the receipt')
        types = [json.loads(e['entry'])['type'] for e in r['events']]
        check('relay_accepted' in types, f'the delivery is still there: {types}')
        check(len(types) <= 20, f'{len(types)} events')
        text = json.dumps(r)
        check(len(text) < 200_000, f'receipt of {len(text)} bytes')
        path = os.path.join(w.s.dir, 'r.json')
        with open(path, 'w') as f:
            f.write(text)
        rc, out, err = run(['verify', path, '--key', os.path.join(w.s.data, 'keys', 'log.vkey'),
                            '--tsa-ca', os.path.join(w.s.data, 'keys', 'ca.crt')])
        eq(rc, 0, out + err)
        st, hd, pdf = w.s.api('GET', f'/v1/notices/{w.id}/receipt?format=pdf')
        eq(st, 200, 'the PDF receipt')
        # the statistics still count every hit
        rc, out, err = run(['stats', '--data', w.s.data, '--json'])
        eq(rc, 0, err)
        tot = json.loads(out)['totals']
        eq(tot['hits']['opened']['human'], 20000, f'every hit counted: {tot}')
        eq(tot['opened']['human'], 1)
        m = curl('GET', w.s.url + '/metrics')[2].decode()
        check('selo_track_hits_folded_total 19990' in m, 'the folded hits in /metrics')
    finally:
        w.close()


@test
def slow_clients_do_not_starve_the_tracker():
    import socket
    w = World(track={'per_ip_connections': '200'})
    socks = []
    try:
        for _ in range(150):  # each sends half a request line, then nothing
            k = socket.create_connection(('127.0.0.1', w.s.track_port), timeout=5)
            k.sendall(b'GET /o/')
            socks.append(k)
        t0 = time.time()
        st, _ = hit(w.pixel)
        eq(st, 200, 'a real client is served while 150 slow ones hang')
        check(time.time() - t0 < 3, 'promptly')
    finally:
        for k in socks:
            k.close()
        w.close()


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def timed_get(url):
    """A fresh connection's GET through curl: (status, seconds curl took)."""
    p = subprocess.run(['curl', '-s', '-o', '/dev/null', '-A', CHROME, '--max-time', '5',
                        '-w', '%{http_code} %{time_total}', url],
                       stdout=subprocess.PIPE, timeout=30)
    code, took = p.stdout.decode().split()
    return int(code), float(took)


@test
def trickling_connections_do_not_hold_the_tracker():
    """Issue 17, item 4: 4,200 connections from 100 addresses, each an
    unfinished request head growing by one byte every 4 s (an idle timeout
    never fires), re-opened as soon as the tracker cuts them. While they
    run, a new client's pixel and the confirmation page are answered within
    a second, every time, for 20 s."""
    w = World()
    try:
        stats_path = os.path.join(w.s.dir, 'slowclients.jsonl')
        with open(stats_path, 'w') as out:
            gen = spawn([PY, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          'slowclients.py'), str(w.s.track_port),
                         '--conns', '4200', '--addrs', '100', '--interval', '4'], stdout=out)

        def stats():
            with open(stats_path) as f:
                lines = f.read().splitlines()
            return json.loads(lines[-1]) if lines else {}
        wait_until(lambda: stats().get('opened', 0) >= 4200, 60, 0.2,
                   'the slow clients to connect')
        time.sleep(2)  # every slot they can take is taken, and they trickle
        cpu0, opened0 = cpu_seconds(w.s.p.pid), stats()['opened']
        slow, held, worst, end = [], [], 0.0, time.time() + 20
        while time.time() < end:
            for what, url in (('pixel', w.pixel), ('page', w.confirm)):
                st, took = timed_get(url)
                worst = max(worst, took)
                if st != 200 or took >= 1.0:
                    slow.append(f'{what}: {st} in {took:.2f}s')
            held.append(stats().get('open', 0))
            time.sleep(0.5)
        check(gen.poll() is None, 'the slow clients ran throughout')
        cpu, opened = cpu_seconds(w.s.p.pid) - cpu0, stats()['opened'] - opened0
        stop(gen)
        print(f'     {2 * len(held)} requests, slowest {worst:.3f}s; meanwhile {opened} slow '
              f'connections opened, selo serve used {cpu:.1f} s of CPU; {stats()}', flush=True)
        check(min(held) >= 3000, f'the slow clients held their connections: {held}')
        check(not slow, f'{len(slow)} of {2 * len(held)} requests slow or failed: {slow[:8]}')
    finally:
        w.close()


def open_files_limit(pid):
    with open(f'/proc/{pid}/limits') as f:
        line = next(l for l in f if l.startswith('Max open files'))
    return [int(x) if x.isdigit() else x for x in line.split()[3:5]]


@test
def serve_raises_its_open_file_limit():
    """Each tracker connection is an open file. Started with a soft limit of
    1024 (a shell's usual default), selo serve raises it to the hard limit;
    when the hard limit is too low as well, it says so and the tracker takes
    only the connections that fit, and still answers."""
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(hard == resource.RLIM_INFINITY or hard >= 4096 + 1280,
          f'this test needs a hard open-file limit of at least 5376, not {hard}')
    s = Selo()
    try:
        s.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        s.start()
        soft_now, hard_now = open_files_limit(s.p.pid)
        check(soft_now == hard_now and soft_now != 1024, f'limits {soft_now} {hard_now}')
        check('open-file limit raised from 1024' in s.serve_log_all(), s.serve_log())
        s.stop()
        s.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
        s.start()
        log = s.serve_log_all()
        check('cannot hold track.max_connections = 4096' in log and
              'takes at most 256 connections' in log, log[-1500:])
        st, _, _ = curl('GET', f'http://127.0.0.1:{s.track_port}/nowhere')
        eq(st, 404, 'the tracker answers')
    finally:
        s.cleanup()


@test
def public_log_serves_checkpoint_tiles_and_entries():
    w = World()
    try:
        hit(w.pixel)
        # the open integrated and a checkpoint signed over it (4 entries)
        wait_until(lambda: (lambda r: r[0] == 200 and int(r[2].decode().split('\n')[1]) >= 4)(
            curl('GET', w.base + '/log/checkpoint')), 30, 0.1, 'a checkpoint over the open')
        st, hd, note = curl('GET', w.base + '/log/checkpoint')
        eq(st, 200)
        check(hd.get('content-type', '').startswith('text/plain'), hd)
        text = note.decode()
        origin, size, root = text.split('\n')[:3]
        eq(origin, 'cobranca.example/selo-log')
        size = int(size)
        check(size >= 4, f'size {size}')
        w_ = size % 256
        st, hd, tile = curl('GET', w.base + f'/log/tile/0/000.p/{w_}')
        eq(st, 200, 'partial tile')
        eq(len(tile), 32 * w_)
        st, _, bundle = curl('GET', w.base + f'/log/tile/entries/000.p/{w_}')
        eq(st, 200, 'entry bundle')
        leaves, i = [], 0
        while i < len(bundle):
            n = int.from_bytes(bundle[i:i + 2], 'big')
            leaves.append(hashlib.sha256(b'\0' + bundle[i + 2:i + 2 + n]).digest())
            i += 2 + n
        eq(b''.join(leaves), tile, 'the tile holds the leaf hashes of the served entries')
        # the root from the leaves (RFC 9162) equals the checkpoint's root
        def mth(h):
            if len(h) == 1:
                return h[0]
            k = 1
            while k * 2 < len(h):
                k *= 2
            return hashlib.sha256(b'\1' + mth(h[:k]) + mth(h[k:])).digest()
        if size < 256:
            eq(base64.b64encode(mth(leaves[:size])).decode(), root, 'root')
        for bad in ['/log/tile/0/000.p/0', '/log/tile/0/001', '/log/tile/9/000', '/log/tile/0/0',
                    f'/log/tile/0/000.p/{w_ + 1}', '/log/nothing']:
            eq(curl('GET', w.base + bad)[0], 404, bad)
    finally:
        w.close()


if __name__ == '__main__':
    main()
