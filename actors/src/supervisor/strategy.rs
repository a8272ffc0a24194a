//! Restart strategies: which children a supervisor restarts when one of them dies.

use std::ops::Range;

/// OTP's strategies. Dynamic children (the `simple_one_for_one` case: one child per
/// connection or per topic) are added with `SupRef::start_child` under `OneForOne`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Restart only the child that died.
    #[default]
    OneForOne,
    /// Stop all other children (in reverse start order), then restart all.
    OneForAll,
    /// Stop the children started after the dead one (in reverse), then restart it and them.
    RestForOne,
}

impl Strategy {
    /// Indices (in start order) of the children to restart when child `dead` of `len` dies.
    pub(crate) fn affected(self, dead: usize, len: usize) -> Range<usize> {
        match self {
            Strategy::OneForOne => dead..dead + 1,
            Strategy::OneForAll => 0..len,
            Strategy::RestForOne => dead..len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affected_children_per_strategy() {
        assert_eq!(Strategy::OneForOne.affected(1, 4), 1..2);
        assert_eq!(Strategy::OneForAll.affected(1, 4), 0..4);
        assert_eq!(Strategy::RestForOne.affected(1, 4), 1..4);
        assert_eq!(Strategy::RestForOne.affected(3, 4), 3..4);
    }
}
