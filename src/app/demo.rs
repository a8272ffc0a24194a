//! The showcase routes: each one exercises a capability (`GET /` lists them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::{Config, HttpError, Json, Request, Response, Router, StaticFiles, Status};

use super::inbox::Inboxes;
use super::pubsub::Topics;

/// Upper bound for `/work` and `/cpu` durations, µs: a demo must not park a worker for long.
const MAX_DEMO_US: u64 = 10_000_000;
/// Upper bound for `/stream` chunk counts.
const MAX_STREAM_CHUNKS: u32 = 1000;

pub fn router(config: &Config) -> Router {
    let topics = Arc::new(Topics::from_config(config));
    let statics = StaticFiles::new(config.demo.static_dir.clone());
    let inboxes = Arc::new(Inboxes::new(Duration::from_millis(
        config.demo.poll_timeout_ms,
    )));
    let [inbox, send] = [(); 2].map(|_| inboxes.clone());
    let [
        poll,
        poll_blocking,
        publish,
        events,
        crash,
        metrics,
        counted,
        ws,
    ] = [(); 8].map(|_| topics.clone());
    Router::new()
        .get("/", index)
        .get("/plaintext", plaintext)
        .get("/json", json)
        .post("/echo", echo)
        .get("/work", work)
        .get("/cpu", cpu)
        .get("/stream", stream)
        .get("/poll", move |req: &Request| poll.poll(req))
        .get("/poll/blocking", move |req: &Request| {
            poll_blocking.poll_blocking(req)
        })
        .post("/publish", move |req: &Request| publish.publish(req))
        .get("/events", move |req: &Request| events.events(req))
        .get("/ws", move |req: &Request| ws.websocket(req))
        .post("/topics/crash", move |_req: &Request| crash.crash())
        .get("/topics/subscribers", move |_req: &Request| {
            topic_subscribers(&counted)
        })
        .get("/inbox/:name", move |req: &Request| inbox.wait(req))
        .post("/send/:name", move |req: &Request| send.send(req))
        .get("/panic", panic)
        .get("/static/*path", statics)
        .get("/metrics", move |req: &Request| demo_metrics(req, &metrics))
        .get("/healthz", healthz)
        .get("/whoami", whoami)
}

const INDEX: &str = "Corral demo. Routes:
  GET  /plaintext            Hello, World!
  GET  /json                 {\"message\":\"Hello, World!\"}
  POST /echo                 the request body back, with its content-type
  GET  /work?us=N            waits N microseconds (coroutine sleep), then ok
  GET  /cpu?us=N             burns N microseconds of CPU, then ok
  GET  /stream?n=N&ms=M      N chunks, M milliseconds apart (a streamed response)
  GET  /poll?topic=T         long-poll: waits hibernated for a publish on T (204 on timeout)
  GET  /poll/blocking?topic=T the same, written as blocking code on its coroutine
  POST /publish?topic=T      wakes every waiter on T with the body; replies with how many
  GET  /events?topic=T       Server-Sent Events: every publish on T (Last-Event-ID resumes)
  GET  /ws?topic=T           WebSocket: every publish on T as a text frame; its text frames published
  POST /topics/crash         crashes the pub/sub process: waiters get 503, it restarts
  GET  /topics/subscribers   pid N subscribers M: this process's waiters (several on one port)
  GET  /inbox/NAME           registers this connection as NAME, waits hibernated for a message
  POST /send/NAME            sends the body to the connection registered as NAME (404: none)
  GET  /panic                the handler panics: 500, and only this connection closes
  GET  /static/PATH          files under the configured static_dir
  GET  /metrics              Prometheus text: schedulers, route costs, restarts
  GET  /healthz              200 ok pid N; 503 draining pid N once a drain began (balancers)
  GET  /whoami               pid N: which process answered (several on one port)
";

fn index(_req: &Request) -> &'static str {
    INDEX
}

fn plaintext(_req: &Request) -> &'static str {
    "Hello, World!"
}

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

fn json(_req: &Request) -> Json<Message> {
    Json(Message {
        message: "Hello, World!",
    })
}

fn echo(req: &Request) -> Response {
    let content_type = req
        .header("content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    Response::bytes(content_type, req.body().to_vec())
}

fn micros(req: &Request) -> Result<Duration, HttpError> {
    let us: u64 = req.query_as("us")?;
    if us > MAX_DEMO_US {
        return Err(HttpError::bad_request("us must be at most 10000000"));
    }
    Ok(Duration::from_micros(us))
}

/// A handler blocked on a "database": plain sequential code, the scheduler serves others.
fn work(req: &Request) -> Result<&'static str, HttpError> {
    corral::sleep(micros(req)?);
    Ok("ok")
}

/// A costly route: occupies its scheduler for the whole duration.
fn cpu(req: &Request) -> Result<&'static str, HttpError> {
    let duration = micros(req)?;
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < duration {
        for i in 0..64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    Ok("ok")
}

/// A streamed response: each chunk is written while the handler runs.
fn stream(req: &Request) -> Result<Response, HttpError> {
    let n: u32 = req.query_as("n").unwrap_or(5);
    let ms: u64 = req.query_as("ms").unwrap_or(100);
    if n > MAX_STREAM_CHUNKS || ms > 10_000 {
        return Err(HttpError::bad_request(
            "n must be at most 1000 and ms at most 10000",
        ));
    }
    Ok(Response::stream("text/plain; charset=utf-8", move |out| {
        for i in 0..n {
            if i > 0 {
                corral::sleep(Duration::from_millis(ms));
            }
            out.write_all(format!("chunk {i}\n").as_bytes())?;
        }
        Ok(())
    }))
}

/// The server's metrics plus the demo's pub/sub figures.
fn demo_metrics(req: &Request, topics: &Topics) -> Response {
    use std::fmt::Write;
    let Some(mut text) = corral::render_metrics(req) else {
        return Response::error(corral::Status::INTERNAL_SERVER_ERROR);
    };
    let _ = writeln!(
        text,
        "# HELP corral_topic_subscribers Waiting long-polls and SSE streams."
    );
    let _ = writeln!(text, "# TYPE corral_topic_subscribers gauge");
    let subscribers = topics.subscribers().map_or(-1, |n| n as i64);
    let _ = writeln!(text, "corral_topic_subscribers {subscribers}");
    let _ = writeln!(
        text,
        "# HELP corral_topic_restarts_total Restarts of the topic process."
    );
    let _ = writeln!(text, "# TYPE corral_topic_restarts_total counter");
    let _ = writeln!(text, "corral_topic_restarts_total {}", topics.restarts());
    if let Some(up) = topics.broker_up() {
        let _ = writeln!(
            text,
            "# HELP corral_broker_up Whether the pub/sub broker (pubsub.broker) answers."
        );
        let _ = writeln!(text, "# TYPE corral_broker_up gauge");
        let _ = writeln!(text, "corral_broker_up {}", u8::from(up));
    }
    Response::text(text).with_content_type(corral::METRICS_CONTENT_TYPE)
}

/// This process's waiters, with its pid: with several processes on one port (SO_REUSEPORT),
/// a client adds up what each says (`benches/scaleout.sh`).
fn topic_subscribers(topics: &Topics) -> Result<String, HttpError> {
    let count = topics.subscribers().ok_or_else(|| {
        HttpError::new(
            Status::SERVICE_UNAVAILABLE,
            "the topic process does not answer",
        )
    })?;
    Ok(format!("pid {} subscribers {count}\n", std::process::id()))
}

/// For a load balancer's health check: 503 from the moment the server drains, while it
/// still answers (`server.drain_delay_ms`), so the balancer takes it out before it goes.
fn healthz(req: &Request) -> (Status, String) {
    let pid = std::process::id();
    match req.server_draining() {
        false => (Status::OK, format!("ok pid {pid}\n")),
        true => (Status::SERVICE_UNAVAILABLE, format!("draining pid {pid}\n")),
    }
}

/// The answering process: with several instances (SO_REUSEPORT, a SIGUSR2 handoff, a
/// balancer), which one it was.
fn whoami(_req: &Request) -> String {
    format!("pid {}\n", std::process::id())
}

fn panic(_req: &Request) -> Response {
    panic!("GET /panic panics on purpose");
}
