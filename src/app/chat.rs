//! A small chat on long-polling and Server-Sent Events: `examples/chat.rs` serves it.
//!
//! The page subscribes with `EventSource('/events?topic=chat')` and posts lines to `/say`;
//! every handler is a plain function over the demo's topic process.

use std::sync::Arc;

use corral::{HttpError, Request, Response, Router};

use super::pubsub::Topics;

/// Longest chat line accepted, bytes.
const MAX_LINE_BYTES: usize = 1000;

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>Corral chat</title>
<style>body{font:16px sans-serif;max-width:40em;margin:2em auto}#log{min-height:10em}</style>
<h1>Corral chat</h1>
<div id="log"></div>
<form id="say"><input id="line" autocomplete="off" placeholder="say something"><button>Send</button></form>
<script>
const log = document.getElementById('log');
const events = new EventSource('/events?topic=chat');
events.onmessage = (e) => {
  const p = document.createElement('p');
  p.textContent = e.data;
  log.appendChild(p);
};
document.getElementById('say').onsubmit = (e) => {
  e.preventDefault();
  const line = document.getElementById('line');
  fetch('/say', {method: 'POST', body: line.value});
  line.value = '';
};
</script>
"#;

/// The chat app on `topics` ([`Topics::new`] in this process, or [`Topics::from_config`],
/// which may share them through a broker): `/` (the page), `/events` (SSE), `/poll`
/// (long-poll), `/say` (post a line).
pub fn router(topics: Topics) -> Router {
    let topics = Arc::new(topics);
    let [events, poll, say] = [(); 3].map(|_| topics.clone());
    Router::new()
        .get("/", |_req: &Request| {
            Response::text(PAGE).with_content_type("text/html; charset=utf-8")
        })
        .get("/events", move |req: &Request| {
            events.events_on(req, "chat")
        })
        .get("/poll", move |_req: &Request| poll.poll_on("chat"))
        .post("/say", move |req: &Request| say_line(req, &say))
}

fn say_line(req: &Request, topics: &Topics) -> Result<String, HttpError> {
    let line = std::str::from_utf8(req.body())
        .map_err(|_| HttpError::bad_request("a chat line is UTF-8 text"))?
        .trim();
    if line.is_empty() || line.len() > MAX_LINE_BYTES || line.contains('\n') {
        return Err(HttpError::bad_request("one line of 1 to 1000 bytes"));
    }
    topics.publish_to("chat", line.as_bytes())
}
