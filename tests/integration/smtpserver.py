#!/usr/bin/python3
"""smtpserver.py: a scriptable SMTP server for Selo's tests (aiosmtpd).

Run it with Debian's interpreter, /usr/bin/python3 (python3-aiosmtpd), not
whichever python3 comes first on PATH.

Command line:
  /usr/bin/python3 tests/integration/smtpserver.py [options]
    --host H            address to listen on (default 127.0.0.1)
    --port N            port; 0 picks a free one (default 0). The first line
                        on stdout is always "PORT <n>" (flushed), so a test
                        can start the server and read where it listens.
    --maildir DIR       store message n (1, 2, ...) as DIR/<n>.eml, the exact
                        bytes received (CRLF kept, dot-stuffing undone), and
                        DIR/<n>.json {"mail_from", "rcpt_tos", "tls", "peer",
                        "auth"} (peer: the client's address:port)
    --reply CODE[:TEXT] answer DATA with this reply (e.g. 450, 550:no thanks)
                        instead of 250; the message is not stored
    --rcpt-reply CODE[:TEXT]  answer every RCPT TO with this reply
    --tls CERT KEY      offer STARTTLS with this certificate and key (PEM)
    --require-tls       refuse MAIL/RCPT/DATA before STARTTLS (needs --tls)
    --auth USER:PASS    require AUTH (PLAIN and LOGIN offered; allowed
                        without TLS, for tests only)
    --auth-mech MECH    offer only this AUTH mechanism (PLAIN or LOGIN)
    --pipelining        advertise PIPELINING (aiosmtpd reads commands in
                        order, so pipelined clients work)
    --drop-in-data [N]  accept N messages (default 0), then close the
                        connection after the data of the next one, without
                        a reply: the client cannot know whether it arrived
    --stall SECONDS     wait this long before answering the end of DATA
    --hold-file PATH    while PATH exists, hold the answer to the end of DATA
                        (the message is stored once it is answered); the
                        first message held creates PATH.held, so a test can
                        tell that a client waits (test_disk.py fills the
                        client's disk then)
    --verbose           aiosmtpd's debug log on stderr
  Exits cleanly on SIGTERM or SIGINT.

As a module (for Python integration tests):
    from smtpserver import SMTPTestServer
    with SMTPTestServer(maildir=d, reply='450') as srv:
        ... connect to srv.host, srv.port ...
        srv.messages   # list of dicts: mail_from, rcpt_tos, data (bytes), tls, auth
The server runs its own asyncio loop in a background thread; stop() (or the
end of the with block) closes it.

Failures: bad options exit with status 2 and a message on stderr; a
listening error raises in start() (module) or exits 1 (command line).
"""
import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# aiosmtpd warns (rightly, but not for tests) about AUTH without TLS and about
# its own deprecated login_data; keep test output quiet unless --verbose.
warnings.filterwarnings('ignore', module=r'aiosmtpd\..*')
warnings.filterwarnings('ignore', message='Requiring AUTH while not requiring TLS')
logging.getLogger('mail.log').setLevel(logging.ERROR)

DEFAULT_TEXTS = {
    250: '2.0.0 OK: queued',
    421: '4.3.2 Service shutting down',
    450: '4.2.0 Mailbox busy, try again later',
    451: '4.3.0 Local error in processing',
    452: '4.3.1 Insufficient system storage',
    550: '5.7.1 Message refused',
    552: '5.3.4 Message too big',
    554: '5.6.0 Transaction failed',
}


def parse_reply(spec):
    """'450' or '550:text' -> '450 <text>' (None stays None)."""
    if spec is None:
        return None
    code, _, text = str(spec).partition(':')
    code = int(code)
    if not 200 <= code <= 599:
        raise ValueError(f'reply code out of range: {code}')
    return f'{code} {text or DEFAULT_TEXTS.get(code, "Reply")}'


class _Handler:
    """aiosmtpd handler: records messages and plays the scripted replies."""

    def __init__(self, srv):
        self.srv = srv

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.srv.pipelining:
            responses.insert(-1, '250-PIPELINING')
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.srv.rcpt_reply:
            return self.srv.rcpt_reply
        envelope.rcpt_tos.append(address)
        return '250 2.1.5 OK'

    async def handle_DATA(self, server, session, envelope):
        self.srv.data_seen += 1
        drop = self.srv.drop_in_data
        if drop is not None and self.srv.data_seen > drop:
            # Close without a reply: the client has sent the data and waits.
            server.transport.close()
            return '421 4.3.2 closing (not sent: connection already closed)'
        if self.srv.stall:
            await asyncio.sleep(self.srv.stall)
        await self.srv.hold()
        if self.srv.reply:
            return self.srv.reply
        self.srv.store(session, envelope)
        return '250 ' + DEFAULT_TEXTS[250]


class SMTPTestServer:
    """One scripted SMTP server; see the module comment for the options."""

    def __init__(self, host='127.0.0.1', port=0, maildir=None, reply=None,
                 rcpt_reply=None, tls=None, require_tls=False, auth=None,
                 auth_mech=None, pipelining=False, drop_in_data=None, stall=0.0,
                 hold_file=None):
        self.host = host
        self.port = port
        self.maildir = maildir
        self.reply = parse_reply(reply)
        self.rcpt_reply = parse_reply(rcpt_reply)
        self.tls = tls                  # (certfile, keyfile) or None
        self.require_tls = require_tls
        self.auth = auth                # "user:pass" or None
        self.auth_mech = auth_mech
        self.pipelining = pipelining
        self.drop_in_data = drop_in_data
        self.stall = float(stall or 0)
        self.hold_file = hold_file
        self.messages = []
        self.data_seen = 0
        self._lock = threading.Lock()
        self._loop = None
        self._server = None
        self._thread = None
        if require_tls and not tls:
            raise ValueError('require_tls needs tls=(cert, key)')

    # -- building the aiosmtpd protocol ------------------------------------
    def _tls_context(self):
        if not self.tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls[0], self.tls[1])
        return ctx

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        user, _, password = self.auth.partition(':')
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        # handled=False: aiosmtpd then sends the 535 itself
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _protocol_factory(self):
        handler = _Handler(self)
        tls_ctx = self._tls_context()
        kwargs = dict(decode_data=False, hostname='smtpserver.test',
                      tls_context=tls_ctx, require_starttls=self.require_tls,
                      loop=self._loop)
        if self.auth:
            exclude = []
            if self.auth_mech:
                exclude = [m for m in ('PLAIN', 'LOGIN') if m != self.auth_mech.upper()]
            kwargs.update(authenticator=self._authenticator, auth_required=True,
                          auth_require_tls=False, auth_exclude_mechanism=exclude)
        return lambda: SMTP(handler, **kwargs)

    async def hold(self):
        """Waits while the hold file exists (--hold-file)."""
        if not self.hold_file:
            return
        marked = False
        while os.path.exists(self.hold_file):
            if not marked:
                with open(self.hold_file + '.held', 'w'):
                    pass
                marked = True
            await asyncio.sleep(0.05)

    # -- storing -------------------------------------------------------------
    def store(self, session, envelope):
        with self._lock:
            n = len(self.messages) + 1
            rec = {
                'mail_from': envelope.mail_from,
                'rcpt_tos': list(envelope.rcpt_tos),
                'tls': session.ssl is not None,
                # the client's address and port: one connection per value
                'peer': '%s:%s' % tuple(session.peer[:2]) if session.peer else None,
                'auth': (session.auth_data.login.decode('utf-8', 'replace')
                     if isinstance(session.auth_data, LoginPassword) else None),
            }
            data = envelope.original_content
            self.messages.append(dict(rec, data=data))
        if self.maildir:
            _write_atomic(os.path.join(self.maildir, f'{n}.eml'), data)
            _write_atomic(os.path.join(self.maildir, f'{n}.json'),
                          json.dumps(rec).encode())

    # -- running -------------------------------------------------------------
    async def serve(self):
        """Starts listening on the running loop; sets self.port."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            self._protocol_factory(), host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self):
        if self._server:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def start(self):
        """Runs the server in a background thread; returns the port."""
        ready = threading.Event()
        failure = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.serve())
            except Exception as e:  # reported to start()'s caller
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.port

    def stop(self):
        if self._thread and self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def _write_atomic(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def _parse_args(argv):
    p = argparse.ArgumentParser(description='Scriptable SMTP server for tests.')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--maildir')
    p.add_argument('--reply')
    p.add_argument('--rcpt-reply')
    p.add_argument('--tls', nargs=2, metavar=('CERT', 'KEY'))
    p.add_argument('--require-tls', action='store_true')
    p.add_argument('--auth', metavar='USER:PASS')
    p.add_argument('--auth-mech', choices=['PLAIN', 'LOGIN', 'plain', 'login'])
    p.add_argument('--pipelining', action='store_true')
    p.add_argument('--drop-in-data', type=int, nargs='?', const=0, default=None,
                   metavar='N')
    p.add_argument('--stall', type=float, default=0.0)
    p.add_argument('--hold-file', metavar='PATH')
    p.add_argument('--verbose', action='store_true', help="log aiosmtpd's debug output")
    a = p.parse_args(argv)
    if a.verbose:
        logging.basicConfig(level=logging.DEBUG)
        logging.getLogger('mail.log').setLevel(logging.DEBUG)
    if a.require_tls and not a.tls:
        p.error('--require-tls needs --tls CERT KEY')
    if a.auth and ':' not in a.auth:
        p.error('--auth wants USER:PASS')
    for opt in ('reply', 'rcpt_reply'):
        try:
            parse_reply(getattr(a, opt))
        except ValueError as e:
            p.error(f'--{opt.replace("_", "-")}: {e}')
    return a


async def _main_async(a):
    srv = SMTPTestServer(host=a.host, port=a.port, maildir=a.maildir, reply=a.reply,
                         rcpt_reply=a.rcpt_reply, tls=a.tls, require_tls=a.require_tls,
                         auth=a.auth, auth_mech=a.auth_mech, pipelining=a.pipelining,
                         drop_in_data=a.drop_in_data, stall=a.stall,
                         hold_file=a.hold_file)
    port = await srv.serve()
    print(f'PORT {port}', flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await srv.close()


def main(argv=None):
    a = _parse_args(sys.argv[1:] if argv is None else argv)
    if a.maildir:
        os.makedirs(a.maildir, exist_ok=True)
    try:
        asyncio.run(_main_async(a))
    except OSError as e:
        print(f'smtpserver: cannot listen on {a.host}:{a.port}: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
