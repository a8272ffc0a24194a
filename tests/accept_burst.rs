//! A burst of connects larger than the listen backlog loses no handshake: an acceptor takes
//! what the kernel has queued before it serves what it took (`placement/accept.rs`, `Taken`),
//! so connections wait in the server, not in a kernel queue that drops past
//! `server.listen_backlog` (and whose clients then retransmit a second later).
//!
//! The client connects every 8 µs or so, so the kernel's queue fills in `BACKLOG` × 8 µs
//! (16 ms) of the server not accepting: that is the margin for the scheduler thread being
//! off its core. With a backlog of 512 (4 ms) one run in three lost a handshake to that
//! alone; served as accepted (the old acceptor), every run loses some.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use corral::{Request, Router};

/// The kernel's queue for the test: small, so that a burst overflows it unless the acceptor
/// keeps taking.
const BACKLOG: u32 = 2048;
/// Connections in the burst, each sending its request at once: three times the backlog
/// (two descriptors each, within the 20,000 a process may hold here).
const BURST: usize = 3 * BACKLOG as usize;
/// What each request costs the only scheduler, on top of its own work: serving the burst
/// takes several times as long as the client's connects. Served as accepted, thousands
/// would wait in the kernel; taken first, at most a batch's worth (16 × ~30 µs) of connects
/// arrives between two sweeps.
const WORK: Duration = Duration::from_micros(20);

/// Retransmitted segments of a client socket (a dropped SYN or first data: one or more).
#[allow(unsafe_code)]
fn retransmits(socket: &std::net::TcpStream) -> u32 {
    // SAFETY: tcp_info is plain integers, for which all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which outlives the call.
    let got = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(got, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_total_retrans
}

#[test]
fn a_burst_of_connects_three_times_the_backlog_is_accepted_without_a_retransmit() {
    // Two descriptors a connection in this process (client and server side).
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let wanted = (4 * BURST) as u64;
    if limit.current.is_some_and(|soft| soft < wanted) {
        let raised = rustix::process::Rlimit {
            current: Some(limit.maximum.map_or(wanted, |hard| hard.min(wanted))),
            maximum: limit.maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, raised)
            .expect("raise the soft descriptor limit");
    }
    let router = Router::new().get("/work", |_: &Request| {
        // Spins, never yielding: the scheduler is busy as a CPU-bound handler keeps it.
        let busy_until = Instant::now() + WORK;
        while Instant::now() < busy_until {
            std::hint::spin_loop();
        }
        "done"
    });
    let mut config = test_config();
    config.server.workers = 1;
    config.server.listen_backlog = BACKLOG;
    let srv = TestServer::start(config, router);

    let started = Instant::now();
    let mut burst: Vec<Client> = (0..BURST)
        .map(|_| {
            let mut c = srv.client();
            c.send(b"GET /work HTTP/1.1\r\nHost: t\r\n\r\n");
            c
        })
        .collect();
    let connecting = started.elapsed();
    for c in &mut burst {
        assert_eq!(c.reply().text(), "done");
    }
    let retransmitted: u32 = burst.iter().map(|c| retransmits(&c.stream)).sum();
    let dropped = burst.iter().filter(|c| retransmits(&c.stream) > 0).count();
    assert_eq!(
        retransmitted, 0,
        "{dropped} of {BURST} connections retransmitted ({retransmitted} segments) after \
         {connecting:?} of connects: the kernel's queue of {BACKLOG} overflowed"
    );
}
