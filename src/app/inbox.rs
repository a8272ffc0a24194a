//! Processes over HTTP: a connection registers itself under a name and waits, hibernated,
//! for one message that anyone can send to that name.
//!
//! - `GET /inbox/:name` registers the connection's process under `name` (409 if the name
//!   is taken) and hibernates until a message comes (200 with it), or the timeout (204).
//!   The name is given up when the wait ends, and with the connection if it ends first
//!   (the registry frees a process's names when it exits).
//! - `POST /send/:name` sends the body to the connection registered under `name`: 200, or
//!   404 if there is none.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use corral::{HttpError, Request, Response, Status, Wake};
use corral_actors::{RegistryError, SendError, unregister, whereis, whereis_pid};

use super::mail::Mail;

/// The longest name we accept, bytes.
const MAX_NAME_BYTES: usize = 256;

/// The inboxes of one router: their names in the registry are prefixed with its own, so
/// servers in one OS process (the tests) keep apart.
pub struct Inboxes {
    prefix: String,
    timeout: Duration,
}

impl Inboxes {
    pub fn new(timeout: Duration) -> Inboxes {
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        Inboxes {
            prefix: format!("corral.inbox.{}.{instance}.", std::process::id()),
            timeout,
        }
    }

    fn registered_name(&self, req: &Request) -> Result<String, HttpError> {
        match req.param("name") {
            Some(name) if !name.is_empty() && name.len() <= MAX_NAME_BYTES => {
                Ok(format!("{}{name}", self.prefix))
            }
            _ => Err(HttpError::bad_request("the name must be 1 to 256 bytes")),
        }
    }

    /// `GET /inbox/:name`.
    pub fn wait(&self, req: &Request) -> Result<Response, HttpError> {
        let name = self.registered_name(req)?;
        let me = req.process::<Mail>();
        // Left over from an earlier request on this connection (a send that raced its end).
        while me.try_receive().is_some() {}
        match me.register(name.clone()) {
            Ok(()) => {}
            Err(RegistryError::Taken { .. }) => {
                return Err(HttpError::new(Status::CONFLICT, "that name is taken"));
            }
            Err(RegistryError::NotAlive(_)) => {
                return Err(HttpError::new(
                    Status::SERVICE_UNAVAILABLE,
                    "this connection is ending",
                ));
            }
        }
        let pid = me.pid().clone();
        Ok(me.hibernate(self.timeout, move |wake| {
            // The wait is over: give the name up (if it is still ours).
            if whereis_pid(&name).is_some_and(|holder| holder == pid) {
                unregister(&name);
            }
            match wake {
                Wake::Message(Mail::Text(body)) => {
                    Response::bytes("application/octet-stream", body.to_vec())
                }
                _ => Response::new(Status::NO_CONTENT),
            }
        }))
    }

    /// `POST /send/:name`.
    pub fn send(&self, req: &Request) -> Result<&'static str, HttpError> {
        let name = self.registered_name(req)?;
        let not_found = || HttpError::new(Status::NOT_FOUND, "no connection waits under that name");
        let to = whereis::<Mail>(&name).ok_or_else(not_found)?;
        match to.try_send(Mail::Text(Arc::from(req.body()))) {
            Ok(()) => Ok("sent\n"),
            Err(SendError::Dead(_)) => Err(not_found()),
            Err(SendError::Full(_)) => Err(HttpError::new(
                Status::SERVICE_UNAVAILABLE,
                "that inbox is full",
            )),
        }
    }
}
