#!/bin/bash
# Benchmark notifierd draining a full queue (tests/bench/README.md).
#
# usage: tests/bench/run-notifierd-bench.sh BINDIR
#
# In a temp dir: BINDIR/notifierd creates the relay database (started on
# the empty queue with an unreachable proxy, then stopped), the script
# queues JOBS jobs with distinct ~700-byte tokens, one token per user, all
# due now.  Then, for each concurrency C:
#
#   - baseline: http-flood POSTs JOBS token-sized bodies to a fresh
#     notify-sink, C in flight: the ceiling of libcurl multi plus the sink
#     on this machine, measured now because the machine is shared and noisy;
#   - notifierd, on a fresh copy of the queue, drains it into another fresh
#     notify-sink at --concurrency C; the time runs from its start until the
#     queue table is empty (polled every 50 ms).
#
# notifierd's rate is also given as a ratio to the baseline: compare ratios
# across runs, not absolute jobs/s.
#
# Environment: JOBS (default 100000), CONCURRENCY (default 128; a list such
# as "64 256" runs each), DRAIN_TIMEOUT (seconds notifierd gets to empty
# the queue, default 60), PYTHON (default /usr/bin/python3, for its sqlite3
# and zlib modules).  The default run takes about 10 s.  Exit status 0 only
# if every request was answered 200, notifierd recorded no failure, the sink
# received every queued token (compared as a set), the queue ended empty
# and every daemon exited 0 on SIGTERM.

set -u
export LC_ALL=C			# a dot in $EPOCHREALTIME and in awk

BINDIR=${1:?usage: run-notifierd-bench.sh BINDIR}
JOBS=${JOBS:-100000}
CONCURRENCY=${CONCURRENCY:-128}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-60}
PYTHON=${PYTHON:-/usr/bin/python3}
READY_TIMEOUT_S=10		# start of a daemon, checked by polling
STOP_TIMEOUT_S=10		# exit after SIGTERM

BENCH_NAME=run-notifierd-bench
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

NOTIFIERD=$BINDIR/notifierd
SINK=$BINDIR/notify-sink
FLOOD=$BINDIR/http-flood
need_programs "$NOTIFIERD" "$SINK" "$FLOOD" "$PYTHON"
if ! "$PYTHON" -c 'import sqlite3, zlib' 2>/dev/null; then
	echo "run-notifierd-bench: $PYTHON lacks the sqlite3 module" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/notifierd-bench.XXXXXX") || exit 2
helper=$tmp/helper.py
notifierd_pid=
sink_pid=


# Whatever happens, leave no process and no temp dir behind.
cleanup() {
	[ -n "$notifierd_pid" ] && stop "$notifierd_pid"
	[ -n "$sink_pid" ] && stop "$sink_pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

problems=0





# The database side, in Python for its sqlite3 module (no sqlite3 CLI
# needed) and its zlib, whose crc32 and adler32 make the same body keys as
# notify-sink's.
write_helper "$helper" <<'EOF'
import base64, hashlib, sqlite3, zlib

@command("fill", str, int)
def fill(db, jobs):
    """Queue `jobs` jobs, each with a token of its own (and a user of its
    own), due now; print the digest notify-sink must report."""
    now = int(time.time() * 1000)
    tokens, queue, digest = [], [], 0
    for i in range(1, jobs + 1):
        # "openpgp:" and 700 base64 characters, random so all distinct.
        tok = b"openpgp:" + base64.b64encode(os.urandom(525))
        # relay_db_token_hash(): the first 8 bytes of SHA-256, >> 1.
        h = int.from_bytes(hashlib.sha256(tok).digest()[:8], "big") >> 1
        user = "notify%d@example.org" % i
        tokens.append((i, user, tok.decode(), h, "", now))
        queue.append((i, user, now, now))
        digest += zlib.crc32(tok) << 32 | zlib.adler32(tok)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO tokens(id, user, token, token_hash, "
                    "mailbox, updated_at) VALUES (?, ?, ?, ?, ?, ?)", tokens)
    con.executemany("INSERT INTO queue(token_id, user, created_at, "
                    "attempts, next_at, state) VALUES (?, ?, ?, 0, ?, 0)",
                    queue)
    con.execute("COMMIT")
    con.close()
    print("digest=%016x" % (digest % 2**64))

@command("count", str)
def count(db):
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA busy_timeout=5000")
    q = con.execute("SELECT count(*), count(*) FILTER (WHERE state = 1) "
                    "FROM queue").fetchone()
    t = con.execute("SELECT count(*) FROM tokens").fetchone()[0]
    print("queue=%d in_flight=%d tokens=%d" % (q[0], q[1], t))

@command("wait-empty", str, int, float, int)
def wait_empty(db, pid, timeout, metrics_port):
    """Poll until the queue is empty; print when (epoch seconds), the
    daemon's CPU time so far and its counters."""
    deadline = time.monotonic() + timeout
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA busy_timeout=5000")
    while True:
        # O(log n): no count(*) scan of a 100,000-row index every 50 ms.
        if not con.execute("SELECT EXISTS (SELECT 1 FROM queue)"
                           ).fetchone()[0]:
            empty_at = time.time()
            break
        if not alive(pid):
            print("error=notifierd-died")
            return 1
        if time.monotonic() > deadline:
            left = con.execute("SELECT count(*) FROM queue").fetchone()[0]
            print("error=timeout jobs_left=%d" % left)
            return 1
        time.sleep(0.05)
    cpu = cpu_secs("/proc/%d/stat" % pid)
    try:
        m = scrape(metrics_port)
    except OSError as e:
        print("error=metrics-unreadable (%s)" % e)
        return 1
    g = lambda name: int(m.get(name, 0))
    lat_n = m.get("notifierd_request_duration_seconds_count", 0)
    lat_s = m.get("notifierd_request_duration_seconds_sum", 0)
    print("empty_at=%.6f cpu_secs=%.2f sent=%d succeeded=%d failures=%d "
          "retried=%d dropped=%d gone=%d mean_latency_ms=%.2f" % (
          empty_at, cpu, g("notifierd_sent_total"),
          g("notifierd_succeeded_total"),
          g('notifierd_failures_total{reason="transport"}') +
          g('notifierd_failures_total{reason="status"}'),
          g("notifierd_retried_total"), g("notifierd_dropped_total"),
          g("notifierd_gone_total"),
          1000 * lat_s / lat_n if lat_n else 0))
    return 0
EOF

# start_sink NAME: start a fresh notify-sink, set sink_pid and sink_port.
start_sink() {
	spawn sink_pid notify-sink "$tmp/sink.$1.out" "$tmp/sink.$1.err" \
	    "$SINK"
	sink_port=$port
}

# stop_sink NAME: stop it, check its exit status, set sink_line.
stop_sink() {
	local status

	reap sink_pid
	[ "$status" -eq 0 ] || problem "notify-sink exited $status"
	sink_line=$(tail -n 1 "$tmp/sink.$1.out")
	if [ "$(field "$sink_line" errors)" != 0 ]; then
		problem "notify-sink: protocol errors"
		show_log "$tmp/sink.$1.err"
	fi
}

# run_baseline C WHEN: http-flood into a fresh sink at concurrency C; sets
# flood_line and checks that the sink saw JOBS distinct requests.
run_baseline() {
	local rc=0

	echo "== concurrency $1: baseline $2 (http-flood into notify-sink)"
	start_sink "flood.$1.$2"
	flood_line=$("$FLOOD" --url "http://127.0.0.1:$sink_port/notify" \
	    --requests "$JOBS" --concurrency "$1") || rc=$?
	echo "$flood_line"
	[ "$rc" -eq 0 ] || problem "http-flood exited $rc"
	stop_sink "flood.$1.$2"
	echo "notify-sink $sink_line"
	[ "$(field "$sink_line" requests)" = "$JOBS" ] &&
	    [ "$(field "$sink_line" distinct)" = "$JOBS" ] ||
	    problem "baseline: the sink did not see $JOBS distinct requests"
}


echo "== notifierd bench: $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "cpus=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "jobs=$JOBS concurrency=\"$CONCURRENCY\""

# ---- the database: notifierd's own schema, then the jobs ------------------

db0=$tmp/queued.db
# On the empty queue it sends nothing, so the URL is never tried.
"$NOTIFIERD" --db "$db0" --proxy-url http://127.0.0.1:1/ --log-level info \
    2>"$tmp/schema.log" &
notifierd_pid=$!
deadline=$((SECONDS + READY_TIMEOUT_S))
until grep -qs 'notify started' "$tmp/schema.log"; do
	if ! kill -0 "$notifierd_pid" 2>/dev/null; then
		wait "$notifierd_pid"
		status=$?
		notifierd_pid=
		show_log "$tmp/schema.log"
		die "notifierd died at start (status $status)"
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		show_log "$tmp/schema.log"
		die "notifierd not started in ${READY_TIMEOUT_S}s"
	fi
	sleep 0.05
done
reap notifierd_pid
if [ "$status" -ne 0 ]; then
	show_log "$tmp/schema.log"
	die "notifierd exited $status after SIGTERM on an empty queue"
fi

t0=$EPOCHREALTIME
line=$("$PYTHON" "$helper" fill "$db0" "$JOBS") || die "cannot queue the jobs"
want_digest=$(field "$line" digest)
echo "== queued $JOBS jobs with distinct tokens in" \
    "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"

results=()
for c in $CONCURRENCY; do
	# ---- baseline before notifierd's run ---------------------------------
	run_baseline "$c" before
	base_before=$(field "$flood_line" req_per_s)
	cpu_before=$(field "$flood_line" cpu_secs)

	# ---- notifierd on a fresh copy of the queue --------------------------
	echo "== concurrency $c: notifierd draining $JOBS jobs"
	db=$tmp/run.$c.db
	cp "$db0" "$db"
	start_sink "notifierd.$c"
	mport=$("$PYTHON" "$helper" free-port)
	log=$tmp/notifierd.$c.log
	t0=$EPOCHREALTIME
	"$NOTIFIERD" --db "$db" \
	    --proxy-url "http://127.0.0.1:$sink_port/notify" \
	    --concurrency "$c" --metrics "127.0.0.1:$mport" --log-level warn \
	    2>"$log" &
	notifierd_pid=$!
	drain_line=$("$PYTHON" "$helper" wait-empty "$db" "$notifierd_pid" \
	    "$DRAIN_TIMEOUT" "$mport")
	rc=$?
	reap notifierd_pid
	stop_sink "notifierd.$c"
	nd_sink_line=$sink_line
	echo "notifierd $drain_line"
	echo "notify-sink $nd_sink_line"
	db_line=$("$PYTHON" "$helper" count "$db")
	echo "database $db_line"

	# ---- the baseline again, after it ------------------------------------
	# The neighbours' load drifts within seconds: the mean of a baseline
	# on each side of notifierd's run tracks it better than one before.
	run_baseline "$c" after
	baseline=$(awk -v a="$base_before" \
	    -v b="$(field "$flood_line" req_per_s)" \
	    'BEGIN { printf "%.0f", (a + b) / 2 }')
	flood_cpu_us=$(awk -v a="$cpu_before" \
	    -v b="$(field "$flood_line" cpu_secs)" -v n="$JOBS" \
	    'BEGIN { printf "%.1f", (a + b) / 2 * 1e6 / n }')

	if [ "$rc" -ne 0 ]; then
		problem "notifierd did not drain the queue: $drain_line"
		show_log "$log"
		continue
	fi
	if [ "$status" -ne 0 ]; then
		problem "notifierd exited $status after SIGTERM"
		show_log "$log"
	fi

	# A job leaves the queue only on a 200, so an empty queue with no
	# failure counted means every job was delivered; the sink's set of
	# bodies must then be exactly the set of queued tokens.
	errors=$(($(num "$drain_line" failures) +
	    $(num "$drain_line" dropped) + $(num "$drain_line" gone) +
	    $(num "$nd_sink_line" errors)))
	[ "$errors" -eq 0 ] || problem "notifierd: $errors failed requests"
	[ "$(num "$nd_sink_line" requests)" -ge "$JOBS" ] ||
	    problem "the sink saw fewer than $JOBS requests"
	[ "$(field "$nd_sink_line" distinct)" = "$JOBS" ] &&
	    [ "$(field "$nd_sink_line" digest)" = "$want_digest" ] ||
	    problem "the sink's bodies are not the $JOBS queued tokens" \
	    "(digest $(field "$nd_sink_line" digest), want $want_digest)"
	[ "$db_line" = "queue=0 in_flight=0 tokens=$JOBS" ] ||
	    problem "database after the run: $db_line, want queue=0" \
	    "in_flight=0 tokens=$JOBS"
	if [ -s "$log" ]; then
		problem "notifierd logged warnings"
		show_log "$log"
	fi

	secs=$(awk -v a="$t0" -v b="$(field "$drain_line" empty_at)" \
	    'BEGIN { printf "%.2f", b - a }')
	per_s=$(awk -v n="$JOBS" -v s="$secs" \
	    'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
	cpu_us=$(awk -v t="$(field "$drain_line" cpu_secs)" -v n="$JOBS" \
	    'BEGIN { printf "%.1f", t * 1e6 / n }')
	res="notifierd-bench jobs=$JOBS secs=$secs jobs_per_s=$per_s"
	res+=" baseline_per_s=$baseline ratio=$(ratio "$per_s" "$baseline")"
	res+=" concurrency=$c errors=$errors"
	res+=" requests=$(field "$nd_sink_line" requests)"
	res+=" conns=$(field "$nd_sink_line" conns)"
	res+=" cpu_us_per_job=$cpu_us baseline_cpu_us_per_req=$flood_cpu_us"
	res+=" mean_latency_ms=$(field "$drain_line" mean_latency_ms)"
	results+=("$res")
done

# ---- summary -----------------------------------------------------------------

echo "== summary (ratio = notifierd jobs/s / http-flood requests/s, same" \
    "concurrency, same run)"
printf '%s\n' "${results[@]}"
if [ "$problems" -gt 0 ]; then
	echo "result: FAILED ($problems problems, see stderr)"
	exit 1
fi
echo "result: OK"
