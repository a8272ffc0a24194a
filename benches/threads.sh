#!/usr/bin/env bash
# Where a Corral server's CPU goes, thread by thread, under one load: CPU µs per request and
# context switches per request of each of its threads (the schedulers, the offload pool,
# the watchdog), from /proc/PID/task/*/{stat,status} before and after the run. For fresh
# connections it showed what the acceptor thread cost beside the scheduler (session 6:
# 11.3 µs of 43 µs per connection); since session 9 the schedulers accept themselves.
#
# Usage:   benches/threads.sh                                   fresh connections (ab)
#          LOAD=keepalive URL_PATH=/plaintext benches/threads.sh     wrk -c1024
#
# Environment (default in brackets):
#   LOAD         fresh (ab -n N -c C, a new connection per request) or keepalive (wrk) [fresh]
#   URL_PATH     path requested [/static/4k.txt for fresh, /plaintext for keepalive]
#   N, C         ab's requests and concurrency [40000, 10000]
#   CONNS, DURATION  wrk's connections and seconds [1024, 8]
#   WORKERS      Corral's --workers [1]; SERVER_CPU [0]; CLIENT_CPU [1]
# The server runs on SERVER_CPU, the client on CLIENT_CPU; a warm-up of a quarter of the load
# runs first. Takes the benchmark lock; stops only the server it started.
set -euo pipefail
SCRIPT_NAME=threads.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LOAD=${LOAD:-fresh}
case $LOAD in
    fresh) URL_PATH=${URL_PATH:-/static/4k.txt} ;;
    keepalive) URL_PATH=${URL_PATH:-/plaintext} ;;
    *) die "LOAD must be fresh or keepalive, got '$LOAD'" ;;
esac
N=${N:-40000}
C=${C:-10000}
CONNS=${CONNS:-1024}
DURATION=${DURATION:-8}
WORKERS=${WORKERS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
LOCK=${LOCK:-/tmp/corral-bench.lock}
LOCK_WAIT=${LOCK_WAIT:-3600}
HOST=127.0.0.1
for v in N C CONNS DURATION WORKERS; do is_count "${!v}" || die "$v must be a positive integer"; done
for tool in cargo curl taskset ss flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
case $LOAD in
    fresh) command -v ab >/dev/null || die "'ab' not found (apt-get install -y apache2-utils)" ;;
    keepalive) command -v wrk >/dev/null || die "'wrk' not found (apt-get install -y wrk)" ;;
esac

echo "== cargo build --release --features cli"
cargo build --release --features cli -q
bin=${CARGO_TARGET_DIR:-target}/release/corral

load() { # requests-or-seconds scale (1 = the measured run, 4 = a quarter for the warm-up)
    case $LOAD in
        fresh)
            taskset -c "$CLIENT_CPU" ab -r -q -s 30 -n "$((N / $1))" -c "$C" \
                "http://$HOST:$port$URL_PATH" 2>&1 | grep -E "Complete requests|Failed|Requests per"
            ;;
        keepalive)
            taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$((DURATION / $1 + 1))s" \
                "http://$HOST:$port$URL_PATH" | grep -E "requests in|Requests/sec"
            ;;
    esac
}

# thread name, voluntary and involuntary switches, utime+stime ticks; one line per thread
snapshot() {
    local t
    for t in /proc/"$server_pid"/task/*; do
        { read -r comm <"$t/comm"; } 2>/dev/null || continue
        awk -v comm="$comm" -v tid="${t##*/}" '
            /^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 }
            END { printf "%s %s %d %d", tid, comm, v, n }' "$t/status"
        awk '{ print " " $14 + $15 }' "$t/stat"
    done
}

exec 9>>"$LOCK"
init_server_handling
ulimit -n "$(ulimit -Hn)"
port=$(free_port)
take_lock
taskset -c "$SERVER_CPU" "$bin" --listen "$HOST:$port" --workers "$WORKERS" >/dev/null 2>&1 9>&- &
server_pid=$!
for _ in {1..100}; do
    curl -sf "http://$HOST:$port/plaintext" >/dev/null && break
    sleep 0.1
done
echo "== warm-up"
load 4
before=$(snapshot)
echo "== measured: $LOAD $URL_PATH on $WORKERS worker(s), CPU $SERVER_CPU; client CPU $CLIENT_CPU"
out=$(load 1)
echo "$out"
after=$(snapshot)
stop_server
requests=$(awk '/Complete requests/ { print $3 } /requests in/ { print $1 }' <<<"$out")
[[ -n $requests && $requests -gt 0 ]] || die "no request count in the client's output"
tick_us=$((1000000 / $(getconf CLK_TCK)))
echo
echo "thread            CPU µs/req   switches/req (voluntary + involuntary)"
join <(sort <<<"$before") <(sort <<<"$after") | awk -v req="$requests" -v tick="$tick_us" '
    { cpu = ($9 - $5) * tick / req; sw = ($7 - $3 + $8 - $4) / req
      if (cpu > 0 || sw > 0.001) { printf "%-16s %11.2f   %6.3f\n", $2, cpu, sw; total += cpu } }
    END { printf "%-16s %11.2f\n", "all", total }'
