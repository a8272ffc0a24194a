//! The watchdog: tells when a scheduler is stuck in one handler (`runtime.stall_warn_ms`).
//!
//! may cannot preempt a coroutine: a handler that computes for a second, or calls
//! `std::thread::sleep`, `std::fs` or a contended `std::sync::Mutex`, stops every other
//! connection of its scheduler meanwhile (README, "Caveats"). Go preempts; we can at least
//! tell. A plain thread (never a coroutine: it must run while a scheduler is stuck) polls each
//! scheduler's handler record (`Stats::running_record`: when the running handler started,
//! and its route) a few times per threshold.
//!
//! **Stuck, or waiting?** A handler that yielded (a coroutine sleep, a channel wait) keeps its
//! record until it returns, and its scheduler serves others meanwhile: not a stall. So once a
//! handler has run half the threshold, the watchdog rings the scheduler's doorkeeper
//! (`home::ping`), a coroutine on that scheduler that counts a beat whenever it runs. A free
//! scheduler runs it within microseconds; a stuck one cannot. At the threshold, a record
//! still the same and a ring still unanswered after at least one poll is a stall: logged once
//! at warn with the scheduler and the route, and counted (`corral_scheduler_stalls_total`).
//! An answered ring is forgotten and rung again at the next poll, so a handler that waits
//! first and then gets stuck is still caught.
//!
//! A handler that runs on may's timer thread after a sleep (before it gets home) stalls the
//! timers, not its scheduler: the watchdog does not see that one.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::home;
use crate::stats::{RunningRecord, Stats};

/// Polls per threshold: a stall is reported at most a quarter of the threshold late.
const POLLS_PER_THRESHOLD: u32 = 4;
/// The poll interval's bounds: a tiny threshold must not turn the watchdog into a spinner,
/// and a huge one should still see a stall end within a quarter second.
const MIN_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(250);

/// Names a route by its cost-table slot, for the log line (`GET /users/:id`).
pub(crate) type RouteNamer = Box<dyn Fn(usize) -> String + Send>;

/// The watchdog thread; dropping the handle stops it and waits for it (within a poll).
pub(crate) struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Starts watching every scheduler of `stats` for handlers stuck longer than `threshold`.
pub(crate) fn start(
    threshold: Duration,
    stats: Arc<Stats>,
    name_route: RouteNamer,
) -> io::Result<Watchdog> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let poll = (threshold / POLLS_PER_THRESHOLD).clamp(MIN_POLL, MAX_POLL);
    let thread = std::thread::Builder::new()
        .name("corral-watchdog".into())
        .spawn(move || {
            let mut watches = vec![Watch::default(); stats.schedulers()];
            let threshold_ns = threshold.as_nanos() as u64;
            while !stopped.load(Ordering::Acquire) {
                // A bug here must not end the watching: log it and poll again.
                let polled = catch_unwind(AssertUnwindSafe(|| {
                    poll_once(&mut watches, &stats, threshold_ns, &name_route);
                }));
                if polled.is_err() {
                    log::error!("watchdog: a poll panicked; watching on");
                }
                std::thread::park_timeout(poll);
            }
        })?;
    Ok(Watchdog {
        stop,
        thread: Some(thread),
    })
}

fn poll_once(watches: &mut [Watch], stats: &Stats, threshold_ns: u64, name_route: &RouteNamer) {
    for (k, watch) in watches.iter_mut().enumerate() {
        let run = stats.running_record(k);
        match step(watch, run, home::beats(k), threshold_ns) {
            Action::Nothing => {}
            Action::Ping => {
                if !home::ping(k) {
                    watch.ping = None;
                }
            }
            Action::Report(run) => {
                stats.record_stall(k);
                log::warn!(
                    "scheduler {k} is stuck: the handler of {} has run {} ms without yielding \
                     (runtime.stall_warn_ms = {}); every other connection of scheduler {k} \
                     waits. A blocking call (std::thread::sleep, std::fs, std::net, a \
                     contended std::sync::Mutex) or a long computation belongs in \
                     corral::offload (README, Caveats)",
                    name_route(run.slot),
                    run.elapsed_ns / 1_000_000,
                    threshold_ns / 1_000_000
                );
            }
        }
    }
}

/// What the watchdog knows of one scheduler between polls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Watch {
    /// The handler record being watched (`RunningRecord::since_ns`; 0: none).
    since_ns: u64,
    /// The doorkeeper's beat count when it was rung, if a ring is unanswered.
    ping: Option<u64>,
    /// This record was reported: once per stall.
    reported: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Action {
    Nothing,
    /// Ring the doorkeeper (its beat count before the ring is in `Watch::ping`).
    Ping,
    Report(RunningRecord),
}

/// One poll of one scheduler: its handler record now and its doorkeeper's beat count
/// (`None`: no doorkeeper, so a stall cannot be told from a wait and only time counts).
fn step(
    watch: &mut Watch,
    run: Option<RunningRecord>,
    beats: Option<u64>,
    threshold_ns: u64,
) -> Action {
    let Some(run) = run else {
        *watch = Watch::default();
        return Action::Nothing;
    };
    if run.since_ns != watch.since_ns {
        *watch = Watch {
            since_ns: run.since_ns,
            ..Watch::default()
        };
    }
    if watch.reported || run.elapsed_ns < threshold_ns / 2 {
        return Action::Nothing;
    }
    let Some(beats) = beats else {
        watch.reported = run.elapsed_ns >= threshold_ns;
        return match watch.reported {
            true => Action::Report(run),
            false => Action::Nothing,
        };
    };
    match watch.ping {
        // The scheduler ran its doorkeeper since the ring: the handler waits, it is not
        // stuck. Ring again next time.
        Some(rung) if rung != beats => {
            watch.ping = None;
            Action::Nothing
        }
        Some(_) if run.elapsed_ns >= threshold_ns => {
            watch.reported = true;
            Action::Report(run)
        }
        Some(_) => Action::Nothing,
        None => {
            watch.ping = Some(beats);
            Action::Ping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const THRESHOLD: u64 = 200 * MS;

    fn record(since_ns: u64, elapsed_ns: u64) -> RunningRecord {
        RunningRecord {
            since_ns,
            elapsed_ns,
            slot: 1,
        }
    }

    fn running(since_ns: u64, elapsed_ns: u64) -> Option<RunningRecord> {
        Some(record(since_ns, elapsed_ns))
    }

    #[test]
    fn a_stuck_handler_is_reported_once_after_an_unanswered_ring() {
        let mut w = Watch::default();
        assert_eq!(
            step(&mut w, running(7, 50 * MS), Some(3), THRESHOLD),
            Action::Nothing
        );
        assert_eq!(
            step(&mut w, running(7, 100 * MS), Some(3), THRESHOLD),
            Action::Ping
        );
        assert_eq!(
            step(&mut w, running(7, 150 * MS), Some(3), THRESHOLD),
            Action::Nothing,
            "not yet at the threshold"
        );
        let report = step(&mut w, running(7, 200 * MS), Some(3), THRESHOLD);
        assert_eq!(report, Action::Report(record(7, 200 * MS)));
        for elapsed in [250, 1000, 5000] {
            assert_eq!(
                step(&mut w, running(7, elapsed * MS), Some(3), THRESHOLD),
                Action::Nothing,
                "once per stall"
            );
        }
        // The next handler is a new stall.
        assert_eq!(
            step(&mut w, running(9, 300 * MS), Some(3), THRESHOLD),
            Action::Ping
        );
        assert!(matches!(
            step(&mut w, running(9, 350 * MS), Some(3), THRESHOLD),
            Action::Report(_)
        ));
    }

    #[test]
    fn a_handler_whose_scheduler_answers_the_ring_is_waiting_not_stuck() {
        let mut w = Watch::default();
        assert_eq!(
            step(&mut w, running(7, 100 * MS), Some(3), THRESHOLD),
            Action::Ping
        );
        // The doorkeeper ran: the scheduler is free, the handler yielded.
        for (elapsed, beats) in [(300, 4), (400, 4), (500, 5), (600, 5)] {
            let action = step(&mut w, running(7, elapsed * MS), Some(beats), THRESHOLD);
            assert_ne!(action, Action::Report(record(7, elapsed * MS)));
        }
        // It resumed and got stuck: the last ring (at 600 ms) is answered, the next is not.
        assert_eq!(
            step(&mut w, running(7, 700 * MS), Some(6), THRESHOLD),
            Action::Nothing
        );
        assert_eq!(
            step(&mut w, running(7, 800 * MS), Some(6), THRESHOLD),
            Action::Ping
        );
        assert!(matches!(
            step(&mut w, running(7, 900 * MS), Some(6), THRESHOLD),
            Action::Report(_)
        ));
    }

    #[test]
    fn no_handler_running_resets_the_watch() {
        let mut w = Watch::default();
        step(&mut w, running(7, 100 * MS), Some(3), THRESHOLD);
        assert_eq!(step(&mut w, None, Some(3), THRESHOLD), Action::Nothing);
        assert_eq!(w, Watch::default());
        // Without a doorkeeper only time counts.
        assert!(matches!(
            step(&mut w, running(8, 200 * MS), None, THRESHOLD),
            Action::Report(_)
        ));
    }
}
