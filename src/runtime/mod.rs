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
//! every handler. Thread-locals belong to whichever thread runs the coroutine.
//!
//! may's configuration is process-global and its setters are silently ignored once its
//! scheduler has started, so `start` records the settings it applied and refuses different
//! ones later instead of pretending.

pub(crate) mod fd;
pub mod home;
pub mod offload;
pub(crate) mod signals;

use std::sync::OnceLock;

/// What the runtime was started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeSettings {
    pub workers: usize,
    pub stack_size_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the may runtime already runs with {active:?}; cannot restart it with {requested:?}")]
    AlreadyStarted {
        active: RuntimeSettings,
        requested: RuntimeSettings,
    },
    #[error("could not start the may scheduler: {0}")]
    Spawn(std::io::Error),
}

static STARTED: OnceLock<RuntimeSettings> = OnceLock::new();
static DOORKEEPERS: OnceLock<Result<(), String>> = OnceLock::new();

/// Configures and starts may. Calling it again with the same settings is a no-op.
pub fn start(requested: RuntimeSettings) -> Result<(), RuntimeError> {
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
    // may starts its scheduler lazily on first spawn: spawning the doorkeepers (see `home`)
    // starts it, with the config above.
    DOORKEEPERS
        .get_or_init(|| home::start_doorkeepers(active.workers).map_err(|e| e.to_string()))
        .clone()
        .map_err(|why| RuntimeError::Spawn(std::io::Error::other(why)))
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
