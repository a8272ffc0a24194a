//! tungstenite's frame codec over a [`Socket`], and the glue around it.
//!
//! tungstenite decodes frames, unmasks and checks them (an unmasked client frame, reserved
//! bits, a fragmented or oversized control frame are protocol errors), enforces the message
//! size, answers pings and the peer's close. What Corral adds:
//!
//! - it hands the codec **whole frames only** (`Frames`): the bytes of a frame wait in a
//!   buffer of ours until its last byte is there, so when the codec asks for more and none
//!   is there, nothing is half-decoded inside it. Then, if no fragmented message is in
//!   progress either, the session is *clean* and can drop the codec and hibernate with no
//!   buffer at all. A frame longer than the limit goes to the codec as it comes, so that the
//!   codec refuses it from its header, before its payload is buffered;
//! - the error → close code table (1002, 1007, 1009, 1011), and the close handshake's ends:
//!   after a protocol error the server sends its close and its FIN, then drains what the
//!   client still sends until its FIN, bounded, before the socket closes (a close with unread input would reset the
//!   connection and could destroy the close frame: `conn/write.rs`, lingering close).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tungstenite::error::{Error, ProtocolError};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};

use super::{WsClosed, WsMessage};
use crate::http::websocket::{Socket, frame_extent};

/// How long a closing WebSocket waits for the client's close frame (or its FIN).
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// After a protocol error, at most this much of what the client still sends is discarded.
const DRAIN_BYTES: usize = 1 << 20;
/// The socket is read this much at a time.
const READ_CHUNK: usize = 4096;
/// The codec's own read buffer: it only ever holds the frame being decoded, which our
/// buffer hands it whole, so it needs no room for more.
const CODEC_READ_BUFFER: usize = 512;

/// What one read brought.
pub(crate) enum Got {
    Message(WsMessage),
    /// Nothing complete is there; the socket has nothing more now.
    Idle,
    Closed(WsClosed),
}

/// A session's codec: tungstenite's context and our whole-frame buffer.
pub(crate) struct Codec {
    ctx: WebSocketContext,
    frames: Frames,
    /// The close frame the client sent, once it did.
    peer_close: Option<WsClosed>,
}

impl Codec {
    pub(crate) fn new(max_message_bytes: usize) -> Codec {
        let config = WebSocketConfig::default()
            .read_buffer_size(CODEC_READ_BUFFER)
            // Every message goes out at once: nothing waits in the codec between events.
            .write_buffer_size(0)
            .max_message_size(Some(max_message_bytes))
            .max_frame_size(Some(max_message_bytes))
            .accept_unmasked_frames(false);
        Codec {
            ctx: WebSocketContext::new(Role::Server, Some(config)),
            frames: Frames {
                bytes: Vec::new(),
                handing: 0,
                mid_message: false,
                limit: max_message_bytes as u64 + MAX_HEADER,
                wait: None,
            },
            peer_close: None,
        }
    }

    /// Nothing is half-read: no partial frame buffered, no fragmented message in progress.
    /// A clean codec can be dropped and made anew without losing a byte.
    pub(crate) fn is_clean(&self) -> bool {
        self.frames.bytes.is_empty() && self.frames.handing == 0 && !self.frames.mid_message
    }

    /// The next data message, without waiting for the socket.
    pub(crate) fn read(&mut self, socket: &mut dyn Socket) -> Got {
        loop {
            let mut wire = Wire {
                socket,
                frames: &mut self.frames,
            };
            match self.ctx.read(&mut wire) {
                Ok(tungstenite::Message::Text(text)) => {
                    return Got::Message(WsMessage::Text(text.as_str().to_owned()));
                }
                Ok(tungstenite::Message::Binary(bytes)) => {
                    return Got::Message(WsMessage::Binary(bytes.to_vec()));
                }
                // Pings are answered by the codec (on its next read or write); pongs and raw
                // frames need nothing.
                Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_)) => {}
                Ok(tungstenite::Message::Frame(_)) => {}
                // Its reply is queued; the next read sends it and ends the connection.
                Ok(tungstenite::Message::Close(frame)) => {
                    self.peer_close = Some(closed_from(frame));
                }
                Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
                    return Got::Idle;
                }
                Err(err) => return Got::Closed(self.on_error(socket, err)),
            }
        }
    }

    /// Sends one message now.
    pub(crate) fn send(&mut self, socket: &mut dyn Socket, message: WsMessage) -> Result<(), ()> {
        let message = match message {
            WsMessage::Text(text) => tungstenite::Message::text(text),
            WsMessage::Binary(bytes) => tungstenite::Message::binary(bytes),
        };
        self.write(socket, message)
    }

    /// Sends a ping; its pong is taken in by `read`.
    pub(crate) fn ping(&mut self, socket: &mut dyn Socket, payload: Vec<u8>) -> Result<(), ()> {
        self.write(socket, tungstenite::Message::Ping(payload.into()))
    }

    fn write(&mut self, socket: &mut dyn Socket, message: tungstenite::Message) -> Result<(), ()> {
        let mut wire = Wire {
            socket,
            frames: &mut self.frames,
        };
        self.ctx
            .write(&mut wire, message)
            .and_then(|()| self.ctx.flush(&mut wire))
            .map_err(|err| log::debug!("websocket write: {err}"))
    }

    /// The server's close handshake: sends `code`, then reads (bounded by `CLOSE_WAIT`,
    /// discarding data) until the client's close frame or its FIN.
    pub(crate) fn close(&mut self, socket: &mut dyn Socket, code: u16, reason: &str) -> WsClosed {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        self.frames.wait = Some(Instant::now() + CLOSE_WAIT);
        let mut wire = Wire {
            socket,
            frames: &mut self.frames,
        };
        if let Err(err) = self.ctx.close(&mut wire, Some(frame)) {
            log::debug!("websocket close: {err}");
        }
        loop {
            let mut wire = Wire {
                socket,
                frames: &mut self.frames,
            };
            match self.ctx.read(&mut wire) {
                Ok(_) => {}
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => break,
                Err(err) => {
                    log::debug!("websocket close handshake: {err}");
                    break;
                }
            }
        }
        WsClosed {
            code,
            reason: reason.to_owned(),
        }
    }

    /// What ended the WebSocket, and the close frame it is owed (RFC 6455 §7.4.1).
    fn on_error(&mut self, socket: &mut dyn Socket, err: Error) -> WsClosed {
        let (code, reason) = match err {
            Error::ConnectionClosed | Error::AlreadyClosed => {
                return self.peer_close.take().unwrap_or(WsClosed::NO_STATUS);
            }
            // The client closed (or reset) without a close frame: nothing to answer.
            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) | Error::Io(_) => {
                return WsClosed::ABNORMAL;
            }
            Error::Capacity(_) => (1009, "message too big"),
            Error::Utf8(_) => (1007, "text is not UTF-8"),
            Error::Protocol(ProtocolError::UnmaskedFrameFromClient) => {
                (1002, "client frames must be masked")
            }
            Error::Protocol(_) => (1002, "protocol error"),
            _ => (1011, "internal error"),
        };
        log::debug!("websocket failed ({code}): {err}");
        self.fail(socket, code, reason)
    }

    /// _Fail the WebSocket Connection_ (RFC 6455 §7.1.7): our close frame and FIN (the
    /// server closes first, §7.1.1), then drain until the client's FIN.
    fn fail(&mut self, socket: &mut dyn Socket, code: u16, reason: &str) -> WsClosed {
        let mut frame = crate::http::websocket::close_frame(code, reason);
        if socket.write_all(&frame).is_ok() && socket.shutdown_write().is_ok() {
            // The codec may be mid-frame: read past it raw, not through it.
            let deadline = Instant::now() + CLOSE_WAIT;
            let mut drained = 0;
            frame.resize(READ_CHUNK, 0);
            while drained < DRAIN_BYTES {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match socket.read_timeout(&mut frame, left) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        }
        WsClosed {
            code,
            reason: reason.to_owned(),
        }
    }
}

fn closed_from(frame: Option<CloseFrame>) -> WsClosed {
    match frame {
        Some(frame) => WsClosed {
            code: frame.code.into(),
            reason: frame.reason.as_str().to_owned(),
        },
        None => WsClosed::NO_STATUS,
    }
}

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: u64 = 14;

/// Bytes read from the socket, handed to the codec a whole frame at a time.
struct Frames {
    bytes: Vec<u8>,
    /// Bytes of the current frame still to hand over (0: between frames).
    handing: u64,
    /// A data message's first fragment came, its last not yet.
    mid_message: bool,
    /// A frame longer than this is handed over as it comes (the codec refuses it).
    limit: u64,
    /// `Some`: closing, reads wait until then; `None`: reads never wait.
    wait: Option<Instant>,
}

/// The codec's stream: reads from `Frames`, writes straight to the socket.
struct Wire<'a> {
    socket: &'a mut dyn Socket,
    frames: &'a mut Frames,
}

impl Read for Wire<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let frames = &mut *self.frames;
        loop {
            if frames.handing == 0
                && let Some(frame) = frame_extent(&frames.bytes)
                && (frame.len <= frames.bytes.len() as u64 || frame.len > frames.limit)
            {
                frames.handing = frame.len;
                if !frame.control {
                    frames.mid_message = !frame.fin;
                }
            }
            if frames.handing > 0 && !frames.bytes.is_empty() {
                let n = (frames.handing.min(out.len() as u64) as usize).min(frames.bytes.len());
                out[..n].copy_from_slice(&frames.bytes[..n]);
                frames.bytes.drain(..n);
                frames.handing -= n as u64;
                return Ok(n);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let got = match frames.wait {
                None => self.socket.try_read(&mut chunk),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    self.socket.read_timeout(&mut chunk, left)
                }
            }?;
            if got == 0 {
                // The peer's FIN: a frame cut short is the codec's to report.
                if !frames.bytes.is_empty() {
                    frames.handing = frames.bytes.len() as u64;
                    continue;
                }
                return Ok(0);
            }
            frames.bytes.extend_from_slice(&chunk[..got]);
        }
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
