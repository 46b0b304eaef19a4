#!/usr/bin/python3
"""Suppression (issue 9 part 4, docs/api.md "Suppressions"): `selo serve` in
relay mode hands notices to the test SMTP server; a 550 5.1.1 RCPT reply
fails a notice hard and suppresses its address for the sending key (listed
with its reason), as does the mx transport's NXDOMAIN or null MX (a test DNS
server on loopback); a new notice of that key to the address, in any case,
is refused 422 "suppressed" and nothing is queued, alone or in a batch;
another key still sends; 451 and 550 5.7.1 do not suppress; DELETE lifts it;
a DSN with 5.1.1 fed to `selo bounce` suppresses too."""
import json, os, shutil, subprocess, sys, tempfile, urllib.parse
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

ADDR = 'Ana.Silva@Destino.Example'


def notice(to, ref='FAT-SUP'):
    return {'to': to, 'subject': 'Aviso de cobrança', 'text': 'Sua fatura venceu.',
            'reference': ref}


def relay_to(s, server):
    """Points the running (or not yet started) Selo at another SMTP server."""
    s.stop()
    s.conf['smtp'] = {'mode': 'relay', 'relay': f'127.0.0.1:{server.port}', 'starttls': 'no',
                      'timeout_ms': '5000'}
    s.write_conf()
    s.start()


def post(s, to, key=None, status=None):
    st, _, j = s.api('POST', '/v1/notices', notice(to), key=key)
    if status is not None:
        eq(st, status, f'POST to {to}: {j}')
    return st, j


def suppressions(s, key=None, query=''):
    st, _, j = s.api('GET', '/v1/suppressions' + query, key=key)
    eq(st, 200, f'GET /v1/suppressions: {j}')
    return j


def count_notices(s, key=None):
    st, _, j = s.api('GET', '/v1/notices?limit=1000', key=key)
    eq(st, 200)
    return len(j['notices'])


def check_refused(j, first_id):
    check(j['type'].endswith(':suppressed'), f'type names suppression: {j}')
    eq(j['status'], 422)
    d = j['detail']
    check(first_id in d and '5.1.1' in d and 'no such user' in d, f'detail says why: {d}')
    check(d.count('-') >= 2 and 'T' in d, f'detail says when: {d}')
    eq([e['field'] for e in j.get('errors', [])], ['to'], 'per-field error on to')


@test
def hard_bounce_suppresses_for_the_key_until_deleted():
    bad = SMTPServer('--rcpt-reply', '550:5.1.1 no such user')
    good = SMTPServer()
    s = Selo()
    try:
        relay_to(s, bad)
        _, j = post(s, ADDR, status=202)
        first = j['id']
        n = s.wait_status(first, ['failed'])
        check('5.1.1' in (n['last_error'] or ''), n['last_error'])
        lst = suppressions(s)
        eq(len(lst['suppressions']), 1, f'one suppression: {lst}')
        sup = lst['suppressions'][0]
        eq(sup['address'], 'Ana.Silva@destino.example', 'domain lowercased, local part kept')
        eq((sup['enhanced'], sup['notice_id']), ('5.1.1', first))
        check('no such user' in sup['reason'] and sup['created_at'], sup)
        eq(lst['next'], None)

        # the same address in other cases: refused, nothing queued
        before = count_notices(s)
        for to in ('ana.silva@destino.example', 'ANA.SILVA@DESTINO.EXAMPLE', ADDR):
            st, j = post(s, to)
            eq(st, 422, f'{to}: {j}')
            check_refused(j, first)
        eq(count_notices(s), before, 'nothing new in GET /v1/notices')

        # a batch: the suppressed notice is refused, the other accepted
        st, _, j = s.api('POST', '/v1/notices/batch',
                         {'notices': [notice('ana.silva@destino.example'),
                                      notice('outro@destino.example')]})
        eq(st, 200, f'batch: {j}')
        eq((j['accepted'], j['rejected']), (1, 1), f'batch counts: {j}')
        check_refused(j['results'][0]['error'], first)
        check('id' in j['results'][1], j)
        eq(count_notices(s), before + 1, 'only the other notice queued')
        s.wait_status(j['results'][1]['id'], ['failed'])  # it bounces too, before the switch

        # another key still sends to it, and sees none of the first key's
        rc, key2, _ = run(['apikey', 'create', 'outro', '--data', s.data], check_rc=0)
        key2 = key2.strip()
        eq(suppressions(s, key=key2)['suppressions'], [], 'a key sees only its own')
        relay_to(s, good)
        _, j = post(s, ADDR, key=key2, status=202)
        nid2 = j['id']
        wait_until(lambda: s.api('GET', f'/v1/notices/{nid2}', key=key2)[2]['status'] ==
                   'relayed', 30, 0.1, "the other key's notice to be relayed")

        # DELETE (URL-encoded, any case) lifts it; the next notice is accepted
        path = '/v1/suppressions/' + urllib.parse.quote('ANA.silva@destino.example', safe='')
        st, _, _ = s.api('DELETE', path, key=key2)
        eq(st, 404, "another key cannot delete it")
        st, _, _ = s.api('DELETE', path)
        eq(st, 204, 'deleted')
        st, _, j = s.api('DELETE', path)
        eq(st, 404, f'already deleted: {j}')
        left = [x['address'] for x in suppressions(s)['suppressions']]
        eq(left, ['outro@destino.example'], 'only the batch notice that bounced too')
        _, j = post(s, ADDR, status=202)
        s.wait_status(j['id'], ['relayed'])
    finally:
        s.cleanup()
        bad.stop()
        good.stop()


@test
def soft_and_policy_failures_do_not_suppress():
    soft = SMTPServer('--rcpt-reply', '451:4.2.0 try again later')
    policy = SMTPServer('--rcpt-reply', '550:5.7.1 rejected by policy')
    s = Selo()
    try:
        relay_to(s, soft)
        _, j = post(s, 'mole@destino.example', status=202)
        s.wait_status(j['id'], ['deferred'])
        relay_to(s, policy)
        _, j = post(s, 'politica@destino.example', status=202)
        n = s.wait_status(j['id'], ['failed'])
        check('5.7.1' in n['last_error'], n['last_error'])
        eq(suppressions(s)['suppressions'], [], 'nothing suppressed')
        post(s, 'politica@destino.example', status=202)
    finally:
        s.cleanup()
        soft.stop()
        policy.stop()


def dsn(verp, message_id, rcpt, status='5.1.1'):
    b = 'B0UND4RY'
    return f"""From: MAILER-DAEMON@relay.cobranca.example (Mail Delivery System)
To: {verp}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"

--{b}
Content-Type: text/plain

<{rcpt}>: 550 {status} User unknown

--{b}
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.cobranca.example

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{rcpt}>: User unknown

--{b}
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
To: {rcpt}
Message-ID: <{message_id}>

--{b}--
""".encode()


@test
def dsn_through_selo_bounce_suppresses():
    good = SMTPServer()
    s = Selo()
    try:
        relay_to(s, good)
        _, j = post(s, 'Bia@Destino.example', status=202)
        nid = j['id']
        n = s.wait_status(nid, ['relayed'])
        env = [e for eml, e in good.messages() if n['message_id'].encode() in eml][0]
        p = subprocess.run([SELO, 'bounce', '--data', s.data, '--rcpt', env['mail_from']],
                           input=dsn(env['mail_from'], n['message_id'], 'bia@destino.example'),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        eq(p.returncode, 0, f'selo bounce: {p.stderr.decode()}')
        lst = suppressions(s)['suppressions']
        eq(len(lst), 1, f'suppressed by the DSN: {lst}')
        eq((lst[0]['address'], lst[0]['enhanced'], lst[0]['notice_id']),
           ('Bia@destino.example', '5.1.1', nid))
        check(lst[0]['reason'].startswith('bounced (5.1.1)'), lst[0])
        st, j = post(s, 'bia@DESTINO.example')
        eq(st, 422, f'{j}')
        check(j['type'].endswith(':suppressed') and nid in j['detail'], j)
        # paging: limit 1 gives a cursor, and the page after it is empty
        _, j = post(s, 'caio@destino.example', status=202)
        lst = suppressions(s, query='?limit=1')
        eq(lst['suppressions'][0]['address'], 'Bia@destino.example')
        check(lst['next'], lst)
        eq(suppressions(s, query='?limit=1&after=' + lst['next'])['suppressions'], [])
        st, _, _ = s.api('GET', '/v1/suppressions?after=x')
        eq(st, 400, 'bad cursor')
    finally:
        s.cleanup()
        good.stop()


def dns_server(zone):
    """tests/integration/dnsserver.py serving zone; returns (process, port)."""
    d = tempfile.mkdtemp(prefix='selo-dns-')
    path = os.path.join(d, 'zone.json')
    with open(path, 'w') as f:
        json.dump(zone, f)
    p = spawn([PY, os.path.join(ROOT, 'tests', 'integration', 'dnsserver.py'), path],
              stdout=subprocess.PIPE)
    line = p.stdout.readline().decode()
    check(line.startswith('PORT '), f'dnsserver did not start: {line!r}')
    return p, int(line.split()[1]), d


@test
def mx_transport_no_such_domain_or_null_mx_suppresses():
    p, port, d = dns_server({'nulo.example': {'MX': [[0, '.']]}})
    s = Selo(smtp={'mode': 'mx', 'resolver': f'127.0.0.1:{port}', 'starttls': 'no',
                   'timeout_ms': '3000'})
    try:
        s.start()
        ids = {}
        for to in ('Devedor@NaoExiste.example', 'devedor@nulo.example'):
            _, j = post(s, to, status=202)
            ids[to] = j['id']
            s.wait_status(j['id'], ['failed'])
        got = {x['address']: x for x in suppressions(s)['suppressions']}
        eq(sorted(got), ['Devedor@naoexiste.example', 'devedor@nulo.example'], f'{got}')
        eq(got['Devedor@naoexiste.example']['enhanced'], '5.1.2')
        eq(got['devedor@nulo.example']['enhanced'], '5.1.10')
        check('NXDOMAIN' in got['Devedor@naoexiste.example']['reason'], got)
        st, j = post(s, 'devedor@naoexiste.example')
        eq(st, 422, f'{j}')
    finally:
        s.cleanup()
        stop(p)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
