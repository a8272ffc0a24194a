//! A keep-alive connection between requests, and the hand-over of its socket to the ward
//! when it hibernates (docs/architecture.md §6).

use std::time::{Duration, Instant};

use super::hibernate::{Arrival, Parked};
use super::read_buf::ReadBuf;
use super::resume::Ending;
use super::serve::{Conn, ConnError};
use super::transport::{Transport, deadline_in, is_timeout};

/// With hibernation off: a keep-alive connection idle this long gives its buffers back
/// until its next request.
const IDLE_RELEASE: Duration = Duration::from_secs(1);
/// A connection waiting with nothing received (idle without hibernation, or fresh) wakes
/// this often to see whether the server drains, and then closes. A wake-up a second is
/// nothing beside the coroutine such a connection holds.
pub(super) const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// What a keep-alive connection's wait between requests came to.
pub(super) enum Idle {
    Input,
    /// The peer closed, or the idle timeout passed.
    Over,
    Hibernate {
        deadline: Instant,
    },
}

impl<S: Transport> Conn<'_, S> {
    /// A keep-alive connection between requests.
    ///
    /// The first stretch (`timeouts.hibernate_after_ms`) is spent in an ordinary read: busy
    /// clients come back sooner. After that the connection hibernates: its coroutine ends
    /// and the bare socket waits in the scheduler's ward for the rest of the idle timeout.
    /// With hibernation off, it gives its buffers back after `IDLE_RELEASE` and waits on a
    /// one-byte peek into the stack instead.
    ///
    /// In a drain, a connection idle that long closes. Not at once: its client has just had
    /// an answer and may be sending its next request this instant, and a close then would
    /// lose it (RFC 9112 §9.6 lets a server close an idle connection, but the client sees a
    /// reset). Until then a request is answered, with `Connection: close`. Connections idle
    /// for longer are hibernated, and the wards close them at once.
    pub(super) fn wait_while_idle(&mut self) -> Result<Idle, ConnError> {
        let timeouts = self.cfg.timeouts;
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
        if rest.is_zero() || self.shared.is_draining() {
            return Ok(Idle::Over);
        }
        if !hibernate_after.is_zero() {
            // The grace read just timed out: what is left of the idle timeout runs from now.
            return Ok(Idle::Hibernate {
                deadline: deadline_in(rest),
            });
        }
        self.release_buffers();
        let deadline = deadline_in(rest);
        let mut probe = [0u8; 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shared.is_draining() {
                return Ok(Idle::Over);
            }
            self.set_read_timeout(left.min(DRAIN_CHECK))?;
            match self.stream.peek(&mut probe) {
                Ok(0) => return Ok(Idle::Over),
                Ok(_) => return Ok(Idle::Input),
                Err(err) if is_timeout(&err) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Ends the coroutine's hold on the connection: the socket goes to the scheduler's ward.
    pub(super) fn hibernate(self, deadline: Instant, parked: Parked) -> Ending {
        let Conn {
            stream,
            shared,
            scheduler,
            served,
            mut process,
            ..
        } = self;
        let Ok(fd) = stream.into_fd() else {
            // Only a transport that hibernates gets here (`serve` checks); close it.
            return Ending::Closed;
        };
        let arrival = Arrival {
            fd,
            deadline,
            parked,
            served,
            process: process.take(),
        };
        match shared.wards.park(scheduler, arrival) {
            Ok(()) => Ending::Hibernated,
            // The server is stopping: a wait is answered at once, an idle socket closed.
            Err(refused) => {
                shared.wards.refused(&shared.router, refused);
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
}
