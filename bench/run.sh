#!/bin/bash
# aloop's benchmarks against its peers, in one run (see bench/README.md).
#
#   bench/run.sh [--quick] [--no-loop] [--no-tcp] [--no-tls] [--no-mem]
#                [--no-proxy] [--no-start] [--no-peers] [--wait-load X]
#                [--out FILE]
#
# Builds bench/aloop_echo, bench/aloop_tls_echo, bench/bench_loop,
# bench/bulk, aloopd and its echo and proxy plugins in BUILD_DIR (default:
# build-bench in the source tree, configured without sanitizers), copies
# the shared peer harness (SHARED_BENCH, default /work/shared/bench) into a
# temporary directory and builds it there, starts every server pinned to
# SERVER_CPU (0) with its clients on CLIENT_CPU (1), and prints one table
# per group with ratios against the peers measured in this same run, then
# one table of every target.  The raw lines go to --out
# (default bench/results/run-DATE.txt in the source tree).
#
#   --quick        2 s per figure, 1 repeat, bench_loop at scale 0.2,
#                  1,000 / 500 idle connections: checks that all works.
#   --no-peers     aloop, aloopd, raw_epoll_echo and libevent only (the
#                  references of the targets); the interpreted peers and
#                  the TLS group's nginx and stunnel are skipped.  Peers whose program is not
#                  installed are always skipped, with a note.
#   --wait-load X  before each repeat, wait (at most WAIT_MAX s, 600) until
#                  the 1-minute load average is below X.
#   --no-proxy     skip the proxy group: aloopd's proxy plugin against
#                  HAProxy and nginx's stream module in front of the same
#                  upstreams (echo, 1 GiB upload, TLS termination).  HAProxy
#                  and nginx are its references, so --no-peers keeps them.
#
# env: DURATION (5) WARMUP (1) REPEATS (3) LOOP_SCALE (1) C10K_TCP (10000)
#      C10K_TLS (5000) HS_CONNS (16) SERVER_CPU (0) CLIENT_CPU (1)
#      BASE_PORT (7500) BULK_BYTES (1073741824) PAIRS (6) BUILD_DIR
#      SHARED_BENCH
#
# Everything listens on 127.0.0.1 (the peers on ::, dual-stack) and every
# process started here is ended by its PID when the script exits.
set -u

DURATION=${DURATION:-5}; WARMUP=${WARMUP:-1}; REPEATS=${REPEATS:-3}
LOOP_SCALE=${LOOP_SCALE:-1}; C10K_TCP=${C10K_TCP:-10000}
C10K_TLS=${C10K_TLS:-5000}; HS_CONNS=${HS_CONNS:-16}
SERVER_CPU=${SERVER_CPU:-0}; CLIENT_CPU=${CLIENT_CPU:-1}
BASE_PORT=${BASE_PORT:-7500}; WAIT_MAX=${WAIT_MAX:-600}
BULK_BYTES=${BULK_BYTES:-1073741824}; PAIRS=${PAIRS:-6}
DO_LOOP=1; DO_TCP=1; DO_TLS=1; DO_MEM=1; DO_PROXY=1; DO_START=1; PEERS=1
WAIT_LOAD=""; OUT=""

usage() {
	sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) DURATION=2; WARMUP=0.5; REPEATS=1; LOOP_SCALE=0.2
		C10K_TCP=1000; C10K_TLS=500; PAIRS=2 ;;
	--no-loop) DO_LOOP=0 ;;
	--no-tcp) DO_TCP=0 ;;
	--no-tls) DO_TLS=0 ;;
	--no-mem) DO_MEM=0 ;;
	--no-proxy) DO_PROXY=0 ;;
	--no-start) DO_START=0 ;;
	--no-peers) PEERS=0 ;;
	--wait-load) [ $# -ge 2 ] || usage; WAIT_LOAD=$2; shift ;;
	--out) [ $# -ge 2 ] || usage; OUT=$2; shift ;;
	-h|--help) usage ;;
	*) echo "run.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
for v in REPEATS C10K_TCP C10K_TLS HS_CONNS SERVER_CPU CLIENT_CPU BASE_PORT \
    WAIT_MAX BULK_BYTES; do
	case ${!v} in ""|*[!0-9]*) echo "run.sh: $v must be a number" >&2
		exit 2 ;; esac
done

SRCDIR=$(cd "$(dirname "$0")/.." && pwd) || exit 1
BUILD_DIR=${BUILD_DIR:-$SRCDIR/build-bench}
SHARED_BENCH=${SHARED_BENCH:-/work/shared/bench}
PY=/usr/bin/python3
[ -n "$OUT" ] || OUT=$SRCDIR/bench/results/run-$(date -u +%Y%m%d-%H%M%S).txt
mkdir -p "$(dirname "$OUT")" || exit 1
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")

TMPD=$(mktemp -d /tmp/aloop-bench.XXXXXX) || exit 1
PIDS=""
WORKERS=""	# aloopd's worker processes, as PID:STARTTIME (see same_proc)

# Servers get SIGTERM (they all exit 0 on it), then SIGKILL after 5 s;
# then any aloopd worker still there (it ends with its master) likewise.
cleanup() {
	local p i alive
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for i in $(seq 50); do
		alive=""
		for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in $PIDS; do
		if kill -0 "$p" 2>/dev/null; then
			echo "note: pid $p ignored SIGTERM, killing it" >&2
			kill -KILL "$p" 2>/dev/null
		fi
		wait "$p" 2>/dev/null
	done
	PIDS=""
	end_workers $WORKERS
	WORKERS=""
	rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

log() { echo "$*" | tee -a "$OUT"; }
note() { echo "# note: $*" | tee -a "$OUT" >&2; }

# ------------------------------------------------------------------ build
echo "building aloop's bench programs in $BUILD_DIR" >&2
if [ ! -f "$BUILD_DIR/Makefile" ]; then
	mkdir -p "$BUILD_DIR" && (cd "$BUILD_DIR" && "$SRCDIR/configure" \
	    >"$TMPD/configure.log" 2>&1) ||
	    { cat "$TMPD/configure.log" >&2; exit 1; }
fi
if grep -q -e '-fsanitize' "$BUILD_DIR/Makefile"; then
	echo "run.sh: $BUILD_DIR is built with sanitizers; use another" \
	    "BUILD_DIR" >&2
	exit 1
fi
make -C "$BUILD_DIR" -j2 bench/aloop_echo bench/aloop_tls_echo \
    bench/bench_loop bench/bench_task bench/bench_config bench/bulk \
    >"$TMPD/make.log" 2>&1 ||
    { tail -30 "$TMPD/make.log" >&2; exit 1; }
ALOOP_ECHO=$BUILD_DIR/bench/aloop_echo
ALOOP_TLS_ECHO=$BUILD_DIR/bench/aloop_tls_echo
BENCH_LOOP=$BUILD_DIR/bench/bench_loop
BENCH_TASK=$BUILD_DIR/bench/bench_task
BENCH_CONFIG=$BUILD_DIR/bench/bench_config
BULK=$BUILD_DIR/bench/bulk
# aloopd and the echo plugin it loads from plugins/.libs.  A daemon that
# does not build costs its rows only, with a note.
ALOOPD=""
if make -C "$BUILD_DIR" -j2 daemon/aloopd plugins/echo.la plugins/echo_task.la \
    plugins/proxy.la >"$TMPD/make-aloopd.log" 2>&1 &&
    [ -f "$BUILD_DIR/plugins/.libs/echo.so" ] &&
    [ -f "$BUILD_DIR/plugins/.libs/proxy.so" ]; then
	ALOOPD=$BUILD_DIR/daemon/aloopd
	# Started as an installed daemon is: the binary itself, not libtool's
	# wrapper script, whose shell alone costs about 15 ms of start-up.
	if [ -x "$BUILD_DIR/daemon/.libs/aloopd" ]; then
		ALOOPD=$BUILD_DIR/daemon/.libs/aloopd
		LD_LIBRARY_PATH=$BUILD_DIR/lib/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
		export LD_LIBRARY_PATH
	fi
else
	tail -30 "$TMPD/make-aloopd.log" >&2
fi

echo "building the peer harness in $TMPD/peers" >&2
[ -f "$SHARED_BENCH/echo_load.c" ] ||
    { echo "run.sh: no peer harness in $SHARED_BENCH" >&2; exit 1; }
mkdir "$TMPD/peers" && cp -R "$SHARED_BENCH/." "$TMPD/peers/" &&
    rm -rf "$TMPD/peers/results" || exit 1
# Fresh certificates and binaries, not whatever the copy carried along.
rm -rf "$TMPD/peers/certs"
make -s -C "$TMPD/peers" clean >/dev/null 2>&1
make -s -C "$TMPD/peers" >"$TMPD/peers-make.log" 2>&1 ||
    { cat "$TMPD/peers-make.log" >&2; exit 1; }
cd "$TMPD/peers" || exit 1

# The 10,000 connections need the descriptors; the hard limit is all we get.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---------------------------------------------------------------- helpers
wait_port() {	# PORT PID: up to 10 s, and give up at once if PID died
	local i
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# start_server NAME PORT CMD...: sets PID_NAME; returns 1 (with the log)
# when it does not come up.  start_server_on CPU NAME PORT CMD... likewise
# on another CPU than SERVER_CPU (the proxies' upstreams run beside the
# client).
start_server() { start_server_on "$SERVER_CPU" "$@"; }
start_server_on() {
	local cpu=$1 name=$2 port=$3 pid
	shift 3
	taskset -c "$cpu" "$@" >"$TMPD/$name.log" 2>&1 &
	pid=$!
	PIDS="$PIDS $pid"
	if ! wait_port "$port" "$pid"; then
		note "server $name did not come up; skipped: $(tail -3 \
		    "$TMPD/$name.log" | tr '\n' ' ')"
		end_pid "$pid"
		return 1
	fi
	eval "PID_$name=$pid"
	return 0
}
# end_pid PID (a child of this shell): SIGTERM, SIGKILL after 10 s, reap.
end_pid() {
	local i
	kill -TERM "$1" 2>/dev/null
	for i in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		note "pid $1 ignored SIGTERM for 10 s, killing it"
		kill -KILL "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	forget_pid "$1"
}
# A process that is not our child is named PID:STARTTIME (field 22 of
# /proc/PID/stat, ticks since boot), so that a later process that got the
# PID is never taken for it; a zombie counts as gone.
start_time() {
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null |
	    awk '$1 != "Z" && $1 != "X" { print $20 }'
}
same_proc() {	# PID:STARTTIME
	local t
	t=$(start_time "${1%:*}")
	[ -n "$t" ] && [ "$t" = "${1#*:}" ]
}
# end_workers PID:STARTTIME...: aloopd workers, which end with their master:
# up to 2 s for that, then SIGTERM, then SIGKILL 3 s later.
end_workers() {
	local w i left="$*" still
	for i in $(seq 50); do
		still=""
		for w in $left; do same_proc "$w" && still="$still $w"; done
		left=$still
		[ -n "$left" ] || return 0
		if [ "$i" = 20 ]; then
			for w in $left; do kill -TERM "${w%:*}" 2>/dev/null; done
		fi
		sleep 0.1
	done
	for w in $left; do
		note "aloopd worker ${w%:*} outlived its master, killing it"
		kill -KILL "${w%:*}" 2>/dev/null
	done
}
# server_pids NAME: the processes whose CPU and RSS are the server's: the
# PID, and for a master (aloopd, HAProxy -W, nginx) its worker too (the
# sum of both is reported).
server_pids() {
	local w p=""
	for w in $(eval echo "\${WORKER_$1:-}"); do p="$p ${w%:*}"; done
	echo "$(eval echo "\${PID_$1:-}")$p"
}
# echo_ok PORT: one line echoed back on 127.0.0.1:PORT within 2 s.
echo_ok() {
	timeout -k 1 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
	    printf "ping\n" >&3 && IFS= read -r -t 1 l <&3 &&
	    [ "$l" = ping ]' echo_ok "$1" 2>/dev/null
}
# start_aloopd NAME PORT [PLUGIN]: aloopd -f, one worker, the echo plugin
# (or PLUGIN: echo_task, echo as a task) on 127.0.0.1:PORT.  Sets PID_NAME
# (the master, our child) and WORKER_NAME (PID:STARTTIME of the worker
# process, the master's only child).
start_aloopd() {
	local name=$1 port=$2 plugin=${3:-echo} conf=$TMPD/$1.conf
	[ -n "$ALOOPD" ] || return 1
	cat >"$conf" <<-EOF
	daemon = {
		workers = 1;
		log_level = "warning";
		plugin_path = [ "$BUILD_DIR/plugins/.libs" ];
		shutdown_timeout = 2;
		worker_stall_timeout = 0;
	};
	listeners = (
		{
			name = "echo";
			protocol = "$plugin";
			listen = [ "127.0.0.1:$port" ];
			max_connections = 0;
			idle_timeout = 0;
		}
	);
	EOF
	start_master "$name" "$port" "$ALOOPD" -f -c "$conf"
}
# start_master NAME PORT CMD...: a server whose master forks one worker
# (aloopd, HAProxy -W, nginx with its master), pinned like start_server.
# The master listens before its worker serves: up to 10 s (and the last
# try) for one child and a line echoed through PORT.  Sets PID_NAME (the
# master, our child) and WORKER_NAME (PID:STARTTIME of the worker).
start_master() {
	local name=$1 port=$2 pid end kids w="" seen=""
	shift 2
	start_server "$name" "$port" "$@" || return 1
	pid=$(eval echo "\$PID_$name")
	end=$((SECONDS + 10))
	while [ "$SECONDS" -le "$end" ]; do
		kids=$(ps -o pid= --ppid "$pid" 2>/dev/null)
		if [ "$(echo $kids | wc -w)" = 1 ]; then
			w=$(echo $kids)
			w=$w:$(start_time "$w")
			seen=$w
			echo_ok "$port" && same_proc "$w" && break
		fi
		w=""
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if [ -z "$w" ]; then
		note "$name has no serving worker; skipped:" \
		    "$(tail -3 "$TMPD/$name.log" | tr '\n' ' ')"
		stop_server "$name"
		[ -z "$seen" ] || end_workers "$seen"
		return 1
	fi
	WORKERS="$WORKERS $w"
	eval "WORKER_$name=$w"
	return 0
}
# A reaped PID leaves the list, so that cleanup never signals a stranger
# that got the number since.
forget_pid() {
	local p keep=""
	for p in $PIDS; do [ "$p" = "$1" ] || keep="$keep $p"; done
	PIDS=$keep
}
stop_server() {	# NAME
	local pid w
	pid=$(eval echo "\${PID_$1:-}")
	w=$(eval echo "\${WORKER_$1:-}")
	[ -n "$pid" ] && end_pid "$pid"
	[ -n "$w" ] && end_workers $w
	eval "PID_$1= WORKER_$1="
}
cpu_ticks() {	# PID...: user + system ticks, summed
	local t=0 p v
	for p in "$@"; do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null |
		    awk '{ print $12 + $13 }')
		t=$((t + ${v:-0}))
	done
	echo $t
}
rss_kib() {	# PID...: VmRSS, summed
	local t=0 p v
	for p in "$@"; do
		v=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo $t
}
load1() { cut -d' ' -f1 /proc/loadavg; }
# A client run is bounded: it is killed if it outlives its own schedule
# (or CLIENT_LIMIT seconds, for a run that is not timed by DURATION).
client() {
	local limit
	limit=${CLIENT_LIMIT:-$(awk -v d="$DURATION" -v w="$WARMUP" \
	    'BEGIN { printf "%d", d + w + 60 }')}
	timeout -k 5 "$limit" taskset -c "$CLIENT_CPU" "$@"
}
wait_load() {
	local i
	[ -n "$WAIT_LOAD" ] || return 0
	for i in $(seq "$WAIT_MAX"); do
		awk -v l="$(load1)" -v m="$WAIT_LOAD" 'BEGIN { exit !(l < m) }' &&
		    return 0
		sleep 1
	done
	note "load stayed at $(load1) >= $WAIT_LOAD for ${WAIT_MAX}s"
}
# run_one TAG NAME "PIDS" CLIENT-ARGS...: one client run, one result line.
run_one() {
	local tag=$1 name=$2 pids=$3 c0 c1 t0 t1 line scpu cs p
	shift 3
	c0=$(cpu_ticks $pids); t0=$(date +%s.%N)
	line=$(client "$@" 2>&1 | tail -1)
	c1=$(cpu_ticks $pids); t1=$(date +%s.%N)
	for p in $pids; do
		kill -0 "$p" 2>/dev/null ||
		    note "$name: pid $p ended during the $tag run"
	done
	# Server CPU share (1.00 = one core) over the whole client run.
	# and its CPU seconds, for the rows that count work, not time.
	scpu=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" \
	    'BEGIN { printf "%.2f", (b - a) / 100 / (t1 - t0) }')
	cs=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
	log "rep=$rep scenario=$tag server=$name $line server_cpu=$scpu" \
	    "server_cpu_s=$cs load1=$(load1)"
}
have_py() { [ -x "$PY" ] && "$PY" -c "import $1" 2>/dev/null; }

P=$BASE_PORT
echo "# $(date -u -Iseconds) aloop bench/run.sh DURATION=$DURATION" \
    "WARMUP=$WARMUP REPEATS=$REPEATS LOOP_SCALE=$LOOP_SCALE" \
    "C10K_TCP=$C10K_TCP C10K_TLS=$C10K_TLS $(uname -r) $(nproc) cpus" \
    "load=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "git=$(git -C "$SRCDIR" rev-parse --short HEAD 2>/dev/null)" >>"$OUT"
echo "# cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo |
    head -1); server cpu $SERVER_CPU, client cpu $CLIENT_CPU" >>"$OUT"
[ -n "$ALOOPD" ] || note "aloopd did not build: its rows are skipped" \
    "(log above)"

# ------------------------------------------------------------ issue 3: loop
if [ $DO_LOOP = 1 ]; then
	for rep in $(seq "$REPEATS"); do
		wait_load
		echo "# loop repeat $rep/$REPEATS starts at load $(load1)" |
		    tee -a "$OUT" >&2
		timeout -k 5 600 taskset -c "$SERVER_CPU" "$BENCH_LOOP" \
		    -p "$CLIENT_CPU" "$LOOP_SCALE" >"$TMPD/loop.out" 2>&1 ||
		    { cat "$TMPD/loop.out" >&2; note "bench_loop failed"; }
		awk -v rep="$rep" -v l="$(load1)" '
		    /^call_soon dispatch/ { k = "call_soon" }
		    /^call_later/ { k = "call_later" }
		    /^call_soon_threadsafe wake-up/ { k = "threadsafe" }
		    /^call_soon_threadsafe from sleep/ {
			k = "threadsafe_sleep"
		    }
		    /aloop .*libevent/ && k != "" {
			for (i = 1; i <= NF; i++) {
				if ($i == "aloop") a = $(i + 1)
				if ($i == "libevent") r = $(i + 1)
			}
			sub("/s", "", a); sub("/s", "", r)
			printf "rep=%s scenario=loop_%s server=aloop " \
			    "ops_per_s=%s libevent_per_s=%s load1=%s\n",
			    rep, k, a, r, l
			k = ""
		    }' "$TMPD/loop.out" | tee -a "$OUT"
	done
fi

# ----------------------------------------------------------- issue 13: tasks
if [ $DO_LOOP = 1 ]; then
	for rep in $(seq "$REPEATS"); do
		wait_load
		echo "# task repeat $rep/$REPEATS starts at load $(load1)" |
		    tee -a "$OUT" >&2
		timeout -k 5 600 taskset -c "$SERVER_CPU" "$BENCH_TASK" \
		    "$LOOP_SCALE" >"$TMPD/task.out" 2>&1 ||
		    { cat "$TMPD/task.out" >&2; note "bench_task failed"; }
		awk -v rep="$rep" -v l="$(load1)" '
		    /^task suspend\/resume/ { p = $(NF - 4) }
		    /^task awaits of done/ { d = $(NF - 4) }
		    /^swapcontext pairs/ { u = $(NF - 4) }
		    /^call_soon chain/ { c = $(NF - 4) }
		    END {
			gsub("/s", "", p); gsub("/s", "", d)
			gsub("/s", "", u); gsub("/s", "", c)
			if (p != "")
				printf "rep=%s scenario=task server=aloop " \
				    "pairs_per_s=%s await_done_per_s=%s " \
				    "swapcontext_per_s=%s call_soon_per_s=%s " \
				    "load1=%s\n", rep, p, d, u, c, l
		    }' "$TMPD/task.out" | tee -a "$OUT"
	done
fi

# ------------------------------------------------------- issue 4: servers
TCP_SERVERS=""
TLS_SERVERS=""
add_tcp() {	# NAME CMD... (the port is $P, already in CMD)
	local name=$1
	shift
	start_server "$name" "$P" "$@" && TCP_SERVERS="$TCP_SERVERS $name:$P"
	P=$((P + 1))
}
add_tls() {	# NAME CMD...
	local name=$1
	shift
	start_server "$name" "$P" "$@" && TLS_SERVERS="$TLS_SERVERS $name:$P"
	P=$((P + 1))
}

if [ $DO_TCP = 1 ] || [ $DO_TLS = 1 ]; then
	# raw first: it is the reference of every ratio, TLS included.
	add_tcp raw ./raw_epoll_echo $P
	[ -n "$TCP_SERVERS" ] || { note "no raw_epoll_echo, no ratios"; exit 1; }
fi
if [ $DO_TCP = 1 ]; then
	add_tcp aloop "$ALOOP_ECHO" --port $P
	# aloopd with the echo plugin: the daemon's cost over aloop_echo.
	if [ -n "$ALOOPD" ]; then
		start_aloopd aloopd $P && TCP_SERVERS="$TCP_SERVERS aloopd:$P"
		P=$((P + 1))
		# The same written as a task (issue 13): stream_task's cost.
		start_aloopd aloopd_task $P echo_task &&
		    TCP_SERVERS="$TCP_SERVERS aloopd_task:$P"
		P=$((P + 1))
	fi
	add_tcp libevent ./libevent_echo $P
	if [ $PEERS = 1 ]; then
		add_tcp asyncio "$PY" asyncio_echo.py $P
		if have_py uvloop; then
			add_tcp uvloop "$PY" asyncio_echo.py $P --uvloop
		else
			note "python3-uvloop not installed: uvloop skipped"
		fi
		if command -v node >/dev/null; then
			add_tcp node node node_echo.js $P
		else
			note "nodejs not installed: node skipped"
		fi
		if have_py twisted; then
			add_tcp twisted "$PY" twisted_echo.py $P
		else
			note "python3-twisted not installed: twisted skipped"
		fi
	fi
fi
if [ $DO_TLS = 1 ]; then
	add_tls aloop_tls "$ALOOP_TLS_ECHO" --port $P --cert certs/cert.pem \
	    --key certs/key.pem --tls13 --no-resumption
	add_tls libevent_tls ./libevent_tls_echo $P
	if [ $PEERS = 1 ]; then
		if command -v node >/dev/null; then
			add_tls node_tls node node_echo.js $P --tls
		else
			note "nodejs not installed: node_tls skipped"
		fi
		add_tls asyncio_tls "$PY" asyncio_echo.py $P --tls
		if have_py uvloop; then
			add_tls uvloop_tls "$PY" asyncio_echo.py $P --uvloop --tls
		else
			note "python3-uvloop not installed: uvloop_tls skipped"
			P=$((P + 1))
		fi
		# The proxies terminate TLS in front of a raw_epoll_echo of
		# their own (on CPU 0 too, and counted in their CPU).
		BK=$P
		P=$((P + 1))
		start_server rawbk $BK ./raw_epoll_echo $BK || BK=""
		if [ -z "$BK" ]; then
			:
		elif command -v nginx >/dev/null &&
		    [ -f /usr/lib/nginx/modules/ngx_stream_module.so ]; then
			sed -e "s|@DIR@|$PWD|g" -e "s|@TMP@|$TMPD|g" \
			    -e "s|listen 7204 |listen $P |" \
			    -e "s|127.0.0.1:7110|127.0.0.1:$BK|" \
			    conf/nginx_stream.conf >"$TMPD/nginx.conf"
			add_tls nginx_tls nginx -e "$TMPD/nginx_err.log" \
			    -c "$TMPD/nginx.conf"
		else
			note "nginx or libnginx-mod-stream not installed:" \
			    "nginx_tls skipped"
			P=$((P + 1))
		fi
		if [ -n "$BK" ] && command -v stunnel4 >/dev/null; then
			sed -e "s|@DIR@|$PWD|g" \
			    -e "s|127.0.0.1:7205|127.0.0.1:$P|" \
			    -e "s|127.0.0.1:7110|127.0.0.1:$BK|" \
			    conf/stunnel.conf >"$TMPD/stunnel.conf"
			add_tls stunnel_tls stunnel4 "$TMPD/stunnel.conf"
		elif [ -n "$BK" ]; then
			note "stunnel4 not installed: stunnel_tls skipped"
		fi
	fi
fi

SCENARIOS="a:1:64 b:100:1024 c:10:65536"
[ $DO_TCP = 1 ] || SCENARIOS="b:100:1024"  # the TLS rows' reference
if [ $DO_TCP = 1 ] || [ $DO_TLS = 1 ]; then
	for rep in $(seq "$REPEATS"); do
		wait_load
		echo "# echo repeat $rep/$REPEATS starts at load $(load1)" |
		    tee -a "$OUT" >&2
		for sc in $SCENARIOS; do
			IFS=: read -r tag conns size <<<"$sc"
			for s in $TCP_SERVERS; do
				name=${s%:*}; port=${s#*:}
				run_one "$tag" "$name" "$(server_pids "$name")" \
				    ./echo_load --port "$port" --conns "$conns" \
				    --size "$size" --duration "$DURATION" \
				    --warmup "$WARMUP"
			done
		done
		for s in $TLS_SERVERS; do
			name=${s%:*}; port=${s#*:}
			pids=$(server_pids "$name")
			case $name in
			nginx_tls|stunnel_tls) pids="$pids $PID_rawbk" ;;
			esac
			run_one hs "$name" "$pids" ./tls_handshake_load \
			    --port "$port" --conns "$HS_CONNS" \
			    --duration "$DURATION" --warmup "$WARMUP"
			run_one tls_b "$name" "$pids" ./echo_load --tls \
			    --port "$port" --conns 100 --size 1024 \
			    --duration "$DURATION" --warmup "$WARMUP"
		done
	done
fi
# aloopd's echo against aloop_echo is judged to 3 %, less than a
# server's rate moves from one 5 s slice to the next on a shared machine.
# So the two also run PAIRS short pairs back to back, in turn first
# (ABBA), and the summary judges the median of each pair's own ratio.
pair_port() {	# NAME: its port in TCP_SERVERS
	local s
	for s in $TCP_SERVERS; do
		[ "${s%:*}" = "$1" ] && { echo "${s#*:}"; return; }
	done
}
if [ $DO_TCP = 1 ] && [ -n "$(pair_port aloopd)" ]; then
	wait_load
	echo "# aloopd / aloop_echo pairs start at load $(load1)" |
	    tee -a "$OUT" >&2
	for sc in $SCENARIOS; do
		IFS=: read -r tag conns size <<<"$sc"
		for rep in $(seq "$PAIRS"); do
			order="aloop aloopd"
			[ $((rep % 2)) = 0 ] && order="aloopd aloop"
			for name in $order; do
				run_one "pair_$tag" "$name" \
				    "$(server_pids "$name")" ./echo_load \
				    --port "$(pair_port "$name")" \
				    --conns "$conns" --size "$size" \
				    --duration 2 --warmup 0.5
			done
		done
	done
fi
# The memory rows want fresh processes with nothing else to serve.
for s in $TCP_SERVERS $TLS_SERVERS rawbk:0; do stop_server "${s%:*}"; done

# ------------------------------------------- issue 4: idle-connection memory
# mem_one NAME TLS(0|1) N CMD...: N connections each do one 64-byte round
# trip (so lazily made state exists), then idle while VmRSS is read (of
# aloopd's master and worker, summed).  CMD "--aloopd [PLUGIN]" starts
# aloopd.
mem_one() {
	local name=$1 tls=$2 n=$3 port=$P pids rss0 rss1 rss2 ready errs per \
	    cpid
	shift 3
	P=$((P + 1))
	if [ "${1:-}" = --aloopd ]; then
		start_aloopd "$name" "$port" "${2:-echo}" || return 0
	else
		start_server "$name" "$port" "$@" || return 0
	fi
	pids=$(server_pids "$name")
	sleep 0.5
	rss0=$(rss_kib $pids)
	timeout -k 5 300 taskset -c "$CLIENT_CPU" ./echo_load --port "$port" \
	    --conns "$n" --size 64 --idle --duration 3 \
	    $([ "$tls" = 1 ] && echo --tls) >"$TMPD/mem.out" 2>&1 &
	cpid=$!
	PIDS="$PIDS $cpid"
	for _ in $(seq 1200); do
		grep -q '^ready' "$TMPD/mem.out" && break
		kill -0 "$cpid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	rss1=$(rss_kib $pids)
	wait "$cpid"
	forget_pid "$cpid"
	sleep 1
	rss2=$(rss_kib $pids)
	ready=$(sed -n 's/^ready conns=\([0-9]*\).*/\1/p' "$TMPD/mem.out")
	errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$TMPD/mem.out" | tail -1)
	per=$(awk -v a="$rss0" -v b="$rss1" -v n="${ready:-0}" \
	    'BEGIN { printf "%.2f", n ? (b - a) / n : 0 }')
	log "rep=1 scenario=mem_$([ "$tls" = 1 ] && echo tls || echo tcp)" \
	    "server=$name n=$n rss0=$rss0 rss1=$rss1 kib_per_conn=$per" \
	    "rss_after=$rss2 ready=${ready:-0} errors=${errs:-?}" \
	    "load1=$(load1)"
	stop_server "$name"
}
if [ $DO_MEM = 1 ]; then
	wait_load
	echo "# idle-connection memory starts at load $(load1)" |
	    tee -a "$OUT" >&2
	rep=1
	mem_one raw 0 "$C10K_TCP" ./raw_epoll_echo $P
	mem_one aloop 0 "$C10K_TCP" "$ALOOP_ECHO" --port $P
	[ -z "$ALOOPD" ] || mem_one aloopd 0 "$C10K_TCP" --aloopd
	[ -z "$ALOOPD" ] ||
	    mem_one aloopd_task 0 "$C10K_TCP" --aloopd echo_task
	mem_one libevent 0 "$C10K_TCP" ./libevent_echo $P
	mem_one aloop_tls 1 "$C10K_TLS" "$ALOOP_TLS_ECHO" --port $P \
	    --cert certs/cert.pem --key certs/key.pem --tls13 --no-resumption
	mem_one libevent_tls 1 "$C10K_TLS" ./libevent_tls_echo $P
fi

# ------------------------------------------- issue 14: aloopd as a proxy
# aloopd's proxy plugin against HAProxy (mode tcp) and nginx's stream
# module, each in front of the same upstreams: a raw_epoll_echo for the
# echo and TLS rows and a bulk sink for the upload.  The proxies run on
# SERVER_CPU, the upstreams beside the clients on CLIENT_CPU, so that a
# proxy's CPU (master and worker, summed) is its own work only.  Each
# proxy serves from its base port: +0 plain to the echo upstream, +1 plain
# to the sink, and for the three with their default buffers +2 TLS with
# session tickets off, +3 TLS with tickets on (TLS 1.3 by the client's
# choice, the TLS group's ECDSA P-256 certificate), both to the echo
# upstream; aloopd and HAProxy also +4, tickets off, with 100 SNI
# certificates (see make_sni_certs).
PX_SERVERS=""	# NAME:BASE:TLS
# add_proxy NAME TLS(0|1) FUNCTION [ARGS...]: FUNCTION NAME BASE TLS ARGS
# starts it on the five ports from $P.
add_proxy() {
	local name=$1 tls=$2 fn=$3 base=$P
	shift 3
	P=$((P + 5))
	"$fn" "$name" "$base" "$tls" "$@" &&
	    PX_SERVERS="$PX_SERVERS $name:$base:$tls"
}
# make_sni_certs: in $TMPD/sni, 99 ECDSA P-256 certificates for
# sniNN.example.test, each with its key (NN.crt, NN.key) and combined for
# HAProxy (crt/NN.pem), and the TLS group's localhost certificate as the
# hundredth (crt/zz-localhost.pem).  A listener's default is 00, so the
# load client's "localhost" is found among the other 99 on every
# handshake.  SNI_CERTS lists aloopd's sni entries.
SNI_CERTS=""
make_sni_certs() {
	local d=$TMPD/sni i nn
	mkdir -p "$d/crt" || return 1
	for i in $(seq 0 98); do
		nn=$(printf %02d "$i")
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -days 30 -subj "/CN=sni$nn.example.test" \
		    -addext "subjectAltName=DNS:sni$nn.example.test" \
		    -keyout "$d/$nn.key" -out "$d/$nn.crt" 2>/dev/null ||
		    return 1
		[ "$i" = 0 ] && continue
		cat "$d/$nn.crt" "$d/$nn.key" >"$d/crt/$nn.pem"
		SNI_CERTS="$SNI_CERTS{ certificate = \"$d/$nn.crt\";"
		SNI_CERTS="$SNI_CERTS key = \"$d/$nn.key\"; },"
	done
	cat certs/cert.pem certs/key.pem >"$d/crt/zz-localhost.pem"
	SNI_CERTS="$SNI_CERTS{ certificate = \"$PWD/certs/cert.pem\";"
	SNI_CERTS="$SNI_CERTS key = \"$PWD/certs/key.pem\"; }"
}
# aloopd_tls_listener NAME PORT CERT KEY TICKETS [TLS-LINE]: one more
# proxy listener of px_aloopd's list, TLS to the echo upstream.
aloopd_tls_listener() {
	cat <<-EOF
	,	{
			name = "$1";
			protocol = "proxy";
			listen = [ "127.0.0.1:$2" ];
			max_connections = 0;
			idle_timeout = 0;
			tls = {
				certificate = "$3";
				key = "$4";
				session_tickets = $5;
				${6:-}
			};
			settings = { upstream = "127.0.0.1:$PX_UP"; };
		}
	EOF
}
px_aloopd() {	# NAME BASE TLS
	local name=$1 b=$2 conf=$TMPD/$1.conf
	{
		cat <<-EOF
		daemon = {
			workers = 1;
			log_level = "warning";
			plugin_path = [ "$BUILD_DIR/plugins/.libs" ];
			shutdown_timeout = 2;
			worker_stall_timeout = 0;
		};
		listeners = (
			{
				name = "echo";
				protocol = "proxy";
				listen = [ "127.0.0.1:$b" ];
				max_connections = 0;
				idle_timeout = 0;
				settings = { upstream = "127.0.0.1:$PX_UP"; };
			},
			{
				name = "bulk";
				protocol = "proxy";
				listen = [ "127.0.0.1:$((b + 1))" ];
				max_connections = 0;
				idle_timeout = 0;
				settings = { upstream = "127.0.0.1:$PX_SINK"; };
			}
		EOF
		if [ "$3" = 1 ]; then
			aloopd_tls_listener tls_0 $((b + 2)) \
			    "$PWD/certs/cert.pem" "$PWD/certs/key.pem" false
			aloopd_tls_listener tls_1 $((b + 3)) \
			    "$PWD/certs/cert.pem" "$PWD/certs/key.pem" true
		fi
		if [ "$3" = 1 ] && [ -n "$SNI_CERTS" ]; then
			aloopd_tls_listener tls_sni $((b + 4)) \
			    "$TMPD/sni/00.crt" "$TMPD/sni/00.key" false \
			    "sni = ( $SNI_CERTS );"
		fi
		echo ");"
	} >"$conf"
	start_master "$name" "$b" "$ALOOPD" -f -c "$conf"
}
# px_haproxy NAME BASE TLS [GLOBAL-LINE [DEFAULTS-LINE...]]: HAProxy 2.6 as
# Debian runs it (master and one worker, -W), one thread, mode tcp.
px_haproxy() {
	local name=$1 b=$2 conf=$TMPD/$1.cfg
	{
		cat <<-EOF
		global
			nbthread 1
			maxconn 4096
			${4:-}
		defaults
			mode tcp
			timeout connect 10s
			timeout client 60s
			timeout server 60s
			${5:-}
			${6:-}
		listen echo
			bind 127.0.0.1:$b
			server up 127.0.0.1:$PX_UP
		listen bulk
			bind 127.0.0.1:$((b + 1))
			server sink 127.0.0.1:$PX_SINK
		EOF
		[ "$3" = 1 ] && cat <<-EOF
		listen tls_0
			bind 127.0.0.1:$((b + 2)) ssl crt $PWD/certs/combined.pem no-tls-tickets
			server up 127.0.0.1:$PX_UP
		listen tls_1
			bind 127.0.0.1:$((b + 3)) ssl crt $PWD/certs/combined.pem
			server up 127.0.0.1:$PX_UP
		EOF
		# The first crt is the default; the directory's are by SNI.
		[ "$3" = 1 ] && [ -n "$SNI_CERTS" ] && cat <<-EOF
		listen tls_sni
			bind 127.0.0.1:$((b + 4)) ssl crt $TMPD/sni/00.pem crt $TMPD/sni/crt no-tls-tickets
			server up 127.0.0.1:$PX_UP
		EOF
	} >"$conf"
	start_master "$name" "$b" haproxy -W -db -f "$conf"
}
# px_nginx NAME BASE TLS [STREAM-LINE]: nginx's stream module with its
# master and one worker.
px_nginx() {
	local name=$1 b=$2 conf=$TMPD/$1.conf
	{
		cat <<-EOF
		load_module $NGINX_STREAM;
		daemon off;
		worker_processes 1;
		pid $TMPD/$name.pid;
		error_log $TMPD/$name-error.log error;
		events { worker_connections 4096; }
		stream {
			${4:-}
			server {
				listen 127.0.0.1:$b backlog=4096;
				proxy_pass 127.0.0.1:$PX_UP;
			}
			server {
				listen 127.0.0.1:$((b + 1));
				proxy_pass 127.0.0.1:$PX_SINK;
			}
		EOF
		# nginx 1.22 leaves TLS 1.3 out by default.
		[ "$3" = 1 ] && cat <<-EOF
			ssl_protocols TLSv1.2 TLSv1.3;
			ssl_certificate $PWD/certs/cert.pem;
			ssl_certificate_key $PWD/certs/key.pem;
			server {
				listen 127.0.0.1:$((b + 2)) ssl backlog=4096;
				ssl_session_tickets off;
				proxy_pass 127.0.0.1:$PX_UP;
			}
			server {
				listen 127.0.0.1:$((b + 3)) ssl backlog=4096;
				ssl_session_tickets on;
				proxy_pass 127.0.0.1:$PX_UP;
			}
		EOF
		echo "}"
	} >"$conf"
	start_master "$name" "$b" nginx -e "$TMPD/$name-error.log" -c "$conf"
}
NGINX_STREAM=/usr/lib/nginx/modules/ngx_stream_module.so
if [ $DO_PROXY = 1 ]; then
	PX_UP=$P PX_SINK=$((P + 1))
	P=$((P + 2))
	start_server_on "$CLIENT_CPU" px_up "$PX_UP" ./raw_epoll_echo \
	    "$PX_UP" &&
	    start_server_on "$CLIENT_CPU" px_sink "$PX_SINK" "$BULK" --sink \
	    --port "$PX_SINK" || { note "no proxy upstreams: proxy rows skipped"
		DO_PROXY=0; }
fi
if [ $DO_PROXY = 1 ]; then
	command -v openssl >/dev/null && make_sni_certs &&
	    cat "$TMPD/sni/00.crt" "$TMPD/sni/00.key" >"$TMPD/sni/00.pem" || {
		SNI_CERTS=""
		note "openssl cannot make certificates: SNI rows skipped"
	}
	if [ -n "$ALOOPD" ]; then
		add_proxy aloopd 1 px_aloopd
	else
		note "no aloopd: the proxy rows have nothing to measure"
	fi
	if command -v haproxy >/dev/null; then
		add_proxy haproxy 1 px_haproxy
		add_proxy haproxy_64k 0 px_haproxy "tune.bufsize 65536"
		add_proxy haproxy_splice 0 px_haproxy "" \
		    "option splice-request" "option splice-response"
	else
		note "haproxy not installed: its proxy rows skipped" \
		    "(apt-get install haproxy)"
	fi
	if command -v nginx >/dev/null && [ -f "$NGINX_STREAM" ]; then
		add_proxy nginx 1 px_nginx
		add_proxy nginx_64k 0 px_nginx "proxy_buffer_size 64k;"
	else
		note "nginx or libnginx-mod-stream not installed: its proxy" \
		    "rows skipped (apt-get install nginx libnginx-mod-stream)"
	fi
	# How many TLS 1.3 session tickets each TLS listener sends after a
	# full handshake (s_client -msg): "off" is not none everywhere.
	rep=1
	for s in $PX_SERVERS; do
		IFS=: read -r name base tls <<<"$s"
		[ "$tls" = 1 ] && command -v openssl >/dev/null || continue
		for t in 0 1; do
			n=$( (sleep 1; echo) | timeout -k 1 5 openssl s_client \
			    -connect 127.0.0.1:$((base + 2 + t)) -tls1_3 -msg \
			    2>&1 | grep -c NewSessionTicket)
			log "rep=1 scenario=px_tickets$t server=$name tickets=$n"
		done
	done
	for rep in $(seq "$REPEATS"); do
		wait_load
		echo "# proxy repeat $rep/$REPEATS starts at load $(load1)" |
		    tee -a "$OUT" >&2
		for sc in a:1:64 b:100:1024 c:10:65536; do
			IFS=: read -r tag conns size <<<"$sc"
			for s in $PX_SERVERS; do
				IFS=: read -r name base tls <<<"$s"
				run_one "px_$tag" "$name" "$(server_pids "$name")" \
				    ./echo_load --port "$base" --conns "$conns" \
				    --size "$size" --duration "$DURATION" \
				    --warmup "$WARMUP"
			done
		done
		for s in $PX_SERVERS; do
			IFS=: read -r name base tls <<<"$s"
			CLIENT_LIMIT=300 run_one px_bulk "$name" \
			    "$(server_pids "$name")" "$BULK" --send \
			    --port $((base + 1)) --bytes "$BULK_BYTES"
		done
		for t in 0 1; do	# session tickets off, then on
			for s in $PX_SERVERS; do
				IFS=: read -r name base tls <<<"$s"
				[ "$tls" = 1 ] || continue
				run_one "px_hs$t" "$name" "$(server_pids "$name")" \
				    ./tls_handshake_load --port $((base + 2 + t)) \
				    --conns "$HS_CONNS" --duration "$DURATION" \
				    --warmup "$WARMUP"
			done
		done
		for s in $PX_SERVERS; do	# tickets off, 100 SNI certificates
			IFS=: read -r name base tls <<<"$s"
			[ "$tls" = 1 ] && [ -n "$SNI_CERTS" ] || continue
			case $name in aloopd|haproxy) ;; *) continue ;; esac
			run_one px_hs_sni "$name" "$(server_pids "$name")" \
			    ./tls_handshake_load --port $((base + 4)) \
			    --conns "$HS_CONNS" --duration "$DURATION" \
			    --warmup "$WARMUP"
		done
	done
	for s in $PX_SERVERS px_up px_sink; do stop_server "${s%%:*}"; done
fi

# ---------------------------------- issue 14: start-up and reload times
if [ $DO_START = 1 ] && [ -n "$ALOOPD" ] && [ -x "$PY" ]; then
	wait_load
	"$PY" "$SRCDIR/bench/startup.py" "$ALOOPD" "$BUILD_DIR/plugins/.libs" \
	    certs/cert.pem certs/key.pem --repeats "$REPEATS" \
	    --listeners 100 --base-port $((BASE_PORT + 200)) | tee -a "$OUT"
fi
# ------------------------- issue 10: parsing 10,000 and 100,000 listeners
if [ $DO_START = 1 ]; then
	wait_load
	timeout 300 taskset -c "$SERVER_CPU" "$BENCH_CONFIG" -r "$REPEATS" \
	    10000 100000 | tee -a "$OUT" || note "bench_config failed"
fi

# ------------------------------------------------------------------ tables
echo
awk -f "$SRCDIR/bench/summary.awk" "$OUT"
echo
echo "raw results: $OUT"
