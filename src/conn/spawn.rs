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
    fn start(&self, fd: OwnedFd, k: usize, here: bool) -> io::Result<()> {
        let when = if here { When::Now } else { When::Queued };
        spawn(self, fd, k, Resume::fresh(), when)
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
    spawn(shared, fd, k, resume, When::Queued).inspect_err(|_| {
        if placed {
            shared.stats.connection_failed(k);
        } else {
            shared.stats.connection_closed(k);
        }
    })
}

/// When a new coroutine first runs.
enum When {
    /// From k's queue, once k gets to it (the caller may be on any thread).
    Queued,
    /// At once, until it first waits, and then the caller goes on: the caller is a
    /// coroutine on k (its acceptor). A connection's request is usually there when it is
    /// accepted, so it is read and answered before the next accept, and a burst of accepts
    /// never has more coroutines (and stacks) alive than connections waiting for input.
    /// Queued, a burst of thousands would each get a stack before any of them ran.
    Now,
}

fn spawn(
    shared: &Arc<Shared>,
    fd: OwnedFd,
    scheduler: usize,
    resume: Resume,
    when: When,
) -> io::Result<()> {
    let stream = Socket::new(fd);
    let owner = shared.clone();
    let builder = may::coroutine::Builder::new()
        .id(scheduler)
        .stack_size(shared.stack_size_bytes / std::mem::size_of::<usize>());
    // SAFETY: may's spawn is unsafe because a coroutine must not overflow its fixed stack or
    // hold thread-locals across yields; the connection loop does neither and its stack size
    // is validated config (README "Caveats" tells handler authors the same).
    #[allow(unsafe_code)]
    let spawned = unsafe {
        let run = move || {
            let open = owner.stats.adopt_connection(scheduler);
            if let Ending::Hibernated = serve(stream, &owner, scheduler, resume) {
                open.keep();
            }
        };
        match when {
            When::Queued => builder.spawn(run),
            // may's `spawn_local`: resumed right here, nested in the caller's coroutine;
            // when it first waits, may parks it as any other and returns to the caller.
            When::Now => builder.spawn_local(run),
        }
    };
    spawned.map(drop)
}
