//! Where a connection runs (Pauley 2019 §2.3 on may). One connection, start to end:
//!
//! 1. **Accept** (`accept.rs`): the acceptor, a plain OS thread so that a scheduler stuck in
//!    a CPU-heavy handler never delays accepting, takes a socket from the listener.
//! 2. **Choose** (`policy.rs`): a pure function of per-scheduler load snapshots picks k. Under
//!    `cost`, load = Σ expected cost of in-flight requests + (queued + not-yet-read
//!    connections) × the mean cost of the request mix: a connection's first route is
//!    unknown until it is read, and counting such connections stops a burst of accepts from
//!    herding onto the scheduler that looked idle. The running handler counts only what is
//!    left of it, plus the requests piling up unread behind it (`load.rs`).
//! 3. **Admit** (`queue.rs`): if k is under its admission cap (or there is none) the
//!    connection starts now; otherwise it waits in k's queue as a plain socket, registered
//!    with no epoll, where k — or an idle scheduler stealing it — will start it.
//! 4. **Dup fd** (`fd.rs`, `spawn.rs`): starting on k moves the socket onto a descriptor
//!    ≡ k (mod workers): may registers a socket with the epoll of worker `fd % workers` and
//!    wakes its coroutine there, so the number *is* the placement.
//! 5. **Spawn**: the connection coroutine starts on k's queue and never leaves k (may is
//!    built without `work_steal`; `runtime::home` brings it back if a sleep resumed it on
//!    may's timer thread).
//! 6. **First route**: once a request is parsed and routed, its route's expected cost joins
//!    k's load until the handler returns (`Stats::expect_load`).
//! 7. **Cost update** (`cost.rs`): the handler's occupancy is recorded in k's cost shard; the
//!    supervisor (`supervisor.rs`) merges the shards into the table step 6 reads.

pub mod accept;
pub mod cost;
pub mod fd;
pub mod load;
pub mod peek;
pub mod policy;
pub mod queue;
pub mod spawn;
pub mod supervisor;
