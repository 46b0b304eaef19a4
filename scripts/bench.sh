#!/bin/sh
# bench.sh BUILD_DIR: `make bench`. Prints performance figures (never pass or
# fail): notices/s end to end through the relay transport into Postfix's
# smtp-sink, and API accept latency with wrk. Everything on 127.0.0.1.
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/bench.py "${1:-build}"
