//! The server the loop targets talk to: a router of a few routes that cover each way an
//! answer is framed (length, chunked stream, none; a panic's 500 that closes), on the state
//! `corral::__bench::Connections` keeps for one scheduler with the default config.

use std::cell::OnceCell;

use corral::__bench::{Connections, Transcript};
use corral::{Request, Response, Router, Status};

/// What `GET /stream` sends, in two writes (chunked on HTTP/1.1, to the close on 1.0).
pub const STREAM_PARTS: [&[u8]; 2] = [b"first part,", b" second part"];

/// The routes: `/hi` (a fixed body), `/echo` (the request body back), `/stream`, `/empty`
/// (204), `/panic` (the handler panics: 500 and close).
pub fn router() -> Router {
    Router::new()
        .get("/hi", |_: &Request| "hi")
        .post("/echo", |req: &Request| req.body().to_vec())
        .put("/echo", |req: &Request| req.body().to_vec())
        .get("/stream", |_: &Request| {
            Response::stream("text/plain", |out| {
                for part in STREAM_PARTS {
                    out.write_all(part)?;
                }
                Ok(())
            })
        })
        .get("/empty", |_: &Request| Status::NO_CONTENT)
        .get("/panic", |_: &Request| -> &'static str {
            panic!("{ROUTE_PANIC}")
        })
}

thread_local! {
    /// Built on first use, in the process AFL++ forked (no thread must exist before its fork
    /// server starts), and kept for every input after: the state of one long-lived server.
    static CONNECTIONS: OnceCell<Connections> = const { OnceCell::new() };
}

/// Serves one connection whose client sends `pieces`, one read each, then closes.
pub fn serve(pieces: &[&[u8]]) -> Transcript {
    CONNECTIONS.with(|cell| {
        let connections = cell.get_or_init(|| {
            quiet_route_panics();
            Connections::new(router()).expect("the server state for one scheduler builds")
        });
        connections.transcript(pieces)
    })
}

/// The message of `/panic`'s panic.
const ROUTE_PANIC: &str = "on purpose (fuzz route)";

/// `/panic` panics on purpose: the hook's report for every such input would drown what
/// matters. Every other panic (a check failing, a panic in the loop) is reported as before.
fn quiet_route_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str);
        if message != Some(ROUTE_PANIC) {
            previous(info);
        }
    }));
}
