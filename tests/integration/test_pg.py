#!/usr/bin/python3
"""test_pg: the private PostgreSQL the other tests use (pgtest.py) works as
they need: start, write, a synchronous standby that has every committed row,
SIGKILL of the primary, promotion, and no server left running afterwards.
Skipped only when the PostgreSQL 15 binaries are absent."""
import os, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import test, check, eq, skip, main, ROOT
import pgtest


def need_pg():
    if not pgtest.available():
        skip(f'no PostgreSQL binaries in {pgtest.PG_BIN} (Debian package postgresql)')


def gone(c):
    return not pgtest._procs_in(c.data) and not (c.pid() and pgtest._alive(c.pid()))


@test
def cluster_starts_writes_and_stops_by_pid():
    need_pg()
    with pgtest.PgCluster() as c:
        pid = c.pid()
        check(pid and pgtest._alive(pid), 'the postmaster runs')
        eq(c.psql('SHOW fsync'), 'on')
        eq(c.psql('SHOW listen_addresses'), '')
        check(c.url().startswith(f'host={c.dir} port={c.port} dbname=selo user=selo'), c.url())
        c.psql('CREATE TABLE t(x int)')
        c.psql('INSERT INTO t VALUES (1)')
        c.restart()
        eq(c.psql('SELECT count(*) FROM t'), '1')
        c.stop()
        check(gone(c), 'no process of the cluster is left')
    check(not os.path.exists(c.dir), 'the directory is removed')


@test
def standby_replicates_synchronously_and_survives_primary_kill():
    need_pg()
    with pgtest.PgCluster(password='pw-Never-Logged') as p:
        p.psql('CREATE TABLE t(id int PRIMARY KEY, v text)')
        with p.standby() as s:
            eq(p.psql('SHOW synchronous_commit'), 'on')
            eq(p.psql("SELECT sync_state FROM pg_stat_replication"), 'sync')
            p.psql("INSERT INTO t VALUES (1, 'acknowledged')")
            # synchronous_commit = on: the standby flushed it before the
            # INSERT returned; it may not have applied it yet, so look after promotion.
            p.kill()
            check(gone(p), 'the killed primary left no process')
            s.promote()
            eq(s.psql('SELECT v FROM t WHERE id = 1'), 'acknowledged')
            s.psql("INSERT INTO t VALUES (2, 'after promotion')")
            eq(s.psql('SELECT count(*) FROM t'), '2')
        check(gone(s), 'the standby is stopped')


@test
def command_line_start_stop_for_c_tests():
    need_pg()
    import tempfile, shutil
    d = tempfile.mkdtemp(prefix='selo-pgcli-')
    try:
        r = subprocess.run([os.path.join(ROOT, 'tests', 'pg', 'cluster.sh'), 'start', d],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        eq(r.returncode, 0, r.stderr.decode())
        url = r.stdout.decode().strip()
        check(url.startswith(f'host={d} '), url)
        c = pgtest.PgCluster.attach(d)
        check(c.pid() and pgtest._alive(c.pid()), 'the server runs after start returned')
        eq(c.psql('SELECT 1'), '1')
        r = subprocess.run([os.path.join(ROOT, 'tests', 'pg', 'cluster.sh'), 'stop', d], timeout=120)
        eq(r.returncode, 0)
        check(gone(c), 'stop left no process')
    finally:
        c = pgtest.PgCluster.attach(d) if os.path.exists(os.path.join(d, pgtest.STATE)) else None
        if c:
            c.stop()
        shutil.rmtree(d, ignore_errors=True)


@test
def watcher_stops_the_cluster_of_a_dead_owner():
    """A C test that crashes never runs its atexit: --watch PID ends its cluster."""
    need_pg()
    import tempfile, shutil, signal
    from selotest import spawn, stop, wait_until
    owner = spawn(['sleep', '600'])
    d = tempfile.mkdtemp(prefix='selo-pgwatch-')
    try:
        r = subprocess.run([os.path.join(ROOT, 'tests', 'pg', 'cluster.sh'), 'start', d,
                            '--watch', str(owner.pid)], stdout=subprocess.PIPE, timeout=120)
        eq(r.returncode, 0)
        c = pgtest.PgCluster.attach(d)
        pid = c.pid()
        check(pid and pgtest._alive(pid), 'the server runs')
        stop(owner, signal.SIGKILL)
        wait_until(lambda: not pgtest._alive(pid) and not os.path.exists(d), 60, 0.1,
                   'the watcher to stop the cluster and remove its directory')
    finally:
        if os.path.exists(os.path.join(d, pgtest.STATE)):
            pgtest.PgCluster.attach(d).stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
