//! A connection's socket under may's I/O: registered with the epoll of worker fd % workers,
//! its reads and writes park the coroutine rather than block the scheduler.
//!
//! may's `CoIo` over a std stream rather than may's own `TcpStream`, whose timeout setters
//! also call `setsockopt` (SO_RCVTIMEO/SO_SNDTIMEO, which a non-blocking socket ignores):
//! two syscalls every connection paid, and one more whenever the loop's read timeout
//! changed. `CoIo` keeps a timeout only where its parked read or write looks for it.
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
use std::time::Duration;

use may::io::CoIo;

pub(crate) struct Socket(ManuallyDrop<CoIo<TcpStream>>);

impl Socket {
    /// Registers `fd` with may (on worker fd % workers) and makes it non-blocking.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Socket> {
        match CoIo::new(TcpStream::from(fd)) {
            Ok(io) => Ok(Socket(ManuallyDrop::new(io))),
            Err(err) => Err(io::Error::other(format!(
                "may could not register the socket: {err}"
            ))),
        }
    }

    /// The std stream, for what needs no waiting (an address, a non-blocking peek).
    pub(crate) fn stream(&self) -> &TcpStream {
        self.0.inner()
    }

    /// may's side, for its readiness wait and waker.
    pub(crate) fn io(&self) -> &CoIo<TcpStream> {
        &self.0
    }

    pub(crate) fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.0.set_read_timeout(Some(timeout))
    }

    pub(crate) fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.0.set_write_timeout(Some(timeout))
    }

    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf)
    }

    /// Off may's epoll, the descriptor still open: for a ward to hold.
    pub(crate) fn into_stream(self) -> TcpStream {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: the only take of this field: `this` is never dropped, so `Drop` does not
        // take it again.
        #[allow(unsafe_code)]
        let io = unsafe { ManuallyDrop::take(&mut this.0) };
        io.into_inner()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the only take of this field (`into_stream` forgets the Socket it takes from).
        #[allow(unsafe_code)]
        let io = unsafe { ManuallyDrop::take(&mut self.0) };
        // `into_inner` drops the registration (EPOLL_CTL_DEL); the stream closes after it.
        drop(io.into_inner());
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
