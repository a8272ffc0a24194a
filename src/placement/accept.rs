//! The acceptor: a dedicated OS thread that accepts, places and spawns connections.
//!
//! Accepting on a plain thread (Pauley §2.2's main thread) means a scheduler stuck in a
//! CPU-heavy handler never delays accepting or placing connections on the others.

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::fd::onto_residue;
use super::policy::RoundRobin;
use crate::http::conn;
use crate::server::Shared;

/// Pause after the process runs out of descriptors, so the accept loop does not spin.
const OUT_OF_FDS_BACKOFF: Duration = Duration::from_millis(50);

pub struct Acceptor {
    thread: Option<JoinHandle<()>>,
    /// A second handle on the listening socket: shutting it down wakes the blocked accept.
    waker: socket2::Socket,
    stopping: Arc<AtomicBool>,
}

impl Acceptor {
    pub fn start(listener: TcpListener, shared: Arc<Shared>) -> io::Result<Acceptor> {
        let waker = socket2::Socket::from(listener.try_clone()?);
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("corral-accept".into())
            .spawn(move || accept_loop(&listener, &shared, &stop))?;
        Ok(Acceptor {
            thread: Some(thread),
            waker,
            stopping,
        })
    }

    /// Stops accepting and waits for the acceptor thread; the listening socket is closed.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // On Linux, shutdown() on a listening socket makes a blocked accept() return EINVAL.
        let _ = self.waker.shutdown(std::net::Shutdown::Both);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the acceptor thread panicked");
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, stopping: &AtomicBool) {
    let mut policy = RoundRobin::default();
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Ok((socket, _peer)) => {
                let k = policy.choose(shared.workers);
                if let Err(err) = place(socket, k, shared) {
                    log::warn!("could not start a connection: {err}");
                }
            }
            Err(err) => match err.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    log::warn!("accept: {err}; pausing");
                    std::thread::sleep(OUT_OF_FDS_BACKOFF);
                }
                _ if err.kind() == io::ErrorKind::Interrupted => {}
                _ if err.kind() == io::ErrorKind::ConnectionAborted => {}
                _ => {
                    log::error!("accept: {err}");
                    std::thread::sleep(OUT_OF_FDS_BACKOFF);
                }
            },
        }
    }
}

/// Puts the socket on scheduler `k` (by its descriptor number) and spawns its coroutine there.
fn place(socket: std::net::TcpStream, k: usize, shared: &Arc<Shared>) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let workers = shared.workers;
    let fd = onto_residue(OwnedFd::from(socket), k, workers);
    let raw = fd.into_raw_fd();
    // may's from_raw_fd panics if epoll registration fails; keep the acceptor alive.
    let stream = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `raw` is an open socket descriptor we own (just released from an OwnedFd);
        // ownership passes to the may TcpStream.
        #[allow(unsafe_code)]
        unsafe {
            <may::net::TcpStream as FromRawFd>::from_raw_fd(raw)
        }
    }))
    .map_err(|_| io::Error::other("may could not register the socket with epoll"))?;
    // The descriptor number is the placement (may: fd % workers); normally equal to k.
    let scheduler = raw as usize % workers;
    let shared = shared.clone();
    let builder = may::coroutine::Builder::new()
        .id(scheduler)
        .stack_size(shared.config.server.stack_size_bytes / std::mem::size_of::<usize>());
    // SAFETY: may's spawn is unsafe because a coroutine must not overflow its fixed stack or
    // hold thread-locals across yields; the connection loop does neither and its stack size
    // is validated config (README "Caveats" tells handler authors the same).
    #[allow(unsafe_code)]
    let spawned = unsafe {
        builder.spawn(move || {
            let _open = shared.stats.open_connection(scheduler);
            conn::serve(stream, shared.clone(), scheduler);
        })
    };
    spawned.map(drop)
}
