//! Supervisors: restart types, strategies, intensity and escalation, trees, dynamic children.
//! Every wait is on an event (a child's start report, a `Down`, a call) with a bound.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{WAIT, init};
use corral_actors::supervisor::KILL_WAIT;
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

/// Sets the flag when dropped, so a failing assertion still releases what waits on it
/// (a spinning child, a start function that keeps failing) instead of leaving it running.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
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
    assert!(!children[0].restarting);
    let tree = sup.tree().expect("tree").to_string();
    assert!(
        tree.contains("trans-a - Transient restarts=0"),
        "stopped, not restarting: {tree}"
    );
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
    assert_eq!(down_rx.recv_timeout(WAIT), Ok(Exit::Shutdown));

    // The outer supervisor saw its (permanent) child exit and restarted the whole subtree.
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

// --- OTP departures (issue 14, point 6), named like supervisor_SUITE's cases -------------------

/// OTP: "if more than MaxR restarts occur within MaxT seconds, the supervisor terminates all
/// child processes and then itself. The termination reason ... will be `shutdown`." So a
/// transient parent, which restarts only abnormal exits, leaves it down.
#[test]
fn one_for_one_escalation_exits_shutdown_and_a_transient_parent_does_not_restart_it() {
    init();
    let (tx, ev) = mpsc::channel();
    let inner = Supervisor::new(Strategy::OneForOne) // OTP default: 1 restart in 5 s
        .child(ChildSpec::new("shut-a", worker("shut-a", &tx)))
        .child(ChildSpec::new("shut-b", worker("shut-b", &tx)));
    let outer = Supervisor::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(ChildSpec::supervisor("shut-inner", inner).restart(Restart::Transient))
        .start()
        .expect("starts");
    started(&ev, "shut-a");
    started(&ev, "shut-b");
    let inner_pid = outer.which_children().expect("listing")[0]
        .pid
        .clone()
        .expect("running");

    send("shut-a", Cmd::Crash); // first restart: within intensity
    started(&ev, "shut-a");
    send("shut-a", Cmd::Crash); // second within 5 s: the inner supervisor gives up
    assert_eq!(next(&ev), Ev::Stopped("shut-b".into()));
    assert_eq!(wait_exit(&inner_pid), Exit::Shutdown);

    // Links are signalled before monitors, so the outer supervisor had the exit in its
    // mailbox when `wait_exit` returned; this call is answered after it was handled.
    let listing = outer.which_children().expect("listing");
    assert_eq!(
        listing[0].pid, None,
        "a transient child that shut down stays down"
    );
    assert_eq!(listing[0].restarts, 0);
    assert_eq!(outer.restarts(), 0);
    assert!(ev.try_recv().is_err(), "nothing was started again");
    outer.stop().expect("stops");
}

/// A worker spec whose start fails ("database down") while `up` is false; the first failure
/// after `failures` was reset to 0 is reported on `failed`.
fn flaky(
    name: &str,
    ev: &mpsc::Sender<Ev>,
    up: &Arc<AtomicBool>,
    failures: &Arc<AtomicUsize>,
    failed: mpsc::Sender<()>,
) -> ChildSpec {
    let start = worker(name, ev);
    let (up, failures) = (up.clone(), failures.clone());
    ChildSpec::new(name, move || {
        if up.load(Ordering::SeqCst) {
            return Ok(start());
        }
        if failures.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = failed.send(());
        }
        Err("database down")
    })
}

/// Never gives up: the window keeps only the last millisecond's restarts, so it stays small
/// however often a start fails before the test lets it succeed.
fn never_give_up(strategy: Strategy) -> Supervisor {
    Supervisor::new(strategy).intensity(u32::MAX, Duration::from_millis(1))
}

/// OTP `try_again_restart` (supervisor_SUITE `hanging_restart_loop`): a restart whose start
/// fails is retried from the mailbox, so requests are answered while the child is down.
#[test]
fn hanging_restart_loop_answers_calls_while_the_retry_is_pending() {
    init();
    let (tx, ev) = mpsc::channel();
    let (failed_tx, failed_rx) = mpsc::channel();
    let up = Arc::new(AtomicBool::new(true));
    let failures = Arc::new(AtomicUsize::new(0));
    let sup = never_give_up(Strategy::OneForOne)
        .child(flaky("retry-a", &tx, &up, &failures, failed_tx))
        .start()
        .expect("starts")
        .with_timeout(WAIT);
    let first = started(&ev, "retry-a");
    let _recover = SetOnDrop(up.clone());
    up.store(false, Ordering::SeqCst);
    kill(&first);
    failed_rx.recv_timeout(WAIT).expect("the restart failed");

    let listing = sup
        .which_children()
        .expect("answered while the restart keeps failing");
    assert_eq!(listing[0].pid, None, "not running");
    assert!(listing[0].restarting, "its restart is pending");
    assert!(
        sup.tree()
            .expect("tree")
            .to_string()
            .contains("retry-a restarting")
    );

    up.store(true, Ordering::SeqCst);
    let second = started(&ev, "retry-a");
    let listing = sup.which_children().expect("listing");
    assert_eq!(listing[0].pid.as_ref(), Some(&second));
    assert!(!listing[0].restarting);
    assert_eq!(listing[0].restarts, 1);

    // A child in a restart loop can be terminated, which cancels the pending retry.
    up.store(false, Ordering::SeqCst);
    failures.store(0, Ordering::SeqCst);
    send("retry-a", Cmd::Crash);
    failed_rx
        .recv_timeout(WAIT)
        .expect("the restart failed again");
    sup.terminate_child("retry-a")
        .expect("terminated while restarting");
    assert!(sup.which_children().expect("listing").is_empty());
    up.store(true, Ordering::SeqCst);
    sup.stop().expect("stops");
    assert!(
        ev.try_recv().is_err(),
        "the cancelled retry started nothing"
    );
}

/// OTP `rest_for_one_other_child_fails_restart`: when a later sibling fails to start, it is
/// left restarting and retried from the mailbox; the siblings before it keep running.
#[test]
fn rest_for_one_other_child_fails_restart() {
    init();
    let (tx, ev) = mpsc::channel();
    let (failed_tx, failed_rx) = mpsc::channel();
    let up = Arc::new(AtomicBool::new(true));
    let failures = Arc::new(AtomicUsize::new(0));
    let sup = never_give_up(Strategy::RestForOne)
        .child(ChildSpec::new("rfof-a", worker("rfof-a", &tx)))
        .child(ChildSpec::new("rfof-b", worker("rfof-b", &tx)))
        .child(flaky("rfof-c", &tx, &up, &failures, failed_tx))
        .start()
        .expect("starts")
        .with_timeout(WAIT);
    let a = started(&ev, "rfof-a");
    started(&ev, "rfof-b");
    started(&ev, "rfof-c");
    let _recover = SetOnDrop(up.clone());
    up.store(false, Ordering::SeqCst);
    send("rfof-b", Cmd::Crash);
    assert_eq!(next(&ev), Ev::Stopped("rfof-c".into()));
    let b = started(&ev, "rfof-b");
    failed_rx.recv_timeout(WAIT).expect("c's restart failed");

    let listing = sup.which_children().expect("answered meanwhile");
    assert_eq!(
        listing[0].pid.as_ref(),
        Some(&a),
        "earlier sibling untouched"
    );
    assert_eq!(listing[1].pid.as_ref(), Some(&b), "the dead child is back");
    assert_eq!(listing[2].pid, None);
    assert!(listing[2].restarting);

    up.store(true, Ordering::SeqCst);
    let c = started(&ev, "rfof-c");
    let listing = sup.which_children().expect("listing");
    assert_eq!(
        listing[0].pid.as_ref(),
        Some(&a),
        "the retry restarts from c only"
    );
    assert_eq!(listing[1].pid.as_ref(), Some(&b));
    assert_eq!(listing[2].pid.as_ref(), Some(&c));
    assert_eq!(
        listing.iter().map(|c| c.restarts).collect::<Vec<_>>(),
        vec![0, 1, 1]
    );
    assert!(
        ev.try_recv().is_err(),
        "nothing else was stopped or started"
    );
    sup.stop().expect("stops");
}

/// may cannot preempt: a child that spins without reaching a yield point cannot be killed
/// until it yields. `terminate` must still return after the shutdown timeout (plus the
/// bounded wait for the kill) and leave the child running, unlinked, instead of hanging.
#[test]
fn shutdown_timeout_returns_for_a_child_that_never_yields() {
    init();
    capture_errors();
    let release = Arc::new(AtomicBool::new(false));
    let _release = SetOnDrop(release.clone());
    let (ready_tx, ready_rx) = mpsc::channel();
    let spin = release.clone();
    let spinner = move || {
        let (ready_tx, spin) = (ready_tx.clone(), spin.clone());
        corral_actors::spawn(move |mut ctx: Ctx<ExitSignal>| {
            ctx.trap_exit(|s| s);
            let _ = ready_tx.send(());
            // The shutdown request arrives as a message; from then on, no yield point at all.
            let _shutdown = ctx.receive();
            while !spin.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        })
    };
    let grace = Duration::from_millis(30);
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("spinner", spinner).shutdown(Shutdown::Timeout(grace)))
        .start()
        .expect("starts")
        .with_timeout(WAIT);
    ready_rx.recv_timeout(WAIT).expect("trapping");
    let pid = sup.which_children().expect("listing")[0]
        .pid
        .clone()
        .expect("running");

    // The child starts spinning on the worker the supervisor woke it on, while the supervisor
    // is in a timed wait, which may resumes on its timer thread: so the supervisor can go on,
    // and the test must not wake it again (onto a worker, maybe that one) until the release.
    let t0 = Instant::now();
    sup.terminate_child("spinner")
        .expect("terminate returns instead of waiting for the spinning child");
    let took = t0.elapsed();
    assert!(
        took >= grace,
        "the child got its shutdown timeout ({took:?})"
    );
    assert!(
        took < grace + KILL_WAIT + Duration::from_secs(1),
        "returned after the timeout and the bounded kill wait ({took:?})"
    );
    assert!(pid.is_alive(), "still spinning: reported, not waited for");
    let errors = errors_naming("spinner");
    assert!(
        errors.iter().any(|e| e.contains("still running")),
        "left behind, and said so: {errors:?}"
    );

    // Once it stops spinning (here: its body returns), the kill takes effect.
    release.store(true, Ordering::Release);
    assert_eq!(wait_exit(&pid), Exit::Killed);
    assert!(sup.which_children().expect("listing").is_empty());
    sup.stop().expect("stops");
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

/// Error lines logged in this test binary (the logger is process-wide: a test looks only at
/// the lines naming its own children).
static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Errors;

impl log::Log for Errors {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Error
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let mut errors = ERRORS.lock().unwrap_or_else(|p| p.into_inner());
            errors.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn capture_errors() {
    static ERRORS_LOGGER: Errors = Errors;
    if log::set_logger(&ERRORS_LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Error);
    }
}

/// The error lines logged so far about child `id`.
fn errors_naming(id: &str) -> Vec<String> {
    let tag = format!("child `{id}`");
    let errors = ERRORS.lock().unwrap_or_else(|p| p.into_inner());
    errors
        .iter()
        .filter(|e| e.contains(&tag))
        .cloned()
        .collect()
}

/// A child that exits when told (killed, or on its shutdown request) is stopped, and not
/// reported as left behind.
#[test]
fn a_child_that_stops_when_told_is_not_reported_as_left_behind() {
    init();
    capture_errors();
    let (tx, ev) = mpsc::channel();
    for (id, shutdown) in [
        ("calm-kill", Shutdown::BrutalKill),
        ("calm-timeout", Shutdown::Timeout(WAIT)),
    ] {
        let sup = Supervisor::new(Strategy::OneForOne)
            .child(ChildSpec::new(id, worker(id, &tx)).shutdown(shutdown))
            .start()
            .expect("starts");
        let pid = started(&ev, id);
        sup.terminate_child(id).expect("terminated");
        assert!(!pid.is_alive(), "{id} stopped");
        assert_eq!(errors_naming(id), Vec::<String>::new(), "{id}");
        sup.stop().expect("stops");
    }
}
