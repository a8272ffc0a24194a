//! The connection loop over in-memory byte streams: no socket, no scheduler, no server.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::Shared;
use super::hibernate::Wards;
use super::resume::{Ending, Resume};
use super::serve::serve;
use super::transport::Transport;
use crate::config::Config;
use crate::http::request::Request;
use crate::placement::policy::Policy;
use crate::placement::{Placement, Settings};
use crate::router::Router;
use crate::stats::Stats;

/// What the client does next: send bytes (each arrives as one read: the split points), or
/// stay silent past the read timeout (the next read or peek times out).
enum Input {
    Bytes(Vec<u8>),
    Stall,
}

/// What the server did to its transport.
#[derive(Default)]
struct Log {
    /// One entry per `write` call.
    writes: Vec<Vec<u8>>,
    /// The size of the buffer offered to each `read`.
    read_sizes: Vec<usize>,
    read_timeouts: Vec<Duration>,
    /// Reads made after `shutdown_write`, and the bytes they took.
    reads_after_shutdown: Option<(usize, usize)>,
}

/// A client that sends its inputs in order and then closes; the server's side is logged.
struct Memory {
    inputs: VecDeque<Input>,
    log: Rc<RefCell<Log>>,
}

impl Memory {
    fn new(chunks: &[&[u8]]) -> (Memory, Rc<RefCell<Log>>) {
        Memory::with(chunks.iter().map(|c| Input::Bytes(c.to_vec())).collect())
    }

    fn with(inputs: Vec<Input>) -> (Memory, Rc<RefCell<Log>>) {
        let log = Rc::new(RefCell::new(Log::default()));
        let memory = Memory {
            inputs: inputs.into(),
            log: log.clone(),
        };
        (memory, log)
    }

    /// Copies from the next input into `buf`, consuming it unless `peek`.
    fn take(&mut self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        match self.inputs.front_mut() {
            None => Ok(0),
            Some(Input::Stall) => {
                self.inputs.pop_front();
                Err(io::ErrorKind::TimedOut.into())
            }
            Some(Input::Bytes(chunk)) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                if !peek {
                    chunk.drain(..n);
                    if chunk.is_empty() {
                        self.inputs.pop_front();
                    }
                }
                Ok(n)
            }
        }
    }
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.take(buf, false);
        let mut log = self.log.borrow_mut();
        log.read_sizes.push(buf.len());
        if let (Some((reads, bytes)), Ok(n)) = (&mut log.reads_after_shutdown, &result) {
            *reads += 1;
            *bytes += n;
        }
        result
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.log.borrow_mut().writes.push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Memory {
    const HIBERNATES: bool = false;

    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.log.borrow_mut().read_timeouts.push(timeout);
        Ok(())
    }

    fn set_write_timeout(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }

    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.take(buf, true)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.log.borrow_mut().reads_after_shutdown = Some((0, 0));
        Ok(())
    }

    fn peer_closed(&self) -> bool {
        self.inputs.is_empty()
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }

    fn into_fd(self) -> Result<OwnedFd, Self> {
        Err(self)
    }
}

fn router() -> Router {
    Router::new()
        .get("/hi", |_: &Request| "hi")
        .post("/echo", |req: &Request| req.body().to_vec())
        .get("/panic", |_: &Request| -> &'static str {
            panic!("on purpose")
        })
}

/// A server's shared state with one scheduler and no hibernation (memory cannot hibernate).
fn shared() -> Arc<Shared> {
    let mut config = Config::embedded();
    config.server.workers = 1;
    config.timeouts.hibernate_after_ms = 0;
    let router = router();
    let stats = Arc::new(Stats::new(1));
    let settings = Settings {
        policy: Policy::Cost,
        workers: 1,
        max_active_requests: 0,
        default_cost: Duration::from_micros(50),
    };
    let placement = Arc::new(Placement::new(
        settings,
        router.routes().len(),
        stats.clone(),
    ));
    Arc::new(Shared {
        config,
        router: Arc::new(router),
        stats,
        placement,
        wards: Wards::new(1).unwrap(),
        workers: 1,
        supervisor: OnceLock::new(),
    })
}

/// Serves one connection that sends `chunks`; returns what was written, per write call.
fn run(shared: &Arc<Shared>, chunks: &[&[u8]]) -> Vec<String> {
    let (memory, log) = Memory::new(chunks);
    serve_all(shared, memory);
    writes(&log.borrow())
}

/// Serves one connection to its end.
fn serve_all(shared: &Arc<Shared>, memory: Memory) {
    let ending = serve(memory, shared, 0, Resume::fresh());
    assert_eq!(ending, Ending::Closed);
}

fn writes(log: &Log) -> Vec<String> {
    log.writes
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// The status lines in `out`, in order (no test body contains "HTTP/1.").
fn statuses(out: &str) -> Vec<&str> {
    out.match_indices("HTTP/1.")
        .filter_map(|(at, _)| out[at..].split("\r\n").next())
        .collect()
}

const GET_HI: &[u8] = b"GET /hi HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn a_pipelined_batch_is_answered_in_order_with_one_write() {
    let shared = shared();
    let batch = [
        GET_HI,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
        GET_HI,
    ]
    .concat();
    let writes = run(&shared, &[&batch]);
    assert_eq!(writes.len(), 1, "one flush for the whole batch: {writes:?}");
    let out = &writes[0];
    assert_eq!(statuses(out), ["HTTP/1.1 200 OK"; 3]);
    let bodies: Vec<&str> = out.split("\r\n\r\n").skip(1).collect();
    assert!(bodies[0].starts_with("hi"), "{out}");
    assert!(bodies[1].starts_with("abc"), "{out}");
    assert!(bodies[2].starts_with("hi"), "{out}");
}

#[test]
fn a_head_split_across_reads_is_one_request() {
    let shared = shared();
    for at in 1..GET_HI.len() {
        let (a, b) = GET_HI.split_at(at);
        let out = run(&shared, &[a, b]).concat();
        assert_eq!(statuses(&out), ["HTTP/1.1 200 OK"], "split at {at}");
        assert!(out.ends_with("\r\n\r\nhi"), "split at {at}: {out}");
    }
}

#[test]
fn a_body_split_at_every_byte_is_read_whole() {
    let shared = shared();
    let requests: [&[u8]; 2] = [
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ];
    for request in requests {
        let body_starts = memchr::memmem::find(request, b"\r\n\r\n").unwrap() + 4;
        for at in body_starts..request.len() {
            let (a, b) = request.split_at(at);
            let out = run(&shared, &[a, b]).concat();
            assert_eq!(statuses(&out), ["HTTP/1.1 200 OK"], "split at {at}: {out}");
            assert!(out.ends_with("\r\n\r\nhello world"), "split at {at}: {out}");
        }
    }
}

#[test]
fn a_handler_panic_is_a_500_that_closes_and_is_counted() {
    let shared = shared();
    let batch = [b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n".as_slice(), GET_HI].concat();
    let out = run(&shared, &[&batch]).concat();
    assert_eq!(
        statuses(&out),
        ["HTTP/1.1 500 Internal Server Error"],
        "{out}"
    );
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert_eq!(shared.stats.panics(), 1);
}

#[test]
fn keep_alive_follows_the_version_and_the_connection_header() {
    let shared = shared();
    let cases: [(&[u8], usize, bool); 4] = [
        // (first request, responses expected for it followed by GET_HI, closes after it)
        (GET_HI, 2, false),
        (
            b"GET /hi HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            1,
            true,
        ),
        (b"GET /hi HTTP/1.0\r\n\r\n", 1, true),
        (
            b"GET /hi HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            2,
            false,
        ),
    ];
    for (first, answered, closes) in cases {
        let batch = [first, GET_HI].concat();
        let out = run(&shared, &[&batch]).concat();
        assert_eq!(statuses(&out).len(), answered, "{out}");
        let first_head = out.split("\r\n\r\n").next().unwrap();
        assert_eq!(first_head.contains("Connection: close"), closes, "{out}");
    }
}

#[test]
fn head_gets_the_length_of_get_but_no_body() {
    let shared = shared();
    let batch = [b"HEAD /hi HTTP/1.1\r\nHost: t\r\n\r\n".as_slice(), GET_HI].concat();
    let out = run(&shared, &[&batch]).concat();
    assert_eq!(statuses(&out), ["HTTP/1.1 200 OK"; 2], "{out}");
    let (head_reply, rest) = out.split_once("\r\n\r\n").unwrap();
    assert!(head_reply.ends_with("Content-Length: 2"), "{out}");
    assert!(
        rest.starts_with("HTTP/1.1 200 OK"),
        "HEAD carried a body: {out}"
    );
}

#[test]
fn a_chunked_body_in_reads_of_one_to_four_bytes_is_decoded() {
    let shared = shared();
    let request: &[u8] = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: ignored\r\n\r\n";
    let batch = [request, GET_HI].concat();
    for size in 1..=4 {
        let pieces: Vec<&[u8]> = batch.chunks(size).collect();
        let (memory, log) = Memory::new(&pieces);
        serve_all(&shared, memory);
        let log = log.borrow();
        assert!(
            log.read_sizes.len() > batch.len() / size,
            "every piece was its own read"
        );
        let out = writes(&log).concat();
        assert_eq!(
            statuses(&out),
            ["HTTP/1.1 200 OK"; 2],
            "pieces of {size}: {out}"
        );
        let bodies: Vec<&str> = out.split("\r\n\r\n").skip(1).collect();
        assert!(
            bodies[0].starts_with("hello world"),
            "pieces of {size}: {out}"
        );
        assert!(bodies[1].starts_with("hi"), "pieces of {size}: {out}");
    }
}

/// With hibernation off (as here), a keep-alive connection idle for 1 s gives its buffers
/// back and waits on a peek for the rest of the idle timeout; its next request is read into
/// a fresh, small buffer.
#[test]
fn with_hibernation_off_an_idle_connection_gives_its_buffers_back_and_waits_on_a_peek() {
    let shared = shared();
    // A first request big enough to grow the read buffer past its initial 4 KiB.
    let body = vec![b'x'; 9000];
    let mut big = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    big.extend_from_slice(&body);
    let (memory, log) = Memory::with(vec![
        Input::Bytes(big),
        Input::Stall,
        Input::Bytes(GET_HI.to_vec()),
    ]);
    serve_all(&shared, memory);
    let log = log.borrow();
    let out = writes(&log).concat();
    assert_eq!(statuses(&out), ["HTTP/1.1 200 OK"; 2], "{out}");
    let idle = shared.config.timeouts.idle();
    // The grace read (1 s) timed out; then the peek waits for the rest of the idle timeout.
    let waits = [Duration::from_secs(1), idle - Duration::from_secs(1)];
    assert!(
        log.read_timeouts.windows(2).any(|w| w == waits),
        "read timeouts set: {:?}",
        log.read_timeouts
    );
    // Reads: ..., the grace read that timed out, the next request, the one that sees EOF.
    let sizes = &log.read_sizes;
    let [.., grace_read, next_request, _] = sizes[..] else {
        panic!("too few reads: {sizes:?}");
    };
    assert!(grace_read >= body.len(), "grown for the upload: {sizes:?}");
    assert_eq!(
        next_request, 4096,
        "a fresh buffer after the release: {sizes:?}"
    );
}

#[test]
fn a_rejection_shuts_down_writing_then_reads_what_the_client_still_sends() {
    let shared = shared();
    let (memory, log) = Memory::new(&[
        b"GARBAGE\r\n\r\n",
        b"more bytes the client sent before it saw the 400",
        b"and more",
    ]);
    serve_all(&shared, memory);
    let log = log.borrow();
    let out = writes(&log).concat();
    assert_eq!(statuses(&out), ["HTTP/1.1 400 Bad Request"], "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    let (reads, bytes) = log.reads_after_shutdown.expect("FIN sent after the 400");
    // Both pieces read and discarded, then the read that sees the client close.
    assert_eq!((reads, bytes), (3, 56));
}
