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
use super::live::{self, Live};
use super::resume::{Ending, Resume};
use super::serve::serve;
use super::transport::Transport;
use crate::config::Config;
use crate::http::request::Request;
use crate::placement::policy::Policy;
use crate::placement::{Placement, Settings};
use crate::router::Router;
use crate::stats::Stats;

/// A client that sends `chunks` (each arrives as one read: the split points) and then
/// closes; what the server writes is collected, one entry per `write` call.
struct Memory {
    chunks: VecDeque<Vec<u8>>,
    writes: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl Memory {
    fn new(chunks: &[&[u8]]) -> (Memory, Rc<RefCell<Vec<Vec<u8>>>>) {
        let writes = Rc::new(RefCell::new(Vec::new()));
        let memory = Memory {
            chunks: chunks.iter().map(|c| c.to_vec()).collect(),
            writes: writes.clone(),
        };
        (memory, writes)
    }
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(chunk) = self.chunks.front_mut() else {
            return Ok(0);
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        chunk.drain(..n);
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        Ok(n)
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.borrow_mut().push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Memory {
    const HIBERNATES: bool = false;

    fn set_read_timeout(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }

    fn set_write_timeout(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }

    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(chunk) = self.chunks.front() else {
            return Ok(0);
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn peer_closed(&self) -> bool {
        self.chunks.is_empty()
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
        live: Live::new(live::Settings {
            limits: config.limits,
            timeouts: config.timeouts,
        }),
        stack_size_bytes: config.server.stack_size_bytes,
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
    let (memory, writes) = Memory::new(chunks);
    let ending = serve(memory, shared, 0, Resume::fresh());
    assert_eq!(ending, Ending::Closed);
    let writes = writes.borrow();
    writes
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
