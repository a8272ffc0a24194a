//! A bounded load for switch-over tests: a few client threads for at most a few seconds,
//! every request counted. Keep-alive clients send request after request on one connection
//! and reconnect when an answer says `Connection: close` (that answer is a success); paced
//! clients do the same with a pause between requests, as a browser or a proxy's pooled
//! connection does (so a switch finds their connections idle, between requests); fresh
//! clients open a connection per request. A failure is anything else: a refused connect, a
//! reset, a close before a full response, a timeout, a status other than 2xx.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A connection to the server under test (plain TCP, or TLS through a proxy).
pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Opens a connection to the server under test.
pub type Connect = Arc<dyn Fn() -> io::Result<Box<dyn Conn>> + Send + Sync>;

/// The longest any one read or write may wait before it counts as a failure.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Failures kept word for word (the rest are only counted).
const KEPT_FAILURES: usize = 20;

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests answered 2xx with a complete response.
    pub ok: u64,
    /// Requests that failed, in all.
    pub failed: u64,
    /// The first failures, described.
    pub failures: Vec<String>,
    /// Answers that said `Connection: close` (the client then reconnected).
    pub closes: u64,
    /// Successful answers by body (`pid N` from `/whoami`: which process answered).
    pub bodies: BTreeMap<String, u64>,
}

/// A running load; `stop` ends it and adds up what the clients saw.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// Successful requests so far, all clients (to wait for progress without sleeping blind).
    pub done: Arc<AtomicU64>,
    seen: Arc<Mutex<Tally>>,
    threads: Vec<JoinHandle<()>>,
}

/// Bounds and shape of a load.
pub struct Shape {
    pub path: &'static str,
    pub keep_alive_clients: usize,
    /// Keep-alive clients that pause `think` after each answer.
    pub paced_clients: usize,
    pub think: Duration,
    pub fresh_clients: usize,
    /// Each client stops after this long...
    pub max_time: Duration,
    /// ...or this many requests, whichever comes first.
    pub max_requests: u64,
}

impl Load {
    pub fn start(connect: Connect, shape: Shape) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Tally::default()));
        let shape = Arc::new(shape);
        let kinds = std::iter::repeat_n((true, Duration::ZERO), shape.keep_alive_clients)
            .chain(std::iter::repeat_n(
                (true, shape.think),
                shape.paced_clients,
            ))
            .chain(std::iter::repeat_n(
                (false, Duration::ZERO),
                shape.fresh_clients,
            ));
        let threads = kinds
            .map(|(keep_alive, think)| {
                let client = Client {
                    connect: connect.clone(),
                    shape: shape.clone(),
                    stop: stop.clone(),
                    done: done.clone(),
                    seen: seen.clone(),
                    keep_alive,
                    think,
                };
                std::thread::spawn(move || client.run())
            })
            .collect();
        Load {
            stop,
            done,
            seen,
            threads,
        }
    }

    /// Successful requests so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests succeeded, or `within` passed (then the test
    /// sees too few in its tally). Progress, not a guess at how long things take.
    pub fn wait_for(&self, more: u64, within: Duration) {
        let target = self.done() + more;
        let deadline = Instant::now() + within;
        while self.done() < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Successful answers with `body` so far.
    pub fn answers_from(&self, body: &str) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.bodies.get(body).copied().unwrap_or(0)
    }

    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a load client panicked");
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *seen)
    }
}

struct Client {
    connect: Connect,
    shape: Arc<Shape>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    seen: Arc<Mutex<Tally>>,
    keep_alive: bool,
    /// The pause after each answer (a paced client's).
    think: Duration,
}

/// One answer, as far as the load cares.
struct Answer {
    status: u16,
    close: bool,
    body: String,
}

impl Client {
    fn run(self) {
        let started = Instant::now();
        let mut conn: Option<Box<dyn Conn>> = None;
        let mut sent = 0;
        while !self.stop.load(Ordering::Relaxed)
            && started.elapsed() < self.shape.max_time
            && sent < self.shape.max_requests
        {
            if sent > 0 && !self.think.is_zero() {
                // Pacing, not synchronisation: the connection sits idle meanwhile.
                std::thread::sleep(self.think);
            }
            sent += 1;
            let reused = conn.is_some();
            let outcome = match conn.take() {
                Some(c) => Ok(c),
                None => (self.connect)().map_err(|e| format!("connect: {e}")),
            }
            .and_then(|mut c| self.request(&mut *c).map(|answer| (c, answer)));
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            match outcome {
                Ok((c, answer)) if (200..300).contains(&answer.status) => {
                    seen.ok += 1;
                    *seen
                        .bodies
                        .entry(answer.body.trim().to_string())
                        .or_default() += 1;
                    if answer.close {
                        seen.closes += 1;
                    } else if self.keep_alive {
                        conn = Some(c);
                    }
                    self.done.fetch_add(1, Ordering::Relaxed);
                }
                Ok((_, answer)) => fail(&mut seen, format!("status {}", answer.status)),
                Err(why) => {
                    let on = if reused { "reused" } else { "new" };
                    fail(&mut seen, format!("{why} (on a {on} connection)"));
                }
            }
        }
    }

    fn request(&self, conn: &mut dyn Conn) -> Result<Answer, String> {
        let close = if self.keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let head = format!("GET {} HTTP/1.1\r\nHost: t\r\n{close}\r\n", self.shape.path);
        conn.write_all(head.as_bytes())
            .and_then(|()| conn.flush())
            .map_err(|e| format!("send: {e}"))?;
        read_answer(conn)
    }
}

fn fail(seen: &mut Tally, why: String) {
    seen.failed += 1;
    if seen.failures.len() < KEPT_FAILURES {
        seen.failures.push(why);
    }
}

/// Reads one response framed by Content-Length (every route the load uses has one).
fn read_answer(conn: &mut dyn Conn) -> Result<Answer, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = resp.parse(&buf).map_err(|e| format!("bad response: {e}"))?;
        if let httparse::Status::Complete(len) = parsed {
            let status = resp.code.unwrap_or(0);
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let length: usize = header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .ok_or("a response without Content-Length")?;
            while buf.len() < len + length {
                let n = conn
                    .read(&mut chunk)
                    .map_err(|e| format!("read body: {e}"))?;
                if n == 0 {
                    return Err("closed mid-body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[len..len + length]).into_owned();
            return Ok(Answer {
                status,
                close,
                body,
            });
        }
        let n = conn
            .read(&mut chunk)
            .map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed before a full response ({} bytes of it)",
                buf.len()
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Plain TCP to `addr`, with the load's I/O timeout.
pub fn tcp(addr: std::net::SocketAddr) -> Connect {
    Arc::new(move || {
        let stream = std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Box::new(stream) as Box<dyn Conn>)
    })
}
