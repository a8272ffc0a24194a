//! The fuzz targets' checks, one function per target, shared by the AFL++ binaries
//! (`src/bin/`, built with `--features afl`) and by `cargo test` (`tests/`: every committed
//! seed and regression input replayed, and the structured generator run under proptest).
//!
//! Each check panics when a property fails; an AFL++ target turns that panic into an abort,
//! which AFL++ records as a crash. The targets:
//! - [`head::check`]: `parse_head` on arbitrary bytes;
//! - [`differential::check`]: `parse_head` against the httparse-based parser it replaced,
//!   on arbitrary bytes and every prefix of them, under the default or small limits;
//! - [`chunked::check`]: the chunked decoder on arbitrary bytes fed in arbitrary pieces;
//! - [`conn::check`]: the connection loop on an arbitrary byte stream with arbitrary split
//!   points, what it wrote read back by an independent response parser ([`response`]);
//! - [`pipeline::check`]: the loop on a pipelined batch of requests built from the bytes
//!   (valid, invalid, truncated), each answer compared with what that request must get.

pub mod chunked;
pub mod conn;
pub mod differential;
pub mod head;
pub mod pipeline;
pub mod response;
pub mod server;
pub mod splits;

/// Runs `check` on `data`, aborting the process if it panics (what AFL++ counts as a crash);
/// the server's own panics (a handler's) are caught inside it and never get here.
pub fn run_or_abort(check: fn(&[u8]), data: &[u8]) {
    if std::panic::catch_unwind(|| check(data)).is_err() {
        std::process::abort();
    }
}
