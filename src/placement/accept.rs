//! The acceptor: a dedicated OS thread that accepts, places and spawns connections.
//!
//! Accepting on a plain thread (Pauley §2.2's main thread) means a scheduler stuck in a
//! CPU-heavy handler never delays accepting or placing connections on the others.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::policy::{LoadSnapshot, choose};
use super::queue::admit;
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
    let policy = shared.config.placement.policy;
    let mut rotor = 0;
    // Reused for every accept: the acceptor allocates nothing per connection.
    let mut loads = vec![LoadSnapshot::default(); shared.workers];
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::Acquire) {
            // A connection accepted while stopping is still served, not dropped.
            if let Ok((socket, _)) = accepted {
                admit(shared, socket, rotor % shared.workers);
            }
            return;
        }
        match accepted {
            Ok((socket, _peer)) => {
                shared.load_snapshots(&mut loads);
                let k = choose(&loads, policy, &mut rotor, socket.as_raw_fd() as usize);
                admit(shared, socket, k);
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
