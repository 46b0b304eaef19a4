#!/usr/bin/python3
"""Crash safety and graceful stop (issue 5, parts 5 and 6), against the real
binary and a real SMTP server (smtpserver.py) on 127.0.0.1.

- A graceful stop (SIGTERM) lets the SMTP sessions in flight finish and
  record their results, within sender.stop_timeout even when a session is
  stuck; a second SIGTERM exits at once. Nothing is lost either way, and
  nothing is sent twice by a graceful stop.
- A second `selo serve` on the same data directory is refused (its recovery
  would resend the first one's notices while they are being sent).
- Chaos: notices in flight while `selo serve` is killed with SIGKILL at
  random moments, and restarted each time. At the end every notice has
  exactly one submission_accepted, one content_sealed and one outcome event,
  the Merkle log holds every event and `selo log verify` passes, and no
  message reached the sink more often than once plus the number of crashes
  that caught it in `sending` (and, because the test lets a resend finish
  before the next kill, never more than twice). The random moments come
  from a seed printed first: SELO_CHAOS_SEED=<seed> replays them.

The final checks read the store through s.sql (the SQLite file read-only,
or the PostgreSQL database; after `selo serve` stopped or beside it: readers
never disturb the writer); every state they check is also visible through
the API, but one query beats 500 GETs. With SELO_TEST_STORE=postgres every
test runs on PostgreSQL: a restarted server keeps its node name, so its
recovery returns its own `sending` claims to the queue."""
import collections, hashlib, json, os, random, re, signal, socket, sys, threading, time
import urllib.request
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

# The sanitizer builds (build-san, build-h2san) run about ten times slower.
SAN = os.path.basename(os.path.dirname(os.path.abspath(SELO))).endswith('san')
FINAL = ('relayed', 'delivered', 'failed')


def relay_selo(sink, **conf):
    c = {'smtp': {'mode': 'relay', 'relay': f'127.0.0.1:{sink.port}', 'starttls': 'no',
                  'timeout_ms': '60000'}}
    for k, v in conf.items():
        c.setdefault(k, {}).update(v)
    return Selo(**c)


def point_at(s, sink):
    s.conf['smtp']['relay'] = f'127.0.0.1:{sink.port}'
    s.write_conf()


def items(n, tag):
    return [{'to': f'devedor{i}@destino.example', 'subject': f'Aviso {tag}-{i}',
             'text': f'Prezado devedor {i}, consta em aberto a fatura {tag}-{i}.',
             'reference': f'{tag}-{i}'} for i in range(n)]


def submit(s, notices, key=None, replayed=None):
    """POST /v1/notices/batch; the accepted ids in order (every item must
    be). replayed, a list, gets whether each item was a replay."""
    h = {'Idempotency-Key': key} if key else {}
    st, _, j = s.api('POST', '/v1/notices/batch', {'notices': notices}, headers=h)
    eq(st, 200, f'batch: {j}')
    eq(j['accepted'], len(notices), f'batch accepted: {j}')
    if replayed is not None:
        replayed += [r.get('replayed', False) for r in j['results']]
    return [r['id'] for r in j['results']]


def states(s):
    """selo_notices{state=...} from /metrics (urllib: polled often)."""
    with urllib.request.urlopen(s.url + '/metrics', timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'^selo_notices\{state="(\w+)"\} (\d+)$', text, re.M)}


def done(s):
    st = states(s)
    return sum(st.get(k, 0) for k in FINAL)


def query(s, sql):
    """Rows of a read-only query on the store (s.sql: either backend; every
    value as text, NULL as None)."""
    return [tuple(r) for r in s.sql(sql)]


def sql_list(ids):
    """ids (made by the server: letters, digits, '-' and '_') as an SQL list."""
    for i in ids:
        check(re.fullmatch(r'[\w-]+', i), f'unexpected id {i!r}')
    return ','.join(f"'{i}'" for i in ids)


def statuses(s):
    return dict(query(s, 'SELECT id, status FROM notices'))


def sink_copies(*sinks):
    """Message-ID (without <>, as stored) -> [exact bytes of each copy]."""
    out = collections.defaultdict(list)
    for sink in sinks:
        for eml, _ in sink.messages():
            head = eml.split(b'\r\n\r\n', 1)[0]
            m = re.search(rb'^Message-ID:\s*<([^>\r\n]+)>', head, re.M | re.I)
            check(m, f'a message without Message-ID reached the sink: {head[:200]!r}')
            out[m.group(1).decode()].append(eml)
    return out


def wait_sending(s, n, timeout=30):
    wait_until(lambda: states(s).get('sending', 0) >= n, timeout, 0.02,
               f'{n} notice(s) in sending')


def wait_all_final(s, n, timeout=60):
    wait_until(lambda: done(s) >= n, timeout, 0.1, f'{n} notices relayed or failed')


def wait_exit(s, timeout):
    """Waits for `selo serve` to exit by itself; (exit code, seconds)."""
    t0 = time.time()
    try:
        rc = s.p.wait(timeout)
    except Exception:
        raise Fail(f'selo serve did not exit within {timeout} s: {s.serve_log()}')
    dt = time.time() - t0
    s.stop()  # forgets the process (already gone) and closes the log
    return rc, dt


def api_refuses(s):
    """True once the API no longer takes requests (closed or 503)."""
    try:
        return curl('GET', s.url + '/healthz')[0] == 503
    except Fail:
        return True


def check_events(s, ids):
    """Every notice: one submission_accepted, one content_sealed, one outcome."""
    types = collections.defaultdict(collections.Counter)
    for nid, t in query(s, 'SELECT notice_id, type FROM events'):
        types[nid][t] += 1
    for nid in ids:
        c = types[nid]
        eq(c['submission_accepted'], 1, f'{nid} submission_accepted events')
        eq(c['content_sealed'], 1, f'{nid} content_sealed events')
        eq(c['relay_accepted'] + c['delivery_failed'], 1, f'{nid} outcome events {dict(c)}')
    return types


def check_serve_log(s):
    """No sanitizer report in any run, killed ones included (a process that
    died by itself before its SIGKILL would otherwise go unnoticed)."""
    path = os.path.join(s.dir, 'serve.log')
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8', 'replace')
    for bad in ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'):
        check(bad not in text, f'{bad} in the serve log: {text[text.find(bad) - 200:][:3000]}')


def check_log(s):
    """The Merkle log holds every event, and `selo log verify` agrees."""
    (size,), = query(s, 'SELECT size FROM log_state')
    (events,), = query(s, 'SELECT count(*) FROM events')
    (unindexed,), = query(s, 'SELECT (SELECT count(*) FROM events) -'
                             ' (SELECT coalesce(sum(n), 0) FROM log_ranges)')
    eq(int(size), int(events), 'log size = events')
    eq(int(unindexed), 0, 'events outside the log')
    rc, out, err = run(['log', 'verify', '--data', s.data])
    eq(rc, 0, f'selo log verify: {out[-2000:]} {err}')
    check('verdict: CONSISTENT' in out, out[-500:])


def check_copies(s, ids, copies, caught=None):
    """Each notice reached the sinks at least once, each copy is its stored
    bytes, and no more often than once plus once per crash that caught it in
    flight (a resend cut by the next kill is resent again). Returns how many
    arrived more than once."""
    # s.sql gives eml as text (UTF-8, invalid bytes replaced): the stored
    # length and sha256 (of the eml bytes) make the comparison exact.
    rows = query(s, 'SELECT n.id, n.message_id, m.eml, length(m.eml), m.sha256 FROM notices n '
                    'JOIN messages m ON m.notice_id = n.id')
    stored = {nid: (mid, (eml, int(n), sha)) for nid, mid, eml, n, sha in rows}
    mine = set()
    twice = 0
    for nid in ids:
        check(nid in stored, f'{nid} has no stored message')
        mid, eml = stored[nid]
        mine.add(mid)
        got = copies.get(mid, [])
        allowed = 1 + (caught or {}).get(nid, 0)
        check(1 <= len(got) <= allowed,
              f'{nid} {mid} reached the sink {len(got)} times (allowed {allowed})')
        text, size, sha = eml
        for c in got:
            check(c.decode('utf-8', 'replace') == text and len(c) == size and
                  hashlib.sha256(c).hexdigest() == sha,
                  f'{nid}: a copy differs from the stored bytes')
        twice += len(got) >= 2
    extra = set(copies) - mine
    check(not extra, f'unknown messages at the sink: {sorted(extra)[:3]}')
    return twice


@test
def graceful_stop_finishes_sessions_in_flight():
    # Each message waits 1 s for its 250: a batch of 2 is a 2 s session.
    sink = SMTPServer('--stall', '1')
    s = relay_selo(sink, sender={'workers': '2', 'batch': '2', 'stop_timeout': '20'})
    try:
        s.start()
        ids = submit(s, items(6, 'G'))
        wait_sending(s, 4)
        time.sleep(0.3)  # inside both SMTP sessions
        os.kill(s.p.pid, signal.SIGTERM)
        wait_until(lambda: api_refuses(s), 2, 0.02, 'the API to refuse requests')
        check(s.p.poll() is None, 'selo serve waits for its sessions')
        rc, dt = wait_exit(s, 15)
        eq(rc, 0, 'exit status')
        check(dt < 10, f'stopped in {dt:.1f} s')
        log = s.serve_log()
        check('waiting up to 20 s' in log and '2 worker(s) to send 4 notice(s)' in log, log)
        check('every notice they sent has its result recorded' in log, log)
        st = collections.Counter(statuses(s).values())
        eq(st['relayed'], 4, f'the sessions in flight finished: {st}')
        eq(st['sending'], 0, f'nothing left in flight: {st}')
        eq(st['queued'], 2, f'the rest waits for the next start: {st}')
        s.start()
        check('in flight at the last stop' not in s.serve_log(), 'nothing to recover')
        wait_all_final(s, 6)
        eq(s.stop(), 0, 'second stop')
        check_events(s, ids)
        eq(check_copies(s, ids, sink_copies(sink)), 0, 'a graceful stop sends nothing twice')
        check_log(s)
        check_serve_log(s)
    finally:
        s.cleanup()
        sink.stop()


def read_response(sock, what):
    """One HTTP/1.1 response (headers and Content-Length body) as bytes."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = sock.recv(65536)
        check(chunk, f'{what}: connection closed after {data[:200]!r}')
        data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    m = re.search(rb'^Content-Length: (\d+)', head, re.M | re.I)
    while m and len(body) < int(m.group(1)):
        chunk = sock.recv(65536)
        check(chunk, 'connection closed inside the body')
        body += chunk
    return head + b'\r\n\r\n' + body


def in_progress(sock):
    """selo_http_requests_in_progress read by GET /metrics on a keep-alive
    connection."""
    sock.sendall(b'GET /metrics HTTP/1.1\r\nHost: selo\r\n\r\n')
    text = read_response(sock, 'GET /metrics').decode()
    m = re.search(r'^selo_http_requests_in_progress (\d+)$', text, re.M)
    check(m, f'no selo_http_requests_in_progress in {text[:300]!r}')
    return int(m.group(1))


@test
def stop_answers_requests_in_progress_and_refuses_new_ones():
    """A request whose body is still arriving at the signal is answered
    (202, committed); a new request on an older connection gets 503."""
    s = Selo(sender={'stop_timeout': '10'}).start()
    busy = socket.create_connection(('127.0.0.1', s.api_port), timeout=10)
    idle = socket.create_connection(('127.0.0.1', s.api_port), timeout=10)
    try:
        get = b'GET /healthz HTTP/1.1\r\nHost: selo\r\n\r\n'
        idle.sendall(get)
        check(read_response(idle, 'keep-alive GET').startswith(b'HTTP/1.1 200'),
              'keep-alive connection')
        body = json.dumps(items(1, 'P')[0]).encode()
        busy.sendall(b'POST /v1/notices HTTP/1.1\r\nHost: selo\r\n'
                     b'Authorization: Bearer ' + s.key.encode() + b'\r\n'
                     b'Content-Type: application/json\r\n'
                     b'Content-Length: ' + str(len(body)).encode() + b'\r\n\r\n' + body[:10])
        # Polled on the keep-alive connection: the server finishes each of
        # its requests before it reads the next, so the gauge (requests in
        # progress besides the poll) counts the POST alone. Polls on new
        # connections could count an earlier request whose end the server
        # had not recorded yet, and signal before the POST has begun.
        wait_until(lambda: in_progress(idle) == 1, 30, 0.02, 'the POST begun by the server')
        os.kill(s.p.pid, signal.SIGTERM)
        # The POST, and perhaps the last poll: the client can have its answer
        # before the server records the request's end.
        waiting = re.compile(r'waiting for ([12]) API request\(s\) in progress')
        wait_until(lambda: waiting.search(s.serve_log()), 30, 0.02, 'the stop begun')
        idle.sendall(get)
        refused = read_response(idle, 'GET during the stop')
        check(refused.startswith(b'HTTP/1.1 503'), refused[:200])
        check(b'urn:selo:problem:stopping' in refused and b'Retry-After: 5' in refused,
              refused)
        busy.sendall(body[10:])
        answer = read_response(busy, 'POST in progress')
        check(answer.startswith(b'HTTP/1.1 202'), answer[:300])
        nid = json.loads(answer.split(b'\r\n\r\n', 1)[1])['id']
        rc, dt = wait_exit(s, 10)
        eq(rc, 0, 'exit status')
        check(waiting.search(s.serve_log()), s.serve_log())
        eq(statuses(s), {nid: 'queued'}, 'accepted during the stop, sent after it')
        s.start()
        s.wait_status(nid, ['relayed'])
        eq(s.stop(), 0)
        check_serve_log(s)
    except Fail as e:
        # A failure here is about timing: the log says what the server did and when.
        raise Fail(f'{e}\n--- serve log (last 4000 chars):\n{s.serve_log()[-4000:]}')
    finally:
        busy.close()
        idle.close()
        s.cleanup()


@test
def stop_timeout_bounds_a_stuck_session():
    stuck = SMTPServer('--stall', '60')
    s = relay_selo(stuck, sender={'workers': '1', 'batch': '2', 'stop_timeout': '2'})
    fast = None
    try:
        s.start()
        ids = submit(s, items(2, 'T'))
        wait_sending(s, 2)
        time.sleep(0.3)
        os.kill(s.p.pid, signal.SIGTERM)
        rc, dt = wait_exit(s, 15)
        eq(rc, 0, 'exit status after the bound')
        check(1.5 < dt < 6, f'stopped after {dt:.1f} s, not about 2 s')
        log = s.serve_log()
        check('1 worker(s) still hold 2 notice(s)' in log, log)
        eq(sorted(statuses(s).values()), ['sending', 'sending'], 'left in flight')
        stuck.stop()  # before its stall ends: it never stored them
        fast = SMTPServer()
        point_at(s, fast)
        s.start()
        check('2 notice(s) were in flight' in s.serve_log(), s.serve_log())
        wait_all_final(s, 2)
        eq(s.stop(), 0)
        check_events(s, ids)
        eq(check_copies(s, ids, sink_copies(fast)), 0, 'twice')
        check_log(s)
        check_serve_log(s)
    finally:
        s.cleanup()
        stuck.stop()
        if fast:
            fast.stop()


@test
def second_signal_exits_at_once():
    slow = SMTPServer('--stall', '3')
    s = relay_selo(slow, sender={'workers': '1', 'batch': '2', 'stop_timeout': '30'})
    fast = None
    try:
        s.start()
        ids = submit(s, items(2, 'S'))
        wait_sending(s, 2)
        time.sleep(0.3)
        os.kill(s.p.pid, signal.SIGTERM)
        time.sleep(0.5)
        check(s.p.poll() is None, 'the first signal waits for the session')
        os.kill(s.p.pid, signal.SIGTERM)
        rc, dt = wait_exit(s, 5)
        eq(rc, 128 + signal.SIGTERM, 'exit status after a second signal')
        check(dt < 1.5, f'second signal took {dt:.1f} s')
        check('signal 15 again: exiting now' in s.serve_log(), s.serve_log())
        # aiosmtpd drops a transaction whose client left before the reply; a
        # server that kept it would hold a first copy, the resend a second.
        fast = SMTPServer()
        point_at(s, fast)
        s.start()
        wait_all_final(s, 2)
        eq(s.stop(), 0)
        check_events(s, ids)
        caught = {nid: 1 for nid in ids}
        twice = check_copies(s, ids, sink_copies(slow, fast), caught)
        print(f'    second signal: {twice} of 2 notices arrived twice', flush=True)
        check_log(s)
        check_serve_log(s)
    finally:
        s.cleanup()
        slow.stop()
        if fast:
            fast.stop()


@test
def second_serve_on_the_same_data_is_refused():
    s = Selo().start()
    try:
        t0 = time.time()
        rc, out, err = run(['serve', '--data', s.data])
        eq(rc, 2, f'second serve: {err}')
        check(f'another selo serve (pid {s.p.pid}) is running' in err, err)
        check(time.time() - t0 < 10, 'refused at once')
        eq(curl('GET', s.url + '/healthz')[0], 200, 'the first one goes on')
        eq(s.stop(), 0)
        check_serve_log(s)
    finally:
        s.cleanup()


def kill9(s, caught):
    """SIGKILL, then note which notices the crash caught in `sending`."""
    os.kill(s.p.pid, signal.SIGKILL)
    s.p.wait()
    s.stop()
    inflight = [nid for (nid,) in query(s, "SELECT id FROM notices WHERE status = 'sending'")]
    for nid in inflight:
        caught[nid] += 1
    return inflight


def settled(s, nids):
    """The notices a crash caught have their outcome (after the restart)."""
    if not nids:
        return True
    (n,), = query(s, f'SELECT count(*) FROM notices WHERE id IN ({sql_list(nids)}) AND '
                     "status NOT IN ('relayed', 'delivered', 'failed')")
    return int(n) == 0


def submit_killed(s, notices, key, delay):
    """Posts a batch in a thread and returns after `delay` seconds, for a
    kill during it (before, inside or after its commit); after the restart
    the same Idempotency-Key returns every item, stored once, whatever the
    kill interrupted."""
    first = {}

    def post():
        try:
            first['ids'] = submit(s, notices, key)
        except Exception as e:  # the kill cut the request
            first['error'] = str(e)
    t = threading.Thread(target=post)
    t.start()
    time.sleep(delay)
    return t, first


@test
def chaos_kill9_while_sending():
    seed = int(os.environ.get('SELO_CHAOS_SEED') or random.SystemRandom().randrange(1 << 31))
    rng = random.Random(seed)
    total = 200 if SAN else 500
    # After the one during a submission; each kill costs a round of resends,
    # which 200 notices only have room for a few times.
    kills = 5 if SAN else 5 + rng.randrange(3)
    print(f'    chaos: seed {seed} (SELO_CHAOS_SEED={seed} replays it), {total} notices, '
          f'{kills + 1} kills', flush=True)
    # 10 ms per message at the sink keeps them going out for a few seconds.
    sink = SMTPServer('--stall', '0.01')
    # Small batches: a crash catches at most 8 notices in flight, and their
    # resends (which must finish before the next kill) take one short round.
    s = relay_selo(sink, sender={'workers': '4', 'batch': '2'})
    caught = collections.Counter()
    notes = []
    try:
        s.start()
        half = total // 2
        t0 = time.time()
        ids = submit(s, items(half, 'A'), 'chaos-a')
        took = time.time() - t0  # the kill below falls within such a request
        wait_until(lambda: done(s) >= 10, 60, 0.02, 'the first notices to go out')
        batch_b = items(total - half, 'B')
        t, first = submit_killed(s, batch_b, 'chaos-b', rng.uniform(0, took * 1.2))
        inflight = kill9(s, caught)
        t.join()
        s.start()
        replayed = []
        ids_b = submit(s, batch_b, 'chaos-b', replayed)
        # One transaction: the whole batch was stored before the kill, or none.
        check(len(set(replayed)) == 1, 'a batch stored in part')
        if 'ids' in first:
            eq(ids_b, first['ids'], 'the retried batch returns the first ids')
            check(all(replayed), 'an answered batch is replayed')
        how = ('answered' if 'ids' in first else
               'committed, unanswered' if replayed[0] else 'before its commit')
        notes.append(f'during the second batch ({how}): {len(inflight)} in flight')
        ids += ids_b
        eq(len(set(ids)), total, 'distinct ids')
        last = []
        for k in range(kills):
            # Let the previous crash's resends finish first, so that no
            # notice is caught twice (it could then arrive three times).
            # Recovered notices are claimed first: that takes one round.
            wait_until(lambda: settled(s, last), 60, 0.02, 'the resends to finish')
            # A random moment within this kill's share of what is left.
            base = done(s)
            check(base < total - 1, f'nothing left to send before kill {len(notes) + 1}; '
                                    f'seed {seed}; kills so far: {"; ".join(notes)}')
            target = base + rng.randint(1, max(1, (total - base) // (kills - k + 1)))
            wait_until(lambda: done(s) >= target, 60, 0.01, f'{target} notices out')
            time.sleep(rng.uniform(0, 0.03))
            at = done(s)
            check(at < total, f'every notice went out before kill {len(notes) + 1}; '
                              f'seed {seed}; kills so far: {"; ".join(notes)}')
            last = kill9(s, caught)
            notes.append(f'at {at}/{total}: {len(last)} in flight')
            s.start()
        wait_all_final(s, total, 120)
        st = states(s)
        eq(st.get('queued', 0) + st.get('sending', 0) + st.get('deferred', 0), 0, f'{st}')
        eq(s.stop(), 0, 'graceful stop at the end')
        print('    chaos: kills ' + '; '.join(notes), flush=True)
        final = collections.Counter(statuses(s).values())
        eq(final['relayed'] + final['failed'], total, f'final states {final}')
        check_events(s, ids)
        copies = sink_copies(sink)
        twice = check_copies(s, ids, copies, caught)
        print(f'    chaos: {twice} of {total} notices reached the sink twice '
              f'({sum(caught.values())} caught in flight by {len(notes)} kills); '
              f'none more than twice', flush=True)
        check_log(s)
        check_serve_log(s)
    finally:
        s.cleanup()
        sink.stop()


if __name__ == '__main__':
    main()
