#!/bin/sh
# make-dev-certs.sh: makes Selo's development CA, S/MIME and TSA certificates
# with the openssl CLI, the same set `selo init` makes in C (src/keys.c):
#   ca.key ca.crt        self-signed CA, P-256, 10 years
#   smime.pem smime.crt  RSA-2048 S/MIME signer for FROM, 2 years
#   tsa.pem tsa.crt      P-256 key of the built-in TSA, critical timeStamping
# For operators who prefer the CLI, or who want to see each step. Real
# certificates (e.g. ICP-Brasil) replace these files: see certs/README.md.
#
# Usage: certs/make-dev-certs.sh [-f] DIR DOMAIN FROM_ADDRESS
#   e.g. certs/make-dev-certs.sh /var/lib/selo/keys example.com notices@example.com
# Refuses to replace existing files unless -f. Private keys are 0600 from
# their first byte, certificates 0644; files appear only when all were made.
# Exit: 0 made, 1 files exist (nothing changed), 2 usage or openssl error.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
force=0
if [ "${1:-}" = "-f" ]; then
	force=1
	shift
fi
if [ $# -ne 3 ]; then
	echo "usage: $0 [-f] DIR DOMAIN FROM_ADDRESS" >&2
	exit 2
fi
dir=$1 domain=$2 from=$3

# The same checks as keys_init: plain DNS names and ASCII addresses, which
# then need no quoting anywhere.
if ! printf '%s' "$domain" | grep -Eq '^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$'; then
	echo "make-dev-certs: domain \"$domain\" is not a DNS name" >&2
	exit 2
fi
if ! printf '%s' "$from" | grep -Eq "^[A-Za-z0-9!#\$%&'*+/=?^_\`{|}~-]+(\.[A-Za-z0-9!#\$%&'*+/=?^_\`{|}~-]+)*@[A-Za-z0-9.-]+\$"; then
	echo "make-dev-certs: \"$from\" is not a plain address like notices@example.com" >&2
	exit 2
fi

files="ca.key ca.crt smime.pem smime.crt tsa.pem tsa.crt"
if [ "$force" = 0 ]; then
	for f in $files; do
		if [ -e "$dir/$f" ]; then
			echo "make-dev-certs: $dir/$f already exists; nothing changed (use -f to replace)" >&2
			exit 1
		fi
	done
fi

umask 077 # keys are private from their first byte
mkdir -p "$dir" || exit 2
chmod 700 "$dir" || exit 2
dir=$(CDPATH='' cd -- "$dir" && pwd) # absolute: the work below runs elsewhere
work=$(mktemp -d "$dir/.make-dev-certs.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 2' HUP INT TERM

fail() {
	echo "make-dev-certs: $1 failed; nothing changed" >&2
	exit 2
}

# Runs a command that chats on stderr ("Certificate request self-signature
# ok"); its stderr is shown only when it fails.
quiet() {
	"$@" 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }
}

# A positive 16-byte serial number (RFC 5280 §4.1.2.2: at most 20 bytes).
serial() {
	echo "0x40$(openssl rand -hex 15)"
}

# -subj treats / + = , and \ as syntax: escape them in a value.
subj_escape() {
	printf '%s' "$1" | sed 's/[\\/+=,]/\\&/g'
}

# A CN longer than 64 characters (RFC 5280) falls back to a fixed one.
cn_or() {
	if [ "${#1}" -le 64 ]; then printf '%s' "$1"; else printf '%s' "$2"; fi
}

# openssl-smime.cnf reads the address from the environment.
SELO_FROM_ADDRESS=$from
export SELO_FROM_ADDRESS

ca_cn=$(cn_or "Selo development CA ($domain)" "Selo development CA")
smime_cn=$(cn_or "$from" "Selo notices")
tsa_cn=$(cn_or "Selo TSA ($domain)" "Selo TSA")

cd "$work"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -quiet -out ca.key ||
	fail "CA key generation"
openssl req -x509 -new -config "$here/openssl-ca.cnf" -extensions v3_ca -key ca.key \
	-subj "/CN=$(subj_escape "$ca_cn")/O=Selo" -set_serial "$(serial)" \
	-days 3652 -sha256 -out ca.crt || fail "CA certificate"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -quiet -out smime.pem ||
	fail "S/MIME key generation"
openssl req -new -config "$here/openssl-smime.cnf" -key smime.pem \
	-subj "/CN=$(subj_escape "$smime_cn")/O=Selo" -out smime.csr || fail "S/MIME request"
quiet openssl x509 -req -in smime.csr -CA ca.crt -CAkey ca.key \
	-set_serial "$(serial)" -days 730 -sha256 \
	-extfile "$here/openssl-smime.cnf" -extensions v3_smime -out smime.crt ||
	fail "S/MIME certificate"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -quiet -out tsa.pem ||
	fail "TSA key generation"
openssl req -new -config "$here/openssl-tsa.cnf" -key tsa.pem \
	-subj "/CN=$(subj_escape "$tsa_cn")/O=Selo" -out tsa.csr || fail "TSA request"
quiet openssl x509 -req -in tsa.csr -CA ca.crt -CAkey ca.key -set_serial "$(serial)" \
	-days 3652 -sha256 -extfile "$here/openssl-tsa.cnf" -extensions v3_tsa \
	-out tsa.crt || fail "TSA certificate"

openssl verify -CAfile ca.crt -purpose smimesign smime.crt >/dev/null || fail "S/MIME check"
openssl verify -CAfile ca.crt -purpose timestampsign tsa.crt >/dev/null || fail "TSA check"

chmod 600 ca.key smime.pem tsa.pem
chmod 644 ca.crt smime.crt tsa.crt
for f in $files; do
	mv -f "$f" "$dir/$f"
done
echo "make-dev-certs: made $files in $dir" >&2
