//! The head parser as it was before the single pass (docs/architecture.md §3 "Per-request
//! cost"): httparse tokenises, then Corral re-checks what it leaves lenient. Kept verbatim,
//! save for its place and one fix (`before_bad_byte`), as the oracle of the differential
//! check (`differential_tests.rs`, `fuzz/src/differential.rs`): the single pass must give
//! every input the verdict this gives it. Built for tests and under `bench-internals` only;
//! nothing serves with it.

use std::mem::MaybeUninit;

use super::{Framing, Head, HeadLimits, MAX_HEADERS_CAP, ParseError, Span, Version};

/// Parses the head at the start of `buf` into `head`. `Ok(false)`: incomplete, read more.
pub fn parse_head(buf: &[u8], limits: &HeadLimits, head: &mut Head) -> Result<bool, ParseError> {
    parse_with(buf, limits, head, Minor::AsSent)
}

/// Whether the request line's minor version is taken as sent or was rewritten to 1.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Minor {
    AsSent,
    ReadAs1,
}

fn parse_with(
    buf: &[u8],
    limits: &HeadLimits,
    head: &mut Head,
    minor: Minor,
) -> Result<bool, ParseError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let fields = &mut fields[..limits.max_headers.min(MAX_HEADERS_CAP)];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, window, fields);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return incomplete(buf, limits),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
        Err(httparse::Error::Version) if minor == Minor::AsSent => {
            return other_version(buf, limits, head);
        }
        Err(httparse::Error::Token) if request_line_too_long(before_bad_byte(window), limits) => {
            return Err(ParseError::UriTooLong);
        }
        Err(_) => return Err(ParseError::Malformed("request line or header field")),
    };
    // What refuses a partial head refuses it complete too, or the answer would depend on
    // where the reads split (a long method beside a target just under the limit).
    if request_line_too_long(&window[..len], limits) {
        return Err(ParseError::UriTooLong);
    }
    check_line_endings(&window[..len])?;
    let method = req.method.ok_or(ParseError::Malformed("method"))?;
    let target = req.path.ok_or(ParseError::Malformed("request target"))?;
    if target.len() > limits.max_uri_bytes {
        return Err(ParseError::UriTooLong);
    }
    head.method = span_of(buf, method.as_bytes());
    head.standard_method = standard_method(method);
    head.target = span_of(buf, target.as_bytes());
    head.version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    head.len = len;
    let (path, query) = split_target(method, target)?;
    head.path = span_of(buf, path.as_bytes());
    head.query = query.map(|q| span_of(buf, q.as_bytes()));
    read_fields(buf, req.headers, limits, head)?;
    Ok(true)
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

/// The request line has no end within what a method, the longest allowed target and the
/// version could take.
fn request_line_too_long(buf: &[u8], limits: &HeadLimits) -> bool {
    let limit = limits.max_uri_bytes + LINE_OVERHEAD;
    // The length first: a head shorter than the limit (most) needs no search.
    buf.len() > limit && memchr::memchr(b'\n', &buf[..limit]).is_none()
}

/// The bytes before the one httparse stopped at: the longest prefix it does not reject
/// (found by bisection; it rejects every prefix past the bad byte). Added with the fix of
/// a verdict that depended on where reads split: a bad target byte in a line within the
/// limit was a 400 in a short read and a 414 once the line had grown past the limit.
fn before_bad_byte(window: &[u8]) -> &[u8] {
    let rejects = |n: usize| {
        let mut req = httparse::Request::new(&mut []);
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
        httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, &window[..n], &mut fields)
            .is_err()
    };
    let (mut ok, mut bad) = (0, window.len());
    while bad - ok > 1 {
        let mid = ok + (bad - ok) / 2;
        if rejects(mid) {
            bad = mid;
        } else {
            ok = mid;
        }
    }
    &window[..ok]
}

/// httparse rejects any version but HTTP/1.0 and HTTP/1.1, at the first byte that differs.
/// A 1.x minor we do not know is answered as 1.1 (RFC 9110 §2.5): the head is parsed again
/// from a copy with that digit made `1` — the spans index the copy as they would `buf`, and
/// none covers the digit; the copy costs an allocation, only for such requests. Another
/// well-formed version is a 505, garbage a 400; while the version could still become one of
/// these, wait for more bytes (so the answer does not depend on how reads split).
fn other_version(buf: &[u8], limits: &HeadLimits, head: &mut Head) -> Result<bool, ParseError> {
    const SHAPE: &[u8] = b"HTTP/0.0"; // `0`: any digit
    let fits = |v: &[u8]| {
        v.len() <= SHAPE.len()
            && v.iter().zip(SHAPE).all(|(&b, &s)| match s {
                b'0' => b.is_ascii_digit(),
                _ => b == s,
            })
    };
    // httparse skipped leading empty lines and found `method SP target SP`; the rest of the
    // line is the version (the last word would take "GET /a b HTTP/1.1" for a 505).
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n');
    let line = &buf[start.unwrap_or(buf.len())..];
    // Only the LF ends the line: until it comes, `HTTP/9.1` may still become `HTTP/9.1x` and
    // `HTTP/9.1\r` `HTTP/9.1\rx` (both 400), so neither is a 505 yet (found by fuzz/ head).
    let (line, ended) = match memchr::memchr(b'\n', line) {
        Some(end) => (&line[..end], true),
        None => (line, false),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default() {
        v if v.len() == SHAPE.len() && fits(v) && v.starts_with(b"HTTP/1.") => {
            let minor_at = v.as_ptr() as usize - buf.as_ptr() as usize + SHAPE.len() - 1;
            let mut copy = buf[..buf.len().min(limits.max_head_bytes)].to_vec();
            match copy.get_mut(minor_at) {
                Some(digit) => *digit = b'1',
                None => return incomplete(buf, limits),
            }
            parse_with(&copy, limits, head, Minor::ReadAs1)
        }
        v if ended && v.len() == SHAPE.len() && fits(v) => Err(ParseError::VersionNotSupported),
        v if !ended && fits(v) => incomplete(buf, limits),
        _ => Err(ParseError::Malformed("HTTP version")),
    }
}

/// RFC 9112 §2.2: we accept only CRLF; a bare LF or bare CR is an error.
///
/// One pass over the head without an early exit, comparing each byte with the one after: a
/// line ending is well formed exactly where "this byte is CR" and "the next byte is LF" agree
/// (a bare CR has the first without the second, a bare LF the second without the first). The
/// pairs go eight at a time as words (`differs`): a fold over zipped bytes was ~8
/// instructions a byte, the words are under 2. A search per line ending cost more than the
/// whole pass for the short heads most requests have.
pub(super) fn check_line_endings(head: &[u8]) -> Result<(), ParseError> {
    let (Some(&first), Some(&last)) = (head.first(), head.last()) else {
        return Ok(());
    };
    let (this, next) = (&head[..head.len() - 1], &head[1..]);
    let (these, this_rest) = this.as_chunks::<8>();
    let (nexts, next_rest) = next.as_chunks::<8>();
    let mut bare = 0u64;
    for (b, n) in these.iter().zip(nexts) {
        let (b, n) = (u64::from_le_bytes(*b), u64::from_le_bytes(*n));
        bare |= differs(b, b'\r') ^ differs(n, b'\n');
    }
    for (&b, &n) in this_rest.iter().zip(next_rest) {
        bare |= u64::from((b == b'\r') != (n == b'\n'));
    }
    if bare != 0 || first == b'\n' || last == b'\r' {
        return Err(ParseError::Malformed("bare CR or LF"));
    }
    Ok(())
}

/// The high bit of each byte of `word` set where that byte is not `byte`, every other bit
/// clear. Exact (no carry crosses a byte): the low seven bits plus 0x7f reach the high bit
/// unless they are all zero, and the byte's own high bit is or-ed in.
fn differs(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = word ^ u64::from_ne_bytes([byte; 8]);
    (((x & LOW7) + LOW7) | x) & HIGH
}

/// The method as a static string when it is one of RFC 9110 §9's (CONNECT aside: it is
/// refused). A `match` compares by length, then as integers: no `memcmp` call per request.
fn standard_method(method: &str) -> Option<&'static str> {
    Some(match method {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        _ => return None,
    })
}

/// Splits the request target into path and query after checking its form (RFC 9112 §3.2).
fn split_target<'t>(
    method: &str,
    target: &'t str,
) -> Result<(&'t str, Option<&'t str>), ParseError> {
    if method == "CONNECT" {
        return Err(ParseError::MethodNotImplemented);
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok((target, None))
        } else {
            Err(ParseError::Malformed("asterisk-form outside OPTIONS"))
        };
    }
    let (path, query) = if target.starts_with('/') {
        split_query(target)
    } else {
        absolute_form(target)?
    };
    check_uri_chars(path)?;
    if let Some(query) = query {
        check_uri_chars(query)?;
    }
    Ok((path, query))
}

fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match crate::http::bytes::find_byte(b'?', path_and_query.as_bytes()) {
        // `?` is ASCII: both sides are on char boundaries.
        Some(at) => (&path_and_query[..at], Some(&path_and_query[at + 1..])),
        None => (path_and_query, None),
    }
}

/// absolute-form `http://authority/path?query` → path `/path`, query `query`
/// (RFC 9112 §3.2.2).
fn absolute_form(target: &str) -> Result<(&str, Option<&str>), ParseError> {
    let bad = ParseError::Malformed("request target");
    let (scheme, rest) = target.split_once("://").ok_or(bad)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(bad);
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.is_empty() || !all_of_class(authority.as_bytes(), AUTHORITY) {
        return Err(bad);
    }
    // "http://host" and "http://host?q" have the path "/" (RFC 9112 §3.2.2). The path must
    // be a slice of the buffer (the head stores offsets): take the second '/' of "://".
    let slash = &target[scheme.len() + 2..scheme.len() + 3];
    match path.as_bytes().first() {
        Some(b'/') => Ok(split_query(path)),
        None => Ok((slash, None)),
        Some(b'?') => Ok((slash, Some(&path[1..]))),
        Some(_) => Err(bad),
    }
}

/// pchar / "/" / "?" and valid percent-encodings (RFC 3986 §3.3–3.4).
fn check_uri_chars(path_and_query: &str) -> Result<(), ParseError> {
    let bytes = path_and_query.as_bytes();
    // Most targets have no percent-encoding: one pass without an early exit (a lookup and
    // an `and` per byte) settles them; the walk below handles `%` and names the error.
    if all_of_class(bytes, URI) {
        return Ok(());
    }
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
        if !is_class(b, URI) {
            return Err(ParseError::Malformed("character in request target"));
        }
        i += 1;
    }
    Ok(())
}

/// Byte classes, one bit each in `CLASSES`: a table lookup per byte instead of a chain of
/// comparisons (the target and the Host are checked on every request).
const URI: u8 = 1;
const AUTHORITY: u8 = 2;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = if is_unreserved(byte) || is_sub_delim(byte) || matches!(byte, b':' | b'@') {
            URI | AUTHORITY
        } else if matches!(byte, b'/' | b'?') {
            URI
        } else if matches!(byte, b'[' | b']' | b'%') {
            // uri-host [":" port], including IP-literals in brackets and percent-encoded
            // reg-names.
            AUTHORITY
        } else {
            0
        };
        b += 1;
    }
    table
};

fn is_class(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Every byte is of `class` (no early exit: the loop is a lookup and an `and` per byte).
fn all_of_class(bytes: &[u8], class: u8) -> bool {
    bytes
        .iter()
        .fold(class, |all, &b| all & CLASSES[usize::from(b)])
        == class
}

/// Records the fields and decides framing, connection and expectation from them.
fn read_fields(
    buf: &[u8],
    fields: &[httparse::Header<'_>],
    limits: &HeadLimits,
    head: &mut Head,
) -> Result<(), ParseError> {
    head.headers.clear();
    head.close = false;
    head.keep_alive = false;
    head.expect_continue = false;
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer = TransferCodings::default();
    for field in fields {
        let value = trim_ows(field.value);
        head.headers
            .push((span_of(buf, field.name.as_bytes()), span_of(buf, value)));
        let name = field.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !all_of_class(value, AUTHORITY) {
                return Err(ParseError::Malformed("Host"));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(ParseError::BadFraming("duplicate Content-Length"));
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer.add(value)?;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in comma_tokens(value) {
                head.close |= token.eq_ignore_ascii_case(b"close");
                head.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(ParseError::ExpectationFailed);
            }
            // RFC 9110 §10.1.1: ignored in HTTP/1.0 (no 1xx may be sent to a 1.0 client).
            head.expect_continue = head.version == Version::Http11;
        }
    }
    match (head.version, hosts) {
        (_, n) if n > 1 => return Err(ParseError::Malformed("more than one Host")),
        (Version::Http11, 0) => return Err(ParseError::Malformed("missing Host")),
        _ => {}
    }
    head.framing = match (transfer.seen, content_length) {
        (true, Some(_)) => {
            return Err(ParseError::BadFraming(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        (true, None) if head.version == Version::Http10 => {
            return Err(ParseError::BadFraming("Transfer-Encoding in HTTP/1.0"));
        }
        (true, None) => transfer.framing()?,
        (false, Some(n)) if n > limits.max_body_bytes => return Err(ParseError::BodyTooLarge),
        (false, Some(0)) | (false, None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    Ok(())
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

/// The non-empty elements of a comma-separated list, each trimmed of OWS (RFC 9110 §5.6.1).
fn comma_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
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

/// The span of `part`, a slice of `base`.
fn span_of(base: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    Span {
        start: start as u32,
        end: (start + part.len()) as u32,
    }
}

/// Whether `parse_head` and this parser agree on `buf`: the same length and parts of a
/// complete head, both "incomplete", or errors of the same kind (the texts inside
/// `Malformed` and `BadFraming` only name the first rule broken, which the two may find in
/// another order, and reach no client); `Err` describes the difference. `head` is reused
/// across calls, as a connection reuses its own, so what a parse leaves behind is tested too.
pub(crate) fn compare(buf: &[u8], limits: &HeadLimits, head: &mut Head) -> Result<(), String> {
    let mut want = Head::default();
    let expected = parse_head(buf, limits, &mut want);
    let got = super::parse_head(buf, limits, head);
    let same = match (&got, &expected) {
        (Ok(true), Ok(true)) => format!("{head:?}") == format!("{want:?}"),
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
        _ => false,
    };
    if same {
        return Ok(());
    }
    let show = |outcome: &Result<bool, ParseError>, head: &Head| match outcome {
        Ok(true) => format!("{head:?}"),
        other => format!("{other:?}"),
    };
    Err(format!(
        "{:?} ({} bytes, limits {limits:?}): the parser says {}, the reference {}",
        String::from_utf8_lossy(&buf[..buf.len().min(300)]),
        buf.len(),
        show(&got, head),
        show(&expected, &want),
    ))
}
