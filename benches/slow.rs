//! Slow clients (#11 §3): holds `--slowloris` connections that send a request head one byte
//! at a time, `--slow-body` that send a whole head announcing a body and then the body one
//! byte at a time, and `--slow-readers` that pipeline 100 requests (~14 KB of answers) with a
//! 4 KB receive buffer and never read them. (A reader that stops the server's writes needs
//! about 4 MB of answers pending: the kernel buffers that much on loopback first, which costs
//! the server ~20,000 requests of work per reader; that is a flood, not a slow client.) It is the hostile half of `benches/slow.sh`, which measures normal
//! `/plaintext` clients (`benches/churn.rs`) beside it.
//!
//! Run with: `cargo bench --bench slow -- --addr 127.0.0.1:8080 --duration 30s`
//!
//! One thread, non-blocking sockets: every `--tick` each slowloris and slow-body connection
//! sends its next byte. A connection the server closes (a 408 at its header or body timeout,
//! or a slow reader cut off at the write timeout) is counted and opened again, so the counts
//! hold for the whole run. Once every connection is open and has sent its first bytes it
//! prints `READY` (for the script), and at the end a `RESULT` line. Bounded by `--duration`.
#![allow(clippy::print_stdout)]

#[path = "common/duration.rs"]
mod duration;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use duration::parse_duration;

/// Slow clients: slowloris, slow bodies and slow readers, held for a while.
#[derive(Parser, Debug)]
#[command(name = "slow")]
struct Args {
    /// Server address; loopback only.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_addr)]
    addr: SocketAddr,
    /// Connections that send a request head a byte per tick.
    #[arg(long, default_value_t = 1000)]
    slowloris: u32,
    /// Connections that send a head, then its 1 MB body a byte per tick.
    #[arg(long, default_value_t = 300)]
    slow_body: u32,
    /// Connections that pipeline 100 requests and never read the answers.
    #[arg(long, default_value_t = 300)]
    slow_readers: u32,
    /// How long to hold them: 30s, 1m or plain seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Time between two bytes of one slow connection.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    tick: Duration,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Slowloris,
    SlowBody,
    SlowReader,
}

const HEAD: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: slow\r\nX-Padding: ";
const BODY_HEAD: &[u8] = b"POST /echo HTTP/1.1\r\nHost: slow\r\nContent-Length: 1000000\r\n\r\n";
/// Requests a slow reader pipelines: ~14 KB of answers, more than its receive buffer.
const PIPELINED: usize = 100;
/// A slow reader's receive buffer, bytes: its window closes after a few answers.
const READER_RCVBUF: usize = 4096;

struct Slow {
    kind: Kind,
    stream: TcpStream,
    /// Bytes sent so far (a slowloris pads its header for ever).
    sent: usize,
}

impl Slow {
    fn open(kind: Kind, addr: SocketAddr, readers_batch: &[u8]) -> io::Result<Slow> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        if kind == Kind::SlowReader {
            socket.set_recv_buffer_size(READER_RCVBUF)?;
        }
        socket.connect(&addr.into())?;
        let mut stream: TcpStream = socket.into();
        stream.set_nonblocking(true)?;
        let first: &[u8] = match kind {
            Kind::Slowloris => &HEAD[..1],
            Kind::SlowBody => BODY_HEAD,
            Kind::SlowReader => readers_batch,
        };
        let sent = match stream.write(first) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
            Err(err) => return Err(err),
        };
        Ok(Slow { kind, stream, sent })
    }

    /// One tick: the next byte. `Ok(false)`: the server closed (or refused) it.
    fn tick(&mut self) -> io::Result<bool> {
        if self.server_closed() {
            return Ok(false);
        }
        let byte: &[u8] = match self.kind {
            Kind::Slowloris if self.sent < HEAD.len() => &HEAD[self.sent..=self.sent],
            Kind::Slowloris => b"x",
            Kind::SlowBody => b"y",
            Kind::SlowReader => return Ok(true),
        };
        match self.stream.write(byte) {
            Ok(n) => {
                self.sent += n;
                Ok(true)
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(_) => Ok(false),
        }
    }

    /// Whether the server has answered (a 408, a 503) or closed: a slowloris or a slow body
    /// reads what arrived; a slow reader never reads, so it only looks for a reset.
    fn server_closed(&mut self) -> bool {
        if self.kind == Kind::SlowReader {
            return matches!(self.stream.take_error(), Ok(Some(_)) | Err(_));
        }
        let mut sink = [0u8; 512];
        match self.stream.read(&mut sink) {
            // An answer to an unfinished request is a refusal (then a close); 0 is the close.
            Ok(0 | 1..) => true,
            Err(err) => err.kind() != io::ErrorKind::WouldBlock,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let batch = b"GET /plaintext HTTP/1.1\r\nHost: slow\r\n\r\n".repeat(PIPELINED);
    let started = Instant::now();
    let deadline = started + args.duration;
    let kinds = [
        (Kind::Slowloris, args.slowloris),
        (Kind::SlowBody, args.slow_body),
        (Kind::SlowReader, args.slow_readers),
    ];
    let mut slow = Vec::new();
    let mut failed_opens = 0u64;
    for (kind, count) in kinds {
        for _ in 0..count {
            match Slow::open(kind, args.addr, &batch) {
                Ok(s) => slow.push(s),
                Err(_) => failed_opens += 1,
            }
        }
    }
    println!(
        "READY {} slow connections open after {:.1} s",
        slow.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = io::stdout().flush();
    let mut reopened = [0u64; 3];
    while Instant::now() < deadline {
        let tick_started = Instant::now();
        for s in slow.iter_mut() {
            if !matches!(s.tick(), Ok(true)) {
                match Slow::open(s.kind, args.addr, &batch) {
                    Ok(fresh) => {
                        reopened[s.kind as usize] += 1;
                        *s = fresh;
                    }
                    Err(_) => failed_opens += 1,
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(args.tick.saturating_sub(tick_started.elapsed()).min(left));
    }
    println!(
        "RESULT slow={} reopened_slowloris={} reopened_slow_body={} reopened_slow_readers={} \
         failed_opens={failed_opens}",
        slow.len(),
        reopened[0],
        reopened[1],
        reopened[2]
    );
    ExitCode::SUCCESS
}
