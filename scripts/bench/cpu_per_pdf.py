#!/usr/bin/python3
"""cpu_per_pdf.py SELO_BINARY [N]: the CPU `selo serve` spends per PDF receipt.

Starts SELO_BINARY's serve on a fresh data directory (maildir mode), posts
the bench's notice (scripts/bench.py NOTICE), opens its pixel 17 times so the
receipt has about 20 events, then fetches GET .../receipt?format=pdf N times
(default 60) one at a time and prints the wall time and the serve process's
user + system CPU per PDF (/proc/PID/stat). Like cpu_per_notice.py, compare
builds by running them alternately (docs/operations.md "Figures"). Every
process it starts is stopped by its pid; the data directory is removed."""
import importlib.util, json, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location('bench', os.path.join(ROOT, 'scripts', 'bench.py'))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def cpu(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    selo = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    bench.SELO = selo
    tmp = tempfile.mkdtemp(prefix='selo-pdfcpu-')
    serve = None
    try:
        data = os.path.join(tmp, 'data')
        out = subprocess.run([selo, 'init', '--data', data, '--domain', 'cobranca.example'],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
        key = out.stdout.decode().split()[1]
        api, track = bench.free_port(), bench.free_port()
        with open(os.path.join(data, 'selo.conf'), 'w') as f:
            f.write(f'[api]\nlisten = 127.0.0.1:{api}\n[track]\nlisten = 127.0.0.1:{track}\n'
                    f'base_url = http://127.0.0.1:{track}\n[mail]\ndomain = cobranca.example\n')
        serve = subprocess.Popen([selo, 'serve', '--data', data], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        url = f'http://127.0.0.1:{api}'
        bench.wait_healthz(url)
        nid = bench.curl('POST', url + '/v1/notices', key, json.dumps(bench.NOTICE).encode())['id']
        pixel = bench.pixel_url(data, track)
        for i in range(17):
            subprocess.run(['curl', '-s', '-o', '/dev/null', '-A', f'Bench/{i}', pixel], check=True)
        path = f'{url}/v1/notices/{nid}/receipt'
        pdf = os.path.join(tmp, 'r.pdf')
        for _ in range(150):  # until the receipt is timestamped and has its events
            if subprocess.run(['curl', '-s', '-f', '-o', pdf, path + '?format=pdf', '-H',
                               f'Authorization: Bearer {key}']).returncode == 0:
                break
            time.sleep(0.2)
        time.sleep(1)
        c0, t0 = cpu(serve.pid), time.time()
        for _ in range(n):
            subprocess.run(['curl', '-s', '-f', '-o', pdf, path + '?format=pdf', '-H',
                            f'Authorization: Bearer {key}'], check=True)
        c1, t1 = cpu(serve.pid), time.time()
        print(f'{selo}: {n} PDFs of {os.path.getsize(pdf)} bytes, wall {(t1 - t0) / n * 1000:.1f} ms, '
              f'serve CPU {(c1 - c0) / n * 1000:.2f} ms a PDF')
    finally:
        if serve:
            serve.kill()
            serve.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
