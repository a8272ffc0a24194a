#!/usr/bin/env bash
# Admission control at twice capacity (#11 §3): Corral with and without
# limits.max_queue_delay_ms under an open-loop load of 2x what it can serve.
#
# The load is benches/churn.rs: CLIENTS clients, each opening a fresh connection for
# REQUESTS_PER_CONN requests, CPU_SHARE of them GET /cpu?us=CPU_US and the rest GET /plaintext
# (90/10 by default). Each round runs three cases, each on a fresh server:
#
#   capacity  closed loop (every client sends as soon as its answer is in), admission control
#             off: the throughput Corral sustains on this mix, its capacity
#   off       open loop at OVERLOAD x the calibrated capacity (Poisson arrivals, latency from
#             each request's scheduled start), limits.max_queue_delay_ms = 0
#   on        the same load with limits.max_queue_delay_ms = MAX_QUEUE_DELAY_MS
#
# The open-loop rate is fixed before the rounds by one closed-loop calibration run (the same as
# the `capacity` case). churn times and counts 200 answers only, so its throughput and latency
# are those of *admitted* requests; 503s (shed) are counted per route apart. At the end: every
# run's figures, each case's medians over the rounds, and the verdicts:
#   - on: admitted p99 (all routes) <= TARGET_P99_MS
#   - on: admitted throughput >= 90% of the capacity median
#   - off: admitted p99 against on's (without admission control the queue grows all run, so
#     the p99 is of the order of the run's length; DURATION=20s roughly doubles it)
# and how many /plaintext and /cpu requests each case shed (cheap routes are never shed).
#
# Pinning: Corral runs WORKERS (1) scheduler on SERVER_CPUS (0), the load generator one may
# worker on CLIENT_CPU (1): separate cores on the 2-core development box. Server threads that
# are not schedulers (acceptor, ward, timers) share the server's core.
#
# Measured runs hold the benchmark lock (flock on LOCK) from the first server start to the last
# stop, so two benchmarks never overlap; the build does not take it. Each run also reports the
# CPU time other processes used meanwhile (other_cpu_s: all CPUs' busy time from /proc/stat less
# this script's children's; a build nearby adds seconds, so read such a run with care).
#
# Bounded: each churn run is cut off at warm-up + duration + 36 s, each server is stopped
# (SIGTERM, then SIGKILL after 5 s) by the PID this script started; nothing else is signalled.
#
# Usage:   benches/overload.sh
#          REPEATS=1 DURATION=5s benches/overload.sh                  # quick check
#          MAX_QUEUE_DELAY_MS=20 TARGET_P99_MS=100 benches/overload.sh
#
# Environment (default in brackets):
#   REPEATS              rounds [3]
#   CASES                which cases each round runs, of: capacity off on [all three]; the
#                        verdicts need all three (e.g. CASES=off DURATION=20s shows the growth)
#   DURATION, WARMUP     measured time and warm-up of each run: N, Ns or Nm [10s, 2s]
#   OVERLOAD             offered load of the open-loop cases, times the capacity [2]
#   MAX_QUEUE_DELAY_MS   limits.max_queue_delay_ms of the `on` case [10]
#   TARGET_P99_MS        the admitted p99 the `on` case must stay under [50]
#   CLIENTS              concurrent clients [1024]: enough that one client's next request is
#                        rarely due before its previous answer (each has one in flight)
#   REQUESTS_PER_CONN    requests per fresh connection [4]
#   CPU_SHARE, CPU_US    share of /cpu requests and their CPU time, µs [0.10, 2000]
#   SEED                 route-choice and arrival seed, the same for every run [1]
#   WORKERS              Corral schedulers [1]
#   SERVER_CPUS          CPUs Corral is pinned to [0]
#   CLIENT_CPU           CPU the load generator is pinned to [1]
#   READY_TIMEOUT        seconds to wait for a server's first 200 [10]
#   OUT                  where results and logs go [target/bench/overload-<timestamp>]
#   LOCK                 the benchmark lock file [/tmp/corral-bench.lock]
set -euo pipefail

SCRIPT_NAME=overload.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
OVERLOAD=${OVERLOAD:-2}
MAX_QUEUE_DELAY_MS=${MAX_QUEUE_DELAY_MS:-10}
TARGET_P99_MS=${TARGET_P99_MS:-50}
CLIENTS=${CLIENTS:-1024}
REQUESTS_PER_CONN=${REQUESTS_PER_CONN:-4}
CPU_SHARE=${CPU_SHARE:-0.10}
CPU_US=${CPU_US:-2000}
SEED=${SEED:-1}
WORKERS=${WORKERS:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
OUT=${OUT:-target/bench/overload-$(date +%Y%m%d-%H%M%S)}
LOCK=${LOCK:-/tmp/corral-bench.lock}

readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly EXPECTED_BODY='Hello, World!'
readonly IO_TIMEOUT_S=5 # churn --timeout: the longest wait for one read or write
CASES=${CASES:-capacity off on}

# ---- settings ------------------------------------------------------------------------------

for name in REPEATS CLIENTS REQUESTS_PER_CONN WORKERS READY_TIMEOUT MAX_QUEUE_DELAY_MS TARGET_P99_MS; do
    is_count "${!name}" || die "$name must be a positive integer, got '${!name}'"
done
[[ $CPU_US =~ ^[0-9]+$ ]] || die "CPU_US must be a whole number of µs, got '$CPU_US'"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a whole number, got '$SEED'"
[[ $CPU_SHARE =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "CPU_SHARE must be from 0 to 1, got '$CPU_SHARE'"
[[ $OVERLOAD =~ ^[0-9]+(\.[0-9]+)?$ && ! $OVERLOAD =~ ^0+(\.0+)?$ ]] ||
    die "OVERLOAD must be a positive number, got '$OVERLOAD'"
for case in $CASES; do
    [[ $case == capacity || $case == off || $case == on ]] ||
        die "unknown case '$case' in CASES (know: capacity off on)"
done
[[ -n ${CASES// /} ]] || die "CASES is empty"
duration_s=$(seconds DURATION "$DURATION")
warmup_s=$(seconds WARMUP "$WARMUP" zero)

for tool in cargo curl taskset timeout ss python3 flock getconf; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
mkdir -p "$OUT"
init_server_handling

# One config file per case: only limits.max_queue_delay_ms differs (0 = off).
printf '[limits]\nmax_queue_delay_ms = 0\n' >"$OUT/off.toml"
printf '[limits]\nmax_queue_delay_ms = %s\n' "$MAX_QUEUE_DELAY_MS" >"$OUT/on.toml"
config_of() { # case
    case $1 in
        on) echo "$OUT/on.toml" ;;
        *) echo "$OUT/off.toml" ;;
    esac
}

start_server() { # case port log
    local cmd=("$corral_bin" --listen "$HOST:$2" --workers "$WORKERS" --config "$(config_of "$1")")
    echo "${cmd[*]}" >"$3"
    taskset -c "$SERVER_CPUS" "${cmd[@]}" >>"$3" 2>&1 9>&- &
    server_pid=$!
}

# ---- build ---------------------------------------------------------------------------------

build_corral "$OUT"
build_bench_client churn "$OUT"
churn_bin=$OUT/churn

# ---- one run -------------------------------------------------------------------------------

churn_args=(--clients "$CLIENTS" --requests-per-conn "$REQUESTS_PER_CONN" --cpu-share "$CPU_SHARE"
    --cpu-us "$CPU_US" --duration "$DURATION" --warmup "$WARMUP" --timeout "${IO_TIMEOUT_S}s"
    --workers 1 --seed "$SEED")
# churn exits by itself after warm-up + duration + timeout + 1 s; this is the outer bound.
run_bound_s=$((warmup_s + duration_s + IO_TIMEOUT_S + 30))

CLK_TCK=$(getconf CLK_TCK) || die "getconf CLK_TCK failed"
readonly CLK_TCK
busy_s() { # busy time of all CPUs so far (/proc/stat: all but idle and iowait), seconds
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    awk -v t="$((user + nice + system + irq + softirq + steal))" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.3f\n", t / hz }'
}
children_s() { # REPLY = user + system time of this shell's reaped children so far, seconds
    times >"$OUT/.times"
    REPLY=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] }
                           printf "%.3f\n", s }' "$OUT/.times")
}

# Sets `result` (churn's RESULT line) and `other_cpu`. `rate` empty: closed loop.
measure() { # case name rate
    local case=$1 name=$2 rate=$3 port log churn_out status=0 ours0 busy0 extra=()
    port=$(free_port)
    log="$OUT/$name.log"
    churn_out="$OUT/$name.churn"
    [[ -z $rate ]] || extra=(--rate "$rate")
    children_s
    ours0=$REPLY busy0=$(busy_s)
    start_server "$case" "$port" "$log"
    wait_ready "Corral ($case)" "http://$HOST:$port/plaintext" "$log" "" Corral
    timeout --kill-after=5s "${run_bound_s}s" \
        taskset -c "$CLIENT_CPU" "$churn_bin" --addr "$HOST:$port" "${churn_args[@]}" "${extra[@]}" \
        >"$churn_out" 2>&1 9>&- || status=$?
    curl -s --max-time 2 -o "$OUT/$name.metrics" "http://$HOST:$port/metrics" || true
    stop_server
    children_s
    other_cpu=$(awk -v b="$(busy_s)" -v a="$busy0" -v o="$REPLY" -v n="$ours0" \
        'BEGIN { printf "%.2f\n", (b - a) - (o - n) }')
    ((status == 0)) || die "churn ($name) failed (exit status $status); see $churn_out"
    result=$(grep '^RESULT ' "$churn_out" | tail -n 1) || die "no RESULT line in $churn_out"
    sleep 1 # let the closed connections' FINs settle before the next server starts
}

# ---- the measured runs, under the benchmark lock -------------------------------------------

echo
echo "== $REPEATS round(s) of: capacity (closed loop), off and on (open loop at ${OVERLOAD}x it);"
echo "   $CLIENTS clients, $REQUESTS_PER_CONN requests per connection, $CPU_SHARE of them /cpu?us=$CPU_US;"
echo "   warm-up $WARMUP, measured $DURATION; on: limits.max_queue_delay_ms = $MAX_QUEUE_DELAY_MS"
echo "   Corral: $WORKERS worker(s) on CPUs $SERVER_CPUS; load generator: 1 worker on CPU $CLIENT_CPU"
echo "   commit $commit (binaries copied into OUT); output in $OUT"

exec 9>"$LOCK" || die "cannot open the benchmark lock $LOCK"
if ! flock -n 9; then
    echo "== waiting for the benchmark lock $LOCK (another benchmark holds it)"
    flock 9 || die "cannot take the benchmark lock $LOCK"
fi
echo "== holding the benchmark lock $LOCK"

measure capacity calibration ""
capacity0=$(field rps "$result")
rate=$(awk -v c="$capacity0" -v f="$OVERLOAD" 'BEGIN { printf "%.0f\n", c * f }')
echo "   calibration: capacity $capacity0 req/s, so the open-loop cases offer $rate req/s"

readonly FIELDS="rps all_p50_us all_p99_us cheap_p99_us cpu_p99_us lag_p99_us cheap_ok cpu_ok
    cheap_503 cpu_503 unsent"
readonly COLUMNS="$FIELDS other_cpu_s"
results=$OUT/results.tsv # one line per run: case round, then COLUMNS
: >"$results"
for ((round = 1; round <= REPEATS; round++)); do
    set_round_order "$round" $CASES
    for case in "${order[@]}"; do
        case_rate=$rate
        [[ $case != capacity ]] || case_rate=
        measure "$case" "$case-round$round" "$case_rate"
        row="$case $round"
        for key in $FIELDS; do row+=" $(field "$key" "$result" 0)"; done
        echo "$row $other_cpu" >>"$results"
        printf 'round %-3s %-9s rps %8s   p99 %9s µs   /plaintext 503 %6s   /cpu 503 %6s   lag p99 %9s µs   other CPU %s s\n' \
            "$round" "$case" "$(field rps "$result")" "$(field all_p99_us "$result")" \
            "$(field cheap_503 "$result" 0)" "$(field cpu_503 "$result" 0)" \
            "$(field lag_p99_us "$result")" "$other_cpu"
    done
done

exec 9>&- # releases the benchmark lock

# ---- summary -------------------------------------------------------------------------------

declare -A med=() # "case key" -> median over the rounds
for case in $CASES; do
    col=3
    for key in $COLUMNS; do
        # shellcheck disable=SC2046 # one number per round, split on purpose
        med["$case $key"]=$(median %.10g $(awk -v c="$case" -v k="$col" '$1 == c { print $k }' "$results"))
        col=$((col + 1))
    done
done

echo
echo "== medians over $REPEATS round(s); latencies in µs, from each request's scheduled start"
readonly TABLE='%-9s %9s %10s %10s %10s %10s %10s %9s %8s %9s %8s %8s %9s\n'
# shellcheck disable=SC2059 # the format is the constant above
printf "$TABLE" case rps all_p50 all_p99 cheap_p99 cpu_p99 lag_p99 cheap_ok cpu_ok cheap_503 \
    cpu_503 unsent other_cpu
for case in $CASES; do
    row=("$case")
    for key in $COLUMNS; do row+=("${med["$case $key"]}"); done
    # shellcheck disable=SC2059
    printf "$TABLE" "${row[@]}"
done

if [[ " $CASES " != *" capacity "* || " $CASES " != *" off "* || " $CASES " != *" on "* ]]; then
    echo "(verdicts need all three cases; per-run figures: $results)"
    exit 0
fi

verdict() { # label value op goal
    awk -v what="$1" -v v="$2" -v op="$3" -v goal="$4" 'BEGIN {
        met = (op == "<=") ? (v <= goal) : (v >= goal)
        printf "%-52s %12.3f   (goal %s %g: %s)\n", what, v, op, goal, met ? "met" : "NOT met"
    }'
}
echo
echo "== verdicts (open loop at $rate req/s = ${OVERLOAD}x the calibrated $capacity0 req/s)"
verdict "on: admitted p99, ms" "$(awk -v v="${med["on all_p99_us"]}" 'BEGIN { print v / 1000 }')" \
    '<=' "$TARGET_P99_MS"
verdict "on: admitted throughput / capacity" \
    "$(awk -v a="${med["on rps"]}" -v b="${med["capacity rps"]}" 'BEGIN { print a / b }')" '>=' 0.9
awk -v off="${med["off all_p99_us"]}" -v on="${med["on all_p99_us"]}" 'BEGIN {
    printf "%-52s %12.3f   (off p99 %.0f ms, on p99 %.1f ms)\n", "off: admitted p99 / on admitted p99", \
        off / on, off / 1000, on / 1000 }'
echo "per-run figures: $results (columns: case round $(echo $COLUMNS)); churn output, /metrics" \
    "and server logs: $OUT"
