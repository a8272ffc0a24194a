//! What a handler returns: `Response`, its `Body`, and the `IntoResponse` conversions.
//!
//! Framing headers (`Content-Length`, `Transfer-Encoding`, `Connection`), `Date` and `Server`
//! are Corral's to write: the encoder derives them from the body, the request and the
//! connection state, so a handler cannot produce a message that frames wrongly.

use std::borrow::Cow;
use std::io;

use super::status::Status;

pub type HeaderPair = (Cow<'static, str>, Cow<'static, str>);

/// A streamed body: the closure runs after the head is sent and writes the body piece by
/// piece while it runs (it may sleep, wait on channels, loop).
pub type StreamFn = Box<dyn FnOnce(&mut dyn BodyWrite) -> io::Result<()> + Send>;

pub enum Body {
    Empty,
    Static(&'static [u8]),
    Bytes(Vec<u8>),
    Stream(StreamFn),
}

impl Body {
    /// Length when known up front (everything but a stream).
    pub fn len(&self) -> Option<usize> {
        match self {
            Body::Empty => Some(0),
            Body::Static(b) => Some(b.len()),
            Body::Bytes(b) => Some(b.len()),
            Body::Stream(_) => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.len() {
            Some(n) => write!(f, "Body({n} bytes)"),
            None => f.write_str("Body(stream)"),
        }
    }
}

/// The sink a streamed body writes to. Each `write_all` is sent to the client at once (as
/// one chunk on HTTP/1.1).
pub trait BodyWrite {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;

    /// The client hung up or the server is shutting down: an endless stream (Server-Sent
    /// Events) should return. A non-blocking check; a write to a departed client fails anyway.
    fn closed(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: Status,
    pub content_type: Option<Cow<'static, str>>,
    pub headers: Vec<HeaderPair>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
    /// Set by [`Response::hibernate`]: the real response comes later.
    pub(crate) deferred: Option<super::wait::Deferred>,
}

impl Response {
    pub fn new(status: Status) -> Self {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
            deferred: None,
        }
    }

    /// `text/plain; charset=utf-8`.
    pub fn text(body: impl Into<Cow<'static, str>>) -> Self {
        let body = match body.into() {
            Cow::Borrowed(s) => Body::Static(s.as_bytes()),
            Cow::Owned(s) => Body::Bytes(s.into_bytes()),
        };
        Response::new(Status::OK)
            .with_content_type("text/plain; charset=utf-8")
            .with_body(body)
    }

    pub fn bytes(content_type: impl Into<Cow<'static, str>>, body: Vec<u8>) -> Self {
        Response::new(Status::OK)
            .with_content_type(content_type)
            .with_body(Body::Bytes(body))
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

    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    pub fn with_content_type(mut self, content_type: impl Into<Cow<'static, str>>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds a header. Framing and connection headers, `Date` and `Server` are ignored here:
    /// the encoder writes them.
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        let name = name.into();
        if is_reserved_header(&name) {
            log::debug!("ignoring handler-set header {name}: Corral writes it");
        } else {
            self.headers.push((name, value.into()));
        }
        self
    }

    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    pub fn with_close(mut self) -> Self {
        self.close = true;
        self
    }

    /// A short plain-text error response; the text never echoes request input.
    pub fn error(status: Status) -> Self {
        Response::text(status.reason()).with_status(status)
    }
}

fn is_reserved_header(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "date",
        "server",
        "content-type",
    ]
    .iter()
    .any(|r| name.eq_ignore_ascii_case(r))
}

/// Anything a handler may return.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::bytes("application/octet-stream", self)
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        if self.allows_body() && self.0 >= 400 {
            Response::error(self)
        } else {
            Response::new(self)
        }
    }
}

impl<T: IntoResponse> IntoResponse for (Status, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

/// A JSON body: `Json(value)` serialises with serde_json.
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::bytes("application/json", body),
            Err(err) => {
                log::error!("JSON serialisation failed: {err}");
                Response::error(Status::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// An error a handler returns with `?`: a status and a fixed message (never request input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status:?}: {message}")]
pub struct HttpError {
    pub status: Status,
    pub message: Cow<'static, str>,
}

impl HttpError {
    pub fn new(status: Status, message: impl Into<Cow<'static, str>>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Status::BAD_REQUEST, message)
    }

    pub fn not_found() -> Self {
        Self::new(Status::NOT_FOUND, "Not Found")
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut text = self.message.into_owned();
        text.push('\n');
        Response::text(text).with_status(self.status)
    }
}
