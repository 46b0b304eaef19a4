#!/usr/bin/python3
"""Key rotation (issue 18, part 6; docs/keys.md), through the real binary.

DKIM: `selo keys rotate dkim` makes a pending selector and prints its
records; messages keep the old selector until `--activate` and a restart;
then the new one signs. dkimpy (not our code) verifies messages signed
before, during and after, with a DNS function serving the records that
`selo keys dns dkim` prints; `selo keys retire dkim` refuses before the
overlap and then deletes the old private keys, the record staying printable.

S/MIME and TSA: `selo keys rotate smime|tsa` make new certificates under the
same CA; a JSON and a PDF receipt exported before still verify afterwards
with `selo verify`, `openssl cms -verify` (the .eml) and `openssl ts -verify`
(the checkpoint's timestamp), and so do new ones, signed by the new keys.

Webhooks: POST /v1/webhooks/{id}/rotate-secret; during the overlap each
delivery carries two v1 signatures, and a receiver knowing only the new
secret and one knowing only the old both verify; after the overlap only the
new one does."""
import base64, hashlib, json, os, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dkim
import selotest
from selotest import *  # noqa: F401,F403
_before = len(selotest._tests)
from test_webhooks import Receiver, register, verify_signature, FAST  # noqa: E402
del selotest._tests[_before:]  # its helpers, not its tests

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'João da Silva',
          'subject': 'Aviso de cobrança', 'text': 'Olá, sua fatura venceu.',
          'reference': 'ROT-1'}
DOMAIN = 'cobranca.example'


def keys(s, *args, rc=0):
    return run(['keys', *args, '--data', s.data], check_rc=rc)


def zone_records(text):
    """{name.: value} from zone lines `NAME IN TXT "a" "b"` (strings joined)."""
    out = {}
    for line in text.splitlines():
        if ' IN TXT ' not in line:
            continue
        name, _, rest = line.partition(' IN TXT ')
        parts = [p for i, p in enumerate(rest.split('"')) if i % 2 == 1]
        out[name.encode()] = ''.join(parts).encode()
    return out


def dnsfunc_of(records):
    def dnsfunc(name, timeout=5):
        return records.get(name if name.endswith(b'.') else name + b'.')
    return dnsfunc


def send_and_fetch(s, ref):
    n = dict(NOTICE, reference=ref)
    st, _, j = s.api('POST', '/v1/notices', n)
    eq(st, 202, f'POST notice: {j}')
    nid = j['id']
    s.wait_status(nid, ('delivered', 'relayed'))
    st, _, eml = s.api('GET', f'/v1/notices/{nid}/message')
    eq(st, 200, 'GET message')
    return nid, eml


def selectors_of(eml):
    sigs = email_dkim_headers(eml)
    sels = []
    for h in sigs:
        tags = dict(t.strip().split('=', 1) for t in h.replace('\r\n', '').replace('\t', '')
                    .split(';') if '=' in t)
        sels.append(tags['s'].strip())
    return sorted(sels)


def email_dkim_headers(eml):
    import email
    return [str(h) for h in (email.message_from_bytes(eml).get_all('DKIM-Signature') or [])]


def dkim_all_verify(eml, dnsfunc):
    n = len(email_dkim_headers(eml))
    d = dkim.DKIM(eml)
    return n == 2 and all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n))


@test
def dkim_rotation_keeps_old_messages_verifiable():
    s = Selo().start()
    try:
        _, eml_a = send_and_fetch(s, 'A')
        eq(selectors_of(eml_a), ['selo', 'selo-ed25519'], 'signed with the initial selector')
        s.stop()
        rc, out, _ = keys(s, 'list')
        check(out.startswith('dkim\tselo\tactive\t'), out)
        rc, new_out, err = keys(s, 'rotate', 'dkim', '--selector', 'sel2026')
        new_recs = zone_records(new_out)
        eq(sorted(new_recs), [f'sel2026-ed25519._domainkey.{DOMAIN}.'.encode(),
                              f'sel2026._domainkey.{DOMAIN}.'.encode()], new_out)
        check(b'k=rsa; p=' in new_recs[f'sel2026._domainkey.{DOMAIN}.'.encode()], new_recs)
        keys(s, 'rotate', 'dkim', rc=2)  # one pending at a time
        rc, out, _ = keys(s, 'list')
        check('dkim\tsel2026\tpending\t' in out, out)
        # pending: published, but the old selector still signs
        s.start()
        _, eml_b = send_and_fetch(s, 'B')
        eq(selectors_of(eml_b), ['selo', 'selo-ed25519'], 'pending does not sign')
        s.stop()
        rc, out, _ = keys(s, 'rotate', 'dkim', '--activate')
        eq(out.strip(), 'sel2026')
        s.start()
        _, eml_c = send_and_fetch(s, 'C')
        eq(selectors_of(eml_c), ['sel2026', 'sel2026-ed25519'], 'the new selector signs')
        # the overlap: DNS serves both selectors' records, as `keys dns` prints them
        rc, both, _ = keys(s, 'dns', 'dkim')
        recs = zone_records(both)
        eq(len(recs), 4, both)
        for name, eml in (('A', eml_a), ('B', eml_b), ('C', eml_c)):
            check(dkim_all_verify(eml, dnsfunc_of(recs)), f'message {name} verifies in the overlap')
        only_old = {k: v for k, v in recs.items() if not k.startswith(b'sel2026')}
        check(dkim_all_verify(eml_a, dnsfunc_of(only_old)), 'A with the old records alone')
        check(not dkim_all_verify(eml_c, dnsfunc_of(only_old)), 'C needs the new records')
        # retire: refused inside the overlap, then done with --force
        rc, _, err = keys(s, 'retire', 'dkim', 'selo', rc=2)
        check('--force' in err, err)
        keys(s, 'retire', 'dkim', 'sel2026', rc=2)  # the active one, never
        keys(s, 'retire', 'dkim', 'nosuch', rc=1)
        keys(s, 'retire', 'dkim', 'selo', '--force')
        check(not os.path.exists(os.path.join(s.data, 'keys', 'dkim-rsa.pem')), 'old RSA key gone')
        check(not os.path.exists(os.path.join(s.data, 'keys', 'dkim-ed25519.pem')), 'old Ed key gone')
        rc, out, _ = keys(s, 'list')
        check('dkim\tselo\tretired\t' in out and 'dkim\tsel2026\tactive\t' in out, out)
        rc, published, _ = keys(s, 'dns', 'dkim')
        eq(sorted(zone_records(published)), sorted(new_recs), 'only the new records to publish')
        rc, old_txt, _ = keys(s, 'dns', 'dkim', 'selo')
        eq(zone_records(old_txt), only_old, "the retired selector's records stay printable")
        # a restart after retiring still signs with the new selector
        s.stop()
        s.start()
        _, eml_d = send_and_fetch(s, 'D')
        eq(selectors_of(eml_d), ['sel2026', 'sel2026-ed25519'])
        check(dkim_all_verify(eml_d, dnsfunc_of(new_recs)), 'D verifies with the new records')
        check(dkim_all_verify(eml_a, dnsfunc_of(only_old)), 'A still verifies with the old ones')
    finally:
        s.cleanup()


def fetch(s, path, what):
    def get():
        st, _, body = s.api('GET', path)
        return body if st == 200 else None
    return wait_until(get, 30, 0.2, what)


def receipts_of(s, nid, tag):
    """The JSON and PDF receipts of nid, written as files (what a legal team keeps)."""
    j = fetch(s, f'/v1/notices/{nid}/receipt', 'a receipt')
    pdf = fetch(s, f'/v1/notices/{nid}/receipt?format=pdf', 'a PDF receipt')
    check(pdf[:5] == b'%PDF-', 'a PDF')
    jp = os.path.join(s.dir, f'{tag}.json')
    pp = os.path.join(s.dir, f'{tag}.pdf')
    with open(jp, 'w') as f:
        json.dump(j, f)
    with open(pp, 'wb') as f:
        f.write(pdf)
    return jp, pp


def openssl(*args, inp=None):
    p = subprocess.run(['openssl', *args], input=inp, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def verify_offline(s, ca, jp, pp, tag):
    """selo verify on both files, and openssl on the parts, against ca only."""
    vkey = os.path.join(s.data, 'keys', 'log.vkey')
    for f in (jp, pp):
        rc, out, err = run(['verify', f, '--key', vkey, '--tsa-ca', ca])
        eq(rc, 0, f'selo verify {tag} {f}: {out}{err}')
    with open(jp) as f:
        r = json.load(f)
    d = os.path.join(s.dir, tag)
    os.makedirs(d, exist_ok=True)
    eml = os.path.join(d, 'm.eml')
    with open(eml, 'wb') as f:
        f.write(base64.b64decode(r['message']['eml_base64']))
    rc, out = openssl('cms', '-verify', '-in', eml, '-CAfile', ca, '-out', '/dev/null')
    eq(rc, 0, f'openssl cms -verify ({tag}): {out}')
    tok = os.path.join(d, 'tst.der')
    with open(tok, 'wb') as f:
        f.write(base64.b64decode(r['log']['timestamp']))
    chain = os.path.join(d, 'tsa-chain.pem')
    with open(chain, 'w') as f:
        f.write(''.join(r['log']['tsa_certs']))
    digest = hashlib.sha256(r['log']['checkpoint'].encode()).hexdigest()
    rc, out = openssl('ts', '-verify', '-digest', digest, '-in', tok, '-token_in',
                      '-CAfile', ca, '-untrusted', chain)
    eq(rc, 0, f'openssl ts -verify ({tag}): {out}')
    return eml, r


def cert_fingerprint(pem):
    rc, out = openssl('x509', '-noout', '-fingerprint', '-sha256', inp=pem.encode())
    eq(rc, 0, out)
    return out.strip()


def signer_fingerprint(eml):
    rc, out = openssl('cms', '-verify', '-noverify', '-in', eml, '-out', '/dev/null',
                      '-signer', '/dev/stdout')
    i = out.find('-----BEGIN CERTIFICATE-----')
    check(i >= 0, out)
    return cert_fingerprint(out[i:])


@test
def smime_and_tsa_renewal_keep_old_receipts_verifiable():
    s = Selo().start()
    try:
        kd = os.path.join(s.data, 'keys')
        ca = os.path.join(kd, 'ca.crt')
        read = lambda f: open(os.path.join(kd, f)).read()  # noqa: E731
        smime_old, tsa_old = read('smime.crt'), read('tsa.crt')
        nid_old, _ = send_and_fetch(s, 'OLD')
        jp_old, pp_old = receipts_of(s, nid_old, 'old')
        s.stop()
        rc, out, err = keys(s, 'rotate', 'smime')
        eq(out.strip(), os.path.join(kd, 'smime.crt'), err)
        keys(s, 'rotate', 'tsa')
        smime_new, tsa_new = read('smime.crt'), read('tsa.crt')
        check(cert_fingerprint(smime_new) != cert_fingerprint(smime_old), 'a new S/MIME cert')
        check(cert_fingerprint(tsa_new) != cert_fingerprint(tsa_old), 'a new TSA cert')
        archived = sorted(os.listdir(os.path.join(kd, 'archive')))
        eq([a.split('-')[0] for a in archived], ['smime', 'tsa'], archived)
        for f, old in zip(archived, (smime_old, tsa_old)):
            eq(read(os.path.join('archive', f)), old, f'{f} is the old certificate')
        for pem in ('smime.crt', 'tsa.crt'):
            rc, out = openssl('verify', '-CAfile', ca, '-purpose', 'any', os.path.join(kd, pem))
            eq(rc, 0, f'{pem} chains to the same CA: {out}')
        san = lambda pem: openssl('x509', '-noout', '-ext', 'subjectAltName,extendedKeyUsage',  # noqa: E731
                                  inp=pem.encode())[1]
        eq(san(smime_new), san(smime_old), 'the same address and usage')
        check('email:' in san(smime_new) and 'E-mail Protection' in san(smime_new), san(smime_new))
        rc, out = openssl('x509', '-noout', '-ext', 'extendedKeyUsage', '-in',
                          os.path.join(kd, 'tsa.crt'))
        check('critical' in out and 'Time Stamping' in out, out)
        s.start()
        # the files exported before: unchanged, still valid offline
        eml_old, r_old = verify_offline(s, ca, jp_old, pp_old, 'old')
        eq(signer_fingerprint(eml_old), cert_fingerprint(smime_old), 'old mail, old signer')
        check(cert_fingerprint(r_old['log']['tsa_certs'][0]) == cert_fingerprint(tsa_old),
              'the old receipt carries the old TSA certificate')
        # the old notice's receipt exported again, and a new notice's
        jp_again, pp_again = receipts_of(s, nid_old, 'again')
        verify_offline(s, ca, jp_again, pp_again, 'again')
        nid_new, _ = send_and_fetch(s, 'NEW')

        def new_checkpoint():
            jp, pp = receipts_of(s, nid_new, 'new')
            with open(jp) as f:
                r = json.load(f)
            return (jp, pp) if cert_fingerprint(r['log']['tsa_certs'][0]) == \
                cert_fingerprint(tsa_new) else None
        jp_new, pp_new = wait_until(new_checkpoint, 30, 0.3, 'a receipt timestamped by the new TSA')
        eml_new, _ = verify_offline(s, ca, jp_new, pp_new, 'new')
        eq(signer_fingerprint(eml_new), cert_fingerprint(smime_new), 'new mail, new signer')
        # a certificate not issued by Selo's CA is refused, and nothing changes
        os.rename(os.path.join(kd, 'ca.key'), os.path.join(kd, 'ca.key.away'))
        rc, _, err = keys(s, 'rotate', 'smime', rc=2)
        check('ca.key' in err, err)
        eq(read('smime.crt'), smime_new, 'unchanged after a refusal')
    finally:
        s.cleanup()


@test
def webhook_secret_rotation_signs_with_both_during_overlap():
    rcv = Receiver()
    s = Selo(webhooks=dict(FAST)).start()
    try:
        wh = register(s, rcv.url('/h'))
        old = wh['secret']
        st, _, j = s.api('POST', f'/v1/webhooks/{wh["id"]}/rotate-secret',
                         {'overlap_seconds': 'x'})
        eq(st, 422, f'a bad overlap: {j}')
        st, _, j = s.api('POST', '/v1/webhooks/wh_nosuch/rotate-secret', {})
        eq(st, 404, j)
        st, _, j = s.api('GET', f'/v1/webhooks/{wh["id"]}/rotate-secret')
        eq(st, 405, j)
        overlap = 6
        st, _, j = s.api('POST', f'/v1/webhooks/{wh["id"]}/rotate-secret',
                         {'overlap_seconds': overlap})
        t_rot = time.time()
        eq(st, 200, f'rotate: {j}')
        new = j['secret']
        check(new.startswith('whsec_') and new != old, 'a new whsec_ secret')
        check(j['previous_secret_expires_at'].endswith('Z'), j)
        st, _, g = s.api('GET', f'/v1/webhooks/{wh["id"]}')
        eq(g.get('previous_secret_expires_at'), j['previous_secret_expires_at'])
        check('secret' not in g, 'GET never shows a secret')
        n = dict(NOTICE, reference='WH-1')
        st, _, nj = s.api('POST', '/v1/notices', n)
        eq(st, 202, nj)
        wait_until(lambda: len(rcv.delivered('/h')) >= 2, 30, 0.1, 'deliveries in the overlap')
        during = [r for r in rcv.on('/h') if int(r['ts']) < t_rot + overlap - 1]
        check(during, 'deliveries inside the overlap')
        for r in during:
            v1 = [p for p in r['sig'].split(' ') if p.startswith('v1,')]
            eq(len(v1), 2, f'two v1 signatures: {r["sig"]}')
            for secret, who in ((new, 'new'), (old, 'old')):
                check(verify_signature(secret, r['id'], r['ts'], r['body'], r['sig']),
                      f'a receiver knowing only the {who} secret verifies')
        # after the overlap: only the new secret
        time.sleep(max(0, t_rot + overlap + 1 - time.time()))
        seen = len(rcv.on('/h'))
        st, _, nj = s.api('POST', '/v1/notices', dict(NOTICE, reference='WH-2'))
        eq(st, 202, nj)
        wait_until(lambda: any(r['json']['data']['notice'] == nj['id'] for r in rcv.on('/h')[seen:]),
                   30, 0.1, 'deliveries after the overlap')
        after = [r for r in rcv.on('/h')[seen:]]
        for r in after:
            v1 = [p for p in r['sig'].split(' ') if p.startswith('v1,')]
            eq(len(v1), 1, f'one v1 signature after the overlap: {r["sig"]}')
            check(verify_signature(new, r['id'], r['ts'], r['body'], r['sig']), 'new verifies')
            check(not verify_signature(old, r['id'], r['ts'], r['body'], r['sig']),
                  'the old secret no longer verifies')
        st, _, g = s.api('GET', f'/v1/webhooks/{wh["id"]}')
        check('previous_secret_expires_at' not in g, g)
        # the default overlap is 24 h, and an empty body is accepted
        st, _, j = s.api('POST', f'/v1/webhooks/{wh["id"]}/rotate-secret')
        eq(st, 200, j)
        exp = time.mktime(time.strptime(j['previous_secret_expires_at'][:19],
                                        '%Y-%m-%dT%H:%M:%S')) - time.timezone
        check(abs(exp - time.time() - 86400) < 120, j)
    finally:
        s.cleanup()
        rcv.stop()


if __name__ == '__main__':
    main()
