//! The server's live state: counters per scheduler, and whether it is draining. Each
//! scheduler writes its own cache line, so the counters cost an uncontended atomic add on the
//! hot path; readers (metrics, placement, drain) sum them. A leaf: it imports no other module.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal};

/// A reading of the monotonic clock (`CLOCK_MONOTONIC`, the clock `Instant` reads), in ns:
/// what the connection loop times its requests with, and the clock of `running_since_ns`.
/// Its differences are integer subtractions, where each between two `Instant`s cost ~37
/// instructions, three per request (docs/architecture.md §3, "Per-request cost").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(u64);

impl Stamp {
    /// Now. Through glibc's vDSO call, as `Instant::now` is (and as `http/date.rs` reads its
    /// clock: valgrind's loader breaks rustix's own vDSO parser).
    #[allow(unsafe_code)]
    pub fn now() -> Stamp {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec; the call writes nothing else.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        match (rc, u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) {
            (0, Ok(secs), Ok(nanos)) => Stamp(secs.wrapping_mul(1_000_000_000).wrapping_add(nanos)),
            // Not on Linux's clock ids: the std clock, from the first reading on.
            _ => {
                static BASE: OnceLock<Instant> = OnceLock::new();
                Stamp(BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64)
            }
        }
    }

    /// The time from `earlier` to this reading; zero if `earlier` is later.
    pub fn since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// The time since this reading.
    pub fn elapsed(self) -> Duration {
        Stamp::now().since(self)
    }

    /// This reading moved on by `d` (saturating).
    #[cfg(test)]
    pub fn after(self, d: Duration) -> Stamp {
        Stamp(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

#[derive(Default)]
#[repr(align(128))]
struct SchedulerStats {
    connections: AtomicUsize,
    inflight: AtomicUsize,
    requests: AtomicU64,
    panics: AtomicU64,
    /// Σ expected cost of in-flight requests, ns (placement's load figure, Pauley §2.3).
    expected_ns: AtomicU64,
    /// Accepted connections waiting in this scheduler's queue, not yet started.
    queued: AtomicUsize,
    /// Started connections that have not yet parsed their first request.
    fresh: AtomicUsize,
    /// Σ expected cost of those connections' first requests, ns.
    fresh_ns: AtomicU64,
    /// Queued connections this scheduler took from another's queue.
    steals: AtomicU64,
    /// When the handler running on this scheduler started, a `Stamp`'s ns (0: none
    /// running). Placement reads it to tell a scheduler about to finish a costly handler
    /// from one that has just begun, and how long requests have been piling up behind it.
    running_since_ns: AtomicU64,
    /// The expected cost of that handler, ns.
    running_cost_ns: AtomicU64,
    /// Its route's cost-table slot (for the watchdog's log line).
    running_slot: AtomicU64,
    /// Handlers the watchdog found stuck on this scheduler.
    stalls: AtomicU64,
}

pub struct Stats {
    schedulers: Box<[SchedulerStats]>,
    /// Per scheduler, the expected first-request cost of each fresh connection, in placement
    /// order: a connection starting takes the oldest off `fresh_ns`. Connections start
    /// roughly in the order they were placed, and each adds and takes one figure, so a
    /// mismatch moves cost between fresh connections but never leaks it.
    fresh_costs: Box<[Injector<u64>]>,
    /// Connections placed (by the acceptor), and those whose first request line it saw.
    placed: AtomicU64,
    placed_seen: AtomicU64,
    /// Hibernated connections placed again as they woke (`placement.at_wake`), and of
    /// them those that changed scheduler. Written by the ward threads.
    wakes_placed: AtomicU64,
    wakes_moved: AtomicU64,
    /// New connections refused at `limits.max_connections` (rare: one shared counter).
    connections_shed: AtomicU64,
    /// Times the acceptor paused because accept ran out of descriptors (or memory).
    accept_pauses: AtomicU64,
    /// Set once the server stops accepting: answers say `Connection: close` from then on.
    draining: AtomicBool,
}

/// The handler a scheduler is running, as placement sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Running {
    /// How long it has run so far, ns.
    pub elapsed_ns: u64,
    /// What it was expected to cost in all, ns.
    pub cost_ns: u64,
}

/// The handler record of a scheduler, as the watchdog sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningRecord {
    /// When the handler started, ns on the stats clock: the same value for the same run.
    pub since_ns: u64,
    /// How long it has run so far, ns.
    pub elapsed_ns: u64,
    /// Its route's cost-table slot.
    pub slot: usize,
}

// `requests`, `inflight` and `expected_ns` of scheduler k are written only by k's own
// connections, on k's thread (a handler that was resumed elsewhere goes home first,
// `runtime/home.rs`), and coroutines switch only where they block: a load and a store
// cannot interleave with another writer, so they need no locked instruction (five a request
// were ~90 cycles; docs/architecture.md §3). Readers on other threads see each value whole.
fn own_add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

fn own_sub(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_sub(n),
        Ordering::Relaxed,
    );
}

/// `own_add` for the in-flight count, by ±1 (Release: placement's readers use Acquire).
fn own_step(counter: &AtomicUsize, delta: isize) {
    let now = counter.load(Ordering::Relaxed).wrapping_add_signed(delta);
    counter.store(now, Ordering::Release);
}

/// Decrements the scheduler's in-flight count when the request is done; knows the
/// request's ordinal on its scheduler (for request ids).
pub struct InflightGuard<'a>(&'a SchedulerStats, u64);

impl InflightGuard<'_> {
    /// How many requests this scheduler started before this one.
    pub fn ordinal(&self) -> u64 {
        self.1
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        own_step(&self.0.inflight, -1);
    }
}

/// Takes a request's expected cost back off its scheduler's load when the request is done.
pub struct LoadGuard<'a>(&'a SchedulerStats, u64);

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        // The coroutine dropping this is the one running on the scheduler, so from here no
        // handler runs there: clear the record even if it was written by another handler
        // that started while this one was suspended (that one is suspended now).
        self.0.running_since_ns.store(0, Ordering::Relaxed);
        own_sub(&self.0.expected_ns, self.1);
    }
}

/// Decrements the scheduler's open-connection count when the connection ends.
pub struct ConnectionGuard<'a>(&'a SchedulerStats);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionGuard<'_> {
    /// The connection outlives its coroutine (it hibernated): keep it counted. Whoever
    /// closes it later calls `Stats::connection_closed`.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Stats {
    pub fn new(schedulers: usize) -> Self {
        Stats {
            schedulers: (0..schedulers).map(|_| SchedulerStats::default()).collect(),
            fresh_costs: (0..schedulers).map(|_| Injector::new()).collect(),
            placed: AtomicU64::new(0),
            placed_seen: AtomicU64::new(0),
            wakes_placed: AtomicU64::new(0),
            wakes_moved: AtomicU64::new(0),
            connections_shed: AtomicU64::new(0),
            accept_pauses: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        }
    }

    /// Whether the server has begun its graceful shutdown.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Now on the `running_since_ns` clock; never 0, which means "none running".
    fn now_ns(&self) -> u64 {
        Stamp::now().0.max(1)
    }

    pub fn schedulers(&self) -> usize {
        self.schedulers.len()
    }

    pub fn start_request(&self, scheduler: usize) -> InflightGuard<'_> {
        let s = &self.schedulers[scheduler];
        let ordinal = s.requests.load(Ordering::Relaxed);
        s.requests.store(ordinal + 1, Ordering::Relaxed);
        own_step(&s.inflight, 1);
        InflightGuard(s, ordinal)
    }

    /// Counted at placement, before the coroutine runs, so a burst of accepts sees it;
    /// `first_ns` is what its first request is expected to cost.
    pub fn connection_placed(&self, scheduler: usize, first_ns: u64) {
        self.schedulers[scheduler]
            .connections
            .fetch_add(1, Ordering::Relaxed);
        self.enter_fresh(scheduler, first_ns);
    }

    /// A hibernated connection woke with a request and was placed again
    /// (`placement.at_wake`): it is new work, so until that request is parsed it counts on
    /// `to` as a fresh connection whose first request costs `first_ns`, as an accepted one
    /// does; if it moved, its open-connection count moves from `from` to `to` with it.
    pub fn connection_woken(&self, from: usize, to: usize, first_ns: u64) {
        self.wakes_placed.fetch_add(1, Ordering::Relaxed);
        if from != to {
            self.wakes_moved.fetch_add(1, Ordering::Relaxed);
            self.schedulers[from]
                .connections
                .fetch_sub(1, Ordering::Relaxed);
            self.schedulers[to]
                .connections
                .fetch_add(1, Ordering::Relaxed);
        }
        self.enter_fresh(to, first_ns);
    }

    /// (wakes placed again, of which moved to another scheduler), so far.
    pub fn wake_placements(&self) -> (u64, u64) {
        (
            self.wakes_placed.load(Ordering::Relaxed),
            self.wakes_moved.load(Ordering::Relaxed),
        )
    }

    fn enter_fresh(&self, scheduler: usize, first_ns: u64) {
        let s = &self.schedulers[scheduler];
        s.fresh.fetch_add(1, Ordering::Relaxed);
        s.fresh_ns.fetch_add(first_ns, Ordering::Relaxed);
        self.fresh_costs[scheduler].push(first_ns);
    }

    /// The acceptor placed a connection, knowing its first route or not.
    pub fn record_placement(&self, route_seen: bool) {
        self.placed.fetch_add(1, Ordering::Relaxed);
        if route_seen {
            self.placed_seen.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The acceptor refused a connection: `limits.max_connections` were open.
    pub fn record_connection_shed(&self) {
        self.connections_shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused at `limits.max_connections` so far.
    pub fn connections_shed(&self) -> u64 {
        self.connections_shed.load(Ordering::Relaxed)
    }

    /// The acceptor paused: accept failed for want of descriptors or memory.
    pub fn record_accept_pause(&self) {
        self.accept_pauses.fetch_add(1, Ordering::Relaxed);
    }

    /// Pauses of the acceptor for want of descriptors so far.
    pub fn accept_pauses(&self) -> u64 {
        self.accept_pauses.load(Ordering::Relaxed)
    }

    /// (connections the acceptor placed, of which with their first route seen).
    pub fn placements(&self) -> (u64, u64) {
        (
            self.placed.load(Ordering::Relaxed),
            self.placed_seen.load(Ordering::Relaxed),
        )
    }

    /// The spawn failed: undo `connection_placed`.
    pub fn connection_failed(&self, scheduler: usize) {
        let s = &self.schedulers[scheduler];
        s.connections.fetch_sub(1, Ordering::Relaxed);
        self.leave_fresh(scheduler);
    }

    /// Inside the connection's coroutine: the guard uncounts it when the connection ends.
    pub fn adopt_connection(&self, scheduler: usize) -> ConnectionGuard<'_> {
        ConnectionGuard(&self.schedulers[scheduler])
    }

    /// A hibernated connection (one without a coroutine) was closed.
    pub fn connection_closed(&self, scheduler: usize) {
        self.schedulers[scheduler]
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// The connection parsed its first request (or ended before): no longer fresh.
    pub fn connection_started(&self, scheduler: usize) {
        self.leave_fresh(scheduler);
    }

    fn leave_fresh(&self, scheduler: usize) {
        let s = &self.schedulers[scheduler];
        s.fresh.fetch_sub(1, Ordering::Relaxed);
        let cost = loop {
            match self.fresh_costs[scheduler].steal() {
                Steal::Success(cost) => break cost,
                Steal::Empty => break 0,
                Steal::Retry => continue,
            }
        };
        s.fresh_ns.fetch_sub(cost, Ordering::Relaxed);
    }

    /// Σ expected first-request cost of the connections counted by `fresh_on`, ns.
    pub fn fresh_ns(&self, scheduler: usize) -> u64 {
        self.schedulers[scheduler].fresh_ns.load(Ordering::Relaxed)
    }

    /// Started connections whose first request has not been parsed yet.
    #[cfg(test)]
    pub fn fresh_on(&self, scheduler: usize) -> usize {
        self.schedulers[scheduler].fresh.load(Ordering::Relaxed)
    }

    /// Requests in flight plus fresh connections: what the admission cap counts.
    pub fn active_on(&self, scheduler: usize) -> usize {
        let s = &self.schedulers[scheduler];
        s.inflight.load(Ordering::Acquire) + s.fresh.load(Ordering::Relaxed)
    }

    /// Adds a request's expected cost to its scheduler's load until the guard drops, and
    /// notes that its handler starts running now. Called right before the handler.
    /// `started`: when the handler began (the caller's stopwatch reading, not a second one).
    /// `slot`: the route's cost-table slot.
    pub fn expect_load(
        &self,
        scheduler: usize,
        cost_ns: u64,
        started: Stamp,
        slot: usize,
    ) -> LoadGuard<'_> {
        let s = &self.schedulers[scheduler];
        own_add(&s.expected_ns, cost_ns);
        s.running_cost_ns.store(cost_ns, Ordering::Relaxed);
        s.running_slot.store(slot as u64, Ordering::Relaxed);
        // 0 means "nothing running".
        s.running_since_ns
            .store(started.0.max(1), Ordering::Relaxed);
        LoadGuard(s, cost_ns)
    }

    /// The handler scheduler k is running now, if any. A reader racing a handler's start may
    /// pair its start time with the previous handler's cost: an estimate, not a ledger.
    pub fn running(&self, scheduler: usize) -> Option<Running> {
        let s = &self.schedulers[scheduler];
        let since = s.running_since_ns.load(Ordering::Relaxed);
        if since == 0 {
            return None;
        }
        Some(Running {
            elapsed_ns: self.now_ns().saturating_sub(since),
            cost_ns: s.running_cost_ns.load(Ordering::Relaxed),
        })
    }

    /// The handler scheduler k is running now, with its route, if any (the watchdog's view;
    /// the same racy estimate as `running`).
    pub fn running_record(&self, scheduler: usize) -> Option<RunningRecord> {
        let s = &self.schedulers[scheduler];
        let since_ns = s.running_since_ns.load(Ordering::Relaxed);
        if since_ns == 0 {
            return None;
        }
        Some(RunningRecord {
            since_ns,
            elapsed_ns: self.now_ns().saturating_sub(since_ns),
            slot: s.running_slot.load(Ordering::Relaxed) as usize,
        })
    }

    /// The watchdog found a handler stuck on scheduler k.
    pub fn record_stall(&self, scheduler: usize) {
        self.schedulers[scheduler]
            .stalls
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Stuck handlers the watchdog found on scheduler k so far.
    pub fn stalls(&self, scheduler: usize) -> u64 {
        self.schedulers[scheduler].stalls.load(Ordering::Relaxed)
    }

    pub fn expected_ns(&self, scheduler: usize) -> u64 {
        self.schedulers[scheduler]
            .expected_ns
            .load(Ordering::Relaxed)
    }

    pub fn inflight_on(&self, scheduler: usize) -> usize {
        self.schedulers[scheduler].inflight.load(Ordering::Acquire)
    }

    pub fn queue_changed(&self, scheduler: usize, delta: isize) {
        let q = &self.schedulers[scheduler].queued;
        if delta >= 0 {
            q.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            q.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    pub fn queued(&self, scheduler: usize) -> usize {
        self.schedulers[scheduler].queued.load(Ordering::Relaxed)
    }

    pub fn record_steal(&self, thief: usize) {
        self.schedulers[thief]
            .steals
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn steals(&self, scheduler: usize) -> u64 {
        self.schedulers[scheduler].steals.load(Ordering::Relaxed)
    }

    pub fn record_panic(&self, scheduler: usize) {
        self.schedulers[scheduler]
            .panics
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn inflight(&self) -> usize {
        self.sum(|s| s.inflight.load(Ordering::Acquire) as u64) as usize
    }

    pub fn connections(&self, scheduler: usize) -> usize {
        self.schedulers[scheduler]
            .connections
            .load(Ordering::Relaxed)
    }

    pub fn requests(&self, scheduler: usize) -> u64 {
        self.schedulers[scheduler].requests.load(Ordering::Relaxed)
    }

    pub fn panics(&self) -> u64 {
        self.sum(|s| s.panics.load(Ordering::Relaxed))
    }

    fn sum(&self, f: impl Fn(&SchedulerStats) -> u64) -> u64 {
        self.schedulers.iter().map(f).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_connections_carry_their_first_request_cost_until_they_start() {
        let stats = Stats::new(2);
        stats.connection_placed(0, 2_000_000);
        stats.connection_placed(0, 50_000);
        stats.connection_placed(1, 7);
        assert_eq!((stats.fresh_ns(0), stats.fresh_ns(1)), (2_050_000, 7));
        stats.connection_started(0);
        assert_eq!(stats.fresh_ns(0), 50_000, "the oldest leaves first");
        stats.connection_failed(0);
        assert_eq!((stats.fresh_on(0), stats.fresh_ns(0)), (0, 0));
        assert_eq!(stats.connections(0), 1);
    }

    #[test]
    fn a_woken_connection_is_fresh_where_placed_and_its_count_moves_with_it() {
        let stats = Stats::new(2);
        stats.connection_placed(0, 10);
        stats.connection_started(0);
        // Woken at home: counted fresh there, still one connection there.
        stats.connection_woken(0, 0, 20);
        assert_eq!(
            (stats.connections(0), stats.fresh_on(0), stats.fresh_ns(0)),
            (1, 1, 20)
        );
        stats.connection_started(0);
        // Woken and moved: the count goes along, and the request's cost counts on 1.
        stats.connection_woken(0, 1, 30);
        assert_eq!((stats.connections(0), stats.connections(1)), (0, 1));
        assert_eq!(
            (stats.fresh_on(0), stats.fresh_on(1), stats.fresh_ns(1)),
            (0, 1, 30)
        );
        assert_eq!(stats.wake_placements(), (2, 1));
        // Its spawn failed: nothing is left counted anywhere.
        stats.connection_failed(1);
        assert_eq!(
            (stats.connections(1), stats.fresh_on(1), stats.fresh_ns(1)),
            (0, 0, 0)
        );
    }

    #[test]
    fn the_running_handler_is_recorded_until_its_guard_drops() {
        let stats = Stats::new(1);
        assert_eq!(stats.running(0), None);
        let guard = stats.expect_load(0, 2_000_000, Stamp::now(), 3);
        let run = stats.running(0).expect("a handler runs");
        assert_eq!(run.cost_ns, 2_000_000);
        assert!(run.elapsed_ns < 1_000_000_000);
        let record = stats.running_record(0).expect("a handler runs");
        assert_eq!(record.slot, 3);
        drop(guard);
        assert_eq!(stats.running_record(0), None);
        assert_eq!(stats.running(0), None);
        assert_eq!(stats.expected_ns(0), 0);
    }
}
