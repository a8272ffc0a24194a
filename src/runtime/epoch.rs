//! Whether this thread ran something else meanwhile: a per-thread count that moves whenever
//! a Corral coroutine starts work on it (a handler starts, a connection resumes after a read,
//! a sleeper wakes). The cost table uses it to tell a handler that held its scheduler from
//! one that waited and let others run (`placement/cost.rs`, "Which cost").

use std::cell::Cell;

thread_local! {
    static EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// Notes that a coroutine (re)started work on this thread.
///
/// The thread-local accessors here are never inlined: a coroutine can change threads at any
/// yield, and the compiler may compute a thread-local's address once per function.
#[inline(never)]
pub fn note_resume() {
    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
}

/// This thread (the address of its epoch cell, a cheap identity) and its epoch now.
#[inline(never)]
pub fn here() -> (usize, u64) {
    EPOCH.with(|e| (e as *const Cell<u64> as usize, e.get()))
}
