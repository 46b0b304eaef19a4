#!/usr/bin/python3
"""slowclients.py: trickling HTTP clients for Selo's tests (a slowloris).

Holds N connections to HOST:PORT from ADDRS loopback source addresses
(127.77.a.b, bound before connect, so each looks like another client).
Each connection sends an unfinished request head, then one more byte of it
every INTERVAL seconds, which resets an idle timeout but never finishes the
head. A connection the server cuts is opened again at once (at most RATE
new connections a second, so the generator does not eat the machine). One
process, one selector, no threads: 4,000 sockets cost little CPU.

Command line:
  /usr/bin/python3 tests/integration/slowclients.py PORT [--conns N]
      [--addrs A] [--interval S] [--rate R] [--host H]
Every second it prints one JSON line on stdout (flushed):
  {"open": connections established and not cut, "connecting": in progress,
   "opened": established since the start, "cut": ended by the server,
   "refused": connects that failed}
It runs until killed (SIGTERM or SIGKILL: the tests stop it by its PID)."""
import argparse, errno, heapq, json, os, resource, selectors, socket, sys, time

HEAD = b'GET /o/'          # an unfinished request line
TRICKLE = b'a'             # one more byte of the path, every interval


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need and (hard == resource.RLIM_INFINITY or hard > soft):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Clients:
    def __init__(self, a):
        self.a = a
        self.sel = selectors.DefaultSelector()
        self.addrs = [f'127.77.{1 + i // 200}.{1 + i % 200}' for i in range(a.addrs)]
        self.next_addr = 0
        self.timers = []  # (when, serial, sock): next trickle byte
        self.serial = 0
        self.wanted = 0   # connections to (re)open
        self.stats = {'open': 0, 'connecting': 0, 'opened': 0, 'cut': 0, 'refused': 0}
        self.tokens = float(a.rate)
        self.last = time.monotonic()

    def open_one(self):
        src = self.addrs[self.next_addr % len(self.addrs)]
        self.next_addr += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((src, 0))
            rc = s.connect_ex((self.a.host, self.a.port))
        except OSError:
            s.close()
            self.stats['refused'] += 1
            self.wanted += 1
            return
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.stats['refused'] += 1
            self.wanted += 1
            return
        self.stats['connecting'] += 1
        self.sel.register(s, selectors.EVENT_WRITE, 'connecting')

    def connected(self, s):
        self.sel.unregister(s)
        self.stats['connecting'] -= 1
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            s.close()
            self.stats['refused'] += 1
            self.wanted += 1
            return
        try:
            s.send(HEAD)
        except OSError:
            s.close()
            self.stats['cut'] += 1
            self.wanted += 1
            return
        self.stats['open'] += 1
        self.stats['opened'] += 1
        self.sel.register(s, selectors.EVENT_READ, 'open')
        self.serial += 1
        heapq.heappush(self.timers, (time.monotonic() + self.a.interval, self.serial, s))

    def cut(self, s):
        """The server ended it (EOF, reset, or an answer): open another."""
        self.sel.unregister(s)
        s.close()
        self.stats['open'] -= 1
        self.stats['cut'] += 1
        self.wanted += 1

    def readable(self, s):
        try:
            s.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            pass
        self.cut(s)  # EOF, a reset, or an answer: either way it no longer holds a slot

    def trickle(self, now):
        while self.timers and self.timers[0][0] <= now:
            _, _, s = heapq.heappop(self.timers)
            if s.fileno() < 0:
                continue  # already cut and closed
            try:
                s.send(TRICKLE)
            except OSError:
                self.cut(s)
                continue
            self.serial += 1
            heapq.heappush(self.timers, (now + self.a.interval, self.serial, s))

    def refill(self, now):
        self.tokens = min(float(self.a.rate), self.tokens + (now - self.last) * self.a.rate)
        self.last = now
        while self.wanted > 0 and self.tokens >= 1:
            self.wanted -= 1
            self.tokens -= 1
            self.open_one()

    def run(self):
        self.wanted = self.a.conns
        report = time.monotonic() + 1
        while True:
            now = time.monotonic()
            self.refill(now)
            wait = 0.05
            if self.timers:
                wait = max(0.0, min(wait, self.timers[0][0] - now))
            for key, _ in self.sel.select(wait):
                if key.data == 'connecting':
                    self.connected(key.fileobj)
                else:
                    self.readable(key.fileobj)
            now = time.monotonic()
            self.trickle(now)
            if now >= report:
                print(json.dumps(self.stats), flush=True)
                report = now + 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument('port', type=int)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--conns', type=int, default=4200)
    p.add_argument('--addrs', type=int, default=100)
    p.add_argument('--interval', type=float, default=4.0)
    p.add_argument('--rate', type=int, default=2000)
    a = p.parse_args()
    raise_nofile(a.conns + 64)
    Clients(a).run()


if __name__ == '__main__':
    main()
