//! What the demo's connection processes receive. A keep-alive connection has one process
//! for its whole life, whatever routes its requests take, so the routes that use it agree
//! on one message type (`corral::Request::process`).

use std::sync::Arc;

use super::pubsub::Event;

/// A message to a connection of the demo.
#[derive(Clone, Debug)]
pub enum Mail {
    /// A publish on the topic a `/poll` waits on.
    Event(Event),
    /// The topic process died with this connection still subscribed: `/poll` answers 503.
    TopicGone,
    /// A body sent with `POST /send/:name` to the `GET /inbox/:name` waiting there.
    Text(Arc<[u8]>),
}
