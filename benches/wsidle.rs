//! The client of benches/websocket.sh: N idle WebSockets on one Corral, then a check that
//! every one of them still hears a publish.
//!
//! Each connection does the handshake by hand (raw sockets: no client library state, so the
//! client costs nothing per connection but the socket), sends one masked ping on
//! `/ws?topic=T` and reads its pong (the handler subscribes before the session reads its
//! first frame, so the pong means it is subscribed), and then stays silent. (A text frame
//! would be published to every WebSocket before it: N² messages that nobody reads, which
//! fill the socket buffers and hold the senders' coroutines.) Once all N are there it prints `ready N` and waits for a
//! line on stdin (the script reads the server's RSS meanwhile and publishes once); then it
//! reads one text frame from every connection and prints `received K`. Every read has a
//! timeout and the whole run a deadline: it stops by itself.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Corral's address (loopback).
    #[arg(long)]
    addr: SocketAddr,
    /// WebSockets to open.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    #[arg(long, default_value = "idle")]
    topic: String,
    /// Plain keep-alive connections instead (one GET /plaintext each, then silent): the
    /// baseline the WebSockets are compared with. No publish check then.
    #[arg(long)]
    keepalive: bool,
    /// The whole run's bound, seconds.
    #[arg(long, default_value_t = 120)]
    deadline_s: u64,
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn masked_ping(payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x17, 0xc3, 0x08];
    let mut frame = vec![0x89, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads until `want` says the bytes read are enough.
fn read_until(stream: &mut TcpStream, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 512];
    while !want(&got) {
        let n = stream.read(&mut chunk).expect("read within the timeout");
        assert!(n > 0, "the server closed a WebSocket");
        got.extend_from_slice(&chunk[..n]);
    }
    got
}

fn open(args: &Args) -> TcpStream {
    let mut stream = TcpStream::connect(args.addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    if args.keepalive {
        stream
            .write_all(b"GET /plaintext HTTP/1.1\r\nHost: b\r\n\r\n")
            .unwrap();
        read_until(&mut stream, |got| got.ends_with(b"Hello, World!"));
        return stream;
    }
    let mut hello = format!(
        "GET /ws?topic={} HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n",
        args.topic
    )
    .into_bytes();
    hello.extend_from_slice(&masked_ping(b"hi"));
    stream.write_all(&hello).unwrap();
    // The 101, then the pong: 0x8a 0x02 'h' 'i'.
    let got = read_until(&mut stream, |got| got.ends_with(b"\x8a\x02hi"));
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    stream
}

fn main() {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.deadline_s);
    let mut sockets = Vec::with_capacity(args.n);
    for _ in 0..args.n {
        assert!(
            Instant::now() < deadline,
            "past the deadline while connecting"
        );
        sockets.push(open(&args));
    }
    println!("ready {}", sockets.len());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let mut received = 0;
    for stream in sockets.iter_mut().filter(|_| !args.keepalive) {
        if Instant::now() >= deadline {
            break;
        }
        // One unmasked server text frame of a short payload.
        let got = read_until(stream, |got| {
            got.len() >= 2 && got.len() >= 2 + got[1] as usize
        });
        if got[0] == 0x81 {
            received += 1;
        }
    }
    println!("received {received}");
}
