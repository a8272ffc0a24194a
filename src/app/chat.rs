//! A small chat on WebSockets, Server-Sent Events and long-polling: `examples/chat.rs`
//! serves it (and `corral --app chat`).
//!
//! The page talks over a WebSocket (`/ws`): it sends each line as a text frame and shows
//! every line of the room. The same room is open to Server-Sent Events (`/events`), a
//! long-poll (`/poll`) and a plain POST (`/say`); every handler is a plain function (or, for
//! the WebSocket, a callback handler) over the demo's topic process.

use std::sync::Arc;

use corral::{HttpError, Request, Response, Router};

use super::pubsub::Topics;

/// Longest chat line accepted, bytes.
const MAX_LINE_BYTES: usize = 1000;

/// The chat page: the room over a WebSocket.
pub const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>Corral chat</title>
<style>body{font:16px sans-serif;max-width:40em;margin:2em auto}#log{min-height:10em}</style>
<h1>Corral chat</h1>
<p id="status">connecting…</p>
<div id="log"></div>
<form id="say"><input id="line" autocomplete="off" placeholder="say something"><button>Send</button></form>
<script>
const log = document.getElementById('log');
const status = document.getElementById('status');
const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
const room = new WebSocket(scheme + location.host + '/ws');
room.onopen = () => { status.textContent = 'connected'; };
room.onclose = (e) => { status.textContent = 'closed (' + e.code + ')'; };
room.onmessage = (e) => {
  const p = document.createElement('p');
  p.textContent = e.data;
  log.appendChild(p);
};
document.getElementById('say').onsubmit = (e) => {
  e.preventDefault();
  const line = document.getElementById('line');
  if (line.value) room.send(line.value);
  line.value = '';
};
</script>
"#;

/// The chat app on `topics` ([`Topics::new`] in this process, or [`Topics::from_config`],
/// which may share them through a broker): `/` (the page), `/ws` (the room as a WebSocket),
/// `/events` (SSE), `/poll` (long-poll), `/say` (post a line).
pub fn router(topics: Topics) -> Router {
    let topics = Arc::new(topics);
    let [events, poll, say, ws] = [(); 4].map(|_| topics.clone());
    Router::new()
        .get("/", |_req: &Request| {
            Response::text(PAGE).with_content_type("text/html; charset=utf-8")
        })
        .get("/events", move |req: &Request| {
            events.events_on(req, "chat")
        })
        .get("/poll", move |req: &Request| poll.poll_on(req, "chat"))
        .get("/ws", move |req: &Request| {
            ws.websocket_on(req, "chat", check_line)
        })
        .post("/say", move |req: &Request| say_line(req, &say))
}

fn say_line(req: &Request, topics: &Topics) -> Result<String, HttpError> {
    let line = std::str::from_utf8(req.body())
        .map_err(|_| HttpError::bad_request("a chat line is UTF-8 text"))?
        .trim();
    check_line(line).map_err(HttpError::bad_request)?;
    topics.publish_to("chat", line.as_bytes())
}

/// A chat line, from a POST or a WebSocket: one line of 1 to 1000 bytes.
fn check_line(line: &str) -> Result<(), &'static str> {
    if line.trim().is_empty() || line.len() > MAX_LINE_BYTES || line.contains('\n') {
        return Err("one line of 1 to 1000 bytes");
    }
    Ok(())
}
