//! The may_minihttp peer for `benches/plaintext.sh` and `benches/compare.sh`.
//!
//! Usage: `may_minihttp_hello ADDR WORKERS`, e.g. `may_minihttp_hello 127.0.0.1:8080 1`.
//!
//! The routes of Corral's demo app that the comparison loads, written the way may_minihttp's
//! own examples write them:
//!
//! - `GET /plaintext`: `200`, `Content-Type: text/plain`, `Hello, World!` (TechEmpower);
//! - `GET /json`: `{"message":"Hello, World!"}` through serde_json;
//! - `GET /work?us=N`: sleeps N µs with may's coroutine sleep (the worker serves others), `ok`;
//! - `POST /echo`: the request body back;
//!
//! anything else is a `404`. Only the worker count is tuned; every other may setting stays at
//! its default.

use std::io::{self, Read};
use std::process::ExitCode;
use std::time::Duration;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

/// One per connection; it holds no state, so it costs nothing to make.
struct Plaintext;

/// Upper bound for `/work`, µs, as Corral's demo.
const MAX_WORK_US: u64 = 10_000_000;

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

impl HttpService for Plaintext {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        let (path, query) = req.path().split_once('?').unwrap_or((req.path(), ""));
        match (req.method(), path) {
            ("GET", "/plaintext") => rsp.header("Content-Type: text/plain").body("Hello, World!"),
            ("GET", "/json") => {
                rsp.header("Content-Type: application/json");
                let message = Message {
                    message: "Hello, World!",
                };
                serde_json::to_writer(bytes::BufMut::writer(rsp.body_mut()), &message)?;
            }
            ("GET", "/work") => match micros(query) {
                Some(us) => {
                    may::coroutine::sleep(Duration::from_micros(us));
                    rsp.header("Content-Type: text/plain").body("ok");
                }
                None => {
                    rsp.status_code(400, "Bad Request");
                }
            },
            ("POST", "/echo") => {
                let mut body = Vec::new();
                req.body().read_to_end(&mut body)?;
                rsp.header("Content-Type: application/octet-stream")
                    .body_vec(body);
            }
            _ => {
                rsp.status_code(404, "Not Found");
            }
        }
        Ok(())
    }
}

/// `us=N` from a query string, at most `MAX_WORK_US`.
fn micros(query: &str) -> Option<u64> {
    let us = query.split('&').find_map(|pair| pair.strip_prefix("us="))?;
    us.parse().ok().filter(|&us| us <= MAX_WORK_US)
}

struct PlaintextFactory;

impl HttpServiceFactory for PlaintextFactory {
    type Service = Plaintext;

    fn new_service(&self, _conn_id: usize) -> Plaintext {
        Plaintext
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, workers] = args.as_slice() else {
        return usage("expected exactly two arguments");
    };
    let Some(workers) = workers.parse::<usize>().ok().filter(|&n| n > 0) else {
        return usage(&format!(
            "WORKERS must be a positive integer, not `{workers}`"
        ));
    };

    // Must happen before the first `go!`, which is inside `start`.
    may::config().set_workers(workers);

    let server = match PlaintextFactory.start(addr) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("may_minihttp_hello: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("may_minihttp_hello: listening on {addr} with {workers} worker(s)");

    // The accept coroutine only ends if it panics; the bench script stops us with a signal.
    match server.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => {
            eprintln!("may_minihttp_hello: the accept loop panicked");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("may_minihttp_hello: {problem}");
    eprintln!("usage: may_minihttp_hello ADDR WORKERS   (e.g. 127.0.0.1:8080 1)");
    ExitCode::from(2)
}
