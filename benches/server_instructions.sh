#!/usr/bin/env bash
# User-space instructions per request of the whole server process, Corral beside
# may_minihttp, counted by valgrind's cachegrind: everything the server runs (parser,
# handler, encoding, may's scheduler and I/O glue) for pipelined `GET /plaintext`, a figure
# the box's load does not move (benches/compare.sh times the same case, kernel included).
#
# Usage:   benches/server_instructions.sh
#          BATCHES=1000 SERVERS="corral" benches/server_instructions.sh
#
# Each server runs under cachegrind with one worker on a loopback port, serves BATCHES and
# then 3×BATCHES batches of DEPTH pipelined requests on CONNS connections
# (benches/pipeline_client.py), and is stopped with SIGTERM (cachegrind writes its count at
# exit); (Ir(3B) − Ir(B)) / (2B × DEPTH × CONNS) cancels start-up and shutdown.
# Needs valgrind and python3. Builds Corral (`--features cli`) and the may_minihttp peer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BATCHES=${BATCHES:-500}
DEPTH=${DEPTH:-16}
CONNS=${CONNS:-4}
SERVERS=${SERVERS:-corral may_minihttp}
PORT=${PORT:-18640}
target=${CARGO_TARGET_DIR:-$PWD/target}

command -v valgrind >/dev/null || { echo "server_instructions.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --features cli -q
(cd benches/peers/may_minihttp_hello && cargo build --release -q)

command_of() { # server port
  case $1 in
    corral) echo "$target/release/corral --listen 127.0.0.1:$2 --workers 1" ;;
    may_minihttp) echo "benches/peers/may_minihttp_hello/target/release/may_minihttp_hello 127.0.0.1:$2 1" ;;
    *) echo "server_instructions.sh: unknown server $1" >&2; exit 1 ;;
  esac
}

refs() { # server port batches: instructions of one run
  local log pid
  log=$(mktemp)
  # shellcheck disable=SC2046 # the command is words on purpose
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null $(command_of "$1" "$2") >"$log" 2>&1 &
  pid=$!
  if ! timeout 600 python3 benches/pipeline_client.py "$2" "$3" "$DEPTH" "$CONNS" >/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "server_instructions.sh: the client failed against $1 (log: $log)" >&2
    exit 1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  awk '/I *refs:/ { gsub(",", "", $NF); print $NF }' "$log"
  rm -f "$log"
}

echo "user-space instructions per request, pipelined $DEPTH deep on $CONNS connections, one worker ($(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'))"
for server in $SERVERS; do
  one=$(refs "$server" "$PORT" "$BATCHES")
  three=$(refs "$server" $((PORT + 1)) $((3 * BATCHES)))
  PORT=$((PORT + 2))
  printf '%-14s %8.0f\n' "$server" "$(echo "($three - $one) / (2 * $BATCHES * $DEPTH * $CONNS)" | bc -l)"
done
