//! Corral: an HTTP/1.1 server in the Erlang style. Every connection is a `may` coroutine
//! whose handler is plain blocking code; pinned per-core schedulers multiplex them over epoll.
//!
//! ```no_run
//! use corral::{Config, Request, Router, Server};
//!
//! fn hello(_req: &Request) -> &'static str {
//!     "Hello, World!"
//! }
//!
//! fn main() -> Result<(), corral::ServerError> {
//!     Server::run(Config::embedded(), Router::new().get("/", hello))
//! }
//! ```
//!
//! The layers, bottom up (docs/architecture.md): `http` (the protocol, pure), `router`,
//! `config`, `stats`, `runtime` (may setup, going home, offload, the watchdog), `placement`
//! (where a connection runs), `conn` (the connection process and its hibernation), `server`
//! (wiring); beside them `files` ([`StaticFiles`], a handler serving a directory).
//! Only the items re-exported below are public.
#![warn(missing_docs)]

mod config;
mod conn;
mod files;
mod http;
mod metrics;
mod placement;
mod router;
mod runtime;
mod server;
mod stats;
mod websocket;

/// Internals for the micro-benchmarks (`benches/micro.rs`) only: the modules above are
/// private, and a bench target can reach nothing else. Compiled only with the non-default
/// feature `bench-internals` and hidden from the docs: not API (see the module's header).
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
#[path = "bench_internals.rs"]
pub mod __bench;

pub use config::{
    AppKind, CliOverrides, Config, ConfigError, DemoConfig, EnvOverrides, Limits, LogConfig,
    LogFormat, LogLevel, PlacementConfig, Policy, PubsubConfig, RuntimeConfig, ServerConfig,
    Timeouts,
};
pub use conn::process::Process;
pub use conn::wait::Waker;
pub use files::StaticFiles;
pub use http::parse::Version;
pub use http::request::{Request, percent_decode};
pub use http::response::{Body, BodyWrite, HeaderError, HttpError, IntoResponse, Json, Response};
pub use http::status::Status;
pub use http::wait::Wake;
pub use metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, metrics_handler, render_metrics};
pub use router::{Handler, RouteError, Router};
pub use runtime::offload::offload;
pub use runtime::{RuntimeError, WorkerCount};
pub use server::{Reconfigured, Server, ServerError, ServerStats};
pub use websocket::{Incoming, WebSocket, WsClosed, WsHandler, WsMessage, WsSender};

/// The `may` runtime Corral is built on, with the features Corral needs. Use it (e.g.
/// `corral::may::sync::mpsc`, `corral::may::net`) rather than a `may` line of your own:
/// another line with may's default features would turn on its `work_steal` for the whole
/// build (see the README's Caveats).
pub use may;
pub use runtime::sleep::sleep;
