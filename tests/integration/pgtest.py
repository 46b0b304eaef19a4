"""pgtest: a private PostgreSQL 15 for one test (docs/scale.md "How tests run PostgreSQL").

PgCluster() runs initdb into a temporary directory and starts `postgres` on it:
the Unix socket in that directory (unix_socket_directories), no TCP unless
tcp=True (then 127.0.0.1 on a free port), fsync on (tests check durability),
the superuser `selo` and a database `selo`; url() is its libpq connection
string. initdb refuses root, so when we are root the server runs as `nobody`
(setpriv) in a directory chowned to it. stop() ends the server by the pid in
postmaster.pid (SIGINT: fast shutdown; SIGKILL after a deadline), kill() is
SIGKILL (a crash), and cleanup() (also on `with` exit and at interpreter
exit) stops every process that still runs in the data directory, by pid, and
removes the directory. standby(primary) is a synchronous streaming standby
made with `pg_basebackup -R`; promote() is `pg_ctl promote`.

Used by Python tests (import pgtest) and, through the command line, by C
tests (tests/unit/t_pg.h) and shell scripts (tests/pg/cluster.sh):
    pgtest.py start DIR [--password PW] [--tcp] [--watch PID]
        prints the connection string; with --watch a small watcher stops
        the cluster when process PID ends (a test binary that crashed)
    pgtest.py stop DIR | kill DIR | restart DIR | url DIR
Nothing here touches a system-wide cluster. Without the PostgreSQL binaries,
available() is False and tests skip."""
import atexit, json, os, pwd, shutil, signal, socket, subprocess, sys, tempfile, time

PG_BIN = os.environ.get('SELO_PG_BIN', '/usr/lib/postgresql/15/bin')
USER = 'selo'
STATE = 'cluster.json'
_live = []


def available():
    return all(os.access(os.path.join(PG_BIN, b), os.X_OK)
               for b in ('initdb', 'postgres', 'pg_ctl', 'pg_basebackup', 'psql'))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _as_owner():
    """The prefix that runs a PostgreSQL program as the cluster's owner."""
    if os.geteuid() != 0:
        return []
    return ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--']


def _alive(pid):
    """Whether pid runs (a zombie counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _procs_in(datadir):
    """The pids of the processes whose working directory is datadir: the
    postmaster and every backend it forked (they chdir there)."""
    out = []
    real = os.path.realpath(datadir)
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            if os.readlink(f'/proc/{d}/cwd') == real:
                out.append(int(d))
        except OSError:
            pass
    return out


class PgCluster:
    def __init__(self, dir=None, password=None, tcp=False, name='primary', conf=None,
                 _init=True):
        self.owned = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix='selo-pg-')
        self.data = os.path.join(self.dir, 'data')
        self.password = password
        self.tcp = tcp
        self.name = name
        self.port = _free_port()
        self.conf = dict(conf or {})
        self.proc = None
        if _init:
            _live.append(self)
            self._prepare_dir()
            self._initdb()
            self.start()
            self._psql('postgres', f'CREATE DATABASE {USER}')

    # ---- state shared with the command line (start in one process, stop in another)
    def _save(self):
        with open(os.path.join(self.dir, STATE), 'w') as f:
            json.dump({'port': self.port, 'password': self.password, 'tcp': self.tcp,
                       'name': self.name, 'conf': self.conf}, f)

    @classmethod
    def attach(cls, dir):
        with open(os.path.join(dir, STATE)) as f:
            st = json.load(f)
        c = cls(dir, st['password'], st['tcp'], st['name'], st['conf'], _init=False)
        c.port = st['port']
        return c

    def _prepare_dir(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            nb = pwd.getpwnam('nobody')
            os.chown(self.dir, nb.pw_uid, nb.pw_gid)

    def _run(self, argv, env=None, **kw):
        e = dict(os.environ, **(env or {}))
        return subprocess.run(_as_owner() + argv, cwd=self.dir, env=e, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120, **kw)

    def _initdb(self):
        argv = [os.path.join(PG_BIN, 'initdb'), '-D', self.data, '-U', USER, '-E', 'UTF8',
                '--locale=C', '--no-instructions']
        if self.password:
            pwfile = os.path.join(self.dir, 'pw')
            with open(pwfile, 'w') as f:
                f.write(self.password + '\n')
            if os.geteuid() == 0:
                nb = pwd.getpwnam('nobody')
                os.chown(pwfile, nb.pw_uid, nb.pw_gid)
            argv += ['--pwfile', pwfile, '--auth=scram-sha-256']
        else:
            argv += ['--auth=trust']
        r = self._run(argv)
        if self.password:
            os.unlink(os.path.join(self.dir, 'pw'))
        if r.returncode != 0:
            raise RuntimeError('initdb failed: ' + r.stdout.decode(errors='replace'))
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            f.write("\ninclude_if_exists = 'selo-test.conf'\n")
        self._write_conf()

    def _write_conf(self):
        """Our settings, in a file of their own so that a standby (whose
        pg_basebackup copies the primary's files) can replace them."""
        c = {
            'port': self.port,
            'unix_socket_directories': f"'{self.dir}'",
            'listen_addresses': "'127.0.0.1'" if self.tcp else "''",
            'fsync': 'on',
            'synchronous_commit': 'on',
            'full_page_writes': 'on',
            'wal_level': 'replica',
            'max_wal_senders': 4,
            'max_connections': 60,
            'shared_buffers': "'32MB'",
            'cluster_name': f"'{self.name}'",
            'logging_collector': 'off',
            'log_min_messages': 'warning',
        }
        c.update(self.conf)
        with open(os.path.join(self.data, 'selo-test.conf'), 'w') as f:
            f.writelines(f'{k} = {v}\n' for k, v in c.items())
        self._save()

    # ---- running
    def url(self, dbname=USER, password=True):
        host = '127.0.0.1' if self.tcp else self.dir
        u = f'host={host} port={self.port} dbname={dbname} user={USER}'
        if self.password and password:
            u += f' password={self.password}'
        return u

    def _env(self):
        return {'PGPASSWORD': self.password} if self.password else {}

    def _psql(self, db, sql):
        r = subprocess.run([os.path.join(PG_BIN, 'psql'), '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
                            '-h', self.dir, '-p', str(self.port), '-U', USER, '-d', db, '-c', sql],
                           env=dict(os.environ, **self._env()), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f'psql: {r.stderr.decode(errors="replace").strip()}')
        return r.stdout.decode().strip()

    def psql(self, sql, db=USER):
        """Runs sql with psql; returns its unaligned output."""
        return self._psql(db, sql)

    def pid(self):
        """The postmaster's pid from postmaster.pid, or None."""
        try:
            with open(os.path.join(self.data, 'postmaster.pid')) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout=60):
        log = open(os.path.join(self.dir, 'server.log'), 'ab')
        self.proc = subprocess.Popen(_as_owner() + [os.path.join(PG_BIN, 'postgres'), '-D', self.data],
                                     cwd=self.dir, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f'postgres exited {self.proc.returncode}: {self.log()[-2000:]}')
            if self._ready():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError('postgres did not become ready: ' + self.log()[-2000:])

    def _ready(self):
        """postmaster.pid's status line says 'ready' (or 'standby' for a hot standby)."""
        try:
            with open(os.path.join(self.data, 'postmaster.pid')) as f:
                lines = f.read().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() in ('ready', 'standby')

    def log(self):
        try:
            with open(os.path.join(self.dir, 'server.log'), errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def _wait_gone(self, pids, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc is not None:
                self.proc.poll()  # reap our own child
            if not any(_alive(p) for p in pids):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout=30):
        """Fast shutdown (SIGINT to the postmaster), SIGKILL after timeout;
        returns when no process of this cluster runs."""
        pid = self.pid() or (self.proc.pid if self.proc else None)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGINT)
            if not self._wait_gone([pid], timeout):
                os.kill(pid, signal.SIGKILL)
        self._reap_all()

    def kill(self):
        """SIGKILL to the postmaster (a crash); its backends exit when they
        notice, and are killed by pid if they do not within seconds."""
        pid = self.pid() or (self.proc.pid if self.proc else None)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._reap_all()

    def _reap_all(self, timeout=10):
        pids = _procs_in(self.data)
        if self.proc is not None:
            pids.append(self.proc.pid)
        if not self._wait_gone(pids, timeout):
            for p in pids:
                if _alive(p):
                    os.kill(p, signal.SIGKILL)
            self._wait_gone(pids, 10)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self in _live:
                _live.remove(self)
            if self.owned:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    # ---- replication
    def standby(self, name='standby1'):
        """A streaming standby of self, made with pg_basebackup -R, that self
        then waits for on every commit (synchronous_standby_names, synchronous_commit = on)."""
        sb = PgCluster(password=self.password, tcp=self.tcp, name=name, conf=self.conf, _init=False)
        _live.append(sb)
        sb._prepare_dir()
        r = sb._run([os.path.join(PG_BIN, 'pg_basebackup'), '-D', sb.data, '-R', '-X', 'stream',
                     '-c', 'fast', '-h', self.dir, '-p', str(self.port), '-U', USER],
                    env=self._env())
        if r.returncode != 0:
            sb.cleanup()
            raise RuntimeError('pg_basebackup failed: ' + r.stdout.decode(errors='replace'))
        sb.conf['hot_standby'] = 'on'
        sb._write_conf()
        sb.start()
        self.psql(f"ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 ({name})'")
        self.psql('SELECT pg_reload_conf()')
        end = time.time() + 60
        while time.time() < end:
            if self.psql(f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'") == 'sync':
                return sb
            time.sleep(0.1)
        raise RuntimeError('the standby never became synchronous')

    def promote(self, timeout=60):
        r = self._run([os.path.join(PG_BIN, 'pg_ctl'), 'promote', '-D', self.data, '-w',
                       '-t', str(timeout)])
        if r.returncode != 0:
            raise RuntimeError('pg_ctl promote failed: ' + r.stdout.decode(errors='replace'))
        end = time.time() + timeout
        while time.time() < end:
            if self.psql('SELECT pg_is_in_recovery()') == 'f':
                return self
            time.sleep(0.05)
        raise RuntimeError('the standby did not leave recovery')


@atexit.register
def _cleanup_all():
    for c in list(_live):
        try:
            c.cleanup()
        except Exception:
            pass


def _watch(dir, pid):
    """Stops the cluster in dir once process pid has ended (run detached)."""
    while _alive(pid):
        time.sleep(0.2)
    if os.path.exists(os.path.join(dir, STATE)):
        c = PgCluster.attach(dir)
        c.stop()
        shutil.rmtree(dir, ignore_errors=True)  # its owner can no longer


def main(argv):
    if len(argv) < 3 or argv[1] not in ('start', 'stop', 'kill', 'restart', 'url', 'watch'):
        print('usage: pgtest.py start|stop|kill|restart|url DIR [--password PW] [--tcp] '
              '[--watch PID]', file=sys.stderr)
        return 2
    cmd, dir = argv[1], os.path.abspath(argv[2])
    if cmd == 'start':
        if not available():
            print(f'pgtest: no PostgreSQL binaries in {PG_BIN}', file=sys.stderr)
            return 3
        opts = argv[3:]
        pw = opts[opts.index('--password') + 1] if '--password' in opts else None
        c = PgCluster(dir, password=pw, tcp='--tcp' in opts)
        _live.remove(c)  # it outlives this process: `stop DIR` (or the watcher) ends it
        if '--watch' in opts:
            subprocess.Popen([sys.executable, os.path.abspath(__file__), 'watch', dir,
                              opts[opts.index('--watch') + 1]],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        print(c.url(), flush=True)
        return 0
    if cmd == 'watch':
        _watch(dir, int(argv[3]))
        return 0
    c = PgCluster.attach(dir)
    if cmd == 'stop':
        c.stop()
    elif cmd == 'kill':
        c.kill()
    elif cmd == 'restart':
        c.stop()
        c.start()
        c.proc = None  # detached: not ours to wait for
    elif cmd == 'url':
        print(c.url())
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
