//! The part of the configuration connections read on every request — limits and timeouts —
//! which a reload (`Server::reconfigure`, SIGHUP) may replace while they run.
//!
//! Each reader keeps its own copy (`Snapshot`) and the version it was taken at. Checking for
//! a newer one is one atomic load per request; only after a reload does a reader take the
//! lock, briefly, to copy the new values. So the hot path takes no lock and allocates
//! nothing (tests/alloc.rs), and a request sees one consistent set of values, never half of
//! a reload.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{Limits, Timeouts};

/// The values a reload can change under a running connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub limits: Limits,
    pub timeouts: Timeouts,
}

/// The current settings of one server.
pub(crate) struct Live {
    /// Bumped by every `set`, after the new values are in place.
    version: AtomicU64,
    current: Mutex<(u64, Settings)>,
}

/// One reader's copy, and the version it is of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    version: u64,
    pub settings: Settings,
}

impl std::ops::Deref for Snapshot {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl Live {
    pub fn new(settings: Settings) -> Live {
        Live {
            version: AtomicU64::new(0),
            current: Mutex::new((0, settings)),
        }
    }

    fn current(&self) -> (u64, Settings) {
        // The lock guards a plain copy: nothing can panic while it is held.
        *self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the settings now in force.
    pub fn snapshot(&self) -> Snapshot {
        let (version, settings) = self.current();
        Snapshot { version, settings }
    }

    /// Brings `snapshot` up to date; returns whether anything was newer. One atomic load
    /// when nothing changed.
    pub fn refresh(&self, snapshot: &mut Snapshot) -> bool {
        if self.version.load(Ordering::Acquire) == snapshot.version {
            return false;
        }
        *snapshot = self.snapshot();
        true
    }

    /// Puts `settings` in force: each reader picks them up at its next `refresh`.
    pub fn set(&self, settings: Settings) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let version = current.0 + 1;
        *current = (version, settings);
        self.version.store(version, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings() -> Settings {
        let config = Config::embedded();
        Settings {
            limits: config.limits,
            timeouts: config.timeouts,
        }
    }

    #[test]
    fn a_snapshot_sees_a_new_setting_at_its_next_refresh_and_only_once() {
        let live = Live::new(settings());
        let mut mine = live.snapshot();
        assert!(!live.refresh(&mut mine), "nothing new yet");
        let mut smaller = settings();
        smaller.limits.max_body_bytes = 10;
        live.set(smaller);
        assert_eq!(mine.limits.max_body_bytes, settings().limits.max_body_bytes);
        assert!(live.refresh(&mut mine));
        assert_eq!(mine.limits.max_body_bytes, 10);
        assert!(!live.refresh(&mut mine), "already up to date");
    }
}
