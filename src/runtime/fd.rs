//! Moving a socket onto a descriptor number with a chosen residue modulo the worker count,
//! and how many connections the descriptor limit leaves room for.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Descriptors an automatic `limits.max_connections` keeps back from connections, as a share
/// of the limit: the server's own (listener, std streams, and per scheduler a may epoll, a
/// ward's epoll and bell, a doorkeeper's eventfd: 4 + 4 per worker), the transient one of a
/// residue move, files handlers open, and the one the acceptor needs to take a connection
/// it then refuses with 503. A 16th of the limit...
const RESERVE_DIVISOR: u64 = 16;
/// ...and never fewer than this (64 leaves room for the server's own on 14 workers).
const MIN_RESERVE: u64 = 64;

/// How many connections a server may hold (`limits.max_connections` resolved at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// Past this many open connections, new ones are refused (`usize::MAX`: no limit).
    pub max: usize,
    /// What the descriptor limit leaves for connections (`None`: it is unlimited).
    pub room: Option<usize>,
}

impl ConnectionLimit {
    /// `configured` (0 = automatic) against a soft descriptor limit (`None` = unlimited).
    pub fn new(configured: usize, descriptors: Option<u64>) -> ConnectionLimit {
        let room = descriptors.map(|limit| {
            let reserve = (limit / RESERVE_DIVISOR).max(MIN_RESERVE);
            usize::try_from(limit.saturating_sub(reserve)).unwrap_or(usize::MAX)
        });
        let max = match configured {
            0 => room.unwrap_or(usize::MAX).max(1),
            n => n,
        };
        ConnectionLimit { max, room }
    }

    /// Whether descriptors run out before the limit is reached (a configured limit above
    /// `room`): then EMFILE, not a 503, meets the connections past `room`.
    pub fn above_room(&self) -> bool {
        self.room.is_some_and(|room| self.max > room)
    }
}

/// This process's soft limit on open descriptors (`None`: unlimited).
pub fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The most descriptor slots `grow_table` sizes the table for up front: 8 bytes of kernel
/// memory a slot, so at most 512 KiB; a server past it grows the rest of the way as it goes.
const TABLE_SLOTS_MAX: usize = 65_536;

/// Sizes this process's descriptor table for `connections` (and the server's own) before
/// the first connection, so that it never grows under a connect burst. The kernel doubles
/// the table as it fills (at 256, 512, … 16,384 descriptors), and in a multi-threaded
/// process each doubling waits out an RCU grace period (`synchronize_rcu`) while every
/// descriptor allocation of the process, `accept4` included, waits too: 10–30 ms each here,
/// during which nothing is accepted and the listen queue fills (`tests/descriptor_table.rs`).
/// A duplicate at the highest number wanted grows it once, and is closed at once: the
/// table does not shrink. Best effort: a failure only means the table grows later.
pub fn grow_table(any: BorrowedFd<'_>, connections: usize) {
    let mut slots = connections
        .saturating_add(MIN_RESERVE as usize)
        .min(TABLE_SLOTS_MAX);
    if let Some(limit) = descriptor_limit() {
        slots = slots.min(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    let Some(highest) = slots.checked_sub(1).and_then(|n| i32::try_from(n).ok()) else {
        return;
    };
    if let Err(err) = rustix::io::fcntl_dupfd_cloexec(any, highest) {
        log::debug!("could not size the descriptor table for {slots}: {err}");
    }
}

/// Returns a descriptor for the same socket whose number is ≡ `k` (mod `n`), closing the
/// original if it had to be duplicated. On failure (out of descriptors) the original comes
/// back unmoved: the connection then runs where its number says, rather than being lost.
///
/// `F_DUPFD_CLOEXEC(min)` yields the lowest free number ≥ `min`; each miss raises `min` to
/// the next number with the right residue above the miss, so the loop ends at the first free
/// such number (usually the first or second try) and never holds extra descriptors.
pub fn onto_residue(fd: OwnedFd, k: usize, n: usize) -> OwnedFd {
    if n <= 1 || residue(&fd, n) == k {
        return fd;
    }
    match dup_onto_residue(&fd, k, n) {
        Ok(moved) => moved,
        Err(err) => {
            log::warn!("could not move fd {} to residue {k}: {err}", fd.as_raw_fd());
            fd
        }
    }
}

fn dup_onto_residue(fd: &OwnedFd, k: usize, n: usize) -> io::Result<OwnedFd> {
    let mut min = 0usize;
    loop {
        let dup = rustix::io::fcntl_dupfd_cloexec(fd, min as i32)?;
        let number = dup.as_raw_fd() as usize;
        if number % n == k {
            return Ok(dup);
        }
        min = number + 1 + (k + n - (number + 1) % n) % n;
    }
}

fn residue(fd: &OwnedFd, n: usize) -> usize {
    fd.as_raw_fd() as usize % n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn an_automatic_connection_limit_keeps_a_reserve_of_descriptors() {
        let auto = |limit| ConnectionLimit::new(0, Some(limit)).max;
        assert_eq!(auto(20_000), 20_000 - 1250);
        assert_eq!(auto(1024), 1024 - 64);
        assert_eq!(auto(256), 256 - 64);
        assert_eq!(auto(10), 1, "a tiny limit still admits one");
        assert_eq!(ConnectionLimit::new(0, None).max, usize::MAX);
        let set = ConnectionLimit::new(100, Some(1024));
        assert_eq!(
            (set.max, set.room, set.above_room()),
            (100, Some(960), false)
        );
        assert!(ConnectionLimit::new(5000, Some(1024)).above_room());
        assert!(!ConnectionLimit::new(5000, None).above_room());
    }

    #[test]
    fn every_residue_is_reached_and_the_socket_is_the_same() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        for n in [2usize, 3, 4] {
            for k in 0..n {
                let client = std::net::TcpStream::connect(addr).expect("connect");
                let fd = OwnedFd::from(client);
                let moved = onto_residue(fd, k, n);
                assert_eq!(moved.as_raw_fd() as usize % n, k);
                let stream = std::net::TcpStream::from(moved);
                assert_eq!(stream.peer_addr().expect("peer"), addr);
            }
        }
    }
}
