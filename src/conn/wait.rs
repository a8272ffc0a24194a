//! Hibernated waits, on mailboxes (Erlang's `hibernate/3`): the connection gives up its
//! coroutine, the ward keeps the socket, and a mailbox's next message rings the ward.
//!
//! - [`Process::hibernate`]: wait for the connection's own process's next message.
//! - [`Response::hibernate`]: wait for a [`Waker`], which is the address of a mailbox made
//!   for this one wait (so that any code can answer it without knowing the connection's
//!   message type); dropping the waker unfired is a message too ([`Wake::Gone`]).
//!
//! Either way the wait is armed with the mailbox's `on_next` callback, which rings the
//! ward's door with the wait's id ([`Seat`]); the ward then runs the resume function and
//! writes its answer (`hibernate/answer.rs`). A kill or exit signal to the connection's
//! process rings too, and the ward answers 503 instead.

use std::sync::Arc;
use std::time::Duration;

use corral_actors::{Addr, Adopted, Spawn};

use super::process::{Held, Process, ProcessSlot};
use crate::http::response::Response;
use crate::http::status::Status;
use crate::http::wait::{Deferred, Wake};

/// Tells whoever holds a wait's socket that the wait `id` may be ready (a ward: it looks
/// on its next turn). Called from any thread; must not block.
pub(crate) trait Doorbell: Send + Sync {
    fn ready(&self, id: u64);
}

/// A wait's place: the bell to ring when it is ready, and its id there.
pub(crate) struct Seat {
    bell: Arc<dyn Doorbell>,
    id: u64,
}

impl Seat {
    pub(crate) fn new(bell: Arc<dyn Doorbell>, id: u64) -> Seat {
        Seat { bell, id }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// A callback that rings this seat's bell, for a mailbox's `on_next`.
    pub(crate) fn ringer(&self) -> Box<dyn FnOnce() + Send> {
        let (bell, id) = (self.bell.clone(), self.id);
        Box::new(move || bell.ready(id))
    }
}

/// Why the ward finishes a hibernated wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its mailbox has a message.
    Woken,
    TimedOut,
    /// The client hung up, or the connection's process was ended: no response from the
    /// wait, just clean up.
    PeerGone,
}

/// A hibernated wait, type-erased for the ward. `process` is the connection's.
pub(crate) trait Pending: Send {
    fn is_ready(&self, process: Option<&dyn Held>) -> bool;
    /// Runs the resume function (or the clean-up). `None`: nothing to send.
    fn finish(self: Box<Self>, outcome: Outcome, process: Option<&dyn Held>) -> Option<Response>;
}

/// Starts a wait in the connection's coroutine, given its process slot and its seat.
type StartFn = Box<dyn FnOnce(&ProcessSlot, &Seat) -> Result<Box<dyn Pending>, Response> + Send>;

/// What a [`Deferred`] carries, opaque to `http`.
pub(crate) struct Start(pub(crate) StartFn);

fn deferred(timeout: Duration, start: StartFn) -> Response {
    let mut response = Response::new(Status::OK);
    response.deferred = Some(Box::new(Deferred {
        timeout,
        start: Box::new(Start(start)),
    }));
    response
}

// ---------------------------------------------------------------------------------------------
// On the connection's own process
// ---------------------------------------------------------------------------------------------

impl<M: Send + 'static> Process<'_, M> {
    /// Answers later, without holding a coroutine meanwhile: once the handler returns, the
    /// connection hibernates until this process's next message, `timeout`, or the client's
    /// hang-up (Erlang's `hibernate/3`). The mailbox stays, and so do its names, links and
    /// monitors. `resume` runs on the scheduler's ward with [`Wake::Message`] or
    /// [`Wake::TimedOut`] and must not block: it only turns the outcome into a response. A
    /// hang-up ends the connection (a normal exit); a kill or linked crash answers 503.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use corral::{Request, Response, Status, Wake};
    ///
    /// fn inbox(req: &Request) -> Response {
    ///     let me = req.process::<String>();
    ///     if me.register("inbox").is_err() {
    ///         return Response::error(Status::CONFLICT);
    ///     }
    ///     me.hibernate(Duration::from_secs(30), |wake| match wake {
    ///         Wake::Message(text) => Response::text(text),
    ///         _ => Response::new(Status::NO_CONTENT),
    ///     })
    /// }
    /// ```
    pub fn hibernate<R>(self, timeout: Duration, resume: R) -> Response
    where
        R: FnOnce(Wake<M>) -> Response + Send + 'static,
    {
        deferred(
            timeout,
            Box::new(move |_: &ProcessSlot, _: &Seat| {
                let wait: Box<dyn Pending> = Box::new(MailboxWait::<M, R> {
                    resume,
                    _message: std::marker::PhantomData,
                });
                Ok(wait)
            }),
        )
    }
}

struct MailboxWait<M, R> {
    resume: R,
    _message: std::marker::PhantomData<fn() -> M>,
}

impl<M, R> Pending for MailboxWait<M, R>
where
    M: Send + 'static,
    R: FnOnce(Wake<M>) -> Response + Send,
{
    fn is_ready(&self, process: Option<&dyn Held>) -> bool {
        process.is_some_and(Held::has_message)
    }

    fn finish(self: Box<Self>, outcome: Outcome, process: Option<&dyn Held>) -> Option<Response> {
        let me = process.and_then(|p| p.as_any().downcast_ref::<Adopted<M>>());
        // A message that raced the timeout still wins.
        let message = me.and_then(|me| me.try_receive().ok().flatten());
        match (message, outcome) {
            (_, Outcome::PeerGone) => None,
            (Some(msg), _) => Some((self.resume)(Wake::Message(msg))),
            (None, Outcome::TimedOut) => Some((self.resume)(Wake::TimedOut)),
            // Rung with no message: only a process gone (kill, a lost type) comes here.
            (None, Outcome::Woken) => Some((self.resume)(Wake::Gone)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// On a waker: a mailbox of its own
// ---------------------------------------------------------------------------------------------

/// What a waker's mailbox receives.
enum Fired<T> {
    Value(T),
    Gone,
}

/// Fires a hibernated wait ([`Response::hibernate`]): the address of a mailbox made for that
/// one wait. Single use: `wake` consumes it; dropping it unfired wakes the wait with
/// [`Wake::Gone`], so a crashed owner never leaves a client hanging.
pub struct Waker<T: Send + 'static> {
    addr: Addr<Fired<T>>,
    fired: bool,
}

impl<T: Send + 'static> Waker<T> {
    /// Ends the wait with [`Wake::Message`]`(value)`; from any thread, never blocking. Too
    /// late (the wait timed out or the client left), the value is dropped.
    pub fn wake(mut self, value: T) {
        self.fired = true;
        let _ = self.addr.try_send(Fired::Value(value));
    }
}

impl<T: Send + 'static> Drop for Waker<T> {
    fn drop(&mut self) {
        if !self.fired {
            let _ = self.addr.try_send(Fired::Gone);
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for Waker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Waker({})", self.addr.pid())
    }
}

impl Response {
    /// Answers later, without holding a coroutine meanwhile.
    ///
    /// Once the handler returns, the connection calls `subscribe` with a [`Waker`] (in the
    /// connection's coroutine: it may block, e.g. to call an actor), then hibernates.
    /// `subscribe` returns the action that cancels the subscription, run if the wait times
    /// out or the client hangs up, or an immediate response if it could not subscribe.
    /// `resume` runs on the scheduler's ward when the wait ends and must not block: it
    /// only turns the outcome into a response.
    ///
    /// The waker is the address of a small mailbox made for this wait. To wait for the
    /// connection's own process instead, see [`Process::hibernate`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use corral::{Response, Status, Wake, Waker};
    ///
    /// fn wait_for_job(jobs: std::sync::mpsc::Sender<Waker<String>>) -> Response {
    ///     Response::hibernate(
    ///         Duration::from_secs(30),
    ///         move |waker| {
    ///             jobs.send(waker).map_err(|_| Response::error(Status::SERVICE_UNAVAILABLE))?;
    ///             Ok(|| {})
    ///         },
    ///         |wake| match wake {
    ///             Wake::Message(text) => Response::text(text),
    ///             Wake::TimedOut => Response::new(Status::NO_CONTENT),
    ///             Wake::Gone => Response::error(Status::SERVICE_UNAVAILABLE),
    ///         },
    ///     )
    /// }
    /// ```
    pub fn hibernate<T, C, S, R>(timeout: Duration, subscribe: S, resume: R) -> Response
    where
        T: Send + 'static,
        C: FnOnce() + Send + 'static,
        S: FnOnce(Waker<T>) -> Result<C, Response> + Send + 'static,
        R: FnOnce(Wake<T>) -> Response + Send + 'static,
    {
        let start = move |_: &ProcessSlot, seat: &Seat| -> Result<Box<dyn Pending>, Response> {
            // Room for the value and the drop's `Gone`: a waker's send never fails for room.
            let own = match Spawn::new().capacity(2).adopt::<Fired<T>>() {
                Ok(own) => own,
                Err(err) => {
                    log::error!("cannot make a waker's mailbox: {err}");
                    return Err(Response::error(Status::INTERNAL_SERVER_ERROR));
                }
            };
            own.on_next(seat.ringer());
            let waker = Waker {
                addr: own.addr(),
                fired: false,
            };
            let cancel = subscribe(waker)?;
            Ok(Box::new(WakerWait {
                own,
                cancel,
                resume,
            }))
        };
        deferred(timeout, Box::new(start))
    }
}

struct WakerWait<T: Send + 'static, C, R> {
    own: Adopted<Fired<T>>,
    cancel: C,
    resume: R,
}

impl<T, C, R> Pending for WakerWait<T, C, R>
where
    T: Send + 'static,
    C: FnOnce() + Send,
    R: FnOnce(Wake<T>) -> Response + Send,
{
    fn is_ready(&self, _: Option<&dyn Held>) -> bool {
        self.own.has_message()
    }

    fn finish(self: Box<Self>, outcome: Outcome, _: Option<&dyn Held>) -> Option<Response> {
        // A message that raced a timeout still wins; one that raced a hang-up is dropped.
        let fired = self.own.try_receive().ok().flatten();
        match (fired, outcome) {
            (Some(_), Outcome::PeerGone) => None,
            (Some(Fired::Value(value)), _) => Some((self.resume)(Wake::Message(value))),
            (Some(Fired::Gone), _) => Some((self.resume)(Wake::Gone)),
            (None, Outcome::PeerGone) => {
                (self.cancel)();
                None
            }
            (None, _) => {
                (self.cancel)();
                Some((self.resume)(Wake::TimedOut))
            }
        }
    }
}
