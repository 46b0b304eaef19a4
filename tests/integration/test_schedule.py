#!/usr/bin/python3
"""Scheduling and dunning sequences (issue 9 parts 2 and 3; docs/api.md
"Scheduling" and "Sequences"), driven through the real API of `selo serve`:
send_at in the past, more than 90 days ahead or unparsable, and bad windows
or zones, are 422 and store nothing; a notice with send_at a few seconds
ahead is `scheduled` and leaves only then, also across a SIGKILL; a window
that opens at the next minute holds a notice until its opening; DELETE
cancels a scheduled notice (event `canceled` in the log, nothing sent),
answers 409 once the notice was handed to SMTP and 404 for another key's;
a sequence with steps seconds apart reaches the SMTP test server in order,
skips a step whose time had passed, and honours Idempotency-Key; stopping
it mid-way sends nothing more and logs `canceled` for each step left; a
hard bounce (550 5.1.1) on step 1 stops it by itself and a webhook
receiver is told (notice.canceled, reason hard_bounce)."""
import http.server, json, os, signal, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

VARS = {'nome': 'João da Silva', 'credor': 'Loja Exemplo Ltda', 'valor': '1234.56',
        'vencimento': '2026-12-10', 'prazo_dias': '10'}
TEMPLATES = ['lembrete', 'vencimento', 'atraso', 'notificacao-extrajudicial']


def iso(t):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t)) + f'.{int(t * 1000) % 1000:03d}Z'


def parse_iso(s):
    import calendar
    base, ms = s.rstrip('Z').split('.')
    return calendar.timegm(time.strptime(base, '%Y-%m-%dT%H:%M:%S')) + int(ms) / 1000


def notice(**over):
    n = {'to': 'devedor@destino.example', 'subject': 'Aviso de cobrança',
         'text': 'Sua fatura venceu.', 'reference': 'FAT-SCHED'}
    n.update(over)
    return n


def events(s, nid):
    return [e['entry'] for e in s.notice(nid)['events']]


def relay_selo(server, **conf):
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{server.port}', 'starttls': 'no',
                   'timeout_ms': '5000'}, **conf)
    return s.start()


def notices_received(server):
    """The notice ids of the messages the SMTP server got, in arrival order
    (a Message-ID starts with its notice's id)."""
    out = []
    for eml, _ in server.messages():
        for line in eml.split(b'\r\n'):
            if line.lower().startswith(b'message-id:'):
                out.append(line.split(b'<', 1)[1].split(b'.', 1)[0].decode())
    return out


@test
def bad_schedules_are_422_and_store_nothing():
    s = Selo().start()
    try:
        now = time.time()
        cases = [
            ({'send_at': iso(now - 3600)}, 'send_at', 'in the past'),
            ({'send_at': iso(now + 91 * 86400)}, 'send_at', 'more than 90 days'),
            ({'send_at': 'amanhã às 9'}, 'send_at', 'RFC 3339'),
            ({'send_at': '2026-13-45T99:00:00Z'}, 'send_at', 'RFC 3339'),
            ({'send_at': 17}, 'send_at', 'string'),
            ({'window': '8-20'}, 'window', 'HH:MM-HH:MM'),
            ({'window': '08:00-08:00'}, 'window', 'same time'),
            ({'window': '24:00-08:00'}, 'window', '24:00 only as the end'),
            ({'window': '08:00-20:00', 'window_zone': 'Mars/Olympus'}, 'window_zone', 'tz database'),
            ({'window': '08:00-20:00', 'window_zone': '/etc/passwd'}, 'window_zone', 'tz database'),
            ({'window': '08:00-20:00', 'window_zone': '../../etc/passwd'}, 'window_zone',
             'tz database'),
            ({'window_zone': 'America/Recife'}, 'window_zone', 'needs a window'),
        ]
        for over, field, words in cases:
            st, _, j = s.api('POST', '/v1/notices', notice(**over))
            eq(st, 422, f'{over}: {j}')
            errs = {e['field']: e['detail'] for e in j['errors']}
            check(field in errs and words in errs[field], f'{over}: {errs}')
        # 89 days ahead and a window are fine; a send_at a few seconds in the
        # past (a caller's clock slightly ahead) is taken as now
        st, _, j = s.api('POST', '/v1/notices', notice(send_at=iso(now + 89 * 86400),
                                                       window='08:00-20:00'))
        eq((st, j['status']), (202, 'scheduled'), f'{j}')
        far = s.notice(j['id'])
        eq((far['send_at'], far['window'], far['window_zone']),
           (iso(now + 89 * 86400), '08:00-20:00', 'America/Sao_Paulo'))
        st, _, j = s.api('POST', '/v1/notices', notice(send_at=iso(now - 5)))
        eq((st, j['status']), (202, 'queued'), f'{j}')
        st, _, lst = s.api('GET', '/v1/notices?limit=1000')
        eq(len(lst['notices']), 2, 'only the two valid notices were stored')
    finally:
        s.cleanup()


@test
def send_at_holds_the_notice_until_then_even_across_a_crash():
    s = Selo().start()
    try:
        at = time.time() + 4
        st, _, j = s.api('POST', '/v1/notices', notice(send_at=iso(at)))
        eq((st, j['status']), (202, 'scheduled'), f'{j}')
        nid = j['id']
        n = s.notice(nid)
        eq((n['status'], n['next_attempt_at'], n['send_at']), ('scheduled', iso(at), iso(at)))
        acc = events(s, nid)[0]
        eq(acc['due'], iso(at), 'submission_accepted logs when it is due')
        st, _, lst = s.api('GET', '/v1/notices?status=scheduled')
        eq([x['id'] for x in lst['notices']], [nid], 'listed by status=scheduled')
        st, _, m = s.api('GET', '/metrics')
        check('selo_notices{state="scheduled"} 1' in m.decode(), 'the gauge counts it')
        s.stop(signal.SIGKILL)
        s.start()
        eq(s.notice(nid)['status'], 'scheduled', 'still scheduled after SIGKILL')
        s.wait_status(nid, ('relayed', 'delivered'), 30)
        sealed = [e for e in events(s, nid) if e['type'] == 'content_sealed'][0]
        check(parse_iso(sealed['time']) >= at - 0.001,
              f'sealed at {sealed["time"]}, not before send_at {iso(at)}')
        eq(len(os.listdir(os.path.join(s.data, 'outbox', 'new'))), 1, 'sent once')
    finally:
        s.cleanup()


@test
def a_closed_window_delays_the_send_to_its_opening():
    s = Selo().start()
    try:
        now = time.time()
        # opens at the next minute (at least 3 s away), closes an hour later (UTC)
        opening = (int(now) // 60 + 1) * 60
        if opening - now < 3:
            opening += 60
        a = time.gmtime(opening)
        b = time.gmtime(opening + 3600)
        window = f'{a.tm_hour:02d}:{a.tm_min:02d}-{b.tm_hour:02d}:{b.tm_min:02d}'
        st, _, j = s.api('POST', '/v1/notices', notice(window=window, window_zone='UTC'))
        eq((st, j['status']), (202, 'scheduled'), f'{j}')
        nid = j['id']
        eq(s.notice(nid)['next_attempt_at'], iso(opening), 'due at the opening')
        # the same window in Sao Paulo time (UTC-3 since 2019) opens at the same instant
        sp = time.gmtime(opening - 3 * 3600)
        spe = time.gmtime(opening - 2 * 3600)
        st, _, j2 = s.api('POST', '/v1/notices', notice(
            window=f'{sp.tm_hour:02d}:{sp.tm_min:02d}-{spe.tm_hour:02d}:{spe.tm_min:02d}'))
        eq(s.notice(j2['id'])['next_attempt_at'], iso(opening), 'America/Sao_Paulo by default')
        # a window open now sends at once
        c = time.gmtime(now - 60)
        d = time.gmtime(now + 3600)
        st, _, j3 = s.api('POST', '/v1/notices', notice(
            window=f'{c.tm_hour:02d}:{c.tm_min:02d}-{d.tm_hour:02d}:{d.tm_min:02d}',
            window_zone='Etc/UTC'))
        eq(j3['status'], 'queued', f'{j3}')
        s.wait_status(j3['id'], ('relayed', 'delivered'))
        eq(s.notice(nid)['status'], 'scheduled', 'still waiting for the opening')
        for x in (nid, j2['id']):
            s.wait_status(x, ('relayed', 'delivered'), 90)
            sealed = [e for e in events(s, x) if e['type'] == 'content_sealed'][0]
            check(parse_iso(sealed['time']) >= opening, f'{sealed["time"]} >= {iso(opening)}')
    finally:
        s.cleanup()


@test
def delete_cancels_before_smtp_and_409_after():
    s = Selo().start()
    try:
        st, _, j = s.api('POST', '/v1/notices', notice(send_at=iso(time.time() + 3600)))
        nid = j['id']
        st, _, j = s.api('DELETE', f'/v1/notices/{nid}?reason=paid')
        eq((st, j['status']), (200, 'canceled'), f'{j}')
        last = j['events'][-1]['entry']
        eq((last['type'], last['reason'], last['by']), ('canceled', 'paid', 'api'))
        st, _, j = s.api('DELETE', f'/v1/notices/{nid}')
        eq((st, j['status'], len(j['events'])), (200, 'canceled', 2), 'a second DELETE adds nothing')
        # nothing was sent, so there is no delivery receipt to give
        st, _, j = wait_until(lambda: (lambda r: r if r[0] != 503 else None)(
            s.api('GET', f'/v1/notices/{nid}/receipt')), 20, 0.2, 'the log to catch up')
        eq((st, j['type'].split(':')[-1]), (409, 'not-sealed'), f'{j}')
        # sent: 409; unknown or another key's: 404; bad reason: 400
        st, _, j = s.api('POST', '/v1/notices', notice())
        sent = j['id']
        s.wait_status(sent, ('relayed', 'delivered'))
        st, _, j = s.api('DELETE', f'/v1/notices/{sent}')
        eq(st, 409, f'{j}')
        check('handed to SMTP' in j['detail'], j['detail'])
        other = run(['apikey', 'create', 'outra', '--data', s.data], check_rc=0)[1].strip()
        st, _, j = s.api('DELETE', f'/v1/notices/{nid}', key=other)
        eq(st, 404, f'{j}')
        st, _, j = s.api('DELETE', '/v1/notices/01M8WPY6QQQF2GA9WB0YA7P32H')
        eq(st, 404, f'{j}')
        st, _, j = s.api('DELETE', f'/v1/notices/{nid}?reason=whim')
        eq(st, 400, f'{j}')
        time.sleep(1.5)
        eq(len(os.listdir(os.path.join(s.data, 'outbox', 'new'))), 1, 'the canceled notice was never sent')
    finally:
        s.cleanup()


def sequence_body(due, offsets, **over):
    b = {'to': 'devedor@destino.example', 'to_name': 'João da Silva', 'vars': VARS,
         'reference': 'CONTRATO-77', 'due': due,
         'steps': [{'template': TEMPLATES[i % 4], 'offset': o} for i, o in enumerate(offsets)]}
    b.update(over)
    return b


@test
def sequence_sends_its_steps_in_order_and_skips_past_ones():
    smtp = SMTPServer()
    s = relay_selo(smtp)
    try:
        due = time.time() + 2
        body = sequence_body(iso(due), ['-1h', '0s', '+2s', '+4s'])
        st, hd, q = s.api('POST', '/v1/sequences', body, headers={'Idempotency-Key': 'seq-1'})
        eq(st, 201, f'{q}')
        eq(hd.get('location'), f'/v1/sequences/{q["id"]}')
        eq([x['status'] for x in q['steps']], ['skipped', 'scheduled', 'scheduled', 'scheduled'])
        eq(q['steps'][0]['notice'], None)
        eq(q['status'], 'active')
        ids = [x['notice'] for x in q['steps'][1:]]
        # the same request again: the same sequence, nothing new
        st, hd, q2 = s.api('POST', '/v1/sequences', body, headers={'Idempotency-Key': 'seq-1'})
        eq((st, q2['id'], hd.get('idempotent-replayed')), (200, q['id'], 'true'))
        st, _, j = s.api('POST', '/v1/sequences', sequence_body(iso(due), ['0s']),
                         headers={'Idempotency-Key': 'seq-1'})
        eq(st, 422, f'the key with another request: {j}')
        for nid in ids:
            s.wait_status(nid, ('relayed', 'delivered'), 30)
        sent = [parse_iso([e for e in events(s, x) if e['type'] == 'relay_accepted'][0]['time'])
                for x in ids]
        eq(sent, sorted(sent), 'steps left in order')
        for x, t in zip(ids, (due, due + 2, due + 4)):
            check(sent[ids.index(x)] >= t - 0.001, f'step {x} not before its time')
        eq(notices_received(smtp), ids, 'the SMTP server got the steps in order, once each')
        first = s.notice(ids[0])
        eq((first['sequence'], first['step'], first['template']), (q['id'], 1, 'vencimento'))
        acc = events(s, ids[0])[0]
        eq((acc['sequence'], acc['step']), (q['id'], 1), 'submission_accepted names the sequence')
        st, _, q = s.api('GET', f'/v1/sequences/{q["id"]}')
        eq(q['status'], 'completed')
    finally:
        s.cleanup()
        smtp.stop()


@test
def stopping_a_sequence_cancels_what_is_left():
    smtp = SMTPServer()
    s = relay_selo(smtp)
    try:
        due = time.time() + 1
        st, _, q = s.api('POST', '/v1/sequences',
                         sequence_body(iso(due), ['0s', '+30s', '+60s', '+5d']))
        eq(st, 201, f'{q}')
        ids = [x['notice'] for x in q['steps']]
        s.wait_status(ids[0], ('relayed', 'delivered'), 30)
        st, _, j = s.api('POST', f'/v1/sequences/{q["id"]}/stop', {'reason': 'gone fishing'})
        eq(st, 422, f'{j}')
        st, _, j = s.api('POST', f'/v1/sequences/{q["id"]}/stop', {'reason': 'paid'})
        eq(st, 200, f'{j}')
        eq((j['status'], j['reason'], j['canceled_now']), ('stopped', 'paid', 3))
        eq([x['status'] for x in j['steps']], ['relayed', 'canceled', 'canceled', 'canceled'])
        check(j['stopped_at'], j)
        for nid in ids[1:]:
            last = events(s, nid)[-1]
            eq((last['type'], last['reason'], last['by'], last['sequence']),
               ('canceled', 'paid', 'sequence', q['id']))
        st, _, j = s.api('POST', f'/v1/sequences/{q["id"]}/stop', {'reason': 'agreement'})
        eq((st, j['reason'], j['canceled_now']), (200, 'paid', 0), 'a second stop changes nothing')
        other = run(['apikey', 'create', 'outra', '--data', s.data], check_rc=0)[1].strip()
        eq(s.api('GET', f'/v1/sequences/{q["id"]}', key=other)[0], 404)
        eq(s.api('POST', f'/v1/sequences/{q["id"]}/stop', {'reason': 'paid'}, key=other)[0], 404)
        eq(s.api('GET', '/v1/sequences/seq_nope')[0], 404)
        time.sleep(2)
        eq(len(smtp.messages()), 1, 'nothing more was sent')
    finally:
        s.cleanup()
        smtp.stop()


class Hooks(http.server.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0))
        Hooks.got.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@test
def a_hard_bounce_stops_the_sequence_and_a_webhook_says_so():
    bad = SMTPServer('--rcpt-reply', '550:5.1.1 no such user')
    hooks = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    s = relay_selo(bad, webhooks={'allow_private': 'yes', 'timeout_ms': '2000'})
    try:
        st, _, wh = s.api('POST', '/v1/webhooks', {
            'url': f'http://127.0.0.1:{hooks.server_port}/hook', 'events': ['notice.canceled']})
        eq(st, 201, f'{wh}')
        st, _, q = s.api('POST', '/v1/sequences',
                         sequence_body(iso(time.time() + 1), ['0s', '+1h', '+2d']))
        eq(st, 201, f'{q}')
        ids = [x['notice'] for x in q['steps']]
        s.wait_status(ids[0], ('failed',), 30)
        st, _, j = s.api('GET', f'/v1/sequences/{q["id"]}')
        eq((j['status'], j['reason']), ('stopped', 'hard_bounce'), f'{j}')
        eq([x['status'] for x in j['steps']], ['failed', 'canceled', 'canceled'])
        for nid in ids[1:]:
            last = events(s, nid)[-1]
            eq((last['type'], last['reason'], last['bounced_notice']),
               ('canceled', 'hard_bounce', ids[0]))
        wait_until(lambda: len(Hooks.got) >= 2, 30, 0.1, 'two notice.canceled webhooks')
        got = sorted(Hooks.got, key=lambda h: h['data']['notice'])
        eq([h['type'] for h in got], ['notice.canceled'] * 2)
        eq(sorted(h['data']['notice'] for h in got), sorted(ids[1:]))
        entry = json.loads(got[0]['data']['entry'])
        eq((entry['reason'], entry['sequence']), ('hard_bounce', q['id']))
        check(all(isinstance(h['data']['log_index'], int) for h in got), 'in the log')
        # the address is suppressed: a new sequence to it is refused
        st, _, j = s.api('POST', '/v1/sequences', sequence_body(iso(time.time() + 60), ['0s']))
        eq(st, 422, f'{j}')
        check(j['type'].endswith(':suppressed'), f'{j}')
    finally:
        s.cleanup()
        bad.stop()
        hooks.shutdown()
        hooks.server_close()


@test
def bad_sequences_are_422_and_store_nothing():
    s = Selo().start()
    try:
        due = iso(time.time() + 86400)
        cases = [
            (sequence_body(None, ['0d']), 'due'),
            (sequence_body('10/12/2026', ['0d']), 'due'),
            (sequence_body(due, []), 'steps'),
            (sequence_body(due, ['0d'] * 21), 'steps'),
            (sequence_body(due, ['5 days']), 'steps[0].offset'),
            (sequence_body(due, ['+400d']), 'steps[0].offset'),
            (sequence_body(due, ['0d', '+95d']), 'steps[1].offset'),
            (sequence_body(iso(time.time() - 10 * 86400), ['-5d', '0d']), 'steps'),
            (dict(sequence_body(due, ['0d']), steps=[{'template': 'nao-existe', 'offset': '0d'}]),
             'steps[0].template'),
            (dict(sequence_body(due, ['0d']), vars={'nome': 'x'}), 'steps[0].vars.credor'),
            (dict(sequence_body(due, ['0d']), to='not an address'), 'to'),
            (dict(sequence_body(due, ['0d']), zone='Nowhere/City'), 'zone'),
            (dict(sequence_body(due, ['0d']), color='red'), 'color'),
            (dict(sequence_body(due, ['0d']), steps=[{'template': 'atraso', 'offset': '0d',
                                                      'when': 'now'}]), 'steps[0].when'),
        ]
        for body, field in cases:
            st, _, j = s.api('POST', '/v1/sequences', body)
            eq(st, 422, f'{body}: {j}')
            check(field in [e['field'] for e in j['errors']], f'{field} in {j["errors"]}')
        eq(s.api('POST', '/v1/sequences', raw=b'[1,2]',
                 headers={'Content-Type': 'application/json'})[0], 400)
        st, _, lst = s.api('GET', '/v1/notices?limit=1000')
        eq(lst['notices'], [], 'nothing stored')
        # a date-only due means that day at 09:00 in America/Sao_Paulo (12:00 UTC)
        st, _, q = s.api('POST', '/v1/sequences', sequence_body('2027-01-20', ['-5d', '0d', '+3d']))
        eq(st, 201, f'{q}')
        eq([x['at'] for x in q['steps']], ['2027-01-15T12:00:00.000Z', '2027-01-20T12:00:00.000Z',
                                           '2027-01-23T12:00:00.000Z'])
        st, _, q = s.api('POST', '/v1/sequences', sequence_body(
            '2027-01-20', ['0d'], due_time='14:30', zone='America/Manaus'))
        eq(q['steps'][0]['at'], '2027-01-20T18:30:00.000Z', f'{q}')
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
