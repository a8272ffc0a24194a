//! Micro-benchmarks: where the nanoseconds of one request go, without the kernel in the
//! picture (docs/architecture.md §3, "The path of one request").
//!
//! ```sh
//! cargo bench --features bench-internals --bench micro
//! cargo bench --features bench-internals --bench micro -- --warm-up-time 1 --measurement-time 3
//! cargo bench --features bench-internals --bench micro -- conn/     # one group
//! ```
//!
//! Every case times one unit of work, so criterion's `time:` line reads directly as ns per
//! request (per head parsed, per body decoded, per response encoded, per placement decision):
//!
//! - `parse_head/*`: `http::parse::parse_head` on wrk's request and on a browser's
//!   (12 fields), into a reused `Head` as a connection does;
//! - `chunked/*`: a whole chunked body through a fresh `ChunkedDecoder`;
//! - `encode/*`: a handler's `/plaintext` and `/json` answers, `IntoResponse` included, into
//!   a reused write buffer as HTTP/1.1 keep-alive responses;
//! - `conn/*`: the connection loop (`conn/serve.rs`: read, parse, route, handler, cost
//!   record, encode, write) over an in-memory transport on the bench's thread: keep-alive
//!   requests one per read and write (`keep_alive_x1`), pipelined batches of 16 in one read
//!   answered with one write (`pipelined_x16`, time per request), and `POST /echo` of 4 KiB.
//!   No may scheduler and no socket: what the server does on top of the loop (epoll,
//!   coroutine switches, syscalls) is what benches/compare.sh sees and this does not;
//! - `cost/*`: the per-request cost-table update (`CostTable::record` and the status count)
//!   and the handler's stopwatch (two clock reads);
//! - `placement/*`: the acceptor's decision (a load snapshot of every scheduler, then the
//!   `cost` policy's choice) for 2 and 8 schedulers.
//!
//! The internals are reached through `corral::__bench`, compiled only with the
//! `bench-internals` feature (this target requires it).

use std::hint::black_box;
use std::time::{Duration, Instant};

use corral::__bench::{
    ChunkedBodies, Connections, Costs, HeadParser, Placer, encode_response, stopwatch,
};
use corral::{IntoResponse, Json, Policy, Request, Router};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// What wrk sends for `/plaintext`.
const WRK_PLAINTEXT: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// A browser's navigation request: 12 header fields, ~520 bytes.
const BROWSER: &[u8] = b"GET /users/42?tab=profile HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: none\r\n\
Priority: u=0, i\r\n\r\n";

/// Requests per pipelined batch in `conn/pipelined_x16`.
const DEPTH: usize = 16;

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_head");
    group.throughput(Throughput::Elements(1));
    for (name, request) in [
        ("wrk_plaintext", WRK_PLAINTEXT),
        ("browser_12_fields", BROWSER),
    ] {
        let mut parser = HeadParser::default();
        assert_eq!(parser.parse(request), Some(request.len()), "{name}");
        group.bench_function(name, |b| b.iter(|| parser.parse(black_box(request))));
    }
    group.finish();
}

/// A chunked body of `chunks` chunks of `size` bytes each, and its decoded length.
fn chunked_body(chunks: usize, size: usize) -> (Vec<u8>, usize) {
    let mut body = Vec::new();
    for i in 0..chunks {
        body.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, size));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    (body, chunks * size)
}

fn chunked(c: &mut Criterion) {
    let bodies = ChunkedBodies::default();
    let mut group = c.benchmark_group("chunked");
    let small = (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec(), 11);
    for (name, (input, decoded)) in [
        ("hello_world_2_chunks", small),
        ("4k_in_16_chunks", chunked_body(16, 256)),
        ("64k_in_4_chunks", chunked_body(4, 16 * 1024)),
    ] {
        let mut out = Vec::with_capacity(decoded);
        assert_eq!(bodies.decode(&input, &mut out), Some(input.len()), "{name}");
        assert_eq!(out.len(), decoded, "{name}");
        group.throughput(Throughput::Bytes(decoded as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                bodies.decode(black_box(&input), &mut out)
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    group.bench_function("plaintext", |b| {
        b.iter(|| {
            out.clear();
            encode_response(&mut out, black_box("Hello, World!").into_response())
        })
    });
    group.bench_function("json", |b| {
        b.iter(|| {
            out.clear();
            let message = Message {
                message: black_box("Hello, World!"),
            };
            encode_response(&mut out, Json(message).into_response())
        })
    });
    group.finish();
}

/// The routes the loop is driven with: Corral's demo `/plaintext` and `/echo`.
fn router() -> Router {
    Router::new()
        .get("/plaintext", |_: &Request| "Hello, World!")
        .post("/echo", |req: &Request| req.body().to_vec())
}

/// Times `requests` requests sent as `rounds` rounds of `script`, scaled to `iters`.
fn per_request(conns: &Connections, script: &[&[u8]], per_round: u64, iters: u64) -> Duration {
    let rounds = iters.div_ceil(per_round);
    let started = Instant::now();
    let written = conns.serve(black_box(script), rounds as usize);
    let elapsed = started.elapsed();
    assert!(written.is_some(), "the loop closed the connection early");
    let served = (rounds * per_round) as u128;
    Duration::from_nanos((elapsed.as_nanos() * u128::from(iters) / served) as u64)
}

fn conn(c: &mut Criterion) {
    let conns = Connections::new(router()).expect("a server's state for the bench");
    // What one answer is, and that the loop answers as the cases below expect: every
    // keep-alive request with its own write, every pipelined batch with one.
    let one = conns.serve(&[WRK_PLAINTEXT], 1).expect("served");
    let answer = one.bytes;
    let singles = conns.serve(&[WRK_PLAINTEXT], 100).expect("served");
    assert_eq!((singles.writes, singles.bytes), (100, 100 * answer));
    let batch = WRK_PLAINTEXT.repeat(DEPTH);
    let batches = conns.serve(&[&batch], 10).expect("served");
    assert_eq!(
        (batches.writes, batches.bytes),
        (10, 10 * DEPTH as u64 * answer),
        "one write per pipelined batch"
    );
    let echo = [
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n".as_slice(),
        &[b'a'; 4096],
    ]
    .concat();
    let echoed = conns.serve(&[&echo], 10).expect("served");
    assert_eq!(echoed.writes, 10);
    assert!(echoed.bytes > 10 * 4096, "{echoed:?}");

    let mut group = c.benchmark_group("conn");
    group.throughput(Throughput::Elements(1));
    group.bench_function("keep_alive_x1", |b| {
        b.iter_custom(|iters| per_request(&conns, &[WRK_PLAINTEXT], 1, iters))
    });
    group.bench_function("pipelined_x16", |b| {
        b.iter_custom(|iters| per_request(&conns, &[&batch], DEPTH as u64, iters))
    });
    group.bench_function("post_echo_4k", |b| {
        b.iter_custom(|iters| per_request(&conns, &[&echo], 1, iters))
    });
    group.finish();
}

fn cost(c: &mut Criterion) {
    let costs = Costs::new(1, 8);
    let slot = costs.slot(3);
    let mut group = c.benchmark_group("cost");
    group.throughput(Throughput::Elements(1));
    group.bench_function("record_and_count_status", |b| {
        b.iter(|| {
            costs.record(
                0,
                black_box(slot),
                Duration::from_nanos(800),
                Duration::from_nanos(1500),
            )
        })
    });
    group.bench_function("stopwatch_start_stop", |b| b.iter(stopwatch));
    group.finish();
}

fn placement(c: &mut Criterion) {
    let mut group = c.benchmark_group("placement");
    group.throughput(Throughput::Elements(1));
    for workers in [2, 8] {
        let routes = 8;
        let mut placer = Placer::new(workers, routes, Policy::Cost);
        // Unequal schedulers, and a cost table with a request mix merged into it.
        for k in 0..workers {
            for _ in 0..=k {
                placer.place_on(k, 50_000);
            }
            placer.record(k, (k % routes) as u32, Duration::from_micros(2 + k as u64));
        }
        let mut fd = 100;
        group.bench_function(format!("cost_{workers}_schedulers"), |b| {
            b.iter(|| {
                fd += 1;
                placer.choose(black_box(fd))
            })
        });
    }
    group.finish();
}

criterion_group!(micro, parse, chunked, encode, conn, cost, placement);
criterion_main!(micro);
