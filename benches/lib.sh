# shellcheck shell=bash
# Helpers shared by the benchmark scripts (plaintext.sh, placement.sh, longpoll.sh).
#
# Source it before the script changes directory:
#     SCRIPT_NAME=plaintext.sh
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It only defines functions; nothing runs at source time. At call time the functions read
# these globals of the script: SCRIPT_NAME (die's prefix; ${0##*/} if unset), HOST, OUT,
# READY_TIMEOUT, EXPECTED_BODY, server_pid, and STOP_GRACE_S (optional, default 5);
# set_round_order sets the script's `order`.

die() {
    echo "${SCRIPT_NAME:-${0##*/}}: error: $*" >&2
    exit 1
}

take_lock() { # the shared benchmark lock, on fd 9 (the caller opened it: exec 9>>"$LOCK")
    flock -n 9 && return 0
    echo "   (waiting for $LOCK: another benchmark is running)"
    flock -w "$LOCK_WAIT" 9 || die "could not take $LOCK within ${LOCK_WAIT}s"
}

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

seconds() { # name value [allow zero]: N, Ns or Nm -> seconds
    [[ $2 =~ ^([0-9]+)([sm]?)$ ]] || die "$1 must look like 10, 10s or 1m, got '$2'"
    local n=$((10#${BASH_REMATCH[1]}))
    [[ ${BASH_REMATCH[2]} == m ]] && n=$((n * 60))
    ((n > 0)) || [[ ${3:-} == zero ]] || die "$1 must be greater than 0"
    echo "$n"
}

# ---- process handling: we only ever signal the one server PID we started --------------------
#
# The script keeps that PID in `server_pid` (empty when no server runs); stop_server signals
# that PID and no other, and clears it.

running() { # alive and not a zombie waiting to be reaped
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $stat != Z* ]]
}

stop_server() {
    [[ -n $server_pid ]] || return 0
    local pid=$server_pid i
    server_pid=
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < ${STOP_GRACE_S:-5} * 10; i++)); do # STOP_GRACE_S for a graceful exit
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || true
}

# No server yet; stop the one we started on any exit, and turn INT/TERM into an exit.
init_server_handling() {
    server_pid=
    trap stop_server EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# A port nobody uses, below the ephemeral range so the load generator's own ports cannot collide.
free_port() {
    local low port
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    ((low > 11000)) || low=32768
    for _ in {1..100}; do
        port=$((10000 + RANDOM % (low - 10000)))
        if [[ -z $(ss -Htan "sport = :$port") ]]; then
            echo "$port"
            return 0
        fi
    done
    die "found no free TCP port on $HOST"
}

# Poll until GET url gives 200 with EXPECTED_BODY; bounded by READY_TIMEOUT. `who` names the
# server in the messages, `hint` (if any) ends the exit and timeout messages, `body_who`
# (default: who) names it in the wrong-body message.
wait_ready() { # who url log [hint [body_who]]
    local who=$1 url=$2 log=$3 hint=${4:-} body_who=${5:-$1} body=$OUT/ready-body code=000 status
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! running "$server_pid"; then
            status=0
            wait "$server_pid" || status=$?
            server_pid=
            echo "--- last lines of $log:" >&2
            tail -n 20 "$log" >&2 || true
            die "$who exited during startup (exit status $status)$hint"
        fi
        code=$(curl -s -o "$body" -w '%{http_code}' --max-time 1 "$url") || code=000
        if [[ $code == 200 ]]; then
            [[ $(<"$body") == "$EXPECTED_BODY" ]] ||
                die "$body_who answered $url with body '$(head -c 80 "$body")', want '$EXPECTED_BODY'"
            return 0
        fi
        sleep 0.1
    done
    die "$who did not answer 200 on $url within ${READY_TIMEOUT}s" \
        "(last HTTP status: $code; 000 = no connection; server log: $log)$hint"
}

# Sets `order` to the names as given, reversed every other round, so slow drift (heat,
# neighbours) does not always hit the same one first.
set_round_order() { # round names...
    local round=$1 i
    shift
    order=("$@")
    if ((round % 2 == 0)); then # every other round, the other server goes first
        order=()
        for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done
    fi
}

# ---- builds ----------------------------------------------------------------------------------

bench_executable() { # target json: the executable of bench target `target` in cargo's
    # --message-format=json output `json` (the last one named; nothing if none)
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == sys.argv[2] \
            and msg.get("executable"):
        print(msg["executable"])
' "$2" "$1" | tail -n 1
}

build_corral() { # out: builds the release binary and copies it to out/corral (the copy
    # is what runs, so a rebuild meanwhile changes nothing); sets corral_bin and commit
    echo "== cargo build --release --features cli   (corral)"
    cargo build --release --features cli || die "building Corral failed"
    [[ -x $CORRAL_BIN ]] || die "no Corral binary at $CORRAL_BIN after the build"
    commit=$(git describe --always --dirty 2>/dev/null || echo '?')
    corral_bin=$1/corral
    cp "$CORRAL_BIN" "$corral_bin" || die "cannot copy $CORRAL_BIN to $1"
}

build_bench_client() { # target out: builds bench target `target` and copies its executable
    # to out/target
    echo "== cargo bench --bench $1 --no-run   (client)"
    cargo bench --bench "$1" --no-run --message-format=json >"$2/$1-build.json" ||
        die "building the $1 client failed"
    local bin
    bin=$(bench_executable "$1" "$2/$1-build.json")
    [[ -n $bin && -x $bin ]] || die "found no $1 executable in $2/$1-build.json"
    cp "$bin" "$2/$1" || die "cannot copy $bin to $2"
}

# ---- results ---------------------------------------------------------------------------------

median() { # format numbers...: the median in printf `format`; the mean of the middle two when
    # the count is even
    local format=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v f="$format\n" '
        { v[NR] = $1 }
        END { if (NR % 2) printf f, v[(NR + 1) / 2]
              else printf f, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

field() { # key line [default]: the value of key=value in a RESULT line; if absent, default,
    # or with no default an error
    local word
    for word in $2; do
        [[ $word == "$1="* ]] && { echo "${word#*=}"; return 0; }
    done
    (($# > 2)) || die "no '$1=' in: $2"
    echo "$3"
}
