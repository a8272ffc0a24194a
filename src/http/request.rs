//! What a handler sees: a borrowed view of one parsed request.

use std::any::Any;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::str::FromStr;

use super::params::Params;
use super::parse::{Head, Version};
use super::response::HttpError;

/// One request, borrowed from the connection's buffers for the duration of the handler call.
pub struct Request<'a> {
    buf: &'a [u8],
    head: &'a Head,
    /// Borrowed, not moved in: a `Params` is an inline array (264 bytes), and a copy per
    /// request was a `memcpy` call (docs/architecture.md §3, "Per-request cost").
    params: &'a Params<'a>,
    body: &'a [u8],
    route: Option<&'a str>,
    scheduler: usize,
    state: Option<&'a (dyn Any + Send + Sync)>,
    origin: &'a dyn Origin,
}

/// What a request knows of the connection it came on. The connection layer implements it:
/// a trait object here keeps `http` free of sockets and of the server.
pub(crate) trait Origin {
    /// Non-blocking: has the client closed its side?
    fn peer_closed(&self) -> bool;
    fn remote_addr(&self) -> Option<SocketAddr>;
    /// Has the server begun its graceful shutdown?
    fn server_draining(&self) -> bool;
    /// The server's shared state, for the handlers the server itself provides (`/metrics`).
    fn server(&self) -> &(dyn Any + Send + Sync);
    /// The connection's process slot, opaque here (`conn::process`).
    fn process(&self) -> Option<&dyn Any>;
}

/// Where a request sits on the server side: its route, its scheduler, the application
/// state and the connection it came on.
pub(crate) struct Context<'a> {
    pub route: Option<&'a str>,
    pub scheduler: usize,
    pub state: Option<&'a (dyn Any + Send + Sync)>,
    pub origin: &'a dyn Origin,
}

impl<'a> Request<'a> {
    pub(crate) fn new(
        buf: &'a [u8],
        head: &'a Head,
        params: &'a Params<'a>,
        body: &'a [u8],
        context: Context<'a>,
    ) -> Self {
        Request {
            buf,
            head,
            params,
            body,
            route: context.route,
            scheduler: context.scheduler,
            state: context.state,
            origin: context.origin,
        }
    }

    /// Has the client closed its side (or reset) the connection? A non-blocking peek: for
    /// handlers that wait long (a long-poll) to notice a departed client and stop waiting.
    /// Bytes the client sent ahead (a pipelined request) do not count as closed.
    pub fn peer_closed(&self) -> bool {
        self.origin.peer_closed()
    }

    /// Whether the server has begun its graceful shutdown (SIGTERM, a SIGUSR2 handoff,
    /// [`Server::shutdown`](crate::Server::shutdown)): it answers this request with
    /// `Connection: close` and will stop accepting after `server.drain_delay_ms`. A health
    /// check route answers 503 then, so a load balancer stops sending new requests here
    /// before the server goes (the demo's `GET /healthz`, `deploy/haproxy.cfg`).
    pub fn server_draining(&self) -> bool {
        self.origin.server_draining()
    }

    /// The client's address (the peer of the TCP connection: a proxy's, behind one).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.origin.remote_addr()
    }

    /// The application state given with `Router::with_state`, if it is an `S`.
    pub fn try_state<S: Any>(&self) -> Option<&'a S> {
        self.state.and_then(|state| state.downcast_ref::<S>())
    }

    /// The application state given with `Router::with_state`.
    ///
    /// # Panics
    /// If the router has no state of type `S` (a programming error: the handler's request
    /// gets a 500, and the log names the route).
    pub fn state<S: Any>(&self) -> &'a S {
        match self.try_state::<S>() {
            Some(state) => state,
            None => panic!(
                "no application state of type {}: give it with Router::with_state",
                std::any::type_name::<S>()
            ),
        }
    }

    /// The connection's process slot, opaque: `conn::process` looks into it.
    pub(crate) fn connection_process(&self) -> Option<&'a dyn Any> {
        self.origin.process()
    }

    /// The server's shared state, opaque: only the server's own handlers look into it.
    pub(crate) fn server(&self) -> &'a (dyn Any + Send + Sync) {
        self.origin.server()
    }

    /// The method token exactly as sent (case-sensitive: `GET`, not `get`).
    pub fn method(&self) -> &'a str {
        self.head.method_str(self.buf)
    }

    /// The request target exactly as sent (path and query, or absolute-form).
    pub fn target(&self) -> &'a str {
        self.head.target.str(self.buf)
    }

    /// The path, not percent-decoded.
    pub fn path(&self) -> &'a str {
        self.head.path.str(self.buf)
    }

    /// The raw query string after `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query.map(|q| q.str(self.buf))
    }

    /// The request line's HTTP version, which sets the keep-alive default and body framing.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// Header fields in the order received: (name, raw value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.head
            .headers
            .iter()
            .map(|(n, v)| (n.str(self.buf), v.get(self.buf)))
    }

    /// The first field named `name` (case-insensitive), if its value is UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first field named `name` (case-insensitive), raw: for values that may not be UTF-8.
    pub fn header_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The decoded body (Content-Length or chunked), complete.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// A path parameter from the route pattern (`:id` → `param("id")`), not percent-decoded.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.get(name)
    }

    /// A path parameter parsed as `T`; missing or unparsable → 400.
    pub fn param_as<T: FromStr>(&self, name: &str) -> Result<T, HttpError> {
        self.param(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| HttpError::bad_request(format!("invalid path parameter `{name}`")))
    }

    /// A query parameter, percent-decoded (`+` as space, as in HTML forms).
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// A query parameter parsed as `T`; missing or unparsable → 400.
    pub fn query_as<T: FromStr>(&self, name: &str) -> Result<T, HttpError> {
        self.query_param(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| HttpError::bad_request(format!("missing or invalid query `{name}`")))
    }

    /// The route pattern that matched (`/users/:id`), if any.
    pub fn route(&self) -> Option<&'a str> {
        self.route
    }

    /// Index of the scheduler (may worker) this connection was placed on. It stays the same
    /// while the connection is awake; with `placement.at_wake`, a connection that hibernated
    /// may be placed on another one when its next request wakes it.
    pub fn scheduler(&self) -> usize {
        self.scheduler
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_pair) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let hi = (pair[0] as char).to_digit(16)?;
    let lo = (pair[1] as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%2"), "bad%2");
        assert_eq!(percent_decode("%e2%9c%93"), "✓");
    }
}
