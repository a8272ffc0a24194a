//! A connection's socket under may's I/O: its reads and writes park the coroutine rather
//! than block the scheduler, once it is registered with the epoll of worker fd % workers.
//!
//! **Registered only when it must wait.** Most connections' first request is in the socket
//! when it is accepted (with `server.defer_accept_ms`, always), and many connections are
//! closed after one answer. Until a read or write finds nothing to do (`EAGAIN`), the socket
//! is used directly with non-blocking calls; only then is it registered with may (an
//! `EPOLL_CTL_ADD`, two `fcntl`s and may's event record, and an `EPOLL_CTL_DEL` at the end).
//! A one-request connection never pays them. Registering late loses no wake-up: epoll
//! reports a descriptor that is already readable when it is added.
//!
//! may's `CoIo` over an alias of the std stream rather than may's own `TcpStream`, whose
//! timeout setters also call `setsockopt` (SO_RCVTIMEO/SO_SNDTIMEO, which a non-blocking
//! socket ignores): two syscalls every connection paid, and one more whenever the loop's
//! read timeout changed. `CoIo` keeps a timeout only where its parked read or write looks
//! for it.
//!
//! A read that follows a read which drained the socket waits for readiness first, with its
//! deadline kept by the scheduler (`runtime/input_wait.rs`), instead of trying the socket
//! (sure to fail) and parking on a timer of may's. "Drained" holds while nothing since that
//! read has reset may's readiness flag: writes go straight to the non-blocking socket and
//! only through may (which resets it) when the socket is full; any other may operation on
//! the socket forgets it. So an edge that came after the draining read is still flagged,
//! and `WaitIo` returns at once for it.
//!
//! The registration ends before the descriptor closes (field order): closed first, its
//! number could be given to a new connection, whose registration the late `EPOLL_CTL_DEL`
//! would then remove (that connection would never wake).

use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use may::io::CoIo;
use rustix::net::{RecvFlags, SendFlags, recv, send};

use super::transport::{at_least_a_millisecond, deadline_in};
use crate::runtime::home;

pub(crate) struct Socket {
    /// may's registration, made at the first wait. Declared before `stream`, so it is
    /// dropped (taken off the epoll set) before the descriptor closes.
    io: OnceLock<CoIo<Alias>>,
    stream: TcpStream,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// The last read emptied the socket, and may's readiness flag has not been reset since
    /// (module doc). Atomic only to be `Sync`: one coroutine owns the socket.
    drained: AtomicBool,
}

/// The socket's descriptor as may's `CoIo` wants it (a `Read + Write + AsRawFd` it owns),
/// without owning it: `Socket::stream` does, and outlives it.
pub(crate) struct Alias(ManuallyDrop<TcpStream>);

impl Alias {
    fn of(stream: &TcpStream) -> Alias {
        // SAFETY: the alias never closes the descriptor (`ManuallyDrop`), and lives in the
        // `Socket` that owns `stream`, dropped before it.
        #[allow(unsafe_code)]
        let alias = unsafe { TcpStream::from_raw_fd(stream.as_raw_fd()) };
        Alias(ManuallyDrop::new(alias))
    }
}

impl AsRawFd for Alias {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Read for Alias {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Alias {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket {
    /// A socket for a coroutine: nothing is done to it until it must wait (module doc).
    pub(crate) fn new(fd: OwnedFd) -> Socket {
        Socket {
            io: OnceLock::new(),
            stream: TcpStream::from(fd),
            read_timeout: None,
            write_timeout: None,
            drained: AtomicBool::new(false),
        }
    }

    /// The std stream, for what needs no waiting (an address, a non-blocking peek).
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// may's side, registering the socket if it is not yet, for may's readiness wait and
    /// waker. What is done through it resets may's readiness flag: the next read tries the
    /// socket first.
    pub(crate) fn io(&self) -> io::Result<&CoIo<Alias>> {
        self.drained.store(false, Ordering::Relaxed);
        self.registered()
    }

    fn registered(&self) -> io::Result<&CoIo<Alias>> {
        if let Some(io) = self.io.get() {
            return Ok(io);
        }
        let io = CoIo::new(Alias::of(&self.stream))
            .map_err(|err| io::Error::other(format!("may could not register the socket: {err}")))?;
        io.set_read_timeout(self.read_timeout)?;
        io.set_write_timeout(self.write_timeout)?;
        Ok(self.io.get_or_init(|| io))
    }

    pub(crate) fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.read_timeout = Some(timeout);
        match self.io.get() {
            Some(io) => io.set_read_timeout(Some(timeout)),
            None => Ok(()),
        }
    }

    pub(crate) fn set_write_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.write_timeout = Some(timeout);
        match self.io.get() {
            Some(io) => io.set_write_timeout(Some(timeout)),
            None => Ok(()),
        }
    }

    /// Waits (up to the read timeout) for input without consuming it.
    pub(crate) fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.io.get().is_none() {
            match recv(
                self.stream.as_fd(),
                &mut *buf,
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            ) {
                Ok((n, _)) => return Ok(n),
                Err(err) if err != rustix::io::Errno::AGAIN => return Err(err.into()),
                Err(_) => {}
            }
        }
        self.io()?.peek(buf)
    }

    /// A read, noting whether it drained the socket (a short read). Unregistered, a socket
    /// with nothing to read is registered and waited for as a drained one is.
    fn read_and_note(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.io.get_mut() {
            Some(io) => io.read(buf)?,
            None => match recv(self.stream.as_fd(), &mut *buf, RecvFlags::DONTWAIT) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::AGAIN) => return self.read_when_registered(buf),
                Err(err) => return Err(err.into()),
            },
        };
        self.drained
            .store(n > 0 && n < buf.len(), Ordering::Relaxed);
        Ok(n)
    }

    /// The first wait of an unregistered socket: registered, then a read as after a
    /// draining one (without a timeout, may's read, which parks).
    fn read_when_registered(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.registered()?;
        match self.read_timeout {
            Some(timeout) => self.read_when_ready(buf, timeout),
            None => self.read_and_note(buf),
        }
    }

    /// The read after a draining one: readiness first, until the read timeout's deadline.
    fn read_when_ready(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = deadline_in(timeout);
        if !home::wait_input_until(self.registered()?, deadline) {
            return self.read_and_note(buf); // off the schedulers: may's read
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // Readiness can be spurious (an edge for bytes already read): what is left of the
        // timeout goes to may's read, then the whole timeout is back for the next one.
        let io = self.registered()?;
        io.set_read_timeout(Some(at_least_a_millisecond(left)))?;
        let read = self.read_and_note(buf);
        self.registered()?.set_read_timeout(Some(timeout))?;
        read
    }

    /// Off may's epoll (if it was on it), the descriptor still open: for a ward to hold.
    pub(crate) fn into_stream(self) -> TcpStream {
        let Socket { io, stream, .. } = self;
        drop(io); // `EPOLL_CTL_DEL` first (module doc)
        stream
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
    /// Straight to the socket without waiting; through may's write (which parks, and resets
    /// its readiness flag) only when the socket takes nothing now.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        match send(self.stream.as_fd(), buf, flags) {
            Err(rustix::io::Errno::AGAIN) => {
                self.drained.store(false, Ordering::Relaxed);
                self.registered()?;
                match self.io.get_mut() {
                    Some(io) => io.write(buf),
                    None => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
            Err(err) => Err(err.into()),
            Ok(n) => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn connected() -> (TcpStream, Socket) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        (client, Socket::new(OwnedFd::from(accepted)))
    }

    /// Until input is there (loopback may deliver after `write` returns).
    fn readable(socket: &Socket) {
        use rustix::event::{PollFd, PollFlags, poll};
        let mut fds = [PollFd::new(socket.stream(), PollFlags::IN)];
        let timeout = rustix::event::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        assert_eq!(
            poll(&mut fds, Some(&timeout)).expect("poll"),
            1,
            "input within 5 s"
        );
    }

    #[test]
    fn a_socket_is_registered_only_when_a_read_must_wait() {
        let (mut client, mut socket) = connected();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("send");
        let mut buf = [0u8; 64];
        readable(&socket);
        assert_eq!(socket.read(&mut buf).expect("read"), 18);
        socket
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .expect("answer");
        assert!(socket.io.get().is_none(), "nothing waited: not registered");

        // Nothing more is sent: the next read must wait, so it registers, and times out.
        socket
            .set_read_timeout(Duration::from_millis(20))
            .expect("timeout");
        let socket = may::go!(move || {
            let mut buf = [0u8; 64];
            let waited = socket.read(&mut buf);
            (socket, waited.map_err(|err| err.kind()))
        });
        let (mut socket, waited) = socket.join().expect("the coroutine ran");
        assert!(
            matches!(
                waited,
                Err(io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
            ),
            "{waited:?}"
        );
        assert!(socket.io.get().is_some(), "waited: registered");

        // Registered, it reads on; and it gives its descriptor back off may's epoll.
        client.write_all(b"more").expect("send");
        assert_eq!(socket.read(&mut buf).expect("read"), 4);
        let stream = socket.into_stream();
        stream.set_nonblocking(false).expect("blocking again");
        client.write_all(b"!").expect("send");
        assert_eq!(
            (&stream).read(&mut buf).expect("read the returned stream"),
            1
        );
    }
}
