//! Memory a client can make the server commit. Its own test binary, with one test: the server
//! runs in this process, so the process's resident set is the server's only while nothing
//! else in the process allocates.

mod common;

use std::time::Duration;

use common::{CLIENT_TIMEOUT, Client, TestServer, eventually};

const HEADS: usize = 500;
/// Heads sent between checks, so a server that commits the declared bodies fails the test
/// after a few hundred MiB rather than after 4 GB.
const BATCH: usize = 25;
const BUDGET: u64 = 32 << 20;

#[test]
fn heads_declaring_large_bodies_commit_no_memory_for_them() {
    let srv = TestServer::demo(|c| {
        c.timeouts.body_timeout_ms = 60_000;
        c.timeouts.header_timeout_ms = 60_000;
    });
    // Warm up: lazy statics, the schedulers' first stacks, one request through.
    assert_eq!(srv.client().get("/plaintext").status, 200);
    let before = common::rss_bytes();
    let head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8000000\r\n\r\n";
    let mut clients: Vec<Client> = Vec::with_capacity(HEADS);
    while clients.len() < HEADS {
        for _ in 0..BATCH {
            let mut c = srv.client();
            c.send(head);
            clients.push(c);
        }
        // Every head sent so far is parsed and its request is waiting for its body.
        let n = clients.len();
        eventually(CLIENT_TIMEOUT, "every head is being served", || {
            srv.server().stats().inflight() == n
        });
        let grown = common::rss_bytes().saturating_sub(before);
        assert!(
            grown < BUDGET,
            "{n} heads of 8 MB bodies grew the resident set by {} MiB",
            grown >> 20
        );
    }
    let grown = common::rss_bytes().saturating_sub(before);
    eprintln!(
        "{HEADS} waiting 8 MB uploads: resident set +{} KiB ({} B each)",
        grown >> 10,
        grown / HEADS as u64
    );
    // The connections are still served: one of them completes its upload.
    let mut last = clients.pop().expect("one client");
    let body = vec![b'x'; 8_000_000];
    last.send(&body);
    last.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    let reply = last.reply();
    assert_eq!(reply.status, 200);
    assert!(reply.body == body, "the 8 MB body came back different");
}
