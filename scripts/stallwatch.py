#!/usr/bin/python3
"""stallwatch.py PID [SECONDS] [OUT]: catch an accept stall in `selo serve`.

For a developer chasing the accept p99 (docs/operations.md, "Accept
latency: where the tail comes from"). Every 5 ms it reads, from /proc,
which API threads (libmicrohttpd's, named MHD-worker) sleep in a futex.
When at least four have for more than 80 ms, it dumps every thread's
stack with gdb into OUT.N (N = 1, 2, 3) and goes on, up to three dumps or
SECONDS (default 30). Run it as root beside `make bench`; gdb stops the
process for about a second per dump, so the run's figures are not
comparable to an untraced one. It sees only threads that wait; threads
that spin on a lock (as on OpenSSL's RAND lock, docs/operations.md) are
running, and `perf record -k CLOCK_MONOTONIC -a -g` beside the run finds
them.
"""
import os
import subprocess
import sys
import time

FUTEX = '202'  # x86-64 syscall number, as /proc/TID/syscall shows it
WAITERS = 4
STALL_S = 0.08
MAX_DUMPS = 3


def sleeping_api_threads(pid):
    """TIDs of the API threads now blocked in futex()."""
    out = []
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except FileNotFoundError:
        return None
    for tid in tids:
        try:
            with open(f'/proc/{pid}/task/{tid}/comm') as f:
                if f.read().strip() != 'MHD-worker':
                    continue
            with open(f'/proc/{pid}/task/{tid}/syscall') as f:
                if f.read().split()[:1] == [FUTEX]:
                    out.append(tid)
        except (OSError, IndexError):
            pass
    return out


def dump(pid, path, tids):
    r = subprocess.run(['gdb', '-p', str(pid), '-batch', '-ex', 'thread apply all bt 16'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(path, 'w') as f:
        f.write(f'API threads asleep in futex: {" ".join(tids)}\n')
        f.write(r.stdout.decode(errors='replace'))
    print(f'stallwatch: wrote {path}')


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pid = sys.argv[1]
    end = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 30)
    out = sys.argv[3] if len(sys.argv) > 3 else 'stall'
    since, dumps = None, 0
    while time.monotonic() < end and dumps < MAX_DUMPS:
        tids = sleeping_api_threads(pid)
        if tids is None:
            break
        now = time.monotonic()
        if len(tids) < WAITERS:
            since = None
        elif since is None:
            since = now
        elif now - since > STALL_S:
            dumps += 1
            dump(pid, f'{out}.{dumps}', tids)
            since = None
        time.sleep(0.005)


if __name__ == '__main__':
    main()
