//! The built-in applications: `demo` (the showcase routes) and `echo` (HTTP Garden echo).

pub mod chat;
pub mod demo;
pub mod echo;
pub mod pubsub;
pub mod static_files;

use crate::config::{AppKind, Config};
use crate::router::Router;

/// The router for the configured built-in app.
pub fn build(config: &Config) -> Router {
    match config.server.app {
        AppKind::Demo => demo::router(config),
        AppKind::Echo => echo::router(),
    }
}
