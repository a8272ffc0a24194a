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
//! let server = Server::start(Config::embedded(), Router::new().get("/", hello))?;
//! println!("listening on {}", server.local_addr());
//! # Ok::<(), corral::ServerError>(())
//! ```

pub mod app;
pub mod config;
pub mod hibernate;
pub mod http;
pub mod metrics;
pub mod placement;
pub mod router;
pub mod runtime;
pub mod server;
pub mod stats;

pub use config::Config;
pub use http::request::Request;
pub use http::response::{Body, BodyWrite, HttpError, IntoResponse, Json, Response};
pub use http::status::Status;
pub use router::Router;
pub use runtime::offload::offload;
pub use server::{Server, ServerError};
