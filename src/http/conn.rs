//! One connection, served by one coroutine in plain blocking style (Go's `(*conn).serve`).
//!
//! The loop reads a head (header timeout), reads the body (body timeout), routes, calls the
//! handler under `catch_unwind`, encodes the response into the write buffer, and flushes once
//! no further complete request is already buffered: pipelined requests are answered in order
//! with one write per batch. Buffers live as long as the connection and are reused across
//! requests, so a keep-alive request allocates nothing in the server.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may::net::TcpStream;

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::encode::{self, BodyFraming, ConnectionHeader};
use super::parse::{Framing, Head, HeadLimits, ParseError, Version, parse_head};
use super::reply::{ReplyShape, encode_reply};
use super::request::{Origin, Request};
use super::response::{BodyWrite, Response, StreamFn};
use super::status::Status;
use crate::hibernate::{Arrival, Deferred, Parked};
use crate::placement::cost::{self, Stopwatch};
use crate::placement::queue;
use crate::router::{Found, Params};
use crate::runtime::home;
use crate::server::Shared;

/// First allocation of the read buffer; it grows for large heads and bodies.
const READ_BUF_INITIAL: usize = 4096;
/// A read buffer larger than this is given back when the connection goes idle, so a past
/// upload does not pin memory on a keep-alive connection.
const READ_BUF_KEEP: usize = 16 * 1024;
/// With hibernation off: a keep-alive connection idle this long gives its buffers back
/// until its next request.
const IDLE_RELEASE: Duration = Duration::from_secs(1);
/// After an error response, how long and how much unread input we drain before closing.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// Flush pipelined responses once this much is queued, bounding the write buffer.
const WRITE_BUF_FLUSH: usize = 64 * 1024;

/// Why a connection ends.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// Answer with this status, then close.
    #[error("rejected: {0:?}")]
    Reject(Status),
    /// The peer went away or I/O failed: close without a response.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer closed in the middle of a request.
    #[error("peer closed mid-request")]
    Truncated,
}

impl From<ParseError> for ConnError {
    fn from(err: ParseError) -> Self {
        ConnError::Reject(err.status())
    }
}

impl From<ChunkedError> for ConnError {
    fn from(err: ChunkedError) -> Self {
        match err {
            ChunkedError::TooLarge => ConnError::Reject(Status::PAYLOAD_TOO_LARGE),
            _ => ConnError::Reject(Status::BAD_REQUEST),
        }
    }
}

/// Bytes read from the socket and not yet consumed: `data[start..end]`.
#[derive(Default)]
struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Removes `n` bytes at offset `at` of the filled region (decoded chunk framing).
    fn cut(&mut self, at: usize, n: usize) {
        let from = self.start + at;
        self.data.copy_within(from + n..self.end, from);
        self.end -= n;
    }

    /// Makes room so the filled region can grow to `total` bytes.
    fn make_room(&mut self, total: usize) {
        if self.start > 0 && self.start + total > self.data.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if total > self.data.len() {
            let size = total.max(READ_BUF_INITIAL).max(self.data.len() * 2);
            self.data.resize(size, 0);
        }
    }

    /// One read into free space, allowing the filled region to reach `max_total` bytes.
    fn fill(&mut self, stream: &mut TcpStream, max_total: usize) -> io::Result<usize> {
        let len = self.end - self.start;
        if self.end == self.data.len() {
            // Grow geometrically, but not past what the caller may still accept (+1 so a read
            // always has room and the caller sees its limit crossed).
            let want = (len * 2).max(READ_BUF_INITIAL).min(max_total.max(len + 1));
            self.make_room(want);
        }
        let n = stream.read(&mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }

    fn release_if_idle(&mut self) {
        if self.is_empty() && self.data.len() > READ_BUF_KEEP {
            self.data = Vec::new();
        }
    }
}

/// How a connection coroutine starts: fresh from the acceptor, or taking back a hibernated
/// connection from its ward.
#[derive(Default)]
pub(crate) struct Resume {
    /// Requests already served on the connection (0: a fresh connection).
    served: u64,
    /// Bytes the client sent that are not consumed yet (pipelined requests).
    leftover: Vec<u8>,
    /// The rest of an answer the ward could not finish writing.
    first: Option<First>,
}

impl Resume {
    pub(crate) fn fresh() -> Resume {
        Resume::default()
    }

    /// An idle connection whose client sent something.
    pub(crate) fn idle(served: u64) -> Resume {
        Resume {
            served: served.max(1),
            ..Resume::default()
        }
    }

    /// A waited-on request was answered; more requests are already buffered.
    pub(crate) fn pipelined(served: u64, leftover: Vec<u8>) -> Resume {
        Resume {
            leftover,
            ..Resume::idle(served)
        }
    }

    /// A waited-on request's answer, which the ward could not send at once, goes first.
    pub(crate) fn after_wait(served: u64, leftover: Vec<u8>, first: First) -> Resume {
        Resume {
            first: Some(first),
            ..Resume::pipelined(served, leftover)
        }
    }
}

/// An answer the ward started and a coroutine finishes.
pub(crate) enum First {
    /// The unsent rest of an encoded response.
    Bytes { bytes: Vec<u8>, keep_alive: bool },
    /// An encoded head, then a streamed body.
    Stream {
        head: Vec<u8>,
        stream: StreamFn,
        chunked: bool,
        keep_alive: bool,
    },
}

/// How a connection's coroutine ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Closed,
    /// The socket lives on in its scheduler's ward.
    Hibernated,
}

/// Why `Conn::run` returned without an error.
enum Step {
    Closed,
    /// Idle past `hibernate_after`: hand the socket to the ward until `deadline`.
    Hibernate {
        deadline: Instant,
    },
    /// The handler deferred its answer ([`Response::hibernate`]).
    Wait {
        deferred: Deferred,
        shape: ReplyShape,
    },
}

/// What `next_head` found.
enum Next {
    Head,
    Closed,
    Hibernate { deadline: Instant },
}

/// What became of one request's connection.
enum After {
    KeepAlive,
    Close,
    Wait {
        deferred: Deferred,
        shape: ReplyShape,
    },
}

struct Conn<'s> {
    stream: TcpStream,
    shared: &'s Arc<Shared>,
    scheduler: usize,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    /// Decoded chunked body of the current request.
    body: Vec<u8>,
    head: Head,
    limits: HeadLimits,
    /// The read timeout currently set on the socket (set only on change: it is a syscall).
    read_timeout: Option<Duration>,
    served: u64,
    /// Placed but no request parsed yet (counted against the admission cap).
    fresh: bool,
    first: Option<First>,
}

/// What the handler produced, and what it cost its scheduler.
struct Dispatched {
    response: Response,
    /// Cost-table slot of the matched route.
    slot: usize,
    occupancy: Duration,
}

/// Serves one connection until it closes or hibernates. Runs inside the connection's
/// coroutine.
pub(crate) fn serve(
    stream: TcpStream,
    shared: &Arc<Shared>,
    scheduler: usize,
    resume: Resume,
) -> Ending {
    let mut conn = Conn::new(stream, shared, scheduler, resume);
    loop {
        let step = conn.run();
        conn.leave_fresh();
        match step {
            Ok(Step::Closed) | Err(ConnError::Truncated) => return Ending::Closed,
            Err(ConnError::Reject(status)) => {
                conn.reject(status);
                return Ending::Closed;
            }
            Err(ConnError::Io(err)) => {
                log::debug!("connection closed: {err}");
                return Ending::Closed;
            }
            Ok(Step::Hibernate { deadline }) => {
                return conn.hibernate(deadline, Parked::Idle);
            }
            Ok(Step::Wait { deferred, shape }) => {
                let seat = shared.wards.seat(scheduler);
                let id = seat.id();
                let deadline = Instant::now() + deferred.timeout;
                match (deferred.start)(seat) {
                    Ok(pending) => {
                        let leftover = conn.rbuf.filled().to_vec();
                        let parked = Parked::Waiting {
                            id,
                            pending,
                            shape,
                            leftover,
                        };
                        return conn.hibernate(deadline, parked);
                    }
                    // Could not subscribe: answer now and carry on.
                    Err(response) => match conn.answer_now(response, shape) {
                        Ok(true) => {}
                        Ok(false) => return Ending::Closed,
                        Err(err) => {
                            log::debug!("connection closed: {err}");
                            return Ending::Closed;
                        }
                    },
                }
            }
        }
    }
}

impl<'s> Conn<'s> {
    fn new(stream: TcpStream, shared: &'s Arc<Shared>, scheduler: usize, resume: Resume) -> Self {
        let limits = &shared.config.limits;
        if let Err(err) = stream.set_write_timeout(Some(shared.config.timeouts.write())) {
            log::debug!("set_write_timeout: {err}");
        }
        let mut rbuf = ReadBuf::default();
        if !resume.leftover.is_empty() {
            rbuf.end = resume.leftover.len();
            rbuf.data = resume.leftover;
        }
        Conn {
            stream,
            shared,
            scheduler,
            rbuf,
            wbuf: Vec::new(),
            body: Vec::new(),
            head: Head::default(),
            limits: HeadLimits {
                max_head_bytes: limits.max_head_bytes,
                max_uri_bytes: limits.max_uri_bytes,
                max_headers: limits.max_headers,
                max_body_bytes: limits.max_body_bytes,
            },
            read_timeout: None,
            served: resume.served,
            // A resumed connection was counted as started long ago.
            fresh: resume.served == 0,
            first: resume.first,
        }
    }

    fn run(&mut self) -> Result<Step, ConnError> {
        if let Some(first) = self.first.take()
            && !self.finish_first(first)?
        {
            return Ok(Step::Closed);
        }
        loop {
            match self.next_head()? {
                Next::Head => {}
                Next::Closed => return Ok(Step::Closed),
                Next::Hibernate { deadline } => return Ok(Step::Hibernate { deadline }),
            }
            self.leave_fresh();
            let shared = self.shared;
            let inflight = shared.stats.start_request(self.scheduler);
            let after = self.serve_request()?;
            drop(inflight);
            queue::on_request_done(shared, self.scheduler);
            self.served += 1;
            match after {
                After::KeepAlive => {}
                After::Close => {
                    self.flush()?;
                    return Ok(Step::Closed);
                }
                After::Wait { deferred, shape } => {
                    // Earlier pipelined answers go out before the connection sleeps.
                    self.flush()?;
                    return Ok(Step::Wait { deferred, shape });
                }
            }
            let more_buffered = self.has_complete_head();
            if !more_buffered || self.wbuf.len() >= WRITE_BUF_FLUSH {
                self.flush()?;
            }
            if !more_buffered {
                self.rbuf.release_if_idle();
            }
        }
    }

    /// Reads until a complete head is parsed, or the peer closes, or it is time to hibernate.
    fn next_head(&mut self) -> Result<Next, ConnError> {
        let timeouts = &self.shared.config.timeouts;
        let mut deadline = None;
        if self.served > 0 && self.rbuf.is_empty() {
            match self.wait_while_idle()? {
                Idle::Input => {}
                Idle::Over => return Ok(Next::Closed),
                Idle::Hibernate { deadline } => return Ok(Next::Hibernate { deadline }),
            }
            // Bytes are waiting: the header timeout runs from here.
            deadline = Some(Instant::now() + timeouts.header());
        }
        loop {
            if !self.rbuf.is_empty() {
                if parse_head(self.rbuf.filled(), &self.limits, &mut self.head)? {
                    return Ok(Next::Head);
                }
                deadline.get_or_insert_with(|| Instant::now() + timeouts.header());
            }
            let timeout = match deadline {
                Some(at) => at.saturating_duration_since(Instant::now()),
                // A fresh connection owes us a request within the header timeout.
                None => timeouts.header(),
            };
            match self.fill(timeout, self.limits.max_head_bytes) {
                Ok(0) if self.rbuf.is_empty() => return Ok(Next::Closed),
                Ok(0) => return Err(ConnError::Truncated),
                Ok(_) => {}
                Err(err) if is_timeout(&err) && deadline.is_some() => {
                    return Err(ConnError::Reject(Status::REQUEST_TIMEOUT));
                }
                Err(err) if is_timeout(&err) => return Ok(Next::Closed),
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// A keep-alive connection between requests.
    ///
    /// The first stretch (`timeouts.hibernate_after_ms`) is spent in an ordinary read: busy
    /// clients come back sooner. After that the connection hibernates: its coroutine ends
    /// and the bare socket waits in the scheduler's ward for the rest of the idle timeout.
    /// With hibernation off, it gives its buffers back after `IDLE_RELEASE` and waits on a
    /// one-byte peek into the stack instead.
    fn wait_while_idle(&mut self) -> Result<Idle, ConnError> {
        let timeouts = &self.shared.config.timeouts;
        let idle = timeouts.idle();
        let hibernate_after = timeouts.hibernate_after();
        let grace = if hibernate_after.is_zero() {
            IDLE_RELEASE
        } else {
            hibernate_after
        }
        .min(idle);
        match self.fill(grace, self.limits.max_head_bytes) {
            Ok(0) => return Ok(Idle::Over),
            Ok(_) => return Ok(Idle::Input),
            Err(err) if is_timeout(&err) => {}
            Err(err) => return Err(err.into()),
        }
        let rest = idle.saturating_sub(grace);
        if rest.is_zero() {
            return Ok(Idle::Over);
        }
        if !hibernate_after.is_zero() {
            // The grace read just timed out: what is left of the idle timeout runs from now.
            return Ok(Idle::Hibernate {
                deadline: Instant::now() + rest,
            });
        }
        self.release_buffers();
        self.set_read_timeout(rest)?;
        let mut probe = [0u8; 1];
        match self.stream.peek(&mut probe) {
            Ok(0) => Ok(Idle::Over),
            Ok(_) => Ok(Idle::Input),
            Err(err) if is_timeout(&err) => Ok(Idle::Over),
            Err(err) => Err(err.into()),
        }
    }

    /// Ends the coroutine's hold on the connection: the socket goes to the scheduler's ward.
    fn hibernate(self, deadline: Instant, parked: Parked) -> Ending {
        let Conn {
            stream,
            shared,
            scheduler,
            served,
            ..
        } = self;
        // Dropping may's stream deregisters it from may's epoll; the descriptor stays open.
        // SAFETY: into_raw_fd hands over sole ownership of an open descriptor.
        #[allow(unsafe_code)]
        let fd = unsafe { OwnedFd::from_raw_fd(stream.into_raw_fd()) };
        let arrival = Arrival {
            fd,
            deadline,
            parked,
            served,
        };
        match shared.wards.park(scheduler, arrival) {
            Ok(()) => Ending::Hibernated,
            // The server is stopping: a wait is answered at once, an idle socket closed.
            Err(refused) => {
                shared.wards.refused(refused);
                Ending::Closed
            }
        }
    }

    fn release_buffers(&mut self) {
        self.rbuf = ReadBuf::default();
        self.wbuf = Vec::new();
        self.body = Vec::new();
        self.head.headers = Vec::new();
    }

    /// Body, handler, response.
    fn serve_request(&mut self) -> Result<After, ConnError> {
        let started = Instant::now();
        if self.head.expect_continue && self.head.framing != Framing::None {
            if let Some(refusal) = self.refusal_without_body() {
                // The client has not sent the body; refuse and close rather than drain it.
                self.queue(refusal.with_close(), started)?;
                return Ok(After::Close);
            }
            self.send_continue()?;
        }
        let body_in_buf = self.read_body()?;
        let mut done = self.dispatch(body_in_buf);
        let after = match done.response.deferred.take() {
            Some(deferred) => Ok(After::Wait {
                deferred,
                shape: self.reply_shape(),
            }),
            // Queue before consuming: the access log and HEAD check read the head in place.
            None => match self.queue(done.response, started) {
                Ok(true) => Ok(After::KeepAlive),
                Ok(false) => Ok(After::Close),
                Err(err) => Err(err),
            },
        };
        let costs = &self.shared.costs;
        costs.record(self.scheduler, done.slot, done.occupancy, started.elapsed());
        self.rbuf.consume(self.head.len + body_in_buf);
        after
    }

    fn reply_shape(&self) -> ReplyShape {
        let version = self.head.version;
        ReplyShape {
            is_head: self.head.method.get(self.rbuf.filled()) == b"HEAD",
            version,
            client_keeps_alive: !self.head.close
                && (version == Version::Http11 || self.head.keep_alive),
        }
    }

    /// Sends a response for a request whose head is gone (a wait that could not start).
    /// Returns whether to keep the connection.
    fn answer_now(&mut self, response: Response, shape: ReplyShape) -> io::Result<bool> {
        let draining = self.shared.is_draining();
        let encoded = encode_reply(&mut self.wbuf, response, shape, draining);
        if let Some((stream, chunked)) = encoded.stream {
            self.stream_body(stream, chunked)
                .map_err(io::Error::other)?;
        }
        self.flush()?;
        Ok(encoded.keep_alive)
    }

    /// Sends what the ward could not. Returns whether to keep the connection.
    fn finish_first(&mut self, first: First) -> Result<bool, ConnError> {
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

    /// For `Expect: 100-continue`: the response we would give without reading the body.
    fn refusal_without_body(&self) -> Option<Response> {
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

    fn send_continue(&mut self) -> io::Result<()> {
        encode::encode_continue(&mut self.wbuf);
        self.flush()
    }

    /// Reads the whole body. Returns how many bytes of it sit in the read buffer after the
    /// head (Content-Length); a chunked body is decoded into `self.body` instead.
    fn read_body(&mut self) -> Result<usize, ConnError> {
        let deadline = Instant::now() + self.shared.config.timeouts.body();
        match self.head.framing {
            Framing::None => Ok(0),
            Framing::Length(n) => {
                // Fits in usize: the parser refused lengths over max_body_bytes.
                let total = self.head.len + n as usize;
                self.rbuf.make_room(total);
                while self.rbuf.filled().len() < total {
                    self.fill_body(deadline, total)?;
                }
                Ok(n as usize)
            }
            Framing::Chunked => {
                let limits = &self.shared.config.limits;
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
                    self.fill_body(deadline, room)?;
                }
            }
        }
    }

    fn fill_body(&mut self, deadline: Instant, max_total: usize) -> Result<(), ConnError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.fill(left, max_total) {
            Ok(0) => Err(ConnError::Truncated),
            Ok(_) => Ok(()),
            Err(err) if is_timeout(&err) => Err(ConnError::Reject(Status::REQUEST_TIMEOUT)),
            Err(err) => Err(err.into()),
        }
    }

    /// Routes and calls the handler; a panic becomes 500 and closes the connection. While
    /// the handler runs, its route's expected cost counts in the scheduler's load.
    fn dispatch(&self, body_in_buf: usize) -> Dispatched {
        let buf = self.rbuf.filled();
        let body = match self.head.framing {
            Framing::Chunked => self.body.as_slice(),
            _ => &buf[self.head.len..self.head.len + body_in_buf],
        };
        let (router, costs) = (&self.shared.router, &self.shared.costs);
        let mut params = Params::new();
        let method = self.head.method.str(buf);
        let found = router.find(method, self.head.path.str(buf), &mut params);
        let (handler, route) = match found {
            Found::Route {
                handler,
                pattern,
                id,
            } => (handler, Some((id, pattern))),
            found => match (router.fallback_handler(), found) {
                (Some(fallback), _) => (fallback, None),
                (None, refusal) => {
                    let response = match refusal {
                        Found::MethodNotAllowed { allow } => method_not_allowed(allow),
                        _ => Response::error(Status::NOT_FOUND),
                    };
                    return Dispatched {
                        response,
                        slot: costs.slot(None),
                        occupancy: Duration::ZERO,
                    };
                }
            },
        };
        let slot = costs.slot(route.map(|(id, _)| id));
        let pattern = route.map(|(_, pattern)| pattern);
        let origin = Origin {
            route: pattern,
            scheduler: self.scheduler,
            server: self.shared,
            socket: self.stream.inner().as_fd(),
        };
        let req = Request::new(buf, &self.head, params, body, origin);
        let watch = Stopwatch::start();
        let expected_ns = costs.expected_ns(slot);
        let _load = (self.shared.stats).expect_load(self.scheduler, expected_ns, watch.started());
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.call(&req)));
        let occupancy = watch.occupancy();
        // A handler that slept or waited may have been resumed elsewhere: come back to k.
        home::go_home(self.scheduler);
        let response = outcome.unwrap_or_else(|panic| {
            self.shared.stats.record_panic(self.scheduler);
            log::error!(
                "handler for {method} {} panicked: {}",
                pattern.unwrap_or("(fallback)"),
                panic_message(&panic)
            );
            Response::error(Status::INTERNAL_SERVER_ERROR).with_close()
        });
        Dispatched {
            response,
            slot,
            occupancy,
        }
    }

    /// Encodes `response` (streaming it if it is a stream). Returns whether to keep alive.
    fn queue(&mut self, response: Response, started: Instant) -> Result<bool, ConnError> {
        let shape = self.reply_shape();
        let draining = self.shared.is_draining();
        let encoded = encode_reply(&mut self.wbuf, response, shape, draining);
        let mut sent = encoded.sent;
        if let Some((stream, chunked)) = encoded.stream {
            sent = self.stream_body(stream, chunked)?;
        }
        self.log_access(encoded.status, sent, started);
        Ok(encoded.keep_alive)
    }

    /// Sends the head, then runs the handler's stream closure writing straight to the socket.
    fn stream_body(&mut self, stream: StreamFn, chunked: bool) -> Result<u64, ConnError> {
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

    fn log_access(&self, status: Status, sent: u64, started: Instant) {
        if !log::log_enabled!(target: "corral::access", log::Level::Info) {
            return;
        }
        let buf = self.rbuf.filled();
        log::info!(
            target: "corral::access",
            "{} {} {} {}B {}us s{}",
            self.head.method.str(buf),
            self.head.target.str(buf),
            status.code(),
            sent,
            started.elapsed().as_micros(),
            self.scheduler
        );
    }

    /// Writes a status-only response and closes (malformed requests, timeouts, limits).
    fn reject(&mut self, status: Status) {
        let response = Response::error(status).with_close();
        encode::encode_head(
            &mut self.wbuf,
            &response,
            BodyFraming::Length(status.reason().len() as u64),
            ConnectionHeader::Close,
        );
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
        if self.stream.shutdown(std::net::Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME;
        let mut discarded = 0;
        let mut sink = [0u8; 512];
        while discarded < LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = at_least_a_millisecond(left);
            if left.is_zero() || self.stream.set_read_timeout(Some(timeout)).is_err() {
                return;
            }
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    }

    fn has_complete_head(&self) -> bool {
        memchr::memmem::find(self.rbuf.filled(), b"\r\n\r\n").is_some()
    }

    fn fill(&mut self, timeout: Duration, max_total: usize) -> io::Result<usize> {
        if timeout.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.set_read_timeout(timeout)?;
        let n = self.rbuf.fill(&mut self.stream, max_total)?;
        cost::note_resume();
        Ok(n)
    }

    /// Sets the socket's read timeout, skipping the syscall when it is unchanged.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout = at_least_a_millisecond(timeout);
        if self.read_timeout != Some(timeout) {
            self.stream.set_read_timeout(Some(timeout))?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    fn leave_fresh(&mut self) {
        if std::mem::replace(&mut self.fresh, false) {
            self.shared.stats.connection_started(self.scheduler);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }
}

/// What a keep-alive connection's wait between requests came to.
enum Idle {
    Input,
    /// The peer closed, or the idle timeout passed.
    Over,
    Hibernate {
        deadline: Instant,
    },
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(Status::METHOD_NOT_ALLOWED).with_header("Allow", allow.to_string())
}

/// Writes a streamed body to the socket: one chunk per `write_all` on HTTP/1.1.
struct StreamWriter<'a> {
    stream: &'a mut TcpStream,
    shared: &'a Shared,
    chunked: bool,
    scratch: Vec<u8>,
    sent: u64,
}

impl BodyWrite for StreamWriter<'_> {
    fn closed(&self) -> bool {
        self.shared.is_draining() || super::request::peer_closed(self.stream.inner().as_fd())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        if self.chunked {
            encode::encode_chunk(&mut self.scratch, data);
        } else {
            self.scratch.extend_from_slice(data);
        }
        self.stream.write_all(&self.scratch)?;
        self.sent += data.len() as u64;
        Ok(())
    }
}

/// may keeps timeouts in whole milliseconds and treats 0 as "none": a sub-millisecond
/// timeout would wait forever, so round up.
fn at_least_a_millisecond(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}
