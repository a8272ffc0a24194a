//! Path parameters of a matched route (`/users/:id` → `id`): a plain value the router fills
//! and the request carries, borrowed from the request's bytes and the route's pattern.

use std::fmt;

/// Most parameters (`:name` and `*name` together) in one pattern; [`Params`] is an inline
/// array of this size, so a lookup needs no heap.
pub const MAX_PARAMS: usize = 8;

/// Path parameters of one match: an inline array (no heap), names borrowed from the router,
/// values from the path (raw, not percent-decoded), in pattern order.
#[derive(Clone, Copy)]
pub struct Params<'a> {
    /// `Some` up to `len`. Options, so that a new `Params` (one per request) is all zero
    /// bytes, which the compiler writes with a few vector stores; `("", "")` pairs took 32
    /// scalar stores (docs/architecture.md §3, "Per-request cost").
    slots: [Option<(&'a str, &'a str)>; MAX_PARAMS],
    /// Slots in use; the router rewinds it when a branch of its tree fails to match.
    pub(crate) len: usize,
}

impl<'a> Params<'a> {
    pub fn new() -> Self {
        Self {
            slots: [None; MAX_PARAMS],
            len: 0,
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|&(n, _)| n == name)
            .map(|(_, value)| value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.slots[..self.len].iter().flatten().copied()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Registration caps every pattern at `MAX_PARAMS`, and the tree path being tried is a
    /// prefix of a registered pattern, so there is always a free slot.
    pub(crate) fn push(&mut self, name: &'a str, value: &'a str) {
        if let Some(slot) = self.slots.get_mut(self.len) {
            *slot = Some((name, value));
            self.len += 1;
        }
    }
}

impl Default for Params<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
