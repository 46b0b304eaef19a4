"""selotest: the shared harness of Selo's integration tests.

Each test file drives the real `selo` binary ($SELO_BIN) against real peers
started here on 127.0.0.1 (the scripted SMTP server in smtpserver.py, curl
for HTTP), registers test functions with @test, and ends with the line
"N passed, N failed, N skipped" (skip(why) in a test). Every process a test starts is recorded and stopped by
its PID when the test ends, whatever happens. Run with /usr/bin/python3
(Debian's modules: aiosmtpd, dkim, dnslib)."""
import grp, json, os, pwd, re, shutil, signal, socket, subprocess, sys, tempfile, time, traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELO = os.environ.get('SELO_BIN', os.path.join(ROOT, 'build', 'selo'))
PY = '/usr/bin/python3'
_tests = []
_procs = []
# SELO_TEST_STORE=postgres runs the same tests on PostgreSQL: every Selo()
# gets a database of its own in one private cluster per test process
# (pgtest.PgCluster, stopped by its pid at exit), store.backend = postgres,
# and an API key made there (`selo apikey add`): `selo init` made its key in
# the SQLite file, which this store does not read.
STORE = os.environ.get('SELO_TEST_STORE', 'sqlite')
_pg = {'cluster': None, 'n': 0}


def pg_database():
    """A fresh, empty database in this process's private PostgreSQL: its
    libpq connection string."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pgtest
    if _pg['cluster'] is None:
        if not pgtest.available():
            raise Skip('SELO_TEST_STORE=postgres but the PostgreSQL 15 binaries are absent')
        _pg['cluster'] = pgtest.PgCluster(password='selo-test-pw')
    _pg['n'] += 1
    name = f'selo_t{_pg["n"]}'
    _pg['cluster'].psql(f'CREATE DATABASE {name}')
    return _pg['cluster'].url(dbname=name)


def test(fn):
    _tests.append(fn)
    return fn


class Fail(Exception):
    pass


class Skip(Exception):
    """A test that cannot run here: counted as skipped, never as passed."""


def skip(why):
    raise Skip(why)


def check(cond, msg='check failed'):
    if not cond:
        raise Fail(msg)


def eq(a, b, msg=''):
    if a != b:
        raise Fail(f'{msg} {a!r} != {b!r}'.strip())


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=20):
    """Stops a process we started, by its PID; returns its exit code."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    if p in _procs:
        _procs.remove(p)
    return p.returncode


def wait_until(pred, timeout=20, step=0.05, what='condition'):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise Fail(f'timed out waiting for {what}')


def metric(s, name):
    """The value of one /metrics sample NAME (summed over its labels), 0 when absent."""
    import urllib.request
    with urllib.request.urlopen(s.url + '/metrics', timeout=10) as r:
        text = r.read().decode()
    return sum(float(m.group(1)) for m in
               re.finditer(r'^' + re.escape(name) + r'(?:\{[^}]*\})? (\S+)$', text, re.M))


def run(args, input=None, check_rc=None):
    """Runs `selo ARGS`; returns (rc, stdout, stderr) as text."""
    p = subprocess.run([SELO] + args, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    out, err = p.stdout.decode(), p.stderr.decode()
    if check_rc is not None and p.returncode != check_rc:
        raise Fail(f'selo {" ".join(args)}: exit {p.returncode} (wanted {check_rc}): {err}')
    return p.returncode, out, err


def curl(method, url, body=None, headers=None, raw=None):
    """HTTP through curl. Returns (status, headers dict lowercased, body bytes)."""
    argv = ['curl', '-s', '-S', '-X', method, '-D', '-', '--max-time', '30',
            '-H', 'Expect:']
    for k, v in (headers or {}).items():
        argv += ['-H', f'{k}: {v}']
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else body
        if isinstance(data, str):
            data = data.encode()
    if raw is not None:
        data = raw
    if data is not None:
        argv += ['--data-binary', '@-']
        if not any(k.lower() == 'content-type' for k in (headers or {})):
            argv += ['-H', 'Content-Type: application/json']
    argv.append(url)
    p = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if p.returncode != 0:
        raise Fail(f'curl {method} {url} failed: {p.stderr.decode()}')
    out = p.stdout
    # skip interim 1xx responses
    while True:
        head, _, rest = out.partition(b'\r\n\r\n')
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1])
        if status >= 200:
            break
        out = rest
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(':')
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def _openapi_check(method, path, status, ctype, body):
    """Every JSON body the API answers must match docs/openapi.yaml
    (openapicheck.py); a mismatch fails the test that met it."""
    import openapicheck
    try:
        openapicheck.validate(method, path, status, ctype, body)
    except openapicheck.SpecError as e:
        raise Fail(f'OpenAPI: {e}')


class SMTPServer:
    """tests/integration/smtpserver.py as a child process."""

    def __init__(self, *args, port=0):
        self.dir = tempfile.mkdtemp(prefix='selo-smtp-')
        argv = [PY, os.path.join(ROOT, 'tests', 'integration', 'smtpserver.py'),
                '--host', '127.0.0.1', '--port', str(port), '--maildir', self.dir] + list(args)
        self.p = spawn(argv, stdout=subprocess.PIPE)
        line = self.p.stdout.readline().decode()
        if not line.startswith('PORT '):
            stop(self.p)
            raise Fail(f'smtpserver did not start: {line!r}')
        self.port = int(line.split()[1])

    def messages(self):
        """[(eml bytes, envelope dict)] in arrival order."""
        out = []
        names = sorted((f for f in os.listdir(self.dir) if f.endswith('.eml')),
                       key=lambda f: int(f.split('.')[0]))
        for f in names:
            with open(os.path.join(self.dir, f), 'rb') as fh:
                eml = fh.read()
            env = {}
            j = os.path.join(self.dir, f[:-4] + '.json')
            if os.path.exists(j):
                with open(j) as fh:
                    env = json.load(fh)
            out.append((eml, env))
        return out

    def stop(self):
        stop(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)


class Selo:
    """A data directory made by `selo init`, and `selo serve` on it."""

    preexec_fn = None   # run in `selo serve`'s child before exec (e.g. set an rlimit)

    def __init__(self, domain='cobranca.example', **conf):
        self.dir = tempfile.mkdtemp(prefix='selo-test-')
        self.data = os.path.join(self.dir, 'data')
        rc, out, err = run(['init', '--data', self.data, '--domain', domain], check_rc=0)
        self.init_out = out
        self.domain = domain
        self.key = [l.split()[1] for l in out.splitlines() if l.startswith('api_key ')][0]
        self.api_port = free_port()
        self.track_port = free_port()
        self.conf = {
            'api': {'listen': f'127.0.0.1:{self.api_port}'},
            'track': {'listen': f'127.0.0.1:{self.track_port}',
                      'base_url': f'http://127.0.0.1:{self.track_port}'},
            'mail': {'domain': domain, 'from_address': f'cobranca@{domain}',
                     'from_name': 'Cobrança Exemplo Ltda'},
            'smtp': {'mode': 'maildir', 'timeout_ms': '5000'},
            'sender': {'workers': '2', 'retry_base': '1', 'retry_max': '2'},
        }
        if STORE == 'postgres' and 'store' not in conf:
            self.conf['store'] = {'backend': 'postgres', 'url': pg_database()}
        for sec, kv in conf.items():
            self.conf.setdefault(sec, {}).update(kv)
        self.write_conf()
        if self.conf.get('store', {}).get('backend') == 'postgres':
            rc, out, err = run(['apikey', 'create', 'test', '--data', self.data], check_rc=0)
            self.key = out.strip().splitlines()[-1]
        self.p = None
        self.log = None

    def write_conf(self):
        with open(os.path.join(self.data, 'selo.conf'), 'w') as f:
            for sec, kv in self.conf.items():
                f.write(f'[{sec}]\n')
                for k, v in kv.items():
                    f.write(f'{k} = {v}\n')
                f.write('\n')

    @property
    def url(self):
        return f'http://127.0.0.1:{self.api_port}'

    def start(self):
        """Starts `selo serve`. free_port() only finds a port free at that
        moment: when another process took it since, the start is retried on
        new ports (up to three times)."""
        for attempt in range(3):
            try:
                return self._start_once()
            except Fail as e:
                if 'cannot listen on' not in str(e) or attempt == 2:
                    raise
                self.stop()
                self._new_ports()

    def _new_ports(self):
        old_track = self.track_port
        self.api_port, self.track_port = free_port(), free_port()
        self.conf['api']['listen'] = f'127.0.0.1:{self.api_port}'
        self.conf['track']['listen'] = f'127.0.0.1:{self.track_port}'
        self.conf['track']['base_url'] = self.conf['track']['base_url'].replace(
            f':{old_track}', f':{self.track_port}')
        self.write_conf()

    start_timeout = 30  # seconds for `selo serve` to answer /healthz

    def serve_argv(self):
        """The command that runs `selo serve` (a subclass may wrap it)."""
        return [SELO, 'serve', '--data', self.data]

    def _start_once(self):
        self.log = open(os.path.join(self.dir, 'serve.log'), 'ab')
        self.p = spawn(self.serve_argv(), stdout=self.log, stderr=subprocess.STDOUT,
                       preexec_fn=self.preexec_fn)

        def up():
            if self.p.poll() is not None:
                raise Fail(f'selo serve exited {self.p.returncode}: {self.serve_log()}')
            try:
                return curl('GET', self.url + '/healthz')[0] == 200
            except Fail:
                return False
        wait_until(up, self.start_timeout, what='selo serve to answer /healthz')
        return self

    def serve_log(self):
        try:
            with open(os.path.join(self.dir, 'serve.log'), 'rb') as f:
                return f.read().decode('utf-8', 'replace')[-3000:]
        except OSError:
            return ''

    def stop(self, sig=signal.SIGTERM):
        rc = None
        if self.p:
            rc = stop(self.p, sig)
            self.p = None
        if self.log:
            self.log.close()
            self.log = None
        self.check_sanitizers()
        return rc

    def check_sanitizers(self):
        """Under the ASan/UBSan build a report in the server's log (a leak at
        exit, a bad access that did not crash, undefined behaviour) fails
        the test that ran it."""
        log = self.serve_log_all()
        for mark in ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'):
            at = log.find(mark)
            if at >= 0:
                raise Fail(f'selo serve: {log[at:at + 3000]}')

    def serve_log_all(self):
        try:
            with open(os.path.join(self.dir, 'serve.log'), 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def api(self, method, path, body=None, key=None, headers=None, raw=None):
        h = {'Authorization': f'Bearer {key or self.key}'}
        h.update(headers or {})
        st, hd, b = curl(method, self.url + path, body, h, raw)
        ctype = hd.get('content-type', '')
        if 'json' in ctype:
            j = json.loads(b)
            _openapi_check(method, path, st, ctype, j)
            return st, hd, j
        return st, hd, b

    def notice(self, nid):
        st, _, j = self.api('GET', f'/v1/notices/{nid}')
        eq(st, 200, 'GET notice')
        return j

    def wait_status(self, nid, statuses, timeout=30):
        def done():
            j = self.notice(nid)
            return j if j['status'] in statuses else None
        try:
            return wait_until(done, timeout, 0.1, f'notice {nid} to reach {statuses}')
        except Fail:
            raise Fail(f'notice {nid} is {self.notice(nid)["status"]}, not {statuses}; '
                       f'serve log: {self.serve_log()}')

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Postfix:
    """A private Postfix (Debian's postfix): its own config, queue and data
    directories under a temporary directory, smtpd on 127.0.0.1:port with
    STARTTLS offered, mail for destino.example delivered by its virtual agent
    into a maildir there (unless main_extra routes it elsewhere); main_extra
    and master_extra are appended to main.cf and master.cf. Nothing
    system-wide is touched: `postfix -c DIR start-fg`, and the master is
    stopped by the PID it wrote."""

    def __init__(self, main_extra='', master_extra=''):
        self.dir = tempfile.mkdtemp(prefix='selo-postfix-')
        os.chmod(self.dir, 0o755)  # postfix's own processes walk into it
        d = self.dir
        for sub in ('etc', 'queue', 'data', 'mail'):
            os.makedirs(os.path.join(d, sub))
        self.port = free_port()
        etc = os.path.join(d, 'etc')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout',
                        f'{etc}/key.pem', '-out', f'{etc}/crt.pem', '-days', '2',
                        '-subj', '/CN=mx.destino.example/O=Destino MX'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        uid, gid = pwd.getpwnam('postfix').pw_uid, grp.getgrnam('postfix').gr_gid
        with open(f'{etc}/main.cf', 'w') as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.destino.example
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = {'' if 'relayhost' in main_extra else 'destino.example'}
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:caixa/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_tls_cert_file = {etc}/crt.pem
smtpd_tls_key_file = {etc}/key.pem
smtpd_tls_security_level = may
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
biff = no
""" + main_extra)
        with open('/etc/postfix/master.cf') as f:
            master = f.read()
        master = re.sub(r'(?m)^smtp\s+inet\s.*$', f'127.0.0.1:{self.port} inet n - n - - smtpd', master)
        with open(f'{etc}/master.cf', 'w') as f:
            f.write(master + master_extra)
        os.chown(os.path.join(d, 'data'), uid, gid)
        os.chown(os.path.join(d, 'mail'), uid, gid)
        self.p = spawn(['postfix', '-c', etc, 'start-fg'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        def listening():
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.5).close()
                return True
            except OSError:
                return False
        wait_until(listening, 30, 0.1, 'postfix to listen')

    def delivered(self):
        new = os.path.join(self.dir, 'mail', 'caixa', 'new')
        out = []
        for f in sorted(os.listdir(new)) if os.path.isdir(new) else []:
            with open(os.path.join(new, f), 'rb') as fh:
                out.append(fh.read())
        return out

    def log(self):
        try:
            with open(os.path.join(self.dir, 'maillog')) as f:
                return f.read()
        except OSError:
            return ''

    def stop(self):
        pidfile = os.path.join(self.dir, 'queue', 'pid', 'master.pid')
        try:
            with open(pidfile) as f:
                master = int(f.read().strip())
            os.kill(master, signal.SIGTERM)
            wait_until(lambda: not os.path.exists(f'/proc/{master}') or
                       open(f'/proc/{master}/stat').read().split()[2] == 'Z', 20, 0.1,
                       'the postfix master to exit')
        except (OSError, ValueError):
            pass
        stop(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ''
    passed = failed = skipped = 0
    for fn in _tests:
        if only and only not in fn.__name__:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print(f'ok   {fn.__name__} ({time.time() - t0:.1f}s)', flush=True)
        except Skip as e:
            skipped += 1
            print(f'skip {fn.__name__}: {e}', flush=True)
        except Exception as e:
            failed += 1
            print(f'FAIL {fn.__name__}: {e}', flush=True)
            if not isinstance(e, Fail):
                traceback.print_exc(file=sys.stdout)
        finally:
            for p in list(_procs):
                stop(p, signal.SIGKILL)
    print(f'{passed} passed, {failed} failed, {skipped} skipped')
    sys.exit(1 if failed else 0)
