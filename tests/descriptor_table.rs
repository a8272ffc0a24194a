//! The server sizes its descriptor table before its first connection
//! (`runtime::fd::grow_table`): in a multi-threaded process each doubling of the table as it
//! fills stops every descriptor allocation, `accept4` included, for an RCU grace period
//! (10–30 ms here), so a connect burst would meet a server that cannot accept, seven times
//! on the way to 16,384 connections. Its own process: the table never shrinks, and another
//! test's connections would grow it.

mod common;

use common::*;
use corral::{Request, Router};

/// Descriptor slots of this process's table (`FDSize` of /proc/self/status).
fn table_slots() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("FDSize:"))
        .and_then(|size| size.trim().parse().ok())
        .expect("FDSize in /proc/self/status")
}

#[test]
fn the_descriptor_table_is_sized_for_the_connections_before_the_first() {
    let before = table_slots();
    let srv = TestServer::start(test_config(), Router::new().get("/", |_: &Request| "ok"));
    // The server raised the soft limit to the hard one as it started.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let wanted = (limit / 2).min(65_536);
    let slots = table_slots();
    assert!(
        slots >= wanted,
        "{slots} descriptor slots after the start (were {before}), want at least {wanted} \
         for a limit of {limit}"
    );
    assert_eq!(srv.client().get("/").text(), "ok");
}
