#!/usr/bin/env bash
# Two Corral builds or configs, A and B, on fresh connections: `ab -n N -c C` of
# /static/4k.txt, a new connection per request, the server on CPU 0 with one worker, ab on
# CPU 1, rounds alternating A B / B A. Per run: req/s, p99 and max (ms), the server's CPU µs
# per connection (utime+stime from /proc/PID/stat over the ab run), its minor page faults per
# connection (a freshly mapped coroutine stack faults its pages in) and its RSS after it.
# Used for `server.coroutine_pool` and `server.defer_accept_ms` (docs/architecture.md §3).
#
# Usage:   BIN_A=/tmp/corral-old BIN_B=target/release/corral benches/fresh_ab.sh
#          BIN_A=target/release/corral BIN_B=target/release/corral CONFIG_B=pool.toml ROUNDS=4 benches/fresh_ab.sh
# Environment: BIN_A, BIN_B (required), CONFIG_A, CONFIG_B (--config files), ROUNDS [3],
#   N [40000], C [10000]. Takes the benchmark lock; stops only the servers it started.
set -u
ulimit -n 20000
ROUNDS=${ROUNDS:-3}
N=${N:-40000}
C=${C:-10000}
: "${BIN_A:?BIN_A: the first corral binary}" "${BIN_B:?BIN_B: the second corral binary}"
exec 9>/tmp/corral-bench.lock
flock 9
port=18300
run() { # label bin config
  local label=$1 bin=$2 cfg=$3
  port=$((port+1))
  local args=(--listen 127.0.0.1:$port --workers 1)
  [[ -n $cfg ]] && args+=(--config "$cfg")
  taskset -c 0 "$bin" "${args[@]}" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/plaintext && break; sleep 0.1; done
  local t0 f0; read -r t0 f0 < <(awk '{print $14+$15, $10}' /proc/$pid/stat)
  local out; out=$(timeout 300 taskset -c 1 ab -r -q -s 30 -n "$N" -c "$C" http://127.0.0.1:$port/static/4k.txt 2>&1)
  local t1 f1; read -r t1 f1 < <(awk '{print $14+$15, $10}' /proc/$pid/stat)
  local rss; rss=$(awk '/VmRSS/ {print $2/1024}' /proc/$pid/status)
  kill $pid; wait $pid 2>/dev/null
  local rps p99 mx done_ failed
  rps=$(awk '/Requests per second/ {print $4}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  mx=$(awk '$1=="100%" {print $2}' <<<"$out")
  done_=$(awk '/Complete requests/ {print $3}' <<<"$out")
  failed=$(awk '/Failed requests/ {print $3}' <<<"$out")
  local us faults
  us=$(awk -v a=$t0 -v b=$t1 -v n=$done_ 'BEGIN{printf "%.1f", (b-a)*10000/n}')
  faults=$(awk -v a=$f0 -v b=$f1 -v n=$done_ 'BEGIN{printf "%.2f", (b-a)/n}')
  printf "%-10s rps=%s p99=%s max=%s cpu_us=%s minflt=%s rss_after=%.1fMiB done=%s failed=%s\n" "$label" "$rps" "$p99" "$mx" "$us" "$faults" "$rss" "$done_" "$failed"
}
for r in $(seq "$ROUNDS"); do
  if ((r % 2)); then run A "$BIN_A" "${CONFIG_A:-}"; run B "$BIN_B" "${CONFIG_B:-}"
  else run B "$BIN_B" "${CONFIG_B:-}"; run A "$BIN_A" "${CONFIG_A:-}"; fi
done
