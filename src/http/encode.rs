//! Response head encoding into the connection's write buffer: no `format!`, no allocation.

use super::date::append_date;
use super::response::Response;
use super::status::Status;

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

const SERVER: &[u8] = b"Server: corral\r\n";

/// Appends the status line and headers, through the blank line.
pub fn encode_head(
    out: &mut Vec<u8>,
    response: &Response,
    framing: BodyFraming,
    connection: ConnectionHeader,
) {
    status_line(out, response.status);
    out.extend_from_slice(SERVER);
    out.extend_from_slice(b"Date: ");
    append_date(out);
    out.extend_from_slice(b"\r\n");
    if let Some(content_type) = &response.content_type {
        header(out, b"Content-Type", content_type.as_bytes());
    }
    for (name, value) in &response.headers {
        header(out, name.as_bytes(), value.as_bytes());
    }
    match framing {
        BodyFraming::Length(n) if response.status.allows_body() => {
            let mut digits = itoa::Buffer::new();
            header(out, b"Content-Length", digits.format(n).as_bytes());
        }
        BodyFraming::Chunked => header(out, b"Transfer-Encoding", b"chunked"),
        BodyFraming::Length(_) | BodyFraming::UntilClose => {}
    }
    match connection {
        ConnectionHeader::Omit => {}
        ConnectionHeader::Close => header(out, b"Connection", b"close"),
        ConnectionHeader::KeepAlive => header(out, b"Connection", b"keep-alive"),
    }
    out.extend_from_slice(b"\r\n");
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
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(status.code()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.reason().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    // A handler-supplied value with CR or LF would split the header: drop those bytes.
    if value.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(value.iter().filter(|&&b| b != b'\r' && b != b'\n'));
    } else {
        out.extend_from_slice(value);
    }
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
    use crate::http::response::Response;

    fn head(resp: &Response, framing: BodyFraming, conn: ConnectionHeader) -> String {
        let mut out = Vec::new();
        encode_head(&mut out, resp, framing, conn);
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
    fn no_content_has_no_length() {
        let text = head(
            &Response::new(Status::NO_CONTENT),
            BodyFraming::Length(0),
            ConnectionHeader::Omit,
        );
        assert!(!text.contains("Content-Length"));
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        // `with_header` refuses such a value; the encoder still strips CR/LF if one slips in.
        let mut resp = Response::new(Status::OK);
        resp.headers.push(("X-A".into(), "a\r\nX-Evil: 1".into()));
        let text = head(&resp, BodyFraming::Length(0), ConnectionHeader::Omit);
        assert!(text.contains("X-A: aX-Evil: 1\r\n"));
    }

    #[test]
    fn header_values_made_only_of_cr_or_only_of_lf_are_stripped_too() {
        for value in ["\r", "\r\r", "\n", "\n\n", "\r\n"] {
            let mut resp = Response::new(Status::OK);
            resp.headers.push(("X-A".into(), value.into()));
            let text = head(&resp, BodyFraming::Length(0), ConnectionHeader::Omit);
            assert!(text.contains("\r\nX-A: \r\n"), "{value:?}: {text:?}");
            // One blank line, at the end: nothing injected.
            assert_eq!(text.matches("\r\n\r\n").count(), 1, "{value:?}: {text:?}");
            assert!(
                !text.contains("\n\n") && !text.contains("\r\r"),
                "{value:?}"
            );
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
