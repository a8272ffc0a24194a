//! How a ward's life ends: asked to stop (waits answered, idle sockets closed), or dead of a
//! panic (everything it held answered 503 or closed, and uncounted, so that its successor on
//! the same door starts clean).

use std::panic::{AssertUnwindSafe, catch_unwind};

use rustix::event::epoll;

use super::answer::send_now;
use super::door::{Arrival, Parked, WardParts};
use super::ward::{Entry, Ward, has_input};
use crate::conn::resume::Resume;
use crate::http::reply::encode_reply;
use crate::http::response::Response;
use crate::http::status::Status;

impl Ward {
    /// Asked to stop: waits are answered, idle sockets closed, nobody restarts the ward.
    pub(super) fn stop(mut self) {
        if catch_unwind(AssertUnwindSafe(|| self.close_everything())).is_err() {
            log::error!("ward {}: panicked while closing its connections", self.k);
            let _ = catch_unwind(AssertUnwindSafe(|| self.abandon_all()));
        }
        self.publish_counts();
        self.door.vigil.ended();
    }

    /// Closes and uncounts everything, gives the epoll set back, and reports the death so
    /// that the supervisor starts a successor on the same door.
    pub(super) fn die(mut self, why: &str) {
        log::error!(
            "ward {} {why}: closing the {} connections it held",
            self.k,
            self.held
        );
        let cleaned = catch_unwind(AssertUnwindSafe(|| self.abandon_all())).is_ok();
        let Ward {
            k,
            shared,
            door,
            epoll,
            bell,
            ..
        } = self;
        if cleaned {
            if let Ok(mut parts) = door.parts.lock() {
                *parts = Some(WardParts { epoll, bell });
            }
        } else {
            // Counts may be off now; a successor would serve on top of that: refuse one.
            log::error!("ward {k}: could not close its connections; it will not restart");
        }
        door.vigil.died(why);
        // Stopped meanwhile (`Door::stop` saw this ward alive): nobody will serve the inbox.
        if door.is_stopped() {
            door.close_arrivals(&shared.router, &shared.stats, k);
        }
    }

    /// After a death: a waiting request gets `503` (no user code runs: `resume` may be what
    /// panicked), every socket is closed, and all `held` are uncounted.
    pub(super) fn abandon_all(&mut self) {
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            let Some(entry) = self.entries.remove(&id) else {
                continue;
            };
            let _ = epoll::delete(&self.epoll, &entry.fd);
            if let Parked::Waiting { shape, .. } = &entry.parked {
                self.scratch.clear();
                let refusal = Response::error(Status::SERVICE_UNAVAILABLE).with_close();
                // Our own 503 always encodes; an error here would only mean nothing to send.
                if encode_reply(&mut self.scratch, refusal, *shape, true).is_ok() {
                    let _ = send_now(&entry.fd, &self.scratch);
                }
            }
            // Dropping a wait runs its `Pending`'s drop, the application's code.
            if catch_unwind(AssertUnwindSafe(|| drop(entry))).is_err() {
                log::error!("ward {}: a hibernated request's drop panicked", self.k);
            }
        }
        self.deadlines.clear();
        (self.idle, self.waiting) = (0, 0);
        for _ in 0..std::mem::take(&mut self.held) {
            self.shared.stats.connection_closed(self.k);
        }
        self.publish_counts();
    }

    /// On stop: waits are answered (the drain makes it `Connection: close`), idle sockets
    /// closed, and so are arrivals that raced the stop — except an idle one whose client has
    /// sent its next request already: a coroutine answers it (with `Connection: close`), for
    /// a close with the request unread would reset the connection and lose it.
    pub(super) fn close_everything(&mut self) {
        let arrivals = match self.door.inbox.lock() {
            Ok(mut inbox) => {
                inbox.stopped = true;
                std::mem::take(&mut inbox.arrivals)
            }
            Err(_) => Vec::new(),
        };
        self.held += arrivals.len();
        for Arrival {
            fd,
            deadline,
            parked,
            served,
            process,
        } in arrivals
        {
            self.finish_at_stop(Entry {
                fd,
                deadline,
                parked,
                served,
                id: 0,
                input_pending: false,
                process,
            });
        }
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            if let Some(entry) = self.remove(id) {
                let _ = epoll::delete(&self.epoll, &entry.fd);
                self.finish_at_stop(entry);
            }
        }
    }

    fn finish_at_stop(&mut self, entry: Entry) {
        match entry.parked {
            Parked::Idle if has_input(&entry.fd) => {
                let resume = Resume::idle(entry.served).with_process(entry.process);
                self.spawn(entry.fd, resume);
            }
            Parked::WebSocket { session, .. } => {
                super::door::going_away(&entry.fd, session);
                self.close(entry.fd);
            }
            _ => self.finish_without_watch(entry),
        }
    }
}
