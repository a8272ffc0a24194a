//! Where a connection runs. One connection, start to end:
//!
//! 1. The acceptor thread (`accept.rs`, a plain OS thread so a busy scheduler never delays
//!    accepting) takes a socket from the listener and sets TCP_NODELAY.
//! 2. `policy.rs` chooses a scheduler `k` (round-robin for now; the cost-based policy
//!    replaces only this choice).
//! 3. `fd.rs` moves the socket onto a descriptor number ≡ k (mod workers): may registers a
//!    socket with the epoll of worker `fd % workers` and wakes its coroutine there, so the
//!    number *is* the placement.
//! 4. The socket is wrapped as a may `TcpStream` (registered with worker k's epoll) and its
//!    connection coroutine is spawned on k's queue; it never leaves k afterwards (may is
//!    built without `work_steal`).

pub mod accept;
pub mod cost;
pub mod fd;
pub mod policy;
pub mod queue;
pub mod spawn;
pub mod supervisor;
