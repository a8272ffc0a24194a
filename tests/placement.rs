//! Placement over real sockets: cost learning, cheapest-scheduler placement, stealing of
//! queued connections, the listener's supervisor, and /metrics.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Client, TestServer, eventually, parse_prometheus, sample, sum_of};
use corral::Policy;
use corral::{Config, Request, Response, Router, Waker};

/// These tests measure where work lands and how long it waits, and all servers in this
/// process share the same two may workers: run them one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn scheduler(req: &Request) -> String {
    format!("{} {:?}", req.scheduler(), std::thread::current().id())
}

/// The demo app plus `/scheduler`, `/spin` and `/burn`, on 2 schedulers; `/spin` spins until
/// released.
fn server(tweak: impl FnOnce(&mut Config)) -> (TestServer, Release) {
    let mut config = common::test_config();
    tweak(&mut config);
    let release = Release::default();
    let released = release.0.clone();
    let router = common::app::demo::router(&config)
        .get("/scheduler", scheduler)
        .get("/spin", move |_: &Request| spin_until(&released))
        .get("/burn", burn);
    (TestServer::start(config, router), release)
}

/// Occupies its scheduler for 10 ms, never yielding, and answers how long it ran by its own
/// clock, ns.
fn burn(_: &Request) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(10) {
        std::hint::spin_loop();
    }
    start.elapsed().as_nanos().to_string()
}

/// Lets every `/spin` handler of one server return.
#[derive(Default)]
struct Release(Arc<AtomicBool>);

impl Release {
    fn now(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Occupies its scheduler, never yielding, like `/cpu`, until the test lets it go: a busy
/// scheduler that stays busy for as long as the test needs, however slow the machine.
fn spin_until(released: &AtomicBool) -> &'static str {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !released.load(Ordering::Acquire) && Instant::now() < give_up {
        std::hint::spin_loop();
    }
    "released"
}

/// Starts `GET path` on a fresh connection and returns once it is in flight, with the
/// scheduler running its handler; the handle yields its status.
fn start_hog(srv: &TestServer, path: &'static str) -> (std::thread::JoinHandle<u16>, usize) {
    let addr = srv.addr;
    let hog = std::thread::spawn(move || Client::connect(addr).get(path).status);
    let stats = srv.server().stats();
    let running_on = || (0..2).find(|&k| stats.running(k).is_some());
    eventually(Duration::from_secs(2), "the hog's handler runs", || {
        stats.inflight() == 1 && running_on().is_some()
    });
    (hog, running_on().expect("the hog's handler runs"))
}

/// The scheduler a `/scheduler` answer names.
fn scheduler_of(answer: &str) -> usize {
    answer
        .split(' ')
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("a /scheduler answer: {answer:?}"))
}

fn metrics(srv: &TestServer) -> Vec<(String, f64)> {
    let r = srv.client().get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    parse_prometheus(r.text())
}

/// Costs are scheduler occupancy, averaged. The server times a request of `/burn` from before
/// its handler starts to after it returns; the handler times itself, and the client times the
/// round trip: each sample lies between the handler's own figure and the round trip. A
/// running average moves, with each sample, to somewhere between where it was and that
/// sample. So after each request, once merged, the learned cost lies between the one before
/// and that request's bracket. This holds on any machine, however loaded: load stretches a
/// request's three figures alike. A cost learned from the wrong figure (too little, a
/// multiple, a sum, no update) leaves that range at the first request or soon after. A route
/// that sleeps twice as long costs its scheduler next to nothing.
#[test]
fn the_cost_table_learns_a_busy_route_at_its_occupancy_and_a_sleeping_route_at_almost_nothing() {
    let _serial = serial();
    let (srv, _) = server(|c| c.placement.merge_interval_ms = 10);
    let mut c = srv.client();
    let burn = r#"corral_route_cost_seconds{method="GET",route="/burn"}"#;
    let learned_ns = || (sample(&metrics(&srv), burn) * 1e9).round() as u64;
    // Rounding: the table publishes whole nanoseconds of a running average kept in f64.
    const SLACK_NS: u64 = 2;
    let mut learned = learned_ns(); // the default, until a sample is merged
    let mut previous: Option<u64> = None;
    for n in 1..=8 {
        let sent = Instant::now();
        let r = c.get("/burn");
        let round_trip_ns = sent.elapsed().as_nanos() as u64;
        assert_eq!(r.status, 200);
        let ran_ns: u64 = r.text().parse().unwrap();
        let before = learned;
        eventually(
            Duration::from_secs(3),
            &format!("the cost of /burn moves with sample {n}"),
            || {
                learned = learned_ns();
                learned != before
            },
        );
        let (low, high) = match previous {
            None => (ran_ns, round_trip_ns),
            Some(p) => (p.min(ran_ns), p.max(round_trip_ns)),
        };
        assert!(
            (low.saturating_sub(SLACK_NS)..=high + SLACK_NS).contains(&learned),
            "after sample {n} (ran {ran_ns} ns, round trip {round_trip_ns} ns), /burn is \
             learned at {learned} ns, outside [{low}, {high}] ns (previously {previous:?})"
        );
        previous = Some(learned);
    }
    for _ in 0..5 {
        assert_eq!(c.get("/work?us=20000").status, 200);
    }
    let work = r#"corral_route_cost_seconds{method="GET",route="/work"}"#;
    let requests = r#"corral_route_requests_total{method="GET",route="/work"}"#;
    eventually(
        Duration::from_secs(3),
        "the /work samples are merged",
        || sample(&metrics(&srv), requests) == 5.0,
    );
    eventually(
        Duration::from_secs(3),
        "/work (20 ms asleep) costs less than a tenth of /burn (10 ms busy)",
        || {
            let m = metrics(&srv);
            sample(&m, work) < sample(&m, burn) / 10.0
        },
    );
}

/// A hog spins on one scheduler; 20 fresh connections ask `/scheduler` one after another. The
/// schedulers they were placed on, and the hog's.
fn placements_while_one_scheduler_is_busy(policy: Policy) -> (usize, Vec<usize>) {
    let (srv, release) = server(|c| c.placement.policy = policy);
    let (hog, busy) = start_hog(&srv, "/spin");
    let mut clients = Vec::new();
    let mut placed = Vec::new();
    for _ in 0..20 {
        // Each connects once the one before is through its request (an unread connection
        // would count in its scheduler's load, as it should).
        let mut c = srv.client();
        c.send(b"GET /scheduler HTTP/1.1\r\nHost: test\r\n\r\n");
        if policy == Policy::Cost {
            // Placed where the load is: answered while the hog still spins.
            placed.push(scheduler_of(c.reply().text()));
        }
        clients.push(c);
    }
    assert!(!hog.is_finished(), "the hog spins until released");
    release.now();
    if policy != Policy::Cost {
        // Some may sit behind the hog: read them once it is done.
        placed = clients
            .iter_mut()
            .map(|c| scheduler_of(c.reply().text()))
            .collect();
    }
    assert_eq!(hog.join().expect("hog"), 200);
    (busy, placed)
}

#[test]
fn cost_placement_keeps_fresh_connections_off_a_busy_scheduler() {
    let _serial = serial();
    let (busy, placed) = placements_while_one_scheduler_is_busy(Policy::Cost);
    assert!(
        placed.iter().all(|&k| k != busy),
        "cost: placed on the busy scheduler {busy}: {placed:?}"
    );
    // The same workload under round-robin puts every other connection behind the hog.
    let (busy, placed) = placements_while_one_scheduler_is_busy(Policy::RoundRobin);
    let behind = placed.iter().filter(|&&k| k == busy).count();
    assert_eq!(behind, 10, "round_robin: {placed:?} (busy: {busy})");
}

/// Both schedulers run a 300 ms handler of known cost, one 150 ms further in than the other:
/// fresh connections go where the running handler has less left.
#[test]
fn cost_placement_prefers_the_scheduler_nearer_the_end_of_its_handler() {
    let _serial = serial();
    let (srv, _) = server(|_| {});
    let stats = srv.server().stats();
    // Teach the table that /cpu costs 300 ms (the first sample sets a route's estimate).
    assert_eq!(srv.client().get("/cpu?us=300000").status, 200);
    let series = r#"corral_route_cost_seconds{method="GET",route="/cpu"}"#;
    eventually(
        Duration::from_secs(3),
        "/cpu is known to cost 300 ms",
        || sample(&metrics(&srv), series) > 0.25,
    );
    let (first, a) = start_hog(&srv, "/cpu?us=300000");
    eventually(Duration::from_secs(2), "the first hog is 150 ms in", || {
        stats
            .running(a)
            .is_some_and(|run| run >= Duration::from_millis(150))
    });
    let addr = srv.addr;
    let second = std::thread::spawn(move || Client::connect(addr).get("/cpu?us=300000").status);
    eventually(Duration::from_secs(2), "the second hog runs", || {
        stats.inflight() == 2
    });
    assert!(
        stats.running(1 - a).is_some(),
        "the second hog went to the idle scheduler"
    );
    // Two fresh connections, the second accepted while the first is still unread: both
    // belong behind the first hog (150 ms left and a connection of unknown route is less
    // than the second's ~300 ms). Whole costs alone would split them, by tie-break and then
    // by the first one's unknown-route cost.
    let mut probes = [Client::connect(addr), Client::connect(addr)];
    for probe in &mut probes {
        probe.send(b"GET /scheduler HTTP/1.1\r\nHost: test\r\n\r\n");
    }
    for probe in &mut probes {
        let answer = probe.reply().text().to_string();
        assert!(
            answer.starts_with(&format!("{a} ")),
            "placed behind the hog that had more left: {answer}"
        );
    }
    assert_eq!(first.join().expect("first hog"), 200);
    assert_eq!(second.join().expect("second hog"), 200);
}

#[test]
fn a_queued_connection_is_stolen_by_an_idle_scheduler_and_stays_there() {
    let _serial = serial();
    let (srv, release) = server(|c| {
        c.placement.policy = Policy::RoundRobin;
        c.placement.max_active_requests = 1;
    });
    // Connection A, placed on scheduler 0, keeps it at its cap until released.
    let (hog, busy) = start_hog(&srv, "/spin");
    assert_eq!(busy, 0, "round-robin starts at 0");
    let stats = srv.server().stats();
    // Connection B goes to scheduler 1 and finishes its request: 1 is idle again.
    let mut b = srv.client();
    let b_answer = b.get("/scheduler").text().to_string();
    assert!(b_answer.starts_with("1 "), "{b_answer}");
    // Connection C is placed on 0 (round-robin), waits in 0's queue, and 1 steals it: it is
    // answered while 0 still spins.
    let mut c = srv.client();
    let first = c.get("/scheduler");
    assert_eq!(first.text(), b_answer, "C runs on scheduler 1's thread");
    assert_eq!(stats.steals(1), 1);
    assert_eq!(stats.steals(0), 0);
    for _ in 0..10 {
        assert_eq!(c.get("/scheduler").text(), b_answer, "C stays on the thief");
    }
    assert!(!hog.is_finished(), "the hog spins until released");
    release.now();
    assert_eq!(hog.join().expect("hog"), 200);
}

#[test]
fn a_killed_listener_is_restarted_and_no_connection_is_lost() {
    let _serial = serial();
    let (srv, _) = server(|_| {});
    let name = srv.server().listener_process_name();
    let addr = srv.addr;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..50)
                    .filter(|_| Client::connect(addr).get("/plaintext").status == 200)
                    .count()
            })
        })
        .collect();
    let listener = corral_actors::whereis_pid(&name).expect("listener registered");
    corral_actors::kill(&listener);
    eventually(Duration::from_secs(3), "the listener is restarted", || {
        corral_actors::whereis_pid(&name).is_some_and(|pid| pid != listener)
    });
    for client in clients {
        assert_eq!(client.join().expect("client"), 50, "a connection was lost");
    }
    let m = metrics(&srv);
    assert_eq!(sample(&m, "corral_supervisor_restarts_total"), 1.0);
    assert_eq!(srv.client().get("/plaintext").status, 200);
}

#[test]
fn metrics_parse_and_match_what_was_sent() {
    let _serial = serial();
    let (srv, _) = server(|_| {});
    let mut c = srv.client();
    for _ in 0..7 {
        c.get("/plaintext");
    }
    for _ in 0..3 {
        c.get("/json");
    }
    for _ in 0..2 {
        assert_eq!(c.get("/nope").status, 404);
    }
    let m = metrics(&srv);
    let route = |method: &str, route: &str| {
        sample(
            &m,
            &format!("corral_route_requests_total{{method=\"{method}\",route=\"{route}\"}}"),
        )
    };
    assert_eq!(route("GET", "/plaintext"), 7.0);
    assert_eq!(route("GET", "/json"), 3.0);
    assert_eq!(route("*", "(unmatched)"), 2.0);
    // Every request so far, plus the /metrics request being served.
    assert_eq!(sum_of(&m, "corral_scheduler_requests_total"), 13.0);
    assert_eq!(sum_of(&m, "corral_scheduler_inflight"), 1.0);
    assert_eq!(sum_of(&m, "corral_scheduler_connections"), 2.0);
    assert_eq!(sum_of(&m, "corral_scheduler_queue_length"), 0.0);
    assert_eq!(sample(&m, "corral_supervisor_restarts_total"), 0.0);
    for k in 0..2 {
        for name in [
            "corral_scheduler_expected_load_seconds",
            "corral_scheduler_running_handler_seconds",
            "corral_scheduler_utilisation_ratio",
            "corral_scheduler_steals_total",
        ] {
            sample(&m, &format!("{name}{{scheduler=\"{k}\"}}"));
        }
    }
    let latency = r#"corral_request_duration_seconds_sum{method="GET",route="/plaintext"}"#;
    assert!(sample(&m, latency) > 0.0);
    assert!(sample(&m, "corral_capacity_index") > 0.0);
}

/// A `/held` request's waker, kept for the test: its wait ends when the test says.
type Held = Arc<std::sync::Mutex<Option<Waker<()>>>>;

/// `/scheduler`, `/spin` and `/held` on 2 schedulers, accepts placed in turn (0, 1, 0, …) so
/// that the test knows where each connection starts, idle connections hibernating after
/// 20 ms, and `placement.at_wake` as given.
fn wake_server(at_wake: bool) -> (TestServer, Release, Held) {
    let mut config = common::test_config();
    config.placement.policy = Policy::RoundRobin;
    config.placement.at_wake = at_wake;
    config.timeouts.hibernate_after_ms = 20;
    let release = Release::default();
    let released = release.0.clone();
    let held = Held::default();
    let slot = held.clone();
    let router = Router::new()
        .get("/scheduler", scheduler)
        .get("/spin", move |_: &Request| spin_until(&released))
        .get("/held", move |_: &Request| {
            let slot = slot.clone();
            Response::hibernate(
                Duration::from_secs(10),
                move |waker: Waker<()>| {
                    *slot.lock().unwrap() = Some(waker);
                    Ok(|| {})
                },
                |_| Response::text("woken"),
            )
        });
    (TestServer::start(config, router), release, held)
}

/// From the next wake on, placement goes by cost: the busy scheduler is the expensive one.
fn place_by_cost_from_now(srv: &TestServer) {
    let mut config = srv.server().config();
    config.placement.policy = Policy::Cost;
    srv.server().reconfigure(config).unwrap();
}

/// The connection (accepted first, so on scheduler 0) hibernated idle after one
/// `/scheduler`; a second one (on scheduler 1) stays open. Then a `/spin` is placed on 0 and
/// keeps it busy, and placement switches to cost. Returns the sleeper with its answer, the
/// second connection's answer (scheduler 1's thread) and the spin.
fn asleep_on_a_busy_scheduler(
    srv: &TestServer,
) -> (Client, String, Client, String, std::thread::JoinHandle<u16>) {
    let stats = srv.server().stats();
    let mut sleeper = srv.client();
    let home = sleeper.get("/scheduler").text().to_string();
    assert_eq!(scheduler_of(&home), 0, "round-robin starts at 0");
    let mut other = srv.client();
    let away = other.get("/scheduler").text().to_string();
    assert_eq!(scheduler_of(&away), 1);
    eventually(
        Duration::from_secs(5),
        "the first connection sleeps",
        || stats.hibernating_idle(0) == 1,
    );
    let (hog, busy) = start_hog(srv, "/spin");
    assert_eq!(busy, 0, "the third connection goes to 0 again");
    place_by_cost_from_now(srv);
    (sleeper, home, other, away, hog)
}

/// With `placement.at_wake`, a connection that slept is new work: its next request wakes it
/// and placement picks its scheduler now. Its old scheduler runs a handler that never yields,
/// so it is answered on the other scheduler's thread while that handler still runs, and the
/// open-connection counts move with it. (Without the key the answer waits for the spin to
/// end and names scheduler 0: see the next test.)
#[test]
fn a_woken_connection_starts_where_placement_picks_now_not_on_its_busy_old_scheduler() {
    let _serial = serial();
    let (srv, release, _) = wake_server(true);
    let (mut sleeper, home, _other, away, hog) = asleep_on_a_busy_scheduler(&srv);
    let stats = srv.server().stats();
    let woken = sleeper.get("/scheduler").text().to_string();
    assert!(!hog.is_finished(), "answered while its old scheduler spins");
    assert_eq!(
        woken, away,
        "ran on the other scheduler's thread (home was {home})"
    );
    assert_eq!(stats.wake_placements(), (1, 1));
    // Scheduler 0 holds the spin's connection only; 1 the sleeper and the other one.
    assert_eq!((stats.connections(0), stats.connections(1)), (1, 2));
    release.now();
    assert_eq!(hog.join().expect("hog"), 200);
    // Awake, it stays where it was placed.
    for _ in 0..5 {
        assert_eq!(sleeper.get("/scheduler").text(), away);
    }
}

#[test]
fn without_placement_at_wake_a_woken_connection_runs_on_its_old_scheduler() {
    let _serial = serial();
    let (srv, release, _) = wake_server(false);
    let (mut sleeper, home, _other, _away, hog) = asleep_on_a_busy_scheduler(&srv);
    let stats = srv.server().stats();
    sleeper.send(b"GET /scheduler HTTP/1.1\r\nHost: test\r\n\r\n");
    eventually(Duration::from_secs(5), "the ward hands it back", || {
        stats.hibernating_idle(0) == 0
    });
    // Behind the spin: it is answered once the spin is over.
    release.now();
    assert_eq!(hog.join().expect("hog"), 200);
    assert_eq!(sleeper.reply().text(), home);
    assert_eq!(stats.wake_placements(), (0, 0));
}

/// A wait answered by the ward, with a request pipelined behind it, is handed back to its
/// scheduler for that request: not new work, so it stays home, even with `placement.at_wake`
/// and its home busy.
#[test]
fn a_connection_handed_back_with_pipelined_input_stays_on_its_old_scheduler() {
    let _serial = serial();
    let (srv, release, held) = wake_server(true);
    let stats = srv.server().stats();
    let mut sleeper = srv.client();
    // One write, so the second request is there when the first one's wait ends.
    sleeper.send(
        b"GET /held HTTP/1.1\r\nHost: test\r\n\r\nGET /scheduler HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    eventually(Duration::from_secs(5), "the /held request waits", || {
        stats.hibernating_waiting(0) == 1 && held.lock().unwrap().is_some()
    });
    let mut other = srv.client();
    assert_eq!(scheduler_of(other.get("/scheduler").text()), 1);
    let (hog, busy) = start_hog(&srv, "/spin");
    assert_eq!(busy, 0);
    place_by_cost_from_now(&srv);
    let waker = held.lock().unwrap().take().expect("the waker");
    waker.wake(());
    // The ward answers the wait itself, then hands the connection back for what follows.
    assert_eq!(sleeper.reply().text(), "woken");
    eventually(Duration::from_secs(5), "the ward hands it back", || {
        stats.hibernating_waiting(0) == 0 && stats.hibernating_idle(0) == 0
    });
    assert!(!hog.is_finished());
    // Scheduler 0 holds the spin's connection and the sleeper; 1 the other one.
    assert_eq!((stats.connections(0), stats.connections(1)), (2, 1));
    release.now();
    assert_eq!(hog.join().expect("hog"), 200);
    let answer = sleeper.reply().text().to_string();
    assert_eq!(scheduler_of(&answer), 0, "moved: {answer}");
    assert_eq!(stats.wake_placements(), (0, 0));
}
