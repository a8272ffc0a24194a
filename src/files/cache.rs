//! Small files held in memory, one shard per scheduler (as nginx's `open_file_cache` is
//! one per worker): a hit takes its scheduler's own lock, uncontended, and shares the bytes
//! (`Arc`). The byte budget is per shard, so a server holds at most budget × schedulers
//! (a shared budget would let the first scheduler to fill it starve the others).
//!
//! A shard's lock is only ever *tried*: a scheduler never waits for it. The lock can be
//! busy only when a coroutine resumed from the offload pool on another worker inserts into
//! this shard at that moment; the request then goes the miss path (the offload pool).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::headers::FileHeaders;
use super::open::FileId;
use crate::http::conditional::Validators;

/// Shards: scheduler `k` uses shard `k % SHARDS`. More schedulers than this share shards
/// (each shard is 128 bytes until it holds something).
const SHARDS: usize = 64;

/// What an entry costs beyond its bytes and key: the map slot, the `Arc`s, the validators'
/// strings (an estimate; it keeps a budget honest for many tiny files).
const ENTRY_OVERHEAD: usize = 256;

/// A full cache evicts until this share of the budget (in 1/16) is left in use, so that a
/// run of misses does not scan the shard once per insert.
const EVICT_TO_SIXTEENTHS: usize = 14;

/// One file as the cache holds it: the bytes and everything its answers need.
#[derive(Debug)]
pub(super) struct CachedFile {
    pub bytes: Arc<[u8]>,
    pub id: FileId,
    pub validators: Validators,
    pub headers: FileHeaders,
    pub content_type: &'static str,
}

/// What a lookup found.
pub(super) enum Lookup {
    /// Checked less than the revalidation interval ago: serve it.
    Fresh(Arc<CachedFile>),
    /// Due for a look at the disk. This caller does it; others meanwhile see it `Fresh`
    /// (its check time was moved to now), so a file is looked at once per interval.
    Stale(Arc<CachedFile>),
    Miss,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<Box<str>, Slot>,
    /// Counts lookups and inserts: the recency of each slot, for eviction.
    clock: u64,
    /// Bytes held (the entries' `cost`).
    used: usize,
}

struct Slot {
    file: Arc<CachedFile>,
    /// When the disk was last looked at, by [`coarse_now`].
    checked: Duration,
    used: u64,
    cost: usize,
}

/// A shard on its own cache lines: schedulers never write each other's.
#[repr(align(128))]
#[derive(Default)]
struct Padded(Mutex<Shard>);

pub(super) struct Cache {
    shards: Box<[Padded]>,
    /// Bytes each shard may hold.
    budget: usize,
    revalidate: Duration,
}

impl Cache {
    pub fn new(budget: usize, revalidate: Duration) -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            budget,
            revalidate,
        }
    }

    pub fn lookup(&self, scheduler: usize, key: &str, now: Duration) -> Lookup {
        let Some(mut shard) = self.shard(scheduler) else {
            return Lookup::Miss;
        };
        shard.clock += 1;
        let clock = shard.clock;
        let Some(slot) = shard.entries.get_mut(key) else {
            return Lookup::Miss;
        };
        slot.used = clock;
        if now.saturating_sub(slot.checked) < self.revalidate {
            return Lookup::Fresh(slot.file.clone());
        }
        slot.checked = now;
        Lookup::Stale(slot.file.clone())
    }

    /// Holds `file` under `key` (replacing what was there), evicting the least recently
    /// used entries of this shard if its budget needs it; a file costing more than the whole
    /// budget is not held.
    pub fn insert(&self, scheduler: usize, key: &str, file: Arc<CachedFile>, now: Duration) {
        let cost = file.bytes.len() + key.len() + ENTRY_OVERHEAD;
        if cost > self.budget {
            return;
        }
        let Some(mut shard) = self.shard(scheduler) else {
            return;
        };
        if let Some(old) = shard.entries.remove(key) {
            shard.used -= old.cost;
        }
        if shard.used + cost > self.budget {
            let target = self.budget / 16 * EVICT_TO_SIXTEENTHS;
            shard.evict(target.saturating_sub(cost));
        }
        shard.used += cost;
        shard.clock += 1;
        let slot = Slot {
            file,
            checked: now,
            used: shard.clock,
            cost,
        };
        shard.entries.insert(key.into(), slot);
    }

    /// Forgets `key` (the file changed into something not to hold, or is gone).
    pub fn remove(&self, scheduler: usize, key: &str) {
        if let Some(mut shard) = self.shard(scheduler)
            && let Some(old) = shard.entries.remove(key)
        {
            shard.used -= old.cost;
        }
    }

    /// Bytes held by this scheduler's shard.
    #[cfg(test)]
    pub fn used(&self, scheduler: usize) -> usize {
        self.shard(scheduler).map_or(0, |shard| shard.used)
    }

    /// This scheduler's shard, if its lock is free (module doc). A poisoned lock is taken
    /// anyway: every update of a shard leaves it whole before anything can panic.
    fn shard(&self, scheduler: usize) -> Option<MutexGuard<'_, Shard>> {
        match self.shards[scheduler % SHARDS].0.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// Now, by the coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`: the kernel's last tick,
/// read from the vDSO without the TSC), as nginx reads its cached time: a hit's one clock
/// read costs next to nothing, and the tick (1–4 ms) is far below a revalidation interval.
/// Through glibc, not rustix's vDSO parser, which valgrind's loader breaks (as `http::date`).
#[allow(unsafe_code)]
pub(super) fn coarse_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    match (u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) {
        (Ok(secs), Ok(nanos)) if rc == 0 => Duration::new(secs, nanos),
        // Not on Linux's clock ids: the precise clock, from a fixed start.
        _ => {
            static START: OnceLock<Instant> = OnceLock::new();
            START.get_or_init(Instant::now).elapsed()
        }
    }
}

impl Shard {
    /// Evicts the least recently used entries until at most `target` bytes are held.
    fn evict(&mut self, target: usize) {
        let mut by_age: Vec<(u64, Box<str>)> = self
            .entries
            .iter()
            .map(|(key, slot)| (slot.used, key.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(used, _)| *used);
        for (_, key) in by_age {
            if self.used <= target {
                break;
            }
            if let Some(old) = self.entries.remove(&key) {
                self.used -= old.cost;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn file(len: usize) -> Arc<CachedFile> {
        let modified = UNIX_EPOCH + Duration::from_secs(1);
        let validators = Validators::for_file(modified, len as u64);
        Arc::new(CachedFile {
            bytes: vec![b'x'; len].into(),
            id: FileId {
                dev: 1,
                ino: 1,
                len: len as u64,
                modified,
            },
            headers: FileHeaders::new(&validators),
            validators,
            content_type: "text/plain",
        })
    }

    fn cost(len: usize, key: &str) -> usize {
        len + key.len() + ENTRY_OVERHEAD
    }

    #[test]
    fn an_entry_is_fresh_then_stale_once_per_interval() {
        let cache = Cache::new(1 << 20, Duration::from_millis(100));
        let t0 = coarse_now();
        assert!(matches!(cache.lookup(0, "a", t0), Lookup::Miss));
        cache.insert(0, "a", file(10), t0);
        assert!(matches!(cache.lookup(0, "a", t0), Lookup::Fresh(_)));
        let later = t0 + Duration::from_millis(100);
        assert!(matches!(cache.lookup(0, "a", later), Lookup::Stale(_)));
        // The first to see it stale looks at the disk; the others serve it meanwhile.
        assert!(matches!(cache.lookup(0, "a", later), Lookup::Fresh(_)));
        // Another scheduler's shard holds its own entries.
        assert!(matches!(cache.lookup(1, "a", t0), Lookup::Miss));
        cache.remove(0, "a");
        assert!(matches!(cache.lookup(0, "a", later), Lookup::Miss));
        assert_eq!(cache.used(0), 0);
    }

    #[test]
    fn the_budget_holds_by_evicting_the_least_recently_used() {
        let budget = 4 * cost(1000, "k0");
        let cache = Cache::new(budget, Duration::from_secs(1));
        let now = coarse_now();
        for key in ["k0", "k1", "k2", "k3"] {
            cache.insert(0, key, file(1000), now);
        }
        assert_eq!(cache.used(0), budget);
        // k0 was used last, so k1 is the oldest.
        assert!(matches!(cache.lookup(0, "k0", now), Lookup::Fresh(_)));
        cache.insert(0, "k4", file(1000), now);
        assert!(cache.used(0) <= budget);
        assert!(matches!(cache.lookup(0, "k1", now), Lookup::Miss));
        assert!(matches!(cache.lookup(0, "k0", now), Lookup::Fresh(_)));
        assert!(matches!(cache.lookup(0, "k4", now), Lookup::Fresh(_)));
        // Replacing an entry counts it once.
        let before = cache.used(0);
        cache.insert(0, "k4", file(1000), now);
        assert_eq!(cache.used(0), before);
        // A file larger than the whole budget is not held at all.
        cache.insert(0, "huge", file(budget), now);
        assert!(matches!(cache.lookup(0, "huge", now), Lookup::Miss));
        // Each scheduler has a budget of its own.
        cache.insert(1, "k0", file(1000), now);
        assert!(matches!(cache.lookup(1, "k0", now), Lookup::Fresh(_)));
    }
}
