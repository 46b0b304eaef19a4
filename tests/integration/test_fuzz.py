#!/usr/bin/python3
"""Fuzz smoke (plain build only): builds every libFuzzer target in
tests/fuzz/ with clang (ASan+UBSan) and runs each for a few seconds from its
seeds, so the targets keep compiling and a shallow crash cannot land. Long
runs: `make fuzz` (scripts/fuzz.sh SECONDS)."""
import os, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403


@test
def fuzz_targets_build_and_survive_a_short_run():
    if not os.environ.get('SELO_BUILD', 'build').rstrip('/').endswith('/build'):
        skip('the fuzz targets are built with their own sanitizers: run once, on the plain build')
    p = subprocess.run([os.path.join(ROOT, 'scripts', 'fuzz.sh'), os.environ.get('SELO_FUZZ_SECONDS', '5')],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    eq(p.returncode, 0, 'scripts/fuzz.sh: ' + p.stdout.decode(errors='replace')[-2000:])


if __name__ == '__main__':
    main()
