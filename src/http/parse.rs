//! Request head parsing: bytes in, a `Head` of offsets out (RFC 9112 §2–§6).
//!
//! One pass over the head, each byte looked at once through a class table (`class.rs`):
//! empty lines, the request line (`line.rs`), then the field lines (`fields.rs`), each line
//! ending seen as the pass reaches it. It replaced httparse, which tokenised while Corral
//! checked again what it left lenient (CRLF only, the target's grammar, the version): the
//! pipelined benchmark's 47-byte head cost ~1,110 instructions that way, 754 now
//! (docs/architecture.md §3, "Per-request cost"). Its verdicts are httparse's and those
//! checks', input for input and prefix for prefix: the old parser is kept as the oracle of
//! a differential check (`parse/reference.rs`, `fuzz/src/differential.rs`).
//!
//! Two kinds of rule, judged at two moments:
//!
//! - The grammar, as the pass goes: a byte out of place stops it there with a 400 (or 431
//!   for one field line too many, 414 for a bad target byte in a line already too long);
//!   the bytes running out first, with nothing wrong yet, mean "read more".
//! - Corral's own rules, once the head is complete, in this order: the request line's
//!   length (414), CRLF line endings only (400), the target's length (414) and form (RFC
//!   3986 characters; origin, absolute or asterisk form; 501 for CONNECT), what the fields
//!   say (`Host`, `Content-Length`, `Transfer-Encoding`, `Expect` in field order), exactly
//!   one `Host` in HTTP/1.1, and the framing rules of RFC 9112 §6.3:
//!
//! 1. `Transfer-Encoding` and `Content-Length` together → 400 (smuggling guard).
//! 2. `Transfer-Encoding` in an HTTP/1.0 request → 400 (its framing cannot be trusted).
//! 3. `Transfer-Encoding` whose final coding is `chunked`, once → chunked body; `chunked`
//!    anywhere but last, or twice → 400; any other coding → 501.
//! 4. `Content-Length`: exactly one field of 1*DIGIT without overflow, else 400; over the
//!    body limit → 413.
//! 5. Neither → no body.
//!
//! The version: HTTP/1.0 and HTTP/1.1; a 1.x minor we do not know is read as 1.1, another
//! major is a 505 (`line::other_version`). The head stores offsets into the read buffer, so
//! parsing allocates nothing once the per-connection `Head` has grown its header vector.

mod class;
mod fields;
mod line;
#[cfg(any(test, feature = "bench-internals"))]
pub(crate) mod reference;
mod target;

use line::{Cursor, Line, Stop};

// The single pass refuses a bare CR where it stands and notes a bare LF as it ends a line;
// the word-wise check that did it after httparse is the oracle's now, and its tests in
// parse_tests.rs check it there.
#[cfg(test)]
use reference::check_line_endings;

#[cfg(test)]
use super::status::Status;

/// The most header fields any configuration may allow (bounds the head's vector of fields).
pub const MAX_HEADERS_CAP: usize = 128;

/// A byte range of the read buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn str<'b>(&self, buf: &'b [u8]) -> &'b str {
        // Spans given out as str cover bytes checked to be ASCII during parsing; the check
        // here is what makes that a fact rather than a promise. `is_ascii` goes a word at a
        // time, where `from_utf8` cost ~110 instructions a call (docs/architecture.md §3).
        let bytes = self.get(buf);
        if !bytes.is_ascii() {
            return "";
        }
        // SAFETY: ASCII bytes are valid UTF-8.
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(bytes)
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// How the request body is delimited, decided once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// HTTP minor version of an HTTP/1.x request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless the request asked for
    /// keep-alive; a streamed body ends with the close.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`; a streamed body is sent chunked.
    Http11,
}

impl Version {
    /// The version as written on a request or status line, e.g. `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed request head: offsets into the buffer it was parsed from.
#[derive(Debug)]
pub struct Head {
    pub method: Span,
    /// The method as a static string when it is one of RFC 9110's (the router compares it on
    /// every request; this spares validating the span as UTF-8 each time).
    pub standard_method: Option<&'static str>,
    pub target: Span,
    pub path: Span,
    pub query: Option<Span>,
    pub version: Version,
    pub headers: Vec<(Span, Span)>,
    pub framing: Framing,
    /// `Connection: close` was sent.
    pub close: bool,
    /// `Connection: keep-alive` was sent (matters for HTTP/1.0).
    pub keep_alive: bool,
    /// `Expect: 100-continue` in an HTTP/1.1 request.
    pub expect_continue: bool,
    /// Bytes of the head, from the first byte of the buffer through the blank line.
    pub len: usize,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            method: Span::default(),
            standard_method: None,
            target: Span::default(),
            path: Span::default(),
            query: None,
            version: Version::Http11,
            headers: Vec::new(),
            framing: Framing::None,
            close: false,
            keep_alive: false,
            expect_continue: false,
            len: 0,
        }
    }
}

/// The limits a head is parsed under (`[limits]` of the config).
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// The whole head, bytes: over it, 431.
    pub max_head_bytes: usize,
    /// The request target, bytes: over it, 414.
    pub max_uri_bytes: usize,
    /// Field lines: one more, 431.
    pub max_headers: usize,
    /// A declared body, bytes: over it, 413.
    pub max_body_bytes: u64,
}

/// Why a request head was refused. Every variant closes the connection after its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request head over the size limit")]
    HeadTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("request target over the size limit")]
    UriTooLong,
    #[error("HTTP version not supported")]
    VersionNotSupported,
    #[error("conflicting or invalid message framing: {0}")]
    BadFraming(&'static str),
    #[error("transfer coding not implemented")]
    UnsupportedCoding,
    #[error("method not implemented")]
    MethodNotImplemented,
    #[error("declared body over the size limit")]
    BodyTooLarge,
    #[error("expectation not supported")]
    ExpectationFailed,
}

impl ParseError {
    /// The status each error stands for (RFC 9110/9112). The connection answers with
    /// `conn::reject::Reason::status`, which a test holds to this table.
    #[cfg(test)]
    pub fn status(&self) -> Status {
        match self {
            ParseError::Malformed(_) | ParseError::BadFraming(_) => Status::BAD_REQUEST,
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => Status::HEADERS_TOO_LARGE,
            ParseError::UriTooLong => Status::URI_TOO_LONG,
            ParseError::VersionNotSupported => Status::VERSION_NOT_SUPPORTED,
            ParseError::UnsupportedCoding | ParseError::MethodNotImplemented => {
                Status::NOT_IMPLEMENTED
            }
            ParseError::BodyTooLarge => Status::PAYLOAD_TOO_LARGE,
            ParseError::ExpectationFailed => Status::EXPECTATION_FAILED,
        }
    }
}

/// Parses the head at the start of `buf` into `head`. `Ok(false)`: incomplete, read more.
pub fn parse_head(buf: &[u8], limits: &HeadLimits, head: &mut Head) -> Result<bool, ParseError> {
    #[cfg(test)]
    PARSES.with(|n| n.set(n.get() + 1));
    let mut c = Cursor::new(buf, limits.max_head_bytes);
    match scan(&mut c, limits, head) {
        Ok(()) => Ok(true),
        // A version read as 1.1 was a copy of the window with the digit made `1` to the
        // parser this replaced; what it measured then was that copy, not the buffer.
        Err(Stop::Partial) if c.minor_read_as_1 => incomplete(c.window, limits),
        Err(Stop::Partial) => incomplete(buf, limits),
        Err(Stop::TooManyHeaders) => Err(ParseError::TooManyHeaders),
        // The verdict the bytes before the bad one gave: a bad byte in a line already too
        // long is a 414 however the reads split, one within the limit a 400.
        Err(Stop::Token) if request_line_too_long(&c.window[..c.pos - 1], limits) => {
            Err(ParseError::UriTooLong)
        }
        Err(Stop::Token | Stop::Syntax) => {
            Err(ParseError::Malformed("request line or header field"))
        }
        Err(Stop::Refused(err)) => Err(err),
    }
}

#[cfg(test)]
thread_local! {
    /// `parse_head` calls on this thread (the loop's tests count its re-parses).
    pub static PARSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The pass, then the rules of a complete head.
#[inline(always)]
fn scan(c: &mut Cursor<'_>, limits: &HeadLimits, head: &mut Head) -> Result<(), Stop> {
    let line = line::request_line(c)?;
    head.version = line.version;
    let fields = fields::field_lines(c, limits, head)?;
    head.len = c.pos;
    judge(c, &line, limits, head).map_err(Stop::Refused)?;
    head.framing = fields
        .framing(line.version, limits)
        .map_err(Stop::Refused)?;
    Ok(())
}

/// Corral's rules for the request line of a complete head, in the order the module doc
/// gives; records the line's parts.
#[inline(always)]
fn judge(
    c: &Cursor<'_>,
    line: &Line,
    limits: &HeadLimits,
    head: &mut Head,
) -> Result<(), ParseError> {
    // What refuses a partial head refuses it complete too, or the answer would depend on
    // where the reads split (a long method beside a target just under the limit).
    if c.first_lf >= limits.max_uri_bytes + LINE_OVERHEAD {
        return Err(ParseError::UriTooLong);
    }
    if c.bare_lf {
        return Err(ParseError::Malformed("bare CR or LF"));
    }
    let target = line.target.span;
    if (target.end - target.start) as usize > limits.max_uri_bytes {
        return Err(ParseError::UriTooLong);
    }
    let method = line.method.get(c.window);
    let (path, query) = target::split(c.window, method, &line.target)?;
    head.method = line.method;
    head.standard_method = standard_method(method);
    head.target = target;
    head.path = path;
    head.query = query;
    Ok(())
}

/// An incomplete head: wait for more bytes unless a limit is already crossed.
fn incomplete(buf: &[u8], limits: &HeadLimits) -> Result<bool, ParseError> {
    if request_line_too_long(buf, limits) {
        return Err(ParseError::UriTooLong);
    }
    if buf.len() >= limits.max_head_bytes {
        return Err(ParseError::HeadTooLarge);
    }
    Ok(false)
}

/// Longest method we expect (e.g. "PROPPATCH") + 2 spaces + "HTTP/1.1\r\n", with slack.
const LINE_OVERHEAD: usize = 64;

/// Whether `parse_head` on `buf` can say more than it said of its first `parsed` bytes
/// ("incomplete"): a head completes only with an LF, and the limits are crossed only at
/// their lengths. The loop asks this before parsing again after a read, so a head trickled
/// in one byte per read costs a scan of each new byte, not a parse of the whole buffer each
/// time (found by the fuzz target `pipeline`: a 16 KiB head in 1-byte reads cost ~800×
/// the CPU of one read). What a skipped parse could have found early, an invalid byte
/// without an LF after it yet, the loop finds with one last parse before it answers a
/// timeout or an end of input (so the answer does not depend on how reads split).
pub fn may_tell_more(buf: &[u8], parsed: usize, limits: &HeadLimits) -> bool {
    let line_limit = limits.max_uri_bytes + LINE_OVERHEAD;
    parsed == 0
        || parsed > buf.len()
        || buf.len() >= limits.max_head_bytes
        || (parsed <= line_limit && buf.len() > line_limit)
        || memchr::memchr(b'\n', &buf[parsed..]).is_some()
}

/// The request line has no end within what a method, the longest allowed target and the
/// version could take.
fn request_line_too_long(buf: &[u8], limits: &HeadLimits) -> bool {
    let limit = limits.max_uri_bytes + LINE_OVERHEAD;
    // The length first: a head shorter than the limit (most) needs no search.
    buf.len() > limit && memchr::memchr(b'\n', &buf[..limit]).is_none()
}

/// The method as a static string when it is one of RFC 9110 §9's (CONNECT aside: it is
/// refused). A `match` compares by length, then as integers: no `memcmp` call per request.
#[inline(always)]
fn standard_method(method: &[u8]) -> Option<&'static str> {
    Some(match method {
        b"GET" => "GET",
        b"POST" => "POST",
        b"HEAD" => "HEAD",
        b"PUT" => "PUT",
        b"DELETE" => "DELETE",
        b"PATCH" => "PATCH",
        b"OPTIONS" => "OPTIONS",
        b"TRACE" => "TRACE",
        _ => return None,
    })
}

/// RFC 9110 §5.6.2 `tchar`, a method's and a field name's bytes (by the class table).
pub(crate) fn is_tchar(b: u8) -> bool {
    class::is(b, class::TCHAR)
}

impl Head {
    /// The request's method, as a string.
    pub fn method_str<'b>(&self, buf: &'b [u8]) -> &'b str {
        self.standard_method.unwrap_or_else(|| self.method.str(buf))
    }
}

/// The non-empty elements of a comma-separated list, each trimmed of OWS (RFC 9110 §5.6.1).
pub fn comma_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

#[cfg(test)]
mod differential_tests;
