//! A running server: its shared state, its acceptor, graceful shutdown, (`reload.rs`)
//! reconfiguration while it runs, and (`handoff.rs`) handing its socket to a new process.

mod handoff;
mod reload;

pub use reload::Reconfigured;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use corral_actors::{StartError, monitor_with};

use crate::config::{Config, ConfigError};
use crate::conn::Shared;
use crate::conn::hibernate::Wards;
use crate::conn::transport::deadline_in;
use crate::placement::accept::Acceptance;
use crate::placement::supervisor;
use crate::router::{RouteError, Router};
use crate::runtime::fd::ConnectionLimit;
use crate::runtime::signals::{self, Signals, Wakeup};
use crate::runtime::watchdog::{self, RouteNamer, Watchdog};
use crate::runtime::{self, RuntimeError, RuntimeSettings, home};
use crate::stats::Stats;

/// How often a draining server checks whether in-flight requests have finished.
const DRAIN_POLL: Duration = Duration::from_millis(5);
/// How long stopping waits for the acceptors to retire: each does at once, or as soon as
/// the handler running on its scheduler yields.
const ACCEPTORS_RETIRE: Duration = Duration::from_millis(300);

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
    /// [`Server::run`] could not install its SIGTERM/SIGINT/SIGHUP/SIGUSR2 handlers.
    #[error("cannot install the SIGTERM/SIGINT/SIGHUP/SIGUSR2 handlers: {0}")]
    Signals(std::io::Error),
    /// This process was started by a SIGUSR2 handoff (`CORRAL_LISTEN_FD` and the others
    /// are set, by its parent), but what it inherited is not usable: not a listening TCP
    /// socket on `server.listen`, or not open. Nothing was bound.
    #[error("cannot adopt what the previous process handed over ({var}): {problem}")]
    Inherited {
        /// The environment variable naming the descriptor.
        var: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A part of the server died and could not be restarted: its supervision tree exceeded
    /// its restart intensity and stopped (the `corral` binary exits with 4). The server no
    /// longer accepts connections; [`Server::run`] drained what was in flight.
    #[error("a part of the server died and could not be restarted: {0}")]
    Failed(String),
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

    /// Handlers the watchdog found stuck on scheduler `k` (running longer than
    /// `runtime.stall_warn_ms` without yielding).
    pub fn stalls(&self, k: usize) -> u64 {
        self.stats.stalls(k)
    }

    /// How long the handler running on scheduler `k` has run, if one is running.
    pub fn running(&self, k: usize) -> Option<Duration> {
        self.stats
            .running(k)
            .map(|running| Duration::from_nanos(running.elapsed_ns))
    }

    /// Hibernated connections placed again as a request woke them (`placement.at_wake`),
    /// and of them those that moved to another scheduler: (placed, moved).
    pub fn wake_placements(&self) -> (u64, u64) {
        self.stats.wake_placements()
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
    /// Set once the supervision tree has given up (see [`Server::failure`]).
    failure: Arc<OnceLock<String>>,
    /// The configuration in effect: what it started with, with each reload's live keys.
    running: Mutex<Config>,
    /// The listening socket, for a SIGUSR2 handoff; let go when the server stops accepting
    /// (the acceptor holds it until then).
    listener: Mutex<Option<Arc<TcpListener>>>,
    /// Watches the schedulers for stuck handlers; stopped with the server.
    watchdog: Option<Watchdog>,
}

impl Server {
    /// Serves `router` until SIGTERM or SIGINT, then drains for up to
    /// `server.drain_timeout_ms`, as the `corral` binary does: a `main` of one line.
    ///
    /// SIGHUP reloads the configuration, as nginx does: [`Config::reload`] reads its file,
    /// environment and flags again, and [`Server::reconfigure`] applies what can change
    /// live; every connection is kept. A configuration that does not load is logged with
    /// the error it would give at start and changes nothing. `log.level` is applied here,
    /// at start and on each reload. A part of the server that cannot be restarted stops it
    /// with [`ServerError::Failed`] (after the drain).
    ///
    /// SIGUSR2 hands the listening socket to a new process, as nginx upgrades its binary:
    /// this program is started again (its path now, the same arguments) with the socket
    /// inherited, and once the new process serves (within 10 s) this one drains as on
    /// SIGTERM and returns `Ok`. The port is never unbound and no queued connection is lost.
    /// If the new process fails, this one logs why and serves on. (While the new process
    /// starts, the descriptors it inherits are open without `FD_CLOEXEC`: a process the
    /// application spawns in that instant inherits them too.)
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
        let signals = Signals::install().map_err(ServerError::Signals)?;
        log::set_max_level(config.log.level.filter());
        let server = Server::start(config, router)?;
        log::info!("listening on http://{}", server.local_addr());
        on_start(&server);
        let failure = loop {
            match signals.wait() {
                Ok(Wakeup::Stop(signal)) => {
                    log::info!("received signal {signal}");
                    break None;
                }
                Ok(Wakeup::Reload) => server.reload(),
                Ok(Wakeup::Handoff) => match server.hand_off() {
                    true => break None,
                    false => continue,
                },
                // Another server in the process, or one that has not failed: wait on.
                Ok(Wakeup::Wake) => match server.failure() {
                    Some(why) => break Some(why.to_string()),
                    None => continue,
                },
                Err(err) => {
                    log::error!("waiting for a shutdown signal: {err}");
                    break None;
                }
            }
        };
        if let Some(why) = &failure {
            log::error!("stopping: {why}");
        }
        // Read now: a reload may have changed it.
        let drain = Duration::from_millis(server.config().server.drain_timeout_ms);
        log::info!("shutting down: draining for up to {drain:?}");
        let stats = server.shared.stats.clone();
        let drained = server.shutdown(drain);
        match failure {
            Some(why) => Err(ServerError::Failed(why)),
            None if drained => Ok(()),
            None => Err(ServerError::DrainTimeout {
                inflight: stats.inflight(),
            }),
        }
    }

    /// Starts the runtime (if needed), binds, and begins accepting. The server runs until
    /// [`Server::shutdown`] or until it is dropped.
    pub fn start(config: Config, router: Router) -> Result<Server, ServerError> {
        // First, before anything that needs stack: the caller's coroutine has may's default
        // stack, and the refusal must not overflow it.
        if !runtime::started() && may::coroutine::is_coroutine() {
            return Err(RuntimeError::StartedInCoroutine.into());
        }
        config.validate()?;
        if !router.errors().is_empty() {
            return Err(ServerError::Routes(router.errors().to_vec()));
        }
        let workers = config.worker_count();
        runtime::start(RuntimeSettings {
            workers,
            stack_size_bytes: config.server.stack_size_bytes,
            coroutine_pool: config.server.coroutine_pool,
        })?;
        let addr = config.listen_addr()?;
        let inherited = handoff::adopt(addr)?;
        let listener = match inherited.listener {
            Some(listener) => {
                // The handoff's socket keeps the options its first owner set; TCP_NODELAY
                // (which accepted sockets inherit) may be missing if an older Corral bound it.
                socket2::SockRef::from(&listener)
                    .set_tcp_nodelay(true)
                    .map_err(|err| ServerError::Bind { addr, err })?;
                // This process's backlog: `listen` again only resizes the queue.
                rustix::net::listen(&listener, backlog(&config)).map_err(|err| {
                    ServerError::Bind {
                        addr,
                        err: err.into(),
                    }
                })?;
                listener
            }
            None => bind(addr, config.server.reuse_port, backlog(&config))
                .map_err(|err| ServerError::Bind { addr, err })?,
        };
        warn_if_backlog_capped(config.server.listen_backlog);
        // This process's own choice, on an adopted socket too.
        set_defer_accept(
            &listener,
            Duration::from_millis(config.server.defer_accept_ms),
        )
        .map_err(|err| ServerError::Bind { addr, err })?;
        let local_addr = listener
            .local_addr()
            .map_err(|err| ServerError::Bind { addr, err })?;
        if config.server.reuse_port {
            warn_unless_queues_migrate();
        }
        let merge_interval = Duration::from_millis(config.placement.merge_interval_ms);
        let connections = connection_limit(config.limits.max_connections);
        runtime::fd::grow_table(listener.as_fd(), connections.max);
        let stall_warn = Duration::from_millis(config.runtime.stall_warn_ms);
        let shared = Arc::new(
            Shared::new(&config, router, workers, connections.max).map_err(ServerError::Wards)?,
        );
        let acceptance = Acceptance {
            placement: shared.placement.clone(),
            router: shared.router.clone(),
            start: Arc::new(shared.clone()),
        };
        let port = local_addr.port();
        // Threads and coroutines that are not processes get stand-ins in the tree.
        let mut others = home::stand_ins();
        others.extend(Wards::stand_ins(&shared));
        let listener = Arc::new(listener);
        let tree = supervisor::start(acceptance, listener.clone(), port, merge_interval, others)
            .inspect_err(|_| shared.wards.stop(&shared.router, &shared.stats))?;
        let failure = Arc::new(OnceLock::new());
        watch_tree(&tree, &shared, &failure);
        let _ = shared.supervisor.set(tree);
        // Started by a handoff: the previous process may drain now.
        if let Some(pipe) = inherited.ready {
            handoff::announce_ready(pipe);
        }
        let mut server = Server {
            shared,
            local_addr,
            stopped: false,
            failure,
            running: Mutex::new(config),
            listener: Mutex::new(Some(listener)),
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

    /// Why the server stopped serving on its own, if it did: a part of it died and could not
    /// be restarted (the supervision tree exceeded its restart intensity and stopped, and
    /// with it the listener). [`Server::run`] then drains and returns
    /// [`ServerError::Failed`]; a server started with [`Server::start`] is the caller's to
    /// stop.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
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
        ServerStats {
            stats: &self.shared.stats,
            wards: &self.shared.wards,
        }
    }

    /// Graceful shutdown. From the start every answer says `Connection: close` and
    /// [`Request::server_draining`](crate::Request::server_draining) is true; the server
    /// accepts for `server.drain_delay_ms` more (so a load balancer's health check sees
    /// it), then stops accepting, takes what is already queued on its socket and closes it.
    /// In-flight requests finish; waiting ones (`Response::hibernate`) get their timeout
    /// answer; idle keep-alive connections close: hibernated ones at once, those active
    /// within `timeouts.hibernate_after_ms` after that long (or their next request is
    /// answered, with `Connection: close`). Returns once every connection closed, or after
    /// `drain` (then the idle ones left are closed by the caller's exit): whether every
    /// request in flight finished in time.
    pub fn shutdown(mut self, drain: Duration) -> bool {
        let delay = Duration::from_millis(self.config().server.drain_delay_ms);
        self.shared.stats.start_draining();
        if !delay.is_zero() {
            log::info!("draining: accepting for {delay:?} more");
            std::thread::sleep(delay);
        }
        self.stop_accepting();
        let deadline = deadline_in(drain);
        let stats = &self.shared.stats;
        while stats.inflight() > 0 || self.open_connections() > 0 {
            if Instant::now() >= deadline {
                if stats.inflight() > 0 {
                    log::warn!(
                        "drain timeout: {} requests still in flight",
                        stats.inflight()
                    );
                    return false;
                }
                log::info!(
                    "drain timeout: closing {} idle connections",
                    self.open_connections()
                );
                return true;
            }
            std::thread::sleep(DRAIN_POLL);
        }
        true
    }

    /// SIGUSR2: starts this program again with the listening socket and waits until it
    /// serves. Whether it did (then this server drains); if not, why is logged.
    fn hand_off(&self) -> bool {
        let Some(listener) = self.listener_handle().clone() else {
            log::warn!("SIGUSR2: this server no longer listens; nothing to hand over");
            return false;
        };
        log::info!("SIGUSR2: starting a new process on the listening socket");
        match handoff::start_successor(&listener) {
            Ok(child) => {
                log::info!(
                    "SIGUSR2: process {} serves on {}; this one drains",
                    child.id(),
                    self.local_addr
                );
                true
            }
            Err(err) => {
                log::error!("SIGUSR2: handoff failed: {err}; this process serves on");
                false
            }
        }
    }
}

impl Server {
    fn listener_handle(&self) -> MutexGuard<'_, Option<Arc<TcpListener>>> {
        // Held only to clone or take the Arc: nothing panics while it is held.
        self.listener.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections still open: started (hibernated ones included) or queued to start.
    fn open_connections(&self) -> usize {
        let stats = &self.shared.stats;
        (0..self.shared.workers)
            .map(|k| stats.connections(k) + stats.queued(k))
            .sum()
    }

    /// Stops the supervision tree and waits for every acceptor to retire; from then
    /// on new connections are refused. The last acceptor takes what is queued on the
    /// socket before it lets go of it (`placement/accept.rs`): it closes with the last
    /// owner, the acceptor.
    fn stop_accepting(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        self.shared.stats.start_draining();
        self.listener_handle().take();
        if let Some(tree) = self.shared.supervisor.get()
            && let Err(err) = tree.stop()
        {
            log::warn!("stopping the supervision tree: {err}");
        }
        let deadline = Instant::now() + ACCEPTORS_RETIRE;
        while self.shared.placement.acceptors() > 0 && Instant::now() < deadline {
            std::thread::sleep(DRAIN_POLL);
        }
        // Hibernated connections: idle ones close, waiting ones get their answer now.
        self.shared
            .wards
            .stop(&self.shared.router, &self.shared.stats);
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

/// Turns the tree's death, unless the server asked for it (draining), into `failure` and a
/// wake-up of `Server::run`: nothing would restart anything any more.
fn watch_tree(tree: &corral_actors::SupRef, shared: &Arc<Shared>, failure: &Arc<OnceLock<String>>) {
    let (stats, failure) = (shared.stats.clone(), failure.clone());
    monitor_with(tree.pid(), move |down| {
        if stats.is_draining() {
            return;
        }
        let why = format!("the supervision tree stopped ({})", down.reason);
        log::error!("{why}: the server no longer accepts connections");
        let _ = failure.set(why);
        signals::interrupt();
    });
}

fn bind(addr: SocketAddr, reuse_port: bool, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        rustix::net::sockopt::set_socket_reuseport(&socket, true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    // Linux copies a listener's TCP_NODELAY to every socket it accepts: one setsockopt here
    // instead of one per connection (docs/architecture.md §3, "Per-request cost").
    socket.set_tcp_nodelay(true)?;
    Ok(socket.into())
}

/// `server.defer_accept_ms` on the listening socket: Linux's `TCP_DEFER_ACCEPT`, in whole
/// seconds (rounded up; 0 turns it off). The kernel then completes an accept only once the
/// connection's first bytes came, or after about that long (at the next retransmitted
/// SYN-ACK's answer) for one that sends nothing.
fn set_defer_accept(listener: &TcpListener, wait: Duration) -> std::io::Result<()> {
    let secs = wait.as_millis().div_ceil(1000);
    let secs = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor, and an int option read from a live `c_int` of the
    // length given (neither rustix nor socket2 wraps this one).
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(listener),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// With `server.reuse_port`, each process's listener has its own accept queue, and closing
/// one (the end of a drain) resets what is still queued on it unless the kernel migrates
/// those connections to another listener of the port (`tcp_migrate_req`, Linux 5.14+; per
/// network namespace). Corral takes what is queued just before it closes
/// (`placement/accept.rs`), which leaves only the connections of that last instant, but
/// only the sysctl closes the gap: say so when it is off. (A SIGUSR2 handoff needs neither:
/// one socket, one queue, never closed.)
/// `server.listen_backlog` for `listen(2)` (validated to at most 65,535 in `config.rs`).
fn backlog(config: &Config) -> i32 {
    i32::try_from(config.server.listen_backlog).unwrap_or(i32::MAX)
}

/// Linux silently caps a listen backlog at `net.core.somaxconn`: say so.
fn warn_if_backlog_capped(backlog: u32) {
    const SYSCTL: &str = "/proc/sys/net/core/somaxconn";
    if let Ok(cap) = std::fs::read_to_string(SYSCTL)
        && let Ok(cap) = cap.trim().parse::<u32>()
        && cap < backlog
    {
        log::warn!(
            "server.listen_backlog = {backlog}, but {SYSCTL} caps it at {cap}: a burst of \
             more connects than that waits for retransmits; raise the sysctl"
        );
    }
}

fn warn_unless_queues_migrate() {
    const SYSCTL: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
    match std::fs::read_to_string(SYSCTL) {
        Ok(value) if value.trim() == "1" => {}
        Ok(_) => log::warn!(
            "server.reuse_port: net.ipv4.tcp_migrate_req is 0, so connections still queued \
             on this process's socket when it closes at the end of a drain are reset, not \
             passed to the next process; set it to 1, or hand over with SIGUSR2"
        ),
        Err(err) => log::warn!(
            "server.reuse_port: cannot read {SYSCTL} ({err}; Linux before 5.14 has none): \
             connections still queued when this process closes its socket may be reset; \
             hand over with SIGUSR2 instead"
        ),
    }
}

#[cfg(test)]
mod tests;
