#!/usr/bin/env bash
# Long-poll fan-out and memory per connection at up to ~19k connections: Corral against a Go
# net/http peer (benches/peers/go_longpoll), both on 2 threads, in one run.
#
# Every run starts one server fresh, pinned to CPUs $SERVER_CPUS, waits until GET /plaintext
# answers 200 "Hello, World!", runs the fan-out client (benches/fanout.rs) pinned to CPU
# $CLIENT_CPU with one may worker, then stops the server. Cases are every N in NS times every
# mode in MODES:
#   poll  N connections each wait in GET /poll?topic=T; once the server counts N subscribers
#         its RSS is read, then ONE POST /publish?topic=T goes out, and each waiter's fan-out
#         latency runs from just before that write to the end of its response.
#   idle  N keep-alive connections each do one GET /plaintext and then wait; RSS is read
#         after SETTLE. Two Ns show whether the cost per connection is flat.
# Each round runs every case on every server; the server order flips every other round. At
# the end: every run's figures, the medians per (server, mode, N), and the ratios corral/go
# of fan-out max and of RSS per connection.
#
# Corral runs with --workers 2 and a config setting demo.poll_timeout_ms = 120000 (and
# limits.max_connections to N + 50, see below); the Go peer with GOMAXPROCS=2 and -timeout
# 120s, so no long-poll times out within a run.
#
# Machine limits (docs/architecture.md §4): a process may hold 20,000 files (hard limit). Corral
# raises its own soft limit to the hard one; the Go peer gets `ulimit -n <hard>` here (Go
# >= 1.19 raises it itself as well); the client raises its own. One source address runs out
# of ephemeral ports near 28k, and its TIME_WAIT leftovers (60 s) slow every later bind to
# port 0 on it, so the client spreads its connections over 127.0.0.2-127.0.0.33 (see the
# header of benches/fanout.rs).
#
# Other engineers benchmark on this machine too: every measured run (server start, client,
# server stop) holds an exclusive flock on $LOCK, so measurements never overlap. Builds do
# not take it.
#
# Usage:   benches/longpoll.sh
#          NS=2000 MODES=poll REPEATS=1 benches/longpoll.sh        # quick check
#          SERVERS=go NS="5000 10000 19000" MODES=idle benches/longpoll.sh
#
# Environment (default in brackets):
#   SERVERS        which servers, in first-round order: corral, go ["corral go"]
#   NS             connection counts [10000 19000]
#   MODES          poll, idle ["poll idle"]
#   REPEATS        rounds [3]
#   DEADLINE       the client's own bound on one run: N, Ns or Nm [120s]
#   SETTLE         pause between "all connections in place" and reading RSS [2s]
#   SERVER_CPUS    CPUs the server is pinned to [0]. Both servers still run 2 threads, on
#                  core 0, and the client has core 1 to itself: sharing core 1 with the client
#                  (SERVER_CPUS=0,1) makes the fan-out mostly a measure of the client's own
#                  receive work on that core, and hides the servers' difference (Corral/Go
#                  fan-out max 0.95 that way on 2026-11-24, against 0.36 separated).
#   CLIENT_CPU     CPU the client is pinned to [1]
#   READY_TIMEOUT  seconds to wait for a server's first 200 [10]
#   LOCK           the shared benchmark lock file [/tmp/corral-bench.lock]
#   LOCK_WAIT      seconds to wait for the lock before giving up [3600]
#   OUT            where results and logs go [target/bench/longpoll-<timestamp>]
set -euo pipefail

SCRIPT_NAME=longpoll.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
SERVERS=${SERVERS:-corral go}
NS=${NS:-10000 19000}
MODES=${MODES:-poll idle}
REPEATS=${REPEATS:-3}
DEADLINE=${DEADLINE:-120s}
SETTLE=${SETTLE:-2s}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
LOCK=${LOCK:-/tmp/corral-bench.lock}
LOCK_WAIT=${LOCK_WAIT:-3600}
OUT=${OUT:-target/bench/longpoll-$(date +%Y%m%d-%H%M%S)}

readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly GO_DIR=benches/peers/go_longpoll
readonly GO_BIN=$GO_DIR/go_longpoll
readonly THREADS=2            # Corral --workers and Go's GOMAXPROCS
readonly POLL_TIMEOUT_MS=120000
readonly TOPIC=fanout
readonly EXPECTED_BODY='Hello, World!'
readonly STOP_GRACE_S=10     # stop_server waits this long: 19k connections to close

# ---- settings ------------------------------------------------------------------------------

is_count "$REPEATS" || die "REPEATS must be a positive integer, got '$REPEATS'"
is_count "$READY_TIMEOUT" || die "READY_TIMEOUT must be a positive integer, got '$READY_TIMEOUT'"
is_count "$LOCK_WAIT" || die "LOCK_WAIT must be a positive integer, got '$LOCK_WAIT'"

deadline_s=$(seconds DEADLINE "$DEADLINE")
seconds SETTLE "$SETTLE" zero >/dev/null

servers=()
for s in $SERVERS; do
    case $s in
        corral | go) servers+=("$s") ;;
        *) die "unknown server '$s' in SERVERS (know: corral, go)" ;;
    esac
done
((${#servers[@]} > 0)) || die "SERVERS is empty"
wants() { [[ " ${servers[*]} " == *" $1 "* ]]; }

ns=()
for n in $NS; do
    is_count "$n" || die "NS must be positive integers, got '$n'"
    ((n <= 30000)) || die "N=$n: the client allows at most 30000 (may's ~32k coroutines)"
    ns+=("$n")
done
((${#ns[@]} > 0)) || die "NS is empty"

modes=()
for m in $MODES; do
    case $m in
        poll | idle) modes+=("$m") ;;
        *) die "unknown mode '$m' in MODES (know: poll, idle)" ;;
    esac
done
((${#modes[@]} > 0)) || die "MODES is empty"

for tool in cargo curl taskset timeout ss python3 flock; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
if wants go; then
    command -v go >/dev/null || die "'go' not found (apt-get install -y golang-go)"
fi

hard_files=$(ulimit -Hn)
for n in "${ns[@]}"; do
    [[ $hard_files == unlimited ]] || ((n + 100 <= hard_files)) ||
        die "N=$n needs more open files than the hard limit $hard_files allows" \
            "(server and client each hold N)"
done

mkdir -p "$OUT"
# Corral's automatic limits.max_connections keeps a 16th of the descriptor limit for its own
# (18,750 of 20,000 here), so at N = 19,000 the last 250 would get a 503 and the client's
# /metrics asks with them: the connection limit is set to what the run needs (N, the client's
# ask, a margin), which the hard limit checked above allows.
max_n=0
for n in "${ns[@]}"; do ((n > max_n)) && max_n=$n; done
printf '[demo]\npoll_timeout_ms = %d\n\n[limits]\nmax_connections = %d\n' \
    "$POLL_TIMEOUT_MS" "$((max_n + 50))" >"$OUT/corral.toml"

# ---- the benchmark lock ------------------------------------------------------------------------

exec 9>>"$LOCK"

release_lock() { flock -u 9; }

# ---- process handling: we only ever signal the one server PID we started (lib.sh) -----------

init_server_handling

# Both exec into the server, so $! is the server's own PID (the client reads its RSS).
# `9>&-`: the server must not inherit the lock.
start_server() { # name port log
    case $1 in
        corral)
            echo "$CORRAL_BIN --listen $HOST:$2 --workers $THREADS --config $OUT/corral.toml" >"$3"
            taskset -c "$SERVER_CPUS" "$CORRAL_BIN" --listen "$HOST:$2" --workers "$THREADS" \
                --config "$OUT/corral.toml" >>"$3" 2>&1 9>&- &
            ;;
        go)
            echo "GOMAXPROCS=$THREADS $GO_BIN -listen $HOST:$2 -timeout ${POLL_TIMEOUT_MS}ms" >"$3"
            (
                ulimit -n "$hard_files"
                GOMAXPROCS=$THREADS exec taskset -c "$SERVER_CPUS" "$GO_BIN" -listen "$HOST:$2" \
                    -timeout "${POLL_TIMEOUT_MS}ms"
            ) >>"$3" 2>&1 9>&- &
            ;;
    esac
    server_pid=$!
}

# ---- build ---------------------------------------------------------------------------------

if wants corral; then
    echo "== cargo build --release --features cli   (corral)"
    cargo build --release --features cli || die "building Corral failed"
    [[ -x $CORRAL_BIN ]] || die "no Corral binary at $CORRAL_BIN after the build"
fi
if wants go; then
    echo "== go build   ($GO_DIR, $(go version))"
    (cd "$GO_DIR" && go build -o go_longpoll .) || die "building the Go peer failed"
    [[ -x $GO_BIN ]] || die "no Go peer binary at $GO_BIN after the build"
fi

echo "== cargo bench --bench fanout --no-run   (client)"
cargo bench --bench fanout --no-run --message-format=json >"$OUT/fanout-build.json" ||
    die "building the fan-out client failed"
fanout_bin=$(bench_executable fanout "$OUT/fanout-build.json")
[[ -n $fanout_bin && -x $fanout_bin ]] || die "found no fanout executable in $OUT/fanout-build.json"

# ---- runs ----------------------------------------------------------------------------------

echo
echo "== servers: ${servers[*]} ($THREADS threads, CPUs $SERVER_CPUS); N: ${ns[*]};" \
    "modes: ${modes[*]};" \
    "$REPEATS round(s); client on CPU $CLIENT_CPU, deadline $DEADLINE, settle $SETTLE"
echo "   commit $(git describe --always --dirty 2>/dev/null || echo '?'); output in $OUT"
echo

results=$OUT/results.tsv # one line per run: server mode n round status, then the FIELDS
: >"$results"
FIELDS="rss_before_kb rss_after_kb rss_per_conn_bytes fanout_p50_ms fanout_p99_ms fanout_max_ms"
FIELDS+=" received errors held publish_ms setup_s listen_overflows syn_retrans complete"
readonly FIELDS

for ((round = 1; round <= REPEATS; round++)); do
    set_round_order "$round" "${servers[@]}"
    for mode in "${modes[@]}"; do
        for n in "${ns[@]}"; do
            for server in "${order[@]}"; do
                tag="$server-$mode-$n-round$round"
                port=$(free_port)
                log="$OUT/$tag.log"
                client_out="$OUT/$tag.out"
                subscribers_path=/metrics
                [[ $server == go ]] && subscribers_path=/subscribers

                take_lock
                start_server "$server" "$port" "$log"
                wait_ready "$server" "http://$HOST:$port/plaintext" "$log"
                status=0
                timeout --kill-after=5s "$((deadline_s + 30))s" \
                    taskset -c "$CLIENT_CPU" "$fanout_bin" --addr "$HOST:$port" --mode "$mode" \
                    --connections "$n" --topic "$TOPIC" --server-pid "$server_pid" \
                    --subscribers-path "$subscribers_path" --deadline "$DEADLINE" \
                    --settle "$SETTLE" --workers 1 >"$client_out" 2>&1 9>&- || status=$?
                outcome=ok
                if ! running "$server_pid"; then
                    server_status=0
                    wait "$server_pid" || server_status=$?
                    server_pid=
                    outcome="server-died($server_status)"
                fi
                stop_server
                release_lock

                ((status == 0)) || outcome="client-failed($status)"
                result=$(grep '^RESULT ' "$client_out" | tail -n 1) || result=
                [[ -n $result ]] || outcome="no-RESULT"
                [[ $outcome != ok || $(field complete "$result" na) == 1 ]] || outcome=incomplete
                row="$server $mode $n $round $outcome"
                for key in $FIELDS; do row+=" $(field "$key" "$result" na)"; done
                echo "$row" >>"$results"
                printf 'round %-2s %-6s %-4s N=%-6s RSS %7s -> %7s KiB  %6s B/conn  fan-out max %9s ms  received %6s  errors %s  (setup %s s, listen overflows %s)%s\n' \
                    "$round" "$server" "$mode" "$n" "$(field rss_before_kb "$result" na)" \
                    "$(field rss_after_kb "$result" na)" "$(field rss_per_conn_bytes "$result" na)" \
                    "$(field fanout_max_ms "$result" na)" "$(field received "$result" na)" \
                    "$(field errors "$result" na)" "$(field setup_s "$result" na)" \
                    "$(field listen_overflows "$result" na)" \
                    "$([[ $outcome == ok ]] || echo "   $outcome: see $client_out, $log")"
                sleep 1 # let the closed connections' FINs settle before the next server starts
            done
        done
    done
done

# ---- summary -------------------------------------------------------------------------------

# Medians over the rounds of each (server, mode, N); received is the fewest of any run, errors
# and listen overflows the sums; "runs" counts those that completed (a cut-short or failed run
# still shows its figures, but the row says so).
python3 - "$results" "$FIELDS" "${servers[*]}" "${modes[*]}" "${ns[*]}" <<'EOF'
import statistics, sys

path, fields, servers, modes, ns = sys.argv[1], sys.argv[2].split(), *map(str.split, sys.argv[3:6])
runs = {}
for line in open(path):
    server, mode, n, _round, outcome, *values = line.split()
    row = dict(zip(fields, values))
    row["outcome"] = outcome
    runs.setdefault((server, mode, n), []).append(row)

def num(v):
    try:
        return float(v)
    except ValueError:
        return None

def med(rows, key):
    vals = [num(r[key]) for r in rows if num(r[key]) is not None]
    return statistics.median(vals) if vals else None

def fmt(v, scale=1.0, digits=1):
    return "-" if v is None else f"{v / scale:.{digits}f}"

summary = {}
print()
print("== medians over the rounds (RSS in MiB, per connection in KiB, fan-out in ms)")
head = ("server", "mode", "N", "RSS before", "RSS after", "KiB/conn", "p50", "p99", "max",
        "received", "errors", "setup s", "overflows", "runs")
line = "{:<7} {:<5} {:>6} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11} {:>6} {:>7} {:>9} {:>5}"
print(line.format(*head))
for mode in modes:
    for n in ns:
        for server in servers:
            rows = runs.get((server, mode, n), [])
            if not rows:
                continue
            ok = sum(r["outcome"] == "ok" for r in rows)
            received = [num(r["received"]) for r in rows if num(r["received"]) is not None]
            errors = [num(r["errors"]) for r in rows if num(r["errors"]) is not None]
            overflows = [num(r["listen_overflows"]) for r in rows
                         if num(r["listen_overflows"]) is not None]
            s = summary[(server, mode, n)] = {k: med(rows, k) for k in fields}
            print(line.format(
                server, mode, n,
                fmt(s["rss_before_kb"], 1024), fmt(s["rss_after_kb"], 1024),
                fmt(s["rss_per_conn_bytes"], 1024, 2),
                fmt(s["fanout_p50_ms"]), fmt(s["fanout_p99_ms"]), fmt(s["fanout_max_ms"]),
                "-" if not received else f"{int(min(received))}/{n}",
                "-" if not errors else int(sum(errors)),
                fmt(s["setup_s"]),
                "-" if not overflows else int(sum(overflows)),
                f"{ok}/{len(rows)}",
            ))

# (after - before) / N counts memory the server had touched before the first connection as
# free, e.g. Corral's may coroutine pool: 1000 stacks, 8 KiB of each already touched. The
# slope of RSS after between two Ns has no such bias once both exceed what was touched in
# advance (for Corral, both above 1000).
slopes = {}
for mode in modes:
    for server in servers:
        points = sorted((int(n), summary[(server, mode, n)]["rss_after_kb"]) for n in ns
                        if (server, mode, n) in summary
                        and summary[(server, mode, n)]["rss_after_kb"] is not None)
        for (n1, r1), (n2, r2) in zip(points, points[1:]):
            slopes[(server, mode, n1, n2)] = (r2 - r1) / (n2 - n1)
if slopes:
    print()
    print("== marginal RSS per connection: slope of the median RSS after, from N1 to N2 (KiB)")
    for (server, mode, n1, n2), kib in slopes.items():
        print(f"{server:<7} {mode:<5} {n1:>6} -> {n2:<6} {kib:7.2f}")

if "corral" in servers and "go" in servers:
    print()
    print("== corral / go (ratios of the medians; below 1 favours Corral)")
    for mode in modes:
        for n in ns:
            c, g = summary.get(("corral", mode, n)), summary.get(("go", mode, n))
            if not c or not g:
                continue
            for key, what in (("fanout_max_ms", "fan-out max"), ("fanout_p99_ms", "fan-out p99"),
                              ("rss_per_conn_bytes", "RSS per connection")):
                a, b = c[key], g[key]
                if a is None or b is None:
                    continue
                ratio = "n/a (go is 0)" if b == 0 else f"{a / b:.3f}"
                print(f"{mode:<5} {'N=' + n:<14} {what:<22} {ratio}")
        for (server, m, n1, n2), kib in slopes.items():
            other = slopes.get(("go", m, n1, n2))
            if server == "corral" and m == mode and other:
                print(f"{mode:<5} {f'N={n1}->{n2}':<14} {'marginal RSS per conn':<22} "
                      f"{kib / other:.3f}")
EOF
echo
echo "per-run figures: $results (columns: server mode N round outcome $FIELDS)"
echo "client output and server logs: $OUT"
