//! Turning a handler's `Response` into bytes for the request it answers: framing, the
//! `Connection` header and keep-alive. Shared by the connection loop and by the scheduler's
//! ward, which answers hibernated requests without a coroutine (`conn::hibernate`).

use super::encode::{self, BodyFraming, ConnectionHeader, EncodeError};
use super::parse::Version;
use super::response::{Body, BodyWrite, Response, StreamFn};
use super::status::Status;

/// What a response's framing depends on in the request it answers: a few bits that outlive
/// the request's bytes (a hibernated request keeps them, not its head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplyShape {
    pub is_head: bool,
    pub version: Version,
    /// The client allows keep-alive (HTTP/1.1 without `close`, or 1.0 with `keep-alive`).
    pub client_keeps_alive: bool,
}

/// The outcome of encoding one response.
pub(crate) struct Encoded {
    pub status: Status,
    pub keep_alive: bool,
    /// Body bytes written (for a stream: not yet known, 0).
    pub sent: u64,
    /// A streamed body still to run after the head is sent, and whether it is chunked.
    pub stream: Option<(StreamFn, bool)>,
}

/// Appends the head and (unless it is a stream) the body of `response` to `out`; or, for a
/// response that cannot be framed as it is, appends nothing and says why (like hyper, it
/// refuses rather than mends: the caller answers 500).
pub(crate) fn encode_reply(
    out: &mut Vec<u8>,
    mut response: Response,
    shape: ReplyShape,
    draining: bool,
) -> Result<Encoded, EncodeError> {
    encode_reply_in(out, &mut response, shape, draining)
}

/// `encode_reply` of a response the caller keeps (and drops): its body is taken out. By
/// reference, so the connection loop's answer is not copied into each call on the way.
#[inline]
pub(crate) fn encode_reply_in(
    out: &mut Vec<u8>,
    response: &mut Response,
    shape: ReplyShape,
    draining: bool,
) -> Result<Encoded, EncodeError> {
    match encode_plain(out, response, shape, draining) {
        Some(encoded) => Ok(encoded),
        None => encode_general(out, response, shape, draining),
    }
}

/// Any response: `encode_reply_in` without the plain answer's short cut.
fn encode_general(
    out: &mut Vec<u8>,
    response: &mut Response,
    shape: ReplyShape,
    draining: bool,
) -> Result<Encoded, EncodeError> {
    let status = response.status;
    if !(200..=599).contains(&status.code()) {
        return Err(EncodeError::NotFinal(status.code()));
    }
    if !status.allows_body() && !response.body.is_empty() {
        return Err(EncodeError::BodyNotAllowed(status.code()));
    }
    let keep_alive = !response.close && !draining && shape.client_keeps_alive;
    let body = std::mem::replace(&mut response.body, Body::Empty);
    let framing = match (body.len(), shape.version) {
        // 1xx, 204 and 304 end at their head (RFC 9112 §6.3), whatever body the handler
        // gave: no chunked framing, and no close to delimit a stream that is never sent.
        _ if !response.status.allows_body() => BodyFraming::Length(0),
        (Some(n), _) => BodyFraming::Length(n as u64),
        (None, Version::Http11) => BodyFraming::Chunked,
        (None, Version::Http10) => BodyFraming::UntilClose,
    };
    let keep_alive = keep_alive && framing != BodyFraming::UntilClose;
    let connection = match (keep_alive, shape.version) {
        (false, _) => ConnectionHeader::Close,
        (true, Version::Http10) => ConnectionHeader::KeepAlive,
        (true, Version::Http11) => ConnectionHeader::Omit,
    };
    encode::encode_head(out, response, framing, connection)?;
    let mut encoded = Encoded {
        status: response.status,
        keep_alive,
        sent: 0,
        stream: None,
    };
    if shape.is_head || !status.allows_body() {
        return Ok(encoded);
    }
    encoded.sent = body.len().unwrap_or(0) as u64;
    match body {
        Body::Empty => {}
        Body::Static(bytes) => out.extend_from_slice(bytes),
        Body::Bytes(bytes) => out.extend_from_slice(&bytes),
        Body::Shared(bytes) => out.extend_from_slice(&bytes),
        Body::Stream(stream) => encoded.stream = Some((stream, framing == BodyFraming::Chunked)),
        Body::SizedStream { len, stream } => {
            encoded.sent = 0;
            encoded.stream = Some((exactly(len, stream), false));
        }
    }
    Ok(encoded)
}

/// The answer most requests get, in one piece (`encode::encode_plain_ok`): a `200` with its
/// body in hand, one of Corral's own types or none, no header of the handler's, to a GET on
/// a keep-alive HTTP/1.1 connection. The general path writes the same bytes for it (tests
/// below), through checks that cannot fail here: ~100 instructions a request more
/// (benches/server_instructions.sh, pipelined: 2,711 -> 2,607).
#[inline]
fn encode_plain(
    out: &mut Vec<u8>,
    response: &mut Response,
    shape: ReplyShape,
    draining: bool,
) -> Option<Encoded> {
    let plain = response.status == Status::OK
        && response.headers.is_empty()
        && !response.close
        && !response.offers_websocket
        && !draining
        && shape.client_keeps_alive
        && !shape.is_head
        && shape.version == Version::Http11;
    if !plain {
        return None;
    }
    let body: &[u8] = match &response.body {
        Body::Empty => &[],
        Body::Static(bytes) => bytes,
        Body::Bytes(bytes) => bytes,
        Body::Shared(bytes) => bytes,
        Body::Stream(_) | Body::SizedStream { .. } => return None,
    };
    let type_line = match response.content_type.as_deref() {
        None => &[],
        Some(content_type) => encode::known_content_type_line(content_type)?,
    };
    encode::encode_plain_ok(out, type_line, body);
    let sent = body.len() as u64;
    response.body = Body::Empty;
    Some(Encoded {
        status: Status::OK,
        keep_alive: true,
        sent,
        stream: None,
    })
}

/// A sized stream held to its length: the head said `Content-Length: len`, so a byte more
/// would be read as the next response, and a byte less leaves the client waiting.
fn exactly(len: u64, stream: StreamFn) -> StreamFn {
    Box::new(move |out: &mut dyn BodyWrite| {
        let mut held = Exactly { out, left: len };
        stream(&mut held)?;
        match held.left {
            0 => Ok(()),
            left => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("a sized body ended {left} bytes short of its Content-Length"),
            )),
        }
    })
}

struct Exactly<'a> {
    out: &'a mut dyn BodyWrite,
    left: u64,
}

impl BodyWrite for Exactly<'_> {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        let n = data.len() as u64;
        if n > self.left {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a sized body wrote more than its Content-Length",
            ));
        }
        self.out.write_all(data)?;
        self.left -= n;
        Ok(())
    }

    fn closed(&self) -> bool {
        self.out.closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn shape(version: Version, client_keeps_alive: bool) -> ReplyShape {
        ReplyShape {
            is_head: false,
            version,
            client_keeps_alive,
        }
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn the_plain_answer_is_the_general_paths_bytes_and_nothing_else_takes_it() {
        let plain = || {
            [
                Response::text("Hello, World!"),
                Response::bytes("application/json", b"{}".to_vec()),
                Response::shared("application/octet-stream", Arc::from(&b"abc"[..])),
                Response::new(Status::OK),
            ]
        };
        let keep = shape(Version::Http11, true);
        for (mut a, mut b) in plain().into_iter().zip(plain()) {
            let (mut fast, mut general) = (b"before|".to_vec(), b"before|".to_vec());
            let quick = encode_plain(&mut fast, &mut a, keep, false).expect("plain");
            let slow = encode_general(&mut general, &mut b, keep, false).expect("encodes");
            // The date may have ticked between the two.
            let undated = |out: &[u8]| {
                let out = text(out);
                let at = out.find("Date: ").expect("a date") + "Date: ".len();
                format!("{}{}", &out[..at], &out[at + 29..])
            };
            assert_eq!(undated(&fast), undated(&general));
            assert_eq!(
                (quick.status, quick.keep_alive, quick.sent),
                (slow.status, slow.keep_alive, slow.sent)
            );
        }
        let not_plain = [
            (Response::text("x").with_close(), keep, false),
            (Response::text("x"), keep, true),
            (Response::text("x"), shape(Version::Http11, false), false),
            (Response::text("x"), shape(Version::Http10, true), false),
            (
                Response::text("x"),
                ReplyShape {
                    is_head: true,
                    ..keep
                },
                false,
            ),
            (Response::error(Status::NOT_FOUND), keep, false),
            (Response::text("x").with_header("X-A", "b"), keep, false),
            (Response::bytes("text/html", b"x".to_vec()), keep, false),
        ];
        for (mut response, shape, draining) in not_plain {
            let mut out = Vec::new();
            assert!(encode_plain(&mut out, &mut response, shape, draining).is_none());
            assert!(out.is_empty());
        }
    }

    #[test]
    fn keep_alive_needs_the_client_the_handler_and_no_drain() {
        let mut out = Vec::new();
        let kept = encode_reply(
            &mut out,
            Response::text("hi"),
            shape(Version::Http11, true),
            false,
        )
        .expect("encodes");
        assert!(kept.keep_alive);
        assert!(!text(&out).contains("Connection"));
        assert!(text(&out).ends_with("\r\n\r\nhi"));

        for (response, shape, draining) in [
            (
                Response::text("hi").with_close(),
                shape(Version::Http11, true),
                false,
            ),
            (Response::text("hi"), shape(Version::Http11, false), false),
            (Response::text("hi"), shape(Version::Http11, true), true),
        ] {
            let mut out = Vec::new();
            let closed = encode_reply(&mut out, response, shape, draining).expect("encodes");
            assert!(!closed.keep_alive);
            assert!(text(&out).contains("Connection: close\r\n"));
        }
    }

    #[test]
    fn head_requests_get_the_length_but_no_body() {
        let mut out = Vec::new();
        let shape = ReplyShape {
            is_head: true,
            ..shape(Version::Http11, true)
        };
        let encoded =
            encode_reply(&mut out, Response::text("hello"), shape, false).expect("encodes");
        assert_eq!(encoded.sent, 0);
        assert!(text(&out).contains("Content-Length: 5\r\n"));
        assert!(text(&out).ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_streamed_204_is_refused_before_anything_is_written() {
        // A 204 has no body (RFC 9110 §15.3.5): a stream on it is the handler's bug, and the
        // connection answers 500 instead (`conn::write::encode_or_refuse`).
        for version in [Version::Http11, Version::Http10] {
            let mut out = Vec::new();
            let response =
                Response::stream("text/plain", |_| Ok(())).with_status(Status::NO_CONTENT);
            let refused = encode_reply(&mut out, response, shape(version, true), false);
            assert!(refused.is_err(), "{version:?}");
            assert!(out.is_empty(), "{version:?}: {}", text(&out));
        }
    }

    #[test]
    fn head_on_a_stream_gets_the_chunked_head_and_the_stream_is_not_run() {
        let mut out = Vec::new();
        let shape = ReplyShape {
            is_head: true,
            ..shape(Version::Http11, true)
        };
        let response = Response::stream("text/plain", |_| Ok(()));
        let encoded = encode_reply(&mut out, response, shape, false).expect("encodes");
        assert!(encoded.stream.is_none());
        assert!(encoded.keep_alive);
        assert!(text(&out).ends_with("Transfer-Encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn a_stream_is_handed_back_chunked_on_1_1_and_until_close_on_1_0() {
        let stream = || Response::stream("text/plain", |_| Ok(()));
        let mut out = Vec::new();
        let on_11 =
            encode_reply(&mut out, stream(), shape(Version::Http11, true), false).expect("encodes");
        assert!(matches!(on_11.stream, Some((_, true))));
        assert!(on_11.keep_alive);
        let mut out = Vec::new();
        let on_10 =
            encode_reply(&mut out, stream(), shape(Version::Http10, true), false).expect("encodes");
        assert!(matches!(on_10.stream, Some((_, false))));
        assert!(!on_10.keep_alive);
    }

    /// Collects what a stream writes.
    struct Sink(Vec<u8>);

    impl BodyWrite for Sink {
        fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
            self.0.extend_from_slice(data);
            Ok(())
        }
    }

    #[test]
    fn a_sized_stream_is_framed_by_length_on_both_versions_and_held_to_it() {
        for version in [Version::Http11, Version::Http10] {
            let mut out = Vec::new();
            let response = Response::stream_sized("text/plain", 5, |out| out.write_all(b"hello"));
            let encoded =
                encode_reply(&mut out, response, shape(version, true), false).expect("encodes");
            assert!(encoded.keep_alive, "{version:?}");
            let head = text(&out);
            assert!(head.contains("Content-Length: 5\r\n"), "{head}");
            assert!(!head.contains("Transfer-Encoding"), "{head}");
            let Some((stream, chunked)) = encoded.stream else {
                panic!("a sized stream is handed back to run");
            };
            assert!(!chunked);
            let mut sink = Sink(Vec::new());
            stream(&mut sink).expect("exactly 5 bytes");
            assert_eq!(sink.0, b"hello");
        }
        let run = |len: u64, body: &'static [u8]| {
            let stream = stream_of(Response::stream_sized("text/plain", len, move |out| {
                out.write_all(body)
            }));
            let mut sink = Sink(Vec::new());
            (stream(&mut sink).map_err(|e| e.kind()), sink.0)
        };
        let (short, _) = run(6, b"hello");
        assert_eq!(short, Err(std::io::ErrorKind::UnexpectedEof));
        let (long, written) = run(4, b"hello");
        assert_eq!(long, Err(std::io::ErrorKind::InvalidInput));
        assert!(written.is_empty(), "the excess write is refused whole");
    }

    /// The stream of a streamed response, as `encode_reply` hands it to the connection.
    fn stream_of(response: Response) -> StreamFn {
        let encoded = encode_reply(
            &mut Vec::new(),
            response,
            shape(Version::Http11, true),
            false,
        )
        .expect("encodes");
        encoded.stream.expect("a stream").0
    }

    /// A writer whose client is gone, or not.
    struct Client {
        gone: bool,
    }

    impl BodyWrite for Client {
        fn write_all(&mut self, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }

        fn closed(&self) -> bool {
            self.gone
        }
    }

    #[test]
    fn a_sized_stream_is_told_when_its_client_is_gone() {
        // The length check wraps the writer; a producer that polls `closed` to stop early
        // must get the writer's answer through it, either way.
        for gone in [false, true] {
            let stream = stream_of(Response::stream_sized("text/plain", 2, |out| {
                if out.closed() {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                out.write_all(b"ok")
            }));
            let got = stream(&mut Client { gone }).map_err(|e| e.kind());
            let want = if gone {
                Err(std::io::ErrorKind::BrokenPipe)
            } else {
                Ok(())
            };
            assert_eq!(got, want, "gone: {gone}");
        }
    }

    #[test]
    fn head_on_a_sized_stream_says_the_length_and_does_not_run_it() {
        let mut out = Vec::new();
        let shape = ReplyShape {
            is_head: true,
            ..shape(Version::Http11, true)
        };
        let response = Response::stream_sized("text/plain", 1 << 40, |_| {
            panic!("the stream of a HEAD answer must not run")
        });
        let encoded = encode_reply(&mut out, response, shape, false).expect("encodes");
        assert!(encoded.stream.is_none());
        assert!(text(&out).ends_with("Content-Length: 1099511627776\r\n\r\n"));
    }

    #[test]
    fn a_shared_body_is_written_whole() {
        let mut out = Vec::new();
        let body: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"shared"[..]);
        let response = Response::shared("text/plain", body.clone());
        let encoded =
            encode_reply(&mut out, response, shape(Version::Http11, true), false).expect("encodes");
        assert_eq!(encoded.sent, 6);
        assert!(text(&out).ends_with("Content-Length: 6\r\n\r\nshared"));
        assert_eq!(
            std::sync::Arc::strong_count(&body),
            1,
            "the response let go of it"
        );
    }

    #[test]
    fn a_status_that_cannot_end_a_response_is_refused_and_nothing_written() {
        for code in [0, 99, 100, 101, 103, 199, 600, 1000] {
            let mut out = b"earlier".to_vec();
            let response = Response::new(Status(code));
            let err = encode_reply(&mut out, response, shape(Version::Http11, true), false);
            assert_eq!(err.err(), Some(EncodeError::NotFinal(code)));
            assert_eq!(out, b"earlier");
        }
    }

    #[test]
    fn a_body_on_a_bodiless_status_is_refused() {
        for status in [Status::NO_CONTENT, Status::NOT_MODIFIED] {
            let with_body = Response::text("x").with_status(status);
            let streamed = Response::stream("text/plain", |_| Ok(())).with_status(status);
            for response in [with_body, streamed] {
                let mut out = Vec::new();
                let err = encode_reply(&mut out, response, shape(Version::Http11, true), false);
                assert_eq!(err.err(), Some(EncodeError::BodyNotAllowed(status.code())));
                assert!(out.is_empty());
            }
            let mut out = Vec::new();
            let empty = encode_reply(
                &mut out,
                Response::new(status),
                shape(Version::Http11, true),
                false,
            )
            .expect("a bodiless status without a body encodes");
            assert!(empty.keep_alive);
            let text = text(&out);
            assert!(!text.contains("Content-Length") && !text.contains("Transfer-Encoding"));
        }
    }

    #[test]
    fn every_error_response_encodes() {
        // The connection falls back on `Response::error(500)` when a response is refused, and
        // rejects bad requests with `Response::error(4xx)`.
        for code in 400..=599 {
            let response = Response::error(Status(code)).with_close();
            let mut out = Vec::new();
            encode_reply(&mut out, response, shape(Version::Http11, true), false)
                .unwrap_or_else(|err| panic!("{code}: {err}"));
        }
    }
}
