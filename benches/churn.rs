//! Churn load generator: many clients, each opening a fresh connection for a few keep-alive
//! requests, on a skewed mix of a cheap route (`/plaintext`) and a costly one (`/cpu?us=N`).
//! It is the client half of `benches/placement.sh`, which starts Corral once per placement
//! policy and compares the runs.
//!
//! Run with: `cargo bench --bench churn -- --addr 127.0.0.1:8080 --duration 10s`
//! (all flags: `cargo bench --bench churn -- --help`).
//!
//! **Closed loop** (the default): every client is a may coroutine that loops until the
//! deadline: connect, send `--requests-per-conn` requests one at a time (each waits for its
//! response; the route is `/cpu?us=N` with probability `--cpu-share`, from a seeded
//! xorshift), then close. A request is timed from just before its write to the last byte of
//! its response, so time spent waiting for this process's own worker is included: run it on
//! its own core when you can. The offered load is whatever the server can take, so a
//! saturated server shows queue depth, not its policy.
//!
//! **Open loop** (`--rate R`): each client follows its own Poisson schedule of request start
//! times, `R / --clients` per second (exponential gaps drawn from a seeded xorshift, a stream
//! apart from the route choice, so the route sequence is the closed loop's). It sleeps until
//! a request is due, opens a connection at the first request of each `--requests-per-conn`
//! and keeps it between the others (idle while it waits), and never skips: a client behind
//! its schedule sends at once. A request is timed from its *scheduled* start, so connect
//! time (first request on a connection), the client's own lateness and a stalled server all
//! count (no coordinated omission). The send lag (actual start − scheduled start) is
//! reported apart, to tell the client falling behind from the server being slow. A request
//! that fails counts as an error and is not retried; a failed connect uses up its request.
//!
//! Requests that *start* (closed loop) or are *due* (open loop) after the warm-up are
//! measured; throughput counts those that also finish by the deadline. Errors are counted
//! over the whole run, warm-up included.
//!
//! Latencies and throughput count 200 answers only. Any other status is an error; a 503 (a
//! server shedding load, `benches/overload.sh`) is also counted by route, and the connection
//! goes on unless the answer closed it.
//!
//! Output: a human summary, then one line `RESULT key=value ...` for scripts. The exit status
//! is 0 whatever the server did (errors are reported), 2 on bad arguments.
//!
//! Bounded: no connection or request starts after the deadline; in-flight requests get
//! `--timeout` plus one second to finish, then the process exits regardless.
#![allow(clippy::print_stdout)]

#[path = "common/duration.rs"]
mod duration;
#[path = "common/response.rs"]
mod response;
use duration::parse_duration;
use response::Head;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use may::io::{CoIo, WaitIo};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Largest latency a histogram holds, µs; longer ones are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Bytes read per `read` call while waiting for a response.
const READ_CHUNK: usize = 4096;
/// Pause after a failed connect, so a refusing server does not turn a client into a busy loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// How often the main thread checks whether every client has finished.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A skewed, connection-churning HTTP/1.1 load: cheap `/plaintext` and costly `/cpu?us=N`.
#[derive(Parser, Debug)]
#[command(name = "churn")]
struct Args {
    /// Server address; loopback only (127.0.0.0/8 or [::1]).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_addr)]
    addr: SocketAddr,
    /// Concurrent clients (coroutines), each with at most one connection open.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Requests sent on each fresh connection before it is closed.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    requests_per_conn: u32,
    /// Probability that a request goes to /cpu instead of /plaintext, 0..=1.
    #[arg(long, default_value_t = 0.10, value_parser = parse_share)]
    cpu_share: f64,
    /// CPU time one /cpu request burns on the server, µs.
    #[arg(long, default_value_t = 2000)]
    cpu_us: u64,
    /// Measured time after the warm-up: 10s, 500ms, 1m or plain seconds.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before measuring starts (same units as --duration; may be 0).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Longest wait for any one read or write; over it the connection counts as a timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// may worker threads of this load generator.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Open loop: total requests/s over all clients, each on a Poisson schedule of
    /// rate/clients; latency counts from the scheduled start. Default: closed loop.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Seed of the route choice and the arrival schedule; each client derives its own
    /// streams from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Comma-separated 127.x.x.x addresses to bind client sockets to, in turn, to spread
    /// ephemeral ports. Default: none, the kernel picks the source address and port.
    #[arg(long, value_delimiter = ',', value_parser = parse_source)]
    sources: Vec<Ipv4Addr>,
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

fn parse_source(text: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = text.trim().parse().map_err(|e| format!("{e}"))?;
    if ip.octets()[0] != 127 {
        return Err(format!("{ip} is not a 127.x.x.x address"));
    }
    Ok(ip)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "'{text}' is not a positive number of requests per second"
        )),
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("'{text}' is not a number from 0 to 1")),
    }
}

/// Checks that need more than one flag; clap's own errors exit with status 2 as well.
fn validate(args: &Args) -> Result<(), String> {
    if args.duration.is_zero() {
        return Err("--duration must be greater than 0".into());
    }
    if args.timeout.is_zero() {
        return Err("--timeout must be greater than 0".into());
    }
    if !args.sources.is_empty() && !args.addr.is_ipv4() {
        return Err("--sources are IPv4 addresses, so --addr must be IPv4 too".into());
    }
    Ok(())
}

// ---- the plan every client follows ----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Cheap = 0,
    Cpu = 1,
}

/// One route's request bytes and the body a 200 must carry.
struct Target {
    request: Vec<u8>,
    body: &'static [u8],
}

struct Plan {
    addr: SocketAddr,
    sources: Vec<Ipv4Addr>,
    requests_per_conn: u32,
    cpu_share: f64,
    targets: [Target; 2],
    io_timeout: Duration,
    seed: u64,
    /// Open loop: mean gap between one client's scheduled starts, ns. `None`: closed loop.
    mean_gap_ns: Option<f64>,
    start: Instant,
    measure_from: Instant,
    deadline: Instant,
}

impl Plan {
    fn new(args: &Args, start: Instant) -> Plan {
        let request =
            |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", args.addr).into_bytes();
        let measure_from = start + args.warmup;
        Plan {
            addr: args.addr,
            sources: args.sources.clone(),
            requests_per_conn: args.requests_per_conn,
            cpu_share: args.cpu_share,
            targets: [
                Target {
                    request: request("/plaintext"),
                    body: b"Hello, World!",
                },
                Target {
                    request: request(&format!("/cpu?us={}", args.cpu_us)),
                    body: b"ok",
                },
            ],
            io_timeout: args.timeout,
            seed: args.seed,
            mean_gap_ns: args.rate.map(|rate| f64::from(args.clients) * 1e9 / rate),
            start,
            measure_from,
            deadline: measure_from + args.duration,
        }
    }

    fn measured(&self, started: Instant) -> bool {
        started >= self.measure_from
    }

    /// Seed of a client's route choice.
    fn route_seed(&self, client: u32) -> u64 {
        self.seed ^ u64::from(client).wrapping_mul(0x1000_0000_01B3)
    }

    /// The source address of a client's `n`th connection, if `--sources` were given.
    fn source(&self, client: u32, n: u64) -> Option<Ipv4Addr> {
        let count = self.sources.len() as u64;
        (count > 0).then(|| self.sources[((u64::from(client) + n) % count) as usize])
    }
}

/// xorshift64*: a few ns per draw, reproducible from the seed, no dependency.
struct XorShift(u64);

impl XorShift {
    /// Spreads nearby seeds (client ids) apart with a splitmix64 step; never zero.
    fn new(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    fn unit_open(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// Added to a client's route seed to give its arrival stream.
const ARRIVAL_STREAM: u64 = 0x6A09_E667_F3BC_C909;

/// One open-loop client's request start times: a Poisson process (exponential gaps).
struct Schedule {
    rng: XorShift,
    mean_gap_ns: f64,
    /// When the next request is due.
    next: Instant,
}

impl Schedule {
    /// The first request is one gap after `start`: clients start spread out, not together.
    fn new(seed: u64, mean_gap_ns: f64, start: Instant) -> Schedule {
        let mut schedule = Schedule {
            rng: XorShift::new(seed.wrapping_add(ARRIVAL_STREAM)),
            mean_gap_ns,
            next: start,
        };
        schedule.advance();
        schedule
    }

    fn advance(&mut self) {
        let gap_ns = -self.rng.unit_open().ln() * self.mean_gap_ns;
        self.next += Duration::from_nanos(gap_ns as u64);
    }

    /// Uses up the rest of the schedule; returns how many of its requests fell due in the
    /// measured window (they were never sent: the client was still behind at the deadline).
    fn drain(&mut self, plan: &Plan) -> u64 {
        let mut missed = 0;
        while self.next < plan.deadline {
            missed += u64::from(plan.measured(self.next));
            self.advance();
        }
        missed
    }
}

// ---- what the clients record ----------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default)]
struct Errors {
    connect: u64,
    timeout: u64,
    io: u64,
    status: u64,
    malformed: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect + self.timeout + self.io + self.status + self.malformed
    }
}

struct Stats {
    by_route: [Histogram<u64>; 2],
    /// Cheap requests by turn on their connection: the first (sent right after the connect,
    /// so right after the server placed the connection) and the later ones.
    cheap_by_turn: [Histogram<u64>; 2],
    all: Histogram<u64>,
    connect: Histogram<u64>,
    /// Open loop: how late each measured request was sent (actual − scheduled start).
    lag: Histogram<u64>,
    /// Measured requests that also finished by the deadline: the throughput count.
    in_time: u64,
    /// Measured requests sent (whatever came of them).
    sent: u64,
    /// Open loop: measured requests due before the deadline but never sent.
    unsent: u64,
    /// Measured requests answered 503 (shed by the server), by route.
    shed: [u64; 2],
    connections: u64,
    errors: Errors,
}

fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|e| panic!("histogram: {e}"))
}

impl Stats {
    fn new() -> Stats {
        Stats {
            by_route: [histogram(), histogram()],
            cheap_by_turn: [histogram(), histogram()],
            all: histogram(),
            connect: histogram(),
            lag: histogram(),
            in_time: 0,
            sent: 0,
            unsent: 0,
            shed: [0, 0],
            connections: 0,
            errors: Errors::default(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Shared by all clients. With one worker nobody waits for the lock; with more it is held
/// for one histogram update at a time.
struct Shared {
    plan: Plan,
    stats: Mutex<Stats>,
    finished: AtomicUsize,
}

impl Shared {
    fn record(&self, update: impl FnOnce(&mut Stats)) {
        update(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Request number `turn` (0 = first) on its connection, timed from `started`.
    fn request_done(&self, route: Route, turn: u32, started: Instant, finished: Instant) {
        if !self.plan.measured(started) {
            return;
        }
        let us = micros(finished - started);
        let in_time = finished <= self.plan.deadline;
        self.record(|s| {
            s.by_route[route as usize].saturating_record(us);
            if route == Route::Cheap {
                s.cheap_by_turn[usize::from(turn > 0)].saturating_record(us);
            }
            s.all.saturating_record(us);
            s.in_time += u64::from(in_time);
        });
    }

    /// A request due (open loop) or started (closed loop) at `origin` is sent at `sent`.
    fn sending(&self, origin: Instant, sent: Instant) {
        if !self.plan.measured(origin) {
            return;
        }
        let open = self.plan.mean_gap_ns.is_some();
        self.record(|s| {
            s.sent += 1;
            if open {
                s.lag
                    .saturating_record(micros(sent.saturating_duration_since(origin)));
            }
        });
    }

    fn unsent(&self, count: u64) {
        if count > 0 {
            self.record(|s| s.unsent += count);
        }
    }

    fn connected(&self, started: Instant, finished: Instant) {
        if self.plan.measured(started) {
            self.record(|s| {
                s.connect.saturating_record(micros(finished - started));
                s.connections += 1;
            });
        }
    }

    /// A measured request of `route`, due or started at `origin`, was answered 503.
    fn shed(&self, route: Route, origin: Instant) {
        if self.plan.measured(origin) {
            self.record(|s| s.shed[route as usize] += 1);
        }
    }

    fn failed(&self, failure: &Failure) {
        self.record(|s| match failure {
            Failure::Connect => s.errors.connect += 1,
            Failure::Timeout => s.errors.timeout += 1,
            Failure::Io => s.errors.io += 1,
            Failure::Status { .. } => s.errors.status += 1,
            Failure::Malformed => s.errors.malformed += 1,
        });
    }
}

// ---- one client -------------------------------------------------------------------------------

/// Why a connection or a request did not give the expected 200.
#[derive(Debug)]
enum Failure {
    Connect,
    Timeout,
    Io,
    /// A complete response whose status was not 200; usable afterwards unless `close`.
    Status {
        status: u16,
        close: bool,
    },
    /// Unparsable, unexpected framing, wrong body, or the peer closed mid-response.
    Malformed,
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        match err.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Timeout,
            io::ErrorKind::UnexpectedEof => Failure::Malformed,
            _ => Failure::Io,
        }
    }
}

type Stream = CoIo<std::net::TcpStream>;

fn client(id: u32, shared: &Shared) {
    let plan = &shared.plan;
    let mut rng = XorShift::new(plan.route_seed(id));
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut n = 0u64;
    while Instant::now() < plan.deadline {
        let started = Instant::now();
        match connect(plan.addr, plan.source(id, n), plan.io_timeout) {
            Ok(mut stream) => {
                shared.connected(started, Instant::now());
                run_connection(&mut stream, shared, &mut rng, &mut buf);
            }
            Err(_) => {
                shared.failed(&Failure::Connect);
                may::coroutine::sleep(CONNECT_BACKOFF);
            }
        }
        n += 1;
    }
}

/// Up to `requests_per_conn` requests, one at a time; the stream is closed when dropped.
fn run_connection(stream: &mut Stream, shared: &Shared, rng: &mut XorShift, buf: &mut Vec<u8>) {
    let plan = &shared.plan;
    for turn in 0..plan.requests_per_conn {
        let started = Instant::now();
        if started >= plan.deadline {
            return;
        }
        let route = pick_route(rng, plan.cpu_share);
        shared.sending(started, started);
        match exchange(stream, &plan.targets[route as usize], buf) {
            Ok(reply) => {
                shared.request_done(route, turn, started, Instant::now());
                if reply.close {
                    return;
                }
            }
            Err(failure) => {
                shared.failed(&failure);
                if let Failure::Status { status: 503, .. } = failure {
                    shared.shed(route, started);
                }
                if !matches!(failure, Failure::Status { close: false, .. }) {
                    return;
                }
            }
        }
    }
}

fn pick_route(rng: &mut XorShift, cpu_share: f64) -> Route {
    if rng.chance(cpu_share) {
        Route::Cpu
    } else {
        Route::Cheap
    }
}

/// Parks until `due`; the time it woke, or `None` if the deadline came first.
///
/// may resumes a coroutine whose sleep expired on its timer thread. Left there, the client
/// went on to connect, write and read from that thread while the worker polled the same
/// sockets, and now and then a response that had arrived (there in the socket's receive
/// queue) went unnoticed until the read timed out 5 s later — a handful per 10 s run at a
/// few thousand req/s. may's per-socket timeout handle is a plain `RefCell`, shared by the
/// thread that waits and the one that polls; we did not dig further.
/// So after a sleep the coroutine yields, which from a non-worker thread queues it on a
/// worker.
fn wait_until(due: Instant, deadline: Instant) -> Option<Instant> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if now >= due {
            return Some(now);
        }
        may::coroutine::sleep(due - now);
        may::coroutine::yield_now();
    }
}

/// Open loop: a fresh connection for every `requests_per_conn` scheduled requests, opened
/// when the first of them is due.
fn open_client(id: u32, shared: &Shared, mean_gap_ns: f64) {
    let plan = &shared.plan;
    let mut rng = XorShift::new(plan.route_seed(id));
    let mut schedule = Schedule::new(plan.route_seed(id), mean_gap_ns, plan.start);
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut n = 0u64;
    while schedule.next < plan.deadline {
        let due = schedule.next;
        let Some(began) = wait_until(due, plan.deadline) else {
            break;
        };
        match connect(plan.addr, plan.source(id, n), plan.io_timeout) {
            Ok(mut stream) => {
                shared.connected(began, Instant::now());
                run_open_connection(
                    &mut stream,
                    shared,
                    &mut rng,
                    &mut schedule,
                    &mut buf,
                    began,
                );
            }
            Err(_) => {
                shared.sending(due, began);
                shared.failed(&Failure::Connect);
                schedule.advance();
                may::coroutine::sleep(CONNECT_BACKOFF);
            }
        }
        n += 1;
    }
    shared.unsent(schedule.drain(plan));
}

/// Up to `requests_per_conn` requests, each sent when due (at once if late) and timed from
/// when it was due. The first is due already: the client began connecting for it at
/// `began`, which stands as its send time for the lag (connect time is a figure of its own).
fn run_open_connection(
    stream: &mut Stream,
    shared: &Shared,
    rng: &mut XorShift,
    schedule: &mut Schedule,
    buf: &mut Vec<u8>,
    began: Instant,
) {
    let plan = &shared.plan;
    let mut first = Some(began);
    for turn in 0..plan.requests_per_conn {
        let due = schedule.next;
        if due >= plan.deadline {
            return;
        }
        let sent = match first.take() {
            Some(began) => began,
            None => match wait_until(due, plan.deadline) {
                Some(now) => now,
                None => return,
            },
        };
        let route = pick_route(rng, plan.cpu_share);
        shared.sending(due, sent);
        schedule.advance();
        match exchange(stream, &plan.targets[route as usize], buf) {
            Ok(reply) => {
                shared.request_done(route, turn, due, Instant::now());
                if reply.close {
                    return;
                }
            }
            Err(failure) => {
                shared.failed(&failure);
                if let Failure::Status { status: 503, .. } = failure {
                    shared.shed(route, due);
                }
                if !matches!(failure, Failure::Status { close: false, .. }) {
                    return;
                }
            }
        }
    }
}

/// A non-blocking connect, bound to `source` if given, that parks only this coroutine.
///
/// There is no connect timeout: on loopback a connect completes or is refused at once, and a
/// SYN dropped by a full accept backlog is retried by the kernel (after 1 s, 3 s, ...), which
/// shows as connect time. The process-wide deadline still bounds the run.
fn connect(addr: SocketAddr, source: Option<Ipv4Addr>, timeout: Duration) -> io::Result<Stream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = source {
        // Lets the kernel hand out a port still in TIME_WAIT from an earlier connection.
        socket.set_reuse_address(true)?;
        socket.bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(ip), 0)))?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    let pending = match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) => return Err(e),
    };
    let stream = CoIo::new(std::net::TcpStream::from(socket))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    if pending {
        wait_connected(&stream)?;
    }
    Ok(stream)
}

/// Parks until the pending connect has succeeded (a peer address) or failed (SO_ERROR).
fn wait_connected(stream: &Stream) -> io::Result<()> {
    loop {
        if let Some(err) = stream.inner().take_error()? {
            return Err(err);
        }
        if stream.inner().peer_addr().is_ok() {
            return Ok(());
        }
        stream.wait_io();
    }
}

/// What a complete 200 response told us.
struct Reply {
    close: bool,
}

/// The head of a response: enough to find its end and judge it.
/// Sends one request and reads its whole response into `buf`.
fn exchange(stream: &mut Stream, target: &Target, buf: &mut Vec<u8>) -> Result<Reply, Failure> {
    stream.write_all(&target.request)?;
    buf.clear();
    let head = loop {
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        read_more(stream, buf)?;
    };
    let end = head.head_len + head.body_bytes().map_err(|_| Failure::Malformed)?;
    while buf.len() < end {
        read_more(stream, buf)?;
    }
    // One request in flight, so nothing may follow the response.
    if buf.len() > end {
        return Err(Failure::Malformed);
    }
    if head.status != 200 {
        return Err(Failure::Status {
            status: head.status,
            close: head.close,
        });
    }
    if &buf[head.head_len..] != target.body {
        return Err(Failure::Malformed);
    }
    Ok(Reply { close: head.close })
}

fn read_more(stream: &mut Stream, buf: &mut Vec<u8>) -> Result<(), Failure> {
    let mut chunk = [0u8; READ_CHUNK];
    match stream.read(&mut chunk)? {
        0 => Err(Failure::Malformed), // closed before the response was complete
        n => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    response::parse_head(buf).map_err(|response::Malformed| Failure::Malformed)
}

// ---- run and report ---------------------------------------------------------------------------

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = validate(&args) {
        eprintln!("churn: error: {msg}");
        return ExitCode::from(2);
    }
    may::config().set_workers(usize::from(args.workers));

    let start = Instant::now();
    let shared = Arc::new(Shared {
        plan: Plan::new(&args, start),
        stats: Mutex::new(Stats::new()),
        finished: AtomicUsize::new(0),
    });
    for id in 0..args.clients {
        let shared = shared.clone();
        may::go!(move || {
            match shared.plan.mean_gap_ns {
                None => client(id, &shared),
                Some(mean_gap_ns) => open_client(id, &shared, mean_gap_ns),
            }
            shared.finished.fetch_add(1, Ordering::Release);
        });
    }
    let unfinished = wait_for_clients(&shared, args.clients, args.timeout + Duration::from_secs(1));

    let stats = shared.stats.lock().unwrap_or_else(PoisonError::into_inner);
    print_summary(&args, &stats, unfinished);
    ExitCode::SUCCESS
}

/// Sleeps past the deadline, then gives in-flight requests `grace`; returns how many clients
/// were still busy when it ran out (they are abandoned: the process exits).
fn wait_for_clients(shared: &Shared, clients: u32, grace: Duration) -> usize {
    let give_up = shared.plan.deadline + grace;
    let all = clients as usize;
    loop {
        let done = shared.finished.load(Ordering::Acquire);
        let now = Instant::now();
        if done >= all || now >= give_up {
            return all - done.min(all);
        }
        std::thread::sleep(POLL_INTERVAL.min(give_up - now));
    }
}

fn quantiles(h: &Histogram<u64>) -> [u64; 4] {
    [0.5, 0.99, 0.999, 1.0].map(|q| h.value_at_quantile(q))
}

fn print_summary(args: &Args, stats: &Stats, unfinished: usize) {
    let secs = args.duration.as_secs_f64();
    let rps = stats.in_time as f64 / secs;
    let cpu_path = format!("/cpu?us={}", args.cpu_us);
    let [cheap, cpu] = &stats.by_route;
    let e = &stats.errors;

    println!(
        "churn: {} clients x {} requests/connection, {:.0}% {cpu_path}, {:.1} s measured \
         after {:.1} s warm-up, {} worker(s), against http://{}",
        args.clients,
        args.requests_per_conn,
        args.cpu_share * 100.0,
        secs,
        args.warmup.as_secs_f64(),
        args.workers,
        args.addr,
    );
    println!(
        "  throughput {rps:.1} req/s ({} requests in time, {} connections opened)",
        stats.in_time, stats.connections
    );
    let sent_rps = stats.sent as f64 / secs;
    let [l50, l99, _, lmax] = quantiles(&stats.lag);
    match args.rate {
        None => println!("  closed loop: sent {sent_rps:.1} req/s"),
        Some(rate) => println!(
            "  open loop: target {rate:.1} req/s (Poisson, {:.2} req/s per client); \
             scheduled {:.1} req/s, sent {sent_rps:.1} req/s, unsent at the deadline {}; \
             send lag p50 {l50} µs, p99 {l99} µs, max {lmax} µs",
            rate / f64::from(args.clients),
            (stats.sent + stats.unsent) as f64 / secs,
            stats.unsent,
        ),
    }
    println!(
        "  {:<16} {:>9} {:>9} {:>9} {:>9} {:>9}   (µs)",
        "", "count", "p50", "p99", "p99.9", "max"
    );
    let [cheap_first, cheap_later] = &stats.cheap_by_turn;
    let rows = [
        ("/plaintext", cheap),
        ("  1st on conn", cheap_first),
        ("  later on conn", cheap_later),
        (cpu_path.as_str(), cpu),
        ("all", &stats.all),
        ("connect", &stats.connect),
    ];
    for (name, h) in rows {
        let [p50, p99, p999, max] = quantiles(h);
        println!(
            "  {name:<16} {:>9} {p50:>9} {p99:>9} {p999:>9} {max:>9}",
            h.len()
        );
    }
    println!(
        "  answered 503 (shed): /plaintext {}, {cpu_path} {}",
        stats.shed[0], stats.shed[1]
    );
    println!(
        "  errors {} (connect {}, timeout {}, io {}, status {}, malformed {}); \
         clients unfinished at exit {unfinished}",
        e.total(),
        e.connect,
        e.timeout,
        e.io,
        e.status,
        e.malformed
    );

    let [c50, c99, c999, _] = quantiles(cheap);
    let [a50, a99, a999, _] = quantiles(&stats.all);
    let [_, x99, _, _] = quantiles(cpu);
    let [_, k99, _, _] = quantiles(&stats.connect);
    let [_, f99, _, _] = quantiles(cheap_first);
    let [_, n99, _, _] = quantiles(cheap_later);
    println!(
        "RESULT rps={rps:.1} requests={} connections={} cheap_p50_us={c50} cheap_p99_us={c99} \
         cheap_p999_us={c999} all_p50_us={a50} all_p99_us={a99} all_p999_us={a999} \
         cpu_p99_us={x99} connect_p99_us={k99} errors={} connect_errors={} timeouts={} \
         io_errors={} bad_status={} malformed={} unfinished={unfinished} rate={} \
         sent_rps={sent_rps:.1} unsent={} lag_p50_us={l50} lag_p99_us={l99} lag_max_us={lmax} \
         cheap_first_p99_us={f99} cheap_later_p99_us={n99} cheap_ok={} cpu_ok={} \
         cheap_503={} cpu_503={}",
        stats.in_time,
        stats.connections,
        e.total(),
        e.connect,
        e.timeout,
        e.io,
        e.status,
        e.malformed,
        args.rate.unwrap_or(0.0),
        stats.unsent,
        cheap.len(),
        cpu.len(),
        stats.shed[0],
        stats.shed[1],
    );
}
