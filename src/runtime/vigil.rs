//! Supervising what is not a process: a plain thread (a ward) or a bare coroutine (a
//! doorkeeper) that a supervisor cannot link to.
//!
//! Each such worker has a [`Vigil`], and the supervision tree holds a *stand-in* child for
//! it (`stand_in`): a process that starts the worker if it is not running, then waits. A
//! worker that dies reports it to its vigil, which tells every stand-in watching it; the
//! stand-in exits with [`Exit::Error`], its supervisor restarts it, and the restarted
//! stand-in finds the worker dead and starts a successor. So the restart intensity of the
//! tree applies to the worker as to any child, and a worker that cannot be started again
//! (its start fails each time) ends with the tree giving up, which the server treats as
//! fatal (`Server::run`).
//!
//! The worker's life is not tied to the stand-in's: a stand-in that is stopped (the tree
//! shutting down) or killed leaves its worker running, and its successor only watches again.
//! A worker stops when its owner asks it to (the wards on shutdown), and then tells no one.
//! Several trees may watch one worker (the doorkeepers belong to the process, and every
//! server in it has stand-ins for them).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use corral_actors::{ChildSpec, Ctx, Exit, Pid, Spawn};

/// Starts a worker; called with its vigil locked, so it must not wait for the worker.
pub(crate) type StartFn = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// Whether a worker runs, and who is to be told when it dies.
#[derive(Default)]
pub(crate) struct Vigil {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    alive: bool,
    watchers: Vec<Watcher>,
}

struct Watcher {
    /// The stand-in process; once it is dead, nobody listens here any more.
    pid: Pid,
    tell: Box<dyn FnOnce(&str) + Send>,
}

impl Vigil {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while it is held but `start` (which returns errors instead).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the worker with `start` unless it runs; from then on it counts as alive.
    pub fn keep(&self, start: &dyn Fn() -> io::Result<()>) -> io::Result<()> {
        let mut inner = self.lock();
        if !inner.alive {
            start()?;
            inner.alive = true;
        }
        Ok(())
    }

    /// Like `keep`, and `tell` is called with the reason when the worker dies.
    fn watch(
        &self,
        pid: Pid,
        tell: Box<dyn FnOnce(&str) + Send>,
        start: &dyn Fn() -> io::Result<()>,
    ) -> io::Result<()> {
        let mut inner = self.lock();
        if !inner.alive {
            start()?;
            inner.alive = true;
        }
        // Stand-ins that were stopped while their worker lived left their watch behind.
        inner.watchers.retain(|w| w.pid.is_alive());
        inner.watchers.push(Watcher { pid, tell });
        Ok(())
    }

    /// The worker died of `why`: every stand-in watching it is told (and exits).
    pub fn died(&self, why: &str) {
        let watchers = {
            let mut inner = self.lock();
            inner.alive = false;
            std::mem::take(&mut inner.watchers)
        };
        for watcher in watchers {
            (watcher.tell)(why);
        }
    }

    /// The worker stopped because it was asked to: nobody is told.
    pub fn ended(&self) {
        let mut inner = self.lock();
        inner.alive = false;
        inner.watchers.clear();
    }

    /// Whether the worker runs (started and not yet dead or ended).
    pub fn is_alive(&self) -> bool {
        self.lock().alive
    }
}

/// The message a stand-in waits for.
struct Died(String);

/// A supervisor child standing for the worker `vigil` keeps: its start function starts the
/// worker if it is not running (a failure is a failed start, counted by the supervisor),
/// and the process exits with `Exit::Error` when the worker dies, to be restarted.
pub(crate) fn stand_in(id: String, vigil: Arc<Vigil>, start: StartFn) -> ChildSpec {
    let name = id.clone();
    ChildSpec::new(id, move || -> Result<_, String> {
        let what = name.clone();
        let addr = Spawn::new()
            .try_spawn(move |mut ctx: Ctx<Died>| {
                let Died(why) = ctx.receive();
                ctx.stop(Exit::Error(format!("{what} died: {why}")))
            })
            .map_err(|err| err.to_string())?;
        let to = addr.clone();
        let tell = Box::new(move |why: &str| {
            // A stand-in killed meanwhile no longer listens; its successor watches again.
            let _ = to.send(Died(why.to_string()));
        });
        if let Err(err) = vigil.watch(addr.pid().clone(), tell, &*start) {
            addr.pid().kill();
            return Err(format!("cannot start {name}: {err}"));
        }
        Ok(addr)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn keep_starts_only_a_worker_that_is_not_alive() {
        let vigil = Vigil::default();
        let starts = AtomicUsize::new(0);
        let start = || {
            starts.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        vigil.keep(&start).expect("starts");
        vigil.keep(&start).expect("already running");
        assert_eq!(starts.load(Ordering::Relaxed), 1);
        vigil.died("on purpose");
        assert!(!vigil.is_alive());
        vigil.keep(&start).expect("starts again");
        assert_eq!(starts.load(Ordering::Relaxed), 2);
        vigil.ended();
        assert!(!vigil.is_alive());
    }

    #[test]
    fn a_failed_start_leaves_the_worker_dead() {
        let vigil = Vigil::default();
        let failed = vigil.keep(&|| Err(io::Error::other("no threads")));
        assert!(failed.is_err());
        assert!(!vigil.is_alive());
    }
}
