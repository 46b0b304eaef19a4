#!/usr/bin/python3
"""The mx transport (issue 5) through the real binary: MX lookup against a DNS
server the test runs on 127.0.0.1 (tests/integration/dnsserver.py, dnslib),
preference order and fallback to the next MX, a domain without MX (its own
A record), NXDOMAIN, a null MX, a DNS server failure and a DNS timeout, one
SMTP session for several notices to one domain, STARTTLS with the TLS
version, cipher and certificate subject in the event, and smtp.mx_override.
No traffic leaves 127.0.0.0/8: MX hosts resolve to 127.0.0.x, and a host
that must refuse connections is 127.0.0.2, where nothing listens."""
import json, os, re, signal, socket, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

HERE = os.path.dirname(os.path.abspath(__file__))


class DNS:
    def __init__(self, zone):
        self.dir = tempfile.mkdtemp(prefix='selo-dns-')
        self.zone = os.path.join(self.dir, 'zone.json')
        with open(self.zone, 'w') as f:
            json.dump(zone, f)
        self.p = spawn([PY, os.path.join(HERE, 'dnsserver.py'), self.zone], stdout=subprocess.PIPE)
        line = self.p.stdout.readline().decode()
        if not line.startswith('PORT '):
            stop(self.p)
            shutil.rmtree(self.dir, ignore_errors=True)
            raise Fail(f'dnsserver did not start: {line!r}')
        self.port = int(line.split()[1])

    def asked(self):
        try:
            with open(self.zone + '.log') as f:
                return f.read().split('\n')
        except OSError:
            return []

    def stop(self):
        stop(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)


ZONE = {
    # preference 10 refuses connections (127.0.0.2), 20 answers (127.0.0.1)
    'destino.example': {'MX': [[20, 'mx2.destino.example'], [10, 'mx1.destino.example']]},
    'mx1.destino.example': {'A': ['127.0.0.2']},
    'mx2.destino.example': {'A': ['127.0.0.1']},
    'semmx.example': {'A': ['127.0.0.1']},               # no MX: the domain itself
    'nulo.example': {'MX': [[0, '.']]},                   # RFC 7505
    'vazio.example': {'TXT': []},                         # neither MX nor A
    'quebrado.example': 'SERVFAIL',
    'lento.example': 'TIMEOUT',
    'semip.example': {'MX': [[10, 'mx.semip.example']]},  # its MX has no address
    'mx.semip.example': {'TXT': []},
    'recusa.example': {'MX': [[10, 'mx1.destino.example']]},  # its only MX refuses
    'seis.example': {'AAAA': ['::1']},                    # no MX, IPv6 only
    'seismx.example': {'MX': [[10, 'mx.seismx.example']]},
    'mx.seismx.example': {'AAAA': ['::1']},               # its MX is IPv6 only
}


class World:
    def __init__(self, smtp_args=(), override=None, **conf):
        self.dns = DNS(ZONE)
        self.smtp = SMTPServer(*smtp_args)
        c = {'smtp': {'mode': 'mx', 'resolver': f'127.0.0.1:{self.dns.port}',
                      'mx_port': str(self.smtp.port), 'starttls': 'no', 'timeout_ms': '3000'},
             'sender': {'workers': '2', 'retry_base': '1', 'retry_max': '2', 'lifetime': '600'}}
        if override:
            c['smtp']['mx_override'] = f'{override}=127.0.0.1:{self.smtp.port}'
        for k, v in conf.items():
            c.setdefault(k, {}).update(v)
        self.s = Selo(**c)
        try:
            self.s.start()
        except Exception:
            self.close()  # the servers this test started, by their PIDs
            raise

    def submit(self, to, n=1):
        ids = []
        for i in range(n):
            st, _, j = self.s.api('POST', '/v1/notices', {'to': to, 'subject': f'Aviso {i}',
                                                          'text': 'Aviso de cobrança.'})
            eq(st, 202, j)
            ids.append(j['id'])
        return ids

    def events(self, nid, typ):
        return [e['entry'] for e in self.s.notice(nid)['events'] if e['type'] == typ]

    def disclosed(self, nid, commitment):
        st, _, r = self.s.api('GET', f'/v1/notices/{nid}/receipt')
        if st != 200:
            return None
        return r['disclosure']['values'].get(commitment)

    def close(self):
        self.s.cleanup()
        self.smtp.stop()
        self.dns.stop()


@test
def mx_in_preference_order_with_fallback():
    w = World()
    try:
        nid = w.submit('devedor@destino.example')[0]
        j = w.s.wait_status(nid, ['delivered'])
        ev = w.events(nid, 'delivery_accepted')
        eq(len(ev), 1, j)
        e = ev[0]
        eq(e['transport'], 'mx')
        eq(e['code'], 250)
        eq(e['mx'], 'mx2.destino.example (preference 20)')
        eq(e['peer'], f'127.0.0.1:{w.smtp.port}')
        check(not w.events(nid, 'relay_accepted'), 'no relay_accepted in mx mode')
        msgs = w.smtp.messages()
        eq(len(msgs), 1)
        eq(msgs[0][1]['rcpt_tos'], ['devedor@destino.example'])
        asked = w.dns.asked()
        check('destino.example MX' in asked, asked)
        check(asked.index('mx1.destino.example A') < asked.index('mx2.destino.example A'),
              f'preference 10 tried first: {asked}')
        transcript = wait_until(lambda: w.disclosed(nid, e['transcript']), 15, 0.2,
                                'the transcript in the receipt')
        check(f'127.0.0.2:{w.smtp.port}' in transcript and 'refused' in transcript,
              f'the refused MX is noted: {transcript[:600]}')
        check('S: 250' in transcript, transcript[:800])
    finally:
        w.close()


@test
def domain_without_mx_uses_its_address():
    w = World()
    try:
        nid = w.submit('devedor@semmx.example')[0]
        w.s.wait_status(nid, ['delivered'])
        e = w.events(nid, 'delivery_accepted')[0]
        eq(e['mx'], 'semmx.example (no MX record: the domain itself)')
    finally:
        w.close()


@test
def dns_answers_that_fail_for_good():
    w = World()
    try:
        cases = {'devedor@naoexiste.example': 'does not exist (DNS: NXDOMAIN)',
                 'devedor@nulo.example': 'accepts no mail (null MX, RFC 7505)',
                 'devedor@vazio.example': 'has neither an MX nor an A record'}
        ids = {to: w.submit(to)[0] for to in cases}
        for to, why in cases.items():
            j = w.s.wait_status(ids[to], ['failed'])
            ev = w.events(ids[to], 'delivery_failed')
            eq(len(ev), 1, j)
            check(why in ev[0].get('error', ''), f'{to}: {ev[0]}')
            eq(ev[0]['reason'], 'rejected')
            check(not w.events(ids[to], 'delivery_deferred'), f'{to}: failed at once, no retry')
        eq(len(w.smtp.messages()), 0, 'nothing sent')
    finally:
        w.close()


@test
def dns_failures_that_are_retried():
    w = World()
    try:
        cases = {'devedor@quebrado.example': 'server failure or no answer',
                 'devedor@lento.example': 'server failure or no answer',
                 'devedor@semip.example': 'no address found for any MX host',
                 'devedor@recusa.example': 'connection refused'}
        ids = {to: w.submit(to)[0] for to in cases}
        for to, why in cases.items():
            def deferred_twice():
                ev = w.events(ids[to], 'delivery_deferred')
                return ev if len(ev) >= 2 else None
            ev = wait_until(deferred_twice, 40, 0.3, f'{to} deferred and retried')
            check(why in ev[0].get('error', ''), f'{to}: {ev[0]}')
            check('retry_at' in ev[0], ev[0])
            # retried, never failed: between two attempts, or in the next one
            st = w.s.notice(ids[to])['status']
            check(st in ('deferred', 'sending'), f'{to}: {st}')
        eq(len(w.smtp.messages()), 0)
    finally:
        w.close()


@test
def ipv6_only_mx_is_reached_over_ipv6():
    """An MX host with an AAAA record and no A (and a domain without MX whose
    own name has only AAAA) is delivered to over IPv6: the SMTP server
    listens on [::1] only; the event and the transcript name [::1]:port."""
    w = World(smtp_args=('--host', '::1'))
    try:
        for to, mx in (('devedor@seismx.example', 'mx.seismx.example (preference 10)'),
                       ('devedor@seis.example', 'seis.example (no MX record: the domain itself)')):
            nid = w.submit(to)[0]
            j = w.s.wait_status(nid, ['delivered'])
            ev = w.events(nid, 'delivery_accepted')
            eq(len(ev), 1, j)
            e = ev[0]
            eq(e['code'], 250)
            eq(e['mx'], mx)
            eq(e['peer'], f'[::1]:{w.smtp.port}')
            transcript = wait_until(lambda: w.disclosed(nid, e['transcript']), 15, 0.2,
                                    'the transcript in the receipt')
            check(f'[::1]:{w.smtp.port}' in transcript, f'the address used: {transcript[:600]}')
            check('RCPT TO:<' + to + '>' in transcript and 'S: 250' in transcript, transcript[:900])
        asked = w.dns.asked()
        check('mx.seismx.example AAAA' in asked, asked)
        eq(sorted(m[1]['rcpt_tos'][0] for m in w.smtp.messages()),
           ['devedor@seis.example', 'devedor@seismx.example'])
    finally:
        w.close()


@test
def relay_to_an_ipv6_address():
    """smtp.relay = [::1]:port takes the same IPv6 path as the MX transport."""
    smtp = SMTPServer('--host', '::1')
    s = None
    try:
        s = Selo(smtp={'mode': 'relay', 'relay': f'[::1]:{smtp.port}', 'starttls': 'no'}).start()
        st, _, j = s.api('POST', '/v1/notices', {'to': 'devedor@destino.example',
                                                 'subject': 'Aviso', 'text': 'Aviso de cobrança.'})
        eq(st, 202, j)
        s.wait_status(j['id'], ['relayed'])
        e = [x['entry'] for x in s.notice(j['id'])['events'] if x['type'] == 'relay_accepted'][0]
        eq(e['peer'], f'[::1]:{smtp.port}')
        eq(len(smtp.messages()), 1)
    finally:
        if s:
            s.cleanup()
        smtp.stop()


@test
def one_session_for_one_domain_and_mx_override():
    w = World(override='atalho.example', sender={'workers': '1', 'batch': '50'})
    try:
        notices = [{'to': f'devedor{i}@destino.example', 'subject': 'Aviso', 'text': 'Aviso'}
                   for i in range(5)] + [{'to': 'alguem@atalho.example', 'subject': 'Aviso',
                                          'text': 'Aviso'}]
        st, _, j = w.s.api('POST', '/v1/notices/batch', {'notices': notices})
        eq(st, 200, j)
        ids = [r['id'] for r in j['results']]
        for nid in ids:
            w.s.wait_status(nid, ['delivered'])
        msgs = w.smtp.messages()
        eq(len(msgs), 6)
        peers = {}
        for _, env in msgs:
            peers.setdefault(env['rcpt_tos'][0].split('@')[1], set()).add(env['peer'])
        eq(len(peers['destino.example']), 1, f'five notices, one SMTP session: {peers}')
        e = w.events(ids[-1], 'delivery_accepted')[0]
        eq(e['mx'], f'127.0.0.1:{w.smtp.port}', 'the override names its server')
        check('atalho.example MX' not in w.dns.asked(), 'the override skips DNS')
    finally:
        w.close()


@test
def starttls_details_in_the_event():
    d = tempfile.mkdtemp(prefix='selo-mxtls-')
    try:
        key, crt = os.path.join(d, 'k.pem'), os.path.join(d, 'c.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                        '-out', crt, '-days', '2', '-subj', '/CN=mx2.destino.example/O=Destino'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        w = World(smtp_args=('--tls', crt, key), smtp={'starttls': 'try', 'tls_verify': 'no'})
        try:
            nid = w.submit('devedor@destino.example')[0]
            w.s.wait_status(nid, ['delivered'])
            e = w.events(nid, 'delivery_accepted')[0]
            check(e.get('tls', '').startswith('TLSv1.'), e)
            eq(e.get('tls_peer'), 'O=Destino,CN=mx2.destino.example')
            check(w.smtp.messages()[0][1]['tls'], 'the server saw TLS')
        finally:
            w.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def rfc3339_ms(t):
    import datetime
    return datetime.datetime.fromisoformat(t.replace('Z', '+00:00')).timestamp() * 1000


@test
def each_smtp_failure_gets_its_event_and_next_attempt():
    """The recipient's MX answers 421/450/451/550/552, drops the connection in
    DATA, stalls past the timeout, or lacks STARTTLS that smtp.starttls
    requires: each ends in the right event, and a temporary one is retried
    on the documented schedule (retry_base 1 s here: the first retry after
    1 s, the second after 2 s)."""
    cases = [
        (('--reply', '421'), {}, 'delivery_deferred', 421, None),
        (('--reply', '450'), {}, 'delivery_deferred', 450, None),
        (('--reply', '451'), {}, 'delivery_deferred', 451, None),
        (('--rcpt-reply', '450'), {}, 'delivery_deferred', 450, None),
        (('--reply', '550'), {}, 'delivery_failed', 550, None),
        (('--reply', '552'), {}, 'delivery_failed', 552, None),
        (('--rcpt-reply', '550:5.1.1 no such user'), {}, 'delivery_failed', 550, None),
        (('--drop-in-data',), {}, 'delivery_deferred', 0, 'closed the connection'),
        (('--stall', '3'), {'timeout_ms': '1000'}, 'delivery_deferred', 0, 'within 1000 ms'),
        ((), {'starttls': 'require'}, 'delivery_deferred', 0, 'does not offer STARTTLS'),
    ]
    for args, smtp, typ, code, why in cases:
        w = World(smtp_args=args, smtp=smtp)
        try:
            nid = w.submit('devedor@destino.example')[0]
            ev = wait_until(lambda: w.events(nid, typ) or None, 20, 0.1, f'{args}: {typ}')[0]
            eq(ev.get('code', 0), code, f'{args}: {ev}')
            if why:
                check(why in ev.get('error', ''), f'{args}: {ev}')
            if typ == 'delivery_failed':
                eq(ev['reason'], 'rejected', f'{args}')
                continue
            # the next attempt: retry_at = the attempt's time + 1 s, then + 2 s
            t1 = rfc3339_ms(ev['retry_at']) - rfc3339_ms(ev['time'])
            check(500 <= t1 <= 1600, f'{args}: first retry after ~1 s, not {t1} ms')
            second = wait_until(lambda: (lambda e: e[1] if len(e) > 1 else None)(
                w.events(nid, typ)), 20, 0.1, f'{args}: a second attempt')
            eq(second['attempt'], 2, second)
            check(rfc3339_ms(second['time']) >= rfc3339_ms(ev['retry_at']) - 50,
                  f'{args}: not retried early')
            t2 = rfc3339_ms(second['retry_at']) - rfc3339_ms(second['time'])
            check(1500 <= t2 <= 2600, f'{args}: second retry after ~2 s, not {t2} ms')
        finally:
            w.close()


@test
def expiry_fails_with_the_last_answer():
    w = World(smtp_args=('--reply', '451:4.3.0 try later'), sender={'lifetime': '3'})
    try:
        nid = w.submit('devedor@destino.example')[0]
        j = w.s.wait_status(nid, ['failed'], timeout=30)
        ev = w.events(nid, 'delivery_failed')
        eq(len(ev), 1, j)
        eq(ev[0]['reason'], 'expired')
        eq(ev[0]['code'], 451)
        check(len(w.events(nid, 'delivery_deferred')) >= 1, 'deferred before it expired')
    finally:
        w.close()


@test
def postfix_as_the_mx_with_starttls():
    if not shutil.which('postfix'):
        raise Fail('postfix is not installed (scripts/install-deps.sh installs it)')
    pf = Postfix()
    w = None
    try:
        w = World(smtp={'mx_override': f'destino.example=127.0.0.1:{pf.port}',
                        'starttls': 'require', 'tls_verify': 'no'})
        ids = w.submit('devedor@destino.example', 3)
        for nid in ids:
            w.s.wait_status(nid, ['delivered'])
        mails = wait_until(lambda: (lambda m: m if len(m) >= 3 else None)(pf.delivered()), 30,
                           0.2, f'three messages in postfix\'s maildir; log: {pf.log()[-1500:]}')
        eq(len(mails), 3)
        qids = set()
        for nid in ids:
            e = w.events(nid, 'delivery_accepted')[0]
            check(e.get('tls', '').startswith('TLSv1.'), e)
            eq(e.get('tls_peer'), 'O=Destino MX,CN=mx.destino.example')
            qid = e.get('queue_id', '')
            check(re.fullmatch(r'[0-9A-Za-z]{6,}', qid), f'a postfix queue id: {e}')
            check(f'{qid}: ' in pf.log(), f'postfix logged queue id {qid}')
            qids.add(qid)
            eml = w.s.api('GET', f'/v1/notices/{nid}/message')[2]
            # the maildir holds LF line ends and postfix's own headers on top
            check(any(eml.replace(b'\r\n', b'\n') in m for m in mails),
                  'the stored message is what postfix delivered')
        eq(len(qids), 3, 'three queue ids')
        check('status=sent (delivered to maildir)' in pf.log(), pf.log()[-1500:])
    finally:
        if w:
            w.close()
        pf.stop()


if __name__ == '__main__':
    main()
