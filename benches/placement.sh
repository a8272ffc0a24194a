#!/usr/bin/env bash
# Placement policies under connection churn and a skewed route mix, all in one run.
#
# Every run starts Corral fresh on 2 workers with one policy (--placement), waits until
# GET /plaintext answers 200 "Hello, World!", loads it with the churn generator
# (benches/churn.rs: CLIENTS clients, each opening a fresh connection for REQUESTS_PER_CONN
# requests; CPU_SHARE of them GET /cpu?us=CPU_US, the rest GET /plaintext), then stops it.
# Without RATE the clients are a closed loop: each sends as fast as answers come, so on a
# saturated box every latency is queue depth whatever the policy. With RATE (req/s over all
# clients) they are an open loop: Poisson arrivals, latency from the scheduled start; pick
# RATE below saturation (find it with a closed-loop run: REPEATS=1 POLICIES=round_robin).
# Each round runs every policy once; the order rotates by one per round so slow drift (heat,
# TIME_WAIT build-up, neighbours) does not always hit the same policy.
# At the end: every run's figures, each policy's medians over the rounds, and the ratios of
# `cost` to `round_robin` and `fd_hash` (goal: cheap-route p99 <= 0.70x, throughput >= 1x).
#
# Pinning: the server gets CPUs 0,1 (may pins its worker i to the i-th CPU it is allowed) and
# the load generator CPU 1 with one may worker. On a 2-core box both share core 1, so absolute
# figures are pessimistic (and the scheduler on core 1 is the slower one, which load-aware
# policies can notice and blind ones cannot); the comparison between policies is what counts.
#
# Measured runs hold the benchmark lock (flock on /tmp/corral-bench.lock) from the first
# server start to the last stop, so two benchmarks on this box never overlap; the build
# does not take it. A build or test nearby takes no lock either, so each run also reports
# the CPU time other processes used meanwhile (other_cpu_s: all CPUs' busy time from
# /proc/stat less this script's children's; about -0.7 to +0.1 s for a 12 s run on a quiet
# box, a build adds seconds), and a run over MAX_OTHER_CPU is redone after a pause, up to
# RETRIES times. Both binaries are copied into OUT before the runs, so a rebuild in target/
# meanwhile cannot change them halfway.
#
# Usage:   benches/placement.sh
#          RATE=4000 benches/placement.sh                                    # open loop
#          REPEATS=1 DURATION=5s WARMUP=1s benches/placement.sh             # quick check
#          POLICIES="cost round_robin" CONFIG=cap.toml benches/placement.sh  # e.g. a cap set
#          POLICIES=none benches/placement.sh    # a Corral without --placement: its default
#          POLICIES="cost@home cost@wake round_robin@home round_robin@wake" RATE=3000 \
#              CONFIG=benches/configs/hibernate-5ms.toml benches/placement.sh
#                                  # placement at wake off and on (docs/bench/placement-wake.md)
#
# Environment (default in brackets):
#   POLICIES           in first-round order; "none" passes no --placement flag; a suffix
#                      @wake / @home sets placement.at_wake true / false (through
#                      CORRAL_PLACEMENT_AT_WAKE), none keeps the configured value
#                      ["cost round_robin fd_hash least_connections"]
#   REPEATS            rounds [3]
#   DURATION, WARMUP   measured time and warm-up of each run: N, Ns or Nm [10s, 2s]
#   RATE               open loop: total requests/s over all clients [none: closed loop]
#   CLIENTS            concurrent clients [256]
#   REQUESTS_PER_CONN  requests per fresh connection [4]
#   CPU_SHARE          share of requests that go to /cpu [0.10]
#   CPU_US             CPU time of one /cpu request, µs [2000]
#   SEED               route-choice seed, the same for every run [1]
#   SOURCES            comma list of 127.x.x.x source addresses for the clients [none]
#   CONFIG             TOML file passed to Corral with --config (e.g. placement.max_active_requests)
#   WORKERS            Corral workers [2]
#   SERVER_CPUS        CPUs Corral is pinned to [0,1]
#   CLIENT_CPU         CPU the load generator is pinned to [1]
#   READY_TIMEOUT      seconds to wait for a server's first 200 [10]
#   OUT                where results and logs go [target/bench/placement-<timestamp>]
#   LOCK               the benchmark lock file [/tmp/corral-bench.lock]
#   MAX_OTHER_CPU      CPU-seconds others may use during a run before it is redone [1.0]
#   RETRIES            redos of a disturbed run; the last try is kept either way [2]
#   RETRY_PAUSE_S      seconds to wait before a redo [20]
set -euo pipefail

SCRIPT_NAME=placement.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
POLICIES=${POLICIES:-cost round_robin fd_hash least_connections}
REPEATS=${REPEATS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RATE=${RATE:-}
CLIENTS=${CLIENTS:-256}
REQUESTS_PER_CONN=${REQUESTS_PER_CONN:-4}
CPU_SHARE=${CPU_SHARE:-0.10}
CPU_US=${CPU_US:-2000}
SEED=${SEED:-1}
SOURCES=${SOURCES:-}
CONFIG=${CONFIG:-}
WORKERS=${WORKERS:-2}
SERVER_CPUS=${SERVER_CPUS:-0,1}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
OUT=${OUT:-target/bench/placement-$(date +%Y%m%d-%H%M%S)}
LOCK=${LOCK:-/tmp/corral-bench.lock}
MAX_OTHER_CPU=${MAX_OTHER_CPU:-1.0}
RETRIES=${RETRIES:-2}
RETRY_PAUSE_S=${RETRY_PAUSE_S:-20}

readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly EXPECTED_BODY='Hello, World!'
readonly IO_TIMEOUT_S=5 # churn --timeout: the longest wait for one read or write

# ---- settings ------------------------------------------------------------------------------

is_count "$REPEATS" || die "REPEATS must be a positive integer, got '$REPEATS'"
is_count "$CLIENTS" || die "CLIENTS must be a positive integer, got '$CLIENTS'"
is_count "$REQUESTS_PER_CONN" || die "REQUESTS_PER_CONN must be a positive integer, got '$REQUESTS_PER_CONN'"
is_count "$WORKERS" || die "WORKERS must be a positive integer, got '$WORKERS'"
is_count "$READY_TIMEOUT" || die "READY_TIMEOUT must be a positive integer, got '$READY_TIMEOUT'"
[[ $CPU_US =~ ^[0-9]+$ ]] || die "CPU_US must be a whole number of µs, got '$CPU_US'"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a whole number, got '$SEED'"
[[ $CPU_SHARE =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "CPU_SHARE must be from 0 to 1, got '$CPU_SHARE'"
[[ -z $SOURCES || $SOURCES =~ ^127\.[0-9.]+(,127\.[0-9.]+)*$ ]] ||
    die "SOURCES must be a comma list of 127.x.x.x addresses, got '$SOURCES'"
[[ -z $CONFIG || -r $CONFIG ]] || die "CONFIG '$CONFIG' is not a readable file"
[[ $MAX_OTHER_CPU =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    die "MAX_OTHER_CPU must be a number of CPU-seconds, got '$MAX_OTHER_CPU'"
[[ $RETRIES =~ ^[0-9]+$ ]] || die "RETRIES must be a whole number, got '$RETRIES'"
is_count "$RETRY_PAUSE_S" || die "RETRY_PAUSE_S must be a positive integer, got '$RETRY_PAUSE_S'"
[[ -z $RATE || $RATE =~ ^[0-9]+(\.[0-9]+)?$ && ! $RATE =~ ^0+(\.0+)?$ ]] ||
    die "RATE must be a positive number of requests per second, got '$RATE'"

duration_s=$(seconds DURATION "$DURATION")
warmup_s=$(seconds WARMUP "$WARMUP" zero)

policies=()
for p in $POLICIES; do
    case ${p%@*} in
        cost | round_robin | fd_hash | least_connections | none) ;;
        *) die "unknown policy '$p' in POLICIES (know: cost round_robin fd_hash least_connections none)" ;;
    esac
    [[ $p != *@* || $p == *@wake || $p == *@home ]] ||
        die "unknown suffix in '$p' in POLICIES (know: @wake, @home)"
    policies+=("$p")
done
((${#policies[@]} > 0)) || die "POLICIES is empty"
wants() { [[ " ${policies[*]} " == *" $1 "* ]]; }

for tool in cargo curl taskset timeout ss python3 flock getconf; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done

mkdir -p "$OUT"

# ---- process handling: we only ever signal the one server PID we started (lib.sh) -----------

init_server_handling

start_server() { # policy[@wake|@home] port log
    local policy=${1%@*} env_cmd=(env -u CORRAL_PLACEMENT_AT_WAKE)
    case $1 in
        *@wake) env_cmd=(env CORRAL_PLACEMENT_AT_WAKE=true) ;;
        *@home) env_cmd=(env CORRAL_PLACEMENT_AT_WAKE=false) ;;
    esac
    local cmd=("$corral_bin" --listen "$HOST:$2" --workers "$WORKERS")
    [[ $policy == none ]] || cmd+=(--placement "$policy")
    [[ -z $CONFIG ]] || cmd+=(--config "$CONFIG")
    echo "${env_cmd[*]} ${cmd[*]}" >"$3"
    # taskset and env each exec the next, so $! is the server's own PID.
    taskset -c "$SERVER_CPUS" "${env_cmd[@]}" "${cmd[@]}" >>"$3" 2>&1 9>&- &
    server_pid=$!
}

# ---- build ---------------------------------------------------------------------------------

build_corral "$OUT"
build_bench_client churn "$OUT"
churn_bin=$OUT/churn

for p in "${policies[@]}"; do
    [[ $p == none* ]] || grep -q -- '--placement' <<<"$("$corral_bin" --help)" ||
        die "this Corral has no --placement flag yet; POLICIES=none runs it with its default policy"
    [[ $p != *@* ]] || grep -q -- 'CORRAL_PLACEMENT_AT_WAKE' <<<"$("$corral_bin" --help)" ||
        die "this Corral has no placement.at_wake yet; drop the @wake / @home suffixes"
done

# ---- runs ----------------------------------------------------------------------------------

churn_args=(--clients "$CLIENTS" --requests-per-conn "$REQUESTS_PER_CONN" --cpu-share "$CPU_SHARE"
    --cpu-us "$CPU_US" --duration "$DURATION" --warmup "$WARMUP" --timeout "${IO_TIMEOUT_S}s"
    --workers 1 --seed "$SEED")
[[ -z $SOURCES ]] || churn_args+=(--sources "$SOURCES")
[[ -z $RATE ]] || churn_args+=(--rate "$RATE")
# churn exits by itself after warm-up + duration + timeout + 1 s; this is the outer bound.
run_bound_s=$((warmup_s + duration_s + IO_TIMEOUT_S + 30))

echo
echo "== ${#policies[@]} policies x $REPEATS round(s): $CLIENTS clients, $REQUESTS_PER_CONN requests" \
    "per connection, ${CPU_SHARE} of them /cpu?us=$CPU_US; warm-up $WARMUP, measured $DURATION"
if [[ -n $RATE ]]; then
    echo "   open loop: $RATE req/s over all clients, Poisson arrivals, latency from the scheduled start"
else
    echo "   closed loop: every client sends as soon as its previous answer is in"
fi
echo "   Corral: $WORKERS workers on CPUs $SERVER_CPUS${CONFIG:+, --config $CONFIG};" \
    "load generator: 1 worker on CPU $CLIENT_CPU"
echo "   commit $commit (binaries copied into OUT); output in $OUT"
echo

results=$OUT/results.tsv # one line per run: policy round, then COLUMNS
: >"$results"
# From churn's RESULT line; then other_cpu_s, measured here.
readonly FIELDS="rps cheap_p50_us cheap_p99_us cheap_p999_us all_p50_us all_p99_us all_p999_us
    cpu_p99_us errors lag_p99_us cheap_first_p99_us cheap_later_p99_us"
readonly COLUMNS="$FIELDS other_cpu_s"

# ---- CPU used by others during a run: a build or test nearby takes no lock ------------------

CLK_TCK=$(getconf CLK_TCK) || die "getconf CLK_TCK failed"
readonly CLK_TCK

busy_s() { # busy time of all CPUs so far (/proc/stat: all but idle and iowait), seconds
    local _cpu user nice system _idle _iowait irq softirq steal _rest
    read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
    local ticks=$((user + nice + system + irq + softirq + steal))
    awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f\n", t / hz }'
}

children_s() { # REPLY = user + system time of this shell's reaped children so far, seconds
    # The builtin must run in this shell, not in a $(...) subshell with children of its own;
    # its second line is the children's.
    times >"$OUT/.times"
    REPLY=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] }
                           printf "%.3f\n", s }' "$OUT/.times")
}

# ---- the measured runs, under the benchmark lock -------------------------------------------

# One run: server start, load, server stop. Sets `result` (churn's RESULT line) and
# `other_cpu` (CPU-seconds used by processes not ours meanwhile).
measure() { # policy round
    local policy=$1 round=$2 port log churn_out status=0 ours0 busy0 ours1 busy1
    port=$(free_port)
    log="$OUT/$policy-round$round.log"
    churn_out="$OUT/$policy-round$round.churn"

    children_s
    ours0=$REPLY busy0=$(busy_s)
    start_server "$policy" "$port" "$log"
    wait_ready "Corral ($policy)" "http://$HOST:$port/plaintext" "$log" "" Corral
    timeout --kill-after=5s "${run_bound_s}s" \
        taskset -c "$CLIENT_CPU" "$churn_bin" --addr "$HOST:$port" "${churn_args[@]}" \
        >"$churn_out" 2>&1 9>&- || status=$?
    # Per-scheduler requests and connections, for a look at how the policy spread them.
    curl -s --max-time 2 -o "$OUT/$policy-round$round.metrics" "http://$HOST:$port/metrics" ||
        true
    stop_server
    busy1=$(busy_s)
    children_s
    ours1=$REPLY
    ((status == 0)) || die "churn against $policy failed (exit status $status); see $churn_out"
    other_cpu=$(awk -v b="$busy1" -v a="$busy0" -v o="$ours1" -v n="$ours0" \
        'BEGIN { printf "%.2f\n", (b - a) - (o - n) }')
    result=$(grep '^RESULT ' "$churn_out" | tail -n 1) || die "no RESULT line in $churn_out"
    sleep 1 # let the closed connections' FINs settle before the next server starts
}


exec 9>"$LOCK" || die "cannot open the benchmark lock $LOCK"
if ! flock -n 9; then
    echo "== waiting for the benchmark lock $LOCK (another benchmark holds it)"
    flock 9 || die "cannot take the benchmark lock $LOCK"
fi
echo "== holding the benchmark lock $LOCK"

for ((round = 1; round <= REPEATS; round++)); do
    order=()
    for ((i = 0; i < ${#policies[@]}; i++)); do
        order+=("${policies[(i + round - 1) % ${#policies[@]}]}")
    done
    for policy in "${order[@]}"; do
        for ((attempt = 1; ; attempt++)); do
            measure "$policy" "$round"
            awk -v o="$other_cpu" -v m="$MAX_OTHER_CPU" 'BEGIN { exit !(o > m) }' || break
            if ((attempt > RETRIES)); then
                echo "   (disturbed: other processes used ${other_cpu} CPU-s; kept after $attempt tries)"
                break
            fi
            echo "   (disturbed: other processes used ${other_cpu} CPU-s; again in ${RETRY_PAUSE_S}s)"
            sleep "$RETRY_PAUSE_S"
        done
        row="$policy $round"
        for key in $FIELDS; do row+=" $(field "$key" "$result")"; done
        echo "$row $other_cpu" >>"$results"
        printf 'round %-3s %-24s rps %9s   cheap p99 %8s µs   all p99 %8s µs   send lag p99 %7s µs' \
            "$round" "$policy" "$(field rps "$result")" "$(field cheap_p99_us "$result")" \
            "$(field all_p99_us "$result")" "$(field lag_p99_us "$result")"
        printf '   errors %s   other CPU %s s\n' "$(field errors "$result")" "$other_cpu"
    done
done

exec 9>&- # releases the benchmark lock

# ---- summary -------------------------------------------------------------------------------

declare -A med=() # "policy key" -> median over the rounds
for policy in "${policies[@]}"; do
    col=3
    for key in $COLUMNS; do
        # shellcheck disable=SC2046 # one number per round, split on purpose
        med["$policy $key"]=$(median %.10g $(awk -v p="$policy" -v c="$col" '$1 == p { print $c }' "$results"))
        col=$((col + 1))
    done
done

echo
echo "== medians over $REPEATS round(s); latencies in µs"
readonly TABLE='%-24s %9s %9s %9s %11s %9s %9s %9s %9s %6s %8s %9s %9s %9s\n'
# shellcheck disable=SC2059 # the format is the constant above
printf "$TABLE" policy rps cheap_p50 cheap_p99 cheap_p99.9 all_p50 all_p99 all_p99.9 cpu_p99 \
    errors lag_p99 1st_p99 later_p99 other_cpu
for policy in "${policies[@]}"; do
    row=("$policy")
    for key in $COLUMNS; do row+=("${med["$policy $key"]}"); done
    # shellcheck disable=SC2059
    printf "$TABLE" "${row[@]}"
done

ratio_line() { # label numerator denominator [goal-op goal]
    awk -v what="$1" -v a="$2" -v b="$3" -v op="${4:-}" -v goal="${5:-}" 'BEGIN {
        if (b + 0 == 0) { printf "%-50s    n/a (denominator 0)\n", what; exit }
        r = a / b
        printf "%-50s %7.3f", what, r
        # Judged as printed: in an open loop both runs carry the same offered load, and a
        # ratio of 0.99995 (a request or two finishing after the deadline) reads "1.000".
        r = sprintf("%.3f", r) + 0
        if (op != "") {
            met = (op == "<=") ? (r <= goal) : (r >= goal)
            printf "   (goal %s %.2f: %s)", op, goal, met ? "met" : "NOT met"
        }
        printf "\n"
    }'
}

# cost against each other policy run with the same placement at wake (the same suffix), and
# cost@wake also against the others @home (the policies as they were before it).
for suffix in "" @home @wake; do
    wants "cost$suffix" || continue
    echo
    echo "== cost$suffix against the other policies (ratios of the medians)"
    others=()
    for other in round_robin fd_hash least_connections none; do others+=("$other$suffix"); done
    [[ $suffix != @wake ]] || others+=(round_robin@home fd_hash@home)
    for other in "${others[@]}"; do
        wants "$other" || continue
        goal_p99=() goal_rps=()
        if [[ ${other%@*} == round_robin || ${other%@*} == fd_hash ]]; then
            goal_p99=('<=' 0.70) goal_rps=('>=' 1.00)
        fi
        ratio_line "cheap p99: cost$suffix / $other" "${med["cost$suffix cheap_p99_us"]}" \
            "${med["$other cheap_p99_us"]}" "${goal_p99[@]}"
        ratio_line "throughput: cost$suffix / $other" "${med["cost$suffix rps"]}" \
            "${med["$other rps"]}" "${goal_rps[@]}"
    done
done
echo
echo "lag_p99: churn's send lag (open loop: actual - scheduled start); 1st_p99 / later_p99: cheap" \
    "p99 of a connection's first request / of its later ones; other_cpu: CPU-seconds other" \
    "processes used during the run (on a quiet box about -0.7 to +0.1 s)"
# shellcheck disable=SC2086 # COLUMNS spans lines; word splitting puts it on one
echo "per-run figures: $results (columns: policy round" $COLUMNS"); churn output, /metrics" \
    "and server logs: $OUT"
