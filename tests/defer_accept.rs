//! `server.defer_accept_ms` (Linux `TCP_DEFER_ACCEPT`): a connection that has sent nothing
//! yet stays with the kernel. The server does not accept it, count it or give it a
//! coroutine until its first bytes come; then it is served as any other.

mod common;

use common::*;

/// Open connections the server counts, read over `via` (itself one of them).
fn open_connections(via: &mut Client) -> f64 {
    let reply = via.get("/metrics");
    assert_eq!(reply.status, 200);
    sum_of(
        &parse_prometheus(reply.text()),
        "corral_scheduler_connections",
    )
}

/// Opens a silent connection, then a second one that completes a request: the kernel queues
/// accepts in order, so by the time the second is answered the first was accepted, unless
/// the kernel held it back. Returns the silent connection and how many more connections the
/// server counts than before it (the second one stays open).
fn silent_then_served(srv: &TestServer) -> (Client, f64) {
    let mut observer = srv.client();
    let before = open_connections(&mut observer);
    let silent = srv.client();
    let mut second = srv.client();
    assert_eq!(second.get("/plaintext").status, 200);
    let after = open_connections(&mut observer);
    (silent, after - before)
}

#[test]
fn a_silent_connection_is_not_accepted_until_its_first_bytes_then_it_is_served() {
    let srv = TestServer::demo(|c| c.server.defer_accept_ms = 1000);
    let (mut silent, more) = silent_then_served(&srv);
    assert_eq!(
        more, 1.0,
        "only the connection that sent a request is counted"
    );
    let reply = silent.get("/plaintext");
    assert_eq!((reply.status, reply.text()), (200, "Hello, World!"));
}

#[test]
fn with_defer_accept_off_a_silent_connection_is_accepted_at_once() {
    // The control: the same steps count the silent connection too.
    let srv = TestServer::demo(|c| c.server.defer_accept_ms = 0);
    let (mut silent, more) = silent_then_served(&srv);
    assert_eq!(more, 2.0, "the silent connection is counted as well");
    assert_eq!(silent.get("/plaintext").status, 200);
}
