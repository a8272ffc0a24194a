//! The may_minihttp peer for `benches/plaintext.sh`.
//!
//! Usage: `may_minihttp_hello ADDR WORKERS`, e.g. `may_minihttp_hello 127.0.0.1:8080 1`.
//!
//! Serves the TechEmpower plaintext shape: `GET /plaintext` answers `200` with
//! `Content-Type: text/plain` and the body `Hello, World!`; anything else is a `404`.
//! Only the worker count is tuned; every other may setting stays at its default.

use std::io;
use std::process::ExitCode;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

/// One per connection; it holds no state, so it costs nothing to make.
struct Plaintext;

impl HttpService for Plaintext {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        if req.method() == "GET" && req.path() == "/plaintext" {
            rsp.header("Content-Type: text/plain").body("Hello, World!");
        } else {
            rsp.status_code(404, "Not Found");
        }
        Ok(())
    }
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
