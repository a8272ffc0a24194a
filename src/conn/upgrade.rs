//! A connection that switched to WebSocket: the `101`, then the session owns the socket.
//!
//! The loop hands over in `serve.rs` (`Step::Upgrade`): every answer before the `101` is
//! written, the bytes the client sent behind its handshake go to the session first, and the
//! request is done (it no longer counts as in flight or in the scheduler's load). The
//! session runs on the coroutine until the WebSocket closes, or — a callback session
//! (`WsHandler`) with nothing to do, on a transport that hibernates and with
//! `timeouts.hibernate_after_ms` not 0 — until it is idle: then the socket goes to the
//! scheduler's ward, which starts a coroutine for it again on the client's next bytes or
//! on a message (its seat rings), and closes it (1001) when the server stops.
//!
//! An idle WebSocket hibernates at once, not after `hibernate_after_ms` as a keep-alive
//! connection does: waiting on both the socket and the inbox is may's `wait_io`, which takes
//! no timeout, and a coroutine costs more than a wake-up.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::dispatch::panic_message;
use super::hibernate::{Arrival, Parked};
use super::process::Held;
use super::resume::{Ending, Resume};
use super::serve::{After, Conn};
use super::transport::{Transport, at_least_a_millisecond, deadline_in};
use super::write::count_answer;
use crate::http::status::Status;
use crate::http::websocket::{Ran, Session, Socket, Upgrade, Wakeup, close_frame, encode_switch};
use crate::router::RouteId;
use crate::runtime::home;
use crate::stats::Stamp;

impl<S: Transport> Conn<'_, S> {
    /// Queues the handshake's `101` (the loop flushes it) and hands the session on.
    pub(super) fn switch(
        &mut self,
        upgrade: Option<Box<Upgrade>>,
        started: Stamp,
        route: Option<RouteId>,
    ) -> After {
        let Some(upgrade) = upgrade else {
            return After::Close;
        };
        let Upgrade { accept, session } = *upgrade;
        encode_switch(&mut self.wbuf, &accept);
        let status = Status::SWITCHING_PROTOCOLS;
        count_answer(self.shared, self.scheduler, route, status);
        self.log_access(status, 0, started);
        After::Upgrade(session)
    }

    /// The connection is a WebSocket from here on; the coroutine serves its session.
    pub(super) fn into_websocket(mut self, session: Box<dyn Session>) -> Ending {
        let leftover = self.rbuf.filled().to_vec();
        // The connection's process, if a handler made one, lives on with the WebSocket.
        let process = self.process.take();
        let Conn {
            stream,
            shared,
            scheduler,
            served,
            ..
        } = self;
        let held = Kept { served, process };
        serve_session(stream, shared, scheduler, held, leftover, session)
    }
}

/// A hibernated WebSocket's coroutine, started by its ward.
pub(super) fn resume<S: Transport>(
    stream: S,
    shared: &Arc<Shared>,
    scheduler: usize,
    resume: Resume,
    session: Box<dyn Session>,
) -> Ending {
    let held = Kept {
        served: resume.served,
        process: resume.process,
    };
    serve_session(stream, shared, scheduler, held, Vec::new(), session)
}

/// What the connection keeps through a WebSocket's life: its count, and its process.
struct Kept {
    served: u64,
    process: Option<Box<dyn Held>>,
}

fn serve_session<S: Transport>(
    mut stream: S,
    shared: &Arc<Shared>,
    scheduler: usize,
    kept: Kept,
    leftover: Vec<u8>,
    mut session: Box<dyn Session>,
) -> Ending {
    if let Err(err) = stream.ready_to_wait() {
        log::error!("websocket: {err}");
        return Ending::Closed;
    }
    let cfg = shared.live.snapshot();
    let mut link = Link {
        stream: &mut stream,
        leftover,
        shared,
        hibernates: S::HIBERNATES && !cfg.timeouts.hibernate_after().is_zero(),
        max_message_bytes: cfg.limits.max_websocket_message_bytes,
        read_timeout: None,
    };
    loop {
        let process = kept.process.as_deref().map(Held::as_any);
        let ran = catch_unwind(AssertUnwindSafe(|| session.run(&mut link, process)));
        // A callback may have blocked (called an actor) and resumed elsewhere.
        home::go_home(scheduler);
        match ran {
            Ok(Ran::Closed) => return Ending::Closed,
            Err(panic) => {
                shared.stats.record_panic(scheduler);
                log::error!("websocket handler panicked: {}", panic_message(&panic));
                let _ = link.write_all(&close_frame(1011, "internal error"));
                return Ending::Closed;
            }
            Ok(Ran::Idle) => {}
        }
        let (id, ring) = shared.wards.ringer(scheduler);
        // A message that came meanwhile keeps the session awake (one for the connection's
        // process, once it sleeps, rings the ward: `Ward::arm_idle`).
        let mail = kept.process.as_ref().is_some_and(|p| p.has_message());
        if mail || !link.leftover.is_empty() || !session.sleep(ring) {
            continue;
        }
        break hibernate(stream, shared, scheduler, kept, id, session);
    }
}

/// Hands a clean, idle WebSocket to the ward.
fn hibernate<S: Transport>(
    stream: S,
    shared: &Arc<Shared>,
    scheduler: usize,
    held: Kept,
    id: u64,
    session: Box<dyn Session>,
) -> Ending {
    let Ok(fd) = stream.into_fd() else {
        // `hibernates` was false for such a transport: not reached.
        session.gone();
        return Ending::Closed;
    };
    let arrival = Arrival {
        fd,
        // A WebSocket has no idle timeout of its own: it lives until either side closes.
        deadline: deadline_in(Duration::MAX),
        parked: Parked::WebSocket { id, session },
        served: held.served,
        process: held.process,
    };
    match shared.wards.park(scheduler, arrival) {
        Ok(()) => Ending::Hibernated,
        Err(refused) => {
            shared.wards.refused(&shared.router, refused);
            Ending::Closed
        }
    }
}

/// What the session sees of its connection.
struct Link<'a, S> {
    stream: &'a mut S,
    /// Bytes the client sent behind the handshake, read first.
    leftover: Vec<u8>,
    shared: &'a Shared,
    hibernates: bool,
    max_message_bytes: usize,
    read_timeout: Option<Duration>,
}

impl<S: Transport> Link<'_, S> {
    fn take_leftover(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.leftover.is_empty() {
            return None;
        }
        let n = self.leftover.len().min(buf.len());
        buf[..n].copy_from_slice(&self.leftover[..n]);
        self.leftover.drain(..n);
        Some(n)
    }
}

impl<S: Transport> Socket for Link<'_, S> {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.take_leftover(buf) {
            Some(n) => Ok(n),
            None => self.stream.try_read(buf),
        }
    }

    fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if let Some(n) = self.take_leftover(buf) {
            return Ok(n);
        }
        let timeout = at_least_a_millisecond(timeout);
        if self.read_timeout != Some(timeout) {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = Some(timeout);
        }
        self.stream.read(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(self.stream, buf)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown_write()
    }

    fn wait(&mut self) {
        if self.leftover.is_empty() {
            self.stream.wait_input();
        }
    }

    fn wakeup(&self) -> Wakeup {
        self.stream.wakeup()
    }

    fn hibernates(&self) -> bool {
        self.hibernates
    }

    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    fn draining(&self) -> bool {
        self.shared.is_draining()
    }
}
