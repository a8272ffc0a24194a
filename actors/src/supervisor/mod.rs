//! Supervisors: processes that start children, watch them through links (trapping exits), and
//! restart them by their [`Restart`] type and the [`Strategy`], within a restart intensity.
//!
//! The life of a supervisor, as in OTP `supervisor.erl`:
//! 1. `Supervisor::start` spawns the supervisor process, which traps exits and starts the
//!    children left to right, linking to each. A failed start stops the ones already started
//!    (right to left) and `start` returns the error.
//! 2. A child's exit arrives as an [`ExitSignal`] message. `should_restart` decides; a restart
//!    is recorded in the intensity window, and the strategy picks which siblings are stopped
//!    (right to left) and started again (left to right).
//!    If a start fails, the child is left *restarting* ([`ChildInfo::restarting`]) and the
//!    supervisor sends itself a message to try again (OTP `try_again_restart`): requests and
//!    exits queued meanwhile are handled first, so it keeps answering (`which_children`,
//!    `terminate_child`, `stop`) while a child cannot start. Each retry counts as a restart,
//!    so a child that keeps failing ends in step 3. The siblings the strategy would have
//!    started after it wait for that retry (OTP: `{try_again, FailedId}`).
//! 3. More than `max_restarts` within `period`: the supervisor logs it, stops all its children
//!    right to left and exits with [`Exit::Shutdown`], as OTP's does — escalation is simply the
//!    supervisor exiting, which its own supervisor sees as a child exit: a `Permanent` parent
//!    restarts it, a `Transient` or `Temporary` one leaves it down.
//! 4. An exit signal from its parent (the supervisor whose start function started it):
//!    stop all children right to left, exit with the parent's reason.
//!
//! Stopping a child follows its [`Shutdown`] policy, with one departure that may forces: a
//! kill cannot interrupt a coroutine that never yields, so the supervisor waits at most
//! [`KILL_WAIT`] after a kill, then logs the child as not stopped and goes on without it
//! (unlinked, forgotten; it ends with `Killed` at its next yield point).

mod intensity;
mod spec;
mod strategy;

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::mailbox::{ReplyTo, reply_port};
use crate::process::{Addr, CallError, Ctx, Pid, Spawn};
use crate::signal::{Exit, ExitSignal, kill};

use intensity::Intensity;
pub use intensity::{DEFAULT_MAX_RESTARTS, DEFAULT_PERIOD};
pub use spec::{
    ChildKind, ChildSpec, DEFAULT_WORKER_SHUTDOWN, IntoStarted, KILL_WAIT, Restart, Shutdown,
    StartError, Started, should_restart,
};
pub use strategy::Strategy;

/// How long `SupRef` calls wait by default (starting a child runs its start function).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

may::coroutine_local!(static CURRENT_SUPERVISOR: RefCell<Option<Pid>> = RefCell::new(None));

/// Kill `pid` and wait up to [`KILL_WAIT`] for it to exit; `false` if it is still running.
fn kill_and_wait(pid: &Pid) -> bool {
    kill(pid);
    pid.wait_exit(Some(KILL_WAIT)).is_some()
}

/// A supervisor's specification: strategy, intensity, children. Build it, then [`start`].
///
/// ```no_run
/// use corral_actors::{ChildSpec, Strategy, Supervisor, spawn, Ctx};
/// let sup = Supervisor::new(Strategy::OneForOne)
///     .intensity(3, std::time::Duration::from_secs(5))
///     .child(ChildSpec::new("worker", || spawn(|mut ctx: Ctx<u32>| loop { ctx.receive(); })))
///     .start()
///     .expect("children start");
/// ```
///
/// [`start`]: Supervisor::start
#[derive(Clone, Debug)]
pub struct Supervisor {
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    children: Vec<ChildSpec>,
    name: Option<String>,
}

impl Supervisor {
    /// A supervisor with OTP's default intensity (1 restart in 5 s) and no children yet.
    pub fn new(strategy: Strategy) -> Self {
        Supervisor {
            strategy,
            max_restarts: DEFAULT_MAX_RESTARTS,
            period: DEFAULT_PERIOD,
            children: Vec::new(),
            name: None,
        }
    }

    /// At most `max_restarts` restarts within `period`, or the supervisor gives up.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Add a static child; children start in the order added and stop in reverse.
    pub fn child(mut self, spec: ChildSpec) -> Self {
        self.children.push(spec);
        self
    }

    /// Register the supervisor process under `name`.
    pub fn register(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Spawn the supervisor and start its children; returns once all have started.
    /// Called from another supervisor's start function, the new supervisor takes that one as
    /// its parent (see the module docs).
    pub fn start(self) -> Result<SupRef, StartError> {
        let parent = CURRENT_SUPERVISOR.with(|c| c.borrow().clone());
        let label = self
            .name
            .clone()
            .unwrap_or_else(|| "supervisor".to_string());
        let (init_tx, init_rx) = reply_port::<Result<(), StartError>>();
        let restarts = Arc::new(AtomicU64::new(0));
        let mut spawn = Spawn::new();
        if let Some(name) = &self.name {
            spawn = spawn.register(name.clone());
        }
        let counter = restarts.clone();
        let addr = spawn
            .try_spawn(move |ctx: Ctx<SupMsg>| run(ctx, self, parent, init_tx, counter))
            .map_err(|e| StartError {
                id: label.clone(),
                reason: e.to_string(),
            })?;
        match init_rx.wait(None) {
            Ok(Ok(())) => Ok(SupRef {
                addr,
                restarts,
                timeout: DEFAULT_CALL_TIMEOUT,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StartError {
                id: label,
                reason: addr
                    .pid()
                    .exit_reason()
                    .map_or_else(|| "exited during init".to_string(), |e| e.to_string()),
            }),
        }
    }
}

/// Errors from [`SupRef`] requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupError {
    #[error("a child with id `{0}` already exists")]
    DuplicateId(String),
    #[error("no child with id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("supervisor unreachable: {0}")]
    Call(#[from] CallError),
}

/// One child as listed by [`SupRef::which_children`].
#[derive(Debug, Clone)]
pub struct ChildInfo {
    pub id: String,
    /// `None` while not running: a transient child that exited normally, or one whose
    /// restart failed and is to be tried again (see `restarting`).
    pub pid: Option<Pid>,
    /// Its restart failed and a retry is queued (OTP lists such a child as `restarting`).
    pub restarting: bool,
    pub kind: ChildKind,
    pub restart: Restart,
    /// How many times this child was started again after its first start.
    pub restarts: u64,
    /// The child supervisor, for `ChildKind::Supervisor` children that are running.
    pub supervisor: Option<SupRef>,
}

/// A supervision tree, as listed by [`SupRef::tree`]; `Display` renders it indented.
#[derive(Debug, Clone)]
pub struct SupTree {
    pub pid: Pid,
    /// Restart decisions this supervisor has taken (each may restart several children; each
    /// retry of a failed start counts too).
    pub restarts: u64,
    pub children: Vec<(ChildInfo, Option<SupTree>)>,
}

impl SupTree {
    fn render(&self, depth: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "supervisor {} restarts={}", self.pid, self.restarts)?;
        for (child, sub) in &self.children {
            let pad = "  ".repeat(depth + 1);
            let pid = match &child.pid {
                Some(pid) => pid.to_string(),
                None if child.restarting => "restarting".to_string(),
                None => "-".to_string(),
            };
            write!(
                f,
                "{pad}{} {pid} {:?} restarts={}",
                child.id, child.restart, child.restarts
            )?;
            match sub {
                Some(sub) => {
                    f.write_str(" ")?;
                    sub.render(depth + 1, f)?;
                }
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for SupTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(0, f)
    }
}

/// A handle on a running supervisor. Cheap to clone.
#[derive(Clone)]
pub struct SupRef {
    addr: Addr<SupMsg>,
    restarts: Arc<AtomicU64>,
    timeout: Duration,
}

impl fmt::Debug for SupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SupRef({})", self.addr.pid())
    }
}

impl SupRef {
    /// The supervisor process.
    pub fn pid(&self) -> &Pid {
        self.addr.pid()
    }

    /// Use `timeout` for this handle's requests instead of [`DEFAULT_CALL_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Restart decisions taken so far (retries of failed starts included); a lock-free read,
    /// for metrics.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Add and start a dynamic child (one per connection, per topic...). Its id must be
    /// unique; a dynamic child is forgotten when it exits for good or is terminated.
    pub fn start_child(&self, spec: ChildSpec) -> Result<Pid, SupError> {
        self.addr
            .call(|reply| SupMsg::StartChild(spec, reply), self.timeout)?
    }

    /// Stop a child (by its shutdown policy) and forget it.
    pub fn terminate_child(&self, id: &str) -> Result<(), SupError> {
        let id = id.to_string();
        self.addr
            .call(|reply| SupMsg::TerminateChild(id, reply), self.timeout)?
    }

    /// The children in start order, with their restart counts.
    pub fn which_children(&self) -> Result<Vec<ChildInfo>, SupError> {
        Ok(self.addr.call(SupMsg::Children, self.timeout)?)
    }

    /// This supervisor and, recursively, its child supervisors.
    pub fn tree(&self) -> Result<SupTree, SupError> {
        let children = self
            .which_children()?
            .into_iter()
            .map(|child| {
                let sub = match &child.supervisor {
                    // A child supervisor may be restarting right now; list what is reachable.
                    Some(sup) => sup.tree().ok(),
                    None => None,
                };
                (child, sub)
            })
            .collect();
        Ok(SupTree {
            pid: self.pid().clone(),
            restarts: self.restarts(),
            children,
        })
    }

    /// Stop all children (right to left) and the supervisor, which exits with
    /// [`Exit::Shutdown`]. Returns once it has exited.
    pub fn stop(&self) -> Result<(), SupError> {
        self.addr.call_opt(SupMsg::Stop, None)?;
        self.pid().wait_exit(Some(self.timeout));
        Ok(())
    }
}

pub(crate) enum SupMsg {
    Exit(ExitSignal),
    StartChild(ChildSpec, ReplyTo<Result<Pid, SupError>>),
    TerminateChild(String, ReplyTo<Result<(), SupError>>),
    Children(ReplyTo<Vec<ChildInfo>>),
    Stop(ReplyTo<()>),
    /// Sent to itself after a failed restart of the child with this id (OTP's
    /// `try_again_restart` cast), so what is already queued is handled before the retry.
    TryAgain(String),
}

struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
    sup: Option<SupRef>,
    restarts: u64,
    dynamic: bool,
    /// Its restart failed; a `TryAgain` for it is queued.
    restarting: bool,
}

struct State {
    strategy: Strategy,
    intensity: Intensity,
    children: Vec<Child>,
    parent: Option<Pid>,
    restarts: Arc<AtomicU64>,
}

/// The supervisor process body.
fn run(
    mut ctx: Ctx<SupMsg>,
    spec: Supervisor,
    parent: Option<Pid>,
    init: ReplyTo<Result<(), StartError>>,
    restarts: Arc<AtomicU64>,
) {
    CURRENT_SUPERVISOR.with(|c| *c.borrow_mut() = Some(ctx.pid().clone()));
    ctx.trap_exit(SupMsg::Exit);
    let mut st = State {
        strategy: spec.strategy,
        intensity: Intensity::new(spec.max_restarts, spec.period),
        children: Vec::with_capacity(spec.children.len()),
        parent,
        restarts,
    };
    for child in spec.children {
        if let Err(e) = st.add_child(&ctx, child, false) {
            st.stop_all(&ctx);
            let reason = Exit::Error(e.to_string());
            let _ = init.send(Err(match e {
                SupError::Start(e) => e,
                other => StartError {
                    id: "supervisor".into(),
                    reason: other.to_string(),
                },
            }));
            ctx.stop(reason);
        }
    }
    let _ = init.send(Ok(()));
    let reason = st.serve(&mut ctx);
    ctx.stop(reason);
}

impl State {
    fn serve(&mut self, ctx: &mut Ctx<SupMsg>) -> Exit {
        loop {
            match ctx.receive() {
                SupMsg::Exit(sig) => {
                    if let Some(reason) = self.on_exit(ctx, sig) {
                        return reason;
                    }
                }
                SupMsg::StartChild(spec, reply) => {
                    let r = self.add_child(ctx, spec, true);
                    let _ = reply.send(r);
                }
                SupMsg::TerminateChild(id, reply) => {
                    let r = match self.index_of(&id) {
                        Some(i) => {
                            self.terminate(ctx, i);
                            self.children.remove(i);
                            Ok(())
                        }
                        None => Err(SupError::NotFound(id)),
                    };
                    let _ = reply.send(r);
                }
                SupMsg::Children(reply) => {
                    let _ = reply.send(self.infos());
                }
                SupMsg::Stop(reply) => {
                    self.stop_all(ctx);
                    let _ = reply.send(());
                    return Exit::Shutdown;
                }
                SupMsg::TryAgain(id) => {
                    // While a child keeps failing, this message is always waiting, so
                    // `receive` never parks: yield, or the coroutines queued on this worker
                    // would wait until the intensity runs out.
                    may::coroutine::yield_now();
                    if let Some(reason) = self.try_again(ctx, &id) {
                        return reason;
                    }
                }
            }
        }
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    fn add_child(
        &mut self,
        ctx: &Ctx<SupMsg>,
        spec: ChildSpec,
        dynamic: bool,
    ) -> Result<Pid, SupError> {
        if self.index_of(&spec.id).is_some() {
            return Err(SupError::DuplicateId(spec.id));
        }
        let started = spec.start()?;
        // Linked after the start: if the child already died, the link delivers its exit now.
        ctx.link(&started.pid);
        let pid = started.pid.clone();
        self.children.push(Child {
            spec,
            pid: Some(started.pid),
            sup: started.sup,
            restarts: 0,
            dynamic,
            restarting: false,
        });
        Ok(pid)
    }

    /// An exit signal arrived. `Some(reason)` means the supervisor itself must exit.
    fn on_exit(&mut self, ctx: &Ctx<SupMsg>, sig: ExitSignal) -> Option<Exit> {
        if self.parent.as_ref() == Some(&sig.from) {
            self.stop_all(ctx);
            return Some(sig.reason);
        }
        // An exit from a pid that is no longer a child (already replaced or terminated) is stale.
        let i = self
            .children
            .iter()
            .position(|c| c.pid.as_ref() == Some(&sig.from))?;
        self.children[i].pid = None;
        self.children[i].sup = None;
        self.on_child_exit(ctx, i, &sig.reason)
    }

    /// OTP `do_restart/3`: restart by the child's [`Restart`] type, or forget it.
    fn on_child_exit(&mut self, ctx: &Ctx<SupMsg>, dead: usize, why: &Exit) -> Option<Exit> {
        let child = &self.children[dead];
        if !should_restart(child.spec.restart, why) {
            if child.spec.restart == Restart::Temporary || child.dynamic {
                self.children.remove(dead);
            }
            return None;
        }
        log::info!("child `{}` exited ({why}); restarting", child.spec.id);
        self.restart(ctx, dead)
    }

    /// A queued retry: restart the child again if it is still waiting for one (it may have
    /// been terminated, or restarted with its siblings, since).
    fn try_again(&mut self, ctx: &Ctx<SupMsg>, id: &str) -> Option<Exit> {
        let i = self.index_of(id)?;
        if !self.children[i].restarting {
            return None;
        }
        self.restart(ctx, i)
    }

    /// OTP `restart/2`: count a restart against the intensity (`Some(Shutdown)`: exceeded,
    /// the supervisor must exit), then restart child `dead` and the siblings its strategy
    /// takes along. A failed start leaves that child restarting and queues a retry; the
    /// siblings after it are started by that retry.
    fn restart(&mut self, ctx: &Ctx<SupMsg>, dead: usize) -> Option<Exit> {
        if !self.intensity.add_restart(Instant::now()) {
            return Some(self.give_up(ctx));
        }
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let affected = self.strategy.affected(dead, self.children.len());
        for i in affected.clone().rev() {
            self.terminate(ctx, i);
        }
        // OTP does not restart temporary siblings that the strategy stopped: forget them.
        let mut restart_ids = Vec::new();
        for i in affected.clone() {
            let c = &self.children[i];
            if i == dead || c.spec.restart != Restart::Temporary {
                restart_ids.push(c.spec.id.clone());
            }
        }
        let mut i = affected.start;
        let mut end = affected.end;
        let dead_id = self.children[dead].spec.id.clone();
        while i < end {
            let c = &self.children[i];
            if c.spec.id != dead_id && c.spec.restart == Restart::Temporary {
                self.children.remove(i);
                end -= 1;
            } else {
                i += 1;
            }
        }
        for id in restart_ids {
            let Some(i) = self.index_of(&id) else {
                continue;
            };
            if let Err(e) = self.start_again(ctx, i) {
                log::warn!("{e}; trying again");
                self.children[i].restarting = true;
                ctx.send_self(SupMsg::TryAgain(id));
                return None;
            }
        }
        None
    }

    /// Run child `i`'s start function again and link to the new process.
    fn start_again(&mut self, ctx: &Ctx<SupMsg>, i: usize) -> Result<(), StartError> {
        let started = self.children[i].spec.start()?;
        ctx.link(&started.pid);
        let child = &mut self.children[i];
        child.pid = Some(started.pid);
        child.sup = started.sup;
        child.restarts += 1;
        child.restarting = false;
        Ok(())
    }

    fn give_up(&mut self, ctx: &Ctx<SupMsg>) -> Exit {
        log::error!(
            "supervisor {} reached its restart intensity; stopping its children",
            ctx.pid()
        );
        self.stop_all(ctx);
        // OTP: `{stop, shutdown, State}`; the reason is in the log, not in the exit.
        Exit::Shutdown
    }

    /// Stop every running child, last started first.
    fn stop_all(&mut self, ctx: &Ctx<SupMsg>) {
        for i in (0..self.children.len()).rev() {
            self.terminate(ctx, i);
        }
    }

    /// Stop child `i` by its shutdown policy and wait for its exit (OTP `shutdown/1`), but
    /// never forever on a kill: after [`KILL_WAIT`] a child that has not exited is logged and
    /// left behind (it is unlinked already, so its late exit is not taken for a new one).
    fn terminate(&mut self, ctx: &Ctx<SupMsg>, i: usize) {
        let child = &mut self.children[i];
        child.sup = None;
        // A pending retry is cancelled: the child is stopped now, not restarting.
        child.restarting = false;
        let Some(pid) = child.pid.take() else {
            return;
        };
        // Unlinked first, so its exit is not also delivered as a message to handle later.
        ctx.unlink(&pid);
        let id = &child.spec.id;
        let stopped = match child.spec.shutdown {
            Shutdown::BrutalKill => kill_and_wait(&pid),
            Shutdown::Timeout(grace) => {
                ctx.exit(&pid, Exit::Shutdown);
                pid.wait_exit(Some(grace)).is_some() || {
                    log::warn!("child `{id}` ignored shutdown for {grace:?}; killing");
                    kill_and_wait(&pid)
                }
            }
            Shutdown::Infinity => {
                ctx.exit(&pid, Exit::Shutdown);
                pid.wait_exit(None).is_some()
            }
        };
        if !stopped {
            log::error!(
                "child `{id}` ({pid}) still running {KILL_WAIT:?} after it was killed: it has not \
                 reached a yield point (a busy loop, or a blocking non-may call); leaving it \
                 behind, unlinked"
            );
        }
    }

    fn infos(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                pid: c.pid.clone(),
                kind: c.spec.kind,
                restart: c.spec.restart,
                restarts: c.restarts,
                restarting: c.restarting,
                supervisor: c.sup.clone(),
            })
            .collect()
    }
}
