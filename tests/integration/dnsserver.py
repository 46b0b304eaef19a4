#!/usr/bin/python3
"""dnsserver.py: a scripted authoritative DNS server for Selo's tests
(Debian python3-dnslib), UDP and TCP on 127.0.0.1 only.

  /usr/bin/python3 tests/integration/dnsserver.py ZONE.json
prints "PORT <n>" first (flushed), then answers until SIGTERM.

ZONE.json maps lower-case names (no trailing dot) to behaviours:
  {"a.example": {"MX": [[10, "mx1.a.example"], [20, "mx2.a.example"]]},
   "mx1.a.example": {"A": ["127.0.0.2"]},
   "v6.a.example": {"AAAA": ["::1"]},
   "broken.example": "SERVFAIL",       # every question: SERVFAIL
   "slow.example": "TIMEOUT",          # never answered
   "nomail.example": {"MX": [[0, "."]]}}  # a null MX (RFC 7505)
A name listed with other record types answers NOERROR with no records
(NODATA) for the types it lacks; a name not listed is NXDOMAIN. Every
question asked is appended to ZONE.json + ".log" (name and type), so a
test can check what was asked."""
import json, signal, socketserver, sys, threading
from dnslib import DNSRecord, RR, QTYPE, RCODE, A, AAAA, MX

ZONE = {}
LOG = None
LOCK = threading.Lock()


def answer(data):
    q = DNSRecord.parse(data)
    name = str(q.q.qname).rstrip('.').lower()
    qtype = QTYPE[q.q.qtype]
    with LOCK, open(LOG, 'a') as f:
        f.write(f'{name} {qtype}\n')
    reply = q.reply()
    entry = ZONE.get(name)
    if entry == 'TIMEOUT':
        return None
    if entry == 'SERVFAIL':
        reply.header.rcode = RCODE.SERVFAIL
        return reply.pack()
    if entry is None:
        reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()
    for rdata in entry.get(qtype, []):
        if qtype == 'MX':
            reply.add_answer(RR(q.q.qname, QTYPE.MX, rdata=MX(rdata[1], rdata[0]), ttl=60))
        elif qtype == 'A':
            reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(rdata), ttl=60))
        elif qtype == 'AAAA':
            reply.add_answer(RR(q.q.qname, QTYPE.AAAA, rdata=AAAA(rdata), ttl=60))
    return reply.pack()


class UDP(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        out = answer(data)
        if out is not None:
            sock.sendto(out, self.client_address)


class TCP(socketserver.BaseRequestHandler):
    def handle(self):
        head = self.request.recv(2)
        if len(head) < 2:
            return
        n = int.from_bytes(head, 'big')
        data = b''
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                return
            data += chunk
        out = answer(data)
        if out is not None:
            self.request.sendall(len(out).to_bytes(2, 'big') + out)


class ThreadedUDP(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True


class ThreadedTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ZONE, LOG
    with open(sys.argv[1]) as f:
        ZONE = {k.lower(): v for k, v in json.load(f).items()}
    LOG = sys.argv[1] + '.log'
    # one port for both: the kernel picks a free UDP port, whose TCP twin
    # may be taken by someone else; then try another
    for _ in range(50):
        udp = ThreadedUDP(('127.0.0.1', 0), UDP)
        port = udp.server_address[1]
        try:
            tcp = ThreadedTCP(('127.0.0.1', port), TCP)
            break
        except OSError:
            udp.server_close()
    else:
        sys.exit('dnsserver: no port free for both UDP and TCP')
    for srv in (udp, tcp):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f'PORT {port}', flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    udp.shutdown()
    tcp.shutdown()


if __name__ == '__main__':
    main()
