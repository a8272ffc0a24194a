//! `parse_head` on arbitrary bytes. Besides not panicking, its verdict must not depend on
//! how the bytes arrived: the loop parses what it has after every read, so over the
//! prefixes of a buffer the parser may say "partial" for a while, and once it says anything
//! else it must keep saying the same (a head of the same length, or the same status).

use std::cell::RefCell;

use corral::__bench::{HeadOutcome, HeadParser};

/// Prefixes checked one by one up to this length, then every `STRIDE`-th.
const EVERY_PREFIX: usize = 2048;
const STRIDE: usize = 61;

/// The statuses a refused head may get.
const REFUSALS: [u16; 7] = [400, 413, 414, 417, 431, 501, 505];

thread_local! {
    /// One parser for every input, as a connection keeps one (the limits read once).
    static PARSER: RefCell<HeadParser> = RefCell::new(HeadParser::default());
}

pub fn check(data: &[u8]) {
    PARSER.with(|parser| check_with(&mut parser.borrow_mut(), data));
}

fn check_with(parser: &mut HeadParser, data: &[u8]) {
    let whole = parser.outcome(data);
    match whole {
        HeadOutcome::Complete(len) => {
            assert!(len > 0 && len <= data.len(), "head length {len}");
            assert!(
                data[..len].ends_with(b"\r\n\r\n"),
                "a head ends with CRLF CRLF"
            );
            assert_eq!(
                parser.outcome(&data[..len]),
                whole,
                "the bytes after a head changed it"
            );
        }
        HeadOutcome::Partial => assert!(
            data.len() < parser.max_head_bytes(),
            "{} bytes without a head is still partial",
            data.len()
        ),
        HeadOutcome::Rejected(status) => assert!(REFUSALS.contains(&status), "status {status}"),
    }
    let mut verdict: Option<(usize, HeadOutcome)> = None;
    for k in prefix_lengths(data.len()) {
        let outcome = parser.outcome(&data[..k]);
        match (verdict, outcome) {
            (None, HeadOutcome::Partial) => {}
            (None, _) => verdict = Some((k, outcome)),
            (Some((at, first)), _) => assert_eq!(
                outcome, first,
                "the first {at} bytes gave {first:?}, the first {k} give {outcome:?}"
            ),
        }
    }
    if let Some((at, first)) = verdict {
        assert_eq!(
            whole, first,
            "the first {at} bytes gave {first:?}, all of them {whole:?}"
        );
    }
}

fn prefix_lengths(len: usize) -> impl Iterator<Item = usize> {
    let dense = 1..=len.min(EVERY_PREFIX);
    let sparse = (EVERY_PREFIX + STRIDE..len).step_by(STRIDE);
    dense
        .chain(sparse)
        .chain((len > EVERY_PREFIX).then_some(len))
}
