//! Run with: cargo run --release --example hello
//! Then:     curl http://127.0.0.1:3000/users/7
//!
//! A minimal Corral app: plain functions as handlers, one of them blocking in coroutine style.

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
    may::coroutine::sleep(Duration::from_millis(5));
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
    let server = Server::start(config, app)?;
    log::warn!("listening on http://{}", server.local_addr());
    // The server runs on its own threads; keep main alive until the process is stopped.
    loop {
        std::thread::park();
    }
}
