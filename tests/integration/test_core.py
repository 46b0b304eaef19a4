#!/usr/bin/python3
"""Core end to end (issue 2): `selo init`, `selo serve` in relay mode against a
real SMTP server on 127.0.0.1, notices through the HTTP API, and the message
checked with tools Selo did not write: dkimpy for both DKIM signatures,
`openssl cms -verify` for S/MIME, Python's email parser for every part. Also
every kind of bad input, idempotency, batches, retries and the CLI."""
import base64, email, email.policy, hashlib, json, os, stat, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403
import dkim

PDF = (b'%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n'
       b'2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n')

LEMBRETE = {
    'to': 'devedor@destino.example', 'to_name': 'João da Silva',
    'template': 'lembrete', 'reference': 'FAT-2026-0001',
    'vars': {'nome': 'João da Silva', 'valor': '1234.56', 'vencimento': '2026-12-01',
             'credor': 'Loja Exemplo Ltda', 'documento': 'FAT-2026-0001',
             'link_pagamento': 'https://pagamento.example/boleto?id=42&x=1'},
    'attachments': [{'filename': 'boleto-dezembro.pdf', 'content_type': 'application/pdf',
                     'content_base64': base64.b64encode(PDF).decode()}],
}


def notice(**over):
    n = json.loads(json.dumps(LEMBRETE))
    n.update(over)
    return n


def relay_selo(server, **conf):
    c = {'smtp': {'mode': 'relay', 'relay': f'127.0.0.1:{server.port}', 'starttls': 'no'}}
    for k, v in conf.items():
        c.setdefault(k, {}).update(v)
    return Selo(**c).start()


def dkim_dns(data):
    keys = {}
    for sel, f in (('selo', 'dkim-rsa.txt'), ('selo-ed25519', 'dkim-ed25519.txt')):
        with open(os.path.join(data, 'keys', f)) as fh:
            keys[f'{sel}._domainkey.cobranca.example.'.encode()] = fh.read().strip().encode()

    def dnsfunc(name, timeout=5):
        return keys.get(name if name.endswith(b'.') else name + b'.')
    return dnsfunc


def dkim_signatures(eml):
    msg = email.message_from_bytes(eml)
    return msg.get_all('DKIM-Signature') or []


@test
def init_makes_keys_and_refuses_overwrite():
    d = tempfile.mkdtemp(prefix='selo-init-')
    try:
        data = os.path.join(d, 'data')
        rc, out, err = run(['init', '--data', data, '--domain', 'cobranca.example'], check_rc=0)
        check(out.startswith('api_key selo_'), f'api key first on stdout: {out[:60]!r}')
        check('selo._domainkey.cobranca.example. IN TXT "v=DKIM1; k=rsa; p=' in out, out)
        check('selo-ed25519._domainkey.cobranca.example. IN TXT "v=DKIM1; k=ed25519; p=' in out)
        check('log_vkey cobranca.example/selo-log+' in out)
        eq(stat.S_IMODE(os.stat(os.path.join(data, 'keys')).st_mode), 0o700, 'keys dir mode')
        for f in ('dkim-rsa.pem', 'dkim-ed25519.pem', 'log.key', 'smime.pem', 'tsa.pem',
                  'token.key'):
            eq(stat.S_IMODE(os.stat(os.path.join(data, 'keys', f)).st_mode), 0o600, f)
        for f in ('dkim-rsa.txt', 'dkim-ed25519.txt', 'log.vkey', 'smime.crt', 'ca.crt', 'tsa.crt'):
            check(os.path.exists(os.path.join(data, 'keys', f)), f)
        before = open(os.path.join(data, 'keys', 'log.key')).read()
        rc, out, err = run(['init', '--data', data])
        eq(rc, 2, 'second init without --force')
        check('--force' in err, err)
        eq(open(os.path.join(data, 'keys', 'log.key')).read(), before, 'log key unchanged')
        rc, _, err = run(['init'])
        eq(rc, 2, 'init without --data')
        rc, out, _ = run(['init', '--help'], check_rc=0)
        check('--domain' in out)
    finally:
        subprocess.run(['rm', '-rf', d])


@test
def notice_end_to_end_signed_and_verified():
    smtp = SMTPServer()
    s = relay_selo(smtp)
    try:
        st, hd, j = s.api('POST', '/v1/notices', notice())
        eq(st, 202, f'POST /v1/notices {j}')
        eq(j['status'], 'queued')
        nid = j['id']
        eq(hd.get('location'), f'/v1/notices/{nid}')
        n = s.wait_status(nid, ['relayed'])
        msgs = smtp.messages()
        eq(len(msgs), 1, 'messages at the SMTP server')
        eml, env = msgs[0]
        eq(env.get('rcpt_tos'), ['devedor@destino.example'], 'envelope recipient')
        # the stored .eml is byte-identical to what the server received
        st, hd, stored = s.api('GET', f'/v1/notices/{nid}/message')
        eq(st, 200, 'GET message')
        eq(hd.get('content-type'), 'message/rfc822')
        check(stored == eml, 'stored .eml differs from the bytes the SMTP server received')
        eq(hashlib.sha256(eml).hexdigest(), n['sha256'], 'stored SHA-256')
        # DKIM: both signatures verify with dkimpy
        sigs = dkim_signatures(eml)
        eq(len(sigs), 2, 'two DKIM-Signature headers')
        d = dkim.DKIM(eml)
        dns = dkim_dns(s.data)
        algos = set()
        for i in range(2):
            check(d.verify(idx=i, dnsfunc=dns), f'DKIM signature {i} does not verify')
            algos.add([t.split('=')[1].strip() for t in sigs[i].replace('\r\n', '').split(';')
                       if t.strip().startswith('a=')][0])
        eq(algos, {'rsa-sha256', 'ed25519-sha256'}, 'DKIM algorithms')
        # S/MIME verifies with openssl against the dev CA
        with tempfile.NamedTemporaryFile(suffix='.eml') as f:
            f.write(eml)
            f.flush()
            p = subprocess.run(['openssl', 'cms', '-verify', '-in', f.name, '-CAfile',
                                os.path.join(s.data, 'keys', 'ca.crt'), '-out', '/dev/null'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            eq(p.returncode, 0, f'openssl cms -verify: {p.stderr.decode()}')
        # Python's email parser reads every part
        m = email.message_from_bytes(eml, policy=email.policy.default)
        eq(m.get_content_type(), 'multipart/signed')
        eq(str(m['To']), 'João da Silva <devedor@destino.example>')
        eq(str(m['Subject']), 'Lembrete de pagamento: vencimento em 01/12/2026 – Loja Exemplo Ltda',
           'the subject as the template renders it')
        check(m['Message-ID'] and m['Date'] and m['From'], 'Message-ID, Date, From')
        kinds = [p.get_content_type() for p in m.walk()]
        for want in ('text/plain', 'text/html', 'application/pdf', 'application/pkcs7-signature'):
            check(want in kinds, f'{want} in {kinds}')
        text = html = pdf = None
        for p in m.walk():
            if p.get_content_type() == 'text/plain' and text is None:
                text = p.get_content()
            elif p.get_content_type() == 'text/html':
                html = p.get_content()
            elif p.get_content_type() == 'application/pdf':
                pdf = p.get_content()
                eq(p.get_filename(), 'boleto-dezembro.pdf')
        eq(pdf, PDF, 'attachment bytes')
        check('João da Silva' in text and 'R$ 1.234,56' in text and '01/12/2026' in text, text)
        check('Confirmar recebimento' in html and f'127.0.0.1:{s.track_port}/r/' in html, 'confirm link')
        check(f'127.0.0.1:{s.track_port}/o/' in html, 'pixel')
        check('pagamento.example' not in html, 'payment link rewritten to the tracker')
        check(f'127.0.0.1:{s.track_port}/c/' in html, 'click link')
        # events: accepted, sealed, relay_accepted; no personal data in entries
        types = [e['type'] for e in n['events']]
        eq(types, ['submission_accepted', 'content_sealed', 'relay_accepted'], 'events')
        for e in s.notice(nid)['events']:
            raw = json.dumps(e['entry'], ensure_ascii=False)
            for secret in ('devedor@destino.example', 'João', 'FAT-2026-0001'):
                check(secret not in raw, f'{secret} in a log entry: {raw}')
            eq(list(e['entry'])[:4], ['v', 'type', 'notice', 'time'], 'entry key order')
            eq(e['entry']['notice'], nid)
        sealed = n['events'][1]['entry']
        eq(sealed['sha256'], n['sha256'], 'content_sealed digest')
        relay = s.notice(nid)['events'][2]['entry']
        eq(relay['code'], 250, 'relay reply code')
        check(relay['transcript'].startswith('sha256:'), 'transcript is a commitment')
    finally:
        s.cleanup()
        smtp.stop()


BAD_INPUTS = [
    # (name, body or raw bytes, headers, status, field expected in errors)
    ('crlf_to', notice(to='devedor@destino.example\r\nBcc: x@evil.example'), None, 422, 'to'),
    ('crlf_to_name', notice(to_name='João\r\nBcc: x@evil.example'), None, 422, 'to_name'),
    ('crlf_subject', {'to': 'a@destino.example', 'subject': 'Oi\r\nBcc: x@evil.example',
                      'text': 'corpo'}, None, 422, 'subject'),
    ('lf_var', notice(vars=dict(LEMBRETE['vars'], nome='João\nBcc: x@evil.example')), None, 422,
     'vars.nome'),
    ('crlf_filename', notice(attachments=[dict(LEMBRETE['attachments'][0],
                                               filename='a.pdf\r\nBcc: x@evil.example')]),
     None, 422, 'attachments[0].filename'),
    ('nul_to_name', notice(to_name='João\u0000'), None, 400, None),
    ('invalid_address', notice(to='not-an-address'), None, 422, 'to'),
    ('overlong_address', notice(to='a' * 65 + '@destino.example'), None, 422, 'to'),
    ('overlong_total', notice(to='a@' + '.'.join(['b' * 60] * 5) + '.example'), None, 422, 'to'),
    ('overlong_label', notice(to='a@' + 'b' * 64 + '.example'), None, 422, 'to'),
    ('unknown_template', notice(template='nao-existe'), None, 422, 'template'),
    ('missing_variable', notice(vars={'nome': 'João'}), None, 422, 'vars.valor'),
    ('bad_base64', notice(attachments=[dict(LEMBRETE['attachments'][0],
                                            content_base64='%%%')]), None, 422,
     'attachments[0].content_base64'),
    ('unknown_field', notice(bcc='x@evil.example'), None, 422, 'bcc'),
    ('invalid_json', b'{"to": ', None, 400, None),
    ('invalid_utf8', b'{"to": "a@destino.example", "subject": "\xff\xfe", "text": "x"}', None,
     400, None),
    ('not_object', b'[1,2]', None, 400, None),
    ('wrong_content_type', notice(), {'Content-Type': 'text/plain'}, 415, None),
]


@test
def bad_input_is_refused_and_changes_nothing():
    smtp = SMTPServer()
    s = relay_selo(smtp, api={'max_body': '65536'})
    try:
        for name, body, hdrs, want, field in BAD_INPUTS:
            raw = body if isinstance(body, bytes) else None
            st, hd, j = s.api('POST', '/v1/notices', None if raw else body, headers=hdrs,
                              raw=raw)
            eq(st, want, f'{name}: status ({j})')
            eq(hd.get('content-type'), 'application/problem+json', f'{name}: content type')
            check(j.get('type', '').startswith('urn:selo:problem:') and j.get('detail'),
                  f'{name}: problem document {j}')
            eq(j.get('status'), want, f'{name}: problem status')
            if field:
                fields = [e['field'] for e in j.get('errors', [])]
                check(field in fields, f'{name}: {field} not in {fields}')
        # oversized body: 413
        big = notice(attachments=[dict(LEMBRETE['attachments'][0],
                                       content_base64=base64.b64encode(b'x' * 100000).decode())])
        st, _, j = s.api('POST', '/v1/notices', big)
        eq(st, 413, f'oversized body {j}')
        # no key, wrong key, revoked key: 401
        st, hd, j = curl('POST', s.url + '/v1/notices', notice())
        eq(st, 401, 'no key')
        check('bearer' in hd.get('www-authenticate', '').lower(), 'WWW-Authenticate')
        st, _, _ = s.api('POST', '/v1/notices', notice(), key='selo_' + 'A' * 32)
        eq(st, 401, 'wrong key')
        st, _, _ = s.api('GET', '/v1/notices', key='nonsense')
        eq(st, 401, 'malformed key')
        # nothing stored, nothing sent
        st, _, j = s.api('GET', '/v1/notices')
        eq(st, 200)
        eq(j['notices'], [], 'no notice stored')
        time.sleep(1.5)
        eq(smtp.messages(), [], 'nothing sent')
        rc, out, _ = run(['status', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '--data', s.data])
        eq(rc, 1, 'status of an unknown id')
    finally:
        s.cleanup()
        smtp.stop()


INVISIBLE = [
    # (what, body, field, what the error says): issue 17, U+0085 and U+2028
    # were accepted in names and subjects though docs/api.md said "no
    # control characters"
    ('nel_to_name', notice(to_name='Maria\u0085Souza'), 'to_name', 'U+0085 (a control character) at byte 5'),
    ('ls_to_name', notice(to_name='Maria\u2028Bcc: x@evil.example'), 'to_name',
     'U+2028 (LINE SEPARATOR) at byte 5'),
    ('rlo_to_name', notice(to_name='\u202eazuoS airaM'), 'to_name', 'U+202E (RIGHT-TO-LEFT OVERRIDE) at byte 0'),
    ('ps_subject', {'to': 'a@destino.example', 'subject': 'Aviso\u2029importante', 'text': 'corpo'},
     'subject', 'U+2029 (PARAGRAPH SEPARATOR) at byte 5'),
    ('c1_subject', {'to': 'a@destino.example', 'subject': 'Aviso\u0080', 'text': 'corpo'},
     'subject', 'U+0080 (a control character)'),
    ('isolate_reference', notice(reference='FAT\u2066-1'), 'reference', 'U+2066 (LEFT-TO-RIGHT ISOLATE)'),
    ('rlo_filename', notice(attachments=[dict(LEMBRETE['attachments'][0], filename='boleto\u202efdp.exe')]),
     'attachments[0].filename', 'U+202E (RIGHT-TO-LEFT OVERRIDE) at byte 6'),
    ('nel_text', {'to': 'a@destino.example', 'subject': 'Aviso', 'text': 'linha\u0085linha'},
     'text', 'U+0085 (a control character) at byte 5'),
    ('ls_var_in_subject', notice(vars=dict(LEMBRETE['vars'], credor='Loja\u2028Bcc: x@evil.example')),
     'vars', 'the rendered subject contains U+2028 (LINE SEPARATOR)'),
]


@test
def invisible_and_bidi_characters_are_refused_by_code_point():
    smtp = SMTPServer()
    s = relay_selo(smtp)
    try:
        for name, body, field, says in INVISIBLE:
            st, _, j = s.api('POST', '/v1/notices', body)
            eq(st, 422, f'{name}: status ({j})')
            errs = {e['field']: e['detail'] for e in j.get('errors', [])}
            check(field in errs, f'{name}: {field} not in {errs}')
            check(says in errs.get(field, ''), f'{name}: {errs.get(field)!r} lacks {says!r}')
        eq(s.api('GET', '/v1/notices')[2]['notices'], [], 'nothing stored')
        # what right-to-left names need is accepted: letters and the marks
        # U+200F / U+200E; in a body the separators are text
        st, _, j = s.api('POST', '/v1/notices', notice(to_name='\u05e9\u05e8\u05d4 \u200f(1)'))
        eq(st, 202, f'a Hebrew name with RLM: {j}')
        st, _, j = s.api('POST', '/v1/notices', {'to': 'a@destino.example', 'subject': 'Aviso',
                                                 'text': 'linha\u2028linha \u202eabc'})
        eq(st, 202, f'separators and bidi controls in a body: {j}')
    finally:
        s.cleanup()
        smtp.stop()


@test
def idempotent_replay_never_sends_twice():
    smtp = SMTPServer()
    s = relay_selo(smtp)
    try:
        h = {'Idempotency-Key': 'fatura-42-lembrete'}
        st, hd1, a = s.api('POST', '/v1/notices', notice(), headers=h)
        eq(st, 202)
        check('idempotent-replayed' not in hd1)
        st, hd2, b = s.api('POST', '/v1/notices', notice(), headers=h)
        eq(st, 202)
        eq(b['id'], a['id'], 'replay returns the first notice')
        eq(hd2.get('idempotent-replayed'), 'true')
        st, _, c = s.api('POST', '/v1/notices', notice(reference='outra'), headers=h)
        eq(st, 422, f'same key, different body {c}')
        check('idempotency' in c['type'], c['type'])
        s.wait_status(a['id'], ['relayed'])
        time.sleep(1.0)
        eq(len(smtp.messages()), 1, 'one message sent')
        st, _, j = s.api('GET', '/v1/notices')
        eq(len(j['notices']), 1, 'one notice stored')
    finally:
        s.cleanup()
        smtp.stop()


@test
def batch_has_per_item_results():
    smtp = SMTPServer()
    s = relay_selo(smtp)
    try:
        items = [notice(reference='B-1'), notice(to='bad address'), notice(reference='B-3')]
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': items})
        eq(st, 200, f'batch {j}')
        eq((j['accepted'], j['rejected']), (2, 1))
        r = j['results']
        check('id' in r[0] and 'id' in r[2] and 'error' in r[1], r)
        eq(r[1]['error']['status'], 422)
        eq([e['field'] for e in r[1]['error']['errors']], ['to'])
        for x in (r[0], r[2]):
            s.wait_status(x['id'], ['relayed'])
        st, _, j = s.api('GET', '/v1/notices?reference=B-3')
        eq([n['id'] for n in j['notices']], [r[2]['id']], 'filter by reference')
        st, _, j = s.api('GET', '/v1/notices?limit=1')
        eq(len(j['notices']), 1)
        st, _, j2 = s.api('GET', f'/v1/notices?limit=1&after={j["next"]}')
        check(j2['notices'][0]['id'] > j['notices'][0]['id'], 'paging moves forward')
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': [notice()] * 3},
                         headers={})
        eq(st, 200)
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': []})
        eq(st, 422, 'empty batch')
        # the documented 413 batch-too-large: a server whose limit is 2
        s.stop()
        s.conf['limits'] = {'max_batch': '2'}
        s.write_conf()
        s.start()
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': [notice()] * 3})
        eq((st, j['type']), (413, 'urn:selo:problem:batch-too-large'), f'3 items over 2: {j}')
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': [notice()] * 2})
        eq((st, j['accepted']), (200, 2), f'2 items, the limit: {j}')
    finally:
        s.cleanup()
        smtp.stop()


@test
def tempfail_is_retried_then_delivered():
    port = free_port()
    bad = SMTPServer('--reply', '451:try again later', port=port)
    s = relay_selo(bad)
    good = None
    try:
        st, _, j = s.api('POST', '/v1/notices', notice())
        nid = j['id']
        n = s.wait_status(nid, ['deferred'])
        ev = n['events'][-1]
        eq(ev['type'], 'delivery_deferred')
        eq(ev['entry']['code'], 451)
        check('retry_at' in ev['entry'])
        bad.stop()
        good = SMTPServer(port=port)
        n = s.wait_status(nid, ['relayed'], timeout=30)
        types = [e['type'] for e in n['events']]
        eq(types[0:3], ['submission_accepted', 'content_sealed', 'delivery_deferred'])
        eq(types[-1], 'relay_accepted')
        eq(types.count('content_sealed'), 1, 'sealed once; the resend uses the same bytes')
        eml, _ = good.messages()[0]
        st, _, stored = s.api('GET', f'/v1/notices/{nid}/message')
        check(stored == eml, 'resent bytes equal the sealed bytes')
    finally:
        s.cleanup()
        bad.stop()
        if good:
            good.stop()


@test
def permanent_failure_is_final():
    smtp = SMTPServer('--reply', '550:5.7.1 message refused')
    s = relay_selo(smtp)
    try:
        st, _, j = s.api('POST', '/v1/notices', notice())
        n = s.wait_status(j['id'], ['failed'])
        ev = n['events'][-1]
        eq(ev['type'], 'delivery_failed')
        eq(ev['entry']['code'], 550)
        eq(ev['entry']['reason'], 'rejected')
        time.sleep(2.5)
        eq(s.notice(j['id'])['attempts'], 1, 'no retry after a 5xx')
    finally:
        s.cleanup()
        smtp.stop()


@test
def cli_submit_status_apikeys_and_maildir():
    s = Selo()
    try:
        path = os.path.join(s.dir, 'n.json')
        with open(path, 'w') as f:
            json.dump(notice(), f)
        rc, out, err = run(['submit', '--data', s.data, path], check_rc=0)
        nid = out.strip()
        eq(len(nid), 26, f'id alone on stdout: {out!r}')
        bad = os.path.join(s.dir, 'bad.json')
        with open(bad, 'w') as f:
            json.dump(notice(to='x'), f)
        rc, out, err = run(['submit', '--data', s.data, bad])
        eq(rc, 2, 'invalid notice')
        check('to:' in err, err)
        eq(out, '', 'nothing on stdout')
        s.start()

        def relayed():
            rc, out, _ = run(['status', nid, '--data', s.data])
            j = json.loads(out) if rc == 0 else {}
            return j if j.get('status') == 'relayed' else None
        n = wait_until(relayed, 30, 0.1, 'the CLI notice to be relayed')
        eq([e['type'] for e in n['events']],
           ['submission_accepted', 'content_sealed', 'relay_accepted'], 'events')
        outbox = os.path.join(s.data, 'outbox', 'new')
        files = os.listdir(outbox)
        eq(len(files), 1, 'maildir file')
        with open(os.path.join(outbox, files[0]), 'rb') as f:
            eq(hashlib.sha256(f.read()).hexdigest(), n['sha256'], 'maildir bytes')
        # API keys: create, use, list, revoke
        rc, key, _ = run(['apikey', 'create', 'cobrador', '--data', s.data], check_rc=0)
        key = key.strip()
        check(key.startswith('selo_') and '\n' not in key)
        st, _, j = s.api('GET', '/v1/notices', key=key)
        eq(st, 200)
        eq(j['notices'], [], 'a key sees only its own notices')
        st, _, _ = s.api('GET', f'/v1/notices/{nid}', key=key)
        eq(st, 404, "another key's notice")
        rc, out, _ = run(['apikey', 'list', '--data', s.data], check_rc=0)
        check('cobrador' in out and 'active' in out and key not in out, out)
        kid = [l.split('\t')[0] for l in out.splitlines() if 'cobrador' in l][0]
        st, _, _ = s.api('POST', '/v1/notices', notice(), key=key)
        eq(st, 202, 'the new key accepts (and is now in the API key cache)')
        run(['apikey', 'revoke', kid, '--data', s.data], check_rc=0)
        st, _, _ = s.api('GET', '/v1/notices', key=key)
        eq(st, 401, 'revoked key')
        # at once for accepts too, though the key was cached a moment ago
        st, _, j = s.api('POST', '/v1/notices', notice(), key=key)
        eq(st, 401, f'accept with the revoked key {j}')
        st, _, j = s.api('POST', '/v1/notices/batch', {'notices': [notice()]}, key=key,
                         headers={'Idempotency-Key': 'after-revoke'})
        eq(st, 401, f'batch with the revoked key {j}')
        (count,), = s.sql(f'SELECT count(*) FROM notices WHERE apikey_id = {int(kid)}')
        eq(count, '1', 'nothing stored for the revoked key')
        rc, _, _ = run(['apikey', 'revoke', '999', '--data', s.data])
        eq(rc, 1, 'revoke unknown')
        rc, _, _ = run(['apikey', '--data', s.data])
        eq(rc, 2, 'apikey without subcommand')
        for cmd in ('init', 'serve', 'apikey', 'submit', 'status'):
            rc, out, _ = run([cmd, '--help'])
            eq(rc, 0, f'{cmd} --help')
            check('usage: selo ' + cmd in out, out)
        rc, _, err = run(['nope'])
        eq(rc, 2)
        eq(s.stop(), 0, 'selo serve exits 0 on SIGTERM')
    finally:
        s.cleanup()


@test
def starttls_and_auth_through_the_relay():
    d = tempfile.mkdtemp(prefix='selo-tls-')
    cert, key = os.path.join(d, 'c.pem'), os.path.join(d, 'k.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                    '-out', cert, '-days', '1', '-subj', '/CN=relay.test'], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    smtp = SMTPServer('--tls', cert, key, '--require-tls', '--auth', 'cobrador:s3nh4-secreta')
    s = relay_selo(smtp, smtp={'starttls': 'require', 'auth_user': 'cobrador',
                               'auth_password': 's3nh4-secreta'})
    try:
        st, _, j = s.api('POST', '/v1/notices', notice())
        n = s.wait_status(j['id'], ['relayed'])
        entry = n['events'][-1]['entry']
        check(entry.get('tls', '').startswith('TLS'), f'TLS in the event: {entry}')
        eq(len(smtp.messages()), 1)
        # the transcript is disclosed only in the store; it must not hold the password
        dump = '\n'.join(r[0] for r in s.sql('SELECT value FROM disclosures')).encode()
        check(b'AUTH' in dump and b'[redacted]' in dump, 'AUTH redacted in the transcript')
        check(b's3nh4-secreta' not in dump and base64.b64encode(b'\0cobrador\0s3nh4-secreta')
              not in dump, 'password in the transcript')
        log = s.serve_log()
        check('s3nh4-secreta' not in log, 'password in the log')
    finally:
        s.cleanup()
        smtp.stop()
        subprocess.run(['rm', '-rf', d])


@test
def health_and_metrics():
    s = Selo().start()
    try:
        st, _, j = curl('GET', s.url + '/healthz')
        eq(st, 200)
        eq(json.loads(j)['status'], 'ok')
        st, hd, body = curl('GET', s.url + '/metrics')
        eq(st, 200)
        check(b'selo_notices{state="queued"}' in body, body[:200])
        check(b'\nselo_store_wal_restarts_total 0\n' in body, body[-300:])
        st, _, _ = s.api('DELETE', '/v1/notices')
        eq(st, 405)
        st, _, _ = s.api('GET', '/nowhere')
        eq(st, 404)
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
