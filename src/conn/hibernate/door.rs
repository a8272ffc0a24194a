//! The door of a ward: what other threads touch. Connections hand sockets in (`park`),
//! mailboxes report messages for hibernated connections (`ready`), the server stops it; each rings the ward's bell (an
//! eventfd) at most once per drain. `Wards` holds one door per scheduler.
//!
//! The door outlives the ward thread behind it. A thread that dies (it panicked, or
//! `epoll_wait` failed) closes and uncounts every socket it held, gives its epoll set and
//! bell back to the door and tells the door's vigil, whose stand-in in the supervision tree
//! exits; the restarted stand-in starts a new thread on the same door, which takes what
//! arrived meanwhile (`runtime::vigil`).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corral_actors::ChildSpec;

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::{EventfdFlags, eventfd};

use super::answer::send_now;
use super::ward::{BELL, FIRST_ID, Ward};
use crate::conn::Shared;
use crate::conn::dispatch::RouteName;
use crate::conn::process::Held;
use crate::conn::wait::{Doorbell, Outcome, Pending, Seat};
use crate::conn::write::encode_or_refuse;
use crate::http::reply::ReplyShape;
use crate::http::websocket::{Session, Wakeup, close_frame};
use crate::router::{RouteId, Router};
use crate::runtime::vigil::{self, StartFn, Vigil};
use crate::stats::Stats;

/// A socket handed to the ward.
pub(crate) struct Arrival {
    pub fd: OwnedFd,
    pub deadline: Instant,
    pub parked: Parked,
    /// Requests served on the connection so far.
    pub served: u64,
    /// The connection's process, if a handler made one: it waits with the socket.
    pub process: Option<Box<dyn Held>>,
}

pub(crate) enum Parked {
    /// A keep-alive connection between requests: wakes on input.
    Idle,
    /// A request waiting on a mailbox: wakes on its message, its deadline or a hang-up.
    Waiting {
        id: u64,
        pending: Box<dyn Pending>,
        shape: ReplyShape,
        /// The route of the request, for log lines.
        route: Option<RouteId>,
        /// Bytes the client sent after the request (pipelined), for the next coroutine.
        leftover: Vec<u8>,
    },
    /// An idle WebSocket (`conn/upgrade.rs`): wakes on input or when its seat rings (a
    /// message for it); counted with the idle connections.
    WebSocket { id: u64, session: Box<dyn Session> },
}

/// The part of a ward other threads touch.
pub(crate) struct Door {
    pub(super) inbox: Mutex<Inbox>,
    /// Set while a bell ring is outstanding, so a fan-out rings once, not once per waker.
    pub(super) rung: AtomicBool,
    bell: File,
    next_id: AtomicU64,
    /// Gauges the ward publishes after each turn.
    pub(super) idle: AtomicUsize,
    pub(super) waiting: AtomicUsize,
    /// What the ward thread takes when it starts, and gives back if it dies.
    pub(super) parts: Mutex<Option<WardParts>>,
    /// Whether a ward thread runs behind this door, for its stand-in in the tree.
    pub(super) vigil: Arc<Vigil>,
    /// Test hook: the ward panics this many times, once per drain of its inbox.
    #[cfg(test)]
    faults: std::sync::atomic::AtomicU32,
}

#[derive(Default)]
pub(super) struct Inbox {
    pub arrivals: Vec<Arrival>,
    pub ready: Vec<u64>,
    pub stopped: bool,
}

/// The ward's own descriptors: its epoll set and the bell's read side.
pub(super) struct WardParts {
    pub epoll: OwnedFd,
    pub bell: File,
}

impl Door {
    fn new() -> io::Result<Door> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        let bell = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(&epoll, &bell, EventData::new_u64(BELL), EventFlags::IN)?;
        let ringer = File::from(bell.try_clone()?);
        Ok(Door {
            inbox: Mutex::new(Inbox::default()),
            rung: AtomicBool::new(false),
            bell: ringer,
            next_id: AtomicU64::new(FIRST_ID),
            idle: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            parts: Mutex::new(Some(WardParts {
                epoll,
                bell: File::from(bell),
            })),
            vigil: Arc::default(),
            #[cfg(test)]
            faults: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Test hook: panics if a fault is armed (the ward calls it with arrivals in hand).
    #[cfg(test)]
    pub(super) fn fault_point(&self) {
        let armed = self
            .faults
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if armed.is_ok() {
            panic!("injected ward fault");
        }
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.inbox.lock().map_or(true, |inbox| inbox.stopped)
    }

    /// Closes the sockets waiting in the inbox of a door no ward will serve again (stopped,
    /// and its thread is gone): a wait is answered at once, and each is uncounted on k.
    pub(super) fn close_arrivals(&self, router: &Router, stats: &Stats, k: usize) {
        let arrivals = match self.inbox.lock() {
            Ok(mut inbox) => std::mem::take(&mut inbox.arrivals),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().arrivals),
        };
        for arrival in arrivals {
            answer_and_close(router, arrival);
            stats.connection_closed(k);
        }
    }

    fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            // A full eventfd counter (never, at one ring per drain) would only mean a wakeup
            // is already pending.
            let _ = (&self.bell).write(&1u64.to_ne_bytes());
        }
    }

    fn admit(&self, arrival: Arrival) -> Result<(), Arrival> {
        match self.inbox.lock() {
            Ok(mut inbox) if !inbox.stopped => inbox.arrivals.push(arrival),
            _ => return Err(arrival),
        }
        self.ring();
        Ok(())
    }

    fn stop(&self, router: &Router, stats: &Stats, k: usize) {
        if let Ok(mut inbox) = self.inbox.lock() {
            inbox.stopped = true;
        }
        self.ring();
        // A ward that died is not restarted now; what reached its inbox is closed here. (A
        // dying ward sets its vigil dead before it looks at `stopped`, so one of the two
        // sees the other: `Ward::die`.)
        if !self.vigil.is_alive() {
            self.close_arrivals(router, stats, k);
        }
    }
}

impl Doorbell for Door {
    /// A wait's (or a hibernated process's) mailbox has news: the ward looks at `id` on
    /// its next turn.
    fn ready(&self, id: u64) {
        if let Ok(mut inbox) = self.inbox.lock() {
            if inbox.stopped {
                return;
            }
            inbox.ready.push(id);
        }
        self.ring();
    }
}

/// Answers a wait at once (best effort, `TimedOut`, no keep-alive), or says goodbye to a
/// WebSocket (1001); closes the socket.
fn answer_and_close(router: &Router, arrival: Arrival) {
    if let Parked::WebSocket { session, .. } = arrival.parked {
        return going_away(&arrival.fd, session);
    }
    if let Parked::Waiting {
        pending,
        shape,
        route,
        ..
    } = arrival.parked
        && let Ok(Some(response)) = catch_unwind(AssertUnwindSafe(|| {
            pending.finish(Outcome::TimedOut, arrival.process.as_deref())
        }))
    {
        let mut out = Vec::new();
        let route = RouteName(router, route);
        let encoded = encode_or_refuse(&mut out, &mut response.with_close(), shape, true, route);
        if encoded.stream.is_none() {
            let _ = send_now(&arrival.fd, &out);
        }
    }
}

/// A hibernated WebSocket the server lets go of: its close frame (1001, best effort: it
/// has nothing else to send, so it fits the empty socket buffer), and its last words.
pub(super) fn going_away(fd: &OwnedFd, session: Box<dyn Session>) {
    let _ = send_now(fd, &close_frame(1001, "server shutting down"));
    if catch_unwind(AssertUnwindSafe(|| session.gone())).is_err() {
        log::error!("a hibernated websocket's handler panicked while closing");
    }
}

/// Starts ward k's thread on its door. The thread takes the epoll set and bell from the
/// door itself, so a failed spawn leaves them there for the next attempt.
fn start_ward(shared: &Arc<Shared>, k: usize) -> io::Result<()> {
    let door = shared.wards.doors[k].clone();
    let has_parts = door.parts.lock().is_ok_and(|parts| parts.is_some());
    if !has_parts {
        // Its last thread died and could not clean up (`Ward::die`): nothing to serve with.
        return Err(io::Error::other(
            "its epoll set was not given back by the thread that died",
        ));
    }
    let shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("corral-ward-{k}"))
        .spawn(move || {
            let parts = door.parts.lock().ok().and_then(|mut parts| parts.take());
            match parts {
                Some(parts) => Ward::new(k, shared, door, parts).run(),
                None => door.vigil.died("its epoll set was taken by another thread"),
            }
        })?;
    Ok(())
}

/// The wards of one server, one per scheduler.
pub(crate) struct Wards {
    doors: Box<[Arc<Door>]>,
}

impl Wards {
    pub fn new(workers: usize) -> io::Result<Wards> {
        let doors = (0..workers)
            .map(|_| Door::new().map(Arc::new))
            .collect::<io::Result<_>>()?;
        Ok(Wards { doors })
    }

    /// The supervision tree's children for the ward threads, `ward-0` .. `ward-{n-1}`: each
    /// starts its ward's thread if none runs, and exits (to be restarted) when it dies.
    pub fn stand_ins(shared: &Arc<Shared>) -> Vec<ChildSpec> {
        (0..shared.workers)
            .map(|k| {
                let owner = shared.clone();
                let start: StartFn = Arc::new(move || start_ward(&owner, k));
                let vigil = shared.wards.doors[k].vigil.clone();
                vigil::stand_in(format!("ward-{k}"), vigil, start)
            })
            .collect()
    }

    /// Test hook: ward k panics `times` times, the first on its next drain of the inbox.
    #[cfg(test)]
    pub(crate) fn inject_faults(&self, k: usize, times: u32) {
        let door = &self.doors[k];
        door.faults.store(times, Ordering::Release);
        // Ring past the flag: a drain may be in progress with the bell marked rung.
        let _ = (&door.bell).write(&1u64.to_ne_bytes());
    }

    /// Whether ward k's thread runs.
    #[cfg(test)]
    pub(crate) fn is_running(&self, k: usize) -> bool {
        self.doors[k].vigil.is_alive()
    }

    /// A place for a new wait on scheduler k.
    pub(crate) fn seat(&self, k: usize) -> Seat {
        let door = self.doors[k].clone();
        let id = door.next_id.fetch_add(1, Ordering::Relaxed);
        Seat::new(door, id)
    }

    /// An id for a hibernating WebSocket on scheduler k, and what rings its ward for it
    /// (from any thread: the door's `ready`).
    pub(crate) fn ringer(&self, k: usize) -> (u64, Wakeup) {
        let door = self.doors[k].clone();
        let id = door.next_id.fetch_add(1, Ordering::Relaxed);
        (id, Arc::new(move || door.ready(id)))
    }

    /// Hands a socket to scheduler k's ward. Refused (given back) once the server stops.
    pub(crate) fn park(&self, k: usize, arrival: Arrival) -> Result<(), Arrival> {
        self.doors[k].admit(arrival)
    }

    /// Closes idle sockets, answers waiting ones (`TimedOut`, `Connection: close`), ends
    /// the wards; counts each closed socket off `stats`.
    pub fn stop(&self, router: &Router, stats: &Stats) {
        for (k, door) in self.doors.iter().enumerate() {
            door.stop(router, stats, k);
        }
    }

    /// A socket `park` gave back because the server is stopping. The caller's coroutine
    /// still counts the connection, so this only answers a wait (best effort, no
    /// keep-alive) and closes.
    pub(crate) fn refused(&self, router: &Router, arrival: Arrival) {
        answer_and_close(router, arrival);
    }

    /// Hibernating connections on scheduler k: (idle, waiting).
    pub fn hibernating(&self, k: usize) -> (usize, usize) {
        let door = &self.doors[k];
        (
            door.idle.load(Ordering::Relaxed),
            door.waiting.load(Ordering::Relaxed),
        )
    }
}
