//! What a graceful shutdown does to each kind of connection (in process): a keep-alive
//! request during the drain is answered with `Connection: close`, idle connections close
//! without holding the drain to their timeouts, `server.drain_delay_ms` keeps accepting with
//! `/healthz` at 503 before the socket closes.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Client, TestServer, eventually, sum_of};

/// Shuts `srv` down on a thread (it blocks until the drain ends): (whether it drained, how
/// long it took).
fn shut_down(srv: TestServer, drain: Duration) -> JoinHandle<(bool, Duration)> {
    std::thread::spawn(move || {
        let asked = Instant::now();
        let drained = srv.shutdown(drain);
        (drained, asked.elapsed())
    })
}

fn healthz(addr: SocketAddr) -> Option<u16> {
    TcpStream::connect(addr).ok()?;
    Some(Client::connect(addr).get("/healthz").status)
}

#[test]
fn the_drain_delay_keeps_accepting_with_healthz_at_503_then_the_socket_closes() {
    let srv = TestServer::demo(|c| c.server.drain_delay_ms = 400);
    let addr = srv.addr;
    assert_eq!(healthz(addr), Some(200));
    let done = shut_down(srv, Duration::from_secs(5));
    // A new connection during the delay is served, and says the server drains.
    eventually(Duration::from_secs(5), "healthz turns 503", || {
        healthz(addr) == Some(503)
    });
    let r = Client::connect(addr).get("/whoami");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    eventually(Duration::from_secs(5), "the socket closes", || {
        TcpStream::connect(addr).is_err()
    });
    let (drained, took) = done.join().expect("shutdown thread");
    assert!(drained);
    assert!(
        took >= Duration::from_millis(400),
        "the delay was kept: {took:?}"
    );
}

#[test]
fn a_request_on_an_idle_keep_alive_connection_during_the_drain_is_answered_with_close() {
    // Idle in its coroutine (hibernation far off) when the drain starts.
    let srv = TestServer::demo(|c| {
        c.timeouts.hibernate_after_ms = 3000;
        c.server.drain_delay_ms = 200;
    });
    let addr = srv.addr;
    let mut kept = srv.client();
    assert_eq!(kept.get("/plaintext").status, 200);
    let done = shut_down(srv, Duration::from_secs(5));
    eventually(Duration::from_secs(5), "the drain starts", || {
        healthz(addr) == Some(503)
    });
    let r = kept.get("/plaintext");
    assert_eq!((r.status, r.text()), (200, "Hello, World!"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(kept.closed_by_server());
    let (drained, _) = done.join().expect("shutdown thread");
    assert!(drained);
}

#[test]
fn idle_connections_do_not_hold_the_drain_to_their_timeouts() {
    // Without hibernation an idle connection waits out its idle timeout (60 s) in its
    // coroutine, and a fresh one that sent nothing its header timeout (10 s): accepted at
    // once, not left to the kernel until its first bytes (`server.defer_accept_ms`).
    let srv = TestServer::demo(|c| {
        c.timeouts.hibernate_after_ms = 0;
        c.server.defer_accept_ms = 0;
    });
    let mut idle = srv.client();
    assert_eq!(idle.get("/plaintext").status, 200);
    let mut silent = srv.client();
    let done = shut_down(srv, Duration::from_secs(8));
    assert!(idle.closed_by_server(), "the idle connection closes");
    assert!(silent.closed_by_server(), "the silent one closes");
    let (drained, took) = done.join().expect("shutdown thread");
    assert!(drained);
    assert!(took < Duration::from_secs(3), "the drain took {took:?}");
}

#[test]
fn a_hibernated_idle_connection_closes_at_once_in_a_drain() {
    let srv = TestServer::demo(|c| c.timeouts.hibernate_after_ms = 20);
    let mut idle = srv.client();
    assert_eq!(idle.get("/plaintext").status, 200);
    eventually(Duration::from_secs(5), "the connection hibernates", || {
        let m = srv.metrics();
        sum_of(&m, "corral_scheduler_hibernating_idle") >= 1.0
    });
    let done = shut_down(srv, Duration::from_secs(5));
    assert!(idle.closed_by_server());
    let (drained, took) = done.join().expect("shutdown thread");
    assert!(drained);
    assert!(took < Duration::from_millis(900), "the drain took {took:?}");
}

#[test]
fn a_drain_that_ends_with_idle_connections_only_counts_as_drained() {
    // One connection idle past the drain timeout in its coroutine: closed by the caller.
    let srv = TestServer::demo(|c| c.timeouts.hibernate_after_ms = 5000);
    let mut idle = srv.client();
    assert_eq!(idle.get("/plaintext").status, 200);
    let (drained, took) = shut_down(srv, Duration::from_millis(300))
        .join()
        .expect("shutdown thread");
    assert!(drained, "no request was in flight");
    assert!(took < Duration::from_secs(2), "the drain took {took:?}");
}
