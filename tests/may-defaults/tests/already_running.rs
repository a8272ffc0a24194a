//! A coroutine spawned before `Server::start` starts may's scheduler with whatever may was
//! configured with; Corral's worker count is then ignored, and the server must say so.
//!
//! One worker makes this deterministic even with `work_steal` on (this crate's may has it):
//! a single worker has no one to steal from, so the census of workers is exact.

use corral::{Router, Server, ServerError};
use corral::{RuntimeError, WorkerCount};

#[test]
fn a_scheduler_started_before_the_server_is_refused_with_its_worker_count() {
    may::config().set_workers(1);
    may::go!(|| {}).join().expect("the early coroutine ran");

    let config = corral_may_defaults::test_config();
    assert_eq!(config.server.workers, 2);
    let router = Router::new().get("/", |_: &corral::Request| "never served");
    let err = Server::start(config, router)
        .err()
        .expect("Server::start refuses a scheduler already running");
    assert!(
        matches!(
            err,
            ServerError::Runtime(RuntimeError::SchedulerAlreadyRunning {
                running: WorkerCount::Exactly(1),
                requested: 2,
            })
        ),
        "wrong refusal: {err}"
    );
    let message = err.to_string();
    for needle in [
        "already running with 1 worker before Corral configured it for 2 workers",
        "a coroutine was spawned before Server::start",
        "start the server first",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}
