//! Checking a response header a handler sets: a well-formed RFC 9110 field, and not one of
//! the headers Corral writes itself (framing, `Connection`, `Date`, `Server`); and the list
//! a response holds them in.

use std::borrow::Cow;
use std::sync::Arc;

/// One response header: (name, value), as the handler gave them.
pub(crate) type HeaderPair = (Cow<'static, str>, Cow<'static, str>);

/// A response's added headers: a list of its own, or one shared by many responses and
/// checked once when it was made (a cached file's validators: `files::FileHeaders`). A
/// shared list costs a response no allocation and no check; adding to it copies it.
#[derive(Clone, Debug)]
pub(crate) enum Headers {
    Own(Vec<HeaderPair>),
    Shared(SharedHeaders),
}

/// Headers checked once (`check_header`) and shared read-only.
#[derive(Clone, Debug)]
pub(crate) struct SharedHeaders(Arc<[HeaderPair]>);

impl SharedHeaders {
    /// The list, if every header in it is one a handler could add.
    pub(crate) fn new(pairs: Vec<HeaderPair>) -> Result<SharedHeaders, HeaderError> {
        for (name, value) in &pairs {
            check_header(name, value)?;
        }
        Ok(SharedHeaders(pairs.into()))
    }
}

impl Default for Headers {
    fn default() -> Self {
        Headers::Own(Vec::new())
    }
}

impl Headers {
    pub(crate) fn as_slice(&self) -> &[HeaderPair] {
        match self {
            Headers::Own(own) => own,
            Headers::Shared(shared) => &shared.0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Appends a header (checked by the caller, or made by Corral).
    pub(crate) fn push(&mut self, pair: HeaderPair) {
        if let Headers::Shared(shared) = self {
            *self = Headers::Own(shared.0.to_vec());
        }
        if let Headers::Own(own) = self {
            own.push(pair);
        }
    }

    /// The headers no check has seen since they were added: the encoder checks these again
    /// before it writes a head (a shared list was checked when it was made).
    pub(crate) fn unchecked(&self) -> &[HeaderPair] {
        match self {
            Headers::Own(own) => own,
            Headers::Shared(_) => &[],
        }
    }
}

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
    if let Some((name, advice)) = reserved(name) {
        return Err(HeaderError::Reserved { name, advice });
    }
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(HeaderError::InvalidName { name: name.into() });
    }
    check_value(name, value)
}

/// The entry of `RESERVED` that `name` is, in any case. Every response header is checked
/// twice (when added and when encoded), so the length picks the candidates first: most
/// names match no reserved length, and the rest are compared with one or two entries, not
/// eight (~290 instructions a header before).
fn reserved(name: &str) -> Option<(&'static str, &'static str)> {
    let candidates: &[(&str, &str)] = match name.len() {
        4 => &RESERVED[6..7],
        6 => &RESERVED[7..8],
        7 => &RESERVED[4..6],
        10 => &RESERVED[2..4],
        14 => &RESERVED[0..1],
        17 => &RESERVED[1..2],
        _ => return None,
    };
    candidates
        .iter()
        .find(|(reserved, _)| name.eq_ignore_ascii_case(reserved))
        .copied()
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

/// RFC 9110 §5.6.2 `tchar`: what a field name is made of (the parser's class table: one
/// load a byte).
fn is_tchar(b: u8) -> bool {
    super::parse::is_tchar(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reserved_name_is_found_by_its_length_in_any_case() {
        for &(name, advice) in RESERVED {
            for spelling in [
                name.to_string(),
                name.to_ascii_lowercase(),
                name.to_ascii_uppercase(),
            ] {
                assert_eq!(reserved(&spelling), Some((name, advice)), "{spelling}");
            }
        }
        for other in [
            "ETag",
            "Accept-Ranges",
            "Content-Type",
            "Dates",
            "Servers",
            "X",
        ] {
            assert_eq!(reserved(other), None, "{other}");
        }
    }

    fn pair(name: &'static str, value: &'static str) -> HeaderPair {
        (Cow::Borrowed(name), Cow::Borrowed(value))
    }

    #[test]
    fn a_shared_list_is_checked_when_made_and_copied_when_added_to() {
        let refused = SharedHeaders::new(vec![pair("ETag", "\"1\""), pair("X", "a\r\nb")]);
        assert!(matches!(refused, Err(HeaderError::InvalidValue { .. })));
        assert!(SharedHeaders::new(vec![pair("content-length", "1")]).is_err());

        let made = SharedHeaders::new(vec![pair("ETag", "\"1\""), pair("Accept-Ranges", "bytes")]);
        let mut headers = Headers::Shared(made.expect("well formed"));
        let shared = headers.clone();
        assert!(headers.unchecked().is_empty(), "checked when made");
        headers.push(pair("Content-Range", "bytes 0-0/1"));
        let names: Vec<&str> = headers.as_slice().iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, ["ETag", "Accept-Ranges", "Content-Range"]);
        assert_eq!(headers.unchecked().len(), 3, "an own list is checked again");
        assert_eq!(shared.as_slice().len(), 2, "the shared list is not changed");
    }

    #[test]
    fn the_tchar_table_is_rfc_9110_tchar() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), tchar, "{b:#x}");
        }
    }
}
