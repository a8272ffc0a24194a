//! A WebSocket's inbox: what other processes send it ([`WsSender`](super::WsSender)), and
//! whom a send wakes — the session's coroutine parked in `Socket::wait`, or, while the
//! session hibernates, its ward (which the connection layer's wake-up rings).
//!
//! This is the seam to the connection's mailbox (issue #14 point 1): all a session needs of
//! one is `pop`, `has_mail`, and "wake me like this" (`wake_with` / `sleep_on`).

use std::collections::VecDeque;
use std::sync::Mutex;

use corral_actors::SendError;

use crate::http::websocket::Wakeup;

/// Messages a WebSocket holds unread before a sender is refused (`SendError::Full`) and the
/// WebSocket closed with 1008: a client that reads slower than its messages arrive must not
/// make the server buffer without bound.
pub(crate) const CAPACITY: usize = 1024;

pub(crate) struct Inbox<M> {
    state: Mutex<State<M>>,
}

struct State<M> {
    queue: VecDeque<M>,
    /// Whom a message wakes: the session's coroutine, or the ward holding it.
    notify: Option<Wakeup>,
    /// The WebSocket has ended: sends fail with `Dead`.
    closed: bool,
    /// A send found the queue full (the WebSocket closes with 1008).
    overflowed: bool,
}

impl<M> State<M> {
    fn ring(&self) {
        if let Some(wake) = &self.notify {
            wake();
        }
    }
}

impl<M> Inbox<M> {
    pub(crate) fn new() -> Inbox<M> {
        Inbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                notify: None,
                closed: false,
                overflowed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<M>> {
        // Nothing in a critical section panics; a poisoned lock's state is whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg` and wakes the session if it was not already due to look. Never blocks
    /// beyond the short lock.
    pub(crate) fn push(&self, msg: M) -> Result<(), SendError<M>> {
        let mut state = self.lock();
        if state.closed {
            return Err(SendError::Dead(msg));
        }
        if state.queue.len() >= CAPACITY {
            if !std::mem::replace(&mut state.overflowed, true) {
                state.ring();
            }
            return Err(SendError::Full(msg));
        }
        state.queue.push_back(msg);
        // The session drains the whole queue before it waits, so only the first message
        // since then needs to wake it.
        if state.queue.len() == 1 {
            state.ring();
        }
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<M> {
        self.lock().queue.pop_front()
    }

    pub(crate) fn has_mail(&self) -> bool {
        let state = self.lock();
        !state.queue.is_empty() || state.overflowed
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The session runs on a coroutine again: messages wake it with `wake`.
    pub(crate) fn wake_with(&self, wake: Wakeup) {
        self.lock().notify = Some(wake);
    }

    /// The session is about to hibernate: messages call `ring` (its ward's). `false` if one
    /// is already there (then the session serves on, and nothing rings).
    pub(crate) fn sleep_on(&self, ring: Wakeup) -> bool {
        let mut state = self.lock();
        if !state.queue.is_empty() || state.overflowed {
            return false;
        }
        state.notify = Some(ring);
        true
    }

    /// The WebSocket has ended: drop what is queued, refuse what comes.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.notify = None;
        state.queue.clear();
    }
}
