#!/usr/bin/python3
"""tsaserver.py: a tiny RFC 3161 timestamp server over HTTP for Selo's tests.

Each POST body (application/timestamp-query) is written to a temporary .tsq
and answered with what `openssl ts -reply` makes of it, as
application/timestamp-reply. Only the standard library and the openssl CLI.

Command line:
  /usr/bin/python3 tests/integration/tsaserver.py --key K --cert C [options]
    --key PEM           the TSA's private key (e.g. DIR/keys/tsa.pem)
    --cert PEM          the TSA's certificate, with the critical timeStamping
                        EKU (e.g. DIR/keys/tsa.crt)
    --chain PEM         more certificates to put in each token (e.g.
                        DIR/keys/ca.crt); --ca is the same option
    --host H            address to listen on (default 127.0.0.1)
    --port N            port; 0 picks a free one (default 0). The first line
                        on stdout is always "PORT <n>" (flushed).
    --status-fail       answer every request with a rejection (the TSA only
                        accepts SHA-384 imprints: status text "Message digest
                        algorithm is not supported.", failure badAlg)
    --delay SECONDS     wait this long before answering
    --http-status CODE  answer with this HTTP status and a text body
    --garbage           answer 200 application/timestamp-reply with random bytes
    --content-type T    answer with this Content-Type instead
    --replay            answer every request with the reply made for the first
                        one (a stale answer: wrong imprint and nonce)
    --verbose           log each request on stderr
  Exits cleanly on SIGTERM or SIGINT, and by itself when its parent process
  goes away (so a crashed test leaves no server behind).

As a module (for Python integration tests):
    from tsaserver import TSAServer
    with TSAServer(key=k, cert=c, chain=ca) as srv:
        url = srv.url          # http://127.0.0.1:<port>/
        srv.requests           # number of POSTs answered
stop() (or the end of the with block) shuts it down.

Failures: bad options exit with status 2; an openssl failure on a request is
answered with HTTP 500 and openssl's stderr as the body.
"""
import argparse
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

# A test policy OID under 2.25 (UUID 08ce9865-ffc6-41ce-8e99-64a040316cce),
# deliberately not Selo's built-in policy.
TEST_POLICY = '2.25.11706528126600026050162985132971093198'
MAX_QUERY = 64 * 1024

CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_digest = sha256
default_policy = {policy}
digests = {digests}
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = 'tsaserver'
    sys_version = ''

    def log_message(self, fmt, *args):
        if self.server.tsa.verbose:
            sys.stderr.write('tsaserver: ' + (fmt % args) + '\n')

    def _send(self, code, ctype, body):
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(405, 'text/plain', b'POST an application/timestamp-query\n')

    def do_POST(self):
        tsa = self.server.tsa
        try:
            n = int(self.headers.get('Content-Length') or '0')
        except ValueError:
            n = -1
        if n <= 0 or n > MAX_QUERY:
            return self._send(400, 'text/plain', b'bad Content-Length\n')
        query = self.rfile.read(n)
        if tsa.delay:
            time.sleep(tsa.delay)
        if tsa.http_status:
            return self._send(tsa.http_status, 'text/plain', b'test failure\n')
        if tsa.garbage:
            return self._send(200, tsa.content_type, os.urandom(256))
        ctype = (self.headers.get('Content-Type') or '').split(';')[0].strip().lower()
        if ctype != 'application/timestamp-query':
            return self._send(415, 'text/plain', b'want application/timestamp-query\n')
        code, body = tsa.reply(query)
        self._send(code, tsa.content_type if code == 200 else 'text/plain', body)


class TSAServer:
    """An RFC 3161 server on a background thread (see the module doc)."""

    def __init__(self, key, cert, chain=None, host='127.0.0.1', port=0,
                 status_fail=False, delay=0.0, http_status=0, garbage=False,
                 content_type='application/timestamp-reply', verbose=False,
                 replay=False):
        self.key, self.cert, self.chain = key, cert, chain
        self.host, self.port = host, port
        self.status_fail, self.delay = status_fail, float(delay)
        self.http_status, self.garbage = int(http_status or 0), garbage
        self.content_type, self.verbose = content_type, verbose
        self.replay, self._first = replay, None
        self.requests = 0
        self._lock = threading.Lock()   # openssl ts -reply bumps one serial file
        self._dir = None
        self._httpd = None
        self._thread = None

    @property
    def url(self):
        return f'http://{self.host}:{self.port}/'

    def _prepare(self):
        self._dir = tempfile.mkdtemp(prefix='selo-tsaserver-')
        with open(os.path.join(self._dir, 'serial'), 'w') as f:
            f.write('01\n')
        digests = 'sha384' if self.status_fail else 'sha256, sha384, sha512'
        with open(os.path.join(self._dir, 'openssl.cnf'), 'w') as f:
            f.write(CONFIG.format(dir=self._dir, policy=TEST_POLICY, digests=digests))

    def reply(self, query):
        """(HTTP status, body) for one DER TimeStampReq."""
        with self._lock:
            self.requests += 1
            if self.replay and self._first:
                return 200, self._first
            tsq = os.path.join(self._dir, 'q.tsq')
            tsr = os.path.join(self._dir, 'r.tsr')
            with open(tsq, 'wb') as f:
                f.write(query)
            cmd = ['openssl', 'ts', '-reply', '-queryfile', tsq,
                   '-config', os.path.join(self._dir, 'openssl.cnf'),
                   '-inkey', self.key, '-signer', self.cert, '-out', tsr]
            if self.chain:
                cmd += ['-chain', self.chain]
            p = subprocess.run(cmd, capture_output=True)
            if p.returncode != 0 or not os.path.exists(tsr):
                return 500, p.stderr or b'openssl ts -reply failed\n'
            with open(tsr, 'rb') as f:
                body = f.read()
            os.unlink(tsr)
            self._first = self._first or body
            return 200, body

    def start(self):
        self._prepare()
        self._httpd = http.server.ThreadingHTTPServer((self.host, self.port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.tsa = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={'poll_interval': 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _parse_args(argv):
    ap = argparse.ArgumentParser(description='RFC 3161 test server')
    ap.add_argument('--key', required=True)
    ap.add_argument('--cert', required=True)
    ap.add_argument('--chain', '--ca', dest='chain')
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--status-fail', action='store_true')
    ap.add_argument('--delay', type=float, default=0.0)
    ap.add_argument('--http-status', type=int, default=0)
    ap.add_argument('--garbage', action='store_true')
    ap.add_argument('--content-type', default='application/timestamp-reply')
    ap.add_argument('--verbose', action='store_true')
    ap.add_argument('--replay', action='store_true')
    a = ap.parse_args(argv)
    for path in (a.key, a.cert) + ((a.chain,) if a.chain else ()):
        if not os.path.isfile(path):
            ap.error(f'no such file: {path}')
    return a


def main(argv=None):
    a = _parse_args(argv)
    srv = TSAServer(a.key, a.cert, a.chain, a.host, a.port, a.status_fail, a.delay,
                    a.http_status, a.garbage, a.content_type, a.verbose, a.replay)
    try:
        srv.start()
    except OSError as e:
        print(f'tsaserver: cannot listen on {a.host}:{a.port}: {e}', file=sys.stderr)
        return 1
    print(f'PORT {srv.port}', flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.wait(0.2):
        if os.getppid() != parent:
            break
    srv.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
