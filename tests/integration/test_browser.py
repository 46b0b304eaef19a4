#!/usr/bin/python3
"""The recipient in a real browser (issue 4): headless Chromium (Debian's,
driven by Playwright from npm, tests/browser/) opens the HTML part of a
message Selo really sent, which loads the pixel; clicks the tracked link and
lands on a page served by this test on 127.0.0.1; opens the confirmation page
and presses the button. Then the notice's receipt holds opened, clicked and
read_confirmed, all `human`, and `selo verify` accepts it. The screenshot of
the confirmation page is left in tests/out/browser/."""
import email, email.policy, http.server, json, os, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

BROWSER_DIR = os.path.join(ROOT, 'tests', 'browser')
OUT = os.path.join(ROOT, 'tests', 'out', 'browser')


def npm_ready():
    if os.path.isdir(os.path.join(BROWSER_DIR, 'node_modules', 'playwright-core')):
        return
    p = subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=BROWSER_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if p.returncode != 0:
        raise Fail('npm ci in tests/browser failed: ' + p.stdout.decode()[-1500:])


class Landing(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'<!doctype html><html lang="pt-BR"><meta charset="utf-8"><title>Pagamento</title>' \
               b'<h1>Pagamento</h1></html>'
        self.send_response(200)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@test
def recipient_in_chromium_opens_clicks_and_confirms():
    npm_ready()
    land = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Landing)
    threading.Thread(target=land.serve_forever, daemon=True).start()
    landing = f'http://127.0.0.1:{land.server_address[1]}/pagar'
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'},
             track={'after_delivery_s': '1'}).start()
    try:
        n = {'to': 'devedor@destino.example', 'to_name': 'Ana Lima', 'template': 'lembrete',
             'vars': {'nome': 'Ana Lima', 'valor': '250.00', 'vencimento': '2026-12-15',
                      'credor': 'Loja Exemplo Ltda', 'link_pagamento': landing + '?boleto=9'}}
        st, _, j = s.api('POST', '/v1/notices', n)
        eq(st, 202)
        s.wait_status(j['id'], ['relayed'])
        eml, _ = smtp.messages()[0]
        m = email.message_from_bytes(eml, policy=email.policy.default)
        html = next(p for p in m.walk() if p.get_content_type() == 'text/html').get_content()
        os.makedirs(OUT, exist_ok=True)
        page = os.path.join(OUT, 'message.html')
        with open(page, 'w', encoding='utf-8') as f:
            f.write(html)
        time.sleep(1.5)  # a person reads before clicking (track.after_delivery_s = 1)
        p = subprocess.run(['node', os.path.join(BROWSER_DIR, 'recipient.mjs'), page, landing, OUT],
                           cwd=BROWSER_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        eq(p.returncode, 0, 'browser: ' + p.stdout.decode()[-3000:])
        seen = json.loads(p.stdout.decode().strip().splitlines()[-1])
        check(seen['landed'].startswith(landing), seen)
        check(os.path.getsize(os.path.join(OUT, 'confirmation.png')) > 1000, 'screenshot')

        def receipt():
            st, _, r = s.api('GET', f'/v1/notices/{j["id"]}/receipt')
            if st != 200:
                return None
            types = [json.loads(e['entry'])['type'] for e in r['events']]
            return r if {'opened', 'clicked', 'read_confirmed'} <= set(types) else None
        r = wait_until(receipt, 20, 0.3, 'opened, clicked and read_confirmed in the receipt')
        for e in r['events']:
            entry = json.loads(e['entry'])
            if entry['type'] in ('opened', 'clicked', 'read_confirmed'):
                eq(entry['class'], 'human', f'{entry["type"]} classified {entry}')
        path = os.path.join(OUT, 'receipt.json')
        with open(path, 'w') as f:
            json.dump(r, f)
        rc, out, _ = run(['verify', path, '--key', os.path.join(s.data, 'keys', 'log.vkey'),
                          '--tsa-ca', os.path.join(s.data, 'keys', 'ca.crt')])
        eq(rc, 0, out)
    finally:
        s.cleanup()
        smtp.stop()
        land.shutdown()


if __name__ == '__main__':
    main()
