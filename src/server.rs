//! A running server: its shared state, its acceptor, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use corral_actors::StartError;

use crate::config::{Config, ConfigError};
use crate::conn::Shared;
use crate::conn::hibernate::Wards;
use crate::placement::accept::{ACCEPT_WAKE, Acceptance};
use crate::placement::{self, Placement, supervisor};
use crate::router::{RouteError, Router};
use crate::runtime::signals::ShutdownSignals;
use crate::runtime::{self, RuntimeError, RuntimeSettings};
use crate::stats::Stats;

/// How often a draining server checks whether in-flight requests have finished.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// Listen backlog: enough for bursts of thousands of connects on a small machine.
const LISTEN_BACKLOG: i32 = 4096;

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
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
    #[error("drain timeout: {inflight} requests were still in flight")]
    DrainTimeout { inflight: usize },
}

fn list(errors: &[RouteError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A read-only view of a running server's live counters (what `/metrics` shows).
pub struct ServerStats<'a> {
    stats: &'a Stats,
    wards: &'a Wards,
}

impl ServerStats<'_> {
    /// Requests being handled right now, on all schedulers.
    pub fn inflight(&self) -> usize {
        self.stats.inflight()
    }

    /// Handler panics caught so far (each answered 500).
    pub fn panics(&self) -> u64 {
        self.stats.panics()
    }

    /// Open connections on scheduler `k` (hibernated ones included).
    pub fn connections(&self, k: usize) -> usize {
        self.stats.connections(k)
    }

    /// Requests served on scheduler `k` so far.
    pub fn requests(&self, k: usize) -> u64 {
        self.stats.requests(k)
    }

    /// Queued connections scheduler `k` took from another scheduler's queue.
    pub fn steals(&self, k: usize) -> u64 {
        self.stats.steals(k)
    }

    /// How long the handler running on scheduler `k` has run, if one is running.
    pub fn running(&self, k: usize) -> Option<Duration> {
        self.stats
            .running(k)
            .map(|running| Duration::from_nanos(running.elapsed_ns))
    }

    /// Idle keep-alive connections hibernating in scheduler `k`'s ward (no coroutine).
    pub fn hibernating_idle(&self, k: usize) -> usize {
        self.wards.hibernating(k).0
    }

    /// Requests waiting hibernated in scheduler `k`'s ward (`Response::hibernate`).
    pub fn hibernating_waiting(&self, k: usize) -> usize {
        self.wards.hibernating(k).1
    }
}

/// A running server. Dropping it stops accepting (existing connections finish on their own).
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stopped: bool,
}

impl Server {
    /// Serves `router` until SIGTERM or SIGINT, then drains for up to
    /// `server.drain_timeout_ms`, as the `corral` binary does: a `main` of one line.
    pub fn run(config: Config, router: Router) -> Result<(), ServerError> {
        Self::run_with(config, router, |_| {})
    }

    /// Like [`Server::run`], calling `on_start` once the server listens (to print its
    /// address, say). The signal handlers are installed before the server starts, so an
    /// early SIGTERM is not lost.
    pub fn run_with(
        config: Config,
        router: Router,
        on_start: impl FnOnce(&Server),
    ) -> Result<(), ServerError> {
        let signals = ShutdownSignals::install().map_err(ServerError::Signals)?;
        let drain = Duration::from_millis(config.server.drain_timeout_ms);
        let server = Server::start(config, router)?;
        log::info!("listening on http://{}", server.local_addr());
        on_start(&server);
        match signals.wait() {
            Ok(signal) => log::info!("received signal {signal}"),
            Err(err) => log::error!("waiting for a shutdown signal: {err}"),
        }
        log::info!("shutting down: draining in-flight requests for up to {drain:?}");
        let stats = server.shared.stats.clone();
        if server.shutdown(drain) {
            Ok(())
        } else {
            Err(ServerError::DrainTimeout {
                inflight: stats.inflight(),
            })
        }
    }

    /// Starts the runtime (if needed), binds, and begins accepting. The server runs until
    /// [`Server::shutdown`] or until it is dropped.
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
        let stats = Arc::new(Stats::new(workers));
        let settings = placement::Settings {
            policy: config.placement.policy,
            workers,
            max_active_requests: config.placement.max_active_requests,
            default_cost: Duration::from_micros(config.placement.default_cost_us),
        };
        let placement = Arc::new(Placement::new(
            settings,
            router.routes().len(),
            stats.clone(),
        ));
        let merge_interval = Duration::from_millis(config.placement.merge_interval_ms);
        let shared = Arc::new(Shared {
            config,
            router: Arc::new(router),
            stats,
            placement,
            wards: Wards::new(workers).map_err(ServerError::Wards)?,
            workers,
            supervisor: OnceLock::new(),
        });
        Wards::start(&shared).map_err(ServerError::Wards)?;
        let acceptance = Acceptance {
            placement: shared.placement.clone(),
            router: shared.router.clone(),
            start: Arc::new(shared.clone()),
        };
        let port = local_addr.port();
        let tree = supervisor::start(acceptance, Arc::new(listener), port, merge_interval)
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

    /// The name its listener process is registered under (`corral_actors::whereis`): the
    /// supervisor restarts it if it dies, on the same listening socket.
    pub fn listener_process_name(&self) -> String {
        supervisor::listener_name(self.local_addr.port())
    }

    /// The server's live counters, read-only.
    pub fn stats(&self) -> ServerStats<'_> {
        ServerStats {
            stats: &self.shared.stats,
            wards: &self.shared.wards,
        }
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
        self.shared.stats.start_draining();
        if let Some(tree) = self.shared.supervisor.get()
            && let Err(err) = tree.stop()
        {
            log::warn!("stopping the supervision tree: {err}");
        }
        let deadline = Instant::now() + 3 * ACCEPT_WAKE;
        while self.shared.placement.acceptors() > 0 && Instant::now() < deadline {
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
