//! WebSockets (RFC 6455): a handler upgrades its request, and the connection becomes a
//! WebSocket that both receives frames and receives messages from other processes.
//!
//! Two shapes, as Cowboy has:
//!
//! - **blocking** ([`Request::websocket`]): the closure owns the socket on the connection's
//!   coroutine, in plain sequential code: [`WebSocket::recv`], [`WebSocket::send`], and
//!   [`WebSocket::recv_either`], which waits for whichever comes first, a frame from the
//!   client or a message sent to its [`WsSender`]. Simplest to write; holds its coroutine
//!   (and stack) while it waits;
//! - **callbacks** ([`Request::websocket_with`] and a [`WsHandler`], Cowboy's
//!   `websocket_handle`/`websocket_info`): the server calls the handler per frame and per
//!   message. Between events the WebSocket *hibernates* like an idle keep-alive connection:
//!   its coroutine ends, the bare socket waits in its scheduler's ward, and a frame or a
//!   message starts a coroutine for it again (the handler value is all that is kept).
//!
//! Either way, tungstenite's codec does the frames (masking enforced, pings answered, the
//! close handshake), `limits.max_websocket_message_bytes` bounds a message (1009 past it),
//! and the handshake is checked before the `101` (`http/websocket.rs`).
//!
//! The pieces: `codec.rs` (tungstenite over the connection, whole frames in), `inbox.rs`
//! (messages from other processes, and whom they wake), `session.rs` (the two shapes as the
//! connection runs them).

mod codec;
mod inbox;
mod session;

use std::sync::Arc;

use corral_actors::{Addr, Adopted, SendError};

use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::status::Status;
use crate::http::websocket::{Offer, Socket, Upgrade, UpgradeError, accept};
use codec::{Codec, Got};
use inbox::Inbox;

/// A data message, as sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message (UTF-8, checked by the codec: invalid text closes with 1007).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl From<String> for WsMessage {
    fn from(text: String) -> WsMessage {
        WsMessage::Text(text)
    }
}

impl From<&str> for WsMessage {
    fn from(text: &str) -> WsMessage {
        WsMessage::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for WsMessage {
    fn from(bytes: Vec<u8>) -> WsMessage {
        WsMessage::Binary(bytes)
    }
}

/// What [`WebSocket::recv_either`] brought: a frame from the client or a message from a
/// process (Cowboy's `websocket_handle` and `websocket_info`).
#[derive(Debug)]
pub enum Incoming<M> {
    /// A data message from the client.
    Message(WsMessage),
    /// A message sent to this WebSocket's [`WsSender`].
    Info(M),
}

/// How a WebSocket ended: the close code and reason, sent or received (RFC 6455 §7.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsClosed {
    /// The close code: 1000 normal, 1001 going away, 1002 protocol error, 1005 none given,
    /// 1006 no close frame at all (the connection dropped), 1007 bad text, 1008 policy,
    /// 1009 message too big, 1011 server error.
    pub code: u16,
    /// The reason text, possibly empty.
    pub reason: String,
}

impl WsClosed {
    const NO_STATUS: WsClosed = WsClosed {
        code: 1005,
        reason: String::new(),
    };
    const ABNORMAL: WsClosed = WsClosed {
        code: 1006,
        reason: String::new(),
    };
}

/// Sends messages to one WebSocket from anywhere (another process, a thread); never blocks.
/// A message arriving while the WebSocket hibernates wakes it.
pub struct WsSender<M> {
    inbox: Arc<Inbox<M>>,
}

impl<M> Clone for WsSender<M> {
    fn clone(&self) -> Self {
        WsSender {
            inbox: self.inbox.clone(),
        }
    }
}

impl<M> std::fmt::Debug for WsSender<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsSender")
    }
}

impl<M> WsSender<M> {
    /// Queues `msg` for the WebSocket. `Dead` once it has ended; `Full` when it holds 1024
    /// unread messages (its client reads too slowly: it is then closed with 1008).
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.inbox.push(msg)
    }

    /// Whether the WebSocket has ended (a sender can drop its handle then).
    pub fn is_closed(&self) -> bool {
        self.inbox.is_closed()
    }
}

/// One WebSocket, for the code that serves it: send, receive, close. In a [`WsHandler`]'s
/// callbacks it is the same value (there, prefer returning to waiting in `recv`).
pub struct WebSocket<'a, M: Send + 'static> {
    socket: &'a mut dyn Socket,
    codec: &'a mut Codec,
    inbox: &'a Arc<Inbox<M>>,
    /// The connection's process, if the handler made one (`Request::process::<M>()`)
    /// before upgrading: its mailbox is read as the inbox is.
    process: Option<&'a Adopted<M>>,
    closed: Option<WsClosed>,
}

/// The connection's process as a mailbox of `M`s, if it has one of that type.
fn mailbox<M: Send + 'static>(process: Option<&dyn std::any::Any>) -> Option<&Adopted<M>> {
    let process = process?;
    let mailbox = process.downcast_ref::<Adopted<M>>();
    if mailbox.is_none() {
        log::warn!(
            "this connection's process takes other messages than the WebSocket's {}: \
             its mailbox is not read",
            std::any::type_name::<M>()
        );
    }
    mailbox
}

impl<M: Send + 'static> WebSocket<'_, M> {
    /// The next data message from the client; messages for [`WsSender`] stay queued.
    /// `Err` once the WebSocket is closed (by either side), with how.
    pub fn recv(&mut self) -> Result<WsMessage, WsClosed> {
        loop {
            if let Some(closed) = &self.closed {
                return Err(closed.clone());
            }
            match self.codec.read(self.socket) {
                Got::Message(message) => return Ok(message),
                Got::Closed(closed) => self.closed = Some(closed),
                Got::Idle => self.socket.wait(),
            }
        }
    }

    /// Whichever comes first: a data message from the client, or a message sent to this
    /// WebSocket's [`WsSender`]. One wait on both (the socket's readiness and the inbox).
    pub fn recv_either(&mut self) -> Result<Incoming<M>, WsClosed> {
        loop {
            if let Some(closed) = &self.closed {
                return Err(closed.clone());
            }
            if let Some(info) = self.next_info() {
                return Ok(Incoming::Info(info));
            }
            if self.closed.is_some() {
                continue;
            }
            match self.codec.read(self.socket) {
                Got::Message(message) => return Ok(Incoming::Message(message)),
                Got::Closed(closed) => self.closed = Some(closed),
                // A send rings the socket's waker after queueing, so a message that came
                // after the look above still ends this wait.
                Got::Idle if self.inbox.has_mail() => {}
                Got::Idle => self.wait(),
            }
        }
    }

    /// A message for this WebSocket's [`WsSender`] or its connection's process, if one is
    /// queued (never waits).
    pub fn try_info(&mut self) -> Option<M> {
        self.next_info()
    }

    /// The address of the connection's process, if the handler made one (with
    /// `Request::process::<M>()`, before upgrading): what is sent there arrives as
    /// [`Incoming::Info`], as through [`WsSender`].
    pub fn addr(&self) -> Option<Addr<M>> {
        self.process.map(Adopted::addr)
    }

    /// The next message from the inbox or the process's mailbox. A process that was ended
    /// (killed, or a linked process crashed) closes the WebSocket with 1011.
    fn next_info(&mut self) -> Option<M> {
        if let Some(info) = self.inbox.pop() {
            return Some(info);
        }
        if self.inbox.overflowed() {
            self.close(1008, "messages arrive faster than the client reads them");
            return None;
        }
        match self.process.map(Adopted::try_receive) {
            Some(Ok(info)) => info,
            Some(Err(exit)) => {
                log::debug!("a websocket's process ended: {exit:?}");
                self.close(1011, "its process ended");
                None
            }
            None => None,
        }
    }

    /// Waits for input or a message: the inbox wakes the socket's waiter by itself, the
    /// process's mailbox is told to (once: it is armed anew before every wait).
    fn wait(&mut self) {
        if let Some(process) = self.process {
            let wake = self.socket.wakeup();
            process.on_next(move || wake());
        }
        self.socket.wait();
    }

    /// Sends a data message now. `Err` if the WebSocket is closed.
    pub fn send(&mut self, message: impl Into<WsMessage>) -> Result<(), WsClosed> {
        if let Some(closed) = &self.closed {
            return Err(closed.clone());
        }
        self.codec
            .send(self.socket, message.into())
            .map_err(|()| self.lost())
    }

    /// Sends a ping (the client's pong is taken in by the next receive).
    pub fn ping(&mut self, payload: impl Into<Vec<u8>>) -> Result<(), WsClosed> {
        if let Some(closed) = &self.closed {
            return Err(closed.clone());
        }
        self.codec
            .ping(self.socket, payload.into())
            .map_err(|()| self.lost())
    }

    /// Closes with `code` and `reason` and waits (2 s at most) for the client's answer.
    /// Nothing can be sent or received afterwards.
    pub fn close(&mut self, code: u16, reason: &str) {
        if self.closed.is_none() {
            self.closed = Some(self.codec.close(self.socket, code, reason));
        }
    }

    /// Whether the WebSocket is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// A handle other processes send this WebSocket messages with.
    pub fn sender(&self) -> WsSender<M> {
        WsSender {
            inbox: self.inbox.clone(),
        }
    }

    fn lost(&mut self) -> WsClosed {
        self.closed.get_or_insert(WsClosed::ABNORMAL).clone()
    }
}

/// A WebSocket served by callbacks (Cowboy's `cowboy_websocket`): the server calls it for
/// each frame and each message, and the WebSocket hibernates between them, so an idle one
/// holds no coroutine. Each callback runs on the connection's coroutine: it may block (call
/// an actor), and sends with `ws`.
pub trait WsHandler: Send + 'static {
    /// What other processes send it (through [`WebSocket::sender`]).
    type Info: Send + 'static;

    /// Once, right after the handshake (subscribe here, with `ws.sender()`).
    fn open(&mut self, ws: &mut WebSocket<'_, Self::Info>) {
        let _ = ws;
    }

    /// A data message from the client.
    fn message(&mut self, ws: &mut WebSocket<'_, Self::Info>, message: WsMessage);

    /// A message from a process, sent to this WebSocket's [`WsSender`].
    fn info(&mut self, ws: &mut WebSocket<'_, Self::Info>, info: Self::Info) {
        let _ = (ws, info);
    }

    /// The WebSocket has ended, however it ended (unsubscribe here).
    fn closed(&mut self, how: &WsClosed) {
        let _ = how;
    }
}

impl Request<'_> {
    /// Upgrades this request to a WebSocket served by `serve` in blocking style on the
    /// connection's coroutine; the answer is the handshake's `101`. A request that is not a
    /// valid handshake gets 400 or 426 with the reason instead, and `serve` never runs.
    ///
    /// ```no_run
    /// use corral::{Request, Response, WebSocket, Incoming};
    ///
    /// fn echo(req: &Request) -> Response {
    ///     req.websocket(|ws: &mut WebSocket<String>| {
    ///         while let Ok(incoming) = ws.recv_either() {
    ///             let sent = match incoming {
    ///                 Incoming::Message(message) => ws.send(message),
    ///                 Incoming::Info(note) => ws.send(note),
    ///             };
    ///             if sent.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    /// }
    /// ```
    pub fn websocket<M, F>(&self, serve: F) -> Response
    where
        M: Send + 'static,
        F: FnOnce(&mut WebSocket<'_, M>) + Send + 'static,
    {
        self.upgrade(Box::new(session::Blocking::new(serve)))
    }

    /// Upgrades this request to a WebSocket served by `handler`'s callbacks, hibernating
    /// between events (see [`WsHandler`]). Refusals as for [`Request::websocket`].
    pub fn websocket_with<H: WsHandler>(&self, handler: H) -> Response {
        self.upgrade(Box::new(session::Callbacks::new(handler)))
    }

    fn upgrade(&self, session: Box<dyn crate::http::websocket::Session>) -> Response {
        let offer = Offer {
            method: self.method(),
            version: self.version(),
            has_body: !self.body().is_empty(),
            headers: self.headers(),
        };
        match accept(offer) {
            Ok(accept) => {
                let mut response = Response::new(Status::SWITCHING_PROTOCOLS);
                response.upgrade = Some(Box::new(Upgrade { accept, session }));
                response
            }
            Err(refusal) => refuse(refusal),
        }
    }
}

fn refuse(refusal: UpgradeError) -> Response {
    let mut response = Response::text(format!("{refusal}\n")).with_status(refusal.status());
    match refusal {
        UpgradeError::Version => {
            response =
                response.with_header("Sec-WebSocket-Version", crate::http::websocket::VERSION);
        }
        UpgradeError::NotUpgrade => response.offers_websocket = true,
        _ => {}
    }
    response
}
