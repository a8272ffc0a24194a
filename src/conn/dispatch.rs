//! Routing and calling the handler: the one place a handler runs, under `catch_unwind`
//! (a panic becomes a 500 and closes the connection, like Go's `recover`); and admission
//! control, which decides with the route known whether the handler runs at all.
//!
//! **Admission control** (`limits.max_queue_delay_ms`, SEDA's lesson: refuse work early
//! rather than let every queue grow). On a cooperative scheduler, a request reaching its
//! handler is at the head of its scheduler's queue: whatever ran before it has finished, and
//! what is still waiting (requests buffered on the scheduler's other connections) waits for
//! it. So the question at dispatch is not how long it *will* wait — nothing is ahead of it
//! any more — but how long the queue it heads is: and that is how long it waited itself,
//! from its last byte's arrival (the kernel's clock, `Transport::input_age`) to now, less
//! any part of that its own connection spent on its previous requests (a request pipelined
//! behind a slow one waited for its connection, not for the scheduler). That is CoDel's
//! sojourn time, and the best estimate of the wait of a request arriving there now. It lags:
//! under sustained overload, what queued behind the request while it waited is about the
//! overload factor times its wait, so at twice capacity admitted requests wait up to about
//! twice the limit (`benches/overload.sh`: p99 22 ms at a 10 ms limit).
//! Placement's load figure cannot tell it: it counts in-flight requests and not-yet-read
//! connections, and at dispatch nothing else is in flight on the scheduler, while the
//! requests waiting on its other connections have not been read, so they count nowhere.
//!
//! Over the limit, the route-cost table decides: a request expected to occupy the scheduler
//! for `SHED_MIN_COST` or more is answered 503 with `Retry-After` at once, which spares the
//! queue its whole cost; a cheaper one runs, since its 503 would cost about as much as its
//! answer and shorten nothing. So under overload the costly routes are shed and the cheap
//! ones keep flowing. A flood of cheap requests alone is bounded by `limits.max_connections`
//! instead. The check costs a comparison for cheap routes, and one `getsockopt` for costly
//! ones; it allocates nothing and takes no lock.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::Shared;
use super::process::ProcessSlot;
use super::serve::Conn;
use super::transport::Transport;
use super::write::write_out;
use crate::http::parse::Framing;
use crate::http::request::{Context, Origin, Request};
use crate::http::response::Response;
use crate::http::status::Status;
use crate::placement::cost::Stopwatch;
use crate::router::{Found, Params, RouteId, Router};
use crate::runtime::home;
use crate::stats::Stamp;

/// A handler expected to occupy its scheduler at most this long may run while answers to
/// the requests before it (a pipelined batch) wait in the write buffer; before any other,
/// they are written first. A write costs ~2.5 µs of server CPU (pipelined-16 `/plaintext` on
/// one worker: 1.1 µs a request with one write per batch, 3.4 µs with one per answer), so
/// past 100 µs the extra write is under 3% of the handler, and the answers no longer wait
/// its whole run.
const QUICK_HANDLER: Duration = Duration::from_micros(100);

/// Only requests expected to occupy their scheduler this long are shed. A 503 costs what a
/// trivial answer costs (encode and write: ~2.5 µs, see `QUICK_HANDLER`): past 100 µs,
/// refusing saves over 97% of running; well below it, refusing saves nothing.
const SHED_MIN_COST: Duration = Duration::from_micros(100);

/// `Retry-After` of a shed request, seconds: the shortest the header can say; queues of this
/// kind drain in well under a second once the excess stops.
const RETRY_AFTER_S: &str = "1";

/// What the handler produced, and what it cost its scheduler.
pub(super) struct Dispatched {
    pub response: Response,
    /// The route that matched (`None`: a refusal, or the fallback handler).
    pub route: Option<RouteId>,
    /// Cost-table slot of the matched route.
    pub slot: usize,
    pub occupancy: Duration,
    /// The clock readings the unbroken run of the handler began and ended at (`None` when no
    /// handler ran or it waited): the latency is the occupancy when the request's own start
    /// and end are the same readings, with no third subtraction (docs/architecture.md §3).
    pub span: Option<(Stamp, Stamp)>,
    /// The handler waited (yielded): its route is no longer known to be quick.
    pub waited: bool,
    /// Admission control answered instead of the handler: nothing to learn of its cost.
    pub shed: bool,
}

/// What a request sees of its connection.
struct ConnOrigin<'a, S> {
    stream: &'a S,
    shared: &'a Shared,
    process: &'a ProcessSlot,
}

impl<S: Transport> Origin for ConnOrigin<'_, S> {
    fn peer_closed(&self) -> bool {
        self.stream.peer_closed()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr()
    }

    fn server_draining(&self) -> bool {
        self.shared.is_draining()
    }

    fn server(&self) -> &(dyn Any + Send + Sync) {
        self.shared
    }

    fn process(&self) -> Option<&dyn Any> {
        Some(self.process)
    }
}

impl<S: Transport> Conn<'_, S> {
    /// Routes and calls the handler; a panic becomes 500 and closes the connection. While
    /// the handler runs, its route's expected cost counts in the scheduler's load.
    ///
    /// Answers already queued (earlier requests of a pipelined batch) are written first
    /// unless the handler is known to be quick: one that may wait or run long must not hold
    /// them (STYLE §1). We cannot know a handler will not wait, so "known quick" is what
    /// this scheduler saw of the route: run before, never waited, cheap (`QUICK_HANDLER`).
    /// That keeps one write per batch for ordinary pipelining and costs a route that waits
    /// one write per request. What it misses: a known-quick route that waits or runs long
    /// for once holds the answers before it that time; a wait then marks the route for
    /// good, a long run lifts its average over the bound for the next few requests.
    pub(super) fn dispatch(&mut self, body_in_buf: usize) -> io::Result<Dispatched> {
        let buf = self.rbuf.filled();
        let body = match self.head.framing {
            Framing::Chunked => self.body.as_slice(),
            _ => &buf[self.head.len..self.head.len + body_in_buf],
        };
        let (router, costs) = (&*self.shared.router, &self.shared.placement.costs);
        if self.process.exit_signal().is_some() {
            // Ended between requests (`process.rs`): no handler runs for a dead connection.
            return Ok(Dispatched {
                response: ended(&self.process),
                route: None,
                slot: costs.slot(None),
                occupancy: Duration::ZERO,
                span: None,
                waited: false,
                shed: true,
            });
        }
        let mut params = Params::new();
        let method = self.head.method_str(buf);
        let found = router.find(method, self.head.path.str(buf), &mut params);
        let (handler, route) = match found {
            Found::Route {
                handler,
                pattern,
                id,
            } => (handler, Some((id, pattern))),
            found => match (router.fallback_handler(), found) {
                (Some(fallback), _) => (fallback, None),
                (None, refusal) => {
                    let response = match refusal {
                        Found::MethodNotAllowed { allow } => method_not_allowed(allow),
                        _ => Response::error(Status::NOT_FOUND),
                    };
                    return Ok(Dispatched {
                        response,
                        route: None,
                        slot: costs.slot(None),
                        occupancy: Duration::ZERO,
                        span: None,
                        waited: false,
                        shed: false,
                    });
                }
            },
        };
        let slot = costs.slot(route.map(|(id, _)| id));
        let expected_ns = costs.expected_ns(slot);
        if let Some(waited) = self.over_queue_limit(expected_ns) {
            return Ok(self.shed(route.map(|(id, _)| id), slot, waited));
        }
        if !self.wbuf.is_empty() && !costs.known_quick(self.scheduler, slot, QUICK_HANDLER) {
            // (`Conn::flush`, by field: the request borrows the read buffer.)
            self.clock = None;
            write_out(&mut self.stream, &mut self.wbuf)?;
        }
        let watch = Stopwatch::start_at(*self.clock.get_or_insert_with(Stamp::now));
        let pattern = route.map(|(_, pattern)| pattern);
        let origin = ConnOrigin {
            stream: &self.stream,
            shared: self.shared,
            process: &self.process,
        };
        let context = Context {
            route: pattern,
            scheduler: self.scheduler,
            state: router.state(),
            origin: &origin,
        };
        let req = Request::new(buf, &self.head, &params, body, context);
        let stats = &self.shared.stats;
        let _load = stats.expect_load(self.scheduler, expected_ns, watch.started(), slot);
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.call(&req)));
        let stopped = Stamp::now();
        let run = watch.stop_at(stopped);
        // An unbroken run ended now; a broken one may still hop home, which waits.
        self.clock = run.map(|_| stopped);
        // A handler that slept or waited may have been resumed elsewhere: come back to k.
        // An unbroken run never left k (a run is broken by any resume, `cost::Stopwatch`).
        if run.is_none() {
            home::go_home(self.scheduler);
        }
        let response = match outcome {
            // The connection's process was killed, or a process linked to it crashed: the
            // connection ends (`process.rs`). A `None` check when it has no process.
            Ok(_) | Err(_) if self.process.exit_signal().is_some() => ended(&self.process),
            Ok(response) => response,
            Err(panic) => {
                self.shared.stats.record_panic(self.scheduler);
                log::error!(
                    "handler for {method} {} panicked: {}",
                    pattern.unwrap_or("(fallback)"),
                    panic_message(&panic)
                );
                Response::error(Status::INTERNAL_SERVER_ERROR).with_close()
            }
        };
        Ok(Dispatched {
            response,
            route: route.map(|(id, _)| id),
            slot,
            occupancy: run.unwrap_or_default(),
            span: run.map(|_| (watch.started(), stopped)),
            waited: run.is_none(),
            shed: false,
        })
    }

    /// How long this request waited past `limits.max_queue_delay_ms`, if it is to be shed
    /// (module doc): its route is costly (`expected_ns`) and it waited longer than that
    /// behind other work.
    fn over_queue_limit(&self, expected_ns: u64) -> Option<Duration> {
        let limit_ms = self.cfg.limits.max_queue_delay_ms;
        if limit_ms == 0 || expected_ns < SHED_MIN_COST.as_nanos() as u64 {
            return None;
        }
        let arrived = self.stream.input_age()?;
        let waited = match self.free_since {
            Some(free) => arrived.min(free.elapsed()),
            None => arrived,
        };
        (waited > Duration::from_millis(limit_ms)).then_some(waited)
    }

    /// The answer instead of the handler: 503 with `Retry-After`, counted for its route.
    /// The connection stays open: its request was read whole, and reconnecting would cost
    /// the overloaded server more than the next request on it.
    fn shed(&self, route: Option<RouteId>, slot: usize, waited: Duration) -> Dispatched {
        let shared = self.shared;
        shared.placement.costs.count_shed(self.scheduler, slot);
        log::debug!(
            "shed {} on scheduler {}: it waited {} ms; `limits.max_queue_delay_ms` is {}",
            RouteName(&shared.router, route),
            self.scheduler,
            waited.as_millis(),
            self.cfg.limits.max_queue_delay_ms
        );
        Dispatched {
            response: Response::error(Status::SERVICE_UNAVAILABLE)
                .with_header("Retry-After", RETRY_AFTER_S),
            route,
            slot,
            occupancy: Duration::ZERO,
            span: None,
            waited: false,
            shed: true,
        }
    }
}

/// How log lines name a request's route: the method and pattern it was registered with,
/// e.g. `GET /users/:id`.
pub(super) struct RouteName<'a>(pub &'a Router, pub Option<RouteId>);

impl std::fmt::Display for RouteName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.0.routes();
        match self.1 {
            Some(id) => write!(f, "{} {}", routes.method(id), routes.pattern(id)),
            None if self.0.fallback_handler().is_some() => f.write_str("the fallback handler"),
            None => f.write_str("no route"),
        }
    }
}

/// The answer of a request whose connection's process was ended under it: 503, and close.
fn ended(process: &ProcessSlot) -> Response {
    if let Some(why) = process.exit_signal() {
        log::debug!("the connection's process was ended ({why}): 503, and close");
    }
    Response::error(Status::SERVICE_UNAVAILABLE).with_close()
}

pub(super) fn method_not_allowed(allow: &str) -> Response {
    Response::error(Status::METHOD_NOT_ALLOWED).with_header("Allow", allow.to_string())
}

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}
