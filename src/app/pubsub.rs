//! Long-poll pub/sub for the demo (`/poll`, `/publish`), in its simple form: a table of
//! waiting channels per topic. Each waiter blocks in plain sequential code on its channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use may::sync::{Mutex, mpsc};

use crate::http::request::Request;
use crate::http::response::{HttpError, Response};
use crate::http::status::Status;

/// The longest topic name we accept, bytes.
const MAX_TOPIC_BYTES: usize = 256;

type Message = Arc<Vec<u8>>;
/// Waiters per topic: (waiter id, its channel).
type Waiters = HashMap<String, Vec<(u64, mpsc::Sender<Message>)>>;

pub struct Topics {
    waiters: Mutex<Waiters>,
    next_id: AtomicU64,
    timeout: Duration,
}

impl Topics {
    pub fn new(timeout: Duration) -> Self {
        Topics {
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            timeout,
        }
    }

    /// `GET /poll?topic=T`: waits for the next publish on T; 204 after the poll timeout.
    pub fn poll(&self, req: &Request) -> Result<Response, HttpError> {
        let topic = topic(req)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.lock()?
            .entry(topic.clone())
            .or_default()
            .push((id, tx));
        match rx.recv_timeout(self.timeout) {
            Ok(message) => Ok(Response::bytes(
                "application/octet-stream",
                message.to_vec(),
            )),
            Err(_) => {
                let mut waiters = self.lock()?;
                if let Some(list) = waiters.get_mut(&topic) {
                    list.retain(|(other, _)| *other != id);
                    if list.is_empty() {
                        waiters.remove(&topic);
                    }
                }
                Ok(Response::new(Status::NO_CONTENT))
            }
        }
    }

    /// `POST /publish?topic=T`: hands the body to every waiter on T; answers how many.
    pub fn publish(&self, req: &Request) -> Result<String, HttpError> {
        let topic = topic(req)?;
        let waiting = self.lock()?.remove(&topic).unwrap_or_default();
        let message: Message = Arc::new(req.body().to_vec());
        let reached = waiting
            .into_iter()
            .filter(|(_, tx)| tx.send(message.clone()).is_ok())
            .count();
        Ok(format!("{reached}\n"))
    }

    fn lock(&self) -> Result<may::sync::MutexGuard<'_, Waiters>, HttpError> {
        self.waiters
            .lock()
            .map_err(|_| HttpError::new(Status::SERVICE_UNAVAILABLE, "topic table unavailable"))
    }
}

fn topic(req: &Request) -> Result<String, HttpError> {
    match req.query_param("topic") {
        Some(t) if !t.is_empty() && t.len() <= MAX_TOPIC_BYTES => Ok(t.into_owned()),
        _ => Err(HttpError::bad_request(
            "query `topic` is required (1 to 256 bytes)",
        )),
    }
}
