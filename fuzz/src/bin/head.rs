//! AFL++ target: `corral_fuzz::head::check` on each input. Run with `scripts/fuzz.sh head SECONDS`.

fn main() {
    afl::fuzz_nohook!(|data: &[u8]| corral_fuzz::run_or_abort(corral_fuzz::head::check, data));
}
