//! The axum peer for `benches/compare.sh`.
//!
//! Usage: `axum_hello ADDR`, e.g. `axum_hello 127.0.0.1:8092`. One thread: a `current_thread`
//! tokio runtime, as Corral runs with one worker in the comparison.
//!
//! - `GET /plaintext`: `Hello, World!` (`text/plain`);
//! - `GET /json`: `{"message":"Hello, World!"}` through `axum::Json`;
//! - `GET /work?us=N`: `tokio::time::sleep` for N µs (the task parks), then `ok`;
//! - `POST /echo`: the request body back.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;

/// Upper bound for `/work`, µs, as Corral's demo.
const MAX_WORK_US: u64 = 10_000_000;

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

#[derive(serde::Deserialize)]
struct Work {
    us: u64,
}

async fn plaintext() -> &'static str {
    "Hello, World!"
}

async fn json() -> axum::Json<Message> {
    axum::Json(Message {
        message: "Hello, World!",
    })
}

async fn work(Query(work): Query<Work>) -> Result<&'static str, StatusCode> {
    if work.us > MAX_WORK_US {
        return Err(StatusCode::BAD_REQUEST);
    }
    tokio::time::sleep(Duration::from_micros(work.us)).await;
    Ok("ok")
}

async fn echo(body: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/octet-stream")], body)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr] = args.as_slice() else {
        eprintln!("usage: axum_hello ADDR   (e.g. 127.0.0.1:8092)");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("axum_hello: cannot build the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = Router::new()
        .route("/plaintext", get(plaintext))
        .route("/json", get(json))
        .route("/work", get(work))
        .route("/echo", post(echo));
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr.as_str()).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("axum_hello: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                eprintln!("axum_hello: TCP_NODELAY: {e}");
            }
        });
        eprintln!("axum_hello: listening on {addr} (current_thread runtime)");
        match axum::serve(listener, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("axum_hello: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
