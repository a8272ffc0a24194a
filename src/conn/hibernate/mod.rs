//! Hibernation: a connection with nothing to do gives up its coroutine, as an Erlang process
//! does with `erlang:hibernate/3`.
//!
//! A connection coroutine costs its touched stack (about 12 KiB) and buffers for as long as
//! it lives. Most of the time a long-poll or keep-alive connection does nothing, so Corral
//! lets it *hibernate*: the coroutine ends and the bare socket waits in its scheduler's
//! **ward** (`ward.rs`), one per scheduler, with a few hundred bytes of state. Other threads
//! reach a ward only through its door (`door.rs`).
//!
//! - **Idle keep-alive connections** hibernate by themselves after
//!   `timeouts.hibernate_after_ms` without a request. The next byte from the client wakes
//!   the ward, which starts a fresh coroutine for the connection on the same scheduler.
//! - **Waiting requests** hibernate when the handler returns `Process::hibernate` or
//!   `Response::hibernate` (`conn/wait.rs`): a wait on a mailbox, whose next message rings
//!   the ward. When it rings, the deadline passes or the client hangs up, the ward runs the resume function and
//!   writes the response itself with one non-blocking `send`: no coroutine is started unless
//!   the response does not fit the socket buffer or is a stream.
//!
//! A ward is a plain thread with its own `epoll_wait`, not a may coroutine: nesting its epoll
//! set in may's edge-triggered one lost wakeups (docs/architecture.md, "Hazards").

mod answer;
mod door;
mod ending;
mod ward;

pub(crate) use door::{Arrival, Parked, Wards};
