#!/usr/bin/env bash
# Plaintext throughput on loopback: Corral against may_minihttp, both on one may worker.
#
# Every run starts one server fresh, pinned to CPU $SERVER_CPU, waits until GET /plaintext
# answers 200 "Hello, World!", loads it with wrk pinned to CPU $CLIENT_CPU, then stops it.
# Rounds alternate which server goes first so slow drift (heat, neighbours) hits both.
# At the end: every run's req/s, each server's median, and the ratio corral / may_minihttp.
#
# Usage:   benches/plaintext.sh
#          SERVERS=peer REPEATS=1 DURATION=5s benches/plaintext.sh      # may_minihttp only
#
# Environment (default in brackets):
#   SERVERS        which servers, in first-round order: corral, peer (alias may_minihttp)
#                  ["corral peer"]
#   DURATION       wrk -d for each run: N, Ns, Nm [10s]
#   REPEATS        runs per server [3]
#   CONNECTIONS    wrk -c [64]
#   THREADS        wrk -t [1]
#   SERVER_CPU     CPU the server is pinned to [0]
#   CLIENT_CPU     CPU wrk is pinned to [1]
#   READY_TIMEOUT  seconds to wait for a server's first 200 [10]
#   OUT            where wrk output and server logs go [target/bench/plaintext-<timestamp>]
#
# The peer is its own crate (benches/peers/may_minihttp_hello, own target dir) so its may
# features never unify into Corral's build; see docs/architecture.md, "Hazards" (feature unification).
set -euo pipefail

SCRIPT_NAME=plaintext.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
SERVERS=${SERVERS:-corral peer}
DURATION=${DURATION:-10s}
REPEATS=${REPEATS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
OUT=${OUT:-target/bench/plaintext-$(date +%Y%m%d-%H%M%S)}

readonly PEER_DIR=benches/peers/may_minihttp_hello
readonly PEER_BIN=$PEER_DIR/target/release/may_minihttp_hello
readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly EXPECTED_BODY='Hello, World!'

label() {
    case $1 in
        corral) echo corral ;;
        peer) echo may_minihttp ;;
    esac
}

# ---- settings ------------------------------------------------------------------------------

is_count "$REPEATS" || die "REPEATS must be a positive integer, got '$REPEATS'"
is_count "$CONNECTIONS" || die "CONNECTIONS must be a positive integer, got '$CONNECTIONS'"
is_count "$THREADS" || die "THREADS must be a positive integer, got '$THREADS'"
is_count "$READY_TIMEOUT" || die "READY_TIMEOUT must be a positive integer, got '$READY_TIMEOUT'"

# wrk's -d takes N, Ns, Nm or Nh; we need seconds for the outer `timeout` bound.
[[ $DURATION =~ ^([1-9][0-9]*)([smh]?)$ ]] || die "DURATION must look like 10, 10s or 1m, got '$DURATION'"
case ${BASH_REMATCH[2]} in
    s | '') duration_s=${BASH_REMATCH[1]} ;;
    m) duration_s=$((BASH_REMATCH[1] * 60)) ;;
    h) duration_s=$((BASH_REMATCH[1] * 3600)) ;;
esac

servers=()
for s in $SERVERS; do
    case $s in
        corral) servers+=(corral) ;;
        peer | may_minihttp) servers+=(peer) ;;
        *) die "unknown server '$s' in SERVERS (know: corral, peer)" ;;
    esac
done
((${#servers[@]} > 0)) || die "SERVERS is empty"
wants() { [[ " ${servers[*]} " == *" $1 "* ]]; }

for tool in cargo curl taskset wrk timeout ss; do
    command -v "$tool" >/dev/null || die "'$tool' not found (wrk: apt-get install -y wrk)"
done
[[ $SERVER_CPU != "$CLIENT_CPU" ]] ||
    echo "plaintext.sh: warning: server and wrk share CPU $SERVER_CPU; figures will be low" >&2

mkdir -p "$OUT"

# ---- process handling: we only ever signal the one server PID we started (lib.sh) -----------

init_server_handling

start_server() { # name port log
    local cmd
    case $1 in
        corral) cmd=("$CORRAL_BIN" --listen "$HOST:$2" --workers 1) ;;
        peer) cmd=("$PEER_BIN" "$HOST:$2" 1) ;;
    esac
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$3" 2>&1 &
    server_pid=$!
}

hint() {
    case $1 in
        corral) echo "Corral must take '--listen ADDR --workers N' and serve GET /plaintext;" \
            "to measure only the peer: SERVERS=peer $0" ;;
        peer) echo "the peer takes 'ADDR WORKERS'; see $PEER_DIR/src/main.rs" ;;
    esac
}

# ---- build ---------------------------------------------------------------------------------

if wants corral; then
    echo "== cargo build --release --features cli   (corral)"
    cargo build --release --features cli ||
        die "building Corral failed; to measure only the peer: SERVERS=peer $0"
    [[ -x $CORRAL_BIN ]] || die "no Corral binary at $CORRAL_BIN after the build"
    corral_may=$(cargo tree -i may -e normal -f '{f}' --depth 0 2>/dev/null) || corral_may='?'
fi
if wants peer; then
    echo "== cargo build --release --manifest-path $PEER_DIR/Cargo.toml   (may_minihttp)"
    # --target-dir keeps the peer's artifacts apart even if CARGO_TARGET_DIR is set.
    cargo build --release --manifest-path "$PEER_DIR/Cargo.toml" --target-dir "$PEER_DIR/target" ||
        die "building the may_minihttp peer failed"
    peer_may=$(cargo tree --manifest-path "$PEER_DIR/Cargo.toml" -i may -e normal -f '{f}' \
        --depth 0 2>/dev/null) || peer_may='?'
fi

# ---- runs ----------------------------------------------------------------------------------

echo
echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION, ${REPEATS} run(s) per server;" \
    "servers on CPU $SERVER_CPU (1 worker), wrk on CPU $CLIENT_CPU"
echo "   commit $(git describe --always --dirty 2>/dev/null || echo '?'); output in $OUT"
wants corral && echo "   may features, corral:       $corral_may"
wants peer && echo "   may features, may_minihttp: $peer_may"
echo

declare -A rps_of=()  # name -> space-separated req/s of each run
summary=()

for ((round = 1; round <= REPEATS; round++)); do
    set_round_order "$round" "${servers[@]}"
    for name in "${order[@]}"; do
        port=$(free_port)
        url="http://$HOST:$port/plaintext"
        log="$OUT/$name-round$round.log"
        wrk_out="$OUT/$name-round$round.wrk"

        start_server "$name" "$port" "$log"
        wait_ready "$(label "$name")" "$url" "$log" ": $(hint "$name")"

        status=0
        timeout --kill-after=5s "$((duration_s + 30))s" \
            taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$url" \
            >"$wrk_out" 2>&1 || status=$?
        stop_server
        ((status == 0)) || die "wrk against $(label "$name") failed (exit status $status); see $wrk_out"

        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$wrk_out")
        [[ -n $rps ]] || die "no 'Requests/sec' line in $wrk_out"
        errors=$(grep -E '^[[:space:]]*(Non-2xx or 3xx responses|Socket errors):' "$wrk_out" |
            sed -E 's/^[[:space:]]+//' | paste -sd ';' -) || errors=

        rps_of[$name]+="$rps "
        line=$(printf 'round %-3s %-13s %12s req/s' "$round" "$(label "$name")" "$rps")
        [[ -z $errors ]] || line+="   ERRORS: $errors"
        echo "$line"
        summary+=("$line")
    done
done

# ---- summary -------------------------------------------------------------------------------

echo
echo "== results (req/s)"
printf '%s\n' "${summary[@]}"
declare -A median_of=()
for name in "${servers[@]}"; do
    # shellcheck disable=SC2086 # the runs are a space-separated list on purpose
    median_of[$name]=$(median %.2f ${rps_of[$name]})
    printf 'median    %-13s %12s req/s\n' "$(label "$name")" "${median_of[$name]}"
done
if wants corral && wants peer; then
    awk -v c="${median_of[corral]}" -v p="${median_of[peer]}" \
        'BEGIN { printf "ratio corral/may_minihttp = %.3f\n", c / p }'
fi
