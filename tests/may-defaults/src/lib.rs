//! The checks are the integration tests, one process each, because may's scheduler is
//! process-global and Corral checks it once per process. This is only their shared config.

use corral::Config;

/// The embedded default on an ephemeral loopback port with 2 schedulers.
pub fn test_config() -> Config {
    let mut config = Config::embedded();
    config.server.listen = "127.0.0.1:0".into();
    config.server.workers = 2;
    config
}
