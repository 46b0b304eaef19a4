#!/usr/bin/python3
"""A damaged database (issue 17, item 8), against the real binary.

One store with a few delivered notices (maildir mode) is made once and
stopped; each test takes a copy of it and flips one byte where a failing
disk or a bad copy would, found with SQLite's dbstat table and the known
bytes of a row, then checks that the damage is detected where it should
be and that no altered byte leaves Selo:

- an index page's header: `selo serve` refuses to start, naming the file,
  what quick_check found and what to do; `selo store check` and `selo log
  verify` exit 1;
- an index entry (quick_check cannot see it): `selo store check` (the full
  integrity_check) exits 1, and GET /message of the notice the entry points
  to answers evidence-damaged, not "not sealed yet";
- an event row (a content_sealed entry): `selo log verify` names the notice;
  GET /message and the receipt refuse it, naming the notice;
- a sealed message's overflow page: GET /message answers 500
  evidence-damaged naming the notice, never the altered bytes; the receipt
  (API and `selo receipt`) refuses; `selo log verify` names the notice;
- a notices row (its message_id): `selo status` and `selo log verify` name
  the notice instead of leaving the value out.
The undamaged store passes every check (no false alarm)."""
import atexit, base64, hashlib, json, os, shutil, sqlite3, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

PAGE = 4096
_base = {}


def base_store():
    """The shared store: 4 delivered notices, serve stopped. Built once."""
    if _base:
        return _base
    s = Selo()
    atexit.register(s.cleanup)
    s.start()
    ids = []
    for i in range(4):
        body = {'to': f'devedor{i}@destino.example', 'subject': f'Aviso {i}',
                'text': f'Prezado devedor {i}, consta em aberto a fatura {i}.',
                'reference': f'fatura-{i}'}
        if i == 1:  # a message many pages long
            body['attachments'] = [{'filename': 'boleto.pdf', 'content_type': 'application/pdf',
                                    'content_base64': base64.b64encode(os.urandom(12000)).decode()}]
        st, _, j = s.api('POST', '/v1/notices', body)
        eq(st, 202, f'POST /v1/notices: {j}')
        ids.append(j['id'])
    for i in ids:
        s.wait_status(i, ('relayed', 'delivered'))
    # every event in a timestamped checkpoint: receipts can be made
    for i in ids:
        wait_until(lambda: s.api('GET', f'/v1/notices/{i}/receipt')[0] == 200, 30, 0.2,
                   f'the receipt of {i}')
    eq(s.stop(), 0, 'selo serve stops cleanly')
    db = os.path.join(s.data, 'selo.db')
    check(not os.path.exists(db + '-wal') or os.path.getsize(db + '-wal') == 0,
          'the stopped store has its WAL checkpointed into selo.db')
    _base.update(selo=s, ids=ids, db=db)
    return _base


class Copy(Selo):
    """A copy of the base store's data directory, served on fresh ports."""

    def __init__(self, name):
        b = base_store()['selo']
        self.dir = tempfile.mkdtemp(prefix=f'selo-damage-{name}-')
        self.data = os.path.join(self.dir, 'data')
        shutil.copytree(b.data, self.data)
        for f in ('serve.lock',):
            p = os.path.join(self.data, f)
            if os.path.exists(p):
                os.unlink(p)
        self.domain, self.key = b.domain, b.key
        self.conf = json.loads(json.dumps(b.conf))
        self.api_port, self.track_port = free_port(), free_port()
        self.conf['api']['listen'] = f'127.0.0.1:{self.api_port}'
        self.conf['track']['listen'] = f'127.0.0.1:{self.track_port}'
        self.conf['track']['base_url'] = f'http://127.0.0.1:{self.track_port}'
        self.write_conf()
        self.p = self.log = None
        self.db = os.path.join(self.data, 'selo.db')


def pages(db, name, ptype):
    c = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    try:
        return [p for (p,) in c.execute('SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ?'
                                        ' ORDER BY pageno', (name, ptype))]
    finally:
        c.close()


def query(db, sql, *args):
    c = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def flip(db, offset, mask=0x01):
    with open(db, 'r+b') as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def find_in_pages(db, needle, page_list):
    """The file offset of needle inside one of the pages, or None."""
    with open(db, 'rb') as f:
        data = f.read()
    for p in page_list:
        at = data.find(needle, (p - 1) * PAGE, p * PAGE)
        if at >= 0 and at + len(needle) <= p * PAGE:
            return at
    return None


def damaged_problem(s, path, nid):
    """GET path answers 500 evidence-damaged naming nid; returns the body."""
    st, hd, body = s.api('GET', path)
    eq(st, 500, f'GET {path}: {body!r}'[:300])
    check('problem+json' in hd.get('content-type', ''), f'GET {path}: {hd}')
    check(body['type'].endswith('evidence-damaged'), f'GET {path}: {body}')
    check(nid in body['detail'], f'GET {path} names the notice: {body}')
    return body


def message_ok(s, nid):
    st, hd, body = s.api('GET', f'/v1/notices/{nid}/message')
    eq(st, 200, f'GET message of {nid}')
    eq(hashlib.sha256(body).hexdigest(), hd['x-selo-sha256'], 'the served bytes hash to the digest')


def log_verify(s, *names):
    """selo log verify exits 1 and names each notice in a FAIL line."""
    rc, out, err = run(['log', 'verify', '--data', s.data])
    eq(rc, 1, f'selo log verify: {out} {err}')
    check('verdict: MISMATCH' in out, out)
    fails = [l for l in out.splitlines() if l.startswith('FAIL')]
    for n in names:
        check(any(n in l for l in fails), f'selo log verify names {n}: {out}')
    return out


@test
def sound_store_passes_every_check():
    s = Copy('sound')
    try:
        rc, out, err = run(['store', 'check', '--data', s.data])
        eq(rc, 0, f'selo store check: {out} {err}')
        check('verdict: SOUND' in out and 'FAIL' not in out, out)
        rc, out, err = run(['log', 'verify', '--data', s.data])
        eq(rc, 0, f'selo log verify: {out} {err}')
        check('4 notices: every row decodes' in out, out)
        for nid in base_store()['ids']:
            eq(run(['status', nid, '--data', s.data])[0], 0, f'selo status {nid}')
        s.start()
        check('quick_check' in s.serve_log_all(), 'serve logs its start-up check')
        for nid in base_store()['ids']:
            message_ok(s, nid)
    finally:
        s.cleanup()


@test
def index_page_damage_refuses_start():
    s = Copy('index')
    try:
        pg = pages(s.db, 'sqlite_autoindex_messages_1', 'leaf')[0]
        flip(s.db, (pg - 1) * PAGE)  # the page's type byte
        p = spawn([SELO, 'serve', '--data', s.data], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stop(p)
            raise Fail('selo serve started on a damaged store')
        err = err.decode()
        check(p.returncode != 0, f'selo serve exits non-zero: {p.returncode}')
        check('refusing to start' in err and s.db in err, err)
        check(f'Page {pg}' in err, f'the quick_check finding is shown: {err}')
        check('backup' in err and 'selo store check' in err, f'says what to do: {err}')
        rc, out, _ = run(['store', 'check', '--data', s.data, '--quick'])
        eq(rc, 1, f'selo store check --quick: {out}')
        check(f'FAIL the database file: Page {pg}' in out or 'FAIL the database file' in out, out)
        rc, out, _ = run(['log', 'verify', '--data', s.data])
        eq(rc, 1, f'selo log verify: {out}')
    finally:
        s.cleanup()


@test
def index_entry_damage_found_by_full_check():
    s = Copy('index-entry')
    try:
        ids = base_store()['ids']
        victim = ids[2]
        pg = pages(s.db, 'sqlite_autoindex_messages_1', 'leaf')[0]
        at = find_in_pages(s.db, victim.encode(), [pg])
        check(at is not None, 'the notice id is in the index page')
        flip(s.db, at + len(victim) - 1)  # the key now names no notice
        rc, out, _ = run(['store', 'check', '--data', s.data, '--quick'])
        eq(rc, 0, f'quick_check cannot see an index entry: {out}')
        rc, out, _ = run(['store', 'check', '--data', s.data])
        eq(rc, 1, f'selo store check (integrity_check): {out}')
        check('sqlite_autoindex_messages_1' in out, out)
        check(any(victim in l for l in out.splitlines() if l.startswith('FAIL')),
              f'the evidence check names the notice: {out}')
        s.start()
        damaged_problem(s, f'/v1/notices/{victim}/message', victim)
        message_ok(s, ids[0])
    finally:
        s.cleanup()


@test
def event_row_damage_named_and_withheld():
    s = Copy('event')
    try:
        ids = base_store()['ids']
        victim = ids[3]
        (entry,) = query(s.db, "SELECT entry FROM events WHERE notice_id = ? AND"
                         " type = 'content_sealed'", victim)[0]
        at = find_in_pages(s.db, entry[:200], pages(s.db, 'events', 'leaf'))
        check(at is not None, 'the content_sealed entry is in an events page')
        flip(s.db, at + entry.index(b'"size":') + 8)  # a digit of the sealed size
        out = log_verify(s, victim)
        check('content_sealed' in out, out)
        s.start()
        damaged_problem(s, f'/v1/notices/{victim}/message', victim)
        damaged_problem(s, f'/v1/notices/{victim}/receipt', victim)
        message_ok(s, ids[0])
        eq(s.api('GET', f'/v1/notices/{ids[0]}/receipt')[0], 200, 'a sound notice keeps its receipt')
    finally:
        s.cleanup()


@test
def overflow_page_damage_never_served():
    s = Copy('overflow')
    try:
        ids = base_store()['ids']
        victim = ids[1]
        (eml,) = query(s.db, 'SELECT eml FROM messages WHERE notice_id = ?', victim)[0]
        check(len(eml) > 3 * PAGE, f'the message spans pages ({len(eml)} bytes)')
        chunk = eml[2 * PAGE:2 * PAGE + 64]
        at = find_in_pages(s.db, chunk, pages(s.db, 'messages', 'overflow'))
        check(at is not None, 'the message bytes are on an overflow page')
        flip(s.db, at + 10)
        altered = chunk[:10] + bytes([chunk[10] ^ 1]) + chunk[11:]
        s.start()
        body = damaged_problem(s, f'/v1/notices/{victim}/message', victim)
        check(altered.decode('latin-1') not in json.dumps(body), 'no altered byte in the answer')
        damaged_problem(s, f'/v1/notices/{victim}/receipt', victim)
        st, _, b = s.api('GET', f'/v1/notices/{victim}/receipt?format=pdf')
        eq(st, 500, 'the PDF receipt is refused too')
        message_ok(s, ids[0])
        s.stop()
        out_json = os.path.join(s.dir, 'r.json')
        rc, out, err = run(['receipt', victim, '--data', s.data, '-o', out_json])
        eq(rc, 2, f'selo receipt: {err}')
        check(victim in err, f'selo receipt names the notice: {err}')
        check(not os.path.exists(out_json), 'no receipt file written')
        log_verify(s, victim)
        rc, out, _ = run(['store', 'check', '--data', s.data, '--quick'])
        eq(rc, 0, f'the pages are sound to SQLite: {out}')
        rc, out, _ = run(['store', 'check', '--data', s.data])
        eq(rc, 1, f'selo store check: {out}')
    finally:
        s.cleanup()


@test
def a_damaged_message_is_never_sent_again():
    # a notice recovered after a crash (or deferred) is sent again from its
    # stored bytes: damaged ones must not leave, and the notice says why
    s = Copy('resend')
    try:
        victim = base_store()['ids'][1]
        (eml,) = query(s.db, 'SELECT eml FROM messages WHERE notice_id = ?', victim)[0]
        chunk = eml[2 * PAGE:2 * PAGE + 64]
        at = find_in_pages(s.db, chunk, pages(s.db, 'messages', 'overflow'))
        check(at is not None, 'the message bytes are on an overflow page')
        flip(s.db, at + 10)
        c = sqlite3.connect(s.db)
        c.execute("UPDATE notices SET status = 'queued' WHERE id = ?", (victim,))
        c.commit()
        c.close()
        outbox = os.path.join(s.data, 'outbox', 'new')
        before = set(os.listdir(outbox))
        s.start()
        j = s.wait_status(victim, ['failed'])
        check('damaged' in json.dumps(j), f'the notice says why: {j}')
        eq(set(os.listdir(outbox)), before, 'nothing was sent again')
    finally:
        s.cleanup()


@test
def notices_row_damage_not_silent():
    s = Copy('row')
    try:
        ids = base_store()['ids']
        victim = ids[0]
        (mid,) = query(s.db, 'SELECT message_id FROM notices WHERE id = ?', victim)[0]
        at = find_in_pages(s.db, mid.encode(), pages(s.db, 'notices', 'leaf'))
        check(at is not None, 'the message_id is in a notices page')
        flip(s.db, at + 5, 0x80)  # no longer UTF-8: JSON writers drop such text
        rc, out, err = run(['status', victim, '--data', s.data])
        check(rc == 2 and victim in err, f'selo status: rc {rc}, {out} {err}')
        eq(out, '', 'no document with a value missing')
        eq(run(['status', ids[2], '--data', s.data])[0], 0, 'a sound notice shows')
        log_verify(s, victim)
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
