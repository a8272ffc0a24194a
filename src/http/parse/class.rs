//! Byte classes, one bit each in `CLASSES`: the scan asks one table lookup per byte what
//! a branch chain would (docs/architecture.md §3, "Per-request cost": one pass over the head).
//!
//! Two kinds of class live here. `TCHAR`, `URI` and `VALUE` are the grammar the scan keeps
//! to as it goes (what httparse kept to before it, so that the same bytes stop it at the
//! same place: `URI` is its lenient target class, visible ASCII and obs-text). `PATH`,
//! `QUERY` and `AUTHORITY` are the stricter rules Corral holds a complete head to (RFC 3986):
//! a target whose bytes all had them needs no second look.

/// tchar (RFC 9110 §5.6.2): a method's and a field name's bytes.
pub(super) const TCHAR: u8 = 1;
/// What a request target may hold before its form is checked: visible ASCII and obs-text.
pub(super) const URI: u8 = 2;
/// A field value's bytes: field-vchar, SP, HTAB, obs-text (RFC 9110 §5.5).
pub(super) const VALUE: u8 = 4;
/// pchar and "/" (RFC 3986 §3.3), without "%": a path with only these is well formed.
pub(super) const PATH: u8 = 8;
/// `PATH` and "?" (RFC 3986 §3.4): likewise a query.
pub(super) const QUERY: u8 = 16;
/// uri-host [":" port] (RFC 3986 §3.2), IP-literals and percent-encoded reg-names included.
pub(super) const AUTHORITY: u8 = 32;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = class_of(b as u8);
        b += 1;
    }
    table
};

const fn class_of(b: u8) -> u8 {
    let mut class = 0;
    if is_tchar(b) {
        class |= TCHAR;
    }
    if matches!(b, b'!'..=b'~' | 0x80..=0xff) {
        class |= URI;
    }
    if matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff) {
        class |= VALUE;
    }
    let pchar = is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@');
    if pchar || b == b'/' {
        class |= PATH | QUERY;
    }
    if b == b'?' {
        class |= QUERY;
    }
    if pchar || matches!(b, b'[' | b']' | b'%') {
        class |= AUTHORITY;
    }
    class
}

const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether `b` is of `class`.
#[inline(always)]
pub(super) fn is(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

/// The length of the run of `class` bytes that starts `bytes`.
#[inline(always)]
pub(super) fn run(bytes: &[u8], class: u8) -> usize {
    bytes
        .iter()
        .position(|&b| !is(b, class))
        .unwrap_or(bytes.len())
}

/// Every byte is of `class` (no early exit: a lookup and an `and` per byte).
pub(super) fn all(bytes: &[u8], class: u8) -> bool {
    bytes
        .iter()
        .fold(class, |all, &b| all & CLASSES[usize::from(b)])
        == class
}

/// The length of the run of field-value bytes that starts `bytes`: eight at a time as words
/// while no byte is a control (a value is often long: a User-Agent, a cookie), HTAB and the
/// tail byte-wise.
pub(super) fn value_run(bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        if let Some(word) = bytes[at..].first_chunk::<8>() {
            let controls = controls(u64::from_le_bytes(*word));
            if controls == 0 {
                at += 8;
                continue;
            }
            at += (controls.trailing_zeros() / 8) as usize;
        }
        match bytes.get(at) {
            Some(&b) if is(b, VALUE) => at += 1,
            _ => return at,
        }
    }
}

/// The high bit of each byte of `word` set where that byte is a control (below 0x20, or
/// DEL), every other bit clear. Exact, as `bytes::equal_bytes` is: no carry crosses a byte.
fn controls(word: u64) -> u64 {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero = |x: u64| !(((x & LOW7) + LOW7) | x) & HIGH;
    zero(word & u64::from_ne_bytes([0xe0; 8])) | zero(word ^ u64::from_ne_bytes([0x7f; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_wise_value_run_agrees_with_the_class() {
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = b;
                let want = if is(b, VALUE) { 20 } else { at };
                assert_eq!(value_run(&bytes), want, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn path_and_query_bytes_are_target_bytes_and_tchar_are_values() {
        for b in 0..=255u8 {
            if is(b, PATH | QUERY) {
                assert!(is(b, URI), "{b:#x}");
            }
            if is(b, TCHAR | URI) {
                assert!(is(b, VALUE), "{b:#x}");
            }
            assert_eq!(is(b, QUERY), is(b, PATH) || b == b'?', "{b:#x}");
        }
    }
}
