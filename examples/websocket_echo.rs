//! Run with: cargo run --release --example websocket_echo
//! Then talk to ws://127.0.0.1:9001/ with any WebSocket client: every message comes back.
//! `LISTEN=127.0.0.1:9002` picks another address. This is the server the Autobahn
//! testsuite's fuzzing client runs against (`scripts/autobahn.sh`).
//!
//! A blocking WebSocket handler: it owns the socket on its connection's coroutine, and
//! `recv` / `send` read as plain sequential code.

#![allow(clippy::print_stdout)]

use corral::{Config, Request, Response, Router, Server, WebSocket};

/// The fuzzing client's largest messages are 16 MiB (its cases 9.*).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

fn echo(req: &Request) -> Response {
    req.websocket(|ws: &mut WebSocket<'_, ()>| {
        while let Ok(message) = ws.recv() {
            if ws.send(message).is_err() {
                break;
            }
        }
    })
}

fn main() -> Result<(), corral::ServerError> {
    env_logger::init();
    let mut config = Config::embedded();
    config.server.listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:9001".into());
    config.limits.max_websocket_message_bytes = MAX_MESSAGE_BYTES;
    Server::run_with(config, Router::new().get("/", echo), |server| {
        println!("websocket echo on ws://{}/", server.local_addr());
    })
}
