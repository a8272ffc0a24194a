//! `/metrics` as Prometheus reads it: the demo's output passes `promtool check metrics`
//! (Debian's `prometheus` package; `.ci/run` installs it), latency is a real histogram, and
//! the process metrics are there.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{TestServer, sample};

/// The demo's metrics after a few requests, one of them unmatched.
fn scrape() -> String {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    assert_eq!(c.get("/plaintext").status, 200);
    assert_eq!(c.get("/no/such/route").status, 404);
    c.get("/metrics").text().to_string()
}

#[test]
fn promtool_accepts_the_metrics() {
    let text = scrape();
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        // CI installs promtool; a developer machine without it says so instead of failing.
        Err(err) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: promtool is not installed ({err}); apt-get install prometheus");
            return;
        }
        Err(err) => panic!("promtool is required in CI: {err}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool: {report}");
    assert!(report.trim().is_empty(), "promtool lint: {report}");
}

#[test]
fn latency_is_a_histogram_per_route() {
    let metrics = common::parse_prometheus(&scrape());
    let route = r#"method="GET",route="/plaintext""#;
    let count = sample(
        &metrics,
        &format!("corral_request_duration_seconds_count{{{route}}}"),
    );
    let inf = sample(
        &metrics,
        &format!(r#"corral_request_duration_seconds_bucket{{{route},le="+Inf"}}"#),
    );
    assert_eq!((count, inf), (1.0, 1.0));
    let sum = sample(
        &metrics,
        &format!("corral_request_duration_seconds_sum{{{route}}}"),
    );
    assert!(sum > 0.0, "one request took some time: {sum}");
}

#[test]
fn process_and_build_metrics_are_exported() {
    let metrics = common::parse_prometheus(&scrape());
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(sample(&metrics, name) > 0.0, "{name} is zero");
    }
    // A fresh test process may not have used a whole clock tick yet.
    assert!(sample(&metrics, "process_cpu_seconds_total") >= 0.0);
    let build = format!(
        r#"corral_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&metrics, &build), 1.0);
}

#[test]
fn answers_are_counted_by_status_class_and_rejections_by_reason() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    assert_eq!(c.get("/plaintext").status, 200);
    assert_eq!(c.get("/plaintext").status, 200);
    assert_eq!(c.get("/no/such/route").status, 404);
    assert_eq!(srv.client().get("/panic").status, 500);
    let long = format!("/{}", "a".repeat(10_000));
    assert_eq!(srv.client().get(&long).status, 414);
    let metrics = srv.metrics();
    let requests = |route: &str, code: &str| {
        sample(
            &metrics,
            &format!(r#"corral_requests_total{{{route},code="{code}"}}"#),
        )
    };
    let plaintext = r#"method="GET",route="/plaintext""#;
    assert_eq!(requests(plaintext, "2xx"), 2.0);
    assert_eq!(requests(plaintext, "5xx"), 0.0);
    assert_eq!(requests(r#"method="*",route="(unmatched)""#, "4xx"), 1.0);
    assert_eq!(requests(r#"method="GET",route="/panic""#, "5xx"), 1.0);
    let rejected = |reason: &str| {
        sample(
            &metrics,
            &format!(r#"corral_rejections_total{{reason="{reason}"}}"#),
        )
    };
    assert_eq!(rejected("uri_too_long"), 1.0);
    assert_eq!(rejected("malformed"), 0.0);
}
