//! `Server::reconfigure` over real sockets: live keys apply to connections already open,
//! the rest is reported as needing a restart, and a bad configuration changes nothing.

mod common;

use common::{Client, TestServer, test_config};
use corral::{Config, Policy, Server};

fn post_echo(c: &mut Client, body: &[u8]) -> u16 {
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes());
    c.send(body);
    c.reply().status
}

fn server() -> (TestServer, Config) {
    let config = test_config();
    let srv = TestServer::demo(|c| *c = config.clone());
    (srv, config)
}

#[test]
fn a_lower_body_limit_applies_to_the_next_request_of_an_open_connection() {
    let (srv, config) = server();
    let mut c = srv.client();
    assert_eq!(post_echo(&mut c, &[b'x'; 100]), 200);
    let mut smaller = config.clone();
    smaller.limits.max_body_bytes = 10;
    let done = srv.server().reconfigure(smaller).expect("valid");
    assert_eq!(done.applied, ["limits.max_body_bytes"]);
    assert!(done.needs_restart.is_empty());
    assert_eq!(post_echo(&mut c, &[b'x'; 100]), 413);
}

#[test]
fn a_shorter_header_timeout_applies_to_an_open_connection() {
    let (srv, config) = server();
    let mut c = srv.client();
    assert_eq!(c.get("/plaintext").status, 200);
    let mut impatient = config.clone();
    impatient.timeouts.header_timeout_ms = 100;
    srv.server().reconfigure(impatient).expect("valid");
    // Half a head: the default would wait 10 s, past the client's 5 s read timeout.
    c.send(b"GET /plaintext HTTP/1.1\r\n");
    assert_eq!(c.reply().status, 408);
}

#[test]
fn keys_that_need_a_restart_are_reported_and_keep_their_running_values() {
    let (srv, config) = server();
    let mut moved = config.clone();
    moved.server.listen = "127.0.0.1:1".into();
    moved.server.workers = 3;
    moved.placement.policy = Policy::RoundRobin;
    let done = srv.server().reconfigure(moved).expect("valid");
    assert_eq!(done.applied, ["placement.policy"]);
    assert_eq!(done.needs_restart, ["server.listen", "server.workers"]);
    let running = srv.server().config();
    assert_eq!(running.server.listen, "127.0.0.1:0");
    assert_eq!(running.server.workers, 2);
    assert_eq!(running.placement.policy, Policy::RoundRobin);
    assert_eq!(srv.client().get("/plaintext").status, 200);
}

#[test]
fn an_invalid_configuration_is_refused_with_the_start_error_and_changes_nothing() {
    let (srv, config) = server();
    let mut bad = config.clone();
    bad.limits.max_uri_bytes = bad.limits.max_head_bytes + 1;
    bad.limits.max_body_bytes = 10;
    let refused = srv.server().reconfigure(bad.clone()).expect_err("invalid");
    let router = common::app::demo::router(&bad);
    let at_start = Server::start(bad, router)
        .err()
        .expect("start refuses it too");
    assert_eq!(refused.to_string(), at_start.to_string());
    let mut c = srv.client();
    assert_eq!(post_echo(&mut c, &[b'x'; 100]), 200, "the old limit stays");
}
