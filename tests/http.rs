//! HTTP/1.1 behaviour over real sockets against an in-process demo server.

mod common;

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Client, TestServer, test_config};
use corral::{Policy, Request, Response, Router, Status};

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    for _ in 0..50 {
        let r = c.get("/plaintext");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "Hello, World!");
        assert_eq!(r.header("connection"), None);
    }
}

#[test]
fn responses_carry_date_server_and_content_type() {
    let srv = TestServer::demo(|_| {});
    let r = srv.client().get("/json");
    assert_eq!(r.header("server"), Some("corral"));
    let date = r.header("date").expect("Date header");
    httpdate::parse_http_date(date).expect("Date is an IMF-fixdate");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"message":"Hello, World!"}"#);
}

#[test]
fn hundred_pipelined_requests_in_one_write_are_answered_in_order() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    let mut batch = Vec::new();
    for i in 0..100 {
        let body = i.to_string();
        batch.extend_from_slice(
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    c.send(&batch);
    for i in 0..100 {
        let r = c.reply();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), i.to_string());
    }
}

#[test]
fn content_length_body_is_echoed_with_its_type() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.reply();
    assert_eq!(r.header("content-type"), Some("text/x-test"));
    assert_eq!(r.text(), "hello");
}

#[test]
fn eight_megabyte_body_round_trips() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    let body: Vec<u8> = (0..8_000_000).map(|i| (i % 251) as u8).collect();
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "8 MB body differs");
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
}

// ---- pipelining: an answer never waits behind something that can block ---------------------

const PLAINTEXT: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn pipelined_answer_followed_by_stray_crlfs_arrives_at_once() {
    // A header timeout far beyond the client's: the answer cannot be the 408's companion.
    let srv = TestServer::demo(|c| c.timeouts.header_timeout_ms = 60_000);
    let mut c = srv.client();
    c.send(&[PLAINTEXT, b"\r\n\r\n"].concat());
    assert_eq!(c.reply().text(), "Hello, World!");
}

#[test]
fn pipelined_answer_arrives_while_the_next_requests_body_is_still_coming() {
    let srv = TestServer::demo(|c| c.timeouts.body_timeout_ms = 60_000);
    let mut c = srv.client();
    c.send(
        &[
            PLAINTEXT,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n",
        ]
        .concat(),
    );
    assert_eq!(c.reply().text(), "Hello, World!");
    c.send(b"hello");
    assert_eq!(c.reply().text(), "hello");
}

#[test]
fn pipelined_answer_arrives_while_a_slow_handler_after_it_runs() {
    // `/gate` stands for the issue's `/work?us=300000`, without the clock: it waits until
    // the test has read the first answer, so that answer must come out while it runs.
    let (open, gate) = corral::may::sync::mpsc::channel::<()>();
    let gate = corral::may::sync::Mutex::new(gate);
    let router = Router::new()
        .get("/plaintext", |_: &Request| "Hello, World!")
        .get("/gate", move |_: &Request| {
            let gate = gate.lock().expect("the gate's lock");
            match gate.recv_timeout(Duration::from_secs(10)) {
                Ok(()) => "opened",
                Err(_) => "never opened",
            }
        });
    let srv = TestServer::start(test_config(), router);
    let mut c = srv.client();
    c.send(&[PLAINTEXT, b"GET /gate HTTP/1.1\r\nHost: t\r\n\r\n"].concat());
    assert_eq!(c.reply().text(), "Hello, World!");
    open.send(()).expect("the gate handler is waiting");
    assert_eq!(c.reply().text(), "opened");
}

#[test]
fn absolute_form_without_a_path_and_an_unknown_1x_minor_are_served() {
    let router = Router::new().get("/", |req: &Request| {
        format!("{} {}", req.path(), req.query().unwrap_or("-"))
    });
    let srv = TestServer::start(test_config(), router);
    let mut c = srv.client();
    // RFC 9112 §3.2.2: the path of `http://host?x=1` is "/".
    c.send(b"GET http://t?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "/ x=1"));
    // RFC 9110 §2.5: a 1.x minor the server does not know is answered as 1.1.
    c.send(b"GET /?y HTTP/1.2\r\nHost: t\r\n\r\n");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "/ y"));
    assert_eq!(r.header("connection"), None, "kept alive, as 1.1");
    assert_eq!(c.get("/").text(), "/ -");
}

#[test]
fn one_mebibyte_body_round_trips() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    let body: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert!(r.body == body, "1 MiB body differs");
}

/// Over a socket the small writes may coalesce: that every split point of a chunked body is
/// decoded is `conn/tests.rs`'s
/// `a_chunked_body_in_reads_of_one_to_four_bytes_is_decoded_and_the_next_request_follows`,
/// where each piece is its own read. This is the same request end to end.
#[test]
fn chunked_body_with_extensions_and_trailers_is_decoded_and_the_connection_stays_in_sync() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    let wire = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: ignored\r\n\r\n";
    for piece in wire.chunks(3) {
        c.send(piece);
    }
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    // The connection is still in sync for the next request.
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    c.send(b"GET /plaintext HTTP/1.0\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_server());

    let mut c = srv.client();
    for _ in 0..3 {
        c.send(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.reply();
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert_eq!(r.text(), "Hello, World!");
    }
}

#[test]
fn connection_close_from_the_client_is_honoured() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_by_server());
}

#[test]
fn head_gets_the_headers_of_get_and_no_body() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    c.send(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.head_reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("13"));
    // Had a body been sent, it would be read as the next response's status line.
    assert_eq!(c.get("/json").status, 200);
}

#[test]
fn expect_100_continue_gets_an_interim_response_before_the_body() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.head();
    assert_eq!((interim.status, interim.reason.as_str()), (100, "Continue"));
    c.send(b"ping");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "ping"));
}

#[test]
fn expect_100_continue_to_an_unknown_route_is_refused_without_reading_the_body() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    c.send(
        b"POST /nowhere HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    let r = c.reply();
    assert_eq!(r.status, 404);
    assert!(c.closed_by_server());
}

#[test]
fn unknown_route_is_404_and_wrong_method_is_405_with_allow() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    assert_eq!(c.get("/no/such/route").status, 404);
    c.send(b"DELETE /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // Neither closes the connection.
    assert_eq!(c.get("/plaintext").status, 200);
}

/// Each case: request bytes, expected status; every one closes the connection.
#[test]
fn every_rejection_has_its_status_and_closes() {
    let srv = TestServer::demo(|c| {
        c.limits.max_head_bytes = 2048;
        c.limits.max_uri_bytes = 512;
        c.limits.max_body_bytes = 1024;
    });
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(600));
    let long_head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(3000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed request line", b"GARBAGE\r\n\r\n".to_vec(), 400),
        ("bare LF", b"GET / HTTP/1.1\nHost: t\n\n".to_vec(), 400),
        ("no Host in 1.1", b"GET /plaintext HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("two Hosts", b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
        ("unknown transfer coding", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        ("CL and TE", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), 400),
        ("duplicate CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".to_vec(), 400),
        ("invalid CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc".to_vec(), 400),
        ("chunked not final", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n".to_vec(), 400),
        ("bad chunk size", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), 400),
        ("header block over limit", long_head.into_bytes(), 431),
        ("URI over limit", long_uri.into_bytes(), 414),
        ("declared body over limit", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n".to_vec(), 413),
        ("chunked body over limit", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n".to_vec(), 413),
        ("unsupported expectation", b"GET / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n".to_vec(), 417),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(), 501),
    ];
    for (what, bytes, status) in cases {
        eprintln!("case: {what}");
        let mut c = srv.client();
        c.send(&bytes);
        let r = c.reply();
        assert_eq!(r.status, status, "{what}");
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(c.closed_by_server(), "{what}: connection left open");
    }
}

#[test]
fn slow_header_gets_408_and_close() {
    let srv = TestServer::demo(|c| c.timeouts.header_timeout_ms = 300);
    let mut c = srv.client();
    let start = Instant::now();
    c.send(b"GET /plaintext HTTP/1.1\r\nHost:");
    let r = c.reply();
    assert_eq!(r.status, 408);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "408 came too early"
    );
    assert!(c.closed_by_server());
}

#[test]
fn slow_body_gets_408_and_close() {
    let srv = TestServer::demo(|c| c.timeouts.body_timeout_ms = 300);
    let mut c = srv.client();
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(c.reply().status, 408);
    assert!(c.closed_by_server());
}

#[test]
fn idle_keep_alive_connection_is_closed_after_its_timeout() {
    let srv = TestServer::demo(|c| c.timeouts.idle_timeout_ms = 300);
    let mut c = srv.client();
    assert_eq!(c.get("/plaintext").status, 200);
    let idle_since = Instant::now();
    assert!(
        c.quiet_for(Duration::from_millis(150)),
        "closed before the idle timeout"
    );
    assert!(c.closed_by_server());
    assert!(idle_since.elapsed() >= Duration::from_millis(250));
}

#[test]
fn panic_gives_500_and_closes_only_that_connection() {
    let srv = TestServer::demo(|_| {});
    let mut bystander = srv.client();
    assert_eq!(bystander.get("/plaintext").status, 200);
    let mut victim = srv.client();
    let r = victim.get("/panic");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(victim.closed_by_server());
    // The other connection, on either scheduler, and new ones carry on.
    assert_eq!(bystander.get("/plaintext").text(), "Hello, World!");
    for _ in 0..4 {
        assert_eq!(srv.client().get("/json").status, 200);
    }
    assert_eq!(srv.server().stats().panics(), 1);
}

#[test]
fn streamed_response_is_chunked_on_http11_and_close_delimited_on_http10() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    let r = c.get("/stream?n=3&ms=10");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\n");
    assert_eq!(c.get("/plaintext").status, 200);

    let mut c = srv.client();
    c.send(b"GET /stream?n=2&ms=10 HTTP/1.0\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.text(), "chunk 0\nchunk 1\n");
}

/// A handler that sleeps in coroutine style (`corral::sleep`, as the demo's `/work` does)
/// parks only its own coroutine: requests on another connection *of the same scheduler* are
/// answered while it is still asleep. It sleeps until the test releases it, so "while" is an
/// order of events, not a duration.
#[test]
fn a_handler_sleeping_in_coroutine_style_leaves_its_scheduler_serving_others() {
    let released = Arc::new(AtomicBool::new(false));
    let (entered, entered_on) = std::sync::mpsc::channel();
    let router = {
        let released = released.clone();
        Router::new()
            .get("/held", move |req: &Request| {
                entered
                    .send(req.scheduler())
                    .expect("the test waits for this");
                let give_up = Instant::now() + common::CLIENT_TIMEOUT;
                while !released.load(Ordering::Acquire) && Instant::now() < give_up {
                    corral::sleep(Duration::from_millis(1));
                }
                if released.load(Ordering::Acquire) {
                    "released"
                } else {
                    "never released"
                }
            })
            .get("/whoami", |req: &Request| req.scheduler().to_string())
    };
    let mut config = common::test_config();
    // Round-robin: of any two fresh connections, one shares the held handler's scheduler.
    config.placement.policy = Policy::RoundRobin;
    let srv = TestServer::start(config, router);
    let addr = srv.addr;
    let held = std::thread::spawn(move || Client::connect(addr).get("/held"));
    let k = entered_on
        .recv_timeout(common::CLIENT_TIMEOUT)
        .expect("the held handler runs")
        .to_string();
    let mut neighbour = (0..4)
        .map(|_| srv.client())
        .find_map(|mut c| (c.get("/whoami").text() == k).then_some(c))
        .expect("a connection on the held handler's scheduler");
    for _ in 0..10 {
        assert_eq!(neighbour.get("/whoami").text(), k);
    }
    assert!(!held.is_finished(), "the held handler was not released yet");
    released.store(true, Ordering::Release);
    let r = held.join().expect("held client");
    assert_eq!((r.status, r.text()), (200, "released"));
}

#[test]
fn static_files_are_served_and_traversal_is_refused() {
    let srv = TestServer::demo(|c| {
        c.demo.static_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/static").into();
    });
    let mut c = srv.client();
    let r = c.get("/static/4k.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 4096);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(c.get("/static/%2e%2e/Cargo.toml").status, 404);
    assert_eq!(c.get("/static/../Cargo.toml").status, 404);
    assert_eq!(c.get("/static/missing.txt").status, 404);
}

#[test]
fn long_poll_receives_a_publish() {
    let srv = TestServer::demo(|_| {});
    let addr = srv.addr;
    let waiter = std::thread::spawn(move || Client::connect(addr).get("/poll?topic=news"));
    let mut publisher = srv.client();
    // Publish until the waiter has subscribed (the publish reports how many it reached).
    common::eventually(Duration::from_secs(5), "the waiter subscribes", || {
        publisher.send(
            b"POST /publish?topic=news HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        );
        publisher.reply().text() == "1\n"
    });
    let r = waiter.join().expect("waiter");
    assert_eq!((r.status, r.text()), (200, "hello"));
}

#[test]
fn long_poll_times_out_with_204() {
    let srv = TestServer::demo(|c| c.demo.poll_timeout_ms = 100);
    let r = srv.client().get("/poll?topic=quiet");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
}

/// With hibernation off, an idle keep-alive connection gives its buffers back after 1 s and
/// waits on a peek (`conn/idle.rs`); `conn/tests.rs`'s
/// `with_hibernation_off_an_idle_connection_gives_its_read_buffer_back_and_serves_on` checks
/// that the read buffer is released.
/// Here the real socket's peek, past that second, still serves the next requests.
#[test]
fn with_hibernation_off_a_connection_idle_past_the_buffer_release_still_serves() {
    let srv = TestServer::demo(|c| {
        c.timeouts.idle_timeout_ms = 5000;
        c.timeouts.hibernate_after_ms = 0;
    });
    let mut c = srv.client();
    assert_eq!(c.get("/plaintext").status, 200);
    // Past the 1 s after which an idle connection gives its buffers back and waits on a peek.
    assert!(
        c.quiet_for(Duration::from_millis(1300)),
        "closed while idle"
    );
    let r = c.get("/json");
    assert_eq!(
        (r.status, r.text()),
        (200, r#"{"message":"Hello, World!"}"#)
    );
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nagain");
    assert_eq!(c.reply().text(), "again");
    let m = srv.metrics();
    assert_eq!(
        common::sum_of(&m, "corral_scheduler_hibernating_idle"),
        0.0,
        "nothing hibernates with hibernate_after_ms = 0"
    );
}

/// After a rejection the server sends FIN and reads what the client still sends before it
/// closes (a lingering close, `conn/write.rs`): closing with unread input makes the kernel
/// answer with RST, which can destroy the error response before the client reads it.
#[test]
fn a_rejection_with_a_body_still_arriving_ends_in_fin_not_reset() {
    let srv = TestServer::demo(|c| c.limits.max_body_bytes = 1024);
    let mut c = srv.client();
    // Refused on its declared length (413) before the server reads any of its 256 KiB body,
    // all of it sent before the client reads a byte.
    let body = vec![b'x'; 256 * 1024];
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    c.send(&request);
    let r = c.reply();
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    assert_eq!(c.end_of_stream(), Ok(()), "an orderly close (FIN)");
}

/// A client that stops reading holds its connection for one write timeout, not for ever:
/// the streaming handler's write fails with a timeout and the connection is closed.
#[test]
fn a_client_that_stops_reading_is_cut_off_at_the_write_timeout() {
    let (failed, failure) = std::sync::mpsc::channel();
    let router = Router::new().get("/endless", move |_: &Request| {
        let failed = failed.clone();
        Response::stream("application/octet-stream", move |out| {
            let block = vec![0u8; 64 * 1024];
            // Bounded: 1 GiB is far more than the socket buffers of a client that does not read.
            for _ in 0..(1 << 14) {
                if let Err(err) = out.write_all(&block) {
                    let _ = failed.send(Some(err.kind()));
                    return Err(err);
                }
            }
            let _ = failed.send(None);
            Ok(())
        })
    });
    let mut config = common::test_config();
    config.timeouts.write_timeout_ms = 200;
    let srv = TestServer::start(config, router);
    let mut c = srv.client();
    c.send(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n");
    let kind = failure
        .recv_timeout(common::CLIENT_TIMEOUT)
        .expect("the blocked write ends");
    assert!(
        matches!(kind, Some(ErrorKind::TimedOut | ErrorKind::WouldBlock)),
        "the write timed out: {kind:?}"
    );
    // What the buffers held arrives, then the connection ends, without the last chunk.
    assert!(c.closed_by_server());
}

#[test]
fn the_fallback_answers_what_no_route_matches_and_routes_still_win() {
    let router = Router::new()
        .get("/known", |_: &Request| "route")
        .fallback(|req: &Request| format!("fallback {} {}", req.method(), req.path()));
    let srv = TestServer::start(common::test_config(), router);
    let mut c = srv.client();
    assert_eq!(c.get("/known").text(), "route");
    assert_eq!(c.get("/unknown").text(), "fallback GET /unknown");
    // A known path with another method goes to the fallback too, not to a 405.
    c.send(b"DELETE /known HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "fallback DELETE /known"));
    // With a fallback, `Expect: 100-continue` to an unrouted path is answered 100: the
    // fallback may want the body.
    c.send(
        b"POST /nowhere HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    assert_eq!(c.head().status, 100);
    c.send(b"ok");
    assert_eq!(c.reply().text(), "fallback POST /nowhere");
}

/// A route whose stream notes that it ran.
fn streamed(ran: &Arc<AtomicBool>, status: Status) -> impl Fn(&Request) -> Response + use<> {
    let ran = ran.clone();
    move |_: &Request| {
        let ran = ran.clone();
        Response::stream("text/plain", move |out| {
            ran.store(true, Ordering::Release);
            out.write_all(b"streamed")
        })
        .with_status(status)
    }
}

#[test]
fn head_on_a_streamed_route_gets_the_get_head_and_no_body_and_the_stream_never_runs() {
    let ran = Arc::new(AtomicBool::new(false));
    let router = Router::new()
        .get("/stream", streamed(&ran, Status::OK))
        .get("/plaintext", |_: &Request| "Hello, World!");
    let srv = TestServer::start(common::test_config(), router);
    let mut c = srv.client();
    c.send(b"HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.head_reply();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "as GET would"
    );
    assert_eq!(r.header("content-length"), None);
    // Had a chunk been sent, it would be read as the next response's status line.
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
    assert!(!ran.load(Ordering::Acquire), "the stream ran for HEAD");
    assert_eq!(c.get("/stream").text(), "streamed");
    assert!(ran.load(Ordering::Acquire));
}

#[test]
fn a_streamed_204_is_a_500_that_closes_and_its_stream_never_runs() {
    // A 204 has no body (RFC 9110 §15.3.5): a stream on it is the handler's bug. The
    // encoder refuses it and the connection answers 500 and closes (#11's framing rule).
    let ran = Arc::new(AtomicBool::new(false));
    let router = Router::new()
        .get("/nothing", streamed(&ran, Status::NO_CONTENT))
        .get("/plaintext", |_: &Request| "Hello, World!");
    let srv = TestServer::start(common::test_config(), router);
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut c = srv.client();
        c.send(
            format!("GET /nothing {version}\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        );
        let r = c.reply();
        assert_eq!(r.status, 500, "{version}");
        assert_eq!(r.header("connection"), Some("close"), "{version}");
        assert!(c.closed_by_server(), "{version}");
    }
    assert!(!ran.load(Ordering::Acquire), "the stream of a 204 ran");
}
