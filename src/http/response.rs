//! What a handler returns: `Response`, its `Body`, and the `IntoResponse` conversions.
//!
//! Framing headers (`Content-Length`, `Transfer-Encoding`, `Connection`), `Date` and `Server`
//! are Corral's to write: the encoder derives them from the body, the request and the
//! connection state, so a handler cannot produce a message that frames wrongly. A handler
//! that sets one anyway, or a header that is not well formed, is refused loudly at the call:
//! [`Response::with_header`] panics (the connection turns a handler panic into a 500 and logs
//! the route), [`Response::try_with_header`] returns a [`HeaderError`]. What the builders
//! cannot check at the call — a status that is not final (1xx, or outside 200..=599), a body
//! on a status that has none (1xx, 204, 304), a content type with a control byte — the
//! encoder refuses when the response is sent: a 500 that closes, and a log line naming the
//! route (`http::encode::EncodeError`).

use std::borrow::Cow;
use std::io;
use std::sync::Arc;

use super::status::Status;

pub use super::header::HeaderError;
use super::header::{Headers, check_header};
pub use super::into_response::{HttpError, IntoResponse, Json};

/// A streamed body: the closure runs after the head is sent and writes the body piece by
/// piece while it runs (it may sleep, wait on channels, loop).
pub type StreamFn = Box<dyn FnOnce(&mut dyn BodyWrite) -> io::Result<()> + Send>;

/// A response body.
pub enum Body {
    /// No body (`Content-Length: 0` where the status allows a body).
    Empty,
    /// Bytes that live for the whole program, sent without copying into a `Vec` first.
    Static(&'static [u8]),
    /// Owned bytes.
    Bytes(Vec<u8>),
    /// Bytes shared with others (a cache's copy of a file): each response holds a reference,
    /// none copies them before they are written.
    Shared(Arc<[u8]>),
    /// Written piece by piece after the head: chunked on HTTP/1.1, until close on 1.0.
    Stream(StreamFn),
    /// Written piece by piece after the head, exactly `len` bytes, framed with
    /// `Content-Length` (so a HEAD answer says the length too). Writing more than `len` is
    /// refused with an error; returning having written less closes the connection, since the
    /// client would wait for the rest.
    SizedStream {
        /// The bytes the stream will write.
        len: u64,
        /// Writes them.
        stream: StreamFn,
    },
}

impl Body {
    /// Length when known up front (everything but a stream).
    pub fn len(&self) -> Option<usize> {
        match self {
            Body::Empty => Some(0),
            Body::Static(b) => Some(b.len()),
            Body::Bytes(b) => Some(b.len()),
            Body::Shared(b) => Some(b.len()),
            Body::Stream(_) => None,
            Body::SizedStream { len, .. } => usize::try_from(*len).ok(),
        }
    }

    /// A body of known length 0.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The bytes, unless the body is a stream.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Body::Empty => Some(&[]),
            Body::Static(b) => Some(b),
            Body::Bytes(b) => Some(b),
            Body::Shared(b) => Some(b),
            Body::Stream(_) | Body::SizedStream { .. } => None,
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self, self.len()) {
            (Body::Stream(_), _) => f.write_str("Body(stream)"),
            (Body::SizedStream { len, .. }, _) => write!(f, "Body(stream of {len} bytes)"),
            (_, Some(n)) => write!(f, "Body({n} bytes)"),
            (_, None) => f.write_str("Body"),
        }
    }
}

/// The sink a streamed body writes to. Each `write_all` is sent to the client at once (as
/// one chunk on HTTP/1.1).
pub trait BodyWrite {
    /// Sends `data` to the client now; an error means the client is gone.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;

    /// The client hung up or the server is shutting down: an endless stream (Server-Sent
    /// Events) should return. A non-blocking check; a write to a departed client fails anyway.
    fn closed(&self) -> bool {
        false
    }
}

/// What a handler answers: status, content type, extra headers and body. Build it with the
/// constructors and `with_*` methods; read it back with the getters.
#[derive(Debug)]
pub struct Response {
    pub(crate) status: Status,
    pub(crate) content_type: Option<Cow<'static, str>>,
    /// Checked by `try_with_header`: none is reserved, names are tokens, values have no CR/LF.
    pub(crate) headers: Headers,
    pub(crate) body: Body,
    /// Close the connection after this response.
    pub(crate) close: bool,
    /// Set by [`Response::hibernate`]: the real response comes later. Boxed: it is rare,
    /// and a `Response` is the `Err` of a hibernation's subscribe, so it stays small.
    pub(crate) deferred: Option<Box<super::wait::Deferred>>,
    /// Set by [`Request::websocket`](crate::Request::websocket): a `101` and a WebSocket.
    pub(crate) upgrade: Option<Box<super::websocket::Upgrade>>,
    /// A `426` that says `Upgrade: websocket` (with `Connection: upgrade`, RFC 9110 §7.8).
    pub(crate) offers_websocket: bool,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: Status) -> Self {
        Response {
            status,
            content_type: None,
            headers: Headers::default(),
            body: Body::Empty,
            close: false,
            deferred: None,
            upgrade: None,
            offers_websocket: false,
        }
    }

    /// A 200 of `content_type` with `body`, built in one piece: a chain of `with_*` moved
    /// the whole response at each step (most handlers answer through here; docs/
    /// architecture.md §3, "Per-request cost").
    fn ok_with(content_type: Cow<'static, str>, body: Body) -> Self {
        Response {
            status: Status::OK,
            content_type: Some(content_type),
            headers: Headers::default(),
            body,
            close: false,
            deferred: None,
            upgrade: None,
            offers_websocket: false,
        }
    }

    /// A 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Cow<'static, str>>) -> Self {
        let body = match body.into() {
            Cow::Borrowed(s) => Body::Static(s.as_bytes()),
            Cow::Owned(s) => Body::Bytes(s.into_bytes()),
        };
        Response::ok_with(Cow::Borrowed("text/plain; charset=utf-8"), body)
    }

    /// A 200 with `body` of type `content_type`.
    pub fn bytes(content_type: impl Into<Cow<'static, str>>, body: Vec<u8>) -> Self {
        Response::ok_with(content_type.into(), Body::Bytes(body))
    }

    /// A 200 with `body` of type `content_type`, shared rather than copied (see
    /// [`Body::Shared`]).
    pub fn shared(content_type: impl Into<Cow<'static, str>>, body: Arc<[u8]>) -> Self {
        Response::ok_with(content_type.into(), Body::Shared(body))
    }

    /// A body of `len` bytes written while the handler runs, framed with `Content-Length`:
    /// see [`Body::SizedStream`].
    pub fn stream_sized<F>(content_type: impl Into<Cow<'static, str>>, len: u64, f: F) -> Self
    where
        F: FnOnce(&mut dyn BodyWrite) -> io::Result<()> + Send + 'static,
    {
        Response::new(Status::OK)
            .with_content_type(content_type)
            .with_body(Body::SizedStream {
                len,
                stream: Box::new(f),
            })
    }

    /// A body written while the handler runs: `f` gets a writer after the head is sent.
    pub fn stream<F>(content_type: impl Into<Cow<'static, str>>, f: F) -> Self
    where
        F: FnOnce(&mut dyn BodyWrite) -> io::Result<()> + Send + 'static,
    {
        Response::new(Status::OK)
            .with_content_type(content_type)
            .with_body(Body::Stream(Box::new(f)))
    }

    /// Sets the status.
    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// Sets the `Content-Type`. A value with a control byte other than HTAB cannot be sent:
    /// the client gets a 500 instead, and the log names the route.
    pub fn with_content_type(mut self, content_type: impl Into<Cow<'static, str>>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds a header; `Content-Type` sets the content type instead (as
    /// [`Response::with_content_type`] does), so there is never a second one.
    ///
    /// # Panics
    ///
    /// On what [`Response::try_with_header`] refuses: a header Corral writes itself
    /// (`Content-Length`, `Transfer-Encoding`, `Connection`, `Keep-Alive`, `Upgrade`,
    /// `Trailer`, `Date`, `Server`), a name that is not an RFC 9110 token, or a value with a
    /// control byte other than HTAB. Such a header is a bug at the call, and a handler panic
    /// becomes a 500 whose log line names the route. For names or values from outside (a
    /// proxied response, user input), call `try_with_header`.
    #[track_caller]
    pub fn with_header(
        self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        match self.try_with_header(name, value) {
            Ok(response) => response,
            Err(err) => panic!("{err}"),
        }
    }

    /// Adds a header, or says why not: see [`Response::with_header`] for what is refused.
    pub fn try_with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Result<Self, HeaderError> {
        let (name, value) = (name.into(), value.into());
        check_header(&name, &value)?;
        if name.eq_ignore_ascii_case("content-type") {
            self.content_type = Some(value);
        } else {
            self.headers.push((name, value));
        }
        Ok(self)
    }

    /// Sets the body.
    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Closes the connection after this response.
    pub fn with_close(mut self) -> Self {
        self.close = true;
        self
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The `Content-Type`, if set.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The headers added with `with_header`, in order (without `Content-Type` and the ones
    /// Corral writes itself).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.headers
            .as_slice()
            .iter()
            .map(|(name, value)| (&**name, &**value))
    }

    /// The first added header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(have, _)| have.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Will the connection close after this response (set by [`Response::with_close`])?
    pub fn closes(&self) -> bool {
        self.close
    }

    /// A short plain-text error response; the text never echoes request input.
    pub fn error(status: Status) -> Self {
        Response::text(status.reason()).with_status(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(name: &'static str, value: &'static str) -> HeaderError {
        match Response::new(Status::OK).try_with_header(name, value) {
            Ok(_) => panic!("{name}: {value:?} should be refused"),
            Err(err) => err,
        }
    }

    #[test]
    fn headers_corral_writes_are_refused_in_any_case() {
        for (name, canonical) in [
            ("Content-Length", "Content-Length"),
            ("transfer-encoding", "Transfer-Encoding"),
            ("CONNECTION", "Connection"),
            ("keep-alive", "Keep-Alive"),
            ("Upgrade", "Upgrade"),
            ("Trailer", "Trailer"),
            ("date", "Date"),
            ("Server", "Server"),
        ] {
            let err = refused(name, "x");
            assert!(
                matches!(err, HeaderError::Reserved { name, .. } if name == canonical),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("Corral writes {canonical} itself; ")),
                "{msg}"
            );
        }
    }

    #[test]
    fn names_that_are_not_tokens_are_refused() {
        for name in ["", "X Y", "X:Y", "X-\u{e9}", "X\r\nY", "(X)", "X/Y"] {
            let want = HeaderError::InvalidName { name: name.into() };
            assert_eq!(refused(name, "v"), want);
        }
    }

    #[test]
    fn values_with_control_bytes_are_refused_and_not_echoed() {
        for (value, at) in [
            ("a\r\nX-Evil: 1", 1),
            ("\n", 0),
            ("a\0b", 1),
            ("ab\x7f", 2),
            ("\x1b[", 0),
        ] {
            let err = refused("X-A", value);
            let want = HeaderError::InvalidValue {
                name: "X-A".into(),
                at,
            };
            assert_eq!(err, want);
            assert!(!err.to_string().contains("Evil"), "{err}");
        }
    }

    #[test]
    fn tabs_spaces_and_non_ascii_values_are_accepted() {
        let response = Response::new(Status::OK)
            .with_header("X-A", "a\tb c")
            .with_header("X-B", "caf\u{e9}")
            .with_header("X-Empty", "");
        let headers: Vec<_> = response.headers().collect();
        assert_eq!(
            headers,
            [("X-A", "a\tb c"), ("X-B", "caf\u{e9}"), ("X-Empty", "")]
        );
        assert_eq!(response.header("x-b"), Some("caf\u{e9}"));
    }

    #[test]
    #[should_panic(expected = "Corral writes Content-Length itself; ")]
    fn with_header_panics_on_a_reserved_header() {
        let _ = Response::text("hi").with_header("content-length", "2");
    }

    #[test]
    #[should_panic(expected = "header X-A: the value has a control byte")]
    fn with_header_panics_on_a_bad_value() {
        let _ = Response::new(Status::OK).with_header("X-A", "a\r\nb");
    }

    #[test]
    fn content_type_as_a_header_sets_the_content_type() {
        let response = Response::text("{}").with_header("content-type", "application/json");
        assert_eq!(response.content_type(), Some("application/json"));
        assert_eq!(response.headers().count(), 0);
        assert!(
            Response::new(Status::OK)
                .try_with_header("Content-Type", "text/html\r\n")
                .is_err()
        );
    }

    #[test]
    fn getters_read_back_what_the_builders_set() {
        let response = Response::bytes("application/octet-stream", vec![1, 2, 3])
            .with_status(Status::CREATED)
            .with_header("Location", "/items/1")
            .with_close();
        assert_eq!(response.status(), Status::CREATED);
        assert_eq!(response.content_type(), Some("application/octet-stream"));
        assert_eq!(response.header("location"), Some("/items/1"));
        assert_eq!(response.body().as_bytes(), Some(&[1u8, 2, 3][..]));
        assert!(response.closes());
        let plain = Response::new(Status::NO_CONTENT);
        assert!(!plain.closes() && plain.body().is_empty() && plain.content_type().is_none());
    }

    #[test]
    fn own_errors_convert_through_result() {
        struct Teapot;
        impl IntoResponse for Teapot {
            fn into_response(self) -> Response {
                Response::error(Status(418))
            }
        }
        let ok: Result<&'static str, Teapot> = Ok("fine");
        assert_eq!(ok.into_response().status(), Status::OK);
        let err: Result<&'static str, Teapot> = Err(Teapot);
        assert_eq!(err.into_response().status(), Status(418));
    }
}
