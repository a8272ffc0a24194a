//! AFL++ target: `corral_fuzz::chunked::check` on each input. Run with `scripts/fuzz.sh chunked SECONDS`.

fn main() {
    afl::fuzz_nohook!(|data: &[u8]| corral_fuzz::run_or_abort(corral_fuzz::chunked::check, data));
}
