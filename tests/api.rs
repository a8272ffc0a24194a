//! The library API as a user's crate meets it, over real sockets: shared state, the client's
//! address, body extractors, nested routers, refused response headers.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{TestServer, test_config};
use corral::{HttpError, Json, Request, Response, Router};

#[derive(Default)]
struct Counter {
    hits: AtomicU64,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Greeting {
    name: String,
}

fn count(req: &Request) -> String {
    let counter = req.state::<Counter>();
    (counter.hits.fetch_add(1, Ordering::Relaxed) + 1).to_string()
}

fn greet(req: &Request) -> Result<Json<Greeting>, HttpError> {
    let greeting: Greeting = req.json()?;
    Ok(Json(Greeting {
        name: format!("hello {}", greeting.name),
    }))
}

fn post(srv: &TestServer, path: &str, content_type: &str, body: &str) -> common::Reply {
    let mut c = srv.client();
    c.send(
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    c.reply()
}

fn app() -> Router {
    let api = Router::new()
        .get("/count", count)
        .post("/greet", greet)
        .get("/whoami", |req: &Request| {
            req.remote_addr()
                .map_or("unknown".into(), |a| a.ip().to_string())
        });
    Router::with_state(Counter::default())
        .nest("/api", api)
        .get("/framing", |_: &Request| {
            Response::text("x").with_header("Content-Length", "99")
        })
}

#[test]
fn handlers_share_the_routers_state_without_cloning_it_in() {
    let srv = TestServer::start(test_config(), app());
    let mut c = srv.client();
    assert_eq!(c.get("/api/count").text(), "1");
    assert_eq!(c.get("/api/count").text(), "2");
    assert_eq!(srv.client().get("/api/count").text(), "3");
}

#[test]
fn the_client_address_is_the_peer_of_the_connection() {
    let srv = TestServer::start(test_config(), app());
    assert_eq!(srv.client().get("/api/whoami").text(), "127.0.0.1");
}

#[test]
fn json_bodies_are_decoded_and_refused_with_400_or_415() {
    let srv = TestServer::start(test_config(), app());
    let ok = post(&srv, "/api/greet", "application/json", r#"{"name":"ann"}"#);
    assert_eq!((ok.status, ok.text()), (200, r#"{"name":"hello ann"}"#));
    assert_eq!(
        post(&srv, "/api/greet", "application/json", "{nope").status,
        400
    );
    assert_eq!(
        post(&srv, "/api/greet", "text/plain", r#"{"name":"ann"}"#).status,
        415
    );
}

#[test]
fn a_nested_router_answers_under_its_prefix_only() {
    let srv = TestServer::start(test_config(), app());
    assert_eq!(srv.client().get("/count").status, 404);
    assert_eq!(srv.client().get("/api/count").status, 200);
}

#[test]
fn a_framing_header_set_by_a_handler_is_a_500_not_a_broken_message() {
    let srv = TestServer::start(test_config(), app());
    let reply = srv.client().get("/framing");
    assert_eq!(reply.status, 500);
    assert_eq!(srv.server().stats().panics(), 1);
}
