//! A coroutine per connection, on scheduler k: for placement (a new connection) and for the
//! wards (a hibernated one taking its coroutine back, on its old scheduler or where
//! placement at wake moved it). The descriptor is already ≡ k (mod workers), so may registers
//! it with worker k's epoll and wakes it there.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::Shared;
use super::refuse::refuse_connection;
use super::resume::{Ending, Resume};
use super::serve::serve;
use super::socket::Socket;
use crate::placement::Start;

/// How placement starts the connections it placed.
impl Start for Arc<Shared> {
    fn start(&self, fd: OwnedFd, k: usize) -> io::Result<()> {
        spawn(self, fd, k, Resume::fresh())
    }

    fn refuse(&self, socket: std::net::TcpStream) {
        refuse_connection(socket);
    }
}

/// Gives a hibernated connection (already on a descriptor ≡ k, still counted as open on k)
/// a coroutine again. On failure the socket is closed and uncounted (and, if placement at
/// wake counted it as fresh on k, taken off that too).
pub(crate) fn resume_connection(
    shared: &Arc<Shared>,
    fd: OwnedFd,
    k: usize,
    resume: Resume,
) -> io::Result<()> {
    debug_assert_eq!(fd.as_raw_fd() as usize % shared.workers, k);
    let placed = resume.is_placed();
    spawn(shared, fd, k, resume).inspect_err(|_| {
        if placed {
            shared.stats.connection_failed(k);
        } else {
            shared.stats.connection_closed(k);
        }
    })
}

fn spawn(shared: &Arc<Shared>, fd: OwnedFd, scheduler: usize, resume: Resume) -> io::Result<()> {
    let stream = Socket::new(fd)?;
    let owner = shared.clone();
    let builder = may::coroutine::Builder::new()
        .id(scheduler)
        .stack_size(shared.stack_size_bytes / std::mem::size_of::<usize>());
    // SAFETY: may's spawn is unsafe because a coroutine must not overflow its fixed stack or
    // hold thread-locals across yields; the connection loop does neither and its stack size
    // is validated config (README "Caveats" tells handler authors the same).
    #[allow(unsafe_code)]
    let spawned = unsafe {
        builder.spawn(move || {
            let open = owner.stats.adopt_connection(scheduler);
            if let Ending::Hibernated = serve(stream, &owner, scheduler, resume) {
                open.keep();
            }
        })
    };
    spawned.map(drop)
}
