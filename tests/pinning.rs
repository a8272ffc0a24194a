//! "A connection placed on scheduler k runs every request on worker k": every request
//! reports the OS thread that ran its handler, and we check the map connection → thread.

mod common;

use std::collections::{HashMap, HashSet};

use common::TestServer;
use corral::{Policy, Request, Router};

fn whoami(req: &Request) -> String {
    format!("{} {:?}", req.scheduler(), std::thread::current().id())
}

#[test]
fn every_request_of_a_connection_runs_on_the_thread_of_its_scheduler() {
    let mut config = common::test_config();
    assert_eq!(config.server.workers, 2);
    // Round robin, so that where each connection lands is known in advance. (The default,
    // cost, breaks ties by open connections, and the previous connection's close may not
    // have been seen yet when the next is placed.)
    config.placement.policy = Policy::RoundRobin;
    let srv = TestServer::start(config, Router::new().get("/whoami", whoami));
    let mut thread_of_scheduler: HashMap<String, String> = HashMap::new();
    for i in 0..10 {
        let mut c = srv.client();
        let mut seen = HashSet::new();
        for _ in 0..20 {
            let r = c.get("/whoami");
            assert_eq!(r.status, 200);
            seen.insert(r.text().to_string());
        }
        assert_eq!(
            seen.len(),
            1,
            "one connection ran on several threads: {seen:?}"
        );
        let answer = seen.into_iter().next().expect("one answer");
        let (scheduler, thread) = answer.split_once(' ').expect("two fields");
        // Round-robin placed connection i on scheduler i % 2, whatever fd it was accepted as.
        assert_eq!(
            scheduler,
            (i % 2).to_string(),
            "connection {i} not where placed"
        );
        let known = thread_of_scheduler
            .entry(scheduler.to_string())
            .or_insert_with(|| thread.to_string());
        assert_eq!(known, thread, "scheduler {scheduler} ran on two threads");
    }
    // Round-robin placement over 2 schedulers used both, on two different threads.
    assert_eq!(thread_of_scheduler.len(), 2, "{thread_of_scheduler:?}");
    let threads: HashSet<_> = thread_of_scheduler.values().collect();
    assert_eq!(threads.len(), 2);
}

fn nap(_req: &Request) -> &'static str {
    may::coroutine::sleep(std::time::Duration::from_millis(1));
    "rested"
}

/// may resumes a slept coroutine on its timer thread; the connection must still run its next
/// request — already buffered behind the sleeper — on its own scheduler's thread.
#[test]
fn a_request_after_a_sleeping_handler_runs_back_on_the_scheduler() {
    let router = Router::new().get("/whoami", whoami).get("/nap", nap);
    let srv = TestServer::start(common::test_config(), router);
    let mut thread_of_scheduler: HashMap<String, String> = HashMap::new();
    for _ in 0..6 {
        let mut c = srv.client();
        let baseline = c.get("/whoami").text().to_string();
        let (scheduler, thread) = baseline.split_once(' ').expect("two fields");
        let known = thread_of_scheduler
            .entry(scheduler.to_string())
            .or_insert_with(|| thread.to_string());
        assert_eq!(known, thread);
        for _ in 0..10 {
            c.send(b"GET /nap HTTP/1.1\r\nHost: t\r\n\r\nGET /whoami HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(c.reply().text(), "rested");
            assert_eq!(
                c.reply().text(),
                baseline,
                "ran off its scheduler after a sleep"
            );
        }
    }
}
