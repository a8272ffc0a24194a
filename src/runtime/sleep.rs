//! Sleeping without leaving the scheduler.
//!
//! may's `coroutine::sleep` hands the sleeper to its one timer thread, which resumes it
//! *there*; the connection then hops home (`home::go_home`): a ring of the doorkeeper's
//! eventfd, a thread switch on a shared core, the doorkeeper's read and unpark. Per
//! sleeping request that was about a third of `/work`'s server CPU (docs/architecture.md
//! §3, "Sleeping handlers").
//!
//! Instead each scheduler keeps its own sleepers: a heap of deadlines that its doorkeeper
//! (`home.rs`) serves. The doorkeeper waits on its eventfd with a read timeout until the
//! earliest deadline; may runs a descriptor's timeouts on the worker its number maps to (the
//! eventfd is ≡ k), so the doorkeeper wakes on k, and each `unpark` there queues a sleeper
//! on k's own run queue. No thread, no syscall per sleeper: a batch of sleepers costs the
//! doorkeeper one wake.
//!
//! may keeps a descriptor's read timeout in whole milliseconds (truncated, and 0 means none),
//! so the doorkeeper waits a whole number of them, rounded up: it wakes at most 1000 times a
//! second however many handlers sleep, and every sleeper due by then is woken by that one
//! wake. A sleep lasts at least its duration and overshoots by under a millisecond on a busy
//! scheduler (whose loop checks its timers between batches of events), by under two on an
//! idle one (epoll's timeout is in milliseconds too). Only a sleeper due *before* the one the
//! doorkeeper waits for rings it (one eventfd write), so that it waits for the earlier one;
//! with one sleep duration that never happens while sleepers are waiting.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering as MemOrder};
use std::time::{Duration, Instant};

use may::coroutine::Coroutine;

/// `armed` when the doorkeeper waits for no sleeper.
pub(super) const UNARMED: u64 = u64::MAX;

/// Nanoseconds since the first use, the deadlines' clock.
pub(super) fn nanos(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let since = at.saturating_duration_since(*EPOCH.get_or_init(Instant::now));
    u64::try_from(since.as_nanos()).unwrap_or(UNARMED - 1)
}

/// What may's read timeout can say for "wake me after `left`": whole milliseconds, rounded
/// up, at least one.
pub(super) fn read_timeout_for(left_ns: u64) -> Duration {
    Duration::from_millis(left_ns.div_ceil(1_000_000).max(1))
}

/// A parked coroutine and its deadline (`nanos`).
struct Sleeper {
    due: u64,
    co: Coroutine,
}

// Ordered by deadline alone, reversed: `BinaryHeap` is a max-heap, the earliest comes first.
impl Ord for Sleeper {
    fn cmp(&self, other: &Self) -> Ordering {
        other.due.cmp(&self.due)
    }
}

impl PartialOrd for Sleeper {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Sleeper {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}

impl Eq for Sleeper {}

/// One scheduler's sleepers. Only code running on that scheduler touches it (the sleepers
/// themselves and its doorkeeper), never across a yield, so its lock is never contended.
#[derive(Default)]
pub(crate) struct Sleepers {
    heap: std::sync::Mutex<BinaryHeap<Sleeper>>,
    /// The deadline the doorkeeper wakes for (`UNARMED`: none, it waits for a ring only).
    armed: AtomicU64,
}

impl Sleepers {
    pub(crate) fn new() -> Self {
        Sleepers {
            heap: std::sync::Mutex::default(),
            armed: AtomicU64::new(UNARMED),
        }
    }

    fn heap(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Sleeper>> {
        // Nothing that can panic runs while it is held.
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `co`, due at `deadline`; true if the doorkeeper must be rung to wait for it
    /// (it wakes for a later deadline, or for none).
    fn add(&self, deadline: Instant, co: Coroutine) -> bool {
        let due = nanos(deadline);
        self.heap().push(Sleeper { due, co });
        due < self.armed.load(MemOrder::Relaxed)
    }

    /// Unparks every sleeper due by `now` (the doorkeeper calls it on its scheduler, so each
    /// is queued there); returns how many, and the read timeout to wait with for the next one
    /// (`None`: none left), whose deadline `add` compares against from now on.
    pub(crate) fn wake_due(&self, now: Instant) -> (usize, Option<Duration>) {
        let now = nanos(now);
        let mut heap = self.heap();
        let mut woken = 0;
        while heap.peek().is_some_and(|s| s.due <= now) {
            if let Some(sleeper) = heap.pop() {
                sleeper.co.unpark();
                woken += 1;
            }
        }
        let next = heap.peek().map_or(UNARMED, |s| s.due);
        self.armed.store(next, MemOrder::Relaxed);
        (
            woken,
            (next != UNARMED).then(|| read_timeout_for(next - now)),
        )
    }

    /// How many coroutines sleep here.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap().len()
    }
}

/// Parks the calling coroutine for at least `duration` (plus under a millisecond on a busy
/// scheduler, under two on an idle one: see below); its scheduler serves other connections
/// meanwhile, and it resumes on the same scheduler, without a thread switch. Outside Corral's schedulers (a thread, or a coroutine
/// before `Server::start`) this is `may::coroutine::sleep`.
///
/// Its scheduler's doorkeeper wakes it (docs/architecture.md §3, "Sleeping handlers"), in
/// whole milliseconds as Erlang's timers do; `may::coroutine::sleep` is precise to
/// microseconds, but resumes the coroutine on may's timer thread, a thread switch away.
/// `std::thread::sleep` in a handler would stop the whole scheduler.
pub fn sleep(duration: Duration) {
    if duration.is_zero() {
        // Nothing to wait for: only let the others run (may would take a timer for it).
        may::coroutine::yield_now();
        return;
    }
    let deadline = Instant::now() + duration;
    let Some((sleepers, ring)) = super::home::sleepers_here() else {
        return may::coroutine::sleep(duration);
    };
    if sleepers.add(deadline, may::coroutine::current()) {
        ring();
    }
    // The doorkeeper unparks us once `deadline` has passed. Anything else that
    // unparks us (an unpark meant for an earlier park) is spurious: park again, the
    // doorkeeper still has us.
    loop {
        may::coroutine::park();
        if Instant::now() >= deadline {
            break;
        }
    }
    // The scheduler was free while we slept: a handler timed across the sleep did not hold
    // it (as when may's sleep resumed it on another thread).
    super::epoch::note_resume();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_timeout_is_whole_milliseconds_rounded_up_and_never_none() {
        assert_eq!(read_timeout_for(0), Duration::from_millis(1));
        assert_eq!(read_timeout_for(1), Duration::from_millis(1));
        assert_eq!(read_timeout_for(1_000_000), Duration::from_millis(1));
        assert_eq!(read_timeout_for(1_000_001), Duration::from_millis(2));
        assert_eq!(read_timeout_for(7_300_000), Duration::from_millis(8));
    }

    /// A handle to a coroutine (which has ended: unparking it does nothing).
    fn a_coroutine() -> Coroutine {
        let (tx, rx) = std::sync::mpsc::channel();
        // SAFETY: the coroutine holds no thread-locals and uses little stack.
        #[allow(unsafe_code)]
        let spawned = unsafe {
            may::coroutine::Builder::new().spawn(move || {
                let _ = tx.send(may::coroutine::current());
            })
        };
        let spawned = spawned.expect("spawn a coroutine");
        let co = rx.recv().expect("the coroutine sends its handle");
        let _ = spawned.join();
        co
    }

    #[test]
    fn only_a_sleeper_due_before_the_armed_deadline_asks_for_a_ring() {
        let co = a_coroutine();
        let sleepers = Sleepers::new();
        nanos(Instant::now()); // the clock starts before `now`
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert!(sleepers.add(now + ms(10), co.clone()), "nothing armed yet");
        assert_eq!(
            sleepers.wake_due(now),
            (0, Some(ms(10))),
            "one sleeper waits"
        );
        assert!(!sleepers.add(now + ms(20), co.clone()), "later than armed");
        assert!(
            !sleepers.add(now + ms(10), co.clone()),
            "the armed deadline"
        );
        assert!(sleepers.add(now + ms(3), co.clone()), "earlier than armed");
        assert_eq!(sleepers.wake_due(now), (0, Some(ms(3))), "four wait");
        assert_eq!(sleepers.len(), 4);
        assert_eq!(
            sleepers.wake_due(now + ms(11)),
            (3, Some(ms(9))),
            "one is left"
        );
        assert_eq!(sleepers.len(), 1);
        assert_eq!(sleepers.wake_due(now + ms(21)), (1, None));
        assert_eq!(sleepers.len(), 0);
        assert!(sleepers.add(now + ms(30), co), "unarmed again once empty");
    }
}
