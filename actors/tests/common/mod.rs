//! Shared test setup: configure may once, and bounded waits.
#![allow(dead_code)]

use std::sync::Once;
use std::time::{Duration, Instant};

/// Upper bound for any single wait in these tests: a bug fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(5);

/// Configure may's process-global runtime before its first use (2 workers, as in the issue).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        may::config().set_workers(2);
        corral_actors::quiet_kill_panics();
    });
}

/// Poll `cond` until it holds or `deadline` passes; fails the test with `what` on timeout.
/// Only for facts that are eventually true with no message to wait on. Sleeps between polls
/// (1 ms, doubling up to 50 ms, never past the deadline) rather than spinning against the two
/// may workers it waits for.
pub fn eventually(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(1);
    while !cond() {
        let now = Instant::now();
        assert!(now < end, "timed out waiting for: {what}");
        std::thread::sleep(pause.min(end - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
