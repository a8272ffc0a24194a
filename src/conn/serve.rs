//! The connection loop: one connection, served by one coroutine in plain blocking style.
//!
//! The loop reads a head (header timeout), reads the body (body timeout), routes, calls the
//! handler under `catch_unwind` and encodes the response into the write buffer. Pipelined
//! requests are answered in order with one write per batch. Buffers live as long as the
//! connection and are reused across requests, so a keep-alive request allocates nothing in
//! the server.
//!
//! When the write buffer goes out (STYLE §1: before anything that can block, every answer
//! already produced is on the wire):
//! - before every read from the socket (`Conn::fill`): a read may wait, so only a request
//!   complete in the buffer, head and body, is answered in the same batch — not stray CRLFs
//!   or a head whose body is still arriving;
//! - before a handler that is not known to be quick (`dispatch`): it may wait or run long;
//! - when it reaches `WRITE_BUF_FLUSH`, before a stream, a hibernation or a close.

use std::io;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::dispatch::{RouteName, panic_message};
use super::hibernate::Parked;
use super::idle::{DRAIN_CHECK, Idle};
use super::live::Snapshot;
use super::process::ProcessSlot;
use super::read_buf::ReadBuf;
use super::reject::Reason;
use super::resume::{Ending, First, Resume};
use super::spare;
use super::transport::{Transport, at_least_a_millisecond, deadline_in, is_timeout};
use super::wait::Start;
use super::write::write_out;
use crate::http::chunked::ChunkedError;
use crate::http::parse::{
    Framing, Head, HeadLimits, ParseError, Version, may_tell_more, parse_head,
};
use crate::http::reply::ReplyShape;
use crate::http::response::Response;
use crate::http::status::Status;
use crate::http::wait::Deferred;
use crate::http::websocket::Session;
use crate::placement::cost;
use crate::router::RouteId;
use crate::runtime::home;
use crate::stats::Stamp;

/// Flush pipelined responses once this much is queued, bounding the write buffer.
const WRITE_BUF_FLUSH: usize = 64 * 1024;

/// Why a connection ends.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    /// Answer with the reason's status, then close.
    #[error("rejected: {0:?}")]
    Reject(Reason),
    /// The peer went away or I/O failed: close without a response.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer closed in the middle of a request.
    #[error("peer closed mid-request")]
    Truncated,
}

impl From<ParseError> for ConnError {
    fn from(err: ParseError) -> Self {
        ConnError::Reject(err.into())
    }
}

impl From<ChunkedError> for ConnError {
    fn from(err: ChunkedError) -> Self {
        ConnError::Reject(err.into())
    }
}

/// Why `Conn::run` returned without an error.
enum Step {
    Closed,
    /// Idle past `hibernate_after`: hand the socket to the ward until `deadline`.
    Hibernate {
        deadline: Instant,
    },
    /// The handler deferred its answer ([`Response::hibernate`]).
    Wait(Wait),
    /// The `101` is out: the connection is a WebSocket now (`upgrade.rs`).
    Upgrade(Box<dyn Session>),
}

/// A request whose answer comes later ([`Response::hibernate`]).
pub(super) struct Wait {
    deferred: Box<Deferred>,
    shape: ReplyShape,
    route: Option<RouteId>,
}

/// What `next_head` found.
enum Next {
    Head,
    Closed,
    Hibernate { deadline: Instant },
}

/// What became of one request's connection.
pub(super) enum After {
    KeepAlive,
    Close,
    Wait(Wait),
    Upgrade(Box<dyn Session>),
}

/// One connection's state, over any transport (a may socket; in-memory bytes in tests).
pub(super) struct Conn<'s, S: Transport> {
    pub(super) stream: S,
    pub(super) shared: &'s Arc<Shared>,
    pub(super) scheduler: usize,
    pub(super) rbuf: ReadBuf,
    pub(super) wbuf: Vec<u8>,
    /// Decoded chunked body of the current request.
    pub(super) body: Vec<u8>,
    pub(super) head: Head,
    /// The limits and timeouts this connection works with, refreshed before each request:
    /// a reload applies from a connection's next request on.
    pub(super) cfg: Snapshot,
    /// `cfg`'s limits, as the parser takes them.
    pub(super) limits: HeadLimits,
    /// The read timeout currently set on the socket (set only on change: it is a syscall).
    read_timeout: Option<Duration>,
    pub(super) served: u64,
    /// The current request's ordinal on its scheduler (its request id's number).
    pub(super) ordinal: u64,
    /// Placed but no request parsed yet (counted against the admission cap).
    fresh: bool,
    /// Since when the connection has had nothing of its own to do (its previous request
    /// done, or its ward handing it back): input waiting from before then waited for the
    /// connection, not for the scheduler. `None`: since its input arrived (admission control).
    pub(super) free_since: Option<Stamp>,
    first: Option<First>,
    /// A clock reading still current: taken since the connection last could have waited (a
    /// read, a write, a handler). Requests of a pipelined batch share it: one ends when the
    /// next begins. So a request costs one clock read, plus one per batch (`now`).
    pub(super) clock: Option<Stamp>,
    /// The connection's process, made on a handler's first `Request::process` (`process.rs`);
    /// dropped with the connection, a normal exit.
    pub(super) process: ProcessSlot,
    /// Whether the logger takes `corral::access` lines, asked once per connection: the
    /// logger's filter is fixed once installed, and asking it cost ~40 instructions a
    /// request (`log.level`, which a reload changes, is still checked per line).
    pub(super) access_log: bool,
}

/// Serves one connection until it closes or hibernates. Runs inside the connection's
/// coroutine.
pub(crate) fn serve<S: Transport>(
    stream: S,
    shared: &Arc<Shared>,
    scheduler: usize,
    mut resume: Resume,
) -> Ending {
    if let Some(session) = resume.websocket.take() {
        return super::upgrade::resume(stream, shared, scheduler, resume, session);
    }
    let mut conn = Conn::new(stream, shared, scheduler, resume);
    loop {
        let step = conn.run();
        conn.leave_fresh();
        match step {
            Ok(Step::Closed) | Err(ConnError::Truncated) => return Ending::Closed,
            Err(ConnError::Reject(reason)) => {
                conn.reject(reason);
                return Ending::Closed;
            }
            Err(ConnError::Io(err)) => {
                log::debug!("connection closed: {err}");
                return Ending::Closed;
            }
            Ok(Step::Hibernate { deadline }) => {
                return conn.hibernate(deadline, Parked::Idle);
            }
            Ok(Step::Upgrade(session)) => return conn.into_websocket(session),
            Ok(Step::Wait(Wait { shape, route, .. })) if !S::HIBERNATES => {
                log::error!("a request asked to hibernate on a transport that cannot");
                let refusal = Response::error(Status::INTERNAL_SERVER_ERROR).with_close();
                let _ = conn.answer_now(refusal, shape, route);
                return Ending::Closed;
            }
            Ok(Step::Wait(wait)) => {
                conn = match conn.start_wait(wait) {
                    ControlFlow::Break(ending) => return ending,
                    ControlFlow::Continue(conn) => conn,
                }
            }
        }
    }
}

impl<'s, S: Transport> Conn<'s, S> {
    fn new(mut stream: S, shared: &'s Arc<Shared>, scheduler: usize, resume: Resume) -> Self {
        let cfg = shared.live.snapshot();
        if let Err(err) = stream.set_write_timeout(cfg.timeouts.write()) {
            log::debug!("set_write_timeout: {err}");
        }
        let rbuf = ReadBuf::from_leftover(resume.leftover);
        Conn {
            stream,
            shared,
            scheduler,
            rbuf,
            wbuf: Vec::new(),
            body: Vec::new(),
            head: Head::default(),
            limits: head_limits(&cfg),
            cfg,
            read_timeout: None,
            served: resume.served,
            ordinal: 0,
            // A resumed connection was counted as started long ago, unless placement counted
            // it afresh as it woke.
            fresh: resume.served == 0 || resume.placed,
            free_since: resume.free_since,
            first: resume.first,
            clock: None,
            process: ProcessSlot::new(resume.process),
            access_log: super::write::logger_takes_access_lines(),
        }
    }

    /// Starts a deferred answer: runs its `subscribe`, then hands the socket to the ward
    /// until the answer is ready. `subscribe` is the handler's code: a panic in it is what a
    /// handler's panic is (a 500 that closes, counted, logged with the route), not the end
    /// of the connection without a word. `Continue`: it answered at once; serve on.
    fn start_wait(mut self, wait: Wait) -> ControlFlow<Ending, Self> {
        let Wait {
            deferred,
            shape,
            route,
        } = wait;
        let shared = self.shared;
        let seat = shared.wards.seat(self.scheduler);
        let id = seat.id();
        // The handler chose this timeout: it may be `Duration::MAX`.
        let deadline = deadline_in(deferred.timeout);
        let started = match deferred.start.downcast::<Start>() {
            Ok(start) => catch_unwind(AssertUnwindSafe(|| (start.0)(&self.process, &seat))),
            Err(_) => Ok(Err(
                Response::error(Status::INTERNAL_SERVER_ERROR).with_close()
            )),
        };
        // `subscribe` may block (call an actor): come back to k if it resumed elsewhere.
        home::go_home(self.scheduler);
        let response = match started {
            Ok(Ok(pending)) => {
                // The process's next message (or an exit signal) rings the ward.
                if let Some(process) = self.process.get() {
                    process.on_next(seat.ringer());
                }
                let leftover = self.rbuf.filled().to_vec();
                let parked = Parked::Waiting {
                    id,
                    pending,
                    shape,
                    route,
                    leftover,
                };
                return ControlFlow::Break(self.hibernate(deadline, parked));
            }
            // Could not subscribe: answer now and carry on.
            Ok(Err(response)) => response,
            Err(panic) => {
                shared.stats.record_panic(self.scheduler);
                log::error!(
                    "subscribe of {} panicked: {}",
                    RouteName(&shared.router, route),
                    panic_message(&panic)
                );
                Response::error(Status::INTERNAL_SERVER_ERROR).with_close()
            }
        };
        match self.answer_now(response, shape, route) {
            Ok(true) => ControlFlow::Continue(self),
            Ok(false) => ControlFlow::Break(Ending::Closed),
            Err(err) => {
                log::debug!("connection closed: {err}");
                ControlFlow::Break(Ending::Closed)
            }
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
            self.ordinal = inflight.ordinal();
            let after = self.serve_request()?;
            drop(inflight);
            shared.placement.on_request_done(self.scheduler, shared);
            self.served += 1;
            match after {
                After::KeepAlive => {}
                After::Close => {
                    self.flush()?;
                    return Ok(Step::Closed);
                }
                After::Wait(wait) => {
                    // Earlier pipelined answers go out before the connection sleeps.
                    self.flush()?;
                    return Ok(Step::Wait(wait));
                }
                After::Upgrade(session) => {
                    self.flush()?;
                    return Ok(Step::Upgrade(session));
                }
            }
            // Otherwise the answer goes out with the next read or before the next handler
            // that may wait (module doc).
            if self.wbuf.len() >= WRITE_BUF_FLUSH {
                self.flush()?;
            }
        }
    }

    /// Picks up a reload's limits and timeouts (one atomic load when there was none).
    fn refresh_settings(&mut self) {
        let write_timeout = self.cfg.timeouts.write_timeout_ms;
        if !self.shared.live.refresh(&mut self.cfg) {
            return;
        }
        self.limits = head_limits(&self.cfg);
        if self.cfg.timeouts.write_timeout_ms != write_timeout
            && let Err(err) = self.stream.set_write_timeout(self.cfg.timeouts.write())
        {
            log::debug!("set_write_timeout: {err}");
        }
    }

    /// Reads until a complete head is parsed, or the peer closes, or it is time to hibernate.
    fn next_head(&mut self) -> Result<Next, ConnError> {
        let mut deadline = None;
        let mut awaited = false;
        if self.served > 0 && self.rbuf.is_empty() {
            // For the idle wait; the request itself takes the settings in force when its
            // bytes are there (a reload during the wait applies to it).
            self.refresh_settings();
            self.rbuf.release_if_idle();
            match self.wait_while_idle()? {
                Idle::Input => {}
                Idle::Over => return Ok(Next::Closed),
                Idle::Hibernate { deadline } => return Ok(Next::Hibernate { deadline }),
            }
            self.refresh_settings();
            // Bytes are waiting: the header timeout runs from here (taken when the head
            // turns out incomplete: a complete one needs no deadline and no clock read).
            awaited = true;
        }
        // A fresh connection owes us a request within the header timeout; until its first
        // byte it is idle, and a drain closes it (`DRAIN_CHECK`).
        let mut silent_until = None;
        // How much of the buffer the last parse saw (and found incomplete): a parse again
        // only when the new bytes can change its verdict (`may_tell_more`).
        let mut parsed = 0;
        loop {
            if !self.rbuf.is_empty() {
                if deadline.is_none() && !awaited {
                    self.refresh_settings();
                }
                if may_tell_more(self.rbuf.filled(), parsed, &self.limits) {
                    if parse_head(self.rbuf.filled(), &self.limits, &mut self.head)? {
                        return Ok(Next::Head);
                    }
                    parsed = self.rbuf.filled().len();
                }
                let header = self.cfg.timeouts.header();
                deadline.get_or_insert_with(|| deadline_in(header));
            }
            let timeout = match deadline {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None => {
                    let header = self.cfg.timeouts.header();
                    let until = *silent_until.get_or_insert_with(|| deadline_in(header));
                    until
                        .saturating_duration_since(Instant::now())
                        .min(DRAIN_CHECK)
                }
            };
            match self.fill(timeout, self.limits.max_head_bytes) {
                Ok(0) if self.rbuf.is_empty() => return Ok(Next::Closed),
                Ok(0) => {
                    self.last_parse(parsed)?;
                    return Err(ConnError::Truncated);
                }
                Ok(_) => {}
                Err(err) if is_timeout(&err) && deadline.is_some() => {
                    self.last_parse(parsed)?;
                    return Err(ConnError::Reject(Reason::HeaderTimeout));
                }
                Err(err) if is_timeout(&err) => {
                    let silent_too_long = silent_until.is_some_and(|at| Instant::now() >= at);
                    if silent_too_long || self.shared.is_draining() {
                        return Ok(Next::Closed);
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Before answering the end of input or the header timeout: the bytes that no parse has
    /// seen (`may_tell_more` skipped them) may hold an error, which is the answer then, as
    /// it would have been had they arrived with the bytes before them.
    fn last_parse(&mut self, parsed: usize) -> Result<(), ConnError> {
        if parsed < self.rbuf.filled().len() {
            // Complete is impossible here (no LF came unparsed); an error is the answer.
            parse_head(self.rbuf.filled(), &self.limits, &mut self.head)?;
        }
        Ok(())
    }

    /// Body, handler, response.
    fn serve_request(&mut self) -> Result<After, ConnError> {
        let started = self.now();
        if self.head.expect_continue && self.head.framing != Framing::None {
            if let Some(refusal) = self.refusal_without_body() {
                // The client has not sent the body; refuse and close rather than drain it.
                self.queue(&mut refusal.with_close(), started, None)?;
                return Ok(After::Close);
            }
            self.send_continue()?;
        }
        let body_in_buf = self.read_body()?;
        let mut done = self.dispatch(body_in_buf)?;
        let after = match done.response.deferred.take() {
            Some(deferred) => Ok(After::Wait(Wait {
                deferred,
                shape: self.reply_shape(),
                route: done.route,
            })),
            None if done.response.upgrade.is_some() => {
                let upgrade = done.response.upgrade.take();
                Ok(self.switch(upgrade, started, done.route))
            }
            // Queue before consuming: the access log and HEAD check read the head in place.
            None => match self.queue(&mut done.response, started, done.route) {
                Ok(true) => Ok(After::KeepAlive),
                Ok(false) => Ok(After::Close),
                Err(err) => Err(err),
            },
        };
        let costs = &self.shared.placement.costs;
        // The handler's end, unless the answer was streamed since: the latency, and when the
        // connection is free again.
        let finished = self.now();
        if !done.shed {
            let latency = match done.span {
                Some(span) if span == (started, finished) => done.occupancy,
                _ => finished.since(started),
            };
            costs.record(self.scheduler, done.slot, done.occupancy, latency);
        }
        if done.waited {
            costs.note_waited(self.scheduler, done.slot);
        }
        self.free_since = Some(finished);
        self.rbuf.consume(self.head.len + body_in_buf);
        after
    }

    pub(super) fn reply_shape(&self) -> ReplyShape {
        let version = self.head.version;
        ReplyShape {
            is_head: self.head.method.get(self.rbuf.filled()) == b"HEAD",
            version,
            client_keeps_alive: !self.head.close
                && (version == Version::Http11 || self.head.keep_alive),
        }
    }

    /// Reads more input, after writing every answer queued: the read may wait.
    ///
    /// A failed write comes back as `ErrorKind::Other`, so that a write timeout is never
    /// taken for a read timeout (a 408) by the callers.
    pub(super) fn fill(&mut self, timeout: Duration, max_total: usize) -> io::Result<usize> {
        self.flush().map_err(io::Error::other)?;
        // Everything is sent: the buffer is the next connection's to write into while
        // this one reads (`spare.rs`).
        spare::give_back(&mut self.wbuf);
        if timeout.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.set_read_timeout(timeout)?;
        self.clock = None;
        let n = self.rbuf.fill(&mut self.stream, max_total)?;
        cost::note_resume();
        Ok(n)
    }

    /// Now: the current reading (`clock`), or a new one.
    pub(super) fn now(&mut self) -> Stamp {
        *self.clock.get_or_insert_with(Stamp::now)
    }

    /// The connection may have waited (a write, a stream): the reading is stale.
    pub(super) fn clock_stale(&mut self) {
        self.clock = None;
    }

    /// Sets the socket's read timeout, skipping the syscall when it is unchanged.
    pub(super) fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout = at_least_a_millisecond(timeout);
        if self.read_timeout != Some(timeout) {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    fn leave_fresh(&mut self) {
        if std::mem::replace(&mut self.fresh, false) {
            self.shared.stats.connection_started(self.scheduler);
        }
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.clock = None;
        write_out(&mut self.stream, &mut self.wbuf)
    }
}

fn head_limits(cfg: &Snapshot) -> HeadLimits {
    let limits = &cfg.limits;
    HeadLimits {
        max_head_bytes: limits.max_head_bytes,
        max_uri_bytes: limits.max_uri_bytes,
        max_headers: limits.max_headers,
        max_body_bytes: limits.max_body_bytes,
    }
}
