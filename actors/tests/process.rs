//! Processes, mailboxes, call, links, monitors, exit signals, kill, the registry, watch.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::{WAIT, init};
use corral_actors::{
    Addr, CallError, Ctx, Down, Exit, ExitSignal, Overflow, Pid, ReplyTo, SendError, Spawn, kill,
    link, monitor_with, register, spawn, whereis, whereis_pid,
};

enum Counter {
    Add(u64),
    Get(ReplyTo<u64>),
    Crash(&'static str),
}

fn counter(mut ctx: Ctx<Counter>) {
    let mut n = 0;
    loop {
        match ctx.receive() {
            Counter::Add(k) => n += k,
            Counter::Get(reply) => {
                let _ = reply.send(n);
            }
            Counter::Crash(why) => panic!("{why}"),
        }
    }
}

/// Watch `pid` from the test thread: the `Down` arrives on the returned channel.
fn watch_exit(pid: &Pid) -> mpsc::Receiver<Down> {
    let (tx, rx) = mpsc::channel();
    monitor_with(pid, move |down| {
        let _ = tx.send(down);
    });
    rx
}

#[test]
fn send_then_call_sees_messages_in_order() {
    init();
    let c = spawn(counter);
    for k in 1..=10 {
        c.send(Counter::Add(k)).expect("alive");
    }
    assert_eq!(c.call(Counter::Get, WAIT), Ok(55));
}

#[test]
fn addr_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Addr<Counter>>();
    assert_send_sync::<Pid>();
}

/// A reply value that counts its drops, to prove a late reply is not kept anywhere.
struct Tracked(Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn call_timeout_is_an_error_and_the_late_reply_is_refused_not_leaked() {
    init();
    enum Slow {
        Get(ReplyTo<Tracked>),
        Release,
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (refused_tx, refused_rx) = mpsc::channel();
    let d = drops.clone();
    let slow = spawn(move |mut ctx: Ctx<Slow>| {
        let Slow::Get(reply) = ctx.receive() else {
            panic!("expected Get")
        };
        // Answer only after the caller has given up.
        let Slow::Release = ctx.receive() else {
            panic!("expected Release")
        };
        let refused = reply.send(Tracked(d.clone())).is_err();
        refused_tx.send(refused).expect("test alive");
        // A fresh call after the timeout gets its own answer, not the stale one.
        let Slow::Get(reply) = ctx.receive() else {
            panic!("expected Get")
        };
        let _ = reply.send(Tracked(d));
    });
    let first = slow.call(Slow::Get, Duration::from_millis(20));
    assert!(matches!(first, Err(CallError::Timeout)));
    slow.send(Slow::Release).expect("alive");
    assert!(refused_rx.recv_timeout(WAIT).expect("late reply attempted"));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "refused reply was dropped at once"
    );
    let second = slow.call(Slow::Get, WAIT).expect("second call answered");
    drop(second);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn call_to_a_dead_process_reports_its_exit() {
    init();
    let c = spawn(counter);
    c.send(Counter::Crash("gone")).expect("alive");
    assert_eq!(
        c.pid().wait_exit(Some(WAIT)),
        Some(Exit::Panic("gone".into()))
    );
    assert_eq!(
        c.call(Counter::Get, WAIT),
        Err(CallError::Dead(Exit::Panic("gone".into())))
    );
}

#[test]
fn call_fails_fast_when_the_callee_dies_holding_the_request() {
    init();
    enum M {
        Get(ReplyTo<u8>),
    }
    let p = spawn(|mut ctx: Ctx<M>| {
        let M::Get(_reply) = ctx.receive();
        panic!("dies without answering");
    });
    // Fails with Dead long before the 60 s timeout.
    let started = std::time::Instant::now();
    let r = p.call(M::Get, Duration::from_secs(60));
    assert!(matches!(r, Err(CallError::Dead(Exit::Panic(_)))), "{r:?}");
    assert!(started.elapsed() < WAIT);
}

#[test]
fn fail_policy_hands_back_the_message_when_full() {
    init();
    let (gate_tx, gate_rx) = may::sync::mpsc::channel::<()>();
    let p = Spawn::new()
        .capacity(2)
        .overflow(Overflow::Fail)
        .spawn(move |mut ctx: Ctx<u32>| {
            let _ = gate_rx.recv();
            let mut got = Vec::new();
            while let Some(m) = ctx.receive_timeout(Duration::from_millis(50)) {
                got.push(m);
            }
        });
    p.send(1).expect("room");
    p.send(2).expect("room");
    match p.send(3) {
        Err(SendError::Full(3)) => {}
        other => panic!("expected Full(3), got {other:?}"),
    }
    gate_tx.send(()).expect("gate");
    assert_eq!(p.pid().wait_exit(Some(WAIT)), Some(Exit::Normal));
}

#[test]
fn block_policy_parks_the_sender_until_there_is_room() {
    init();
    let (gate_tx, gate_rx) = may::sync::mpsc::channel::<()>();
    let (sum_tx, sum_rx) = mpsc::channel();
    let p = Spawn::new().capacity(1).spawn(move |mut ctx: Ctx<u32>| {
        let _ = gate_rx.recv();
        let sum: u32 = (0..3).map(|_| ctx.receive()).sum();
        sum_tx.send(sum).expect("test alive");
    });
    let sender = {
        let p = p.clone();
        std::thread::spawn(move || {
            for k in 1..=3 {
                p.send(k).expect("alive");
            }
        })
    };
    // The sender fills the box with 1 and must wait for room for 2 and 3.
    common::eventually(WAIT, "first message queued", || p.mailbox_len() == 1);
    assert!(!sender.is_finished());
    gate_tx.send(()).expect("gate");
    assert_eq!(sum_rx.recv_timeout(WAIT), Ok(6));
    sender.join().expect("sender");
}

#[test]
fn a_panic_is_an_exit_reason_with_its_message_and_monitors_see_it() {
    init();
    let c = spawn(counter);
    let down = watch_exit(c.pid());
    c.send(Counter::Crash("counter exploded")).expect("alive");
    let down = down.recv_timeout(WAIT).expect("Down");
    assert_eq!(&down.pid, c.pid());
    assert_eq!(down.reason, Exit::Panic("counter exploded".into()));
}

#[test]
fn an_actor_monitor_gets_down_as_a_message() {
    init();
    enum W {
        Down(Down),
    }
    let target = spawn(counter);
    let (tx, rx) = mpsc::channel();
    let t = target.pid().clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    spawn(move |mut ctx: Ctx<W>| {
        ctx.monitor(&t, W::Down);
        ready_tx.send(()).expect("test alive");
        let W::Down(down) = ctx.receive();
        tx.send(down.reason).expect("test alive");
    });
    ready_rx.recv_timeout(WAIT).expect("monitor set");
    target.send(Counter::Crash("boom")).expect("alive");
    assert_eq!(rx.recv_timeout(WAIT), Ok(Exit::Panic("boom".into())));
}

#[test]
fn monitoring_a_dead_process_delivers_down_at_once() {
    init();
    let p = spawn(|ctx: Ctx<()>| ctx.stop(Exit::Shutdown));
    assert_eq!(p.pid().wait_exit(Some(WAIT)), Some(Exit::Shutdown));
    let down = watch_exit(p.pid());
    assert_eq!(
        down.recv_timeout(WAIT).expect("Down").reason,
        Exit::Shutdown
    );
}

#[test]
fn demonitor_means_no_down() {
    init();
    let c = spawn(counter);
    let (tx, rx) = mpsc::channel();
    let mref = monitor_with(c.pid(), move |d| {
        let _ = tx.send(d);
    });
    assert!(corral_actors::demonitor(&mref));
    c.send(Counter::Crash("x")).expect("alive");
    c.pid().wait_exit(Some(WAIT)).expect("exited");
    assert!(rx.try_recv().is_err());
}

#[test]
fn an_abnormal_exit_kills_linked_processes() {
    init();
    let a = spawn(counter);
    let b = spawn(counter);
    link(a.pid(), b.pid());
    b.send(Counter::Crash("b died")).expect("alive");
    let reason = a.pid().wait_exit(Some(WAIT)).expect("a died too");
    assert_eq!(
        reason,
        Exit::Linked(b.pid().clone(), Box::new(Exit::Panic("b died".into())))
    );
}

#[test]
fn a_normal_exit_does_not_propagate_through_a_link() {
    init();
    enum M {
        Stop,
    }
    let a = spawn(counter);
    let b = spawn(|mut ctx: Ctx<M>| {
        let M::Stop = ctx.receive();
    });
    link(a.pid(), b.pid());
    b.send(M::Stop).expect("alive");
    assert_eq!(b.pid().wait_exit(Some(WAIT)), Some(Exit::Normal));
    assert_eq!(a.call(Counter::Get, WAIT), Ok(0), "a is still alive");
}

#[test]
fn trapping_exits_turns_a_linked_crash_into_a_message() {
    init();
    enum M {
        Exit(ExitSignal),
        Get(ReplyTo<Vec<ExitSignal>>),
    }
    let trapper = spawn(|mut ctx: Ctx<M>| {
        ctx.trap_exit(M::Exit);
        let mut seen = Vec::new();
        loop {
            match ctx.receive() {
                M::Exit(sig) => seen.push(sig),
                M::Get(reply) => {
                    let _ = reply.send(seen.clone());
                }
            }
        }
    });
    // Make sure trap_exit has run before linking: a call round-trips through the body.
    assert_eq!(trapper.call(M::Get, WAIT), Ok(vec![]));
    let crasher = spawn(counter);
    link(trapper.pid(), crasher.pid());
    crasher.send(Counter::Crash("oops")).expect("alive");
    crasher.pid().wait_exit(Some(WAIT)).expect("crashed");
    let seen = trapper.call(M::Get, WAIT).expect("trapper alive");
    assert_eq!(
        seen,
        vec![ExitSignal {
            from: crasher.pid().clone(),
            reason: Exit::Panic("oops".into())
        }]
    );
}

#[test]
fn kill_cannot_be_trapped_and_interrupts_a_receive() {
    init();
    let p = spawn(|mut ctx: Ctx<ExitSignal>| {
        ctx.trap_exit(|s| s);
        loop {
            let _ = ctx.receive();
        }
    });
    kill(p.pid());
    assert_eq!(p.pid().wait_exit(Some(WAIT)), Some(Exit::Killed));
}

#[test]
fn receive_timeout_below_a_millisecond_still_wakes() {
    init();
    // may parks in whole milliseconds and reads 0 as "forever"; the mailbox rounds up.
    let p = spawn(|mut ctx: Ctx<u32>| {
        for us in [758u64, 10, 1500] {
            let t = std::time::Instant::now();
            assert_eq!(ctx.receive_timeout(Duration::from_micros(us)), None);
            assert!(t.elapsed() >= Duration::from_micros(us));
        }
    });
    assert_eq!(p.pid().wait_exit(Some(WAIT)), Some(Exit::Normal));
}

#[test]
fn an_exit_signal_stops_a_process_that_does_not_trap() {
    init();
    enum M {
        Stop(Pid),
    }
    let victim = spawn(counter);
    let sender = spawn(|mut ctx: Ctx<M>| {
        let M::Stop(pid) = ctx.receive();
        ctx.exit(&pid, Exit::Shutdown);
    });
    sender.send(M::Stop(victim.pid().clone())).expect("alive");
    assert_eq!(victim.pid().wait_exit(Some(WAIT)), Some(Exit::Shutdown));
}

#[test]
fn registry_names_are_unique_and_freed_on_exit() {
    init();
    let first = spawn(counter);
    register("registry-test", &first).expect("free name");
    let second = spawn(counter);
    assert!(
        register("registry-test", &second).is_err(),
        "live name is taken"
    );
    let found: Addr<Counter> = whereis("registry-test").expect("registered");
    assert_eq!(found.pid(), first.pid());
    assert!(
        whereis::<String>("registry-test").is_none(),
        "wrong type is not found"
    );

    let down = watch_exit(first.pid());
    first.send(Counter::Crash("bye")).expect("alive");
    down.recv_timeout(WAIT).expect("Down");
    // Unregistration happens before monitors are told.
    assert_eq!(whereis_pid("registry-test"), None);
    register("registry-test", &second).expect("name free again");
    kill(second.pid());
}

#[test]
fn spawn_with_a_taken_name_fails_without_starting() {
    init();
    let holder = Spawn::new().register("spawn-name-test").spawn(counter);
    let err = Spawn::new().register("spawn-name-test").try_spawn(counter);
    assert!(err.is_err());
    kill(holder.pid());
}

#[test]
fn watch_delivers_another_event_as_a_message() {
    init();
    #[derive(Debug, PartialEq)]
    enum M {
        Msg(u32),
        Closed(usize),
    }
    let (sock_tx, sock_rx) = may::sync::mpsc::channel::<usize>();
    let (out_tx, out_rx) = mpsc::channel();
    let p = spawn(move |mut ctx: Ctx<M>| {
        // Stand-in for "the socket closed": a blocking receive on another channel.
        let _watch = ctx.watch(move || sock_rx.recv().unwrap_or(0), M::Closed);
        loop {
            let m = ctx.receive();
            let done = matches!(m, M::Closed(_));
            out_tx.send(m).expect("test alive");
            if done {
                break;
            }
        }
    });
    p.send(M::Msg(1)).expect("alive");
    assert_eq!(out_rx.recv_timeout(WAIT), Ok(M::Msg(1)));
    sock_tx.send(7).expect("watcher alive");
    assert_eq!(out_rx.recv_timeout(WAIT), Ok(M::Closed(7)));
    assert_eq!(p.pid().wait_exit(Some(WAIT)), Some(Exit::Normal));
}

#[test]
fn dropping_a_watch_kills_its_helper() {
    init();
    let (_never_tx, never_rx) = may::sync::mpsc::channel::<()>();
    let (helper_tx, helper_rx) = mpsc::channel();
    let p = spawn(move |ctx: Ctx<()>| {
        let w = ctx.watch(move || never_rx.recv().is_ok(), |_| ());
        helper_tx.send(format!("{w:?}")).expect("test alive");
    });
    assert_eq!(p.pid().wait_exit(Some(WAIT)), Some(Exit::Normal));
    let dbg = helper_rx.recv_timeout(WAIT).expect("watch made");
    assert!(dbg.contains("helper"));
}
