//! Asking may, at start, whether its schedulers really are pinned.
//!
//! Two things outside Corral's code silently undo "a connection runs on its scheduler for
//! life", and may's API shows neither: the `work_steal` feature belongs to may (Corral cannot
//! `cfg` on it, and any crate in the build that asks for `may` with default features turns it
//! on for everyone), and may's scheduler is a private static started by the first coroutine
//! spawned, after which `config().set_workers(n)` is ignored while `get_workers()` still
//! returns `n`. So `runtime::start` asks the running scheduler instead, with two probes built
//! on how may 0.3 schedules (`src/scheduler.rs`, `src/io/sys/unix/epoll.rs`):
//!
//! **Census** (`census`, `infer_workers`). A coroutine spawned with `Builder::id(i)` goes to
//! the global queue of worker `i % workers`, and only that worker takes from its global
//! queue. Spawn ids `0..L`, each reporting its thread: the threads repeat with period = the
//! number of workers actually running. Ids that do not repeat with a period mean a coroutine
//! ran away from its worker, which only stealing does. Under stealing a census can also
//! *look* periodic and still be wrong (all of it run by one worker that robbed the other), so
//! a census that disagrees with the requested count is taken again (`take_census`): without
//! stealing every census of a process is the same map id → thread; a different one is
//! stealing too.
//!
//! **Steal probe** (`steals`). Without `work_steal` a worker's local queue is a single-consumer
//! queue only its own thread pops; with it, an idle worker j ends each round of its run loop
//! (`Scheduler::run_queued_tasks`) by trying to steal from workers j+1, j+2, j+3.
//! 1. The *stray* S is spawned on the victim worker 0; it spawns the *holder* H there and
//!    parks. H runs on worker 0 only after S has parked (one thread).
//! 2. H unparks S — may queues an unparked coroutine on the unparking worker's local queue —
//!    reports its thread, then blocks worker 0's thread itself (a std channel), so S stays
//!    queued there, ready, with no thread of its own to run it.
//! 3. Each would-be thief j (0−1, 0−2, 0−3 mod workers) gets a coroutine that rings an
//!    eventfd of its own registered with worker j's epoll (descriptor ≡ j), waits for it, and
//!    reports: may reads epoll events only between run-loop rounds, so each report proves that
//!    worker j has finished a round — and tried to steal S — after S was queued.
//!    `STEAL_ROUNDS` such reports per thief, then H is released.
//! 4. S reports the thread it finally ran on. Another thread than H's means S was stolen.
//!
//! It cannot raise a false alarm: without `work_steal` nothing but worker 0's thread can take
//! S from worker 0's queue, whatever the timing, the load or the worker count. With
//! may's default `work_steal` it cannot miss either, short of a thief not answering before
//! `PROBE_LIMIT` (then the probe says so and the server starts): by step 3, S sat in the
//! victim's queue throughout a round that ended with a steal attempt aimed at it. The extra
//! rounds are for `rand_work_steal`, whose thieves pick victims at random. Cost in a healthy
//! build: a few thread wake-ups and epoll rounds, well under a millisecond.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use may::io::{CoIo, WaitIo};
use rustix::event::{EventfdFlags, eventfd};

use super::fd::onto_residue;

/// How long a probe waits for a worker before giving up. An idle runtime answers in well
/// under a millisecond; this only bounds a worker that is stuck or starved of CPU.
pub const PROBE_LIMIT: Duration = Duration::from_secs(1);

/// Steal attempts each thief is seen to make while the stray is held. may's `work_steal`
/// is caught by the first; the rest are for `rand_work_steal`, whose thief picks each victim
/// at random: with 2 workers a round misses with probability 1/2 (measured: 8 rounds missed
/// 1 probe in 2000). Each round is one epoll poll on an idle worker, a few µs.
const STEAL_ROUNDS: usize = 8;

/// Censuses taken again when the first disagrees with the requested count (only then: a
/// healthy start takes one).
const CENSUS_REPEATS: usize = 3;

/// Victims an idle may worker tries in one round (`max_steal` in `run_queued_tasks`).
const MAY_MAX_STEAL: usize = 3;

/// The worker the steal probe holds (any would do; 0 exists for every worker count).
const VICTIM: usize = 0;

/// How many worker threads may runs, as the census saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerCount {
    /// This many threads took the census's coroutines.
    Exactly(usize),
    /// The census spawned this many ids and none came back to id 0's thread.
    MoreThan(usize),
}

impl std::fmt::Display for WorkerCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            WorkerCount::Exactly(1) => f.write_str("1 worker"),
            WorkerCount::Exactly(n) => write!(f, "{n} workers"),
            WorkerCount::MoreThan(n) => write!(f, "more than {n} workers"),
        }
    }
}

/// What the census threads say (`Migrated` also when two censuses disagree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Census {
    Workers(WorkerCount),
    /// Some coroutine ran on another worker than its id's: stealing.
    Migrated,
}

/// Why `runtime::start` refuses, once found (kept so that later calls refuse the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    WorkSteal,
    AlreadyRunning {
        running: WorkerCount,
        requested: usize,
    },
}

/// Ids the census spawns for `requested` workers: enough to see `requested` repeat, and to
/// name the count may picks by itself (one per CPU) when it started before Corral.
pub(crate) fn census_len(requested: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    2 * requested.max(cpus) + 1
}

/// The worker count that explains `threads[i]` = thread that ran the coroutine spawned with
/// id `i`: the smallest period, if the threads within one period are distinct.
pub(crate) fn infer_workers<T: PartialEq>(threads: &[T]) -> Census {
    let Some(first) = threads.first() else {
        return Census::Workers(WorkerCount::MoreThan(0));
    };
    let period = threads
        .iter()
        .skip(1)
        .position(|t| t == first)
        .map_or(threads.len(), |p| p + 1);
    let distinct = (0..period).all(|i| (0..i).all(|j| threads[i] != threads[j]));
    let periodic = threads
        .iter()
        .enumerate()
        .all(|(i, t)| *t == threads[i % period]);
    match (distinct && periodic, period == threads.len()) {
        (false, _) => Census::Migrated,
        (true, true) => Census::Workers(WorkerCount::MoreThan(threads.len())),
        (true, false) => Census::Workers(WorkerCount::Exactly(period)),
    }
}

/// The workers whose steal attempts reach `victim` first (may's thief j tries j+1, j+2, …).
pub(crate) fn thieves(victim: usize, workers: usize) -> Vec<usize> {
    (1..=MAY_MAX_STEAL.min(workers.saturating_sub(1)))
        .map(|d| (victim + workers - d) % workers)
        .collect()
}

/// How many workers to run the steal probe with, given the census (`None`: skip it).
pub(crate) fn steal_probe_workers(census: Option<Census>) -> Option<usize> {
    match census {
        Some(Census::Workers(WorkerCount::Exactly(n))) if n >= 2 => Some(n),
        // One worker has no one to steal; a count not known cannot place the thieves;
        // `Migrated` already answered.
        _ => None,
    }
}

/// The verdict from what the probes saw (`None`: that probe had no answer in time, which
/// proves nothing and refuses nothing).
pub(crate) fn verdict(
    requested: usize,
    census: Option<Census>,
    stolen: Option<bool>,
) -> Result<(), Refusal> {
    if stolen == Some(true) || census == Some(Census::Migrated) {
        return Err(Refusal::WorkSteal);
    }
    match census {
        Some(Census::Workers(running)) if running != WorkerCount::Exactly(requested) => {
            Err(Refusal::AlreadyRunning { running, requested })
        }
        _ => Ok(()),
    }
}

/// The census for `requested` workers, taken again if it disagrees (`None`: no answer).
pub(crate) fn take_census(requested: usize, deadline: Instant) -> io::Result<Option<Census>> {
    let len = census_len(requested);
    let Some(first) = census(len, deadline)? else {
        return Ok(None);
    };
    let seen = infer_workers(&first);
    if seen == Census::Workers(WorkerCount::Exactly(requested)) {
        return Ok(Some(seen));
    }
    for _ in 0..CENSUS_REPEATS {
        // A census with no answer in time proves nothing either way.
        if let Some(again) = census(len, deadline)?
            && again != first
        {
            return Ok(Some(Census::Migrated));
        }
    }
    Ok(Some(seen))
}

/// Spawns ids `0..len` and returns the thread each ran on (`None` if some did not answer).
pub(crate) fn census(len: usize, deadline: Instant) -> io::Result<Option<Vec<ThreadId>>> {
    let (tx, rx) = mpsc::channel();
    for id in 0..len {
        let tx = tx.clone();
        spawn_on(id, "corral-census", move || {
            let _ = tx.send((id, this_thread()));
        })?;
    }
    let mut threads = vec![None; len];
    for _ in 0..len {
        let Ok((id, thread)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            return Ok(None);
        };
        threads[id] = Some(thread);
    }
    Ok(threads.into_iter().collect())
}

/// What the steal probe's coroutines report.
enum Seen {
    /// The holder blocks the victim's thread, the stray queued behind it.
    Holding(ThreadId),
    /// The stray ran, on this thread.
    Ran(ThreadId),
    /// A thief finished one round of its run loop.
    Round,
    Failed(io::Error),
}

/// Whether a coroutine queued on a held worker was run by another one (`None`: the workers
/// did not answer before `deadline`). See the module doc.
pub(crate) fn steals(workers: usize, deadline: Instant) -> io::Result<Option<bool>> {
    let (tx, rx) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    spawn_stray(tx.clone(), released, deadline)?;
    let wait = |rx: &mpsc::Receiver<Seen>| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    };
    let mut holder = None;
    let mut ran = None;
    while holder.is_none() && ran.is_none() {
        match wait(&rx) {
            Some(Seen::Holding(thread)) => holder = Some(thread),
            Some(Seen::Ran(thread)) => ran = Some(thread),
            Some(Seen::Round) => {}
            Some(Seen::Failed(err)) => return Err(err),
            None => return Ok(None),
        }
    }
    if ran.is_none() {
        let thieves = thieves(VICTIM, workers);
        for &j in &thieves {
            spawn_thief(j, workers, tx.clone())?;
        }
        let mut rounds = 0;
        while ran.is_none() && rounds < thieves.len() * STEAL_ROUNDS {
            match wait(&rx) {
                Some(Seen::Holding(thread)) => holder = Some(thread),
                Some(Seen::Ran(thread)) => ran = Some(thread),
                Some(Seen::Round) => rounds += 1,
                Some(Seen::Failed(err)) => return Err(err),
                None => return Ok(None),
            }
        }
    }
    // Let the victim go: the stray runs there now, unless a thief already took it.
    drop(release);
    while ran.is_none() || holder.is_none() {
        match wait(&rx) {
            Some(Seen::Holding(thread)) => holder = Some(thread),
            Some(Seen::Ran(thread)) => ran = Some(thread),
            Some(Seen::Round) => {}
            Some(Seen::Failed(err)) => return Err(err),
            None => return Ok(None),
        }
    }
    Ok(Some(ran != holder))
}

/// Steps 1, 2 and 4: the stray, and the holder it spawns on the victim.
fn spawn_stray(
    tx: mpsc::Sender<Seen>,
    released: mpsc::Receiver<()>,
    deadline: Instant,
) -> io::Result<()> {
    spawn_on(VICTIM, "corral-probe-stray", move || {
        let stray = may::coroutine::current();
        let holder_tx = tx.clone();
        let holder = spawn_on(VICTIM, "corral-probe-holder", move || {
            stray.unpark();
            let _ = holder_tx.send(Seen::Holding(this_thread()));
            // Blocking the worker's thread is the point: nothing else may run on it now.
            let _ = released.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        });
        if let Err(err) = holder {
            let _ = tx.send(Seen::Failed(err));
            return;
        }
        may::coroutine::park();
        let _ = tx.send(Seen::Ran(this_thread()));
    })
}

/// Step 3: a coroutine on worker `j` that reports each time worker j finishes a round.
fn spawn_thief(j: usize, workers: usize, tx: mpsc::Sender<Seen>) -> io::Result<()> {
    let fd = onto_residue(eventfd(0, EventfdFlags::CLOEXEC)?, j, workers);
    let mut bell = File::from(fd.try_clone()?);
    spawn_on(j, "corral-probe-thief", move || {
        // Registered on worker j's epoll: fd ≡ j (mod workers).
        let door = match CoIo::new(File::from(fd)) {
            Ok(door) => door,
            Err(err) => {
                let _ = tx.send(Seen::Failed(err.into()));
                return;
            }
        };
        let mut count = [0u8; 8];
        let mut failure = None;
        for _ in 0..STEAL_ROUNDS {
            if let Err(err) = bell.write_all(&1u64.to_ne_bytes()) {
                failure = Some(err);
                break;
            }
            // Returns once worker j has polled epoll, i.e. ended a round of its run loop.
            door.wait_io();
            // Empty the counter so that the next ring is a new edge (the fd is non-blocking).
            let _ = rustix::io::read(door.inner(), &mut count);
            if tx.send(Seen::Round).is_err() {
                break;
            }
        }
        // Deregister, then close. Dropping a `CoIo` does it the other way round, and a
        // descriptor opened meanwhile under the same number (a doorkeeper's, a connection's)
        // would lose its own registration to our late EPOLL_CTL_DEL.
        drop(door.into_inner());
        if let Some(err) = failure {
            let _ = tx.send(Seen::Failed(err));
        }
    })
}

fn spawn_on(id: usize, name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let builder = may::coroutine::Builder::new().name(name.to_string()).id(id);
    // SAFETY: probe coroutines hold no thread-locals across a yield (the thread is read only
    // through `this_thread`, which is never inlined) and use little stack.
    #[allow(unsafe_code)]
    let spawned = unsafe { builder.spawn(f) };
    spawned.map(drop)
}

/// The thread running the caller, read afresh (a coroutine may have changed threads since
/// its last read of a thread-local; a call that is not inlined cannot reuse it).
#[inline(never)]
fn this_thread() -> ThreadId {
    std::thread::current().id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_sees_the_period_of_the_threads() {
        assert_eq!(
            infer_workers(&[7, 8, 7, 8, 7]),
            Census::Workers(WorkerCount::Exactly(2))
        );
        assert_eq!(
            infer_workers(&[7, 7, 7]),
            Census::Workers(WorkerCount::Exactly(1))
        );
        assert_eq!(
            infer_workers(&[1, 2, 3, 1, 2, 3, 1]),
            Census::Workers(WorkerCount::Exactly(3))
        );
    }

    #[test]
    fn census_without_a_repeat_counts_more_workers_than_ids() {
        assert_eq!(
            infer_workers(&[1, 2, 3, 4, 5]),
            Census::Workers(WorkerCount::MoreThan(5))
        );
    }

    #[test]
    fn census_with_a_coroutine_off_its_worker_is_migration() {
        // Id 3 should have run with id 1 (period 2), ran with id 0.
        assert_eq!(infer_workers(&[1, 2, 1, 1, 1]), Census::Migrated);
        // Period 3, but ids 1 and 2 on one thread.
        assert_eq!(infer_workers(&[1, 2, 2, 1, 2, 2]), Census::Migrated);
        // No repeat of id 0, yet two ids on one thread.
        assert_eq!(infer_workers(&[1, 2, 3, 2]), Census::Migrated);
    }

    #[test]
    fn thieves_are_the_workers_whose_first_targets_include_the_victim() {
        assert_eq!(thieves(0, 1), Vec::<usize>::new());
        assert_eq!(thieves(0, 2), vec![1]);
        assert_eq!(thieves(0, 3), vec![2, 1]);
        assert_eq!(thieves(0, 8), vec![7, 6, 5]);
        assert_eq!(thieves(2, 8), vec![1, 0, 7]);
        // Each thief's victims j+1..=j+3 (mod n) include the victim.
        for n in 2..10 {
            for j in thieves(0, n) {
                assert!((1..=MAY_MAX_STEAL.min(n - 1)).any(|d| (j + d) % n == 0));
            }
        }
    }

    #[test]
    fn census_len_reaches_past_the_requested_count() {
        assert!(census_len(2) >= 5);
        assert!(census_len(64) > 128);
    }

    #[test]
    fn steal_probe_runs_only_with_a_known_count_of_two_or_more() {
        let exactly = |n| Some(Census::Workers(WorkerCount::Exactly(n)));
        assert_eq!(steal_probe_workers(exactly(4)), Some(4));
        assert_eq!(steal_probe_workers(exactly(1)), None);
        assert_eq!(
            steal_probe_workers(Some(Census::Workers(WorkerCount::MoreThan(9)))),
            None
        );
        assert_eq!(steal_probe_workers(Some(Census::Migrated)), None);
        assert_eq!(steal_probe_workers(None), None);
    }

    #[test]
    fn verdict_puts_work_stealing_first_and_refuses_only_on_evidence() {
        let two = Some(Census::Workers(WorkerCount::Exactly(2)));
        let one = Some(Census::Workers(WorkerCount::Exactly(1)));
        assert_eq!(verdict(2, two, Some(false)), Ok(()));
        assert_eq!(verdict(2, two, Some(true)), Err(Refusal::WorkSteal));
        assert_eq!(
            verdict(2, Some(Census::Migrated), None),
            Err(Refusal::WorkSteal)
        );
        assert_eq!(
            verdict(2, one, None),
            Err(Refusal::AlreadyRunning {
                running: WorkerCount::Exactly(1),
                requested: 2
            })
        );
        assert_eq!(verdict(1, one, None), Ok(()));
        // No answer proves nothing.
        assert_eq!(verdict(2, None, None), Ok(()));
        assert_eq!(verdict(2, two, None), Ok(()));
    }

    #[test]
    fn worker_counts_read_as_english() {
        assert_eq!(WorkerCount::Exactly(1).to_string(), "1 worker");
        assert_eq!(WorkerCount::Exactly(4).to_string(), "4 workers");
        assert_eq!(WorkerCount::MoreThan(9).to_string(), "more than 9 workers");
    }

    /// The probes on the real runtime of this build (no `work_steal`): the census finds
    /// may's own worker count, every time, and the steal probe never fires, however often it
    /// runs.
    #[test]
    fn in_this_build_the_probes_never_fire() {
        let deadline = || Instant::now() + PROBE_LIMIT;
        let workers = may::config().get_workers();
        let threads = census(census_len(workers), deadline())
            .expect("spawn")
            .expect("every census coroutine answered");
        assert_eq!(
            infer_workers(&threads),
            Census::Workers(WorkerCount::Exactly(workers))
        );
        // Asked for another count, the census is taken again and agrees with itself.
        assert_eq!(
            take_census(workers + 1, deadline()).expect("spawn"),
            Some(Census::Workers(WorkerCount::Exactly(workers)))
        );
        if workers < 2 {
            return;
        }
        for _ in 0..200 {
            assert_ne!(steals(workers, deadline()).expect("spawn"), Some(true));
        }
    }
}
