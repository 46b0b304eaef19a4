#!/usr/bin/python3
"""Backups that restore (issue 18, section 5), through the real binary:
`selo backup` taken while `selo serve` takes a 500-notice load relayed to a
real SMTP sink; `selo restore` into a new directory; `selo log verify` on it;
receipts exported before the backup still verify with the restored keys; a
`selo serve` on the restored directory continues the same log (its next
checkpoint extends the backup's last one: the first N leaves' root, from the
public tiles, is the backup checkpoint's root); and the refusals, each exit 2
with a message and nothing changed: a non-empty directory, damaged or hostile
archives, an output path that cannot be written."""
import base64, hashlib, http.client, io, json, os, shutil, subprocess, sys, tarfile, tempfile
import threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'Maria Souza', 'template': 'vencimento',
          'reference': 'CTR-BKP',
          'vars': {'nome': 'Maria Souza', 'valor': 99.9, 'vencimento': '2026-12-10',
                   'credor': 'Financeira Exemplo S.A.'}}
LOAD = 500
THREADS = 4


def relay_conf(smtp):
    return {'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}


def fetch_receipt(s, nid, timeout=30):
    def get():
        st, _, body = s.api('GET', f'/v1/notices/{nid}/receipt')
        if st == 503:
            return None
        eq(st, 200, f'GET receipt: {body}')
        return body
    return wait_until(get, timeout, 0.2, 'a receipt')


def verify(receipt_path, keys_dir):
    return run(['verify', receipt_path, '--key', os.path.join(keys_dir, 'log.vkey'),
                '--tsa-ca', os.path.join(keys_dir, 'ca.crt')])


class Load:
    """THREADS threads POSTing LOAD notices over keep-alive connections."""

    def __init__(self, s):
        self.s, self.ids, self.errors = s, [], []
        self.lock = threading.Lock()
        self.next = 0
        self.threads = [threading.Thread(target=self.worker, daemon=True)
                        for _ in range(THREADS)]

    def take(self):
        with self.lock:
            if self.next >= LOAD:
                return None
            self.next += 1
            return self.next

    def worker(self):
        c = http.client.HTTPConnection('127.0.0.1', self.s.api_port, timeout=60)
        body = json.dumps(NOTICE)
        hdr = {'Authorization': f'Bearer {self.s.key}', 'Content-Type': 'application/json'}
        while self.take() is not None:
            try:
                c.request('POST', '/v1/notices', body, hdr)
                r = c.getresponse()
                data = r.read()
                if r.status != 202:
                    raise RuntimeError(f'{r.status} {data[:200]!r}')
                with self.lock:
                    self.ids.append(json.loads(data)['id'])
            except Exception as e:  # noqa: BLE001 - reported by the test
                with self.lock:
                    self.errors.append(str(e))
                c.close()
                c = http.client.HTTPConnection('127.0.0.1', self.s.api_port, timeout=60)
        c.close()

    def accepted(self):
        with self.lock:
            return len(self.ids)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(300)


def tile_path(n):
    """C2SP tlog-tiles index path: 5 -> 005, 1234 -> x001/234."""
    parts = []
    while True:
        parts.insert(0, n % 1000)
        n //= 1000
        if n == 0:
            break
    return '/'.join([f'x{p:03d}' for p in parts[:-1]] + [f'{parts[-1]:03d}'])


def leaf_hashes(base, size):
    """The first `size` leaf hashes, from the public level-0 tiles."""
    out = b''
    for k in range((size + 255) // 256):
        w = min(256, size - 256 * k)
        path = f'/log/tile/0/{tile_path(k)}' + (f'.p/{w}' if w < 256 else '')
        st, _, data = curl('GET', base + path)
        eq(st, 200, f'GET {path}')
        eq(len(data), 32 * w, f'{path} length')
        out += data
    return [out[i:i + 32] for i in range(0, len(out), 32)]


def mth(h):
    """RFC 9162 Merkle tree hash of leaf hashes h."""
    if len(h) == 1:
        return h[0]
    k = 1
    while k * 2 < len(h):
        k *= 2
    return hashlib.sha256(b'\1' + mth(h[:k]) + mth(h[k:])).digest()


def parse_checkpoint(text):
    lines = text.split('\n')
    sig = [l for l in lines if l.startswith('\u2014 ')]
    check(sig, f'a signature line in {text!r}')
    return {'origin': lines[0], 'size': int(lines[1]), 'root': lines[2],
            # the signer's name and key hash (the signature's first 4 bytes)
            'key': (sig[0].split()[1], base64.b64decode(sig[0].split()[2])[:4])}


class Restored(Selo):
    """`selo serve` on a directory made by `selo restore` (not `selo init`):
    the original's configuration on new ports."""

    def __init__(self, orig, tmpdir, data):
        self.dir, self.data, self.key, self.domain = tmpdir, data, orig.key, orig.domain
        self.api_port, self.track_port = free_port(), free_port()
        self.conf = json.loads(json.dumps(orig.conf))
        self.conf['api']['listen'] = f'127.0.0.1:{self.api_port}'
        self.conf['track']['listen'] = f'127.0.0.1:{self.track_port}'
        self.conf['track']['base_url'] = f'http://127.0.0.1:{self.track_port}'
        self.write_conf()
        self.p = self.log = None


def listing(d):
    return sorted(os.listdir(d))


@test
def backup_under_load_restores_the_same_log():
    smtp = SMTPServer()
    s = Selo(smtp=relay_conf(smtp)).start()
    r = None
    try:
        # receipts exported before the backup: two over the API, one with `selo receipt`
        early = []
        for _ in range(3):
            st, _, j = s.api('POST', '/v1/notices', NOTICE)
            eq(st, 202)
            early.append(j['id'])
        for nid in early:
            s.wait_status(nid, ['relayed'])
        receipts = {}
        for nid in early[:2]:
            receipts[nid] = fetch_receipt(s, nid)
        path = os.path.join(s.dir, 'cli-receipt.json')
        run(['receipt', early[2], '--data', s.data, '-o', path], check_rc=0)
        with open(path) as f:
            receipts[early[2]] = json.load(f)

        load = Load(s)
        load.start()
        wait_until(lambda: load.accepted() >= 100 or load.errors, 120, 0.05,
                   '100 notices accepted')
        eq(load.errors, [], 'load')
        archive = os.path.join(s.dir, 'backups', 'selo.tar.zst')
        os.makedirs(os.path.dirname(archive))
        t0 = time.time()
        rc, out, err = run(['backup', '--data', s.data, '-o', archive])
        took = time.time() - t0
        at_end = load.accepted()
        eq(rc, 0, f'selo backup: {err}')
        check(at_end < LOAD, f'the load was still running when the backup ended ({at_end})')
        manifest = json.loads(out)
        eq(manifest['format'], 'selo-backup/v1')
        eq(manifest['selo_version'], run(['--version'])[1].split()[1], 'the version that wrote it')
        eq(os.stat(archive).st_mode & 0o777, 0o600, 'archive mode')
        eq(listing(os.path.dirname(archive)), ['selo.tar.zst'], 'no temporary file left')
        files = {f['path']: f for f in manifest['files']}
        for name in ('selo.db', 'selo.conf', 'keys/log.key', 'keys/log.vkey', 'keys/token.key',
                     'keys/dkim-rsa.pem', 'keys/smime.pem', 'keys/tsa.pem', 'keys/ca.crt'):
            check(name in files, f'{name} in the manifest')
        eq(files['keys/log.key']['mode'], '0600', 'private key mode')
        with open(os.path.join(s.data, 'keys', 'log.key'), 'rb') as f:
            eq(files['keys/log.key']['sha256'], hashlib.sha256(f.read()).hexdigest())
        log = manifest['log']
        check(log['checkpoint'], 'a checkpoint in the backup')
        cp_backup = parse_checkpoint(log['checkpoint'])
        eq(cp_backup['size'], log['checkpoint_size'])
        check(log['tree_size'] >= cp_backup['size'] >= 9, f'log state {log}')
        print(f'     backup took {took:.2f}s with {at_end} of {LOAD} accepted; tree size '
              f'{log["tree_size"]}, checkpoint {cp_backup["size"]}', flush=True)

        load.join()
        eq(load.errors, [], 'load')
        eq(len(load.ids), LOAD, 'every notice accepted')
        # the serve went on: a notice accepted after the backup is sent
        last = load.ids[-1]
        s.wait_status(last, ['relayed'], timeout=180)
        # what a monitor caches: the public checkpoint, published past the backup
        def published():
            st, _, body = curl('GET', f'http://127.0.0.1:{s.track_port}/log/checkpoint')
            eq(st, 200)
            cp = parse_checkpoint(body.decode())
            return body if cp['size'] > log['tree_size'] else None
        monitor = os.path.join(s.dir, 'monitor-checkpoint')
        with open(monitor, 'wb') as f:
            f.write(wait_until(published, 60, 0.2, 'a checkpoint past the backup'))
        s.stop()

        rdir = tempfile.mkdtemp(prefix='selo-restored-')
        newdir = os.path.join(rdir, 'data')
        # a checkpoint published past the backup: the restored log would fork
        rc, out, err = run(['restore', archive, '--data', newdir, '--seen', monitor])
        eq(rc, 1, f'selo restore --seen (past the backup): {err}')
        check('would fork the log' in err, err)
        eq(listing(rdir), [], 'nothing restored')
        # a checkpoint of another log (another key) is refused
        other = Selo()
        try:
            nfile = os.path.join(other.dir, 'n.json')
            with open(nfile, 'w') as f:
                json.dump(NOTICE, f)
            run(['submit', '--data', other.data, nfile], check_rc=0)
            rc, note, err = run(['log', 'checkpoint', '--data', other.data], check_rc=0)
            foreign = os.path.join(s.dir, 'foreign-checkpoint')
            with open(foreign, 'w') as f:
                f.write(note)
        finally:
            other.cleanup()
        rc, out, err = run(['restore', archive, '--data', newdir, '--seen', foreign])
        eq(rc, 2, f'selo restore --seen (another log): {err}')
        check('not a checkpoint signed by the restored log key' in err, err)
        eq(listing(rdir), [], 'nothing restored')

        # restore, checking the receipts clients hold (all from before the backup)
        seen = []
        for nid, rec in receipts.items():
            p = os.path.join(s.dir, f'seen-{nid}.json')
            with open(p, 'w') as f:
                json.dump(rec, f)
            seen += ['--seen', p]
        rc, out, err = run(['restore', archive, '--data', newdir] + seen)
        eq(rc, 0, f'selo restore: {err}')
        check('each of the 3 checkpoint(s) seen elsewhere is in the restored log' in err, err)
        eq(out, log['checkpoint'], 'restore prints the restored checkpoint')
        check(f'{log["tree_size"]} entries' in err, err)
        eq(listing(rdir), ['data'], 'nothing else beside the restored directory')
        eq(os.stat(os.path.join(newdir, 'keys', 'log.key')).st_mode & 0o777, 0o600)
        eq(os.stat(os.path.join(newdir, 'keys', 'log.vkey')).st_mode & 0o777,
           os.stat(os.path.join(s.data, 'keys', 'log.vkey')).st_mode & 0o777)
        rc, out, err = run(['log', 'verify', '--data', newdir])
        eq(rc, 0, f'selo log verify: {out[-2000:]}{err}')
        check('verdict: CONSISTENT' in out, out[-500:])

        # receipts exported before the backup verify, pinned to the restored keys
        for nid, rec in receipts.items():
            p = os.path.join(rdir, f'{nid}.json')
            with open(p, 'w') as f:
                json.dump(rec, f)
            rc, out, err = verify(p, os.path.join(newdir, 'keys'))
            eq(rc, 0, f'selo verify {nid}: {out}{err}')
            check('verdict: VALID' in out, out)

        # serve on the restored directory: same log, same key, no fork
        r = Restored(s, rdir, newdir).start()
        track = f'http://127.0.0.1:{r.track_port}'
        rc_old = r.api('GET', f'/v1/notices/{early[0]}')[0]
        eq(rc_old, 200, 'a notice from before the backup is there')
        eq(r.api('GET', f'/v1/notices/{last}')[0], 404,
           'a notice accepted after the backup is lost (docs/backup.md)')
        st, _, j = r.api('POST', '/v1/notices', NOTICE)
        eq(st, 202)
        r.wait_status(j['id'], ['relayed'], timeout=120)
        rec = fetch_receipt(r, j['id'])
        p = os.path.join(rdir, 'new.json')
        with open(p, 'w') as f:
            json.dump(rec, f)
        rc, out, err = verify(p, os.path.join(s.data, 'keys'))
        eq(rc, 0, f'the new notice verifies with the original key: {out}{err}')
        cp_new = parse_checkpoint(rec['log']['checkpoint'])
        check(cp_new['size'] > log['tree_size'], f'{cp_new["size"]} > {log["tree_size"]}')
        eq(cp_new['origin'], cp_backup['origin'], 'origin')
        eq(cp_new['key'], cp_backup['key'], 'signed with the same log key')
        leaves = leaf_hashes(track, cp_new['size'])
        eq(base64.b64encode(mth(leaves)).decode(), cp_new['root'], 'the new root from the tiles')
        eq(base64.b64encode(mth(leaves[:cp_backup['size']])).decode(), cp_backup['root'],
           "the new tree's first leaves are the backup checkpoint's tree (no fork)")
        eq(base64.b64encode(mth(leaves[:log['tree_size']])).decode(), log['root_hash'],
           "the backup's whole tree too")
        r.stop()
        # the audit checks each stored checkpoint against the next: backup's last, then new
        rc, out, err = run(['log', 'verify', '--data', newdir])
        eq(rc, 0, f'selo log verify after serving: {out[-2000:]}{err}')
        check('verdict: CONSISTENT' in out, out[-500:])
        shutil.rmtree(rdir, ignore_errors=True)
    finally:
        if r:
            r.stop()
        s.cleanup()
        smtp.stop()


def tar_bytes(members):
    """An uncompressed tar of (TarInfo, data or None)."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.PAX_FORMAT) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return bio.getvalue()


def member(name, data=b'', type_=tarfile.REGTYPE, link='', mode=0o600):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.linkname = type_, mode, link
    ti.size = len(data) if type_ == tarfile.REGTYPE else 0
    return ti, data if type_ == tarfile.REGTYPE else None


def refused(archive, target, why):
    """`selo restore` exits 2 naming why; target and its parent are as before."""
    parent = os.path.dirname(target)
    before = listing(parent)
    target_before = listing(target) if os.path.isdir(target) else None
    rc, out, err = run(['restore', archive, '--data', target])
    eq(rc, 2, f'restore of {os.path.basename(archive)}: {err}')
    check(why in err, f'{why!r} not in {err!r}')
    eq(out, '', 'nothing on stdout')
    eq(listing(parent), before, 'nothing left beside the target')
    if target_before is not None:
        eq(listing(target), target_before, 'the target is as it was')
    return err


@test
def refusals_change_nothing():
    s = Selo()
    try:
        work = os.path.join(s.dir, 'work')
        os.makedirs(work)
        plain = os.path.join(work, 'plain.tar')
        rc, out, err = run(['backup', '--data', s.data, '-o', plain, '--compress', 'none'],
                           check_rc=0)
        manifest = json.loads(out)
        gz = os.path.join(work, 'b.tar.gz')
        run(['backup', '--data', s.data, '-o', gz, '--compress', 'gzip'], check_rc=0)
        run(['restore', gz, '--data', os.path.join(work, 'from-gzip')], check_rc=0)
        with open(plain, 'rb') as f:
            good = f.read()

        # a non-empty directory
        full = os.path.join(work, 'full')
        os.makedirs(full)
        with open(os.path.join(full, 'keep.txt'), 'w') as f:
            f.write('mine')
        refused(plain, full, 'not empty')
        # an empty one is fine, and a second restore into it is refused
        empty = os.path.join(work, 'empty')
        os.makedirs(empty)
        run(['restore', plain, '--data', empty], check_rc=0)
        refused(plain, empty, 'not empty')

        target = os.path.join(work, 'new')
        # a flipped byte inside the database
        with tarfile.open(plain) as t:
            db = t.getmember('selo.db')
        bad = bytearray(good)
        bad[db.offset_data + db.size // 2] ^= 0x01
        p = os.path.join(work, 'flipped.tar')
        with open(p, 'wb') as f:
            f.write(bad)
        refused(p, target, 'selo.db: its SHA-256 differs')
        # truncated, compressed and not
        zst = os.path.join(work, 'b.tar.zst')
        run(['backup', '--data', s.data, '-o', zst], check_rc=0)
        for src in (plain, zst):
            with open(src, 'rb') as f:
                data = f.read()
            p = src + '.cut'
            with open(p, 'wb') as f:
                f.write(data[:len(data) * 2 // 3])
            refused(p, target, 'damaged')
        # no manifest; hostile paths and types; sizes past the bounds
        mtext = json.dumps(manifest).encode()
        cases = {
            'no-manifest': ([member('selo.conf', b'x')], 'not manifest.json'),
            'dotdot': ([member('manifest.json', mtext), member('../evil', b'x')],
                       'unexpected entry'),
            'absolute': ([member('manifest.json', mtext), member('/tmp/evil', b'x')],
                         'unexpected entry'),
            'keys-dotdot': ([member('manifest.json', mtext), member('keys/../../evil', b'x')],
                            'unexpected entry'),
            'symlink': ([member('manifest.json', mtext),
                         member('keys/log.key', type_=tarfile.SYMTYPE, link='/etc/passwd')],
                        'link or special file'),
            'hardlink': ([member('manifest.json', mtext),
                          member('keys/log.key', type_=tarfile.LNKTYPE, link='selo.conf')],
                         'link or special file'),
            'device': ([member('manifest.json', mtext),
                        member('keys/x', type_=tarfile.CHRTYPE)], 'link or special file'),
        }
        huge = json.loads(mtext)
        for f_ in huge['files']:
            if f_['path'] == 'selo.db':
                f_['size'] = 1 << 41
        cases['oversized'] = ([member('manifest.json', json.dumps(huge).encode())],
                              'bad size')
        evil = json.loads(mtext)
        evil['files'].append({'path': '../evil', 'size': 1, 'mode': '0600', 'sha256': '0' * 64})
        cases['manifest-path'] = ([member('manifest.json', json.dumps(evil).encode())],
                                  'unexpected path')
        # an entry larger than the manifest says
        cases['size-mismatch'] = ([member('manifest.json', mtext),
                                   member('selo.conf', b'x' * 5000)], 'size differs')
        for name, (members, why) in cases.items():
            p = os.path.join(work, f'{name}.tar')
            with open(p, 'wb') as f:
                f.write(tar_bytes(members))
            refused(p, target, why)
        check(not os.path.exists(os.path.join(os.path.dirname(work), 'evil')), 'no ../evil')
        check(not os.path.exists('/tmp/evil'), 'no /tmp/evil')
        refused(os.path.join(work, 'missing.tar'), target, 'cannot read')

        # the output path: missing directory, a file as directory, a place nobody writes,
        # an existing file (kept unless --force), a directory; a directory that is not Selo's
        with open(os.path.join(work, 'afile'), 'w') as f:
            f.write('x')
        for out_path, why in [(os.path.join(work, 'nodir', 'b.tar'), 'No such file'),
                              (os.path.join(work, 'afile', 'b.tar'), 'is not a directory'),
                              ('/proc/selo-backup.tar', 'cannot write'),
                              (plain, 'exists; not replaced'),
                              (work, 'not a regular file')]:
            before = listing(work)
            rc, out, err = run(['backup', '--data', s.data, '-o', out_path])
            eq(rc, 2, f'backup -o {out_path}: {err}')
            check(why in err, f'{why!r} not in {err!r}')
            eq(listing(work), before, f'nothing written for -o {out_path}')
        with open(plain, 'rb') as f:
            eq(f.read(), good, 'the existing archive is untouched')
        run(['backup', '--data', s.data, '-o', plain, '--force', '--compress', 'none'],
            check_rc=0)
        rc, out, err = run(['backup', '--data', work, '-o', os.path.join(work, 'x.tar')])
        eq(rc, 2, err)
        check('selo.conf' in err, err)
        rc, out, err = run(['backup', '--data', s.data, '-o', 'x', '--compress', 'lzma'])
        eq(rc, 2, err)
    finally:
        s.cleanup()


@test
def seen_checkpoint_over_events_the_copy_holds():
    """A backup taken before the ledger integrated an event it holds: a
    checkpoint published later over that event is still the restored log's
    (the restored serve integrates it in the same place); one over an event
    the backup does not hold is a fork."""
    s = Selo()
    try:
        nfile = os.path.join(s.dir, 'n.json')
        with open(nfile, 'w') as f:
            json.dump(NOTICE, f)
        run(['submit', '--data', s.data, nfile], check_rc=0)   # 1 event, not integrated
        archive = os.path.join(s.dir, 'b.tar.zst')
        rc, out, err = run(['backup', '--data', s.data, '-o', archive], check_rc=0)
        eq(json.loads(out)['log']['tree_size'], 0, 'nothing integrated at the backup')
        cps = []
        for want in (1, 2):
            # `selo log checkpoint` integrates, and signs at most once a second
            note = wait_until(lambda: (lambda n: n if parse_checkpoint(n)['size'] == want
                                       else None)(run(['log', 'checkpoint', '--data', s.data],
                                                      check_rc=0)[1]),
                              20, 0.3, f'a checkpoint of size {want}')
            p = os.path.join(s.dir, f'cp{len(cps)}')
            with open(p, 'w') as f:
                f.write(note)
            cps.append(p)
            run(['submit', '--data', s.data, nfile], check_rc=0)
        eq(parse_checkpoint(open(cps[0]).read())['size'], 1)
        eq(parse_checkpoint(open(cps[1]).read())['size'], 2)
        target = os.path.join(s.dir, 'r1')
        rc, out, err = run(['restore', archive, '--data', os.path.join(s.dir, 'r0'), '--seen',
                            cps[0]])
        eq(rc, 0, f'a checkpoint over an event the copy holds: {err}')
        rc, out, err = run(['restore', archive, '--data', target, '--seen', cps[1]])
        eq(rc, 1, f'a checkpoint over an event the copy lacks: {err}')
        check('would fork the log' in err, err)
        check(not os.path.exists(target), 'nothing restored')
        # the restored log, served or audited, reaches the first checkpoint's root
        rc, note, err = run(['log', 'checkpoint', '--data', os.path.join(s.dir, 'r0')],
                            check_rc=0)
        eq(parse_checkpoint(note)['root'], parse_checkpoint(open(cps[0]).read())['root'])
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
