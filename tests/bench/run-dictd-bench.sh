#!/bin/bash
# Benchmark metadata-dictd with dict-load (tests/bench/README.md).
#
# usage: tests/bench/run-dictd-bench.sh BINDIR
#
# Starts BINDIR/metadata-dictd on a fresh database in a temp dir, then runs
# dict-load against it: the in-process baseline first (the ceiling of the
# load generator and the kernel on this machine, measured now because the
# machine is shared and noisy), then lookup, set and notify at 1, 8 and 64
# connections.  Each figure at 64 connections is also given as a ratio to
# the baseline; compare ratios across runs, not absolute ops/s.
#
# Environment: DURATION (seconds per run, default 3), WARMUP (default 1),
# USERS (default 10000), CONNS_LIST (default "1 8 64").  The default run
# takes about 45 s.  Exit status 0 only if no run counted an error, the
# queue holds exactly one waiting row per notified user (metadata-dictd
# coalesces new-mail events for a token whose job was never sent), the
# tokens table one row per acknowledged set or prepared user, and the
# daemon exited 0 on SIGTERM.

set -u

BINDIR=${1:?usage: run-dictd-bench.sh BINDIR}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
USERS=${USERS:-10000}
CONNS_LIST=${CONNS_LIST:-"1 8 64"}
RATIO_CONNS=64			# the baseline's connection count
READY_TIMEOUT_S=10		# daemon start, checked by polling
STOP_TIMEOUT_S=10		# daemon exit after SIGTERM

BENCH_NAME=run-dictd-bench
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

LOAD=$BINDIR/dict-load
DICTD=$BINDIR/metadata-dictd
for b in "$LOAD" "$DICTD"; do
	if [ ! -x "$b" ]; then
		echo "run-dictd-bench: $b: not found or not executable" >&2
		exit 2
	fi
done
have_sqlite=1
if ! command -v sqlite3 >/dev/null; then
	echo "run-dictd-bench: sqlite3 CLI not found: queue rows not" \
	    "counted" >&2
	have_sqlite=0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dictd-bench.XXXXXX") || exit 2
sock=$tmp/dict.sock
db=$tmp/relay.db
dictd_pid=

# Whatever happens, leave no daemon and no temp dir behind.
cleanup() {
	[ -n "$dictd_pid" ] && stop "$dictd_pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

problems=0




# query SQL: its result rows (columns joined by |) in the daemon's
# database.  Read-only, and willing to wait out a write lock.
query() {
	sqlite3 -readonly -cmd '.timeout 5000' "$db" "$1"
}

# count_rows TABLE: rows in TABLE, 0 without the sqlite3 CLI.
count_rows() {
	[ "$have_sqlite" = 1 ] || { echo 0; return; }
	query "SELECT count(*) FROM $1"
}

summary=()
baseline_ops=0
last_line=

# run_load ARGS...: run dict-load, print its line, remember it.
run_load() {
	local rc=0

	last_line=$("$LOAD" "$@") || rc=$?
	if [ -z "$last_line" ]; then
		last_line="dict-load mode=? failed status=$rc args=$*"
	fi
	echo "$last_line"
	if [ "$rc" -ne 0 ]; then
		problem "dict-load exited $rc: $*"
	fi
	if [ -n "$dictd_pid" ] && ! kill -0 "$dictd_pid" 2>/dev/null; then
		problem "metadata-dictd is gone"
		show_log "$tmp/dictd.log"
		exit 1
	fi
}

# note LINE: add LINE to the summary, with the ratio at RATIO_CONNS.
note() {
	local mode conns ops vs=

	mode=$(field "$1" mode)
	conns=$(field "$1" conns)
	ops=$(field "$1" ops_per_s)
	if [ "$conns" = "$RATIO_CONNS" ] && [ "$mode" != baseline ]; then
		vs=$(ratio "$ops" "$baseline_ops" 3)
		echo "  $mode at $conns connections: $vs of baseline" \
		    "($ops / $baseline_ops ops/s)"
	fi
	summary+=("$(printf '%-9s %5s %9s %8s %8s %8s %7s %6s' "$mode" \
	    "$conns" "$ops" "$(field "$1" p50_us)" "$(field "$1" p99_us)" \
	    "$(field "$1" max_us)" "$(field "$1" errors)" "$vs")")
}

# baseline ignores --socket: it answers on a socket of its own.
load_common=(--socket "$sock" --duration "$DURATION" --warmup "$WARMUP"
    --users "$USERS")

echo "== metadata-dictd bench: $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "cpus=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "duration=${DURATION}s warmup=${WARMUP}s users=$USERS"

# ---- the in-process baseline, before the daemon takes any CPU ----------

echo "== baseline (dict-load's own trivial responder)"
run_load --mode baseline --connections "$RATIO_CONNS" "${load_common[@]}"
baseline_ops=$(field "$last_line" ops_per_s)
note "$last_line"

# ---- start the daemon ----------------------------------------------------

# Every acknowledged set stays a row (checked at the end): the set phase
# gives a user more tokens than --max-tokens-per-user's default (32)
# keeps, and eviction is measured by the e2e tests, not here.
"$DICTD" --socket "$sock" --db "$db" --log-level warn \
    --max-tokens-per-user 100000 2>"$tmp/dictd.log" &
dictd_pid=$!
deadline=$((SECONDS + READY_TIMEOUT_S))
# Ready means it accepts connections: dict-load with --duration 0 only
# connects.  Poll with a deadline, and notice a daemon that died.
until [ -S "$sock" ] && "$LOAD" --socket "$sock" --mode lookup \
    --connections 1 --duration 0 >/dev/null 2>&1; do
	if ! kill -0 "$dictd_pid" 2>/dev/null; then
		wait "$dictd_pid"
		echo "run-dictd-bench: metadata-dictd died at start" \
		    "(status $?)" >&2
		dictd_pid=
		show_log "$tmp/dictd.log"
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "run-dictd-bench: $sock not accepting after" \
		    "${READY_TIMEOUT_S}s" >&2
		show_log "$tmp/dictd.log"
		exit 1
	fi
	sleep 0.05
done

# ---- lookup: every user has one token, so each lookup finds one -------

echo "== prepare: one device token for each of $USERS users"
run_load --socket "$sock" --mode set --prepare --duration 0 \
    --connections "$RATIO_CONNS" --users "$USERS"
echo "== lookup (--check: each reply must hold the user's token)"
for c in $CONNS_LIST; do
	run_load --mode lookup --check --connections "$c" "${load_common[@]}"
	note "$last_line"
done

# ---- set: each request adds a new device token -----------------------

echo "== set (a new ~700-byte token per request)"
set_acked=0
for c in $CONNS_LIST; do
	run_load --mode set --connections "$c" "${load_common[@]}"
	note "$last_line"
	n=$(field "$last_line" all_ops)
	set_acked=$((set_acked + ${n:-0}))
done

# ---- notify: users of their own, with exactly one token each.  No
# ---- notifierd runs, so every job stays waiting and never sent, and
# ---- metadata-dictd coalesces: a user's first event writes the row, every
# ---- later one finds it and writes nothing.  So the queue must end with
# ---- exactly one row per notified user, however many events were acked.

echo "== prepare: one device token for each of $USERS notify users"
run_load --socket "$sock" --mode set --prepare --duration 0 \
    --connections "$RATIO_CONNS" --users "$USERS" --user-prefix notify
echo "== notify (messagenew; coalesced into one waiting row per user)"
acked_total=0
for c in $CONNS_LIST; do
	before=$(count_rows queue)
	run_load --mode notify --user-prefix notify --connections "$c" \
	    "${load_common[@]}"
	note "$last_line"
	after=$(count_rows queue)
	acked=$(field "$last_line" all_ops)
	acked=${acked:-0}
	echo "  queue rows: $after (+$((after - before))) after $acked" \
	    "acknowledged events (warmup and drain included)"
	acked_total=$((acked_total + acked))
done
# Users are drawn at random, so a user may have drawn no event: the row
# count is that of the users notified, normally all USERS of them.
if [ "$have_sqlite" = 1 ]; then
	IFS='|' read -r q_rows q_tokens q_users q_waiting q_notify <<<"$(query \
	    "SELECT count(*), count(DISTINCT token_id), count(DISTINCT user),
	    count(*) FILTER (WHERE state = 0 AND attempts = 0),
	    count(*) FILTER (WHERE user LIKE 'notify%')
	    FROM queue")"
	[ "$q_rows" -eq "$q_tokens" ] && [ "$q_rows" -eq "$q_users" ] ||
	    problem "queue: $q_rows rows for $q_tokens tokens of $q_users" \
	    "users, want one row per token and user (coalescing)"
	[ "$q_waiting" -eq "$q_rows" ] ||
	    problem "queue: $((q_rows - q_waiting)) rows not waiting" \
	    "(state 0, attempts 0), with no notifierd running"
	[ "$q_notify" -eq "$q_rows" ] ||
	    problem "queue: $((q_rows - q_notify)) rows for users outside" \
	    "the notify users"
	[ "$q_rows" -le "$USERS" ] && [ "$q_rows" -le "$acked_total" ] ||
	    problem "queue: $q_rows rows, more than the $USERS notify users" \
	    "or the $acked_total acknowledged events"
	[ "$acked_total" -eq 0 ] || [ "$q_rows" -gt 0 ] ||
	    problem "queue: empty after $acked_total acknowledged events"
fi
# Every acknowledged set added a distinct token, and each prepare one per
# user: a commit answered O but not stored shows up here.
tokens_want=$((2 * USERS + set_acked))
tokens_have=$(count_rows tokens)
if [ "$have_sqlite" = 1 ] && [ "$tokens_have" -ne "$tokens_want" ]; then
	problem "tokens table holds $tokens_have rows, want $tokens_want" \
	    "(2 x $USERS prepared + $set_acked acknowledged sets)"
fi

# ---- stop the daemon -----------------------------------------------------

kill -TERM "$dictd_pid"
deadline=$((SECONDS + STOP_TIMEOUT_S))
while kill -0 "$dictd_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
	sleep 0.05
done
if kill -0 "$dictd_pid" 2>/dev/null; then
	problem "metadata-dictd still running ${STOP_TIMEOUT_S}s after" \
	    "SIGTERM; killed"
	kill -KILL "$dictd_pid"
	wait "$dictd_pid" 2>/dev/null
	dictd_status=killed
else
	wait "$dictd_pid"
	dictd_status=$?
	[ "$dictd_status" -eq 0 ] ||
	    problem "metadata-dictd exited $dictd_status after SIGTERM"
fi
dictd_pid=

# ---- summary ---------------------------------------------------------------

echo "== summary (ops/s in the measured ${DURATION}s; ratio = daemon /" \
    "baseline at $RATIO_CONNS connections)"
printf '%-9s %5s %9s %8s %8s %8s %7s %6s\n' mode conns ops/s p50_us \
    p99_us max_us errors ratio
printf '%s\n' "${summary[@]}"
if [ "$have_sqlite" = 1 ]; then
	echo "queue rows: $q_rows, one per notified user ($q_users of" \
	    "$USERS notify users), for $acked_total acknowledged notify events"
	echo "token rows: $tokens_have (want $tokens_want)"
fi
echo "metadata-dictd: exit status $dictd_status after SIGTERM," \
    "$(wc -l <"$tmp/dictd.log") log lines at warn and above"
if [ "$problems" -gt 0 ]; then
	show_log "$tmp/dictd.log"
	echo "result: FAILED ($problems problems, see stderr)"
	exit 1
fi
echo "result: OK"
