# Shell helpers shared by the two proxyd benches (run-proxyd-bench.sh,
# run-proxyd-redis-bench.sh): what they need installed, the token pool
# and the test PKI, apns-sink, proxyd instances, the load generator's
# ceiling and the Python helper for /proc and /metrics. Source it after
# lib.sh, with BINDIR, HERE, REPO, TESTDATA, POOL, CONCURRENCY, WORKERS,
# CACHE_SIZE, CEILING_SECS and SETTLE_TIMEOUT_S set, then call make_tmp.
# Most of what is set here is for the caller, and some of what is read
# comes from it or from lib.sh: hence SC2034 and SC2154 off.
# shellcheck shell=bash disable=SC2034,SC2154
PROXYD=$BINDIR/proxyd
SINK=$BINDIR/apns-sink
FLOOD=$BINDIR/notify-flood
NSINK=$BINDIR/notify-sink
KEYRING=$TESTDATA/openpgp/keyring-v6.asc
CERT=$TESTDATA/openpgp/cert-v6.asc
# OpenPGP.js: the e2e tests' copy if it is installed, else one of our own
# in a cache directory, installed on the first run.
if [ -z "${OPENPGP_JS_DIR:-}" ]; then
	OPENPGP_JS_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/pushstack-bench
	OPENPGP_JS_DIR=$OPENPGP_JS_DIR/openpgp-js
	[ -e "$REPO/tests/e2e/openpgp_js/node_modules/openpgp/package.json" ] &&
	    OPENPGP_JS_DIR=$REPO/tests/e2e/openpgp_js
fi
PYTHON=${PYTHON:-/usr/bin/python3}
NODE=${NODE:-node}

# The daemons running, for the cleanup: proxyd instances (with their
# metrics ports and logs), apns-sink, notify-sink and, in the Redis bench,
# redis-server.
proxyd_pids=()
metrics_ports=()
logs=()
sink_pid=
nsink_pid=
redis_pid=

# need_test_data: exit 2 without the OpenPGP key and certificate of the
# test data, or without the Python module the test PKI is made with.
need_test_data() {
	local f

	for f in "$KEYRING" "$CERT"; do
		if [ ! -r "$f" ]; then
			echo "$BENCH_NAME: $f: not readable (set TESTDATA)" >&2
			exit 2
		fi
	done
	if ! "$PYTHON" -c 'import cryptography' 2>/dev/null; then
		echo "$BENCH_NAME: $PYTHON lacks the cryptography module" \
		    "(tests/e2e/fakes/pki.py needs it)" >&2
		exit 2
	fi
}

# make_tmp NAME: the temp dir, tmp (NAME.XXXXXX in TMPDIR), and the
# helper's file in it, helper; both gone at exit, with the daemons.
make_tmp() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 2
	helper=$tmp/helper.py
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Whatever happens, leave no process and no temp dir behind.
cleanup() {
	local p

	for p in "${proxyd_pids[@]}" "$sink_pid" "$nsink_pid" "$redis_pid"; do
		[ -z "$p" ] || stop "$p"
	done
	rm -rf "$tmp"
}

# write_proxyd_helper: the helper (write_helper) with, before the bench's
# own part from stdin, what both proxyd benches use: the cpu, metrics,
# wait-ready and wait-settled commands. metrics_line prints FIELDS, then
# the bench's EXTRA_FIELDS.
write_proxyd_helper() {
	{
		cat <<'EOF'
@command("cpu", int)
def cpu(*pids):
    """user + system seconds of all threads of the processes, summed."""
    print("cpu_secs=%.2f" % sum(cpu_secs("/proc/%d/stat" % pid)
                                for pid in pids))

def counter(ms, names):
    """The metrics NAMES (space-separated) summed over the instances'
    scrapes MS; a name ending in * stands for every metric it begins (the
    series of a labelled counter)."""
    total = 0
    for m in ms:
        for name in names.split():
            if name.endswith("*"):
                total += sum(int(v) for k, v in m.items()
                             if k.startswith(name[:-1]))
            else:
                total += int(m.get(name, 0))
    return total

# metrics_line's fields and the metrics each sums; in a bench's
# EXTRA_FIELDS, a function of the scrapes may stand for the metrics.
FIELDS = [
    ("direct", "direct_notifications_total"),
    ("debounced", "debounced_notifications_total"),
    ("open_windows", "debounced_set_size"),
    ("cache_hits", "decrypt_cache_hits_total"),
    ("decrypt_failures", "openpgp_decryption_failures_total"),
    ("queue_full", "decrypt_queue_full_total"),
    ("push_failures", "notification_failures_total*"),
    ("owed", "owed_pushes"),
    ("owed_sent", "owed_pushes_sent_total"),
]
EXTRA_FIELDS = []

def metrics_line(ms):
    """The instances' counters, summed."""
    return " ".join("%s=%s" % (name, what(ms) if callable(what)
                               else counter(ms, what))
                    for name, what in FIELDS + EXTRA_FIELDS)

@command("metrics", int)
def metrics(*ports):
    try:
        print(metrics_line([scrape(p) for p in ports]))
    except OSError as e:
        print("error=metrics-unreadable (%s)" % e)
        return 1
    return 0

@command("wait-ready", int, int, float)
def wait_ready(pid, port, timeout):
    """Poll /metrics until it answers: proxyd opens it after its API."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            scrape(port)
            return 0
        except OSError:
            pass
        if not alive(pid):
            print("proxyd died at start")
            return 1
        if time.monotonic() > deadline:
            print("proxyd not ready in %ds" % timeout)
            return 1
        time.sleep(0.05)

@command("wait-settled", float, int)
def wait_settled(timeout, *ports):
    """Poll until no instance has a debounce window open or a push owed
    (so no trailing push is pending) and the counters stop moving; print
    the counters."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            ms = [scrape(p) for p in ports]
        except OSError as e:
            print("error=metrics-unreadable (%s)" % e)
            return 1
        line = metrics_line(ms)
        if (all(m.get("debounced_set_size", 0) == 0 and
                m.get("owed_pushes", 0) == 0 for m in ms) and line == last):
            print(line)
            return 0
        if time.monotonic() > deadline:
            print("error=not-settled " + line)
            return 1
        last = line
        time.sleep(0.05)

EOF
		cat
	} | write_helper "$helper"
}

# proc_cpu PID...: "cpu_secs=..." of running processes, summed.
proc_cpu() {
	"$PYTHON" "$helper" cpu "$@" 2>/dev/null || echo "cpu_secs=0"
}

# busy CPU0 CPU1 T0 T1: a process's CPU seconds per second between two
# readings, its cpu_secs CPU0 at T0 and CPU1 at T1 ($EPOCHREALTIME).
busy() {
	calc 'printf "%.2f", (t > 0 ? c / t : 0)' \
	    -v c="$(calc 'print b - a' -v a="$1" -v b="$2")" \
	    -v t="$(calc 'print b - a' -v a="$3" -v b="$4")"
}

# code_count LINE STATUS: notify-flood's answers with STATUS.
code_count() {
	local n

	n=$(field "$1" codes | tr ',' '\n' | sed -n "s/^$2://p")
	echo "${n:-0}"
}

# make_pool: POOL random APNs tokens encrypted as chatmail core does
# (encrypt_tokens.mjs; OpenPGP.js 6 installed into OPENPGP_JS_DIR first
# when it is not there), one /notify body a line in $tmp/pool.txt, the
# plain tokens in $tmp/plain.txt. Sets want_digest: what apns-sink
# reports for the pool's device tokens.
make_pool() {
	local line

	if [ ! -e "$OPENPGP_JS_DIR/node_modules/openpgp/package.json" ]; then
		echo "== installing OpenPGP.js 6 into $OPENPGP_JS_DIR (once)"
		command -v npm >/dev/null ||
		    die "npm not found (apt-get install npm)"
		mkdir -p "$OPENPGP_JS_DIR" &&
		    npm install --prefix "$OPENPGP_JS_DIR" --no-audit \
		    --no-fund --silent openpgp@6 >"$tmp/npm.log" 2>&1 ||
		    { show_log "$tmp/npm.log"; \
		    die "npm install openpgp@6 failed"; }
	fi
	echo "== encrypting $POOL random APNs tokens as chatmail core does" \
	    "(not measured)"
	line=$("$NODE" "$HERE/encrypt_tokens.mjs" --modules "$OPENPGP_JS_DIR" \
	    --cert "$CERT" --count "$POOL" --out "$tmp/pool.txt" \
	    --plain "$tmp/plain.txt") || die "encrypt_tokens.mjs failed"
	echo "$line"
	want_digest=$(field "$line" digest)
}

# make_pki: the test PKI in $tmp/pki (tests/e2e/fakes/pki.py: a CA,
# apns-sink's server certificate, proxyd's client certificate in a
# PKCS#12 file). Sets topic (the certificate's APNs topic) and
# p12_password.
make_pki() {
	"$PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1])
from pki import make_pki
p = make_pki(sys.argv[2])
print(p.topic, p.p12_password)' "$REPO/tests/e2e/fakes" "$tmp/pki" \
	    >"$tmp/pki.txt" 2>"$tmp/pki.err" ||
	    { show_log "$tmp/pki.err"; die "cannot make the test PKI"; }
	read -r topic p12_password <"$tmp/pki.txt"
}

# start_sink NAME ARGS...: a fresh apns-sink with the PKI's server
# certificate and ARGS; sets sink_pid, sink_port and sink_name (for
# sink_snapshot and stop_sink).
start_sink() {
	sink_name=$1
	shift
	spawn sink_pid apns-sink "$tmp/sink.$sink_name.out" \
	    "$tmp/sink.$sink_name.err" "$SINK" --cert "$tmp/pki/server.pem" \
	    --key "$tmp/pki/server-key.pem" "$@"
	sink_port=$port
}

# sink_snapshot: SIGUSR1, wait for the line it prints, set sink_line.
sink_snapshot() {
	local n f=$tmp/sink.$sink_name.out
	local deadline=$((SECONDS + READY_TIMEOUT_S))

	n=$(wc -l <"$f")
	kill -USR1 "$sink_pid"
	until [ "$(wc -l <"$f")" -gt "$n" ]; do
		[ "$SECONDS" -lt "$deadline" ] ||
		    die "apns-sink did not answer SIGUSR1"
		sleep 0.01
	done
	sink_line=$(tail -n 1 "$f")
}

# stop_sink: stop it, check its exit status and errors, set sink_line.
stop_sink() {
	reap sink_pid
	[ "$status" -eq 0 ] || problem "apns-sink exited $status"
	sink_line=$(tail -n 1 "$tmp/sink.$sink_name.out")
	if [ "$(field "$sink_line" errors)" != 0 ]; then
		problem "apns-sink $sink_name: $(field "$sink_line" errors)" \
		    "errors"
		show_log "$tmp/sink.$sink_name.err"
	fi
}

# start_proxyds N NAME ARGS...: N proxyd on one API port (ARGS should
# then hold --reuse-port), each with its own database and metrics port,
# sending to the running sink with the PKI's client certificate. Sets
# proxyd_pids, metrics_ports, logs, api_port and url (the API's, with no
# path).
start_proxyds() {
	local n=$1 name=$2 i mport log msg

	shift 2
	api_port=$("$PYTHON" "$helper" free-port)
	metrics_ports=()
	logs=()
	for i in $(seq "$n"); do
		mport=$("$PYTHON" "$helper" free-port)
		log=$tmp/proxyd.$name.$i.log
		"$PROXYD" --openpgp-keyring-path "$KEYRING" --port "$api_port" \
		    --db "$tmp/notifiers.$name.$i.db" \
		    --metrics "127.0.0.1:$mport" \
		    --workers "$WORKERS" --cache-size "$CACHE_SIZE" \
		    --certificate-file "$tmp/pki/client.p12" \
		    --password "$p12_password" --ca-file "$tmp/pki/ca.pem" \
		    --apns-production-url "https://127.0.0.1:$sink_port" \
		    --log-level warn "$@" 2>"$log" &
		proxyd_pids+=($!)
		metrics_ports+=("$mport")
		logs+=("$log")
		if ! msg=$("$PYTHON" "$helper" wait-ready "$!" "$mport" \
		    "$READY_TIMEOUT_S"); then
			show_log "$log"
			die "$msg"
		fi
	done
	url=http://127.0.0.1:$api_port
}

# stop_proxyds: SIGTERM to each, exit 0 required, no warnings but the
# expected ones (the benches configure APNs only: the start-up warnings
# about the other providers' missing credentials are expected).
stop_proxyds() {
	local i status

	for i in "${!proxyd_pids[@]}"; do
		stop "${proxyd_pids[i]}"
		wait "${proxyd_pids[i]}"
		status=$?
		[ "$status" -eq 0 ] || { problem "proxyd exited $status after" \
		    "SIGTERM"; show_log "${logs[i]}"; }
		if grep -v -e 'warn: no FCM key (--fcm-key-path)' \
		    -e 'warn: no VAPID key (--vapid-key-path)' "${logs[i]}" |
		    grep -q .; then
			problem "proxyd logged warnings"
			show_log "${logs[i]}"
		fi
	done
	proxyd_pids=()
}

# wait_settled [SECS]: the instances' counters (metrics_line) once no
# window is open and no push owed and they stand still, at most SECS
# (default SETTLE_TIMEOUT_S); else status 1 and what went wrong.
wait_settled() {
	"$PYTHON" "$helper" wait-settled "${1:-$SETTLE_TIMEOUT_S}" \
	    "${metrics_ports[@]}"
}

# flood_ceiling: notify-flood into a fresh notify-sink (HTTP/1.1, an
# empty 200 for every request, no work) for CEILING_SECS, with the pool's
# bodies and CONCURRENCY connections: the most /notify per second this
# machine can push through notify-flood and the kernel right now, whatever
# proxyd does. Prints notify-flood's line; sets nflood_line, nflood_rc
# (its exit status), nsink_status, nsink_line (the sink's last line) and
# nsink_busy (the sink's CPU seconds per second).
flood_ceiling() {
	local t0 t1 c0 c1

	echo "== load generator ceiling (notify-flood into notify-sink," \
	    "$CONCURRENCY connections, ${CEILING_SECS}s)"
	spawn nsink_pid notify-sink "$tmp/nsink.out" "$tmp/nsink.err" "$NSINK"
	nflood_rc=0
	c0=$(field "$(proc_cpu "$nsink_pid")" cpu_secs)
	t0=$EPOCHREALTIME
	nflood_line=$("$FLOOD" --url "http://127.0.0.1:$port/notify" \
	    --body-file "$tmp/pool.txt" --duration "$CEILING_SECS" \
	    --concurrency "$CONCURRENCY" 2>"$tmp/nflood.err") || nflood_rc=$?
	t1=$EPOCHREALTIME
	c1=$(field "$(proc_cpu "$nsink_pid")" cpu_secs)
	reap nsink_pid
	nsink_status=$status
	echo "$nflood_line"
	nsink_line=$(tail -n 1 "$tmp/nsink.out")
	nsink_busy=$(busy "$c0" "$c1" "$t0" "$t1")
}
