#!/bin/sh
# Install the Debian packages that building, testing and running the stack
# need. Idempotent: it does nothing when everything is already there, so the
# test command can call it every time.
#
#   scripts/install-deps.sh           build, test and run (the default)
#   scripts/install-deps.sh --build   only what `make` and `make install`
#                                     need (the Dockerfile's build stage)
set -eu

BUILD_PACKAGES="build-essential pkg-config
libsqlite3-dev libevent-dev libmicrohttpd-dev libcurl4-openssl-dev
libssl-dev libnghttp2-dev libjansson-dev zlib1g-dev libhiredis-dev"
# redis-server, redis-sentinel, haproxy: several proxyd sharing state
# behind a balancer (issue 15), as the e2e tests run them. prometheus:
# its promtool, for make alerts-test (no server is run).
PACKAGES="$BUILD_PACKAGES clang libcmocka-dev sqlite3
dovecot-core dovecot-imapd dovecot-lmtpd
redis-server redis-sentinel haproxy
python3-pytest python3-h2 python3-cryptography python3-jwt
python3-matplotlib
iproute2 valgrind openssl curl nghttp2-client
prometheus python3-yaml
debhelper dpkg-dev fakeroot lintian"
build_only=false
if [ "${1:-}" = "--build" ]; then
	build_only=true
	PACKAGES=$BUILD_PACKAGES
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--build]" >&2
	exit 2
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

# Node.js and npm run OpenPGP.js and web-push, the independent encryptors
# the e2e tests check proxyd against. Judged by the commands, not by
# package names: a machine may have Node.js from elsewhere (nodesource),
# whose nodejs package conflicts with Debian's npm.
if ! $build_only && { ! command -v node >/dev/null ||
    ! command -v npm >/dev/null; }; then
	missing="$missing nodejs npm"
fi

if [ -z "$missing" ]; then
	exit 0
fi

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to install packages" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# Dovecot's, Redis's and HAProxy's packages start a system service on
# install; we never use them and they must not grab ports (143/993, 6379,
# 26379) that a machine may need: the tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
