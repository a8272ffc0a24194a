//! Topics shared by several `corral` processes through a real Redis (`pubsub.broker`): a
//! publish on one instance reaches long-polls and SSE streams on another, `Last-Event-ID`
//! resumes across instances with exactly the missed events, and Redis going away fails
//! publishes with 503 while waiters stay, until the link reconnects by itself.
//!
//! Each test starts its own `redis-server` on a free loopback port (no persistence, its own
//! directory) and stops it by its handle. `.ci/run` installs redis-server; without it the
//! tests are skipped, unless `CI` is set.

mod common;
mod procs;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Client, eventually, parse_prometheus, sample};
use procs::Corral;

/// How long a test waits for Redis, a subscription or a reconnect.
const WAIT: Duration = Duration::from_secs(15);

/// Whether redis-server runs; if not, the test is skipped (outside CI) or fails (in CI).
fn have_redis() -> bool {
    match Command::new("redis-server").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        outcome if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipped: redis-server is not usable ({outcome:?}); apt-get install redis-server"
            );
            false
        }
        outcome => panic!("redis-server is required in CI: {outcome:?}"),
    }
}

/// A `redis-server` this test started, on loopback, without persistence.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(tag: &str) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("corral-redis-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for redis");
        Redis::start_on(port, dir)
    }

    fn start_on(port: u16, dir: PathBuf) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let redis = Redis { child, port, dir };
        let client = redis::Client::open(redis.url()).expect("a client");
        eventually(WAIT, "redis-server answers PING", || {
            client
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (by its handle) and waits for it; the port and directory stay for a restart.
    fn kill(mut self) -> (u16, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, std::mem::take(&mut self.dir)) // Drop then removes nothing
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A config file pointing the demo at `redis`.
fn config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("corral.toml");
    let text = format!("[pubsub]\nbroker = \"{url}\"\n[demo]\npoll_timeout_ms = 60000\n");
    std::fs::write(&path, text).expect("write the config");
    path
}

/// Two instances of `app` on the same Redis.
fn two_instances(redis: &Redis, app: &str) -> (Corral, Corral) {
    let path = config(&redis.dir, &redis.url());
    let start = || Corral::start(&["--app", app, "--workers", "2"], Some(&path));
    (start(), start())
}

fn subscribers(addr: SocketAddr) -> f64 {
    let metrics = parse_prometheus(Client::connect(addr).get("/metrics").text());
    sample(&metrics, "corral_topic_subscribers")
}

fn wait_subscribers(addr: SocketAddr, n: f64) {
    eventually(WAIT, &format!("{n} subscribers on {addr}"), || {
        subscribers(addr) == n
    });
}

/// POST `path` with `body`: (status, body text).
fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut c = Client::connect(addr);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes());
    c.send(body.as_bytes());
    let r = c.reply();
    (r.status, r.text().to_string())
}

fn publish(addr: SocketAddr, topic: &str, body: &str) -> (u16, String) {
    post(addr, &format!("/publish?topic={topic}"), body)
}

/// A long-poll sent on `topic`, its answer not read yet.
fn long_poll(addr: SocketAddr, topic: &str) -> Client {
    let mut c = Client::connect(addr);
    c.send(format!("GET /poll?topic={topic} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    c
}

/// An SSE stream of `path`, read up to its `: subscribed` comment.
fn sse(addr: SocketAddr, path: &str, last_event_id: Option<u64>) -> (Client, String) {
    let mut c = Client::connect(addr);
    let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{resume}\r\n").as_bytes());
    let head = c.head();
    assert_eq!(head.status, 200, "{head:?}");
    let text = c.take_until(b": subscribed\n\n");
    (c, text)
}

/// The `(id, data)` of every complete event in SSE text read off the wire (chunk-size lines
/// between them are skipped).
fn events(text: &str) -> Vec<(u64, String)> {
    let (mut out, mut id, mut data) = (Vec::new(), None, None::<String>);
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().expect("a numeric id"));
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(data.map_or(v.to_string(), |d| d + "\n" + v));
        } else if line.is_empty()
            && let (Some(i), Some(d)) = (id, data.take())
        {
            out.push((i, d));
            id = None;
        }
    }
    out
}

#[test]
fn a_publish_on_one_instance_reaches_long_polls_and_sse_streams_on_another() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start("reach");
    let (a, b) = two_instances(&redis, "demo");
    let mut poll_b = long_poll(b.addr, "news");
    let mut poll_a = long_poll(a.addr, "news");
    let (mut stream_b, _) = sse(b.addr, "/events?topic=news", None);
    wait_subscribers(b.addr, 2.0);
    wait_subscribers(a.addr, 1.0);

    // Both instances are subscribed to the broker: Redis reports 2 receivers.
    assert_eq!(publish(a.addr, "news", "hello"), (200, "2\n".to_string()));
    for poll in [&mut poll_b, &mut poll_a] {
        let r = poll.reply();
        assert_eq!((r.status, r.text()), (200, "hello"));
    }
    let first = events(&stream_b.take_until(b"data: hello\n\n"));
    assert_eq!(first.len(), 1, "{first:?}");

    // And the other way round, on the same stream: ids come from the broker, in order.
    assert_eq!(publish(b.addr, "news", "again").0, 200);
    let second = events(&stream_b.take_until(b"data: again\n\n"));
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(second[0].0 > first[0].0, "{first:?} then {second:?}");
}

#[test]
fn chat_lines_said_on_one_instance_reach_listeners_on_another() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start("chat");
    let (a, b) = two_instances(&redis, "chat");
    // The chat has no /metrics: a stream is subscribed once it says so.
    let (mut on_b, _) = sse(b.addr, "/events", None);
    let (mut on_a, _) = sse(a.addr, "/events", None);
    assert_eq!(post(a.addr, "/say", "hi from a").0, 200);
    assert_eq!(post(b.addr, "/say", "hi from b").0, 200);
    for listener in [&mut on_a, &mut on_b] {
        let seen = events(&listener.take_until(b"data: hi from b\n\n"));
        let lines: Vec<&str> = seen.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(lines, ["hi from a", "hi from b"]);
    }
}

#[test]
fn last_event_id_resumption_across_instances_gets_exactly_the_missed_events() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start("resume");
    let (a, b) = two_instances(&redis, "demo");
    let (mut on_a, _) = sse(a.addr, "/events?topic=feed", None);
    wait_subscribers(a.addr, 1.0);
    for body in ["one", "two"] {
        assert_eq!(publish(a.addr, "feed", body).0, 200);
    }
    let seen = events(&on_a.take_until(b"data: two\n\n"));
    assert_eq!(
        seen.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    let last_seen = seen[1].0;
    drop(on_a); // the client goes away ...
    wait_subscribers(a.addr, 0.0);
    // ... while three more are published. Instance B has served nothing yet, so its topic
    // process does not run and has seen none of them: only Redis has them.
    for body in ["three", "four\nlines", "five"] {
        assert_eq!(publish(a.addr, "feed", body).0, 200);
    }
    // The client comes back on B.
    let (mut on_b, _) = sse(b.addr, "/events?topic=feed", Some(last_seen));
    wait_subscribers(b.addr, 1.0);
    assert_eq!(publish(a.addr, "feed", "six").0, 200);
    let resumed = events(&on_b.take_until(b"data: six\n\n"));
    let bodies: Vec<&str> = resumed.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        bodies,
        ["three", "four\nlines", "five", "six"],
        "{resumed:?}"
    );
    assert!(resumed.windows(2).all(|w| w[0].0 < w[1].0), "{resumed:?}");
    assert!(resumed[0].0 > last_seen);
}

#[test]
fn an_event_published_while_an_instance_was_not_subscribed_reaches_it_when_it_resubscribes() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start("replay");
    let (a, b) = two_instances(&redis, "demo");
    let (mut on_b, _) = sse(b.addr, "/events?topic=log", None);
    assert_eq!(publish(a.addr, "log", "live").0, 200);
    on_b.take_until(b"data: live\n\n");
    // Cut every subscription (the instances' command connections stay), then publish at
    // once: until an attempt reaches no instance at all, which only a replay can deliver.
    let mut admin = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("an admin connection");
    let mut attempt = 0;
    eventually(WAIT, "a publish while no instance is subscribed", || {
        attempt += 1;
        let _: u64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "pubsub"])
            .query(&mut admin)
            .expect("CLIENT KILL");
        publish(a.addr, "log", &format!("missed {attempt}")) == (200, "0\n".to_string())
    });
    let text = on_b.take_until(format!("data: missed {attempt}\n\n").as_bytes());
    let got: Vec<String> = events(&text).into_iter().map(|(_, d)| d).collect();
    let want: Vec<String> = (1..=attempt).map(|n| format!("missed {n}")).collect();
    assert_eq!(got, want, "every event once, in order");
}

#[test]
fn redis_going_away_fails_publishes_with_503_keeps_waiters_and_the_link_reconnects() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start("outage");
    let (a, b) = two_instances(&redis, "demo");
    let mut poll_b = long_poll(b.addr, "alerts");
    let (mut stream_b, _) = sse(b.addr, "/events?topic=alerts", None);
    wait_subscribers(b.addr, 2.0);
    assert_eq!(publish(a.addr, "alerts", "before").0, 200);
    let r = poll_b.reply();
    assert_eq!((r.status, r.text()), (200, "before"));
    stream_b.take_until(b"data: before\n\n");
    let mut poll_b = long_poll(b.addr, "alerts");
    wait_subscribers(b.addr, 2.0);

    let (port, dir) = redis.kill();
    let (status, text) = publish(a.addr, "alerts", "lost");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    // The waiters are still there, unanswered.
    assert_eq!(subscribers(b.addr), 2.0);
    assert!(poll_b.quiet_for(Duration::from_millis(1)));
    eventually(WAIT, "the broker is reported down", || {
        let metrics = parse_prometheus(Client::connect(a.addr).get("/metrics").text());
        sample(&metrics, "corral_broker_up") == 0.0
    });

    let redis = Redis::start_on(port, dir);
    eventually(WAIT, "a publish succeeds once Redis is back", || {
        publish(a.addr, "alerts", "after").0 == 200
    });
    let r = poll_b.reply();
    assert_eq!((r.status, r.text()), (200, "after"));
    let text = stream_b.take_until(b"data: after\n\n");
    assert!(!text.contains("lost"), "{text}");
    assert_eq!(events(&text).len(), 1, "{text}");
    drop(redis);
}

#[test]
fn a_killed_broker_link_is_restarted_by_its_supervisor_and_waiters_keep_waiting() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start("supervised");
    let url = redis.url();
    let srv = common::TestServer::demo(|c| c.pubsub.broker = url);
    let mut poll = long_poll(srv.addr, "jobs");
    wait_subscribers(srv.addr, 1.0);
    let restarts = || sample(&srv.metrics(), "corral_topic_restarts_total");
    assert_eq!(restarts(), 0.0);
    let links: Vec<_> = corral_actors::registered()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".broker"))
        .collect();
    assert_eq!(links.len(), 1, "{links:?}");
    links[0].1.kill();
    eventually(WAIT, "the supervisor restarts the link", || {
        restarts() == 1.0
    });
    assert_eq!(subscribers(srv.addr), 1.0, "the waiter is kept");
    eventually(WAIT, "a publish through the new link", || {
        publish(srv.addr, "jobs", "done").0 == 200
    });
    let r = poll.reply();
    assert_eq!((r.status, r.text()), (200, "done"));
}

#[test]
fn a_websocket_frame_on_one_instance_is_published_to_the_other_through_the_broker() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start("ws");
    let (a, b) = two_instances(&redis, "demo");
    let mut poll_b = long_poll(b.addr, "room");
    wait_subscribers(b.addr, 1.0);
    let stream = std::net::TcpStream::connect(a.addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let url = format!("ws://{}/ws?topic=room", a.addr);
    let (mut ws, response) = tungstenite::client::client(url, stream).expect("handshake");
    assert_eq!(response.status(), 101);
    wait_subscribers(a.addr, 1.0);
    ws.send(tungstenite::Message::text("from a websocket"))
        .expect("send");
    let r = poll_b.reply();
    assert_eq!((r.status, r.text()), (200, "from a websocket"));
    // Its own instance hears it back through Redis, like any other subscriber.
    match ws.read().expect("a message") {
        tungstenite::Message::Text(text) => assert_eq!(text.as_str(), "from a websocket"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}
