//! The cursor of the single pass, and the request line (RFC 9112 §3).
//!
//! Each byte is looked at once, in order, and the pass stops where the grammar first
//! fails, with the same kind of verdict (`Stop`) httparse gave there before it: the
//! verdict of an invalid head must not depend on what follows the first bad byte, nor on
//! how the bytes were split across reads (`fuzz/src/head.rs`), and where it stops decides
//! whether an error or a "read more" comes first.

use super::class::{self, TCHAR, URI};
use super::{ParseError, Span, Version};

/// Why the pass ended before a complete head; `parse_head` turns it into its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The bytes ran out with nothing wrong so far.
    Partial,
    /// A method or target byte out of place, just taken (at `pos - 1`): 414 if the line was
    /// too long before it, else 400.
    Token,
    /// Any other byte out of place (a line ending, a field name or value): 400.
    Syntax,
    /// One field line more than the limit allows: 431.
    TooManyHeaders,
    /// A verdict reached while scanning (the version's).
    Refused(ParseError),
}

/// Where the pass is in the head, and what it noted on the way that only a complete head
/// is judged by.
pub(super) struct Cursor<'b> {
    /// The whole buffer: only the version's rules look past the window (as they did).
    pub buf: &'b [u8],
    /// The part the limits let the pass see: the buffer up to `max_head_bytes`.
    pub window: &'b [u8],
    pub pos: usize,
    /// The first LF of the head (the request line is too long if it comes too late).
    pub first_lf: usize,
    /// A line ended with a bare LF (RFC 9112 §2.2: CRLF only; judged once the head is
    /// complete, as a bare LF still ends a line for the grammar).
    pub bare_lf: bool,
    /// The version was `HTTP/1.x` of a minor we do not know, read as 1.1.
    pub minor_read_as_1: bool,
}

impl<'b> Cursor<'b> {
    pub fn new(buf: &'b [u8], max_head_bytes: usize) -> Self {
        Cursor {
            buf,
            window: &buf[..buf.len().min(max_head_bytes)],
            pos: 0,
            first_lf: usize::MAX,
            bare_lf: false,
            minor_read_as_1: false,
        }
    }

    #[inline(always)]
    pub fn peek(&self) -> Option<u8> {
        self.window.get(self.pos).copied()
    }

    /// The next byte, or `Partial` at the end of the window.
    #[inline(always)]
    pub fn next(&mut self) -> Result<u8, Stop> {
        let b = self.peek().ok_or(Stop::Partial)?;
        self.pos += 1;
        Ok(b)
    }

    /// Steps over the run of `class` bytes from here.
    #[inline(always)]
    pub fn skip(&mut self, class: u8) {
        self.pos += class::run(&self.window[self.pos..], class);
    }

    /// Whether `b`, just taken, ends a line: an LF, or a CR that must then be followed by
    /// an LF (a bare CR is wrong wherever it stands).
    #[inline(always)]
    pub fn line_end(&mut self, b: u8) -> Result<bool, Stop> {
        match b {
            b'\r' if self.next()? == b'\n' => Ok(true),
            b'\r' => Err(Stop::Syntax),
            b'\n' => {
                self.bare_lf = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The request line's parts.
pub(super) struct Line {
    pub method: Span,
    pub target: Target,
    pub version: Version,
}

/// The request target, and what the pass learnt of its bytes.
pub(super) struct Target {
    pub span: Span,
    /// The first `?`, if the target is `plain`.
    pub question: Option<u32>,
    /// An origin-form target whose path bytes are all `PATH` and query bytes `QUERY`: well
    /// formed as it stands (no `%` to decode-check, no other form to take apart).
    pub plain: bool,
}

/// Empty lines before the request line (RFC 9112 §2.2 lets a server skip them), then
/// `method SP request-target SP HTTP-version CRLF`.
pub(super) fn request_line(c: &mut Cursor<'_>) -> Result<Line, Stop> {
    skip_empty_lines(c)?;
    let method = method(c)?;
    let target = target(c)?;
    let version = version(c)?;
    let b = c.next()?;
    if !c.line_end(b)? {
        return Err(Stop::Syntax);
    }
    c.first_lf = c.first_lf.min(c.pos - 1);
    Ok(Line {
        method,
        target,
        version,
    })
}

fn skip_empty_lines(c: &mut Cursor<'_>) -> Result<(), Stop> {
    loop {
        match c.peek().ok_or(Stop::Partial)? {
            b @ (b'\r' | b'\n') => {
                c.pos += 1;
                c.line_end(b)?;
                c.first_lf = c.first_lf.min(c.pos - 1);
            }
            _ => return Ok(()),
        }
    }
}

/// `token SP`. `GET` first, as one comparison: most requests are.
#[inline(always)]
fn method(c: &mut Cursor<'_>) -> Result<Span, Stop> {
    let start = c.pos;
    if c.window[start..].first_chunk() == Some(b"GET ") {
        c.pos += 4;
        return Ok(span(start, start + 3));
    }
    if !class::is(c.next()?, TCHAR) {
        return Err(Stop::Token);
    }
    c.skip(TCHAR);
    let end = c.pos;
    match c.next()? {
        b' ' => Ok(span(start, end)),
        _ => Err(Stop::Token),
    }
}

/// `request-target SP`. The path and query classes first (a well-formed origin-form target
/// is then known so, with its `?`, in the one pass), then whatever else the lenient class
/// takes, which the complete head's checks then judge.
#[inline(always)]
fn target(c: &mut Cursor<'_>) -> Result<Target, Stop> {
    let start = c.pos;
    c.skip(class::PATH);
    let mut question = None;
    if c.peek() == Some(b'?') {
        question = Some(c.pos as u32);
        c.pos += 1;
        c.skip(class::QUERY);
    }
    let plain_end = c.pos;
    c.skip(URI);
    let end = c.pos;
    if c.next()? != b' ' || end == start {
        return Err(Stop::Token);
    }
    let bytes = &c.window[start..end];
    let plain = end == plain_end && bytes[0] == b'/';
    // A target past the classes above is refused once the head is complete, unless a
    // byte stops the pass first; one that is not UTF-8 stopped httparse at once (it gave
    // the target out as `&str`), so it stops the pass here too. `from_utf8` only here: it
    // costs ~110 instructions a call (docs/architecture.md §3, "Per-request cost").
    if !plain && !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
        return Err(Stop::Token);
    }
    Ok(Target {
        span: span(start, end),
        question: question.filter(|_| plain),
        plain,
    })
}

/// `HTTP/1.1` or `HTTP/1.0` as one comparison each; anything else is sorted out by
/// `other_version`.
#[inline(always)]
fn version(c: &mut Cursor<'_>) -> Result<Version, Stop> {
    const HTTP_11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
    const HTTP_10: u64 = u64::from_le_bytes(*b"HTTP/1.0");
    let at = c.pos;
    let word = c.window[at..]
        .first_chunk::<8>()
        .map(|w| u64::from_le_bytes(*w));
    match word {
        Some(HTTP_11) => {
            c.pos += 8;
            Ok(Version::Http11)
        }
        Some(HTTP_10) => {
            c.pos += 8;
            Ok(Version::Http10)
        }
        // Not given the cursor: a cursor whose address escapes into a call lives in memory,
        // and every step of the pass would store its position (~60 instructions a request).
        _ => {
            let version = other_version(c.buf, c.window, at)?;
            c.pos = at + 8;
            c.minor_read_as_1 = true;
            Ok(version)
        }
    }
}

/// A version other than HTTP/1.0 and HTTP/1.1 at `at`, or not all there yet. A 1.x minor
/// we do not know is read as 1.1 (RFC 9110 §2.5): `Ok`, and the pass goes on after it. Another well-formed
/// version is a 505, garbage a 400; while the version could still become one of these,
/// wait for more bytes (so the answer does not depend on how reads split).
#[cold]
fn other_version(buf: &[u8], window: &[u8], at: usize) -> Result<Version, Stop> {
    const SHAPE: &[u8] = b"HTTP/0.0"; // `0`: any digit
    let fits = |v: &[u8]| {
        v.len() <= SHAPE.len()
            && v.iter().zip(SHAPE).all(|(&b, &s)| match s {
                b'0' => b.is_ascii_digit(),
                _ => b == s,
            })
    };
    // Fewer than eight bytes seen that begin `HTTP/1.`: more to come.
    let seen = &window[at..];
    if seen.len() < SHAPE.len() && b"HTTP/1.".starts_with(&seen[..seen.len().min(7)]) {
        return Err(Stop::Partial);
    }
    // The rest of the line, in the whole buffer. Only the LF ends it: until it comes,
    // `HTTP/9.1` may still become `HTTP/9.1x` and `HTTP/9.1\r` `HTTP/9.1\rx` (both 400),
    // so neither is a 505 yet (found by fuzz/ head).
    let rest = &buf[at..];
    let (line, ended) = match memchr::memchr(b'\n', rest) {
        Some(end) => (&rest[..end], true),
        None => (rest, false),
    };
    let v = line.strip_suffix(b"\r").unwrap_or(line);
    match v {
        v if v.len() == SHAPE.len() && fits(v) && v.starts_with(b"HTTP/1.") => Ok(Version::Http11),
        v if ended && v.len() == SHAPE.len() && fits(v) => {
            Err(Stop::Refused(ParseError::VersionNotSupported))
        }
        v if !ended && fits(v) => Err(Stop::Partial),
        _ => Err(Stop::Refused(ParseError::Malformed("HTTP version"))),
    }
}

#[inline(always)]
pub(super) fn span(start: usize, end: usize) -> Span {
    Span {
        start: start as u32,
        end: end as u32,
    }
}
