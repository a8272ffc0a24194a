//! Byte searches sized for the short pieces of a request.

/// Up to this many bytes, a plain loop beats memchr: its SIMD search pays about 50
/// instructions of setup a call, more than the loop spends on a path or a path segment
/// (cachegrind, `benches/instructions.sh`; docs/architecture.md §3).
const SHORT: usize = 32;

/// The index of the first `needle` in `haystack`.
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    if haystack.len() > SHORT {
        return memchr::memchr(needle, haystack);
    }
    // Eight bytes a step as a word (a byte-wise loop was ~4 instructions a byte), the tail
    // byte-wise.
    let (words, tail) = haystack.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let hits = equal_bytes(u64::from_le_bytes(*word), needle);
        if hits != 0 {
            return Some(i * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let at = tail.iter().position(|&b| b == needle)?;
    Some(words.len() * 8 + at)
}

/// The high bit of each byte of `word` set where that byte is `byte`, every other bit clear.
/// Exact (no carry crosses a byte): the low seven bits plus 0x7f reach the high bit unless
/// they are all zero, and the byte's own high bit is or-ed in; what is left unset is zero.
fn equal_bytes(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = word ^ u64::from_ne_bytes([byte; 8]);
    !(((x & LOW7) + LOW7) | x) & HIGH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_wise_search_finds_what_a_byte_wise_one_does() {
        // Every placement of one or two needles (and of bytes one bit off it) in haystacks
        // up to SHORT bytes: each lane of a word, and the tail.
        for len in 0..=SHORT {
            for at in 0..len {
                for &other in &[b'?', b'?' ^ 0x80, b'?' ^ 1, 0, 0xff] {
                    for second in at..len {
                        let mut hay = vec![b'a'; len];
                        hay[second] = other;
                        hay[at] = b'?';
                        let want = hay.iter().position(|&b| b == b'?');
                        assert_eq!(find_byte(b'?', &hay), want, "{hay:?}");
                        hay[at] = b'?' ^ 0x80;
                        let want = hay.iter().position(|&b| b == b'?');
                        assert_eq!(find_byte(b'?', &hay), want, "{hay:?}");
                    }
                }
            }
        }
    }

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
