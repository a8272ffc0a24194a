//! The read buffer: bytes read from the socket and not yet consumed. Allocated lazily, grown
//! geometrically up to what the caller may still accept, and given back when large and idle.

use std::io::{self, Read};

/// First allocation of the read buffer; it grows for large heads and bodies.
pub(super) const READ_BUF_INITIAL: usize = 4096;
/// A read buffer larger than this is given back when the connection goes idle, so a past
/// upload does not pin memory on a keep-alive connection.
const READ_BUF_KEEP: usize = 16 * 1024;

/// Bytes read from the socket and not yet consumed: `data[start..end]`.
#[derive(Default)]
pub(super) struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Removes `n` bytes at offset `at` of the filled region (decoded chunk framing).
    pub fn cut(&mut self, at: usize, n: usize) {
        let from = self.start + at;
        self.data.copy_within(from + n..self.end, from);
        self.end -= n;
    }

    /// One read into free space, allowing the filled region to reach `max_total` bytes.
    ///
    /// The buffer grows only when full, geometrically (twice what it holds) but never past
    /// `max_total`: its size follows the bytes received, not the bytes a client announced
    /// (a `Content-Length: 8000000` head alone must not commit 8 MB), and doubling keeps the
    /// copying of a large body linear.
    pub fn fill(&mut self, stream: &mut impl Read, max_total: usize) -> io::Result<usize> {
        let len = self.end - self.start;
        if self.end == self.data.len() {
            // +1 so a read always has room and the caller sees its limit crossed.
            let want = (len * 2).max(READ_BUF_INITIAL).min(max_total.max(len + 1));
            self.make_room(want);
        }
        let n = stream.read(&mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Makes room so the filled region can grow to `total` bytes: moves it to the front if
    /// that is enough, else grows the buffer to exactly `total`.
    fn make_room(&mut self, total: usize) {
        if self.start > 0 && self.start + total > self.data.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if total > self.data.len() {
            self.data.reserve_exact(total - self.data.len());
            self.data.resize(total, 0);
        }
    }

    pub fn release_if_idle(&mut self) {
        if self.is_empty() && self.data.len() > READ_BUF_KEEP {
            self.data = Vec::new();
        }
    }

    /// Takes over bytes read earlier (by a ward or a previous coroutine).
    pub fn from_leftover(leftover: Vec<u8>) -> ReadBuf {
        ReadBuf {
            end: leftover.len(),
            data: leftover,
            start: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that sends `total` bytes, at most `piece` per read.
    struct Trickle {
        left: usize,
        piece: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.left.min(self.piece).min(buf.len());
            buf[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    /// Fills `rbuf` until `total` bytes are in, checking after every read that the buffer
    /// holds no more than one growth step beyond what arrived, and never more than `total`.
    /// Returns the bytes moved by reallocation (the filled length at each growth).
    fn fill_checked(total: usize, piece: usize) -> usize {
        let mut rbuf = ReadBuf::default();
        let mut peer = Trickle { left: total, piece };
        let mut moved = 0;
        while rbuf.filled().len() < total {
            let (before, size) = (rbuf.filled().len(), rbuf.data.len());
            assert!(rbuf.fill(&mut peer, total).expect("in memory") > 0);
            if rbuf.data.len() != size {
                moved += before;
            }
            let (filled, size) = (rbuf.filled().len(), rbuf.data.len());
            assert!(size <= total.max(READ_BUF_INITIAL), "{size} > {total}");
            assert!(
                size <= READ_BUF_INITIAL.max(2 * filled),
                "{size} bytes held for {filled} received"
            );
        }
        moved
    }

    #[test]
    fn the_buffer_follows_the_bytes_received_up_to_the_cap() {
        for (total, piece) in [
            (10_000, 1000),
            (100, 7),
            (1 << 20, 1500),
            (8_000_150, 65536),
        ] {
            fill_checked(total, piece);
        }
    }

    #[test]
    fn growing_to_eight_mebibytes_copies_less_than_it_received() {
        let total = 8 << 20;
        let moved = fill_checked(total, 16 * 1024);
        assert!(
            moved < total,
            "{moved} bytes moved while growing to {total}"
        );
    }
}
