//! AFL++ target: `corral_fuzz::pipeline::check` on each input. Run with `scripts/fuzz.sh pipeline SECONDS`.

fn main() {
    afl::fuzz_nohook!(|data: &[u8]| corral_fuzz::run_or_abort(corral_fuzz::pipeline::check, data));
}
