//! The two shapes of WebSocket as the connection runs them (`http::websocket::Session`):
//! a blocking closure that owns the coroutine until it returns, and a callback handler that
//! gives its coroutine up whenever it has nothing to do.

use std::any::Any;
use std::sync::Arc;

use super::codec::{Codec, Got};
use super::inbox::Inbox;
use super::{WebSocket, WsClosed, WsHandler, mailbox};
use crate::http::websocket::{Ran, Session, Socket, Wakeup};

/// A closure served once, start to end, on the connection's coroutine.
pub(super) struct Blocking<M, F> {
    serve: Option<F>,
    inbox: Arc<Inbox<M>>,
}

impl<M, F> Blocking<M, F> {
    pub(super) fn new(serve: F) -> Self {
        Blocking {
            serve: Some(serve),
            inbox: Arc::new(Inbox::new()),
        }
    }
}

impl<M, F> Session for Blocking<M, F>
where
    M: Send + 'static,
    F: FnOnce(&mut WebSocket<'_, M>) + Send + 'static,
{
    fn run(&mut self, socket: &mut dyn Socket, process: Option<&dyn Any>) -> Ran {
        let Some(serve) = self.serve.take() else {
            return Ran::Closed;
        };
        self.inbox.wake_with(socket.wakeup());
        let mut codec = Codec::new(socket.max_message_bytes());
        let mut ws = WebSocket {
            socket,
            codec: &mut codec,
            inbox: &self.inbox,
            process: mailbox(process),
            closed: None,
        };
        // Closes the inbox however `serve` ends, a panic included.
        let _ends = Ends(&self.inbox);
        serve(&mut ws);
        // Returning is a normal close; a close the closure made stands.
        ws.close(1000, "");
        Ran::Closed
    }

    fn sleep(&mut self, _ring: Wakeup) -> bool {
        false
    }

    fn has_mail(&self) -> bool {
        self.inbox.has_mail()
    }

    fn gone(self: Box<Self>) {
        self.inbox.close();
    }
}

impl<M, F> Drop for Blocking<M, F> {
    fn drop(&mut self) {
        self.inbox.close();
    }
}

/// Closes an inbox when dropped: no message is queued for a WebSocket that has ended.
struct Ends<'a, M>(&'a Inbox<M>);

impl<M> Drop for Ends<'_, M> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A [`WsHandler`], called per event; between events only this value is kept.
pub(super) struct Callbacks<H: WsHandler> {
    handler: H,
    inbox: Arc<Inbox<H::Info>>,
    /// `None` while hibernated: a clean codec is dropped and made anew on waking.
    codec: Option<Codec>,
    opened: bool,
}

impl<H: WsHandler> Callbacks<H> {
    pub(super) fn new(handler: H) -> Self {
        Callbacks {
            handler,
            inbox: Arc::new(Inbox::new()),
            codec: None,
            opened: false,
        }
    }
}

impl<H: WsHandler> Session for Callbacks<H> {
    fn run(&mut self, socket: &mut dyn Socket, process: Option<&dyn Any>) -> Ran {
        self.inbox.wake_with(socket.wakeup());
        let hibernates = socket.hibernates();
        let max = socket.max_message_bytes();
        let codec = self.codec.get_or_insert_with(|| Codec::new(max));
        let handler = &mut self.handler;
        let mut ws = WebSocket {
            socket,
            codec,
            inbox: &self.inbox,
            process: mailbox(process),
            closed: None,
        };
        let mut ends = EndsUnlessIdle {
            inbox: &self.inbox,
            idle: false,
        };
        if !std::mem::replace(&mut self.opened, true) {
            handler.open(&mut ws);
        }
        let closed = loop {
            if let Some(closed) = ws.closed.take() {
                break closed;
            }
            if let Some(info) = ws.next_info() {
                handler.info(&mut ws, info);
                continue;
            }
            if ws.closed.is_some() {
                continue;
            }
            if ws.socket.draining() {
                ws.close(1001, "server shutting down");
                continue;
            }
            match ws.codec.read(ws.socket) {
                Got::Message(message) => handler.message(&mut ws, message),
                Got::Closed(closed) => ws.closed = Some(closed),
                Got::Idle if ws.inbox.has_mail() => {}
                Got::Idle if hibernates && ws.codec.is_clean() => {
                    ends.idle = true;
                    drop(ws);
                    self.codec = None;
                    return Ran::Idle;
                }
                Got::Idle => ws.wait(),
            }
        };
        handler.closed(&closed);
        Ran::Closed
    }

    fn sleep(&mut self, ring: Wakeup) -> bool {
        self.inbox.sleep_on(ring)
    }

    fn has_mail(&self) -> bool {
        self.inbox.has_mail()
    }

    fn gone(mut self: Box<Self>) {
        self.inbox.close();
        self.handler.closed(&WsClosed::ABNORMAL);
    }
}

/// However the session ends (a ward that died drops it without `gone`), senders learn it.
impl<H: WsHandler> Drop for Callbacks<H> {
    fn drop(&mut self) {
        self.inbox.close();
    }
}

/// Closes the inbox when a run ends other than by going idle (closed, or a panic).
struct EndsUnlessIdle<'a, M> {
    inbox: &'a Inbox<M>,
    idle: bool,
}

impl<M> Drop for EndsUnlessIdle<'_, M> {
    fn drop(&mut self) {
        if !self.idle {
            self.inbox.close();
        }
    }
}
