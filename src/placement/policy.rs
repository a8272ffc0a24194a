//! The choice of scheduler for a new connection: a pure function of the policy's state.

/// Round-robin over the schedulers (the placeholder until cost-based placement lands).
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    pub fn choose(&mut self, schedulers: usize) -> usize {
        let k = self.next % schedulers.max(1);
        self.next = k + 1;
        k
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_robin_cycles() {
        let mut rr = super::RoundRobin::default();
        let picks: Vec<_> = (0..5).map(|_| rr.choose(2)).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0]);
    }
}
