//! Long-poll and SSE pub/sub on the topic process, over real sockets.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, eventually, parse_prometheus, sample};

fn subscribers(srv: &TestServer) -> f64 {
    let r = srv.client().get("/metrics");
    sample(&parse_prometheus(r.text()), "corral_topic_subscribers")
}

/// Far beyond any wait below: a poll timeout or SSE heartbeat this long cannot be what ends
/// a subscription in these tests, so what does is the hang-up or the drain itself.
const NEVER_MS: u64 = 600_000;

/// Drops the client's connection; its subscription must go because the client left — the
/// poll's timeout and the stream's next heartbeat are `NEVER_MS` away.
fn hang_up_and_expect_unsubscribed(srv: &TestServer, client: Client) {
    drop(client);
    eventually(
        common::CLIENT_TIMEOUT,
        "the subscriber is gone on the hang-up",
        || subscribers(srv) == 0.0,
    );
}

#[test]
fn a_thousand_concurrent_long_polls_all_receive_one_publish() {
    let srv = TestServer::demo(|_| {});
    let mut waiters: Vec<Client> = (0..1000).map(|_| srv.client()).collect();
    for w in &mut waiters {
        w.send(b"GET /poll?topic=crowd HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    eventually(Duration::from_secs(10), "1000 subscribers", || {
        subscribers(&srv) == 1000.0
    });
    assert_eq!(srv.publish("crowd", b"news"), "1000");
    for w in &mut waiters {
        let r = w.reply();
        assert_eq!((r.status, r.text()), (200, "news"));
    }
    assert_eq!(subscribers(&srv), 0.0);
}

#[test]
fn a_client_that_disconnects_mid_wait_is_unsubscribed_without_waiting_for_the_poll_timeout() {
    let srv = TestServer::demo(|c| c.demo.poll_timeout_ms = NEVER_MS);
    let mut c = srv.client();
    c.send(b"GET /poll?topic=gone HTTP/1.1\r\nHost: t\r\n\r\n");
    eventually(Duration::from_secs(5), "the waiter subscribes", || {
        subscribers(&srv) == 1.0
    });
    hang_up_and_expect_unsubscribed(&srv, c);
    // No waiter left on the connection count either (the metrics connections of the
    // polls above close concurrently: wait for the count to settle).
    eventually(
        Duration::from_secs(2),
        "only the asking connection is open",
        || {
            let m = parse_prometheus(srv.client().get("/metrics").text());
            common::sum_of(&m, "corral_scheduler_connections") == 1.0
        },
    );
}

#[test]
fn sse_delivers_events_in_order_with_heartbeats_and_resumes_from_last_event_id() {
    let srv = TestServer::demo(|c| c.demo.sse_heartbeat_ms = 100);
    let mut c = srv.client();
    c.send(b"GET /events?topic=feed HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.head();
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    c.read_until(b": subscribed");
    for body in ["one", "two\nlines", "three"] {
        assert_eq!(srv.publish("feed", body.as_bytes()), "1");
    }
    let text = c.read_until(b"data: three\n\n");
    let one = text.find("id: 1\ndata: one\n\n").expect("event 1");
    let two = text
        .find("id: 2\ndata: two\ndata: lines\n\n")
        .expect("event 2");
    let three = text.find("id: 3\ndata: three\n\n").expect("event 3");
    assert!(one < two && two < three, "{text}");
    c.read_until(b": heartbeat\n\n");

    let mut resumed = srv.client();
    resumed.send(b"GET /events?topic=feed HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 1\r\n\r\n");
    let text = resumed.read_until(b"data: three\n\n");
    assert!(!text.contains("data: one"), "{text}");
    assert!(text.find("id: 2\n").expect("2") < text.find("id: 3\n").expect("3"));
}

#[test]
fn a_crash_of_the_topic_process_gives_waiters_503_and_new_subscribers_work() {
    let srv = TestServer::demo(|_| {});
    let mut waiters: Vec<Client> = (0..3).map(|_| srv.client()).collect();
    for w in &mut waiters {
        w.send(b"GET /poll?topic=fragile HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    eventually(Duration::from_secs(5), "3 subscribers", || {
        subscribers(&srv) == 3.0
    });
    let mut c = srv.client();
    c.send(b"POST /topics/crash HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.reply().status, 200);
    for w in &mut waiters {
        assert_eq!(w.reply().status, 503);
    }
    // The supervisor restarted the process: a new waiter is served.
    let addr = srv.addr;
    // A poll that reaches the topics before the restart is done gets the 503 of a topic
    // process that is gone, as any client would; it comes back, as the app says to.
    let waiter = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = Client::connect(addr).get("/poll?topic=fragile");
            if r.status != 503 || Instant::now() >= deadline {
                return r;
            }
        }
    });
    eventually(Duration::from_secs(5), "the new waiter subscribes", || {
        subscribers(&srv) == 1.0
    });
    assert_eq!(srv.publish("fragile", b"back"), "1");
    let r = waiter.join().expect("waiter");
    assert_eq!((r.status, r.text()), (200, "back"));
    let m = parse_prometheus(srv.client().get("/metrics").text());
    assert_eq!(sample(&m, "corral_topic_restarts_total"), 1.0);
}

#[test]
fn an_sse_client_that_disconnects_is_unsubscribed_without_a_write_to_fail() {
    // Heartbeats far apart: the stream must notice the departure without writing.
    let srv = TestServer::demo(|c| c.demo.sse_heartbeat_ms = NEVER_MS);
    let mut c = srv.client();
    c.send(b"GET /events?topic=leaving HTTP/1.1\r\nHost: t\r\n\r\n");
    c.read_until(b": subscribed");
    assert_eq!(subscribers(&srv), 1.0);
    hang_up_and_expect_unsubscribed(&srv, c);
}

/// The drain ends an SSE stream itself: its heartbeat is `NEVER_MS` away and the drain
/// timeout is the client timeout, so a stream left to end on its own fails the drain.
#[test]
fn shutdown_ends_sse_streams_instead_of_waiting_for_them() {
    let srv = TestServer::demo(|c| c.demo.sse_heartbeat_ms = NEVER_MS);
    let mut c = srv.client();
    c.send(b"GET /events?topic=closing HTTP/1.1\r\nHost: t\r\n\r\n");
    c.read_until(b": subscribed");
    assert!(
        srv.shutdown(common::CLIENT_TIMEOUT),
        "the drain finished: the stream ended"
    );
    // The stream ends properly (last chunk) and the connection closes.
    c.read_until(b"0\r\n\r\n");
    assert!(c.closed_by_server());
}
