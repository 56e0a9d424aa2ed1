#!/bin/sh
# The Docker end-to-end test (make docker-test; part of scripts/test.sh):
# the relay and central images built from the Dockerfile as it is, the
# topology of compose.yaml brought up with tests/docker/compose.test.yaml
# on top (fake providers in their own container, test secrets), and
# tests/docker/test_docker_stack.py run against the containers as a
# client would. Run as root on Debian 12.
#
# It installs what is missing (docker.io, docker-compose, mmdebstrap),
# starts a Docker engine of its own on a private socket (or reuses the one
# an earlier run left), and makes the base image `debian:12` with
# mmdebstrap from the machine's own package sources when it cannot be
# pulled (no registry reachable). The engine's data (images, build cache)
# stays in $DOCKER_TEST_DIR between runs, so later runs rebuild only what
# changed; an engine this script started is stopped at the end, and the
# test removes every container, network and volume it made.
#
# Environment: DOCKER_TEST_DIR (default /var/lib/chatmail-push-docker),
# DOCKER_TEST_KEEP_ENGINE=1 (leave the engine running), PYTHON.
set -eu
cd "$(dirname "$0")/.."

DIR=${DOCKER_TEST_DIR:-/var/lib/chatmail-push-docker}
RUN=/run/chatmail-push-docker
SOCK=$RUN/docker.sock
PYTHON=${PYTHON:-/usr/bin/python3}
# Debian's client, which matches Debian's engine (a newer client elsewhere
# on PATH may speak an API the 20.10 engine does not).
DOCKER=/usr/bin/docker
COMPOSE=/usr/bin/docker-compose
export DOCKER_HOST=unix://$SOCK

say() { echo "docker-test: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	say "SKIPPED: needs root (it runs a Docker engine of its own)"
	exit 0
fi

# ---- what it needs ---------------------------------------------------------

missing=
for p in docker.io docker-compose mmdebstrap; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing:$missing"
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $missing >/dev/null
fi

# ---- the engine -------------------------------------------------------------

started=false
engine_up() { $DOCKER version >/dev/null 2>&1; }
stop_engine() {
	if $started && [ "${DOCKER_TEST_KEEP_ENGINE:-0}" != 1 ] &&
	    [ -f "$RUN/docker.pid" ]; then
		pid=$(cat "$RUN/docker.pid")
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do
			sleep 0.2
			i=$((i + 1))
		done
		say "engine stopped"
	fi
}
trap stop_engine EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if engine_up; then
	say "reusing the engine on $SOCK"
else
	mkdir -p "$DIR" "$RUN"
	# No default bridge (docker0 is left to a system engine): the
	# test's containers talk on compose's own bridge networks, the host
	# reaches them through ports published on 127.0.0.1, and builds use
	# the host's network for apt-get. The engine manages its iptables
	# rules as usual (without them, a FORWARD policy of DROP that another
	# engine left would cut the bridges).
	/usr/sbin/dockerd --data-root "$DIR/data" --exec-root "$RUN/exec" \
	    -H "unix://$SOCK" --pidfile "$RUN/docker.pid" --bridge none \
	    >"$DIR/dockerd.log" 2>&1 &
	started=true
	i=0
	until engine_up; do
		if [ $i -ge 150 ] || ! kill -0 $! 2>/dev/null; then
			tail -20 "$DIR/dockerd.log" >&2
			say "FAILED: the Docker engine did not start"
			exit 1
		fi
		sleep 0.2
		i=$((i + 1))
	done
	say "engine started on $SOCK ($($DOCKER version -f \
	    '{{.Server.Version}}'), data in $DIR)"
fi

# ---- the base image ---------------------------------------------------------

if $DOCKER image inspect debian:12 >/dev/null 2>&1; then
	:
elif timeout 30 $DOCKER pull -q debian:12 >/dev/null 2>&1; then
	say "pulled debian:12"
else
	# Debian 12 from the machine's package sources: minbase, without
	# documentation, manual pages, translations or apt's lists (what
	# Docker's own debian image leaves out too).
	say "no registry: making debian:12 with mmdebstrap"
	tmp=$(mktemp -d)
	# The exclusions stay in the image (dpkg.cfg.d), and so does an apt
	# setting that keeps no downloaded package and no binary cache: what
	# the Dockerfile installs later is kept as lean.
	mmdebstrap --quiet --variant=minbase \
	    --dpkgopt='path-exclude=/usr/share/doc/*' \
	    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	    --dpkgopt='path-exclude=/usr/share/man/*' \
	    --dpkgopt='path-exclude=/usr/share/locale/*' \
	    --dpkgopt='path-exclude=/usr/share/info/*' \
	    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb' \
	    --customize-hook='printf "%s\n" "APT::Keep-Downloaded-Packages \"false\";" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" >"$1"/etc/apt/apt.conf.d/90image-lean' \
	    bookworm "$tmp/rootfs.tar"
	$DOCKER import --change 'CMD ["bash"]' "$tmp/rootfs.tar" debian:12 \
	    >/dev/null
	rm -rf "$tmp"
fi

# ---- the images -------------------------------------------------------------
# Built here rather than by compose so that apt-get in the build runs on
# the host's network; compose then finds them by name.

build() {
	t0=$(date +%s)
	if ! $DOCKER build -q --network host "$@" >"$DIR/build.log" 2>&1; then
		tail -30 "$DIR/build.log" >&2
		say "FAILED: docker build $*"
		exit 1
	fi
	say "built $* in $(($(date +%s) - t0)) s"
}
build --target relay -t chatmail-push-relay .
build --target central -t chatmail-push-central .
build -f tests/docker/fakes.Dockerfile -t chatmail-push-fakes:test .

# ---- the test ---------------------------------------------------------------
# (it prints the images' sizes and the push latency across the containers)

export DOCKER COMPOSE
"$PYTHON" -m pytest -q -s tests/docker
