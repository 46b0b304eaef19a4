"""bench.py BUILD_DIR: Selo's benchmarks (see bench.sh). Prints figures only.

1. end to end: N notices posted in batches of 500 to `selo serve` (relay
   mode, both signatures, STARTTLS off) with Postfix's smtp-sink as the relay;
   notices/s from the first POST to the last relay_accepted.
2. accept latency: wrk posting single notices (16 connections, 10 s) while
   the senders drain into smtp-sink; requests/s and the p50/p99 latency.
3. tracker: pixel requests/s with wrk against Selo and nginx empty_gif.
4. ledger: scripts/bench/ledger_bench.c.
5. mx: notices/s through the mx transport into smtp-sink, against
   smtp-source -> Postfix with the OpenDKIM milter -> smtp-sink, and the ratio.
6. pdf: the PDF receipt of a notice with 20 events: export time and PDFs/s.
7. webhooks: deliveries/s to nginx answering 200 while the notices are sent
   (BENCH_WH_NOTICES notices, BENCH_WH_HOOKS webhooks each wanting every
   event, BENCH_WH_WORKERS).
8. stats: a store of BENCH_STATS_NOTICES (10^6) notices and their events
   written with sqlite3; how fast `selo stats` counts them, then the time of
   GET /v1/stats for each group_by (whole store, and a date-time range).
BENCH_ONLY=e2e,mx,tracker,ledger,pdf,webhooks,stats picks some (stats only
when named: it takes a few minutes); BENCH_E2E_ONLY=1 skips 2;
BENCH_TRACK_THREADS sets track.threads for 3 (default: the configuration's);
BENCH_NOTICES and BENCH_WORKERS size 1; BENCH_MX_NOTICES and
BENCH_POSTFIX_MESSAGES size 5; BENCH_KEEP=1 keeps the temporary directory."""
import json, mmap, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else 'build'
SELO = os.path.join(ROOT, BUILD, 'selo')
N = int(os.environ.get('BENCH_NOTICES', '20000'))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def curl(method, url, key, body=None):
    argv = ['curl', '-s', '-X', method, url, '-H', f'Authorization: Bearer {key}']
    if body is not None:
        argv += ['-H', 'Content-Type: application/json', '--data-binary', '@-']
    p = subprocess.run(argv, input=body, stdout=subprocess.PIPE, check=True)
    return json.loads(p.stdout)


NOTICE = {'to': 'devedor@destino.example', 'to_name': 'João da Silva', 'template': 'lembrete',
          'reference': 'BENCH', 'vars': {'nome': 'João da Silva', 'valor': '1234.56',
                                         'vencimento': '2026-12-01', 'credor': 'Loja Exemplo Ltda',
                                         'documento': 'FAT-1'}}


def metrics_text(url):
    return subprocess.run(['curl', '-s', url + '/metrics'], stdout=subprocess.PIPE).stdout.decode()


def metric(url, name):
    """One unlabelled value from /metrics, or '?'."""
    m = re.search(rf'^{name} (\d+)$', metrics_text(url), re.M)
    return int(m.group(1)) if m else '?'


def metrics(url):
    out = metrics_text(url)
    m = {}
    for line in out.splitlines():
        mm = re.match(r'selo_notices\{state="(\w+)"\} (\d+)', line)
        if mm:
            m[mm.group(1)] = int(mm.group(2))
    return m


NGINX_CONF = """worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location = /o/pixel.gif {{ empty_gif; add_header Cache-Control no-store; }}
    }}
}}
"""


def wrk(url, conns, lua=None, secs=10):
    """One wrk run (2 threads, --latency); its figures, '?' or 0 when wrk
    printed none: rps, total, bad (non-2xx/3xx), p50, p99."""
    argv = ['wrk', '-t2', f'-c{conns}', f'-d{secs}s', '--latency'] + (['-s', lua] if lua else [])
    w = subprocess.run(argv + [url], stdout=subprocess.PIPE).stdout.decode()

    def find(pattern, default):
        m = re.search(pattern, w)
        return m.group(1) if m else default
    return {'rps': float(find(r'Requests/sec:\s+([\d.]+)', 0)),
            'total': int(find(r'(\d+) requests in', 0)),
            'bad': int(find(r'Non-2xx or 3xx responses: (\d+)', 0)),
            'p50': find(r'50%\s+([\d.]+\w+)', '?'), 'p99': find(r'99%\s+([\d.]+\w+)', '?')}


def wrk_pixel(url, secs=10):
    r = wrk(url, 64, secs=secs)
    return r['rps'], r['total'], r['bad'], r['p50'], r['p99']


def wait_healthz(url):
    for _ in range(100):
        if subprocess.run(['curl', '-s', '-o', '/dev/null', url + '/healthz']).returncode == 0:
            return
        time.sleep(0.1)


def start_sink(procs):
    """Postfix's smtp-sink on a free loopback port; returns the port."""
    port = free_port()
    procs.append(subprocess.Popen(['smtp-sink', '-u', 'nobody', f'127.0.0.1:{port}', '1024'],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return port


def start_selo(tmp, procs, name, smtp, workers):
    """`selo init` + `selo serve` on tmp/name with the given [smtp] lines;
    returns (api url, API key, the serve process) once it answers."""
    data = os.path.join(tmp, name)
    out = subprocess.run([SELO, 'init', '--data', data, '--domain', 'cobranca.example'],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    key = out.stdout.decode().split()[1]
    api = free_port()
    with open(os.path.join(data, 'selo.conf'), 'w') as f:
        f.write(f'[api]\nlisten = 127.0.0.1:{api}\n[track]\nlisten = 127.0.0.1:{free_port()}\n'
                f'[mail]\ndomain = cobranca.example\n[smtp]\n{smtp}'
                f'[sender]\nworkers = {workers}\nbatch = 50\n')
    log = open(os.path.join(tmp, name + '-serve.log'), 'wb')
    serve = subprocess.Popen([SELO, 'serve', '--data', data], stdout=log, stderr=log)
    procs.append(serve)
    url = f'http://127.0.0.1:{api}'
    wait_healthz(url)
    return url, key, serve


def post_and_drain(url, key, n, done_state):
    """Posts n notices in batches of 500, then waits until done_state +
    failed reach n. Returns (seconds to accept, seconds to done, metrics)."""
    batch = json.dumps({'notices': [NOTICE] * 500}).encode()
    t0 = time.time()
    sent = 0
    while sent < n:
        sent += curl('POST', url + '/v1/notices/batch', key, batch)['accepted']
    t_accept = time.time() - t0
    while True:
        m = metrics(url)
        if m.get(done_state, 0) + m.get('failed', 0) >= n:
            return t_accept, time.time() - t0, m
        time.sleep(0.05)


def pixel_url(data, track):
    """The pixel URL of the first message the maildir transport wrote."""
    for _ in range(100):
        new = os.path.join(data, 'outbox', 'new')
        files = os.listdir(new) if os.path.isdir(new) else []
        if files:
            eml = open(os.path.join(new, files[0]), 'rb').read().decode('latin-1')
            m = re.search(r'/o/([A-Za-z0-9_-]{48})\.gif', eml.replace('=\r\n', ''))
            if m:
                return f'http://127.0.0.1:{track}/o/{m.group(1)}.gif'
        time.sleep(0.1)
    return None


def tracker(tmp):
    """Pixel requests/s against Selo's tracker (each hit recorded) and nginx's
    empty_gif with its access log on, same wrk load; then counts the events."""
    data = os.path.join(tmp, 'tracker')
    out = subprocess.run([SELO, 'init', '--data', data, '--domain', 'bench.example'],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    key = out.stdout.decode().split()[1]
    api, track = free_port(), free_port()
    with open(os.path.join(data, 'selo.conf'), 'w') as f:
        f.write(f'[api]\nlisten = 127.0.0.1:{api}\n[track]\nlisten = 127.0.0.1:{track}\n'
                f'base_url = http://127.0.0.1:{track}\nrate_per_ip = 1000000\nrate_burst = 1000000\n'
                f'per_ip_connections = 1024\nsummary_window = 1\n'
                + (f'threads = {os.environ["BENCH_TRACK_THREADS"]}\n'
                   if os.environ.get('BENCH_TRACK_THREADS') else '')
                + '[mail]\ndomain = bench.example\n')
    log = open(os.path.join(tmp, 'tracker.log'), 'wb')
    serve = subprocess.Popen([SELO, 'serve', '--data', data], stdout=log, stderr=log)
    try:
        url = f'http://127.0.0.1:{api}'
        wait_healthz(url)
        curl('POST', url + '/v1/notices', key, json.dumps(NOTICE).encode())
        pixel = pixel_url(data, track)
        rps, total, bad, p50, p99 = wrk_pixel(pixel)
        time.sleep(3)  # the recorder's last batches, and the summary (window 1 s)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
    db = os.path.join(data, 'selo.db')
    # the first hits are events of their own, the rest counted in summaries
    # (docs/tracking.md "Floods"), and the last ones in the notice's fold
    # still open at the stop (its summary is due later): all are recorded
    q = ("SELECT (SELECT count(*) FROM events WHERE type='opened') + (SELECT coalesce(sum("
         "json_extract(CAST(entry AS TEXT), '$.opened.human') + json_extract(CAST(entry AS TEXT),"
         " '$.opened.proxy') + json_extract(CAST(entry AS TEXT), '$.opened.scanner')), 0) FROM "
         "events WHERE type='tracking_summary') + (SELECT coalesce(sum(fold_opened_human + "
         "fold_opened_proxy + fold_opened_scanner), 0) FROM hit_tally)")
    n = int(subprocess.run(['sqlite3', db, q], stdout=subprocess.PIPE).stdout.decode().strip() or 0)
    print(f'tracker pixel (wrk, 64 connections, 10 s, every hit recorded): {rps:.0f} req/s, '
          f'p50 {p50}, p99 {p99}; {total} requests, {bad} non-2xx, {n} opens recorded (events, '
          f'summaries\' counts and the open fold; {"none lost" if n >= total - bad else f"{total - bad - n} missing"}'
          f'; wrk does not count requests still in flight when it stops, so there can be a few more)')
    if not shutil.which('nginx'):
        print('nginx empty_gif: nginx not installed')
        return
    nd = os.path.join(tmp, 'nginx')
    os.makedirs(os.path.join(nd, 'tmp'))
    port = free_port()
    with open(os.path.join(nd, 'nginx.conf'), 'w') as f:
        f.write(NGINX_CONF.format(d=nd, port=port))
    ng = subprocess.Popen(['nginx', '-c', os.path.join(nd, 'nginx.conf'), '-p', nd],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        nrps, ntotal, nbad, np50, np99 = wrk_pixel(f'http://127.0.0.1:{port}/o/pixel.gif')
    finally:
        ng.send_signal(signal.SIGQUIT)
        ng.wait(30)
    print(f'nginx empty_gif with access log (same load): {nrps:.0f} req/s, p50 {np50}, p99 {np99}; '
          f'Selo/nginx = {rps / nrps:.2f}')


def ledger(tmp):
    """The ledger's own figures (scripts/bench/ledger_bench.c) on a fresh data dir."""
    data = os.path.join(tmp, 'ledger')
    subprocess.run([SELO, 'init', '--data', data, '--domain', 'bench.example'],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    n = os.environ.get('BENCH_LOG_ENTRIES', '1000000')
    print(f'ledger: {n} entries', flush=True)
    subprocess.run([os.path.join(ROOT, BUILD, 'bench', 'ledger_bench'), data, n], check=False)


def disk_written(path):
    """Bytes written so far to the block device that holds path (Linux
    /sys/dev/block), or None (tmpfs, or no such file)."""
    st = os.stat(path).st_dev
    try:
        with open(f'/sys/dev/block/{os.major(st)}:{os.minor(st)}/stat') as f:
            return int(f.read().split()[6]) * 512
    except (OSError, IndexError, ValueError):
        return None


class DiskProbe:
    """Times a synchronous 4 KiB write (O_DSYNC, and O_DIRECT where the file
    system has it) every 5 ms to a file beside the store, while a run goes
    on: how long the disk itself took to make a small write durable, which
    is what each commit waits for (docs/operations.md, "Accept latency:
    where the tail comes from")."""

    def __init__(self, directory):
        self.path = os.path.join(directory, 'disk-probe')
        self.lat, self.stop = [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open(self):
        flags = os.O_WRONLY | os.O_CREAT | os.O_DSYNC
        try:
            return os.open(self.path, flags | getattr(os, 'O_DIRECT', 0), 0o600)
        except OSError:  # tmpfs has no O_DIRECT
            return os.open(self.path, flags, 0o600)

    def run(self):
        fd, page = self.open(), mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
        page.write(b'p' * 4096)
        try:
            i = 0
            while not self.stop.wait(0.005):
                t = time.perf_counter()
                os.pwrite(fd, page, (i % 256) * 4096)
                self.lat.append(time.perf_counter() - t)
                i += 1
        finally:
            os.close(fd)
            os.unlink(self.path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def summary(self):
        lat = sorted(self.lat)
        if not lat:
            return 'the disk probe wrote nothing'
        over = [x for x in lat if x > 0.02]
        # Writes of 5-20 ms matter too: a request that arrives during one
        # waits for it and then for its own commit.
        over5 = [x for x in lat if x > 0.005]
        return (f'disk meanwhile: {len(lat)} synchronous 4 KiB writes, p50 '
                f'{lat[len(lat) // 2] * 1e3:.2f} ms, {len(over5)} over 5 ms, '
                f'{len(over)} over 20 ms, longest {lat[-1] * 1e3:.0f} ms')


def accept_latency(lua, url, conns, what, data):
    """One wrk run of single POSTs; also what the disk took meanwhile (the
    store's WAL and checkpoints: the fsync stalls that make p99 grow with
    it, docs/store.md), how slow its own small synchronous writes were
    (DiskProbe), and the WAL's size and restarts."""
    before = disk_written(data)
    with DiskProbe(os.path.dirname(data)) as probe:
        r = wrk(url + '/v1/notices', conns, lua)
    after = disk_written(data)
    print(f'accept latency (wrk, {what}, 10 s, single POST /v1/notices, senders busy): '
          f'{r["rps"]:.0f} req/s, p50 {r["p50"]}, p99 {r["p99"]}')
    wal = os.path.join(data, 'selo.db-wal')
    walsz = os.path.getsize(wal) >> 20 if os.path.exists(wal) else 0
    restarts = metric(url, 'selo_store_wal_restarts_total')
    disk = ''
    if before is not None and after is not None and r['total']:
        mb = (after - before) / 1e6
        disk = f'{mb:.0f} MB written to the disk ({mb * 1e3 / r["total"]:.0f} KB a request), '
    print(f'  {disk}WAL {walsz} MiB, {restarts} WAL restarts so far')
    print(f'  {probe.summary()}')


def e2e(tmp, procs):
    """End to end and accept latency (the module docstring's 1 and 2)."""
    sink_port = start_sink(procs)
    workers = os.environ.get('BENCH_WORKERS', '4')
    smtp = f'mode = relay\nrelay = 127.0.0.1:{sink_port}\nstarttls = no\n'
    url, key, serve = start_selo(tmp, procs, 'relay', smtp, workers)
    data = os.path.join(tmp, 'relay')
    t_accept, t_all, m = post_and_drain(url, key, N, 'relayed')
    print(f'end to end: {N} notices (batches of 500, {workers} sender workers, RSA+Ed25519 DKIM '
          f'+ S/MIME) -> smtp-sink')
    print(f'  accepted in {t_accept:.2f} s ({N / t_accept:.0f} notices/s accepted)')
    print(f'  all relay_accepted after {t_all:.2f} s: {N / t_all:.0f} notices/s end to end '
          f'(failed: {m.get("failed", 0)})')
    if os.environ.get('BENCH_E2E_ONLY'):
        return
    if shutil.which('wrk'):
        lua = os.path.join(tmp, 'post.lua')
        with open(lua, 'w') as f:
            f.write('wrk.method = "POST"\nwrk.body = [[' + json.dumps(NOTICE) + ']]\n'
                    f'wrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        # Paced first, with the senders keeping up with what comes in: the
        # issue's operating point, about 1,000 notices/s offered
        # by 20 connections each waiting 18 ms after an answer before its next
        # POST (wrk's delay(); 20 / (18 ms + the answer's time)), while the
        # senders sign and send what was accepted. The req/s printed is what
        # was really offered.
        with open(lua) as f:
            paced = f.read()
        paced_lua = os.path.join(tmp, 'post-paced.lua')
        with open(paced_lua, 'w') as f:
            f.write(paced + 'function delay()\n  return 18\nend\n')
        accept_latency(paced_lua, url, 20, '20 connections paced at about 1,000 POST/s', data)
        # Closed loop: each connection posts as fast as answers come, so the
        # latency is also the queueing of as many requests as connections.
        for conns in (4, 16):
            accept_latency(lua, url, conns, f'{conns} connections, as fast as answered', data)
    else:
        print('accept latency: wrk not installed (apt-get install wrk)')
    serve.send_signal(signal.SIGTERM)
    serve.wait(30)


def mx_e2e(tmp, procs, n):
    """Notices/s through the mx transport (one SMTP session per batch of one
    domain: connection reuse) into smtp-sink, both DKIM signatures, S/MIME
    with its timestamp, the log and tracking, each notice durable before its
    202. Returns notices/s."""
    sink_port = start_sink(procs)
    url, key, serve = start_selo(tmp, procs, 'mx', 'mode = mx\nstarttls = no\n'
                                 f'mx_override = destino.example=127.0.0.1:{sink_port}\n', 4)
    _, t_all, m = post_and_drain(url, key, n, 'delivered')
    rate = n / t_all
    print(f'mx transport: {n} notices -> smtp-sink (4 workers, batches of 50 per session, '
          f'RSA+Ed25519 DKIM + S/MIME + RFC 3161 + log): {rate:.0f} notices/s '
          f'(failed: {m.get("failed", 0)})', flush=True)
    serve.send_signal(signal.SIGTERM)
    serve.wait(60)
    return rate


OPENDKIM_CONF = """Syslog no
Mode s
Domain bench.example
Selector selo
KeyFile {d}/selo.private
Socket inet:{port}@127.0.0.1
PidFile {d}/opendkim.pid
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
InternalHosts 127.0.0.1
UMask 077
RequireSafeKeys false
"""

POSTFIX_MAIN = """compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.bench.example
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink}
smtpd_milters = inet:127.0.0.1:{milter}
non_smtpd_milters = $smtpd_milters
milter_default_action = tempfail
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
biff = no
"""


def postfix_opendkim(tmp, procs, n):
    """The usual alternative: smtp-source -> Postfix on a loopback port with
    the OpenDKIM milter (RSA-2048, relaxed/relaxed) -> smtp-sink; messages/s
    from the first connection to the last status=sent. Returns it, or None."""
    for tool in ('postfix', 'opendkim', 'opendkim-genkey', 'smtp-source', 'smtp-sink'):
        if not shutil.which(tool):
            print(f'postfix+opendkim: {tool} not installed (scripts/install-deps.sh)')
            return None
    import grp, pwd
    d = os.path.join(tmp, 'postfix')
    for sub in ('etc', 'queue', 'data', 'dkim'):
        os.makedirs(os.path.join(d, sub))
    os.chmod(tmp, 0o755)
    os.chmod(d, 0o755)
    uid, gid = pwd.getpwnam('postfix').pw_uid, grp.getgrnam('postfix').gr_gid
    os.chown(os.path.join(d, 'data'), uid, gid)
    dk = os.path.join(d, 'dkim')
    subprocess.run(['opendkim-genkey', '-b', '2048', '-d', 'bench.example', '-s', 'selo',
                    '-D', dk], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    milter, sink_port, port = free_port(), free_port(), free_port()
    with open(os.path.join(dk, 'opendkim.conf'), 'w') as f:
        f.write(OPENDKIM_CONF.format(d=dk, port=milter))
    with open(os.path.join(d, 'etc', 'main.cf'), 'w') as f:
        f.write(POSTFIX_MAIN.format(d=d, sink=sink_port, milter=milter))
    with open('/etc/postfix/master.cf') as f:
        master = re.sub(r'(?m)^smtp\s+inet\s.*$', f'127.0.0.1:{port} inet n - n - - smtpd',
                        f.read())
    with open(os.path.join(d, 'etc', 'master.cf'), 'w') as f:
        f.write(master)
    # the sink keeps what it receives, to check that OpenDKIM signed it
    dump = os.path.join(d, 'sink')
    os.makedirs(dump)
    os.chmod(dump, 0o777)
    sink = subprocess.Popen(['smtp-sink', '-u', 'nobody', '-d', dump + '/%H/m.',
                             f'127.0.0.1:{sink_port}', '1024'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(sink)
    odk = subprocess.Popen(['opendkim', '-f', '-x', os.path.join(dk, 'opendkim.conf')],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(odk)
    pf = subprocess.Popen(['postfix', '-c', os.path.join(d, 'etc'), 'start-fg'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(pf)
    master_pid = None
    try:
        for _ in range(300):
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                socket.create_connection(('127.0.0.1', milter), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with open(os.path.join(d, 'queue', 'pid', 'master.pid')) as f:
            master_pid = int(f.read().strip())
        maillog = os.path.join(d, 'maillog')
        t0 = time.time()
        subprocess.run(['smtp-source', '-s', '20', '-l', '6000', '-m', str(n),
                        '-f', 'avisos@bench.example', '-t', 'devedor@destino.example',
                        f'127.0.0.1:{port}'], check=True, stdout=subprocess.DEVNULL)
        done = 0
        deadline = time.time() + 600
        while time.time() < deadline:
            with open(maillog, errors='replace') as f:
                text = f.read()
            done = text.count(' status=sent ')
            if done >= n:
                break
            time.sleep(0.2)
        rate = done / (time.time() - t0)
        signed = 0
        for root, _, files in os.walk(dump):
            for name in files[:5]:
                with open(os.path.join(root, name), 'rb') as f:
                    signed += b'DKIM-Signature: v=1; a=rsa-sha256' in f.read()
        print(f'postfix+opendkim: {n} messages, smtp-source (20 sessions) -> postfix with the '
              f'OpenDKIM milter (RSA-2048) -> smtp-sink: {rate:.0f} messages/s '
              f'({done} sent; {"signed" if signed else "NOT SIGNED: check the milter"})',
              flush=True)
        return rate
    finally:
        if master_pid:
            os.kill(master_pid, signal.SIGTERM)
            for _ in range(100):
                if not os.path.exists(f'/proc/{master_pid}'):
                    break
                time.sleep(0.1)


def pdf_receipts(tmp, procs):
    """PDF receipts of a notice with 20 events (submitted, sealed, delivered
    to the maildir, 17 pixel hits): the export time of GET
    .../receipt?format=pdf one at a time (layout, embedded files, PAdES
    signature with its timestamp, and the HTTP round trip), then PDFs/s
    from 2 and 4 connections with wrk."""
    data = os.path.join(tmp, 'pdf')
    out = subprocess.run([SELO, 'init', '--data', data, '--domain', 'cobranca.example'],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    key = out.stdout.decode().split()[1]
    api, track = free_port(), free_port()
    with open(os.path.join(data, 'selo.conf'), 'w') as f:
        f.write(f'[api]\nlisten = 127.0.0.1:{api}\n[track]\nlisten = 127.0.0.1:{track}\n'
                f'base_url = http://127.0.0.1:{track}\n[mail]\ndomain = cobranca.example\n')
    log = open(os.path.join(tmp, 'pdf-serve.log'), 'wb')
    serve = subprocess.Popen([SELO, 'serve', '--data', data], stdout=log, stderr=log)
    procs.append(serve)
    url = f'http://127.0.0.1:{api}'
    wait_healthz(url)
    nid = curl('POST', url + '/v1/notices', key, json.dumps(NOTICE).encode())['id']
    pixel = pixel_url(data, track)
    for i in range(17):
        subprocess.run(['curl', '-s', '-o', '/dev/null', '-A', f'Bench/{i}', pixel], check=True)
    path = f'{url}/v1/notices/{nid}/receipt'
    events = 0
    for _ in range(150):
        p = subprocess.run(['curl', '-s', path, '-H', f'Authorization: Bearer {key}'],
                           stdout=subprocess.PIPE)
        try:
            events = len(json.loads(p.stdout).get('events', []))
        except ValueError:
            events = 0
        if events >= 20:
            break
        time.sleep(0.2)
    times = []
    for _ in range(30):
        p = subprocess.run(['curl', '-s', '-o', os.path.join(tmp, 'r.pdf'), '-w', '%{time_total}',
                            path + '?format=pdf', '-H', f'Authorization: Bearer {key}'],
                           stdout=subprocess.PIPE, check=True)
        times.append(float(p.stdout) * 1000)
    if os.environ.get('BENCH_PDF_TIMES'):
        print('  each:', ' '.join(f'{t:.0f}' for t in times))
    times.sort()
    size = os.path.getsize(os.path.join(tmp, 'r.pdf'))
    print(f'PDF receipt, {events} events ({size} bytes, signed, JSON and .eml embedded), '
          f'GET ?format=pdf one at a time, 30 runs: median {times[15]:.1f} ms, '
          f'mean {sum(times) / len(times):.1f} ms, max {times[-1]:.1f} ms')
    if shutil.which('wrk'):
        lua = os.path.join(tmp, 'pdf.lua')
        with open(lua, 'w') as f:
            f.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        for conns in (2, 4):
            r = wrk(path + '?format=pdf', conns, lua)
            print(f'  PDFs/s (wrk, {conns} connections, 10 s, 2 cores): {r["rps"]:.1f}, '
                  f'p99 {r["p99"]}, {r["bad"]} errors')
    serve.send_signal(signal.SIGTERM)
    serve.wait(30)


def mx_vs_postfix(tmp, procs):
    selo = mx_e2e(tmp, procs, int(os.environ.get('BENCH_MX_NOTICES', '10000')))
    pf = postfix_opendkim(tmp, procs, int(os.environ.get('BENCH_POSTFIX_MESSAGES', '2000')))
    if pf:
        print(f'  Selo mx / Postfix+OpenDKIM = {selo / pf:.1f}x (Selo also does S/MIME, '
              f'the RFC 3161 timestamp, the log and tracking)')


NGINX_200 = """worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    client_body_buffer_size 64k;
    keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }}
}}
"""


def webhooks(tmp, procs):
    """Webhook deliveries/s to a local receiver (nginx answering 200) while
    Selo sends the notices they are about: every event of BENCH_WH_NOTICES
    notices (3 each: submission_accepted, content_sealed, relay_accepted) to
    each of BENCH_WH_HOOKS webhooks, from the first POST to the last delivery
    recorded."""
    if not shutil.which('nginx'):
        print('webhooks: nginx not installed')
        return
    n = int(os.environ.get('BENCH_WH_NOTICES', '5000'))
    nd = os.path.join(tmp, 'nginx-wh')
    os.makedirs(os.path.join(nd, 'tmp'))
    port = free_port()
    with open(os.path.join(nd, 'nginx.conf'), 'w') as f:
        f.write(NGINX_200.format(d=nd, port=port))
    procs.append(subprocess.Popen(['nginx', '-c', os.path.join(nd, 'nginx.conf'), '-p', nd],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    sink_port = start_sink(procs)
    workers = os.environ.get('BENCH_WH_WORKERS', '8')
    smtp = (f'mode = relay\nrelay = 127.0.0.1:{sink_port}\nstarttls = no\n'
            f'[webhooks]\nallow_private = yes\nworkers = {workers}\n')
    url, key, serve = start_selo(tmp, procs, 'webhooks', smtp, 4)
    hooks = int(os.environ.get('BENCH_WH_HOOKS', '4'))
    ids = [curl('POST', url + '/v1/webhooks', key,
                json.dumps({'url': f'http://127.0.0.1:{port}/hook{i}', 'events': ['*']}).encode())['id']
           for i in range(hooks)]
    t0 = time.time()
    t_accept, t_sent, _ = post_and_drain(url, key, n, 'relayed')
    want = 3 * n
    while True:
        ds = [curl('GET', f'{url}/v1/webhooks/{i}', key)['deliveries'] for i in ids]
        if all(d['delivered'] + d['failed'] >= want for d in ds):
            break
        time.sleep(0.05)
    t_all = time.time() - t0
    failed = sum(d['failed'] for d in ds)
    print(f'webhooks: {want * hooks} deliveries ({n} notices x 3 events x {hooks} webhooks, '
          f'{workers} delivery workers) to nginx `return 200`, while the notices were sent')
    print(f'  notices all relayed after {t_sent:.2f} s; last delivery after {t_all:.2f} s: '
          f'{want * hooks / t_all:.0f} deliveries/s (failed: {failed})')
    serve.send_signal(signal.SIGTERM)
    serve.wait(30)


def stats_store(data, n):
    """n notices over 60 days under 2 keys, 5 templates, 4 segments, 0-2 of
    4 tags; each accepted, most delivered, some deferred, failed or
    canceled; proxy, scanner and human opens, clicks and confirmations.
    Entries in the real form (what the follower reads is type and class)."""
    import random, sqlite3
    rnd = random.Random(1)
    t0 = 1790000000000
    db = sqlite3.connect(os.path.join(data, 'selo.db'))
    db.execute('PRAGMA synchronous=OFF')
    evs = []
    tpls = ['lembrete', 'vencimento', 'atraso', 'acordo', None]
    segs = ['varejo', 'atacado', 'pj', None]
    tagsets = [None, '["boleto"]', '["pix"]', '["boleto","vip"]', '["cartao","pix"]']

    def ent(kind, nid, t, cls=None):
        x = (f',"arrived":"2026-01-01T00:00:00.000Z","method":"GET","class":"{cls}",'
             '"reason":"bench","detail":""') if cls else ''
        return (nid, kind, t, f'{{"v":1,"type":"{kind}","notice":"{nid}","time":"t"{x}}}'.encode())
    rows = []
    for i in range(n):
        nid = f'01BENCH{i:019d}'
        t = t0 + rnd.randrange(60 * 86400000)
        rows.append((nid, 1 + (i % 3 == 0), rnd.choice(tpls), rnd.choice(segs),
                     rnd.choice(tagsets), t))
        evs.append(ent('submission_accepted', nid, t))
        r = rnd.random()
        if r < 0.03:
            evs.append(ent('canceled', nid, t + 1000))
            continue
        if r < 0.1:
            evs.append(ent('delivery_deferred', nid, t + 500))
        if r < 0.06:
            evs.append(ent('delivery_failed', nid, t + 5000))
            continue
        d = t + rnd.randrange(1000, 600000)
        evs.append(ent('relay_accepted', nid, d))
        if rnd.random() < 0.3:
            evs.append(ent('opened', nid, d + 2000, 'proxy'))
        if rnd.random() < 0.5:
            evs.append(ent('opened', nid, d + int(rnd.expovariate(1 / 2e7)), 'human'))
        if rnd.random() < 0.2:
            evs.append(ent('clicked', nid, d + int(rnd.expovariate(1 / 3e7)), 'human'))
        if rnd.random() < 0.15:
            evs.append(ent('read_confirmed', nid, d + int(rnd.expovariate(1 / 5e7)), 'human'))
    db.executemany('INSERT INTO notices(id, apikey_id, status, to_addr, template, segment,'
                   ' tags_json, payload_json, salt, created_ms, updated_ms, next_attempt_ms)'
                   " VALUES(?1, ?2, 'relayed', 'a@b.example', ?3, ?4, ?5, '{}', zeroblob(32),"
                   ' ?6, ?6, ?6)', rows)
    evs.sort(key=lambda e: e[2])
    db.executemany('INSERT INTO events(notice_id, type, time_ms, entry) VALUES(?, ?, ?, ?)', evs)
    db.commit()
    db.close()
    return len(evs)


def stats(tmp, procs):
    """GET /v1/stats over BENCH_STATS_NOTICES notices (docs/stats.md)."""
    n = int(os.environ.get('BENCH_STATS_NOTICES', '1000000'))
    data = os.path.join(tmp, 'stats')
    out = subprocess.run([SELO, 'init', '--data', data, '--domain', 'bench.example'],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
    key = out.stdout.decode().split()[1]
    t = time.time()
    nev = stats_store(data, n)
    print(f'stats: wrote {n} notices, {nev} events in {time.time() - t:.0f} s')
    t = time.time()
    subprocess.run([SELO, 'stats', '--data', data], stdout=subprocess.DEVNULL, check=True)
    el = time.time() - t
    print(f'stats: `selo stats` counted {nev} events in {el:.1f} s ({nev / el:.0f} events/s)')
    api = free_port()
    with open(os.path.join(data, 'selo.conf'), 'a') as f:
        f.write(f'[api]\nlisten = 127.0.0.1:{api}\n[track]\nlisten = 127.0.0.1:{free_port()}\n')
    log = open(os.path.join(tmp, 'stats-serve.log'), 'wb')
    serve = subprocess.Popen([SELO, 'serve', '--data', data], stdout=log, stderr=log)
    procs.append(serve)
    url = f'http://127.0.0.1:{api}'
    wait_healthz(url)
    for rng in ('', '&from=2026-09-25T13:30:00Z&to=2026-10-20T08:00:00-03:00'):
        for by in ('template', 'segment', 'tag', 'day'):
            times = []
            for _ in range(15):
                t = time.time()
                doc = curl('GET', f'{url}/v1/stats?group_by={by}{rng}', key)
                times.append((time.time() - t) * 1000)
            times.sort()
            print(f'GET /v1/stats?group_by={by}{" (date-time range)" if rng else ""}: '
                  f'median {times[len(times) // 2]:.0f} ms, max {times[-1]:.0f} ms '
                  f'({len(doc["groups"])} groups, {doc["totals"]["accepted"]} notices of key 1)')
    serve.send_signal(signal.SIGTERM)
    serve.wait(120)


def main():
    only = os.environ.get('BENCH_ONLY', 'e2e,mx,tracker,ledger,pdf,webhooks').split(',')
    tmp = tempfile.mkdtemp(prefix='selo-bench-')
    procs = []
    try:
        if 'e2e' in only:
            e2e(tmp, procs)
        if 'mx' in only:
            mx_vs_postfix(tmp, procs)
        if 'tracker' in only:
            tracker(tmp)
        if 'ledger' in only:
            ledger(tmp)
        if 'pdf' in only:
            pdf_receipts(tmp, procs)
        if 'webhooks' in only:
            webhooks(tmp, procs)
        if 'stats' in only:
            stats(tmp, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if os.environ.get('BENCH_KEEP'):
            print(f'kept {tmp} (serve logs, data directories)')
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
