//! Run with: cargo run --release --example hello
//! Then:     curl http://127.0.0.1:3000/users/7
//!
//! A minimal Corral app: plain functions as handlers, one of them blocking in coroutine style.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use corral::{Config, HttpError, Json, Request, Router, Server};

#[derive(serde::Serialize)]
struct User {
    id: u64,
    name: String,
}

/// Parses the path parameter, "queries a database", answers JSON. A bad id is a 400.
fn get_user(req: &Request) -> Result<Json<User>, HttpError> {
    let id: u64 = req.param_as("id")?;
    // Parks only this connection's coroutine; the scheduler serves others meanwhile.
    corral::sleep(Duration::from_millis(5));
    Ok(Json(User {
        id,
        name: format!("user {id}"),
    }))
}

fn main() -> Result<(), corral::ServerError> {
    env_logger::init();
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:3000".into();
    let app = Router::new()
        .get("/users/:id", get_user)
        .post("/echo", |req: &Request| req.body().to_vec());
    // Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish.
    Server::run_with(config, app, |server| {
        println!("hello listening on http://{}", server.local_addr());
    })
}
