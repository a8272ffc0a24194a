//! Exit reasons and the signals between processes: links, monitors, exit signals, kill.
//!
//! The rules are Erlang's:
//! - When a process exits, every linked process gets an exit signal carrying the reason.
//!   A process that traps exits receives it as a message ([`ExitSignal`]); otherwise a
//!   `Normal` reason is ignored and any other reason terminates it with
//!   [`Exit::Linked`]`(from, reason)`.
//! - A monitor is one-way: the watcher gets one [`Down`] message and is never terminated.
//! - [`kill`] cannot be trapped: the target ends with [`Exit::Killed`].
//!
//! Termination uses may's coroutine cancellation: [`kill`] (and a non-trapped exit signal)
//! records the reason, sets the coroutine's cancel flag and, if it is parked, wakes it; it
//! unwinds from there, and the process wrapper records the reason that was set here.
//!
//! What that can interrupt: a process parked in, or next calling, any may blocking point —
//! `receive`, `call`, a send on a full mailbox, `may::sync`, `may::net` I/O,
//! `may::coroutine::sleep` or `yield_now`.
//! What it cannot: may has no preemption, so a process computing without reaching such a
//! point (a busy loop, a long computation) or blocked in a non-may call (`std::thread::sleep`,
//! `std::net`, a contended `std::sync::Mutex`) keeps running until it gets there; it also keeps
//! its worker thread, so the coroutines queued on that worker wait too. A supervisor does not
//! wait for such a child forever (see [`Shutdown`](crate::Shutdown)).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::process::{Phase, Pid};
use crate::registry;

/// Why a process ended. Never a bare string: a supervisor decides restarts by matching on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The body returned normally.
    Normal,
    /// Asked to stop (by a supervisor or a parent), and did. Also how a supervisor that
    /// exceeded its restart intensity exits, as in OTP: its children are stopped, and only a
    /// `Permanent` parent starts it again.
    Shutdown,
    /// Ended by [`kill`] (untrappable) or a supervisor's brutal kill.
    Killed,
    /// The body panicked; the panic message.
    Panic(String),
    /// The body returned an error; its message.
    Error(String),
    /// A linked process exited abnormally and this one did not trap exits.
    Linked(Pid, Box<Exit>),
}

impl Exit {
    /// `Normal` is the only reason that does not propagate through links.
    pub fn is_normal(&self) -> bool {
        matches!(self, Exit::Normal)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Normal => f.write_str("normal"),
            Exit::Shutdown => f.write_str("shutdown"),
            Exit::Killed => f.write_str("killed"),
            Exit::Panic(msg) => write!(f, "panic: {msg}"),
            Exit::Error(msg) => write!(f, "error: {msg}"),
            Exit::Linked(pid, why) => write!(f, "linked {pid} exited: {why}"),
        }
    }
}

/// An exit signal turned into a message, for a process that traps exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitSignal {
    /// The process that exited (or that sent the signal with [`Ctx::exit`](crate::Ctx::exit)).
    pub from: Pid,
    pub reason: Exit,
}

/// The one message a monitor delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub pid: Pid,
    pub reason: Exit,
    pub monitor: MonitorRef,
}

/// Identifies one monitor, for [`demonitor`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MonitorRef {
    pub(crate) target: Pid,
    pub(crate) id: u64,
}

impl MonitorRef {
    /// The monitored process.
    pub fn target(&self) -> &Pid {
        &self.target
    }
}

pub(crate) type MonitorFn = Box<dyn FnOnce(Down) + Send>;
pub(crate) type TrapFn = std::sync::Arc<dyn Fn(ExitSignal) + Send + Sync>;

static NEXT_MONITOR: AtomicU64 = AtomicU64::new(1);

/// Link two processes (idempotent). If either is already dead, the other gets the exit signal
/// at once, with the real reason.
pub fn link(a: &Pid, b: &Pid) {
    if a == b {
        return;
    }
    if let Err(reason) = add_link(a, b) {
        deliver_exit(b, a, &reason, true);
        return;
    }
    if let Err(reason) = add_link(b, a) {
        remove_link(a, b);
        deliver_exit(a, b, &reason, true);
    }
}

/// Remove a link in both directions (idempotent).
pub fn unlink(a: &Pid, b: &Pid) {
    remove_link(a, b);
    remove_link(b, a);
}

fn add_link(on: &Pid, peer: &Pid) -> Result<(), Exit> {
    let mut st = on.state();
    if let Phase::Dead(reason) = &st.phase {
        return Err(reason.clone());
    }
    if !st.links.contains(peer) {
        st.links.push(peer.clone());
    }
    Ok(())
}

fn remove_link(on: &Pid, peer: &Pid) {
    on.state().links.retain(|p| p != peer);
}

/// Call `f` once with a [`Down`] when `target` exits (at once if it already has). This is the
/// raw form; inside a process, [`Ctx::monitor`](crate::Ctx::monitor) turns `Down` into a message.
pub fn monitor_with(target: &Pid, f: impl FnOnce(Down) + Send + 'static) -> MonitorRef {
    let mref = MonitorRef {
        target: target.clone(),
        id: NEXT_MONITOR.fetch_add(1, Ordering::Relaxed),
    };
    let dead = {
        let mut st = target.state();
        match &st.phase {
            Phase::Dead(reason) => Some(reason.clone()),
            _ => {
                st.monitors.push((mref.id, Box::new(f)));
                return mref;
            }
        }
    };
    if let Some(reason) = dead {
        f(Down {
            pid: target.clone(),
            reason,
            monitor: mref.clone(),
        });
    }
    mref
}

/// Cancel a monitor; no `Down` is delivered for it afterwards. Returns whether it was active.
pub fn demonitor(mref: &MonitorRef) -> bool {
    let mut st = mref.target.state();
    let before = st.monitors.len();
    st.monitors.retain(|(id, _)| *id != mref.id);
    st.monitors.len() != before
}

/// Terminate a process with [`Exit::Killed`]. Cannot be trapped.
pub fn kill(pid: &Pid) {
    pid.terminate(Exit::Killed);
}

/// Send an exit signal, as Erlang's `exit(Pid, Reason)`: a trapping target gets an
/// [`ExitSignal`] message; otherwise `Normal` is ignored and any other reason terminates it.
/// `Exit::Killed` is the untrappable kill.
pub fn exit(from: &Pid, to: &Pid, reason: Exit) {
    if reason == Exit::Killed {
        kill(to);
    } else {
        deliver_exit(to, from, &reason, false);
    }
}

/// Deliver an exit signal to `to`. `via_link` wraps the reason in `Exit::Linked`.
pub(crate) fn deliver_exit(to: &Pid, from: &Pid, reason: &Exit, via_link: bool) {
    let trap = {
        let st = to.state();
        if matches!(st.phase, Phase::Dead(_)) {
            return;
        }
        st.trap.clone()
    };
    if let Some(trap) = trap {
        trap(ExitSignal {
            from: from.clone(),
            reason: reason.clone(),
        });
        return;
    }
    if reason.is_normal() {
        return;
    }
    let why = if via_link {
        Exit::Linked(from.clone(), Box::new(reason.clone()))
    } else {
        reason.clone()
    };
    to.terminate(why);
}

/// What a dead process still owes the world, taken under its lock when it died.
pub(crate) struct Obituary {
    pub(crate) links: Vec<Pid>,
    pub(crate) monitors: Vec<(u64, MonitorFn)>,
    pub(crate) names: Vec<String>,
}

impl Obituary {
    /// Unregister names first (so a `Down` receiver sees the name gone), then signal links,
    /// then monitors. Never blocks: the dying coroutine may carry a cancel flag.
    pub(crate) fn deliver(self, pid: &Pid, reason: &Exit) {
        registry::forget(pid, &self.names);
        for peer in self.links {
            remove_link(&peer, pid);
            deliver_exit(&peer, pid, reason, true);
        }
        for (id, notify) in self.monitors {
            notify(Down {
                pid: pid.clone(),
                reason: reason.clone(),
                monitor: MonitorRef {
                    target: pid.clone(),
                    id,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_is_normal() {
        assert!(Exit::Normal.is_normal());
        for e in [Exit::Shutdown, Exit::Killed, Exit::Panic("x".into())] {
            assert!(!e.is_normal(), "{e}");
        }
    }

    #[test]
    fn display_carries_the_panic_message() {
        assert_eq!(Exit::Panic("boom".into()).to_string(), "panic: boom");
    }
}
