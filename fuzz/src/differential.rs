//! `parse_head` against the parser it replaced (`corral::__bench::HeadParser::
//! agrees_with_reference`, an httparse-based oracle): the same answer for the input and for
//! every prefix of it, since where the reads split decides when a verdict comes. The first
//! input byte picks the limits: the embedded default config's, or small ones derived from it
//! that short inputs reach (a target of a few bytes, two field lines, a head of a hundred).

use std::cell::RefCell;

use corral::__bench::{HeadLimits, HeadParser};

/// Prefixes checked one by one up to this length, then every `STRIDE`-th.
const EVERY_PREFIX: usize = 1024;
const STRIDE: usize = 61;

thread_local! {
    /// One parser for every input, as a connection keeps one (its head reused).
    static PARSER: RefCell<HeadParser> = RefCell::new(HeadParser::default());
}

pub fn check(data: &[u8]) {
    let Some((&seed, head)) = data.split_first() else {
        return;
    };
    PARSER.with(|parser| {
        let mut parser = parser.borrow_mut();
        let limits = limits(seed, parser.limits());
        for k in prefix_lengths(head.len()) {
            if let Err(difference) = parser.agrees_with_reference(&head[..k], &limits) {
                panic!("the first {k} bytes: {difference}");
            }
        }
    });
}

/// Seeds below 128: the defaults. Others: bits 0–1 pick a head limit of 16 to 256 bytes,
/// bits 2–4 a target limit of 0 to 56 bytes, bits 5–6 0 to 3 field lines; the body limit is
/// 0 or 100 bytes by bit 2.
fn limits(seed: u8, default: HeadLimits) -> HeadLimits {
    if seed < 128 {
        return default;
    }
    HeadLimits {
        max_head_bytes: [16, 48, 100, 256][usize::from(seed & 3)],
        max_uri_bytes: usize::from((seed >> 2) & 7) * 8,
        max_headers: usize::from((seed >> 5) & 3),
        max_body_bytes: if seed & 4 == 0 { 0 } else { 100 },
    }
}

fn prefix_lengths(len: usize) -> impl Iterator<Item = usize> {
    let dense = 0..=len.min(EVERY_PREFIX);
    let sparse = (EVERY_PREFIX + STRIDE..len).step_by(STRIDE);
    dense
        .chain(sparse)
        .chain((len > EVERY_PREFIX).then_some(len))
}
