//! HTTP/1.1 behaviour over real sockets against an in-process demo server.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, test_config};
use corral::{Request, Router};

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
fn chunked_body_split_across_many_writes_is_decoded() {
    let srv = TestServer::demo(|_| {});
    let mut c = srv.client();
    let wire = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: ignored\r\n\r\n";
    for piece in wire.chunks(3) {
        c.send(piece);
        c.stream.flush_hint();
    }
    let r = c.reply();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    // The connection is still in sync for the next request.
    assert_eq!(c.get("/plaintext").text(), "Hello, World!");
}

trait FlushHint {
    fn flush_hint(&mut self);
}
impl FlushHint for std::net::TcpStream {
    /// With TCP_NODELAY each small write leaves as its own segment.
    fn flush_hint(&mut self) {}
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

#[test]
fn work_route_sleeps_in_the_coroutine_while_others_are_served() {
    let srv = TestServer::demo(|c| c.server.workers = 2);
    let addr = srv.addr;
    let sleeper = std::thread::spawn(move || Client::connect(addr).get("/work?us=300000"));
    // While the sleeper waits, many quick requests complete on both schedulers.
    for _ in 0..20 {
        assert_eq!(srv.client().get("/plaintext").status, 200);
    }
    let r = sleeper.join().expect("sleeper");
    assert_eq!((r.status, r.text()), (200, "ok"));
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

#[test]
fn a_connection_idle_past_the_buffer_release_still_serves_its_next_requests() {
    let srv = TestServer::demo(|c| c.timeouts.idle_timeout_ms = 5000);
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
}
