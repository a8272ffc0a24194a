//! AFL++ target: `corral_fuzz::differential::check` on each input. Run with
//! `scripts/fuzz.sh differential SECONDS`.

fn main() {
    afl::fuzz_nohook!(|data: &[u8]| {
        corral_fuzz::run_or_abort(corral_fuzz::differential::check, data)
    });
}
