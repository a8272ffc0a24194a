//! Overload over real sockets: the connection limit, admission control by queueing delay,
//! and the watchdog of stuck schedulers (#11 §3). Each answer the server sheds is a 503
//! with `Retry-After`, counted in `corral_shed_total`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{CLIENT_TIMEOUT, Client, TestServer, eventually, parse_prometheus, sample};
use corral::{Policy, Request};

/// Tests that load a scheduler or watch one: one at a time, since every server in this
/// process shares the same two may workers.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn whoami(req: &Request) -> String {
    req.scheduler().to_string()
}

/// The demo app plus `/scheduler` (the scheduler's number), on the test config.
fn server(tweak: impl FnOnce(&mut corral::Config)) -> TestServer {
    let mut config = common::test_config();
    tweak(&mut config);
    let router = common::app::demo::router(&config).get("/scheduler", whoami);
    TestServer::start(config, router)
}

/// Open connections on every scheduler of the test config (2).
fn open_connections(srv: &TestServer) -> usize {
    let stats = srv.server().stats();
    (0..2).map(|k| stats.connections(k)).sum()
}

fn metrics(client: &mut Client) -> Vec<(String, f64)> {
    let reply = client.get("/metrics");
    assert_eq!(reply.status, 200);
    parse_prometheus(reply.text())
}

const SHED_CONNECTIONS: &str = r#"corral_shed_total{reason="max_connections"}"#;

#[test]
fn past_max_connections_a_new_connection_gets_503_with_retry_after_and_is_closed() {
    let _serial = serial();
    let srv = TestServer::demo(|c| c.limits.max_connections = 3);
    let mut open: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = srv.client();
            assert_eq!(c.get("/plaintext").status, 200);
            c
        })
        .collect();
    // The server answers before the client says anything, so no request of ours can race
    // its close.
    let mut refused = srv.client();
    let reply = refused.reply();
    assert_eq!((reply.status, reply.text()), (503, "Service Unavailable"));
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(refused.closed_by_server());
    // The connections already open are served as before.
    assert_eq!(open[0].get("/plaintext").status, 200);
    let m = metrics(&mut open[0]);
    assert_eq!(sample(&m, SHED_CONNECTIONS), 1.0);
    assert_eq!(sample(&m, "corral_connections_limit"), 3.0);
    // One closes: there is room for one more.
    drop(open.pop());
    eventually(CLIENT_TIMEOUT, "the closed connection is uncounted", || {
        open_connections(&srv) == 2
    });
    assert_eq!(srv.client().get("/plaintext").status, 200);
}

#[test]
fn the_automatic_connection_limit_is_the_descriptor_limit_less_a_reserve() {
    let _serial = serial();
    let srv = TestServer::demo(|_| {});
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let want = soft.map_or(0, |limit| limit - (limit / 16).max(64));
    let m = metrics(&mut srv.client());
    assert_eq!(sample(&m, "corral_connections_limit"), want as f64);
    assert_eq!(sample(&m, SHED_CONNECTIONS), 0.0);
}

const CPU_COST: &str = r#"corral_route_cost_seconds{method="GET",route="/cpu"}"#;
const SHED_CPU: &str = r#"corral_shed_total{reason="queue_delay",method="GET",route="/cpu"}"#;
const SHED_PLAINTEXT: &str =
    r#"corral_shed_total{reason="queue_delay",method="GET",route="/plaintext"}"#;

/// Opens connections until `n` of them are on one scheduler; returns it and them.
fn connections_on_one_scheduler(srv: &TestServer, n: usize) -> (usize, Vec<Client>) {
    let mut on: [Vec<Client>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..4 * n {
        let mut c = srv.client();
        let k: usize = c.get("/scheduler").text().parse().unwrap();
        on[k].push(c);
        if on[k].len() == n {
            return (k, std::mem::take(&mut on[k]));
        }
    }
    panic!("no scheduler got {n} of {} connections", 4 * n);
}

#[test]
fn a_costly_request_queued_behind_a_busy_scheduler_is_shed_while_cheap_ones_flow() {
    let _serial = serial();
    // Tiny next to the 1 s hog, and well above the kernel's 4 ms clock tick.
    let srv = server(|c| {
        c.placement.policy = Policy::RoundRobin;
        c.limits.max_queue_delay_ms = 50;
    });
    // Teach the cost table that /cpu is costly (the first sample sets a route's estimate).
    let mut teacher = srv.client();
    assert_eq!(teacher.get("/cpu?us=2000").status, 200);
    eventually(CLIENT_TIMEOUT, "/cpu is known to cost about 2 ms", || {
        sample(&metrics(&mut teacher), CPU_COST) > 0.001
    });
    let (busy, mut on_busy) = connections_on_one_scheduler(&srv, 3);
    let (mut cheap, mut costly, mut hog) = (
        on_busy.pop().unwrap(),
        on_busy.pop().unwrap(),
        on_busy.pop().unwrap(),
    );
    let mut elsewhere = loop {
        let mut c = srv.client();
        if c.get("/scheduler").text() != busy.to_string() {
            break c;
        }
    };
    hog.send(b"GET /cpu?us=1000000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let stats = srv.server().stats();
    eventually(CLIENT_TIMEOUT, "the hog's handler runs", || {
        stats.running(busy).is_some()
    });
    // Both queue behind the hog on its scheduler, for most of a second.
    costly.send(b"GET /cpu?us=2000 HTTP/1.1\r\nHost: t\r\n\r\n");
    cheap.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    // The other scheduler has no queue: the same costly request runs there.
    assert_eq!(elsewhere.get("/cpu?us=2000").status, 200);
    assert_eq!(hog.reply().status, 200);
    let shed = costly.reply();
    assert_eq!((shed.status, shed.text()), (503, "Service Unavailable"));
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(shed.header("connection"), None, "the connection stays open");
    let flowed = cheap.reply();
    assert_eq!((flowed.status, flowed.text()), (200, "Hello, World!"));
    // The queue is gone: the shed client's next request runs.
    assert_eq!(costly.get("/cpu?us=2000").status, 200);
    let m = metrics(&mut cheap);
    assert_eq!(sample(&m, SHED_CPU), 1.0);
    assert_eq!(sample(&m, SHED_PLAINTEXT), 0.0);
}

#[test]
fn with_admission_control_off_a_queued_costly_request_runs_however_long_it_waited() {
    let _serial = serial();
    let srv = server(|c| {
        c.placement.policy = Policy::RoundRobin;
        c.limits.max_queue_delay_ms = 0;
    });
    let mut teacher = srv.client();
    assert_eq!(teacher.get("/cpu?us=2000").status, 200);
    eventually(CLIENT_TIMEOUT, "/cpu is known to cost about 2 ms", || {
        sample(&metrics(&mut teacher), CPU_COST) > 0.001
    });
    let (busy, mut on_busy) = connections_on_one_scheduler(&srv, 2);
    let (mut costly, mut hog) = (on_busy.pop().unwrap(), on_busy.pop().unwrap());
    hog.send(b"GET /cpu?us=300000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let stats = srv.server().stats();
    eventually(CLIENT_TIMEOUT, "the hog's handler runs", || {
        stats.running(busy).is_some()
    });
    costly.send(b"GET /cpu?us=2000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(hog.reply().status, 200);
    assert_eq!(costly.reply().status, 200);
    assert_eq!(sample(&metrics(&mut costly), SHED_CPU), 0.0);
}
