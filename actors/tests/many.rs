//! 100,000 actors spawned and messaged on 2 may workers, with a bounded memory footprint.
//!
//! Stack: 0x400 words (8 KiB usable, plus may's guard page) per actor instead of may's default
//! 0x1000 words (32 KiB); untouched stack pages are never backed by memory either way.
//!
//! Each coroutine stack is its own mmap plus a PROT_NONE guard page: two kernel memory maps.
//! With Linux's default `vm.max_map_count` of 65530 (this machine's), at most ~32k coroutines
//! can be alive at once in one process, whatever their stack size. So unless the limit allows
//! all 100,000 at once, the test runs them in waves of 20,000 live actors and checks that
//! memory returns after each wave (no per-actor leak).

mod common;

use std::time::Duration;

use common::{WAIT, init};
use corral_actors::{Ctx, Exit, Spawn};

const TOTAL: usize = 100_000;
/// 8 KiB stacks on 64-bit; even, as may requires.
const STACK_WORDS: usize = 0x400;

fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("field present")
}

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530)
}

/// Spawn `n` actors, message each once, collect every answer, wait for every exit.
fn wave(n: usize, base: u64) {
    let (tx, rx) = may::sync::mpsc::channel::<u64>();
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let tx = tx.clone();
        addrs.push(Spawn::new().stack_size(STACK_WORDS).capacity(4).spawn(
            move |mut ctx: Ctx<u64>| {
                let k = ctx.receive();
                let _ = tx.send(k + 1);
            },
        ));
    }
    drop(tx);
    for (i, a) in addrs.iter().enumerate() {
        a.send(base + i as u64).expect("actor alive until messaged");
    }
    let mut sum = 0u64;
    for _ in 0..n {
        sum += rx.recv_timeout(WAIT).expect("every actor answers");
    }
    let expected: u64 = (0..n as u64).map(|i| base + i + 1).sum();
    assert_eq!(sum, expected);
    for a in &addrs {
        assert_eq!(a.pid().wait_exit(Some(WAIT)), Some(Exit::Normal));
    }
}

#[test]
fn hundred_thousand_actors_spawned_and_messaged_on_two_workers() {
    init();
    assert_eq!(may::config().get_workers(), 2);
    let live = if max_map_count() >= 2 * TOTAL + 20_000 {
        TOTAL
    } else {
        20_000
    };
    let rss_before = status_kib("VmRSS:");
    let mut after_first = 0;
    for w in 0..TOTAL / live {
        wave(live, (w * live) as u64);
        if w == 0 {
            after_first = status_kib("VmRSS:");
        }
    }
    let rss_after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    eprintln!(
        "{TOTAL} actors, {live} live at once, stack {STACK_WORDS:#x} words: \
         RSS before {rss_before} KiB, after first wave {after_first} KiB, \
         after all {rss_after} KiB, peak {peak} KiB"
    );
    // Peak per live actor (stack pages touched + mailbox + bookkeeping) stays small ...
    let per_actor = (peak - rss_before) * 1024 / live;
    assert!(per_actor < 24 * 1024, "{per_actor} bytes per live actor");
    // ... and later waves reuse the memory of earlier ones instead of growing.
    assert!(
        rss_after <= after_first + after_first / 4,
        "RSS grew from {after_first} KiB to {rss_after} KiB across waves"
    );
    let _ = Duration::ZERO;
}
