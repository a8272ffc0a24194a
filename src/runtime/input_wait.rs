//! Waiting for a socket's input on its scheduler, with a deadline, without a read first.
//!
//! A may read tries the socket before it parks, and parks with a timer of may's own (a boxed
//! node in the worker's timer list, put in and taken out per wait). After a read that
//! drained the socket the try is sure to fail: a keep-alive connection that has just
//! answered reads next, and its client has not had the answer yet. That `recvfrom` →
//! `EAGAIN` was one syscall in three of a keep-alive request (strace -c, wrk -c64).
//!
//! So a connection whose last read drained the socket (`conn/socket.rs` knows) waits for
//! readiness instead (`may::io::WaitIo`, which returns at once if an edge came since that
//! read), and its deadline waits here: a slab of scheduler k's waiting sockets, which k's
//! doorkeeper (`home.rs`) looks through when the earliest deadline it knows of passes, waking
//! the overdue ones through their may `WaitIoWaker`. Each wait costs a slab entry put in and
//! taken out, under a lock that only k's thread takes (the waiters and the doorkeeper all
//! run on k, and never hold it across a yield), so it is never contended.
//!
//! The doorkeeper learns an earlier deadline through a ring (one eventfd write), and only
//! then: with one timeout for all waits, that is never while others wait.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use may::io::WaitIoWaker;

use super::sleep::{UNARMED, nanos, read_timeout_for};

/// Where one wait sits in the slab, to take it out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    index: usize,
    generation: u64,
}

struct Waiter {
    due: u64,
    generation: u64,
    waker: WaitIoWaker,
}

#[derive(Default)]
struct Slab {
    entries: Vec<Option<Waiter>>,
    free: Vec<usize>,
    live: usize,
    generations: u64,
}

/// Scheduler k's sockets waiting for input with a deadline.
pub(crate) struct InputWaits {
    slab: Mutex<Slab>,
    /// The deadline the doorkeeper wakes for (`UNARMED`: none).
    armed: AtomicU64,
}

impl InputWaits {
    pub(crate) fn new() -> Self {
        InputWaits {
            slab: Mutex::default(),
            armed: AtomicU64::new(UNARMED),
        }
    }

    fn slab(&self) -> std::sync::MutexGuard<'_, Slab> {
        // Nothing that can panic runs while it is held.
        self.slab.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts in a wait due at `deadline`, woken through `waker`; and whether the doorkeeper
    /// must be rung to wake for it (it wakes later, or for none).
    pub(crate) fn add(&self, deadline: Instant, waker: WaitIoWaker) -> (Ticket, bool) {
        let due = nanos(deadline);
        let mut slab = self.slab();
        slab.generations += 1;
        let generation = slab.generations;
        let waiter = Some(Waiter {
            due,
            generation,
            waker,
        });
        let index = match slab.free.pop() {
            Some(index) => {
                slab.entries[index] = waiter;
                index
            }
            None => {
                slab.entries.push(waiter);
                slab.entries.len() - 1
            }
        };
        slab.live += 1;
        // The earliest deadline known: the doorkeeper, rung, waits until it.
        let ring = due < self.armed.load(Ordering::Relaxed);
        if ring {
            self.armed.store(due, Ordering::Relaxed);
        }
        (Ticket { index, generation }, ring)
    }

    /// Takes the wait out, unless the doorkeeper already did (it woke it).
    pub(crate) fn remove(&self, ticket: Ticket) {
        let mut slab = self.slab();
        let ours = slab.entries.get(ticket.index).and_then(Option::as_ref);
        if ours.is_some_and(|w| w.generation == ticket.generation) {
            slab.entries[ticket.index] = None;
            slab.free.push(ticket.index);
            slab.live -= 1;
        }
    }

    /// Wakes (and takes out) every wait due by `now`; returns how many, and the read
    /// timeout until the earliest left (`None`: none left).
    pub(crate) fn wake_due(&self, now: Instant) -> (usize, Option<Duration>) {
        let now = nanos(now);
        // The doorkeeper wakes for sleepers too (up to every millisecond): look through the
        // slab only when the earliest deadline it knows of has passed.
        let armed = self.armed.load(Ordering::Relaxed);
        if armed > now {
            return (0, (armed != UNARMED).then(|| read_timeout_for(armed - now)));
        }
        let mut slab = self.slab();
        if slab.live == 0 {
            self.armed.store(UNARMED, Ordering::Relaxed);
            return (0, None);
        }
        let (mut woken, mut next) = (0, UNARMED);
        let Slab { entries, free, .. } = &mut *slab;
        for (index, entry) in entries.iter_mut().enumerate() {
            match entry {
                Some(waiter) if waiter.due <= now => {
                    waiter.waker.wakeup();
                    *entry = None;
                    free.push(index);
                    woken += 1;
                }
                Some(waiter) => next = next.min(waiter.due),
                None => {}
            }
        }
        slab.live -= woken;
        self.armed.store(next, Ordering::Relaxed);
        (
            woken,
            (next != UNARMED).then(|| read_timeout_for(next - now)),
        )
    }

    /// How many sockets wait here.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slab().live
    }

    /// How many waits were ever put in here.
    #[cfg(test)]
    pub(crate) fn added(&self) -> u64 {
        self.slab().generations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waker for a descriptor nothing waits on: waking it only raises a flag.
    fn a_descriptor() -> may::io::CoIo<std::fs::File> {
        let fd =
            rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).expect("an eventfd");
        may::io::CoIo::new(std::fs::File::from(fd)).expect("registered with may")
    }

    #[test]
    fn waits_come_out_when_taken_or_due_and_only_an_earlier_deadline_asks_for_a_ring() {
        let io = a_descriptor();
        let waker = || may::io::WaitIo::waker(&io);
        let waits = InputWaits::new();
        nanos(Instant::now()); // the clock starts before `now`
        let now = Instant::now();
        let ms = Duration::from_millis;
        let (first, ring) = waits.add(now + ms(10), waker());
        assert!(ring, "nothing armed yet");
        assert_eq!(waits.wake_due(now), (0, Some(ms(10))));
        let (second, ring) = waits.add(now + ms(20), waker());
        assert!(!ring, "later than armed");
        let (_third, ring) = waits.add(now + ms(5), waker());
        assert!(ring, "earlier than armed");
        waits.remove(first);
        assert_eq!(waits.len(), 2);
        assert_eq!(
            waits.wake_due(now + ms(6)),
            (1, Some(ms(14))),
            "the 5 ms one"
        );
        // The slot `first` had is reused; its old ticket must not take the new wait out.
        let (fourth, _) = waits.add(now + ms(30), waker());
        waits.remove(first);
        assert_eq!(waits.len(), 2, "a stale ticket takes nothing out");
        assert_eq!(
            waits.wake_due(now + ms(25)),
            (1, Some(ms(5))),
            "the 20 ms one"
        );
        waits.remove(second); // woken already: nothing to take out
        waits.remove(fourth);
        assert_eq!((waits.len(), waits.wake_due(now + ms(40))), (0, (0, None)));
        assert_eq!(waits.added(), 4);
    }
}
