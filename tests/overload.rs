//! Overload over real sockets: the connection limit, admission control by queueing delay,
//! and the watchdog of stuck schedulers (#11 §3). Each answer the server sheds is a 503
//! with `Retry-After`, counted in `corral_shed_total`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{CLIENT_TIMEOUT, Client, TestServer, eventually, parse_prometheus, sample};

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
    let srv = TestServer::demo(|_| {});
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let want = soft.map_or(0, |limit| limit - (limit / 16).max(64));
    let m = metrics(&mut srv.client());
    assert_eq!(sample(&m, "corral_connections_limit"), want as f64);
    assert_eq!(sample(&m, SHED_CONNECTIONS), 0.0);
}
