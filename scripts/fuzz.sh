#!/usr/bin/env bash
# Runs a fuzz target of fuzz/ under AFL++ for a bounded time:
#   scripts/fuzz.sh TARGET SECONDS     TARGET: head, differential, chunked, conn, pipeline, or all
# Needs cargo-afl (`cargo install cargo-afl`, which builds the AFL++ runtime too). Findings
# stay in $FUZZ_OUT/TARGET (default: the target dir's fuzz-out/); a new run resumes there.
# Exits 1 if a run saved a crash or a hang, and says how to make each a regression input.
# Changes no machine setting: AFL_SKIP_CPUFREQ stands in for afl-system-config's governor
# change, and AFL_NO_AFFINITY leaves the cores to the scheduler on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(head differential chunked conn pipeline)
usage() {
  echo "usage: $0 {head|differential|chunked|conn|pipeline|all} SECONDS" >&2
  exit 2
}
[ $# -eq 2 ] || usage
[[ "$2" =~ ^[1-9][0-9]*$ ]] || usage
case "$1" in
  all) run=("${targets[@]}") ;;
  head | differential | chunked | conn | pipeline) run=("$1") ;;
  *) usage ;;
esac
seconds=$2

if ! cargo afl --version >/dev/null 2>&1; then
  echo "cargo-afl is not installed: cargo install cargo-afl" >&2
  exit 2
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz-afl"
out_root="${FUZZ_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz-out}"
CARGO_TARGET_DIR="$target_dir" cargo afl build --release --features afl \
  --manifest-path fuzz/Cargo.toml --quiet

export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_AUTORESUME=1
# AFL++ wants crashes to reach it as signals; with core_pattern piped to a handler they
# take long and may time out. It only warns then, as this says; nothing on the machine changes.
if [[ "$(cat /proc/sys/kernel/core_pattern 2>/dev/null)" == \|* ]]; then
  export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
fi

found=0
for target in "${run[@]}"; do
  out="$out_root/$target"
  mkdir -p "$out"
  echo "== fuzz $target for ${seconds}s (findings in $out)"
  # -t 1000: a real hang never ends; a loaded machine's slow run is not one.
  cargo afl fuzz -V "$seconds" -t 1000 -x fuzz/http.dict -i "fuzz/corpus/$target" -o "$out" \
    "$target_dir/release/$target" >"$out/afl.log" 2>&1 || {
    tail -20 "$out/afl.log" >&2
    exit 1
  }
  stats="$out/default/fuzzer_stats"
  field() { awk -v k="$1" '$1 == k { print $3 }' "$stats"; }
  echo "   execs: $(field execs_done), $(field execs_per_sec)/s over $(field run_time) s;" \
    "corpus: $(field corpus_count); crashes: $(field saved_crashes); hangs: $(field saved_hangs)"
  for finding in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
    [ -e "$finding" ] || continue
    found=1
    echo "   found: $finding"
  done
done
if ((found)); then
  echo "Replay a finding: copy it to fuzz/regressions/TARGET/ (a name saying what it broke)," >&2
  echo "then: cargo test --manifest-path fuzz/Cargo.toml --test replay. Fix the bug, add a" >&2
  echo "test in the crate's own suite, keep the file." >&2
  exit 1
fi
