//! An independent reader of what the server wrote: httparse's `Response` for each head, and
//! the body framing of RFC 9112 §6.3 done here (Content-Length, chunked, or to the close),
//! not by any code of Corral's. A framing error anywhere is a desync: the client would read
//! the rest of the stream out of step.

/// One response read back from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Connection: close` was sent.
    pub close: bool,
    /// The body as the client gets it (chunked framing removed).
    pub body: Vec<u8>,
    /// The body ran to the end of the stream (neither length nor chunked).
    pub to_close: bool,
    /// `Content-Length`, if the response declared one.
    pub content_length: Option<u64>,
}

/// How many responses the reader expects and for what: whether the request answered by
/// the n-th final response was a `HEAD` (its response has a length but no body).
pub trait Requests {
    fn is_head(&self, n: usize) -> bool;
}

/// No request was a `HEAD` (the raw stream target removes the method).
pub struct NoHead;

impl Requests for NoHead {
    fn is_head(&self, _: usize) -> bool {
        false
    }
}

impl Requests for &[bool] {
    fn is_head(&self, n: usize) -> bool {
        self.get(n).copied().unwrap_or(false)
    }
}

/// Reads every response in `out`: the final ones in order, and the number of interim
/// `100 Continue` seen. `Err` names the first framing fault and where it is.
pub fn read_all(out: &[u8], requests: impl Requests) -> Result<(Vec<Answer>, usize), String> {
    let mut answers = Vec::new();
    let mut interim = 0;
    let mut at = 0;
    while at < out.len() {
        if answers
            .last()
            .is_some_and(|a: &Answer| a.close || a.to_close)
        {
            return Err(format!("bytes after a closing response, at {at}"));
        }
        let (answer, used) = read_one(&out[at..], requests.is_head(answers.len()))
            .map_err(|e| format!("response {} at byte {at}: {e}", answers.len()))?;
        at += used;
        match answer {
            Some(answer) => answers.push(answer),
            None => interim += 1,
        }
    }
    Ok((answers, interim))
}

/// One response at the start of `buf`: `None` for an interim 100, and the bytes it took.
fn read_one(buf: &[u8], is_head: bool) -> Result<(Option<Answer>, usize), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("incomplete head".into()),
        Err(e) => return Err(format!("bad head: {e}")),
    };
    let status = response.code.ok_or("no status")?;
    if !buf[..head_len].ends_with(b"\r\n\r\n") || has_bare_lf(&buf[..head_len]) {
        return Err("head lines not ended by CRLF".into());
    }
    let mut content_length = None;
    let mut chunked = false;
    let mut close = false;
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| "header value not UTF-8")?;
        if h.name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err("two Content-Length fields".into());
            }
            let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            let n: u64 = value.parse().map_err(|_| "Content-Length not a number")?;
            if !digits_only {
                return Err(format!("Content-Length {value:?}"));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !value.eq_ignore_ascii_case("chunked") {
                return Err(format!("Transfer-Encoding {value:?}"));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
    }
    if chunked && content_length.is_some() {
        return Err("both Content-Length and chunked".into());
    }
    if (100..200).contains(&status) {
        if status != 100 || chunked || content_length.is_some() {
            return Err(format!("interim {status} with framing or not 100"));
        }
        return Ok((None, head_len));
    }
    let rest = &buf[head_len..];
    let no_body = is_head || status == 204 || status == 304;
    if (status == 204 || status == 304) && (chunked || content_length.is_some()) {
        return Err(format!("{status} with body framing"));
    }
    let (body, used, to_close) = if no_body {
        (Vec::new(), 0, false)
    } else if chunked {
        let (body, used) = dechunk(rest)?;
        (body, used, false)
    } else if let Some(n) = content_length {
        let n = usize::try_from(n).map_err(|_| "Content-Length too large")?;
        let body = rest
            .get(..n)
            .ok_or("body shorter than its Content-Length")?;
        (body.to_vec(), n, false)
    } else {
        (rest.to_vec(), rest.len(), true)
    };
    if to_close && !close {
        return Err("body runs to the close without `Connection: close`".into());
    }
    let answer = Answer {
        status,
        close,
        body,
        to_close,
        content_length,
    };
    Ok((Some(answer), head_len + used))
}

fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// A chunked body as a server should send it: hex sizes without extensions, CRLF after
/// each line and chunk, a last chunk `0` and an empty trailer section.
fn dechunk(buf: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = find_crlf(&buf[at..]).ok_or("chunk size line without CRLF")?;
        let line = &buf[at..at + line_end];
        let hex = std::str::from_utf8(line).map_err(|_| "chunk size not ASCII")?;
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("chunk size {hex:?}"));
        }
        let size = usize::from_str_radix(hex, 16).map_err(|_| "chunk size overflows")?;
        at += line_end + 2;
        if size == 0 {
            // No trailers from this server: the empty line ends the body.
            if buf.get(at..at + 2) != Some(b"\r\n") {
                return Err("last chunk not followed by CRLF".into());
            }
            return Ok((body, at + 2));
        }
        let data = buf
            .get(at..at + size)
            .ok_or("chunk shorter than its size")?;
        body.extend_from_slice(data);
        at += size;
        if buf.get(at..at + 2) != Some(b"\r\n") {
            return Err("chunk data not followed by CRLF".into());
        }
        at += 2;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// `out` with the value of every `Date` field blanked: the only bytes of an answer that
/// depend on the clock.
pub fn without_dates(out: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"\r\nDate: ";
    let mut masked = out.to_vec();
    let mut at = 0;
    while let Some(i) = masked[at..].windows(FIELD.len()).position(|w| w == FIELD) {
        let start = at + i + FIELD.len();
        let end = masked[start..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(masked.len(), |e| start + e);
        masked[start..end].fill(b'-');
        at = end;
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_chunked_interim_and_to_close_responses() {
        let out = b"HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nrest of stream";
        let (answers, interim) = read_all(out, NoHead).expect("well framed");
        assert_eq!(interim, 1);
        let bodies: Vec<&[u8]> = answers.iter().map(|a| &a.body[..]).collect();
        assert_eq!(bodies, [&b"hi"[..], b"abc", b"rest of stream"]);
        assert!(answers[2].to_close);
    }

    #[test]
    fn a_short_body_a_bad_chunk_and_bytes_after_close_are_faults() {
        let faults: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        ];
        for out in faults {
            assert!(
                read_all(out, NoHead).is_err(),
                "{}",
                String::from_utf8_lossy(out)
            );
        }
    }

    #[test]
    fn a_head_response_has_no_body() {
        let out = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let heads: &[bool] = &[true, false];
        let (answers, _) = read_all(out, heads).expect("well framed");
        assert_eq!(answers.len(), 2);
        assert!(read_all(out, NoHead).is_err());
    }

    #[test]
    fn dates_are_blanked_and_nothing_else() {
        let out = b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 22:00:00 GMT\r\nX: 1\r\n\r\n";
        let masked = without_dates(out);
        assert_eq!(masked.len(), out.len());
        let text = String::from_utf8(masked).expect("ascii");
        assert!(
            text.contains("\r\nDate: -----------------------------\r\nX: 1\r\n"),
            "{text}"
        );
    }
}
