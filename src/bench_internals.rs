//! Internals for Corral's own micro-benchmarks (`benches/micro.rs`) and fuzz targets
//! (`fuzz/`), nothing else.
//!
//! Why this module exists: the micro-benchmarks time the pieces of one request without the
//! kernel in the picture (parsing a head, decoding a chunked body, encoding a response, the
//! connection loop over in-memory bytes, the cost-table update, the placement decision),
//! and the fuzz targets feed the parser, the chunked decoder and the loop arbitrary bytes;
//! those pieces are private modules. A benchmark or a fuzz target is a separate crate, so it
//! can only reach what the library exports; rather than widen the curated `pub use` list of
//! `lib.rs`, this module is compiled only under the non-default feature `bench-internals`
//! (which the `micro` bench target and the fuzz crate require), is `#[doc(hidden)]`, and
//! exports exactly what they need: a few pure functions as they are, and small wrappers
//! around state that is crate-private. Nothing here is API: it changes whenever the
//! internals do.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Policy};
use crate::conn::Shared;
use crate::conn::memory::{Capture, Memory, Tally, serve_memory, shared_for};
use crate::conn::reject::Reason;
use crate::conn::resume::Ending;
use crate::http::chunked::ChunkedDecoder;
use crate::http::parse::{Head, Version, parse_head, reference};
use crate::http::reply::{ReplyShape, encode_reply};
use crate::http::response::Response;
use crate::placement::cost::{CostTable, Stopwatch};
use crate::placement::policy::{self, LoadSnapshot};
use crate::placement::{Placement, Settings};
use crate::router::{RouteId, Router};
use crate::stats::{Stamp, Stats};

pub use crate::http::encode::EncodeError;
pub use crate::http::parse::HeadLimits;

/// `parse_head` with the embedded default config's limits, into one reused `Head`, as a
/// connection parses every request of its life.
pub struct HeadParser {
    head: Head,
    limits: HeadLimits,
}

impl Default for HeadParser {
    fn default() -> Self {
        let limits = Config::embedded().limits;
        HeadParser {
            head: Head::default(),
            limits: HeadLimits {
                max_head_bytes: limits.max_head_bytes,
                max_uri_bytes: limits.max_uri_bytes,
                max_headers: limits.max_headers,
                max_body_bytes: limits.max_body_bytes,
            },
        }
    }
}

impl HeadParser {
    /// Parses the head at the start of `buf`: its length if complete and valid.
    pub fn parse(&mut self, buf: &[u8]) -> Option<usize> {
        match parse_head(buf, &self.limits, &mut self.head) {
            Ok(true) => Some(self.head.len),
            Ok(false) | Err(_) => None,
        }
    }

    /// What the parser makes of `buf`, as the connection loop acts on it.
    pub fn outcome(&mut self, buf: &[u8]) -> HeadOutcome {
        match parse_head(buf, &self.limits, &mut self.head) {
            Ok(true) => HeadOutcome::Complete(self.head.len),
            Ok(false) => HeadOutcome::Partial,
            Err(err) => HeadOutcome::Rejected(Reason::from(err).status().code()),
        }
    }

    /// The largest head the limits allow, bytes.
    pub fn max_head_bytes(&self) -> usize {
        self.limits.max_head_bytes
    }

    /// The limits it parses with (the embedded default config's).
    pub fn limits(&self) -> HeadLimits {
        self.limits
    }

    /// Whether `parse_head` gives `buf` the answer the parser it replaced gives (the same
    /// head, both incomplete, or errors of the same kind) under `limits`; `Err` describes
    /// the difference. The head parsed into is this parser's, reused across calls.
    pub fn agrees_with_reference(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<(), String> {
        reference::compare(buf, limits, &mut self.head)
    }
}

/// What `parse_head` made of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadOutcome {
    /// A valid head of this many bytes starts the buffer.
    Complete(usize),
    /// No verdict yet: the loop reads more.
    Partial,
    /// Refused with this status (then the connection closes).
    Rejected(u16),
}

/// One chunked body decoded incrementally, as the loop feeds its decoder whatever arrived
/// ([`ChunkedBodies::start`]).
pub struct ChunkedBody {
    decoder: ChunkedDecoder,
}

impl ChunkedBody {
    /// Feeds `input`, appending data to `out`: (bytes taken, body complete), or the error's
    /// text (the decoder then stays failed).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), String> {
        self.decoder
            .decode(input, out)
            .map_err(|err| err.to_string())
    }
}

/// Chunked request bodies under the embedded default config's limits.
pub struct ChunkedBodies {
    max_line_bytes: usize,
    max_body_bytes: u64,
}

impl Default for ChunkedBodies {
    fn default() -> Self {
        let limits = Config::embedded().limits;
        ChunkedBodies {
            max_line_bytes: limits.max_chunk_line_bytes,
            max_body_bytes: limits.max_body_bytes,
        }
    }
}

impl ChunkedBodies {
    /// A decoder for one body, to be fed piece by piece.
    pub fn start(&self) -> ChunkedBody {
        ChunkedBody {
            decoder: ChunkedDecoder::new(self.max_line_bytes, self.max_body_bytes),
        }
    }

    /// Decodes the chunked body at the start of `input` with a fresh decoder, as a
    /// connection starts one per request, appending its data to `out`: the bytes of `input`
    /// it took, if the body is complete and valid.
    pub fn decode(&self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut decoder = ChunkedDecoder::new(self.max_line_bytes, self.max_body_bytes);
        match decoder.decode(input, out) {
            Ok((used, true)) => Some(used),
            Ok((_, false)) | Err(_) => None,
        }
    }
}

/// Starts and stops a handler's stopwatch around nothing (what every request pays for it,
/// with the two clock readings the loop takes per request): the occupancy it measured,
/// `None` if the run was broken.
pub fn stopwatch() -> Option<Duration> {
    let watch = Stopwatch::start_at(Stamp::now());
    watch.stop_at(Stamp::now())
}

/// A route-cost table, and the update every finished request makes to it.
pub struct Costs {
    table: CostTable,
}

impl Costs {
    /// A table for `routes` routes on `schedulers` schedulers, 50 µs for unsampled routes.
    pub fn new(schedulers: usize, routes: usize) -> Self {
        Costs {
            table: CostTable::new(schedulers, routes, Duration::from_micros(50)),
        }
    }

    /// The slot of route number `route` (the unmatched slot past the last route).
    pub fn slot(&self, route: u32) -> usize {
        self.table.slot(Some(RouteId(route)))
    }

    /// What `conn` records of one finished request on scheduler `k`: its occupancy and
    /// latency, then its status class.
    pub fn record(&self, k: usize, slot: usize, occupancy: Duration, latency: Duration) {
        self.table.record(k, slot, occupancy, latency);
        self.table.count_status(k, slot, 200);
    }
}

/// Appends `response` to `out` as the answer to a keep-alive HTTP/1.1 GET (what the
/// connection loop's `queue` does with a handler's response); `Ok(keep_alive)`.
pub fn encode_response(out: &mut Vec<u8>, response: Response) -> Result<bool, EncodeError> {
    let shape = ReplyShape {
        is_head: false,
        version: Version::Http11,
        client_keeps_alive: true,
    };
    encode_reply(out, response, shape, false).map(|encoded| encoded.keep_alive)
}

/// What the server wrote on one in-memory connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// `write` calls (a pipelined batch of quick requests is answered with one).
    pub writes: u64,
    /// Bytes those calls carried.
    pub bytes: u64,
}

/// A server's state for one router (one scheduler, no hibernation, the embedded default
/// config), whose connections are served over in-memory bytes on the calling thread.
pub struct Connections {
    shared: Arc<Shared>,
}

impl Connections {
    /// The state for `router`; it lives as long as this value, across connections.
    pub fn new(router: Router) -> io::Result<Self> {
        Ok(Connections {
            shared: shared_for(router)?,
        })
    }

    /// Serves one connection whose client sends `script` (each chunk arrives as one read)
    /// `rounds` times over and then closes. `None` if the loop closed the connection before
    /// the script was played out (a rejection, a `Connection: close`).
    pub fn serve(&self, script: &[&[u8]], rounds: usize) -> Option<Written> {
        let tally = Tally::default();
        let memory = Memory::repeat(script, rounds, tally.clone());
        let ending = serve_memory(&self.shared, memory);
        (ending == Ending::Closed).then(|| Written {
            writes: tally.writes(),
            bytes: tally.bytes(),
        })
    }
}

/// Everything the server wrote on one in-memory connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The bytes, in order, across all `write` calls.
    pub output: Vec<u8>,
    /// Whether the loop read on until the client's close (else it closed first).
    pub read_to_close: bool,
}

impl Connections {
    /// Serves one connection whose client sends `chunks` (each arrives as one read: the
    /// split points) once and then closes; returns what the server wrote.
    pub fn transcript(&self, chunks: &[&[u8]]) -> Transcript {
        let capture = Capture::default();
        let memory = Memory::repeat(chunks, 1, capture.clone());
        serve_memory(&self.shared, memory);
        Transcript {
            output: capture.take(),
            read_to_close: capture.saw_close(),
        }
    }
}

/// The acceptor's decision for one new connection: a load snapshot of every scheduler,
/// then the policy's choice (`placement/accept.rs`, without the accept and the peek).
pub struct Placer {
    placement: Placement,
    stats: Arc<Stats>,
    loads: Vec<LoadSnapshot>,
    rotor: usize,
}

impl Placer {
    /// Placement over `workers` schedulers for a router of `routes` routes.
    pub fn new(workers: usize, routes: usize, policy: Policy) -> Self {
        let stats = Arc::new(Stats::new(workers));
        let settings = Settings {
            policy,
            workers,
            max_active_requests: 0,
            default_cost: Duration::from_micros(50),
            max_connections: usize::MAX,
            at_wake: false,
        };
        Placer {
            placement: Placement::new(settings, routes, stats.clone()),
            stats,
            loads: vec![LoadSnapshot::default(); workers],
            rotor: 0,
        }
    }

    /// Counts a connection on scheduler `k` whose first request is expected to cost
    /// `first_ns`, as placing it does, so that the schedulers' loads differ.
    pub fn place_on(&self, k: usize, first_ns: u64) {
        self.stats.connection_placed(k, first_ns);
    }

    /// Records a request of route number `route` that occupied scheduler `k` for
    /// `occupancy`, and merges the table, so the request mix has a mean cost.
    pub fn record(&self, k: usize, route: u32, occupancy: Duration) {
        let costs = &self.placement.costs;
        costs.record(k, costs.slot(Some(RouteId(route))), occupancy, occupancy);
        costs.merge(&mut Vec::new());
    }

    /// Chooses the scheduler for a connection accepted as descriptor `fd`.
    pub fn choose(&mut self, fd: usize) -> usize {
        self.placement.load_snapshots(&mut self.loads);
        policy::choose(&self.loads, self.placement.policy(), &mut self.rotor, fd)
    }
}
