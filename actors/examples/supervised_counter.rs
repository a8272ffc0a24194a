//! Run with: `cargo run -p corral-actors --example supervised_counter`
//!
//! A counter under a supervisor: it crashes, the supervisor starts a fresh one under the
//! same name, and callers find it again with `whereis`.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use corral_actors::{
    Addr, ChildSpec, Ctx, ReplyTo, Spawn, Strategy, Supervisor, quiet_kill_panics, whereis,
};

enum Counter {
    Add(u64),
    Get(ReplyTo<u64>),
    Crash,
}

fn counter(mut ctx: Ctx<Counter>) {
    let mut n = 0;
    loop {
        match ctx.receive() {
            Counter::Add(k) => n += k,
            Counter::Get(reply) => {
                let _ = reply.send(n);
            }
            Counter::Crash => panic!("counter crashed at {n}"),
        }
    }
}

fn main() {
    may::config().set_workers(2); // before the first spawn: may's runtime is global
    quiet_kill_panics();

    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5)) // at most 3 restarts in 5 s
        .child(ChildSpec::new("counter", || {
            Spawn::new().register("counter").spawn(counter)
        }))
        .start()
        .expect("counter starts");

    let timeout = Duration::from_secs(1);
    let c: Addr<Counter> = whereis("counter").expect("registered");
    c.send(Counter::Add(41)).expect("alive");
    println!("before: {:?}", c.call(Counter::Get, timeout));

    c.send(Counter::Crash).expect("alive");
    c.pid().wait_exit(Some(timeout)).expect("crashed"); // Exit::Panic("counter crashed at 41")

    // The crash reached the supervisor's mailbox before our wait returned, so this call is
    // answered after the restart. The new counter has the name (and fresh state).
    sup.which_children().expect("supervisor alive");
    let c: Addr<Counter> = whereis("counter").expect("restarted");
    println!("after:  {:?}", c.call(Counter::Get, timeout));
    println!("{}", sup.tree().expect("tree"));
    sup.stop().expect("stops");
}
