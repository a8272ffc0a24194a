//! Processes: a may coroutine with a mailbox, its untyped identity ([`Pid`]) and typed address
//! ([`Addr`]), the context it receives through ([`Ctx`]), and its life from spawn to exit.

use std::cell::Cell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use may::coroutine::{self, Coroutine};

use crate::mailbox::{self, DEFAULT_CAPACITY, Mailbox, NoReply, Overflow, ReplyTo, SendError};
use crate::registry::{self, RegistryError};
use crate::signal::{self, Down, Exit, ExitSignal, MonitorFn, MonitorRef, Obituary, TrapFn};

// ---------------------------------------------------------------------------------------------
// Identity and shared state
// ---------------------------------------------------------------------------------------------

/// A process's untyped identity: what links, monitors, `kill` and the registry work with.
/// Cheap to clone; stays valid (and remembers the exit reason) after the process is gone.
#[derive(Clone)]
pub struct Pid(Arc<Core>);

pub(crate) struct Core {
    id: u64,
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) phase: Phase,
    /// Set by a kill or an exit signal; wins over the body's own result.
    pub(crate) pending: Option<Exit>,
    pub(crate) links: Vec<Pid>,
    pub(crate) monitors: Vec<(u64, MonitorFn)>,
    pub(crate) trap: Option<TrapFn>,
    pub(crate) names: Vec<String>,
}

pub(crate) enum Phase {
    /// Spawned, coroutine not yet running.
    Starting,
    Running(Coroutine),
    /// Adopted by code that owns its own coroutine (a connection): a kill or exit signal
    /// interrupts its mailbox instead of cancelling a coroutine ([`Adopted`]).
    Adopted(Weak<dyn Interrupt>),
    Dead(Exit),
}

/// How a kill reaches an adopted process: through its mailbox, whatever its message type.
pub(crate) trait Interrupt: Send + Sync {
    fn interrupt(&self);
}

impl<M: Send> Interrupt for Proc<M> {
    fn interrupt(&self) {
        self.mailbox.interrupt();
    }
}

static NEXT_PID: AtomicU64 = AtomicU64::new(1);

impl Pid {
    fn new() -> Pid {
        Pid(Arc::new(Core {
            id: NEXT_PID.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State {
                phase: Phase::Starting,
                pending: None,
                links: Vec::new(),
                monitors: Vec::new(),
                trap: None,
                names: Vec::new(),
            }),
        }))
    }

    /// A number unique for the life of the program.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // Critical sections only move values around; a poisoned lock still holds a valid state.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the process has not exited yet.
    pub fn is_alive(&self) -> bool {
        !matches!(self.state().phase, Phase::Dead(_))
    }

    /// The exit reason, once the process is dead.
    pub fn exit_reason(&self) -> Option<Exit> {
        match &self.state().phase {
            Phase::Dead(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Terminate with [`Exit::Killed`]; see [`kill`](crate::kill).
    pub fn kill(&self) {
        signal::kill(self);
    }

    /// Block the calling coroutine or thread until the process exits, up to `timeout`
    /// (`None`: forever). Returns the exit reason, or `None` on timeout.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> Option<Exit> {
        let (tx, rx) = mailbox::reply_port::<Exit>();
        let mref = signal::monitor_with(self, move |down| {
            let _ = tx.send(down.reason);
        });
        match rx.wait(timeout) {
            Ok(reason) => Some(reason),
            Err(_) => {
                signal::demonitor(&mref);
                None
            }
        }
    }

    /// Mark for termination with `why` and cancel the coroutine (it unwinds at its next
    /// blocking point). The first reason wins.
    pub(crate) fn terminate(&self, why: Exit) {
        let mut st = self.state();
        if matches!(st.phase, Phase::Dead(_)) {
            return;
        }
        if st.pending.is_none() {
            st.pending = Some(why);
        }
        match &st.phase {
            Phase::Running(co) => {
                // SAFETY: may's cancel unwinds the coroutine from its next blocking point,
                // dropping what it holds. Every process body runs under `catch_unwind` in
                // `run` below, which records the pending reason and then runs the exit
                // sequence, which never blocks.
                #[allow(unsafe_code)]
                unsafe {
                    co.cancel()
                };
            }
            Phase::Adopted(proc) => {
                let proc = proc.upgrade();
                // Outside the lock: the interruption runs the owner's callback.
                drop(st);
                if let Some(proc) = proc {
                    proc.interrupt();
                }
            }
            Phase::Starting | Phase::Dead(_) => {}
        }
    }

    /// The reason a kill or exit signal gave, while the process has not exited yet.
    pub(crate) fn pending_exit(&self) -> Option<Exit> {
        self.state().pending.clone()
    }

    /// First thing in the coroutine: record it so kills can reach it. `false` if a kill came
    /// before the coroutine ran (the body is then skipped).
    fn started(&self, co: Coroutine) -> bool {
        let mut st = self.state();
        if st.pending.is_some() {
            return false;
        }
        st.phase = Phase::Running(co);
        true
    }

    /// Last thing: the process is dead from here on. Returns the final reason and the
    /// obligations (links, monitors, names) to discharge outside the lock.
    fn die(&self, natural: Exit) -> (Exit, Obituary) {
        let mut st = self.state();
        let reason = st.pending.take().unwrap_or(natural);
        st.phase = Phase::Dead(reason.clone());
        st.trap = None;
        let obituary = Obituary {
            links: std::mem::take(&mut st.links),
            monitors: std::mem::take(&mut st.monitors),
            names: std::mem::take(&mut st.names),
        };
        (reason, obituary)
    }
}

impl PartialEq for Pid {
    fn eq(&self, other: &Pid) -> bool {
        self.0.id == other.0.id
    }
}
impl Eq for Pid {}
impl Hash for Pid {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.id.hash(h);
    }
}
impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<0.{}>", self.0.id)
    }
}
impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// ---------------------------------------------------------------------------------------------
// Typed address
// ---------------------------------------------------------------------------------------------

/// A typed address: send `M` messages to a process. Cheap to clone, `Send + Sync`.
pub struct Addr<M>(Arc<Proc<M>>);

pub(crate) struct Proc<M> {
    pid: Pid,
    mailbox: Mailbox<M>,
}

/// Why a [`call`](Addr::call) got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no reply within the timeout")]
    Timeout,
    /// The request could not be queued: mailbox full under [`Overflow::Fail`].
    #[error("mailbox full")]
    Full,
    /// The process was dead, or exited before answering.
    #[error("process exited: {0}")]
    Dead(Exit),
    /// The process dropped the reply port without answering (and is still alive).
    #[error("request dropped without a reply")]
    NoReply,
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Addr(self.0.clone())
    }
}

impl<M> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr({})", self.0.pid)
    }
}

impl<M> PartialEq for Addr<M> {
    fn eq(&self, other: &Self) -> bool {
        self.0.pid == other.0.pid
    }
}
impl<M> Eq for Addr<M> {}

impl<M> From<Addr<M>> for Pid {
    fn from(addr: Addr<M>) -> Pid {
        addr.0.pid.clone()
    }
}

impl<M: Send + 'static> Addr<M> {
    /// The process's untyped identity.
    pub fn pid(&self) -> &Pid {
        &self.0.pid
    }

    /// Whether the process has not exited yet.
    pub fn is_alive(&self) -> bool {
        self.0.pid.is_alive()
    }

    /// Messages waiting in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.0.mailbox.len()
    }

    /// Send under the receiver's overflow policy: on a full mailbox, [`Overflow::Block`] parks
    /// the caller until there is room, [`Overflow::Fail`] returns [`SendError::Full`].
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.0.mailbox.send(msg)
    }

    /// Send without ever blocking, whatever the policy.
    pub fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        self.0.mailbox.try_send(msg)
    }

    /// Request/reply: build the request around a fresh reply port, send it, wait up to
    /// `timeout`. After a timeout the port is closed, so a late answer is refused by
    /// [`ReplyTo::send`] instead of landing in anyone's mailbox.
    ///
    /// ```no_run
    /// # use corral_actors::{Addr, ReplyTo};
    /// # use std::time::Duration;
    /// enum Msg { Get { reply: ReplyTo<u64> } }
    /// # fn f(counter: Addr<Msg>) -> Result<(), corral_actors::CallError> {
    /// let n = counter.call(|reply| Msg::Get { reply }, Duration::from_millis(100))?;
    /// # Ok(()) }
    /// ```
    pub fn call<R: Send + 'static>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.call_opt(request, Some(timeout))
    }

    pub(crate) fn call_opt<R: Send + 'static>(
        &self,
        request: impl FnOnce(ReplyTo<R>) -> M,
        timeout: Option<Duration>,
    ) -> Result<R, CallError> {
        let (tx, rx) = mailbox::reply_port();
        match self.0.mailbox.send(request(tx)) {
            Ok(()) => {}
            Err(SendError::Full(_)) => return Err(CallError::Full),
            Err(SendError::Dead(_)) => return Err(self.dead()),
        }
        let started = Instant::now();
        match rx.wait(timeout) {
            Ok(reply) => Ok(reply),
            Err(NoReply::Timeout) => Err(CallError::Timeout),
            Err(NoReply::Dropped) if self.0.mailbox.is_closed() => Err(self.dead()),
            Err(NoReply::Dropped) => Err(CallError::NoReply),
            // The callee is unwinding: report its exit reason once recorded.
            Err(NoReply::Unwound) => {
                let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
                match self.0.pid.wait_exit(left) {
                    Some(reason) => Err(CallError::Dead(reason)),
                    None => Err(CallError::Timeout),
                }
            }
        }
    }

    fn dead(&self) -> CallError {
        // The mailbox is closed only after the reason is recorded.
        CallError::Dead(self.0.pid.exit_reason().unwrap_or(Exit::Normal))
    }
}

// ---------------------------------------------------------------------------------------------
// Inside a process
// ---------------------------------------------------------------------------------------------

/// What a process body receives: its own mailbox and identity. Only the process holds it
/// (`Send`, not `Sync`, not `Clone`), which is what makes the mailbox single-consumer.
pub struct Ctx<M> {
    me: Addr<M>,
    _one_reader: PhantomData<Cell<()>>,
}

impl<M: Send + 'static> Ctx<M> {
    /// This process's identity.
    pub fn pid(&self) -> &Pid {
        self.me.pid()
    }

    /// This process's own address (to hand to others).
    pub fn addr(&self) -> Addr<M> {
        self.me.clone()
    }

    /// Wait for the next message. A kill or a non-trapped exit signal ends the process from here.
    pub fn receive(&mut self) -> M {
        loop {
            if let Some(m) = self.me.0.mailbox.recv(None) {
                return m;
            }
        }
    }

    /// Wait for the next message up to `timeout`; `None` if none came.
    pub fn receive_timeout(&mut self, timeout: Duration) -> Option<M> {
        self.me.0.mailbox.recv(Some(timeout))
    }

    /// Take a message if one is waiting, without blocking.
    pub fn try_receive(&mut self) -> Option<M> {
        self.me.0.mailbox.try_recv()
    }

    /// Trap exits: from now on exit signals (from links, or [`Ctx::exit`]) arrive as messages
    /// built by `into` instead of terminating this process. [`kill`](crate::kill) still kills.
    pub fn trap_exit(&mut self, into: impl Fn(ExitSignal) -> M + Send + Sync + 'static) {
        let me = Arc::downgrade(&self.me.0);
        let trap: TrapFn = Arc::new(move |sig| {
            if let Some(me) = me.upgrade() {
                me.mailbox.push_system(into(sig));
            }
        });
        self.pid().state().trap = Some(trap);
    }

    /// Stop trapping exits.
    pub fn untrap_exit(&mut self) {
        self.pid().state().trap = None;
    }

    /// Link this process with `other` (see [`link`](crate::link)).
    pub fn link(&self, other: &Pid) {
        signal::link(self.pid(), other);
    }

    /// Remove a link.
    pub fn unlink(&self, other: &Pid) {
        signal::unlink(self.pid(), other);
    }

    /// Monitor `target`: when it exits, `into(Down)` arrives in this mailbox (at once if it
    /// is already dead). The monitor never terminates this process.
    pub fn monitor(
        &self,
        target: &Pid,
        into: impl FnOnce(Down) -> M + Send + 'static,
    ) -> MonitorRef {
        let me = Arc::downgrade(&self.me.0);
        signal::monitor_with(target, move |down| deliver(&me, into(down)))
    }

    /// Queue `msg` in this process's own mailbox, past its bound (a process must never block
    /// on itself). The supervisor's retries use it.
    pub(crate) fn send_self(&self, msg: M) {
        self.me.0.mailbox.push_system(msg);
    }

    /// Send an exit signal from this process (Erlang `exit(Pid, Reason)`).
    pub fn exit(&self, to: &Pid, reason: Exit) {
        signal::exit(self.pid(), to, reason);
    }

    /// End this process now with `reason` (Erlang `exit(Reason)`). Returning from the body is
    /// the same as `stop(Exit::Normal)`. Unwinds without invoking the panic hook.
    pub fn stop(self, reason: Exit) -> ! {
        drop(self);
        std::panic::resume_unwind(Box::new(Stop(reason)))
    }

    /// Wait on something other than the mailbox: run `event` (any blocking call, e.g. a read
    /// that returns 0 when a socket closes) in a helper coroutine and deliver `into(result)`
    /// to this mailbox as a message, bypassing the bound. The helper is killed when the
    /// returned [`Watch`] is dropped, so a body that returns early cleans it up.
    pub fn watch<T: Send + 'static>(
        &self,
        event: impl FnOnce() -> T + Send + 'static,
        into: impl FnOnce(T) -> M + Send + 'static,
    ) -> Watch {
        let me = Arc::downgrade(&self.me.0);
        let helper = Spawn::new()
            .capacity(1)
            .spawn(move |_: Ctx<()>| deliver(&me, into(event())));
        Watch {
            helper: helper.pid().clone(),
        }
    }
}

fn deliver<M>(to: &Weak<Proc<M>>, msg: M) {
    if let Some(to) = to.upgrade() {
        to.mailbox.push_system(msg);
    }
}

/// The helper coroutine of [`Ctx::watch`]; killed on drop.
#[derive(Debug)]
pub struct Watch {
    helper: Pid,
}

impl Drop for Watch {
    fn drop(&mut self) {
        signal::kill(&self.helper);
    }
}

/// The unwind payload of [`Ctx::stop`]: carries the chosen exit reason to `run`.
struct Stop(Exit);

// ---------------------------------------------------------------------------------------------
// Adopted processes
// ---------------------------------------------------------------------------------------------

/// A process made of code that already runs, instead of a coroutine spawned for it: a
/// server's connection, whose coroutine comes and goes (it may hibernate without one) while
/// the process lives on. Made with [`Spawn::adopt`]; whoever holds it is the process.
///
/// It has what a spawned process has — a [`Pid`] that links, monitors, [`kill`](crate::kill)
/// and the registry work with, and a mailbox (an [`Addr`] for senders) — but no body:
/// - a kill or a non-trapped exit signal cannot cancel a coroutine it does not own, so it
///   *interrupts* the mailbox: a waiting receive returns `Err(reason)` (so does every later
///   one), and the [`on_next`](Adopted::on_next) callback runs. The holder then ends.
/// - it exits when the holder calls [`exit`](Adopted::exit), or drops it: `Exit::Normal`,
///   unless a kill or exit signal gave another reason first. Its names are freed, links
///   signalled and monitors told ([`Down`]) as for any process.
/// - its mailbox costs nothing until the first message (no preallocated blocks), since
///   connections wait by the ten thousand.
///
/// `Send` (it may move with a hibernated connection to another thread), not `Sync` and not
/// `Clone`: one reader.
pub struct Adopted<M: Send + 'static> {
    me: Addr<M>,
    _one_reader: PhantomData<Cell<()>>,
}

impl<M: Send + 'static> Adopted<M> {
    /// This process's identity.
    pub fn pid(&self) -> &Pid {
        self.me.pid()
    }

    /// This process's address, to hand to others.
    pub fn addr(&self) -> Addr<M> {
        self.me.clone()
    }

    /// The reason a kill or exit signal gave, if one came: the holder should end now.
    pub fn exit_signal(&self) -> Option<Exit> {
        self.pid().pending_exit()
    }

    /// Wait for the next message. `Err(reason)`: a kill or exit signal ended the process.
    pub fn receive(&self) -> Result<M, Exit> {
        loop {
            if let Some(m) = self.receive_timeout_opt(None)? {
                return Ok(m);
            }
        }
    }

    /// Wait for the next message up to `timeout`; `Ok(None)` if none came.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Option<M>, Exit> {
        self.receive_timeout_opt(Some(timeout))
    }

    fn receive_timeout_opt(&self, timeout: Option<Duration>) -> Result<Option<M>, Exit> {
        if let Some(why) = self.exit_signal() {
            return Err(why);
        }
        let got = self.me.0.mailbox.recv(timeout);
        match (got, self.exit_signal()) {
            (_, Some(why)) => Err(why),
            (got, None) => Ok(got),
        }
    }

    /// Take a message if one is waiting, without blocking.
    pub fn try_receive(&self) -> Result<Option<M>, Exit> {
        match self.exit_signal() {
            Some(why) => Err(why),
            None => Ok(self.me.0.mailbox.try_recv()),
        }
    }

    /// Whether a message is waiting.
    pub fn has_message(&self) -> bool {
        self.me.0.mailbox.has_message()
    }

    /// Run `f` once, at the next message or exit signal, or at once if either is there
    /// already (it replaces a callback set before): how a holder that waits on something
    /// else — a socket — learns that the mailbox wants it. From any thread, on the sender's
    /// (or the killer's) stack: `f` must be quick and must not block, e.g. ring a bell.
    pub fn on_next(&self, f: impl FnOnce() + Send + 'static) {
        self.me.0.mailbox.on_next(Box::new(f));
    }

    /// Drop the callback set with [`on_next`](Adopted::on_next), unrun.
    pub fn clear_on_next(&self) {
        self.me.0.mailbox.clear_on_next();
    }

    /// Link with `other` (see [`link`](crate::link)).
    pub fn link(&self, other: &Pid) {
        signal::link(self.pid(), other);
    }

    /// Monitor `target`: when it exits, `into(Down)` arrives in this mailbox (at once if it
    /// is already dead), past its bound. Never terminates this process.
    pub fn monitor(
        &self,
        target: &Pid,
        into: impl FnOnce(Down) -> M + Send + 'static,
    ) -> MonitorRef {
        let me = Arc::downgrade(&self.me.0);
        signal::monitor_with(target, move |down| deliver(&me, into(down)))
    }

    /// End the process with `reason` (a kill or exit signal that came first wins).
    pub fn exit(self, reason: Exit) {
        finish(&self.me, reason);
    }
}

impl<M: Send + 'static> Drop for Adopted<M> {
    fn drop(&mut self) {
        finish(&self.me, Exit::Normal);
    }
}

impl<M: Send + 'static> fmt::Debug for Adopted<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Adopted({})", self.me.0.pid)
    }
}

/// The exit sequence of an adopted process; only its holder calls it, and only the first
/// call does anything (`exit` is followed by the drop).
fn finish<M: Send + 'static>(addr: &Addr<M>, natural: Exit) {
    let pid = addr.pid();
    if !pid.is_alive() {
        return;
    }
    let (reason, obituary) = pid.die(natural);
    addr.0.mailbox.close();
    obituary.deliver(pid, &reason);
}

// ---------------------------------------------------------------------------------------------
// Spawning
// ---------------------------------------------------------------------------------------------

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("could not register the process: {0}")]
    Register(#[from] RegistryError),
    #[error("could not create the coroutine: {0}")]
    Coroutine(#[from] std::io::Error),
}

/// Spawn options. `Spawn::new().capacity(64).overflow(Overflow::Fail).spawn(body)`.
#[derive(Debug, Clone, Default)]
pub struct Spawn {
    capacity: Option<usize>,
    overflow: Overflow,
    stack_words: Option<usize>,
    worker: Option<usize>,
    name: Option<String>,
    link: Option<Pid>,
}

impl Spawn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Mailbox bound in messages (default [`DEFAULT_CAPACITY`]); at least 1.
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = Some(messages);
        self
    }

    /// What `send` does on a full mailbox (default [`Overflow::Block`]).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Coroutine stack size in machine words (default: may's, 0x1000 words = 32 KiB on
    /// 64-bit). Rounded up to an even count: may treats an odd size as a request to print the
    /// stack usage at exit. Overflowing the stack crashes the program; keep a margin.
    pub fn stack_size(mut self, words: usize) -> Self {
        self.stack_words = Some((words + 1) & !1);
        self
    }

    /// Start on may worker `id` (until its first wait on I/O; see docs/architecture.md §4).
    pub fn worker(mut self, id: usize) -> Self {
        self.worker = Some(id);
        self
    }

    /// Register under `name` before the body runs; fails if the name is taken.
    pub fn register(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Link to `peer` before the body runs (Erlang `spawn_link`).
    pub fn link(mut self, peer: &Pid) -> Self {
        self.link = Some(peer.clone());
        self
    }

    /// Spawn, panicking if the coroutine cannot be created or the name is taken
    /// (like `std::thread::spawn`). See [`Spawn::try_spawn`].
    pub fn spawn<M, F>(self, body: F) -> Addr<M>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) + Send + 'static,
    {
        match self.try_spawn(body) {
            Ok(addr) => addr,
            Err(e) => panic!("spawn failed: {e}"),
        }
    }

    /// Make a process of the calling code instead of spawning one (see [`Adopted`]): the
    /// capacity, overflow, name and link options apply; stack size and worker do not.
    pub fn adopt<M: Send + 'static>(self) -> Result<Adopted<M>, SpawnError> {
        let pid = Pid::new();
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY);
        let mailbox = Mailbox::with_queue(mailbox::Queue::small(), capacity, self.overflow);
        let proc = Arc::new(Proc {
            pid: pid.clone(),
            mailbox,
        });
        let weak: Weak<dyn Interrupt> = Arc::downgrade(&proc) as Weak<Proc<M>>;
        pid.state().phase = Phase::Adopted(weak);
        let adopted = Adopted {
            me: Addr(proc),
            _one_reader: PhantomData,
        };
        // Failing here drops `adopted`: an exit like any other, so nothing is left behind.
        if let Some(name) = self.name {
            registry::register(name, &adopted.me)?;
        }
        if let Some(peer) = &self.link {
            signal::link(&pid, peer);
        }
        Ok(adopted)
    }

    /// Spawn a process running `body` in a new coroutine.
    pub fn try_spawn<M, F>(self, body: F) -> Result<Addr<M>, SpawnError>
    where
        M: Send + 'static,
        F: FnOnce(Ctx<M>) + Send + 'static,
    {
        let pid = Pid::new();
        let mailbox = Mailbox::new(self.capacity.unwrap_or(DEFAULT_CAPACITY), self.overflow);
        let addr = Addr(Arc::new(Proc {
            pid: pid.clone(),
            mailbox,
        }));
        if let Some(name) = self.name {
            registry::register(name, &addr)?;
        }
        if let Some(peer) = &self.link {
            signal::link(&pid, peer);
        }
        let ctx = Ctx {
            me: addr.clone(),
            _one_reader: PhantomData,
        };
        let mut builder = coroutine::Builder::new();
        if let Some(words) = self.stack_words {
            builder = builder.stack_size(words);
        }
        if let Some(id) = self.worker {
            builder = builder.id(id);
        }
        // SAFETY: may marks spawn unsafe for two hazards: thread-locals seen from a coroutine
        // belong to the worker thread (process bodies must use coroutine-local state, which
        // this crate documents), and stack overflow is fatal (the stack size is the caller's
        // choice, documented on `Spawn::stack_size`).
        #[allow(unsafe_code)]
        let spawned = unsafe { builder.spawn(move || run(ctx, body)) };
        match spawned {
            Ok(_detached) => Ok(addr),
            Err(e) => {
                let (reason, obituary) = pid.die(Exit::Error(format!("spawn failed: {e}")));
                addr.0.mailbox.close();
                obituary.deliver(&pid, &reason);
                Err(SpawnError::Coroutine(e))
            }
        }
    }
}

/// Spawn a process with default options (mailbox of [`DEFAULT_CAPACITY`] messages, blocking
/// overflow, may's default stack). `body` receives the process's [`Ctx`].
///
/// ```no_run
/// let echo = corral_actors::spawn(|mut ctx: corral_actors::Ctx<String>| loop {
///     let line = ctx.receive();
///     if line.is_empty() { break; }
/// });
/// echo.send("hi".to_string()).expect("alive");
/// ```
pub fn spawn<M, F>(body: F) -> Addr<M>
where
    M: Send + 'static,
    F: FnOnce(Ctx<M>) + Send + 'static,
{
    Spawn::new().spawn(body)
}

/// The coroutine body of every process: run, catch, record, notify.
fn run<M, F>(ctx: Ctx<M>, body: F)
where
    M: Send + 'static,
    F: FnOnce(Ctx<M>) + Send + 'static,
{
    let addr = ctx.me.clone();
    let pid = addr.pid().clone();
    let natural = if pid.started(coroutine::current()) {
        match catch_unwind(AssertUnwindSafe(move || body(ctx))) {
            Ok(()) => Exit::Normal,
            Err(payload) => match payload.downcast::<Stop>() {
                Ok(stop) => stop.0,
                Err(payload) => Exit::Panic(panic_message(payload.as_ref())),
            },
        }
    } else {
        drop(ctx);
        Exit::Killed // replaced by the pending reason, which is always set on this path
    };
    let (reason, obituary) = pid.die(natural);
    if let Exit::Panic(msg) = &reason {
        log::debug!("process {pid} panicked: {msg}");
    }
    addr.0.mailbox.close();
    drop(addr);
    obituary.deliver(&pid, &reason);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if payload.downcast_ref::<generator::Error>().is_some() {
        "cancelled".to_string()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Install a panic hook that stays quiet about may's cancellation unwinds, which this crate
/// uses for [`kill`](crate::kill) and for exit signals (they are exits, not bugs), and passes
/// every other panic to the previous hook. Call once at startup, e.g. in `main` or a test init.
pub fn quiet_kill_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<generator::Error>().is_none() {
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_reads_str_and_string_payloads() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42u8), "non-string panic payload");
    }

    #[test]
    fn odd_stack_sizes_are_rounded_up() {
        assert_eq!(Spawn::new().stack_size(0x101).stack_words, Some(0x102));
        assert_eq!(Spawn::new().stack_size(0x100).stack_words, Some(0x100));
    }
}
