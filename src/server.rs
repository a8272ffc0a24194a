//! A running server: its shared state, its acceptor, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use corral_actors::{StartError, SupRef};
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};
use crate::hibernate::Wards;
use crate::placement::accept::ACCEPT_WAKE;
use crate::placement::cost::CostTable;
use crate::placement::load::{LoadInputs, expected_load_ns};
use crate::placement::policy::LoadSnapshot;
use crate::placement::queue::Queues;
use crate::placement::supervisor;
use crate::router::{RouteError, Router};
use crate::runtime::{self, RuntimeError, RuntimeSettings};
use crate::stats::Stats;

/// How often a draining server checks whether in-flight requests have finished.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// Listen backlog: enough for bursts of thousands of connects on a small machine.
const LISTEN_BACKLOG: i32 = 4096;

/// What every connection of one server shares.
pub struct Shared {
    pub config: Config,
    pub router: Router,
    pub stats: Stats,
    pub costs: CostTable,
    pub queues: Queues,
    /// Where hibernated connections wait, one ward per scheduler.
    pub(crate) wards: Wards,
    pub workers: usize,
    draining: AtomicBool,
    /// Acceptor threads alive (a retiring one may overlap its successor briefly).
    acceptors: AtomicUsize,
    /// The supervision tree, set once started (for restart counts in /metrics).
    pub(crate) supervisor: OnceLock<SupRef>,
}

impl Shared {
    pub(crate) fn acceptor_started(&self) {
        self.acceptors.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn acceptor_stopped(&self) {
        self.acceptors.fetch_sub(1, Ordering::AcqRel);
    }

    /// Restarts performed by the server's supervision tree.
    pub fn supervisor_restarts(&self) -> u64 {
        self.supervisor.get().map_or(0, SupRef::restarts)
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
        expected_load_ns(&LoadInputs {
            inflight_ns: self.stats.expected_ns(k),
            unknown: self.stats.queued(k) as u64,
            mean_ns: self.costs.mean_ns(),
            fresh_ns: self.stats.fresh_ns(k),
            running: self.stats.running(k),
            utilisation: self.costs.utilisation(k),
        })
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid routes: {}", list(.0))]
    Routes(Vec<RouteError>),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("cannot start the supervision tree: {0}")]
    Supervisor(#[from] StartError),
    #[error("cannot start the hibernation wards: {0}")]
    Wards(std::io::Error),
}

fn list(errors: &[RouteError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A running server. Dropping it stops accepting (existing connections finish on their own).
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stopped: bool,
}

impl Server {
    /// Starts the runtime (if needed), binds, and begins accepting.
    pub fn start(config: Config, router: Router) -> Result<Server, ServerError> {
        config.validate()?;
        if !router.errors().is_empty() {
            return Err(ServerError::Routes(router.errors().to_vec()));
        }
        let workers = config.worker_count();
        runtime::start(RuntimeSettings {
            workers,
            stack_size_bytes: config.server.stack_size_bytes,
        })?;
        let addr = config.listen_addr()?;
        let listener = bind(addr).map_err(|err| ServerError::Bind { addr, err })?;
        let local_addr = listener
            .local_addr()
            .map_err(|err| ServerError::Bind { addr, err })?;
        let config_cap = config.placement.max_active_requests;
        let costs = CostTable::new(
            workers,
            router.routes().len(),
            Duration::from_micros(config.placement.default_cost_us),
        );
        let shared = Arc::new(Shared {
            config,
            router,
            stats: Stats::new(workers),
            costs,
            queues: Queues::new(workers, config_cap),
            wards: Wards::new(workers).map_err(ServerError::Wards)?,
            workers,
            draining: AtomicBool::new(false),
            acceptors: AtomicUsize::new(0),
            supervisor: OnceLock::new(),
        });
        Wards::start(&shared).map_err(ServerError::Wards)?;
        let tree = supervisor::start(&shared, Arc::new(listener), local_addr.port())
            .inspect_err(|_| shared.wards.stop())?;
        let _ = shared.supervisor.set(tree);
        Ok(Server {
            shared,
            local_addr,
            stopped: false,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (their connections
    /// then close) for up to `drain`. Returns whether everything finished in time.
    pub fn shutdown(mut self, drain: Duration) -> bool {
        self.stop_accepting();
        let deadline = Instant::now() + drain;
        while self.shared.stats.inflight() > 0 {
            if Instant::now() >= deadline {
                log::warn!(
                    "drain timeout: {} requests still in flight",
                    self.shared.stats.inflight()
                );
                return false;
            }
            std::thread::sleep(DRAIN_POLL);
        }
        true
    }
}

impl Server {
    /// Stops the supervision tree and waits for every acceptor thread to exit; from then
    /// on new connections are refused (the listening socket closes with the last owner).
    fn stop_accepting(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        self.shared.draining.store(true, Ordering::Relaxed);
        if let Some(tree) = self.shared.supervisor.get()
            && let Err(err) = tree.stop()
        {
            log::warn!("stopping the supervision tree: {err}");
        }
        let deadline = Instant::now() + 3 * ACCEPT_WAKE;
        while self.shared.acceptors.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(DRAIN_POLL);
        }
        // Hibernated connections: idle ones close, waiting ones get their answer now.
        self.shared.wards.stop();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // accept() wakes this often with EAGAIN so a retiring acceptor thread can exit.
    socket.set_read_timeout(Some(ACCEPT_WAKE))?;
    Ok(socket.into())
}
