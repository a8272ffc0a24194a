//! The `cost` policy's load figure for one scheduler: how long until it could start work
//! placed on it now.
//!
//! Pauley's figure is Σ expected cost of in-flight requests. On a worker busy with a costly
//! handler that figure misses two things, and both decide where a new connection's first
//! request waits least:
//!
//! - **What is left of the running handler.** A `/cpu` 1.9 ms into its expected 2 ms frees
//!   its scheduler long before one that has just begun; the whole cost counts both the same.
//! - **The backlog behind it.** While a handler runs, its scheduler reads no socket: requests
//!   arriving on its other connections wait unparsed, so they add nothing to the in-flight
//!   sum. They arrive at the scheduler's recent pace, which its utilisation ρ (share of wall
//!   time spent in handlers) measures, so `t` ns stuck in a handler leave about `ρ·t` ns of
//!   work behind it.
//!
//! So the running handler counts `cost − (1 − ρ)·t` instead of `cost`. Once `t` passes the
//! expected cost the estimate has failed — a cold route still at the default cost, a
//! handler slower than its history, or one that yielded (a sleep, a channel wait: its
//! record stays until it finishes) — and the handler counts its whole cost again, as in
//! Pauley's figure: a suspended handler must not make its scheduler look stuck for ever,
//! and a stuck one must not look free.

use crate::stats::Running;

/// What the load figure is made of, for one scheduler.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadInputs {
    /// Σ expected cost of its in-flight requests (the running handler's included), ns.
    pub inflight_ns: u64,
    /// Connections queued on it, not started: their first route is unknown.
    pub unknown: u64,
    /// Σ expected first-request cost of connections started on it but not yet read, ns
    /// (the route's cost when the acceptor saw the request line, else the mean).
    pub fresh_ns: u64,
    /// Expected cost of a request of unknown route: the mix's mean, ns.
    pub mean_ns: u64,
    /// The handler it is running now, if any.
    pub running: Option<Running>,
    /// Recent share of its wall time spent in handlers, 0..=1.
    pub utilisation: f64,
}

/// Expected time, ns, before the scheduler is through the work it has now.
pub fn expected_load_ns(i: &LoadInputs) -> u64 {
    let mut load = i.inflight_ns + i.unknown * i.mean_ns + i.fresh_ns;
    if let Some(run) = i.running.filter(|run| run.elapsed_ns < run.cost_ns) {
        let done = run.elapsed_ns;
        let backlog = (done as f64 * i.utilisation.clamp(0.0, 1.0)) as u64;
        load = load.saturating_sub(done) + backlog;
    }
    load
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn running(elapsed_ns: u64, cost_ns: u64) -> Option<Running> {
        Some(Running {
            elapsed_ns,
            cost_ns,
        })
    }

    #[test]
    fn an_idle_scheduler_counts_in_flight_and_unknown_work() {
        let i = LoadInputs {
            inflight_ns: 5 * MS,
            unknown: 3,
            mean_ns: MS / 10,
            fresh_ns: 2 * MS,
            running: None,
            utilisation: 0.5,
        };
        assert_eq!(expected_load_ns(&i), 5 * MS + 3 * MS / 10 + 2 * MS);
    }

    #[test]
    fn a_handler_near_its_end_weighs_less_than_one_just_begun() {
        let at = |elapsed| LoadInputs {
            inflight_ns: 2 * MS,
            running: running(elapsed, 2 * MS),
            ..LoadInputs::default()
        };
        assert_eq!(expected_load_ns(&at(0)), 2 * MS);
        assert_eq!(expected_load_ns(&at(MS)), MS);
        assert_eq!(expected_load_ns(&at(2 * MS - 1000)), 1000);
    }

    #[test]
    fn the_backlog_behind_a_running_handler_grows_with_utilisation() {
        let at = |utilisation| LoadInputs {
            inflight_ns: 2 * MS,
            running: running(MS, 2 * MS),
            utilisation,
            ..LoadInputs::default()
        };
        assert_eq!(expected_load_ns(&at(0.0)), MS);
        assert_eq!(expected_load_ns(&at(0.5)), MS + MS / 2);
        assert_eq!(
            expected_load_ns(&at(1.0)),
            2 * MS,
            "saturated: nothing gained"
        );
    }

    #[test]
    fn past_its_expected_cost_a_handler_counts_whole_again() {
        let at = |elapsed| LoadInputs {
            inflight_ns: 50_000,
            running: running(elapsed, 50_000),
            utilisation: 0.5,
            ..LoadInputs::default()
        };
        assert_eq!(expected_load_ns(&at(40_000)), 10_000 + 20_000);
        // At its expected cost exactly, the estimate is used up: whole again.
        assert_eq!(expected_load_ns(&at(50_000)), 50_000);
        // A cold route (default cost) 300 ms in, or a handler that yielded an hour ago.
        assert_eq!(expected_load_ns(&at(300 * MS)), 50_000);
        assert_eq!(expected_load_ns(&at(3_600_000 * MS)), 50_000);
    }
}
