//! The connection loop over in-memory bytes: a scripted client ([`Memory`]) and a server's
//! shared state with one scheduler and no hibernation ([`shared_for`]). No socket, no
//! scheduler, no server.
//!
//! Compiled for the unit tests (`conn/tests.rs`, which watch every read and write through an
//! [`Observe`]r) and, under the `bench-internals` feature, for the micro-benchmarks
//! (`benches/micro.rs` through `corral::__bench`), which play a script many times over and
//! only [`Tally`] what comes back, so that the transport itself costs next to nothing, and
//! for the fuzz targets (`fuzz/`, through the same module), which [`Capture`] every byte the
//! server wrote to check its framing.

use std::cell::Cell;
#[cfg(feature = "bench-internals")]
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::resume::{Ending, Resume};
use super::serve::serve;
use super::transport::Transport;
use crate::config::Config;
use crate::router::Router;

/// What a test or a benchmark sees of the loop's I/O on a [`Memory`] stream.
pub(crate) trait Observe {
    /// A read was offered `offered` bytes of buffer and got `got` (0: the client closed).
    fn read(&mut self, offered: usize, got: usize) {
        let _ = (offered, got);
    }

    /// One `write` call, with the bytes it carried.
    fn wrote(&mut self, bytes: &[u8]) {
        let _ = bytes;
    }

    /// A read, offered `offered` bytes of buffer, met a [`STALL`] and timed out.
    fn timed_out(&mut self, offered: usize) {
        let _ = offered;
    }

    /// A peek met a [`STALL`] and timed out.
    fn peek_timed_out(&mut self) {}

    /// The loop set the read timeout.
    fn read_timeout(&mut self, timeout: Duration) {
        let _ = timeout;
    }

    /// The loop sent FIN (`Transport::shutdown_write`).
    fn shutdown_write(&mut self) {}

    /// The loop closed the stream with `unread` bytes of the client's script not read: on a
    /// socket, a close with input unread (or still arriving) is a reset, not a FIN.
    fn closed(&mut self, unread: usize) {
        let _ = unread;
    }
}

/// A script chunk that is silence: the read or peek that meets it times out, as if the
/// client sent nothing for longer than the read timeout set; the script then goes on.
pub(crate) const STALL: &[u8] = &[];

/// Sees nothing.
impl Observe for () {}

/// Counts the server's `write` calls and the bytes they carried.
#[derive(Clone, Default)]
pub(crate) struct Tally {
    writes: Rc<Cell<u64>>,
    bytes: Rc<Cell<u64>>,
}

impl Tally {
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }
}

impl Observe for Tally {
    fn wrote(&mut self, bytes: &[u8]) {
        self.writes.set(self.writes.get() + 1);
        self.bytes.set(self.bytes.get() + bytes.len() as u64);
    }
}

/// Keeps every byte the server wrote, in order, and whether the loop read the client's close.
#[cfg(feature = "bench-internals")]
#[derive(Clone, Default)]
pub(crate) struct Capture {
    out: Rc<RefCell<Vec<u8>>>,
    saw_close: Rc<Cell<bool>>,
}

#[cfg(feature = "bench-internals")]
impl Capture {
    /// Everything written so far.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.out.borrow_mut())
    }

    /// Whether a read returned 0 (the loop reached the end of the script).
    pub fn saw_close(&self) -> bool {
        self.saw_close.get()
    }
}

#[cfg(feature = "bench-internals")]
impl Observe for Capture {
    fn read(&mut self, offered: usize, got: usize) {
        if got == 0 && offered > 0 {
            self.saw_close.set(true);
        }
    }

    fn wrote(&mut self, bytes: &[u8]) {
        self.out.borrow_mut().extend_from_slice(bytes);
    }
}

/// A client that sends its script of chunks (each arrives as one read: the split points;
/// a [`STALL`] is a read timeout) `rounds` times over, then closes. What the server does to
/// the stream goes to the observer.
pub(crate) struct Memory<O: Observe = ()> {
    script: Vec<Vec<u8>>,
    /// Rounds still to play, the current one included.
    rounds: usize,
    /// The chunk being read, and how much of it has been.
    next: usize,
    at: usize,
    observer: O,
    /// What `Transport::input_age` reports (admission control's view of the wait).
    pub input_age: Option<Duration>,
}

impl<O: Observe> Memory<O> {
    /// Sends `chunks` once, then closes.
    #[cfg(test)]
    pub fn new(chunks: &[&[u8]], observer: O) -> Self {
        Self::repeat(chunks, 1, observer)
    }

    /// Sends `chunks` `rounds` times over, then closes. Nothing is allocated per round.
    pub fn repeat(chunks: &[&[u8]], rounds: usize, observer: O) -> Self {
        let script: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let rounds = if script.is_empty() { 0 } else { rounds };
        Memory {
            script,
            rounds,
            next: 0,
            at: 0,
            observer,
            input_age: None,
        }
    }

    /// The unread rest of the current chunk; `None` once the script is played out.
    fn pending(&self) -> Option<&[u8]> {
        (self.rounds > 0).then(|| &self.script[self.next][self.at..])
    }

    /// The script's bytes not yet read, the rounds still to play included.
    fn unread(&self) -> usize {
        let Some(rest) = self.pending() else {
            return 0;
        };
        let round: usize = self.script.iter().map(Vec::len).sum();
        let rest_of_round: usize = self.script[self.next + 1..].iter().map(Vec::len).sum();
        rest.len() + rest_of_round + round * (self.rounds - 1)
    }

    fn advance(&mut self, n: usize) {
        self.at += n;
        if self.at == self.script[self.next].len() {
            self.at = 0;
            self.next += 1;
            if self.next == self.script.len() {
                self.next = 0;
                self.rounds -= 1;
            }
        }
    }
}

impl<O: Observe> Read for Memory<O> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.pending() {
            Some(STALL) => {
                self.advance(0);
                self.observer.timed_out(buf.len());
                return Err(io::ErrorKind::TimedOut.into());
            }
            Some(chunk) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                self.advance(n);
                n
            }
            None => 0,
        };
        self.observer.read(buf.len(), n);
        Ok(n)
    }
}

impl<O: Observe> Write for Memory<O> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.observer.wrote(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<O: Observe> Transport for Memory<O> {
    const HIBERNATES: bool = false;

    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.observer.read_timeout(timeout);
        Ok(())
    }

    fn set_write_timeout(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }

    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(chunk) = self.pending() else {
            return Ok(0);
        };
        if chunk == STALL {
            // The peek waited its timeout and nothing came: the silence is over.
            self.advance(0);
            self.observer.peek_timed_out();
            return Err(io::ErrorKind::TimedOut.into());
        }
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.observer.shutdown_write();
        Ok(())
    }

    fn peer_closed(&self) -> bool {
        self.pending().is_none()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }

    fn input_age(&self) -> Option<Duration> {
        self.input_age
    }

    fn into_fd(self) -> Result<OwnedFd, Self> {
        Err(self)
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }

    fn ready_to_wait(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn wait_input(&self) {}

    fn wakeup(&self) -> crate::http::websocket::Wakeup {
        std::sync::Arc::new(|| {})
    }
}

impl<O: Observe> Drop for Memory<O> {
    fn drop(&mut self) {
        let unread = self.unread();
        self.observer.closed(unread);
    }
}

/// A server's shared state for `router` with one scheduler and no hibernation (an in-memory
/// stream cannot hibernate); otherwise the embedded default config.
pub(crate) fn shared_for(router: Router) -> io::Result<Arc<Shared>> {
    let mut config = Config::embedded();
    config.timeouts.hibernate_after_ms = 0;
    Shared::new(&config, router, 1, usize::MAX).map(Arc::new)
}

/// Serves one connection over `memory` on scheduler 0, on the calling thread, until the
/// client's script is played out (or the loop closes the connection earlier).
pub(crate) fn serve_memory<O: Observe>(shared: &Arc<Shared>, memory: Memory<O>) -> Ending {
    serve(memory, shared, 0, Resume::fresh())
}
