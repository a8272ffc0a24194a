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

    /// Makes room so the filled region can grow to `total` bytes.
    pub fn make_room(&mut self, total: usize) {
        if self.start > 0 && self.start + total > self.data.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if total > self.data.len() {
            let size = total.max(READ_BUF_INITIAL).max(self.data.len() * 2);
            self.data.resize(size, 0);
        }
    }

    /// One read into free space, allowing the filled region to reach `max_total` bytes.
    pub fn fill(&mut self, stream: &mut impl Read, max_total: usize) -> io::Result<usize> {
        let len = self.end - self.start;
        if self.end == self.data.len() {
            // Grow geometrically, but not past what the caller may still accept (+1 so a read
            // always has room and the caller sees its limit crossed).
            let want = (len * 2).max(READ_BUF_INITIAL).min(max_total.max(len + 1));
            self.make_room(want);
        }
        let n = stream.read(&mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
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
