//! The whole connection loop on an arbitrary byte stream: the first input byte picks the
//! split points, the rest is what the client sends before it closes. Properties:
//! - no panic, no hang (AFL++ reports both);
//! - what the server wrote reads back as complete, well-framed responses, nothing after a
//!   response that closes ([`crate::response`], independent of Corral's code);
//! - never more responses than the stream could hold requests (one per CRLF CRLF, plus one
//!   refusal of a head that never ended);
//! - every refusal (4xx of the parser, 5xx) closes, and the server either read the stream
//!   to its end or closed after saying so: a complete answer or a close;
//! - the same bytes split differently give byte-identical output, `Date` aside.
//!
//! A `HEAD` response has a length but no body, which a reader can only frame knowing the
//! request's method: this target turns every `HEAD` into `HEAF` (a method without a route,
//! answered with a body), and [`crate::pipeline`], which knows each request, covers `HEAD`.

use crate::response::{NoHead, read_all, without_dates};
use crate::server::serve;
use crate::splits::cut;

/// Statuses after which the connection must close: the loop's refusals and a handler's panic.
const CLOSING: [u16; 9] = [400, 408, 413, 414, 417, 431, 500, 501, 505];

pub fn check(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let stream = without_head_method(stream);
    let whole = serve(&[&stream]);
    let split = serve(&cut(&stream, seed));
    assert_eq!(
        show(&without_dates(&split.output)),
        show(&without_dates(&whole.output)),
        "split with seed {seed} vs whole"
    );
    assert_eq!(
        split.read_to_close, whole.read_to_close,
        "split with seed {seed} vs whole"
    );
    let (answers, _interim) = match read_all(&whole.output, NoHead) {
        Ok(read) => read,
        Err(fault) => panic!("{fault}\n{}", show(&whole.output)),
    };
    let heads = count_heads(&stream);
    assert!(
        answers.len() <= heads + 1,
        "{} responses to a stream of at most {heads} heads",
        answers.len()
    );
    for (i, answer) in answers.iter().enumerate() {
        if CLOSING.contains(&answer.status) {
            assert!(
                answer.close,
                "response {i}: a {} that keeps the connection",
                answer.status
            );
        }
    }
    let closed = answers.last().is_some_and(|a| a.close);
    assert!(
        whole.read_to_close || closed,
        "the server stopped reading without closing\n{}",
        show(&whole.output)
    );
}

/// `stream` with each `HEAD` made `HEAF` (module doc).
fn without_head_method(stream: &[u8]) -> Vec<u8> {
    let mut out = stream.to_vec();
    let mut at = 0;
    while let Some(i) = out[at..].windows(4).position(|w| w == b"HEAD") {
        out[at + i + 3] = b'F';
        at += i + 4;
    }
    out
}

/// Non-overlapping CRLF CRLF: every head ends with one.
fn count_heads(stream: &[u8]) -> usize {
    let mut count = 0;
    let mut at = 0;
    while let Some(i) = stream[at..].windows(4).position(|w| w == b"\r\n\r\n") {
        count += 1;
        at += i + 4;
    }
    count
}

/// Bytes as text for a failure message.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_becomes_a_method_without_a_route_everywhere() {
        assert_eq!(
            without_head_method(b"HEAD / HTTP/1.1\r\nX: HEADHEAD"),
            b"HEAF / HTTP/1.1\r\nX: HEAFHEAF"
        );
    }

    #[test]
    fn heads_are_counted_by_their_blank_line() {
        assert_eq!(count_heads(b"GET / HTTP/1.1\r\n\r\n\r\n\r\nx\r\n\r\n"), 3);
        assert_eq!(count_heads(b"\r\n\r\r\n"), 0);
    }
}
