#!/usr/bin/env bash
# Slow clients under load (#11 §3): do 1,000 slowloris, 300 slow-body and 300 slow-reader
# clients raise the p99 of normal /plaintext clients, and what does each cost in memory?
#
# Each round starts Corral fresh and measures normal clients twice with benches/churn.rs
# (CLIENTS clients, open loop at RATE req/s, /plaintext only, a fresh connection every
# REQUESTS_PER_CONN requests, latency from each request's scheduled start):
#   unloaded  alone;
#   loaded    beside benches/slow.rs holding SLOWLORIS connections that send a head a byte a
#             second, SLOW_BODY that send a head and then a 1 MB body a byte a second, and
#             SLOW_READERS that pipeline 100 requests with a 4 KB receive buffer and never
#             read (each reopened when the server closes it: at the header timeout, a 408).
# The server's resident set (VmRSS) is read before the slow clients connect and once they
# all have, SETTLE_S later; the difference over their number is the memory each costs.
# Verdicts: loaded p99 <= 2x unloaded p99; memory per slow connection, KiB.
#
# Pinning: Corral runs WORKERS (1) scheduler on SERVER_CPUS (0); churn and slow.rs both run
# on CLIENT_CPU (1). Runs hold the benchmark lock (flock on LOCK); the build does not.
# Bounded: each churn run is cut off at warm-up + duration + 36 s, slow.rs ends by itself
# after its duration and is killed (by the PID this script started) when the round ends.
#
# Usage:   benches/slow.sh
#          REPEATS=1 DURATION=5s benches/slow.sh                    # quick check
#
# Environment (default in brackets):
#   REPEATS             rounds [3]
#   DURATION, WARMUP    measured time and warm-up of each churn run: N, Ns or Nm [10s, 2s]
#   RATE                normal clients' requests/s, open loop [2000]
#   CLIENTS             normal clients [64]
#   REQUESTS_PER_CONN   requests per fresh normal connection [4]
#   SLOWLORIS, SLOW_BODY, SLOW_READERS   slow connections of each kind [1000, 300, 300]
#   SETTLE_S            seconds between the slow clients' READY and the RSS reading [3]
#   WORKERS             Corral schedulers [1]
#   SERVER_CPUS         CPUs Corral is pinned to [0]
#   CLIENT_CPU          CPU the clients are pinned to [1]
#   READY_TIMEOUT       seconds to wait for a server's first 200 [10]
#   OUT                 where results and logs go [target/bench/slow-<timestamp>]
#   LOCK                the benchmark lock file [/tmp/corral-bench.lock]
set -euo pipefail

SCRIPT_NAME=slow.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RATE=${RATE:-2000}
CLIENTS=${CLIENTS:-64}
REQUESTS_PER_CONN=${REQUESTS_PER_CONN:-4}
SLOWLORIS=${SLOWLORIS:-1000}
SLOW_BODY=${SLOW_BODY:-300}
SLOW_READERS=${SLOW_READERS:-300}
SETTLE_S=${SETTLE_S:-3}
WORKERS=${WORKERS:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
OUT=${OUT:-target/bench/slow-$(date +%Y%m%d-%H%M%S)}
LOCK=${LOCK:-/tmp/corral-bench.lock}

readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly EXPECTED_BODY='Hello, World!'
readonly IO_TIMEOUT_S=5

for name in REPEATS RATE CLIENTS REQUESTS_PER_CONN SLOWLORIS SLOW_BODY SLOW_READERS SETTLE_S \
    WORKERS READY_TIMEOUT; do
    is_count "${!name}" || die "$name must be a positive integer, got '${!name}'"
done
duration_s=$(seconds DURATION "$DURATION")
warmup_s=$(seconds WARMUP "$WARMUP" zero)
for tool in cargo curl taskset timeout ss python3 flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
mkdir -p "$OUT"
init_server_handling
slow_pid=
stop_slow() {
    [[ -n $slow_pid ]] || return 0
    kill "$slow_pid" 2>/dev/null || true
    wait "$slow_pid" 2>/dev/null || true
    slow_pid=
}
trap 'stop_slow; stop_server' EXIT

build_corral "$OUT"
for bench in churn slow; do
    build_bench_client "$bench" "$OUT"
done

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

churn_args=(--clients "$CLIENTS" --requests-per-conn "$REQUESTS_PER_CONN" --cpu-share 0
    --duration "$DURATION" --warmup "$WARMUP" --timeout "${IO_TIMEOUT_S}s" --workers 1
    --rate "$RATE")
run_bound_s=$((warmup_s + duration_s + IO_TIMEOUT_S + 30))
slow_total=$((SLOWLORIS + SLOW_BODY + SLOW_READERS))

churn() { # port output: sets `result`
    timeout --kill-after=5s "${run_bound_s}s" taskset -c "$CLIENT_CPU" "$OUT/churn" \
        --addr "$HOST:$1" "${churn_args[@]}" >"$2" 2>&1 9>&- || die "churn failed; see $2"
    result=$(grep '^RESULT ' "$2" | tail -n 1) || die "no RESULT line in $2"
}

echo
echo "== $REPEATS round(s): $CLIENTS normal clients at $RATE req/s alone, then beside" \
    "$SLOWLORIS slowloris, $SLOW_BODY slow-body and $SLOW_READERS slow-reader connections"
echo "   Corral: $WORKERS worker(s) on CPUs $SERVER_CPUS; clients on CPU $CLIENT_CPU;" \
    "commit $commit; output in $OUT"
exec 9>"$LOCK" || die "cannot open the benchmark lock $LOCK"
if ! flock -n 9; then
    echo "== waiting for the benchmark lock $LOCK (another benchmark holds it)"
    flock 9 || die "cannot take the benchmark lock $LOCK"
fi

results=$OUT/results.tsv # round unloaded_p99 loaded_p99 rss_before rss_with errors_unloaded errors_loaded
: >"$results"
for ((round = 1; round <= REPEATS; round++)); do
    port=$(free_port)
    log=$OUT/round$round.log
    cmd=("$corral_bin" --listen "$HOST:$port" --workers "$WORKERS")
    echo "${cmd[*]}" >"$log"
    taskset -c "$SERVER_CPUS" "${cmd[@]}" >>"$log" 2>&1 9>&- &
    server_pid=$!
    wait_ready Corral "http://$HOST:$port/plaintext" "$log"
    churn "$port" "$OUT/round$round-unloaded.churn"
    unloaded=$result
    rss_before=$(rss_kib "$server_pid")
    hold_s=$((SETTLE_S + warmup_s + duration_s + 15))
    : >"$OUT/round$round.slow" # exists before the READY polling below looks at it
    taskset -c "$CLIENT_CPU" "$OUT/slow" --addr "$HOST:$port" --slowloris "$SLOWLORIS" \
        --slow-body "$SLOW_BODY" --slow-readers "$SLOW_READERS" --duration "${hold_s}s" \
        >>"$OUT/round$round.slow" 2>&1 9>&- &
    slow_pid=$!
    for ((i = 0; i < 300; i++)); do # up to 30 s for every slow connection to open
        grep -q '^READY' "$OUT/round$round.slow" && break
        running "$slow_pid" || die "slow.rs exited early; see $OUT/round$round.slow"
        sleep 0.1
    done
    grep -q '^READY' "$OUT/round$round.slow" || die "slow.rs never got READY"
    sleep "$SETTLE_S" # the measurement window after READY, not a synchronisation
    rss_with=$(rss_kib "$server_pid")
    churn "$port" "$OUT/round$round-loaded.churn"
    loaded=$result
    curl -s --max-time 2 -o "$OUT/round$round.metrics" "http://$HOST:$port/metrics" || true
    stop_slow
    stop_server
    echo "$round $(field cheap_p99_us "$unloaded") $(field cheap_p99_us "$loaded") $rss_before" \
        "$rss_with $(field errors "$unloaded") $(field errors "$loaded")" >>"$results"
    printf 'round %-3s /plaintext p99 alone %7s µs, beside slow clients %7s µs   RSS %s -> %s KiB   errors %s, %s\n' \
        "$round" "$(field cheap_p99_us "$unloaded")" "$(field cheap_p99_us "$loaded")" \
        "$rss_before" "$rss_with" "$(field errors "$unloaded")" "$(field errors "$loaded")"
    sleep 1
done
exec 9>&-

col_median() { # column number of results.tsv
    # shellcheck disable=SC2046 # one number per round, split on purpose
    median %.10g $(awk -v c="$1" '{ print $c }' "$results")
}
unloaded_med=$(col_median 2)
loaded_med=$(col_median 3)
per_conn=$(awk -v n="$slow_total" '{ print ($5 - $4) / n }' "$results" | sort -g |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo
echo "== medians over $REPEATS round(s)"
awk -v a="$unloaded_med" -v b="$loaded_med" -v m="$per_conn" -v n="$slow_total" 'BEGIN {
    printf "/plaintext p99: alone %.0f µs, beside %d slow connections %.0f µs: %.2fx (goal <= 2: %s)\n", \
        a, n, b, b / a, (b <= 2 * a) ? "met" : "NOT met"
    printf "server memory per slow connection: %.1f KiB\n", m
}'
echo "per-round figures: $results (round unloaded_p99_us loaded_p99_us rss_before_kib" \
    "rss_with_kib errors_unloaded errors_loaded); churn and slow.rs output, /metrics, logs: $OUT"
