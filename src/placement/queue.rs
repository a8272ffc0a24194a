//! Admission and stealing of connections that have not started yet (Pauley §2.3).
//!
//! With `placement.max_active_requests = 0` (the default) every placed connection starts at
//! once. With a cap, a scheduler already running `cap` requests (in flight, or connections
//! started but not yet through their first request) does not start more: new connections
//! placed on it wait in its queue as plain accepted sockets, registered with no epoll yet.
//! Whenever a scheduler has room — a request on it finished, or the acceptor finds it idle —
//! it takes from its own queue first, else steals from the longest queue. A stolen
//! connection is started on the thief and stays there; running connections never move.

use std::net::TcpStream;

use crossbeam_deque::{Injector, Steal};

use super::{Placed, Placement, Start};

/// One queue per scheduler of accepted, not yet started connections.
pub(super) struct Queues {
    per: Box<[Injector<TcpStream>]>,
    cap: usize,
}

impl Queues {
    pub fn new(schedulers: usize, cap: usize) -> Self {
        Queues {
            per: (0..schedulers).map(|_| Injector::new()).collect(),
            cap,
        }
    }
}

impl Placement {
    /// In-flight requests per scheduler before new connections queue (0: no cap).
    pub fn max_active_requests(&self) -> usize {
        self.queues.cap
    }

    /// Starts the connection on its `k`, or queues it there if k is at its cap.
    pub fn admit(&self, placed: Placed, start: &dyn Start) {
        let (queues, k) = (&self.queues, placed.k);
        if queues.cap == 0 || (self.has_room(k) && queues.per[k].is_empty()) {
            self.start_or_log(placed, start);
            return;
        }
        let socket = placed.socket;
        queues.per[k].push(socket);
        self.stats.queue_changed(k, 1);
        // Schedulers with room run nothing that would notice the queue: steal on their behalf.
        for j in 0..queues.per.len() {
            self.fill_from_queues(j, start);
        }
    }

    /// Called on k when a request finishes: start queued work while k has room.
    pub fn on_request_done(&self, k: usize, start: &dyn Start) {
        if self.queues.cap > 0 {
            self.fill_from_queues(k, start);
        }
    }

    fn fill_from_queues(&self, k: usize, start: &dyn Start) {
        while self.has_room(k) {
            let Some((socket, from)) = self.take_for(k) else {
                return;
            };
            if from != k {
                self.stats.record_steal(k);
            }
            // Not `from` k: the caller may be a connection mid-request.
            let placed = Placed {
                socket,
                k,
                first_ns: None,
                from: None,
            };
            self.start_or_log(placed, start);
        }
    }

    fn has_room(&self, k: usize) -> bool {
        self.stats.active_on(k) < self.queues.cap
    }

    /// Own queue first, then the longest other queue.
    fn take_for(&self, k: usize) -> Option<(TcpStream, usize)> {
        let queues = &self.queues.per;
        let longest = (0..queues.len())
            .filter(|&v| v != k)
            .max_by_key(|&v| queues[v].len());
        for victim in std::iter::once(k).chain(longest) {
            loop {
                match queues[victim].steal() {
                    Steal::Success(socket) => {
                        self.stats.queue_changed(victim, -1);
                        return Some((socket, victim));
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    fn start_or_log(&self, placed: Placed, start: &dyn Start) {
        if let Err(err) = self.start_on(placed, start) {
            log::warn!("could not start a connection: {err}");
        }
    }
}
