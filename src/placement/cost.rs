//! The route-cost table: what a request of each (method, route pattern) costs its scheduler.
//!
//! **Which cost.** Placement needs the time a request *occupies its scheduler*, not its wall
//! time: a long-poll that waits 30 s costs its worker almost nothing, `/cpu?us=2000` costs
//! 2 ms. A handler's occupancy is its wall time while it runs without yielding. So each
//! handler call is timed with a `Stopwatch` that also notes whether the coroutine yielded
//! meanwhile — it resumed on another thread (may's timer thread after a timed wait, or the
//! waker's worker after a channel wait), or another coroutine ran on this thread or it
//! slept on it (`corral::sleep`): the thread's epoch moved (`runtime/epoch.rs`). An unbroken run counts its wall time; a broken one counts 0,
//! since the scheduler served others while it waited. Limitation: a handler that burns CPU
//! *and* blocks is under-counted, and one that waits on an otherwise idle scheduler is
//! over-counted (nothing else ran, so nothing broke the run) — neither skews placement much,
//! as the first is rare and the second happens only when the scheduler has nothing to do.
//!
//! **Shards.** Each scheduler writes its own shard (one allocation each, so no false sharing):
//! an EWMA of occupancy, a request count and a latency histogram per route. The placement
//! supervisor merges the shards every `merge_interval_ms` into the published table that
//! request starts read. A shard's cost figures have one writer, its scheduler (a connection
//! records after it is back home), so they are relaxed loads and stores, not locked adds:
//! should a record ever come from another thread, at worst one sample is lost, never torn.
//! The status-class and shed counters stay atomic adds: the ward answers from its own thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::router::RouteId;
use crate::runtime::epoch;
use crate::stats::Stamp;

/// Weight of the newest sample in a route's cost EWMA (~5 samples to follow a change).
pub const COST_ALPHA: f64 = 0.2;
/// Latency histogram buckets: bucket 0 is < 1 µs, bucket i is [2^(i-1), 2^i) µs; the last
/// one takes everything from ~2^30 µs (18 min) up.
pub const LATENCY_BUCKETS: usize = 32;
/// Status classes counted per route: 1xx to 5xx.
pub const STATUS_CLASSES: usize = 5;

/// Notes that a connection resumed on this thread (after a socket read): the thread's epoch
/// (`runtime/epoch.rs`) moves, and a handler timed across it did not run unbroken.
pub use crate::runtime::epoch::note_resume;

/// Times one handler call and tells whether it ran unbroken on one thread.
pub struct Stopwatch {
    started: Stamp,
    /// Address of this thread's epoch cell: identifies the thread cheaply.
    thread: usize,
    epoch: u64,
}

impl Stopwatch {
    /// Starts timing at `now`: the caller's clock reading (the connection loop reads the
    /// clock once per request and shares the reading, docs/architecture.md §3 "Per-request
    /// cost").
    #[inline(never)]
    pub fn start_at(now: Stamp) -> Stopwatch {
        note_resume();
        let (thread, epoch) = epoch::here();
        Stopwatch {
            started: now,
            thread,
            epoch,
        }
    }

    /// When the handler started (one clock read shared with the scheduler's load figure).
    pub fn started(&self) -> Stamp {
        self.started
    }

    /// Scheduler occupancy up to `now`: the elapsed time if the run was unbroken; `None` if
    /// the handler waited (the scheduler served others meanwhile), which costs it nothing.
    #[inline(never)]
    pub fn stop_at(&self, now: Stamp) -> Option<Duration> {
        let unbroken = epoch::here() == (self.thread, self.epoch);
        unbroken.then(|| now.since(self.started))
    }
}

#[derive(Default)]
struct Slot {
    /// EWMA of occupancy, ns, as f64 bits (0 = no sample yet; see `count`).
    ewma_bits: AtomicU64,
    count: AtomicU64,
    /// A request of this route waited (yielded) at least once on this scheduler.
    waited: AtomicBool,
    latency: [AtomicU64; LATENCY_BUCKETS],
    /// Σ latency, ns (a histogram's `_sum`).
    latency_sum_ns: AtomicU64,
    /// Answers by status class, 1xx … 5xx, counted by k's connections (one writer).
    classes: [AtomicU64; STATUS_CLASSES],
    /// The same, counted by k's ward from its own thread (hibernated requests' answers).
    ward_classes: [AtomicU64; STATUS_CLASSES],
    /// Requests shed by admission control (answered 503 without running).
    shed: AtomicU64,
}

/// One scheduler's figures, a slot per route plus one for unmatched requests. Aligned to two
/// cache lines (as `stats::SchedulerStats`): the shards sit side by side in one array, and
/// each scheduler writes its own `busy_ns` on every request, so unpadded, two schedulers'
/// counters shared a line and every request bounced it between their cores.
#[repr(align(128))]
struct Shard {
    slots: Box<[Slot]>,
    /// Σ occupancy of every request recorded here, ns.
    busy_ns: AtomicU64,
    /// Share of the last merge interval this scheduler spent in handlers, in millionths.
    utilisation_ppm: AtomicU64,
}

/// What `/metrics` shows of one route.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteFigures {
    pub requests: u64,
    /// Merged expected occupancy, ns (the default cost while unsampled).
    pub cost_ns: u64,
    /// Requests per latency bucket (see `LATENCY_BUCKETS`), not cumulative.
    pub latency_buckets: [u64; LATENCY_BUCKETS],
    /// Σ latency, ns.
    pub latency_sum_ns: u64,
    /// Answers by status class: `by_class[0]` is 1xx, … `by_class[4]` is 5xx.
    pub by_class: [u64; STATUS_CLASSES],
    /// Requests shed by admission control (not in `requests`, which ran their handler).
    pub shed: u64,
}

pub struct CostTable {
    shards: Box<[Shard]>,
    /// Published expected occupancy per slot, ns; `u64::MAX` = no sample yet.
    merged_ns: Box<[AtomicU64]>,
    /// Request-weighted mean cost of the recent mix, ns (`u64::MAX` = no sample yet): the
    /// expected cost of a connection whose first request is not known yet.
    mean_ns: AtomicU64,
    default_ns: u64,
}

impl CostTable {
    /// A table for `routes` routes (dense `RouteId`s) on `schedulers` schedulers.
    pub fn new(schedulers: usize, routes: usize, default_cost: Duration) -> Self {
        let slots = routes + 1;
        CostTable {
            shards: (0..schedulers)
                .map(|_| Shard {
                    slots: (0..slots).map(|_| Slot::default()).collect(),
                    busy_ns: AtomicU64::new(0),
                    utilisation_ppm: AtomicU64::new(0),
                })
                .collect(),
            merged_ns: (0..slots).map(|_| AtomicU64::new(u64::MAX)).collect(),
            mean_ns: AtomicU64::new(u64::MAX),
            default_ns: default_cost.as_nanos() as u64,
        }
    }

    /// The slot of a route; requests that matched no route share the last one.
    pub fn slot(&self, route: Option<RouteId>) -> usize {
        let unmatched = self.merged_ns.len() - 1;
        route.map_or(unmatched, |id| (id.0 as usize).min(unmatched))
    }

    pub fn slots(&self) -> usize {
        self.merged_ns.len()
    }

    /// What a request of this slot is expected to occupy its scheduler for, ns.
    pub fn expected_ns(&self, slot: usize) -> u64 {
        match self.merged_ns[slot].load(Ordering::Relaxed) {
            u64::MAX => self.default_ns,
            ns => ns,
        }
    }

    /// What a request of unknown route is expected to cost: the recent mix's mean, ns.
    pub fn mean_ns(&self) -> u64 {
        match self.mean_ns.load(Ordering::Relaxed) {
            u64::MAX => self.default_ns,
            ns => ns,
        }
    }

    /// Has scheduler `k` run requests of this slot, none of which waited, at an expected
    /// occupancy under `bound`? Then the next one is very likely quick too. Only this
    /// scheduler's own figures count: they are at hand (its shard), and fresher than the
    /// merged table.
    pub fn known_quick(&self, k: usize, slot: usize, bound: Duration) -> bool {
        let s = &self.shards[k].slots[slot];
        s.count.load(Ordering::Relaxed) > 0
            && !s.waited.load(Ordering::Relaxed)
            && f64::from_bits(s.ewma_bits.load(Ordering::Relaxed)) < bound.as_nanos() as f64
    }

    /// Notes that a request of this slot waited on scheduler `k` (see `known_quick`).
    pub fn note_waited(&self, k: usize, slot: usize) {
        let waited = &self.shards[k].slots[slot].waited;
        if !waited.load(Ordering::Relaxed) {
            waited.store(true, Ordering::Relaxed);
        }
    }

    /// Records one finished request on scheduler `k`.
    ///
    /// Only k's connections call this, on k's thread (`conn` calls it after `go_home`): each
    /// figure has one writer, so it is a plain load and store, not a locked read-modify-write
    /// (the merger and `/metrics` only read). Should a connection ever record from another
    /// thread (a hop home that failed, which is logged), the worst is one lost sample.
    pub fn record(&self, k: usize, slot: usize, occupancy: Duration, latency: Duration) {
        let shard = &self.shards[k];
        let s = &shard.slots[slot];
        let ns = occupancy.as_nanos() as u64;
        add(&shard.busy_ns, ns);
        let sample = ns as f64;
        let count = s.count.load(Ordering::Relaxed);
        s.count.store(count + 1, Ordering::Relaxed);
        let ewma = if count == 0 {
            sample
        } else {
            let old = f64::from_bits(s.ewma_bits.load(Ordering::Relaxed));
            old + COST_ALPHA * (sample - old)
        };
        s.ewma_bits.store(ewma.to_bits(), Ordering::Relaxed);
        add(&s.latency[bucket(latency)], 1);
        add(&s.latency_sum_ns, latency.as_nanos() as u64);
    }

    /// Counts an answer of `status` to a request of `slot`, on scheduler `k`'s shard, from
    /// one of k's connections on k's thread: a plain load and store (see `record`).
    pub fn count_status(&self, k: usize, slot: usize, status: u16) {
        if let Some(class) = status_class(status) {
            add(&self.shards[k].slots[slot].classes[class], 1);
        }
    }

    /// `count_status` from k's ward, on its own thread: an atomic add, to counters of its
    /// own (a locked add beside the connections' plain stores would lose their counts).
    pub fn count_ward_status(&self, k: usize, slot: usize, status: u16) {
        if let Some(class) = status_class(status) {
            self.shards[k].slots[slot].ward_classes[class].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a request of `slot` shed on scheduler `k` (it ran no handler: nothing is
    /// recorded of its cost or latency, so shedding never makes a route look cheap).
    pub fn count_shed(&self, k: usize, slot: usize) {
        self.shards[k].slots[slot]
            .shed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Merges the shards into the published table. `seen[k * slots + r]` holds the counts
    /// of the previous merge: each shard's EWMA weighs by how many requests it saw since.
    pub fn merge(&self, seen: &mut Vec<u64>) {
        let slots = self.slots();
        seen.resize(self.shards.len() * slots, 0);
        let (mut mix_weight, mut mix_sum) = (0u64, 0f64);
        for r in 0..slots {
            let (mut weight, mut sum) = (0u64, 0f64);
            for (k, shard) in self.shards.iter().enumerate() {
                let slot = &shard.slots[r];
                let count = slot.count.load(Ordering::Relaxed);
                let fresh = count.saturating_sub(seen[k * slots + r]);
                seen[k * slots + r] = count;
                if fresh > 0 {
                    weight += fresh;
                    sum += fresh as f64 * f64::from_bits(slot.ewma_bits.load(Ordering::Relaxed));
                }
            }
            if weight > 0 {
                let merged = (sum / weight as f64).round() as u64;
                self.merged_ns[r].store(merged.min(u64::MAX - 1), Ordering::Relaxed);
                mix_weight += weight;
                mix_sum += sum;
            }
        }
        if mix_weight > 0 {
            let mean = (mix_sum / mix_weight as f64).round() as u64;
            self.mean_ns
                .store(mean.min(u64::MAX - 1), Ordering::Relaxed);
        }
    }

    /// Publishes each scheduler's utilisation over the `elapsed` since the previous call;
    /// `busy_seen[k]` holds the busy total then.
    pub fn publish_utilisation(&self, busy_seen: &mut Vec<u64>, elapsed: Duration) {
        busy_seen.resize(self.shards.len(), 0);
        let window = elapsed.as_nanos().max(1) as f64;
        for (shard, seen) in self.shards.iter().zip(busy_seen.iter_mut()) {
            let busy = shard.busy_ns.load(Ordering::Relaxed);
            let share = busy.saturating_sub(*seen) as f64 / window;
            *seen = busy;
            let ppm = (share.min(1.0) * 1e6).round() as u64;
            shard.utilisation_ppm.store(ppm, Ordering::Relaxed);
        }
    }

    /// Share of recent wall time scheduler k spent running handlers, 0..=1.
    pub fn utilisation(&self, k: usize) -> f64 {
        self.shards[k].utilisation_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Requests, merged cost and latency quantiles of one slot, over all schedulers.
    pub fn figures(&self, slot: usize) -> RouteFigures {
        let mut buckets = [0u64; LATENCY_BUCKETS];
        let mut by_class = [0u64; STATUS_CLASSES];
        let (mut requests, mut sum_ns, mut shed) = (0, 0u64, 0);
        for shard in self.shards.iter() {
            let s = &shard.slots[slot];
            requests += s.count.load(Ordering::Relaxed);
            shed += s.shed.load(Ordering::Relaxed);
            for ((total, c), w) in by_class.iter_mut().zip(&s.classes).zip(&s.ward_classes) {
                *total += c.load(Ordering::Relaxed) + w.load(Ordering::Relaxed);
            }
            sum_ns = sum_ns.wrapping_add(s.latency_sum_ns.load(Ordering::Relaxed));
            for (total, b) in buckets.iter_mut().zip(&s.latency) {
                *total += b.load(Ordering::Relaxed);
            }
        }
        RouteFigures {
            requests,
            cost_ns: self.expected_ns(slot),
            latency_buckets: buckets,
            latency_sum_ns: sum_ns,
            by_class,
            shed,
        }
    }
}

/// Adds to a counter that has one writer (see `CostTable::record`): no locked instruction.
fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// The index of `status`'s class in `classes` (1xx → 0), if it has one of the five.
fn status_class(status: u16) -> Option<usize> {
    (status / 100)
        .checked_sub(1)
        .map(usize::from)
        .filter(|&class| class < STATUS_CLASSES)
}

fn bucket(latency: Duration) -> usize {
    let us = latency.as_micros() as u64;
    ((u64::BITS - us.leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn answers_count_by_class_from_the_loop_and_the_ward_alike() {
        let t = CostTable::new(2, 2, us(50));
        t.count_status(0, 1, 200);
        t.count_status(1, 1, 204);
        t.count_ward_status(0, 1, 200);
        t.count_ward_status(1, 1, 503);
        t.count_status(0, 1, 99); // not a status class: not counted
        t.count_ward_status(0, 1, 600);
        assert_eq!(t.figures(1).by_class, [0, 3, 0, 0, 1]);
        assert_eq!(t.figures(0).by_class, [0; STATUS_CLASSES]);
    }

    #[test]
    fn unsampled_routes_cost_the_default() {
        let t = CostTable::new(2, 3, us(50));
        assert_eq!(t.expected_ns(t.slot(Some(RouteId(1)))), 50_000);
        assert_eq!(t.slot(None), 3);
    }

    #[test]
    fn ewma_follows_a_change_and_merge_weighs_by_fresh_samples() {
        let t = CostTable::new(2, 1, us(50));
        let mut seen = Vec::new();
        for _ in 0..10 {
            t.record(0, 0, us(1000), us(1000));
        }
        t.merge(&mut seen);
        assert_eq!(t.expected_ns(0), 1_000_000);
        // Scheduler 1 now sees a cheaper route; after enough samples the EWMA follows.
        for _ in 0..30 {
            t.record(1, 0, us(100), us(100));
        }
        t.merge(&mut seen);
        let merged = t.expected_ns(0);
        assert!((99_000..=101_000).contains(&merged), "{merged}");
        // No fresh samples: the published figure stays.
        t.merge(&mut seen);
        assert_eq!(t.expected_ns(0), merged);
    }

    #[test]
    fn the_mean_cost_follows_the_request_mix() {
        let t = CostTable::new(1, 2, us(50));
        assert_eq!(t.mean_ns(), 50_000, "the default before any sample");
        let mut seen = Vec::new();
        for _ in 0..9 {
            t.record(0, 0, us(10), us(10));
        }
        t.record(0, 1, us(2000), us(2000));
        t.merge(&mut seen);
        // 90% at 10 µs and 10% at 2 ms.
        assert_eq!(t.mean_ns(), 209_000);
    }

    #[test]
    fn utilisation_is_the_busy_share_of_each_interval() {
        let t = CostTable::new(2, 1, us(50));
        let mut seen = Vec::new();
        for _ in 0..10 {
            t.record(0, 0, us(2000), us(2000));
        }
        t.record(1, 0, us(1000), us(1000));
        t.publish_utilisation(&mut seen, Duration::from_millis(40));
        assert_eq!((t.utilisation(0), t.utilisation(1)), (0.5, 0.025));
        // Only what happened since the previous call counts.
        t.record(1, 0, us(4000), us(4000));
        t.publish_utilisation(&mut seen, Duration::from_millis(40));
        assert_eq!((t.utilisation(0), t.utilisation(1)), (0.0, 0.1));
    }

    #[test]
    fn latencies_fill_power_of_two_buckets_and_the_sum() {
        let t = CostTable::new(1, 1, us(50));
        for _ in 0..990 {
            t.record(0, 0, us(1), us(3)); // bucket [2,4)
        }
        for _ in 0..10 {
            t.record(0, 0, us(1), us(3000)); // bucket [2048,4096)
        }
        let f = t.figures(0);
        assert_eq!(f.requests, 1000);
        assert_eq!((f.latency_buckets[2], f.latency_buckets[12]), (990, 10));
        assert_eq!(f.latency_buckets.iter().sum::<u64>(), 1000);
        assert_eq!(f.latency_sum_ns, 990 * 3_000 + 10 * 3_000_000);
    }

    #[test]
    fn a_run_interrupted_by_other_work_waited() {
        let watch = Stopwatch::start_at(Stamp::now());
        assert!(watch.stop_at(Stamp::now()).is_some());
        let start = Stamp::now();
        let unbroken = Stopwatch::start_at(start);
        let two_ms_later = start.after(Duration::from_millis(2));
        assert_eq!(
            unbroken.stop_at(two_ms_later),
            Some(Duration::from_millis(2))
        );
        let broken = Stopwatch::start_at(Stamp::now());
        note_resume(); // another connection resumed on this thread meanwhile
        assert_eq!(broken.stop_at(Stamp::now()), None);
        let moved = Stopwatch::start_at(Stamp::now());
        let elsewhere = std::thread::spawn(move || moved.stop_at(Stamp::now()));
        assert_eq!(elsewhere.join().expect("thread"), None);
    }

    #[test]
    fn a_route_is_known_quick_once_seen_cheap_and_never_waiting() {
        let t = CostTable::new(2, 2, us(50));
        let bound = us(100);
        assert!(!t.known_quick(0, 0, bound), "never seen");
        t.record(0, 0, us(3), us(3));
        assert!(t.known_quick(0, 0, bound));
        assert!(
            !t.known_quick(1, 0, bound),
            "seen on another scheduler only"
        );
        t.record(0, 1, us(500), us(500));
        assert!(!t.known_quick(0, 1, bound), "expected to run long");
        t.note_waited(0, 0);
        t.record(0, 0, us(0), us(300));
        assert!(!t.known_quick(0, 0, bound), "waited once");
    }
}
