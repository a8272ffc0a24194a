//! Where a connection runs (Pauley 2019 §2.3 on may). One connection, start to end:
//!
//! 1. **Accept** (`accept.rs`): each scheduler's acceptor coroutine takes sockets from the
//!    listener when it is readable (a scheduler stuck in a CPU-heavy handler leaves it to
//!    the others). At `limits.max_connections` open connections it goes no further: the
//!    connection layer answers 503 and closes ([`Start::refuse`]).
//! 2. **Choose** (`policy.rs`): a pure function of per-scheduler load snapshots picks k. Under
//!    `cost`, load = Σ expected cost of in-flight requests + (queued + not-yet-read
//!    connections) × the mean cost of the request mix: a connection's first route is
//!    unknown until it is read, and counting such connections stops a burst of accepts from
//!    herding onto the scheduler that looked idle. The running handler counts only what is
//!    left of it, plus the requests piling up unread behind it (`load.rs`).
//! 3. **Admit** (`queue.rs`): if k is under its admission cap (or there is none) the
//!    connection starts now; otherwise it waits in k's queue as a plain socket, registered
//!    with no epoll, where k — or an idle scheduler stealing it — will start it.
//! 4. **Dup fd** (`Placement::start_on`, `runtime::fd`): starting on k moves the socket onto
//!    a descriptor ≡ k (mod workers): may registers a socket with the epoll of worker
//!    `fd % workers` and wakes its coroutine there, so the number *is* the placement.
//! 5. **Spawn**: placement hands the socket to the [`Start`] it was given (the connection
//!    layer's spawner: placement never calls the connection loop itself). The coroutine
//!    starts at once if k is the acceptor's own scheduler, else on k's queue, and never
//!    leaves k (may is built without `work_steal`; `runtime::home` brings it back if a sleep
//!    resumed it on may's timer thread).
//! 6. **First route**: once a request is parsed and routed, its route's expected cost joins
//!    k's load until the handler returns (`Stats::expect_load`).
//! 7. **Cost update** (`cost.rs`): the handler's occupancy is recorded in k's cost shard; the
//!    supervisor (`supervisor.rs`) merges the shards into the table step 6 reads.
//! 8. **Wake** (`wake.rs`, with `placement.at_wake`): once the connection has hibernated, it
//!    owns no coroutine; when its client's next request wakes it, its ward places it again
//!    (steps 2, 4 and 6's fresh count), and it may start on another scheduler.

pub(crate) mod accept;
pub(crate) mod cost;
pub(crate) mod load;
pub(crate) mod peek;
pub(crate) mod policy;
mod queue;
pub(crate) mod supervisor;
pub(crate) mod wake;

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use cost::CostTable;
use load::{LoadInputs, expected_load_ns};
use policy::{LoadSnapshot, Policy};
use queue::Queues;

use crate::runtime::fd::onto_residue;
use crate::stats::Stats;

/// Starts a connection's coroutine on scheduler k. The connection layer implements it and
/// hands it to placement, which decides *where* without knowing *what* runs there.
pub(crate) trait Start: Send + Sync {
    /// `fd` is already on a descriptor ≡ k (mod workers) and counted on k; on error the
    /// implementation has closed it. `here`: the caller is a coroutine on k (its acceptor),
    /// so the connection may run at once, until it first waits, before the caller goes on.
    fn start(&self, fd: OwnedFd, k: usize, here: bool) -> io::Result<()>;

    /// Refuses a connection the server has no room for (503, then close). Runs in an
    /// acceptor, so it must never wait.
    fn refuse(&self, socket: TcpStream);
}

/// A connection placement has chosen scheduler `k` for, on its way to start there.
pub(crate) struct Placed {
    pub socket: TcpStream,
    pub k: usize,
    /// The expected cost of its first request, if the acceptor saw it; else the mix's mean
    /// counts (a queued socket forgets it).
    pub first_ns: Option<u64>,
    /// The scheduler the caller runs on, if it is a coroutine on one (an acceptor): a
    /// connection placed there starts at once ([`Start::start`]'s `here`).
    pub from: Option<usize>,
}

/// What placement is configured with (from the `[placement]` config section).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub policy: Policy,
    pub workers: usize,
    /// In-flight requests per scheduler before new connections queue (0: no cap).
    pub max_active_requests: usize,
    pub default_cost: Duration,
    /// Open connections past which new ones are refused (`usize::MAX`: no limit).
    pub max_connections: usize,
    /// Place hibernated connections again when they wake (`placement.at_wake`).
    pub at_wake: bool,
}

/// The placement of one server: its cost table, admission queues and the load figure.
pub(crate) struct Placement {
    pub costs: CostTable,
    /// The policy's index (`Policy::index`): a reload may change it while the acceptor runs.
    policy: AtomicU8,
    /// `placement.at_wake`: a reload may change it while the wards run (`wake.rs`).
    at_wake: AtomicBool,
    stats: Arc<Stats>,
    queues: Queues,
    workers: usize,
    max_connections: usize,
    /// Acceptors alive (retiring ones may overlap their successors briefly).
    acceptors: AtomicUsize,
    /// The acceptors' shared turn for `round_robin` (and the tie-break of the others).
    rotor: AtomicUsize,
}

impl Placement {
    /// Placement for a router with `routes` routes; counts live in `stats`.
    pub fn new(settings: Settings, routes: usize, stats: Arc<Stats>) -> Placement {
        Placement {
            costs: CostTable::new(settings.workers, routes, settings.default_cost),
            policy: AtomicU8::new(settings.policy.index()),
            at_wake: AtomicBool::new(settings.at_wake),
            stats,
            queues: Queues::new(settings.workers, settings.max_active_requests),
            workers: settings.workers,
            max_connections: settings.max_connections,
            acceptors: AtomicUsize::new(0),
            rotor: AtomicUsize::new(0),
        }
    }

    /// The placement policy now in force; read by the acceptor for every connection.
    pub fn policy(&self) -> Policy {
        Policy::from_index(self.policy.load(Ordering::Relaxed))
    }

    /// From the next accepted connection on, place by `policy` (a reload's new value).
    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(policy.index(), Ordering::Relaxed);
    }

    /// What placement sees of each scheduler right now.
    pub fn load_snapshots(&self, out: &mut [LoadSnapshot]) {
        for (k, slot) in out.iter_mut().enumerate() {
            *slot = LoadSnapshot {
                expected_load_ns: self.expected_load_ns(k),
                connections: self.stats.connections(k),
            };
        }
    }

    /// Pauley's load figure for scheduler k: the expected cost of its in-flight requests,
    /// plus, for each connection placed on it whose first request has not been parsed yet
    /// (queued, or started but not yet read), that request's expected cost if the acceptor
    /// saw it, else the mean cost of the current request mix;
    /// the running handler counts what is left of it and the backlog behind it (`load.rs`).
    pub fn expected_load_ns(&self, k: usize) -> u64 {
        let stats = &self.stats;
        expected_load_ns(&LoadInputs {
            inflight_ns: stats.expected_ns(k),
            unknown: stats.queued(k) as u64,
            mean_ns: self.costs.mean_ns(),
            fresh_ns: stats.fresh_ns(k),
            running: stats.running(k),
            utilisation: self.costs.utilisation(k),
        })
    }

    /// Open connections, on every scheduler: started (hibernated ones included) and queued.
    pub fn open_connections(&self) -> usize {
        (0..self.workers)
            .map(|k| self.stats.connections(k) + self.stats.queued(k))
            .sum()
    }

    /// Past `limits.max_connections` open connections, new ones are refused.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Acceptors still running.
    pub fn acceptors(&self) -> usize {
        self.acceptors.load(Ordering::Acquire)
    }

    /// Moves the socket onto a descriptor ≡ k (mod workers), counts it on k and starts it.
    /// Returns the scheduler it really runs on (k unless out of fds).
    fn start_on(&self, placed: Placed, start: &dyn Start) -> io::Result<usize> {
        let Placed {
            socket,
            k,
            first_ns,
            from,
        } = placed;
        // TCP_NODELAY is inherited from the listener (`server::bind`).
        let fd = onto_residue(OwnedFd::from(socket), k, self.workers);
        // The descriptor number is the placement (may: fd % workers); normally equal to k.
        let scheduler = fd.as_raw_fd() as usize % self.workers;
        let first_ns = first_ns.unwrap_or_else(|| self.costs.mean_ns());
        self.stats.connection_placed(scheduler, first_ns);
        match start.start(fd, scheduler, from == Some(scheduler)) {
            Ok(()) => Ok(scheduler),
            Err(err) => {
                self.stats.connection_failed(scheduler);
                Err(err)
            }
        }
    }
}
