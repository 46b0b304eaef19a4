#!/usr/bin/python3
"""cpu_per_notice.py SELO_BINARY [N]: the CPU `selo serve` spends per notice.

Starts SELO_BINARY's serve on a fresh data directory (relay mode into
Postfix's smtp-sink on 127.0.0.1), posts N notices (default 10,000) of the
`lembrete` template in batches of 500, waits until every one is
relay_accepted, and prints the wall time, notices/s and the serve process's
user + system CPU per notice (/proc/PID/stat). CPU per notice is steadier
than notices/s on a noisy 2-core machine: compare two builds by running
them alternately (docs/operations.md "Figures"). Uses tests/integration's
selotest to start and stop everything; nothing is left running."""
import os, re, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
import selotest  # noqa: E402
from selotest import Selo, free_port, wait_until  # noqa: E402

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'Maria Souza', 'template': 'lembrete',
          'vars': {'nome': 'Maria Souza', 'valor': '1234.56', 'vencimento': '2026-12-10',
                   'credor': 'Loja Exemplo Ltda', 'documento': 'FAT-1'}}


def relayed(s):
    text = urllib.request.urlopen(s.url + '/metrics', timeout=10).read().decode()
    m = re.search(r'^selo_notices\{state="relayed"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    selotest.SELO = binary
    selotest._openapi_check = lambda *a: None  # an older binary's answers are not checked
    port = free_port()
    sink = subprocess.Popen(['smtp-sink', '-u', 'nobody', f'127.0.0.1:{port}', '1024'])
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{port}', 'starttls': 'no'},
             sender={'workers': '4', 'batch': '50'})
    try:
        s.start()
        t0 = time.time()
        for i in range((n + 499) // 500):
            batch = [dict(NOTICE, reference=f'B{i}-{k}') for k in range(min(500, n - 500 * i))]
            st, _, j = s.api('POST', '/v1/notices/batch', {'notices': batch})
            if st != 200 or j['accepted'] != len(batch):
                sys.exit(f'batch refused: {st} {j}')
        wait_until(lambda: relayed(s) >= n, 900, 0.2, 'every notice relayed')
        wall = time.time() - t0
        with open(f'/proc/{s.p.pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        print(f'{binary}: {n} notices, wall {wall:.2f} s, {n / wall:.0f} notices/s, '
              f'serve CPU {cpu:.2f} s = {cpu / n * 1e6:.0f} us a notice')
    finally:
        s.cleanup()
        sink.kill()
        sink.wait()


if __name__ == '__main__':
    main()
