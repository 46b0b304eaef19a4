#!/usr/bin/python3
"""A full disk (issue 17, item 7), against the real binary.

`selo serve` runs with its data directory on a 40 MB tmpfs of its own,
mounted in a private user and mount namespace (`unshare -rm`: no privilege
needed); the test reaches that directory through /proc/PID/root, and runs
`selo log verify` inside the namespace (nsenter). A filler file takes the
free space. smtpserver.py --hold-file holds the answers to DATA while the
test fills the disk, so that messages are handed over while their results
cannot be written.

- full_disk_under_load_recovers_without_restart: a thread posts notices;
  two batches of 25 wait at the SMTP server; the disk is filled and the API
  answers 500: /healthz answers 503 "store": "failing", "store_reason":
  "disk-full", /metrics still answers with selo_store_failing 1, and the
  log does not get a line per failed request. The held batches are then
  answered (their results cannot be written), the filler is deleted, and
  without a restart every notice that got a 202 is relayed and reached the
  sink exactly once (Message-ID starts with the notice id), nothing of a
  refused request was stored, and `selo log verify` passes.
- sealed_messages_wait_for_space: a notice claimed with too little room to
  store its sealed message (3 MB attachment) is sent only once its seal is
  stored, once, after space comes back.
- stop_names_results_it_could_not_record: SIGTERM while results cannot be
  written: the log names each such notice before the stop's bound.
- health_clears_without_traffic: /healthz clears by itself once space is
  back, with no request but /healthz itself.
"""
import base64, collections, errno, http.client, json, os, re, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

MB = 1024 * 1024
SAN = os.path.basename(os.path.dirname(os.path.abspath(SELO))).endswith('san')
SLOW = 4 if SAN else 1


class DiskSelo(Selo):
    """A Selo whose `selo serve` sees its data directory on a fresh tmpfs
    (a copy of the one `selo init` made), mounted only in its namespace."""

    def __init__(self, size_mb=40, **conf):
        super().__init__(**conf)
        self.mnt = os.path.join(self.dir, 'mnt')
        os.mkdir(self.mnt)
        self.size_mb = size_mb

    start_timeout = 30 * SLOW

    def serve_argv(self):
        script = ('mount -t tmpfs -o size="$1"m selo-disk "$2" && cp -a "$3"/. "$2"/ '
                  '&& exec "$4" serve --data "$2"')
        return ['unshare', '-rm', 'sh', '-c', script, 'sh', str(self.size_mb), self.mnt,
                self.data, SELO]

    def inside(self, name=''):
        """The path of a file of the tmpfs data directory, from outside."""
        return f'/proc/{self.p.pid}/root{self.mnt}/{name}'

    def run_inside(self, args):
        """`selo ARGS` in the namespace of `selo serve` (SQLite resolves the
        /proc/PID/root link, so it must see the tmpfs at its own path)."""
        p = subprocess.run(['nsenter', '-t', str(self.p.pid), '-U', '-m',
                            '--preserve-credentials', SELO] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def notices(self):
        """id -> status of every notice, through GET /v1/notices."""
        out, after = {}, ''
        while True:
            st, _, j = self.api('GET', '/v1/notices?limit=1000' + (f'&after={after}' if after else ''))
            eq(st, 200, f'GET /v1/notices: {j}')
            out.update((n['id'], n['status']) for n in j['notices'])
            if not j['next']:
                return out
            after = j['next']


def fill(path):
    """Writes zeros to path until the file system is full; returns bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n = 0
    try:
        for chunk in (b'\0' * MB, b'\0' * 4096, b'\0' * 512):
            while True:
                try:
                    w = os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
                n += w
                if w < len(chunk):
                    break
    finally:
        os.close(fd)
    return n


class Load(threading.Thread):
    """Posts notices one after the other on one keep-alive connection,
    until stopped; keeps the ids of the 202s and counts the 500s."""

    def __init__(self, s, tag):
        super().__init__(daemon=True)
        self.s, self.tag = s, tag
        self.accepted, self.n500, self.other = [], 0, []
        self.halt = threading.Event()

    def post(self, conn, i):
        body = json.dumps({'to': f'devedor{i}@destino.example', 'subject': f'Aviso {self.tag}-{i}',
                           'text': f'Prezado devedor {i}, consta em aberto a fatura {self.tag}-{i}.',
                           'reference': f'{self.tag}-{i}'})
        conn.request('POST', '/v1/notices', body, {'Authorization': f'Bearer {self.s.key}',
                                                   'Content-Type': 'application/json'})
        r = conn.getresponse()
        return r.status, r.read()

    def run(self):
        conn, i = None, 0
        while not self.halt.is_set():
            if conn is None:
                conn = http.client.HTTPConnection('127.0.0.1', self.s.api_port, timeout=120)
            try:
                st, body = self.post(conn, i)
            except (OSError, http.client.HTTPException) as e:
                self.other.append(('exception', repr(e)))
                conn.close()
                conn = None
                time.sleep(0.1)
                continue
            i += 1
            if st == 202:
                self.accepted.append(json.loads(body)['id'])
                time.sleep(0.05)  # about 20 a second: the senders keep up
            elif st == 500:
                self.n500 += 1
                time.sleep(0.01)
            else:
                self.other.append((st, body[:200]))
        if conn:
            conn.close()

    def finish(self):
        self.halt.set()
        self.join(180)


class HoldingSink(SMTPServer):
    """smtpserver.py with --hold-file: while hold() is in force the server
    holds its answers to DATA (it touches PATH.held once it holds one);
    release() lets them go. stop() removes the files too."""

    def __init__(self):
        self.hold_dir = tempfile.mkdtemp(prefix='selo-hold-')
        self.hold_path = os.path.join(self.hold_dir, 'hold')
        super().__init__('--hold-file', self.hold_path)

    def hold(self):
        open(self.hold_path, 'w').close()

    def wait_held(self, what):
        wait_until(lambda: os.path.exists(self.hold_path + '.held'), 60 * SLOW, 0.05, what)

    def release(self):
        os.unlink(self.hold_path)

    def stop(self):
        super().stop()
        shutil.rmtree(self.hold_dir, ignore_errors=True)


def relay_to(sink):
    return {'mode': 'relay', 'relay': f'127.0.0.1:{sink.port}', 'starttls': 'no',
            'timeout_ms': '120000'}


def health(s):
    st, _, body = curl('GET', s.url + '/healthz')
    return st, json.loads(body)


def metrics(s):
    st, _, body = curl('GET', s.url + '/metrics')
    text = body.decode()
    vals = {m.group(1): float(m.group(2))
            for m in re.finditer(r'^(selo_store_\w+) (\S+)$', text, re.M)}
    return st, vals


def log_tail(s, offset):
    with open(os.path.join(s.dir, 'serve.log'), 'rb') as f:
        f.seek(offset)
        return f.read().decode('utf-8', 'replace')


def log_size(s):
    return os.path.getsize(os.path.join(s.dir, 'serve.log'))


def sink_counts(sink):
    """notice id -> copies that reached the sink (Message-ID <ID.rnd@dom>)."""
    out = collections.Counter()
    for eml, _ in sink.messages():
        head = eml.split(b'\r\n\r\n', 1)[0]
        m = re.search(rb'^Message-ID:\s*<([0-9A-Z]{26})\.', head, re.M | re.I)
        check(m, f'a message without a notice Message-ID reached the sink: {head[:200]!r}')
        out[m.group(1).decode()] += 1
    return out


def items(n, tag):
    return [{'to': f'devedor{i}@destino.example', 'subject': f'Aviso {tag}-{i}',
             'text': f'Prezado devedor {i}, consta em aberto a fatura {tag}-{i}.',
             'reference': f'{tag}-{i}'} for i in range(n)]


def sending(s):
    st, _, body = curl('GET', s.url + '/metrics')
    m = re.search(r'^selo_notices\{state="sending"\} (\d+)$', body.decode(), re.M)
    return int(m.group(1)) if m else 0


def post_until_refused(s):
    """Posts notices until one gets 500: SQLite writes into the room its
    WAL file already has, so a full file system fails the writes only once
    that is used. Returns the ids accepted meanwhile."""
    ids = []
    for i in range(5000):
        st, _, j = s.api('POST', '/v1/notices', items(1, f'enche{i}')[0])
        if st == 500:
            return ids
        eq(st, 202, f'a notice while the disk fills: {j}')
        ids.append(j['id'])
    raise Fail('the API never refused a notice on the full disk')


def namespaces_work():
    p = subprocess.run(['unshare', '-rm', 'sh', '-c', 'mount -t tmpfs none /mnt'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(p.returncode == 0, 'unshare -rm with a tmpfs mount does not work here: '
          f'{p.stderr.decode()}')


@test
def full_disk_under_load_recovers_without_restart():
    namespaces_work()
    sink = HoldingSink()
    s = DiskSelo(smtp=relay_to(sink),
                 sender={'workers': '2', 'batch': '25', 'stop_timeout': '30'})
    load = Load(s, 'disk')
    problems = []
    try:
        # Every DATA is held at the server from the start: a first batch of
        # 50 notices goes to the two workers, 25 each, sealed and handed
        # over, their results not yet written, while the load queues more.
        sink.hold()
        s.start()
        first = items(50, 'lote')
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': first})
        eq((st, j.get('accepted')), (200, 50), f'the first batch: {j}')
        load.accepted += [r['id'] for r in j['results']]
        load.start()
        sink.wait_held('a batch held at the SMTP server')
        wait_until(lambda: sending(s) >= 50, 60 * SLOW, 0.1, 'both batches claimed')
        at_fill = log_size(s)
        filled = fill(s.inside('filler'))
        print(f'  filler: {filled / MB:.1f} MB', flush=True)
        n500_before = load.n500
        wait_until(lambda: load.n500 >= n500_before + 20, 60 * SLOW, 0.1,
                   'the API to answer 500 storage-failed')
        st, h = health(s)
        if st != 503 or h.get('store') != 'failing' or h.get('store_reason') != 'disk-full':
            problems.append(f'/healthz on a full disk: {st} {h}')
        st, m = metrics(s)
        if st != 200 or m.get('selo_store_failing') != 1 or \
                not m.get('selo_store_write_failures_total'):
            problems.append(f'/metrics on a full disk: {st} {m}')
        # The held batch is answered now, while its results cannot be written.
        sink.release()
        wait_until(lambda: 'cannot record delivery results' in log_tail(s, at_fill),
                   60 * SLOW, 0.1, 'the results of the held batch to fail')
        time.sleep(3)  # a few more failed requests and retries
        full_log = log_tail(s, at_fill)
        lines = full_log.count('\n')
        n500 = load.n500 - n500_before
        print(f'  full disk: {n500} requests answered 500, {lines} log lines', flush=True)
        if n500 < 100:
            problems.append(f'only {n500} requests failed: the load was too light to judge')
        if lines > 80 or lines * 10 > n500:
            problems.append(f'{lines} log lines for {n500} failed requests: '
                            f'{full_log[:1500]}')
        # Space again. Nothing is restarted.
        accepted_before_free = len(load.accepted)
        os.unlink(s.inside('filler'))
        try:
            wait_until(lambda: health(s)[0] == 200, 30 * SLOW, 0.2, '/healthz to clear')
        except Fail as e:
            problems.append(str(e))
        try:
            wait_until(lambda: len(load.accepted) >= accepted_before_free + 20, 60 * SLOW, 0.1,
                       'accepts after the disk was freed')
        except Fail as e:
            problems.append(str(e))
        load.finish()
        ids = set(load.accepted)
        print(f'  {len(ids)} notices accepted', flush=True)

        def settled():
            return set(s.notices().values()) <= {'relayed', 'failed'}
        try:
            wait_until(settled, 120 * SLOW, 0.5, 'every notice to reach its outcome')
        except Fail:
            problems.append('not every notice reached its outcome without a restart: '
                            f'{collections.Counter(s.notices().values())}')
        stored = s.notices()
        if set(stored) != ids:
            problems.append(f'{len(set(stored) - ids)} notice(s) stored that got no 202, '
                            f'{len(ids - set(stored))} 202 without a notice')
        not_relayed = {i: st for i, st in stored.items() if st != 'relayed'}
        if not_relayed:
            problems.append(f'{len(not_relayed)} notice(s) not relayed: '
                            f'{collections.Counter(not_relayed.values())}')
        copies = sink_counts(sink)
        twice = sorted(i for i, n in copies.items() if n > 1)
        missing = sorted(ids - set(copies))
        unknown = sorted(set(copies) - ids)
        if twice or missing or unknown:
            problems.append(f'at the sink: {len(twice)} sent more than once {twice[:3]}, '
                            f'{len(missing)} missing {missing[:3]}, {len(unknown)} unknown')
        rc, out, err = s.run_inside(['log', 'verify', '--data', s.mnt])
        if rc != 0 or 'verdict: CONSISTENT' not in out:
            problems.append(f'selo log verify: {rc} {out[-1500:]} {err[-500:]}')
        if load.other:
            problems.append(f'unexpected answers: {load.other[:3]}')
        check(not problems, '\n  ' + '\n  '.join(problems) +
              f'\n  serve log (end): {s.serve_log()[-2500:]}')
    finally:
        load.halt.set()
        s.cleanup()
        sink.stop()


@test
def sealed_messages_wait_for_space():
    """A notice claimed while the disk is full cannot have its sealed
    message stored (a 3 MB attachment: the claim fits in the space left,
    the seal does not); it is sent only once the seal is durable, once."""
    namespaces_work()
    sink = HoldingSink()
    s = DiskSelo(smtp=relay_to(sink),
                 sender={'workers': '1', 'batch': '25', 'stop_timeout': '30'})
    try:
        sink.hold()
        s.start()
        # The only worker waits at the server with a small notice...
        st, _, j = s.api('POST', '/v1/notices', items(1, 'pequeno')[0])
        eq(st, 202, f'small notice: {j}')
        small = j['id']
        sink.wait_held('the worker held')
        # ...while a notice with a large attachment is queued behind it.
        big = dict(items(1, 'grande')[0], attachments=[{
            'filename': 'boleto.pdf', 'content_type': 'application/pdf',
            'content_base64': base64.b64encode(os.urandom(3 * MB)).decode()}])
        st, _, j = s.api('POST', '/v1/notices', big)
        eq(st, 202, f'large notice: {j}')
        large = j['id']
        time.sleep(2)  # the checkpointer copies the WAL back: the file sizes settle
        filler = s.inside('filler')
        n = fill(filler)
        os.truncate(filler, n - 256 * 1024)  # room for a claim and a result, not a seal
        at_fill = log_size(s)
        sink.release()
        wait_until(lambda: re.search('cannot store (the )?sealed messages', log_tail(s, at_fill)),
                   60 * SLOW, 0.1, 'the seal to fail for lack of space')
        st, h = health(s)
        eq((st, h.get('store_reason')), (503, 'disk-full'), f'/healthz: {h}')
        time.sleep(2)  # a few more tries
        check(large not in sink_counts(sink), 'sent before its seal was stored')
        os.unlink(filler)
        wait_until(lambda: s.notice(large)['status'] == 'relayed', 60 * SLOW, 0.2,
                   'the large notice to be relayed without a restart')
        eq(s.notice(small)['status'], 'relayed', 'the small notice')
        copies = sink_counts(sink)
        eq((copies.get(small), copies.get(large)), (1, 1), f'copies at the sink: {copies}')
        rc, out, err = s.run_inside(['log', 'verify', '--data', s.mnt])
        check(rc == 0 and 'verdict: CONSISTENT' in out, f'selo log verify: {out[-1500:]} {err}')
    finally:
        s.cleanup()
        sink.stop()


@test
def stop_names_results_it_could_not_record():
    """SIGTERM while the results of messages handed to SMTP cannot be
    written: the worker tries until sender.stop_timeout, then the log names
    every such notice (the next start sends them again), and the stop stays
    within its bound."""
    namespaces_work()
    sink = HoldingSink()
    s = DiskSelo(smtp=relay_to(sink),
                 sender={'workers': '1', 'batch': '25', 'stop_timeout': '3'})
    try:
        sink.hold()
        s.start()
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': items(25, 'parada')})
        eq((st, j.get('accepted')), (200, 25), f'batch: {j}')
        ids = [r['id'] for r in j['results']]
        sink.wait_held('the batch at the server')
        at_fill = log_size(s)
        fill(s.inside('filler'))
        post_until_refused(s)
        sink.release()
        try:
            wait_until(lambda: 'cannot record delivery results' in log_tail(s, at_fill),
                       60 * SLOW, 0.1, 'the results to fail')
        except Fail as e:
            raise Fail(f'{e}: {log_tail(s, at_fill)[-2000:]}')
        t0 = time.time()
        os.kill(s.p.pid, signal.SIGTERM)
        rc = s.p.wait(30 * SLOW)
        took = time.time() - t0
        s.stop()
        log = log_tail(s, at_fill)
        eq(rc, 0, f'exit status; log: {log[-2000:]}')
        check(took < 3 + 5 * SLOW, f'the stop took {took:.1f} s')
        for nid in ids:
            check(re.search(rf'notice {nid} was handed to SMTP .* the next start sends it again',
                            log), f'{nid} is not named: {log[-2500:]}')
        eq(len(sink.messages()), 25, 'the batch reached the server once')
    finally:
        s.cleanup()
        sink.stop()


@test
def health_clears_without_traffic():
    namespaces_work()
    s = DiskSelo()
    try:
        s.start()
        st, h = health(s)
        eq((st, h.get('store')), (200, 'ok'), f'/healthz before: {h}')
        fill(s.inside('filler'))
        note = {'to': 'devedor@destino.example', 'subject': 'Aviso', 'text': 'Fatura em aberto.'}
        # A write that fails makes the store's health say so.
        wait_until(lambda: s.api('POST', '/v1/notices', note)[0] == 500, 30 * SLOW, 0.2,
                   'a notice refused on the full disk')
        st, h = health(s)
        eq(st, 503, f'/healthz on a full disk: {h}')
        eq((h.get('status'), h.get('store'), h.get('store_reason')),
           ('unavailable', 'failing', 'disk-full'), f'/healthz: {h}')
        check(h.get('store_failing_since', '').endswith('Z'), f'/healthz: {h}')
        check('/' not in json.dumps(h), f'no paths in /healthz: {h}')
        st, m = metrics(s)
        eq(st, 200, '/metrics answers while the store fails')
        eq(m.get('selo_store_failing'), 1, f'/metrics: {m}')
        check(m.get('selo_store_write_failures_total', 0) >= 1, f'/metrics: {m}')
        check(m.get('selo_store_failing_since_seconds', 0) > 1e9, f'/metrics: {m}')
        os.unlink(s.inside('filler'))
        # Nothing but /healthz itself: the store finds out on its own.
        t0 = time.time()
        wait_until(lambda: health(s)[0] == 200, 20 * SLOW, 0.2, '/healthz to clear by itself')
        print(f'  /healthz cleared {time.time() - t0:.1f} s after the space came back',
              flush=True)
        st, m = metrics(s)
        eq((m.get('selo_store_failing'), m.get('selo_store_failing_since_seconds')), (0, 0),
           f'/metrics: {m}')
        st, _, j = s.api('POST', '/v1/notices', note)
        eq(st, 202, f'accepted again: {j}')
    finally:
        s.cleanup()


@test
def tracker_hits_wait_for_space():
    # pixel hits answered while the disk is full are recorded once space is
    # back: the recorder keeps its batch and tries again, it drops nothing
    namespaces_work()
    s = DiskSelo(track={'summary_window': '1'})
    try:
        s.start()
        st, _, j = s.api('POST', '/v1/notices', {'to': 'devedor@destino.example',
                                                 'subject': 'Aviso', 'text': 'Fatura.',
                                                 'html': '<p>Fatura em aberto.</p>'})
        eq(st, 202, f'POST: {j}')
        nid = j['id']
        s.wait_status(nid, ['relayed', 'delivered'])
        box = s.inside('outbox/new')
        eml = open(os.path.join(box, os.listdir(box)[0]), 'rb').read().decode('latin-1')
        eml = re.sub(r'=\r?\n', '', eml).replace('=3D', '=')
        pixel = re.search(r'http://127\.0\.0\.1:\d+/o/[A-Za-z0-9_-]+\.gif', eml).group(0)
        fill(s.inside('filler'))
        post_until_refused(s)
        ua = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
        for _ in range(30):
            p = subprocess.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-A', ua,
                                '--max-time', '10', pixel], stdout=subprocess.PIPE, timeout=30)
            eq(p.stdout, b'200', 'the pixel is answered while the disk is full')
        time.sleep(1.5)
        eq(health(s)[0], 503, 'the store still fails')
        os.unlink(s.inside('filler'))

        def recorded():
            ev = s.notice(nid)['events']
            opened = sum(1 for e in ev if e['type'] == 'opened')
            folded = sum(e['entry']['opened']['human'] for e in ev
                         if e['type'] == 'tracking_summary')
            return (opened, folded) if opened + folded >= 30 else None
        eq(wait_until(recorded, 30 * SLOW, 0.3, 'the 30 hits recorded'), (10, 20),
           'every hit answered is recorded: 10 in full, 20 counted')
        log = s.serve_log_all()
        check(log.count('hit(s) not recorded yet') <= 4, 'the failing recorder is logged '
              f'once per interval: {log.count("hit(s) not recorded yet")} lines')
        check('hits are recorded again' in log, 'and says when it works again')
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
