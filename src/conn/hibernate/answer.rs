//! A ward answering a finished wait: the resume function's response, written with one
//! non-blocking send when it fits the socket buffer, else handed to a coroutine.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

use rustix::event::epoll;
use rustix::net::SendFlags;

use super::door::Parked;
use super::ward::{Entry, Ward};
use crate::conn::dispatch::{RouteName, panic_message};
use crate::conn::resume::{First, Resume};
use crate::conn::transport::deadline_in;
use crate::conn::wait::Outcome;
use crate::conn::write::{count_ward_answer, encode_or_refuse};
use crate::http::response::Response;
use crate::http::status::Status;

impl Ward {
    /// Finishes a wait: runs its resume function and writes the response, without a
    /// coroutine when it fits the socket buffer. The socket is no longer in `entries`.
    pub(super) fn answer(&mut self, entry: Entry, outcome: Outcome) {
        let ended = entry.is_ended();
        let Entry {
            fd,
            parked,
            served,
            id,
            input_pending,
            process,
            ..
        } = entry;
        let Parked::Waiting {
            pending,
            shape,
            route,
            leftover,
            ..
        } = parked
        else {
            return self.close(fd);
        };
        let (route_id, route) = (route, RouteName(&self.shared.router, route));
        // A process ended under the wait (a kill, a linked crash): clean up, answer 503.
        let outcome = if ended { Outcome::PeerGone } else { outcome };
        let finished = catch_unwind(AssertUnwindSafe(|| {
            pending.finish(outcome, process.as_deref())
        }));
        let mut response = match finished {
            Ok(_) if ended => Response::error(Status::SERVICE_UNAVAILABLE).with_close(),
            Ok(Some(response)) => response,
            Ok(None) => return self.close(fd),
            Err(panic) => {
                self.shared.stats.record_panic(self.k);
                let why = panic_message(&panic);
                log::error!("resume of {route} (hibernated) panicked: {why}");
                Response::error(Status::INTERNAL_SERVER_ERROR).with_close()
            }
        };
        self.scratch.clear();
        let draining = self.shared.is_draining();
        let encoded = encode_or_refuse(&mut self.scratch, &mut response, shape, draining, route);
        count_ward_answer(&self.shared, self.k, route_id, encoded.status);
        let keep_alive = encoded.keep_alive;
        if let Some((stream, chunked)) = encoded.stream {
            let _ = epoll::delete(&self.epoll, &fd);
            let head = std::mem::take(&mut self.scratch);
            let first = First::Stream {
                head,
                stream,
                chunked,
                keep_alive,
            };
            let resume = Resume::after_wait(served, leftover, first).with_process(process);
            return self.spawn(fd, resume);
        }
        match send_now(&fd, &self.scratch) {
            Err(err) => {
                log::debug!("ward {}: answer not sent: {err}", self.k);
                self.close(fd);
            }
            Ok(sent) if sent < self.scratch.len() => {
                let _ = epoll::delete(&self.epoll, &fd);
                let first = First::Bytes {
                    bytes: self.scratch[sent..].to_vec(),
                    keep_alive,
                };
                let resume = Resume::after_wait(served, leftover, first).with_process(process);
                self.spawn(fd, resume);
            }
            Ok(_) if !keep_alive => self.close(fd),
            Ok(_) if !leftover.is_empty() || input_pending => {
                let _ = epoll::delete(&self.epoll, &fd);
                self.spawn(
                    fd,
                    Resume::pipelined(served, leftover).with_process(process),
                );
            }
            // Answered: the connection stays here, now idle, under the same registration.
            Ok(_) => {
                let deadline = deadline_in(self.cfg().timeouts.idle());
                let entry = Entry {
                    fd,
                    deadline,
                    parked: Parked::Idle,
                    served,
                    id,
                    input_pending: false,
                    process,
                };
                self.arm_idle(&entry);
                self.insert(id, entry);
            }
        }
    }
}

/// One non-blocking send; `Ok(n)` may be short (0 when the buffer is full).
pub(super) fn send_now(fd: &OwnedFd, bytes: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < bytes.len() {
        match rustix::net::send(
            fd.as_fd(),
            &bytes[sent..],
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        ) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(rustix::io::Errno::AGAIN) => break,
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(sent)
}
