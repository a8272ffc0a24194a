//! Test harness: an in-process server on 127.0.0.1:0 and a raw-socket client whose every
//! read has a timeout, so a bug fails a test instead of hanging it.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use corral::{Config, Router, Server};

/// A bounded, counted load of keep-alive and fresh-connection clients.
pub mod load;

/// The built-in apps, compiled here from their source as a user's crate would compile them:
/// they use Corral's public API only.
#[path = "../../src/app/mod.rs"]
pub mod app;

/// The embedded default config on an ephemeral loopback port with 2 schedulers.
pub fn test_config() -> Config {
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:0".into();
    config.server.workers = 2;
    config
}

/// Upper bound on any single wait for the server in tests.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct TestServer {
    server: Option<Server>,
    pub addr: SocketAddr,
}

impl TestServer {
    pub fn start(config: Config, router: Router) -> TestServer {
        let server = Server::start(config, router).expect("test server starts");
        let addr = server.local_addr();
        TestServer {
            server: Some(server),
            addr,
        }
    }

    /// The demo app on the test config, adjusted by `tweak`.
    pub fn demo(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config();
        tweak(&mut config);
        let router = app::demo::router(&config);
        TestServer::start(config, router)
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// Graceful shutdown now (rather than at drop); returns whether it drained in time.
    pub fn shutdown(mut self, drain: Duration) -> bool {
        self.server.take().unwrap().shutdown(drain)
    }

    /// POST /publish?topic=T with `body`; the reply's text (how many it reached).
    pub fn publish(&self, topic: &str, body: &[u8]) -> String {
        let mut c = self.client();
        let head = format!(
            "POST /publish?topic={topic} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.send(head.as_bytes());
        c.send(body);
        c.reply().text().trim().to_string()
    }

    /// The server's /metrics, parsed.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        parse_prometheus(self.client().get("/metrics").text())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_millis(500));
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// A client over a plain std TcpStream.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// GET `path` with a Host header, then read the reply.
    pub fn get(&mut self, path: &str) -> Reply {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.reply()
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = self
            .stream
            .read(&mut chunk)
            .expect("read within the client timeout");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response head (status line + headers).
    pub fn head(&mut self) -> Reply {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = resp.parse(&self.buf).expect("valid response")
            {
                let reply = Reply {
                    status: resp.code.unwrap(),
                    reason: resp.reason.unwrap().to_string(),
                    headers: resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                    body: Vec::new(),
                };
                self.buf.drain(..len);
                return reply;
            }
            assert!(
                self.fill() > 0,
                "connection closed before a full response head"
            );
        }
    }

    /// Reads one full response (Content-Length, chunked, or until close).
    pub fn reply(&mut self) -> Reply {
        let mut reply = self.head();
        reply.body = self.body(&reply);
        reply
    }

    /// Reads a HEAD response: no body whatever the headers say.
    pub fn head_reply(&mut self) -> Reply {
        self.head()
    }

    fn body(&mut self, reply: &Reply) -> Vec<u8> {
        if let Some(len) = reply.header("content-length") {
            let len: usize = len.parse().unwrap();
            while self.buf.len() < len {
                assert!(self.fill() > 0, "closed mid-body");
            }
            return self.buf.drain(..len).collect();
        }
        if reply.header("transfer-encoding") == Some("chunked") {
            return self.chunked_body();
        }
        if reply.status == 204 || reply.status == 304 {
            return Vec::new();
        }
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }

    fn chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                assert!(self.fill() > 0, "closed mid-chunk");
            };
            let size_text = std::str::from_utf8(&self.buf[..line_end])
                .unwrap()
                .to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                assert!(self.fill() > 0, "closed mid-chunk");
            }
            body.extend(self.buf.drain(..size));
            assert_eq!(&self.buf[..2], b"\r\n", "chunk data ends with CRLF");
            self.buf.drain(..2);
            if size == 0 {
                return body;
            }
        }
    }

    /// True when the server closes the connection (read returns 0) within the timeout.
    /// Bytes still arriving before the close are discarded.
    pub fn closed_by_server(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Reads to the end of the stream, expecting nothing more: `Ok` on an orderly close
    /// (FIN: read returns 0), else the error's kind — `ConnectionReset` for an RST,
    /// `InvalidData` if bytes arrived first.
    pub fn end_of_stream(&mut self) -> Result<(), std::io::ErrorKind> {
        if !self.buf.is_empty() {
            return Err(std::io::ErrorKind::InvalidData);
        }
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(()),
            Ok(_) => Err(std::io::ErrorKind::InvalidData),
            Err(e) => Err(e.kind()),
        }
    }

    /// Has the server sent anything (or closed) within `wait`? Used to show it did *not*.
    pub fn quiet_for(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut one = [0u8; 1];
        let quiet = match self.stream.read(&mut one) {
            Ok(n) => {
                self.buf.extend_from_slice(&one[..n]);
                false
            }
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        quiet
    }
}

/// Polls `cond` until it holds or `within` passes; fails with `what` otherwise.
///
/// Between polls it sleeps, 1 ms at first and doubling up to 50 ms (never past the
/// deadline): a spinning poller would compete for the two cores with the very schedulers it
/// waits for. A condition that holds at once costs no sleep at all.
pub fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    const FIRST_PAUSE: Duration = Duration::from_millis(1);
    const MAX_PAUSE: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    while !cond() {
        let now = Instant::now();
        assert!(now < deadline, "not true within {within:?}: {what}");
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Parses Prometheus text: checks every line's shape and returns (name{labels}, value).
pub fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let kind = rest.split(' ').next().unwrap();
            assert!(
                kind == "HELP" || kind == "TYPE",
                "bad comment line {line:?}"
            );
            if kind == "TYPE" {
                let t = rest.split(' ').nth(2).unwrap();
                assert!(["counter", "gauge", "summary", "histogram", "untyped"].contains(&t));
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
            for pair in series[name_end + 1..series.len() - 1].split("\",") {
                let (label, v) = pair.split_once("=\"").expect("label=\"value\"");
                assert!(
                    label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                );
                assert!(
                    !v.trim_end_matches('"').contains('"'),
                    "unescaped quote in {line:?}"
                );
            }
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.push((series.to_string(), value));
    }
    samples
}

/// The value of one series, e.g. `corral_route_requests_total{method="GET",route="/json"}`.
pub fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .unwrap_or_else(|| panic!("no series {series}"))
        .1
}

/// Sum of every series of a metric name.
pub fn sum_of(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .filter(|(s, _)| s.split('{').next() == Some(name))
        .map(|(_, v)| v)
        .sum()
}

impl Client {
    /// Reads raw bytes until `needle` has arrived (e.g. an SSE event inside a chunked body);
    /// returns everything read so far and keeps it buffered.
    pub fn read_until(&mut self, needle: &[u8]) -> String {
        while !self.buf.windows(needle.len()).any(|w| w == needle) {
            assert!(
                self.fill() > 0,
                "closed before {:?}",
                String::from_utf8_lossy(needle)
            );
        }
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Like `read_until`, but takes what it returns out of the buffer, through the end of
    /// the first `needle`: the next call sees only what came after.
    pub fn take_until(&mut self, needle: &[u8]) -> String {
        self.read_until(needle);
        let end = self
            .buf
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("read_until found it")
            + needle.len();
        String::from_utf8_lossy(&self.buf.drain(..end).collect::<Vec<u8>>()).into_owned()
    }
}

/// Error log lines of the whole process (or warnings and errors, with `install_at`), from
/// the moment `ErrorLog` is first installed (the logger is process-wide: tests look for lines
/// naming their own routes).
pub struct ErrorLog;

static ERROR_LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
/// The least severe level kept, as `log::Level as usize` (1 = error, 2 = warn).
static KEPT_LEVEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

impl log::Log for ErrorLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() as usize <= KEPT_LEVEL.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata())
            && let Ok(mut lines) = ERROR_LINES.lock()
        {
            lines.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

impl ErrorLog {
    pub fn install() {
        Self::install_at(log::Level::Error);
    }

    /// Keeps lines at `level` and more severe (one level per test process: the first wins).
    pub fn install_at(level: log::Level) {
        static LOGGER: ErrorLog = ErrorLog;
        if log::set_logger(&LOGGER).is_ok() {
            KEPT_LEVEL.store(level as usize, std::sync::atomic::Ordering::Relaxed);
            log::set_max_level(level.to_level_filter());
        }
    }

    /// The error lines logged so far that contain `needle`.
    pub fn lines_with(needle: &str) -> Vec<String> {
        let lines = ERROR_LINES.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

/// Resident set of this process, bytes (`VmRSS` in `/proc/self/status`, in kB).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse().ok())
        .expect("a VmRSS line in kB");
    kib << 10
}
