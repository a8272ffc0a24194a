#!/usr/bin/env bash
# Publish → last waiter through Redis (`pubsub.broker`): N long-polls on one Corral with
# in-process topics, the same N on one Corral linked to Redis, and N split over two Corrals on
# the same Redis (N/2 each, the publish sent to the first), in one run.
#
# Cases (CASES):
#   local-1   one Corral, --workers 2, no broker: today's in-process fan-out
#   redis-1   one Corral, --workers 2, pubsub.broker = the Redis started here
#   redis-2   two Corrals, --workers 1 each, both on that Redis; N/2 waiters on each
# Every Corral, and Redis, is pinned to CPUs $SERVER_CPUS; the fan-out client
# (benches/fanout.rs, one may worker) to $CLIENT_CPU. The client opens the N connections over
# 32 source addresses, waits until the servers count N waiters (GET /topics/subscribers on
# each), reads their RSS (summed), sends ONE POST /publish to the first server, and times
# each waiter from just before that write to the end of its response. Redis runs on a free
# loopback port with no persistence (`--save '' --appendonly no`, its own --dir) and is
# started fresh for every run.
#
# Every measured run holds an exclusive flock on $LOCK (benches/lib.sh, longpoll.sh); builds
# do not take it. Each case runs REPEATS times, the cases' order flipping every other round;
# the summary gives medians.
#
# Usage:   benches/broker.sh
#          N=2000 REPEATS=1 benches/broker.sh              # quick check
#          CASES="redis-2" N=10000 benches/broker.sh
#
# Environment (default in brackets):
#   N              waiters in all [10000]
#   CASES          which cases, in first-round order ["local-1 redis-1 redis-2"]
#   REPEATS        rounds [3]
#   DEADLINE       the client's own bound on one run: N, Ns or Nm [120s]
#   SETTLE         pause between "all waiters counted" and reading RSS [2s]
#   SERVER_CPUS    CPUs of the Corrals and Redis [0]
#   CLIENT_CPU     CPU of the client [1]
#   READY_TIMEOUT  seconds to wait for a server's first 200 [10]
#   LOCK           the shared benchmark lock file [/tmp/corral-bench.lock]
#   LOCK_WAIT      seconds to wait for the lock before giving up [3600]
#   OUT            where results and logs go [target/bench/broker-<timestamp>]
set -euo pipefail

SCRIPT_NAME=broker.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
N=${N:-10000}
CASES=${CASES:-local-1 redis-1 redis-2}
REPEATS=${REPEATS:-3}
DEADLINE=${DEADLINE:-120s}
SETTLE=${SETTLE:-2s}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
LOCK=${LOCK:-/tmp/corral-bench.lock}
LOCK_WAIT=${LOCK_WAIT:-3600}
OUT=${OUT:-target/bench/broker-$(date +%Y%m%d-%H%M%S)}

readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly POLL_TIMEOUT_MS=120000
readonly TOPIC=fanout
readonly EXPECTED_BODY='Hello, World!'

is_count "$N" || die "N must be a positive integer, got '$N'"
((N % 2 == 0 && N <= 19000)) || die "N=$N: must be even (redis-2 splits it) and at most 19000"
is_count "$REPEATS" || die "REPEATS must be a positive integer, got '$REPEATS'"
is_count "$READY_TIMEOUT" || die "READY_TIMEOUT must be a positive integer"
is_count "$LOCK_WAIT" || die "LOCK_WAIT must be a positive integer"
deadline_s=$(seconds DEADLINE "$DEADLINE")
seconds SETTLE "$SETTLE" zero >/dev/null
cases=()
for c in $CASES; do
    case $c in
        local-1 | redis-1 | redis-2) cases+=("$c") ;;
        *) die "unknown case '$c' in CASES (know: local-1, redis-1, redis-2)" ;;
    esac
done
((${#cases[@]} > 0)) || die "CASES is empty"
for tool in cargo curl taskset timeout ss python3 flock redis-server redis-cli; do
    command -v "$tool" >/dev/null || die "'$tool' not found (redis: apt-get install -y redis-server)"
done
mkdir -p "$OUT"

# ---- processes: only the PIDs started here are ever signalled --------------------------------

pids=() # Corrals and Redis of the current run
server_pid=
stop_all() {
    local pid
    for pid in "${pids[@]}"; do
        server_pid=$pid
        STOP_GRACE_S=10 stop_server
    done
    pids=()
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

exec 9>>"$LOCK"
start_redis() { # port dir log: sets redis_pid
    taskset -c "$SERVER_CPUS" redis-server --port "$1" --bind "$HOST" --save '' \
        --appendonly no --dir "$2" --daemonize no >"$3" 2>&1 9>&- &
    redis_pid=$!
    pids+=("$redis_pid")
    local i
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        [[ $(redis-cli -h "$HOST" -p "$1" ping 2>/dev/null) == PONG ]] && return 0
        running "$redis_pid" || die "redis-server exited at start (see $3)"
        sleep 0.1
    done
    die "redis-server did not answer PING within ${READY_TIMEOUT}s (see $3)"
}

start_corral() { # port workers config log: appends to pids and corral_pids
    echo "$CORRAL_BIN --listen $HOST:$1 --workers $2 --config $3" >"$4"
    taskset -c "$SERVER_CPUS" "$CORRAL_BIN" --listen "$HOST:$1" --workers "$2" --config "$3" \
        >>"$4" 2>&1 9>&- &
    server_pid=$!
    pids+=("$server_pid")
    corral_pids+=("$server_pid")
    wait_ready corral "http://$HOST:$1/plaintext" "$4"
    server_pid=
}

# ---- build ---------------------------------------------------------------------------------

build_corral "$OUT"
build_bench_client fanout "$OUT"

echo
echo "== cases: ${cases[*]}; N=$N; $REPEATS round(s); servers and Redis on CPUs $SERVER_CPUS," \
    "client on CPU $CLIENT_CPU; commit $commit; output in $OUT"
echo "   load: $(uptime)"
echo

results=$OUT/results.tsv
: >"$results"
FIELDS="rss_per_conn_bytes fanout_p50_ms fanout_p99_ms fanout_max_ms received errors reached"
FIELDS+=" publish_ms setup_s complete"
readonly FIELDS

for ((round = 1; round <= REPEATS; round++)); do
    set_round_order "$round" "${cases[@]}"
    for case in "${order[@]}"; do
        tag="$case-round$round"
        instances=${case#*-}
        workers=$((2 / instances))
        config=$OUT/$tag.toml
        printf '[demo]\npoll_timeout_ms = %d\n' "$POLL_TIMEOUT_MS" >"$config"
        take_lock
        corral_pids=()
        addrs=
        if [[ $case == redis-* ]]; then
            redis_port=$(free_port)
            mkdir -p "$OUT/$tag-redis"
            start_redis "$redis_port" "$OUT/$tag-redis" "$OUT/$tag-redis.log"
            printf '[pubsub]\nbroker = "redis://%s:%d"\n' "$HOST" "$redis_port" >>"$config"
        fi
        for ((i = 0; i < instances; i++)); do
            port=$(free_port)
            start_corral "$port" "$workers" "$config" "$OUT/$tag-corral$i.log"
            addrs+="${addrs:+,}$HOST:$port"
        done
        pid_list=$(IFS=,; echo "${corral_pids[*]}")
        status=0
        timeout --kill-after=5s "$((deadline_s + 30))s" \
            taskset -c "$CLIENT_CPU" "$OUT/fanout" --addr "$addrs" --mode poll \
            --connections "$N" --topic "$TOPIC" --server-pid "$pid_list" \
            --subscribers-path /topics/subscribers --deadline "$DEADLINE" \
            --settle "$SETTLE" --workers 1 >"$OUT/$tag.out" 2>&1 9>&- || status=$?
        outcome=ok
        for pid in "${pids[@]}"; do running "$pid" || outcome="server-died"; done
        stop_all
        flock -u 9
        ((status == 0)) || outcome="client-failed($status)"
        result=$(grep '^RESULT ' "$OUT/$tag.out" | tail -n 1) || result=
        [[ -n $result ]] || outcome=no-RESULT
        [[ $outcome != ok || $(field complete "$result" na) == 1 ]] || outcome=incomplete
        row="$case $round $outcome"
        for key in $FIELDS; do row+=" $(field "$key" "$result" na)"; done
        echo "$row" >>"$results"
        printf 'round %-2s %-8s fan-out p50 %8s ms  p99 %8s ms  max %8s ms  %6s B/conn  received %6s  errors %s  reached %s%s\n' \
            "$round" "$case" "$(field fanout_p50_ms "$result" na)" \
            "$(field fanout_p99_ms "$result" na)" "$(field fanout_max_ms "$result" na)" \
            "$(field rss_per_conn_bytes "$result" na)" "$(field received "$result" na)" \
            "$(field errors "$result" na)" "$(field reached "$result" na)" \
            "$([[ $outcome == ok ]] || echo "   $outcome: see $OUT/$tag.out")"
        sleep 1 # let the closed connections' FINs settle before the next run
    done
done

python3 - "$results" "$FIELDS" "${cases[*]}" "$N" <<'EOF'
import statistics, sys
path, fields, cases, n = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
runs = {}
for line in open(path):
    case, _round, outcome, *values = line.split()
    row = dict(zip(fields, values), outcome=outcome)
    runs.setdefault(case, []).append(row)
def num(v):
    try:
        return float(v)
    except ValueError:
        return None
def med(rows, key):
    vals = [num(r[key]) for r in rows if num(r[key]) is not None]
    return "-" if not vals else f"{statistics.median(vals):.1f}"
print()
print(f"== medians over the rounds, N={n} waiters in all (fan-out = publish -> waiter, ms)")
line = "{:<8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>5}"
print(line.format("case", "p50", "p99", "max", "B/conn", "received", "errors", "runs"))
for case in cases:
    rows = runs.get(case, [])
    if not rows:
        continue
    received = [num(r["received"]) for r in rows if num(r["received"]) is not None]
    errors = [num(r["errors"]) for r in rows if num(r["errors"]) is not None]
    print(line.format(case, med(rows, "fanout_p50_ms"), med(rows, "fanout_p99_ms"),
                      med(rows, "fanout_max_ms"), med(rows, "rss_per_conn_bytes"),
                      "-" if not received else f"{int(min(received))}/{n}",
                      "-" if not errors else int(sum(errors)),
                      f"{sum(r['outcome'] == 'ok' for r in rows)}/{len(rows)}"))
EOF
echo
echo "per-run figures: $results (columns: case round outcome $FIELDS); logs in $OUT"
