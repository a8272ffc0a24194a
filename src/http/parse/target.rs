//! The request target's form (RFC 9112 §3.2), judged once the head is complete: path and
//! query as spans, or why the target is refused.

use super::class::{self, AUTHORITY, QUERY};
use super::line::{Target, span};
use super::{ParseError, Span};

/// The path and the query of `target` (bytes `buf[target.span]`), after checking its form.
#[inline(always)]
pub(super) fn split(
    buf: &[u8],
    method: &[u8],
    target: &Target,
) -> Result<(Span, Option<Span>), ParseError> {
    if method == b"CONNECT" {
        return Err(ParseError::MethodNotImplemented);
    }
    let Span { start, end } = target.span;
    if target.plain {
        // The pass saw every byte of `PATH` up to the `?` and of `QUERY` after it.
        return Ok(match target.question {
            Some(at) => (span_of(start, at), Some(span_of(at + 1, end))),
            None => (target.span, None),
        });
    }
    let bytes = target.span.get(buf);
    let (path, query) = other_form(method, bytes)?;
    let at = |r: (usize, usize)| span(start as usize + r.0, start as usize + r.1);
    Ok((at(path), query.map(at)))
}

fn span_of(start: u32, end: u32) -> Span {
    Span { start, end }
}

/// Bounds inside a target: (start, end).
type Bounds = (usize, usize);

/// A target the pass could not vouch for: asterisk-form, absolute-form, or origin-form
/// with a percent-encoding or a byte out of place.
#[cold]
fn other_form(method: &[u8], target: &[u8]) -> Result<(Bounds, Option<Bounds>), ParseError> {
    if target == b"*" {
        return if method == b"OPTIONS" {
            Ok(((0, 1), None))
        } else {
            Err(ParseError::Malformed("asterisk-form outside OPTIONS"))
        };
    }
    let (path, query) = if target.starts_with(b"/") {
        split_query(target, 0, target.len())
    } else {
        absolute_form(target)?
    };
    check_uri_chars(&target[path.0..path.1])?;
    if let Some(query) = query {
        check_uri_chars(&target[query.0..query.1])?;
    }
    Ok((path, query))
}

/// `target[start..end]` split at its first `?`.
fn split_query(target: &[u8], start: usize, end: usize) -> (Bounds, Option<Bounds>) {
    match memchr::memchr(b'?', &target[start..end]) {
        Some(at) => ((start, start + at), Some((start + at + 1, end))),
        None => ((start, end), None),
    }
}

/// absolute-form `http://authority/path?query` → path `/path`, query `query`
/// (RFC 9112 §3.2.2).
fn absolute_form(target: &[u8]) -> Result<(Bounds, Option<Bounds>), ParseError> {
    let bad = ParseError::Malformed("request target");
    let scheme_len = memchr::memmem::find(target, b"://").ok_or(bad)?;
    let scheme = &target[..scheme_len];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(bad);
    }
    let authority_start = scheme_len + 3;
    let authority_end = target[authority_start..]
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .map_or(target.len(), |at| authority_start + at);
    let authority = &target[authority_start..authority_end];
    if authority.is_empty() || !class::all(authority, AUTHORITY) {
        return Err(bad);
    }
    // "http://host" and "http://host?q" have the path "/" (RFC 9112 §3.2.2). The path must
    // be a span of the buffer (the head stores offsets): take the second '/' of "://".
    let slash = (scheme_len + 2, scheme_len + 3);
    match target.get(authority_end) {
        Some(b'/') => Ok(split_query(target, authority_end, target.len())),
        None => Ok((slash, None)),
        Some(b'?') => Ok((slash, Some((authority_end + 1, target.len())))),
        Some(_) => Err(bad),
    }
}

/// pchar / "/" / "?" and valid percent-encodings (RFC 3986 §3.3–3.4).
fn check_uri_chars(bytes: &[u8]) -> Result<(), ParseError> {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(ParseError::Malformed("percent-encoding"))?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(ParseError::Malformed("percent-encoding"));
            }
            i += 3;
            continue;
        }
        if !class::is(b, QUERY) {
            return Err(ParseError::Malformed("character in request target"));
        }
        i += 1;
    }
    Ok(())
}
