//! Child specifications: what to start, when to restart it, how to stop it.
//! The types mirror OTP `supervisor.erl`'s `child_spec()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::process::{Addr, Pid};
use crate::signal::Exit;
use crate::supervisor::SupRef;

/// When a child that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `Normal`, not `Shutdown`).
    Transient,
    /// Never; the child is forgotten once it exits.
    Temporary,
}

/// How a supervisor stops a child (OTP `shutdown/1`).
///
/// On may a kill takes effect only when the child reaches a yield point (see
/// [`kill`](crate::kill)), so after killing, the supervisor waits at most [`KILL_WAIT`]. A
/// child still alive then (spinning on the CPU, or blocked in a non-may call) is logged as not
/// stopped and left running, unlinked and forgotten: it unwinds with [`Exit::Killed`] at its
/// next yield point. So `BrutalKill` and `Timeout` never hang the supervisor; `Infinity` does
/// wait for as long as the child takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// [`kill`](crate::kill) at once; wait up to [`KILL_WAIT`] for the exit.
    BrutalKill,
    /// Send an exit signal with [`Exit::Shutdown`]; kill if still alive after the timeout,
    /// then wait up to [`KILL_WAIT`]. A child that traps exits gets the time to clean up.
    Timeout(Duration),
    /// Send [`Exit::Shutdown`] and wait for as long as it takes (the default for supervisors).
    Infinity,
}

/// How long a supervisor waits for a kill to take effect before it reports the child as not
/// stopped and goes on without it (see [`Shutdown`]). A child parked in a may call unwinds
/// within microseconds; this bound only matters for one that does not yield.
pub const KILL_WAIT: Duration = Duration::from_millis(100);

/// Default shutdown for workers: OTP's 5000 ms.
pub const DEFAULT_WORKER_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(5));

/// Whether a child is itself a supervisor (listed recursively by `SupRef::tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    Worker,
    Supervisor,
}

/// The restart decision: OTP `do_restart/3`, one arm per (restart type, exit reason).
pub fn should_restart(restart: Restart, why: &Exit) -> bool {
    match (restart, why) {
        (Restart::Permanent, _) => true,
        (Restart::Transient, Exit::Normal | Exit::Shutdown) => false,
        (Restart::Transient, _) => true,
        (Restart::Temporary, _) => false,
    }
}

/// Why a child did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("child `{id}` failed to start: {reason}")]
pub struct StartError {
    pub id: String,
    pub reason: String,
}

/// A started child, as the supervisor keeps it.
pub struct Started {
    pub(crate) pid: Pid,
    pub(crate) sup: Option<SupRef>,
}

/// What a start function may return: an [`Addr`], a [`Pid`], a [`SupRef`], or a `Result` of
/// one of those (an `Err` is a failed start, counted against the restart intensity).
pub trait IntoStarted {
    fn into_started(self) -> Result<Started, String>;
}

impl<M: Send + 'static> IntoStarted for Addr<M> {
    fn into_started(self) -> Result<Started, String> {
        Ok(Started {
            pid: self.pid().clone(),
            sup: None,
        })
    }
}

impl IntoStarted for Pid {
    fn into_started(self) -> Result<Started, String> {
        Ok(Started {
            pid: self,
            sup: None,
        })
    }
}

impl IntoStarted for SupRef {
    fn into_started(self) -> Result<Started, String> {
        Ok(Started {
            pid: self.pid().clone(),
            sup: Some(self),
        })
    }
}

impl<T: IntoStarted, E: fmt::Display> IntoStarted for Result<T, E> {
    fn into_started(self) -> Result<Started, String> {
        self.map_err(|e| e.to_string())?.into_started()
    }
}

type StartFn = Arc<dyn Fn() -> Result<Started, String> + Send + Sync>;

/// One child: an id unique within its supervisor, a start function (run in the supervisor's
/// process, and run again for each restart), a [`Restart`] type and a [`Shutdown`].
/// Defaults: `Permanent`, `Shutdown::Timeout(5 s)`, a worker.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
}

impl ChildSpec {
    /// A worker started by `start`, e.g. `ChildSpec::new("counter", || spawn(counter))`.
    /// To find a restarted child, register it by name in `start`.
    pub fn new<S: IntoStarted>(
        id: impl Into<String>,
        start: impl Fn() -> S + Send + Sync + 'static,
    ) -> Self {
        ChildSpec {
            id: id.into(),
            start: Arc::new(move || start().into_started()),
            restart: Restart::Permanent,
            shutdown: DEFAULT_WORKER_SHUTDOWN,
            kind: ChildKind::Worker,
        }
    }

    /// A nested supervisor (a tree): started from `sup`'s spec on every (re)start, shut down
    /// with `Shutdown::Infinity` so it can stop its own children first.
    pub fn supervisor(id: impl Into<String>, sup: crate::supervisor::Supervisor) -> Self {
        ChildSpec {
            kind: ChildKind::Supervisor,
            shutdown: Shutdown::Infinity,
            ..ChildSpec::new(id, move || sup.clone().start())
        }
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn start(&self) -> Result<Started, StartError> {
        (self.start)().map_err(|reason| StartError {
            id: self.id.clone(),
            reason,
        })
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{Strategy, Supervisor};

    fn nothing() -> Result<Pid, String> {
        Err("not started in this test".into())
    }

    #[test]
    fn a_worker_spec_defaults_to_permanent_with_a_5_s_shutdown() {
        let spec = ChildSpec::new("w", nothing);
        assert_eq!(spec.id(), "w");
        assert_eq!(spec.restart, Restart::Permanent);
        assert_eq!(spec.shutdown, Shutdown::Timeout(Duration::from_secs(5)));
        assert_eq!(spec.kind, ChildKind::Worker);
        let spec = spec
            .restart(Restart::Transient)
            .shutdown(Shutdown::BrutalKill);
        assert_eq!(
            format!("{spec:?}"),
            "ChildSpec { id: \"w\", restart: Transient, shutdown: BrutalKill, kind: Worker, .. }"
        );
    }

    #[test]
    fn a_supervisor_spec_is_a_supervisor_shut_down_without_a_timeout() {
        // Infinity: a nested supervisor must have the time to stop its own children first.
        let spec = ChildSpec::supervisor("tree", Supervisor::new(Strategy::OneForOne));
        assert_eq!(spec.id(), "tree");
        assert_eq!(spec.kind, ChildKind::Supervisor);
        assert_eq!(spec.shutdown, Shutdown::Infinity);
        assert_eq!(spec.restart, Restart::Permanent);
    }

    #[test]
    fn restart_decision_matrix() {
        let panic = Exit::Panic("x".into());
        let cases = [
            (Restart::Permanent, Exit::Normal, true),
            (Restart::Permanent, Exit::Shutdown, true),
            (Restart::Permanent, panic.clone(), true),
            (Restart::Transient, Exit::Normal, false),
            (Restart::Transient, Exit::Shutdown, false),
            (Restart::Transient, panic.clone(), true),
            (Restart::Transient, Exit::Killed, true),
            (Restart::Temporary, Exit::Normal, false),
            (Restart::Temporary, panic, false),
        ];
        for (restart, why, expected) in cases {
            assert_eq!(should_restart(restart, &why), expected, "{restart:?} {why}");
        }
    }
}
