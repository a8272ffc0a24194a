//! Turning a handler's `Response` into bytes for the request it answers: framing, the
//! `Connection` header and keep-alive. Shared by the connection loop and by the scheduler's
//! ward, which answers hibernated requests without a coroutine (`crate::hibernate`).

use super::encode::{self, BodyFraming, ConnectionHeader};
use super::parse::Version;
use super::response::{Body, Response, StreamFn};
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

/// Appends the head and (unless it is a stream) the body of `response` to `out`.
pub(crate) fn encode_reply(
    out: &mut Vec<u8>,
    mut response: Response,
    shape: ReplyShape,
    draining: bool,
) -> Encoded {
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
    encode::encode_head(out, &response, framing, connection);
    let mut encoded = Encoded {
        status: response.status,
        keep_alive,
        sent: 0,
        stream: None,
    };
    if shape.is_head || !response.status.allows_body() {
        return encoded;
    }
    encoded.sent = body.len().unwrap_or(0) as u64;
    match body {
        Body::Empty => {}
        Body::Static(bytes) => out.extend_from_slice(bytes),
        Body::Bytes(bytes) => out.extend_from_slice(&bytes),
        Body::Stream(stream) => encoded.stream = Some((stream, framing == BodyFraming::Chunked)),
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn keep_alive_needs_the_client_the_handler_and_no_drain() {
        let mut out = Vec::new();
        let kept = encode_reply(
            &mut out,
            Response::text("hi"),
            shape(Version::Http11, true),
            false,
        );
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
            let closed = encode_reply(&mut out, response, shape, draining);
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
        let encoded = encode_reply(&mut out, Response::text("hello"), shape, false);
        assert_eq!(encoded.sent, 0);
        assert!(text(&out).contains("Content-Length: 5\r\n"));
        assert!(text(&out).ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_streamed_204_has_no_framing_keeps_alive_and_is_not_run() {
        for version in [Version::Http11, Version::Http10] {
            let mut out = Vec::new();
            let response =
                Response::stream("text/plain", |_| Ok(())).with_status(Status::NO_CONTENT);
            let encoded = encode_reply(&mut out, response, shape(version, true), false);
            assert!(encoded.stream.is_none(), "{version:?}");
            assert!(encoded.keep_alive, "{version:?}");
            let head = text(&out);
            assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
            assert!(!head.contains("Transfer-Encoding"), "{head}");
            assert!(!head.contains("Content-Length"), "{head}");
            assert!(!head.contains("Connection: close"), "{head}");
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
        let encoded = encode_reply(&mut out, response, shape, false);
        assert!(encoded.stream.is_none());
        assert!(encoded.keep_alive);
        assert!(text(&out).ends_with("Transfer-Encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn a_stream_is_handed_back_chunked_on_1_1_and_until_close_on_1_0() {
        let stream = || Response::stream("text/plain", |_| Ok(()));
        let mut out = Vec::new();
        let on_11 = encode_reply(&mut out, stream(), shape(Version::Http11, true), false);
        assert!(matches!(on_11.stream, Some((_, true))));
        assert!(on_11.keep_alive);
        let mut out = Vec::new();
        let on_10 = encode_reply(&mut out, stream(), shape(Version::Http10, true), false);
        assert!(matches!(on_10.stream, Some((_, false))));
        assert!(!on_10.keep_alive);
    }
}
