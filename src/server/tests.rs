//! Killing the parts of a running server that are not processes (a ward thread, a
//! doorkeeper coroutine) through crate-private fault hooks, over real loopback sockets:
//! their clients get an answer or a close, counts return to 0, the supervisor restarts them,
//! and a part that cannot be restarted stops `Server::run` with an error.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Server, ServerError};
use crate::config::Config;
use crate::conn::wait::Waker;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::wait::Wake;
use crate::router::Router;
use crate::runtime::home;

/// Upper bound on any one wait in these tests.
const PATIENCE: Duration = Duration::from_secs(10);

/// Wakers of `/wait` and `/brief` requests, kept so that they neither fire nor drop.
static WAKERS: Mutex<Vec<Waker<()>>> = Mutex::new(Vec::new());

fn wait_for(timeout: Duration) -> Response {
    Response::hibernate(
        timeout,
        |waker: Waker<()>| {
            WAKERS.lock().unwrap().push(waker);
            Ok(|| {})
        },
        |wake| match wake {
            Wake::TimedOut => Response::text("timed out"),
            _ => Response::text("woken"),
        },
    )
}

fn router() -> Router {
    Router::new()
        .get("/hi", |_: &Request| "hi")
        .get("/wait", |_: &Request| wait_for(Duration::from_secs(60)))
        .get("/brief", |_: &Request| wait_for(Duration::from_millis(50)))
        // The scheduler it ran on before a sleep, which resumes it on may's timer thread.
        .get("/nap", |req: &Request| {
            let before = req.scheduler();
            may::coroutine::sleep(Duration::from_millis(5));
            before.to_string()
        })
        .get("/where", |_: &Request| {
            format!("{:?}", home::current_scheduler())
        })
        // `corral::sleep`: "<scheduler before> <scheduler after> <whether it lasted ms>".
        .get("/doze", |req: &Request| {
            let ms: u64 = req.query_as("ms").unwrap_or(5);
            let before = req.scheduler();
            let began = Instant::now();
            crate::sleep(Duration::from_millis(ms));
            let lasted = began.elapsed() >= Duration::from_millis(ms);
            format!("{before} {:?} {lasted}", home::current_scheduler())
        })
}

fn config() -> Config {
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:0".into();
    // The runtime is one per process and another test may have started it: ask for what
    // it runs (may's default until someone configures it).
    config.server.workers = may::config().get_workers();
    // Idle keep-alive connections hibernate at once.
    config.timeouts.hibernate_after_ms = 1;
    config
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        std::thread::yield_now();
    }
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends a GET and reads one response with a Content-Length body: (status, body).
fn get(stream: &mut TcpStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    read_response(stream).expect("a response, not a close")
}

fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).expect("read within the timeout");
                assert!(n > 0, "closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
            return Some((status, body));
        }
        match stream.read(&mut chunk).expect("read within the timeout") {
            0 => return None,
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The server closes: read returns 0 (or a reset) within the timeout.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 256];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) => return err.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn connections(server: &Server, workers: usize) -> usize {
    (0..workers).map(|k| server.stats().connections(k)).sum()
}

/// (idle, waiting) hibernated connections, over all wards.
fn hibernating(server: &Server, workers: usize) -> (usize, usize) {
    (0..workers)
        .map(|k| server.shared.wards.hibernating(k))
        .fold((0, 0), |(i, w), (a, b)| (i + a, w + b))
}

fn restarts(server: &Server) -> u64 {
    server.shared.supervisor_restarts()
}

#[test]
fn a_ward_that_panics_answers_or_closes_its_sockets_uncounts_them_and_is_restarted() {
    let config = config();
    let workers = config.worker_count();
    let server = Server::start(config, router()).expect("starts");
    let mut idle = connect(&server);
    assert_eq!(get(&mut idle, "/hi"), (200, "hi".into()));
    let mut waiting = connect(&server);
    waiting
        .write_all(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    eventually("one idle and one waiting connection hibernate", || {
        hibernating(&server, workers) == (1, 1)
    });
    assert_eq!(connections(&server, workers), 2);
    let before = restarts(&server);

    for k in 0..workers {
        server.shared.wards.inject_faults(k, 1);
    }

    assert_eq!(
        read_response(&mut waiting),
        Some((503, "Service Unavailable".into())),
        "the waiting request is answered"
    );
    assert!(closed_by_server(&mut waiting));
    assert!(closed_by_server(&mut idle), "the idle connection is closed");
    eventually("both are uncounted", || connections(&server, workers) == 0);
    eventually("every ward is restarted", || {
        restarts(&server) >= before + workers as u64
            && (0..workers).all(|k| server.shared.wards.is_running(k))
    });
    assert_eq!(hibernating(&server, workers), (0, 0));

    // The new wards work: an idle connection hibernates and wakes, a wait is answered.
    let mut fresh = connect(&server);
    assert_eq!(get(&mut fresh, "/hi"), (200, "hi".into()));
    eventually("a fresh connection hibernates", || {
        hibernating(&server, workers).0 == 1
    });
    assert_eq!(get(&mut fresh, "/hi"), (200, "hi".into()), "and wakes");
    assert_eq!(get(&mut fresh, "/brief"), (200, "timed out".into()));
    drop(fresh);
    eventually("the fresh connection is uncounted", || {
        connections(&server, workers) == 0
    });
    assert!(server.failure().is_none());
}

#[test]
fn a_doorkeeper_that_panics_is_restarted_and_the_coroutine_it_held_gets_home() {
    let config = config();
    let workers = config.worker_count();
    let server = Server::start(config, router()).expect("starts");
    let before = restarts(&server);
    // Armed, not rung: the next coroutine coming home rings, and the doorkeeper panics
    // with that coroutine in hand.
    for k in 0..workers {
        home::arm_faults(k, 1);
    }
    let mut client = connect(&server);
    let (status, slept_on) = get(&mut client, "/nap");
    assert_eq!(status, 200, "the handler that slept finished");
    for k in 0..workers {
        home::arm_faults(k, 0);
    }
    eventually("the doorkeeper is restarted", || {
        restarts(&server) > before && (0..workers).all(home::doorkeeper_running)
    });
    // And its connection runs on its own scheduler again.
    let (_, now_on) = get(&mut client, "/where");
    assert_eq!(now_on, format!("Some({slept_on})"));
    assert!(server.failure().is_none());
}

#[test]
fn a_sleeping_handler_resumes_on_its_own_scheduler_after_at_least_its_duration() {
    let server = Server::start(config(), router()).expect("starts");
    let mut clients: Vec<TcpStream> = (0..8).map(|_| connect(&server)).collect();
    for client in &mut clients {
        client
            .write_all(b"GET /doze?ms=20 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    for client in &mut clients {
        let (status, body) = read_response(client).expect("an answer");
        assert_eq!(status, 200);
        let words: Vec<&str> = body.split(' ').collect();
        assert_eq!(words[1], format!("Some({})", words[0]), "{body}");
        assert_eq!(words[2], "true", "slept at least 20 ms: {body}");
    }
}

#[test]
fn a_keep_alive_connection_waits_for_input_on_its_scheduler_until_its_deadline() {
    let mut config = config();
    config.timeouts.hibernate_after_ms = 200;
    let workers = config.worker_count();
    let server = Server::start(config, router()).expect("starts");
    let mut client = connect(&server);
    let (_, on) = get(&mut client, "/doze?ms=0");
    let k: usize = on.split(' ').next().unwrap().parse().unwrap();
    // Its read drained the socket: the wait for the next request is one of k's input
    // waits (no other test's connection makes one without this test's feature either).
    let before = home::input_waits_added(k);
    assert_eq!(get(&mut client, "/hi"), (200, "hi".into()));
    eventually("the wait for the next request is k's", || {
        home::input_waits_added(k) > before
    });
    // Bytes end the wait at once; the deadline (hibernate_after) is the doorkeeper's to
    // keep: no may timer would end the wait.
    assert_eq!(get(&mut client, "/hi"), (200, "hi".into()));
    let (idle_before, _) = hibernating(&server, workers);
    eventually("the wait times out and the connection hibernates", || {
        hibernating(&server, workers).0 > idle_before
    });
    assert_eq!(
        get(&mut client, "/hi"),
        (200, "hi".into()),
        "woken from the ward"
    );
}

#[test]
fn the_sleepers_of_a_doorkeeper_that_panics_are_woken_by_its_successor() {
    let server = Server::start(config(), router()).expect("starts");
    let mut client = connect(&server);
    let (_, on) = get(&mut client, "/doze?ms=0");
    let k: usize = on.split(' ').next().unwrap().parse().unwrap();
    let before = restarts(&server);
    client
        .write_all(b"GET /doze?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    eventually("it sleeps", || home::sleeping(k) == 1);
    home::arm_faults(k, 1);
    assert!(home::ping(k), "the doorkeeper wakes, and panics");
    eventually("the doorkeeper is restarted", || {
        restarts(&server) > before && home::doorkeeper_running(k)
    });
    let (status, body) = read_response(&mut client).expect("the sleeper's answer");
    assert_eq!((status, body.ends_with(" true")), (200, true), "{body}");
}

#[test]
fn a_ward_that_cannot_be_restarted_stops_run_with_an_error() {
    let (done, outcome) = mpsc::channel();
    let config = config();
    let addr = Arc::new(Mutex::new(None));
    let seen = addr.clone();
    // Bounded by `recv_timeout` below: if `run` never returns the test fails, leaving the
    // thread behind.
    std::thread::spawn(move || {
        let result = Server::run_with(config, router(), |server| {
            *seen.lock().unwrap() = Some(server.local_addr());
            // Every start of ward 0 panics: the tree exceeds its restart intensity.
            server.shared.wards.inject_faults(0, u32::MAX);
        });
        let _ = done.send(result);
    });
    let result = outcome
        .recv_timeout(PATIENCE)
        .expect("Server::run returned instead of hanging");
    match result {
        Err(ServerError::Failed(why)) => assert!(why.contains("supervision tree"), "{why}"),
        other => panic!("expected ServerError::Failed, got {other:?}"),
    }
    let addr = addr.lock().unwrap().expect("it had started");
    assert!(TcpStream::connect(addr).is_err(), "it no longer listens");
}

/// Sockets accepted from the listener `bind` makes inherit its TCP_NODELAY: placement no
/// longer sets it on each connection, so without this every small answer could wait for
/// the client's delayed ACK (Nagle).
#[test]
fn a_socket_accepted_from_the_bound_listener_has_nodelay() {
    let listener = super::bind("127.0.0.1:0".parse().unwrap(), false, 64).unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    assert!(accepted.nodelay().unwrap());
}
