//! Response head encoding into the connection's write buffer: no `format!`, no allocation.
//! The encoder refuses what would not frame, rather than mend it: a header it will not write
//! is an `EncodeError`, and nothing is written for that response.

use super::date::{HEAD_START_LEN, OK_LINE, append_server_and_date};
use super::header::{HeaderError, check_header, check_value};
use super::response::Response;
use super::status::Status;

/// Why a response cannot go on the wire as it is: a bug in the handler that made it. The
/// connection answers 500 instead (and closes), and logs this with the route. The messages
/// never repeat a header value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A final response needs a status from 200 to 599: a 1xx is interim (and Corral sends
    /// none but its own `100 Continue`), anything else is not a status (RFC 9110 §15).
    #[error("status {0} cannot end a response: a final status is 200 to 599")]
    NotFinal(u16),
    /// 204 and 304 carry no body (RFC 9110 §6.4.1), so none can be framed for them.
    #[error("status {0} has no body, but the response carries one")]
    BodyNotAllowed(u16),
    /// A header Corral writes itself, a name that is not a token, or a value with a control
    /// byte: it would split the head or frame the message wrongly.
    #[error("header refused: {0}")]
    Header(#[from] HeaderError),
}

/// How the response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length: n` (also used for HEAD, with the length the GET would have had).
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 streams).
    Chunked,
    /// No length: the body ends when the connection closes (HTTP/1.0 streams).
    UntilClose,
}

/// The `Connection` header to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// HTTP/1.1 keep-alive is the default: say nothing.
    Omit,
    Close,
    /// An HTTP/1.0 client asked for keep-alive and gets it.
    KeepAlive,
}

/// The `Content-Type` line of the types Corral's own constructors set (`Response::text`,
/// a `Vec<u8>` or `Json` answer), written with one copy and not checked again: they are
/// known to be well formed. Any other value takes the general path.
pub(crate) fn known_content_type_line(content_type: &str) -> Option<&'static [u8]> {
    Some(match content_type {
        "text/plain; charset=utf-8" => b"Content-Type: text/plain; charset=utf-8\r\n",
        "application/octet-stream" => b"Content-Type: application/octet-stream\r\n",
        "application/json" => b"Content-Type: application/json\r\n",
        _ => return None,
    })
}

/// Appends the status line and headers, through the blank line; or, if a header would not
/// be well formed, appends nothing and says why. A status without a body (1xx, 204, 304)
/// gets no framing header whatever `framing` says (RFC 9112 §6.1, §6.2).
pub fn encode_head(
    out: &mut Vec<u8>,
    response: &Response,
    framing: BodyFraming,
    connection: ConnectionHeader,
) -> Result<(), EncodeError> {
    // Checked before anything is written: `out` may hold earlier pipelined answers.
    let known_type = response
        .content_type
        .as_deref()
        .map(known_content_type_line);
    if let (Some(content_type), Some(None)) = (&response.content_type, known_type) {
        check_value("Content-Type", content_type)?;
    }
    for (name, value) in response.headers.unchecked() {
        check_header(name, value)?;
    }
    let ok = response.status == Status::OK;
    if !ok {
        status_line(out, response.status);
    }
    // The common head's fixed start in one copy.
    append_server_and_date(out, ok);
    match (&response.content_type, known_type) {
        (_, Some(Some(line))) => out.extend_from_slice(line),
        (Some(content_type), _) => header(out, b"Content-Type", content_type.as_bytes()),
        (None, _) => {}
    }
    for (name, value) in response.headers.as_slice() {
        header(out, name.as_bytes(), value.as_bytes());
    }
    match framing {
        _ if !response.status.allows_body() => {}
        BodyFraming::Length(n) => {
            let mut digits = itoa::Buffer::new();
            header(out, b"Content-Length", digits.format(n).as_bytes());
        }
        BodyFraming::Chunked => header(out, b"Transfer-Encoding", b"chunked"),
        BodyFraming::UntilClose => {}
    }
    if response.offers_websocket {
        // A 426 names the protocol to switch to, and `Upgrade` needs its `Connection` token.
        header(out, b"Upgrade", b"websocket");
    }
    let connection: &[u8] = match (connection, response.offers_websocket) {
        (ConnectionHeader::Omit, false) => b"",
        (ConnectionHeader::Omit, true) => b"upgrade",
        (ConnectionHeader::Close, false) => b"close",
        (ConnectionHeader::Close, true) => b"upgrade, close",
        (ConnectionHeader::KeepAlive, false) => b"keep-alive",
        (ConnectionHeader::KeepAlive, true) => b"upgrade, keep-alive",
    };
    if !connection.is_empty() {
        header(out, b"Connection", connection);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The head and body of the answer most requests get: `200`, `Server`, `Date`, the
/// `Content-Type` line of one of Corral's own types (or none), `Content-Length`, and `body`,
/// with one reservation for all of it (what `encode_head` writes for such a response, and
/// the body after it: `http::reply` tests hold the two equal).
pub(crate) fn encode_plain_ok(out: &mut Vec<u8>, type_line: &[u8], body: &[u8]) {
    const LENGTH: &[u8] = b"Content-Length: ";
    let mut digits = itoa::Buffer::new();
    let length = digits.format(body.len()).as_bytes();
    out.reserve(HEAD_START_LEN + type_line.len() + LENGTH.len() + length.len() + 4 + body.len());
    append_server_and_date(out, true);
    out.extend_from_slice(type_line);
    out.extend_from_slice(LENGTH);
    out.extend_from_slice(length);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// The interim `100 Continue` response.
pub fn encode_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// Appends one chunk of a chunked body (`size CRLF data CRLF`); empty data is skipped, since
/// a zero-size chunk would end the body.
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    out.extend_from_slice(hex_digits(data.len(), &mut hex));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

fn status_line(out: &mut Vec<u8>, status: Status) {
    if status == Status::OK {
        out.extend_from_slice(OK_LINE);
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(status.code()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.reason().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One header line; its name and value were checked (`encode_head`) or are ours. Inlined:
/// most names are constants, so their copy is a few stores rather than a `memcpy` call.
#[inline(always)]
fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn hex_digits(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(resp: &Response, framing: BodyFraming, conn: ConnectionHeader) -> String {
        let mut out = Vec::new();
        encode_head(&mut out, resp, framing, conn).expect("a well-formed head");
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn plaintext_head_has_length_date_server_and_type() {
        let text = head(
            &Response::text("Hello"),
            BodyFraming::Length(5),
            ConnectionHeader::Omit,
        );
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nServer: corral\r\nDate: "));
        assert!(text.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"));
        assert!(text.ends_with("\r\nContent-Length: 5\r\n\r\n"));
    }

    #[test]
    fn known_content_types_are_written_as_any_other_would_be() {
        // Heads without their `Date` line (two heads may straddle a second).
        let undated = |resp: &Response| {
            let text = head(resp, BodyFraming::Length(1), ConnectionHeader::Omit);
            let lines = text
                .split("\r\n")
                .filter(|line| !line.starts_with("Date: "));
            lines.collect::<Vec<_>>().join("\r\n")
        };
        for content_type in [
            "text/plain; charset=utf-8",
            "application/octet-stream",
            "application/json",
        ] {
            let line = known_content_type_line(content_type).expect("known");
            assert_eq!(line, format!("Content-Type: {content_type}\r\n").as_bytes());
            assert_eq!(check_value("Content-Type", content_type), Ok(()));
            // An owned copy of the value is known too (the match is by value).
            let general = undated(&Response::bytes(content_type.to_owned(), vec![1]));
            let mut other = content_type.to_owned();
            other.push(' ');
            assert_eq!(known_content_type_line(&other), None);
            let known = undated(&Response::bytes(content_type, vec![1]));
            assert_eq!(known, general);
            assert!(known.contains(&format!("\r\nContent-Type: {content_type}\r\n")));
        }
        assert_eq!(known_content_type_line("text/plain"), None);
    }

    #[test]
    fn a_head_other_than_200_has_its_status_line_then_server_and_date() {
        let text = head(
            &Response::error(Status::NOT_FOUND),
            BodyFraming::Length(9),
            ConnectionHeader::Omit,
        );
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found\r\nServer: corral\r\nDate: "),
            "{text}"
        );
        assert!(
            text.contains(" GMT\r\nContent-Type: text/plain; charset=utf-8\r\n"),
            "{text}"
        );
    }

    #[test]
    fn close_keep_alive_and_chunked_headers() {
        let resp = Response::error(Status::NOT_FOUND);
        let text = head(&resp, BodyFraming::Chunked, ConnectionHeader::Close);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        let text = head(&resp, BodyFraming::UntilClose, ConnectionHeader::KeepAlive);
        assert!(text.contains("Connection: keep-alive\r\n"));
        assert!(!text.contains("Content-Length"));
    }

    #[test]
    fn bodiless_statuses_get_no_framing_header() {
        for status in [Status::CONTINUE, Status::NO_CONTENT, Status::NOT_MODIFIED] {
            for framing in [
                BodyFraming::Length(0),
                BodyFraming::Length(5),
                BodyFraming::Chunked,
            ] {
                let text = head(&Response::new(status), framing, ConnectionHeader::Omit);
                assert!(!text.contains("Content-Length"), "{status:?} {framing:?}");
                assert!(
                    !text.contains("Transfer-Encoding"),
                    "{status:?} {framing:?}"
                );
            }
        }
    }

    #[test]
    fn a_header_that_slipped_past_the_builders_is_refused_and_nothing_written() {
        // `with_header` refuses these; inside the crate the fields can still be set directly.
        let kind = |err: &EncodeError| match err {
            EncodeError::Header(HeaderError::InvalidValue { .. }) => "value",
            EncodeError::Header(HeaderError::InvalidName { .. }) => "name",
            EncodeError::Header(HeaderError::Reserved { .. }) => "reserved",
            _ => "other",
        };
        let cases = [
            ("X-A", "a\r\nX-Evil: 1", "value"),
            ("X A", "v", "name"),
            ("Content-Length", "5", "reserved"),
            ("transfer-encoding", "chunked", "reserved"),
        ];
        for (name, value, expected) in cases {
            let mut resp = Response::new(Status::OK);
            resp.headers.push((name.into(), value.into()));
            let mut out = b"earlier answer".to_vec();
            let err = encode_head(
                &mut out,
                &resp,
                BodyFraming::Length(0),
                ConnectionHeader::Omit,
            )
            .expect_err(name);
            assert_eq!(kind(&err), expected, "{name}: {err:?}");
            assert!(!err.to_string().contains("Evil"), "{err}");
            assert_eq!(out, b"earlier answer");
        }
        let resp = Response::text("x").with_content_type("text/plain\r\nX-Evil: 1");
        let err = encode_head(
            &mut Vec::new(),
            &resp,
            BodyFraming::Length(1),
            ConnectionHeader::Omit,
        );
        assert!(matches!(
            err,
            Err(EncodeError::Header(HeaderError::InvalidValue { .. }))
        ));
    }

    #[test]
    fn header_values_made_only_of_cr_or_only_of_lf_are_refused_too() {
        for value in ["\r", "\r\r", "\n", "\n\n", "\r\n"] {
            let mut resp = Response::new(Status::OK);
            resp.headers.push(("X-A".into(), value.into()));
            let mut out = Vec::new();
            let refused = encode_head(
                &mut out,
                &resp,
                BodyFraming::Length(0),
                ConnectionHeader::Omit,
            );
            assert!(refused.is_err(), "{value:?}");
            assert!(out.is_empty(), "{value:?}: nothing written");
        }
    }

    #[test]
    fn the_interim_continue_is_exactly_a_status_line_and_a_blank_line() {
        let mut out = b"earlier".to_vec();
        encode_continue(&mut out);
        assert_eq!(out, b"earlierHTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn chunks_are_hex_sized() {
        let mut out = Vec::new();
        encode_chunk(&mut out, &[b'x'; 26]);
        encode_chunk(&mut out, b"");
        assert_eq!(out, [b"1a\r\n".as_slice(), &[b'x'; 26], b"\r\n"].concat());
    }
}
