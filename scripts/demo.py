#!/usr/bin/python3
"""`make demo`: the whole loop on this machine, in a minute.

Starts `selo serve` (on a fresh data directory) relaying to a local SMTP
server, submits a notice over the API, plays the recipient with curl (opens
the message: the pixel; clicks the payment link; presses "Confirmar
recebimento"), exports the receipt and verifies it offline with
`selo verify`, then prints where every artifact is and stops everything it
started. Nothing leaves 127.0.0.1."""
import email, email.policy, json, os, re, shutil, subprocess, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
os.environ.setdefault('SELO_BIN', os.path.join(ROOT, sys.argv[1] if len(sys.argv) > 1 else 'build', 'selo'))
import selotest  # noqa: E402

OUT = os.path.join(ROOT, 'demo-out')
UA = ('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
      'Chrome/131.0.0.0 Safari/537.36')


def say(*a):
    print('demo:', *a, flush=True)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    smtp = selotest.SMTPServer()
    s = selotest.Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'},
                      track={'after_delivery_s': '1'})
    try:
        s.start()
        say(f'selo serve is up: API {s.url}, tracker http://127.0.0.1:{s.track_port}, data {s.data}')
        notice = {'to': 'devedor@destino.example', 'to_name': 'João da Silva', 'template': 'lembrete',
                  'reference': 'FAT-2026-0001',
                  'vars': {'nome': 'João da Silva', 'valor': '1234.56', 'vencimento': '2026-12-01',
                           'credor': 'Loja Exemplo Ltda', 'documento': 'FAT-2026-0001',
                           'link_pagamento': f'http://127.0.0.1:{s.track_port}/log/checkpoint'}}
        st, _, j = s.api('POST', '/v1/notices', notice)
        say(f'POST /v1/notices -> {st} {j}')
        n = s.wait_status(j['id'], ['relayed'])
        eml, _ = smtp.messages()[0]
        with open(os.path.join(OUT, 'message.eml'), 'wb') as f:
            f.write(eml)
        say(f'sent and relayed; message {n["sha256"][:16]}... ({len(eml)} bytes)')
        html = next(p for p in email.message_from_bytes(eml, policy=email.policy.default).walk()
                    if p.get_content_type() == 'text/html').get_content()
        with open(os.path.join(OUT, 'message.html'), 'w', encoding='utf-8') as f:
            f.write(html)
        base = f'http://127.0.0.1:{s.track_port}'
        pixel = re.search(re.escape(base) + r'/o/[\w-]+\.gif', html).group(0)
        click = re.search(re.escape(base) + r'/c/[\w-]+', html).group(0)
        confirm = re.search(re.escape(base) + r'/r/[\w-]+', html).group(0)
        time.sleep(1.2)
        for what, argv in (('opens the message (pixel)', ['curl', '-s', '-o', '/dev/null', pixel]),
                           ('clicks the payment link', ['curl', '-s', '-o', '/dev/null', click]),
                           ('presses "Confirmar recebimento"',
                            ['curl', '-s', '-o', os.path.join(OUT, 'confirmed.html'), '-X', 'POST',
                             confirm])):
            subprocess.run(argv[:1] + ['-A', UA, '-w', '%{http_code}'] + argv[1:],
                           stdout=subprocess.PIPE, check=True)
            say(f'the recipient {what}')

        def receipt():
            st, _, r = s.api('GET', f'/v1/notices/{j["id"]}/receipt')
            types = [json.loads(e['entry'])['type'] for e in r['events']] if st == 200 else []
            return r if 'read_confirmed' in types else None
        r = selotest.wait_until(receipt, 30, 0.3, 'the receipt')
        path = os.path.join(OUT, 'receipt.json')
        with open(path, 'w') as f:
            json.dump(r, f, indent=1)
        for e in r['events']:
            x = json.loads(e['entry'])
            say(f'  log #{e["index"]:<3} {x["type"]:<20} {x["time"]}  {x.get("class", "")} {x.get("reason", "")}')
        rc, out, _ = selotest.run(['verify', path, '--key', os.path.join(s.data, 'keys', 'log.vkey'),
                                   '--tsa-ca', os.path.join(s.data, 'keys', 'ca.crt')])
        with open(os.path.join(OUT, 'verify.txt'), 'w') as f:
            f.write(out)
        say(f'selo verify: {out.strip().splitlines()[-1]} (exit {rc})')
        shutil.copy(os.path.join(s.data, 'keys', 'log.vkey'), OUT)
        shutil.copy(os.path.join(s.data, 'keys', 'ca.crt'), OUT)
        print(f'''
demo: artifacts in {OUT}/
  message.eml     the exact message sent (S/MIME + DKIM signed)
  message.html    its HTML part, as the recipient saw it
  confirmed.html  the confirmation page after the button
  receipt.json    the receipt (selo-receipt/v1)
  verify.txt      `selo verify` output
  log.vkey        the log's verifier key; ca.crt the dev CA (S/MIME, TSA)
Check it yourself: {os.environ["SELO_BIN"]} verify {path} --key {OUT}/log.vkey --tsa-ca {OUT}/ca.crt''')
        return 0 if rc == 0 else 1
    finally:
        s.cleanup()
        smtp.stop()
        say('stopped everything it started')


if __name__ == '__main__':
    sys.exit(main())
