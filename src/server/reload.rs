//! Reconfiguring a running server, as nginx does on SIGHUP: the values every request,
//! accept or log line reads anew change at once; the rest (the listening socket, the
//! schedulers, their stacks, the application) would need a new process, so a change to them
//! is reported and the running value kept. No connection is closed.

use std::sync::MutexGuard;

use super::Server;
use crate::config::{Config, ConfigError};
use crate::conn::live;

/// What [`Server::reconfigure`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Keys whose new value is in effect now, dotted (`limits.max_body_bytes`).
    pub applied: Vec<String>,
    /// Keys whose new value waits for a restart (`server.listen`, `server.workers`,
    /// `server.stack_size_bytes`, `server.app`, ...); the server keeps running with the old.
    pub needs_restart: Vec<String>,
}

impl Server {
    /// Applies `config` to the running server. Takes effect at once: `limits.*` and
    /// `timeouts.*` (from each connection's next request on: a hibernated connection keeps
    /// the deadline it went to sleep with), `placement.policy` (from the next accepted
    /// connection), `placement.at_wake` (from the next wake), `log.level` (`log::set_max_level`), `server.drain_timeout_ms` (for
    /// [`Server::run`]'s drain) and `server.drain_delay_ms` (for every drain). Any other key that differs is listed in
    /// [`Reconfigured::needs_restart`] and keeps its running value. No connection is closed.
    ///
    /// A configuration that fails [`Config::validate`] is refused with the error
    /// [`Server::start`] would give, and nothing changes.
    pub fn reconfigure(&self, config: Config) -> Result<Reconfigured, ConfigError> {
        config.validate()?;
        let mut running = self.running();
        let (applied, needs_restart) = running
            .changes(&config)
            .into_iter()
            .map(|change| change.key)
            .partition(|key| Config::is_live_key(key));
        if running.log != config.log {
            log::set_max_level(config.log.level.filter());
        }
        running.take_live(&config);
        self.shared.live.set(live::Settings {
            limits: running.limits,
            timeouts: running.timeouts,
        });
        self.shared.placement.set_policy(running.placement.policy);
        self.shared.placement.set_at_wake(running.placement.at_wake);
        Ok(Reconfigured {
            applied,
            needs_restart,
        })
    }

    /// The configuration in effect: the one it started with, with the live keys of every
    /// [`Server::reconfigure`] since.
    pub fn config(&self) -> Config {
        self.running().clone()
    }

    fn running(&self) -> MutexGuard<'_, Config> {
        // Held only to copy or diff plain values: nothing panics while it is held.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// SIGHUP: loads the configuration again from its sources and applies it, logging what
    /// changed, what needs a restart, or why the new one was refused.
    pub(super) fn reload(&self) {
        let running = self.config();
        let loaded = match running.reload() {
            None => {
                log::warn!(
                    "SIGHUP: this configuration was not loaded from a file, environment or \
                     flags (Config::load): nothing to reload"
                );
                return;
            }
            // The text `corral` prints when it cannot start with this configuration.
            Some(Err(err)) => {
                log::error!("SIGHUP: config error: {err}; the running configuration stays");
                return;
            }
            Some(Ok(config)) => config,
        };
        let changes = running.changes(&loaded);
        match self.reconfigure(loaded) {
            Err(err) => log::error!("SIGHUP: config error: {err}; the running configuration stays"),
            Ok(done) => {
                for change in changes
                    .iter()
                    .filter(|c| done.needs_restart.contains(&c.key))
                {
                    log::warn!(
                        "SIGHUP: `{}` changed ({} -> {}) but needs a restart: the server \
                         keeps {}",
                        change.key,
                        change.old,
                        change.new,
                        change.old
                    );
                }
                match done.applied.is_empty() {
                    true => log::info!("SIGHUP: configuration reloaded; nothing to apply"),
                    false => log::info!(
                        "SIGHUP: configuration reloaded; applied {}",
                        done.applied.join(", ")
                    ),
                }
            }
        }
    }
}
