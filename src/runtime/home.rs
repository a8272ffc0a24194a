//! Bringing a connection back to its scheduler after may resumed it somewhere else.
//!
//! may resumes a coroutine whose sleep or timed wait expired *on its timer thread*, and one
//! woken through a channel on *the waker's* worker. Left alone, a connection whose handler
//! slept would go on running there — possibly for its next requests too, if they are
//! already buffered — and a CPU-heavy handler on the timer thread would delay every timer in
//! the process. So after each handler the connection calls `go_home(k)`.
//!
//! Each scheduler k has a doorkeeper coroutine waiting on an eventfd whose number is
//! ≡ k (mod workers), so may wakes it on worker k. A stray coroutine queues its handle in
//! k's arrivals, rings the bell and parks; the doorkeeper, running on k, unparks it, and
//! may queues an unparked coroutine on the unparking worker: k. The fast path (already
//! home) is one thread-local read.
//!
//! A doorkeeper that dies (it panicked, or its read failed) would leave every coroutine on
//! its way to k parked for good. Its state is small and survives it: the eventfd (kept with
//! its may registration) and the coroutines it has unparked that have not arrived yet are
//! left on its `Desk` in `Home`, and its successor takes over both, first letting in whoever
//! is waiting. Each server's supervision tree has a stand-in per doorkeeper
//! (`runtime::vigil`) that starts the successor.
//!
//! The doorkeeper also answers the watchdog: each time it wakes it counts a beat, so a ring
//! (`ping`) that brings no beat means scheduler k is not getting round to its coroutines.
//!
//! And it keeps k's sleepers (`sleep.rs`) and the deadlines of k's sockets waiting for input
//! (`input_wait.rs`): it waits for its ring with a read timeout until the earliest, and wakes
//! what is due each time it wakes.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use corral_actors::ChildSpec;
use crossbeam_deque::{Injector, Steal};
use may::coroutine::Coroutine;
use may::io::CoIo;
use rustix::event::{EventfdFlags, eventfd};

use super::fd::onto_residue;
use super::input_wait::{InputWaits, Ticket};
use super::sleep::Sleepers;
use super::vigil::{self, StartFn, Vigil};

/// Parks before giving up on a hop (normally one; another when an unpark landed before our
/// park).
const HOP_ATTEMPTS: usize = 64;
/// How often a doorkeeper unparks again the coroutines it let in that have not arrived.
const RECHECK_WAITING: std::time::Duration = std::time::Duration::from_millis(1);
/// Yields from a non-worker thread before hopping: each lands on a worker (round robin), so
/// one is normally enough.
const MOVES_TO_A_WORKER: usize = 8;

thread_local! {
    /// The scheduler this thread is (`usize::MAX` on threads that are not may workers).
    static SCHEDULER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A coroutine waiting to be let in, and the flag it raises once it runs on its scheduler.
type Arrival = (Coroutine, Arc<AtomicBool>);

struct Home {
    arrivals: Injector<Arrival>,
    /// The write side of the doorkeeper's eventfd (a dup of it).
    bell: File,
    /// The doorkeeper's state while it runs; left here for its successor when it dies.
    desk: Mutex<Option<Desk>>,
    vigil: Arc<Vigil>,
    /// Times the doorkeeper woke (for the watchdog).
    beats: AtomicU64,
    /// Coroutines sleeping on k (`corral::sleep`), kept across doorkeepers.
    sleepers: Sleepers,
    /// k's sockets waiting for input until a deadline (`input_wait.rs`).
    input_waits: InputWaits,
    /// Test hook: the doorkeeper panics this many times, once per ring.
    #[cfg(test)]
    faults: std::sync::atomic::AtomicU32,
}

/// What a doorkeeper works with.
struct Desk {
    /// The read side of its eventfd, registered with may on worker k. Never dropped while a
    /// dup of it lives: may would keep a registration for a closed number (docs/architecture.md,
    /// "Hazards").
    door: CoIo<File>,
    /// Coroutines it has unparked that have not arrived yet: an unpark that reached a
    /// coroutine before it parked is lost (may runs it where it is), so each ring unparks
    /// every one still waiting.
    waiting: Vec<Arrival>,
}

static HOMES: OnceLock<Box<[Home]>> = OnceLock::new();

/// Scheduler k's home, once the doorkeepers have started.
fn home(k: usize) -> Option<&'static Home> {
    HOMES.get()?.get(k)
}

impl Home {
    /// Rings the doorkeeper: its eventfd becomes readable and may wakes it on k.
    fn ring(&self) -> io::Result<()> {
        (&self.bell).write_all(&1u64.to_ne_bytes())
    }
}

/// The scheduler the current thread is, if it is one.
///
/// Never inlined: a coroutine can change threads at any park/yield, but the compiler may
/// compute a thread-local's address once per function; a fresh call re-reads it.
#[inline(never)]
pub fn current_scheduler() -> Option<usize> {
    Some(SCHEDULER.with(Cell::get)).filter(|&k| k != usize::MAX)
}

/// Starts one doorkeeper per scheduler. Called once by `runtime::start`, after may is up.
pub(crate) fn start_doorkeepers(workers: usize) -> io::Result<()> {
    let mut homes = Vec::with_capacity(workers);
    for k in 0..workers {
        let fd = onto_residue(eventfd(0, EventfdFlags::CLOEXEC)?, k, workers);
        let bell = File::from(fd.try_clone()?);
        let door = CoIo::new(File::from(fd)).map_err(io::Error::from)?;
        homes.push(Home {
            arrivals: Injector::new(),
            bell,
            desk: Mutex::new(Some(Desk {
                door,
                waiting: Vec::new(),
            })),
            vigil: Arc::default(),
            beats: AtomicU64::new(0),
            sleepers: Sleepers::new(),
            input_waits: InputWaits::new(),
            #[cfg(test)]
            faults: std::sync::atomic::AtomicU32::new(0),
        });
    }
    if HOMES.set(homes.into_boxed_slice()).is_err() {
        return Err(io::Error::other("doorkeepers already started"));
    }
    let homes = HOMES.get().expect("set just above");
    let (ready_tx, ready_rx) = mpsc::channel();
    for (k, home) in homes.iter().enumerate() {
        let ready = ready_tx.clone();
        home.vigil
            .keep(&|| spawn_doorkeeper(k, Some(ready.clone())))?;
    }
    for _ in 0..workers {
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("a doorkeeper died while starting"))?;
    }
    Ok(())
}

/// The supervision tree's children for the doorkeepers, `doorkeeper-0` .. : each starts its
/// doorkeeper if it is not running and exits (to be restarted) when it dies. Empty before
/// `runtime::start`.
pub(crate) fn stand_ins() -> Vec<ChildSpec> {
    let Some(homes) = HOMES.get() else {
        return Vec::new();
    };
    (0..homes.len())
        .map(|k| {
            let start: StartFn = Arc::new(move || spawn_doorkeeper(k, None));
            vigil::stand_in(format!("doorkeeper-{k}"), homes[k].vigil.clone(), start)
        })
        .collect()
}

fn spawn_doorkeeper(k: usize, ready: Option<mpsc::Sender<()>>) -> io::Result<()> {
    let builder = may::coroutine::Builder::new()
        .name(format!("corral-home-{k}"))
        .id(k);
    // SAFETY: the doorkeeper holds no thread-locals across yields and uses little stack.
    #[allow(unsafe_code)]
    let spawned = unsafe { builder.spawn(move || doorkeeper(k, ready)) };
    spawned.map(drop)
}

fn doorkeeper(k: usize, ready: Option<mpsc::Sender<()>>) {
    SCHEDULER.with(|s| s.set(k));
    let Some(home) = home(k) else {
        return;
    };
    let desk = home.desk.lock().ok().and_then(|mut desk| desk.take());
    let Some(mut desk) = desk else {
        return home
            .vigil
            .died("its eventfd was taken by another doorkeeper");
    };
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let why = match catch_unwind(AssertUnwindSafe(|| keep_door(k, home, &mut desk))) {
        Ok(err) => format!("could not read its eventfd: {err}"),
        Err(panic) => format!("panicked: {}", panic_text(&panic)),
    };
    log::error!(
        "doorkeeper {k} {why}; its successor takes over the {} coroutines on their way home",
        desk.waiting.len() + home.arrivals.len()
    );
    if let Ok(mut slot) = home.desk.lock() {
        *slot = Some(desk);
    }
    home.vigil.died(&why);
}

/// Lets coroutines in once per ring, and wakes the sleepers that are due each time it
/// wakes; returns only if the eventfd cannot be read.
fn keep_door(k: usize, home: &Home, desk: &mut Desk) -> io::Error {
    let mut count = [0u8; 8];
    let mut timed_out = false;
    loop {
        // First without waiting for a ring: a predecessor may have died before answering one.
        let mut unparked = let_in(k, home, &mut desk.waiting);
        let now = std::time::Instant::now();
        let (woken, next_sleeper) = home.sleepers.wake_due(now);
        let (inputs_due, next_input) = home.input_waits.wake_due(now);
        unparked += woken + inputs_due;
        let next_sleeper = match (next_sleeper, next_input) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Woken by a timeout, we run inside may's timer pass, after this round's run queue,
        // and what we unparked waits in it for the next round, which begins when epoll_wait
        // returns: on a quiet scheduler, at its next timer, which may be a connection's idle
        // timeout seconds away (a sleeper woken during a drain did not run within the 5 s of
        // tests/process.rs `sigterm_drains…`, 5 runs in 8). A ring of our own bell makes the
        // next round come at once.
        if timed_out && unparked > 0 {
            let _ = home.ring();
        }
        // A coroutine whose unpark came before it parked waits on without ringing again
        // (`go_home`): look for it every millisecond until it is in.
        let wait = match (desk.waiting.is_empty(), next_sleeper) {
            (true, next) => next,
            (false, next) => Some(next.map_or(RECHECK_WAITING, |t| t.min(RECHECK_WAITING))),
        };
        if let Err(err) = desk.door.set_read_timeout(wait) {
            return err;
        }
        timed_out = match desk.door.read(&mut count) {
            Ok(_) => false,
            Err(err) if err.kind() == io::ErrorKind::TimedOut => true,
            Err(err) => return err,
        };
        home.beats.fetch_add(1, Ordering::Release);
    }
}

/// Unparks every coroutine on its way to k that has not arrived; returns how many.
fn let_in(k: usize, home: &Home, waiting: &mut Vec<Arrival>) -> usize {
    loop {
        match home.arrivals.steal() {
            Steal::Success(arrival) => waiting.push(arrival),
            Steal::Empty => break,
            Steal::Retry => continue,
        }
    }
    #[cfg(test)]
    {
        let armed = home
            .faults
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if armed.is_ok() {
            panic!("injected doorkeeper fault");
        }
    }
    // Running on k: every unpark below queues its coroutine on k.
    waiting.retain(|(co, home)| {
        let still_away = !home.load(Ordering::Acquire);
        if still_away {
            co.unpark();
        }
        still_away
    });
    // Scheduler threads may also run coroutines spawned before this one; keep the mark.
    SCHEDULER.with(|s| s.set(k));
    waiting.len()
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// Test hook: doorkeeper k panics `times` times, the first when the next coroutine coming
/// home rings (with that coroutine in hand).
#[cfg(test)]
pub(crate) fn arm_faults(k: usize, times: u32) {
    if let Some(home) = home(k) {
        home.faults.store(times, Ordering::Release);
    }
}

/// Whether doorkeeper k runs.
#[cfg(test)]
pub(crate) fn doorkeeper_running(k: usize) -> bool {
    home(k).is_some_and(|home| home.vigil.is_alive())
}

/// How many coroutines sleep on scheduler k (`corral::sleep`).
#[cfg(test)]
pub(crate) fn sleeping(k: usize) -> usize {
    home(k).map_or(0, |home| home.sleepers.len())
}

/// How many input waits scheduler k has had (`input_wait.rs`).
#[cfg(test)]
pub(crate) fn input_waits_added(k: usize) -> u64 {
    home(k).map_or(0, |home| home.input_waits.added())
}

/// How many times scheduler k's doorkeeper has woken (`None`: there is none).
pub fn beats(k: usize) -> Option<u64> {
    Some(home(k)?.beats.load(Ordering::Acquire))
}

/// Rings scheduler k's doorkeeper, which counts a beat as soon as k runs it: a scheduler
/// that is free to run its coroutines does within microseconds. Returns whether it rang.
pub fn ping(k: usize) -> bool {
    let Some(home) = home(k) else {
        return false;
    };
    home.ring().is_ok()
}

/// The sleepers of the scheduler the calling coroutine runs on, and how to ring its
/// doorkeeper; `None` off the schedulers (or before `runtime::start`).
pub(crate) fn sleepers_here() -> Option<(&'static Sleepers, impl Fn())> {
    if !may::coroutine::is_coroutine() {
        return None;
    }
    let home = home(current_scheduler()?)?;
    let ring = move || {
        if let Err(err) = home.ring() {
            log::error!("cannot ring a doorkeeper for a sleeper: {err}");
        }
    };
    Some((&home.sleepers, ring))
}

/// Parks the calling coroutine, which runs on a scheduler, until `io` may have input (may's
/// `WaitIo`: at once if an edge came since its last read) or `deadline` passes, when its
/// doorkeeper wakes it. `false`: not on a scheduler with a doorkeeper; nothing waited.
pub(crate) fn wait_input_until<T: may::io::WaitIo>(io: &T, deadline: std::time::Instant) -> bool {
    let Some(home) = current_scheduler().and_then(home) else {
        return false;
    };
    let (ticket, ring): (Ticket, bool) = home.input_waits.add(deadline, io.waker());
    if ring && let Err(err) = home.ring() {
        log::error!("cannot ring a doorkeeper for an input wait: {err}");
    }
    io.wait_io();
    home.input_waits.remove(ticket);
    true
}

/// Makes sure the calling coroutine runs on scheduler `k` from here on.
pub fn go_home(k: usize) {
    if current_scheduler() == Some(k) || !may::coroutine::is_coroutine() {
        return;
    }
    let Some(home) = home(k) else {
        return;
    };
    // On may's timer thread (where a sleep resumes us; it is pinned to no core), the ring
    // below can hand our core to the woken doorkeeper before we park, and its unpark then
    // comes too early to move us, ring after ring: under CPU contention all the attempts
    // lost, and the connection ran its next requests on the timer thread (traced: ~1 run in
    // 20 at load 6). From a worker the doorkeeper of another scheduler runs on another core.
    // So first get onto a worker: a yield from a non-worker thread requeues us on one.
    for _ in 0..MOVES_TO_A_WORKER {
        if current_scheduler().is_some() {
            break;
        }
        may::coroutine::yield_now();
    }
    if current_scheduler() == Some(k) {
        return;
    }
    let arrived = Arc::new(AtomicBool::new(false));
    home.arrivals
        .push((may::coroutine::current(), arrived.clone()));
    if let Err(err) = home.ring() {
        log::error!("cannot ring scheduler {k}'s doorkeeper: {err}");
    }
    for _ in 0..HOP_ATTEMPTS {
        may::coroutine::park();
        // Normally the doorkeeper's unpark queued us on k. If it came before we parked (the
        // bell can wake k's thread at once, and on a shared core it runs before we park),
        // park returned here: park again, and the doorkeeper, which unparks the ones it let
        // in every millisecond until they are in, gets us next time. Ringing again would
        // lose the same race again (seen: ~1 connection in 500 at 10k-19k long-polls, 2
        // schedulers on one core).
        if current_scheduler() == Some(k) {
            arrived.store(true, Ordering::Release);
            return;
        }
    }
    arrived.store(true, Ordering::Release);
    log::warn!("a connection of scheduler {k} could not get back to it");
}
