#!/bin/sh
# install-deps.sh: installs the Debian 12 packages Selo needs to build, run and
# test, and only those that are missing. Does nothing when all are present.
# Needs root (apt-get); prints what it installs. Exit 0 on success, 1 on failure.
set -eu

# Build: compiler, libraries with their headers.
BUILD="gcc make pkg-config libc6-dev libssl-dev openssl libsqlite3-dev sqlite3
libjansson-dev libmicrohttpd-dev libesmtp-dev libopendkim-dev libcurl4-openssl-dev
libinih-dev libcairo2-dev libpango1.0-dev libqrencode-dev fonts-dejavu-core"
# Tests: real peers and third-party verifiers, sanitizers, fuzzing.
TEST="curl python3 python3-aiosmtpd python3-dkim python3-dnslib postfix clang
libclang-rt-14-dev wrk nginx-light chromium opendkim opendkim-tools poppler-utils
qpdf"

missing=""
for p in $BUILD $TEST; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
# Node.js drives the browser test (Playwright); any node will do, and a
# machine may have one from elsewhere, so ask Debian only when none exists.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing; run as root (sudo $0)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is used only for its smtp-sink test server: keep it unconfigured and
# never started as a system MTA.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Postfix, OpenDKIM and nginx are test and benchmark peers, started by the tests on
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
