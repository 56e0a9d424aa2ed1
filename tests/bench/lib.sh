# Shell helpers shared by the run-*-bench.sh scripts. Source it after
# setting BENCH_NAME (for messages) and STOP_TIMEOUT_S; the caller keeps
# `problems` (a count of failed checks) and `tmp`.

# stop PID: SIGTERM, then SIGKILL after STOP_TIMEOUT_S.
stop() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq $((STOP_TIMEOUT_S * 20))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -KILL "$1" 2>/dev/null
}

# problem TEXT: a failed check; the run goes on and exits 1 at the end.
problem() {
	echo "$BENCH_NAME: PROBLEM: $*" >&2
	problems=$((problems + 1))
}

die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

# show_log FILE: its last lines on stderr, when it has any.
show_log() {
	if [ -s "$1" ]; then
		echo "--- $1 (last 20 lines) ---" >&2
		tail -n 20 "$1" >&2
		echo "---" >&2
	fi
}

# field LINE KEY: the value of KEY=... in a line of key=value pairs.
field() {
	sed -n "s/.*\(^\| \)$2=\([^ ]*\).*/\2/p" <<<"$1"
}

# num LINE KEY: the same, 0 if absent, for arithmetic.
num() {
	local v

	v=$(field "$1" "$2")
	echo "${v:-0}"
}

# ratio A B [DIGITS]: A / B with DIGITS decimals (2), n/a when B is 0.
ratio() {
	awk -v a="$1" -v b="$2" -v d="${3:-2}" \
	    'BEGIN { if (b > 0) printf "%.*f", d, a / b; else print "n/a" }'
}
