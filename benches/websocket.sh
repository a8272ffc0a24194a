#!/usr/bin/env bash
# Memory per idle WebSocket: N WebSockets on the demo's /ws?topic=T, each having sent one
# frame and had it back, then silent; the server's RSS is read, one POST /publish must reach
# all N, and every client must receive it. Two modes:
#   hibernate  the default config: an idle callback WebSocket gives up its coroutine, and
#              its ward holds the bare socket;
#   awake      timeouts.hibernate_after_ms = 0: each keeps its coroutine, parked in wait_io;
#   keepalive  the baseline: N plain keep-alive connections, one GET /plaintext each, then
#              idle (they hibernate after timeouts.hibernate_after_ms, 1 s: SETTLE > 1 s).
# Server memory per WebSocket = (RSS with N open - RSS before) / N. Each (mode, N) starts a
# fresh `corral` (release, mimalloc), pinned to SERVER_CPUS; the client (benches/wsidle.rs)
# runs on CLIENT_CPU. Runs hold the benchmark lock (flock on LOCK); the build does not.
#
# Usage:   benches/websocket.sh
#          NS="2000 5000" MODES=hibernate benches/websocket.sh
#
# Environment (default in brackets):
#   NS             connection counts, each at most 18000 (a process holds 20,000 files) [2000 5000]
#   MODES          keepalive, hibernate, awake ["keepalive hibernate awake"]
#   SETTLE         pause between "all N ready" and reading RSS: the wards trim the heap 100 ms
#                  after the last arrival; keep-alive connections hibernate after 1 s [3s]
#   SERVER_CPUS    [0]      CLIENT_CPU [1]      READY_TIMEOUT seconds [10]
#   LOCK           [/tmp/corral-bench.lock]
#   OUT            [target/bench/websocket-<timestamp>]
set -euo pipefail

SCRIPT_NAME=websocket.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1
NS=${NS:-2000 5000}
MODES=${MODES:-keepalive hibernate awake}
SETTLE=${SETTLE:-3s}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
LOCK=${LOCK:-/tmp/corral-bench.lock}
OUT=${OUT:-target/bench/websocket-$(date +%Y%m%d-%H%M%S)}
readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly EXPECTED_BODY='Hello, World!'
readonly STOP_GRACE_S=10

settle_s=$(seconds SETTLE "$SETTLE" zero)
for n in $NS; do
    is_count "$n" && ((n <= 18000)) || die "NS must be integers from 1 to 18000, got '$n'"
done
for m in $MODES; do
    [[ $m == hibernate || $m == awake || $m == keepalive ]] ||
        die "unknown mode '$m' (know: hibernate, awake, keepalive)"
done
for tool in cargo curl taskset timeout ss flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done

mkdir -p "$OUT"
init_server_handling
client_pid=
stop_client() {
    [[ -n $client_pid ]] || return 0
    kill "$client_pid" 2>/dev/null || true
    wait "$client_pid" 2>/dev/null || true
    client_pid=
}
trap 'stop_client; stop_server' EXIT

build_corral "$OUT"
build_bench_client wsidle "$OUT"
printf '[timeouts]\nhibernate_after_ms = 0\n' >"$OUT/awake.toml"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

exec 9>"$LOCK" || die "cannot open the benchmark lock $LOCK"
if ! flock -n 9; then
    echo "== waiting for the benchmark lock $LOCK"
    flock 9 || die "cannot take the benchmark lock $LOCK"
fi

echo "== commit $commit; Corral --workers 2 on CPUs $SERVER_CPUS, client on CPU $CLIENT_CPU"
printf '%-10s %6s %10s %10s %9s %9s %s\n' mode n rss_before rss_with KiB/conn reached received
for mode in $MODES; do
    for n in $NS; do
        port=$(free_port)
        log=$OUT/$mode-$n.log
        cmd=("$corral_bin" --listen "$HOST:$port" --workers 2)
        [[ $mode == awake ]] && cmd+=(--config "$OUT/awake.toml")
        echo "${cmd[*]}" >"$log"
        taskset -c "$SERVER_CPUS" "${cmd[@]}" >>"$log" 2>&1 9>&- &
        server_pid=$!
        wait_ready Corral "http://$HOST:$port/plaintext" "$log"
        rss_before=$(rss_kib "$server_pid")
        fifo=$OUT/$mode-$n.go
        rm -f "$fifo" && mkfifo "$fifo"
        exec 8<>"$fifo"
        out=$OUT/$mode-$n.client
        extra=()
        [[ $mode == keepalive ]] && extra=(--keepalive)
        timeout --kill-after=5s 150s taskset -c "$CLIENT_CPU" "$OUT/wsidle" "${extra[@]}" \
            --addr "$HOST:$port" --n "$n" --topic idle --deadline-s 120 <"$fifo" >"$out" 2>&1 9>&- &
        client_pid=$!
        for ((i = 0; i < 1200; i++)); do # up to 120 s for N handshakes
            grep -q '^ready' "$out" && break
            running "$client_pid" || die "wsidle exited early; see $out"
            sleep 0.1
        done
        grep -q '^ready' "$out" || die "wsidle never got ready; see $out"
        sleep "$settle_s" # the measurement window after ready, not a synchronisation
        rss_with=$(rss_kib "$server_pid")
        reached=-
        [[ $mode == keepalive ]] ||
            reached=$(curl -s --max-time 10 -d 'wake up' "http://$HOST:$port/publish?topic=idle")
        echo check >&8
        wait "$client_pid" || die "wsidle failed; see $out"
        client_pid=
        exec 8>&-
        received=$(awk '/^received/ { print $2 }' "$out")
        stop_server
        awk -v m="$mode" -v n="$n" -v a="$rss_before" -v b="$rss_with" -v r="$reached" \
            -v k="$received" 'BEGIN { printf "%-10s %6d %10d %10d %9.2f %9s %s\n", m, n, a, b, (b - a) / n, r, k }'
    done
done
