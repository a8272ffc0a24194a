//! Refusing what the server has no room for, with `503 Service Unavailable` and
//! `Retry-After`: a connection past `limits.max_connections` (here, for the acceptor).
//!
//! **Why answer rather than leave it in the backlog.** A connection left in the listen
//! backlog gets no answer: its client waits for its own timeout, and once the backlog is
//! full the kernel drops SYNs, which clients retry after 1 s, 3 s, 7 s… Nothing tells them
//! the server is overloaded, and each waiting connection still holds kernel memory. A 503 with
//! `Retry-After` says so at once and frees the socket. It costs one accept and four syscalls
//! in an acceptor, and one free descriptor, which the automatic limit keeps in reserve
//! (`runtime::fd::ConnectionLimit`).
//!
//! **Why not a lingering close.** The acceptor must never wait, so the refusal is sent
//! without reading the request: first the bytes already received are discarded (closing with
//! unread input would reset the connection at once), then the answer and a FIN go out, then
//! the socket closes. A request that arrives after that draws a reset, but the answer is
//! already in the client's receive queue, and Linux hands queued data to the reader before the
//! reset's error.

use std::net::TcpStream;

use rustix::net::{RecvFlags, SendFlags, Shutdown, recv, send, shutdown};

/// The whole refusal, fixed: no `Date` (RFC 9110 §6.6.1 makes it optional on 5xx), so the
/// acceptor formats and allocates nothing. `Retry-After: 1` is the shortest the header can
/// say; overload on this scale comes and goes in well under a second.
pub(crate) const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Server: corral\r\n\
Retry-After: 1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 19\r\n\
Connection: close\r\n\
\r\n\
Service Unavailable";

/// Reads of already-received input discarded before refusing (4 KiB each): a request head
/// and then some. Bounded, so a client streaming at us cannot hold the acceptor.
const DISCARD_READS: usize = 16;

/// Answers 503 and closes, never waiting (module doc).
pub(crate) fn refuse_connection(socket: TcpStream) {
    let mut sink = [0u8; 4096];
    for _ in 0..DISCARD_READS {
        match recv(&socket, &mut sink, RecvFlags::DONTWAIT) {
            Ok((n, _)) if n > 0 => continue,
            _ => break,
        }
    }
    // 167 bytes into an empty send buffer: all of it goes, or the peer is gone.
    if let Err(err) = send(&socket, REFUSAL, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
        log::debug!("could not send a 503 to a refused connection: {err}");
    }
    let _ = shutdown(&socket, Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_framed_503_with_retry_after() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(REFUSAL) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!("not a complete head: {other:?}"),
        };
        assert_eq!(response.code, Some(503));
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        assert_eq!(header("retry-after"), Some(&b"1"[..]));
        assert_eq!(header("connection"), Some(&b"close"[..]));
        let body = &REFUSAL[head..];
        assert_eq!(
            header("content-length"),
            Some(body.len().to_string().as_bytes())
        );
        assert_eq!(body, b"Service Unavailable");
    }
}
