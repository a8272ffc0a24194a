//! Slow clients (#11 §3, the CI-sized companion of `benches/slow.sh`): slowloris heads and
//! slow bodies cost bounded memory each, do not hold up normal clients, and are answered 408
//! and closed at their timeouts. Its own test binary, with one test: the server runs in this
//! process, so the process's resident set is the server's only while nothing else allocates.

mod common;

use std::time::Duration;

use common::{CLIENT_TIMEOUT, Client, TestServer, eventually};

const SLOWLORIS: usize = 200;
const SLOW_BODIES: usize = 100;
/// What one slow connection may cost: less than its coroutine's stack (64 KiB of address
/// space, of which it touches a few pages); its read buffer follows the bytes received. About
/// 21 KiB here (a debug build on glibc's malloc), 11 KiB in the release bench.
const BUDGET_EACH: u64 = 64 << 10;

#[test]
fn slow_clients_cost_bounded_memory_do_not_hold_up_others_and_get_408() {
    let srv = TestServer::demo(|c| {
        c.timeouts.header_timeout_ms = 2_000;
        c.timeouts.body_timeout_ms = 2_000;
    });
    // Warm up: lazy statics, the schedulers' first stacks, one request through.
    assert_eq!(srv.client().get("/plaintext").status, 200);
    let before = common::rss_bytes();
    let mut slow: Vec<Client> = Vec::with_capacity(SLOWLORIS + SLOW_BODIES);
    for _ in 0..SLOWLORIS {
        let mut c = srv.client();
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: 1");
        slow.push(c);
    }
    for _ in 0..SLOW_BODIES {
        let mut c = srv.client();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc");
        slow.push(c);
    }
    let stats = srv.server().stats();
    eventually(CLIENT_TIMEOUT, "every slow body is being read", || {
        stats.inflight() == SLOW_BODIES
    });
    let grown = common::rss_bytes().saturating_sub(before);
    let each = grown / slow.len() as u64;
    eprintln!(
        "{} slow connections: resident set +{} KiB ({} B each)",
        slow.len(),
        grown >> 10,
        each
    );
    assert!(each < BUDGET_EACH, "{each} B per slow connection");
    // Normal clients meanwhile: served at once, on fresh connections and kept-alive ones.
    let mut normal = srv.client();
    for _ in 0..50 {
        assert_eq!(srv.client().get("/plaintext").status, 200);
        assert_eq!(normal.get("/plaintext").status, 200);
    }
    // At their timeouts, every slow one is answered 408 and closed.
    for mut c in slow {
        assert_eq!(c.reply().status, 408);
        assert!(c.closed_by_server());
    }
    eventually(
        Duration::from_secs(2),
        "the slow connections are gone",
        || (0..2).map(|k| stats.connections(k)).sum::<usize>() == 1,
    );
}
