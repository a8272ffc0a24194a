//! Run with: cargo run --release --example chat
//! Then open http://127.0.0.1:3001/ in two browser windows, or:
//!     curl -N http://127.0.0.1:3001/events &   curl -d 'hello' http://127.0.0.1:3001/say
//!
//! A chat on Server-Sent Events and long-polling: every handler is a plain function, the
//! waiting ones block in sequential code while thousands of others wait alongside.

#![allow(clippy::print_stdout)]

// The chat app lives with the built-in apps in src/app (so `corral --app chat` serves it
// too), written against the public API only; this example compiles it from there.
#[path = "../src/app/mod.rs"]
#[allow(dead_code)]
mod app;

use std::time::Duration;

use corral::{Config, Server};

fn main() -> Result<(), corral::ServerError> {
    env_logger::init();
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:3001".into();
    let chat = app::chat::router(app::pubsub::Topics::new(
        Duration::from_secs(30),
        Duration::from_secs(15),
    ));
    Server::run_with(config, chat, |server| {
        println!("chat on http://{}/", server.local_addr());
    })
}
