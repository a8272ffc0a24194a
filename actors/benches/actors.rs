//! Actor costs beside the same operation on a bare `may::sync::mpsc` channel and on
//! `std::thread` + `std::sync::mpsc`, measured in one run on 2 may workers.
//!
//! Run with: `CARGO_TARGET_DIR=/work/target-actors cargo bench -p corral-actors --bench actors`
//!
//! Each figure is the median of `RUNS` runs, in nanoseconds per operation.
//! "Different workers" means the two coroutines *start* on workers 0 and 1. may queues a
//! woken coroutine on the waker's worker (`Scheduler::schedule`), so a receiver that parks is
//! pulled onto its sender's worker; ping-pong pairs converge to one worker after the first
//! exchange, and a busy receiver (never parked) stays where it is.
#![allow(clippy::print_stdout)]

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use corral_actors::{Ctx, ReplyTo, Spawn};
use may::coroutine::Builder;
use may::sync::mpsc as may_mpsc;

const RUNS: usize = 5;
const SPAWNS: usize = 10_000;
const THREAD_SPAWNS: usize = 1_000;
const CALLS: usize = 20_000;
const SENDS: usize = 200_000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn per_op(runs: impl Fn() -> (Duration, usize)) -> f64 {
    median(
        (0..RUNS)
            .map(|_| {
                let (d, n) = runs();
                d.as_nanos() as f64 / n as f64
            })
            .collect(),
    )
}

// `call` always waits with a timeout, so its wait registers a may timer; the may-channel
// baseline is shown both with a plain `recv` and with `recv_timeout` to separate that cost.

/// Run `f` in a coroutine on worker `worker` and return its result.
fn on_worker<T: Send + 'static>(worker: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    // SAFETY: benchmark bodies use no thread-locals and little stack.
    #[allow(unsafe_code)]
    let h = unsafe { Builder::new().id(worker).spawn(f) }.expect("spawn coroutine");
    h.join().expect("bench coroutine")
}

// ---- spawn + exit -------------------------------------------------------------------------

fn spawn_actor() -> (Duration, usize) {
    let (tx, rx) = may_mpsc::channel();
    let t = Instant::now();
    for _ in 0..SPAWNS {
        let tx = tx.clone();
        Spawn::new().spawn(move |_: Ctx<()>| {
            let _ = tx.send(());
        });
    }
    for _ in 0..SPAWNS {
        rx.recv().expect("exit report");
    }
    (t.elapsed(), SPAWNS)
}

fn spawn_coroutine() -> (Duration, usize) {
    let (tx, rx) = may_mpsc::channel();
    let t = Instant::now();
    for _ in 0..SPAWNS {
        let tx = tx.clone();
        may::go!(move || {
            let _ = tx.send(());
        });
    }
    for _ in 0..SPAWNS {
        rx.recv().expect("exit report");
    }
    (t.elapsed(), SPAWNS)
}

fn spawn_thread() -> (Duration, usize) {
    let t = Instant::now();
    for _ in 0..THREAD_SPAWNS {
        std::thread::spawn(|| {}).join().expect("thread");
    }
    (t.elapsed(), THREAD_SPAWNS)
}

// ---- call round trip ----------------------------------------------------------------------

enum Req {
    Add(u64, ReplyTo<u64>),
}

fn call_actor(client: usize, server: usize) -> (Duration, usize) {
    let addr = Spawn::new().worker(server).spawn(|mut ctx: Ctx<Req>| {
        loop {
            let Req::Add(x, reply) = ctx.receive();
            let _ = reply.send(x + 1);
        }
    });
    let a = addr.clone();
    let d = on_worker(client, move || {
        let t = Instant::now();
        for i in 0..CALLS as u64 {
            let r = a
                .call(|reply| Req::Add(i, reply), Duration::from_secs(5))
                .expect("reply");
            assert_eq!(r, i + 1);
        }
        t.elapsed()
    });
    addr.pid().kill();
    (d, CALLS)
}

fn call_may(client: usize, server: usize, timed: bool) -> (Duration, usize) {
    let (req_tx, req_rx) = may_mpsc::channel::<u64>();
    let (rep_tx, rep_rx) = may_mpsc::channel::<u64>();
    // SAFETY: as above.
    #[allow(unsafe_code)]
    let srv = unsafe {
        Builder::new().id(server).spawn(move || {
            while let Ok(x) = req_rx.recv() {
                if rep_tx.send(x + 1).is_err() {
                    break;
                }
            }
        })
    }
    .expect("spawn");
    let d = on_worker(client, move || {
        let t = Instant::now();
        for i in 0..CALLS as u64 {
            req_tx.send(i).expect("server alive");
            let r = if timed {
                rep_rx.recv_timeout(Duration::from_secs(5)).expect("reply")
            } else {
                rep_rx.recv().expect("reply")
            };
            assert_eq!(r, i + 1);
        }
        t.elapsed()
    });
    srv.join().expect("server");
    (d, CALLS)
}

fn call_thread() -> (Duration, usize) {
    let (req_tx, req_rx) = std_mpsc::channel::<u64>();
    let (rep_tx, rep_rx) = std_mpsc::channel::<u64>();
    let srv = std::thread::spawn(move || {
        while let Ok(x) = req_rx.recv() {
            if rep_tx.send(x + 1).is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    for i in 0..CALLS as u64 {
        req_tx.send(i).expect("server alive");
        assert_eq!(rep_rx.recv().expect("reply"), i + 1);
    }
    let d = t.elapsed();
    drop(req_tx);
    srv.join().expect("server");
    (d, CALLS)
}

// ---- one-way send throughput --------------------------------------------------------------

fn send_actor(sender: usize, receiver: usize, capacity: usize) -> (Duration, usize) {
    let (done_tx, done_rx) = may_mpsc::channel();
    let addr = Spawn::new()
        .worker(receiver)
        .capacity(capacity)
        .spawn(move |mut ctx: Ctx<u64>| {
            let mut sum = 0u64;
            for _ in 0..SENDS {
                sum += ctx.receive();
            }
            let _ = done_tx.send(sum);
        });
    let d = on_worker(sender, move || {
        let t = Instant::now();
        for i in 0..SENDS as u64 {
            addr.send(i).expect("alive");
        }
        let sum = done_rx.recv().expect("done");
        assert_eq!(sum, (SENDS as u64 - 1) * SENDS as u64 / 2);
        t.elapsed()
    });
    (d, SENDS)
}

fn send_may(sender: usize, receiver: usize) -> (Duration, usize) {
    let (tx, rx) = may_mpsc::channel::<u64>();
    let (done_tx, done_rx) = may_mpsc::channel();
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        Builder::new().id(receiver).spawn(move || {
            let mut sum = 0u64;
            for _ in 0..SENDS {
                sum += rx.recv().expect("sender alive");
            }
            let _ = done_tx.send(sum);
        })
    }
    .expect("spawn");
    let d = on_worker(sender, move || {
        let t = Instant::now();
        for i in 0..SENDS as u64 {
            tx.send(i).expect("alive");
        }
        let sum = done_rx.recv().expect("done");
        assert_eq!(sum, (SENDS as u64 - 1) * SENDS as u64 / 2);
        t.elapsed()
    });
    (d, SENDS)
}

fn send_thread() -> (Duration, usize) {
    let (tx, rx) = std_mpsc::channel::<u64>();
    let rcv = std::thread::spawn(move || rx.iter().take(SENDS).sum::<u64>());
    let t = Instant::now();
    for i in 0..SENDS as u64 {
        tx.send(i).expect("alive");
    }
    let sum = rcv.join().expect("receiver");
    assert_eq!(sum, (SENDS as u64 - 1) * SENDS as u64 / 2);
    (t.elapsed(), SENDS)
}

fn row(name: &str, actor: f64, may: f64, thread: f64) {
    println!(
        "| {name:<46} | {actor:>9.0} | {may:>9.0} | {thread:>9.0} | {:>5.2}x |",
        actor / may
    );
}

fn main() {
    may::config().set_workers(2);
    corral_actors::quiet_kill_panics();
    println!("ns per operation, median of {RUNS} runs, 2 may workers");
    println!(
        "| {:<46} | {:>9} | {:>9} | {:>9} | {:>6} |",
        "operation", "actor", "may chan", "std thrd", "a/may"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(48),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(11),
        "-".repeat(8)
    );
    row(
        "spawn + exit (thread: spawn + join)",
        per_op(spawn_actor),
        per_op(spawn_coroutine),
        per_op(spawn_thread),
    );
    let threads_call = per_op(call_thread);
    row(
        "call round trip, same worker",
        per_op(|| call_actor(0, 0)),
        per_op(|| call_may(0, 0, false)),
        threads_call,
    );
    row(
        "  same, may side with recv_timeout (a timer)",
        per_op(|| call_actor(0, 0)),
        per_op(|| call_may(0, 0, true)),
        threads_call,
    );
    row(
        "call round trip, started on different workers",
        per_op(|| call_actor(0, 1)),
        per_op(|| call_may(0, 1, false)),
        threads_call,
    );
    let threads_send = per_op(send_thread);
    row(
        "one-way send, same worker (unbounded box)",
        per_op(|| send_actor(0, 0, SENDS)),
        per_op(|| send_may(0, 0)),
        threads_send,
    );
    row(
        "one-way send, different workers (unbounded)",
        per_op(|| send_actor(0, 1, SENDS)),
        per_op(|| send_may(0, 1)),
        threads_send,
    );
    row(
        "one-way send, same worker, box of 1024",
        per_op(|| send_actor(0, 0, 1024)),
        per_op(|| send_may(0, 0)),
        threads_send,
    );
    row(
        "one-way send, different workers, box of 1024",
        per_op(|| send_actor(0, 1, 1024)),
        per_op(|| send_may(0, 1)),
        threads_send,
    );
}
