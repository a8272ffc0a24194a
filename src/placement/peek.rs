//! A look at a new connection's first request line before placing it.
//!
//! Pauley places a connection knowing nothing of its first request, so it counts at the
//! mix's mean cost until its scheduler reads it — and a scheduler busy in a handler reads
//! nothing. A client usually sends its request right after the handshake, so by the time
//! the acceptor runs the bytes are often already queued on the socket: a non-blocking
//! `MSG_PEEK` (the bytes stay for the connection to read) tells the route, so a costly
//! first request counts its own cost on its scheduler from the moment it is placed, and the
//! next accepts steer around it. No bytes yet, or a line longer than the peek: unknown, as
//! before. The acceptor never waits for bytes. A ward placing a connection that woke with a
//! request (`wake.rs`) peeks at it the same way: the input that woke it is there.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::router::{Found, Params, RouteId, Router};

/// Bytes peeked: enough for the method and path of ordinary request lines.
const PEEK_BYTES: usize = 256;

/// The route (`Some(None)`: none matched) of the request line already waiting on `socket`,
/// or `None` if it is not all there yet.
pub fn first_route(socket: BorrowedFd<'_>, router: &Router) -> Option<Option<RouteId>> {
    let mut buf = [0u8; PEEK_BYTES];
    // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which outlives the call.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let filled = buf.get(..usize::try_from(n).ok()?)?;
    let (method, path) = method_and_path(filled)?;
    let mut params = Params::new();
    Some(match router.find(method, path, &mut params) {
        Found::Route { id, .. } => Some(id),
        _ => None,
    })
}

/// Method and path (query dropped) of a request line, if its target is complete.
fn method_and_path(bytes: &[u8]) -> Option<(&str, &str)> {
    let space = bytes.iter().position(|&b| b == b' ')?;
    let (method, rest) = (&bytes[..space], &bytes[space + 1..]);
    let end = rest.iter().position(|&b| b == b' ')?;
    let target = std::str::from_utf8(&rest[..end]).ok()?;
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Some((std::str::from_utf8(method).ok()?, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_target_gives_method_and_path() {
        let line = b"GET /cpu?us=2000 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(method_and_path(line), Some(("GET", "/cpu")));
        assert_eq!(
            method_and_path(b"POST /a/b HTTP/1.1"),
            Some(("POST", "/a/b"))
        );
    }

    /// A loopback pair: what the client writes is queued on the server side when the write
    /// returns, as when the acceptor runs after the client's first send.
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn the_waiting_request_line_gives_the_route_and_stays_readable() {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let router = Router::new()
            .get("/plaintext", |_: &crate::Request| "hi")
            .get("/cpu", |_: &crate::Request| "ok");
        let (mut client, mut server) = pair();
        assert_eq!(
            first_route(server.as_fd(), &router),
            None,
            "nothing sent yet"
        );
        let line = b"GET /cpu?us=2000 HTTP/1.1\r\nHost: x\r\n\r\n";
        client.write_all(line).expect("send");
        let seen = first_route(server.as_fd(), &router).expect("the line is all there");
        let id = seen.expect("a route matched");
        assert_eq!(router.routes().pattern(id), "/cpu");
        let mut read = vec![0u8; line.len()];
        server
            .read_exact(&mut read)
            .expect("the bytes are still there");
        assert_eq!(read, line);
        client
            .write_all(b"GET /nope HTTP/1.1\r\n\r\n")
            .expect("send");
        assert_eq!(
            first_route(server.as_fd(), &router),
            Some(None),
            "no route matched"
        );
    }

    #[test]
    fn a_cut_line_gives_nothing() {
        assert_eq!(method_and_path(b""), None);
        assert_eq!(method_and_path(b"GET"), None);
        assert_eq!(method_and_path(b"GET /cpu?us=20"), None);
    }
}
