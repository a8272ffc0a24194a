//! WebSockets over real sockets: the handshake and its refusals, the demo's `/ws?topic=T`
//! (two WebSockets and a POST all talk), ping/pong, both close handshakes, the message size
//! limit (1009), masking (1002), hibernation of an idle WebSocket woken by a publish or by
//! its client, and the blocking shape's one wait on a frame or a message.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{CLIENT_TIMEOUT, TestServer, eventually};
use corral::{Incoming, Request, Router, WebSocket, WsSender};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket as Client};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn connect(srv: &TestServer, path: &str) -> Client<TcpStream> {
    let stream = TcpStream::connect(srv.addr).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let url = format!("ws://{}{path}", srv.addr);
    let (ws, response) = tungstenite::client::client(url, stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// The next text frame, skipping nothing: any other message fails the test.
fn text(ws: &mut Client<TcpStream>) -> String {
    match ws.read().expect("a message") {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads until the server's close frame; returns its code and reason.
fn close_frame(ws: &mut Client<TcpStream>) -> (CloseCode, String) {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return (frame.code, frame.reason.to_string()),
            Ok(Message::Close(None)) => panic!("a close frame without a code"),
            Ok(_) => {}
            Err(err) => panic!("no close frame: {err}"),
        }
    }
}

/// After the close handshake the server closes the TCP connection.
fn ends(ws: &mut Client<TcpStream>) {
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(err) => panic!("expected a clean end, got {err}"),
        }
    }
}

fn handshake(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
    )
}

/// A client frame, masked as RFC 6455 §5.3 requires (with a fixed key: tests only).
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads a raw socket until `want` bytes came (or it closed, or timed out).
fn read_some(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < want {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

fn demo() -> TestServer {
    TestServer::demo(|_| {})
}

#[test]
fn a_good_handshake_switches_and_bad_ones_are_refused_with_the_reason() {
    let srv = demo();
    let mut good = srv.client();
    good.send(
        handshake(
            "/ws?topic=h",
            &format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"),
        )
        .as_bytes(),
    );
    let reply = good.head_reply();
    assert_eq!(reply.status, 101);
    assert_eq!(reply.header("sec-websocket-accept"), Some(ACCEPT));
    assert_eq!(reply.header("upgrade"), Some("websocket"));

    let mut bad_key = srv.client();
    bad_key.send(
        handshake(
            "/ws?topic=h",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n",
        )
        .as_bytes(),
    );
    let reply = bad_key.reply();
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("Sec-WebSocket-Key"),
        "{}",
        reply.text()
    );

    let mut old_version = srv.client();
    old_version.send(
        handshake(
            "/ws?topic=h",
            &format!("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n"),
        )
        .as_bytes(),
    );
    let reply = old_version.reply();
    assert_eq!(reply.status, 426);
    assert_eq!(reply.header("sec-websocket-version"), Some("13"));

    let plain = srv.client().get("/ws?topic=h");
    assert_eq!(plain.status, 426);
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    assert!(
        plain
            .header("connection")
            .is_some_and(|c| c.contains("upgrade"))
    );
    assert!(
        plain.text().contains("Upgrade: websocket"),
        "{}",
        plain.text()
    );
}

#[test]
fn two_websockets_and_a_post_all_talk_on_one_topic() {
    let srv = demo();
    let mut alice = connect(&srv, "/ws?topic=room");
    // Its own frame coming back proves it subscribed (the handler subscribes first).
    alice.send(Message::text("alice here")).unwrap();
    assert_eq!(text(&mut alice), "alice here");
    let mut bob = connect(&srv, "/ws?topic=room");
    bob.send(Message::text("bob here")).unwrap();
    assert_eq!(text(&mut bob), "bob here");
    assert_eq!(text(&mut alice), "bob here");

    assert_eq!(srv.publish("room", b"from curl"), "2");
    assert_eq!(text(&mut alice), "from curl");
    assert_eq!(text(&mut bob), "from curl");
    // Another topic is another room.
    assert_eq!(srv.publish("elsewhere", b"not for them"), "0");
    alice.send(Message::text("bye")).unwrap();
    assert_eq!(text(&mut bob), "bye");
    assert_eq!(text(&mut alice), "bye");
}

#[test]
fn a_ping_gets_its_pong() {
    let srv = demo();
    let mut ws = connect(&srv, "/ws?topic=p");
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        Message::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[test]
fn the_close_handshake_works_from_either_side() {
    let srv = demo();
    // The client closes: the server answers with the same code, then closes the socket.
    let mut ws = connect(&srv, "/ws?topic=c");
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    assert_eq!(close_frame(&mut ws).0, CloseCode::Normal);
    ends(&mut ws);
    // The server closes (the demo takes text only): 1003 with its reason.
    let mut ws = connect(&srv, "/ws?topic=c");
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(
        close_frame(&mut ws),
        (CloseCode::Unsupported, "text frames only".to_string())
    );
    ends(&mut ws);
    // Its subscription ended with it.
    assert_eq!(srv.publish("c", b"anyone?"), "0");
}

#[test]
fn a_message_over_the_limit_is_closed_with_1009() {
    let srv = TestServer::demo(|config| config.limits.max_websocket_message_bytes = 1000);
    let mut ws = connect(&srv, "/ws?topic=big");
    ws.send(Message::text("x".repeat(1000))).unwrap();
    assert_eq!(text(&mut ws).len(), 1000);
    ws.send(Message::text("x".repeat(1001))).unwrap();
    assert_eq!(close_frame(&mut ws).0, CloseCode::Size);
}

#[test]
fn an_unmasked_client_frame_is_closed_with_1002() {
    let srv = demo();
    let mut stream = TcpStream::connect(srv.addr).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    let hello = handshake(
        "/ws?topic=m",
        &format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"),
    );
    // The handshake, a masked frame and an unmasked one in one write: the frames behind the
    // head are the session's first bytes.
    let mut bytes = hello.into_bytes();
    bytes.extend_from_slice(&masked(0x1, b"masked"));
    bytes.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    stream.write_all(&bytes).unwrap();
    let got = read_some(&mut stream, usize::MAX);
    let text = String::from_utf8_lossy(&got);
    let head_end = text.find("\r\n\r\n").expect("a 101 head") + 4;
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    let frames = &got[head_end..];
    // The masked frame was published back to it, then the close: 1002, and the socket ends.
    let echo = [&[0x81u8, 6][..], b"masked"].concat();
    assert!(frames.starts_with(&echo), "{frames:?}");
    let close = &frames[echo.len()..];
    assert_eq!(close[0], 0x88, "{close:?}");
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1002);
}

/// Idle connections (WebSockets among them) the wards hold, read from the server itself.
fn idle_in_wards(srv: &TestServer) -> usize {
    let stats = srv.server().stats();
    (0..2).map(|k| stats.hibernating_idle(k)).sum()
}

#[test]
fn an_idle_websocket_hibernates_and_a_publish_or_its_client_wakes_it() {
    let srv = TestServer::demo(|config| config.timeouts.hibernate_after_ms = 50);
    let mut ws = connect(&srv, "/ws?topic=sleepy");
    ws.send(Message::text("hi")).unwrap();
    assert_eq!(text(&mut ws), "hi");
    eventually(Duration::from_secs(5), "the websocket hibernates", || {
        idle_in_wards(&srv) == 1
    });
    // A publish reaches the hibernated WebSocket: its ward starts a coroutine for it.
    assert_eq!(srv.publish("sleepy", b"wake up"), "1");
    assert_eq!(text(&mut ws), "wake up");
    eventually(Duration::from_secs(5), "it hibernates again", || {
        idle_in_wards(&srv) == 1
    });
    // And so does its client's next frame.
    ws.send(Message::text("me again")).unwrap();
    assert_eq!(text(&mut ws), "me again");
    ws.close(None).unwrap();
    ends(&mut ws);
}

#[test]
fn with_hibernation_off_a_websocket_keeps_its_coroutine_and_still_hears_publishes() {
    let srv = TestServer::demo(|config| config.timeouts.hibernate_after_ms = 0);
    let mut ws = connect(&srv, "/ws?topic=awake");
    ws.send(Message::text("hi")).unwrap();
    assert_eq!(text(&mut ws), "hi");
    assert_eq!(srv.publish("awake", b"still there?"), "1");
    assert_eq!(text(&mut ws), "still there?");
    assert_eq!(idle_in_wards(&srv), 0);
}

/// A blocking WebSocket that echoes frames and forwards what its sender receives, after
/// handing its sender out (as a handler would register it).
fn blocking_echo(senders: std::sync::mpsc::Sender<WsSender<String>>) -> Router {
    let senders = std::sync::Mutex::new(senders);
    Router::new().get("/echo", move |req: &Request| {
        let senders = senders.lock().unwrap().clone();
        req.websocket(move |ws: &mut WebSocket<'_, String>| {
            senders.send(ws.sender()).unwrap();
            while let Ok(incoming) = ws.recv_either() {
                let sent = match incoming {
                    Incoming::Message(message) => ws.send(message),
                    Incoming::Info(note) => ws.send(format!("note: {note}")),
                };
                if sent.is_err() {
                    break;
                }
            }
        })
    })
}

#[test]
fn a_blocking_websocket_waits_on_frames_and_messages_at_once() {
    let (tx, rx) = std::sync::mpsc::channel();
    let srv = TestServer::start(common::test_config(), blocking_echo(tx));
    let mut ws = connect(&srv, "/echo");
    let sender = rx
        .recv_timeout(CLIENT_TIMEOUT)
        .expect("the handler's sender");
    ws.send(Message::text("one")).unwrap();
    assert_eq!(text(&mut ws), "one");
    // The handler is parked in `recv_either` on the socket: a message ends that wait.
    sender.send("from a process".to_string()).unwrap();
    assert_eq!(text(&mut ws), "note: from a process");
    ws.send(Message::binary(vec![0, 1, 2])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0, 1, 2]));
    ws.close(None).unwrap();
    ends(&mut ws);
    eventually(Duration::from_secs(5), "the sender sees it ended", || {
        sender.is_closed()
    });
    assert!(sender.send("too late".to_string()).is_err());
}

/// Answers every message sent to the connection's process with a text frame.
struct Relay;

impl corral::WsHandler for Relay {
    type Info = String;

    fn message(&mut self, _ws: &mut WebSocket<'_, String>, _message: corral::WsMessage) {}

    fn info(&mut self, ws: &mut WebSocket<'_, String>, info: String) {
        let _ = ws.send(format!("mail: {info}"));
    }
}

/// Two WebSockets registered under a name by their connection's process: one blocking, one
/// with callbacks (which hibernates).
fn named() -> Router {
    Router::new()
        .get("/blocking/:name", |req: &Request| {
            let me = req.process::<String>();
            me.register(req.param("name").unwrap()).unwrap();
            req.websocket(|ws: &mut WebSocket<'_, String>| {
                while let Ok(incoming) = ws.recv_either() {
                    if let Incoming::Info(note) = incoming {
                        let _ = ws.send(format!("mail: {note}"));
                    }
                }
            })
        })
        .get("/callbacks/:name", |req: &Request| {
            let me = req.process::<String>();
            me.register(req.param("name").unwrap()).unwrap();
            req.websocket_with(Relay)
        })
}

#[test]
fn messages_to_the_connections_process_reach_its_websocket_awake_or_hibernated() {
    let mut config = common::test_config();
    config.timeouts.hibernate_after_ms = 50;
    let srv = TestServer::start(config, named());
    let mut blocking = connect(&srv, "/blocking/ws-blocking");
    let mut callbacks = connect(&srv, "/callbacks/ws-callbacks");
    eventually(
        Duration::from_secs(5),
        "the callback WebSocket hibernates",
        || idle_in_wards(&srv) == 1,
    );
    for (name, ws) in [
        ("ws-blocking", &mut blocking),
        ("ws-callbacks", &mut callbacks),
    ] {
        let addr = corral_actors::whereis::<String>(name).expect("registered");
        addr.send(format!("hello {name}")).unwrap();
        assert_eq!(text(ws), format!("mail: hello {name}"));
    }
    // The name goes with the connection: closing the WebSocket ends its process.
    callbacks.close(None).unwrap();
    ends(&mut callbacks);
    eventually(Duration::from_secs(5), "the name is freed", || {
        corral_actors::whereis::<String>("ws-callbacks").is_none()
    });
}
