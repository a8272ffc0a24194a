//! Instructions per request in the connection loop, counted by valgrind (cachegrind), not
//! timed: a count does not move with the load of a shared machine, so it can compare two
//! builds of the loop on a busy box where a timing cannot (`benches/instructions.sh`).
//!
//! This binary only serves `rounds` rounds of one case over the in-memory transport
//! (`corral::__bench::Connections`, no kernel, no coroutine) and exits; the script runs it
//! under cachegrind at two round counts and divides the difference by the extra requests,
//! which cancels what start-up costs.
//!
//! `instructions CASE ROUNDS`, CASE one of `keep_alive` (one request per read),
//! `pipelined` (16 per read), `echo` (POST of 4 KiB), `static` (a 4 KiB file from
//! `StaticFiles`' cache). Without arguments (as `cargo bench`
//! runs it) it serves each case once, as a smoke test.

use std::process::ExitCode;

use corral::__bench::Connections;
use std::time::Duration;

use corral::{Request, Router, StaticFiles};

const WRK_PLAINTEXT: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
/// Requests per read in the pipelined case (wrk's pipeline.lua in benches/compare.sh).
const DEPTH: usize = 16;

fn router() -> Router {
    Router::new()
        .get("/plaintext", |_: &Request| "Hello, World!")
        .post("/echo", |req: &Request| req.body().to_vec())
        // Revalidated once an hour: every request is a cache hit, none a trip to the pool.
        .get(
            "/static/*path",
            StaticFiles::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/static"))
                .revalidate_after(Duration::from_secs(3600)),
        )
}

/// One read's bytes, and how many requests they carry.
fn script(case: &str) -> Option<(Vec<u8>, usize)> {
    match case {
        "keep_alive" => Some((WRK_PLAINTEXT.to_vec(), 1)),
        "pipelined" => Some((WRK_PLAINTEXT.repeat(DEPTH), DEPTH)),
        "echo" => {
            let head = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
                Content-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n";
            Some(([head.as_slice(), &[b'a'; 4096]].concat(), 1))
        }
        "static" => Some((
            b"GET /static/4k.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec(),
            1,
        )),
        _ => None,
    }
}

fn serve(conns: &Connections, case: &str, rounds: usize) -> Result<usize, String> {
    let (bytes, per_round) = script(case).ok_or_else(|| format!("unknown case {case:?}"))?;
    conns
        .serve(&[&bytes], rounds)
        .ok_or_else(|| format!("{case}: the loop closed the connection early"))?;
    Ok(rounds * per_round)
}

fn main() -> ExitCode {
    let conns = match Connections::new(router()) {
        Ok(conns) => conns,
        Err(err) => {
            eprintln!("instructions: cannot build the server state: {err}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [case, rounds] => match rounds.parse() {
            Ok(rounds) => serve(&conns, case, rounds).map(|_| ()),
            Err(_) => Err(format!("ROUNDS must be a number, not {rounds:?}")),
        },
        // `cargo bench` passes `--bench`: a smoke run of every case.
        _ => ["keep_alive", "pipelined", "echo", "static"]
            .iter()
            .try_for_each(|case| serve(&conns, case, 1).map(|_| ())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("instructions: {err}");
            ExitCode::FAILURE
        }
    }
}
