#!/bin/sh
# Re-make and check the OpenPGP test data (tests/data/openpgp/README.md):
#
#   tests/data/openpgp/generate/make.sh OUTDIR [--fuzz-seeds DIR]
#
# installs OpenPGP.js here if node_modules is missing (npm ci, from
# package-lock.json), writes fresh keys and vectors into OUTDIR
# (make-vectors.mjs), then checks them with OpenPGP.js (verify.mjs) and
# with the independent RFC 9580 decoder (rfc9580_decode.py, Debian's
# python3-cryptography; PYTHON overrides /usr/bin/python3). With
# C_TEST=<path of the built unit test test_openpgp>, proxyd's own decoder
# checks them too. Exits non-zero if any check disagrees.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
	echo "usage: $0 OUTDIR [--fuzz-seeds DIR]" >&2
	exit 2
fi
out=$1
shift
PYTHON=${PYTHON:-/usr/bin/python3}

if [ ! -d "$here/node_modules/openpgp" ]; then
	(cd "$here" && npm ci --no-audit --no-fund)
fi
node "$here/make-vectors.mjs" "$out" "$@"

status=0
echo "== OpenPGP.js"
node "$here/verify.mjs" "$out" || status=1
echo "== independent decoder (RFC 9580, Python)"
"$PYTHON" "$here/rfc9580_decode.py" "$out" || status=1
if [ -n "${C_TEST:-}" ]; then
	echo "== proxyd's decoder ($C_TEST)"
	td=$(mktemp -d)
	ln -s "$(cd "$out" && pwd)" "$td/openpgp"
	TESTDATA=$td "$C_TEST" || status=1
	rm -rf "$td"
fi
if [ $status -ne 0 ]; then
	echo "make.sh: the checks disagree with the data in $out" >&2
fi
exit $status
