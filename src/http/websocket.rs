//! The WebSocket opening handshake (RFC 6455 §4.2), pure: which requests may switch, the
//! `Sec-WebSocket-Accept` answer, the `101` head; and the frame-header arithmetic the
//! connection uses to hand the codec whole frames only (`frame_extent`). No socket here: the
//! connection layer (`conn/upgrade.rs`) sends the head and hands the socket over.

use std::io;
use std::time::Duration;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::parse::Version;
use super::status::Status;

/// The one version RFC 6455 defines, and the only one a client may ask for today.
pub const VERSION: &str = "13";
/// Appended to the client's key before hashing (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a request cannot switch to WebSocket; each is answered with its status and a reason
/// that names what is missing, never echoing the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// RFC 6455 §4.1: the handshake is a GET.
    #[error("a WebSocket handshake is a GET request")]
    NotGet,
    /// RFC 6455 §4.1: HTTP/1.1 or later.
    #[error("a WebSocket handshake needs HTTP/1.1")]
    OldVersion,
    /// No `Upgrade: websocket`, or no `upgrade` token in `Connection`: a plain request to a
    /// WebSocket endpoint (426, with `Upgrade: websocket`, RFC 9110 §15.5.22).
    #[error("this resource is a WebSocket: send Upgrade: websocket and Connection: Upgrade")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` other than 13 (426, with `Sec-WebSocket-Version: 13`, §4.4).
    #[error("unsupported Sec-WebSocket-Version: this server speaks 13")]
    Version,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in base64 (§4.2.1).
    #[error("Sec-WebSocket-Key must be 16 random bytes in base64")]
    Key,
    /// A handshake carries no body.
    #[error("a WebSocket handshake has no body")]
    Body,
}

impl UpgradeError {
    /// The status the refusal is answered with.
    pub fn status(self) -> Status {
        match self {
            UpgradeError::NotUpgrade | UpgradeError::Version => Status::UPGRADE_REQUIRED,
            _ => Status::BAD_REQUEST,
        }
    }
}

/// What a handshake request says, as the checks need it (the header values raw).
pub(crate) struct Offer<'a, I> {
    pub method: &'a str,
    pub version: Version,
    pub has_body: bool,
    /// Every header field, in order: (name, value).
    pub headers: I,
}

/// Checks a handshake request (RFC 6455 §4.2.1); returns `Sec-WebSocket-Accept`'s value.
pub(crate) fn accept<'a, I>(offer: Offer<'a, I>) -> Result<String, UpgradeError>
where
    I: Iterator<Item = (&'a str, &'a [u8])>,
{
    let (mut upgrade, mut connection, mut version) = (false, false, None);
    let mut key: Option<&[u8]> = None;
    let mut keys = 0;
    for (name, value) in offer.headers {
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value);
            keys += 1;
        }
    }
    if offer.method != "GET" {
        return Err(UpgradeError::NotGet);
    }
    if offer.version != Version::Http11 {
        return Err(UpgradeError::OldVersion);
    }
    if !(upgrade && connection) {
        return Err(UpgradeError::NotUpgrade);
    }
    if version.map(<[u8]>::trim_ascii) != Some(VERSION.as_bytes()) {
        return Err(UpgradeError::Version);
    }
    let key = match key.map(<[u8]>::trim_ascii) {
        Some(key) if keys == 1 && is_nonce(key) => key,
        _ => return Err(UpgradeError::Key),
    };
    if offer.has_body {
        return Err(UpgradeError::Body);
    }
    Ok(accept_key(key))
}

/// `Sec-WebSocket-Accept` for a client's key: base64(SHA-1(key ++ GUID)) (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A key is 16 bytes, base64-encoded: 24 characters that decode to 16 bytes.
fn is_nonce(key: &[u8]) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|bytes| bytes.len() == 16)
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// The `101 Switching Protocols` head that completes the handshake.
pub(crate) fn encode_switch(out: &mut Vec<u8>, accept: &str) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nServer: corral\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// A server's close frame (unmasked), for a ward that closes a hibernated WebSocket itself.
/// `reason` is ours and short (a control frame's payload is at most 125 bytes).
pub(crate) fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut frame = vec![0x88, 2 + reason.len() as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason);
    frame
}

/// What a WebSocket session needs of its connection. `conn` implements it over the socket;
/// the session (the `websocket` module) drives the codec through it.
pub(crate) trait Socket {
    /// Reads without waiting: `WouldBlock` when nothing is there; `Ok(0)` at the peer's FIN.
    /// Bytes the client sent behind its handshake come first.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Reads, waiting up to `timeout` (for a close handshake's answer).
    fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Writes all of `buf`, waiting for room up to the write timeout.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Sends FIN (after a failing close frame: the server closes the TCP connection first,
    /// RFC 6455 §7.1.1), reading goes on.
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Parks the coroutine until input may be there or a [`Wakeup`] fires (spurious returns
    /// are allowed: the caller looks again).
    fn wait(&mut self);
    /// What wakes `wait` from another thread.
    fn wakeup(&self) -> Wakeup;
    /// Whether the session may give its coroutine up while it has nothing to do.
    fn hibernates(&self) -> bool;
    /// `limits.max_websocket_message_bytes`, as at the upgrade.
    fn max_message_bytes(&self) -> usize;
    /// Has the server begun its graceful shutdown?
    fn draining(&self) -> bool;
}

/// Wakes a session parked in [`Socket::wait`]; callable from any thread, never blocking.
pub(crate) type Wakeup = std::sync::Arc<dyn Fn() + Send + Sync>;

/// How a session's run on its coroutine ended.
pub(crate) enum Ran {
    /// The WebSocket is closed (handshake done, or the peer gone): close the socket.
    Closed,
    /// Nothing to do, nothing half-read: the session can sleep without its coroutine.
    Idle,
}

/// A WebSocket after its handshake, type-erased for the connection: runs on a coroutine,
/// sleeps in a ward between events (`conn/upgrade.rs`, `conn/hibernate/`).
pub(crate) trait Session: Send {
    /// Serves events until the WebSocket closes, or (only if `socket.hibernates()`) until
    /// it has nothing to do. `process`: the connection's process, if a handler made one
    /// (opaque here: the session downcasts it to its mailbox's type).
    fn run(&mut self, socket: &mut dyn Socket, process: Option<&dyn std::any::Any>) -> Ran;
    /// About to hibernate: from now on a message calls `ring` (its ward's) instead of
    /// waking a coroutine. `false`: a message is already there, serve on instead.
    fn sleep(&mut self, ring: Wakeup) -> bool;
    /// Whether a message waits (a ward checks when its seat rings).
    fn has_mail(&self) -> bool;
    /// The socket is gone while the session slept (hang-up, server stop): last words.
    fn gone(self: Box<Self>);
}

/// A response that switches the connection to WebSocket: the handshake's answer and the
/// session that then owns the socket.
pub(crate) struct Upgrade {
    pub accept: String,
    pub session: Box<dyn Session>,
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upgrade(websocket)")
    }
}

/// The first frame in `buf`, as far as its header tells (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameExtent {
    /// Header and payload, bytes.
    pub len: u64,
    /// FIN: the last frame of its message.
    pub fin: bool,
    /// A control frame (close, ping, pong): never part of a data message's fragments.
    pub control: bool,
}

/// The extent of the frame at the start of `buf`, once its header is complete (`None`: more
/// bytes needed). The payload itself need not be there.
pub(crate) fn frame_extent(buf: &[u8]) -> Option<FrameExtent> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let masked = b1 & 0x80 != 0;
    let (payload, ext) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            2,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 8)
        }
        n => (u64::from(n), 0),
    };
    let header = 2 + ext + if masked { 4 } else { 0 };
    Some(FrameExtent {
        len: header + payload,
        fin: b0 & 0x80 != 0,
        control: b0 & 0x08 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn check(
        method: &str,
        version: Version,
        headers: &[(&str, &str)],
    ) -> Result<String, UpgradeError> {
        accept(Offer {
            method,
            version,
            has_body: false,
            headers: headers.iter().map(|(n, v)| (*n, v.as_bytes())),
        })
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Host", "x"),
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", KEY),
        ]
    }

    #[test]
    fn the_rfc_example_key_is_accepted_with_its_answer() {
        assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            check("GET", Version::Http11, &good()).as_deref(),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }

    #[test]
    fn each_missing_piece_is_refused_with_its_status() {
        let without = |name: &str| {
            let headers: Vec<_> = good().into_iter().filter(|(n, _)| *n != name).collect();
            check("GET", Version::Http11, &headers)
        };
        assert_eq!(without("Upgrade"), Err(UpgradeError::NotUpgrade));
        assert_eq!(without("Connection"), Err(UpgradeError::NotUpgrade));
        assert_eq!(without("Sec-WebSocket-Version"), Err(UpgradeError::Version));
        assert_eq!(without("Sec-WebSocket-Key"), Err(UpgradeError::Key));
        assert_eq!(
            check("POST", Version::Http11, &good()),
            Err(UpgradeError::NotGet)
        );
        assert_eq!(
            check("GET", Version::Http10, &good()),
            Err(UpgradeError::OldVersion)
        );
        assert_eq!(UpgradeError::NotUpgrade.status(), Status::UPGRADE_REQUIRED);
        assert_eq!(UpgradeError::Key.status(), Status::BAD_REQUEST);
    }

    #[test]
    fn bad_keys_and_versions_are_refused() {
        for key in [
            "",
            "short",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZXh4eA==",
        ] {
            let mut headers = good();
            headers[4].1 = key;
            assert_eq!(
                check("GET", Version::Http11, &headers),
                Err(UpgradeError::Key),
                "{key:?}"
            );
        }
        let mut twice = good();
        twice.push(("Sec-WebSocket-Key", KEY));
        assert_eq!(
            check("GET", Version::Http11, &twice),
            Err(UpgradeError::Key)
        );
        for version in ["8", "12", "13, 8", ""] {
            let mut headers = good();
            headers[3].1 = version;
            assert_eq!(
                check("GET", Version::Http11, &headers),
                Err(UpgradeError::Version)
            );
        }
    }

    #[test]
    fn frame_extents_follow_the_length_encodings() {
        assert_eq!(frame_extent(&[0x81]), None);
        let small = frame_extent(&[0x81, 0x85]).expect("complete header");
        assert_eq!(
            small,
            FrameExtent {
                len: 2 + 4 + 5,
                fin: true,
                control: false
            }
        );
        let mid = frame_extent(&[0x01, 0xfe, 0x01, 0x00]).expect("16-bit length");
        assert_eq!(
            mid,
            FrameExtent {
                len: 4 + 4 + 256,
                fin: false,
                control: false
            }
        );
        assert_eq!(frame_extent(&[0x82, 0xff, 0, 0, 0]), None);
        let big = frame_extent(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]).expect("64-bit length");
        assert_eq!(big.len, 10 + 65536);
        assert!(frame_extent(&[0x89, 0x80]).expect("ping").control);
    }
}
