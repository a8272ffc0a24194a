//! Restart intensity: at most `max` restarts within `period` (OTP `add_restart/3`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// OTP's default: 1 restart within 5 seconds.
pub const DEFAULT_MAX_RESTARTS: u32 = 1;
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// A sliding window of recent restart times.
#[derive(Debug, Clone)]
pub(crate) struct Intensity {
    max: u32,
    period: Duration,
    recent: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max: u32, period: Duration) -> Self {
        Intensity {
            max,
            period,
            recent: VecDeque::new(),
        }
    }

    /// Record a restart at `now`; `false` means the intensity is exceeded (more than `max`
    /// restarts within the last `period`) and the supervisor must give up.
    pub(crate) fn add_restart(&mut self, now: Instant) -> bool {
        self.recent.push_back(now);
        while let Some(&oldest) = self.recent.front() {
            if now.duration_since(oldest) > self.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.len() <= self.max as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_one_restart_per_period() {
        let t0 = Instant::now();
        let mut i = Intensity::new(DEFAULT_MAX_RESTARTS, DEFAULT_PERIOD);
        assert!(i.add_restart(t0));
        assert!(!i.add_restart(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn old_restarts_slide_out_of_the_window() {
        let t0 = Instant::now();
        let mut i = Intensity::new(2, Duration::from_secs(5));
        assert!(i.add_restart(t0));
        assert!(i.add_restart(t0 + Duration::from_secs(1)));
        assert!(i.add_restart(t0 + Duration::from_secs(6)));
        assert!(i.add_restart(t0 + Duration::from_millis(7500)));
        assert!(!i.add_restart(t0 + Duration::from_secs(8)));
    }

    #[test]
    fn a_restart_exactly_one_period_ago_is_still_in_the_window() {
        // OTP `inPeriod`: Now - Then =< Period.
        let t0 = Instant::now();
        let mut i = Intensity::new(1, Duration::from_secs(5));
        assert!(i.add_restart(t0));
        assert!(!i.add_restart(t0 + Duration::from_secs(5)));
        let mut i = Intensity::new(1, Duration::from_secs(5));
        assert!(i.add_restart(t0));
        assert!(i.add_restart(t0 + Duration::from_secs(5) + Duration::from_nanos(1)));
    }

    #[test]
    fn zero_max_never_restarts() {
        let mut i = Intensity::new(0, Duration::from_secs(5));
        assert!(!i.add_restart(Instant::now()));
    }
}
