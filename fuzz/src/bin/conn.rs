//! AFL++ target: `corral_fuzz::conn::check` on each input. Run with `scripts/fuzz.sh conn SECONDS`.

fn main() {
    afl::fuzz_nohook!(|data: &[u8]| corral_fuzz::run_or_abort(corral_fuzz::conn::check, data));
}
