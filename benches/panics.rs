//! Panics under load (#11 §3): a closed-loop client that sends `--requests` requests over
//! `--connections` keep-alive connections, every `--panic-every`th of them `GET /panic` (the
//! demo's handler that panics) and the rest `GET /plaintext`. It is the client half of
//! `benches/panics.sh`, which also watches the server's memory and its panic counter.
//!
//! Run with: `cargo bench --bench panics -- --addr 127.0.0.1:8080 --requests 1000000`
//!
//! Each connection is a plain thread (blocking I/O, 5 s timeouts) that takes request numbers
//! from a shared counter, so exactly `requests / panic_every` of them panic whatever the
//! interleaving. A panic must be answered `500` with `Connection: close`, and the server must
//! then close; the thread reconnects. Every other answer must be `200 Hello, World!`. Anything
//! else is counted as wrong (a status or body) or as an error (I/O, a timeout, a close in the
//! middle of an answer), and the thread reconnects.
//!
//! Output: a summary, then `RESULT key=value ...` for scripts. Exit status 0 whatever the
//! server did (the script judges), 2 on bad arguments. Bounded: `--deadline` stops sending
//! (default 300 s), and each read or write waits at most 5 s.
#![allow(clippy::print_stdout)]

#[path = "common/duration.rs"]
mod duration;
#[path = "common/response.rs"]
mod response;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use duration::parse_duration;

/// The longest any one read or write may wait.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Panicking requests among plaintext ones, over keep-alive connections.
#[derive(Parser, Debug)]
#[command(name = "panics")]
struct Args {
    /// Server address; loopback only.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_addr)]
    addr: SocketAddr,
    /// Requests in all.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Every this many requests, one is GET /panic.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    panic_every: u64,
    /// Concurrent connections (one thread each).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
    /// No request starts after this long: 300s, 5m or plain seconds.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    deadline: Duration,
    /// Ignored: `cargo bench` passes it to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|e| format!("{e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }
    Ok(addr)
}

#[derive(Default)]
struct Counts {
    /// Request numbers handed out.
    next: AtomicU64,
    ok: AtomicU64,
    /// /panic answered 500 with `Connection: close`, then closed.
    panics_answered: AtomicU64,
    /// A complete answer that was not the expected one.
    wrong: AtomicU64,
    /// I/O errors, timeouts, closes mid-answer, refused connects.
    errors: AtomicU64,
}

const PLAINTEXT: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n";
const PANIC: &[u8] = b"GET /panic HTTP/1.1\r\nHost: bench\r\n\r\n";

fn main() -> ExitCode {
    let args = Args::parse();
    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + args.deadline;
    let started = Instant::now();
    let threads: Vec<_> = (0..args.connections)
        .map(|_| {
            let counts = counts.clone();
            let (addr, requests, every) = (args.addr, args.requests, args.panic_every);
            std::thread::spawn(move || client(addr, requests, every, deadline, &counts))
        })
        .collect();
    for thread in threads {
        if thread.join().is_err() {
            eprintln!("panics: a client thread panicked");
            return ExitCode::from(2);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (ok, panics, wrong, errors) = (
        load(&counts.ok),
        load(&counts.panics_answered),
        load(&counts.wrong),
        load(&counts.errors),
    );
    let sent = load(&counts.next).min(args.requests);
    println!(
        "panics: {sent} requests over {} connections in {secs:.1} s ({:.0} req/s), every \
         {}th GET /panic: {ok} answered 200, {panics} panics answered 500 and closed, \
         {wrong} wrong answers, {errors} errors",
        args.connections,
        sent as f64 / secs,
        args.panic_every
    );
    println!(
        "RESULT requests={sent} ok={ok} panics_answered={panics} wrong={wrong} errors={errors} \
         seconds={secs:.2} rps={:.1}",
        sent as f64 / secs
    );
    ExitCode::SUCCESS
}

/// One connection's thread: requests until the numbers or the time run out.
fn client(addr: SocketAddr, requests: u64, every: u64, deadline: Instant, counts: &Counts) {
    let mut buf = Vec::with_capacity(4096);
    let mut stream: Option<TcpStream> = None;
    while Instant::now() < deadline {
        let n = counts.next.fetch_add(1, Ordering::Relaxed);
        if n >= requests {
            return;
        }
        let panics = n % every == every - 1;
        let conn = match stream.take().map_or_else(|| connect(addr), Ok) {
            Ok(conn) => conn,
            Err(_) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let request = if panics { PANIC } else { PLAINTEXT };
        match exchange(conn, request, &mut buf) {
            Ok((status, close, conn)) => {
                let body = &buf[..];
                let expected = match panics {
                    true => status == 500 && close && server_closes(&conn),
                    false => status == 200 && body == b"Hello, World!",
                };
                let counter = match (expected, panics) {
                    (true, true) => &counts.panics_answered,
                    (true, false) => &counts.ok,
                    (false, _) => &counts.wrong,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if !close && !panics {
                    stream = Some(conn);
                }
            }
            Err(_) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Sends `request` and reads one answer; leaves its body in `buf`. (status, close, stream).
fn exchange(
    mut stream: TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> io::Result<(u16, bool, TcpStream)> {
    stream.write_all(request)?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head = loop {
        if let Some(head) = response::parse_head(buf).map_err(|_| io::ErrorKind::InvalidData)? {
            break head;
        }
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let body = head
        .body_bytes()
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    while buf.len() < head.head_len + body {
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..head.head_len);
    buf.truncate(body);
    Ok((head.status, head.close, stream))
}

/// After a 500 that says close: does the server close (a read returns 0 or a reset)?
fn server_closes(mut stream: &TcpStream) -> bool {
    let mut one = [0u8; 1];
    match stream.read(&mut one) {
        Ok(0) => true,
        Err(err) => err.kind() == io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}
