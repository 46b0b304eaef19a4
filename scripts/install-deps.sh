#!/bin/sh
# install-deps.sh: installs the Debian 12 packages Selo needs, for one purpose,
# and only those that are missing. Does nothing when all are present.
#
#   scripts/install-deps.sh run     what running `selo` needs: the shared
#                                   libraries, openssl, fonts for PDF receipts
#   scripts/install-deps.sh build   compiler and -dev packages (run's too)
#   scripts/install-deps.sh test    build's, plus every test and benchmark peer
#   scripts/install-deps.sh --check MODE
#                                   installs nothing: prints the missing
#                                   packages, one line, exit 1 if any
#
# `make run` asks for run + build (it builds first), `make check` and the
# other test targets for test; `make` / `make build` never call this with
# apt-get: they only check (see the Makefile). Needs root to install;
# prints what it installs. Exit 0 on success, 1 on failure, 2 on usage.
set -eu

# Running: the shared libraries the binary links, openssl (certs/ scripts and
# receipt checks by hand), fonts the PDF receipt is drawn with.
RUN="openssl libssl3 libsqlite3-0 libjansson4 libmicrohttpd12 libesmtp6 libcurl4
libinih1 libcairo2 libpango-1.0-0 libpangocairo-1.0-0 libqrencode4 zlib1g
libopendkim11 libsystemd0 libarchive13 libpq5 fonts-dejavu-core"
# Build: compiler, libraries with their headers.
BUILD="gcc make pkg-config libc6-dev libssl-dev libsqlite3-dev sqlite3
libjansson-dev libmicrohttpd-dev libesmtp-dev libopendkim-dev libcurl4-openssl-dev
libinih-dev libcairo2-dev libpango1.0-dev libqrencode-dev libsystemd-dev
libarchive-dev libpq-dev"
# Tests: real peers and third-party verifiers, sanitizers, fuzzing, linters;
# postgresql is the server the PostgreSQL tests start themselves (initdb into
# a temporary directory; tests/integration/pgtest.py), never a system cluster.
TEST="curl python3 python3-aiosmtpd python3-dkim python3-dnslib python3-jsonschema
postfix clang libclang-rt-14-dev wrk nginx-light chromium opendkim opendkim-tools
poppler-utils qpdf mandoc spamassassin postgresql"

usage() {
	echo "usage: $0 run|build|test  (or --check run|build|test)" >&2
	exit 2
}

check_only=0
if [ "${1:-}" = "--check" ]; then
	check_only=1
	shift
fi
case "${1:-}" in
run) WANT="$RUN" ;;
build) WANT="$RUN $BUILD" ;;
test) WANT="$RUN $BUILD $TEST" ;;
*) usage ;;
esac
mode=$1

missing=""
for p in $WANT; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ "$mode" = test ]; then
	# Node.js drives the browser test (Playwright) and the OpenAPI lint; any
	# node will do, and a machine may have one from elsewhere, so ask Debian
	# only when none exists.
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
if [ "$check_only" = 1 ]; then
	[ -z "$missing" ] && exit 0
	echo "$missing"
	exit 1
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages for '$mode':$missing" >&2
	echo "install-deps: run as root: sudo $0 $mode" >&2
	exit 1
fi
echo "install-deps: installing for '$mode':$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is used only for its smtp-sink test server: keep it unconfigured and
# never started as a system MTA.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Postfix, OpenDKIM, nginx and PostgreSQL are test and benchmark peers, started by the tests on
# their own ports: keep the packages from starting system daemons.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	policy=/usr/sbin/policy-rc.d
fi
trap '[ -n "$policy" ] && rm -f "$policy"' EXIT
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
