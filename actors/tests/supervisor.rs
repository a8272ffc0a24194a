//! Supervisors: restart types, strategies, intensity and escalation, trees, dynamic children.
//! Every wait is on an event (a child's start report, a `Down`, a call) with a bound.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::{WAIT, init};
use corral_actors::{
    Addr, ChildKind, ChildSpec, Ctx, Exit, ExitSignal, Pid, Restart, Shutdown, Spawn, Strategy,
    SupError, Supervisor, kill, monitor_with, whereis,
};

enum Cmd {
    Crash,
    Stop,
    Exit(ExitSignal),
}

#[derive(Debug, PartialEq)]
enum Ev {
    Started(String, Pid),
    Stopped(String),
}

/// A start function for a worker named `name`. Like OTP's `proc_lib:start_link`, it waits
/// for the body's "ready" (sent after it traps exits), then reports `Started` — so starts are
/// reported in start order, and a shutdown request always finds the worker trapping.
/// On a shutdown request the worker reports `Stopped`, so stop order is observable.
fn worker(name: &str, ev: &mpsc::Sender<Ev>) -> impl Fn() -> Addr<Cmd> + Send + Sync + 'static {
    let name = name.to_string();
    let ev = ev.clone();
    move || {
        let (ready_tx, ready_rx) = may::sync::mpsc::channel();
        let (name2, ev2) = (name.clone(), ev.clone());
        let addr = Spawn::new()
            .register(name.clone())
            .spawn(move |mut ctx: Ctx<Cmd>| {
                ctx.trap_exit(Cmd::Exit);
                let _ = ready_tx.send(());
                // Every command ends the worker, so one receive is its whole life.
                match ctx.receive() {
                    Cmd::Crash => panic!("{name2} crashed"),
                    Cmd::Stop => {}
                    Cmd::Exit(sig) => {
                        let _ = ev2.send(Ev::Stopped(name2.clone()));
                        ctx.stop(sig.reason);
                    }
                }
            });
        ready_rx.recv_timeout(WAIT).expect("worker ready");
        let _ = ev.send(Ev::Started(name.clone(), addr.pid().clone()));
        addr
    }
}

fn next(ev: &mpsc::Receiver<Ev>) -> Ev {
    ev.recv_timeout(WAIT).expect("an event within the bound")
}

fn started(ev: &mpsc::Receiver<Ev>, name: &str) -> Pid {
    match next(ev) {
        Ev::Started(n, pid) if n == name => pid,
        other => panic!("expected {name} to start, got {other:?}"),
    }
}

fn send(name: &str, cmd: Cmd) {
    let addr: Addr<Cmd> = whereis(name).expect("registered");
    addr.send(cmd).expect("alive");
}

fn wait_exit(pid: &Pid) -> Exit {
    pid.wait_exit(Some(WAIT)).expect("exited within the bound")
}

#[test]
fn permanent_child_killed_n_times_is_restarted_n_times() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::new("perm-a", worker("perm-a", &tx)))
        .start()
        .expect("starts");
    let mut pid = started(&ev, "perm-a");
    for _ in 0..5 {
        kill(&pid);
        let next_pid = started(&ev, "perm-a");
        assert_ne!(next_pid, pid);
        pid = next_pid;
    }
    let children = sup.which_children().expect("listing");
    assert_eq!(children[0].restarts, 5);
    assert_eq!(children[0].pid.as_ref(), Some(&pid));
    assert_eq!(sup.restarts(), 5);
    sup.stop().expect("stops");
}

#[test]
fn transient_child_exiting_normally_is_not_restarted_but_a_crash_is() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("trans-a", worker("trans-a", &tx)).restart(Restart::Transient))
        .child(ChildSpec::new("trans-b", worker("trans-b", &tx)).restart(Restart::Transient))
        .start()
        .expect("starts");
    let a = started(&ev, "trans-a");
    let _b = started(&ev, "trans-b");
    send("trans-a", Cmd::Stop);
    assert_eq!(wait_exit(&a), Exit::Normal);
    // The exit signal reached the supervisor's mailbox before the Down reached us, so this
    // call is answered after the supervisor handled it.
    let children = sup.which_children().expect("listing");
    assert_eq!(children[0].pid, None, "not restarted");
    assert_eq!(children[0].restarts, 0);
    send("trans-b", Cmd::Crash);
    started(&ev, "trans-b");
    assert_eq!(sup.which_children().expect("listing")[1].restarts, 1);
    assert!(ev.try_recv().is_err(), "no other start");
    sup.stop().expect("stops");
}

#[test]
fn temporary_child_is_never_restarted() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::new("temp-a", worker("temp-a", &tx)).restart(Restart::Temporary))
        .start()
        .expect("starts");
    let a = started(&ev, "temp-a");
    send("temp-a", Cmd::Crash);
    assert!(matches!(wait_exit(&a), Exit::Panic(_)));
    assert!(
        sup.which_children().expect("listing").is_empty(),
        "forgotten"
    );
    assert_eq!(sup.restarts(), 0);
    assert!(ev.try_recv().is_err());
    sup.stop().expect("stops");
}

fn three(strategy: Strategy, prefix: &str, tx: &mpsc::Sender<Ev>) -> Supervisor {
    let mut sup = Supervisor::new(strategy).intensity(10, Duration::from_secs(5));
    for n in ["a", "b", "c"] {
        let name = format!("{prefix}-{n}");
        sup = sup.child(ChildSpec::new(name.clone(), worker(&name, tx)));
    }
    sup
}

#[test]
fn one_for_all_restarts_every_sibling() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = three(Strategy::OneForAll, "ofa", &tx)
        .start()
        .expect("starts");
    let before: Vec<Pid> = ["ofa-a", "ofa-b", "ofa-c"]
        .iter()
        .map(|n| started(&ev, n))
        .collect();
    send("ofa-b", Cmd::Crash);
    // Siblings stop right to left, then all start left to right.
    assert_eq!(next(&ev), Ev::Stopped("ofa-c".into()));
    assert_eq!(next(&ev), Ev::Stopped("ofa-a".into()));
    let after: Vec<Pid> = ["ofa-a", "ofa-b", "ofa-c"]
        .iter()
        .map(|n| started(&ev, n))
        .collect();
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a);
    }
    let restarts: Vec<u64> = sup
        .which_children()
        .expect("listing")
        .iter()
        .map(|c| c.restarts)
        .collect();
    assert_eq!(restarts, vec![1, 1, 1]);
    assert_eq!(sup.restarts(), 1);
    sup.stop().expect("stops");
}

#[test]
fn rest_for_one_restarts_only_later_siblings() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = three(Strategy::RestForOne, "rfo", &tx)
        .start()
        .expect("starts");
    let a = started(&ev, "rfo-a");
    let _b = started(&ev, "rfo-b");
    let c = started(&ev, "rfo-c");
    send("rfo-b", Cmd::Crash);
    assert_eq!(next(&ev), Ev::Stopped("rfo-c".into()));
    started(&ev, "rfo-b");
    let c2 = started(&ev, "rfo-c");
    assert_ne!(c, c2);
    let children = sup.which_children().expect("listing");
    assert_eq!(
        children[0].pid.as_ref(),
        Some(&a),
        "earlier sibling untouched"
    );
    assert_eq!(children[0].restarts, 0);
    assert_eq!(children[1].restarts, 1);
    assert_eq!(children[2].restarts, 1);
    sup.stop().expect("stops");
}

#[test]
fn exceeding_intensity_stops_children_in_reverse_and_escalates_to_the_parent() {
    init();
    let (tx, ev) = mpsc::channel();
    // Inner: OTP default intensity, 1 restart in 5 s.
    let inner = Supervisor::new(Strategy::OneForOne)
        .register("esc-inner")
        .child(ChildSpec::new("esc-a", worker("esc-a", &tx)))
        .child(ChildSpec::new("esc-b", worker("esc-b", &tx)))
        .child(ChildSpec::new("esc-c", worker("esc-c", &tx)));
    let outer = Supervisor::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::supervisor("inner", inner))
        .start()
        .expect("starts");
    for n in ["esc-a", "esc-b", "esc-c"] {
        started(&ev, n);
    }
    let inner_pid = outer.which_children().expect("listing")[0]
        .pid
        .clone()
        .expect("running");
    let (down_tx, down_rx) = mpsc::channel();
    monitor_with(&inner_pid, move |d| {
        let _ = down_tx.send(d.reason);
    });

    send("esc-b", Cmd::Crash); // first restart: within intensity
    started(&ev, "esc-b");
    send("esc-b", Cmd::Crash); // second within 5 s: the inner supervisor gives up
    assert_eq!(next(&ev), Ev::Stopped("esc-c".into()));
    assert_eq!(next(&ev), Ev::Stopped("esc-a".into()));
    assert_eq!(down_rx.recv_timeout(WAIT), Ok(Exit::MaxRestarts));

    // The outer supervisor saw its child exit and restarted the whole subtree.
    for n in ["esc-a", "esc-b", "esc-c"] {
        started(&ev, n);
    }
    let listing = outer.which_children().expect("listing");
    assert_eq!(listing[0].restarts, 1);
    assert_ne!(listing[0].pid.as_ref(), Some(&inner_pid));
    assert_eq!(outer.restarts(), 1);
    outer.stop().expect("stops");
}

#[test]
fn tree_lists_nested_supervisors_with_restart_counts() {
    init();
    let (tx, ev) = mpsc::channel();
    let inner = Supervisor::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(5))
        .child(ChildSpec::new("tree-w", worker("tree-w", &tx)));
    let root = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("tree-top", worker("tree-top", &tx)))
        .child(ChildSpec::supervisor("tree-inner", inner))
        .start()
        .expect("starts");
    started(&ev, "tree-top");
    let w = started(&ev, "tree-w");
    kill(&w);
    started(&ev, "tree-w");
    let tree = root.tree().expect("tree");
    assert_eq!(tree.children.len(), 2);
    let (inner_info, inner_tree) = &tree.children[1];
    assert_eq!(inner_info.id, "tree-inner");
    let inner_tree = inner_tree.as_ref().expect("subtree listed");
    assert_eq!(inner_tree.restarts, 1);
    assert_eq!(inner_tree.children[0].0.id, "tree-w");
    assert_eq!(inner_tree.children[0].0.restarts, 1);
    let text = tree.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("supervisor ") && lines[0].ends_with(" restarts=0"));
    // Each level indents its children by two more spaces.
    assert!(lines[1].starts_with("  tree-top "), "{text}");
    assert!(lines[1].ends_with(" Permanent restarts=0"), "{text}");
    assert!(lines[2].starts_with("  tree-inner "), "{text}");
    assert!(lines[2].contains(" restarts=0 supervisor "), "{text}");
    assert!(lines[2].ends_with(" restarts=1"), "{text}");
    assert!(lines[3].starts_with("    tree-w "), "{text}");
    assert!(lines[3].ends_with(" Permanent restarts=1"), "{text}");
    assert_eq!(inner_info.kind, ChildKind::Supervisor);
    assert_eq!(tree.children[0].0.kind, ChildKind::Worker);
    assert_eq!(format!("{root:?}"), format!("SupRef({})", root.pid()));
    root.stop().expect("stops");
    // Stopping the root stops the subtree, right to left.
    assert_eq!(next(&ev), Ev::Stopped("tree-w".into()));
    assert_eq!(next(&ev), Ev::Stopped("tree-top".into()));
}

#[test]
fn dynamic_children_start_and_terminate() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = Supervisor::new(Strategy::OneForOne)
        .start()
        .expect("starts");
    for k in 0..3 {
        let name = format!("dyn-{k}");
        sup.start_child(
            ChildSpec::new(name.clone(), worker(&name, &tx)).restart(Restart::Temporary),
        )
        .expect("started");
        started(&ev, &name);
    }
    let dup = sup.start_child(ChildSpec::new("dyn-0", worker("dyn-0", &tx)));
    assert_eq!(dup.err(), Some(SupError::DuplicateId("dyn-0".into())));
    let pid1 = sup.which_children().expect("listing")[1]
        .pid
        .clone()
        .expect("running");
    sup.terminate_child("dyn-1").expect("terminated");
    assert_eq!(next(&ev), Ev::Stopped("dyn-1".into()));
    assert_eq!(wait_exit(&pid1), Exit::Shutdown);
    let ids: Vec<String> = sup
        .which_children()
        .expect("listing")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["dyn-0", "dyn-2"]);
    assert_eq!(
        sup.terminate_child("nope").err(),
        Some(SupError::NotFound("nope".into()))
    );
    sup.stop().expect("stops");
}

#[test]
fn shutdown_timeout_kills_a_child_that_ignores_shutdown() {
    init();
    let (ready_tx, ready_rx) = mpsc::channel();
    let stubborn = move || {
        let ready_tx = ready_tx.clone();
        corral_actors::spawn(move |mut ctx: Ctx<ExitSignal>| {
            ctx.trap_exit(|s| s);
            let _ = ready_tx.send(());
            loop {
                let _ = ctx.receive(); // ignores the shutdown request
            }
        })
    };
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(
            ChildSpec::new("stubborn", stubborn)
                .shutdown(Shutdown::Timeout(Duration::from_millis(30))),
        )
        .start()
        .expect("starts");
    ready_rx.recv_timeout(WAIT).expect("trapping");
    let pid = sup.which_children().expect("listing")[0]
        .pid
        .clone()
        .expect("running");
    sup.terminate_child("stubborn").expect("terminated");
    assert_eq!(wait_exit(&pid), Exit::Killed);
    sup.stop().expect("stops");
}

#[test]
fn brutal_kill_does_not_wait() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("brutal", worker("brutal", &tx)).shutdown(Shutdown::BrutalKill))
        .start()
        .expect("starts");
    let pid = started(&ev, "brutal");
    sup.terminate_child("brutal").expect("terminated");
    assert_eq!(wait_exit(&pid), Exit::Killed);
    assert!(ev.try_recv().is_err(), "no clean shutdown happened");
    sup.stop().expect("stops");
}

#[test]
fn a_failed_start_fails_the_supervisor_and_stops_started_children() {
    init();
    let (tx, ev) = mpsc::channel();
    let result = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("fail-a", worker("fail-a", &tx)))
        .child(ChildSpec::new("fail-b", || Err::<Pid, _>("no database")))
        .start();
    let err = result.expect_err("start fails");
    assert_eq!(err.id, "fail-b");
    assert_eq!(err.reason, "no database");
    started(&ev, "fail-a");
    assert_eq!(next(&ev), Ev::Stopped("fail-a".into()));
}

#[test]
fn one_for_all_forgets_a_temporary_sibling_it_stopped() {
    init();
    let (tx, ev) = mpsc::channel();
    let sup = Supervisor::new(Strategy::OneForAll)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::new("ofat-a", worker("ofat-a", &tx)))
        .child(ChildSpec::new("ofat-t", worker("ofat-t", &tx)).restart(Restart::Temporary))
        .child(ChildSpec::new("ofat-c", worker("ofat-c", &tx)))
        .start()
        .expect("starts");
    for n in ["ofat-a", "ofat-t", "ofat-c"] {
        started(&ev, n);
    }
    send("ofat-a", Cmd::Crash);
    assert_eq!(next(&ev), Ev::Stopped("ofat-c".into()));
    assert_eq!(next(&ev), Ev::Stopped("ofat-t".into()));
    started(&ev, "ofat-a");
    started(&ev, "ofat-c");
    let ids: Vec<String> = sup
        .which_children()
        .expect("listing")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids,
        ["ofat-a", "ofat-c"],
        "the temporary sibling is forgotten"
    );
    assert!(ev.try_recv().is_err(), "and not started again");
    sup.stop().expect("stops");
}

/// A start function that works on the calls `works` says, and fails on the others.
fn flaky(
    name: &str,
    tx: &mpsc::Sender<Ev>,
    works: fn(usize) -> bool,
) -> (
    impl Fn() -> Result<Addr<Cmd>, String> + Send + Sync + 'static,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let start = worker(name, tx);
    let counted = calls.clone();
    let start = move || {
        let call = counted.fetch_add(1, Ordering::SeqCst);
        if works(call) {
            Ok(start())
        } else {
            Err(format!("start #{call} fails"))
        }
    };
    (start, calls)
}

#[test]
fn a_failed_restart_is_retried_while_the_intensity_allows() {
    init();
    let (tx, ev) = mpsc::channel();
    // The first start works, the first restart fails, the second works.
    let (start, calls) = flaky("retry", &tx, |call| call != 1);
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(5))
        .child(ChildSpec::new("retry", start))
        .start()
        .expect("starts");
    let first = started(&ev, "retry");
    send("retry", Cmd::Crash);
    assert!(matches!(wait_exit(&first), Exit::Panic(_)));
    started(&ev, "retry");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(sup.which_children().expect("listing")[0].restarts, 1);
    sup.stop().expect("stops");
}

#[test]
fn restarts_that_keep_failing_use_up_the_intensity_and_the_supervisor_gives_up() {
    init();
    let (tx, ev) = mpsc::channel();
    let (start, calls) = flaky("doomed", &tx, |call| call == 0);
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .child(ChildSpec::new("doomed", start))
        .start()
        .expect("starts");
    let first = started(&ev, "doomed");
    send("doomed", Cmd::Crash);
    assert!(matches!(wait_exit(&first), Exit::Panic(_)));
    assert_eq!(wait_exit(sup.pid()), Exit::MaxRestarts);
    // The crash and two failed starts fit in 3; the third failed start does not.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}
