//! Moving a socket onto a descriptor number with a chosen residue modulo the worker count.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

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
