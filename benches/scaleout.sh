#!/usr/bin/env bash
# 100,000 waiting long-polls on this one machine, deployed as a user would: several Corral
# processes on ONE port (`server.reuse_port = true`: the kernel spreads connections over
# their sockets), one Redis between them (`pubsub.broker`), and the client spread over
# several processes and loopback source addresses. One publish, sent to the shared port
# (whichever instance the kernel picks), must wake every waiter on every instance.
#
# Why 6 instances and not 5: a process here may hold at most 20,000 descriptors (hard limit).
# Corral's automatic limits.max_connections keeps 1/16 of that (1,250) for its own
# descriptors (listener, epoll, pipes, the Redis link, accept bursts) and answers 503 past
# 18,750 connections. 100,000 over 5 is 20,000 each: over the cap, and over the descriptor
# limit itself. Over 6 it is 16,667 on average; SO_REUSEPORT places by a hash of the
# connection's addresses, not evenly (a standard deviation of ~120 connections here), so
# each instance stays ~2,000 under the cap. The script checks this arithmetic for any
# INSTANCES and N before it starts. The same goes for the client: one process holds at most
# ~19,900 connections, and may ~30,000 coroutines, so CLIENTS processes share the N (6 by
# default: 16,667 each), each over its own SOURCES loopback addresses (127.0.0.2 up; one
# source address has ~28k ephemeral ports, and TIME_WAIT leftovers slow a crowded one).
#
# One run:
#   1. Redis on a free loopback port (no persistence, its own --dir), INSTANCES Corrals
#      (--workers $WORKERS each) on one free port with reuse_port and the broker set,
#      each awaited by its "listening" line; their RSS summed (before).
#   2. The client processes, one after the other (benches/fanout.rs --role wait): each opens
#      its share of long-polls (paced by the servers' count of waiters, each instance's
#      from GET /topics/subscribers), prints READY once the servers count them, and waits.
#   3. Once all are in place: each instance's RSS and waiter count (after), then ONE
#      publisher (--role publish) checks the servers count N, publishes, and notes when
#      (CLOCK_MONOTONIC). Each waiter process writes the moment each of its waiters had
#      its whole answer; the summary merges them: publish → last waiter, p50, p99.
#   4. Everything started here is stopped by its PID.
# Errors: every connect error, reset, timeout, wrong status or body, and every waiter not
# answered, summed over the client processes; must be 0.
#
# Nothing is pinned: 6 Corrals, Redis and 6 clients share the 2 cores, so the latencies
# include the clients' own work (they read 100,000 answers on the same cores). The figures
# that matter are RSS per waiting connection and errors.
#
# Every run holds an exclusive flock on $LOCK, as the other benches; builds do not.
#
# Usage:   benches/scaleout.sh
#          N=20000 INSTANCES=2 CLIENTS=2 REPEATS=1 benches/scaleout.sh   # quick check
#
# Environment (default in brackets):
#   N              waiting long-polls in all [100000]
#   INSTANCES      Corral processes on the one port [6]
#   WORKERS        schedulers per Corral [1]
#   CLIENTS        client processes sharing the N [6]
#   SOURCES        loopback source addresses per client process [16]
#   REPEATS        runs [2]
#   DEADLINE       each client process's own bound: N, Ns or Nm [300s]
#   READY_TIMEOUT  seconds to wait for each server to listen [20]
#   LOCK           the shared benchmark lock file [/tmp/corral-bench.lock]
#   LOCK_WAIT      seconds to wait for the lock before giving up [3600]
#   OUT            where results and logs go [target/bench/scaleout-<timestamp>]
set -euo pipefail

SCRIPT_NAME=scaleout.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
N=${N:-100000}
INSTANCES=${INSTANCES:-6}
WORKERS=${WORKERS:-1}
CLIENTS=${CLIENTS:-6}
SOURCES=${SOURCES:-16}
REPEATS=${REPEATS:-2}
DEADLINE=${DEADLINE:-300s}
READY_TIMEOUT=${READY_TIMEOUT:-20}
LOCK=${LOCK:-/tmp/corral-bench.lock}
LOCK_WAIT=${LOCK_WAIT:-3600}
OUT=${OUT:-target/bench/scaleout-$(date +%Y%m%d-%H%M%S)}

readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly POLL_TIMEOUT_MS=600000
readonly TOPIC=scaleout
readonly MESSAGE=wake-up

# ---- settings and the arithmetic of descriptors -------------------------------------------

for v in N INSTANCES WORKERS CLIENTS SOURCES REPEATS READY_TIMEOUT LOCK_WAIT; do
    is_count "${!v}" || die "$v must be a positive integer, got '${!v}'"
done
deadline_s=$(seconds DEADLINE "$DEADLINE")
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
reserve=$((hard / 16 > 64 ? hard / 16 : 64))
cap=$((hard - reserve)) # Corral's automatic limits.max_connections
per_instance=$(((N + INSTANCES - 1) / INSTANCES))
# SO_REUSEPORT hashes: allow 5 standard deviations of a binomial spread above the mean.
spread=$(python3 -c "import math; n, k = $N, $INSTANCES; print(int(5 * math.sqrt(n * (1 / k) * (1 - 1 / k))) + 1)")
((per_instance + spread <= cap)) ||
    die "N=$N over INSTANCES=$INSTANCES is ~$per_instance each (±$spread): more than the" \
        "$cap connections a Corral takes under a $hard-descriptor limit ($reserve kept" \
        "for its own); use more instances (at least $(((N + cap - spread - 1) / (cap - spread))))"
per_client=$(((N + CLIENTS - 1) / CLIENTS))
((per_client + 64 <= hard && per_client <= 30000)) ||
    die "N=$N over CLIENTS=$CLIENTS is $per_client each: more than one process holds" \
        "($hard descriptors, ~30,000 may coroutines); use more clients"
((2 + CLIENTS * SOURCES <= 254)) || die "CLIENTS × SOURCES must leave 127.0.0.2-127.0.0.255 enough"
for tool in cargo curl timeout ss python3 flock redis-server redis-cli; do
    command -v "$tool" >/dev/null || die "'$tool' not found (redis: apt-get install -y redis-server)"
done
mkdir -p "$OUT"

# ---- processes: only the PIDs started here are ever signalled --------------------------------

pids=()
server_pid=
stop_all() {
    local pid
    for pid in "${pids[@]}"; do
        server_pid=$pid
        STOP_GRACE_S=20 stop_server
    done
    pids=()
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

exec 9>>"$LOCK"
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

wait_line() { # pid file pattern seconds what: until the file has the line, while pid runs
    local deadline=$((SECONDS + $4))
    until grep -q "$3" "$2" 2>/dev/null; do
        running "$1" || die "$5 exited (see $2)"
        ((SECONDS < deadline)) || die "$5 did not say '$3' within $4 s (see $2)"
        sleep 0.2
    done
}

# ---- build ---------------------------------------------------------------------------------

build_corral "$OUT"
build_bench_client fanout "$OUT"

echo
echo "== N=$N waiters, $INSTANCES Corrals (--workers $WORKERS) on one port with reuse_port," \
    "Redis between them, $CLIENTS client processes × $SOURCES source addresses;" \
    "$REPEATS run(s); commit $commit; output in $OUT"
echo "   descriptors: hard limit $hard, Corral's cap $cap; ~$per_instance (±$spread) per instance"

results=$OUT/results.tsv
: >"$results"

for ((run = 1; run <= REPEATS; run++)); do
    tag=run$run
    echo
    echo "-- $tag   load: $(uptime)"
    take_lock
    redis_port=$(free_port)
    mkdir -p "$OUT/$tag-redis"
    redis-server --port "$redis_port" --bind "$HOST" --save '' --appendonly no \
        --dir "$OUT/$tag-redis" --daemonize no >"$OUT/$tag-redis.log" 2>&1 9>&- &
    redis_pid=$!
    pids+=("$redis_pid")
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        [[ $(redis-cli -h "$HOST" -p "$redis_port" ping 2>/dev/null) == PONG ]] && break
        sleep 0.1
    done
    [[ $(redis-cli -h "$HOST" -p "$redis_port" ping 2>/dev/null) == PONG ]] ||
        die "redis-server did not answer (see $OUT/$tag-redis.log)"

    port=$(free_port)
    config=$OUT/$tag.toml
    printf '[server]\nreuse_port = true\n[pubsub]\nbroker = "redis://%s:%d"\n[demo]\npoll_timeout_ms = %d\n' \
        "$HOST" "$redis_port" "$POLL_TIMEOUT_MS" >"$config"
    corral_pids=()
    for ((i = 0; i < INSTANCES; i++)); do
        log=$OUT/$tag-corral$i.log
        "$corral_bin" --listen "$HOST:$port" --workers "$WORKERS" --config "$config" \
            >"$log" 2>&1 9>&- &
        pids+=("$!")
        corral_pids+=("$!")
        wait_line "$!" "$log" "corral listening on" "$READY_TIMEOUT" "corral $i"
    done
    pid_list=$(IFS=,; echo "${corral_pids[*]}")
    rss_before=0
    for pid in "${corral_pids[@]}"; do rss_before=$((rss_before + $(rss_kb "$pid"))); done

    # The waiters, one client process after the other.
    base=0
    client_pids=()
    for ((c = 0; c < CLIENTS; c++)); do
        n=$(((N - base) / (CLIENTS - c)))
        sources=$(python3 -c "print(','.join(f'127.0.0.{2 + $c * $SOURCES + i}' for i in range($SOURCES)))")
        out=$OUT/$tag-client$c.out
        timeout --kill-after=5s "$((deadline_s + 30))s" "$OUT/fanout" --addr "$HOST:$port" \
            --mode poll --role wait --connections "$n" --subscribed-base "$base" \
            --topic "$TOPIC" --message "$MESSAGE" --sources "$sources" \
            --subscribers-path /topics/subscribers --arrivals-file "$OUT/$tag-arrivals$c" \
            --deadline "$DEADLINE" --workers 1 >"$out" 2>&1 9>&- &
        client_pids+=("$!")
        pids+=("$!")
        wait_line "$!" "$out" "^READY" "$deadline_s" "client $c"
        base=$((base + n))
        echo "   client $c: $n waiting (total $base)"
    done

    # All in place: memory and spread per instance, then one publish.
    rss_after=0
    spread_line=
    for pid in "${corral_pids[@]}"; do
        kb=$(rss_kb "$pid")
        rss_after=$((rss_after + kb))
        spread_line+=" $pid:${kb}KiB"
    done
    declare -A counted=()
    for ((i = 0; i < 200 && ${#counted[@]} < INSTANCES; i++)); do
        answer=$(curl -s --max-time 2 "http://$HOST:$port/topics/subscribers") || continue
        [[ $answer =~ ^pid\ ([0-9]+)\ subscribers\ ([0-9]+) ]] &&
            counted[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    done
    per_pid=
    for pid in "${!counted[@]}"; do per_pid+=" $pid:${counted[$pid]}"; done
    unset counted
    echo "   RSS per instance:$spread_line; waiters per instance:$per_pid"
    pub_out=$OUT/$tag-publish.out
    status=0
    timeout --kill-after=5s "$((deadline_s + 30))s" "$OUT/fanout" --addr "$HOST:$port" \
        --mode poll --role publish --connections 0 --expect "$N" --topic "$TOPIC" \
        --message "$MESSAGE" --server-pid "$pid_list" --subscribers-path /topics/subscribers \
        --settle 0s --deadline "$DEADLINE" >"$pub_out" 2>&1 9>&- || status=$?
    ((status == 0)) || echo "   publisher failed ($status): see $pub_out"
    for pid in "${client_pids[@]}"; do wait "$pid" || true; done
    outcome=ok
    for pid in "${corral_pids[@]}" "$redis_pid"; do running "$pid" || outcome=server-died; done
    stop_all
    flock -u 9

    publish_result=$(grep '^RESULT ' "$pub_out" | tail -n 1) || publish_result=
    publish_at=$(field publish_at_ns "$publish_result" na)
    python3 - "$OUT" "$tag" "$CLIENTS" "$N" "$publish_at" "$rss_before" "$rss_after" \
        "$outcome" "$(field reached "$publish_result" na)" "$(field complete "$publish_result" 0)" \
        "$results" <<'EOF'
import sys
out, tag, clients, n, publish_at, before, after, outcome, reached, complete, results = sys.argv[1:]
clients, n, before, after = int(clients), int(n), int(before), int(after)
latencies, errors, early, lines = [], 0, 0, []
for c in range(clients):
    result = [l for l in open(f"{out}/{tag}-client{c}.out") if l.startswith("RESULT ")]
    fields = dict(w.split("=", 1) for w in result[-1].split()[1:]) if result else {}
    # A waiter process's own errors (connect, reset, timeout, status, body), and its waiters
    # that never finished.
    errors += int(fields.get("errors", n)) + int(fields.get("unfinished", 0))
    try:
        arrivals = [int(x) for x in open(f"{out}/{tag}-arrivals{c}")]
    except OSError:
        arrivals = []
    if publish_at != "na":
        for a in arrivals:
            if a < int(publish_at):
                early += 1
            else:
                latencies.append(a - int(publish_at))
latencies.sort()
received = len(latencies)
missing = n - received - early
errors += early
def q(p):
    return latencies[min(len(latencies) - 1, max(0, int(p * len(latencies) + 0.999999) - 1))] / 1e6
if publish_at == "na" or complete != "1":
    outcome = "no-publish" if outcome == "ok" else outcome
p50, p99, mx = (q(0.5), q(0.99), latencies[-1] / 1e6) if latencies else (None,) * 3
kib = (after - before) / n
fmt = lambda v: "na" if v is None else f"{v:.1f}"
print(f"   {outcome}: received {received}/{n}, errors {errors} (early {early}, missing {max(missing, 0)}), "
      f"publish reached {reached} instances")
print(f"   Corral RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with {n} waiting: "
      f"{kib:.2f} KiB per waiting connection")
print(f"   publish -> waiter: p50 {fmt(p50)} ms, p99 {fmt(p99)} ms, last {fmt(mx)} ms")
with open(results, "a") as f:
    f.write(f"{tag} {outcome} {received} {errors} {before} {after} {kib:.3f} "
            f"{fmt(p50)} {fmt(p99)} {fmt(mx)} {reached}\n")
EOF
    sleep 2 # let 100,000 FINs settle before the next run
done

python3 - "$results" "$N" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def med(i):
    vals = [float(r[i]) for r in rows if r[i] != "na"]
    return "na" if not vals else f"{statistics.median(vals):.2f}"
print()
print(f"== medians over {len(rows)} run(s), N={sys.argv[2]}")
print(f"   received (fewest) {min(int(r[2]) for r in rows)}, errors (sum) {sum(int(r[3]) for r in rows)}, "
      f"runs ok {sum(r[1] == 'ok' for r in rows)}/{len(rows)}")
print(f"   Corral RSS with all waiting: {float(med(5)) / 1024:.1f} MiB in all; "
      f"{med(6)} KiB per waiting connection")
print(f"   publish -> waiter p50 {med(7)} ms, p99 {med(8)} ms, last {med(9)} ms")
EOF
echo
echo "per-run figures: $results (tag outcome received errors rss_before_kb rss_after_kb" \
    "kib_per_conn p50_ms p99_ms last_ms reached); logs in $OUT"
