//! `corral::sleep` over real sockets, alone in its process: the doorkeepers that keep each
//! scheduler's sleepers are process-wide, and another test's server would ring them (a
//! hibernated connection on its way home, the watchdog), hiding a ring that is missing here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Client, TestServer};
use corral::{Request, Router};

/// The tests here run one at a time: each one's traffic would wake the other's schedulers.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `/where` (its scheduler) and `/doze?ms=N`, which says on `asleep` that it goes to sleep,
/// then sleeps N ms and answers whether it lasted that long; on a server whose doorkeepers
/// nothing else wakes: the watchdog's rings and a hibernated connection coming home would,
/// and hide a ring (or a wake-up) that is missing.
fn server() -> (TestServer, mpsc::Receiver<()>) {
    let (asleep_tx, asleep) = mpsc::channel::<()>();
    let asleep_tx = Mutex::new(asleep_tx);
    let router = Router::new()
        .get("/where", |req: &Request| req.scheduler().to_string())
        // Says it goes to sleep, then sleeps `ms`; answers whether it lasted that long.
        .get("/doze", move |req: &Request| {
            let ms: u64 = req.query_as("ms").unwrap_or(5);
            let began = Instant::now();
            // No yield between this send and the sleep's park: once the test hears it, the
            // sleeper is in its scheduler's heap.
            let _ = asleep_tx.lock().unwrap().send(());
            corral::sleep(Duration::from_millis(ms));
            (began.elapsed() >= Duration::from_millis(ms)).to_string()
        });
    let mut config = common::test_config();
    config.runtime.stall_warn_ms = 0;
    config.timeouts.hibernate_after_ms = 0;
    (TestServer::start(config, router), asleep)
}

/// The doorkeeper wakes a sleeper from inside may's timer pass, after that round's run
/// queue: unless it ends the next epoll_wait, the sleeper waits for some other event.
#[test]
fn a_sleeper_on_an_idle_server_wakes_on_time() {
    let _serial = serial();
    let (server, asleep) = server();
    let mut client = server.client();
    let began = Instant::now();
    let reply = client.get("/doze?ms=20");
    asleep.recv().unwrap();
    assert_eq!(reply.text(), "true");
    // Generous for a loaded machine, far below may's idle epoll timeout.
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
}

#[test]
fn a_short_sleep_is_not_kept_waiting_behind_a_longer_one_on_its_scheduler() {
    let _serial = serial();
    let (server, asleep) = server();

    // Two connections on one scheduler (of 2, the third connection at the latest).
    let mut seen: Vec<(String, Client)> = Vec::new();
    let (mut long, mut short) = loop {
        let mut client = server.client();
        let k = client.get("/where").text().to_string();
        if let Some(i) = seen.iter().position(|(j, _)| *j == k) {
            break (seen.swap_remove(i).1, client);
        }
        seen.push((k, client));
    };

    long.send(b"GET /doze?ms=1500 HTTP/1.1\r\nHost: test\r\n\r\n");
    asleep.recv_timeout(common::CLIENT_TIMEOUT).unwrap();
    // Its doorkeeper now waits 1.5 s; a 5 ms sleeper must ring it to wait less.
    let began = Instant::now();
    let reply = short.get("/doze?ms=5");
    assert_eq!(reply.text(), "true");
    assert!(
        long.quiet_for(Duration::from_millis(1)),
        "the 5 ms sleep was answered only with the 1.5 s one, after {:?}",
        began.elapsed()
    );
    assert_eq!(long.reply().text(), "true");
}
