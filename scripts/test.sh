#!/bin/sh
# The test command: installs what is missing (Debian packages), builds, and
# runs every test: unit tests, the same under ASan+UBSan, fuzz corpus
# replay plus a short libFuzzer run, and the end-to-end suite with a real
# Dovecot. Run as root on Debian 12 (Dovecot's master needs root).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec make -j2 test
