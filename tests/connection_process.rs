//! Connections are processes: a handler's `req.process()` is its connection's pid and
//! mailbox, kept across requests and hibernation, linked and monitored with the `actors`
//! API, ended with the connection (a normal exit). Over real sockets.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{CLIENT_TIMEOUT, TestServer, eventually, test_config};
use corral::{Request, Response, Router, Status};
use corral_actors::{Ctx, Down, Exit, Pid, Spawn, monitor_with, whereis, whereis_pid};

/// Registers the connection under `:name`; answers its pid's number.
fn me(req: &Request) -> Response {
    let me = req.process::<u8>();
    let name = req.param("name").unwrap_or("me");
    if whereis_pid(name).as_ref() != Some(me.pid()) && me.register(name).is_err() {
        return Response::error(Status::CONFLICT);
    }
    Response::text(me.pid().id().to_string())
}

/// Spawns an actor registered as `:name`, links the connection to it, and waits for a
/// message in plain blocking code. The actor crashes at its first message.
fn linked_receive(req: &Request) -> Response {
    let me = req.process::<u8>();
    let actor = crasher(req.param("name").unwrap_or("crasher"));
    me.link(&actor);
    let got = me.receive();
    Response::text(format!("received {got}"))
}

/// The same, hibernated while it waits.
fn linked_hibernate(req: &Request) -> Response {
    let me = req.process::<u8>();
    let actor = crasher(req.param("name").unwrap_or("crasher"));
    me.link(&actor);
    me.hibernate(Duration::from_secs(30), |_| Response::text("woken"))
}

fn crasher(name: &str) -> Pid {
    let actor = Spawn::new().register(name).spawn(|mut ctx: Ctx<()>| {
        ctx.receive();
        panic!("the linked actor crashes on purpose");
    });
    actor.pid().clone()
}

fn router() -> Router {
    Router::new()
        .get("/me/:name", me)
        .get("/linked/receive/:name", linked_receive)
        .get("/linked/hibernate/:name", linked_hibernate)
}

fn watch_exit(pid: &Pid) -> mpsc::Receiver<Down> {
    let (tx, rx) = mpsc::channel();
    monitor_with(pid, move |down| {
        let _ = tx.send(down);
    });
    rx
}

fn crash(name: &str) {
    let mut actor = None;
    eventually(Duration::from_secs(5), "the actor is registered", || {
        actor = whereis::<()>(name);
        actor.is_some()
    });
    actor
        .expect("registered")
        .send(())
        .expect("the actor is alive");
}

#[test]
fn a_connection_keeps_one_process_across_its_requests_and_its_end_is_a_normal_down() {
    let srv = TestServer::start(test_config(), router());
    let mut c = srv.client();
    let first = c.get("/me/p1").text().to_string();
    let second = c.get("/me/p1").text().to_string();
    assert_eq!(first, second, "one process per connection");
    let pid = whereis_pid("p1").expect("registered");
    assert_eq!(pid.id().to_string(), first);
    let downs = watch_exit(&pid);
    drop(c);
    let down = downs
        .recv_timeout(CLIENT_TIMEOUT)
        .expect("a Down at the connection's end");
    assert_eq!(down.reason, Exit::Normal);
    assert!(whereis_pid("p1").is_none(), "its name is freed");
    // Another connection has another process.
    let other = srv.client().get("/me/p2").text().to_string();
    assert_ne!(other, first);
}

#[test]
fn the_process_hibernates_with_its_idle_connection_and_a_hang_up_there_is_a_normal_down() {
    let mut config = test_config();
    config.timeouts.hibernate_after_ms = 50;
    let srv = TestServer::start(config, router());
    let hibernating_idle = || {
        let stats = srv.server().stats();
        (0..2).map(|k| stats.hibernating_idle(k)).sum::<usize>()
    };
    let mut c = srv.client();
    let first = c.get("/me/h1").text().to_string();
    eventually(
        Duration::from_secs(5),
        "the idle connection hibernates",
        || hibernating_idle() == 1,
    );
    // Woken by its next request, it has the same process.
    assert_eq!(c.get("/me/h1").text(), first);
    eventually(Duration::from_secs(5), "it hibernates again", || {
        hibernating_idle() == 1
    });
    let pid = whereis_pid("h1").expect("registered");
    let downs = watch_exit(&pid);
    drop(c);
    let down = downs
        .recv_timeout(CLIENT_TIMEOUT)
        .expect("a Down from the ward");
    assert_eq!(down.reason, Exit::Normal);
}

#[test]
fn a_linked_actor_crash_ends_a_receiving_handler_with_503_and_a_close() {
    let srv = TestServer::start(test_config(), router());
    let mut c = srv.client();
    c.send(b"GET /linked/receive/crash-r HTTP/1.1\r\nHost: t\r\n\r\n");
    crash("crash-r");
    let reply = c.reply();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(c.closed_by_server());
}

#[test]
fn a_linked_actor_crash_ends_a_hibernated_wait_with_503_and_a_close() {
    let srv = TestServer::start(test_config(), router());
    let mut c = srv.client();
    c.send(b"GET /linked/hibernate/crash-h HTTP/1.1\r\nHost: t\r\n\r\n");
    eventually(Duration::from_secs(5), "the wait hibernates", || {
        let stats = srv.server().stats();
        (0..2).map(|k| stats.hibernating_waiting(k)).sum::<usize>() == 1
    });
    crash("crash-h");
    let reply = c.reply();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(c.closed_by_server());
}
