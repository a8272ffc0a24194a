//! Hibernation: a connection with nothing to do gives up its coroutine, as an Erlang process
//! does with `erlang:hibernate/3`.
//!
//! A connection coroutine costs its touched stack (about 12 KiB) and buffers for as long as
//! it lives. Most of the time a long-poll or keep-alive connection does nothing, so Corral
//! lets it *hibernate*: the coroutine ends and the bare socket waits in its scheduler's
//! **ward** (`ward.rs`), one per scheduler, with a few hundred bytes of state.
//!
//! - **Idle keep-alive connections** hibernate by themselves after
//!   `timeouts.hibernate_after_ms` without a request. The next byte from the client wakes
//!   the ward, which starts a fresh coroutine for the connection on the same scheduler.
//! - **Waiting requests** hibernate when the handler returns [`Response::hibernate`]: it
//!   hands a [`Waker`] to whatever will produce the answer (a topic, a job), and gives the
//!   code that turns the outcome ([`Wake`]) into the response. Erlang's `hibernate(M, F, A)`
//!   likewise drops the stack and names the function to run when a message arrives. When
//!   the waker fires, the deadline passes or the client hangs up, the ward runs that code and
//!   writes the response itself with one non-blocking `send`: no coroutine is started unless
//!   the response does not fit the socket buffer or is a stream.
//!
//! A handler that prefers plain blocking code may still wait in its coroutine; hibernating
//! is how a server holds tens of thousands of waiters in a few MiB.

mod door;
mod ward;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::response::Response;
use crate::http::status::Status;

use door::Door;
pub(crate) use door::{Arrival, Parked, Wards};

/// How a hibernated wait ended, as its resume function sees it.
#[derive(Debug)]
pub enum Wake<T> {
    /// The waker fired with this value.
    Message(T),
    /// The wait's timeout passed first.
    TimedOut,
    /// The waker was dropped without firing: whatever held it is gone (a crashed process).
    Gone,
}

/// Fires a hibernated wait. Single use: `wake` consumes it; dropping it unfired wakes the
/// wait with [`Wake::Gone`], so a crashed owner never leaves a client hanging.
pub struct Waker<T: Send + 'static> {
    slot: Arc<Slot<T>>,
    seat: Seat,
    fired: bool,
}

impl<T: Send + 'static> Waker<T> {
    pub fn wake(mut self, value: T) {
        self.fill(Wake::Message(value));
    }

    fn fill(&mut self, outcome: Wake<T>) {
        self.fired = true;
        if let Ok(mut slot) = self.slot.outcome.lock()
            && slot.is_none()
        {
            *slot = Some(outcome);
        }
        self.seat.door.ready(self.seat.id);
    }
}

impl<T: Send + 'static> Drop for Waker<T> {
    fn drop(&mut self) {
        if !self.fired {
            self.fill(Wake::Gone);
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for Waker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Waker({})", self.seat.id)
    }
}

/// Where a waker's outcome waits for the ward to pick it up. The lock is only ever held for
/// a move in or out, never across a yield.
struct Slot<T> {
    outcome: Mutex<Option<Wake<T>>>,
}

impl<T> Slot<T> {
    fn take(&self) -> Option<Wake<T>> {
        self.outcome.lock().ok().and_then(|mut slot| slot.take())
    }

    fn is_filled(&self) -> bool {
        self.outcome.lock().is_ok_and(|slot| slot.is_some())
    }
}

/// A wait's place in one scheduler's ward.
pub(crate) struct Seat {
    door: Arc<Door>,
    id: u64,
}

impl Seat {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// Why the ward finishes a hibernated wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its waker fired (or was dropped).
    Woken,
    TimedOut,
    /// The client hung up: no response, just cancel.
    PeerGone,
}

/// A hibernated wait, type-erased for the ward.
pub(crate) trait Pending: Send {
    fn is_ready(&self) -> bool;
    /// Runs the resume function (or the cancel action). `None`: nothing to send.
    fn finish(self: Box<Self>, outcome: Outcome) -> Option<Response>;
}

struct Hibernating<T, C, R> {
    slot: Arc<Slot<T>>,
    cancel: C,
    resume: R,
}

impl<T, C, R> Pending for Hibernating<T, C, R>
where
    T: Send + 'static,
    C: FnOnce() + Send,
    R: FnOnce(Wake<T>) -> Response + Send,
{
    fn is_ready(&self) -> bool {
        self.slot.is_filled()
    }

    fn finish(self: Box<Self>, outcome: Outcome) -> Option<Response> {
        // A message that raced a timeout still wins; one that raced a hang-up is dropped.
        match (self.slot.take(), outcome) {
            (Some(_), Outcome::PeerGone) => None,
            (Some(wake), _) => Some((self.resume)(wake)),
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

/// Starts a hibernated wait: subscribes with a fresh waker seated in the ward.
type StartFn = Box<dyn FnOnce(Seat) -> Result<Box<dyn Pending>, Response> + Send>;

/// A response to be produced later, by a hibernated wait (see [`Response::hibernate`]).
pub struct Deferred {
    pub(crate) timeout: Duration,
    pub(crate) start: StartFn,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deferred(timeout {:?})", self.timeout)
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
    /// ```no_run
    /// use std::time::Duration;
    /// use corral::{Response, Status, hibernate::{Wake, Waker}};
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
        let start = move |seat: Seat| -> Result<Box<dyn Pending>, Response> {
            let slot = Arc::new(Slot {
                outcome: Mutex::new(None),
            });
            let waker = Waker {
                slot: slot.clone(),
                seat,
                fired: false,
            };
            let cancel = subscribe(waker)?;
            Ok(Box::new(Hibernating {
                slot,
                cancel,
                resume,
            }))
        };
        let mut response = Response::new(Status::OK);
        response.deferred = Some(Deferred {
            timeout,
            start: Box::new(start),
        });
        response
    }
}
