#!/usr/bin/env bash
# Corral beside its peers, case by case, in one run (issue 12): the whole comparison.
#
# Usage:   benches/compare.sh
#          DURATION=2s REPEATS=1 CASES=plaintext64,static PEERS=may_minihttp,nginx benches/compare.sh
#          CASES=pipelined PEERS=may_minihttp REPEATS=5 benches/compare.sh
#
# Every run starts one server fresh on a new loopback port, pinned to CPU $SERVER_CPU with one
# worker (Corral --workers 1, may_minihttp 1 worker, axum on a current_thread tokio runtime,
# Go GOMAXPROCS=1, Erlang +S 1, nginx worker_processes 1), waits until GET /plaintext answers
# "Hello, World!", warms it up for $WARMUP, then loads it with wrk or ab pinned to CPU
# $CLIENT_CPU, and stops it. Each round runs every case on every server that has it; the
# order of the servers flips every other round, so slow drift (heat, neighbours) hits all.
#
# Cases (CASES, comma- or space-separated; default all):
#   plaintext64    GET /plaintext, wrk -t1 -c64
#   plaintext1024  GET /plaintext, wrk -t1 -c1024
#   pipelined      GET /plaintext, 16 requests per write (benches/wrk/pipeline.lua), -c64
#   work           GET /work?us=2000 (the handler sleeps 2 ms without holding its worker), -c1024
#   static         GET /static/4k.txt (Corral's examples/static; nginx serves a copy), -c64
#   fresh          GET /static/4k.txt, a new connection per request: ab -n $FRESH_N -c $FRESH_C
#   json           GET /json ({"message":"Hello, World!"}), -c64
#   echo           POST /echo with a 4 KiB body (benches/wrk/post.lua), -c64
# Peers (PEERS, default all; Corral always runs; PEERS=none for Corral alone), and the cases
# each one has:
#   may_minihttp   benches/peers/may_minihttp_hello   plaintext*, pipelined, work, json, echo
#   axum           benches/peers/axum_hello           the same (TCP_NODELAY, current_thread)
#   go             benches/peers/go_hello (net/http)  the same
#   erlang         benches/peers/erlang_hello         the same (gen_tcp, escript)
#   nginx          benches/peers/nginx/nginx.conf.in  plaintext*, pipelined, static, fresh, json
#
# For every run: req/s, p50/p99 (and max for ab), the server's CPU per request in µs (the
# utime+stime delta of the server's processes in /proc/PID/stat over the measured interval,
# divided by the requests the client counted, so that client-bound cases still compare), its
# RSS at the end of the interval, the client's own CPU and the busy share of its core (from
# /proc/stat). The limit column says `client` when the load generator used >= 95% of its core
# (then req/s measures the client; compare CPU per request), `server` when the server used
# >= 95% of its own, and `noisy` when neither did but the client's core was >= 95% busy all
# the same: other processes took it, and that run's figures are not to be trusted. At the end: every run, then per case and server the medians of the
# rounds and the ratios Corral/peer (req/s: above 1 is Corral faster; CPU per request: below 1
# is Corral cheaper). The results dir gets the runs (runs.tsv), the medians (summary.tsv), a
# Markdown table (summary.md), SVG charts (throughput.svg, cpu_per_request.svg, latency.svg,
# drawn by benches/plot with plotters) and readme-snippet.md, to paste into the README's
# Performance section after a run on a quiet machine.
#
# Tools and peers that are missing are installed with apt-get when INSTALL=1 and we are root
# (wrk, apache2-utils for ab, golang-go, erlang-nox, nginx-light); one that still cannot be
# had is skipped with a line saying so, never a failure of the whole run. (On a machine with
# an init system, Debian's nginx package starts its own nginx on port 80; this script never
# touches it.) Builds: Corral with `cargo build --release --features cli` (CARGO_TARGET_DIR
# is honoured); each Rust peer and the plotter with its own manifest and target dir, so
# their features never unify into Corral's build (docs/architecture.md, "Hazards").
#
# Other engineers benchmark on this machine too: every measured run (server start to server
# stop) holds an exclusive flock on $LOCK, so measurements never overlap. Builds do not.
# Everything is on loopback; every load run is bounded by its own duration or request
# count and by a watchdog; the script only ever signals the PIDs it started.
#
# Environment (default in brackets):
#   DURATION       wrk -d of each measured run: N, Ns or Nm [10s]
#   WARMUP         unmeasured wrk run before it, same case: N, Ns; 0 for none [1s]
#   REPEATS        rounds [3]
#   CASES          subset of the cases above [all]
#   PEERS          subset of the peers above, or none [all]
#   FRESH_N        ab -n for `fresh` [40000]
#   FRESH_C        ab -c for `fresh` [10000]
#   SERVER_CPU     CPU every server is pinned to [0]
#   CLIENT_CPU     CPU wrk and ab are pinned to [1]
#   READY_TIMEOUT  seconds to wait for a server's first 200 [15]
#   INSTALL        1: apt-get install what is missing (as root); 0: only skip it [1]
#   PLOT           1: draw the SVG charts; 0: tables only [1]
#   LOCK           the shared benchmark lock file [/tmp/corral-bench.lock]
#   LOCK_WAIT      seconds to wait for the lock before giving up [3600]
#   OUT            results dir [target/compare/<date>-<time>]
set -euo pipefail

SCRIPT_NAME=compare.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # before the cd: the path may be relative
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly HOST=127.0.0.1 # loopback only; not configurable on purpose
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
REPEATS=${REPEATS:-3}
CASES=${CASES:-all}
PEERS=${PEERS:-all}
FRESH_N=${FRESH_N:-40000}
FRESH_C=${FRESH_C:-10000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
READY_TIMEOUT=${READY_TIMEOUT:-15}
INSTALL=${INSTALL:-1}
PLOT=${PLOT:-1}
LOCK=${LOCK:-/tmp/corral-bench.lock}
LOCK_WAIT=${LOCK_WAIT:-3600}
OUT=${OUT:-target/compare/$(date +%Y%m%d-%H%M%S)}

readonly ALL_CASES=(plaintext64 plaintext1024 pipelined work static fresh json echo)
readonly ALL_PEERS=(may_minihttp axum go erlang nginx)
readonly CORRAL_BIN=${CARGO_TARGET_DIR:-target}/release/corral
readonly MAY_DIR=benches/peers/may_minihttp_hello
readonly AXUM_DIR=benches/peers/axum_hello
readonly GO_DIR=benches/peers/go_hello
readonly ERLANG_SCRIPT=benches/peers/erlang_hello/erlang_hello.escript
readonly NGINX_CONF=benches/peers/nginx/nginx.conf.in
readonly PLOT_DIR=benches/plot
readonly EXPECTED_BODY='Hello, World!'
readonly PIPELINE_DEPTH=16
readonly ECHO_BYTES=4096
readonly WORK_US=2000
readonly BUSY_PCT=95 # a core this busy was the limit

# ---- settings ------------------------------------------------------------------------------

is_count "$REPEATS" || die "REPEATS must be a positive integer, got '$REPEATS'"
is_count "$FRESH_N" || die "FRESH_N must be a positive integer, got '$FRESH_N'"
is_count "$FRESH_C" || die "FRESH_C must be a positive integer, got '$FRESH_C'"
((FRESH_C <= FRESH_N)) || die "FRESH_C ($FRESH_C) must be at most FRESH_N ($FRESH_N)"
is_count "$READY_TIMEOUT" || die "READY_TIMEOUT must be a positive integer, got '$READY_TIMEOUT'"
is_count "$LOCK_WAIT" || die "LOCK_WAIT must be a positive integer, got '$LOCK_WAIT'"
[[ $INSTALL == [01] ]] || die "INSTALL must be 0 or 1, got '$INSTALL'"
[[ $PLOT == [01] ]] || die "PLOT must be 0 or 1, got '$PLOT'"
duration_s=$(seconds DURATION "$DURATION")
warmup_s=$(seconds WARMUP "$WARMUP" zero)
[[ $SERVER_CPU != "$CLIENT_CPU" ]] ||
    echo "compare.sh: warning: server and client share CPU $SERVER_CPU; figures will be low" >&2

words() { tr ',' ' ' <<<"$1"; }
member() { # word words...
    local w=$1
    shift
    [[ " $* " == *" $w "* ]]
}

cases=()
if [[ $CASES == all ]]; then
    cases=("${ALL_CASES[@]}")
else
    for c in $(words "$CASES"); do
        member "$c" "${ALL_CASES[@]}" || die "unknown case '$c' in CASES (know: ${ALL_CASES[*]})"
        member "$c" "${cases[@]}" || cases+=("$c")
    done
fi
((${#cases[@]} > 0)) || die "CASES is empty"

peers=()
if [[ $PEERS == all ]]; then
    peers=("${ALL_PEERS[@]}")
elif [[ $PEERS != none ]]; then
    for p in $(words "$PEERS"); do
        [[ $p == corral ]] && continue # always there
        member "$p" "${ALL_PEERS[@]}" || die "unknown peer '$p' in PEERS (know: ${ALL_PEERS[*]}, none)"
        member "$p" "${peers[@]}" || peers+=("$p")
    done
fi

# Which servers have which case.
serves() { # server case
    case $1 in
        corral) return 0 ;;
        may_minihttp | axum | go | erlang) member "$2" plaintext64 plaintext1024 pipelined work json echo ;;
        nginx) member "$2" plaintext64 plaintext1024 pipelined static fresh json ;;
        *) return 1 ;;
    esac
}

case_title() {
    case $1 in
        plaintext64) echo "/plaintext -c64" ;;
        plaintext1024) echo "/plaintext -c1024" ;;
        pipelined) echo "pipelined $PIPELINE_DEPTH deep, -c64" ;;
        work) echo "/work?us=$WORK_US -c1024" ;;
        static) echo "/static/4k.txt -c64" ;;
        fresh) echo "fresh connections × 4 KiB (ab -n $FRESH_N -c $FRESH_C)" ;;
        json) echo "/json -c64" ;;
        echo) echo "POST /echo 4 KiB -c64" ;;
    esac
}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # absolute: nginx's config and the plotter need it

# ---- tools and peers: install what is missing, or skip it ---------------------------------------

apt_updated=
have() { # command package: is the command there (after installing package if allowed)?
    command -v "$1" >/dev/null && return 0
    if [[ $INSTALL == 1 ]] && ((EUID == 0)) && command -v apt-get >/dev/null; then
        echo "== apt-get install -y $2   (for '$1'; log: $OUT/apt.log)"
        if [[ -z $apt_updated ]]; then
            apt-get update -qq >>"$OUT/apt.log" 2>&1 || true
            apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >>"$OUT/apt.log" 2>&1 || true
        hash -r
    fi
    command -v "$1" >/dev/null
}

for tool in cargo curl taskset timeout ss python3 flock getconf; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done

skipped=() # "what: why" lines, printed again at the end
skip() {
    echo "   SKIPPED $1"
    skipped+=("$1")
}

have_wrk=1
have_ab=1
have wrk wrk || { have_wrk=0; skip "every wrk case: wrk is not installed (apt-get install wrk)"; }
if member fresh "${cases[@]}"; then
    have ab apache2-utils || { have_ab=0; skip "fresh: ab is not installed (apt-get install apache2-utils)"; }
fi

# The servers of this run: Corral, then the peers that exist and build.
servers=(corral)
echo "== cargo build --release --features cli   (corral)"
cargo build --release --features cli || die "building Corral failed"
[[ -x $CORRAL_BIN ]] || die "no Corral binary at $CORRAL_BIN after the build"

declare -A version_of=()
version_of[corral]="$(git describe --always --dirty 2>/dev/null || echo '?')"

lock_version() { # Cargo.lock crate: the version of crate in that lockfile
    awk -v name="$2" '$1 == "name" && $3 == "\"" name "\"" { getline; gsub(/"/, "", $3); print $3; exit }' "$1"
}

needed() { # peer: does any chosen case use it?
    local c
    for c in "${cases[@]}"; do serves "$1" "$c" && return 0; done
    return 1
}

for peer in "${peers[@]}"; do
    if ! needed "$peer"; then
        skip "$peer: none of the chosen cases (${cases[*]}) is one it serves"
        continue
    fi
    case $peer in
        may_minihttp | axum)
            dir=$MAY_DIR
            [[ $peer == axum ]] && dir=$AXUM_DIR
            echo "== cargo build --release --manifest-path $dir/Cargo.toml   ($peer)"
            if cargo build --release --manifest-path "$dir/Cargo.toml" --target-dir "$dir/target"; then
                servers+=("$peer")
                crate=may_minihttp
                [[ $peer == axum ]] && crate=axum
                version_of[$peer]="$crate $(lock_version "$dir/Cargo.lock" "$crate")"
            else
                skip "$peer: its build failed (see above)"
            fi
            ;;
        go)
            if ! have go golang-go; then
                skip "go: no Go toolchain (apt-get install golang-go)"
            else
                echo "== go build   ($GO_DIR, $(go version))"
                if (cd "$GO_DIR" && go build -o go_hello .); then
                    servers+=(go)
                    version_of[go]="$(go version | awk '{ print $3 }') net/http"
                else
                    skip "go: its build failed (see above)"
                fi
            fi
            ;;
        erlang)
            if ! have escript erlang-nox; then
                skip "erlang: no Erlang/OTP (apt-get install erlang-nox)"
            else
                servers+=(erlang)
                version_of[erlang]="OTP $(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().' 2>/dev/null || echo '?') gen_tcp"
            fi
            ;;
        nginx)
            if ! have nginx nginx-light; then
                skip "nginx: not installed (apt-get install nginx-light)"
            else
                servers+=(nginx)
                version_of[nginx]="$(nginx -v 2>&1 | sed 's/^nginx version: //')"
            fi
            ;;
    esac
done

plotter=
if [[ $PLOT == 1 ]]; then
    echo "== cargo build --release --manifest-path $PLOT_DIR/Cargo.toml   (charts)"
    if cargo build --release --manifest-path "$PLOT_DIR/Cargo.toml" --target-dir "$PLOT_DIR/target"; then
        plotter=$PLOT_DIR/target/release/compare_plot
    else
        skip "charts: building $PLOT_DIR failed (tables only)"
    fi
fi

# ---- the benchmark lock ------------------------------------------------------------------------

exec 9>>"$LOCK"

release_lock() { flock -u 9; }

# ---- process handling: we only ever signal the PIDs we started (lib.sh) -------------------------

init_server_handling
client_pid=
stop_client() { # the load generator we started, if it still runs
    [[ -n $client_pid ]] || return 0
    kill -TERM "$client_pid" 2>/dev/null || true
    wait "$client_pid" 2>/dev/null || true
    client_pid=
}
trap 'stop_client; stop_server' EXIT

hard_files=$(ulimit -Hn)
[[ $hard_files == unlimited ]] && hard_files=1048576

# Every server execs into itself, so $! is its own PID (nginx: the master; its worker is a
# child). `9>&-`: no server inherits the lock.
start_server() { # name port log
    local cmd
    case $1 in
        corral) cmd=("$CORRAL_BIN" --listen "$HOST:$2" --workers 1) ;;
        may_minihttp) cmd=("$MAY_DIR/target/release/may_minihttp_hello" "$HOST:$2" 1) ;;
        axum) cmd=("$AXUM_DIR/target/release/axum_hello" "$HOST:$2") ;;
        go) cmd=(env GOMAXPROCS=1 "$GO_DIR/go_hello" -listen "$HOST:$2") ;;
        erlang) cmd=(escript "$ERLANG_SCRIPT" "$HOST:$2") ;;
        nginx)
            local prefix=$OUT/nginx-$2
            mkdir -p "$prefix/www/static"
            cp examples/static/4k.txt "$prefix/www/static/"
            sed -e "s|@PREFIX@|$prefix|g; s|@ROOT@|$prefix/www|g; s|@HOST@|$HOST|g; s|@PORT@|$2|g" \
                "$NGINX_CONF" >"$prefix/nginx.conf"
            cmd=(nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf")
            ;;
    esac
    echo "taskset -c $SERVER_CPU ${cmd[*]}" >"$3"
    (
        ulimit -n "$hard_files" 2>/dev/null || true
        exec taskset -c "$SERVER_CPU" "${cmd[@]}"
    ) >>"$3" 2>&1 9>&- &
    server_pid=$!
}

# Like lib.sh's wait_ready, but a server that does not come up is skipped, not fatal.
ready() { # name url log
    local body=$OUT/ready-body code=000 deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! running "$server_pid"; then
            echo "   $1 exited during startup; last lines of $3:"
            tail -n 5 "$3" | sed 's/^/     /'
            stop_server
            return 1
        fi
        code=$(curl -s -o "$body" -w '%{http_code}' --max-time 1 "$2") || code=000
        if [[ $code == 200 ]]; then
            [[ $(<"$body") == "$EXPECTED_BODY" ]] && return 0
            echo "   $1 answered $2 with '$(head -c 80 "$body")', want '$EXPECTED_BODY'"
            stop_server
            return 1
        fi
        sleep 0.1
    done
    echo "   $1 did not answer 200 on $2 within ${READY_TIMEOUT}s (last status $code; log $3)"
    stop_server
    return 1
}

# ---- measuring ---------------------------------------------------------------------------------

clk_tck=$(getconf CLK_TCK)

tree() { # pid: it and its descendants
    local pid=$1 child
    echo "$pid"
    for child in $(pgrep -P "$pid" 2>/dev/null); do tree "$child"; done
}

ticks() { # pids...: sets `ticks` to their Σ utime + stime in clock ticks (a PID already
    # gone counts 0) and `state` to the first one's state (empty if gone). No fork: the
    # client's CPU is sampled with this while it runs.
    local pid stat rest f
    ticks=0
    state=
    for pid in "$@"; do
        { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue # ($(<f) would be fatal under set -e)
        rest=${stat##*) } # after "(comm) ": the comm may hold spaces
        read -ra f <<<"$rest"
        [[ $pid == "$1" ]] && state=${f[0]}
        ticks=$((ticks + f[11] + f[12]))
    done
}

rss_kib() { # pids...: Σ VmRSS
    local pid total=0 kib
    for pid in "$@"; do
        kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || kib=0
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

core_times() { # cpu: "busy total" jiffies of that core from /proc/stat
    awk -v cpu="cpu$1" '$1 == cpu {
        total = 0; for (i = 2; i <= NF; i++) total += $i
        print total - $5 - $6, total }' /proc/stat
}

now_us() { # sets `now` to the wall clock in µs (no fork)
    local t=${EPOCHREALTIME/,/.}
    now=$((${t%.*} * 1000000 + 10#${t#*.}))
}

# The load of one case: the client's command line. Sets `client` (an array).
client_for() { # case url_base seconds
    local lua=benches/wrk
    case $1 in
        plaintext64) client=(wrk -t1 -c64 -d"$3"s --latency "$2/plaintext") ;;
        plaintext1024) client=(wrk -t1 -c1024 -d"$3"s --latency "$2/plaintext") ;;
        pipelined) client=(wrk -t1 -c64 -d"$3"s --latency -s "$lua/pipeline.lua" "$2/plaintext" -- "$PIPELINE_DEPTH") ;;
        work) client=(wrk -t1 -c1024 -d"$3"s --latency --timeout 10s "$2/work?us=$WORK_US") ;;
        static) client=(wrk -t1 -c64 -d"$3"s --latency "$2/static/4k.txt") ;;
        json) client=(wrk -t1 -c64 -d"$3"s --latency "$2/json") ;;
        echo) client=(wrk -t1 -c64 -d"$3"s --latency -s "$lua/post.lua" "$2/echo" -- "$ECHO_BYTES") ;;
        fresh) client=(ab -r -q -s 30 -n "$FRESH_N" -c "$FRESH_C" "$2/static/4k.txt") ;;
    esac
}

# Runs the client pinned to CLIENT_CPU with output to `out`, sampling the CPU of the client,
# of the client's core and of the server's processes over its run; stops it (our PID) if it
# outlives `limit_s`. Sets `sample` to "wall_us client_wall_us server_ticks client_ticks
# core_busy core_total" and `rss` (KiB, the servers'). The client's CPU counts up to its last
# sample while it ran (every 0.1 s for its first second, then every 0.5 s): bash reaps it
# at once when it exits, and its /proc entry goes with it.
run_client() { # out limit_s
    local out=$1 limit_s=$2 pids s0 t0 t_last c_last kb0 kt0 kb1 kt1 s1 t1 status=0
    pids=$(tree "$server_pid")
    # shellcheck disable=SC2086 # a list of PIDs
    ticks $pids
    s0=$ticks
    read -r kb0 kt0 < <(core_times "$CLIENT_CPU")
    now_us
    t0=$now
    (
        ulimit -n "$hard_files" 2>/dev/null || true
        exec taskset -c "$CLIENT_CPU" "${client[@]}"
    ) >"$out" 2>&1 9>&- &
    client_pid=$!
    t_last=$t0
    c_last=0
    while :; do
        if ((now - t0 < 1000000)); then sleep 0.1; else sleep 0.5; fi
        ticks "$client_pid"
        now_us
        [[ -n $state && $state != Z ]] || break
        c_last=$ticks
        t_last=$now
        if ((now - t0 > limit_s * 1000000)); then
            echo "   the client ran past ${limit_s}s: stopping it (PID $client_pid)"
            kill -TERM "$client_pid" 2>/dev/null || true
        fi
    done
    wait "$client_pid" || status=$?
    client_pid=
    now_us
    t1=$now
    # shellcheck disable=SC2086
    ticks $pids
    s1=$ticks
    read -r kb1 kt1 < <(core_times "$CLIENT_CPU")
    # shellcheck disable=SC2086
    rss=$(rss_kib $pids)
    sample="$((t1 - t0)) $((t_last - t0)) $((s1 - s0)) $c_last $((kb1 - kb0)) $((kt1 - kt0))"
    return "$status"
}

to_us() { # wrk's "290.00us", "1.20ms", "2.00s" -> µs
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.1f", v }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.1f", v * 1000 }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.1f", v * 60e6 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.1f", v * 1e6 }
        else printf "nan" }'
}

# Parses a client's output into "rps p50_us p99_us max_us requests errors".
parse_wrk() { # file
    local rps p50 p99 max requests errors
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
    [[ -n $rps ]] || return 1
    p50=$(to_us "$(awk '$1 == "50%" { print $2; exit }' "$1")")
    p99=$(to_us "$(awk '$1 == "99%" { print $2; exit }' "$1")")
    max=$(to_us "$(awk '$1 == "Latency" { print $4; exit }' "$1")")
    requests=$(awk '/requests in/ { print $1; exit }' "$1")
    errors=$(awk '/Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { e += $NF } END { print e + 0 }' "$1")
    echo "$rps $p50 $p99 $max $requests $errors"
}

parse_ab() { # file
    local rps p50 p99 max requests errors
    rps=$(awk '/^Requests per second:/ { print $4 }' "$1")
    [[ -n $rps ]] || return 1
    p50=$(awk '$1 == "50%" { printf "%.1f", $2 * 1000; exit }' "$1")
    p99=$(awk '$1 == "99%" { printf "%.1f", $2 * 1000; exit }' "$1")
    max=$(awk '$1 == "100%" { printf "%.1f", $2 * 1000; exit }' "$1")
    requests=$(awk '/^Complete requests:/ { print $3 }' "$1")
    errors=$(awk '/^Failed requests:/ { e += $3 } /^Non-2xx responses:/ { e += $3 }
        END { print e + 0 }' "$1")
    echo "$rps ${p50:-nan} ${p99:-nan} ${max:-nan} $requests $errors"
}

# ---- runs ----------------------------------------------------------------------------------

runnable() { # case: can its client run here?
    case $1 in
        fresh) ((have_ab)) ;;
        *) ((have_wrk)) ;;
    esac
}

for c in "${cases[@]}"; do
    printf '%s\t%s\n' "$c" "$(case_title "$c")"
done >"$OUT/cases.tsv"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
    echo "core split: servers on CPU $SERVER_CPU (one worker/thread), client on CPU $CLIENT_CPU"
    echo "load: wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }' || true), ab $(ab -V 2>/dev/null | awk 'NR == 1 { print $5 }' || true); DURATION=$DURATION WARMUP=$WARMUP REPEATS=$REPEATS"
    for s in "${servers[@]}"; do echo "version $s: ${version_of[$s]:-?}"; done
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"

echo
echo "== servers: ${servers[*]}; cases: ${cases[*]}; $REPEATS round(s) of $DURATION" \
    "(+ $WARMUP warm-up); servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU"
echo "   commit ${version_of[corral]}; load average $(cut -d' ' -f1-3 /proc/loadavg); output in $OUT"
echo

printf 'case\tserver\tround\trps\tp50_us\tp99_us\tmax_us\trequests\terrors\tcpu_us_per_req\tserver_cpu_pct\tclient_cpu_pct\tcore_busy_pct\trss_kib\tlimit\n' \
    >"$OUT/runs.tsv"
printf '%-13s %-12s %-3s %11s %9s %9s %9s %7s %7s %7s %8s %-6s %s\n' case server rnd req/s \
    "p50 µs" "p99 µs" "CPU µs/r" "srv %" "cli %" "core %" "RSS MiB" limit notes

for ((round = 1; round <= REPEATS; round++)); do
    for c in "${cases[@]}"; do
        runnable "$c" || continue
        case_servers=()
        for s in "${servers[@]}"; do serves "$s" "$c" && case_servers+=("$s"); done
        set_round_order "$round" "${case_servers[@]}"
        for name in "${order[@]}"; do
            port=$(free_port)
            base="http://$HOST:$port"
            log="$OUT/$c-$name-round$round.log"
            out="$OUT/$c-$name-round$round.out"
            take_lock
            start_server "$name" "$port" "$log"
            if ! ready "$name" "$base/plaintext" "$log"; then
                release_lock
                skip "$c / $name round $round: the server did not come up"
                continue
            fi
            if ((warmup_s > 0)) && [[ $c != fresh ]]; then
                client_for "$c" "$base" "$warmup_s"
                run_client "$OUT/$c-$name-round$round.warmup" $((warmup_s + 30)) || true
            fi
            client_for "$c" "$base" "$duration_s"
            limit_s=$((duration_s + 30))
            [[ $c == fresh ]] && limit_s=300
            status=0
            run_client "$out" "$limit_s" || status=$?
            stop_server
            release_lock
            if [[ $c == fresh ]]; then parsed=$(parse_ab "$out") || parsed=; else parsed=$(parse_wrk "$out") || parsed=; fi
            if [[ -z $parsed ]]; then
                skip "$c / $name round $round: no result from the client (exit status $status; see $out)"
                continue
            fi
            read -r rps p50 p99 max requests errors <<<"$parsed"
            read -r wall client_wall server_ticks client_ticks core_busy core_total <<<"$sample"
            row=$(awk -v rps="$rps" -v req="$requests" -v st="$server_ticks" -v ct="$client_ticks" \
                -v hz="$clk_tck" -v wall_us="$wall" -v cwall_us="$client_wall" -v kb="$core_busy" \
                -v kt="$core_total" -v rss="$rss" -v busy="$BUSY_PCT" 'BEGIN {
                    wall = wall_us / 1e6; cwall = cwall_us / 1e6
                    cpu_us = req > 0 ? st / hz * 1e6 / req : "nan"
                    srv = wall > 0 ? 100 * st / hz / wall : 0
                    cli = cwall > 0 ? 100 * ct / hz / cwall : 0
                    core = kt > 0 ? 100 * kb / kt : 0
                    limit = cli >= busy ? "client" : (srv >= busy ? "server" : (core >= busy ? "noisy" : "-"))
                    printf "%s %.1f %.1f %.1f %d %s", (cpu_us == "nan" ? "nan" : sprintf("%.3f", cpu_us)), srv, cli, core, rss, limit
                }')
            read -r cpu_us srv_pct cli_pct core_pct rss_k limit <<<"$row"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$name" \
                "$round" "$rps" "$p50" "$p99" "$max" "$requests" "$errors" "$cpu_us" "$srv_pct" \
                "$cli_pct" "$core_pct" "$rss_k" "$limit" >>"$OUT/runs.tsv"
            notes=
            ((errors == 0)) || notes="ERRORS: $errors (see $out)"
            ((status == 0)) || notes+=" client exit status $status"
            printf '%-13s %-12s %-3s %11.0f %9s %9s %9.2f %7.0f %7.0f %7.0f %8.1f %-6s %s\n' "$c" "$name" \
                "$round" "$rps" "$p50" "$p99" "$cpu_us" "$srv_pct" "$cli_pct" "$core_pct" \
                "$(awk -v k="$rss_k" 'BEGIN { printf "%.1f", k / 1024 }')" "$limit" "$notes"
        done
    done
done

# ---- summary: medians, ratios, Markdown, charts ----------------------------------------------

echo
python3 - "$OUT" <<'PY'
import csv, math, os, statistics, sys

out = sys.argv[1]
order, titles = [], {}
for line in open(os.path.join(out, "cases.tsv")):
    name, title = line.rstrip("\n").split("\t", 1)
    order.append(name)
    titles[name] = title
rows = list(csv.DictReader(open(os.path.join(out, "runs.tsv")), delimiter="\t"))
if not rows:
    print("== no results")
    sys.exit(0)

def num(v):
    try:
        x = float(v)
        return x if math.isfinite(x) else None
    except ValueError:
        return None

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

servers = []
for r in rows:
    if r["server"] not in servers:
        servers.append(r["server"])
summary = {}  # (case, server) -> medians
for case in order:
    for server in servers:
        runs = [r for r in rows if r["case"] == case and r["server"] == server]
        if not runs:
            continue
        m = {k: med([num(r[k]) for r in runs]) for k in
             ("rps", "p50_us", "p99_us", "max_us", "cpu_us_per_req", "server_cpu_pct",
              "client_cpu_pct", "rss_kib")}
        m["errors"] = sum(int(float(r["errors"] or 0)) for r in runs)
        limits = [r["limit"] for r in runs]
        m["limit"] = max(set(limits), key=limits.count)
        m["runs"] = len(runs)
        summary[(case, server)] = m

def ratio(case, server, key):
    c, p = summary.get((case, "corral")), summary.get((case, server))
    if server == "corral" or not c or not p or not c[key] or not p[key]:
        return None
    return c[key] / p[key]

def fmt(v, spec):
    return "—" if v is None else format(v, spec)

def short(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:,.0f}"

with open(os.path.join(out, "summary.tsv"), "w") as f:
    f.write("case\ttitle\tserver\trps\tp50_us\tp99_us\tmax_us\tcpu_us_per_req\tserver_cpu_pct"
            "\tclient_cpu_pct\trss_kib\terrors\tlimit\truns\tratio_rps\tratio_cpu\n")
    for (case, server), m in summary.items():
        f.write("\t".join(str(x) for x in (
            case, titles[case], server, fmt(m["rps"], ".1f"), fmt(m["p50_us"], ".1f"),
            fmt(m["p99_us"], ".1f"), fmt(m["max_us"], ".1f"), fmt(m["cpu_us_per_req"], ".3f"),
            fmt(m["server_cpu_pct"], ".1f"), fmt(m["client_cpu_pct"], ".1f"),
            fmt(m["rss_kib"], ".0f"), m["errors"], m["limit"], m["runs"],
            fmt(ratio(case, server, "rps"), ".3f"),
            fmt(ratio(case, server, "cpu_us_per_req"), ".3f"))) + "\n")

# The long table: one line per case and server.
head = (f"{'case':<14} {'server':<13} {'req/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU µs/req':>10} {'srv %':>6} {'cli %':>6} {'RSS MiB':>8} {'limit':<7} "
        f"{'corral/peer req/s':>17} {'CPU/req':>8}")
print(f"== medians of {max(m['runs'] for m in summary.values())} round(s)  (limit: client = the "
      "load generator used >= 95% of its core; server = the server of its own; noisy = other "
      "processes kept the client's core busy)")
print(head)
md = ["| case | server | req/s | p50 | p99 | server CPU µs/req | RSS MiB | limit | Corral/peer req/s | Corral/peer CPU/req |",
      "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
for (case, server), m in summary.items():
    rr, rc = ratio(case, server, "rps"), ratio(case, server, "cpu_us_per_req")
    ms = lambda us: None if us is None else us / 1000
    errors = f"  ERRORS {m['errors']}" if m["errors"] else ""
    print(f"{case:<14} {server:<13} {fmt(m['rps'], ',.0f'):>11} {fmt(ms(m['p50_us']), '.2f'):>8} "
          f"{fmt(ms(m['p99_us']), '.2f'):>8} {fmt(m['cpu_us_per_req'], '.2f'):>10} "
          f"{fmt(m['server_cpu_pct'], '.0f'):>6} {fmt(m['client_cpu_pct'], '.0f'):>6} "
          f"{fmt(None if m['rss_kib'] is None else m['rss_kib'] / 1024, '.1f'):>8} {m['limit']:<7} "
          f"{fmt(rr, '.3f'):>17} {fmt(rc, '.3f'):>8}{errors}")
    md.append(f"| {titles[case]} | {server} | {fmt(m['rps'], ',.0f')} | "
              f"{fmt(ms(m['p50_us']), '.2f')} ms | {fmt(ms(m['p99_us']), '.2f')} ms | "
              f"{fmt(m['cpu_us_per_req'], '.2f')} | "
              f"{fmt(None if m['rss_kib'] is None else m['rss_kib'] / 1024, '.1f')} | {m['limit']} | "
              f"{fmt(rr, '.2f')} | {fmt(rc, '.2f')} |")

# The wide table, as in the README: a column per server.
wide = ["| case | " + " | ".join(servers) + " |", "|---|" + "---|" * len(servers)]
for case in order:
    if not any((case, s) in summary for s in servers):
        continue
    cells = []
    for s in servers:
        m = summary.get((case, s))
        if not m:
            cells.append("—")
            continue
        cell = f"{short(m['rps'])} req/s, {fmt(m['cpu_us_per_req'], '.2f')} µs CPU/req"
        if m["limit"] == "client":
            cell += " (client-bound)"
        elif m["limit"] == "noisy":
            cell += " (noisy)"
        r = ratio(case, s, "rps")
        if r is not None:
            cell += f"; Corral {r:.2f}×"
        if case == "fresh":
            cell += (f", p99 {fmt(m['p99_us'] and m['p99_us'] / 1000, '.0f')} ms, "
                     f"max {fmt(m['max_us'] and m['max_us'] / 1000, '.0f')} ms, {m['errors']} failed")
        cells.append(cell)
    wide.append(f"| {titles[case]} | " + " | ".join(cells) + " |")

env = open(os.path.join(out, "env.txt")).read().strip().splitlines()
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("# benches/compare.sh\n\n" + "\n".join(f"- {l}" for l in env) + "\n\n")
    f.write("\n".join(wide) + "\n\n" + "\n".join(md) + "\n")
    f.write("\n![throughput](throughput.svg)\n![CPU per request](cpu_per_request.svg)\n"
            "![latency](latency.svg)\n")
with open(os.path.join(out, "readme-snippet.md"), "w") as f:
    date = env[0].split(": ", 1)[1] if env else "?"
    f.write(f"Measured with `benches/compare.sh` on {date}: "
            + "; ".join(l for l in env[1:] if not l.startswith("load average")) + ".\n\n")
    f.write("\n".join(wide) + "\n\n")
    f.write("Ratios are Corral/peer in req/s. CPU per request is the server's user + system "
            "time from /proc/PID/stat over the measured interval, divided by the requests "
            "answered; it compares servers even where the load generator was the limit.\n\n")
    rel = "docs/bench"  # where the engineer copies the charts
    f.write(f"![throughput]({rel}/throughput.svg)\n![server CPU per request]({rel}/cpu_per_request.svg)\n"
            f"![latency]({rel}/latency.svg)\n")
print()
print("== per case, as in the README (Corral/peer ratio in req/s)")
print("\n".join(wide))
PY

if [[ -n $plotter && -s $OUT/summary.tsv ]]; then
    "$plotter" "$OUT" || echo "   (the charts could not be drawn; the tables above stand)"
fi

echo
if ((${#skipped[@]} > 0)); then
    echo "== skipped"
    printf '   %s\n' "${skipped[@]}"
fi
echo "== results in $OUT: runs.tsv, summary.tsv, summary.md, readme-snippet.md${plotter:+, throughput.svg, cpu_per_request.svg, latency.svg}"
echo "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (figures from a busy machine are not final)"
