//! The connection process: one coroutine per connection, in plain blocking style (Go's
//! `(*conn).serve`), and hibernation beneath it.
//!
//! - `serve.rs`: the loop — read a head, read the body, dispatch, queue the answer, flush
//!   once per pipelined batch, keep alive or close, hibernate when idle or waiting.
//! - `idle.rs`: between requests, and the hand-over of the socket to a ward.
//! - `read_buf.rs` (bytes read, not yet consumed), `body.rs` (Content-Length and chunked
//!   bodies, `100-continue`), `dispatch.rs` (route, call the handler under `catch_unwind`),
//!   `write.rs` (encode, stream, reject with a lingering close), `refuse.rs` (503 and
//!   `Retry-After` for what the server has no room for).
//! - `transport.rs`: what the loop needs of a socket. The loop is generic over it, like
//!   hyper's `Conn<I>`, so unit tests (`tests.rs`) drive it over in-memory byte streams.
//! - `spawn.rs`: a coroutine per connection, started for placement (`placement::Start`) and
//!   for the wards; `hibernate/`: the wards that hold sockets without a coroutine.
//!
//! The protocol itself (parsing, chunked decoding, encoding) is `http`'s: this layer owns the
//! socket and the per-connection state, and calls those pure functions.

mod body;
mod dispatch;
pub(crate) mod hibernate;
mod idle;
mod read_buf;
mod refuse;
pub(crate) mod reject;
pub(crate) mod resume;
mod serve;
pub(crate) mod spawn;
pub(crate) mod transport;
mod write;

use std::sync::{Arc, OnceLock};

use corral_actors::SupRef;

use crate::config::Config;
use crate::placement::Placement;
use crate::router::Router;
use crate::stats::Stats;
use hibernate::Wards;

/// What every connection of one server shares. The server builds it; handlers never see it
/// (a `Request` carries it only as an opaque `Any`, for the server's own `/metrics`).
pub(crate) struct Shared {
    pub config: Config,
    pub router: Arc<Router>,
    pub stats: Arc<Stats>,
    pub placement: Arc<Placement>,
    /// Where hibernated connections wait, one ward per scheduler.
    pub wards: Wards,
    pub workers: usize,
    /// The supervision tree, set once started (for restart counts in /metrics).
    pub supervisor: OnceLock<SupRef>,
    /// Requests refused before a handler ran, by reason.
    pub rejections: reject::Rejections,
}

impl Shared {
    pub fn is_draining(&self) -> bool {
        self.stats.is_draining()
    }

    /// Restarts performed by the server's supervision tree.
    pub fn supervisor_restarts(&self) -> u64 {
        self.supervisor.get().map_or(0, SupRef::restarts)
    }
}

#[cfg(test)]
mod tests;
