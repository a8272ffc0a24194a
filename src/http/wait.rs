//! A response that comes later: the values behind [`Response::hibernate`], with no socket in
//! sight. The connection layer (`conn::hibernate`) parks the socket in its scheduler's ward
//! and rings the ward through [`Doorbell`] when a [`Waker`] fires; here is only what a wait
//! *is*: its outcome slot, its waker, and the type-erased [`Pending`] the ward finishes.
//!
//! Erlang's `hibernate(M, F, A)` likewise drops the process's stack and names the function
//! to run when a message arrives (docs/architecture.md, "Hibernation").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::response::Response;
use super::status::Status;

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
    /// Ends the wait with [`Wake::Message`]`(value)`; from any thread, never blocking. Too
    /// late (the wait timed out or the client left), the value is dropped.
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
        self.seat.bell.ready(self.seat.id);
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

/// Tells whoever holds a wait's socket that the wait `id` has its outcome (a ward: it
/// answers on its next turn). Called from any thread; must not block.
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
