#!/usr/bin/python3
"""A late bounce through a real Postfix, configured as docs/bounces.md says:
Selo relays a notice to a private Postfix, Postfix takes it (relay_accepted)
and then its relay refuses the recipient; Postfix's bounce daemon sends the
DSN to the notice's VERP address, its transport map routes that address to
the `selo` pipe(8) service, and `selo bounce --mta` records delivery_failed.
The pipe cannot run as root, so Selo's data directory belongs to `nobody`
and `selo serve` runs as `nobody` too (setpriv), from a copy of the binary
in the test's own directory (any reader can execute it)."""
import os, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403


def as_nobody(argv):
    return ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'] + argv


@test
def bounce_from_a_real_postfix_reaches_the_receipt():
    for tool in ('postfix', 'setpriv'):
        if not shutil.which(tool):
            raise Fail(f'{tool} is not installed (scripts/install-deps.sh installs postfix)')
    root = tempfile.mkdtemp(prefix='selo-pfbounce-')
    os.chmod(root, 0o755)
    nobody = pwd.getpwnam('nobody').pw_uid
    sink = pf = serve = None
    try:
        selo = os.path.join(root, 'selo')
        shutil.copy(SELO, selo)
        os.chmod(selo, 0o755)
        home = os.path.join(root, 'home')
        os.makedirs(home)
        os.chown(home, nobody, -1)
        data = os.path.join(home, 'data')
        p = subprocess.run(as_nobody([selo, 'init', '--data', data, '--domain', 'cobranca.example']),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        eq(p.returncode, 0, p.stderr.decode())
        key = [l.split()[1] for l in p.stdout.decode().splitlines() if l.startswith('api_key ')][0]

        # the recipient's side refuses devedor@destino.example for good
        sink = SMTPServer('--rcpt-reply', '550:5.1.1 <devedor@destino.example>: user unknown')
        pf = Postfix(main_extra=f"""relayhost = [127.0.0.1]:{sink.port}
transport_maps = inline:{{ cobranca.example=selo: }}
selo_destination_recipient_limit = 1
# a bounce that comes back before Selo recorded the relay's 250 is refused
# with 75 ("try again"): let Postfix retry in a second, not five minutes
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""", master_extra=f"""selo      unix  -       n       n       -       -       pipe
  flags=Rq user=nobody argv={selo} bounce --mta --data {data} --rcpt ${{original_recipient}}
""")
        api, track = free_port(), free_port()
        conf = os.path.join(data, 'selo.conf')
        with open(conf, 'w') as f:
            f.write(f'[api]\nlisten = 127.0.0.1:{api}\n[track]\nlisten = 127.0.0.1:{track}\n'
                    f'base_url = http://127.0.0.1:{track}\n[mail]\ndomain = cobranca.example\n'
                    f'from_address = cobranca@cobranca.example\n[smtp]\nmode = relay\n'
                    f'relay = 127.0.0.1:{pf.port}\nstarttls = no\ntimeout_ms = 5000\n')
        os.chown(conf, nobody, -1)
        log = open(os.path.join(root, 'serve.log'), 'wb')
        serve = spawn(as_nobody([selo, 'serve', '--data', data]), stdout=log,
                      stderr=subprocess.STDOUT)
        url = f'http://127.0.0.1:{api}'
        h = {'Authorization': f'Bearer {key}'}
        wait_until(lambda: serve.poll() is None and
                   subprocess.run(['curl', '-s', '-o', '/dev/null', url + '/healthz']).returncode == 0,
                   30, 0.1, 'selo serve (as nobody) to answer')
        st, _, body = curl('POST', url + '/v1/notices', {'to': 'devedor@destino.example',
                                                         'subject': 'Aviso', 'text': 'Aviso'}, h)
        eq(st, 202, body)
        nid = json.loads(body)['id']

        def notice():
            return json.loads(curl('GET', f'{url}/v1/notices/{nid}', None, h)[2])
        try:
            j = wait_until(lambda: (lambda n: n if n['status'] == 'failed' else None)(notice()),
                           60, 0.3, 'the bounce to be recorded')
        except Fail:
            raise Fail(f'notice {notice()["status"]}; postfix log: {pf.log()[-2500:]}')
        types = [e['type'] for e in j['events']]
        check('relay_accepted' in types, f'postfix took it first: {types}')
        failed = [e['entry'] for e in j['events'] if e['type'] == 'delivery_failed']
        eq(len(failed), 1, types)
        eq(failed[0]['reason'], 'bounced')
        eq(failed[0].get('status'), '5.1.1', failed[0])
        # postfix logs the pipe's result after `selo bounce` has exited
        try:
            wait_until(lambda: 'status=sent (delivered via selo service' in pf.log(), 10, 0.1,
                       'postfix to log the delivery to the selo service')
        except Fail:
            raise Fail(pf.log()[-1500:])
        # the receipt carries the bounce and verifies offline
        def receipt():
            st, _, b = curl('GET', f'{url}/v1/notices/{nid}/receipt', None, h)
            if st != 200:
                return None
            r = json.loads(b)
            return r if any(json.loads(e['entry'])['type'] == 'delivery_failed'
                            for e in r['events']) else None
        r = wait_until(receipt, 20, 0.3, 'the bounce in the receipt')
        path = os.path.join(root, 'receipt.json')
        with open(path, 'w') as f:
            json.dump(r, f)
        rc, out, _ = run(['verify', path, '--key', os.path.join(data, 'keys', 'log.vkey'),
                          '--tsa-ca', os.path.join(data, 'keys', 'ca.crt')])
        eq(rc, 0, out)
    finally:
        if serve:
            stop(serve)
        if pf:
            pf.stop()
        if sink:
            sink.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
