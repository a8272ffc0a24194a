//! The door of a ward: what other threads touch. Connections hand sockets in (`park`),
//! wakers report fired waits (`ready`), the server stops it; each rings the ward's bell (an
//! eventfd) at most once per drain. `Wards` holds one door per scheduler.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::{EventfdFlags, eventfd};

use super::answer::send_now;
use super::ward::{BELL, FIRST_ID, Ward};
use crate::conn::Shared;
use crate::conn::dispatch::RouteName;
use crate::conn::write::encode_or_refuse;
use crate::http::reply::ReplyShape;
use crate::http::wait::{Doorbell, Outcome, Pending, Seat};
use crate::router::{RouteId, Router};

/// A socket handed to the ward.
pub(crate) struct Arrival {
    pub fd: OwnedFd,
    pub deadline: Instant,
    pub parked: Parked,
    /// Requests served on the connection so far.
    pub served: u64,
}

pub(crate) enum Parked {
    /// A keep-alive connection between requests: wakes on input.
    Idle,
    /// A request waiting for its waker: wakes on it, on its deadline or on a hang-up.
    Waiting {
        id: u64,
        pending: Box<dyn Pending>,
        shape: ReplyShape,
        /// The route of the request, for log lines.
        route: Option<RouteId>,
        /// Bytes the client sent after the request (pipelined), for the next coroutine.
        leftover: Vec<u8>,
    },
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
    /// What the ward thread takes when it starts.
    parts: Mutex<Option<WardParts>>,
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
        })
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

    fn stop(&self) {
        if let Ok(mut inbox) = self.inbox.lock() {
            inbox.stopped = true;
        }
        self.ring();
    }
}

impl Doorbell for Door {
    /// A waker fired: the ward looks at wait `id` on its next turn.
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

    /// Starts the ward threads (once the server's shared state exists).
    pub fn start(shared: &Arc<Shared>) -> io::Result<()> {
        for (k, door) in shared.wards.doors.iter().enumerate() {
            let parts = door.parts.lock().ok().and_then(|mut p| p.take());
            let Some(parts) = parts else {
                return Err(io::Error::other("ward already started"));
            };
            let ward = Ward::new(k, shared.clone(), door.clone(), parts);
            std::thread::Builder::new()
                .name(format!("corral-ward-{k}"))
                .spawn(move || ward.run())?;
        }
        Ok(())
    }

    /// A place for a new wait on scheduler k.
    pub(crate) fn seat(&self, k: usize) -> Seat {
        let door = self.doors[k].clone();
        let id = door.next_id.fetch_add(1, Ordering::Relaxed);
        Seat::new(door, id)
    }

    /// Hands a socket to scheduler k's ward. Refused (given back) once the server stops.
    pub(crate) fn park(&self, k: usize, arrival: Arrival) -> Result<(), Arrival> {
        self.doors[k].admit(arrival)
    }

    /// Closes idle sockets, answers waiting ones (`TimedOut`, `Connection: close`), ends
    /// the wards.
    pub fn stop(&self) {
        for door in self.doors.iter() {
            door.stop();
        }
    }

    /// A socket `park` gave back because the server is stopping. The caller's coroutine
    /// still counts the connection, so this only answers a wait (best effort, no
    /// keep-alive) and closes.
    pub(crate) fn refused(&self, router: &Router, arrival: Arrival) {
        if let Parked::Waiting {
            pending,
            shape,
            route,
            ..
        } = arrival.parked
            && let Ok(Some(response)) =
                catch_unwind(AssertUnwindSafe(|| pending.finish(Outcome::TimedOut)))
        {
            let mut out = Vec::new();
            let route = RouteName(router, route);
            let encoded = encode_or_refuse(&mut out, response.with_close(), shape, true, route);
            if encoded.stream.is_none() {
                let _ = send_now(&arrival.fd, &out);
            }
        }
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
