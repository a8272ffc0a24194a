//! Reading a request's body: Content-Length bytes in place in the read buffer, or a chunked
//! body decoded beside it; and `Expect: 100-continue`, answered or refused before the body.

use std::io;
use std::time::Instant;

use super::dispatch::method_not_allowed;
use super::read_buf::READ_BUF_INITIAL;
use super::reject::Reason;
use super::serve::{Conn, ConnError};
use super::transport::{Transport, deadline_in, is_timeout};
use crate::http::chunked::ChunkedDecoder;
use crate::http::encode;
use crate::http::parse::Framing;
use crate::http::response::Response;
use crate::http::status::Status;
use crate::router::{Found, Params};

impl<S: Transport> Conn<'_, S> {
    /// For `Expect: 100-continue`: the response we would give without reading the body.
    pub(super) fn refusal_without_body(&self) -> Option<Response> {
        let router = &self.shared.router;
        if router.fallback_handler().is_some() {
            return None;
        }
        let buf = self.rbuf.filled();
        let mut params = Params::new();
        match router.find(
            self.head.method.str(buf),
            self.head.path.str(buf),
            &mut params,
        ) {
            Found::Route { .. } => None,
            Found::MethodNotAllowed { allow } => Some(method_not_allowed(allow)),
            Found::NotFound => Some(Response::error(Status::NOT_FOUND)),
        }
    }

    pub(super) fn send_continue(&mut self) -> io::Result<()> {
        encode::encode_continue(&mut self.wbuf);
        self.flush()
    }

    /// Reads the whole body. Returns how many bytes of it sit in the read buffer after the
    /// head (Content-Length); a chunked body is decoded into `self.body` instead.
    ///
    /// The body timeout runs from the first read the body needs: a body already in the
    /// buffer (or none) costs no clock read (docs/architecture.md §3, "Per-request cost").
    pub(super) fn read_body(&mut self) -> Result<usize, ConnError> {
        let mut deadline = None;
        match self.head.framing {
            Framing::None => Ok(0),
            Framing::Length(n) => {
                // Fits in usize: the parser refused lengths over max_body_bytes. The buffer
                // grows as the body arrives, up to `total` (`ReadBuf::fill`).
                let total = self.head.len + n as usize;
                while self.rbuf.filled().len() < total {
                    self.fill_body(&mut deadline, total)?;
                }
                Ok(n as usize)
            }
            Framing::Chunked => {
                let limits = self.cfg.limits;
                let mut decoder =
                    ChunkedDecoder::new(limits.max_chunk_line_bytes, limits.max_body_bytes);
                self.body.clear();
                loop {
                    let raw = &self.rbuf.filled()[self.head.len..];
                    let (used, done) = decoder.decode(raw, &mut self.body)?;
                    self.rbuf.cut(self.head.len, used);
                    if done {
                        return Ok(0);
                    }
                    let room = self.head.len + limits.max_chunk_line_bytes + READ_BUF_INITIAL;
                    self.fill_body(&mut deadline, room)?;
                }
            }
        }
    }

    /// One read of the body; `deadline` is set at the first.
    fn fill_body(
        &mut self,
        deadline: &mut Option<Instant>,
        max_total: usize,
    ) -> Result<(), ConnError> {
        let body = self.cfg.timeouts.body();
        let deadline = *deadline.get_or_insert_with(|| deadline_in(body));
        let left = deadline.saturating_duration_since(Instant::now());
        match self.fill(left, max_total) {
            Ok(0) => Err(ConnError::Truncated),
            Ok(_) => Ok(()),
            Err(err) if is_timeout(&err) => Err(ConnError::Reject(Reason::BodyTimeout)),
            Err(err) => Err(err.into()),
        }
    }
}
