//! Hibernation over real sockets: idle keep-alive connections and `Response::hibernate`
//! waits give up their coroutines and wait in their scheduler's ward.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, eventually, sum_of};
use corral::{Config, Request, Response, Router, Status, Waker};

fn hibernating(srv: &TestServer, state: &str) -> f64 {
    sum_of(
        &srv.metrics(),
        &format!("corral_scheduler_hibernating_{state}"),
    )
}

/// A client whose `GET /poll?topic=T` (followed by `then`, pipelined) is hibernating.
fn hibernated_poll(srv: &TestServer, topic: &str, then: &[u8]) -> Client {
    let mut c = srv.client();
    // One write, so pipelined bytes arrive with the poll.
    let mut bytes = format!("GET /poll?topic={topic} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes();
    bytes.extend_from_slice(then);
    c.send(&bytes);
    eventually(Duration::from_secs(5), "the poll hibernates", || {
        hibernating(srv, "waiting") == 1.0
    });
    c
}

fn quick_hibernation(config: &mut Config) {
    config.timeouts.hibernate_after_ms = 50;
}

fn whoami(req: &Request) -> String {
    format!("{} {:?}", req.scheduler(), std::thread::current().id())
}

/// Idle keep-alive connections hibernating, on every scheduler, read from the server
/// itself (asking `/metrics` would open connections that hibernate too).
fn idle_in_wards(srv: &TestServer) -> usize {
    let stats = srv.server().stats();
    (0..2).map(|k| stats.hibernating_idle(k)).sum()
}

/// What a handler sees: idle connections hibernating right now, per the server's metrics.
fn idle_seen_by_a_handler(req: &Request) -> String {
    let text = corral::render_metrics(req).expect("a Corral server's request");
    common::sum_of(
        &common::parse_prometheus(&text),
        "corral_scheduler_hibernating_idle",
    )
    .to_string()
}

#[test]
fn an_idle_connection_hibernates_and_its_next_request_wakes_it_on_its_scheduler() {
    let mut config = common::test_config();
    quick_hibernation(&mut config);
    let router = Router::new()
        .get("/whoami", whoami)
        .get("/idle", idle_seen_by_a_handler)
        .get("/plaintext", |_: &Request| "Hello, World!");
    let srv = TestServer::start(config, router);
    // The only connection: whatever hibernates is this one.
    let mut c = srv.client();
    let before = c.get("/whoami").text().to_string();
    eventually(
        Duration::from_secs(5),
        "the idle connection hibernates",
        || idle_in_wards(&srv) == 1,
    );
    let after = c.get("/whoami").text().to_string();
    assert_eq!(
        before, after,
        "the woken connection runs on its old scheduler"
    );
    // Many round trips through hibernation keep serving, and each time the ward has given
    // the connection up by the time its request runs.
    for _ in 0..3 {
        eventually(Duration::from_secs(5), "it hibernates again", || {
            idle_in_wards(&srv) == 1
        });
        assert_eq!(c.get("/idle").text(), "0", "woken, it is not hibernating");
        eventually(Duration::from_secs(5), "and again", || {
            idle_in_wards(&srv) == 1
        });
        assert_eq!(c.get("/plaintext").text(), "Hello, World!");
    }
}

#[test]
fn a_hibernated_idle_connection_is_closed_at_the_idle_timeout() {
    let srv = TestServer::demo(|c| {
        quick_hibernation(c);
        c.timeouts.idle_timeout_ms = 400;
    });
    let mut c = srv.client();
    assert_eq!(c.get("/plaintext").status, 200);
    let idle_since = Instant::now();
    assert!(
        c.closed_by_server(),
        "the server closes the idle connection"
    );
    // Not before its idle timeout (how long after is the scheduler's business, not a test's).
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_millis(350),
        "closed after {waited:?}"
    );
    // And no longer counts it.
    eventually(
        Duration::from_secs(2),
        "only the metrics connection is open",
        || sum_of(&srv.metrics(), "corral_scheduler_connections") == 1.0,
    );
}

#[test]
fn waiting_long_polls_hold_no_coroutine_and_all_get_the_publish() {
    let srv = TestServer::demo(|_| {});
    let mut waiters: Vec<Client> = (0..200).map(|_| srv.client()).collect();
    for w in &mut waiters {
        w.send(b"GET /poll?topic=ward HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    eventually(Duration::from_secs(10), "200 hibernated waiters", || {
        hibernating(&srv, "waiting") == 200.0
    });
    assert_eq!(srv.publish("ward", b"wake up"), "200");
    for w in &mut waiters {
        let r = w.reply();
        assert_eq!((r.status, r.text()), (200, "wake up"));
    }
    assert_eq!(hibernating(&srv, "waiting"), 0.0);
    // Answered connections stay open for their next request.
    for w in &mut waiters[..10] {
        assert_eq!(w.get("/plaintext").status, 200);
    }
}

#[test]
fn a_long_poll_times_out_with_204_and_keeps_its_connection() {
    let srv = TestServer::demo(|c| c.demo.poll_timeout_ms = 200);
    let mut c = srv.client();
    let asked = Instant::now();
    let r = c.get("/poll?topic=quiet");
    assert_eq!(r.status, 204);
    assert!(asked.elapsed() >= Duration::from_millis(190));
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
}

#[test]
fn a_request_pipelined_behind_a_long_poll_is_answered_after_it() {
    let srv = TestServer::demo(|_| {});
    let mut c = hibernated_poll(&srv, "pipe", b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    // The pipelined request waits its turn.
    assert!(c.quiet_for(Duration::from_millis(100)));
    assert_eq!(srv.publish("pipe", b"first"), "1");
    assert_eq!(c.reply().text(), "first");
    assert_eq!(c.reply().text(), "Hello, World!");
}

#[test]
fn an_answer_larger_than_the_socket_buffer_is_finished_by_a_coroutine() {
    let srv = TestServer::demo(|_| {});
    let mut c = hibernated_poll(&srv, "big", b"");
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(srv.publish("big", &big), "1");
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(r.body == big, "the whole 4 MiB body arrives intact");
    assert_eq!(c.get("/plaintext").status, 200);
}

#[test]
fn shutdown_answers_hibernated_waits_and_closes() {
    let srv = TestServer::demo(|_| {});
    let mut c = hibernated_poll(&srv, "bye", b"");
    assert!(srv.shutdown(Duration::from_secs(2)));
    let r = c.reply();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_server());
}

#[test]
fn the_blocking_long_poll_still_works_on_its_coroutine() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    c.send(b"GET /poll/blocking?topic=plain HTTP/1.1\r\nHost: t\r\n\r\n");
    eventually(
        Duration::from_secs(5),
        "the blocking poll subscribes",
        || sum_of(&srv.metrics(), "corral_topic_subscribers") == 1.0,
    );
    assert_eq!(hibernating(&srv, "waiting"), 0.0, "it holds its coroutine");
    assert_eq!(srv.publish("plain", b"hi"), "1");
    assert_eq!(c.reply().text(), "hi");
}

#[test]
fn a_request_sent_while_a_long_poll_waits_is_answered_after_it() {
    let srv = TestServer::demo(|_| {});
    let mut c = hibernated_poll(&srv, "later", b"");
    // This one reaches the socket only now, while the ward holds it.
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.quiet_for(Duration::from_millis(100)));
    assert_eq!(srv.publish("later", b"first"), "1");
    assert_eq!(c.reply().text(), "first");
    assert_eq!(c.reply().text(), "Hello, World!");
}

#[test]
fn a_client_closing_a_hibernated_idle_connection_is_uncounted() {
    let srv = TestServer::demo(quick_hibernation);
    let mut c = srv.client();
    assert_eq!(c.get("/plaintext").status, 200);
    eventually(Duration::from_secs(5), "the connection hibernates", || {
        hibernating(&srv, "idle") >= 1.0
    });
    drop(c);
    // Only the connection asking for the metrics is left (and those hibernating from
    // earlier asks, which count as open too): compare open with hibernating.
    eventually(
        Duration::from_secs(2),
        "the closed connection is gone",
        || {
            let m = srv.metrics();
            sum_of(&m, "corral_scheduler_connections")
                == 1.0 + sum_of(&m, "corral_scheduler_hibernating_idle")
        },
    );
}

#[test]
fn a_resumed_answer_that_would_break_the_framing_is_a_500_that_closes() {
    // The ward encodes it: a 1xx status cannot end a response.
    let router = Router::new().get("/interim-later", |_: &Request| {
        Response::hibernate(
            Duration::from_secs(5),
            |waker: Waker<()>| {
                waker.wake(());
                Ok(|| {})
            },
            |_| Response::new(Status(103)),
        )
    });
    let srv = TestServer::start(common::test_config(), router);
    let mut c = srv.client();
    let r = c.get("/interim-later");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_server());
}

#[test]
fn a_subscribe_that_panics_is_a_counted_500_that_closes_and_names_the_route() {
    common::ErrorLog::install();
    let router = Router::new()
        .get("/plaintext", |_: &Request| "Hello, World!")
        .get("/subscribe-panics", |_: &Request| {
            Response::hibernate(
                Duration::from_secs(5),
                |_: Waker<()>| -> Result<fn(), Response> { panic!("subscribe fails on purpose") },
                |_| Response::text("never"),
            )
        });
    let srv = TestServer::start(common::test_config(), router);
    let mut c = srv.client();
    let r = c.get("/subscribe-panics");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_server());
    assert_eq!(srv.server().stats().panics(), 1);
    let logged = common::ErrorLog::lines_with("GET /subscribe-panics");
    assert!(
        logged
            .iter()
            .any(|l| l.contains("subscribe fails on purpose")),
        "{logged:?}"
    );
    // The scheduler goes on serving.
    assert_eq!(srv.client().get("/plaintext").text(), "Hello, World!");
}

#[test]
fn a_wait_with_a_timeout_too_long_to_represent_is_served() {
    // `Instant::now() + Duration::MAX` overflows: the deadline must saturate, not panic.
    let router = Router::new().get("/forever", |_: &Request| {
        Response::hibernate(
            Duration::MAX,
            |waker: Waker<&'static str>| {
                waker.wake("woken");
                Ok(|| {})
            },
            |wake| match wake {
                corral::Wake::Message(text) => Response::text(text),
                _ => Response::text("not woken"),
            },
        )
    });
    let srv = TestServer::start(common::test_config(), router);
    let mut c = srv.client();
    assert_eq!(c.get("/forever").text(), "woken");
    assert_eq!(c.get("/forever").text(), "woken", "the connection lives on");
}
