//! The response-head parsing the load generators share: Content-Length framing only (the
//! routes under test answer short fixed bodies), a chunked response is malformed here.

/// A response head that was not what a load generator can read.
#[derive(Debug)]
pub struct Malformed;

pub struct Head {
    pub status: u16,
    pub head_len: usize,
    /// `None` without a Content-Length (fine only for 204 and 304).
    pub body_len: Option<usize>,
    /// HTTP/1.0, or `Connection: close`.
    #[allow(dead_code)] // each bench compiles this file on its own; fanout never reads it
    pub close: bool,
}

impl Head {
    /// Bytes of body to read: the Content-Length, or none for 204 and 304.
    pub fn body_bytes(&self) -> Result<usize, Malformed> {
        match (self.status, self.body_len) {
            (204 | 304, _) => Ok(0),
            (_, Some(len)) => Ok(len),
            (_, None) => Err(Malformed),
        }
    }
}

/// `Ok(None)` while the head is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Malformed),
    };
    let status = response.code.ok_or(Malformed)?;
    let mut body_len = None;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| Malformed)?;
        if header.name.eq_ignore_ascii_case("content-length") {
            let len: usize = value.trim().parse().map_err(|_| Malformed)?;
            if body_len.replace(len).is_some_and(|earlier| earlier != len) {
                return Err(Malformed);
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Malformed);
        } else if header.name.eq_ignore_ascii_case("connection") {
            close |= value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
    }
    Ok(Some(Head {
        status,
        head_len,
        body_len,
        close,
    }))
}
