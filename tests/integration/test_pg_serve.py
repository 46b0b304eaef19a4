#!/usr/bin/python3
"""test_pg_serve: `selo serve` on PostgreSQL (store.backend = postgres,
docs/scale.md "Configuration"): the [store] and [node] keys are checked with
clear messages; a database that cannot be reached is exit 2 with a message
that never holds the password; the keys every node must share are recorded
by the first node and a node with another log key or token key is refused,
naming which; with the database up, /healthz answers and neither the log nor
/metrics shows the password. A private PostgreSQL 15 per test (pgtest.py);
the tests that need it skip only when its binaries are absent."""
import os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import test, check, eq, skip, main, run, curl, wait_until, Selo, SELO, Fail
import pgtest

PASSWORD = 'Pg-s3rve-Never-Shown-7q'


def need_pg():
    if not pgtest.available():
        skip(f'no PostgreSQL binaries in {pgtest.PG_BIN} (Debian package postgresql)')


def pg_selo(cluster, node='node-a'):
    """A data directory (`selo init`: its own keys) set to the cluster's
    database; nothing of it has touched the database yet."""
    s = Selo(store={'backend': 'sqlite'})  # (not selotest's SELO_TEST_STORE database)
    s.conf['store'] = {'backend': 'postgres', 'url': cluster.url(), 'timeout': '2000'}
    s.conf['node'] = {'name': node}
    s.write_conf()
    return s


def pg_key(s):
    """An API key in the database (the one `selo init` made is in selo.db)."""
    s.key = run(['apikey', 'create', 'test', '--data', s.data], check_rc=0)[1].strip().splitlines()[-1]


def serve_until_exit(s, timeout=60):
    """Runs `selo serve` on s's data directory to its end: rc and output."""
    p = subprocess.run([SELO, 'serve', '--data', s.data], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def stub_op(log):
    """The op a start met that is not written yet for PostgreSQL, or None."""
    for line in log.splitlines():
        if 'is not written yet for PostgreSQL' in line:
            return line.split('store: ', 1)[-1].split(' is not written', 1)[0]
    return None


@test
def store_keys_are_checked_with_clear_messages():
    """No PostgreSQL needed: the configuration is refused before any
    connection, with exit 2 and a message naming the key."""
    s = Selo(store={'backend': 'sqlite'})
    try:
        cases = [
            ({'store': {'backend': 'postgres'}}, 'store.url'),
            ({'store': {'url': f'host=/tmp dbname=selo password={PASSWORD}'}},
             'store.backend is sqlite'),
            ({'store': {'backend': 'mysql'}}, 'sqlite or postgres'),
            ({'store': {'timeout': '5000', 'lease': '4000'}}, 'store.lease'),
            ({'node': {'name': 'has space'}}, 'node.name'),
            ({'store': {'pool': '0'}}, 'pool'),
        ]
        base = {k: dict(v) for k, v in s.conf.items()}
        for extra, want in cases:
            s.conf = {k: dict(v) for k, v in base.items()}
            for sec, kv in extra.items():
                s.conf.setdefault(sec, {}).update(kv)
            s.write_conf()
            rc, out = serve_until_exit(s)
            eq(rc, 2, f'{extra}: exit code ({out})')
            check(want in out, f'{extra}: the message names {want!r}: {out}')
            check(PASSWORD not in out, f'the password shows: {out}')
    finally:
        s.cleanup()


@test
def unreachable_database_exits_2_without_the_password():
    need_pg()
    with pgtest.PgCluster(password=PASSWORD) as c:
        s = pg_selo(c)
        try:
            c.stop()
            rc, out = serve_until_exit(s)
            eq(rc, 2, f'exit code: {out}')
            check('store unavailable' in out or 'connect' in out, f'says why: {out}')
            check('password=***' in out, f'the connection string is shown redacted: {out}')
            check(PASSWORD not in out, f'the password shows: {out}')
        finally:
            s.cleanup()


@test
def node_with_other_keys_is_refused_naming_the_key():
    need_pg()
    with pgtest.PgCluster(password=PASSWORD) as c:
        a = pg_selo(c, 'node-a')
        b = pg_selo(c, 'node-b')
        try:
            # the first node records its keys (whatever the command does next)
            run(['apikey', 'list', '--data', a.data], check_rc=0)
            eq(c.psql("SELECT count(*) FROM store_meta WHERE key IN "
                      "('log_vkey', 'token_key_sha256')"), '2', 'both keys recorded')
            token = open(os.path.join(a.data, 'keys', 'token.key')).read().strip()
            check(token not in c.psql('SELECT string_agg(value, \' \') FROM store_meta'),
                  'the token key itself is never stored')
            # b: its own `selo init` keys: the log key is the first to differ
            rc, out = serve_until_exit(b)
            eq(rc, 2, f'exit code: {out}')
            check('log_vkey' in out and 'differs' in out, f'names the log key: {out}')
            check('node-a' in out, f'names the node that set it: {out}')
            # b with a's log key but its own token key
            for f in ('log.key', 'log.vkey'):
                shutil.copy(os.path.join(a.data, 'keys', f), os.path.join(b.data, 'keys', f))
            rc, out = serve_until_exit(b)
            eq(rc, 2, f'exit code: {out}')
            check('token_key_sha256' in out and 'log_vkey' not in out,
                  f'names the token key: {out}')
            check(token not in out and PASSWORD not in out, f'no secret shows: {out}')
        finally:
            a.cleanup()
            b.cleanup()


@test
def serve_on_postgres_answers_healthz():
    need_pg()
    with pgtest.PgCluster(password=PASSWORD) as c:
        s = pg_selo(c)
        try:
            try:
                pg_key(s)
                s.start()
            except Fail as e:
                op = stub_op(s.serve_log_all())
                if op:
                    skip(f'store op {op} is not written yet for PostgreSQL (serve stops at it)')
                raise e
            eq(curl('GET', s.url + '/healthz')[0], 200)
            st, _, body = curl('GET', s.url + '/metrics',
                               headers={'Authorization': f'Bearer {s.key}'})
            check(PASSWORD.encode() not in body, '/metrics never shows the password')
            s.stop()
            log = s.serve_log_all()
            check(PASSWORD not in log, f'the log never shows the password: {log[-2000:]}')
            eq(c.psql("SELECT count(*) FROM nodes WHERE name = 'node-a'"), '1')
        finally:
            s.cleanup()


if __name__ == '__main__':
    main()
