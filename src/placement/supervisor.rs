//! The server's supervision tree (an OTP one_for_one supervisor from `corral_actors`):
//!
//! - `cost-merger` merges the per-scheduler cost shards every `merge_interval_ms` into the
//!   table placement reads, and publishes each scheduler's utilisation over that interval;
//! - the layers above add their own children between the two (`server.rs` passes them in:
//!   placement knows nothing of them): stand-ins for the doorkeepers and the wards, threads
//!   and coroutines that are not processes themselves (`runtime::vigil`);
//! - `listener` owns the acceptors (a coroutine per scheduler). It is registered as
//!   `corral.listener.<port>`; killing it (or an acceptor dying) restarts it with new
//!   acceptors on the same listening socket, so no waiting connection is lost. It starts last, once everything a connection
//!   may need runs, and stops first.
//!
//! Past its restart intensity the tree stops all its children and exits; the server treats
//! that as fatal (`Server::run` returns an error).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_actors::{ChildSpec, Ctx, Spawn, StartError, Strategy, SupRef, Supervisor};

use super::Placement;
use super::accept::{Acceptance, spawn_acceptors};

/// More than this many restarts within `RESTART_PERIOD` and the tree gives up (OTP's
/// intensity). Generous: a listener crash loop should still be noticed, not tolerated.
const MAX_RESTARTS: u32 = 10;
const RESTART_PERIOD: Duration = Duration::from_secs(10);

/// The registered name of a server's listener process.
pub(crate) fn listener_name(port: u16) -> String {
    format!("corral.listener.{port}")
}

enum ListenerMsg {
    AcceptorDied(String),
}

/// Starts the tree: the cost merger (every `merge_interval`), then `others` in order, then
/// the listener on `listener`.
pub(crate) fn start(
    with: Acceptance,
    listener: Arc<TcpListener>,
    port: u16,
    merge_interval: Duration,
    others: Vec<ChildSpec>,
) -> Result<SupRef, StartError> {
    let placement = with.placement.clone();
    let tree = Supervisor::new(Strategy::OneForOne)
        .intensity(MAX_RESTARTS, RESTART_PERIOD)
        .child(ChildSpec::new("cost-merger", move || {
            let placement = placement.clone();
            Spawn::new().spawn(move |ctx: Ctx<()>| merge_costs(ctx, &placement, merge_interval))
        }));
    others
        .into_iter()
        .fold(tree, Supervisor::child)
        .child(ChildSpec::new("listener", move || {
            let (with, listener) = (with.clone(), listener.clone());
            Spawn::new()
                .register(listener_name(port))
                .spawn(move |ctx| run_listener(ctx, listener, with))
        }))
        .start()
}

fn merge_costs(mut ctx: Ctx<()>, placement: &Placement, interval: Duration) {
    let (mut seen, mut busy_seen) = (Vec::new(), Vec::new());
    let mut last = Instant::now();
    loop {
        ctx.receive_timeout(interval);
        placement.costs.merge(&mut seen);
        // Measured, not assumed: a tick may come late on a busy box.
        let now = Instant::now();
        placement
            .costs
            .publish_utilisation(&mut busy_seen, now - last);
        last = now;
    }
}

/// Holds the acceptors for as long as this process lives.
fn run_listener(mut ctx: Ctx<ListenerMsg>, listener: Arc<TcpListener>, with: Acceptance) {
    let me = ctx.addr();
    let _acceptors = match spawn_acceptors(&listener, with, move |why| {
        let _ = me.send(ListenerMsg::AcceptorDied(why));
    }) {
        Ok(acceptors) => acceptors,
        Err(err) => panic!("cannot start the acceptors: {err}"),
    };
    match ctx.receive() {
        ListenerMsg::AcceptorDied(why) => panic!("an acceptor died: {why}"),
    }
}
