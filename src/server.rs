//! A running server: its shared state, its acceptor, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use corral_actors::StartError;

use crate::config::{Config, ConfigError};
use crate::conn::Shared;
use crate::conn::hibernate::Wards;
use crate::conn::transport::deadline_in;
use crate::placement::accept::{ACCEPT_WAKE, Acceptance};
use crate::placement::{self, Placement, supervisor};
use crate::router::{RouteError, Router};
use crate::runtime::fd::ConnectionLimit;
use crate::runtime::signals::ShutdownSignals;
use crate::runtime::watchdog::{self, RouteNamer, Watchdog};
use crate::runtime::{self, RuntimeError, RuntimeSettings};
use crate::stats::Stats;

/// How often a draining server checks whether in-flight requests have finished.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// Listen backlog: enough for bursts of thousands of connects on a small machine.
const LISTEN_BACKLOG: i32 = 4096;

/// Why [`Server::start`] or [`Server::run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration failed [`Config::validate`]; the message names the key and its origin.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The router refused some registrations ([`Router::errors`]), each listed; nothing started.
    #[error("invalid routes: {}", list(.0))]
    Routes(Vec<RouteError>),
    /// The may runtime could not start, or already runs with other workers or stack size
    /// (it is configured once per process).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The listening socket could not be set up (address in use, no permission).
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// The address from `server.listen`.
        addr: SocketAddr,
        /// The OS's reason.
        err: std::io::Error,
    },
    /// The supervision tree that runs and restarts the listener processes did not start.
    #[error("cannot start the supervision tree: {0}")]
    Supervisor(#[from] StartError),
    /// The per-scheduler wards, where hibernated connections wait, could not be set up.
    #[error("cannot start the hibernation wards: {0}")]
    Wards(std::io::Error),
    /// The watchdog thread (`runtime.stall_warn_ms`) could not be started.
    #[error("cannot start the watchdog thread: {0}")]
    Watchdog(std::io::Error),
    /// [`Server::run`] could not install its SIGTERM/SIGINT handlers.
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
    /// `server.drain_timeout_ms` passed with requests still in flight (the `corral` binary
    /// exits with 3).
    #[error("drain timeout: {inflight} requests were still in flight")]
    DrainTimeout {
        /// Requests still being handled at the deadline.
        inflight: usize,
    },
}

fn list(errors: &[RouteError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A read-only view of a running server's live counters (what `/metrics` shows).
pub struct ServerStats<'a>(&'a Stats);

impl ServerStats<'_> {
    /// Requests being handled right now, on all schedulers.
    pub fn inflight(&self) -> usize {
        self.0.inflight()
    }

    /// Handler panics caught so far (each answered 500).
    pub fn panics(&self) -> u64 {
        self.0.panics()
    }

    /// Open connections on scheduler `k` (hibernated ones included).
    pub fn connections(&self, k: usize) -> usize {
        self.0.connections(k)
    }

    /// Requests served on scheduler `k` so far.
    pub fn requests(&self, k: usize) -> u64 {
        self.0.requests(k)
    }

    /// Queued connections scheduler `k` took from another scheduler's queue.
    pub fn steals(&self, k: usize) -> u64 {
        self.0.steals(k)
    }

    /// Handlers the watchdog found stuck on scheduler `k` (running longer than
    /// `runtime.stall_warn_ms` without yielding).
    pub fn stalls(&self, k: usize) -> u64 {
        self.0.stalls(k)
    }

    /// How long the handler running on scheduler `k` has run, if one is running.
    pub fn running(&self, k: usize) -> Option<Duration> {
        self.0
            .running(k)
            .map(|running| Duration::from_nanos(running.elapsed_ns))
    }
}

/// A running server. Dropping it stops accepting (existing connections finish on their own).
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stopped: bool,
    /// Watches the schedulers for stuck handlers; stopped with the server.
    watchdog: Option<Watchdog>,
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
        let connections = connection_limit(config.limits.max_connections);
        let settings = placement::Settings {
            policy: config.placement.policy,
            workers,
            max_active_requests: config.placement.max_active_requests,
            default_cost: Duration::from_micros(config.placement.default_cost_us),
            max_connections: connections.max,
        };
        let placement = Arc::new(Placement::new(
            settings,
            router.routes().len(),
            stats.clone(),
        ));
        let merge_interval = Duration::from_millis(config.placement.merge_interval_ms);
        let stall_warn = Duration::from_millis(config.runtime.stall_warn_ms);
        let shared = Arc::new(Shared {
            config,
            router: Arc::new(router),
            stats,
            placement,
            wards: Wards::new(workers).map_err(ServerError::Wards)?,
            workers,
            supervisor: OnceLock::new(),
            rejections: Default::default(),
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
        let mut server = Server {
            shared,
            local_addr,
            stopped: false,
            watchdog: None,
        };
        if !stall_warn.is_zero() {
            let (stats, router) = (server.shared.stats.clone(), server.shared.router.clone());
            // On failure, dropping `server` stops what started.
            let watchdog = watchdog::start(stall_warn, stats, route_namer(router))
                .map_err(ServerError::Watchdog)?;
            server.watchdog = Some(watchdog);
        }
        Ok(server)
    }

    /// The address actually bound: with port 0 in `server.listen`, the port the OS chose.
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
        ServerStats(&self.shared.stats)
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish (their connections
    /// then close) for up to `drain`. Returns whether everything finished in time.
    pub fn shutdown(mut self, drain: Duration) -> bool {
        self.stop_accepting();
        let deadline = deadline_in(drain);
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
        self.watchdog.take();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

/// How the watchdog's log line names the route of a cost-table slot.
fn route_namer(router: Arc<Router>) -> RouteNamer {
    Box::new(move |slot| {
        let routes = router.routes();
        match slot < routes.len() {
            true => {
                let id = crate::router::RouteId(slot as u32);
                format!("{} {}", routes.method(id), routes.pattern(id))
            }
            false => "the fallback handler".to_string(),
        }
    })
}

/// `limits.max_connections` against this process's descriptor limit, with a warning when
/// the descriptors would run out first.
fn connection_limit(configured: usize) -> ConnectionLimit {
    let limit = ConnectionLimit::new(configured, runtime::fd::descriptor_limit());
    if let (true, Some(room)) = (limit.above_room(), limit.room) {
        log::warn!(
            "limits.max_connections = {configured} is more than the descriptor limit \
             (RLIMIT_NOFILE) leaves for connections ({room}): past {room}, new connections \
             wait in the listen backlog for a descriptor instead of getting a 503; raise \
             `ulimit -n` or set limits.max_connections = 0 (automatic)"
        );
    }
    limit
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
