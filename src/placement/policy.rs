//! The choice of scheduler for a new connection: a pure function of load snapshots.

use serde::{Deserialize, Serialize};

/// How a new connection picks its scheduler (`placement.policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Lowest expected load: Σ route cost of in-flight requests (the running one: what is
    /// left of it, plus the backlog behind it) + not-yet-read connections × the mean cost.
    Cost,
    /// Each scheduler in turn, whatever its load.
    RoundRobin,
    /// Wherever the accepted descriptor's number puts it (may's own default, no dup).
    FdHash,
    /// Fewest open connections (hibernated ones included); ties rotate.
    LeastConnections,
}

impl Policy {
    /// The words `placement.policy`, `CORRAL_PLACEMENT` and `--placement` accept.
    pub const NAMES: &'static [&'static str] =
        &["cost", "round_robin", "fd_hash", "least_connections"];

    /// Every policy, in the order of [`Self::NAMES`] (an index fits an atomic).
    const ALL: [Policy; 4] = [
        Policy::Cost,
        Policy::RoundRobin,
        Policy::FdHash,
        Policy::LeastConnections,
    ];

    /// Its place in [`Self::ALL`].
    pub(crate) fn index(self) -> u8 {
        self as u8
    }

    /// The policy at `index` in [`Self::ALL`] (`Cost` for anything else).
    pub(crate) fn from_index(index: u8) -> Policy {
        Self::ALL
            .get(usize::from(index))
            .copied()
            .unwrap_or(Policy::Cost)
    }

    /// The word that selects this policy in the configuration (one of [`Self::NAMES`]).
    pub fn name(self) -> &'static str {
        match self {
            Policy::Cost => "cost",
            Policy::RoundRobin => "round_robin",
            Policy::FdHash => "fd_hash",
            Policy::LeastConnections => "least_connections",
        }
    }
}

/// What placement knows of one scheduler at the moment of choosing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadSnapshot {
    /// Expected occupancy of in-flight and queued work, ns.
    pub expected_load_ns: u64,
    pub connections: usize,
}

/// Chooses a scheduler. `rotor` rotates where ties are broken so equal schedulers share
/// the work; `fd` is the accepted descriptor's number (for `FdHash`).
pub fn choose(loads: &[LoadSnapshot], policy: Policy, rotor: &mut usize, fd: usize) -> usize {
    let n = loads.len().max(1);
    let start = *rotor % n;
    *rotor = start + 1;
    let lowest_by = |key: &dyn Fn(&LoadSnapshot) -> (u64, u64)| {
        (0..n)
            .map(|i| (start + i) % n)
            .min_by_key(|&k| key(&loads[k]))
            .unwrap_or(start)
    };
    match policy {
        Policy::RoundRobin => start,
        Policy::FdHash => fd % n,
        Policy::LeastConnections => lowest_by(&|l| (l.connections as u64, 0)),
        Policy::Cost => lowest_by(&|l| (l.expected_load_ns, l.connections as u64)),
    }
}

/// Chooses a scheduler for a hibernated connection that woke on `home` with a request
/// (`placement.at_wake`, docs/architecture.md §7): `choose`, with two differences. The
/// connection is counted on `home` already, so its own count is taken off there before the
/// comparison (else it would leave a scheduler only to make that one the lighter). And a tie
/// stays home: moving costs a descriptor move and a cold cache, and gains nothing then.
/// `round_robin` takes its turn as for a new connection (it looks at no load); `fd_hash`
/// keeps the number it has, so it always stays home.
pub fn choose_at_wake(
    loads: &[LoadSnapshot],
    policy: Policy,
    rotor: &mut usize,
    fd: usize,
    home: usize,
) -> usize {
    let n = loads.len().max(1);
    let key = |k: usize| {
        let l = &loads[k];
        let connections = l.connections.saturating_sub(usize::from(k == home)) as u64;
        match policy {
            Policy::LeastConnections => (connections, 0),
            _ => (l.expected_load_ns, connections),
        }
    };
    match policy {
        Policy::RoundRobin | Policy::FdHash => choose(loads, policy, rotor, fd),
        Policy::Cost | Policy::LeastConnections => {
            let start = *rotor % n;
            *rotor = start + 1;
            let best = (0..n)
                .map(|i| (start + i) % n)
                .min_by_key(|&k| key(k))
                .unwrap_or(home);
            if home < n && key(home) <= key(best) {
                home
            } else {
                best
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_survives_its_index() {
        for (policy, name) in Policy::ALL.iter().zip(Policy::NAMES) {
            assert_eq!(Policy::from_index(policy.index()), *policy);
            assert_eq!(policy.name(), *name);
        }
    }

    fn loads(pairs: &[(u64, usize)]) -> Vec<LoadSnapshot> {
        pairs
            .iter()
            .map(|&(expected_load_ns, connections)| LoadSnapshot {
                expected_load_ns,
                connections,
            })
            .collect()
    }

    #[test]
    fn each_policy_is_named_as_the_config_spells_it() {
        #[derive(Deserialize)]
        struct Key {
            policy: Policy,
        }
        for &name in Policy::NAMES {
            let key: Key = toml::from_str(&format!("policy = {name:?}")).expect(name);
            assert_eq!(key.policy.name(), name);
        }
    }

    #[test]
    fn round_robin_cycles() {
        let l = loads(&[(9, 9), (0, 0)]);
        let mut rotor = 0;
        let picks: Vec<_> = (0..5)
            .map(|_| choose(&l, Policy::RoundRobin, &mut rotor, 0))
            .collect();
        assert_eq!(picks, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn cost_avoids_the_loaded_scheduler_and_rotates_ties() {
        let mut rotor = 0;
        let busy = loads(&[(300_000_000, 1), (0, 5)]);
        for _ in 0..4 {
            assert_eq!(choose(&busy, Policy::Cost, &mut rotor, 0), 1);
        }
        let idle = loads(&[(0, 0), (0, 0), (0, 0)]);
        let picks: Vec<_> = (0..3)
            .map(|_| choose(&idle, Policy::Cost, &mut rotor, 0))
            .collect();
        let mut sorted = picks.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2], "ties rotate: {picks:?}");
        // Equal load: fewer connections wins.
        let l = loads(&[(10, 4), (10, 1)]);
        assert_eq!(choose(&l, Policy::Cost, &mut rotor, 0), 1);
    }

    #[test]
    fn least_connections_and_fd_hash() {
        let mut rotor = 0;
        let l = loads(&[(0, 3), (0, 1), (0, 2)]);
        assert_eq!(choose(&l, Policy::LeastConnections, &mut rotor, 0), 1);
        assert_eq!(choose(&l, Policy::FdHash, &mut rotor, 7), 1);
        assert_eq!(choose(&l, Policy::FdHash, &mut rotor, 9), 0);
    }

    #[test]
    fn a_wake_moves_only_to_a_lighter_scheduler_and_a_tie_stays_home() {
        let mut rotor = 0;
        // Home 0 runs a 2 ms handler; 1 is idle: away.
        let busy_home = loads(&[(2_000_000, 3), (0, 3)]);
        for _ in 0..3 {
            assert_eq!(
                choose_at_wake(&busy_home, Policy::Cost, &mut rotor, 0, 0),
                1
            );
        }
        // Both idle, the same connections but for this one, which counts on home: a tie.
        let idle = loads(&[(0, 2), (0, 1)]);
        for _ in 0..3 {
            assert_eq!(choose_at_wake(&idle, Policy::Cost, &mut rotor, 0, 0), 0);
            assert_eq!(
                choose_at_wake(&idle, Policy::LeastConnections, &mut rotor, 0, 0),
                0
            );
        }
        // Fewer elsewhere even without it: least_connections moves.
        let crowded = loads(&[(0, 5), (0, 1)]);
        assert_eq!(
            choose_at_wake(&crowded, Policy::LeastConnections, &mut rotor, 0, 0),
            1
        );
        // A lighter home keeps it.
        let light_home = loads(&[(0, 1), (500, 0)]);
        assert_eq!(
            choose_at_wake(&light_home, Policy::Cost, &mut rotor, 0, 0),
            0
        );
    }

    #[test]
    fn at_wake_round_robin_rotates_and_fd_hash_keeps_the_number() {
        let l = loads(&[(0, 0), (0, 0)]);
        let mut rotor = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| choose_at_wake(&l, Policy::RoundRobin, &mut rotor, 7, 1))
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(choose_at_wake(&l, Policy::FdHash, &mut rotor, 7, 1), 1);
    }
}
