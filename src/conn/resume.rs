//! How a connection's coroutine begins and ends: fresh from the acceptor, or taking back a
//! connection a ward held (with bytes already read, or an answer it could not finish).

use super::process::Held;
use crate::http::response::StreamFn;
use crate::http::websocket::Session;
use crate::stats::Stamp;

/// How a connection coroutine starts: fresh from the acceptor, or taking back a hibernated
/// connection from its ward.
#[derive(Default)]
pub(crate) struct Resume {
    /// Requests already served on the connection (0: a fresh connection).
    pub(super) served: u64,
    /// Bytes the client sent that are not consumed yet (pipelined requests).
    pub(super) leftover: Vec<u8>,
    /// The rest of an answer the ward could not finish writing.
    pub(super) first: Option<First>,
    /// When the connection was done with its own work (`Conn::free_since`): set when the
    /// ward hands back pipelined input, which waited for the answer before it.
    pub(super) free_since: Option<Stamp>,
    /// A hibernated WebSocket waking up (input or a message): its session goes on.
    pub(super) websocket: Option<Box<dyn Session>>,
    /// The connection's process, if a handler made one: it lives as long as the connection.
    pub(super) process: Option<Box<dyn Held>>,
    /// Placed again as it woke (`placement.at_wake`): counted as a fresh connection on its
    /// scheduler until its request is parsed, as an accepted one is (`Stats::connection_woken`).
    pub(super) placed: bool,
}

impl Resume {
    pub(crate) fn fresh() -> Resume {
        Resume::default()
    }

    /// An idle connection whose client sent something.
    pub(crate) fn idle(served: u64) -> Resume {
        Resume {
            served: served.max(1),
            ..Resume::default()
        }
    }

    /// A waited-on request was answered; more requests are already buffered.
    pub(crate) fn pipelined(served: u64, leftover: Vec<u8>) -> Resume {
        Resume {
            leftover,
            free_since: Some(Stamp::now()),
            ..Resume::idle(served)
        }
    }

    /// A hibernated WebSocket with something to do.
    pub(crate) fn websocket(served: u64, session: Box<dyn Session>) -> Resume {
        Resume {
            websocket: Some(session),
            ..Resume::idle(served)
        }
    }

    /// A waited-on request's answer, which the ward could not send at once, goes first.
    pub(crate) fn after_wait(served: u64, leftover: Vec<u8>, first: First) -> Resume {
        Resume {
            first: Some(first),
            ..Resume::pipelined(served, leftover)
        }
    }

    /// With the connection's process, if it has one.
    pub(crate) fn with_process(self, process: Option<Box<dyn Held>>) -> Resume {
        Resume { process, ..self }
    }

    /// Counted as fresh work where placement put it at its wake (`placement/wake.rs`).
    pub(crate) fn placed(self) -> Resume {
        Resume {
            placed: true,
            ..self
        }
    }

    /// Whether placement counted it as fresh work at its wake.
    pub(crate) fn is_placed(&self) -> bool {
        self.placed
    }
}

/// An answer the ward started and a coroutine finishes.
pub(crate) enum First {
    /// The unsent rest of an encoded response.
    Bytes { bytes: Vec<u8>, keep_alive: bool },
    /// An encoded head, then a streamed body.
    Stream {
        head: Vec<u8>,
        stream: StreamFn,
        chunked: bool,
        keep_alive: bool,
    },
}

/// How a connection's coroutine ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Closed,
    /// The socket lives on in its scheduler's ward.
    Hibernated,
}
