//! Mailboxes: a bounded multi-producer queue that one process reads, and the one-shot reply
//! port that `call` waits on.
//!
//! A spawned process's queue is may's own lock-free MPSC queue (the one behind
//! `may::sync::mpsc`). It preallocates two blocks of 64 slots (4 KiB and more), which is
//! too much for a process adopted by a connection that may wait by the ten thousand: those
//! get a `VecDeque` behind a short-held lock, empty until the first message ([`Queue`]).
//! On top of either the mailbox keeps an exact message count for the bound, a close
//! protocol so no message is stranded in a dead process's box, a list of senders parked on
//! a full box, and for a receiver with no coroutine parked on it (a hibernated connection) a
//! one-shot callback run at the next message or interruption.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use may::sync::{AtomicOption, Blocker};

/// Default mailbox capacity, in messages. Large enough that a burst does not block senders,
/// small enough that a stuck process cannot hoard memory without bound.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What `send` does when the receiver's mailbox is full (chosen per process at spawn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Park the sending coroutine (or thread) until the receiver makes room.
    #[default]
    Block,
    /// Return [`SendError::Full`] at once, handing the message back.
    Fail,
}

/// Why a message was not delivered; the message is handed back.
#[derive(thiserror::Error)]
pub enum SendError<M> {
    /// The mailbox is at capacity and its policy is [`Overflow::Fail`] (or `try_send` was used).
    #[error("mailbox full")]
    Full(M),
    /// The receiving process has exited.
    #[error("process is dead")]
    Dead(M),
}

impl<M> SendError<M> {
    /// The undelivered message.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Dead(m) => m,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Dead(_) => f.write_str("Dead(..)"),
        }
    }
}

/// How long to park for `left`. may's `Park` keeps a timeout in whole milliseconds, truncated,
/// and reads 0 as "no timeout" (may 0.3.51 `sync/atomic_dur.rs`): a 0.7 ms park would never
/// wake, and a 49.9 ms one wakes at 49 ms. So round up to whole milliseconds, at least one.
pub(crate) fn park_duration(left: Duration) -> Duration {
    let ms = left.as_nanos().div_ceil(1_000_000).max(1);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// The message queue of a mailbox (see the module docs for why two kinds).
pub(crate) enum Queue<M> {
    /// Lock-free, preallocated: spawned processes.
    Fast(Box<may_queue::mpsc::Queue<M>>),
    /// Empty until used: adopted processes (connections).
    Small(Mutex<VecDeque<M>>),
}

impl<M> Queue<M> {
    pub(crate) fn fast() -> Self {
        Queue::Fast(Box::new(may_queue::mpsc::Queue::new()))
    }

    pub(crate) fn small() -> Self {
        Queue::Small(Mutex::new(VecDeque::new()))
    }

    fn small_list(list: &Mutex<VecDeque<M>>) -> MutexGuard<'_, VecDeque<M>> {
        // Push and pop only; a poisoned list is still a valid list.
        list.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, msg: M) {
        match self {
            Queue::Fast(q) => q.push(msg),
            Queue::Small(list) => Self::small_list(list).push_back(msg),
        }
    }

    fn pop(&self) -> Option<M> {
        match self {
            Queue::Fast(q) => q.pop(),
            Queue::Small(list) => Self::small_list(list).pop_front(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Queue::Fast(q) => q.is_empty(),
            Queue::Small(list) => Self::small_list(list).is_empty(),
        }
    }
}

/// A one-shot callback run at a mailbox's next message (see [`Mailbox::on_next`]).
type Notify = Box<dyn FnOnce() + Send>;

/// A process's mailbox. Many senders, exactly one receiver (the process, through its `Ctx`).
pub(crate) struct Mailbox<M> {
    queue: Queue<M>,
    /// Messages reserved or queued; user sends keep it `<= capacity`, system pushes may exceed it.
    len: AtomicUsize,
    capacity: usize,
    overflow: Overflow,
    closed: AtomicBool,
    /// The receiver, when it is parked waiting for a message.
    receiver: AtomicOption<Arc<Blocker>>,
    /// Senders parked on a full mailbox (only used with `Overflow::Block`).
    blocked: Mutex<VecDeque<Arc<Blocker>>>,
    blocked_count: AtomicUsize,
    /// Set while `notify` holds a callback, so a send checks it with one load.
    armed: AtomicBool,
    notify: Mutex<Option<Notify>>,
    /// Set by `interrupt`: a waiting receive returns, and so does every later one.
    interrupted: AtomicBool,
}

impl<M> Mailbox<M> {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        Self::with_queue(Queue::fast(), capacity, overflow)
    }

    pub(crate) fn with_queue(queue: Queue<M>, capacity: usize, overflow: Overflow) -> Self {
        Mailbox {
            queue,
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            overflow,
            closed: AtomicBool::new(false),
            receiver: AtomicOption::none(),
            blocked: Mutex::new(VecDeque::new()),
            blocked_count: AtomicUsize::new(0),
            armed: AtomicBool::new(false),
            notify: Mutex::new(None),
            interrupted: AtomicBool::new(false),
        }
    }

    /// Whether a message is queued (exactly: not just reserved).
    pub(crate) fn has_message(&self) -> bool {
        !self.queue.is_empty()
    }

    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted.load(SeqCst)
    }

    /// Runs `f` once, at the next message or interruption, or at once if one is there
    /// already; replaces a callback armed before. From any thread; `f` must not block.
    pub(crate) fn on_next(&self, f: Notify) {
        *self.notify_slot() = Some(f);
        // Armed before the check, so a sender either sees `armed` or we see its message
        // (the SeqCst pair armed/queue is a Dekker handshake, as in `send_with`).
        self.armed.store(true, SeqCst);
        if self.has_message() || self.is_interrupted() {
            self.fire();
        }
    }

    /// Drops a callback armed with `on_next` without running it.
    pub(crate) fn clear_on_next(&self) {
        self.armed.store(false, SeqCst);
        drop(self.notify_slot().take());
    }

    fn fire(&self) {
        self.armed.store(false, SeqCst);
        let notify = self.notify_slot().take();
        if let Some(f) = notify {
            f();
        }
    }

    fn notify_slot(&self) -> MutexGuard<'_, Option<Notify>> {
        // Only moves a box in or out; a poisoned slot still holds a valid option.
        self.notify.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the waiting receive (and every later one) return without a message, and runs
    /// the armed callback: how an exit signal reaches a process that has no coroutine of
    /// its own to cancel (an adopted one).
    pub(crate) fn interrupt(&self) {
        self.interrupted.store(true, SeqCst);
        if let Some(receiver) = self.receiver.take() {
            receiver.unpark();
        }
        if self.armed.load(SeqCst) {
            self.fire();
        }
    }

    /// Number of messages waiting.
    pub(crate) fn len(&self) -> usize {
        self.len.load(SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Send under the mailbox's policy.
    pub(crate) fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.send_with(msg, self.overflow == Overflow::Block)
    }

    /// Send without ever blocking.
    pub(crate) fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        self.send_with(msg, false)
    }

    fn send_with(&self, msg: M, may_block: bool) -> Result<(), SendError<M>> {
        loop {
            if self.try_reserve() {
                return self.push_reserved(msg);
            }
            if self.is_closed() {
                return Err(SendError::Dead(msg));
            }
            if !may_block {
                return Err(SendError::Full(msg));
            }
            // Register before re-checking, so a receiver that frees a slot after our check
            // sees us in the list (the SeqCst pair blocked_count/len is a Dekker handshake).
            let me = Blocker::current();
            let _registered = Registered::new(self, me.clone());
            if self.len.load(SeqCst) < self.capacity || self.is_closed() {
                continue;
            }
            // A kill (may's cancel) unwinds from here; `_registered` then removes us.
            let _ = me.park(None);
        }
    }

    /// Take one slot if the box is under capacity. Exact: a CAS loop, never an over-count.
    fn try_reserve(&self) -> bool {
        self.len
            .fetch_update(SeqCst, SeqCst, |n| (n < self.capacity).then_some(n + 1))
            .is_ok()
    }

    /// Queue a message whose slot is already counted in `len`.
    fn push_reserved(&self, msg: M) -> Result<(), SendError<M>> {
        // Checked after reserving: `close` sets `closed` then waits for `len` to drain, so either
        // we see `closed` here or `close` sees our reservation and waits for the push below.
        if self.is_closed() {
            self.release_slot();
            return Err(SendError::Dead(msg));
        }
        self.queue.push(msg);
        if let Some(receiver) = self.receiver.take() {
            receiver.unpark();
        }
        if self.armed.load(SeqCst) {
            self.fire();
        }
        Ok(())
    }

    /// Queue a system message (exit signal, `Down`, watched event): ignores the bound, since a
    /// dying process must never block on a full mailbox. Dropped if the box is closed.
    pub(crate) fn push_system(&self, msg: M) {
        self.len.fetch_add(1, SeqCst);
        let _ = self.push_reserved(msg);
    }

    fn release_slot(&self) {
        self.len.fetch_sub(1, SeqCst);
        if self.blocked_count.load(SeqCst) > 0 {
            self.wake_one_sender();
        }
    }

    fn wake_one_sender(&self) {
        let sender = self.blocked_list().pop_front();
        if let Some(sender) = sender {
            self.blocked_count.fetch_sub(1, SeqCst);
            sender.unpark();
        }
    }

    fn blocked_list(&self) -> MutexGuard<'_, VecDeque<Arc<Blocker>>> {
        // A panic while holding this lock can only come from VecDeque allocation failure;
        // the list is still consistent then, so poisoning is ignored.
        self.blocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Receiver side: take one message if any. Only the owning process calls this.
    pub(crate) fn try_recv(&self) -> Option<M> {
        let msg = self.queue.pop()?;
        self.release_slot();
        Some(msg)
    }

    /// Receiver side: wait for a message, up to `timeout` (`None`: forever). `None` after
    /// the timeout, or at once once the mailbox is interrupted.
    pub(crate) fn recv(&self, timeout: Option<Duration>) -> Option<M> {
        if let Some(msg) = self.try_recv() {
            return Some(msg);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.is_interrupted() {
                return None;
            }
            let me = Blocker::current();
            self.receiver.store(me.clone());
            if let Some(msg) = self.try_recv() {
                self.receiver.clear();
                return Some(msg);
            }
            let remaining = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(park_duration(left)),
                    _ => {
                        self.receiver.clear();
                        return self.try_recv();
                    }
                },
            };
            if self.is_interrupted() {
                self.receiver.clear();
                return None;
            }
            let _ = me.park(remaining);
            if let Some(msg) = self.try_recv() {
                return Some(msg);
            }
        }
    }

    /// Called once by the dying process: refuse new messages, drop queued ones (which drops
    /// any reply ports in them, so callers learn at once), and release parked senders.
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
        loop {
            while self.try_recv().is_some() {}
            // A sender that reserved a slot before seeing `closed` is between its CAS and its
            // push (no blocking point there), so this wait is a few instructions long.
            if self.len.load(SeqCst) == 0 {
                break;
            }
            std::thread::yield_now();
        }
        let parked: Vec<_> = self.blocked_list().drain(..).collect();
        self.blocked_count.store(0, SeqCst);
        for sender in parked {
            sender.unpark();
        }
        self.clear_on_next();
    }
}

/// A parked sender's place in the blocked list; removed on drop (also when unwinding from a kill).
struct Registered<'a, M> {
    mailbox: &'a Mailbox<M>,
    me: Arc<Blocker>,
}

impl<'a, M> Registered<'a, M> {
    fn new(mailbox: &'a Mailbox<M>, me: Arc<Blocker>) -> Self {
        mailbox.blocked_list().push_back(me.clone());
        mailbox.blocked_count.fetch_add(1, SeqCst);
        Registered { mailbox, me }
    }
}

impl<M> Drop for Registered<'_, M> {
    fn drop(&mut self) {
        let mut list = self.mailbox.blocked_list();
        if let Some(i) = list.iter().position(|b| Arc::ptr_eq(b, &self.me)) {
            list.remove(i);
            self.mailbox.blocked_count.fetch_sub(1, SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One-shot reply port
// ---------------------------------------------------------------------------------------------

/// The port a process answers a [`call`](crate::Addr::call) on. Put it in the request message;
/// the callee answers with [`ReplyTo::send`]. Dropping it unanswered tells the caller at once.
pub struct ReplyTo<R> {
    slot: Arc<Slot<R>>,
}

struct Slot<R> {
    state: Mutex<SlotState<R>>,
}

struct SlotState<R> {
    value: Option<R>,
    waiter: Option<Arc<Blocker>>,
    /// Set when the `ReplyTo` is dropped unanswered.
    sender_gone: Option<NoReply>,
    receiver_gone: bool,
}

impl<R> Slot<R> {
    fn lock(&self) -> MutexGuard<'_, SlotState<R>> {
        // Nothing in the critical sections can panic, so the state is consistent even if poisoned.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<R> ReplyTo<R> {
    /// Answer the call. If the caller has stopped waiting (timed out, or died), the reply is
    /// handed back as `Err` — nothing is left behind in anyone's mailbox.
    pub fn send(self, reply: R) -> Result<(), R> {
        let waiter = {
            let mut st = self.slot.lock();
            if st.receiver_gone {
                return Err(reply);
            }
            st.value = Some(reply);
            st.waiter.take()
        };
        if let Some(w) = waiter {
            w.unpark();
        }
        Ok(())
    }

    /// Whether the caller is still waiting.
    pub fn is_wanted(&self) -> bool {
        !self.slot.lock().receiver_gone
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        // Dropped while unwinding means the callee is dying (a panic or a kill): the caller
        // then waits for the exit reason instead of reporting a plain drop.
        let how = if std::thread::panicking() {
            NoReply::Unwound
        } else {
            NoReply::Dropped
        };
        let waiter = {
            let mut st = self.slot.lock();
            st.sender_gone = Some(how);
            st.waiter.take()
        };
        if let Some(w) = waiter {
            w.unpark();
        }
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyTo { .. }")
    }
}

/// The caller's end of a reply port.
pub(crate) struct ReplyRx<R> {
    slot: Arc<Slot<R>>,
}

/// Why no reply arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoReply {
    Timeout,
    /// The `ReplyTo` was dropped unanswered.
    Dropped,
    /// The `ReplyTo` was dropped while its holder was unwinding (panic or kill).
    Unwound,
}

pub(crate) fn reply_port<R>() -> (ReplyTo<R>, ReplyRx<R>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            value: None,
            waiter: None,
            sender_gone: None,
            receiver_gone: false,
        }),
    });
    (ReplyTo { slot: slot.clone() }, ReplyRx { slot })
}

impl<R> ReplyRx<R> {
    /// Wait for the reply, up to `timeout` (`None`: forever). On timeout the port is closed,
    /// so a late reply is refused (and dropped by the callee) instead of leaking.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Result<R, NoReply> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let me = Blocker::current();
            {
                let mut st = self.slot.lock();
                if let Some(v) = st.value.take() {
                    return Ok(v);
                }
                if let Some(how) = st.sender_gone {
                    return Err(how);
                }
                st.waiter = Some(me.clone());
            }
            let remaining = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(park_duration(left)),
                    _ => {
                        let mut st = self.slot.lock();
                        st.waiter = None;
                        return match st.value.take() {
                            Some(v) => Ok(v),
                            None => {
                                st.receiver_gone = true;
                                Err(NoReply::Timeout)
                            }
                        };
                    }
                },
            };
            let _ = me.park(remaining);
        }
    }
}

impl<R> Drop for ReplyRx<R> {
    fn drop(&mut self) {
        let late = {
            let mut st = self.slot.lock();
            st.receiver_gone = true;
            st.waiter = None;
            st.value.take()
        };
        drop(late);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn park_durations_round_up_to_whole_milliseconds() {
        assert_eq!(
            park_duration(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            park_duration(Duration::from_micros(999)),
            Duration::from_millis(1)
        );
        assert_eq!(
            park_duration(Duration::from_micros(49_990)),
            Duration::from_millis(50)
        );
        assert_eq!(
            park_duration(Duration::from_millis(7)),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn fail_policy_hands_the_message_back_when_full() {
        let mb = Mailbox::new(2, Overflow::Fail);
        assert!(mb.send(1).is_ok());
        assert!(mb.send(2).is_ok());
        match mb.send(3) {
            Err(SendError::Full(3)) => {}
            other => panic!("expected Full(3), got {other:?}"),
        }
        assert_eq!(mb.try_recv(), Some(1));
        assert!(mb.send(3).is_ok());
        assert_eq!(mb.len(), 2);
    }

    #[test]
    fn system_messages_ignore_the_bound() {
        let mb = Mailbox::new(1, Overflow::Fail);
        mb.send(1).expect("room for one");
        mb.push_system(2);
        assert_eq!(mb.len(), 2);
        assert_eq!(mb.try_recv(), Some(1));
        assert_eq!(mb.try_recv(), Some(2));
    }

    #[test]
    fn on_next_runs_once_at_the_next_message_or_at_once() {
        use std::sync::atomic::AtomicUsize;
        let mb = Mailbox::with_queue(Queue::small(), 4, Overflow::Fail);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        mb.on_next(Box::new(move || {
            counter.fetch_add(1, SeqCst);
        }));
        assert_eq!(runs.load(SeqCst), 0, "nothing queued yet");
        mb.send(1).expect("room");
        mb.send(2).expect("room");
        assert_eq!(runs.load(SeqCst), 1, "one run, at the first message");
        let counter = runs.clone();
        mb.on_next(Box::new(move || {
            counter.fetch_add(1, SeqCst);
        }));
        assert_eq!(runs.load(SeqCst), 2, "a message was waiting: at once");
        assert_eq!(mb.try_recv(), Some(1));
    }

    #[test]
    fn an_interrupt_ends_a_receive_and_runs_the_callback() {
        let mb: Mailbox<u8> = Mailbox::with_queue(Queue::small(), 4, Overflow::Block);
        let (tx, rx) = std::sync::mpsc::channel();
        mb.on_next(Box::new(move || {
            let _ = tx.send(());
        }));
        mb.interrupt();
        assert!(rx.try_recv().is_ok());
        assert_eq!(mb.recv(None), None, "an interrupted receive does not wait");
    }

    #[test]
    fn closed_mailbox_refuses_and_drains() {
        let mb = Mailbox::new(4, Overflow::Block);
        mb.send(1).expect("open");
        mb.close();
        assert_eq!(mb.len(), 0);
        assert!(matches!(mb.send(2), Err(SendError::Dead(2))));
    }

    #[test]
    fn recv_timeout_returns_none_when_empty() {
        let mb: Mailbox<u8> = Mailbox::new(4, Overflow::Block);
        assert_eq!(mb.recv(Some(Duration::from_millis(10))), None);
    }

    #[test]
    fn blocked_sender_is_released_by_a_receive() {
        let mb = Arc::new(Mailbox::new(1, Overflow::Block));
        mb.send(1).expect("room");
        let tx = mb.clone();
        let t = std::thread::spawn(move || tx.send(2).is_ok());
        // Wait until the sender has parked (bounded), then make room.
        let deadline = Instant::now() + Duration::from_secs(5);
        while mb.blocked_count.load(SeqCst) == 0 {
            assert!(Instant::now() < deadline, "sender never blocked");
            std::thread::yield_now();
        }
        assert_eq!(mb.try_recv(), Some(1));
        assert!(t.join().expect("sender thread"));
        assert_eq!(mb.recv(Some(Duration::from_secs(5))), Some(2));
    }

    #[test]
    fn reply_after_timeout_is_refused() {
        let (tx, rx) = reply_port::<u32>();
        assert_eq!(
            rx.wait(Some(Duration::from_millis(5))),
            Err(NoReply::Timeout)
        );
        assert_eq!(tx.send(7), Err(7));
    }

    #[test]
    fn dropped_reply_port_wakes_the_caller() {
        let (tx, rx) = reply_port::<u32>();
        drop(tx);
        assert_eq!(rx.wait(Some(Duration::from_secs(5))), Err(NoReply::Dropped));
    }
}
