//! The field lines (RFC 9112 §5), and what the few fields Corral acts on say: `Host`, the
//! framing of RFC 9112 §6.3, `Connection` and `Expect`.
//!
//! A field's meaning is noted as its line is scanned, but a refusal it earns waits for the
//! head to be complete: a later line may still be malformed, and that is the answer then
//! (the grammar's verdicts come first, so that the answer does not depend on the fields'
//! order of checks).

use super::class::{self, AUTHORITY, TCHAR};
use super::line::{Cursor, Stop, span};
use super::{
    Framing, Head, HeadLimits, MAX_HEADERS_CAP, ParseError, Version, comma_tokens, trim_ows,
};

/// The fields Corral acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    Other,
}

impl Name {
    /// By length first, then one case-blind comparison: most names are none of these.
    #[inline(always)]
    fn of(name: &[u8]) -> Name {
        let is = |lower: &[u8]| lower_eq(name, lower);
        match name.len() {
            4 if is(b"host") => Name::Host,
            6 if is(b"expect") => Name::Expect,
            10 if is(b"connection") => Name::Connection,
            14 if is(b"content-length") => Name::ContentLength,
            17 if is(b"transfer-encoding") => Name::TransferEncoding,
            _ => Name::Other,
        }
    }
}

/// `name` (tchar bytes) equals `lower` (lowercase letters and `-`) ignoring case. Setting
/// bit 0x20 lowercases a letter and maps no other tchar onto a letter or `-`, so one `or`
/// per byte is exact here.
#[inline(always)]
fn lower_eq(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b)
}

/// What the fields said, to be judged once the head is complete.
#[derive(Default)]
pub(super) struct Fields {
    hosts: u32,
    content_length: Option<u64>,
    transfer: TransferCodings,
    /// The first refusal a field earned, in field order (the rest then do not matter).
    refusal: Option<ParseError>,
}

/// Scans field lines up to the blank line that ends the head, recording each in
/// `head.headers` and noting what it means.
pub(super) fn field_lines(
    c: &mut Cursor<'_>,
    limits: &HeadLimits,
    head: &mut Head,
) -> Result<Fields, Stop> {
    head.headers.clear();
    head.close = false;
    head.keep_alive = false;
    head.expect_continue = false;
    let slots = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut fields = Fields::default();
    loop {
        let b = c.next()?;
        if c.line_end(b)? {
            return Ok(fields);
        }
        if !class::is(b, TCHAR) {
            return Err(Stop::Syntax);
        }
        let start = c.pos - 1;
        c.skip(TCHAR);
        let end = c.pos;
        if c.next()? != b':' {
            return Err(Stop::Syntax);
        }
        let (value_start, value_end) = value(c)?;
        // The line is whole before it counts against the limit (a bad one is a 400 first).
        if head.headers.len() == slots {
            return Err(Stop::TooManyHeaders);
        }
        head.headers
            .push((span(start, end), span(value_start, value_end)));
        let name = Name::of(&c.window[start..end]);
        if name != Name::Other && fields.refusal.is_none() {
            let value = &c.window[value_start..value_end];
            if let Err(refusal) = fields.note(name, value, head) {
                fields.refusal = Some(refusal);
            }
        }
    }
}

/// `OWS field-value OWS` and the line ending: the value's bounds, without the OWS. An empty
/// value sits where its line ends.
#[inline(always)]
fn value(c: &mut Cursor<'_>) -> Result<(usize, usize), Stop> {
    let start = loop {
        let b = c.next()?;
        match b {
            b' ' | b'\t' => continue,
            b if class::is(b, class::VALUE) => break c.pos - 1,
            b => {
                let at = c.pos - 1;
                return match c.line_end(b)? {
                    true => Ok((at, at)),
                    false => Err(Stop::Syntax),
                };
            }
        }
    };
    c.pos += class::value_run(&c.window[c.pos..]);
    let end = c.pos;
    let b = c.next()?;
    if !c.line_end(b)? {
        return Err(Stop::Syntax);
    }
    let trimmed = c.window[start..end]
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |last| start + last + 1);
    Ok((start, trimmed))
}

impl Fields {
    /// What one field Corral acts on says; `Err`: the refusal it earns.
    fn note(&mut self, name: Name, value: &[u8], head: &mut Head) -> Result<(), ParseError> {
        match name {
            Name::Host => {
                self.hosts += 1;
                if !class::all(value, AUTHORITY) {
                    return Err(ParseError::Malformed("Host"));
                }
            }
            Name::ContentLength => {
                if self.content_length.is_some() {
                    return Err(ParseError::BadFraming("duplicate Content-Length"));
                }
                self.content_length = Some(parse_content_length(value)?);
            }
            Name::TransferEncoding => self.transfer.add(value)?,
            Name::Connection => {
                for token in comma_tokens(value) {
                    head.close |= token.eq_ignore_ascii_case(b"close");
                    head.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            Name::Expect => {
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(ParseError::ExpectationFailed);
                }
                // RFC 9110 §10.1.1: ignored in HTTP/1.0 (no 1xx may be sent to a 1.0 client).
                head.expect_continue = head.version == Version::Http11;
            }
            Name::Other => {}
        }
        Ok(())
    }

    /// The verdict of the fields on a complete head: the first refusal a field earned, then
    /// the `Host` count, then the framing (RFC 9112 §6.3, as the module doc lists it).
    pub(super) fn framing(
        &self,
        version: Version,
        limits: &HeadLimits,
    ) -> Result<Framing, ParseError> {
        if let Some(refusal) = self.refusal {
            return Err(refusal);
        }
        match (version, self.hosts) {
            (_, n) if n > 1 => return Err(ParseError::Malformed("more than one Host")),
            (Version::Http11, 0) => return Err(ParseError::Malformed("missing Host")),
            _ => {}
        }
        match (self.transfer.seen, self.content_length) {
            (true, Some(_)) => Err(ParseError::BadFraming(
                "both Transfer-Encoding and Content-Length",
            )),
            (true, None) if version == Version::Http10 => {
                Err(ParseError::BadFraming("Transfer-Encoding in HTTP/1.0"))
            }
            (true, None) => self.transfer.framing(),
            (false, Some(n)) if n > limits.max_body_bytes => Err(ParseError::BodyTooLarge),
            (false, Some(0)) | (false, None) => Ok(Framing::None),
            (false, Some(n)) => Ok(Framing::Length(n)),
        }
    }
}

/// Content-Length = 1*DIGIT, checked for overflow (`u64::from_str` would take "+5").
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let bad = ParseError::BadFraming("invalid Content-Length");
    if value.is_empty() {
        return Err(bad);
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(bad);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(bad)
    })
}

/// Accumulates the codings of every Transfer-Encoding field, in order.
#[derive(Default)]
struct TransferCodings {
    seen: bool,
    chunked_count: u32,
    /// The last coding listed so far was `chunked`.
    last_is_chunked: bool,
    other: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) -> Result<(), ParseError> {
        self.seen = true;
        let mut any = false;
        for token in comma_tokens(value) {
            any = true;
            // A coding may carry parameters (`gzip;q=1`); only its name matters here.
            let name = token.split(|&b| b == b';').next().unwrap_or_default();
            let name = trim_ows(name);
            self.last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
            if self.last_is_chunked {
                self.chunked_count += 1;
            } else {
                self.other = true;
            }
        }
        if !any {
            return Err(ParseError::BadFraming("empty Transfer-Encoding"));
        }
        Ok(())
    }

    fn framing(&self) -> Result<Framing, ParseError> {
        match (self.last_is_chunked, self.chunked_count, self.other) {
            (true, 1, false) => Ok(Framing::Chunked),
            (true, 1, true) => Err(ParseError::UnsupportedCoding),
            (_, 0, _) => Err(ParseError::UnsupportedCoding),
            _ => Err(ParseError::BadFraming(
                "chunked not the final coding, or twice",
            )),
        }
    }
}
