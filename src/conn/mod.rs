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
//!   hyper's `Conn<I>`, so unit tests (`tests.rs`) and the micro-benchmarks drive it over
//!   in-memory byte streams (`memory.rs`, compiled for tests and `bench-internals` only).
//! - `live.rs`: the limits and timeouts each request reads, which a reload may replace.
//! - `upgrade.rs`: a connection switched to WebSocket (the `101`, the session that then owns
//!   the socket, and its hibernation between events).
//! - `spawn.rs`: a coroutine per connection, started for placement (`placement::Start`) and
//!   for the wards; `hibernate/`: the wards that hold sockets without a coroutine.
//!
//! The protocol itself (parsing, chunked decoding, encoding) is `http`'s: this layer owns the
//! socket and the per-connection state, and calls those pure functions.

mod body;
mod dispatch;
pub(crate) mod hibernate;
mod idle;
pub(crate) mod live;
#[cfg(any(test, feature = "bench-internals"))]
pub(crate) mod memory;
pub(crate) mod process;
mod read_buf;
mod refuse;
pub(crate) mod reject;
pub(crate) mod resume;
mod serve;
mod socket;
mod spare;
pub(crate) mod spawn;
pub(crate) mod transport;
mod upgrade;
pub(crate) mod wait;
mod write;

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corral_actors::SupRef;

use crate::config::Config;
use crate::placement::{self, Placement};
use crate::router::Router;
use crate::stats::Stats;
use hibernate::Wards;

/// What every connection of one server shares. The server builds it; handlers never see it
/// (a `Request` carries it only as an opaque `Any`, for the server's own `/metrics`).
pub(crate) struct Shared {
    /// Limits and timeouts, replaced by a reload (`live.rs`).
    pub live: live::Live,
    /// Coroutine stack per connection, bytes (`server.stack_size_bytes`: fixed at start).
    pub stack_size_bytes: usize,
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
    /// The state of a server with `workers` schedulers serving `router` under `config`:
    /// counters, placement, live limits and one ward per scheduler (not started yet).
    /// `max_connections`: the open connections past which the acceptor refuses (the
    /// server derives it from `limits.max_connections` and the descriptor limit).
    pub fn new(
        config: &Config,
        router: Router,
        workers: usize,
        max_connections: usize,
    ) -> io::Result<Shared> {
        let stats = Arc::new(Stats::new(workers));
        let settings = placement::Settings {
            policy: config.placement.policy,
            workers,
            max_active_requests: config.placement.max_active_requests,
            default_cost: Duration::from_micros(config.placement.default_cost_us),
            max_connections,
            at_wake: config.placement.at_wake,
        };
        let routes = router.routes().len();
        Ok(Shared {
            live: live::Live::new(live::Settings {
                limits: config.limits,
                timeouts: config.timeouts,
            }),
            stack_size_bytes: config.server.stack_size_bytes,
            router: Arc::new(router),
            placement: Arc::new(Placement::new(settings, routes, stats.clone())),
            stats,
            wards: Wards::new(workers)?,
            workers,
            supervisor: OnceLock::new(),
            rejections: reject::Rejections::default(),
        })
    }

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
