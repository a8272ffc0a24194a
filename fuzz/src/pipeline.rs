//! The loop on a pipelined batch it can be held to exactly: the input bytes choose up to
//! eight requests of known answers (valid ones of every framing, and invalid ones that must
//! be refused and close), an optional unfinished request at the end, and the split points.
//! The oracle: one response per request, in order, each with the status (and body, where
//! it is known) that request must get, `100 Continue` before the body of a request that
//! expects it, nothing after the first response that closes, and the same bytes whatever
//! the split.

use crate::response::{Answer, read_all, without_dates};
use crate::server::{STREAM_PARTS, serve};
use crate::splits::cut;

/// The answer a planned request must get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub status: u16,
    /// The body, where it is known (a refusal's text is not held to).
    pub body: Option<Vec<u8>>,
    /// The request was a `HEAD`: a length, no body.
    pub head: bool,
    /// A `100 Continue` precedes the answer.
    pub continues: bool,
    /// The connection closes after it.
    pub closes: bool,
}

/// A client's stream and what it must get back.
#[derive(Debug)]
pub struct Plan {
    pub seed: u8,
    pub stream: Vec<u8>,
    pub expected: Vec<Expect>,
    /// `100 Continue` answers due (an unfinished last request may get one too).
    pub interim: usize,
}

pub fn check(data: &[u8]) {
    let plan = Plan::from_bytes(data);
    let whole = serve(&[&plan.stream]);
    let split = serve(&cut(&plan.stream, plan.seed));
    let show = |out: &[u8]| String::from_utf8_lossy(out).into_owned();
    let context = || {
        format!(
            "sent:\n{}\ngot:\n{}",
            show(&plan.stream),
            show(&whole.output)
        )
    };
    assert_eq!(
        show(&without_dates(&split.output)),
        show(&without_dates(&whole.output)),
        "split with seed {} vs whole; {}",
        plan.seed,
        context()
    );
    let heads: Vec<bool> = plan.expected.iter().map(|e| e.head).collect();
    let (answers, interim) = match read_all(&whole.output, &heads[..]) {
        Ok(read) => read,
        Err(fault) => panic!("{fault}; {}", context()),
    };
    assert_eq!(
        answers.len(),
        plan.expected.len(),
        "one answer per request up to the first that closes; {}",
        context()
    );
    for (i, (answer, expect)) in answers.iter().zip(&plan.expected).enumerate() {
        assert_matches(answer, expect, i, &context);
    }
    assert_eq!(interim, plan.interim, "100 Continue answers; {}", context());
}

fn assert_matches(answer: &Answer, expect: &Expect, i: usize, context: &dyn Fn() -> String) {
    assert_eq!(answer.status, expect.status, "request {i}; {}", context());
    if let Some(body) = &expect.body {
        assert_eq!(&answer.body, body, "body of response {i}; {}", context());
    }
    if expect.head {
        assert!(
            answer.content_length.is_some(),
            "HEAD response {i} without its length"
        );
    }
    assert_eq!(
        answer.close,
        expect.closes,
        "response {i} closes; {}",
        context()
    );
}

/// Reads the input bytes as choices; past the end every choice is 0.
struct Choices<'a> {
    bytes: &'a [u8],
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.byte()).collect()
    }

    fn exhausted(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Requests the plan can hold, by what they exercise.
pub const KINDS: usize = 33;

impl Plan {
    pub fn from_bytes(data: &[u8]) -> Plan {
        let mut c = Choices { bytes: data };
        let seed = c.byte();
        let count = 1 + c.below(8);
        let mut stream = Vec::new();
        let mut expected: Vec<Expect> = Vec::new();
        for _ in 0..count {
            if c.byte() & 0x80 != 0 {
                // An empty line before a request line is ignored (RFC 9112 §2.2).
                stream.extend_from_slice(b"\r\n");
            }
            let (bytes, expect) = request(&mut c);
            stream.extend_from_slice(&bytes);
            let closes = expect.closes;
            expected.push(expect);
            if closes || c.exhausted() {
                break;
            }
        }
        let mut interim = expected.iter().filter(|e| e.continues).count();
        // What follows: nothing, an unfinished request, or (after a close) one that must
        // get no answer.
        match c.below(3) {
            1 => {
                // Of a request that is refused, a prefix may be refused already.
                let (bytes, continues) = match request(&mut c) {
                    (bytes, expect) if expect.status < 400 => (bytes, expect.continues),
                    _ => (GET_HI.to_vec(), false),
                };
                let keep = c.below(bytes.len().max(1));
                let kept = &bytes[..keep];
                // Its head complete, it gets its `100 Continue` before the body runs short
                // (unless the connection closed before it).
                let open = !expected.last().is_some_and(|e| e.closes);
                if continues && open && kept.windows(4).any(|w| w == b"\r\n\r\n") {
                    interim += 1;
                }
                stream.extend_from_slice(kept);
            }
            2 if expected.last().is_some_and(|e| e.closes) => {
                stream.extend_from_slice(GET_HI);
            }
            _ => {}
        }
        Plan {
            seed,
            stream,
            expected,
            interim,
        }
    }
}

fn ok(body: &[u8]) -> Expect {
    Expect {
        status: 200,
        body: Some(body.to_vec()),
        head: false,
        continues: false,
        closes: false,
    }
}

fn status(status: u16) -> Expect {
    Expect {
        status,
        body: None,
        head: false,
        continues: false,
        closes: false,
    }
}

/// A refusal: the status, then the close.
fn refused(code: u16) -> Expect {
    Expect {
        closes: true,
        ..status(code)
    }
}

const HOST: &str = "Host: f\r\n";
const GET_HI: &[u8] = b"GET /hi HTTP/1.1\r\nHost: f\r\n\r\n";

/// One request and the answer it must get.
fn request(c: &mut Choices) -> (Vec<u8>, Expect) {
    let get = |path: &str, version: &str, fields: &str| {
        format!("GET {path} HTTP/{version}\r\n{fields}\r\n").into_bytes()
    };
    let kind = c.below(KINDS);
    match kind {
        0 => (get("/hi", "1.1", HOST), ok(b"hi")),
        1 => {
            let bytes = format!("HEAD /hi HTTP/1.1\r\n{HOST}\r\n").into_bytes();
            let expect = Expect {
                head: true,
                ..ok(b"")
            };
            (bytes, expect)
        }
        2 => {
            let body = c.bytes(40);
            let mut bytes = format!(
                "POST /echo HTTP/1.1\r\n{HOST}Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&body);
            (bytes, ok(&body))
        }
        3 => {
            let body = c.bytes(60);
            let mut bytes =
                format!("PUT /echo HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n")
                    .into_bytes();
            bytes.extend_from_slice(&chunked(c, &body));
            (bytes, ok(&body))
        }
        4 => (get("/stream", "1.1", HOST), ok(&STREAM_PARTS.concat())),
        5 => {
            let expect = Expect {
                closes: true,
                ..ok(&STREAM_PARTS.concat())
            };
            (get("/stream", "1.0", ""), expect)
        }
        6 => (
            get("/empty", "1.1", HOST),
            Expect {
                body: Some(Vec::new()),
                ..status(204)
            },
        ),
        7 => (get("/nope", "1.1", HOST), status(404)),
        8 => (
            format!("DELETE /hi HTTP/1.1\r\n{HOST}\r\n").into_bytes(),
            status(405),
        ),
        9 => {
            let body = c.bytes(20);
            let mut bytes = format!(
                "POST /echo HTTP/1.1\r\n{HOST}Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&body);
            // No 100 for an empty body: there is nothing to wait for.
            let expect = Expect {
                continues: !body.is_empty(),
                ..ok(&body)
            };
            (bytes, expect)
        }
        10 => {
            // Refused before the body, which the client then does not send.
            let bytes = format!(
                "POST /nope HTTP/1.1\r\n{HOST}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            .into_bytes();
            (bytes, refused(404))
        }
        11 => (get("/hi", "1.0", "Connection: keep-alive\r\n"), ok(b"hi")),
        12 => (
            get("/hi", "1.0", ""),
            Expect {
                closes: true,
                ..ok(b"hi")
            },
        ),
        13 => (
            get("/hi", "1.1", "Host: f\r\nConnection: close\r\n"),
            Expect {
                closes: true,
                ..ok(b"hi")
            },
        ),
        14 => (get("/panic", "1.1", HOST), refused(500)),
        15 => (get("http://f/hi", "1.1", HOST), ok(b"hi")),
        16 => (get("/hi", "1.2", HOST), ok(b"hi")),
        17 => (get("/hi?x=1&y", "1.1", HOST), ok(b"hi")),
        // Refused, then closed.
        18 => {
            let bytes = format!(
                "POST /echo HTTP/1.1\r\n{HOST}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            );
            (bytes.into_bytes(), refused(400))
        }
        19 => {
            let bytes = format!("POST /echo HTTP/1.1\r\n{HOST}Content-Length: +3\r\n\r\nabc");
            (bytes.into_bytes(), refused(400))
        }
        20 => {
            let bytes = format!(
                "POST /echo HTTP/1.1\r\n{HOST}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
            );
            (bytes.into_bytes(), refused(400))
        }
        21 => {
            let bytes = format!("POST /echo HTTP/1.1\r\n{HOST}Transfer-Encoding: gzip\r\n\r\n");
            (bytes.into_bytes(), refused(501))
        }
        22 => (get("/hi", "1.1", ""), refused(400)),
        23 => (b"GET /hi HTTP/1.1\nHost: f\n\n".to_vec(), refused(400)),
        24 => {
            let bytes = format!(
                "POST /echo HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
            );
            (bytes.into_bytes(), refused(400))
        }
        25 => (get("/hi", "2.0", HOST), refused(505)),
        26 => {
            let bytes = format!("POST /echo HTTP/1.1\r\n{HOST}Content-Length: 99999999999\r\n\r\n");
            (bytes.into_bytes(), refused(413))
        }
        27 => {
            let big = "a".repeat(17_000);
            (
                get("/hi", "1.1", &format!("{HOST}X-Big: {big}\r\n")),
                refused(431),
            )
        }
        28 => (
            b"\x01GET /hi HTTP/1.1\r\nHost: f\r\n\r\n".to_vec(),
            refused(400),
        ),
        29 => (get("/h\x7fi", "1.1", HOST), refused(400)),
        30 => (get("/hi", "1.1", "Host: f\r\nX: a\r\n b\r\n"), refused(400)),
        31 => {
            // `chunked` not last: the body's end cannot be known.
            let bytes =
                format!("POST /echo HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked, gzip\r\n\r\n");
            (bytes.into_bytes(), refused(400))
        }
        _ => (
            get("/hi", "1.1", "Host: f\r\nExpect: teapot\r\n"),
            refused(417),
        ),
    }
}

/// `body` as a chunked body: chunk sizes, hex case, extensions and trailers chosen by `c`.
fn chunked(c: &mut Choices, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let size = (1 + c.below(24)).min(rest.len());
        let (data, tail) = rest.split_at(size);
        let hex = match c.below(3) {
            0 => format!("{size:x}"),
            1 => format!("{size:X}"),
            _ => format!("00{size:x}"),
        };
        out.extend_from_slice(hex.as_bytes());
        out.extend_from_slice(match c.below(4) {
            0 => b";ext" as &[u8],
            1 => b";name=value",
            2 => b";q=\"quoted; value\"",
            _ => b"",
        });
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(b"0\r\n");
    if c.below(3) == 0 {
        out.extend_from_slice(b"X-Trailer: yes\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
