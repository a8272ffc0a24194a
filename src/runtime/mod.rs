//! The may runtime: one scheduler (worker thread) per core, each pinned to its core and
//! running its own epoll loop.
//!
//! may is built with `default-features = false, features = ["io_timeout", "io_cancel"]`,
//! i.e. *without* `work_steal`: a coroutine only ever runs on the worker whose queue it is
//! in, so a connection keeps its core's caches for life. Where it runs is decided by may's
//! `fd % workers` epoll mapping (see `placement`); stealing of not-yet-started connections
//! is Corral's own business, done before a socket is registered.
//!
//! may resumes a coroutine whose sleep expired on its timer thread, and one woken through a
//! channel on the waker's worker; `home` brings a connection back to its own scheduler after
//! every handler, and `sleep` (`corral::sleep`) keeps a sleeper on its scheduler throughout.
//! Thread-locals belong to whichever thread runs the coroutine.
//!
//! may's configuration is process-global and its setters are silently ignored once its
//! scheduler has started, so `start` records the settings it applied and refuses different
//! ones later instead of pretending. Before anything else runs on it, `start` also asks the
//! scheduler whether pinning holds (`probe`): it refuses to start if may was built with
//! `work_steal` (Cargo unifies features, so one crate asking for may's defaults is enough) or
//! was already running with another worker count before Corral configured it.

pub(crate) mod epoch;
pub(crate) mod fd;
pub mod home;
pub(crate) mod input_wait;
pub mod offload;
mod probe;
pub(crate) mod signals;
pub(crate) mod sleep;
pub(crate) mod vigil;
pub(crate) mod watchdog;

use std::sync::OnceLock;
use std::time::Instant;

use probe::Refusal;
pub use probe::WorkerCount;

/// What the runtime was started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Scheduler (may worker) threads.
    pub workers: usize,
    /// Coroutine stack per connection, bytes.
    pub stack_size_bytes: usize,
    /// Ended coroutines may keeps for reuse, stacks and all.
    pub coroutine_pool: usize,
}

/// Why the may runtime could not be started as asked (`ServerError::Runtime`).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// may is process-global: a second server in the process must ask for the same settings.
    #[error("the may runtime already runs with {active:?}; cannot restart it with {requested:?}")]
    AlreadyStarted {
        /// What the runtime runs with.
        active: RuntimeSettings,
        /// What this start asked for.
        requested: RuntimeSettings,
    },
    /// A coroutine queued on one scheduler ran on another: may steals work.
    #[error(
        "may was built with its `work_steal` feature, so connections would migrate between \
         schedulers (some crate in your build depends on `may` with default features: write \
         `may = {{ version = \"0.3\", default-features = false, features = [\"io_timeout\", \
         \"io_cancel\"] }}` or use `corral::may`; `cargo tree -e features -i may` shows who \
         asks for it)"
    )]
    WorkSteal,
    /// may's scheduler started before `start` configured it, with another worker count.
    #[error(
        "may's scheduler was already running with {running} before Corral configured it for \
         {} (a coroutine was spawned before Server::start): start the server first",
        WorkerCount::Exactly(*.requested)
    )]
    SchedulerAlreadyRunning {
        /// The workers may really runs, as the probe counted them.
        running: WorkerCount,
        /// The workers the config asked for.
        requested: usize,
    },
    /// `start` ran inside a coroutine: the scheduler was up before Corral could configure it.
    #[error(
        "Server::start was called from inside a may coroutine, so may's scheduler was already \
         running before Corral configured it: start the server from a plain thread, before \
         spawning any coroutine"
    )]
    StartedInCoroutine,
    /// A coroutine or thread of the runtime could not be started.
    #[error("could not start the may scheduler: {0}")]
    Spawn(std::io::Error),
}

impl From<Refusal> for RuntimeError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::WorkSteal => RuntimeError::WorkSteal,
            Refusal::AlreadyRunning { running, requested } => {
                RuntimeError::SchedulerAlreadyRunning { running, requested }
            }
        }
    }
}

static STARTED: OnceLock<RuntimeSettings> = OnceLock::new();
/// Whether pinning holds (`probe`), asked once, before any other coroutine of Corral's (the
/// outer error: a probe could not be spawned).
static PINNING: OnceLock<Result<Result<(), Refusal>, String>> = OnceLock::new();
static DOORKEEPERS: OnceLock<Result<(), String>> = OnceLock::new();

/// Whether `start` has configured may in this process.
pub fn started() -> bool {
    STARTED.get().is_some()
}

/// Configures and starts may, then checks that its schedulers are pinned (see `probe`).
/// Calling it again with the same settings is a no-op.
pub fn start(requested: RuntimeSettings) -> Result<(), RuntimeError> {
    if STARTED.get().is_none() && may::coroutine::is_coroutine() {
        return Err(RuntimeError::StartedInCoroutine);
    }
    let active = *STARTED.get_or_init(|| {
        let words = requested.stack_size_bytes / std::mem::size_of::<usize>();
        may::config()
            .set_workers(requested.workers)
            .set_stack_size(words);
        may::config().set_worker_pin(true);
        raise_open_files_limit();
        requested
    });
    if active != requested {
        return Err(RuntimeError::AlreadyStarted { active, requested });
    }
    // may starts its scheduler lazily on first spawn: the probes start it, with the config
    // above (unless someone else's coroutine already did).
    PINNING
        .get_or_init(|| check_pinning(active.workers).map_err(|e| e.to_string()))
        .clone()
        .map_err(|why| RuntimeError::Spawn(std::io::Error::other(why)))??;
    // Only now: may fills its pool to this capacity when its scheduler starts (the probes
    // above started it with may's default, 1000), and a pool filled ahead would hold its
    // stacks resident from the start; raised here, it keeps what connections hand back.
    may::config().set_pool_capacity(active.coroutine_pool);
    DOORKEEPERS
        .get_or_init(|| home::start_doorkeepers(active.workers).map_err(|e| e.to_string()))
        .clone()
        .map_err(|why| RuntimeError::Spawn(std::io::Error::other(why)))
}

/// Runs the probes and judges (a probe that could not spawn is an error; one that got no
/// answer in time proves nothing and is only logged).
fn check_pinning(workers: usize) -> std::io::Result<Result<(), Refusal>> {
    let began = Instant::now();
    let census = probe::take_census(workers, began + probe::PROBE_LIMIT)?;
    if census.is_none() {
        log::warn!(
            "may's workers did not all answer the census within {:?}",
            probe::PROBE_LIMIT
        );
    }
    let stolen = match probe::steal_probe_workers(census) {
        Some(n) => {
            let stolen = probe::steals(n, Instant::now() + probe::PROBE_LIMIT)?;
            if stolen.is_none() {
                log::warn!(
                    "may's workers did not answer the steal probe within {:?}",
                    probe::PROBE_LIMIT
                );
            }
            stolen
        }
        None => None,
    };
    log::debug!(
        "pinning checks ({census:?}, stolen: {stolen:?}) took {:?}",
        began.elapsed()
    );
    Ok(probe::verdict(workers, census, stolen))
}

/// A server holds one fd per connection: lift the soft limit to the hard one, as Go does.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            log::warn!("could not raise the open-files limit: {err}");
        }
    }
}
