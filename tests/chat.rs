//! The chat example's app, end to end over sockets: page, SSE stream, posting lines.

mod common;

use std::time::Duration;

use common::TestServer;

fn chat() -> TestServer {
    let router = common::app::chat::router(common::app::pubsub::Topics::new(
        Duration::from_secs(5),
        Duration::from_millis(200),
    ));
    TestServer::start(common::test_config(), router)
}

fn say(srv: &TestServer, line: &str) -> (u16, String) {
    let mut c = srv.client();
    c.send(
        format!(
            "POST /say HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{line}",
            line.len()
        )
        .as_bytes(),
    );
    let r = c.reply();
    (r.status, r.text().trim().to_string())
}

#[test]
fn the_page_loads_and_lines_reach_every_listener_in_order() {
    let srv = chat();
    let page = srv.client().get("/");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.text()
            .contains("new EventSource('/events?topic=chat')")
    );

    let mut alice = srv.client();
    let mut bob = srv.client();
    for listener in [&mut alice, &mut bob] {
        listener.send(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n");
        listener.read_until(b": subscribed");
    }
    assert_eq!(say(&srv, "alice: hi"), (200, "2".to_string()));
    assert_eq!(say(&srv, "bob: hello"), (200, "2".to_string()));
    for listener in [&mut alice, &mut bob] {
        let text = listener.read_until(b"data: bob: hello\n\n");
        assert!(
            text.find("data: alice: hi").expect("first")
                < text.find("data: bob: hello").expect("second")
        );
    }
    // A long-polling client gets the next line too.
    let addr = srv.addr;
    let poller = std::thread::spawn(move || common::Client::connect(addr).get("/poll"));
    common::eventually(Duration::from_secs(5), "the poller is subscribed", || {
        say(&srv, "carol: anyone?").1 == "3"
    });
    assert_eq!(poller.join().expect("poller").text(), "carol: anyone?");
}

#[test]
fn empty_or_multi_line_posts_are_refused() {
    let srv = chat();
    assert_eq!(say(&srv, "").0, 400);
    assert_eq!(say(&srv, "two\nlines").0, 400);
}
