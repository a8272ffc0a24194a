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
//! The doorkeeper also answers the watchdog: each time it wakes it counts a beat, so a ring
//! (`ping`) that brings no beat means scheduler k is not getting round to its coroutines.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use crossbeam_deque::{Injector, Steal};
use may::coroutine::Coroutine;
use may::io::CoIo;
use rustix::event::{EventfdFlags, eventfd};

use super::fd::onto_residue;

/// Rings before giving up on a hop (normally one; another when an unpark landed before our
/// park).
const HOP_ATTEMPTS: usize = 64;

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
    /// Times the doorkeeper woke (for the watchdog).
    beats: AtomicU64,
}

static HOMES: OnceLock<Box<[Home]>> = OnceLock::new();

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
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut homes = Vec::with_capacity(workers);
    for k in 0..workers {
        let fd = onto_residue(eventfd(0, EventfdFlags::CLOEXEC)?, k, workers);
        let bell = File::from(fd.try_clone()?);
        let door = CoIo::new(File::from(fd)).map_err(io::Error::from)?;
        homes.push(Home {
            arrivals: Injector::new(),
            bell,
            beats: AtomicU64::new(0),
        });
        let ready = ready_tx.clone();
        let builder = may::coroutine::Builder::new()
            .name(format!("corral-home-{k}"))
            .id(k);
        // SAFETY: the doorkeeper holds no thread-locals across yields and uses little stack.
        #[allow(unsafe_code)]
        let spawned = unsafe { builder.spawn(move || doorkeeper(k, door, ready)) };
        spawned?;
    }
    if HOMES.set(homes.into_boxed_slice()).is_err() {
        return Err(io::Error::other("doorkeepers already started"));
    }
    for _ in 0..workers {
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("a doorkeeper died while starting"))?;
    }
    Ok(())
}

fn doorkeeper(k: usize, mut door: CoIo<File>, ready: mpsc::Sender<()>) {
    SCHEDULER.with(|s| s.set(k));
    let _ = ready.send(());
    let mut count = [0u8; 8];
    // Arrivals not yet home: an unpark that reached a coroutine before it parked is lost
    // (may runs it where it is), so each ring unparks every one still waiting.
    let mut waiting: Vec<Arrival> = Vec::new();
    loop {
        if let Err(err) = door.read_exact(&mut count) {
            log::error!("doorkeeper {k}: {err}");
            return;
        }
        let Some(homes) = HOMES.get() else { continue };
        homes[k].beats.fetch_add(1, Ordering::Release);
        loop {
            match homes[k].arrivals.steal() {
                Steal::Success(arrival) => waiting.push(arrival),
                Steal::Empty => break,
                Steal::Retry => continue,
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
    }
}

/// How many times scheduler k's doorkeeper has woken (`None`: there is none).
pub fn beats(k: usize) -> Option<u64> {
    let homes = HOMES.get()?;
    Some(homes.get(k)?.beats.load(Ordering::Acquire))
}

/// Rings scheduler k's doorkeeper, which counts a beat as soon as k runs it: a scheduler
/// that is free to run its coroutines does within microseconds. Returns whether it rang.
pub fn ping(k: usize) -> bool {
    let Some(home) = HOMES.get().and_then(|homes| homes.get(k)) else {
        return false;
    };
    (&home.bell).write_all(&1u64.to_ne_bytes()).is_ok()
}

/// Makes sure the calling coroutine runs on scheduler `k` from here on.
pub fn go_home(k: usize) {
    if current_scheduler() == Some(k) || !may::coroutine::is_coroutine() {
        return;
    }
    let Some(home) = HOMES.get().and_then(|homes| homes.get(k)) else {
        return;
    };
    let arrived = Arc::new(AtomicBool::new(false));
    home.arrivals
        .push((may::coroutine::current(), arrived.clone()));
    for _ in 0..HOP_ATTEMPTS {
        if let Err(err) = (&home.bell).write_all(&1u64.to_ne_bytes()) {
            log::error!("cannot ring scheduler {k}'s doorkeeper: {err}");
            break;
        }
        may::coroutine::park();
        // Normally the doorkeeper's unpark queued us on k. If it came before we parked (the
        // bell can wake k's thread at once), park returned here: ring again.
        if current_scheduler() == Some(k) {
            arrived.store(true, Ordering::Release);
            return;
        }
    }
    arrived.store(true, Ordering::Release);
    log::warn!("a connection of scheduler {k} could not get back to it");
}
