//! The `Date` header value, formatted once per second per worker thread.
//!
//! A thread-local is right here even under coroutines: the value is the same for every
//! connection on the thread, and no borrow of it is held across a yield.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

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
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.second != second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == DATE_LEN {
                cached.text.copy_from_slice(text.as_bytes());
                cached.second = second;
            }
        }
        out.extend_from_slice(&cached.text);
    });
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
}
