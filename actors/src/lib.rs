//! Erlang/OTP-style processes and supervision on `may` coroutines, in direct blocking style.
//!
//! - [`spawn`] runs a body in a coroutine with a bounded mailbox and returns its typed
//!   [`Addr`]; [`Addr::send`], [`Addr::call`] (request/reply with a timeout), and inside the
//!   body [`Ctx::receive`] / [`Ctx::receive_timeout`] / [`Ctx::watch`].
//! - [`Exit`] reasons, [`link`], [`monitor_with`] / [`Ctx::monitor`], [`kill`], trapping exits
//!   with [`Ctx::trap_exit`].
//! - A name [`registry`](register).
//! - [`Adopted`] processes ([`Spawn::adopt`]): a process made of code that already runs, such
//!   as a server's connection, whose mailbox costs nothing until used and whose kills and
//!   exit signals interrupt its receive (or run its [`Adopted::on_next`] callback) instead
//!   of cancelling a coroutine.
//! - [`Supervisor`]s with child specs, the three OTP strategies, restart intensity and
//!   escalation, dynamic children, restart counts and a tree listing.
//!
//! The may runtime is process-global: configure it (`may::config().set_workers(n)`) before
//! the first spawn. Process bodies must not block their worker thread (`std::thread::sleep`,
//! `std::net`, contended `std::sync::Mutex`): use may's versions. See `README.md`.

mod mailbox;
mod process;
mod registry;
mod signal;
pub mod supervisor;

pub use mailbox::{DEFAULT_CAPACITY, Overflow, ReplyTo, SendError};
pub use process::{
    Addr, Adopted, CallError, Ctx, Pid, Spawn, SpawnError, Watch, quiet_kill_panics, spawn,
};
pub use registry::{RegistryError, register, registered, unregister, whereis, whereis_pid};
pub use signal::{
    Down, Exit, ExitSignal, MonitorRef, demonitor, exit, kill, link, monitor_with, unlink,
};
pub use supervisor::{
    ChildInfo, ChildKind, ChildSpec, IntoStarted, Restart, Shutdown, StartError, Strategy,
    SupError, SupRef, SupTree, Supervisor,
};
