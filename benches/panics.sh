#!/usr/bin/env bash
# Panics under load (#11 §3): 10,000 panicking requests among 1,000,000.
#
# Each round starts Corral fresh (the demo app, whose GET /panic panics), waits until
# GET /plaintext answers, and runs the client (benches/panics.rs): CONNECTIONS keep-alive
# connections in a closed loop, REQUESTS requests in all, every PANIC_EVERY-th one GET /panic
# and the rest GET /plaintext. A panic must be answered 500 with Connection: close and the
# connection closed (the client reconnects); every other request must get 200 Hello, World!.
# Meanwhile the script samples the server's resident set (VmRSS) every SAMPLE_S seconds.
# After the client, it reads corral_handler_panics_total from /metrics and stops the server.
#
# Per round and as medians: throughput, RSS after the warm-up (the first sample once
# WARMUP_S have passed), the largest and the last sample, and the verdicts:
#   - every non-panicking request answered 200 (wrong = errors = 0, ok = requests - panics)
#   - every panic answered 500 and closed, and counted: corral_handler_panics_total = panics
#   - RSS flat after warm-up: last - warm < RSS_SLACK_KIB
#
# Pinning: Corral runs WORKERS (1) scheduler on SERVER_CPUS (0), the client on CLIENT_CPU (1).
# Runs hold the benchmark lock (flock on LOCK); the build does not. Bounded: the client stops
# sending after DEADLINE_S, each of its reads or writes waits at most 5 s, and it is cut off
# at DEADLINE_S + 30 s; the sampler stops with the server. Only PIDs this script started are
# signalled.
#
# Usage:   benches/panics.sh
#          REPEATS=1 REQUESTS=200000 benches/panics.sh     # quick check
#
# Environment (default in brackets):
#   REPEATS         rounds [3]
#   REQUESTS        requests per round [1000000]
#   PANIC_EVERY     one request in this many panics [100]
#   CONNECTIONS     client connections, one thread each [16]
#   WORKERS         Corral schedulers [1]
#   SERVER_CPUS     CPUs Corral is pinned to [0]
#   CLIENT_CPU      CPU the client is pinned to [1]
#   WARMUP_S        seconds before the warm RSS is taken [5]
#   SAMPLE_S        seconds between RSS samples [1]
#   RSS_SLACK_KIB   RSS growth after warm-up still called flat, KiB [4096]
#   DEADLINE_S      the client sends no request after this many seconds [300]
#   READY_TIMEOUT   seconds to wait for a server's first 200 [10]
#   OUT             where results and logs go [target/bench/panics-<timestamp>]
#   LOCK            the benchmark lock file [/tmp/corral-bench.lock]
set -euo pipefail

SCRIPT_NAME=panics.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
REPEATS=${REPEATS:-3}
REQUESTS=${REQUESTS:-1000000}
PANIC_EVERY=${PANIC_EVERY:-100}
CONNECTIONS=${CONNECTIONS:-16}
WORKERS=${WORKERS:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WARMUP_S=${WARMUP_S:-5}
SAMPLE_S=${SAMPLE_S:-1}
RSS_SLACK_KIB=${RSS_SLACK_KIB:-4096}
DEADLINE_S=${DEADLINE_S:-300}
READY_TIMEOUT=${READY_TIMEOUT:-10}
OUT=${OUT:-target/bench/panics-$(date +%Y%m%d-%H%M%S)}
LOCK=${LOCK:-/tmp/corral-bench.lock}

readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly EXPECTED_BODY='Hello, World!'

for name in REPEATS REQUESTS PANIC_EVERY CONNECTIONS WORKERS WARMUP_S SAMPLE_S RSS_SLACK_KIB \
    DEADLINE_S READY_TIMEOUT; do
    is_count "${!name}" || die "$name must be a positive integer, got '${!name}'"
done
for tool in cargo curl taskset timeout ss python3 flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
mkdir -p "$OUT"
init_server_handling
sampler_pid=
stop_sampler() {
    [[ -n $sampler_pid ]] || return 0
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=
}
trap 'stop_sampler; stop_server' EXIT

build_corral "$OUT"
build_bench_client panics "$OUT"
client_bin=$OUT/panics

rss_kib() { # VmRSS of pid, KiB (empty once it is gone)
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

echo
echo "== $REPEATS round(s): $REQUESTS requests, every ${PANIC_EVERY}th GET /panic, over" \
    "$CONNECTIONS connections"
echo "   Corral: $WORKERS worker(s) on CPUs $SERVER_CPUS; client on CPU $CLIENT_CPU;" \
    "commit $commit; output in $OUT"
exec 9>"$LOCK" || die "cannot open the benchmark lock $LOCK"
if ! flock -n 9; then
    echo "== waiting for the benchmark lock $LOCK (another benchmark holds it)"
    flock 9 || die "cannot take the benchmark lock $LOCK"
fi

results=$OUT/results.tsv # round rps warm_kib max_kib last_kib ok panics wrong errors counted
: >"$results"
expected_panics=$((REQUESTS / PANIC_EVERY))
for ((round = 1; round <= REPEATS; round++)); do
    port=$(free_port)
    log=$OUT/round$round.log
    cmd=("$corral_bin" --listen "$HOST:$port" --workers "$WORKERS")
    echo "${cmd[*]}" >"$log"
    taskset -c "$SERVER_CPUS" "${cmd[@]}" >>"$log" 2>&1 9>&- &
    server_pid=$!
    wait_ready Corral "http://$HOST:$port/plaintext" "$log"
    samples=$OUT/round$round.rss # seconds since start, KiB
    (
        t=0
        while kib=$(rss_kib "$server_pid") && [[ -n $kib ]]; do
            echo "$t $kib"
            sleep "$SAMPLE_S"
            t=$((t + SAMPLE_S))
        done
    ) >"$samples" 9>&- &
    sampler_pid=$!
    timeout --kill-after=5s "$((DEADLINE_S + 30))s" taskset -c "$CLIENT_CPU" "$client_bin" \
        --addr "$HOST:$port" --requests "$REQUESTS" --panic-every "$PANIC_EVERY" \
        --connections "$CONNECTIONS" --deadline "${DEADLINE_S}s" >"$OUT/round$round.client" 2>&1 9>&- ||
        die "the client failed; see $OUT/round$round.client"
    counted=$(curl -s --max-time 2 "http://$HOST:$port/metrics" |
        awk '$1 == "corral_handler_panics_total" { print $2 }')
    stop_sampler
    stop_server
    result=$(grep '^RESULT ' "$OUT/round$round.client" | tail -n 1) ||
        die "no RESULT line in $OUT/round$round.client"
    read -r warm max last < <(awk -v w="$WARMUP_S" '
        $1 >= w && warm == "" { warm = $2 } { if ($2 > max) max = $2; last = $2 }
        END { print (warm == "" ? last : warm), max, last }' "$samples")
    row="$round $(field rps "$result") $warm $max $last $(field ok "$result")"
    row+=" $(field panics_answered "$result") $(field wrong "$result") $(field errors "$result") ${counted:-?}"
    echo "$row" >>"$results"
    printf 'round %-3s rps %9s   RSS warm %7s KiB, max %7s, last %7s   ok %8s   panics %6s (counted %s)   wrong %s   errors %s\n' \
        "$round" "$(field rps "$result")" "$warm" "$max" "$last" "$(field ok "$result")" \
        "$(field panics_answered "$result")" "${counted:-?}" "$(field wrong "$result")" \
        "$(field errors "$result")"
    sleep 1
done
exec 9>&-

col_median() { # column number of results.tsv
    # shellcheck disable=SC2046 # one number per round, split on purpose
    median %.10g $(awk -v c="$1" '{ print $c }' "$results")
}
echo
echo "== medians over $REPEATS round(s)"
printf 'rps %s   RSS warm %s KiB, max %s KiB, last %s KiB\n' "$(col_median 2)" "$(col_median 3)" \
    "$(col_median 4)" "$(col_median 5)"
echo
echo "== verdicts, every round"
awk -v req="$REQUESTS" -v want="$expected_panics" -v slack="$RSS_SLACK_KIB" '
    { all_answered += ($6 == req - want && $8 == 0 && $9 == 0)
      panics_ok += ($7 == want && $10 == want)
      flat += ($5 - $3 < slack); n++ }
    END {
        printf "every other request answered 200:                 %d of %d rounds\n", all_answered, n
        printf "every panic answered 500, closed and counted (%d): %d of %d rounds\n", want, panics_ok, n
        printf "RSS flat after warm-up (last - warm < %d KiB):   %d of %d rounds\n", slack, flat, n
    }' "$results"
echo "per-round figures: $results (round rps warm_kib max_kib last_kib ok panics wrong errors" \
    "counted); RSS samples, client output and server logs: $OUT"
