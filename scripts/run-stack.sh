#!/bin/sh
# The run command: installs what is missing (scripts/install-deps.sh, and
# Node.js for OpenPGP.js, which encrypts the demo tokens as chatmail core
# does), builds the three daemons, and runs the whole chain in a temp dir
# until Ctrl-C (see scripts/run-stack.py). Run as root on Debian 12:
# Dovecot's master switches users.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "run-stack: run as root (Dovecot's master switches users)" >&2
	exit 1
fi
scripts/install-deps.sh
make -j2 build/bin/metadata-dictd build/bin/notifierd build/bin/proxyd \
    >/dev/null
exec /usr/bin/python3 scripts/run-stack.py
