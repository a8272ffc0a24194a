#!/usr/bin/env bash
# The Autobahn testsuite's fuzzing client against examples/websocket_echo.rs: every RFC 6455
# case but 12.* and 13.* (permessage-deflate, which Corral does not offer) and 9.*
# (throughput with messages up to 16 MiB: slow here, and not conformance). The report is
# written to $OUT (index.html, index.json); the script prints the count of each behaviour.
#
# autobahntestsuite needs Python 2.7 (its last release is Python 2 only). With pyenv:
#     PYENV_VERSION=2.7.18 python -m pip install --prefix /tmp/ab setuptools==44.0.0 wheel
#     PYENV_VERSION=2.7.18 PYTHONPATH=/tmp/ab/lib/python2.7/site-packages \
#         python -m pip install --prefix /tmp/ab autobahntestsuite
# then WSTEST=/tmp/ab/bin/wstest scripts/autobahn.sh (the script adds the prefix's
# site-packages as a site directory, so that its namespace packages, zope.*, load).
#
# Environment: WSTEST [wstest on PATH], CASES [*], EXCLUDE ["9.* 12.* 13.*"],
# OUT [target/autobahn], PORT [a free one].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WSTEST=${WSTEST:-$(command -v wstest || true)}
[[ -n $WSTEST && -x $WSTEST ]] || { echo "autobahn.sh: no wstest (see the header)" >&2; exit 1; }
prefix=$(dirname "$(dirname "$WSTEST")")
site=$(cd "$prefix/lib/python2.7/site-packages" && pwd)
export PYENV_VERSION=${PYENV_VERSION:-2.7.18}
CASES=${CASES:-*}
EXCLUDE=${EXCLUDE:-9.* 12.* 13.*}
OUT=${OUT:-target/autobahn}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PORT=${PORT:-$((20000 + RANDOM % 10000))}
mkdir -p "$OUT"

cargo build --release --example websocket_echo
bin=${CARGO_TARGET_DIR:-target}/release/examples/websocket_echo
LISTEN=127.0.0.1:$PORT "$bin" >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in {1..100}; do
    grep -q 'websocket echo on' "$OUT/server.log" && break
    sleep 0.1
done

exclude=$(printf '"%s",' $EXCLUDE)
cat >"$OUT/spec.json" <<JSON
{"outdir": "$OUT/report",
 "servers": [{"agent": "corral", "url": "ws://127.0.0.1:$PORT/"}],
 "cases": ["$CASES"], "exclude-cases": [${exclude%,}], "exclude-agent-cases": {}}
JSON
(cd "$OUT" && timeout 1800 python2 -c "
import site, sys
site.addsitedir('$site')
sys.argv = ['wstest'] + sys.argv[1:]
from autobahntestsuite.wstest import run
run()" -m fuzzingclient -s spec.json) >"$OUT/wstest.log" 2>&1
python3 - "$OUT/report/index.json" <<'PY'
import collections, json, sys
cases = json.load(open(sys.argv[1]))["corral"]
count = collections.Counter((r["behavior"], r["behaviorClose"]) for r in cases.values())
print(f"{len(cases)} cases")
for (behavior, close), n in sorted(count.items()):
    print(f"  {n:4d}  behavior {behavior:<12} close {close}")
bad = sorted((c for c, r in cases.items() if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")),
             key=lambda c: [int(x) for x in c.split(".")])
print("not OK:", " ".join(bad) if bad else "none")
PY
