//! A connection's socket under may's I/O: registered with the epoll of worker fd % workers,
//! its reads and writes park the coroutine rather than block the scheduler.
//!
//! may's `CoIo` over a std stream rather than may's own `TcpStream`, whose timeout setters
//! also call `setsockopt` (SO_RCVTIMEO/SO_SNDTIMEO, which a non-blocking socket ignores):
//! two syscalls every connection paid, and one more whenever the loop's read timeout
//! changed. `CoIo` keeps a timeout only where its parked read or write looks for it.
//!
//! A read that follows a read which drained the socket waits for readiness first, with its
//! deadline kept by the scheduler (`runtime/input_wait.rs`), instead of trying the socket
//! (sure to fail) and parking on a timer of may's. "Drained" holds while nothing since that
//! read has reset may's readiness flag: writes go straight to the non-blocking socket and
//! only through may (which resets it) when the socket is full; any other may operation on
//! the socket forgets it. So an edge that came after the draining read is still flagged,
//! and `WaitIo` returns at once for it.
//!
//! One thing `CoIo` gets wrong for a server: its stream field drops before its registration,
//! so the descriptor would close before may takes it off the epoll set, and in between the
//! acceptor may be given the same number for a new connection, whose registration the late
//! `EPOLL_CTL_DEL` would then remove (that connection would never wake). `Socket` ends the
//! registration first, as may's `TcpStream` does.

use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use may::io::CoIo;

use super::transport::{at_least_a_millisecond, deadline_in};
use crate::runtime::home;

pub(crate) struct Socket {
    io: ManuallyDrop<CoIo<TcpStream>>,
    read_timeout: Option<Duration>,
    /// The last read emptied the socket, and may's readiness flag has not been reset since
    /// (module doc). Atomic only to be `Sync`: one coroutine owns the socket.
    drained: AtomicBool,
}

impl Socket {
    /// Registers `fd` with may (on worker fd % workers) and makes it non-blocking.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Socket> {
        match CoIo::new(TcpStream::from(fd)) {
            Ok(io) => Ok(Socket {
                io: ManuallyDrop::new(io),
                read_timeout: None,
                drained: AtomicBool::new(false),
            }),
            Err(err) => Err(io::Error::other(format!(
                "may could not register the socket: {err}"
            ))),
        }
    }

    /// The std stream, for what needs no waiting (an address, a non-blocking peek).
    pub(crate) fn stream(&self) -> &TcpStream {
        self.io.inner()
    }

    /// may's side, for its readiness wait and waker. What is done through it resets may's
    /// readiness flag: the next read tries the socket first.
    pub(crate) fn io(&self) -> &CoIo<TcpStream> {
        self.drained.store(false, Ordering::Relaxed);
        &self.io
    }

    pub(crate) fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.read_timeout = Some(timeout);
        self.io.set_read_timeout(Some(timeout))
    }

    pub(crate) fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.io.set_write_timeout(Some(timeout))
    }

    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io().peek(buf)
    }

    /// may's read, noting whether it drained the socket (a short read).
    fn read_and_note(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.io.read(buf)?;
        self.drained
            .store(n > 0 && n < buf.len(), Ordering::Relaxed);
        Ok(n)
    }

    /// The read after a draining one: readiness first, until the read timeout's deadline.
    fn read_when_ready(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = deadline_in(timeout);
        if !home::wait_input_until(&*self.io, deadline) {
            return self.read_and_note(buf); // off the schedulers: may's read
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // Readiness can be spurious (an edge for bytes already read): what is left of the
        // timeout goes to may's read, then the whole timeout is back for the next one.
        self.io
            .set_read_timeout(Some(at_least_a_millisecond(left)))?;
        let read = self.read_and_note(buf);
        self.io.set_read_timeout(Some(timeout))?;
        read
    }

    /// Off may's epoll, the descriptor still open: for a ward to hold.
    pub(crate) fn into_stream(self) -> TcpStream {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: the only take of this field: `this` is never dropped, so `Drop` does not
        // take it again.
        #[allow(unsafe_code)]
        let io = unsafe { ManuallyDrop::take(&mut this.io) };
        io.into_inner()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the only take of this field (`into_stream` forgets the Socket it takes from).
        #[allow(unsafe_code)]
        let io = unsafe { ManuallyDrop::take(&mut self.io) };
        // `into_inner` drops the registration (EPOLL_CTL_DEL); the stream closes after it.
        drop(io.into_inner());
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A load and a store, not a swap (a locked instruction): one coroutine owns it.
        let drained = self.drained.load(Ordering::Relaxed);
        match self.read_timeout {
            Some(timeout) if drained && !buf.is_empty() => {
                self.drained.store(false, Ordering::Relaxed);
                self.read_when_ready(buf, timeout)
            }
            _ => self.read_and_note(buf),
        }
    }
}

impl Write for Socket {
    /// Straight to the non-blocking socket; through may's write (which parks, and resets
    /// its readiness flag) only when the socket takes nothing now.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (&mut self.io.inner()).write(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                self.drained.store(false, Ordering::Relaxed);
                self.io.write(buf)
            }
            written => written,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
