//! The parser against its oracle (`reference.rs`, the httparse-based parser it replaced):
//! every input, and every prefix of it (where the reads split decides when a verdict comes),
//! must get the same answer from both. Heads are built from pieces chosen to sit on the
//! rules' edges (versions, targets, line endings, the fields Corral acts on), then mutated,
//! under the default limits and under small ones. `PROPTEST_CASES` sets how many.

use super::reference::compare;
use super::{Head, HeadLimits};
use proptest::prelude::*;

const LEADING: &[&str] = &["", "", "\r\n", "\n", "\r", "\r\n\r\n"];
const METHODS: &[&str] = &[
    "GET",
    "GET",
    "POST",
    "OPTIONS",
    "CONNECT",
    "HEAD",
    "PUT",
    "get",
    "M-SEARCH",
    "G(T",
    "",
    "PROPPATCH",
];
const SPACES: &[&str] = &[" ", " ", " ", "  ", "\t", ""];
const TARGETS: &[&str] = &[
    "/",
    "/plaintext",
    "/a?b=c",
    "/a?b?c=/d",
    "/a?",
    "/%41%2f",
    "/%4",
    "/%zz",
    "/a?%4",
    "*",
    "http://h/p?q",
    "http://h",
    "http://h?x",
    "HTTP://H:80",
    "h2c+x://[::1]:80/x",
    "http://user@h/u",
    "http:/x",
    "http://",
    "http://h/%",
    "1http://h/",
    "a",
    "example.com:443",
    "/\u{e9}",
    "/\u{e9}?\u{e9}",
    "/\"",
    "/a#b",
    "/a|b",
    "//x//",
    "/:@!$&'()*+,;=",
    "/~u/a-b_c.d",
];
const VERSIONS: &[&str] = &[
    "HTTP/1.1",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/1.5",
    "HTTP/1.9",
    "HTTP/2.0",
    "HTTP/0.9",
    "HTTP/2",
    "HTTP/1.",
    "HTTX/1.1",
    "http/1.1",
    "HTTP/1.1x",
    "HTTP/1.10",
    "HTTP/1.1 ",
    "HTTP/12.0",
];
const ENDINGS: &[&str] = &["\r\n", "\r\n", "\r\n", "\n", "\r", "\r\r\n", "\n\r"];
const NAMES: &[&str] = &[
    "Host",
    "host",
    "HOST",
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "Connection",
    "Expect",
    "X-A",
    "Accept",
    "Ho st",
    "",
    "X(",
    "Hos",
    "Hostx",
];
const SEPARATORS: &[&str] = &[": ", ": ", ":", ":\t", " :", ":  ", ": \t "];
const VALUES: &[&str] = &[
    "x",
    "127.0.0.1:8080",
    "",
    " ",
    "[::1]:80",
    "a b",
    "%41",
    "h/p",
    "5",
    "0",
    "+5",
    "05",
    "18446744073709551616",
    "2000000",
    "chunked",
    "Chunked",
    "gzip, chunked",
    "chunked, gzip",
    "chunked, chunked",
    "chunked;q=1",
    ",",
    " , ",
    "close",
    "keep-alive",
    "Close, Keep-Alive",
    "upgrade",
    "100-continue",
    "100-CONTINUE",
    "foo",
    "a\tb",
    "\u{e9}",
    "x\u{7f}",
    "x\u{1}",
];

fn pick(pieces: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(pieces)
}

fn field_line() -> impl Strategy<Value = String> {
    (pick(NAMES), pick(SEPARATORS), pick(VALUES), pick(ENDINGS))
        .prop_map(|(name, sep, value, end)| format!("{name}{sep}{value}{end}"))
}

/// A head from the pieces above; most are well formed, many break one rule.
fn built_head() -> impl Strategy<Value = Vec<u8>> {
    (
        (pick(LEADING), pick(METHODS), pick(SPACES), pick(TARGETS)),
        (pick(SPACES), pick(VERSIONS), pick(ENDINGS)),
        prop::collection::vec(field_line(), 0..6),
        pick(ENDINGS),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(
            |((lead, method, sp1, target), (sp2, version, eol), fields, end, after)| {
                let mut head = format!("{lead}{method}{sp1}{target}{sp2}{version}{eol}");
                head.extend(fields);
                head += end;
                let mut head = head.into_bytes();
                head.extend(after);
                head
            },
        )
}

/// `head` with up to three bytes changed, inserted or removed.
fn mutated(head: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        head,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..4u8), 0..4),
    )
        .prop_map(|(mut buf, edits)| {
            for (at, byte, op) in edits {
                let i = at.index(buf.len() + 1);
                match op {
                    0 if i < buf.len() => buf[i] = byte,
                    1 if i < buf.len() => {
                        buf.remove(i);
                    }
                    2 => buf.insert(i, byte),
                    _ => {}
                }
            }
            buf
        })
}

/// The default limits' shape (generous), or small ones that the built heads cross.
fn limits() -> impl Strategy<Value = HeadLimits> {
    let generous = HeadLimits {
        max_head_bytes: 16384,
        max_uri_bytes: 8192,
        max_headers: 64,
        max_body_bytes: 8 << 20,
    };
    prop_oneof![
        2 => Just(generous),
        1 => (0..120usize, 0..40usize, 0..6usize, 0..3000u64).prop_map(
            |(max_head_bytes, max_uri_bytes, max_headers, max_body_bytes)| HeadLimits {
                max_head_bytes,
                max_uri_bytes,
                max_headers,
                max_body_bytes,
            }
        ),
    ]
}

/// The whole buffer and every prefix of it, one reused head as a connection has.
fn agree(buf: &[u8], limits: &HeadLimits) -> Result<(), TestCaseError> {
    let mut head = Head::default();
    for cut in 0..=buf.len() {
        compare(&buf[..cut], limits, &mut head).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn the_parser_agrees_with_the_reference_on_built_heads(
        buf in mutated(built_head()),
        limits in limits(),
    ) {
        agree(&buf, &limits)?;
    }

    #[test]
    fn the_parser_agrees_with_the_reference_on_any_bytes(
        buf in prop::collection::vec(any::<u8>(), 0..200),
        limits in limits(),
    ) {
        agree(&buf, &limits)?;
    }
}

/// Long lines against the default limits: the request line's and the target's 414s, the
/// head's 431, and the version's rules read past the window.
#[test]
fn the_parser_agrees_with_the_reference_at_the_default_limits_edges() {
    let limits = HeadLimits {
        max_head_bytes: 16384,
        max_uri_bytes: 8192,
        max_headers: 64,
        max_body_bytes: 8 << 20,
    };
    let mut head = Head::default();
    let mut check = |buf: &[u8]| {
        for cut in [buf.len(), 8192, 8255, 8256, 8257, 8300, 16383, 16384, 16385] {
            let buf = &buf[..cut.min(buf.len())];
            compare(buf, &limits, &mut head).unwrap_or_else(|err| panic!("{err}"));
        }
    };
    for target_len in [8190, 8192, 8193, 8250, 8260, 16000, 16400] {
        let target = format!("/{}", "a".repeat(target_len - 1));
        for version in ["HTTP/1.1", "HTTP/1.5", "HTTP/2.0", "HTTP/2"] {
            check(format!("GET {target} {version}\r\nHost: x\r\n\r\n").as_bytes());
            check(format!("GET {target}\x01 {version}\r\n").as_bytes());
        }
    }
    for bad_at in [2, 8190, 8255, 8256, 8257, 9000] {
        let (before, after) = ("a".repeat(bad_at - 1), "a".repeat(9000));
        check(format!("GET /{before}\x01{after}").as_bytes());
    }
    let many = "X-A: b\r\n".repeat(70);
    check(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
    let long = "v".repeat(16400);
    check(format!("GET / HTTP/1.1\r\nHost: x\r\nX: {long}\r\n\r\n").as_bytes());
}
