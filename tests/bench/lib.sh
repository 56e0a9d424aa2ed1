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

# calc EXPR [-v VAR=VALUE...]: awk arithmetic, printed as EXPR's printf
# says.  Comparisons go in parentheses: a bare > after printf is awk's
# redirection to a file.
calc() {
	local expr=$1

	shift
	awk "$@" "BEGIN { $expr }"
}

# duration_ms D: proxyd's durations with the units the benches use (ms, s,
# m), in milliseconds.
duration_ms() {
	case $1 in
	*ms) echo "${1%ms}" ;;
	*s) echo $((${1%s} * 1000)) ;;
	*m) echo $((${1%m} * 60000)) ;;
	*) echo "$1" ;;
	esac
}

# target NAME VALUE ge|le LIMIT TEXT: one line, met or MISSED (a target is
# reported, never a failed check).
target() {
	local verdict

	verdict=$(calc 'print ((op == "ge" ? v >= l : v <= l) ? "met" : \
	    "MISSED")' \
	    -v v="$2" -v op="$3" -v l="$4")
	printf 'target %s: %s %s %s %s: %s\n' "$1" "$2" \
	    "$([ "$3" = ge ] && echo '>=' || echo '<=')" "$4" "$verdict" \
	    "${*:5}"
}
