//! A response that comes later, as values with no socket or process in sight: how a
//! hibernated wait ended ([`Wake`]), and the opaque [`Deferred`] a response carries until
//! the connection starts the wait. The connection layer builds both (`conn::wait`:
//! `Response::hibernate`, `Process::hibernate`) and its wards finish them.
//!
//! Erlang's `hibernate(M, F, A)` likewise drops the process's stack and names the function
//! to run when a message arrives (docs/architecture.md, "Hibernation").

use std::any::Any;
use std::time::Duration;

/// How a hibernated wait ended, as its resume function sees it.
#[derive(Debug)]
pub enum Wake<T> {
    /// A message came: the waker's value, or the process's next message.
    Message(T),
    /// The wait's timeout passed first.
    TimedOut,
    /// The waker was dropped without firing: whatever held it is gone (a crashed process).
    Gone,
}

/// A response to be produced later, by a hibernated wait. What starts it is the
/// connection layer's (`conn::wait::Start`), opaque here so that `http` stays pure.
pub struct Deferred {
    pub(crate) timeout: Duration,
    pub(crate) start: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deferred(timeout {:?})", self.timeout)
    }
}
