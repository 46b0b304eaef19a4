#!/bin/sh
# cluster.sh: a private PostgreSQL 15 for C tests and scripts, by directory.
#   tests/pg/cluster.sh start DIR [--password PW] [--tcp] [--watch PID]
#       initdb into DIR (as nobody when root), start it, print its libpq
#       connection string on stdout; --watch PID stops it when PID ends
#   tests/pg/cluster.sh stop|kill|restart|url DIR
# The work is tests/integration/pgtest.py's; exit 3 when the PostgreSQL
# binaries are absent (the caller skips).
set -eu
exec /usr/bin/python3 "$(dirname "$0")/../integration/pgtest.py" "$@"
