//! The server's supervision tree (an OTP one_for_one supervisor from `corral_actors`):
//!
//! - `cost-merger` merges the per-scheduler cost shards every `merge_interval_ms` into the
//!   table placement reads, and publishes each scheduler's utilisation over that interval;
//! - `listener` owns the acceptor thread. It is registered as `corral.listener.<port>`;
//!   killing it (or its thread dying) restarts it with a new thread on the same listening
//!   socket, so no waiting connection is lost.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_actors::{ChildSpec, Ctx, Spawn, StartError, Strategy, SupRef, Supervisor};

use super::accept::spawn_acceptor;
use crate::server::Shared;

/// More than this many restarts within `RESTART_PERIOD` and the tree gives up (OTP's
/// intensity). Generous: a listener crash loop should still be noticed, not tolerated.
const MAX_RESTARTS: u32 = 10;
const RESTART_PERIOD: Duration = Duration::from_secs(10);

/// The registered name of a server's listener process.
pub fn listener_name(port: u16) -> String {
    format!("corral.listener.{port}")
}

enum ListenerMsg {
    AcceptorDied(String),
}

pub fn start(
    shared: &Arc<Shared>,
    listener: Arc<TcpListener>,
    port: u16,
) -> Result<SupRef, StartError> {
    let merger_shared = shared.clone();
    let listener_shared = shared.clone();
    Supervisor::new(Strategy::OneForOne)
        .intensity(MAX_RESTARTS, RESTART_PERIOD)
        .child(ChildSpec::new("cost-merger", move || {
            let shared = merger_shared.clone();
            Spawn::new().spawn(move |ctx: Ctx<()>| merge_costs(ctx, &shared))
        }))
        .child(ChildSpec::new("listener", move || {
            let (shared, listener) = (listener_shared.clone(), listener.clone());
            Spawn::new()
                .register(listener_name(port))
                .spawn(move |ctx| run_listener(ctx, listener, shared))
        }))
        .start()
}

fn merge_costs(mut ctx: Ctx<()>, shared: &Shared) {
    let interval = Duration::from_millis(shared.config.placement.merge_interval_ms);
    let (mut seen, mut busy_seen) = (Vec::new(), Vec::new());
    let mut last = Instant::now();
    loop {
        ctx.receive_timeout(interval);
        shared.costs.merge(&mut seen);
        // Measured, not assumed: a tick may come late on a busy box.
        let now = Instant::now();
        shared.costs.publish_utilisation(&mut busy_seen, now - last);
        last = now;
    }
}

/// Holds the acceptor thread for as long as this process lives.
fn run_listener(mut ctx: Ctx<ListenerMsg>, listener: Arc<TcpListener>, shared: Arc<Shared>) {
    let me = ctx.addr();
    let _thread = match spawn_acceptor(listener, shared, move |why| {
        let _ = me.send(ListenerMsg::AcceptorDied(why));
    }) {
        Ok(thread) => thread,
        Err(err) => panic!("cannot start the acceptor thread: {err}"),
    };
    match ctx.receive() {
        ListenerMsg::AcceptorDied(why) => panic!("acceptor thread died: {why}"),
    }
}
