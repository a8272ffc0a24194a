//! The `Date` header value, formatted once per second per worker thread.
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

struct CachedDate {
    second: u64,
    text: [u8; DATE_LEN],
}

thread_local! {
    static DATE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: u64::MAX, text: [0; DATE_LEN] })
    };
}

/// Appends the current IMF-fixdate to `out`.
pub fn append_date(out: &mut Vec<u8>) {
    let second = coarse_unix_seconds();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.second != second {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            if text.len() == DATE_LEN {
                cached.text.copy_from_slice(text.as_bytes());
                cached.second = second;
            }
        }
        out.extend_from_slice(&cached.text);
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
    #[test]
    fn date_is_an_imf_fixdate_that_parses_back() {
        let mut out = Vec::new();
        super::append_date(&mut out);
        let text = std::str::from_utf8(&out).expect("ascii");
        assert!(text.ends_with(" GMT"), "{text}");
        httpdate::parse_http_date(text).expect("parses");
    }

    #[test]
    fn date_is_the_current_second() {
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let mut out = Vec::new();
        super::append_date(&mut out);
        let after = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
        let date =
            httpdate::parse_http_date(std::str::from_utf8(&out).expect("ascii")).expect("parses");
        assert!(before <= date && date <= after, "{out:?}");
    }
}
