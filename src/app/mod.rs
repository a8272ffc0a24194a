//! The built-in applications: `demo` (the showcase routes) and `echo` (HTTP Garden echo).
//!
//! Not part of the library: the `corral` binary declares this module, and tests and the chat
//! example include it by path. It is written against Corral's public API only (`corral::…`,
//! never `crate::`), as a user's crate would be.

pub mod broker;
pub mod chat;
pub mod demo;
pub mod echo;
pub mod pubsub;

use corral::{AppKind, Config, Router};

/// The router for the configured built-in app.
pub fn build(config: &Config) -> Router {
    match config.server.app {
        AppKind::Demo => demo::router(config),
        AppKind::Echo => echo::router(),
        AppKind::Chat => chat::router(pubsub::Topics::from_config(config)),
    }
}
