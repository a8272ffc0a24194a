//! Live counters per scheduler. Each scheduler writes its own cache line, so the counters
//! cost an uncontended atomic add on the hot path; readers (metrics, drain) sum them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Default)]
#[repr(align(128))]
struct SchedulerStats {
    connections: AtomicUsize,
    inflight: AtomicUsize,
    requests: AtomicU64,
    panics: AtomicU64,
}

pub struct Stats {
    schedulers: Box<[SchedulerStats]>,
}

/// Decrements the scheduler's in-flight count when the request is done.
pub struct InflightGuard<'a>(&'a SchedulerStats);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Release);
    }
}

/// Decrements the scheduler's open-connection count when the connection ends.
pub struct ConnectionGuard<'a>(&'a SchedulerStats);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    pub fn new(schedulers: usize) -> Self {
        Stats {
            schedulers: (0..schedulers).map(|_| SchedulerStats::default()).collect(),
        }
    }

    pub fn schedulers(&self) -> usize {
        self.schedulers.len()
    }

    pub fn start_request(&self, scheduler: usize) -> InflightGuard<'_> {
        let s = &self.schedulers[scheduler];
        s.requests.fetch_add(1, Ordering::Relaxed);
        s.inflight.fetch_add(1, Ordering::Acquire);
        InflightGuard(s)
    }

    pub fn open_connection(&self, scheduler: usize) -> ConnectionGuard<'_> {
        let s = &self.schedulers[scheduler];
        s.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(s)
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
