//! The acceptors: one coroutine per scheduler that accepts, places and admits connections.
//!
//! Each scheduler accepts for itself, as nginx's workers do: its acceptor waits for the
//! listening socket in that scheduler's own epoll, takes what is queued with non-blocking
//! accepts, and places each connection (`policy.rs`). A connection placed where it was
//! accepted starts there without any thread in between; before this, one acceptor thread
//! shared the core with the schedulers, and each connection cost a thread switch each way
//! (docs/architecture.md §3, "Fresh connections"). A scheduler stuck in a CPU-heavy handler
//! stops accepting, but not placing: the others accept, and place on it only if it is the
//! cheapest. The price is a wake of every idle scheduler per connection (may registers
//! edge-triggered, without `EPOLLEXCLUSIVE`): the ones that lose the race see `EAGAIN`.
//!
//! The listening socket outlives its acceptors: when the listener process that owns them
//! dies, they retire and their successors accept from the same socket, so connections
//! waiting in the backlog meanwhile are not lost. The socket is non-blocking (`O_NONBLOCK`
//! belongs to the open file, so a SIGUSR2 handoff's next process shares it: it accepts the
//! same way).
//!
//! When the server drains, the last thing an acceptor does is take every connection already
//! queued on the socket (answered with `Connection: close`), and only then let go of it:
//! closing a listening socket resets the connections still in its queue. With
//! `server.reuse_port` that queue is this process's alone, so what arrives between the last
//! accept and the close (an instant) is reset unless the kernel migrates it to another
//! listener of the port (`net.ipv4.tcp_migrate_req`); a SIGUSR2 handoff shares one queue
//! with the next process and loses nothing (`server/handoff.rs`).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use may::io::{CoIo, WaitIo, WaitIoWaker};
use rustix::event::{EventfdFlags, eventfd};

use super::peek::first_route;
use super::policy::{LoadSnapshot, Policy, choose};
use super::{Placed, Placement, Start};
use crate::router::Router;
use crate::runtime::fd::onto_residue;

/// Pause after the process runs out of descriptors, so the accept loop does not spin: the
/// connection that failed stays in the listen backlog, and accept would fail again at once.
/// 50 ms: 20 tries a second cost nothing measurable, and a freed descriptor is taken soon.
const OUT_OF_FDS_BACKOFF: Duration = Duration::from_millis(50);
/// Connections placed in a row before an acceptor lets its scheduler poll epoll: a flood of
/// connects must not starve the connections already open there, whose input only an epoll
/// poll brings in (16 costs two syscalls a batch).
const ACCEPT_BATCH: usize = 16;
/// Accepted connections an acceptor holds before it places them (`Taken`): as many again
/// as the default `server.listen_backlog`, so a burst of twice that loses no handshake.
const TAKEN_MAX: usize = 4096;

/// What an acceptor works with: where to place, what to peek with, how to start.
#[derive(Clone)]
pub(crate) struct Acceptance {
    pub placement: Arc<Placement>,
    pub router: Arc<Router>,
    pub start: Arc<dyn Start>,
}

/// Owns a server's acceptors; dropping it retires them (each at once, unless its scheduler
/// is busy with a handler, then as soon as it is free).
pub struct Acceptors {
    retired: Arc<AtomicBool>,
    wakers: Vec<WaitIoWaker>,
}

impl Drop for Acceptors {
    fn drop(&mut self) {
        self.retired.store(true, Ordering::Release);
        for waker in &self.wakers {
            waker.wakeup();
        }
    }
}

/// The report of an acceptor's death, taken by the first to die.
type OnDeath = Arc<Mutex<Option<Box<dyn FnOnce(String) + Send>>>>;

/// Starts one acceptor per scheduler on `listener`, which it makes non-blocking. If one dies
/// of a panic, `on_death` gets the panic message (the listener process turns it into its own
/// exit, for its supervisor).
pub(crate) fn spawn_acceptors(
    listener: &TcpListener,
    with: Acceptance,
    on_death: impl FnOnce(String) + Send + 'static,
) -> io::Result<Acceptors> {
    let workers = with.placement.workers;
    let on_death: OnDeath = Arc::new(Mutex::new(Some(Box::new(on_death))));
    let mut acceptors = Acceptors {
        retired: Arc::new(AtomicBool::new(false)),
        wakers: Vec::with_capacity(workers),
    };
    let placement = with.placement.clone();
    for k in 0..workers {
        // A descriptor of k's residue: may registers it with k's epoll, so k's acceptor
        // wakes on its own scheduler (runtime/fd.rs).
        let fd = onto_residue(OwnedFd::from(listener.try_clone()?), k, workers);
        let io = CoIo::new(TcpListener::from(fd))?;
        let bell = EpollTurn::new(k, workers)?;
        acceptors.wakers.push(io.waker());
        let (with, retired, on_death) = (with.clone(), acceptors.retired.clone(), on_death.clone());
        placement.acceptors.fetch_add(1, Ordering::AcqRel);
        let builder = may::coroutine::Builder::new()
            .name(format!("corral-accept-{k}"))
            .id(k);
        // SAFETY: may's spawn is unsafe because a coroutine must not overflow its stack or
        // hold thread-locals across yields: the accept loop does neither, and runs on the
        // connections' stack size, far more than it needs.
        #[allow(unsafe_code)]
        let spawned = unsafe {
            builder.spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    accept_loop(&io, &bell, &with, &retired)
                }));
                // Off the epoll set before the descriptor closes (`conn/socket.rs`).
                drop(io.into_inner());
                bell.close();
                with.placement.acceptors.fetch_sub(1, Ordering::AcqRel);
                if let Err(panic) = outcome {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "acceptor panicked".into());
                    let report = on_death.lock().ok().and_then(|mut slot| slot.take());
                    if let Some(report) = report {
                        report(why);
                    }
                }
            })
        };
        if let Err(err) = spawned {
            placement.acceptors.fetch_sub(1, Ordering::AcqRel);
            // Dropping `acceptors` retires the ones already running.
            return Err(err);
        }
    }
    Ok(acceptors)
}

fn accept_loop(io: &CoIo<TcpListener>, turn: &EpollTurn, with: &Acceptance, retired: &AtomicBool) {
    let mut placer = Placer::new(with);
    let mut taken = Taken::new(io.inner());
    // Retired by the listener process ending: the server stops accepting (a drain, after
    // its `drain_delay_ms`), or the process is restarted on the same socket.
    while !retired.load(Ordering::Acquire) {
        let swept = taken.sweep(with);
        if !taken.queue.is_empty() {
            for _ in 0..ACCEPT_BATCH {
                let Some(socket) = taken.queue.pop_front() else {
                    break;
                };
                placer.place(socket);
            }
            if !taken.queue.is_empty() || swept == Swept::Full {
                turn.wait();
                continue;
            }
        }
        match swept {
            // Returns at once if the socket became readable since the last wait (may's
            // flag: each connection queued since is an edge), or when the owner retires us
            // (`Acceptors::drop`).
            Swept::Empty => {
                io.wait_io();
            }
            Swept::Failed => crate::runtime::sleep::sleep(OUT_OF_FDS_BACKOFF),
            Swept::Full => {}
        }
    }
    // Accepted, so this process's to answer, whatever happens to the listener.
    for socket in taken.queue.drain(..) {
        placer.place(socket);
    }
    if with.placement.stats.is_draining() {
        // What is queued now would be reset when the socket closes (module docs). Until
        // `EAGAIN`: nothing is queued, or another process sharing the socket took it.
        while let Ok((socket, _peer)) = io.inner().accept() {
            placer.place(socket);
        }
    }
}

/// Connections accepted and not yet placed. A burst of connects fills the kernel's listen
/// queue faster than the scheduler serves them (a connection whose request is there is
/// served when placed, before the next): past the backlog the kernel drops the handshake's
/// last ACK, and that client waits a second for its retransmit. So accepts come first, as
/// many as are queued, up to `TAKEN_MAX`, and the connections wait here, where only a
/// descriptor is held for them, as nginx's do in its epoll set (`benches/fresh_ab.sh`).
struct Taken<'a> {
    listener: &'a TcpListener,
    queue: VecDeque<TcpStream>,
    /// Pauses in the current run of out-of-descriptor failures (logged once per run).
    paused: u64,
}

/// How a sweep of the listen queue ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Swept {
    /// `EAGAIN`: nothing more is queued.
    Empty,
    /// `TAKEN_MAX` taken: more may be queued.
    Full,
    /// Out of descriptors, or an unexpected error (logged): try again after a pause.
    Failed,
}

impl<'a> Taken<'a> {
    fn new(listener: &'a TcpListener) -> Self {
        Taken {
            listener,
            queue: VecDeque::new(),
            paused: 0,
        }
    }

    /// Accepts until the listen queue is empty or `TAKEN_MAX` are waiting here.
    fn sweep(&mut self, with: &Acceptance) -> Swept {
        while self.queue.len() < TAKEN_MAX {
            match self.listener.accept() {
                Ok((socket, _peer)) => {
                    if std::mem::take(&mut self.paused) > 0 {
                        log::info!("accept: descriptors free again");
                    }
                    self.queue.push_back(socket);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Swept::Empty,
                Err(err) => match err.raw_os_error() {
                    Some(libc::EINTR | libc::ECONNABORTED) => {}
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        if self.paused == 0 {
                            log::warn!(
                                "accept: {err}; new connections wait in the listen backlog, \
                                 tried every {OUT_OF_FDS_BACKOFF:?} (raise `ulimit -n`, or lower \
                                 limits.max_connections so that they get a 503 first)"
                            );
                        }
                        self.paused += 1;
                        with.placement.stats.record_accept_pause();
                        return Swept::Failed;
                    }
                    _ => {
                        log::error!("accept: {err}");
                        return Swept::Failed;
                    }
                },
            }
        }
        Swept::Full
    }
}

/// Waiting for the scheduler to poll epoll once: an eventfd of the acceptor's own, on the
/// scheduler's epoll, rung before each wait. A yield would not do: may runs its local queue
/// to the end before it polls, and a yielded coroutine is back on that queue at once.
struct EpollTurn {
    bell: CoIo<File>,
}

impl EpollTurn {
    fn new(k: usize, workers: usize) -> io::Result<EpollTurn> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC)?;
        let bell = CoIo::new(File::from(onto_residue(fd, k, workers)))?;
        Ok(EpollTurn { bell })
    }

    /// Returns once the scheduler has polled epoll (and run what that woke), or at once if
    /// something else rang since the last wait.
    fn wait(&self) {
        // Each write is a new edge, though the counter is never zero after the first.
        if rustix::io::write(self.bell.inner(), &1u64.to_ne_bytes()).is_ok() {
            self.bell.wait_io();
        }
    }

    /// Off the epoll set, then closed (`conn/socket.rs` says why in that order).
    fn close(self) {
        drop(self.bell.into_inner());
    }
}

/// Places each accepted connection: refuses it past `limits.max_connections`, else chooses
/// a scheduler and admits it there.
struct Placer<'a> {
    with: &'a Acceptance,
    /// Reused for every accept: the acceptor allocates nothing per connection.
    loads: Vec<LoadSnapshot>,
    /// The scheduler this acceptor runs on: a connection placed there starts at once.
    here: Option<usize>,
}

impl<'a> Placer<'a> {
    fn new(with: &'a Acceptance) -> Self {
        let loads = vec![LoadSnapshot::default(); with.placement.workers];
        let here = crate::runtime::home::current_scheduler();
        Placer { with, loads, here }
    }

    fn place(&mut self, socket: TcpStream) {
        let (placement, start) = (&*self.with.placement, &*self.with.start);
        let stats = &placement.stats;
        if placement.open_connections() >= placement.max_connections {
            stats.record_connection_shed();
            start.refuse(socket);
            return;
        }
        let (k, first_ns) = self.choose(&socket);
        stats.record_placement(first_ns.is_some());
        let placed = Placed {
            socket,
            k,
            first_ns,
            from: self.here,
        };
        placement.admit(placed, start);
    }

    /// The scheduler for `socket`, and its first request's expected cost if it was seen.
    fn choose(&mut self, socket: &TcpStream) -> (usize, Option<u64>) {
        let placement = &*self.with.placement;
        // One scheduler leaves nothing to choose: no load snapshot, no peek (a syscall).
        if placement.workers == 1 {
            return (0, None);
        }
        // Per connection: a reload may change it (`Placement::set_policy`).
        let policy = placement.policy();
        placement.load_snapshots(&mut self.loads);
        // One rotor for all the acceptors, so that `round_robin` takes turns across them.
        let mut ticket = placement.rotor.fetch_add(1, Ordering::Relaxed);
        let k = choose(
            &self.loads,
            policy,
            &mut ticket,
            socket.as_raw_fd() as usize,
        );
        // Only `cost` uses the first route, and only to count its cost from now on.
        let costs = &placement.costs;
        let first_ns = (policy == Policy::Cost)
            .then(|| first_route(socket.as_fd(), &self.with.router))
            .flatten()
            .map(|route| costs.expected_ns(costs.slot(route)));
        (k, first_ns)
    }
}
