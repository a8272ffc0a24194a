//! The demo's processes over HTTP: `GET /inbox/:name` registers its connection under a name
//! and waits hibernated for one message; `POST /send/:name` sends it one.

mod common;

use std::time::Duration;

use common::{Client, Reply, TestServer, eventually, sum_of};

fn waiting(srv: &TestServer) -> f64 {
    sum_of(&srv.metrics(), "corral_scheduler_hibernating_waiting")
}

fn send(srv: &TestServer, name: &str, body: &str) -> Reply {
    let mut c = srv.client();
    let head = format!(
        "POST /send/{name} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes());
    c.send(body.as_bytes());
    c.reply()
}

/// A client whose `GET /inbox/:name` is registered and hibernating.
fn waiting_inbox(srv: &TestServer, name: &str) -> Client {
    let mut c = srv.client();
    c.send(format!("GET /inbox/{name} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    eventually(Duration::from_secs(5), "the inbox hibernates", || {
        waiting(srv) == 1.0
    });
    c
}

#[test]
fn a_send_reaches_the_connection_waiting_under_its_name() {
    let srv = TestServer::demo(|_| {});
    let mut alice = waiting_inbox(&srv, "alice");
    let sent = send(&srv, "alice", "hello, alice");
    assert_eq!(sent.status, 200, "{}", sent.text());
    let got = alice.reply();
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "hello, alice");
    // The wait gave its name up with its answer: the same connection can wait again.
    assert_eq!(send(&srv, "alice", "late").status, 404);
    alice.send(b"GET /inbox/alice HTTP/1.1\r\nHost: t\r\n\r\n");
    eventually(Duration::from_secs(5), "the second wait hibernates", || {
        waiting(&srv) == 1.0
    });
    assert_eq!(send(&srv, "alice", "twice").status, 200);
    assert_eq!(alice.reply().text(), "twice");
}

#[test]
fn a_send_to_a_name_nobody_holds_is_404() {
    let srv = TestServer::demo(|_| {});
    let reply = send(&srv, "nobody", "anyone there?");
    assert_eq!(reply.status, 404);
}

#[test]
fn a_name_already_taken_is_409() {
    let srv = TestServer::demo(|_| {});
    let _bob = waiting_inbox(&srv, "bob");
    let mut second = srv.client();
    let reply = second.get("/inbox/bob");
    assert_eq!(reply.status, 409, "{}", reply.text());
}

#[test]
fn the_name_is_freed_when_the_client_hangs_up() {
    let srv = TestServer::demo(|_| {});
    let carol = waiting_inbox(&srv, "carol");
    drop(carol);
    // The ward sees the hang-up, closes the socket and ends the process: its name goes.
    eventually(Duration::from_secs(5), "the name is freed", || {
        send(&srv, "carol", "gone?").status == 404
    });
    // And it can be taken again.
    let mut dave = waiting_inbox(&srv, "carol");
    assert_eq!(send(&srv, "carol", "new holder").status, 200);
    assert_eq!(dave.reply().text(), "new holder");
}

#[test]
fn an_inbox_times_out_with_204_and_frees_its_name() {
    let srv = TestServer::demo(|config| config.demo.poll_timeout_ms = 100);
    let mut c = srv.client();
    let reply = c.get("/inbox/erin");
    assert_eq!(reply.status, 204);
    assert_eq!(send(&srv, "erin", "too late").status, 404);
}
