//! Checking a response header a handler sets: a well-formed RFC 9110 field, and not one of
//! the headers Corral writes itself (framing, `Connection`, `Date`, `Server`).

/// Why [`Response::try_with_header`](super::response::Response::try_with_header) refused a header. The messages name the header but never
/// repeat its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Corral writes this header itself; `advice` says what to do instead.
    #[error("Corral writes {name} itself; {advice}")]
    Reserved {
        /// The header's usual spelling, e.g. `Content-Length`.
        name: &'static str,
        /// What to do instead.
        advice: &'static str,
    },
    /// The name is empty or has a byte that is not an RFC 9110 `tchar`.
    #[error(
        "header name {name:?} is not an RFC 9110 token: use ASCII letters, digits and \
         !#$%&'*+-.^_`|~ only"
    )]
    InvalidName {
        /// The refused name.
        name: String,
    },
    /// The value has CR, LF, NUL or another control byte (only HTAB is allowed).
    #[error(
        "header {name}: the value has a control byte (CR, LF, NUL, ...) at byte {at}; \
         a header value may hold no control byte but HTAB"
    )]
    InvalidValue {
        /// The header's name.
        name: String,
        /// Offset of the first refused byte in the value.
        at: usize,
    },
}

/// The headers the encoder writes, with what a handler should do instead.
const RESERVED: &[(&str, &str)] = &[
    (
        "Content-Length",
        "it is the length of the body: give the body with `with_body` or a constructor",
    ),
    (
        "Transfer-Encoding",
        "a `Response::stream` body is sent chunked, any other with a length",
    ),
    (
        "Connection",
        "call `with_close()` to close the connection after this response",
    ),
    (
        "Keep-Alive",
        "keep-alive follows the request; call `with_close()` to close instead",
    ),
    (
        "Upgrade",
        "Corral switches protocols only to WebSocket, with `Request::websocket` (which \
         writes `Upgrade` and `Connection: upgrade` itself)",
    ),
    ("Trailer", "Corral sends no trailer fields"),
    ("Date", "every response gets the current one"),
    ("Server", "every response says `Server: corral`"),
];

/// The refusals of `try_with_header`, checked in this order: reserved, name, value. The
/// encoder checks every header again before it writes one (`encode::encode_head`).
pub(super) fn check_header(name: &str, value: &str) -> Result<(), HeaderError> {
    if let Some(&(name, advice)) = RESERVED.iter().find(|(r, _)| name.eq_ignore_ascii_case(r)) {
        return Err(HeaderError::Reserved { name, advice });
    }
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(HeaderError::InvalidName { name: name.into() });
    }
    check_value(name, value)
}

/// RFC 9110 §5.5: field-vchar is VCHAR or obs-text, with SP and HTAB between.
pub(super) fn check_value(name: &str, value: &str) -> Result<(), HeaderError> {
    // Every response checks its headers: first one pass without an early exit (the compiler
    // vectorises it), then, only for a bad value, the position for the error.
    // `&` and `|`, not `&&` and `||`: no branch per byte, so the fold does vectorise.
    let bad = |b: u8| ((b < b' ') & (b != b'\t')) | (b == 0x7f);
    if !value.bytes().fold(false, |any, b| any | bad(b)) {
        return Ok(());
    }
    match value.bytes().position(bad) {
        Some(at) => Err(HeaderError::InvalidValue {
            name: name.into(),
            at,
        }),
        None => Ok(()),
    }
}

/// RFC 9110 §5.6.2 `tchar`: what a field name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
