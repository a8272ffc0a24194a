//! `server.coroutine_pool` reaches may (its own binary: may is process-global, and every
//! other test binary starts it with the default). may fills its pool when its scheduler
//! starts, so Corral raises the capacity only after: the pool then keeps what ended
//! connections hand back instead of holding that many stacks from the start.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, test_config};

#[test]
fn the_configured_coroutine_pool_is_may_s_after_start() {
    let mut config = test_config();
    config.server.coroutine_pool = 4321;
    assert_ne!(corral::may::config().get_pool_capacity(), 4321);
    let router = common::app::demo::router(&config);
    let server = TestServer::start(config, router);
    assert_eq!(corral::may::config().get_pool_capacity(), 4321);
    let reply = server.client().get("/plaintext");
    assert_eq!(reply.status, 200);
}
