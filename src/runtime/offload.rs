//! Running truly blocking work (std::fs, a blocking client library, heavy CPU) off the
//! schedulers: the job runs on a small thread pool while the calling coroutine waits on a
//! may channel, so the scheduler keeps serving its other connections.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

/// Threads in the offload pool. Blocking jobs are I/O-bound, so more than the core count.
const OFFLOAD_THREADS: usize = 8;

static POOL: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Runs `f` on the offload pool and waits for it without blocking the scheduler. A panic in
/// `f` resumes in the caller (so a handler's panic isolation still applies).
pub fn offload<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (reply, result) = may::sync::mpsc::channel();
    let job: Job = Box::new(move || {
        let outcome = catch_unwind(AssertUnwindSafe(f));
        // The caller may have gone (its coroutine was cancelled): nothing to do then.
        let _ = reply.send(outcome);
    });
    if pool().send(job).is_err() {
        panic!("offload: the pool has stopped");
    }
    match result.recv() {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("offload: the job was dropped without an answer"),
    }
}

fn pool() -> &'static mpsc::Sender<Job> {
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..OFFLOAD_THREADS {
            let rx = rx.clone();
            let spawned = thread::Builder::new()
                .name(format!("corral-offload-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                log::error!("could not start offload thread {i}: {err}");
            }
        }
        tx
    })
}
