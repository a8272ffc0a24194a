//! The acceptor: a dedicated OS thread that accepts, places and admits connections.
//!
//! Accepting on a plain thread (Pauley §2.2's main thread) means a scheduler stuck in a
//! CPU-heavy handler never delays accepting or placing connections on the others. The
//! listening socket outlives any one acceptor thread: when the listener process that owns a
//! thread dies, the thread retires and its successor accepts from the same socket, so
//! connections waiting in the backlog meanwhile are not lost.
//!
//! When the server drains, the last thing an acceptor does is take every connection already
//! queued on the socket (answered with `Connection: close`), and only then let go of it:
//! closing a listening socket resets the connections still in its queue. With
//! `server.reuse_port` that queue is this process's alone, so what arrives between the last
//! accept and the close (an instant) is reset unless the kernel migrates it to another
//! listener of the port (`net.ipv4.tcp_migrate_req`); a SIGUSR2 handoff shares one queue
//! with the next process and loses nothing (`server/handoff.rs`).

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::peek::first_route;
use super::policy::{LoadSnapshot, Policy, choose};
use super::{Placement, Start};
use crate::router::Router;

/// Pause after the process runs out of descriptors, so the accept loop does not spin: the
/// connection that failed stays in the listen backlog, and accept would fail again at once.
/// 50 ms: 20 tries a second cost nothing measurable, and a freed descriptor is taken soon.
const OUT_OF_FDS_BACKOFF: Duration = Duration::from_millis(50);
/// How often a blocked accept wakes to check whether its thread should retire
/// (set as SO_RCVTIMEO on the listening socket).
pub const ACCEPT_WAKE: Duration = Duration::from_millis(100);

/// What an acceptor works with: where to place, what to peek with, how to start.
#[derive(Clone)]
pub(crate) struct Acceptance {
    pub placement: Arc<Placement>,
    pub router: Arc<Router>,
    pub start: Arc<dyn Start>,
}

/// Owns one acceptor thread; dropping it retires the thread (within `ACCEPT_WAKE`).
pub struct AcceptorThread {
    retired: Arc<AtomicBool>,
}

impl Drop for AcceptorThread {
    fn drop(&mut self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// Starts an acceptor thread on `listener`. If the thread dies of a panic, `on_death` gets
/// the panic message (the listener process turns it into its own exit, for its supervisor).
pub(crate) fn spawn_acceptor(
    listener: Arc<TcpListener>,
    with: Acceptance,
    on_death: impl FnOnce(String) + Send + 'static,
) -> io::Result<AcceptorThread> {
    let retired = Arc::new(AtomicBool::new(false));
    let flag = retired.clone();
    let placement = with.placement.clone();
    placement.acceptors.fetch_add(1, Ordering::AcqRel);
    let spawned = std::thread::Builder::new()
        .name("corral-accept".into())
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                accept_loop(&listener, &with, &flag);
            }));
            placement.acceptors.fetch_sub(1, Ordering::AcqRel);
            if let Err(panic) = outcome {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "acceptor panicked".into());
                on_death(why);
            }
        });
    Ok(AcceptorThread {
        retired: spawned.map(|_| retired)?,
    })
}

fn accept_loop(listener: &TcpListener, with: &Acceptance, retired: &AtomicBool) {
    let placement = &*with.placement;
    let (costs, stats) = (&placement.costs, &placement.stats);
    let mut rotor = 0;
    // Reused for every accept: the acceptor allocates nothing per connection.
    let mut loads = vec![LoadSnapshot::default(); placement.workers];
    let mut place = |socket: std::net::TcpStream| {
        if placement.open_connections() >= placement.max_connections {
            stats.record_connection_shed();
            with.start.refuse(socket);
            return;
        }
        // One scheduler leaves nothing to choose: no load snapshot, no peek (a syscall).
        if placement.workers == 1 {
            stats.record_placement(false);
            placement.admit(socket, 0, None, &*with.start);
            return;
        }
        // Per connection: a reload may change it (`Placement::set_policy`).
        let policy = placement.policy();
        placement.load_snapshots(&mut loads);
        let k = choose(&loads, policy, &mut rotor, socket.as_raw_fd() as usize);
        // Only `cost` uses the first route, and only to count its cost from now on.
        let first_ns = (policy == Policy::Cost)
            .then(|| first_route(socket.as_fd(), &with.router))
            .flatten()
            .map(|route| costs.expected_ns(costs.slot(route)));
        stats.record_placement(first_ns.is_some());
        placement.admit(socket, k, first_ns, &*with.start);
    };
    // Pauses in the current run of out-of-descriptor failures (logged once per run).
    let mut paused = 0u64;
    // Retired by the listener process ending: the server stops accepting (a drain, after
    // its `drain_delay_ms`), or the process is restarted on the same socket.
    while !retired.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((socket, _peer)) => {
                if std::mem::take(&mut paused) > 0 {
                    log::info!("accept: descriptors free again");
                }
                place(socket);
            }
            Err(err) => match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR | libc::ECONNABORTED) => {}
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    if paused == 0 {
                        log::warn!(
                            "accept: {err}; new connections wait in the listen backlog, \
                             tried every {OUT_OF_FDS_BACKOFF:?} (raise `ulimit -n`, or lower \
                             limits.max_connections so that they get a 503 first)"
                        );
                    }
                    paused += 1;
                    stats.record_accept_pause();
                    std::thread::sleep(OUT_OF_FDS_BACKOFF);
                }
                _ => {
                    log::error!("accept: {err}");
                    std::thread::sleep(OUT_OF_FDS_BACKOFF);
                }
            },
        }
    }
    if stats.is_draining() {
        // What is queued now would be reset when the socket closes (module docs).
        while queued(listener) {
            match listener.accept() {
                Ok((socket, _peer)) => place(socket),
                // Another process sharing the socket took it first, or it went away.
                Err(_) => break,
            }
        }
    }
}

/// Whether a connection waits in the listening socket's queue now. A poll, not a
/// non-blocking accept: `O_NONBLOCK` belongs to the open file, which a SIGUSR2 handoff
/// shares with the next process, whose acceptor relies on blocking accepts.
fn queued(listener: &TcpListener) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}
