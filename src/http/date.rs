//! The `Date` header value, formatted once per second per worker thread, inside the fixed
//! start of a `200 OK` head: status line, `Server` and `Date` lines go out with one copy of
//! a fixed-size array (no `memcpy` call), docs/architecture.md §3, "Per-request cost".
//!
//! A thread-local is right here even under coroutines: the value is the same for every
//! connection on the thread, and no borrow of it is held across a yield.
//!
//! Which second it is comes from the coarse real-time clock (`CLOCK_REALTIME_COARSE`: the
//! kernel's last tick, read from the vDSO without the TSC), as nginx reads its cached time:
//! a `SystemTime::now()` per response was one of the clock reads that took ~20% of a
//! pipelined `/plaintext` profile (docs/architecture.md §3, "Per-request cost"). The coarse
//! clock lags by at most a tick (1–4 ms), far below the header's one-second resolution.

use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

/// Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
const DATE_LEN: usize = 29;

/// The status line of a `200`, which most heads start with.
pub const OK_LINE: &[u8] = b"HTTP/1.1 200 OK\r\n";
/// What every head has after its status line, up to the date.
const SERVER_AND_DATE: &[u8] = b"Server: corral\r\nDate: ";
/// Where the date starts in the cached block, and the block's length (through the CRLF).
const DATE_AT: usize = OK_LINE.len() + SERVER_AND_DATE.len();
const BLOCK_LEN: usize = DATE_AT + DATE_LEN + 2;
/// Bytes `append_server_and_date` writes after a `200` status line, that line included.
pub const HEAD_START_LEN: usize = BLOCK_LEN;

struct CachedDate {
    second: u64,
    /// `OK_LINE`, `SERVER_AND_DATE`, the date, CRLF.
    block: [u8; BLOCK_LEN],
}

const fn empty_block() -> [u8; BLOCK_LEN] {
    let mut block = [0; BLOCK_LEN];
    let mut i = 0;
    while i < OK_LINE.len() {
        block[i] = OK_LINE[i];
        i += 1;
    }
    while i < DATE_AT {
        block[i] = SERVER_AND_DATE[i - OK_LINE.len()];
        i += 1;
    }
    block[BLOCK_LEN - 2] = b'\r';
    block[BLOCK_LEN - 1] = b'\n';
    block
}

thread_local! {
    static DATE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: u64::MAX, block: empty_block() })
    };
}

/// Appends the `Server` and `Date` lines, preceded by the `200` status line if `ok` (else
/// the caller has written its own status line).
pub fn append_server_and_date(out: &mut Vec<u8>, ok: bool) {
    let second = coarse_unix_seconds();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.second != second {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            if text.len() == DATE_LEN {
                cached.block[DATE_AT..DATE_AT + DATE_LEN].copy_from_slice(text.as_bytes());
                cached.second = second;
            }
        }
        if ok {
            out.extend_from_slice(&cached.block);
        } else {
            out.extend_from_slice(&cached.block[OK_LINE.len()..]);
        }
    });
}

/// Seconds since the Unix epoch by the coarse real-time clock. Through glibc (its vDSO
/// call), not rustix's own vDSO parser, which valgrind's loader breaks
/// (benches/instructions.sh runs the loop under valgrind).
#[allow(unsafe_code)]
fn coarse_unix_seconds() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    if rc == 0 {
        u64::try_from(now.tv_sec).unwrap_or(0)
    } else {
        // Not on Linux's clock ids: the precise clock.
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    /// The date of one block: what follows `Date: `, without the CRLF.
    fn date_of(ok: bool) -> String {
        let mut out = Vec::new();
        super::append_server_and_date(&mut out, ok);
        let text = String::from_utf8(out).expect("ascii");
        let start = if ok {
            "HTTP/1.1 200 OK\r\nServer: corral\r\nDate: "
        } else {
            "Server: corral\r\nDate: "
        };
        let date = text.strip_prefix(start).expect("the fixed start");
        date.strip_suffix("\r\n")
            .expect("one CRLF at the end")
            .to_owned()
    }

    #[test]
    fn date_is_an_imf_fixdate_that_parses_back() {
        for ok in [true, false] {
            let text = date_of(ok);
            assert!(text.ends_with(" GMT"), "{text}");
            assert_eq!(text.len(), super::DATE_LEN);
            httpdate::parse_http_date(&text).expect("parses");
        }
    }

    #[test]
    fn date_is_the_current_second() {
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let text = date_of(true);
        let after = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
        let date = httpdate::parse_http_date(&text).expect("parses");
        assert!(before <= date && date <= after, "{text}");
    }
}
