//! `/metrics` in the Prometheus text format: per-scheduler load and connections, the
//! route-cost table with latency quantiles, supervisor restarts and Pauley's capacity index.
//!
//! Mount it on any router: `.get("/metrics", corral::metrics_handler)`.

use std::fmt::Write;

use crate::conn::Shared;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::status::Status;

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
    routes(&mut out, shared);
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
        shared.config.placement.policy.name()
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
    out
}

/// (name, type, help, value of scheduler k).
type SchedulerMetric<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(usize) -> f64);

fn schedulers(out: &mut String, shared: &Shared) {
    let stats = &shared.stats;
    let wards = &shared.wards;
    let per_scheduler: [SchedulerMetric; 10] = [
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
            "corral_scheduler_utilisation",
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

fn routes(out: &mut String, shared: &Shared) {
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
    let figures: Vec<_> = (0..shared.placement.costs.slots())
        .map(|slot| (labels(slot), shared.placement.costs.figures(slot)))
        .collect();
    family(
        out,
        "corral_route_requests_total",
        "counter",
        "Requests per route.",
    );
    for (labels, f) in &figures {
        let _ = writeln!(
            out,
            "corral_route_requests_total{{{labels}}} {}",
            f.requests
        );
    }
    family(
        out,
        "corral_route_cost_seconds",
        "gauge",
        "Expected scheduler occupancy of one request (merged EWMA; the default until sampled).",
    );
    for (labels, f) in &figures {
        let _ = writeln!(
            out,
            "corral_route_cost_seconds{{{labels}}} {}",
            f.cost_ns as f64 / 1e9
        );
    }
    family(
        out,
        "corral_route_latency_seconds",
        "gauge",
        "Request latency quantiles (upper bound of a power-of-two bucket).",
    );
    for (labels, f) in &figures {
        for (q, us) in f.latency_us {
            let _ = writeln!(
                out,
                "corral_route_latency_seconds{{{labels},quantile=\"{q}\"}} {}",
                us as f64 / 1e6
            );
        }
    }
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
    let queue = shared.config.placement.max_active_requests.max(1) as f64;
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
