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
use std::sync::Arc;

use crossbeam_deque::{Injector, Steal};

use super::spawn::start_connection;
use crate::server::Shared;

/// One queue per scheduler of accepted, not yet started connections.
pub struct Queues {
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

/// Starts `socket` on `k`, or queues it there if k is at its cap. `first_ns`: the expected
/// cost of its first request, if the acceptor saw it (a queued socket forgets it).
pub fn admit(shared: &Arc<Shared>, socket: TcpStream, k: usize, first_ns: Option<u64>) {
    let queues = &shared.queues;
    if queues.cap == 0 || (has_room(shared, k) && queues.per[k].is_empty()) {
        start(shared, socket, k, first_ns);
        return;
    }
    queues.per[k].push(socket);
    shared.stats.queue_changed(k, 1);
    // Schedulers with room run nothing that would notice the queue: steal on their behalf.
    for j in 0..queues.per.len() {
        fill_from_queues(shared, j);
    }
}

/// Called on k when a request finishes: start queued work while k has room.
pub fn on_request_done(shared: &Arc<Shared>, k: usize) {
    if shared.queues.cap > 0 {
        fill_from_queues(shared, k);
    }
}

fn fill_from_queues(shared: &Arc<Shared>, k: usize) {
    while has_room(shared, k) {
        let Some((socket, from)) = take_for(shared, k) else {
            return;
        };
        if from != k {
            shared.stats.record_steal(k);
        }
        start(shared, socket, k, None);
    }
}

fn has_room(shared: &Shared, k: usize) -> bool {
    shared.stats.active_on(k) < shared.queues.cap
}

/// Own queue first, then the longest other queue.
fn take_for(shared: &Shared, k: usize) -> Option<(TcpStream, usize)> {
    let queues = &shared.queues.per;
    let longest = (0..queues.len())
        .filter(|&v| v != k)
        .max_by_key(|&v| queues[v].len());
    for victim in std::iter::once(k).chain(longest) {
        loop {
            match queues[victim].steal() {
                Steal::Success(socket) => {
                    shared.stats.queue_changed(victim, -1);
                    return Some((socket, victim));
                }
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
    }
    None
}

fn start(shared: &Arc<Shared>, socket: TcpStream, k: usize, first_ns: Option<u64>) {
    if let Err(err) = start_connection(shared, socket, k, first_ns) {
        log::warn!("could not start a connection: {err}");
    }
}
