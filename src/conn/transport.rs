//! What the connection loop needs of its byte stream. A socket under may's I/O (`Socket`) in
//! the server; an in-memory stream in unit tests.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::socket::Socket;
use crate::http::websocket::Wakeup;

/// A connection's byte stream. Reads and writes block the calling coroutine (not its
/// scheduler) up to the timeouts set.
pub(crate) trait Transport: Read + Write + Sized {
    /// Whether `into_fd` can hand the socket to a ward (an in-memory stream cannot).
    const HIBERNATES: bool;

    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
    fn set_write_timeout(&mut self, timeout: Duration) -> io::Result<()>;
    /// Waits (up to the read timeout) until input is there, without consuming it:
    /// `Ok(0)` means the peer closed.
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Sends FIN; reading goes on (the lingering close).
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// A non-blocking check: has the peer closed its side (or reset)? Bytes it sent ahead
    /// (a pipelined request) do not count as closed.
    fn peer_closed(&self) -> bool;
    fn peer_addr(&self) -> Option<SocketAddr>;
    /// How long ago the last input arrived, by the kernel's clock (`None`: unknown). Read
    /// at dispatch, it is how long the request waited to be served (admission control).
    fn input_age(&self) -> Option<Duration>;
    /// Gives up the descriptor (to a ward), or the stream itself back if it has none.
    fn into_fd(self) -> Result<OwnedFd, Self>;
    /// Reads without waiting: `WouldBlock` when nothing is there (a WebSocket's reads, which
    /// must also wait for messages: `wait_input`).
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Makes `wait_input` and `wakeup` work (a socket registers with may's epoll, which it
    /// otherwise does only when a read or write must wait): before a session that waits.
    fn ready_to_wait(&mut self) -> io::Result<()>;
    /// Parks the coroutine until input may be there, or the `wakeup` handle fires.
    fn wait_input(&self);
    /// Ends a `wait_input` from any thread.
    fn wakeup(&self) -> Wakeup;
}

impl Transport for Socket {
    const HIBERNATES: bool = true;

    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        Socket::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        Socket::set_write_timeout(self, timeout)
    }

    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Socket::peek(self, buf)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream().shutdown(std::net::Shutdown::Write)
    }

    fn peer_closed(&self) -> bool {
        peer_closed(self.stream().as_fd())
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream().peer_addr().ok()
    }

    fn input_age(&self) -> Option<Duration> {
        input_age(self.stream().as_fd())
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::net::{RecvFlags, recv};
        loop {
            match recv(self.stream().as_fd(), &mut *buf, RecvFlags::DONTWAIT) {
                Ok((n, _)) => return Ok(n),
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }

    fn ready_to_wait(&mut self) -> io::Result<()> {
        self.io().map(drop)
    }

    fn wait_input(&self) {
        // may's own wait on the socket's readiness, which its `WaitIoWaker` also ends (the
        // waker only takes a parked coroutine, so it never races a read's timer).
        match self.io() {
            Ok(io) => drop(may::io::WaitIo::wait_io(io)),
            // Only if `ready_to_wait` was skipped or failed, which ends the session first.
            Err(err) => log::error!("cannot wait for input: {err}"),
        }
    }

    fn wakeup(&self) -> Wakeup {
        match self.io() {
            Ok(io) => {
                let waker = may::io::WaitIo::waker(io);
                std::sync::Arc::new(move || waker.wakeup())
            }
            // As above; and no wait can be made to wake.
            Err(_) => std::sync::Arc::new(|| {}),
        }
    }

    fn into_fd(self) -> Result<OwnedFd, Self> {
        // Dropping may's registration takes the socket off may's epoll; the descriptor stays
        // open, in the std stream handed back.
        Ok(OwnedFd::from(self.into_stream()))
    }
}

/// Has the peer of `socket` closed its side (or reset)? A non-blocking one-byte peek.
pub(crate) fn peer_closed(socket: BorrowedFd<'_>) -> bool {
    use rustix::net::{RecvFlags, recv};
    let mut probe = [0u8; 1];
    match recv(socket, &mut probe, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((0, _)) => true,
        Ok(_) => false,
        Err(err) => err != rustix::io::Errno::AGAIN && err != rustix::io::Errno::INTR,
    }
}

/// How long ago `socket` last received data: `tcpi_last_data_recv` of `TCP_INFO`, which the
/// kernel keeps in jiffies (so to one tick: 4 ms at HZ=250). One syscall, no allocation;
/// the kernel takes only this socket's own lock.
pub(crate) fn input_age(socket: BorrowedFd<'_>) -> Option<Duration> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers, for which all zeroes is a valid value.
    #[allow(unsafe_code)]
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which outlives the call, and
    // `len` is `info`'s size.
    #[allow(unsafe_code)]
    let got = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // A kernel older than the field would leave it out of a shorter answer.
    let field_end = std::mem::offset_of!(libc::tcp_info, tcpi_last_data_recv) + 4;
    (got == 0 && len as usize >= field_end)
        .then(|| Duration::from_millis(u64::from(info.tcpi_last_data_recv)))
}

/// may keeps timeouts in whole milliseconds and treats 0 as "none": a sub-millisecond
/// timeout would wait forever, so round up.
pub(crate) fn at_least_a_millisecond(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

/// `Instant::now() + after`, saturating: a timeout too long to represent (a handler's
/// `Duration::MAX`, a config file's huge number past validation) is a deadline a century
/// away, never an overflow panic in a connection or a ward.
pub(crate) fn deadline_in(after: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_saturates_instead_of_overflowing() {
        let far = deadline_in(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(365 * 24 * 3600));
        let soon = deadline_in(Duration::from_millis(5));
        assert!(soon <= Instant::now() + Duration::from_millis(5));
    }
}
