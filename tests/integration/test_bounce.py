#!/usr/bin/python3
"""Bounces after acceptance (issue 5, docs/bounces.md): `selo serve` in relay
mode hands a notice to the test SMTP server with the notice's own VERP
envelope sender; a Postfix-style DSN to that address is piped into
`selo bounce`, which records delivery_failed (reason bounced) and sets the
notice failed, once; the event reaches the log and the receipt verifies.
Forged, unknown, delayed, non-DSN and mismatched messages are refused with
a clear message and change nothing. The VERP format is recomputed here from
the documented layout and the token key, independently of the C code."""
import hashlib, hmac, json, os, re, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

CROCK = '0123456789abcdefghjkmnpqrstvwxyz'
VERP_RE = re.compile(r'^cobranca\+([0-9a-z]{42})@cobranca\.example$')

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'João da Silva',
          'subject': 'Aviso de cobrança', 'text': 'Sua fatura venceu.',
          'reference': 'FAT-BOUNCE-1'}


def relay_selo(server):
    return Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{server.port}',
                      'starttls': 'no'}).start()


def verp_for(data, notice_id, local='cobranca', domain='cobranca.example'):
    """docs/bounces.md: local+base32(id || HMAC(key, "selo-verp-v1" || id)[:10])@domain."""
    with open(os.path.join(data, 'keys', 'token.key')) as f:
        key = bytes.fromhex(f.read().strip())
    n = 0
    for c in notice_id.lower():
        n = n * 32 + CROCK.index(c)
    idb = n.to_bytes(16, 'big')
    mac = hmac.new(key, b'selo-verp-v1' + idb, hashlib.sha256).digest()[:10]
    raw = int.from_bytes(idb + mac, 'big') << 2
    token = ''.join(CROCK[(raw >> (5 * (41 - i))) & 31] for i in range(42))
    return f'{local}+{token}@{domain}'


def postfix_dsn(verp, message_id, action='failed', status='5.1.1', rcpt='devedor@destino.example'):
    b = '3F2A1.1764507605/relay.cobranca.example'
    return f"""Return-Path: <>
Delivered-To: {verp}
Date: Mon, 30 Nov 2026 10:00:05 -0300 (BRT)
From: MAILER-DAEMON@relay.cobranca.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{b}"
Content-Transfer-Encoding: 8bit

This is a MIME-encapsulated message.

--{b}
Content-Description: Notification
Content-Type: text/plain; charset=utf-8

This is the mail system at host relay.cobranca.example.

<{rcpt}>: host mx.destino.example[203.0.113.25] said: 550 5.1.1
    <{rcpt}>: Recipient address rejected: User unknown

--{b}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.cobranca.example
X-Postfix-Queue-ID: 3F2A1
Arrival-Date: Mon, 30 Nov 2026 10:00:01 -0300 (BRT)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.destino.example
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address
    rejected: User unknown

--{b}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
From: Cobranca <cobranca@cobranca.example>
To: {rcpt}
Subject: Aviso
Message-ID: <{message_id}>

--{b}--
""".encode()


def bounce(s, msg, *args):
    p = subprocess.run([SELO, 'bounce', '--data', s.data] + list(args), input=msg,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class World:
    """A relay-mode Selo, the SMTP server it hands messages to, one relayed notice."""

    def __init__(self):
        self.smtp = SMTPServer()
        self.s = relay_selo(self.smtp)
        self.id, self.verp, self.msgid = self.send()

    def send(self, **over):
        body = dict(NOTICE, **over)
        st, _, j = self.s.api('POST', '/v1/notices', body)
        eq(st, 202, f'submit: {j}')
        n = self.s.wait_status(j['id'], ['relayed'])
        env = [e for eml, e in self.smtp.messages() if n['message_id'].encode() in eml]
        eq(len(env), 1, 'the relay got the message once')
        return j['id'], env[0]['mail_from'], n['message_id']

    def events(self, nid=None):
        return self.s.notice(nid or self.id)['events']

    def close(self):
        self.s.cleanup()
        self.smtp.stop()


@test
def verp_is_the_envelope_sender_and_a_bounce_is_recorded_once():
    w = World()
    try:
        # the envelope sender names the notice, in the documented format
        check(VERP_RE.match(w.verp), f'MAIL FROM {w.verp!r}')
        eq(w.verp, verp_for(w.s.data, w.id), 'VERP recomputed from docs/bounces.md')
        eml = [m for m, e in w.smtp.messages() if e['mail_from'] == w.verp][0]
        check(b'\nReturn-Path:' not in eml and not eml.startswith(b'Return-Path:'),
              'Selo writes no Return-Path; the receiving MTA does')
        # a second notice gets another address
        id2, verp2, _ = w.send(reference='FAT-BOUNCE-2')
        check(VERP_RE.match(verp2) and verp2 != w.verp, 'one address per notice')

        before = w.events()
        rc, out, err = bounce(w.s, postfix_dsn(w.verp, w.msgid), '--rcpt', w.verp)
        eq(rc, 0, f'selo bounce: {err}')
        eq(out.strip(), w.id, 'prints the notice id')
        check('delivery_failed recorded' in err, err)
        n = w.s.notice(w.id)
        eq(n['status'], 'failed', 'the notice is failed')
        check(n['last_error'].startswith('bounced (5.1.1)'), n['last_error'])
        eq(len(n['events']), len(before) + 1, 'one new event')
        ev = n['events'][-1]
        eq(ev['type'], 'delivery_failed')
        e = ev['entry']
        eq((e['reason'], e['action'], e['status']), ('bounced', 'failed', '5.1.1'))
        eq(e['reporting_mta'], 'dns; relay.cobranca.example')
        eq(e['remote_mta'], 'dns; mx.destino.example')
        eq(e['arrival'], 'Mon, 30 Nov 2026 10:00:01 -0300 (BRT)')
        eq(e['message_id'], w.msgid)
        for k in ('final_recipient', 'original_recipient', 'diagnostic'):
            check(e[k].startswith('sha256:'), f'{k} is a commitment: {e[k]}')
        check('destino.example>' not in json.dumps(e) and 'devedor@' not in json.dumps(e),
              f'no address in the entry: {e}')
        check(re.match(r'^[0-9a-f]{64}$', e['dsn_sha256']), 'digest of the DSN')

        # a second DSN for the same notice records nothing new
        rc, out, err = bounce(w.s, postfix_dsn(w.verp, w.msgid), '--rcpt', w.verp)
        eq(rc, 0, err)
        check('already recorded' in err, err)
        eq(len(w.events()), len(before) + 1, 'still one bounce event')

        # the event reaches the log: the receipt holds it and verifies
        def receipt():
            st, _, r = w.s.api('GET', f'/v1/notices/{w.id}/receipt')
            if st != 200:
                return None
            types = [json.loads(x['entry'])['type'] for x in r['events']]
            return r if 'delivery_failed' in types else None
        r = wait_until(receipt, 20, 0.3, 'the bounce in the receipt')
        path = os.path.join(w.s.dir, 'r.json')
        with open(path, 'w') as f:
            json.dump(r, f)
        rc, out, err = run(['verify', path, '--key', os.path.join(w.s.data, 'keys', 'log.vkey'),
                            '--tsa-ca', os.path.join(w.s.data, 'keys', 'ca.crt')])
        eq(rc, 0, out + err)
        vals = r['disclosure']['values'].values()
        check('rfc822; devedor@destino.example' in vals, 'the final recipient is disclosed')
        # the other notice is untouched
        eq(w.s.notice(id2)['status'], 'relayed')
        w.s.stop()
        rc, out, err = run(['log', 'verify', '--data', w.s.data])
        eq(rc, 0, out + err)
    finally:
        w.close()


@test
def address_from_the_headers_and_the_mta_mode():
    w = World()
    try:
        # no --rcpt: the Delivered-To header names the notice
        rc, out, err = bounce(w.s, postfix_dsn(w.verp.upper(), w.msgid))
        eq(rc, 0, err)
        eq(w.s.notice(w.id)['status'], 'failed')
        # the 5.1.1 bounce suppressed the address (test_suppression.py): lift it
        eq(w.s.api('DELETE', '/v1/suppressions/devedor%40destino.example')[0], 204)
        # --mta: a refused message exits 0 (the MTA drops it), a temporary
        # problem 75 (the MTA retries), a usage error too
        id2, verp2, msgid2 = w.send(reference='FAT-BOUNCE-2')
        before = w.events(id2)
        rc, _, err = bounce(w.s, b'From: x@y.example\nSubject: oi\n\nola\n', '--mta', '--rcpt', verp2)
        eq(rc, 0, err)
        check('not multipart/report' in err, err)
        p = subprocess.run([SELO, 'bounce', '--mta', '--data', '/nonexistent/selo'],
                           input=postfix_dsn(verp2, msgid2), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        eq(p.returncode, 75, p.stderr.decode())
        p = subprocess.run([SELO, 'bounce', '--mta', '--bogus'], input=b'',
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        eq(p.returncode, 75, p.stderr.decode())
        eq(w.events(id2), before, 'nothing recorded')
        rc, _, err = bounce(w.s, postfix_dsn(verp2, msgid2), '--mta', '--rcpt', verp2)
        eq(rc, 0, err)
        eq(w.s.notice(id2)['status'], 'failed')
        # without --mta: usage errors are 2
        p = subprocess.run([SELO, 'bounce'], input=b'', stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        eq(p.returncode, 2)
        check('--data DIR is required' in p.stderr.decode(), p.stderr.decode())
        rc, out, _ = run(['bounce', '--help'])
        eq(rc, 0)
        check('--rcpt' in out and 'Exit codes' in out, out)
    finally:
        w.close()


@test
def refused_messages_change_nothing():
    w = World()
    try:
        before = w.events()
        token = VERP_RE.match(w.verp).group(1)
        forged = w.verp.replace(token, token[:-5] + ('0' if token[-5] != '0' else '1') + token[-4:])
        unknown_id = '01KB' + w.id[4:-1] + ('0' if w.id[-1] != '0' else '1')
        unknown = verp_for(w.s.data, unknown_id)
        cases = [
            ('forged MAC', postfix_dsn(forged, w.msgid), ['--rcpt', forged],
             'is not a bounce address of ours'),
            ('no address of ours in the headers', postfix_dsn('cobranca@cobranca.example', w.msgid),
             [], 'none of the Delivered-To, X-Original-To, Envelope-To or To addresses'),
            ('unknown notice', postfix_dsn(unknown, w.msgid), ['--rcpt', unknown],
             f'no notice {unknown_id}'),
            ('delayed', postfix_dsn(w.verp, w.msgid, 'delayed', '4.4.1'), ['--rcpt', w.verp],
             'not a failure DSN (Action: delayed)'),
            ('not a DSN', b'From: joao@destino.example\nTo: ' + w.verp.encode() +
             b'\nSubject: Re: Aviso\n\nJa paguei!\n', ['--rcpt', w.verp],
             'Content-Type is text/plain, not multipart/report'),
            ('another message', postfix_dsn(w.verp, 'outra.mensagem@cobranca.example'),
             ['--rcpt', w.verp], 'Message-ID <outra.mensagem@cobranca.example> is not notice'),
            ('oversized', b'X' * (1024 * 1024 + 1), ['--rcpt', w.verp], 'longer than 1048576'),
        ]
        for name, msg, args, want in cases:
            rc, out, err = bounce(w.s, msg, *args)
            eq(rc, 1, f'{name}: exit code; stderr: {err}')
            check(want in err, f'{name}: {err!r} lacks {want!r}')
            check('nothing recorded' in err, f'{name}: {err!r}')
            eq(out, '', f'{name}: nothing on stdout')
            n = w.s.notice(w.id)
            eq(n['status'], 'relayed', f'{name}: status unchanged')
            eq(n['events'], before, f'{name}: events unchanged')
    finally:
        w.close()


if __name__ == '__main__':
    main()
