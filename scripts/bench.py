"""bench.py BUILD_DIR: Selo's benchmarks (see bench.sh). Prints figures only.

1. end to end: N notices posted in batches of 500 to `selo serve` (relay
   mode, both signatures, STARTTLS off) with Postfix's smtp-sink as the relay;
   notices/s from the first POST to the last relay_accepted.
2. accept latency: wrk posting single notices (16 connections, 10 s) while
   the senders drain into smtp-sink; requests/s and the p50/p99 latency."""
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else 'build'
SELO = os.path.join(ROOT, BUILD, 'selo')
N = int(os.environ.get('BENCH_NOTICES', '20000'))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def curl(method, url, key, body=None):
    argv = ['curl', '-s', '-X', method, url, '-H', f'Authorization: Bearer {key}']
    if body is not None:
        argv += ['-H', 'Content-Type: application/json', '--data-binary', '@-']
    p = subprocess.run(argv, input=body, stdout=subprocess.PIPE, check=True)
    return json.loads(p.stdout)


NOTICE = {'to': 'devedor@destino.example', 'to_name': 'João da Silva', 'template': 'lembrete',
          'reference': 'BENCH', 'vars': {'nome': 'João da Silva', 'valor': '1234.56',
                                         'vencimento': '2026-12-01', 'credor': 'Loja Exemplo Ltda',
                                         'documento': 'FAT-1'}}


def metrics(url):
    out = subprocess.run(['curl', '-s', url + '/metrics'], stdout=subprocess.PIPE).stdout.decode()
    m = {}
    for line in out.splitlines():
        mm = re.match(r'selo_notices\{state="(\w+)"\} (\d+)', line)
        if mm:
            m[mm.group(1)] = int(mm.group(2))
    return m


def ledger(tmp):
    """The ledger's own figures (scripts/bench/ledger_bench.c) on a fresh data dir."""
    data = os.path.join(tmp, 'ledger')
    subprocess.run([SELO, 'init', '--data', data, '--domain', 'bench.example'],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    n = os.environ.get('BENCH_LOG_ENTRIES', '1000000')
    print(f'ledger: {n} entries', flush=True)
    subprocess.run([os.path.join(ROOT, BUILD, 'bench', 'ledger_bench'), data, n], check=False)


def main():
    tmp = tempfile.mkdtemp(prefix='selo-bench-')
    procs = []
    try:
        sink_port = free_port()
        sink = subprocess.Popen(['smtp-sink', '-u', 'nobody', f'127.0.0.1:{sink_port}', '1024'],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sink)
        data = os.path.join(tmp, 'data')
        out = subprocess.run([SELO, 'init', '--data', data, '--domain', 'cobranca.example'],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
        key = out.stdout.decode().split()[1]
        api = free_port()
        workers = os.environ.get('BENCH_WORKERS', '4')
        with open(os.path.join(data, 'selo.conf'), 'w') as f:
            f.write(f'[api]\nlisten = 127.0.0.1:{api}\n\n[track]\nlisten = 127.0.0.1:{free_port()}\n'
                    f'[mail]\ndomain = cobranca.example\n[smtp]\nmode = relay\n'
                    f'relay = 127.0.0.1:{sink_port}\nstarttls = no\n'
                    f'[sender]\nworkers = {workers}\nbatch = 50\n')
        log = open(os.path.join(tmp, 'serve.log'), 'wb')
        serve = subprocess.Popen([SELO, 'serve', '--data', data], stdout=log, stderr=log)
        procs.append(serve)
        url = f'http://127.0.0.1:{api}'
        for _ in range(100):
            if subprocess.run(['curl', '-s', '-o', '/dev/null', url + '/healthz']).returncode == 0:
                break
            time.sleep(0.1)
        batch = json.dumps({'notices': [NOTICE] * 500}).encode()
        t0 = time.time()
        sent = 0
        while sent < N:
            r = curl('POST', url + '/v1/notices/batch', key, batch)
            sent += r['accepted']
        t_accept = time.time() - t0
        while True:
            m = metrics(url)
            done = m.get('relayed', 0) + m.get('failed', 0)
            if done >= N:
                break
            time.sleep(0.05)
        t_all = time.time() - t0
        print(f'end to end: {N} notices (batches of 500, {workers} sender workers, RSA+Ed25519 DKIM '
              f'+ S/MIME) -> smtp-sink')
        print(f'  accepted in {t_accept:.2f} s ({N / t_accept:.0f} notices/s accepted)')
        print(f'  all relay_accepted after {t_all:.2f} s: {N / t_all:.0f} notices/s end to end '
              f'(failed: {m.get("failed", 0)})')
        if shutil.which('wrk'):
            lua = os.path.join(tmp, 'post.lua')
            with open(lua, 'w') as f:
                f.write('wrk.method = "POST"\nwrk.body = [[' + json.dumps(NOTICE) + ']]\n'
                        f'wrk.headers["Content-Type"] = "application/json"\n'
                        f'wrk.headers["Authorization"] = "Bearer {key}"\n')
            for conns in (4, 16):
                w = subprocess.run(['wrk', '-t2', f'-c{conns}', '-d10s', '--latency', '-s', lua,
                                    url + '/v1/notices'], stdout=subprocess.PIPE).stdout.decode()
                rps = re.search(r'Requests/sec:\s+([\d.]+)', w)
                p50 = re.search(r'50%\s+([\d.]+\w+)', w)
                p99 = re.search(r'99%\s+([\d.]+\w+)', w)
                print(f'accept latency (wrk, {conns} connections, 10 s, single POST /v1/notices, '
                      f'senders busy): {rps.group(1) if rps else "?"} req/s, '
                      f'p50 {p50.group(1) if p50 else "?"}, p99 {p99.group(1) if p99 else "?"}')
        else:
            print('accept latency: wrk not installed (apt-get install wrk)')
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
        ledger(tmp)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
