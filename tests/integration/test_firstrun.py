#!/usr/bin/python3
"""First run, as a newcomer meets it (issue 18, section 1), through the real
binary: `selo --version` / `selo version` and the version header's
generation (git describe, a VERSION file, "unknown"); `selo init`'s output
order (machine lines, hints on stderr, `export SELO_KEY=...` last) with the
streams apart and together; the loud start warning when track.base_url is
local while mail goes out (and its silence otherwise); an unknown config
section or key naming the nearest one; the messages a newcomer's mistakes
get (Authorization without `Bearer `, an unknown template, a private
webhook address); examples/notice.json through `selo submit` and the API;
and the README's webhook events, which must fire in the mode `make run`
uses (maildir: relay_accepted), delivered to a receiver on 127.0.0.1."""
import http.server, json, os, re, shutil, subprocess, sys, tempfile, threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

EXAMPLE = os.path.join(ROOT, 'examples', 'notice.json')
VERSION_RE = re.compile(r'^selo [A-Za-z0-9._+~-]+\n$')


def build_dir():
    return os.environ.get('SELO_BUILD', os.path.dirname(SELO))


@test
def version_both_spellings():
    rc1, out1, err1 = run(['--version'], check_rc=0)
    rc2, out2, _ = run(['version'], check_rc=0)
    check(VERSION_RE.match(out1), f'one line "selo VERSION": {out1!r} {err1!r}')
    eq(out1, out2, '--version and version agree')
    check('unknown' not in out1, f'built in a git checkout, so a real version: {out1!r}')
    # The string is the one generated into the build's header at build time.
    with open(os.path.join(build_dir(), 'gen', 'version.h')) as f:
        m = re.search(r'#define SELO_VERSION "([^"]*)"', f.read())
    eq(out1.split()[1], m.group(1), 'the version is the generated header\'s')
    eq(run(['version', 'extra'])[0], 2, 'version takes no arguments')
    # Usage lists the command.
    check('version' in run(['--help'])[1], 'usage names version')


@test
def version_generation_git_file_unknown():
    """scripts/version.sh: git describe in a checkout (with -dirty when the
    tree changed); the VERSION file outside git; else "unknown"; the header
    is not rewritten when the version is unchanged (no needless rebuild)."""
    tmp = tempfile.mkdtemp(prefix='selo-version-')
    try:
        out = os.path.join(tmp, 'gen', 'version.h')
        subprocess.run([os.path.join(ROOT, 'scripts', 'version.sh'), out], check=True)
        desc = subprocess.run(['git', 'describe', '--tags', '--always', '--dirty'], cwd=ROOT,
                              stdout=subprocess.PIPE).stdout.decode().strip()
        with open(out) as f:
            check(f'#define SELO_VERSION "{desc}"' in f.read(), f'git describe {desc!r}')
        t0 = os.stat(out).st_mtime_ns
        subprocess.run([os.path.join(ROOT, 'scripts', 'version.sh'), out], check=True)
        eq(os.stat(out).st_mtime_ns, t0, 'unchanged version: header untouched')
        # A copy outside git (as a release tarball unpacks).
        src = os.path.join(tmp, 'release')
        os.makedirs(os.path.join(src, 'scripts'))
        shutil.copy(os.path.join(ROOT, 'scripts', 'version.sh'), os.path.join(src, 'scripts'))
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=tmp)
        gen = os.path.join(src, 'v.h')
        subprocess.run([os.path.join(src, 'scripts', 'version.sh'), gen], check=True, env=env)
        with open(gen) as f:
            check('"unknown"' in f.read(), 'no git, no VERSION: unknown')
        with open(os.path.join(src, 'VERSION'), 'w') as f:
            f.write('1.4.2\n')
        subprocess.run([os.path.join(src, 'scripts', 'version.sh'), gen], check=True, env=env)
        with open(gen) as f:
            check('"1.4.2"' in f.read(), 'the VERSION file outside git')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def init_prints_export_line_last():
    tmp = tempfile.mkdtemp(prefix='selo-init-')
    try:
        # Streams apart: machine lines on stdout, the export line last there;
        # hints on stderr.
        rc, out, err = run(['init', '--data', os.path.join(tmp, 'a'),
                            '--domain', 'cobranca.example.com.br'], check_rc=0)
        lines = out.splitlines()
        check(lines[0].startswith('api_key selo_'), f'api_key first: {lines[0]!r}')
        key = lines[0].split()[1]
        eq(lines[-1], f'export SELO_KEY={key}', 'the export line last on stdout')
        check(any(l.startswith('log_vkey cobranca.example.com.br/selo-log+') for l in lines),
              out)
        check('selo._domainkey.cobranca.example.com.br. IN TXT' in out, out)
        check('publish the two DKIM TXT records' in err and 'selo serve --data' in err, err)
        check('SELO_KEY' not in err and key not in err, 'the key is not in the hints')
        check('example.com:' not in err, 'no default-domain hint with --domain')
        # Streams together, as `make run` shows them or a log keeps them:
        # machine lines, then the hints, then the export line, in that order.
        p = subprocess.run([SELO, 'init', '--data', os.path.join(tmp, 'b')],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        eq(p.returncode, 0)
        both = p.stdout.decode().splitlines()
        check(both[0].startswith('api_key '), both[0])
        check(both[-1].startswith('export SELO_KEY=selo_'), f'last: {both[-1]!r}')
        at = {name: next(i for i, l in enumerate(both) if marker in l)
              for name, marker in [('vkey', 'log_vkey '), ('hint', 'selo: initialised'),
                                   ('domain', 'the mail domain is example.com')]}
        check(at['vkey'] < at['hint'] < at['domain'] < len(both) - 1, f'order: {both}')
        # The export line is a shell line that sets the key.
        sh = subprocess.run(['sh', '-c', both[-1] + '; printf %s "$SELO_KEY"'],
                            stdout=subprocess.PIPE)
        eq(sh.stdout.decode(), both[0].split()[1], 'the shell gets the key')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def warn_lines(log):
    return [l for l in log.splitlines() if ' warn baseurl_warn: ' in l]


@test
def start_warning_local_base_url_with_mx():
    s = Selo(smtp={'mode': 'mx'}).start()
    try:
        w = warn_lines(s.serve_log_all())
        check(len(w) >= 5, f'several WARN lines: {s.serve_log()}')
        text = '\n'.join(w)
        check(f'track.base_url = http://127.0.0.1:{s.track_port}' in text, text)
        check('a loopback address' in text and 'smtp.mode = mx' in text, text)
        check('recipients cannot reach it' in text, text)
    finally:
        s.cleanup()


@test
def start_warning_private_base_url_with_outside_relay():
    # A relay that is not on loopback sends mail on: the warning fires. Selo
    # does not connect to it at start (no notice is queued here).
    s = Selo(smtp={'mode': 'relay', 'relay': 'smtp.example.net:587'},
             track={'base_url': 'http://192.168.10.5:8481'}).start()
    try:
        text = '\n'.join(warn_lines(s.serve_log_all()))
        check('a private address (192.168.10.5)' in text, s.serve_log())
        check('smtp.example.net' in text, text)
    finally:
        s.cleanup()


@test
def start_warning_silent_when_mail_stays_or_url_public():
    cases = [
        {},  # maildir with the loopback default: a first run, nothing leaves
        {'smtp': {'mode': 'relay', 'relay': '127.0.0.1:2525'}},  # a local sink
        {'smtp': {'mode': 'mx'}, 'track': {'base_url': 'https://track.cobranca.example.com.br'}},
    ]
    for conf in cases:
        s = Selo(**conf).start()
        try:
            eq(warn_lines(s.serve_log_all()), [], f'{conf}')
        finally:
            s.cleanup()


@test
def config_unknown_key_or_section_suggests_nearest():
    s = Selo()
    try:
        for sec, extra, want in [
            ('track', 'base_ur = http://x', 'did you mean track.base_url?'),
            ('trak', 'base_url = http://x', 'unknown section; did you mean track.base_url?'),
            ('webhook', 'allow_private = yes', 'did you mean webhooks.allow_private?'),
            ('api', 'base_url = http://x', 'did you mean track.base_url?'),
            ('smtp', 'relays = a:25', 'did you mean smtp.relay?'),
        ]:
            with open(os.path.join(s.data, 'selo.conf'), 'a') as f:
                f.write(f'\n[{sec}]\n{extra}\n')
            rc, out, err = run(['serve', '--data', s.data])
            eq(rc, 2, f'[{sec}] {extra}: {err}')
            check(want.rstrip('?') in err, f'[{sec}] {extra}: {err!r}')
            check(f'[{sec}] {extra.split(" =")[0]}' in err, f'names the line\'s key: {err!r}')
            s.write_conf()  # back to the good file
        # Far from every key: no guess, a pointer to the list.
        with open(os.path.join(s.data, 'selo.conf'), 'a') as f:
            f.write('\n[zzz]\nqqqqqq = 1\n')
        rc, _, err = run(['serve', '--data', s.data])
        eq(rc, 2)
        check('did you mean' not in err and 'docs/operations.md' in err, err)
    finally:
        s.cleanup()


@test
def authorization_without_bearer_says_so():
    s = Selo().start()
    try:
        def detail(hdrs):
            st, _, b = curl('GET', s.url + '/v1/notices?reference=x', None, hdrs)
            eq(st, 401, f'{hdrs}')
            return json.loads(b)['detail']
        d = detail({})
        check('missing API key' in d and 'Authorization: Bearer' in d, d)
        d = detail({'Authorization': 'Basic dXNlcjpzZWNyZXQ='})
        check('"Basic", not Bearer' in d and 'dXNlcjpzZWNyZXQ' not in d, d)
        d = detail({'Authorization': s.key})
        check('without the word Bearer' in d and s.key not in d, d)
        d = detail({'Authorization': 'Bearer'})
        check('no key follows' in d, d)
        d = detail({'Authorization': 'Bearer selo_nope'})
        check('invalid API key' in d, d)
        eq(s.api('GET', '/v1/notices?reference=x')[0], 200, 'the right header still works')
    finally:
        s.cleanup()


@test
def unknown_template_lists_known_ones():
    s = Selo().start()
    try:
        with open(EXAMPLE) as f:
            n = json.load(f)
        n['template'] = 'lembret'
        st, _, j = s.api('POST', '/v1/notices', n)
        eq(st, 422, f'{j}')
        msg = [e['detail'] for e in j['errors'] if e['field'] == 'template'][0]
        for name in ['acordo', 'atraso', 'lembrete', 'notificacao-extrajudicial', 'vencimento']:
            check(name in msg, f'{name} listed: {msg}')
        check('"lembret"' in msg, msg)
        # The CLI gives the same error.
        path = os.path.join(s.dir, 'bad.json')
        with open(path, 'w') as f:
            json.dump(n, f)
        rc, out, err = run(['submit', '--data', s.data, path])
        eq(rc, 2, err)
        check('known: acordo, atraso, lembrete' in err, err)
    finally:
        s.cleanup()


@test
def private_webhook_refusal_names_allow_private():
    s = Selo().start()
    try:
        for url in ['http://127.0.0.1:9/hook', 'http://10.1.2.3/hook', 'http://localhost:9/']:
            st, _, j = s.api('POST', '/v1/webhooks', {'url': url, 'events': ['*']})
            eq(st, 422, f'{url}: {j}')
            check('webhooks.allow_private = yes' in j['detail'], f'{url}: {j}')
            eq([e['field'] for e in j['errors']], ['url'])
        # A refusal for another reason does not point at the setting.
        st, _, j = s.api('POST', '/v1/webhooks', {'url': 'ftp://example.net/', 'events': ['*']})
        eq(st, 422)
        check('allow_private' not in json.dumps(j), f'{j}')
    finally:
        s.cleanup()


@test
def example_notice_submits():
    s = Selo().start()
    try:
        rc, out, err = run(['submit', '--data', s.data, EXAMPLE], check_rc=0)
        nid = out.strip()
        check(re.match(r'^[0-9A-Z]{26}$', nid), f'the id alone: {out!r}')
        with open(EXAMPLE, 'rb') as f:
            st, _, j = s.api('POST', '/v1/notices', raw=f.read())
        eq(st, 202, f'{j}')
        eq(s.wait_status(j['id'], ['relayed'])['status'], 'relayed')
        # The CLI's notice belongs to no API key: `selo status` reads it.
        def cli_relayed():
            return json.loads(run(['status', nid, '--data', s.data], check_rc=0)[1])[
                'status'] == 'relayed'
        wait_until(cli_relayed, 30, 0.1, 'the submitted notice to be relayed')
    finally:
        s.cleanup()


class Receiver:
    """Collects webhook POSTs on 127.0.0.1, answering 200."""

    def __init__(self):
        self.seen = []
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
                rcv.seen.append(json.loads(body))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

        self.srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def readme_webhook_events():
    with open(os.path.join(ROOT, 'README.md')) as f:
        text = f.read()
    m = re.search(r'/v1/webhooks .*?"events": \[(.*?)\]', text, re.S)
    check(m, 'the README registers a webhook')
    return re.findall(r'"(notice\.[a-z_]+)"', m.group(1))


@test
def readme_webhook_events_fire_in_make_run_mode():
    """The README's webhook subscribes to events that fire with `make run`'s
    configuration (maildir, as selo init writes it): a notice from
    examples/notice.json reaches the receiver as notice.relay_accepted."""
    events = readme_webhook_events()
    check('notice.relay_accepted' in events, f'README events: {events}')
    rcv = Receiver()
    s = Selo(webhooks={'allow_private': 'yes', 'timeout_ms': '2000'}).start()
    try:
        st, _, j = s.api('POST', '/v1/webhooks',
                         {'url': f'http://127.0.0.1:{rcv.port}/selo', 'events': events})
        eq(st, 201, f'{j}')
        with open(EXAMPLE, 'rb') as f:
            st, _, n = s.api('POST', '/v1/notices', raw=f.read())
        eq(st, 202)
        got = wait_until(lambda: [e for e in rcv.seen if e.get('type') == 'notice.relay_accepted'],
                         30, 0.1, 'notice.relay_accepted at the receiver')
        check(json.dumps(got[0]).find(n['id']) >= 0, f'{got[0]}')
    finally:
        s.cleanup()
        rcv.stop()


if __name__ == '__main__':
    main()
