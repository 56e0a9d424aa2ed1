#!/bin/sh
# The run command: installs what is missing, builds, and runs the stack in
# a temp dir until Ctrl-C (see scripts/run-stack.py). Run as root.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j2 all >/dev/null
exec /usr/bin/python3 scripts/run-stack.py
