//! The watchdog over real sockets (#11 §3): a scheduler stuck in one handler longer than
//! `runtime.stall_warn_ms` is logged once, naming the route and the scheduler, and counted in
//! `corral_scheduler_stalls_total`; a handler that waits (yields) is no stall. Its own test
//! binary: it installs the process-wide logger at warn.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Client, ErrorLog, TestServer, parse_prometheus, sample, sum_of};
use corral::{HttpError, Request};

/// One test at a time: the two may workers are shared, and these tests stall them.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bug the watchdog is for: a blocking call in a handler.
fn block(req: &Request) -> Result<&'static str, HttpError> {
    let ms: u64 = req.query_as("ms")?;
    std::thread::sleep(Duration::from_millis(ms.min(5_000)));
    Ok("blocked")
}

fn whoami(req: &Request) -> String {
    req.scheduler().to_string()
}

/// The demo app plus `/block?ms=` and `/scheduler`, with a 200 ms stall threshold.
fn server() -> TestServer {
    ErrorLog::install_at(log::Level::Warn);
    let mut config = common::test_config();
    config.runtime.stall_warn_ms = 200;
    let router = common::app::demo::router(&config)
        .get("/block", block)
        .get("/scheduler", whoami);
    TestServer::start(config, router)
}

fn stalls(srv: &TestServer) -> u64 {
    let stats = srv.server().stats();
    (0..2).map(|k| stats.stalls(k)).sum()
}

#[test]
fn a_scheduler_stuck_in_a_handler_is_logged_once_with_route_and_scheduler_and_counted() {
    let _serial = serial();
    let srv = server();
    let mut c = srv.client();
    let k = c.get("/scheduler").text().to_string();
    // Blocked 7 thresholds long: still one stall.
    assert_eq!(c.get("/block?ms=1400").text(), "blocked");
    assert_eq!(stalls(&srv), 1);
    let lines = ErrorLog::lines_with("GET /block");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("scheduler {k} is stuck")),
        "{}",
        lines[0]
    );
    // Busy computing rather than blocked: the same to every other connection of k.
    assert_eq!(c.get("/cpu?us=600000").text(), "ok");
    assert_eq!(stalls(&srv), 2);
    assert_eq!(ErrorLog::lines_with("GET /cpu").len(), 1);
    let m = parse_prometheus(c.get("/metrics").text());
    let series = format!("corral_scheduler_stalls_total{{scheduler=\"{k}\"}}");
    assert_eq!(sample(&m, &series), 2.0);
    assert_eq!(sum_of(&m, "corral_scheduler_stalls_total"), 2.0);
}

#[test]
fn a_handler_that_waits_longer_than_the_threshold_is_not_a_stall() {
    let _serial = serial();
    let srv = server();
    // /work sleeps as a coroutine: its scheduler serves others meanwhile.
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.get("/work?us=800000").text(), "ok");
    assert_eq!(stalls(&srv), 0);
    assert!(ErrorLog::lines_with("GET /work").is_empty());
}
