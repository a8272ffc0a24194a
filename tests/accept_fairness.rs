//! A flood of new connections does not starve the open ones: an acceptor hands its
//! scheduler back to epoll every few accepts (`placement/accept.rs`, `EpollTurn`), so the
//! input of a keep-alive connection is read while a backlog of thousands is still queued.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use corral::{Request, Router};

/// Connections queued at once behind the busy scheduler (twice as many descriptors in this
/// process: under a soft limit of 1024).
const FLOOD: usize = 400;

#[test]
fn a_keep_alive_request_is_answered_while_a_flood_of_new_connections_is_still_being_accepted() {
    let release = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let (first_served, on_first) = mpsc::sync_channel::<()>(1);
    let router = {
        let (release, served, served_k) = (release.clone(), served.clone(), served.clone());
        Router::new()
            // Holds the only scheduler, never yielding, until the test lets it go.
            .get("/hog", move |_: &Request| {
                let give_up = Instant::now() + Duration::from_secs(10);
                while !release.load(Ordering::Acquire) && Instant::now() < give_up {
                    std::hint::spin_loop();
                }
                "released"
            })
            // 100 µs each, so that serving the flood takes ~40 ms: time enough for the test
            // thread to ask on the open connection, however busy the machine.
            .get("/flood", move |_: &Request| {
                let busy_until = Instant::now() + Duration::from_micros(100);
                while Instant::now() < busy_until {
                    std::hint::spin_loop();
                }
                if served.fetch_add(1, Ordering::AcqRel) == 0 {
                    let _ = first_served.try_send(());
                }
                "ok"
            })
            // How many flood connections were served before this request was.
            .get("/count", move |_: &Request| {
                served_k.load(Ordering::Acquire).to_string()
            })
    };
    let mut config = test_config();
    config.server.workers = 1;
    let srv = TestServer::start(config, router);
    let mut kept = srv.client();
    assert_eq!(kept.get("/count").text(), "0");

    let addr = srv.addr;
    let hog = std::thread::spawn(move || Client::connect(addr).get("/hog").status);
    eventually(Duration::from_secs(5), "the hog runs", || {
        srv.server().stats().inflight() == 1
    });
    // Queued in the kernel, each with its request, while the scheduler is held.
    let mut flood: Vec<Client> = (0..FLOOD)
        .map(|_| {
            let mut c = srv.client();
            c.send(b"GET /flood HTTP/1.1\r\nHost: t\r\n\r\n");
            c
        })
        .collect();
    release.store(true, Ordering::Release);
    assert_eq!(hog.join().expect("hog thread"), 200);
    // The acceptor is working through the flood now: ask on the open connection.
    on_first
        .recv_timeout(CLIENT_TIMEOUT)
        .expect("the flood is being served");
    let before: usize = kept.get("/count").text().parse().expect("a count");
    assert!(
        before < FLOOD / 2,
        "the open connection waited for {before} of {FLOOD} new ones"
    );
    for c in &mut flood {
        assert_eq!(c.reply().status, 200);
    }
}
