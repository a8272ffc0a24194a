//! Adopted processes: a process made of code that already runs (a server's connection),
//! with a lazily used mailbox, the registry, links, monitors and kills.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{WAIT, init};
use corral_actors::{
    Adopted, Ctx, Down, Exit, Pid, Spawn, kill, link, monitor_with, register, whereis,
};

fn adopt<M: Send + 'static>() -> Adopted<M> {
    Spawn::new().adopt().expect("no name to clash")
}

fn watch_exit(pid: &Pid) -> mpsc::Receiver<Down> {
    let (tx, rx) = mpsc::channel();
    monitor_with(pid, move |down| {
        let _ = tx.send(down);
    });
    rx
}

#[test]
fn an_adopted_process_receives_what_is_sent_to_its_address() {
    init();
    let me = adopt::<String>();
    let addr = me.addr();
    // A spawned process sends to it, from another coroutine.
    Spawn::new().spawn(move |_: Ctx<()>| {
        addr.send("hello".to_string()).expect("alive");
    });
    assert_eq!(me.receive(), Ok("hello".to_string()));
    assert_eq!(me.receive_timeout(Duration::from_millis(5)), Ok(None));
}

#[test]
fn its_end_is_a_normal_exit_that_frees_its_names_and_tells_monitors() {
    init();
    let me = adopt::<u8>();
    let name = format!("adopted.{}", me.pid().id());
    register(name.clone(), &me.addr()).expect("free name");
    assert!(whereis::<u8>(&name).is_some());
    let downs = watch_exit(me.pid());
    let pid = me.pid().clone();
    drop(me);
    let down = downs.recv_timeout(WAIT).expect("a Down");
    assert_eq!(down.pid, pid);
    assert_eq!(down.reason, Exit::Normal);
    assert!(whereis::<u8>(&name).is_none(), "the name is freed");
    assert!(!pid.is_alive());
}

#[test]
fn a_linked_crash_interrupts_a_waiting_receive_and_runs_on_next() {
    init();
    let me = adopt::<u8>();
    let (rang_tx, rang) = mpsc::channel();
    me.on_next(move || {
        let _ = rang_tx.send(());
    });
    let crasher = Spawn::new().spawn(|mut ctx: Ctx<()>| {
        ctx.receive();
        panic!("the linked actor crashes");
    });
    me.link(crasher.pid());
    let downs = watch_exit(me.pid());
    crasher.send(()).expect("alive");
    match me.receive() {
        Err(Exit::Linked(from, why)) => {
            assert_eq!(&from, crasher.pid());
            assert_eq!(*why, Exit::Panic("the linked actor crashes".into()));
        }
        other => panic!("expected the linked exit, got {other:?}"),
    }
    rang.recv_timeout(WAIT).expect("on_next ran");
    assert!(me.exit_signal().is_some());
    drop(me);
    let down = downs.recv_timeout(WAIT).expect("a Down");
    assert!(matches!(down.reason, Exit::Linked(..)), "{:?}", down.reason);
}

#[test]
fn kill_reaches_it_from_another_thread() {
    init();
    let me = adopt::<u8>();
    let pid = me.pid().clone();
    let killer = std::thread::spawn(move || kill(&pid));
    assert_eq!(me.receive(), Err(Exit::Killed));
    killer.join().expect("killer thread");
}

#[test]
fn on_next_runs_for_a_message_and_its_normal_exit_does_not_kill_links() {
    init();
    let me = adopt::<u8>();
    let peer = Spawn::new().spawn(|mut ctx: Ctx<()>| ctx.receive());
    link(me.pid(), peer.pid());
    let (tx, rx) = mpsc::channel();
    me.on_next(move || {
        let _ = tx.send(());
    });
    me.addr().send(7).expect("alive");
    rx.recv_timeout(WAIT).expect("on_next ran at the message");
    assert_eq!(me.try_receive(), Ok(Some(7)));
    me.exit(Exit::Normal);
    assert!(peer.is_alive(), "a normal exit does not propagate");
    peer.send(()).expect("alive");
    assert_eq!(peer.pid().wait_exit(Some(WAIT)), Some(Exit::Normal));
}
