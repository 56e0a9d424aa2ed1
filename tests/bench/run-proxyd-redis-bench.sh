#!/bin/bash
# Benchmark proxyd's shared state over Redis (tests/bench/README.md,
# "proxyd with Redis").
#
# usage: tests/bench/run-proxyd-redis-bench.sh BINDIR
#
# Prints, in one run:
#
#   1. /notify requests per second answered 200 and pushes per second
#      reaching a fake APNs (apns-sink) for a pool of POOL encrypted APNs
#      tokens sent round-robin (the decrypt cache warm, --debounce
#      DEBOUNCE, CONCURRENCY connections), for (a) one proxyd with its
#      embedded state and (b) one proxyd with --redis, alternated
#      a/b/a/b... (ROUNDS each) so that the machine's noise shows; the
#      ratio b/a (target >= 0.70), proxyd's CPU seconds per 1,000 pushes in
#      each, and redis-server's in (b);
#   2. what (b) costs Redis: commands, bytes in and bytes out (INFO stats
#      deltas) per push and per /notify; and Redis memory (used_memory):
#      bytes and keys per registered heartbeat token (REGISTER tokens
#      through /register), per open debounce window (WINDOWS distinct
#      tokens with --debounce 60s) and per owed push (the same tokens
#      again inside their windows);
#   3. one vs two proxyd with --reuse-port on one port (SO_REUSEPORT: the
#      kernel spreads notify-flood's connections), embedded and with
#      --redis: /notify per second and pushes per second, and the ratio
#      2/1 (no target: the machine's CPUs are shared with the load
#      generator and the sink).
#
# Figures are ratios to a baseline measured in the same run: (b) to (a),
# two instances to one; the load generator's own ceiling (notify-flood into
# notify-sink, no proxyd) is printed beside them.
#
# In a temp dir: a test PKI (tests/e2e/fakes/pki.py), POOL random APNs
# tokens encrypted as chatmail core does (encrypt_tokens.mjs, OpenPGP.js
# 6), a redis-server of its own (no persistence, loopback), and for every
# measured phase a fresh apns-sink requiring the PKI's client certificate,
# fresh proxyd instances and, with Redis, FLUSHALL first.  Each flood
# phase: a warm pass over the pool (not measured; with two instances five
# passes, so that both caches are warm), then DURATION seconds of
# notify-flood.
#
# Environment: DURATION (seconds per flood, default 5), ROUNDS (a/b pairs,
# default 2), POOL (default 10000), CONCURRENCY (default 256), DEBOUNCE
# (default 50ms), REGISTER (registrations, default 10000), WINDOWS (open
# windows, at most POOL, default 10000), REUSE (rounds of part 3, each
# x1/x2 embedded then x1/x2 with Redis; default 2, 0 skips it), WORKERS
# (default 2), CACHE_SIZE (default 20000), CEILING_SECS (the load
# generator's ceiling, 0: skip; default 3), REDIS_SERVER (default
# redis-server), REDIS_CLI (default redis-cli when installed, else a
# small RESP client in Python; set it empty to force that), TESTDATA,
# OPENPGP_JS_DIR, PYTHON, NODE (as run-proxyd-bench.sh).  About 2 minutes.
#
# Exit status 0 if every check passed (a missed target is reported, not
# failed), 1 if a check failed (details on stderr), 2 if a program is
# missing.  The last line is the summary.

set -u
export LC_ALL=C			# a dot in $EPOCHREALTIME and in awk

BINDIR=${1:?usage: run-proxyd-redis-bench.sh BINDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-2}
POOL=${POOL:-10000}
CONCURRENCY=${CONCURRENCY:-256}
DEBOUNCE=${DEBOUNCE:-50ms}
REGISTER=${REGISTER:-10000}
WINDOWS=${WINDOWS:-10000}
REUSE=${REUSE:-2}
WORKERS=${WORKERS:-2}
CACHE_SIZE=${CACHE_SIZE:-20000}
CEILING_SECS=${CEILING_SECS:-3}
TESTDATA=${TESTDATA:-$REPO/tests/data}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI-$(command -v redis-cli)}
READY_TIMEOUT_S=10		# start of a daemon, checked by polling
STOP_TIMEOUT_S=10		# exit after SIGTERM
SETTLE_TIMEOUT_S=10		# debounce windows closing, pushes landing
WINDOW_DEBOUNCE=60s		# part 2: windows that stay open while measured
REUSE_WARM_PASSES=5		# two instances: a token misses one of the
				# caches with odds 2 * 0.5^5 (6%)

BENCH_NAME=run-proxyd-redis-bench
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=proxyd_lib.sh
. "$HERE/proxyd_lib.sh"

TARGET_REDIS_RATIO=0.70		# pushes/s with --redis, vs embedded

need_programs "$PROXYD" "$SINK" "$FLOOD" "$NSINK" "$PYTHON"
need_commands "$NODE":nodejs "$REDIS_SERVER":redis-server
if [ -n "$REDIS_CLI" ] && ! command -v "$REDIS_CLI" >/dev/null; then
	echo "$BENCH_NAME: $REDIS_CLI not found (apt-get install" \
	    "redis-tools, or REDIS_CLI= for the Python client)" >&2
	exit 2
fi
need_test_data
[ "$WINDOWS" -le "$POOL" ] || WINDOWS=$POOL

make_tmp proxyd-redis-bench
problems=0

# The helper's part of this bench: the registration and Redis counters,
# each instance's pushes and, without redis-cli, Redis.
write_proxyd_helper <<'EOF'
import secrets

EXTRA_FIELDS = [
    ("registrations", "heartbeat_registrations_total"),
    ("registrations_refused", "registrations_refused_total "
     "registrations_full_total registrations_rate_limited_total"),
    ("redis_up", "redis_up"),
    ("redis_commands", "redis_commands_total"),
    ("redis_commands_failed", "redis_commands_failed_total"),
    ("redis_commands_refused", "redis_commands_refused_total"),
    ("redis_command_errors", "redis_command_errors_total"),
    ("redis_timeouts", "redis_timeouts_total"),
    ("redis_fallbacks", "redis_fallbacks_total"),
    ("redis_takeovers", "redis_takeovers_total"),
    ("direct_each", lambda ms: ",".join(
        str(int(m.get("direct_notifications_total", 0))) for m in ms)),
]

@command("redis", int, str)
def redis(port, *args):
    """One command, the answer printed as redis-cli prints it to a pipe."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    req = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(req)
    f = s.makefile("rb")

    def reply():
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        kind, rest = line[:1], line[1:-2].decode()
        if kind in (b"+", b":"):
            return [rest]
        if kind == b"-":
            return ["(error) " + rest]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return [""]
            data = f.read(n + 2)[:-2].decode()
            return [data]
        if kind == b"*":
            out = []
            for _ in range(max(int(rest), 0)):
                out += reply()
            return out
        raise OSError("bad reply %r" % line)

    out = reply()
    s.close()
    for x in out:
        print(x)
    return 1 if out and out[0].startswith("(error)") else 0

@command("reg-bodies", int, str)
def reg_bodies(n, path):
    """n /register bodies, one random plain APNs token each."""
    with open(path, "w") as f:
        for _ in range(n):
            f.write('{"token": "%s"}\n' % secrets.token_hex(32))
EOF

# rcli ARGS...: one command to our redis-server, its answer on stdout.
rcli() {
	if [ -n "$REDIS_CLI" ]; then
		"$REDIS_CLI" -h 127.0.0.1 -p "$redis_port" "$@"
	else
		"$PYTHON" "$helper" redis "$redis_port" "$@"
	fi
}

# redis_stats: "cmds=... in=... out=... mem=... keys=... cs_NAME=...
# cpu_secs=..." from INFO (stats, memory, keyspace, commandstats: calls of
# each command, those a script makes included) and /proc. The INFO itself
# adds one command and a few KB out: nothing beside a flood's.
redis_stats() {
	local info

	info=$(rcli INFO stats memory keyspace commandstats | tr -d '\r')
	awk -F: '
	    $1 == "total_commands_processed" { c = $2 }
	    $1 == "total_net_input_bytes" { i = $2 }
	    $1 == "total_net_output_bytes" { o = $2 }
	    $1 == "used_memory" { m = $2 }
	    $1 == "db0" { split($2, kv, /[=,]/); k = kv[2] }
	    $1 ~ /^cmdstat_/ { split($2, kv, /[=,]/)
		cs = cs " cs_" substr($1, 9) "=" kv[2] }
	    END { printf "cmds=%d in=%d out=%d mem=%d keys=%d%s", c, i, o,
		m, k, cs }
	' <<<"$info"
	echo " $(proc_cpu "$redis_pid")"
}

# cmd_mix A B N: the commands Redis ran between redis_stats A and B, per
# N (a push), most frequent first: "evalsha 2.00, hset 2.00, ...".
cmd_mix() {
	awk -v n="$3" '
	    NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^cs_/) {
		split(substr($i, 4), kv, "="); a[kv[1]] = kv[2] } }
	    NR == 2 { for (i = 1; i <= NF; i++) if ($i ~ /^cs_/) {
		split(substr($i, 4), kv, "="); d = kv[2] - a[kv[1]]
		if (d > 0 && n > 0) printf "%s %.2f\n", kv[1], d / n } }
	' <<<"$1
$2" | sort -k2,2nr -k1,1 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""),
	    $1, $2 } END { print "" }'
}

# redis_settled: redis_stats once the key count and used_memory stand
# still for 200 ms (fire-and-forget commands landing, client buffers
# shrinking), at most SETTLE_TIMEOUT_S.
redis_settled() {
	local a b deadline=$((SECONDS + SETTLE_TIMEOUT_S))

	b=$(redis_stats)
	while :; do
		sleep 0.2
		a=$b
		b=$(redis_stats)
		[ "$(field "$a" keys)" = "$(field "$b" keys)" ] &&
		    [ "$(field "$a" mem)" = "$(field "$b" mem)" ] && break
		[ "$SECONDS" -lt "$deadline" ] || break
	done
	echo "$b"
}

# redis_up: whether our redis-server answers.
redis_up() {
	[ "$(rcli PING 2>/dev/null)" = PONG ]
}

start_redis() {
	redis_port=$("$PYTHON" "$helper" free-port)
	mkdir -p "$tmp/redis"
	(cd "$tmp/redis" && exec "$REDIS_SERVER" --port "$redis_port" \
	    --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
	    --dir "$tmp/redis") >"$tmp/redis.log" 2>&1 &
	redis_pid=$!
	wait_up redis_pid redis-server "$tmp/redis.log" "not answering" \
	    redis_up
	redis_version=$(rcli INFO server | tr -d '\r' |
	    sed -n 's/^redis_version://p')
}

stop_redis() {
	local status

	reap redis_pid
	[ "$status" -eq 0 ] || { problem "redis-server exited $status"; \
	    show_log "$tmp/redis.log"; }
}

redis_flush() {
	[ "$(rcli FLUSHALL)" = OK ] || problem "redis FLUSHALL failed"
}

# settled [redis]: the instances' counters once every window closed and
# they stand still. With Redis, read them again after a tick of the
# shared state (500 ms): the redis_* counters move on that tick only.
settled() {
	local line

	line=$(wait_settled "$SETTLE_TIMEOUT_S") || { echo "$line"; return 1; }
	if [ "${1:-}" = redis ]; then
		sleep 0.6
		"$PYTHON" "$helper" metrics "${metrics_ports[@]}"
	else
		echo "$line"
	fi
}

# delta A B KEY: B's KEY minus A's.
delta() {
	echo $(($(num "$2" "$3") - $(num "$1" "$3")))
}

# run_flood NAME MODE N WARM_PASSES ARGS...: a fresh sink, (with MODE
# redis) an emptied Redis, N fresh proxyd with ARGS (and --redis), a warm
# pass of WARM_PASSES x POOL requests, then DURATION seconds of flood.
# Sets f_line (notify-flood's line), f_ok (answers 200), f_secs, f_pushes
# (at the sink during the flood), f_req_per_s, f_push_per_s, f_cpu (proxyd
# CPU seconds, all instances), f_rcpu (redis-server's), f_r (Redis INFO
# deltas cmds, in, out, and the commands proxyd sent), f_mix (the
# commands Redis ran per push, by name), f_split (each instance's share
# of the pushes), f_misses (decrypt cache misses in the flood).
run_flood() {
	local name=$1 mode=$2 n=$3 passes=$4 warm s0 p0 p1 r0 r1 m0 m1 rc=0
	local errors idx each before total

	shift 4
	start_sink "$name" --ca "$tmp/pki/ca.pem"
	if [ "$mode" = redis ]; then
		redis_flush
		set -- "$@" --redis "redis://127.0.0.1:$redis_port/0"
	fi
	start_proxyds "$n" "$name" --debounce "$DEBOUNCE" "$@"
	warm=$("$FLOOD" --url "$url/notify" --body-file "$tmp/pool.txt" \
	    --requests $((POOL * passes)) --concurrency "$CONCURRENCY" \
	    2>"$tmp/warm.$name.err") || show_log "$tmp/warm.$name.err"
	[ "$(field "$warm" codes)" = "200:$((POOL * passes))" ] ||
	    problem "$name: warm pass: not $((POOL * passes)) answers 200:" \
	    "$warm"
	m0=$(settled "$mode") || problem "$name: after the warm pass: $m0"
	sink_snapshot
	s0=$sink_line
	[ "$mode" = redis ] && r0=$(redis_stats)
	p0=$(proc_cpu "${proxyd_pids[@]}")
	f_line=$("$FLOOD" --url "$url/notify" --body-file "$tmp/pool.txt" \
	    --duration "$DURATION" --concurrency "$CONCURRENCY" \
	    2>"$tmp/flood.$name.err") || rc=$?
	p1=$(proc_cpu "${proxyd_pids[@]}")
	[ "$mode" = redis ] && f_rcpu=$(calc 'printf "%.2f", b - a' \
	    -v a="$(field "$r0" cpu_secs)" \
	    -v b="$(field "$(proc_cpu "$redis_pid")" cpu_secs)")
	[ "$rc" -eq 0 ] || { problem "$name: notify-flood exited $rc"; \
	    show_log "$tmp/flood.$name.err"; }
	m1=$(settled "$mode") || problem "$name: after the flood: $m1"
	sink_snapshot
	f_pushes=$(($(num "$sink_line" requests) - $(num "$s0" requests)))
	[ "$mode" = redis ] && r1=$(redis_stats)
	stop_proxyds
	stop_sink

	f_secs=$(field "$f_line" secs)
	f_ok=$(code_count "$f_line" 200)
	f_req_per_s=$(per "$f_ok" "$f_secs" %.0f)
	f_push_per_s=$(per "$f_pushes" "$f_secs" %.0f)
	f_cpu=$(calc 'printf "%.2f", b - a' -v a="$(field "$p0" cpu_secs)" \
	    -v b="$(field "$p1" cpu_secs)")
	f_misses=$((f_ok - $(delta "$m0" "$m1" cache_hits)))
	[ "$f_misses" -ge 0 ] || f_misses=0
	# Each instance's share of the pushes during the flood.
	f_split=
	total=$(delta "$m0" "$m1" direct)
	IFS=, read -ra each <<<"$(field "$m1" direct_each)"
	IFS=, read -ra before <<<"$(field "$m0" direct_each)"
	for idx in "${!each[@]}"; do
		f_split+="${f_split:+/}$(per $((each[idx] - before[idx])) \
		    "$total")"
	done

	# Checks: no error anywhere, every push counted on both sides, the
	# sink saw exactly the pool, one HTTP/2 connection per instance.
	errors=$(($(num "$f_line" errors) + $(num "$m1" push_failures) +
	    $(num "$m1" decrypt_failures) + $(num "$m1" queue_full)))
	[ "$errors" -eq 0 ] || problem "$name: $errors errors (failed" \
	    "requests, failed pushes, undecryptable tokens, a full queue)"
	[ "$f_pushes" -eq "$total" ] ||
	    problem "$name: the sink got $f_pushes pushes, proxyd counted" \
	    "$total delivered"
	[ "$f_pushes" -ge $((f_ok - $(delta "$m0" "$m1" debounced))) ] ||
	    problem "$name: the sink got $f_pushes pushes for $f_ok answers" \
	    "200"
	[ "$(field "$sink_line" distinct)" = "$POOL" ] &&
	    [ "$(field "$sink_line" digest)" = "$want_digest" ] ||
	    problem "$name: the device tokens at the sink are not the pool's" \
	    "(distinct $(field "$sink_line" distinct), digest" \
	    "$(field "$sink_line" digest), want $POOL and $want_digest)"
	[ "$(field "$sink_line" conns)" = "$n" ] ||
	    problem "$name: $(field "$sink_line" conns) connections to APNs" \
	    "from $n proxyd"
	if [ "$mode" = redis ]; then
		f_r="cmds=$(delta "$r0" "$r1" cmds) in=$(delta "$r0" "$r1" in)"
		f_r+=" out=$(delta "$r0" "$r1" out)"
		f_r+=" sent=$(delta "$m0" "$m1" redis_commands)"
		f_mix=$(cmd_mix "$r0" "$r1" "$f_pushes")
		# Through Redis, not around it: every instance up, no
		# fallback, and at least one command per /notify.
		[ "$(num "$m1" redis_up)" -eq "$n" ] &&
		    [ "$(delta "$m0" "$m1" redis_fallbacks)" -eq 0 ] &&
		    [ $(($(delta "$m0" "$m1" redis_commands_failed) +
		    $(delta "$m0" "$m1" redis_commands_refused) +
		    $(delta "$m0" "$m1" redis_command_errors) +
		    $(delta "$m0" "$m1" redis_timeouts))) -eq 0 ] ||
		    problem "$name: Redis not used throughout: $m1"
		[ "$(delta "$m0" "$m1" redis_commands)" -ge "$f_ok" ] ||
		    problem "$name: $(delta "$m0" "$m1" redis_commands) Redis" \
		    "commands for $f_ok /notify"
	fi
}

# kpush SECS PUSHES: CPU seconds per 1,000 pushes.
kpush() {
	calc 'printf "%.4f", (n > 0 ? s * 1000 / n : 0)' -v s="$1" -v n="$2"
}

echo "== proxyd redis bench: $(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "cpus=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "pool=$POOL concurrency=$CONCURRENCY duration=${DURATION}s" \
    "rounds=$ROUNDS debounce=$DEBOUNCE workers=$WORKERS"

# ---- the token pool, the PKI, Redis -----------------------------------------

make_pool
"$PYTHON" "$helper" reg-bodies "$REGISTER" "$tmp/register.txt" ||
    die "cannot write the /register bodies"
make_pki

start_redis
echo "== redis-server $redis_version on 127.0.0.1:$redis_port" \
    "(no persistence), client: ${REDIS_CLI:-Python RESP}"

# ---- the load generator's ceiling -------------------------------------------

flood_ceiling_per_s=0
if [ "$CEILING_SECS" != 0 ]; then
	flood_ceiling
	[ "$nflood_rc" -eq 0 ] && [ "$nsink_status" -eq 0 ] ||
	    { problem "load generator ceiling: notify-flood exited" \
	    "$nflood_rc, notify-sink $nsink_status"; \
	    show_log "$tmp/nflood.err"; }
	flood_ceiling_per_s=$(field "$nflood_line" req_per_s)
	flood_ceiling_per_s=${flood_ceiling_per_s:-0}
fi

# ---- 1. embedded vs Redis, alternated ---------------------------------------

echo "== 1. one proxyd, (a) embedded state vs (b) --redis, a/b x $ROUNDS," \
    "${DURATION}s each (after a warm pass over the pool)"
declare -A sum_ok sum_push sum_secs sum_cpu
for mode in embedded redis; do
	sum_ok[$mode]=0 sum_push[$mode]=0 sum_secs[$mode]=0 sum_cpu[$mode]=0
done
sum_rcpu=0 sum_rcmds=0 sum_rsent=0 sum_rin=0 sum_rout=0
pair_ratios=
for round in $(seq "$ROUNDS"); do
	for mode in embedded redis; do
		[ "$mode" = embedded ] && ab=a || ab=b
		run_flood "$ab$round" "$mode" 1 1
		sum_ok[$mode]=$((sum_ok[$mode] + f_ok))
		sum_push[$mode]=$((sum_push[$mode] + f_pushes))
		sum_secs[$mode]=$(calc 'print a + b' -v a="${sum_secs[$mode]}" \
		    -v b="$f_secs")
		sum_cpu[$mode]=$(calc 'print a + b' -v a="${sum_cpu[$mode]}" \
		    -v b="$f_cpu")
		extra=
		if [ "$mode" = redis ]; then
			sum_rcpu=$(calc 'print a + b' -v a="$sum_rcpu" \
			    -v b="$f_rcpu")
			sum_rcmds=$((sum_rcmds + $(num "$f_r" cmds)))
			sum_rsent=$((sum_rsent + $(num "$f_r" sent)))
			sum_rin=$((sum_rin + $(num "$f_r" in)))
			sum_rout=$((sum_rout + $(num "$f_r" out)))
			extra="; redis-server $(kpush "$f_rcpu" "$f_pushes")"
			extra+=" cpu s; per push: proxyd sent $(per \
			    "$(num "$f_r" sent)" "$f_pushes") commands, Redis"
			extra+=" ran $(per "$(num "$f_r" cmds)" "$f_pushes"),"
			extra+=" $(per "$(num "$f_r" in)" "$f_pushes" %.0f)"
			extra+=" bytes in, $(per "$(num "$f_r" out)" \
			    "$f_pushes" %.0f) bytes out"
			extra+=$'\n'"  Redis commands per push: $f_mix"
			pair_ratios+="${pair_ratios:+ }$(ratio "$f_push_per_s" \
			    "$a_push_per_s")"
		else
			a_push_per_s=$f_push_per_s
		fi
		echo "$ab$round $mode: $f_req_per_s /notify/s," \
		    "$f_push_per_s pushes/s; per 1,000 pushes: proxyd" \
		    "$(kpush "$f_cpu" "$f_pushes") cpu s$extra"
		echo "  flood: $f_line"
	done
done
# Each mode's rates over its rounds together: their pushes over their time.
declare -A req_per_s push_per_s cpu_k
for mode in embedded redis; do
	req_per_s[$mode]=$(per "${sum_ok[$mode]}" "${sum_secs[$mode]}" %.0f)
	push_per_s[$mode]=$(per "${sum_push[$mode]}" "${sum_secs[$mode]}" %.0f)
	cpu_k[$mode]=$(kpush "${sum_cpu[$mode]}" "${sum_push[$mode]}")
done
embedded_req_per_s=${req_per_s[embedded]}
embedded_push_per_s=${push_per_s[embedded]}
embedded_cpu_k=${cpu_k[embedded]}
redis_req_per_s=${req_per_s[redis]}
redis_push_per_s=${push_per_s[redis]}
redis_cpu_k=${cpu_k[redis]}
redis_ratio=$(ratio "$redis_push_per_s" "$embedded_push_per_s")
redis_req_ratio=$(ratio "$redis_req_per_s" "$embedded_req_per_s")
rserver_cpu_k=$(kpush "$sum_rcpu" "${sum_push[redis]}")
cpu_ratio=$(ratio "$redis_cpu_k" "$embedded_cpu_k")
echo "(a) embedded: $embedded_req_per_s /notify/s, $embedded_push_per_s" \
    "pushes/s; proxyd $embedded_cpu_k cpu s per 1,000 pushes"
echo "(b) --redis: $redis_req_per_s /notify/s, $redis_push_per_s pushes/s;" \
    "proxyd $redis_cpu_k cpu s per 1,000 pushes ($cpu_ratio x embedded)," \
    "redis-server $rserver_cpu_k"
echo "b/a: pushes/s $redis_ratio (round by round: $pair_ratios)," \
    "/notify/s $redis_req_ratio"

# ---- 2. what it costs Redis -------------------------------------------------

cmds_per_push=$(per "$sum_rcmds" "${sum_push[redis]}")
sent_per_push=$(per "$sum_rsent" "${sum_push[redis]}")
sent_per_req=$(per "$sum_rsent" "${sum_ok[redis]}")
in_per_push=$(per "$sum_rin" "${sum_push[redis]}" %.0f)
out_per_push=$(per "$sum_rout" "${sum_push[redis]}" %.0f)
cmds_per_req=$(per "$sum_rcmds" "${sum_ok[redis]}")
in_per_req=$(per "$sum_rin" "${sum_ok[redis]}" %.0f)
out_per_req=$(per "$sum_rout" "${sum_ok[redis]}" %.0f)
echo "== 2. Redis per push in (b): proxyd sent $sent_per_push commands," \
    "Redis ran $cmds_per_push (those its scripts call included)," \
    "$in_per_push bytes in, $out_per_push bytes out; per /notify:" \
    "$sent_per_req sent, $cmds_per_req ran, $in_per_req bytes in," \
    "$out_per_req bytes out"

# Registrations: REGISTER plain APNs tokens through /register.
echo "== Redis memory: $REGISTER registrations (/register, plain APNs" \
    "tokens, --interval 20m)"
start_sink memory --ca "$tmp/pki/ca.pem"
redis_flush
start_proxyds 1 register --debounce "$DEBOUNCE" --interval 20m \
    --register-rate 1000000/s --redis "redis://127.0.0.1:$redis_port/0"
r0=$(redis_settled)
m0=$(settled redis)
rc=0
line=$("$FLOOD" --url "$url/register" --body-file "$tmp/register.txt" \
    --requests "$REGISTER" --concurrency 64 2>"$tmp/register.err") || rc=$?
echo "register: $line"
[ "$rc" -eq 0 ] && [ "$(field "$line" codes)" = "200:$REGISTER" ] ||
    { problem "register: not $REGISTER answers 200"; \
    show_log "$tmp/register.err"; }
r1=$(redis_settled)
m1=$(settled redis) || problem "after the registrations: $m1"
stop_proxyds
reg_bytes=$(per "$(delta "$r0" "$r1" mem)" "$REGISTER" %.0f)
reg_keys=$(per "$(delta "$r0" "$r1" keys)" "$REGISTER")
reg_cmds=$(per "$(delta "$r0" "$r1" cmds)" "$REGISTER")
reg_in=$(per "$(delta "$r0" "$r1" in)" "$REGISTER" %.0f)
[ "$(delta "$m0" "$m1" registrations)" -eq "$REGISTER" ] ||
    problem "register: proxyd counted $(delta "$m0" "$m1" registrations)" \
    "registrations for $REGISTER"
[ "$(delta "$r0" "$r1" keys)" -ge "$REGISTER" ] ||
    problem "register: $(delta "$r0" "$r1" keys) keys in Redis for" \
    "$REGISTER tokens"
echo "registrations: used_memory $(num "$r0" mem) -> $(num "$r1" mem)," \
    "keys $(num "$r0" keys) -> $(num "$r1" keys): $reg_bytes bytes and" \
    "$reg_keys keys per token; $reg_cmds commands, $reg_in bytes in per" \
    "/register"

# Open windows, then owed pushes: WINDOWS distinct encrypted tokens with a
# window long enough to stay open, then the same tokens again.
echo "== Redis memory: $WINDOWS debounce windows (--debounce" \
    "$WINDOW_DEBOUNCE, distinct encrypted tokens), then as many owed" \
    "pushes (the same tokens again)"
head -n "$WINDOWS" "$tmp/pool.txt" >"$tmp/windows.txt"
redis_flush
start_proxyds 1 windows --debounce "$WINDOW_DEBOUNCE" \
    --redis "redis://127.0.0.1:$redis_port/0"
sink_snapshot
s0=$sink_line
r0=$(redis_settled)
m0=$("$PYTHON" "$helper" metrics "${metrics_ports[@]}")
line=$("$FLOOD" --url "$url/notify" --body-file "$tmp/windows.txt" \
    --requests "$WINDOWS" --concurrency "$CONCURRENCY" \
    2>"$tmp/windows.err")
echo "windows: $line"
[ "$(field "$line" codes)" = "200:$WINDOWS" ] ||
    { problem "windows: not $WINDOWS answers 200"; \
    show_log "$tmp/windows.err"; }
deadline=$((SECONDS + SETTLE_TIMEOUT_S))
until sink_snapshot; [ $(($(num "$sink_line" requests) -
    $(num "$s0" requests))) -ge "$WINDOWS" ] ||
    [ "$SECONDS" -ge "$deadline" ]; do
	sleep 0.05
done
[ $(($(num "$sink_line" requests) - $(num "$s0" requests))) -eq \
    "$WINDOWS" ] || problem "windows: $(($(num "$sink_line" requests) -
    $(num "$s0" requests))) pushes at the sink for $WINDOWS tokens"
r1=$(redis_settled)
line=$("$FLOOD" --url "$url/notify" --body-file "$tmp/windows.txt" \
    --requests "$WINDOWS" --concurrency "$CONCURRENCY" \
    2>"$tmp/owed.err")
echo "owed: $line"
[ "$(field "$line" codes)" = "200:$WINDOWS" ] ||
    { problem "owed: not $WINDOWS answers 200"; show_log "$tmp/owed.err"; }
r2=$(redis_settled)
m2=$("$PYTHON" "$helper" metrics "${metrics_ports[@]}")
[ "$(delta "$m0" "$m2" debounced)" -eq "$WINDOWS" ] ||
    problem "owed: $(delta "$m0" "$m2" debounced) requests owed for" \
    "$WINDOWS in open windows"
stop_proxyds
stop_sink
redis_flush
win_bytes=$(per "$(delta "$r0" "$r1" mem)" "$WINDOWS" %.0f)
win_keys=$(per "$(delta "$r0" "$r1" keys)" "$WINDOWS")
owed_bytes=$(per "$(delta "$r1" "$r2" mem)" "$WINDOWS" %.0f)
owed_keys=$(per "$(delta "$r1" "$r2" keys)" "$WINDOWS")
token_len=$(head -n 1 "$tmp/windows.txt" | tr -d '\n' | wc -c)
echo "windows: used_memory $(num "$r0" mem) -> $(num "$r1" mem), keys" \
    "$(num "$r0" keys) -> $(num "$r1" keys): $win_bytes bytes and" \
    "$win_keys keys per open window"
echo "owed: used_memory -> $(num "$r2" mem), keys -> $(num "$r2" keys):" \
    "$owed_bytes more bytes and $owed_keys more keys per owed push (it" \
    "keeps the token as it arrived: $token_len bytes here)"

# ---- 3. one vs two instances on one port ------------------------------------

reuse_fields=
declare -A reuse_ok reuse_secs reuse_pairs
if [ "$REUSE" -gt 0 ]; then
	echo "== 3. one vs two proxyd with --reuse-port on one port, same" \
	    "load, x1/x2 x $REUSE for each backend (${DURATION}s each; two" \
	    "instances get $REUSE_WARM_PASSES warm passes)"
	for k in embedded1 embedded2 redis1 redis2; do
		reuse_ok[$k]=0 reuse_secs[$k]=0
	done
	for round in $(seq "$REUSE"); do
		for mode in embedded redis; do
			for n in 1 2; do
				passes=1
				[ "$n" -eq 1 ] || passes=$REUSE_WARM_PASSES
				run_flood "reuse$round-$mode-$n" "$mode" "$n" \
				    "$passes" --reuse-port
				reuse_ok[$mode$n]=$((reuse_ok[$mode$n] + f_ok))
				reuse_secs[$mode$n]=$(calc 'print a + b' \
				    -v a="${reuse_secs[$mode$n]}" -v b="$f_secs")
				extra=
				if [ "$n" -eq 1 ]; then
					one_per_s=$f_req_per_s
				else
					extra=", split $f_split"
					reuse_pairs[$mode]+="${reuse_pairs[$mode]:+ }"
					reuse_pairs[$mode]+=$(ratio "$f_req_per_s" \
					    "$one_per_s")
				fi
				if [ "$mode" = redis ]; then
					extra+="; redis-server $(kpush \
					    "$f_rcpu" "$f_pushes") cpu s per"
					extra+=" 1,000 pushes, proxyd sent $(per \
					    "$(num "$f_r" sent)" "$f_pushes")"
					extra+=" commands per push"
				fi
				echo "round $round $mode x$n: $f_req_per_s" \
				    "/notify/s, $f_push_per_s pushes/s; proxyd" \
				    "$(kpush "$f_cpu" "$f_pushes") cpu s per 1,000" \
				    "pushes (all instances)$extra; $f_misses" \
				    "cache misses"
				echo "  flood: $f_line"
			done
		done
	done
	for mode in embedded redis; do
		one=$(per "${reuse_ok[${mode}1]}" "${reuse_secs[${mode}1]}" %.0f)
		two=$(per "${reuse_ok[${mode}2]}" "${reuse_secs[${mode}2]}" %.0f)
		rr=$(ratio "$two" "$one")
		echo "$mode: two instances / one: $rr (round by round:" \
		    "${reuse_pairs[$mode]}; /notify/s $one -> $two; $(nproc)" \
		    "cpus shared with notify-flood and apns-sink$([ \
		    "$mode" = embedded ] || echo " and redis-server"); the" \
		    "load generator alone: $flood_ceiling_per_s/s)"
		reuse_fields+=" reuse_${mode}_1_per_s=$one"
		reuse_fields+=" reuse_${mode}_2_per_s=$two"
		reuse_fields+=" reuse_${mode}_ratio=$rr"
	done
fi

stop_redis

# ---- targets and summary ----------------------------------------------------

echo "== targets (reported, not enforced)"
target redis_ratio "$redis_ratio" ge "$TARGET_REDIS_RATIO" \
    "pushes/s with --redis ($redis_push_per_s/s) vs embedded" \
    "($embedded_push_per_s/s), one proxyd, same run"
if [ "$problems" -gt 0 ]; then
	echo "result: FAILED ($problems problems, see stderr)"
else
	echo "result: OK"
fi
echo "proxyd-redis-bench embedded_per_s=$embedded_push_per_s" \
    "redis_per_s=$redis_push_per_s redis_ratio=$redis_ratio" \
    "embedded_notify_per_s=$embedded_req_per_s" \
    "redis_notify_per_s=$redis_req_per_s" \
    "embedded_cpu_s_per_kpush=$embedded_cpu_k" \
    "redis_cpu_s_per_kpush=$redis_cpu_k" \
    "redis_server_cpu_s_per_kpush=$rserver_cpu_k" \
    "redis_sent_per_push=$sent_per_push" \
    "redis_cmds_per_push=$cmds_per_push redis_in_per_push=$in_per_push" \
    "redis_out_per_push=$out_per_push redis_cmds_per_notify=$cmds_per_req" \
    "redis_in_per_notify=$in_per_req redis_out_per_notify=$out_per_req" \
    "register_bytes_per_token=$reg_bytes window_bytes=$win_bytes" \
    "owed_bytes=$owed_bytes flood_ceiling_per_s=$flood_ceiling_per_s" \
    "pool=$POOL rounds=$ROUNDS problems=$problems$reuse_fields"
[ "$problems" -eq 0 ]
