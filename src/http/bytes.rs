//! Byte searches sized for the short pieces of a request.

/// Up to this many bytes, a plain loop beats memchr: its SIMD search pays about 50
/// instructions of setup a call, more than the loop spends on a path or a path segment
/// (cachegrind, `benches/instructions.sh`; docs/architecture.md §3).
const SHORT: usize = 32;

/// The index of the first `needle` in `haystack`.
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    if haystack.len() <= SHORT {
        haystack.iter().position(|&b| b == needle)
    } else {
        memchr::memchr(needle, haystack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_needle_in_short_and_long_haystacks() {
        for len in [0, 1, 5, SHORT - 1, SHORT, SHORT + 1, 200] {
            let mut hay = vec![b'a'; len];
            assert_eq!(find_byte(b'?', &hay), None, "len {len}");
            if len > 0 {
                hay[len - 1] = b'?';
                assert_eq!(find_byte(b'?', &hay), Some(len - 1), "len {len}");
                hay[len / 2] = b'?';
                assert_eq!(find_byte(b'?', &hay), Some(len / 2), "len {len}");
            }
        }
    }
}
