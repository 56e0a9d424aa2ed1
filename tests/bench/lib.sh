# Shell helpers shared by the run-*-bench.sh scripts. Source it after
# setting BENCH_NAME (for messages), READY_TIMEOUT_S and STOP_TIMEOUT_S;
# the caller keeps `problems` (a count of failed checks) and `tmp`.
# shellcheck shell=bash

# stop PID: SIGTERM, then SIGKILL after STOP_TIMEOUT_S.
stop() {
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq $((STOP_TIMEOUT_S * 20))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -KILL "$1" 2>/dev/null
}

# reap PIDVAR: stop the process whose pid the variable PIDVAR holds, wait
# for it, set status to its exit status and empty PIDVAR (nothing left
# for the cleanup to stop).
reap() {
	local -n reap_pid=$1

	stop "$reap_pid"
	wait "$reap_pid"
	# shellcheck disable=SC2034 # for the caller
	status=$?
	reap_pid=
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

# need_programs FILE...: exit 2 unless each is an executable file.
need_programs() {
	local b

	for b; do
		if [ ! -x "$b" ]; then
			echo "$BENCH_NAME: $b: not found or not executable" >&2
			exit 2
		fi
	done
}

# need_commands NAME:PACKAGE...: exit 2 unless each NAME is a command;
# PACKAGE, the Debian package that has it, goes in the message.
need_commands() {
	local p

	for p; do
		if ! command -v "${p%%:*}" >/dev/null; then
			echo "$BENCH_NAME: ${p%%:*} not found" \
			    "(apt-get install ${p##*:})" >&2
			exit 2
		fi
	done
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

# per N D [FMT]: N / D with FMT (default %.2f), 0 when D is 0: a rate
# that is still a number when nothing was measured.
per() {
	calc "printf \"${3:-%.2f}\", (d > 0 ? n / d : 0)" -v n="$1" -v d="$2"
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

# wait_up PIDVAR NAME LOG TEXT CHECK...: poll CHECK (a command) until it
# succeeds, at most READY_TIMEOUT_S, while the daemon whose pid the
# variable PIDVAR holds runs. Dies if the daemon did (with its LOG shown,
# and PIDVAR emptied) or if CHECK never succeeded ("NAME TEXT in ...").
wait_up() {
	local -n wait_pid=$1
	local name=$2 log=$3 text=$4 deadline=$((SECONDS + READY_TIMEOUT_S))

	shift 4
	until "$@"; do
		if ! kill -0 "$wait_pid" 2>/dev/null; then
			wait_pid=
			show_log "$log"
			die "$name died at start"
		fi
		[ "$SECONDS" -lt "$deadline" ] ||
		    die "$name $text in ${READY_TIMEOUT_S}s"
		sleep 0.05
	done
}

# read_port FILE: the port=N of FILE's first line into port; status 1
# while there is none.
read_port() {
	port=$(field "$(head -n 1 "$1")" port) && [ -n "$port" ]
}

# spawn PIDVAR NAME OUT ERR CMD...: CMD, a daemon whose first line on
# stdout holds port=N, in the background with its stdout in OUT and its
# stderr in ERR; its pid goes into the variable PIDVAR at once, so that
# the caller's cleanup stops it whatever happens next. Waits for the
# port (wait_up) and sets port. NAME is for messages.
spawn() {
	# There before the daemon writes it: head must not fail on it.
	: >"$3"
	"${@:5}" >"$3" 2>"$4" &
	printf -v "$1" %s "$!"
	wait_up "$1" "$2" "$4" "gave no port" read_port "$3"
}

# write_helper FILE: a bench's helper in Python (for what the shell has
# no tool for: sqlite3, /proc, HTTP), from stdin, with what every helper
# starts with before it and the command dispatch after it. Functions
# registered with @command(NAME, TYPES...) are its commands: `$PYTHON
# FILE NAME WORDS...` calls one with the WORDS converted by TYPES (the
# last type for any further words); its return value is the exit status.
write_helper() {
	{
		cat <<'EOF'
import os, socket, sys, time, urllib.request

COMMANDS = {}

def command(name, *types):
    def register(f):
        def run(*words):
            return f(*(types[min(i, len(types) - 1)](w)
                       for i, w in enumerate(words)))
        COMMANDS[name] = run
        return f
    return register

@command("free-port")
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()

def alive(pid):
    # A child of the shell that died stays a zombie until the shell
    # waits for it: kill(pid, 0) would still succeed.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def cpu_secs(path):
    """user + system seconds from a /proc stat file, a process's (all its
    threads) or a thread's."""
    with open(path) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")

def scrape(port):
    """A daemon's /metrics on 127.0.0.1:port, as {name: value}."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                  timeout=5).read().decode()
    m = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            m[name] = float(value)
    return m

EOF
		cat
		echo 'sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))'
	} >"$1"
}
