//! Long-poll fan-out and idle-connection memory: the client half of `benches/longpoll.sh`,
//! which runs it against Corral's demo app and a Go net/http peer (benches/peers/go_longpoll).
//!
//! Run with: `cargo bench --bench fanout -- --addr 127.0.0.1:8080 --mode poll --connections
//! 10000 --server-pid PID` (all flags: `cargo bench --bench fanout -- --help`).
//!
//! Every connection is one may coroutine with a small stack (`--stack-words`), bound (port 0)
//! to one of the `--sources` loopback addresses in turn, 127.0.0.2 to 127.0.0.33 by default.
//! Why so many: `bind` with port 0 takes a port that no socket on that address holds, TIME_WAIT
//! ones included, whatever their peer, and it searches the odd half of the ephemeral range
//! first. After a run, the client's side of every connection sits in TIME_WAIT for 60 s; with
//! ~14k of them on one source address (a few 19k runs over 4 addresses), each bind scanned
//! for ~1 ms instead of ~7 µs, and opening 19k connections took 6-36 s instead of 1-2 s.
//! Spread over 32 addresses, a run leaves ~600 per address.
//!
//! The main thread starts the coroutines, with at most `--connect-window` started but not yet
//! known to be accepted by the server: a loopback handshake completes in the kernel before
//! the server accepts, so an unpaced client can fill the accept queue (backlog 4096 here), and
//! what overflows it costs SYN retransmits of 1 s, 3 s, 7 s, ... A connection counts as
//! accepted once it was answered (idle) or once the server counts it subscribed (poll: the
//! main thread asks `--subscribers-path` while the window is full). The kernel's
//! ListenOverflows and TCPSynRetrans counters are reported as seen over the run; they count
//! every process in this network namespace, not only this client's connections.
//!
//! - `--mode poll`: each connection sends `GET /poll?topic=T` and waits. Once the server
//!   reports every one of them subscribed (`--subscribers-path`: a Prometheus text with
//!   `corral_topic_subscribers N`, or a bare number), and after `--settle`, the server's RSS
//!   is read; then ONE `POST /publish?topic=T` goes out on a fresh connection. Each waiter's
//!   fan-out latency runs from just before that write until its whole response has been read
//!   (so it includes this process's own scheduling: with one worker, the waiters that read
//!   last also waited for this client to read the others).
//! - `--mode idle`: each connection does one `GET /plaintext` and then stays open, a served
//!   keep-alive connection doing nothing. After `--settle` the server's RSS is read, and every
//!   connection is checked to be still open (a non-blocking peek).
//!
//! RSS is `VmRSS` of `/proc/<--server-pid>/status`, read before the first connect and after
//! all connections are in place; the difference divided by the connections in place is the
//! memory one connection costs the server.
//!
//! Output: a human summary, then one line `RESULT key=value ...` for scripts (`na` where a
//! figure does not apply or could not be taken). The exit status is 0 whatever the server did
//! (failures are counted), 2 on bad arguments or when the open-files limit is too low for
//! `--connections`.
//!
//! Bounded: after `--deadline` from the start, whatever phase it is in, it reports what it has
//! and exits; coroutines still waiting are abandoned with the process.
//!
//! Several servers (`benches/broker.sh`, `benches/scaleout.sh`): `--addr A,B,...` spreads the
//! connections over several addresses in turn and sums their subscriber counts; `--server-pid
//! P,Q,...` sums their RSS. Servers sharing one port (`SO_REUSEPORT`) are told apart by the
//! answer of `--subscribers-path /topics/subscribers` (`pid P subscribers N`): the count of
//! each process is the highest it has reported (counts only grow while the waiters gather),
//! and the total is their sum. And several client processes, for more connections than one
//! process may hold: `--role wait` opens its connections (pacing its window on the servers'
//! count less `--subscribed-base`, what the processes started before it placed), prints
//! `READY` once the servers count them, and writes each arrival's CLOCK_MONOTONIC time to
//! `--arrivals-file`; `--role publish` holds no connections, waits until the servers count
//! `--expect` waiters, reads their RSS, publishes once and reports when (`publish_at_ns`).
#![allow(clippy::print_stdout)]

#[path = "common/duration.rs"]
mod duration;
#[path = "common/response.rs"]
mod response;
use duration::parse_duration;
use response::Head;

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use may::io::{CoIo, WaitIo};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// How often the main thread looks at the counters, the subscriber count, the clock.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the main thread checks whether the connect window has room.
const WINDOW_INTERVAL: Duration = Duration::from_micros(200);
/// Poll mode, window full: how often the main thread asks the server for its subscribers.
const WINDOW_ASK_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes added to a connection's read buffer per `read` (on the heap: stacks are tiny here).
const READ_CHUNK: usize = 512;
/// Longest wait for one request on the main thread's own connections (metrics, publish).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors this process needs besides the connections (std streams, epoll, the
/// control connection, may's own): the margin required below the open-files limit.
const SPARE_FDS: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Connect, wait for the servers to count every waiter, publish, time the fan-out.
    All,
    /// Poll mode, one of several client processes: connect, say READY, record arrivals.
    Wait,
    /// Poll mode, no connections: wait for `--expect` waiters, then publish once.
    Publish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Long-poll every connection, then publish once and time the fan-out.
    Poll,
    /// One GET /plaintext per connection, then leave them idle and measure memory.
    Idle,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Poll => "poll",
            Mode::Idle => "idle",
        }
    }
}

/// Long-poll fan-out latency and per-connection server memory over many connections.
#[derive(Parser, Debug)]
#[command(name = "fanout")]
struct Args {
    /// Server addresses, comma-separated (connections go to each in turn); loopback IPv4
    /// only (127.0.0.0/8), since the sources are too. The publish goes to the first.
    #[arg(long, default_value = "127.0.0.1:8080", value_delimiter = ',', value_parser = parse_addr)]
    addr: Vec<SocketAddr>,
    /// What this process does (several client processes: `wait` ones, then one `publish`).
    #[arg(long, value_enum, default_value_t = Role::All)]
    role: Role,
    /// Role publish: the waiters the servers must count, in all, before the publish.
    #[arg(long, default_value_t = 0)]
    expect: u64,
    /// Role wait: waiters the servers already counted before this process began.
    #[arg(long, default_value_t = 0)]
    subscribed_base: u64,
    /// Role wait: where to write the CLOCK_MONOTONIC time (ns) of each correct arrival.
    #[arg(long)]
    arrivals_file: Option<std::path::PathBuf>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Poll)]
    mode: Mode,
    /// Connections (one coroutine each). may allows ~32k live coroutines per process with
    /// vm.max_map_count = 65530, and the open-files limit must exceed this.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=30_000))]
    connections: u32,
    /// Topic of the long-polls and the publish.
    #[arg(long, default_value = "fanout", value_parser = parse_topic)]
    topic: String,
    /// Body of the publish; every waiter must receive exactly this.
    #[arg(long, default_value = "fan-out")]
    message: String,
    /// The servers' process ids, comma-separated, for their RSS (/proc/PID/status), summed.
    /// Without it RSS is `na`.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Where the server tells how many long-polls wait: a Prometheus text with a
    /// `corral_topic_subscribers N` line (Corral: /metrics) or a bare number (/subscribers).
    #[arg(long, default_value = "/metrics")]
    subscribers_path: String,
    /// Comma-separated 127.x.x.x addresses the connections are bound to, in turn.
    /// Default: --source-count addresses from 127.0.0.2 up.
    #[arg(long, value_delimiter = ',', value_parser = parse_source)]
    sources: Vec<Ipv4Addr>,
    /// Without --sources: how many source addresses, 127.0.0.2, 127.0.0.3, ...
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u8).range(1..=250))]
    source_count: u8,
    /// Connections started but not yet known to be accepted by the server, at most; keep it
    /// well under the server's accept backlog.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    connect_window: u32,
    /// Pause after every connection is in place and before the RSS is read, so the server's
    /// memory settles (e.g. buffers given back by idle connections): 2s, 500ms, or seconds.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    settle: Duration,
    /// The whole run, from start to report, at most (same units as --settle).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    deadline: Duration,
    /// may worker threads of this client.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Coroutine stack, in 8-byte words; must be even (may prints every coroutine's stack use
    /// when it is odd) and at least 512.
    #[arg(long, default_value_t = 0x400)]
    stack_words: usize,
    /// Ignored: `cargo bench` passes it to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|e| format!("{e}"))?;
    match addr.ip() {
        IpAddr::V4(ip) if ip.octets()[0] == 127 => Ok(addr),
        _ => Err(format!("{addr} is not a 127.x.x.x address")),
    }
}

fn parse_source(text: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = text.trim().parse().map_err(|e| format!("{e}"))?;
    if ip.octets()[0] != 127 {
        return Err(format!("{ip} is not a 127.x.x.x address"));
    }
    Ok(ip)
}

/// Topics go into a query string unescaped, so only characters that need no escaping.
fn parse_topic(text: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.~".contains(c);
    if text.is_empty() || text.len() > 256 || !text.chars().all(ok) {
        return Err(format!("'{text}': 1 to 256 of A-Z a-z 0-9 - _ . ~, please"));
    }
    Ok(text.to_string())
}

fn validate(args: &Args) -> Result<(), String> {
    if args.stack_words % 2 == 1 || args.stack_words < 512 {
        return Err(format!(
            "--stack-words {} must be even and at least 512",
            args.stack_words
        ));
    }
    if args.deadline.is_zero() {
        return Err("--deadline must be greater than 0".into());
    }
    if !args.subscribers_path.starts_with('/') {
        return Err("--subscribers-path must start with '/'".into());
    }
    match (args.role, args.connections) {
        (Role::Publish, 0) if args.mode == Mode::Poll => {}
        (Role::Publish, _) => {
            return Err("--role publish holds no connections (--connections 0, poll mode)".into());
        }
        (_, 0) => return Err("--connections must be at least 1".into()),
        (Role::Wait, _) if args.mode != Mode::Poll => {
            return Err("--role wait is for poll mode".into());
        }
        _ => {}
    }
    Ok(())
}

/// Lifts the soft open-files limit to the hard one; returns the soft limit now in force.
fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            eprintln!("fanout: warning: could not raise the open-files limit: {err}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

// ---- what the connections share and record ----------------------------------------------------

/// Counters of connection outcomes; every connection ends in at most one failure class.
#[derive(Default)]
struct Counters {
    connected: AtomicUsize,
    /// Poll: the GET /poll was written. Idle: the GET /plaintext was answered correctly.
    ready: AtomicUsize,
    /// Coroutines that are done (response read, failed, or gave up).
    finished: AtomicUsize,
    /// Once per coroutine: poll, when its request is sent; otherwise when it ends.
    placed: AtomicUsize,
    /// Poll: coroutines that had sent their request and have ended since (either way).
    ended_waiting: AtomicUsize,
    connect_errors: AtomicUsize,
    /// The server closed or reset the connection before a complete response.
    dropped: AtomicUsize,
    /// No response by the deadline.
    timeouts: AtomicUsize,
    /// A complete response with the wrong status (e.g. 204: the poll timed out; 503).
    bad_status: AtomicUsize,
    /// Unparsable response, unexpected framing, or the wrong body.
    malformed: AtomicUsize,
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn load(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::Acquire)
}

type Stream = CoIo<TcpStream>;

struct Shared {
    addrs: Vec<SocketAddr>,
    mode: Mode,
    sources: Vec<Ipv4Addr>,
    request: Vec<u8>,
    /// The body a correct response carries.
    expected: Vec<u8>,
    start: Instant,
    /// `start` on CLOCK_MONOTONIC, ns (for `--arrivals-file`).
    start_abs_ns: u64,
    deadline: Instant,
    counters: Counters,
    /// Poll: when each connection's correct response was complete, ns after `start`; 0 = not.
    arrivals: Vec<AtomicU64>,
    /// Served connections, kept open until the process exits (closing them during the
    /// fan-out would load the server and this client with FINs while others still wait).
    kept: Mutex<Vec<Stream>>,
}

/// Why a connection did not give the expected response.
enum Failure {
    Dropped,
    Timeout,
    Status,
    Malformed,
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        match err.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Timeout,
            _ => Failure::Dropped,
        }
    }
}

impl Shared {
    fn failed(&self, failure: &Failure) {
        let c = &self.counters;
        bump(match failure {
            Failure::Dropped => &c.dropped,
            Failure::Timeout => &c.timeouts,
            Failure::Status => &c.bad_status,
            Failure::Malformed => &c.malformed,
        });
    }

    fn since_start_ns(&self, at: Instant) -> u64 {
        u64::try_from((at - self.start).as_nanos()).unwrap_or(u64::MAX)
    }
}

// ---- one connection ---------------------------------------------------------------------------

fn connection(id: usize, shared: &Shared) {
    let c = &shared.counters;
    let waited = serve(id, shared);
    bump(if waited { &c.ended_waiting } else { &c.placed });
}

/// One connection's life; returns whether it got as far as waiting (poll: request sent).
fn serve(id: usize, shared: &Shared) -> bool {
    let c = &shared.counters;
    let source = shared.sources[id % shared.sources.len()];
    let addr = shared.addrs[id % shared.addrs.len()];
    let connected = connect(addr, source, shared.deadline);
    let mut stream = match connected {
        Ok(stream) => stream,
        Err(_) => {
            bump(&c.connect_errors);
            return false;
        }
    };
    bump(&c.connected);
    if let Err(failure) = stream.write_all(&shared.request) {
        shared.failed(&failure.into());
        return false;
    }
    if shared.mode == Mode::Poll {
        bump(&c.ready);
        bump(&c.placed);
    }
    match read_response(&mut stream, &shared.expected) {
        Ok(()) => {
            let done = Instant::now();
            match shared.mode {
                Mode::Poll => {
                    shared.arrivals[id].store(shared.since_start_ns(done), Ordering::Release);
                }
                Mode::Idle => bump(&c.ready),
            }
            shared
                .kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(stream);
        }
        Err(failure) => shared.failed(&failure),
    }
    shared.mode == Mode::Poll
}

/// A non-blocking connect from `source`, parking only this coroutine; reads and writes on the
/// stream time out at `deadline`.
fn connect(addr: SocketAddr, source: Ipv4Addr, deadline: Instant) -> io::Result<Stream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(source), 0)))?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    let pending = match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) => return Err(e),
    };
    let stream = CoIo::new(TcpStream::from(socket))?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    if pending {
        loop {
            if let Some(err) = stream.inner().take_error()? {
                return Err(err);
            }
            if stream.inner().peer_addr().is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
            stream.wait_io();
        }
    }
    Ok(stream)
}

/// Reads one whole response; `Ok` if it is a 200 carrying `expected`.
fn read_response<S: Read>(stream: &mut S, expected: &[u8]) -> Result<(), Failure> {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let head = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        read_more(stream, &mut buf)?;
    };
    let end = head.head_len + head.body_bytes().map_err(|_| Failure::Malformed)?;
    while buf.len() < end {
        read_more(stream, &mut buf)?;
    }
    if buf.len() > end {
        return Err(Failure::Malformed); // one request in flight: nothing may follow
    }
    if head.status != 200 {
        return Err(Failure::Status);
    }
    if buf[head.head_len..] != *expected {
        return Err(Failure::Malformed);
    }
    Ok(())
}

fn read_more<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Result<(), Failure> {
    let filled = buf.len();
    buf.resize(filled + READ_CHUNK, 0);
    let read = stream.read(&mut buf[filled..]);
    buf.truncate(filled + *read.as_ref().unwrap_or(&0));
    match read? {
        0 => Err(Failure::Dropped),
        _ => Ok(()),
    }
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    response::parse_head(buf).map_err(|response::Malformed| Failure::Malformed)
}

// ---- the main thread's own requests (blocking std sockets: it is not a may worker) -----------

/// One request on a fresh connection from 127.0.0.1; the body of a 200 response.
fn control_request(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, CONTROL_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(CONTROL_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(CONTROL_TIMEOUT)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    read_body(&mut stream)
}

fn read_body(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let head = loop {
        if let Some(head) = parse_head(&buf).map_err(|_| "malformed response".to_string())? {
            break head;
        }
        read_more(stream, &mut buf).map_err(|_| "closed or timed out".to_string())?;
    };
    let end = head.head_len
        + head
            .body_bytes()
            .map_err(|_| "response without Content-Length".to_string())?;
    while buf.len() < end {
        read_more(stream, &mut buf).map_err(|_| "closed or timed out".to_string())?;
    }
    if head.status != 200 {
        return Err(format!("status {}", head.status));
    }
    buf.drain(..head.head_len);
    Ok(buf)
}

/// Waiting long-polls as one server counts them, and which process said so (when the answer
/// is `pid P subscribers N`; else a Prometheus text with `corral_topic_subscribers N`, or a
/// bare number).
fn subscribers(addr: SocketAddr, path: &str) -> Result<(Option<u32>, u64), String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let body = control_request(addr, request.as_bytes())?;
    let text = String::from_utf8_lossy(&body);
    let bad = || format!("no subscriber count in the answer to GET {path}");
    if let Some(rest) = text.trim().strip_prefix("pid ") {
        let mut words = rest.split_whitespace();
        let pid = words.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let count = match (words.next(), words.next()) {
            (Some("subscribers"), Some(n)) => n.parse().map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        return Ok((Some(pid), count));
    }
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("corral_topic_subscribers "))
        .unwrap_or(&text);
    Ok((None, value.trim().parse().map_err(|_| bad())?))
}

/// The servers' subscriber counts, per address and process: each the highest reported.
#[derive(Default)]
struct Counts(std::collections::HashMap<(usize, Option<u32>), u64>);

impl Counts {
    /// Asks every address once; the total so far, or the last error if none answered.
    fn ask(&mut self, addrs: &[SocketAddr], path: &str) -> Result<u64, String> {
        let mut error = None;
        for (i, addr) in addrs.iter().enumerate() {
            match subscribers(*addr, path) {
                Ok((pid, count)) => {
                    let seen = self.0.entry((i, pid)).or_default();
                    *seen = (*seen).max(count);
                }
                Err(why) => error = Some(why),
            }
        }
        match (self.0.is_empty(), error) {
            (true, Some(why)) => Err(why),
            _ => Ok(self.0.values().sum()),
        }
    }
}

/// This network namespace's TcpExt ListenOverflows and TCPSynRetrans, from /proc/net/netstat
/// (pairs of lines: `TcpExt: Name ...` then `TcpExt: value ...`).
fn tcp_counters() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let value = |name: &str| {
            let at = names.split_whitespace().position(|n| n == name)?;
            values.split_whitespace().nth(at)?.parse::<u64>().ok()
        };
        return Some((value("ListenOverflows")?, value("TCPSynRetrans")?));
    }
    None
}

/// `VmRSS` and `VmHWM` of processes, KiB, summed (`None` if there are none, or one cannot
/// be read).
fn rss_kb(pids: &[u32]) -> Option<(u64, u64)> {
    if pids.is_empty() {
        return None;
    }
    let mut total = (0, 0);
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        };
        total.0 += field("VmRSS:")?;
        total.1 += field("VmHWM:")?;
    }
    Some(total)
}

/// CLOCK_MONOTONIC now, ns: the clock `Instant` reads, comparable between processes.
fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

// ---- run and report -----------------------------------------------------------------------------

/// What the main thread saw, for the report.
#[derive(Default)]
struct Run {
    rss_before: Option<(u64, u64)>,
    rss_after: Option<(u64, u64)>,
    /// Poll: the server's last subscriber count. Idle: connections found still open.
    held: Option<u64>,
    /// Poll: the count the publish answered, and how long it took.
    reached: Option<u64>,
    publish: Option<Duration>,
    publish_at_ns: Option<u64>,
    /// The same instant on CLOCK_MONOTONIC, for other processes' arrivals.
    publish_at_abs_ns: Option<u64>,
    /// Start to all connections in place.
    setup: Option<Duration>,
    /// `tcp_counters` at the start and at the end.
    tcp_before: Option<(u64, u64)>,
    tcp_after: Option<(u64, u64)>,
    /// Phase in which the deadline ran out, if it did; or a problem that ended the run early.
    cut_short: Option<String>,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.sources.is_empty() {
        args.sources = (0..args.source_count)
            .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i))
            .collect();
    }
    if let Err(msg) = validate(&args) {
        eprintln!("fanout: error: {msg}");
        return ExitCode::from(2);
    }
    let files = raise_open_files_limit();
    let needed = u64::from(args.connections) + SPARE_FDS;
    if files < needed {
        eprintln!(
            "fanout: error: {} connections need about {needed} open files; the limit is {files}",
            args.connections
        );
        return ExitCode::from(2);
    }
    may::config()
        .set_workers(usize::from(args.workers))
        .set_stack_size(args.stack_words);

    let start = Instant::now();
    let start_abs_ns = monotonic_ns();
    let n = args.connections as usize;
    let path = match args.mode {
        Mode::Poll => format!("/poll?topic={}", args.topic),
        Mode::Idle => "/plaintext".to_string(),
    };
    let shared = Arc::new(Shared {
        addrs: args.addr.clone(),
        mode: args.mode,
        sources: args.sources.clone(),
        request: format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", args.addr[0]).into_bytes(),
        expected: match args.mode {
            Mode::Poll => args.message.clone().into_bytes(),
            Mode::Idle => b"Hello, World!".to_vec(),
        },
        start,
        start_abs_ns,
        deadline: start + args.deadline,
        counters: Counters::default(),
        arrivals: (0..n).map(|_| AtomicU64::new(0)).collect(),
        kept: Mutex::new(Vec::with_capacity(n)),
    });

    let mut run = Run {
        rss_before: rss_kb(&args.server_pid),
        tcp_before: tcp_counters(),
        ..Run::default()
    };
    if !args.server_pid.is_empty() && run.rss_before.is_none() {
        eprintln!(
            "fanout: warning: cannot read /proc/PID/status of {:?}",
            args.server_pid
        );
    }
    if let Err(why) = drive(&args, &shared, &mut run) {
        run.cut_short = Some(why);
    }
    run.tcp_after = tcp_counters();
    if let Some(path) = &args.arrivals_file
        && let Err(err) = write_arrivals(path, &shared)
    {
        eprintln!("fanout: error: cannot write {}: {err}", path.display());
        return ExitCode::from(1);
    }
    report(&args, &shared, &run);
    ExitCode::SUCCESS
}

/// One CLOCK_MONOTONIC time (ns) per correct arrival, a line each.
fn write_arrivals(path: &std::path::Path, shared: &Shared) -> io::Result<()> {
    let mut text = String::new();
    for arrival in &shared.arrivals {
        let at = arrival.load(Ordering::Acquire);
        if at != 0 {
            text.push_str(&(shared.start_abs_ns + at).to_string());
            text.push('\n');
        }
    }
    std::fs::write(path, text)
}

/// Sleeps until `done` or the deadline; false if the deadline came first.
fn wait_until(shared: &Shared, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= shared.deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL.min(shared.deadline - now));
    }
}

/// The phases of a run; `Err` names the phase the deadline (or a failure) cut short.
fn drive(args: &Args, shared: &Arc<Shared>, run: &mut Run) -> Result<(), String> {
    let n = shared.arrivals.len();
    let c = &shared.counters;
    let mut counts = Counts::default();
    let path = &args.subscribers_path;
    let base = args.subscribed_base;

    // Open the connections, at most `connect_window` of them not known to be accepted.
    let window = args.connect_window as usize;
    let mut subscribed = 0usize; // poll: the servers' count, less what others placed
    let mut asked = None::<Instant>;
    for id in 0..n {
        loop {
            // Failed connections are out of the server's queue too.
            let failed = load(&c.connect_errors) + load(&c.dropped) + load(&c.timeouts);
            let accepted = match args.mode {
                Mode::Idle => load(&c.ready) + load(&c.bad_status) + load(&c.malformed),
                Mode::Poll => subscribed,
            };
            if id < accepted + failed + window {
                break;
            }
            if Instant::now() >= shared.deadline {
                return Err(format!("deadline while connecting ({id} of {n} started)"));
            }
            if args.mode == Mode::Poll && asked.is_none_or(|at| at.elapsed() >= WINDOW_ASK_INTERVAL)
            {
                asked = Some(Instant::now());
                if let Ok(count) = counts.ask(&args.addr, path) {
                    let own = count.saturating_sub(base);
                    subscribed = subscribed.max(usize::try_from(own).unwrap_or(usize::MAX));
                }
            } else {
                std::thread::sleep(WINDOW_INTERVAL);
            }
        }
        let shared = shared.clone();
        may::go!(move || {
            connection(id, &shared);
            bump(&shared.counters.finished);
        });
    }

    match args.mode {
        Mode::Poll => {
            // Every connection has sent its GET /poll or failed ...
            if !wait_until(shared, || load(&c.placed) >= n) {
                return Err("deadline while sending the long-polls".into());
            }
            // ... and the servers count as many waiting as we have (before the publish, a
            // waiter that ended has failed, and the server will not count it), or, to
            // publish for others, as many as expected.
            let want = || match args.role {
                Role::Publish => args.expect,
                _ => base + (load(&c.ready) - load(&c.ended_waiting)) as u64,
            };
            let mut last_error = None;
            let counted = wait_until(shared, || match counts.ask(&args.addr, path) {
                Ok(count) => {
                    run.held = Some(count.saturating_sub(base));
                    count >= want()
                }
                Err(why) => {
                    last_error = Some(why);
                    false
                }
            });
            run.setup = Some(start_elapsed(shared));
            if !counted {
                return Err(format!(
                    "deadline while waiting for {} subscribers (servers counted {}{})",
                    want(),
                    run.held.map_or("none".into(), |h| (h + base).to_string()),
                    last_error.map_or(String::new(), |e| format!("; last error: {e}"))
                ));
            }
            if args.role == Role::Wait {
                println!("READY");
                let _ = io::stdout().flush();
            } else {
                std::thread::sleep(args.settle.min(remaining(shared)));
                run.rss_after = rss_kb(&args.server_pid);
                publish(args, shared, run)?;
            }
            if !wait_until(shared, || load(&c.finished) >= n) {
                return Err("deadline while waiting for the fan-out".into());
            }
        }
        Mode::Idle => {
            if !wait_until(shared, || load(&c.finished) >= n) {
                return Err("deadline while opening and serving the connections".into());
            }
            run.setup = Some(start_elapsed(shared));
            std::thread::sleep(args.settle.min(remaining(shared)));
            run.rss_after = rss_kb(&args.server_pid);
            run.held = Some(still_open(shared));
        }
    }
    Ok(())
}

fn start_elapsed(shared: &Shared) -> Duration {
    shared.start.elapsed()
}

fn remaining(shared: &Shared) -> Duration {
    shared.deadline.saturating_duration_since(Instant::now())
}

/// Sends the one publish; records when it went out, how long it took and whom it reached.
fn publish(args: &Args, shared: &Shared, run: &mut Run) -> Result<(), String> {
    let request = format!(
        "POST /publish?topic={} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        args.topic,
        args.addr[0],
        args.message.len(),
        args.message
    );
    // Connected first, so the connect is not part of the fan-out time.
    let mut stream = TcpStream::connect_timeout(&args.addr[0], CONTROL_TIMEOUT)
        .map_err(|e| format!("publish: connect: {e}"))?;
    let timeout = Some(remaining(shared).max(Duration::from_millis(1)));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| format!("publish: socket: {e}"))?;
    let at = Instant::now();
    run.publish_at_ns = Some(shared.since_start_ns(at));
    run.publish_at_abs_ns = Some(monotonic_ns());
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("publish: write: {e}"))?;
    let body = read_body(&mut stream).map_err(|e| format!("publish: {e}"))?;
    run.publish = Some(at.elapsed());
    run.reached = String::from_utf8_lossy(&body).trim().parse().ok();
    Ok(())
}

/// Kept connections the server has not closed: a non-blocking peek finds no EOF, no error.
fn still_open(shared: &Shared) -> u64 {
    let kept = shared.kept.lock().unwrap_or_else(PoisonError::into_inner);
    let mut probe = [0u8; 1];
    let mut open = 0;
    for stream in kept.iter() {
        // CoIo keeps its socket non-blocking: WouldBlock means open and quiet.
        match stream.inner().peek(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => open += 1,
            Ok(0) | Ok(_) | Err(_) => bump(&shared.counters.dropped),
        }
    }
    open
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

fn opt<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "na".to_string(), |v| v.to_string())
}

fn ms(ns: Option<u64>) -> String {
    opt(ns.map(|ns| format!("{:.3}", ns as f64 / 1e6)))
}

fn report(args: &Args, shared: &Shared, run: &Run) {
    let c = &shared.counters;
    let n = shared.arrivals.len();

    // Fan-out latencies: correct responses complete after the publish went out.
    let mut latencies = Vec::new();
    let mut early = 0usize;
    if let Some(at) = run.publish_at_ns {
        for arrival in &shared.arrivals {
            match arrival.load(Ordering::Acquire) {
                0 => {}
                t if t < at => early += 1,
                t => latencies.push(t - at),
            }
        }
    }
    latencies.sort_unstable();
    let received = match args.mode {
        // No publish of its own: every correct answer counts (the caller compares their
        // times, from --arrivals-file, with the publisher's).
        Mode::Poll if args.role == Role::Wait => shared
            .arrivals
            .iter()
            .filter(|a| a.load(Ordering::Acquire) != 0)
            .count(),
        Mode::Poll => latencies.len(),
        Mode::Idle => load(&c.ready),
    };
    let dropped = load(&c.dropped);
    let connect_errors = load(&c.connect_errors);
    let timeouts = load(&c.timeouts);
    let bad_status = load(&c.bad_status);
    let malformed = load(&c.malformed) + early;
    let errors = connect_errors + dropped + timeouts + bad_status + malformed;
    // Connections that neither succeeded nor failed (still waiting when the run ended).
    let missing = n.saturating_sub(received + errors);

    let held = match args.mode {
        Mode::Poll if args.role == Role::Publish => run.held,
        Mode::Poll => run.held.map(|h| h.min(n as u64)),
        Mode::Idle => run.held,
    };
    let rss_before = run.rss_before.map(|(rss, _)| rss);
    let rss_after = run.rss_after.map(|(rss, _)| rss);
    let per_conn = match (rss_before, rss_after, held) {
        (Some(before), Some(after), Some(held)) if held > 0 => {
            Some(((after as f64 - before as f64) * 1024.0 / held as f64).round() as i64)
        }
        _ => None,
    };
    let hwm = run.rss_after.or(run.rss_before).map(|(_, hwm)| hwm);
    let (overflows, syn_retrans) = match (run.tcp_before, run.tcp_after) {
        (Some((o0, s0)), Some((o1, s1))) => {
            (Some(o1.saturating_sub(o0)), Some(s1.saturating_sub(s0)))
        }
        _ => (None, None),
    };
    let (p50, p99, max) = (
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.99),
        latencies.last().copied(),
    );

    println!(
        "fanout: mode {} ({:?}), {n} connections from {} source address(es) to {:?}, \
         {} client worker(s), {} KiB stacks",
        args.mode.name(),
        args.role,
        args.sources.len(),
        args.addr,
        args.workers,
        args.stack_words * 8 / 1024
    );
    println!(
        "  in place after {} s: {} connected, server holds {}",
        opt(run.setup.map(|d| format!("{:.2}", d.as_secs_f64()))),
        load(&c.connected),
        opt(held)
    );
    println!(
        "  server RSS {} KiB before, {} KiB after ({} B per connection), peak {} KiB",
        opt(rss_before),
        opt(rss_after),
        opt(per_conn),
        opt(hwm)
    );
    if args.mode == Mode::Poll {
        println!(
            "  publish reached {} in {} ms; fan-out p50 {} ms, p99 {} ms, max {} ms",
            opt(run.reached),
            ms(run.publish.map(|d| d.as_nanos() as u64)),
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    println!(
        "  received {received}; errors {errors} (connect {connect_errors}, dropped {dropped}, \
         timeout {timeouts}, status {bad_status}, malformed {malformed}); unfinished {missing}"
    );
    println!(
        "  kernel, whole namespace, during the run: {} listen overflows, {} SYN retransmits",
        opt(overflows),
        opt(syn_retrans)
    );
    if let Some(why) = &run.cut_short {
        println!("  cut short: {why}");
    }

    println!(
        "RESULT mode={} n={n} connected={} held={} rss_before_kb={} rss_after_kb={} \
         rss_hwm_kb={} rss_per_conn_bytes={} fanout_p50_ms={} fanout_p99_ms={} \
         fanout_max_ms={} publish_ms={} reached={} received={received} errors={errors} \
         connect_errors={connect_errors} dropped={dropped} timeouts={timeouts} \
         bad_status={bad_status} malformed={malformed} unfinished={missing} setup_s={} \
         listen_overflows={} syn_retrans={} publish_at_ns={} complete={}",
        args.mode.name(),
        load(&c.connected),
        opt(held),
        opt(rss_before),
        opt(rss_after),
        opt(hwm),
        opt(per_conn),
        ms(p50),
        ms(p99),
        ms(max),
        ms(run.publish.map(|d| d.as_nanos() as u64)),
        opt(run.reached),
        opt(run.setup.map(|d| format!("{:.2}", d.as_secs_f64()))),
        opt(overflows),
        opt(syn_retrans),
        opt(run.publish_at_abs_ns),
        u8::from(run.cut_short.is_none()),
    );
}
