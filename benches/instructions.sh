#!/usr/bin/env bash
# Instructions per request in the connection loop (benches/instructions.rs), counted by
# valgrind's cachegrind: a figure that a busy machine does not move, for comparing two builds
# of the loop (a timing on a shared 2-core box moves ±50% with the neighbours' load).
#
# Usage:   benches/instructions.sh                 the working tree
#          REV=main benches/instructions.sh        a commit, built in a temporary worktree
#          CASES="pipelined" ROUNDS=2000 benches/instructions.sh
#
# For each case it runs the binary under cachegrind at ROUNDS and 2×ROUNDS rounds and prints
# (Ir(2R) − Ir(R)) / (R × requests per round): the loop's own instructions per request,
# start-up cancelled. It counts user-space instructions only: the kernel's share (the read
# and write syscalls of a real socket) is not in it; benches/compare.sh measures that side.
# Needs valgrind (`apt-get install valgrind`; installed when missing and we are root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CASES=${CASES:-keep_alive pipelined echo static}
ROUNDS=${ROUNDS:-1000}
REV=${REV:-}

if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y valgrind >/dev/null
  else
    echo "instructions.sh: valgrind is missing (apt-get install valgrind)" >&2
    exit 1
  fi
fi

src=$PWD
if [ -n "$REV" ]; then
  src=$(mktemp -d /tmp/corral-instructions.XXXXXX)
  git worktree add -q --detach "$src" "$REV"
  trap 'git worktree remove --force "$src"' EXIT
fi
target=${CARGO_TARGET_DIR:-$PWD/target}
bin=$(cd "$src" && CARGO_TARGET_DIR=$target cargo bench --features bench-internals \
  --bench instructions --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "instructions.sh: build failed" >&2; exit 1; }

refs() { # instructions executed by one run: valgrind's "I refs" line
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$@" 2>&1 |
    awk '/I *refs:/ { gsub(",", "", $NF); print $NF }'
}
per_round() { case $1 in pipelined) echo 16 ;; *) echo 1 ;; esac; }

echo "instructions per request, $(cd "$src" && git rev-parse --short HEAD)$([ -z "$REV" ] && ! git diff --quiet && echo '+changes')"
for case in $CASES; do
  one=$(refs "$case" "$ROUNDS")
  two=$(refs "$case" $((2 * ROUNDS)))
  requests=$((ROUNDS * $(per_round "$case")))
  printf '%-12s %8.0f\n' "$case" "$(echo "($two - $one) / $requests" | bc -l)"
done
