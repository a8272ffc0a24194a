//! `/metrics` in the Prometheus text format: per-scheduler load and connections, the
//! route-cost table with latency quantiles, supervisor restarts and Pauley's capacity index.
//!
//! Mount it on any router: `.get("/metrics", corral::metrics_handler)`.

mod process;

use std::fmt::Write;

use crate::conn::Shared;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::status::Status;
use crate::placement::cost::{LATENCY_BUCKETS, RouteFigures};

/// Prometheus' text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A handler that answers with the server's metrics in the Prometheus text format.
pub fn metrics_handler(req: &Request) -> Response {
    match render_metrics(req) {
        Some(text) => Response::text(text).with_content_type(CONTENT_TYPE),
        None => Response::error(Status::INTERNAL_SERVER_ERROR),
    }
}

/// The metrics of the server that `req` came to, in the Prometheus text format (to extend
/// with an application's own families before answering). `None` only for a request that
/// did not come through a Corral server.
pub fn render_metrics(req: &Request) -> Option<String> {
    req.server().downcast_ref::<Shared>().map(render)
}

fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    schedulers(&mut out, shared);
    let figures = route_figures(shared);
    routes(&mut out, &figures);
    family(
        &mut out,
        "corral_supervisor_restarts_total",
        "counter",
        "Restarts performed by the server's supervision tree.",
    );
    let _ = writeln!(
        out,
        "corral_supervisor_restarts_total {}",
        shared.supervisor_restarts()
    );
    family(
        &mut out,
        "corral_placement_policy",
        "gauge",
        "The placement policy in use (`placement.policy`): 1 for the policy named.",
    );
    let _ = writeln!(
        out,
        "corral_placement_policy{{policy=\"{}\"}} 1",
        shared.placement.policy().name()
    );
    let (placed, seen) = shared.stats.placements();
    family(
        &mut out,
        "corral_placements_total",
        "counter",
        "Connections placed by the acceptor; route_seen: whether it saw the first request line.",
    );
    let _ = writeln!(out, "corral_placements_total{{route_seen=\"true\"}} {seen}");
    let _ = writeln!(
        out,
        "corral_placements_total{{route_seen=\"false\"}} {}",
        placed - seen
    );
    let (woken, moved) = shared.stats.wake_placements();
    family(
        &mut out,
        "corral_wake_placements_total",
        "counter",
        "Hibernated connections placed again as a request woke them (`placement.at_wake`); \
         moved: whether placement picked another scheduler than their old one.",
    );
    let _ = writeln!(
        out,
        "corral_wake_placements_total{{moved=\"true\"}} {moved}"
    );
    let _ = writeln!(
        out,
        "corral_wake_placements_total{{moved=\"false\"}} {}",
        woken - moved
    );
    family(
        &mut out,
        "corral_rejections_total",
        "counter",
        "Requests refused before a handler ran (then closed), by reason.",
    );
    for (reason, n) in shared.rejections.counts() {
        let _ = writeln!(
            out,
            "corral_rejections_total{{reason=\"{}\"}} {n}",
            reason.label()
        );
    }
    shed(&mut out, shared, &figures);
    family(
        &mut out,
        "corral_handler_panics_total",
        "counter",
        "Handler panics caught (each answered 500).",
    );
    let _ = writeln!(out, "corral_handler_panics_total {}", shared.stats.panics());
    family(
        &mut out,
        "corral_capacity_index",
        "gauge",
        "Pauley 2019 §3.2: queue size × 1 s × schedulers / median handler cost (requests).",
    );
    let _ = writeln!(out, "corral_capacity_index {}", capacity_index(shared));
    family(
        &mut out,
        "corral_build_info",
        "gauge",
        "Always 1; the labels say which Corral this is.",
    );
    let _ = writeln!(
        out,
        "corral_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    process::render(&mut out);
    out
}

/// Work refused for want of room, each answered 503 with `Retry-After`, and the limit.
fn shed(out: &mut String, shared: &Shared, figures: &[(String, RouteFigures)]) {
    family(
        out,
        "corral_shed_total",
        "counter",
        "Work refused with 503 and Retry-After: new connections past limits.max_connections \
         (reason=\"max_connections\"), requests of costly routes that waited past \
         limits.max_queue_delay_ms (reason=\"queue_delay\", by route).",
    );
    let _ = writeln!(
        out,
        "corral_shed_total{{reason=\"max_connections\"}} {}",
        shared.stats.connections_shed()
    );
    for (labels, f) in figures {
        let _ = writeln!(
            out,
            "corral_shed_total{{reason=\"queue_delay\",{labels}}} {}",
            f.shed
        );
    }
    family(
        out,
        "corral_connections_limit",
        "gauge",
        "Open connections past which new ones get 503 (limits.max_connections as resolved at \
         start; 0: no limit).",
    );
    let max = match shared.placement.max_connections() {
        usize::MAX => 0,
        n => n,
    };
    let _ = writeln!(out, "corral_connections_limit {max}");
    family(
        out,
        "corral_accept_pauses_total",
        "counter",
        "Pauses of the acceptor (50 ms each) because accept ran out of descriptors or memory \
         (EMFILE, ENFILE, ENOBUFS, ENOMEM); meanwhile new connections wait in the backlog.",
    );
    let _ = writeln!(
        out,
        "corral_accept_pauses_total {}",
        shared.stats.accept_pauses()
    );
}

/// (name, type, help, value of scheduler k).
type SchedulerMetric<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(usize) -> f64);

fn schedulers(out: &mut String, shared: &Shared) {
    let stats = &shared.stats;
    let wards = &shared.wards;
    let per_scheduler: [SchedulerMetric; 11] = [
        (
            "corral_scheduler_connections",
            "gauge",
            "Open connections.",
            &|k| stats.connections(k) as f64,
        ),
        (
            "corral_scheduler_inflight",
            "gauge",
            "Requests being served.",
            &|k| stats.inflight_on(k) as f64,
        ),
        (
            "corral_scheduler_expected_load_seconds",
            "gauge",
            "Expected occupancy of in-flight requests and queued connections.",
            &|k| shared.placement.expected_load_ns(k) as f64 / 1e9,
        ),
        (
            "corral_scheduler_running_handler_seconds",
            "gauge",
            "How long the handler running now has run (0: none running).",
            &|k| stats.running(k).map_or(0.0, |r| r.elapsed_ns as f64 / 1e9),
        ),
        (
            "corral_scheduler_utilisation_ratio",
            "gauge",
            "Share of the last cost-merge interval spent running handlers.",
            &|k| shared.placement.costs.utilisation(k),
        ),
        (
            "corral_scheduler_queue_length",
            "gauge",
            "Accepted connections waiting to start.",
            &|k| stats.queued(k) as f64,
        ),
        (
            "corral_scheduler_steals_total",
            "counter",
            "Queued connections taken from another scheduler's queue.",
            &|k| stats.steals(k) as f64,
        ),
        (
            "corral_scheduler_requests_total",
            "counter",
            "Requests served.",
            &|k| stats.requests(k) as f64,
        ),
        (
            "corral_scheduler_stalls_total",
            "counter",
            "Handlers that ran longer than runtime.stall_warn_ms without yielding (the watchdog).",
            &|k| stats.stalls(k) as f64,
        ),
        (
            "corral_scheduler_hibernating_idle",
            "gauge",
            "Idle keep-alive connections hibernating in the scheduler's ward (no coroutine).",
            &|k| wards.hibernating(k).0 as f64,
        ),
        (
            "corral_scheduler_hibernating_waiting",
            "gauge",
            "Requests waiting hibernated in the scheduler's ward (Response::hibernate).",
            &|k| wards.hibernating(k).1 as f64,
        ),
    ];
    for (name, kind, help, value) in per_scheduler {
        family(out, name, kind, help);
        for k in 0..stats.schedulers() {
            let _ = writeln!(out, "{name}{{scheduler=\"{k}\"}} {}", value(k));
        }
    }
}

/// Each slot of the cost table with its labels (`method="GET",route="/cpu"`).
fn route_figures(shared: &Shared) -> Vec<(String, RouteFigures)> {
    let table = shared.router.routes();
    let labels = |slot: usize| -> String {
        if slot < table.len() {
            let id = crate::router::RouteId(slot as u32);
            format!(
                "method=\"{}\",route=\"{}\"",
                escape(table.method(id)),
                escape(table.pattern(id))
            )
        } else {
            "method=\"*\",route=\"(unmatched)\"".to_string()
        }
    };
    (0..shared.placement.costs.slots())
        .map(|slot| (labels(slot), shared.placement.costs.figures(slot)))
        .collect()
}

fn routes(out: &mut String, figures: &[(String, RouteFigures)]) {
    family(
        out,
        "corral_route_requests_total",
        "counter",
        "Requests per route whose handler ran (shed ones count in corral_shed_total).",
    );
    for (labels, f) in figures {
        let _ = writeln!(
            out,
            "corral_route_requests_total{{{labels}}} {}",
            f.requests
        );
    }
    family(
        out,
        "corral_requests_total",
        "counter",
        "Answers per route by status class (code=\"2xx\" …).",
    );
    for (labels, f) in figures {
        for (class, n) in f.by_class.iter().enumerate() {
            let code = class + 1;
            let _ = writeln!(
                out,
                "corral_requests_total{{{labels},code=\"{code}xx\"}} {n}"
            );
        }
    }
    family(
        out,
        "corral_route_cost_seconds",
        "gauge",
        "Expected scheduler occupancy of one request (merged EWMA; the default until sampled).",
    );
    for (labels, f) in figures {
        let _ = writeln!(
            out,
            "corral_route_cost_seconds{{{labels}}} {}",
            f.cost_ns as f64 / 1e9
        );
    }
    family(
        out,
        "corral_request_duration_seconds",
        "histogram",
        "Time from a request's head to its answer being queued, per route (power-of-two buckets).",
    );
    for (labels, f) in figures {
        latency_histogram(out, labels, f);
    }
}

/// Bucket i of the cost table holds latencies in [2^(i-1), 2^i) µs, so the cumulative count
/// up to i is the count of latencies ≤ 2^i µs. Buckets below `FIRST_BUCKET` hold nothing a
/// real request takes; the last one is unbounded (`+Inf`).
fn latency_histogram(out: &mut String, labels: &str, f: &RouteFigures) {
    const FIRST_BUCKET: usize = 2;
    let name = "corral_request_duration_seconds";
    let mut cumulative: u64 = f.latency_buckets[..FIRST_BUCKET].iter().sum();
    for (i, n) in f
        .latency_buckets
        .iter()
        .enumerate()
        .take(LATENCY_BUCKETS - 1)
        .skip(FIRST_BUCKET)
    {
        cumulative += n;
        let le = (1u64 << i) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let count: u64 = f.latency_buckets.iter().sum();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "{name}_sum{{{labels}}} {}",
        f.latency_sum_ns as f64 / 1e9
    );
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Pauley's index with live figures: queue size (the admission cap, 1 when uncapped) × 1 s ×
/// schedulers ÷ the request-weighted median of route costs.
fn capacity_index(shared: &Shared) -> f64 {
    let mut costs: Vec<(u64, u64)> = (0..shared.placement.costs.slots())
        .map(|slot| {
            let f = shared.placement.costs.figures(slot);
            (f.cost_ns, f.requests)
        })
        .filter(|&(_, requests)| requests > 0)
        .collect();
    costs.sort_unstable();
    let total: u64 = costs.iter().map(|&(_, n)| n).sum();
    let mut seen = 0;
    let median_ns = costs
        .iter()
        .find(|&&(_, n)| {
            seen += n;
            seen * 2 >= total
        })
        .map_or(0, |&(ns, _)| ns);
    if median_ns == 0 {
        return 0.0;
    }
    let queue = shared.placement.max_active_requests().max(1) as f64;
    queue * 1e9 * shared.workers as f64 / median_ns as f64
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
