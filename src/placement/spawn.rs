//! Starting a connection on scheduler k: the descriptor number is the placement.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::fd::onto_residue;
use crate::http::conn::{self, Ending, Resume};
use crate::server::Shared;

/// Moves the socket onto a descriptor ≡ k (mod workers), registers it with may (so with
/// worker k's epoll) and spawns its connection coroutine on k's queue. From here on the
/// connection runs on k only. Returns the scheduler it really runs on (k unless out of fds).
/// `first_ns`: the expected cost of its first request if known, else the mix's mean counts.
pub fn start_connection(
    shared: &Arc<Shared>,
    socket: std::net::TcpStream,
    k: usize,
    first_ns: Option<u64>,
) -> io::Result<usize> {
    socket.set_nodelay(true)?;
    let workers = shared.workers;
    let fd = onto_residue(OwnedFd::from(socket), k, workers);
    // The descriptor number is the placement (may: fd % workers); normally equal to k.
    let scheduler = fd_scheduler(&fd, workers);
    let first_ns = first_ns.unwrap_or_else(|| shared.costs.mean_ns());
    shared.stats.connection_placed(scheduler, first_ns);
    match spawn(shared, fd, scheduler, Resume::fresh()) {
        Ok(()) => Ok(scheduler),
        Err(err) => {
            shared.stats.connection_failed(scheduler);
            Err(err)
        }
    }
}

/// Gives a hibernated connection (already on a descriptor ≡ k, still counted as open) a
/// coroutine again. On failure the socket is closed and uncounted.
pub(crate) fn resume_connection(
    shared: &Arc<Shared>,
    fd: OwnedFd,
    k: usize,
    resume: Resume,
) -> io::Result<()> {
    debug_assert_eq!(fd_scheduler(&fd, shared.workers), k);
    spawn(shared, fd, k, resume).inspect_err(|_| shared.stats.connection_closed(k))
}

fn fd_scheduler(fd: &OwnedFd, workers: usize) -> usize {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd() as usize % workers
}

fn spawn(shared: &Arc<Shared>, fd: OwnedFd, scheduler: usize, resume: Resume) -> io::Result<()> {
    let raw = fd.into_raw_fd();
    // may's from_raw_fd panics if epoll registration fails; keep the caller alive.
    let stream = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `raw` is an open socket descriptor we own (just released from an OwnedFd);
        // ownership passes to the may TcpStream.
        #[allow(unsafe_code)]
        unsafe {
            <may::net::TcpStream as FromRawFd>::from_raw_fd(raw)
        }
    }))
    .map_err(|_| io::Error::other("may could not register the socket with epoll"))?;
    let owner = shared.clone();
    let builder = may::coroutine::Builder::new()
        .id(scheduler)
        .stack_size(shared.config.server.stack_size_bytes / std::mem::size_of::<usize>());
    // SAFETY: may's spawn is unsafe because a coroutine must not overflow its fixed stack or
    // hold thread-locals across yields; the connection loop does neither and its stack size
    // is validated config (README "Caveats" tells handler authors the same).
    #[allow(unsafe_code)]
    let spawned = unsafe {
        builder.spawn(move || {
            let open = owner.stats.adopt_connection(scheduler);
            if let Ending::Hibernated = conn::serve(stream, &owner, scheduler, resume) {
                open.keep();
            }
        })
    };
    spawned.map(drop)
}
