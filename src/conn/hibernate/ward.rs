//! The ward: one per scheduler, a thread that keeps that scheduler's hibernated sockets.
//!
//! Each ward owns an epoll set holding its hibernated sockets and an eventfd (the bell: new
//! arrivals, fired wakers, stop), and sleeps in `epoll_wait` with its nearest deadline as
//! the timeout. It is a thread, not a coroutine: may can only wait on an epoll set by
//! nesting it in its own edge-triggered one, and that nesting lost wakeups here (about one
//! test run in 20, on Linux 6.18: a bell rung while the ward drained its set never reached
//! it). A plain `epoll_wait` has no such hole, and the ward mostly sleeps. Connections it
//! hands back get a coroutine on their own scheduler (`resume_connection`, by descriptor
//! number as always) — except, with `placement.at_wake`, an idle one woken by its client's
//! next request: that is new work, and placement picks its scheduler now (`wake_idle`).
//!
//! Sockets are registered once, edge-triggered for input and hang-up, and keep their
//! registration from waiting to idle: answering a wait costs one `send`, no `epoll_ctl`.
//!
//! Everything in the ward is owned by its thread; other threads only reach it through the
//! door: a short-held mutex'd inbox and the bell.
//!
//! A ward that dies (a panic, or `epoll_wait` failing) does not hand its entries to a
//! successor: it died in the middle of something, and a socket it had in hand then is
//! already closed by the unwinding. What it can vouch for is how many sockets it held
//! (`held`: taken from the inbox, not yet closed or handed to a coroutine), so it answers
//! each waiting request it still has `503` and closes it, closes its idle sockets, uncounts
//! all `held` of them, and gives its epoll set back for the thread the supervisor starts
//! next (`door.rs`). Clients see an answer or a close, never a hang, and counts stay true.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, Event, EventData, EventFlags};
use rustix::time::Timespec;

use super::door::{Arrival, Door, Parked, WardParts};
use crate::conn::Shared;
use crate::conn::dispatch::panic_message;
use crate::conn::live::{Settings, Snapshot};
use crate::conn::process::Held;
use crate::conn::resume::Resume;
use crate::conn::spawn::resume_connection;
use crate::conn::wait::{Doorbell, Outcome};
use crate::placement::wake::WakePlacer;

/// Epoll tokens of the ward's own descriptors; sockets get ids from `FIRST_ID` up.
pub(super) const BELL: u64 = 0;
pub(super) const FIRST_ID: u64 = 1;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;
/// After sockets arrive, the ward gives freed memory back to the OS once arrivals have
/// been quiet this long (a trim walks the heap, so not on every arrival)...
const TRIM_QUIET: Duration = Duration::from_millis(100);
/// ...or at once after this many, when they never stop.
const TRIM_AFTER: usize = 4096;

pub(super) struct Entry {
    pub fd: OwnedFd,
    pub deadline: Instant,
    pub parked: Parked,
    pub served: u64,
    /// Its epoll token, kept when a wait turns idle.
    pub id: u64,
    /// Input arrived while it waited (a pipelined request): no edge will announce it again.
    pub input_pending: bool,
    /// The connection's process, if it has one (`conn/process.rs`).
    pub process: Option<Box<dyn Held>>,
}

impl Entry {
    /// Whether the connection's process was killed, or a process linked to it crashed.
    pub(super) fn is_ended(&self) -> bool {
        self.process
            .as_ref()
            .is_some_and(|p| p.exit_signal().is_some())
    }
}

pub(super) struct Ward {
    pub(super) k: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) door: Arc<Door>,
    pub(super) epoll: OwnedFd,
    pub(super) bell: File,
    pub(super) entries: HashMap<u64, Entry>,
    /// Deadlines, earliest first; an entry removed early leaves a stale one behind.
    pub(super) deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_idle_id: u64,
    pub(super) idle: usize,
    pub(super) waiting: usize,
    /// Sockets this ward is responsible for: taken from the inbox, not yet closed or given a
    /// coroutine (the entries, plus any in hand). What a dying ward uncounts.
    pub(super) held: usize,
    /// Sockets that came to hibernate since the last heap trim, and when the next is due.
    since_trim: usize,
    trim_at: Option<Instant>,
    pub(super) scratch: Vec<u8>,
    /// The limits and timeouts now in force (a reload may change them).
    cfg: Snapshot,
    /// Placement at wake's state for this ward (`placement/wake.rs`).
    placer: WakePlacer,
}

enum Flow {
    Go,
    Stop,
}

impl Ward {
    pub(super) fn new(k: usize, shared: Arc<Shared>, door: Arc<Door>, parts: WardParts) -> Ward {
        let shared_workers = shared.workers;
        Ward {
            k,
            cfg: shared.live.snapshot(),
            shared,
            door,
            epoll: parts.epoll,
            bell: parts.bell,
            entries: HashMap::new(),
            deadlines: BinaryHeap::new(),
            // Idle entries get ids from the top half, waits from the door's counter.
            next_idle_id: 1 << 63,
            idle: 0,
            waiting: 0,
            held: 0,
            since_trim: 0,
            trim_at: None,
            scratch: Vec::new(),
            placer: WakePlacer::new(k, shared_workers),
        }
    }

    /// The settings now in force (one atomic load unless a reload happened).
    pub(super) fn cfg(&mut self) -> Settings {
        self.shared.live.refresh(&mut self.cfg);
        self.cfg.settings
    }

    /// The thread's body: serves until stopped, or dies (see the module docs).
    pub(super) fn run(mut self) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.serve()));
        let why = match outcome {
            Ok(Ok(())) => return self.stop(),
            Ok(Err(err)) => format!("epoll_wait failed: {err}"),
            Err(panic) => format!("panicked: {}", panic_message(&panic)),
        };
        self.die(&why);
    }

    fn serve(&mut self) -> io::Result<()> {
        // A predecessor may have died with the bell marked rung and arrivals in the inbox,
        // and then nobody rings again: look at the inbox before the first wait.
        if let Flow::Stop = self.answer_bell() {
            return Ok(());
        }
        // Not a field: epoll events hold raw pointers, and the ward moves into its thread.
        let mut events = Vec::with_capacity(EVENTS);
        loop {
            match self.turn(&mut events)? {
                Flow::Go => self.publish_counts(),
                Flow::Stop => return Ok(()),
            }
        }
    }

    /// Waits until something is ready or the nearest deadline, and handles it.
    fn turn(&mut self, events: &mut Vec<Event>) -> io::Result<Flow> {
        events.clear();
        let timeout = self.next_wake().map(|at| {
            // Round up: waking a hair early would only mean another turn.
            let left = at.saturating_duration_since(Instant::now()) + Duration::from_micros(999);
            timespec(left)
        });
        match epoll::wait(&self.epoll, spare_capacity(events), timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(Flow::Go),
            Err(err) => return Err(err.into()),
        }
        for event in events.iter() {
            let (token, flags) = (event.data.u64(), event.flags);
            match token {
                BELL => {
                    if let Flow::Stop = self.answer_bell() {
                        return Ok(Flow::Stop);
                    }
                }
                id => self.socket_event(id, flags),
            }
        }
        self.expire();
        Ok(Flow::Go)
    }

    /// The nearest deadline or trim, if any.
    fn next_wake(&self) -> Option<Instant> {
        let deadline = self.deadlines.peek().map(|Reverse((at, _))| *at);
        match (deadline, self.trim_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes everything the door holds until it stays empty. The bell stays "rung" while
    /// the ward works, so a fan-out's thousands of wakers push without ringing (each ring
    /// would wake this thread again); only once the inbox is empty is the flag cleared, and
    /// the inbox looked at once more for a push that saw it still set.
    fn answer_bell(&mut self) -> Flow {
        let mut count = [0u8; 8];
        let _ = self.bell.read(&mut count);
        let mut cleared = false;
        loop {
            let (arrivals, ready, stopped) = match self.door.inbox.lock() {
                Ok(mut inbox) => (
                    std::mem::take(&mut inbox.arrivals),
                    std::mem::take(&mut inbox.ready),
                    inbox.stopped,
                ),
                Err(_) => (Vec::new(), Vec::new(), true),
            };
            self.held += arrivals.len();
            #[cfg(test)]
            self.door.fault_point();
            if stopped {
                self.admit_all(arrivals);
                self.answer_ready(ready);
                return Flow::Stop;
            }
            if arrivals.is_empty() && ready.is_empty() {
                if cleared {
                    return Flow::Go;
                }
                self.door.rung.store(false, Ordering::Release);
                cleared = true;
                continue;
            }
            cleared = false;
            self.admit_all(arrivals);
            self.answer_ready(ready);
        }
    }

    fn admit_all(&mut self, arrivals: Vec<Arrival>) {
        if !arrivals.is_empty() {
            self.since_trim += arrivals.len();
            self.trim_at = Some(Instant::now() + TRIM_QUIET);
        }
        for arrival in arrivals {
            self.admit(arrival);
        }
        if self.since_trim >= TRIM_AFTER {
            self.trim();
        }
    }

    /// Looks at the entries whose mailbox rang: a wait with its message is answered; one
    /// whose process was ended gets 503 and closes, an idle one just closes. A message to
    /// an idle connection waits in its mailbox for a later handler.
    fn answer_ready(&mut self, ready: Vec<u64>) {
        for id in ready {
            self.look_at(id);
        }
    }

    fn look_at(&mut self, id: u64) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        let ended = entry.is_ended();
        let (due, waiting) = match &entry.parked {
            Parked::Waiting { pending, .. } => {
                (ended || pending.is_ready(entry.process.as_deref()), true)
            }
            Parked::WebSocket { session, .. } => {
                let mail =
                    session.has_mail() || entry.process.as_ref().is_some_and(|p| p.has_message());
                (ended || mail, false)
            }
            Parked::Idle => (ended, false),
        };
        if !due {
            return;
        }
        let Some(entry) = self.remove(id) else { return };
        if waiting {
            self.answer(entry, Outcome::Woken);
        } else if let Parked::WebSocket { .. } = entry.parked
            && !ended
        {
            self.wake(entry);
        } else {
            let _ = epoll::delete(&self.epoll, &entry.fd);
            if let Parked::WebSocket { session, .. } = entry.parked {
                super::door::going_away(&entry.fd, session);
            }
            self.close(entry.fd);
        }
    }

    fn admit(&mut self, arrival: Arrival) {
        let Arrival {
            fd,
            deadline,
            parked,
            served,
            process,
        } = arrival;
        let id = match &parked {
            Parked::Idle => {
                self.next_idle_id += 1;
                self.next_idle_id
            }
            Parked::Waiting { id, .. } | Parked::WebSocket { id, .. } => *id,
        };
        let entry = Entry {
            fd,
            deadline,
            parked,
            served,
            id,
            input_pending: false,
            process,
        };
        // Edge-triggered: ADD still reports input that is already there.
        let interest = EventFlags::IN | EventFlags::RDHUP | EventFlags::ET;
        if let Err(err) = epoll::add(&self.epoll, &entry.fd, EventData::new_u64(id), interest) {
            log::warn!("ward {}: cannot watch a socket: {err}", self.k);
            return self.finish_without_watch(entry);
        }
        // A wait's process was armed before it came; the mailbox may have rung already.
        self.arm_idle(&entry);
        self.insert(id, entry);
        self.look_at(id);
    }

    /// An idle connection's process rings on an exit signal, and on its first message
    /// (which `look_at` leaves for a later handler).
    pub(super) fn arm_idle(&self, entry: &Entry) {
        if let (Parked::Idle | Parked::WebSocket { .. }, Some(process)) =
            (&entry.parked, &entry.process)
        {
            let (door, id) = (self.door.clone(), entry.id);
            process.on_next(Box::new(move || door.ready(id)));
        }
    }

    /// A socket the ward could not watch: answer a wait at once, close an idle one.
    pub(super) fn finish_without_watch(&mut self, mut entry: Entry) {
        // Unwatched, it must not stay here after the answer: a coroutine takes it back.
        entry.input_pending = true;
        match entry.parked {
            Parked::Idle => self.close(entry.fd),
            Parked::Waiting { .. } => self.answer(entry, Outcome::TimedOut),
            Parked::WebSocket { session, .. } => {
                self.spawn(
                    entry.fd,
                    Resume::websocket(entry.served, session).with_process(entry.process),
                );
            }
        }
    }

    /// A wait or a WebSocket whose seat rang: out of the epoll set, then answered or
    /// given its coroutine back.
    fn wake(&mut self, entry: Entry) {
        match entry.parked {
            Parked::WebSocket { session, .. } => {
                let _ = epoll::delete(&self.epoll, &entry.fd);
                self.spawn(
                    entry.fd,
                    Resume::websocket(entry.served, session).with_process(entry.process),
                );
            }
            _ => self.answer(entry, Outcome::Woken),
        }
    }

    fn socket_event(&mut self, id: u64, flags: EventFlags) {
        let hung_up = flags.intersects(EventFlags::RDHUP | EventFlags::HUP | EventFlags::ERR);
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if !hung_up && matches!(entry.parked, Parked::Waiting { .. }) {
            // Pipelined input behind a wait: its turn comes after the answer.
            entry.input_pending = true;
            return;
        }
        let Some(entry) = self.remove(id) else { return };
        let _ = epoll::delete(&self.epoll, &entry.fd);
        match entry.parked {
            // A bare FIN: close here rather than start a coroutine to read the end.
            Parked::Idle if hung_up && at_eof(&entry.fd) => self.close(entry.fd),
            // Input: a coroutine takes the connection back.
            Parked::Idle => {
                let resume = Resume::idle(entry.served).with_process(entry.process);
                self.wake_idle(entry.fd, resume);
            }
            Parked::Waiting { .. } => self.abandon(entry),
            // A hang-up or input: the codec reads either (a close frame, or its absence).
            Parked::WebSocket { session, .. } => {
                self.spawn(
                    entry.fd,
                    Resume::websocket(entry.served, session).with_process(entry.process),
                );
            }
        }
    }

    /// The client of a wait hung up: close first (so the connection is uncounted before
    /// anyone can see the cancellation), then cancel.
    fn abandon(&mut self, entry: Entry) {
        let Entry {
            fd,
            parked,
            process,
            ..
        } = entry;
        self.close(fd);
        if let Parked::Waiting { pending, .. } = parked
            && catch_unwind(AssertUnwindSafe(|| {
                pending.finish(Outcome::PeerGone, process.as_deref())
            }))
            .is_err()
        {
            self.shared.stats.record_panic(self.k);
            log::error!("a hibernated request's cancel action panicked");
        }
        // The connection's end: a normal exit (monitors see `Down`, its names are freed).
        drop(process);
    }

    /// Ends what is past its deadline; trims the heap when due.
    fn expire(&mut self) {
        let now = Instant::now();
        if self.trim_at.is_some_and(|at| at <= now) {
            self.trim();
        }
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let due = self.entries.get(&id).is_some_and(|e| e.deadline == at);
            if !due {
                continue;
            }
            if let Some(entry) = self.remove(id) {
                match entry.parked {
                    Parked::Idle => self.close(entry.fd),
                    Parked::Waiting { .. } => self.answer(entry, Outcome::TimedOut),
                    Parked::WebSocket { session, .. } => {
                        super::door::going_away(&entry.fd, session);
                        self.close(entry.fd);
                    }
                }
            }
        }
    }

    /// An idle keep-alive connection whose client sent its next request: new work. With
    /// `placement.at_wake` it starts wherever placement picks now (docs/architecture.md §7,
    /// "At every wake"), else on this ward's scheduler. This is the only wake that may move:
    /// pipelined input behind an answered wait, an answer or stream the ward could not finish
    /// (`answer.rs`), and a WebSocket (`wake`) all go back home through `spawn`.
    fn wake_idle(&mut self, fd: OwnedFd, resume: Resume) {
        let placement = &self.shared.placement;
        if !placement.at_wake() {
            return self.spawn(fd, resume);
        }
        // The caller took the socket out of this ward's epoll set: a registration belongs
        // to the open file description, so one left behind would outlive the move (the dup
        // shares the description) and fire here for a number that is gone.
        debug_assert!(
            epoll::delete(&self.epoll, &fd).is_err(),
            "ward {}: a socket to place is still in the epoll set",
            self.k
        );
        let (fd, k) = placement.place_wake(fd, self.k, &mut self.placer, &self.shared.router);
        self.spawn_on(fd, k, resume.placed());
    }

    /// Gives a socket a coroutine again on this ward's scheduler; it is no longer the
    /// ward's to count.
    pub(super) fn spawn(&mut self, fd: OwnedFd, resume: Resume) {
        self.spawn_on(fd, self.k, resume);
    }

    /// Gives a socket a coroutine on scheduler `k` (its descriptor ≡ k, and counted there).
    fn spawn_on(&mut self, fd: OwnedFd, k: usize, resume: Resume) {
        // Counted out before its coroutine runs: a handler of the woken connection (or a
        // `/metrics` it serves) must not see it still hibernating.
        self.publish_counts();
        let resumed = resume_connection(&self.shared, fd, k, resume);
        // Either a coroutine counts it now, or `resume_connection` closed and uncounted it.
        self.let_go();
        if let Err(err) = resumed {
            log::warn!("ward {}: cannot resume a connection: {err}", self.k);
        }
    }

    pub(super) fn close(&mut self, fd: OwnedFd) {
        drop(fd);
        self.let_go();
        self.shared.stats.connection_closed(self.k);
    }

    fn let_go(&mut self) {
        debug_assert!(
            self.held > 0,
            "ward {}: let go of a socket it did not hold",
            self.k
        );
        self.held = self.held.saturating_sub(1);
    }

    pub(super) fn insert(&mut self, id: u64, entry: Entry) {
        match entry.parked {
            Parked::Idle | Parked::WebSocket { .. } => self.idle += 1,
            Parked::Waiting { .. } => self.waiting += 1,
        }
        self.deadlines.push(Reverse((entry.deadline, id)));
        self.entries.insert(id, entry);
    }

    pub(super) fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        match entry.parked {
            Parked::Idle | Parked::WebSocket { .. } => self.idle -= 1,
            Parked::Waiting { .. } => self.waiting -= 1,
        }
        // Entries that leave early leave their deadlines behind; rebuild before they pile up.
        if self.deadlines.len() > 2 * self.entries.len() + 1024 {
            let live = &self.entries;
            self.deadlines
                .retain(|Reverse((at, id))| live.get(id).is_some_and(|e| e.deadline == *at));
        }
        Some(entry)
    }

    fn trim(&mut self) {
        trim_heap();
        self.since_trim = 0;
        self.trim_at = None;
    }

    pub(super) fn publish_counts(&self) {
        self.door.idle.store(self.idle, Ordering::Relaxed);
        self.door.waiting.store(self.waiting, Ordering::Relaxed);
    }
}

/// Gives freed heap pages back to the OS, as Erlang's hibernate garbage-collects: the
/// buffers of connections that just hibernated are free, but glibc's malloc keeps free
/// memory in its arenas, where it still counts as RSS. (The `corral` binary uses mimalloc,
/// set to purge freed pages at once: see main.rs. A library user keeps their allocator.)
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory and is thread-safe.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether the peer sent bytes not read yet (not just a FIN).
pub(super) fn has_input(fd: &OwnedFd) -> bool {
    let mut probe = [0u8; 1];
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    matches!(rustix::net::recv(fd.as_fd(), &mut probe, flags), Ok((n, _)) if n > 0)
}

/// Whether the peer's FIN is all that is left to read.
fn at_eof(fd: &OwnedFd) -> bool {
    let mut probe = [0u8; 1];
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    matches!(rustix::net::recv(fd.as_fd(), &mut probe, flags), Ok((0, _)))
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
