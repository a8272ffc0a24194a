//! Placement at every wake (`placement.at_wake`): a hibernated connection owns no coroutine,
//! so when it wakes with a request it is new work, and it starts wherever placement picks
//! *now*, not always on its old scheduler (docs/architecture.md §7, "At every wake").
//!
//! Its ward calls this with the bare socket, already out of the ward's epoll set and with no
//! registration in may's (may dropped its own when the coroutine gave the socket up). That
//! matters: an epoll registration belongs to the open file description, so moving the socket
//! onto another number (a dup, then a close) while a registration remained would leave it
//! alive in that set, firing for a descriptor number that is gone.
//!
//! What counts as a wake here is the ward's to say (`conn/hibernate/ward.rs`): only an idle
//! keep-alive connection whose client sent its next request. A connection handed back with
//! pipelined input, a half-written answer or a stream, and a WebSocket, stay home.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::Placement;
use super::peek::first_route;
use super::policy::{LoadSnapshot, Policy, choose_at_wake};
use crate::router::Router;
use crate::runtime::fd::onto_residue;

/// What one ward keeps between the wakes it places: where round-robin and ties go next, and
/// the load snapshots, reused so that a wake allocates nothing here.
pub(crate) struct WakePlacer {
    rotor: usize,
    loads: Vec<LoadSnapshot>,
}

impl WakePlacer {
    /// For ward `k`: its rotor starts there, so the wards of a server do not all rotate in
    /// step.
    pub fn new(k: usize, workers: usize) -> WakePlacer {
        WakePlacer {
            rotor: k,
            loads: vec![LoadSnapshot::default(); workers],
        }
    }
}

impl Placement {
    /// Whether hibernated connections are placed again when they wake (`placement.at_wake`).
    pub fn at_wake(&self) -> bool {
        self.at_wake.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// From the next wake on, place woken connections again, or not (a reload's new value).
    pub fn set_at_wake(&self, on: bool) {
        self.at_wake.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Places a connection that woke with a request on `home`'s ward: chooses a scheduler by
    /// the policy in force, moves the socket onto a descriptor of that residue (the number is
    /// the placement, as for an accepted one), and counts it there as fresh work with its
    /// request's expected cost (the peeked route's under `cost`, else the mix's mean), its
    /// open-connection count moved along. Returns the socket and where it now belongs
    /// (`home` if it stays, or if no descriptor of the residue was free).
    pub(crate) fn place_wake(
        &self,
        fd: OwnedFd,
        home: usize,
        placer: &mut WakePlacer,
        router: &Router,
    ) -> (OwnedFd, usize) {
        let policy = self.policy();
        self.load_snapshots(&mut placer.loads);
        let number = fd.as_raw_fd() as usize;
        let k = choose_at_wake(&placer.loads, policy, &mut placer.rotor, number, home);
        let fd = if k == home {
            fd
        } else {
            onto_residue(fd, k, self.workers)
        };
        let scheduler = fd.as_raw_fd() as usize % self.workers;
        let first_ns = (policy == Policy::Cost)
            .then(|| first_route(fd.as_fd(), router))
            .flatten()
            .map(|route| self.costs.expected_ns(self.costs.slot(route)))
            .unwrap_or_else(|| self.costs.mean_ns());
        self.stats.connection_woken(home, scheduler, first_ns);
        (fd, scheduler)
    }
}
