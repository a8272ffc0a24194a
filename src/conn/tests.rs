//! The connection loop over in-memory byte streams: no socket, no scheduler, no server.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::memory::{Memory, Observe, STALL, serve_memory, shared_for};
use super::read_buf::READ_BUF_INITIAL;
use super::resume::Ending;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::status::Status;
use crate::router::Router;

/// What happened on a connection, in order: the loop's reads and writes, and the test
/// handlers' own marks. Kept per thread: `serve` runs on the test's thread, and the handlers
/// (which must be `Send + Sync`) can reach it there.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// A read returned this many bytes (0: the client closed).
    Read(usize),
    /// A write, by the status lines it carries.
    Wrote(Vec<String>),
    /// A test handler ran.
    Handler(&'static str),
}

thread_local! {
    static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
    /// The largest buffer the loop offered a single read, bytes.
    static LARGEST_READ: Cell<usize> = const { Cell::new(0) };
}

fn note(event: Event) {
    EVENTS.with(|e| e.borrow_mut().push(event));
}

/// Watches a test connection: notes its reads and writes as events, and keeps every write.
struct Recorder {
    writes: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl Observe for Recorder {
    fn read(&mut self, offered: usize, got: usize) {
        LARGEST_READ.with(|l| l.set(l.get().max(offered)));
        note(Event::Read(got));
    }

    fn wrote(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let lines = statuses(&text).into_iter().map(String::from).collect();
        note(Event::Wrote(lines));
        self.writes.borrow_mut().push(bytes.to_vec());
    }
}

fn router() -> Router {
    Router::new()
        .get("/hi", |_: &Request| "hi")
        .post("/echo", |req: &Request| req.body().to_vec())
        .get("/panic", |_: &Request| -> &'static str {
            panic!("on purpose")
        })
        .get("/slow", |_: &Request| {
            note(Event::Handler("slow"));
            "slow"
        })
        .get("/yields", |_: &Request| {
            // What a handler that waits looks like to its stopwatch: another connection ran
            // on the scheduler meanwhile.
            crate::placement::cost::note_resume();
            note(Event::Handler("yields"));
            "yielded"
        })
        .get("/interim", |_: &Request| Response::new(Status(103)))
        .get("/status-1000", |_: &Request| Response::new(Status(1000)))
        .get("/no-content-stream", |_: &Request| {
            Response::stream("text/plain", |out| out.write_all(b"x"))
                .with_status(Status::NO_CONTENT)
        })
        .get("/no-content-body", |_: &Request| {
            (Status::NO_CONTENT, "text")
        })
        .get("/not-modified", |_: &Request| {
            Response::new(Status::NOT_MODIFIED)
        })
        .get("/no-content", |_: &Request| Status::NO_CONTENT)
        .get("/bad-type", |_: &Request| {
            Response::text("x").with_content_type("text/plain\r\nX-Evil: 1")
        })
        .get("/cpu", |_: &Request| {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
            note(Event::Handler("cpu"));
            "burnt"
        })
}

/// A server's shared state with one scheduler and no hibernation (memory cannot hibernate).
fn shared() -> Arc<Shared> {
    shared_for(router()).unwrap()
}

/// Serves one connection that sends `chunks`; returns what was written, per write call.
fn run(shared: &Arc<Shared>, chunks: &[&[u8]]) -> Vec<String> {
    run_aged(shared, chunks, None)
}

/// `run`, where the input waited `input_age` in the kernel before the loop read it.
fn run_aged(shared: &Arc<Shared>, chunks: &[&[u8]], input_age: Option<Duration>) -> Vec<String> {
    EVENTS.with(|e| e.borrow_mut().clear());
    LARGEST_READ.with(|l| l.set(0));
    let writes = Rc::new(RefCell::new(Vec::new()));
    let recorder = Recorder {
        writes: writes.clone(),
    };
    let mut memory = Memory::new(chunks, recorder);
    memory.input_age = input_age;
    let ending = serve_memory(shared, memory);
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

/// Serves `chunks` and returns the events: reads, writes (as status lines) and handler marks.
fn events(shared: &Arc<Shared>, chunks: &[&[u8]]) -> Vec<Event> {
    run(shared, chunks);
    EVENTS.with(|e| e.borrow().clone())
}

fn wrote(statuses: &[&str]) -> Event {
    Event::Wrote(statuses.iter().map(|s| s.to_string()).collect())
}

const OK: &str = "HTTP/1.1 200 OK";
const POST_ABC: &[u8] = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";

#[test]
fn a_pipelined_batch_is_answered_in_order_with_one_write() {
    let shared = shared();
    // Once each route has run, it is known to be quick (before a route never seen, the
    // answers queued are written first: it might wait).
    run(&shared, &[GET_HI]);
    run(&shared, &[POST_ABC]);
    let batch = [GET_HI, POST_ABC, GET_HI].concat();
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

// ---- flushing: no answer waits behind something that can block ----------------------------

#[test]
fn an_answer_followed_by_stray_crlfs_is_written_before_the_next_read() {
    let shared = shared();
    let batch = [GET_HI, b"\r\n\r\n"].concat();
    let events = events(&shared, &[&batch]);
    assert_eq!(
        events,
        [Event::Read(batch.len()), wrote(&[OK]), Event::Read(0)],
        "the CRLFs are no request: the answer must not wait for one"
    );
}

#[test]
fn an_answer_is_written_before_the_next_requests_body_is_awaited() {
    let shared = shared();
    let post_head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n";
    let batch = [GET_HI, post_head].concat();
    let events = events(&shared, &[&batch, b"hello"]);
    assert_eq!(
        events,
        [
            Event::Read(batch.len()),
            wrote(&[OK]),
            Event::Read(5),
            wrote(&[OK]),
            Event::Read(0)
        ]
    );
}

#[test]
fn an_answer_is_written_before_a_handler_never_seen_before_runs() {
    let shared = shared();
    let batch = [GET_HI, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"].concat();
    let events = events(&shared, &[&batch]);
    assert_eq!(
        events,
        [
            Event::Read(batch.len()),
            wrote(&[OK]),
            Event::Handler("slow"),
            wrote(&[OK]),
            Event::Read(0)
        ]
    );
}

#[test]
fn an_answer_is_written_before_a_handler_that_waited_or_burnt_cpu_before() {
    let shared = shared();
    run(&shared, &[GET_HI]);
    for (path, mark) in [("/yields", "yields"), ("/cpu", "cpu")] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        // Once alone, so the route has a record: it waited, or ran over the cheap bound.
        run(&shared, &[request.as_bytes()]);
        let batch = [GET_HI, request.as_bytes()].concat();
        let events = events(&shared, &[&batch]);
        assert_eq!(
            events,
            [
                Event::Read(batch.len()),
                wrote(&[OK]),
                Event::Handler(mark),
                wrote(&[OK]),
                Event::Read(0)
            ],
            "{path}"
        );
    }
}

// ---- memory follows bytes received ---------------------------------------------------------

#[test]
fn a_declared_body_does_not_size_the_read_buffer() {
    let shared = shared();
    let head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8000000\r\n\r\n";
    // The head, 10 body bytes, then the client goes away.
    let events = events(&shared, &[head, b"0123456789"]);
    assert_eq!(events.last(), Some(&Event::Read(0)), "{events:?}");
    let largest = LARGEST_READ.with(Cell::get);
    assert!(
        largest <= 2 * READ_BUF_INITIAL,
        "a read was offered {largest} bytes after {} received",
        head.len() + 10
    );
}

// ---- a handler cannot break the framing ----------------------------------------------------

/// Captures error log lines per thread (the logger is process-wide; each test reads its own).
struct Capture;

thread_local! {
    static ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Error
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            ERRORS.with(|e| e.borrow_mut().push(record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// The error lines logged on this thread while `f` runs.
fn errors_logged(f: impl FnOnce()) -> Vec<String> {
    if log::set_logger(&CAPTURE).is_ok() {
        log::set_max_level(log::LevelFilter::Error);
    }
    ERRORS.with(|e| e.borrow_mut().clear());
    f();
    ERRORS.with(|e| e.borrow().clone())
}

#[test]
fn a_response_that_would_break_the_framing_is_a_500_that_names_the_route() {
    let shared = shared();
    for path in [
        "/interim",
        "/status-1000",
        "/no-content-stream",
        "/no-content-body",
        "/bad-type",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let batch = [request.as_bytes(), GET_HI].concat();
        let mut out = String::new();
        let errors = errors_logged(|| out = run(&shared, &[&batch]).concat());
        assert_eq!(
            statuses(&out),
            ["HTTP/1.1 500 Internal Server Error"],
            "{path}: {out}"
        );
        assert!(out.contains("Connection: close\r\n"), "{path}: {out}");
        assert!(
            !out.contains("Evil") && !out.contains("chunked"),
            "{path}: {out}"
        );
        assert!(
            errors.iter().any(|e| e.contains(&format!("GET {path}"))),
            "{path}: no error line names the route: {errors:?}"
        );
    }
}

#[test]
fn bodiless_statuses_get_no_framing_headers() {
    let shared = shared();
    for (path, status) in [
        ("/not-modified", "HTTP/1.1 304 Not Modified"),
        ("/no-content", "HTTP/1.1 204 No Content"),
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let out = run(&shared, &[&[request.as_bytes(), GET_HI].concat()]).concat();
        assert_eq!(statuses(&out), [status, OK], "{out}");
        let head = out.split("\r\n\r\n").next().unwrap();
        assert!(!head.contains("Content-Length") && !head.contains("Transfer-Encoding"));
    }
}

const GET_CPU: &[u8] = b"GET /cpu HTTP/1.1\r\nHost: t\r\n\r\n";

/// `shared()` after one `/cpu` (1 ms), merged: the cost table knows it is costly.
fn shared_knowing_cpu_is_costly() -> Arc<Shared> {
    let shared = shared();
    run(&shared, &[GET_CPU]);
    shared.placement.costs.merge(&mut Vec::new());
    shared
}

fn cpu_figures(shared: &Shared) -> crate::placement::cost::RouteFigures {
    let costs = &shared.placement.costs;
    let (id, _) = (0..shared.router.routes().len())
        .map(|i| crate::router::RouteId(i as u32))
        .map(|id| (id, shared.router.routes().pattern(id)))
        .find(|(_, pattern)| *pattern == "/cpu")
        .unwrap();
    costs.figures(costs.slot(Some(id)))
}

#[test]
fn a_costly_request_that_waited_past_the_queue_limit_is_shed_and_a_cheap_one_runs() {
    let shared = shared_knowing_cpu_is_costly();
    let limit = Duration::from_millis(shared.live.snapshot().limits.max_queue_delay_ms);
    let batch = [GET_CPU, GET_HI, GET_HI].concat();
    // The batch's bytes waited past the limit: the costly request goes first and is shed;
    // the cheap ones behind it run, and the connection stays open for them.
    let out = run_aged(&shared, &[&batch], Some(limit * 2)).concat();
    assert_eq!(
        statuses(&out),
        ["HTTP/1.1 503 Service Unavailable", OK, OK],
        "{out}"
    );
    assert!(out.contains("Retry-After: 1\r\n"), "{out}");
    assert!(!EVENTS.with(|e| e.borrow().contains(&Event::Handler("cpu"))));
    let figures = cpu_figures(&shared);
    assert_eq!((figures.shed, figures.requests), (1, 1), "shed, not run");
    assert_eq!(figures.by_class[4], 1, "the 503 counts as a 5xx answer");
}

#[test]
fn a_costly_request_runs_when_it_waited_under_the_limit_or_only_for_its_own_connection() {
    let shared = shared_knowing_cpu_is_costly();
    let limit = Duration::from_millis(shared.live.snapshot().limits.max_queue_delay_ms);
    let out = run_aged(&shared, &[GET_CPU], Some(limit / 2)).concat();
    assert_eq!(statuses(&out), [OK], "under the limit: {out}");
    // Pipelined behind a request of its own connection, it waited for that one, not for
    // the scheduler, however old the bytes.
    let batch = [GET_HI, GET_CPU].concat();
    let out = run_aged(&shared, &[&batch], Some(limit * 2)).concat();
    assert_eq!(statuses(&out), [OK, OK], "behind its own connection: {out}");
    // A cheap route is never shed: its 503 would cost what its answer does.
    let out = run_aged(&shared, &[GET_HI], Some(limit * 2)).concat();
    assert_eq!(statuses(&out), [OK], "cheap: {out}");
    assert_eq!(cpu_figures(&shared).shed, 0);
}

// ---- what the transport saw: read sizes, timeouts, FIN and close ---------------------------

/// Everything the loop did to a [`Memory`] stream, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Read {
        offered: usize,
        got: usize,
    },
    /// A read met a [`STALL`].
    TimedOut {
        offered: usize,
    },
    /// A peek met a [`STALL`].
    PeekTimedOut,
    ReadTimeout(Duration),
    Wrote(Vec<u8>),
    ShutdownWrite,
    /// The stream was closed with this much of the client's script unread (not 0: a reset).
    Closed {
        unread: usize,
    },
}

/// Logs every [`Seen`] of one connection.
#[derive(Clone, Default)]
struct Wire(Rc<RefCell<Vec<Seen>>>);

impl Wire {
    fn see(&self, seen: Seen) {
        self.0.borrow_mut().push(seen);
    }
}

impl Observe for Wire {
    fn read(&mut self, offered: usize, got: usize) {
        self.see(Seen::Read { offered, got });
    }

    fn wrote(&mut self, bytes: &[u8]) {
        self.see(Seen::Wrote(bytes.to_vec()));
    }

    fn timed_out(&mut self, offered: usize) {
        self.see(Seen::TimedOut { offered });
    }

    fn peek_timed_out(&mut self) {
        self.see(Seen::PeekTimedOut);
    }

    fn read_timeout(&mut self, timeout: Duration) {
        self.see(Seen::ReadTimeout(timeout));
    }

    fn shutdown_write(&mut self) {
        self.see(Seen::ShutdownWrite);
    }

    fn closed(&mut self, unread: usize) {
        self.see(Seen::Closed { unread });
    }
}

/// Serves one connection whose client sends `script`; returns what its transport saw.
fn wire(shared: &Arc<Shared>, script: &[&[u8]]) -> Vec<Seen> {
    let log = Wire::default();
    let ending = serve_memory(shared, Memory::new(script, log.clone()));
    assert_eq!(ending, Ending::Closed);
    log.0.take()
}

/// Everything written, as text.
fn written(seen: &[Seen]) -> String {
    let bytes: Vec<u8> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Wrote(bytes) => Some(bytes.as_slice()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn a_chunked_body_in_reads_of_one_to_four_bytes_is_decoded_and_the_next_request_follows() {
    let shared = shared();
    let request: &[u8] = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: ignored\r\n\r\n";
    // Pipelined behind it: the decoder must stop at the body's end, not a byte later.
    let batch = [request, GET_HI].concat();
    for size in 1..=4 {
        let pieces: Vec<&[u8]> = batch.chunks(size).collect();
        let seen = wire(&shared, &pieces);
        let got: Vec<usize> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Read { got, .. } => Some(*got),
                _ => None,
            })
            .collect();
        assert_eq!(
            got.iter().sum::<usize>(),
            batch.len(),
            "size {size}: {got:?}"
        );
        assert!(
            got.iter().all(|&n| n <= size) && got.len() > batch.len() / size,
            "size {size}: the body came in reads of at most {size} bytes: {got:?}"
        );
        let out = written(&seen);
        assert_eq!(statuses(&out), [OK, OK], "size {size}: {out}");
        let (echo, hi) = out.split_at(out.rfind("HTTP/1.1").unwrap());
        assert!(
            echo.contains("Content-Length: 11\r\n") && echo.ends_with("\r\n\r\nhello world"),
            "size {size}: {out}"
        );
        assert!(hi.ends_with("\r\n\r\nhi"), "size {size}: {out}");
        assert_eq!(
            seen.last(),
            Some(&Seen::Closed { unread: 0 }),
            "size {size}"
        );
    }
}

/// With hibernation off (`shared_for`), a keep-alive connection silent past its grace read
/// gives its buffers back (`Conn::release_buffers`) and waits on a peek; its next request is
/// read into a fresh buffer of the initial size, and answered.
#[test]
fn with_hibernation_off_an_idle_connection_gives_its_read_buffer_back_and_serves_on() {
    let shared = shared();
    assert!(shared.live.snapshot().timeouts.hibernate_after().is_zero());
    // An upload that grows the read buffer past its initial size, but not past what
    // `ReadBuf::release_if_idle` gives back on its own (16 KiB).
    let body = vec![b'x'; 9000];
    let mut upload = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    upload.extend_from_slice(&body);
    let seen = wire(&shared, &[&upload, STALL, GET_HI]);
    let out = written(&seen);
    assert_eq!(statuses(&out), [OK, OK], "{out}");
    assert!(out.ends_with("\r\n\r\nhi"), "{out}");
    let stall = seen
        .iter()
        .position(|s| matches!(s, Seen::TimedOut { .. }))
        .expect("the grace read met the silence");
    let Seen::TimedOut { offered: held } = seen[stall] else {
        unreachable!()
    };
    assert!(
        held >= upload.len(),
        "the buffer grown for the upload was still held while idle: {held} bytes"
    );
    // The silence met the grace read of an idle connection (`conn/idle.rs`, 1 s with
    // hibernation off), not some other read.
    let timeout_of_that_read = seen[..stall].iter().rev().find_map(|s| match s {
        Seen::ReadTimeout(t) => Some(*t),
        _ => None,
    });
    assert_eq!(
        timeout_of_that_read,
        Some(Duration::from_secs(1)),
        "{seen:?}"
    );
    // The first answer went out before the idle wait.
    let first_write = seen.iter().position(|s| matches!(s, Seen::Wrote(_)));
    assert!(first_write < Some(stall), "{seen:?}");
    let next_read = seen[stall..]
        .iter()
        .find_map(|s| match s {
            Seen::Read { offered, .. } => Some(*offered),
            _ => None,
        })
        .expect("the next request was read");
    assert_eq!(
        next_read, READ_BUF_INITIAL,
        "the next request was read into a fresh buffer, not the {held} bytes held before"
    );
    assert_eq!(seen.last(), Some(&Seen::Closed { unread: 0 }));
}

/// A rejection answers, sends FIN, then reads and discards what the client still sends until
/// it closes: closing with its bytes unread would be a reset, which can destroy the answer
/// before the client reads it.
#[test]
fn a_rejection_drains_what_the_client_still_sends_before_closing() {
    let shared = shared();
    let more: &[u8] = b"more bytes the client sent before it saw the 400";
    let seen = wire(&shared, &[b"GARBAGE\r\n\r\n", more, b"and more"]);
    let out = written(&seen);
    assert_eq!(statuses(&out), ["HTTP/1.1 400 Bad Request"], "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    let story: Vec<Seen> = seen
        .into_iter()
        .filter(|s| !matches!(s, Seen::ReadTimeout(_)))
        .map(|s| match s {
            Seen::Read { got, .. } => Seen::Read { offered: 0, got },
            Seen::Wrote(_) => Seen::Wrote(Vec::new()),
            s => s,
        })
        .collect();
    let read = |got| Seen::Read { offered: 0, got };
    assert_eq!(
        story,
        [
            read(11),
            Seen::Wrote(Vec::new()),
            Seen::ShutdownWrite,
            read(more.len()),
            read(8),
            read(0),
            Seen::Closed { unread: 0 },
        ],
        "answer, FIN, drain to the client's close, then close with nothing unread"
    );
}

#[test]
fn a_version_of_another_major_gets_the_same_answer_however_its_line_is_split() {
    // Found by the fuzz target `head`: with the first read ending just after `HTTP/9.1`
    // (or its CR) the answer was 505, with the same bytes in one read 400.
    let shared = shared();
    for request in [
        &b"POST / HTTP/9.1\x0e\nked\r\n\r\n"[..],
        b"GET / HTTP/9.1\rx\r\nHost: t\r\n\r\n",
        b"GET / HTTP/9.1\r\nHost: t\r\n\r\n",
    ] {
        let whole = run(&shared, &[request]).concat();
        for at in 1..request.len() {
            let (a, b) = request.split_at(at);
            let split = run(&shared, &[a, b]).concat();
            assert_eq!(statuses(&split), statuses(&whole), "split at {at}: {split}");
        }
    }
    assert_eq!(
        statuses(&run(&shared, &[b"GET / HTTP/9.1\r\nHost: t\r\n\r\n"]).concat()),
        ["HTTP/1.1 505 HTTP Version Not Supported"]
    );
}

#[test]
fn a_head_trickled_one_byte_per_read_is_parsed_once_per_line_not_once_per_byte() {
    // Found by the fuzz target `pipeline`: the loop parsed the whole buffer after every read,
    // so a head sent a byte at a time cost CPU in the square of its length.
    let shared = shared();
    let target = "/hi?".to_string() + &"a".repeat(3000);
    let head = format!(
        "GET {target} HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(3000)
    );
    let bytes: Vec<&[u8]> = head.as_bytes().chunks(1).collect();
    let before = crate::http::parse::PARSES.with(|n| n.get());
    let out = run(&shared, &bytes).concat();
    let parses = crate::http::parse::PARSES.with(|n| n.get()) - before;
    assert_eq!(statuses(&out), ["HTTP/1.1 200 OK"], "{out}");
    assert!(parses <= 8, "{parses} parses of a {}-byte head", head.len());
    // An invalid byte with no line end after it yet is still answered as in one read.
    for request in [&b"GET /\x01"[..], b"GET / HTTP/1.1\r\nHo\x01st"] {
        let whole = run(&shared, &[request]).concat();
        let split: Vec<&[u8]> = request.chunks(1).collect();
        assert_eq!(statuses(&run(&shared, &split).concat()), statuses(&whole));
        assert_eq!(statuses(&whole), ["HTTP/1.1 400 Bad Request"], "{whole}");
    }
}
