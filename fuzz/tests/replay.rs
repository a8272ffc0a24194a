//! Every committed seed (`fuzz/corpus/TARGET/`) and every input a fuzzer once failed on
//! (`fuzz/regressions/TARGET/`) through its target's check, so that `cargo test` holds what
//! the fuzzers established without running them.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            let data = fs::read(&path).expect("a readable input");
            eprintln!("{}", path.display());
            check(&data);
            count += 1;
        }
    }
    assert!(count > 0, "no seed for {target}");
}

#[test]
fn head_seeds_and_regressions() {
    replay("head", corral_fuzz::head::check);
}

#[test]
fn differential_seeds_and_regressions() {
    replay("differential", corral_fuzz::differential::check);
}

#[test]
fn chunked_seeds_and_regressions() {
    replay("chunked", corral_fuzz::chunked::check);
}

#[test]
fn conn_seeds_and_regressions() {
    replay("conn", corral_fuzz::conn::check);
}

#[test]
fn pipeline_seeds_and_regressions() {
    replay("pipeline", corral_fuzz::pipeline::check);
}
