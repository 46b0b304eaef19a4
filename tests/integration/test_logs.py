#!/usr/bin/python3
"""Logs an operator can live with (issue 18, part 2), through the real binary
and a real SMTP peer (smtpserver.py, aiosmtpd): a notice deferred (451) until
its lifetime runs out, then failed, read back from the server's log in text
and in json (log.format; every json line parsed); a delivery with the queue
id of the 250 reply; a webhook whose receiver answers 500; the access log of
both listeners, with the tracker's tokens, query strings and addresses
hidden; log.level = error hiding the info lines; a bad log.level refused.
Every test also checks that nothing in the whole log holds the recipient's
address, a token, the API key or a template variable."""
import email, email.policy, http.server, json, os, re, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

RCPT = 'devedor.sigiloso@destino.example'
SECRET_VAR = 'Valor-Secreto-4242'
HTML = ('<html><body><p>Olá</p><a href="https://pagar.example/boleto?id=7">Pagar</a>'
        '</body></html>')


def relay_selo(smtp, **conf):
    c = {'smtp': {'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}}
    for k, v in conf.items():
        c.setdefault(k, {}).update(v)
    return Selo(**c).start()


def submit(s, **over):
    n = {'to': RCPT, 'to_name': 'Fulano Sigiloso', 'subject': 'Aviso',
         'text': f'Sua fatura {SECRET_VAR} venceu.', 'html': HTML, 'reference': 'REF-PESSOAL-77'}
    n.update(over)
    st, _, j = s.api('POST', '/v1/notices', n)
    eq(st, 202, f'POST notice: {j}')
    return j['id']


def leaks(s, log, extra=()):
    """Nothing personal or secret anywhere in the log."""
    for bad in (RCPT, RCPT.split('@')[0], SECRET_VAR, 'REF-PESSOAL-77', s.key, 'Sigiloso',
                *extra):
        check(bad not in log, f'the log holds {bad!r}: ...{log[max(0, log.find(bad) - 300):log.find(bad) + 100]}')


def json_lines(log):
    """Every line of a json log parses; returns the objects."""
    out = []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            o = json.loads(line)
        except ValueError:
            raise Fail(f'not a JSON line: {line!r}')
        for k in ('time', 'level', 'module', 'message'):
            check(k in o, f'{k} missing in {line}')
        check(re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', o['time']),
              f'time is RFC 3339 UTC with ms: {o["time"]}')
        out.append(o)
    return out


def deferred_then_failed(fmt):
    # The server quotes the recipient, as real ones do: the log must not.
    smtp = SMTPServer('--reply', f'451:4.3.0 mailbox of <{RCPT}> busy, try again later')
    s = relay_selo(smtp, sender={'retry_base': '1', 'retry_max': '1', 'lifetime': '3'},
                   log={'format': fmt})
    try:
        nid = submit(s)
        s.wait_status(nid, ['failed'], timeout=60)
        def logged():
            log = s.serve_log_all()
            return log if ('failed' in log and nid in log) else None
        wait_until(logged, 10, 0.1, 'the failed line')
        s.stop()
        log = s.serve_log_all()
        leaks(s, log)
        return nid, log
    finally:
        s.cleanup()
        smtp.stop()


@test
def deferred_then_failed_in_text():
    nid, log = deferred_then_failed('text')
    mine = [l for l in log.splitlines() if f'notice={nid}' in l]
    deferred = [l for l in mine if ' info ' in l and ': deferred until ' in l]
    failed = [l for l in mine if ' info ' in l and ': failed (expired): 451 ' in l]
    check(deferred, f'a deferred line for {nid}: {mine}')
    check(len(failed) == 1, f'one failed line for {nid}: {mine}')
    d = deferred[0]
    check('451 4.3.0 mailbox of <[address]> busy' in d, f'the reason, address scrubbed: {d}')
    check(re.search(r'next_attempt=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', d), f'next attempt: {d}')
    check('attempt=1' in d and 'event=delivery_deferred' in d, d)
    check(f'peer=127.0.0.1:' in d and 'code=451' in d, d)
    check('451' in failed[0] and 'event=delivery_failed' in failed[0], failed[0])
    check(log.index(d) < log.index(failed[0]), 'deferred before failed')


@test
def deferred_then_failed_in_json():
    nid, log = deferred_then_failed('json')
    objs = json_lines(log)
    mine = [o for o in objs if o.get('notice') == nid]
    deferred = [o for o in mine if o['message'].startswith('deferred until ')]
    failed = [o for o in mine if o['message'].startswith('failed (expired): 451 ')]
    check(deferred and len(failed) == 1, f'deferred and failed objects: {mine}')
    d = deferred[0]
    eq(d['level'], 'info')
    eq(d['module'], 'sender')
    eq(d['attempt'], 1)
    eq(d['event'], 'delivery_deferred')
    eq(d['code'], 451)
    check(re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', d['next_attempt']), d)
    check('[address]' in d['message'], d['message'])
    f = failed[0]
    eq(f['event'], 'delivery_failed')
    check(f['attempt'] > d['attempt'], 'the failure is a later attempt')
    check(objs.index(d) < objs.index(f), 'deferred before failed')


@test
def delivered_names_peer_code_and_queue_id():
    smtp = SMTPServer('--reply', '250:2.0.0 Ok: queued as 4dXq1r3Kz9z')
    s = relay_selo(smtp, log={'format': 'json'})
    try:
        nid = submit(s)
        s.wait_status(nid, ['relayed'])
        def line():
            return [o for o in json_lines(s.serve_log_all()) if o.get('notice') == nid
                    and o['message'].startswith('relayed')]
        got = wait_until(line, 10, 0.1, 'the relayed line')[0]
        eq(got['queue_id'], '4dXq1r3Kz9z')
        eq(got['code'], 250)
        eq(got['enhanced'], '2.0.0')
        eq(got['peer'], f'127.0.0.1:{smtp.port}')
        eq(got['event'], 'relay_accepted')
        s.stop()
        leaks(s, s.serve_log_all())
    finally:
        s.cleanup()
        smtp.stop()


class Failing:
    """An HTTP receiver on 127.0.0.1 that answers every POST with 500."""

    def __init__(self):
        self.hits = 0

        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get('Content-Length', '0')))
                rcv.hits += 1
                self.send_response(500)
                self.send_header('Content-Length', '4')
                self.end_headers()
                self.wfile.write(b'oops')

        self.srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@test
def webhook_failure_is_logged():
    rcv = Failing()
    s = Selo(webhooks={'allow_private': 'yes', 'timeout_ms': '1000', 'retry_speedup': '2000'},
             log={'format': 'json'}).start()
    try:
        st, _, wh = s.api('POST', '/v1/webhooks',
                          {'url': f'http://127.0.0.1:{rcv.port}/hook?auth=recv-cred-991',
                           'events': ['notice.submission_accepted']})
        eq(st, 201, f'register: {wh}')
        nid = submit(s)

        def failed_line():
            return [o for o in json_lines(s.serve_log_all())
                    if o.get('webhook') == wh['id'] and 'failed' in o['message']]
        got = wait_until(failed_line, 30, 0.1, 'a webhook failure line')[0]
        eq(got['module'], 'webhook')
        eq(got['level'], 'info')
        eq(got['notice'], nid)
        eq(got['status'], 500)
        check(got['event'].endswith('submission_accepted'), f'the event delivered: {got}')
        check(got['delivery'].startswith('msg_'), got)
        check(got['attempt'] >= 1 and 'next_attempt' in got, got)
        check('500' in got['message'], got['message'])
        s.stop()
        # Neither the receiver's URL (its credentials) nor the secret.
        leaks(s, s.serve_log_all(), ('recv-cred-991', wh['secret']))
    finally:
        s.cleanup()
        rcv.stop()


@test
def access_log_hides_tokens_queries_and_addresses():
    smtp = SMTPServer()
    s = relay_selo(smtp, api={'access_log': 'true'}, track={'access_log': 'true'})
    try:
        nid = submit(s)
        s.wait_status(nid, ['relayed'])
        eml, _ = smtp.messages()[0]
        m = email.message_from_bytes(eml, policy=email.policy.default)
        html = next(p for p in m.walk() if p.get_content_type() == 'text/html').get_content()
        base = f'http://127.0.0.1:{s.track_port}'
        pixel = re.search(re.escape(base) + r'/o/([A-Za-z0-9_-]+)\.gif', html)
        click = re.search(re.escape(base) + r'/c/([A-Za-z0-9_-]+)', html)
        confirm = re.search(re.escape(base) + r'/r/([A-Za-z0-9_-]+)', html)
        tokens = [pixel.group(1), click.group(1), confirm.group(1)]
        eq(curl('GET', pixel.group(0) + '?utm=secret-query-1')[0], 200)
        eq(curl('GET', click.group(0))[0], 302)
        eq(curl('GET', confirm.group(0))[0], 200)
        eq(s.api('GET', f'/v1/notices?reference=REF-PESSOAL-77')[0], 200)
        eq(s.api('DELETE', f'/v1/suppressions/{RCPT}')[0], 404)
        s.stop()
        log = s.serve_log_all()
        acc = [l for l in log.splitlines() if ' info access: ' in l]
        for want in (r'tracker GET /o/:token\.gif 200 bytes=43 duration_ms=\d+\.\d{3} ip=127\.0\.0\.1',
                     r'tracker GET /c/:token 302 bytes=0 ',
                     r'tracker GET /r/:token 200 bytes=\d+ ',
                     rf'api POST /v1/notices 202 bytes=\d+ ',
                     rf'api GET /v1/notices/{nid} 200 ',
                     r'api GET /v1/notices 200 ',
                     r'api DELETE /v1/suppressions/:address 404 '):
            check(any(re.search(want, l) for l in acc), f'no access line like {want!r}: {acc}')
        leaks(s, log, tokens + ['secret-query-1', 'Bearer'])
    finally:
        s.cleanup()
        smtp.stop()


@test
def access_log_is_off_by_default():
    smtp = SMTPServer()
    s = relay_selo(smtp)
    try:
        nid = submit(s)
        s.wait_status(nid, ['relayed'])
        s.stop()
        log = s.serve_log_all()
        check(' access: ' not in log, 'no access line unless asked')
        check(f'notice={nid}' in log, 'the outcome line is there')
    finally:
        s.cleanup()
        smtp.stop()


@test
def level_error_hides_info_lines():
    smtp = SMTPServer()
    s = relay_selo(smtp, log={'level': 'error'}, api={'access_log': 'yes'})
    try:
        nid = submit(s)
        s.wait_status(nid, ['relayed'])
        s.stop()
        log = s.serve_log_all()
        check(' info ' not in log and ' warn ' not in log, f'only errors: {log[-2000:]}')
        check(nid not in log, 'no outcome line at error level')
    finally:
        s.cleanup()
        smtp.stop()


@test
def bad_level_or_format_is_refused():
    for sec in ({'level': 'verbose'}, {'format': 'xml'}):
        s = Selo(log=sec)
        try:
            rc, out, err = run(['serve', '--data', s.data])
            check(rc != 0, f'serve refused {sec}')
            check('log.level must be' in err, err)
        finally:
            s.cleanup()


@test
def bounced_suppressed_and_canceled_are_logged():
    smtp = SMTPServer('--rcpt-reply', f'550:5.1.1 <{RCPT}>: no such user')
    s = relay_selo(smtp)
    try:
        nid = submit(s)
        s.wait_status(nid, ['failed'])
        # The next notice to that address is refused (422) and nothing queued.
        st, _, j = s.api('POST', '/v1/notices', {'to': RCPT, 'subject': 'x', 'text': 'y'})
        eq(st, 422, f'suppressed: {j}')
        later = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() + 3600))
        other = submit(s, to='outra.pessoa@destino.example', send_at=later)
        eq(s.api('DELETE', f'/v1/notices/{other}?reason=paid')[0], 200)

        def lines():
            log = s.serve_log_all()
            return log if 'canceled (paid)' in log and 'suppressed: ' in log else None
        log = wait_until(lines, 10, 0.1, 'the canceled and suppressed lines')
        bounced = [l for l in log.splitlines() if f'notice={nid}' in l and ': bounced (hard, 5.1.1)' in l]
        check(bounced and '550' in bounced[0] and '[address]' in bounced[0], f'bounced: {log[-3000:]}')
        check(re.search(r' info \S+: suppressed: a notice for API key \d+ was refused', log), log[-2000:])
        check(re.search(rf' info \S+: canceled \(paid\) by API key \d+ notice={other}', log), log[-2000:])
        s.stop()
        leaks(s, s.serve_log_all(), ('outra.pessoa',))
    finally:
        s.cleanup()
        smtp.stop()


@test
def access_log_in_json():
    smtp = SMTPServer()
    s = relay_selo(smtp, track={'access_log': 'yes'}, log={'format': 'json'})
    try:
        nid = submit(s)
        s.wait_status(nid, ['relayed'])
        eml, _ = smtp.messages()[0]
        m = email.message_from_bytes(eml, policy=email.policy.default)
        html = next(p for p in m.walk() if p.get_content_type() == 'text/html').get_content()
        pixel = re.search(r'http://127\.0\.0\.1:\d+/o/([A-Za-z0-9_-]+)\.gif', html)
        eq(curl('GET', pixel.group(0) + '?x=1')[0], 200)
        s.stop()
        log = s.serve_log_all()
        acc = [o for o in json_lines(log) if o['module'] == 'access']
        eq(len(acc), 1, f'only the tracker logs its requests: {acc}')
        a = acc[0]
        eq((a['listener'], a['method'], a['path'], a['status'], a['bytes'], a['ip'], a['level']),
           ('tracker', 'GET', '/o/:token.gif', 200, 43, '127.0.0.1', 'info'))
        check(isinstance(a['duration_ms'], float) and a['duration_ms'] >= 0, a)
        leaks(s, log, (pixel.group(1),))
    finally:
        s.cleanup()
        smtp.stop()


if __name__ == '__main__':
    main()
