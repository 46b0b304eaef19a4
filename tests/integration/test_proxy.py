#!/usr/bin/python3
"""Selo behind a real nginx (Debian nginx-light), with TLS and HTTP/2, run from
the very site config the docs show (dist/nginx/selo.conf, its ports, names
and paths substituted). Clients connect from other loopback addresses than
nginx's (curl --interface 127.0.0.x), so the original address differs from
the proxy's: hits through nginx record the original address; a forged
X-Forwarded-For sent straight to Selo, or through a proxy Selo does not
trust, is ignored; the per-IP rate limit counts each client behind the proxy
on its own; the API and /metrics stay private; tokens stay out of nginx's
access log (issue 18, section 4; docs/deploy.md)."""
import email, email.policy, os, re, shutil, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

NGINX = '/usr/sbin/nginx'
SITE = os.path.join(ROOT, 'dist', 'nginx', 'selo.conf')
HOST = 'track.cobranca.test'
CHROME = ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
          'Chrome/131.0.0.0 Safari/537.36')
HTML = ('<html><body><p>Olá</p><a href="https://pagar.example/boleto?id=7">Pagar</a>'
        '</body></html>')


class Nginx:
    """nginx with its own prefix, config and self-signed certificate in a
    temp dir, in the foreground (daemon off, one process), stopped by PID."""

    def __init__(self, https_port, http_port, api_port):
        self.dir = tempfile.mkdtemp(prefix='selo-nginx-')
        self.https_port, self.http_port, self.api_port = https_port, http_port, api_port
        self.crt = os.path.join(self.dir, 'track.crt')
        self.key = os.path.join(self.dir, 'track.key')
        self.access = os.path.join(self.dir, 'access.log')
        p = subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                            'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
                            '-subj', f'/CN={HOST}', '-addext',
                            f'subjectAltName=DNS:{HOST},DNS:api.cobranca.internal',
                            '-keyout', self.key, '-out', self.crt],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        check(p.returncode == 0, f'openssl: {p.stderr.decode()}')
        self.p = None

    def site(self, track_port, selo_api_port):
        """dist/nginx/selo.conf with this test's values. Every line replaced
        must be there: the test runs the documented config or fails."""
        with open(SITE) as f:
            text = f.read()
        subs = [
            ('server 127.0.0.1:8481;', f'server 127.0.0.1:{track_port};'),
            ('server 127.0.0.1:8480;', f'server 127.0.0.1:{selo_api_port};'),
            ('listen 80;', f'listen 127.0.0.1:{self.http_port};'),
            ('listen [::]:80;', ''),
            ('listen 443 ssl http2;', f'listen 127.0.0.1:{self.https_port} ssl http2;'),
            ('listen [::]:443 ssl http2;', ''),
            ('listen 10.0.0.5:8443 ssl http2;', f'listen 127.0.0.1:{self.api_port} ssl http2;'),
            ('track.cobranca.example.com.br', HOST),
            ('/etc/ssl/selo/track.crt', self.crt),
            ('/etc/ssl/selo/track.key', self.key),
            ('/etc/ssl/selo/api.crt', self.crt),
            ('/etc/ssl/selo/api.key', self.key),
            ('/var/log/nginx/selo-track.log', self.access),
        ]
        for old, new in subs:
            check(old in text, f'dist/nginx/selo.conf no longer has {old!r}: update the test')
            text = text.replace(old, new)
        return text

    def start(self, track_port, selo_api_port):
        with open(os.path.join(self.dir, 'selo.conf'), 'w') as f:
            f.write(self.site(track_port, selo_api_port))
        d = self.dir
        with open(os.path.join(d, 'nginx.conf'), 'w') as f:
            f.write(f"""daemon off;
master_process off;
pid {d}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
	client_body_temp_path {d}/body;
	proxy_temp_path {d}/proxy;
	fastcgi_temp_path {d}/fastcgi;
	uwsgi_temp_path {d}/uwsgi;
	scgi_temp_path {d}/scgi;
	access_log off;
	default_type application/octet-stream;
	include {d}/selo.conf;
}}
""")
        self.log = open(os.path.join(d, 'nginx.log'), 'ab')
        self.p = spawn([NGINX, '-p', d, '-c', os.path.join(d, 'nginx.conf'), '-e', 'stderr'],
                       stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.p.poll() is not None:
                raise Fail(f'nginx exited {self.p.returncode}: {self.errors()}')
            try:
                with socket.create_connection(('127.0.0.1', self.https_port), 0.5):
                    return True
            except OSError:
                return False
        wait_until(up, 20, what='nginx to listen')

    def errors(self):
        with open(os.path.join(self.dir, 'nginx.log'), 'rb') as f:
            return f.read().decode('utf-8', 'replace')[-2000:]

    def stop(self):
        if self.p:
            stop(self.p)
            self.p = None
            self.log.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def get(url, source, method='GET', headers=None, cacert=None, resolve=None, data=None,
        http2=True):
    """curl from a chosen loopback address. (status, http version, headers, body)."""
    argv = ['curl', '-s', '-S', '--max-time', '20', '--interface', source, '-A', CHROME,
            '-X', method, '-D', '-', '-w', '\n%{http_code} %{http_version}']
    if http2:
        argv.append('--http2')
    if cacert:
        argv += ['--cacert', cacert]
    if resolve:
        argv += ['--resolve', resolve]
    for k, v in (headers or {}).items():
        argv += ['-H', f'{k}: {v}']
    if data is not None:
        argv += ['--data-binary', data]
    p = subprocess.run(argv + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if p.returncode != 0:
        raise Fail(f'curl {url} from {source}: {p.stderr.decode()}')
    out = p.stdout.decode('latin-1')
    rest, _, tail = out.rpartition('\n')
    code, version = tail.split()
    head, _, body = rest.partition('\r\n\r\n')
    hd = {l.split(':', 1)[0].lower(): l.split(':', 1)[1].strip()
          for l in head.split('\r\n')[1:] if ':' in l}
    return int(code), version, hd, body


class World:
    """Selo (relay mode, to the test's SMTP server) behind nginx, and one
    sent notice whose links point at nginx's public name."""

    def __init__(self, **track):
        self.smtp = SMTPServer()
        self.https_port, http_port, api_port = free_port(), free_port(), free_port()
        self.base = f'https://{HOST}:{self.https_port}'
        t = {'base_url': self.base, 'trusted_proxies': '127.0.0.1',
             'after_delivery_s': '0', 'full_hits': '1000'}
        t.update(track)
        self.s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{self.smtp.port}',
                            'starttls': 'no'}, track=t)
        self.s.start()
        self.nginx = Nginx(self.https_port, http_port, api_port)
        self.nginx.start(self.s.track_port, self.s.api_port)
        self.resolve = f'{HOST}:{self.https_port}:127.0.0.1'
        st, _, j = self.s.api('POST', '/v1/notices', {'to': 'devedor@destino.example',
                                                      'subject': 'Aviso', 'text': 'Aviso',
                                                      'html': HTML})
        eq(st, 202)
        self.id = j['id']
        self.s.wait_status(self.id, ['relayed'])
        m = email.message_from_bytes(self.smtp.messages()[0][0], policy=email.policy.default)
        html = next(p for p in m.walk() if p.get_content_type() == 'text/html').get_content()
        self.pixel = re.search(re.escape(self.base) + r'/o/[A-Za-z0-9_-]+\.gif', html).group(0)
        self.click = re.search(re.escape(self.base) + r'/c/[A-Za-z0-9_-]+', html).group(0)
        self.confirm = re.search(re.escape(self.base) + r'/r/[A-Za-z0-9_-]+', html).group(0)

    def via_nginx(self, url, source, **kw):
        return get(url, source, cacert=self.nginx.crt, resolve=self.resolve, **kw)

    def direct(self, url, source, **kw):
        """The same path straight to Selo's tracker, bypassing nginx."""
        path = url[len(self.base):]
        return get(f'http://127.0.0.1:{self.s.track_port}{path}', source, http2=False, **kw)

    def recorded(self, n):
        """[(type, ip)] of the notice's tracker events, once there are n, with
        each IP read from the receipt's disclosures (events carry only its
        commitment)."""
        def receipt():
            st, _, r = self.s.api('GET', f'/v1/notices/{self.id}/receipt')
            if st != 200:
                return None
            out = []
            for e in r['events']:
                entry = json.loads(e['entry'])
                if entry['type'] in ('opened', 'clicked', 'read_confirmed'):
                    out.append((entry['type'], r['disclosure']['values'].get(entry.get('ip'))))
            return out if len(out) >= n else None
        return wait_until(receipt, 30, 0.3, f'{n} tracker events in the receipt')

    def close(self):
        try:
            self.nginx.cleanup()
        finally:
            self.s.cleanup()
            self.smtp.stop()


@test
def through_nginx_the_original_address_is_recorded():
    w = World()
    try:
        # TLS and HTTP/2 at nginx; the client forges an X-Forwarded-For of
        # its own, which nginx keeps in front of the address it saw.
        st, ver, hd, _ = w.via_nginx(w.pixel, '127.0.0.2',
                                     headers={'X-Forwarded-For': '198.51.100.66'})
        eq((st, ver), (200, '2'), 'the pixel over HTTP/2 and TLS')
        eq(hd.get('content-type'), 'image/gif')
        st, _, hd, _ = w.via_nginx(w.click, '127.0.0.3')
        eq(st, 302, 'the click')
        eq(hd.get('location'), 'https://pagar.example/boleto?id=7')
        st, ver, _, page = w.via_nginx(w.confirm, '127.0.0.4', method='POST', data='')
        eq((st, ver), (200, '2'), 'the confirmation POST over HTTP/2')
        check('Recebimento confirmado' in page, page[:300])
        ev = sorted(w.recorded(3))
        eq(ev, [('clicked', '127.0.0.3'), ('opened', '127.0.0.2'),
                ('read_confirmed', '127.0.0.4')], 'each hit records its own client')
        # tokens never reach nginx's access log; the kind of path does
        with open(w.nginx.access) as f:
            log = f.read()
        check('/o/-' in log and '/c/-' in log and '/r/-' in log, log[-600:])
        for url in (w.pixel, w.click, w.confirm):
            check(url.rsplit('/', 1)[1].split('.')[0] not in log, 'a token in the access log')
    finally:
        w.close()


@test
def forged_header_straight_to_selo_is_ignored():
    w = World()
    try:
        st, _, _, _ = w.direct(w.pixel, '127.0.0.5', headers={'X-Forwarded-For': '198.51.100.77'})
        eq(st, 200, 'the pixel straight from the tracker')
        st, _, _, _ = w.direct(w.click, '127.0.0.6',
                               headers={'X-Forwarded-For': '198.51.100.78, 127.0.0.1'})
        eq(st, 302)
        eq(sorted(w.recorded(2)), [('clicked', '127.0.0.6'), ('opened', '127.0.0.5')],
           'the TCP peer, not the header')
    finally:
        w.close()


@test
def through_an_untrusted_proxy_the_header_is_ignored():
    w = World(trusted_proxies='10.9.9.9, fd00::/8')
    try:
        st, _, _, _ = w.via_nginx(w.pixel, '127.0.0.2')
        eq(st, 200)
        eq(w.recorded(1), [('opened', '127.0.0.1')], "nginx's own address: it is not trusted")
    finally:
        w.close()


@test
def rate_limit_counts_each_client_behind_the_proxy():
    w = World(rate_per_ip='1', rate_burst='3')
    try:
        codes_a = [w.via_nginx(w.pixel, '127.0.0.7')[0] for _ in range(6)]
        check(codes_a.count(429) >= 2 and codes_a[:3] == [200, 200, 200],
              f'client A is limited: {codes_a}')
        codes_b = [w.via_nginx(w.pixel, '127.0.0.8')[0] for _ in range(3)]
        eq(codes_b, [200, 200, 200], 'client B, behind the same proxy, has its own bucket')
        ips = [ip for _, ip in w.recorded(codes_a.count(200) + 3)]
        eq(sorted(set(ips)), ['127.0.0.7', '127.0.0.8'])
    finally:
        w.close()


@test
def api_and_metrics_stay_private():
    w = World()
    try:
        for path in ('/v1/notices', '/metrics', '/healthz'):
            st, _, _, _ = w.via_nginx(w.base + path, '127.0.0.2')
            eq(st, 404, f'{path} on the public name')
        api = f'https://api.cobranca.internal:{w.nginx.api_port}'
        res = f'api.cobranca.internal:{w.nginx.api_port}:127.0.0.1'
        st, _, _, _ = get(api + '/healthz', '127.0.0.1', cacert=w.nginx.crt, resolve=res)
        eq(st, 200, 'the API from an allowed address')
        st, _, _, body = get(api + '/v1/notices/' + w.id, '127.0.0.1', cacert=w.nginx.crt,
                             resolve=res, headers={'Authorization': f'Bearer {w.s.key}'})
        eq(st, 200, 'an API call through the private server')
        check(w.id in body, body[:200])
        st, _, _, _ = get(api + '/healthz', '127.0.0.2', cacert=w.nginx.crt, resolve=res)
        eq(st, 403, 'the API from an address outside the allow list')
        st, _, _, _ = get(api + '/metrics', '127.0.0.2', cacert=w.nginx.crt, resolve=res)
        eq(st, 403, '/metrics from outside the allow list')
        http = f'http://{HOST}:{w.nginx.http_port}/o/x.gif'
        st, _, hd, _ = get(http, '127.0.0.2', resolve=f'{HOST}:{w.nginx.http_port}:127.0.0.1',
                           http2=False)
        eq(st, 301, 'plain HTTP goes to HTTPS')
        check(hd.get('location', '').startswith(f'https://{HOST}'), hd)
    finally:
        w.close()


if __name__ == '__main__':
    main()
