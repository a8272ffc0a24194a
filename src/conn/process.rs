//! The connection as a process (docs/architecture.md, "Connections are processes"): a pid
//! and a mailbox of the `actors` crate, made the first time a handler asks
//! ([`Request::process`]), kept for as long as the connection lives — across requests,
//! and through hibernation, where it travels with the socket — and ended with it, a
//! normal exit its monitors see as `Down`.
//!
//! It is an adopted process (`corral_actors::Adopted`): the connection's coroutine comes and
//! goes, so a kill or exit signal interrupts the mailbox instead of cancelling a coroutine.
//! A handler blocked in [`Process::receive`] unwinds from there; the connection answers
//! `503` and closes (`dispatch.rs`). One that was busy elsewhere is answered `503` when it
//! returns; a hibernated wait, by its ward; an idle connection is closed.

use std::any::{Any, type_name};
use std::cell::OnceCell;
use std::time::Duration;

use corral_actors::{Addr, Adopted, Down, Exit, MonitorRef, Pid, RegistryError, Spawn};

use crate::http::request::Request;

/// What the connection keeps of its process, whatever its message type.
pub(crate) trait Held: Send {
    fn exit_signal(&self) -> Option<Exit>;
    fn has_message(&self) -> bool;
    /// Runs `f` at the next message or exit signal (at once if one is there).
    fn on_next(&self, f: Box<dyn FnOnce() + Send>);
    fn as_any(&self) -> &dyn Any;
    fn type_name(&self) -> &'static str;
}

impl<M: Send + 'static> Held for Adopted<M> {
    fn exit_signal(&self) -> Option<Exit> {
        Adopted::exit_signal(self)
    }

    fn has_message(&self) -> bool {
        Adopted::has_message(self)
    }

    fn on_next(&self, f: Box<dyn FnOnce() + Send>) {
        Adopted::on_next(self, f);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn type_name(&self) -> &'static str {
        type_name::<M>()
    }
}

/// A connection's process, once made. Empty (and allocation-free) until a handler asks.
#[derive(Default)]
pub(crate) struct ProcessSlot(OnceCell<Box<dyn Held>>);

impl ProcessSlot {
    pub(crate) fn new(held: Option<Box<dyn Held>>) -> ProcessSlot {
        let cell = OnceCell::new();
        if let Some(held) = held {
            let _ = cell.set(held);
        }
        ProcessSlot(cell)
    }

    pub(crate) fn get(&self) -> Option<&dyn Held> {
        self.0.get().map(|held| &**held)
    }

    pub(crate) fn take(&mut self) -> Option<Box<dyn Held>> {
        self.0.take()
    }

    /// The exit signal that ended the process, if it has one: a `None` check when there is
    /// no process (every request passes here).
    pub(crate) fn exit_signal(&self) -> Option<Exit> {
        self.get().and_then(Held::exit_signal)
    }

    /// The process as an `Adopted<M>`, made now if there is none. `Err`: it exists with
    /// another message type (the type it was made with, for the error).
    pub(crate) fn get_or_adopt<M: Send + 'static>(&self) -> Result<&Adopted<M>, &'static str> {
        let held = self.0.get_or_init(|| match Spawn::new().adopt::<M>() {
            Ok(adopted) => Box::new(adopted),
            // No name is given, so adopting cannot fail.
            Err(err) => unreachable!("adopt without a name failed: {err}"),
        });
        held.as_any()
            .downcast_ref::<Adopted<M>>()
            .ok_or_else(|| held.type_name())
    }
}

/// The unwind payload of a receive that an exit signal ended: `dispatch` sees the exit
/// signal and answers 503 (the reason is the process's, logged there).
struct ConnectionExit;

/// Leaves the handler: its connection's process was ended under it.
fn ended() -> ! {
    // `resume_unwind` skips the panic hook: this is an exit, not a bug.
    std::panic::resume_unwind(Box::new(ConnectionExit))
}

/// A handler's view of its connection's process ([`Request::process`]): its address and
/// pid, the registry, links and monitors, and `receive` in plain blocking code. Borrowed
/// from the request: only the handler receives, and only while it runs.
pub struct Process<'a, M: Send + 'static> {
    pub(crate) me: &'a Adopted<M>,
}

impl<'a, M: Send + 'static> Process<'a, M> {
    /// The address others send to.
    pub fn addr(&self) -> Addr<M> {
        self.me.addr()
    }

    /// The process's identity, for links, monitors and `kill`.
    pub fn pid(&self) -> &'a Pid {
        self.me.pid()
    }

    /// Registers the connection under `name` (freed when the connection ends, or with
    /// `corral_actors::unregister`). `Err`: the name is taken.
    pub fn register(&self, name: impl Into<String>) -> Result<(), RegistryError> {
        corral_actors::register(name, &self.me.addr())
    }

    /// Links the connection with `other`: if `other` exits abnormally, the connection ends
    /// with 503 (or a close, once its answer has begun); the connection's own end is a
    /// normal exit, which does not reach `other`.
    pub fn link(&self, other: &Pid) {
        self.me.link(other);
    }

    /// Monitors `target`: when it exits, `into(Down)` arrives in this mailbox.
    pub fn monitor(
        &self,
        target: &Pid,
        into: impl FnOnce(Down) -> M + Send + 'static,
    ) -> MonitorRef {
        self.me.monitor(target, into)
    }

    /// Waits for the next message, blocking the connection's coroutine (its scheduler
    /// serves others). If a kill or a linked crash ends the connection meanwhile, this does
    /// not return: the request is answered 503 and the connection closes.
    pub fn receive(&self) -> M {
        match self.me.receive() {
            Ok(msg) => msg,
            Err(_) => ended(),
        }
    }

    /// Waits for the next message up to `timeout`; `None` if none came. Ends as
    /// [`receive`](Process::receive) does on an exit signal.
    pub fn receive_timeout(&self, timeout: Duration) -> Option<M> {
        match self.me.receive_timeout(timeout) {
            Ok(msg) => msg,
            Err(_) => ended(),
        }
    }

    /// Takes a message if one is waiting, without blocking (`None` also once ended).
    pub fn try_receive(&self) -> Option<M> {
        self.me.try_receive().ok().flatten()
    }
}

impl<M: Send + 'static> std::fmt::Debug for Process<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Process({})", self.me.pid())
    }
}

impl<'a> Request<'a> {
    /// The connection's process, with messages of type `M`: made on first use (a request
    /// that never asks costs nothing), kept for the connection's life, across its requests
    /// and while it hibernates, and ended with it (a normal exit; monitors see `Down`).
    ///
    /// ```no_run
    /// use corral::{Request, Response, Status};
    ///
    /// /// Waits for one message sent to the name `job`, in plain blocking code.
    /// fn job(req: &Request) -> Response {
    ///     let me = req.process::<String>();
    ///     if me.register("job").is_err() {
    ///         return Response::error(Status::CONFLICT);
    ///     }
    ///     match me.receive_timeout(std::time::Duration::from_secs(30)) {
    ///         Some(text) => Response::text(text),
    ///         None => Response::new(Status::NO_CONTENT),
    ///     }
    /// }
    /// ```
    ///
    /// # Panics
    /// If this connection's process was made with another message type (a programming
    /// error: routes that share connections must agree on one type, an enum if need be; the
    /// request gets a 500, and the log names both types). Outside a Corral server (a request
    /// built by hand) there is no connection: that panics too.
    pub fn process<M: Send + 'static>(&self) -> Process<'a, M> {
        match self.try_process() {
            Ok(process) => process,
            Err(made_with) => panic!(
                "this connection's process takes {made_with} messages, not {}",
                type_name::<M>()
            ),
        }
    }

    /// [`process`](Request::process) without the panic: `Err` names the message type the
    /// connection's process was made with.
    pub fn try_process<M: Send + 'static>(&self) -> Result<Process<'a, M>, &'static str> {
        let slot = self
            .connection_process()
            .and_then(|slot| slot.downcast_ref::<ProcessSlot>())
            .ok_or("(no connection)")?;
        slot.get_or_adopt::<M>().map(|me| Process { me })
    }
}
