//! Writing answers: encoding a response into the write buffer, streaming a body straight to
//! the socket, finishing what a ward began, and refusing a request with a lingering close.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use super::Shared;
use super::dispatch::{RouteName, panic_message};
use super::reject::Reason;
use super::resume::First;
use super::serve::{Conn, ConnError};
use super::spare;
use super::transport::{Transport, at_least_a_millisecond};
use crate::http::encode::{self, BodyFraming, ConnectionHeader};
use crate::http::reply::{Encoded, ReplyShape, encode_reply, encode_reply_in};
use crate::http::response::{BodyWrite, Response, StreamFn};
use crate::http::status::Status;
use crate::router::RouteId;
use crate::runtime::home;
use crate::stats::Stamp;

/// After an error response, how long and how much unread input we drain before closing.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Encodes `response` for a request of `route` into `out`. A response the encoder refuses
/// (a handler's bug: a status that is not final, a body on 204 or 304, a malformed header)
/// becomes a 500 that closes the connection, and a log line naming the route: the client
/// gets a well-framed answer, the developer the reason. Inlined, as `encode_reply_in`: in
/// the loop's `queue`, the calls' own entry and exit were ~40 instructions a request.
#[inline]
pub(super) fn encode_or_refuse(
    out: &mut Vec<u8>,
    response: &mut Response,
    shape: ReplyShape,
    draining: bool,
    route: RouteName<'_>,
) -> Encoded {
    match encode_reply_in(out, response, shape, draining) {
        Ok(encoded) => encoded,
        Err(err) => {
            log::error!("response of {route} refused, answered 500 instead: {err}");
            let refusal = Response::error(Status::INTERNAL_SERVER_ERROR).with_close();
            encode_reply(out, refusal, shape, draining)
                .expect("every error response encodes (http::reply tests)")
        }
    }
}

/// Counts an answer in its route's status-class counters (`corral_requests_total`), from a
/// connection on scheduler k's thread.
pub(super) fn count_answer(shared: &Shared, k: usize, route: Option<RouteId>, status: Status) {
    let costs = &shared.placement.costs;
    costs.count_status(k, costs.slot(route), status.code());
}

/// `count_answer` from k's ward, on the ward's thread.
pub(super) fn count_ward_answer(shared: &Shared, k: usize, route: Option<RouteId>, status: Status) {
    let costs = &shared.placement.costs;
    costs.count_ward_status(k, costs.slot(route), status.code());
}

impl<S: Transport> Conn<'_, S> {
    /// A write buffer from the scheduler's spares, if the connection has none (`spare.rs`).
    fn lend_wbuf(&mut self) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = spare::lend();
        }
    }

    /// Sends a response for a request whose head is gone (a wait that could not start).
    /// Returns whether to keep the connection.
    pub(super) fn answer_now(
        &mut self,
        mut response: Response,
        shape: ReplyShape,
        route: Option<RouteId>,
    ) -> io::Result<bool> {
        let draining = self.shared.is_draining();
        let name = RouteName(&self.shared.router, route);
        self.lend_wbuf();
        let encoded = encode_or_refuse(&mut self.wbuf, &mut response, shape, draining, name);
        count_answer(self.shared, self.scheduler, route, encoded.status);
        if let Some((stream, chunked)) = encoded.stream {
            self.stream_body(stream, chunked)
                .map_err(io::Error::other)?;
        }
        self.flush()?;
        Ok(encoded.keep_alive)
    }

    /// Sends what the ward could not. Returns whether to keep the connection.
    pub(super) fn finish_first(&mut self, first: First) -> Result<bool, ConnError> {
        match first {
            First::Bytes { bytes, keep_alive } => {
                self.wbuf = bytes;
                self.flush()?;
                Ok(keep_alive)
            }
            First::Stream {
                head,
                stream,
                chunked,
                keep_alive,
            } => {
                self.wbuf = head;
                self.stream_body(stream, chunked)?;
                self.flush()?;
                Ok(keep_alive)
            }
        }
    }

    /// Encodes `response` (streaming it if it is a stream). Returns whether to keep alive.
    pub(super) fn queue(
        &mut self,
        response: &mut Response,
        started: Stamp,
        route: Option<RouteId>,
    ) -> Result<bool, ConnError> {
        let shape = self.reply_shape();
        let draining = self.shared.is_draining();
        let name = RouteName(&self.shared.router, route);
        self.lend_wbuf();
        let encoded = encode_or_refuse(&mut self.wbuf, response, shape, draining, name);
        count_answer(self.shared, self.scheduler, route, encoded.status);
        let mut sent = encoded.sent;
        if let Some((stream, chunked)) = encoded.stream {
            sent = self.stream_body(stream, chunked)?;
            self.clock_stale();
        }
        self.log_access(encoded.status, sent, started);
        Ok(encoded.keep_alive)
    }

    /// Sends the head, then runs the handler's stream closure writing straight to the socket.
    pub(super) fn stream_body(
        &mut self,
        stream: StreamFn,
        chunked: bool,
    ) -> Result<u64, ConnError> {
        self.flush()?;
        let mut writer = StreamWriter {
            stream: &mut self.stream,
            shared: self.shared,
            chunked,
            scratch: std::mem::take(&mut self.wbuf),
            sent: 0,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| stream(&mut writer)));
        home::go_home(self.scheduler);
        let sent = writer.sent;
        self.wbuf = std::mem::take(&mut writer.scratch);
        self.wbuf.clear();
        match outcome {
            Ok(Ok(())) if chunked => {
                self.wbuf.extend_from_slice(encode::LAST_CHUNK);
                Ok(sent)
            }
            Ok(Ok(())) => Ok(sent),
            Ok(Err(err)) => Err(err.into()),
            Err(panic) => {
                self.shared.stats.record_panic(self.scheduler);
                log::error!("streamed body panicked: {}", panic_message(&panic));
                // The head is out: all we can do is cut the stream short.
                Err(ConnError::Truncated)
            }
        }
    }

    /// One access-log line: client, request id, request line, status, body bytes, time,
    /// scheduler. The request id is the client's (or a proxy's) `X-Request-Id` when it is a
    /// plain token, else `pid-scheduler-ordinal` in hex: unique across the processes of one
    /// machine, and free to make.
    #[inline]
    pub(super) fn log_access(&self, status: Status, sent: u64, started: Stamp) {
        // The check inline, the line apart: most servers log no access line.
        if self.access_log && log::Level::Info <= log::max_level() {
            self.write_access_line(status, sent, started);
        }
    }

    #[inline(never)]
    fn write_access_line(&self, status: Status, sent: u64, started: Stamp) {
        let buf = self.rbuf.filled();
        let client = self.stream.peer_addr();
        let client: &dyn std::fmt::Display = match &client {
            Some(addr) => addr,
            None => &"-",
        };
        let given = self
            .head
            .headers
            .iter()
            .find(|(name, _)| name.str(buf).eq_ignore_ascii_case("x-request-id"))
            .map(|(_, value)| value.get(buf))
            .filter(|id| is_plain_request_id(id))
            .and_then(|id| std::str::from_utf8(id).ok());
        let (generated, taken);
        let id: &dyn std::fmt::Display = match given {
            Some(id) => {
                taken = id;
                &taken
            }
            None => {
                generated = RequestId {
                    pid: std::process::id(),
                    scheduler: self.scheduler,
                    ordinal: self.ordinal,
                };
                &generated
            }
        };
        log::info!(
            target: "corral::access",
            "{client} {id} {} {} {} {}B {}us s{}",
            self.head.method.str(buf),
            self.head.target.str(buf),
            status.code(),
            sent,
            started.elapsed().as_micros(),
            self.scheduler
        );
    }

    /// Writes a status-only response and closes (malformed requests, timeouts, limits).
    pub(super) fn reject(&mut self, reason: Reason) {
        self.shared.rejections.record(reason);
        let status = reason.status();
        match reason.limit_key() {
            Some(key) => log::debug!(
                "rejected ({}): {} {}; `{key}` raises the limit",
                reason.label(),
                status.code(),
                status.reason()
            ),
            None => log::debug!(
                "rejected ({}): {} {}",
                reason.label(),
                status.code(),
                status.reason()
            ),
        }
        let response = Response::error(status).with_close();
        let framing = BodyFraming::Length(status.reason().len() as u64);
        let head = encode::encode_head(&mut self.wbuf, &response, framing, ConnectionHeader::Close);
        if let Err(err) = head {
            // Cannot happen: our own error responses carry no header but a static type.
            log::error!("could not encode a {} rejection: {err}", status.code());
            return;
        }
        self.wbuf.extend_from_slice(status.reason().as_bytes());
        if let Err(err) = self.flush() {
            log::debug!("could not send {}: {err}", status.code());
            return;
        }
        self.linger();
    }

    /// Lingering close (nginx's `lingering_close`, Go's `closeWriteAndWait`): closing a socket
    /// with unread input makes the kernel send RST, which can destroy the response we just
    /// sent before the client reads it. So: send FIN, then read and discard what the client
    /// still sends, for a bounded time and amount, before closing.
    fn linger(&mut self) {
        if self.stream.shutdown_write().is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME;
        let mut discarded = 0;
        let mut sink = [0u8; 512];
        while discarded < LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = at_least_a_millisecond(left);
            if left.is_zero() || self.stream.set_read_timeout(timeout).is_err() {
                return;
            }
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    }
}

/// Writes the queued answers and empties the buffer. A free function, so the loop can call
/// it while the request still borrows the read buffer (`dispatch`).
pub(super) fn write_out<S: Transport>(stream: &mut S, wbuf: &mut Vec<u8>) -> io::Result<()> {
    if !wbuf.is_empty() {
        stream.write_all(wbuf)?;
        wbuf.clear();
    }
    Ok(())
}

/// Writes a streamed body to the socket: one chunk per `write_all` on HTTP/1.1.
struct StreamWriter<'a, S> {
    stream: &'a mut S,
    shared: &'a Shared,
    chunked: bool,
    scratch: Vec<u8>,
    sent: u64,
}

impl<S: Transport> BodyWrite for StreamWriter<'_, S> {
    fn closed(&self) -> bool {
        self.shared.is_draining() || self.stream.peer_closed()
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.chunked {
            self.scratch.clear();
            encode::encode_chunk(&mut self.scratch, data);
            self.stream.write_all(&self.scratch)?;
        } else {
            // Unframed (HTTP/1.0, or a sized stream): the bytes as they are, no copy.
            self.stream.write_all(data)?;
        }
        self.sent += data.len() as u64;
        Ok(())
    }
}

/// A generated request id: `pid-scheduler-ordinal`, in hex.
struct RequestId {
    pid: u32,
    scheduler: usize,
    ordinal: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}-{:x}-{:x}", self.pid, self.scheduler, self.ordinal)
    }
}

/// A request id taken from the request as it is: 1 to 64 letters, digits, `-`, `_`, `.`
/// (what proxies generate; anything else could forge log lines).
fn is_plain_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether the installed logger's own filter takes `corral::access` lines at `info` (what
/// `log_enabled!` asks of it, without the `log.level` check that comes per line).
pub(super) fn logger_takes_access_lines() -> bool {
    let access = log::Metadata::builder()
        .level(log::Level::Info)
        .target("corral::access")
        .build();
    log::Level::Info <= log::STATIC_MAX_LEVEL && log::logger().enabled(&access)
}
