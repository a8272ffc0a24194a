//! Typed configuration: embedded default → `--config FILE` → `CORRAL_*` env → CLI flags.
//!
//! `config/default.toml` is compiled in and lists every key, so it doubles as the schema: a
//! key in a user's file that the default lacks is unknown, and a value whose TOML type differs
//! from the default's is a type error. Both are caught on the file's own table, so the error
//! names the file and the key. Semantic checks (`validate`) name where the bad value came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::parse::MAX_HEADERS_CAP;
pub use crate::placement::policy::Policy;

/// The embedded default configuration (every key, with comments and units).
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

const DEFAULT_ORIGIN: &str = "embedded config/default.toml";

/// The most scheduler threads we accept; more is almost certainly a typo.
const MAX_WORKERS: usize = 1024;
/// Smallest coroutine stack we accept: the connection loop itself needs ~8 KiB.
const MIN_STACK_BYTES: usize = 16 * 1024;
/// The most `limits.max_connections` we accept (2^24): far past any descriptor limit.
const MAX_CONNECTIONS: usize = 1 << 24;
/// `limits.max_websocket_message_bytes` bounds: a ping's payload can be 125 bytes, so a
/// smaller limit would refuse control frames; past 1 GiB a typo is likelier than a need.
const MIN_WEBSOCKET_MESSAGE_BYTES: usize = 125;
const MAX_WEBSOCKET_MESSAGE_BYTES: usize = 1 << 30;
/// The longest any `*_ms` timeout or interval may be: 24 h. Longer is almost certainly a
/// typo, and a deadline `Instant::now() + timeout` must stay representable (an overflow
/// panics the thread computing it: a ward, a connection).
const MAX_MS: u64 = 86_400_000;
/// `server.listen_backlog` at most: Linux's own `somaxconn` default ceiling is 4096, and a
/// longer queue of unaccepted connections is more likely a typo than a need.
const MAX_LISTEN_BACKLOG: u32 = 65_535;

/// Why a configuration was refused; the message names the key and where its value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key that is unknown, of the wrong type or out of range.
    /// `origin` is a file path, a `CORRAL_*` variable or a `--flag`.
    #[error("{origin}: `{key}`: {problem}")]
    Invalid {
        /// Where the bad value came from (`embedded config/default.toml` for a default).
        origin: String,
        /// The dotted key, e.g. `server.workers` (`?` if the table as a whole did not fit).
        key: String,
        /// What is wrong with the value and, where there is a rule, what it must be.
        problem: String,
    },
    /// The `--config` file is not valid TOML.
    /// toml's message points at the line and column.
    #[error("{}: {err}", path.display())]
    Toml {
        /// The file given with `--config`.
        path: PathBuf,
        /// The syntax error, with its line and column.
        err: toml::de::Error,
    },
    /// The `--config` file could not be read.
    #[error("{}: cannot read: {err}", path.display())]
    Read {
        /// The file given with `--config`.
        path: PathBuf,
        /// Why it could not be read (not found, no permission, ...).
        err: std::io::Error,
    },
}

/// The whole configuration, one field per table of `config/default.toml`: start from
/// [`Config::embedded`], or layer a file, env and flags over it with [`Config::load`] (which
/// remembers them, so [`Config::reload`] can read them again).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the listening address, the schedulers and the shutdown drain.
    pub server: ServerConfig,
    /// `[placement]`: how new connections are spread over the schedulers.
    pub placement: PlacementConfig,
    /// `[limits]`: how large a request may be.
    pub limits: Limits,
    /// `[timeouts]`: how long each phase of a request or connection may take.
    pub timeouts: Timeouts,
    /// `[log]`: how much is logged.
    pub log: LogConfig,
    /// `[runtime]`: the watchdog of stuck schedulers.
    pub runtime: RuntimeConfig,
    /// `[pubsub]`: where the built-in apps' topics live (this process, or a Redis).
    pub pubsub: PubsubConfig,
    /// `[demo]`: settings of the `corral` binary's built-in apps.
    pub demo: DemoConfig,
    /// Where each key's value came from, for error messages (`server.workers` → `--workers`).
    #[serde(skip)]
    origins: BTreeMap<String, String>,
    /// What [`Config::load`] read this from, for [`Config::reload`] (`None`: not loaded).
    #[serde(skip)]
    sources: Option<Sources>,
}

/// Keys (or whole tables, ending in `.`) a running server takes from a reload: what each
/// request, accept or log line reads anew. `Config::take_live` copies exactly these.
const LIVE_KEYS: &[&str] = &[
    "limits.",
    "timeouts.",
    "placement.policy",
    "placement.at_wake",
    "log.level",
    "server.drain_timeout_ms",
    "server.drain_delay_ms",
];

/// One key whose value differs between two configurations (`Config::changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// Dotted, e.g. `limits.max_body_bytes`.
    pub key: String,
    /// The values as JSON text (`8388608`, `"127.0.0.1:8080"`).
    pub old: String,
    pub new: String,
}

/// The file, environment and flags a configuration was loaded from.
#[derive(Debug, Clone)]
struct Sources {
    cli: CliOverrides,
    env: EnvOverrides,
}

/// The `[server]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, IPv4 or `[IPv6]:port` (default `127.0.0.1:8080`). Env
    /// `CORRAL_LISTEN`, flag `--listen`.
    pub listen: String,
    /// Scheduler (may worker) threads, each pinned to a core (default 0). Env
    /// `CORRAL_WORKERS`, flag `--workers`.
    /// 0 = one per core.
    pub workers: usize,
    /// Coroutine stack per connection, bytes (default 65536). Fixed: overflowing it crashes
    /// the process. A multiple of 16, at least 16384.
    pub stack_size_bytes: usize,
    /// Ended connection coroutines kept, stack and all, for the next connections (default
    /// 1000, may's own; at most 2^24). A new connection then costs no stack `mmap`, page
    /// faults or `munmap`; a burst leaves up to this many stacks resident (the pages each
    /// touched), and hibernated connections hand theirs back too: a large pool keeps part of
    /// what hibernation frees.
    pub coroutine_pool: usize,
    /// Which built-in application the `corral` binary serves (default `demo`). Flag `--app`.
    pub app: AppKind,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before exit, ms
    /// (default 5000).
    pub drain_timeout_ms: u64,
    /// At the start of a drain, how long the server keeps accepting — every answer saying
    /// `Connection: close`, [`Request::server_draining`](crate::Request::server_draining)
    /// true (the demo's `GET /healthz` answers 503) — before it closes its listening socket,
    /// ms (default 0). Gives a load balancer's health check time to take it out of rotation
    /// before a connect would be refused.
    pub drain_delay_ms: u64,
    /// Bind with `SO_REUSEPORT`, so that another process can listen on the same address and
    /// take over while this one drains (default false). Without `net.ipv4.tcp_migrate_req = 1`
    /// (Linux 5.14+) the connections still queued when a listener closes are reset: Corral
    /// warns at start if it is 0. Needs a restart to change.
    pub reuse_port: bool,
    /// How long the kernel holds a new connection that has sent nothing yet before the
    /// server sees it, ms (default 1000; 0: at once). Linux's `TCP_DEFER_ACCEPT`, nginx's
    /// `listen … deferred`: an accepted connection then has its request waiting, so it is
    /// read and answered in one go and never holds a coroutine while its client is slow to
    /// send, and a connection that sends nothing costs the server nothing until then.
    /// Whole seconds to the kernel (rounded up). Needs a restart.
    pub defer_accept_ms: u64,
    /// How many connections the kernel queues for the server to accept (default 4096,
    /// 1–65535; nginx's `listen … backlog=`). Linux caps it at `net.core.somaxconn`, and
    /// Corral warns at start if it does. Past it, the kernel drops new handshakes, and their
    /// clients retry after a second. Needs a restart.
    pub listen_backlog: u32,
}

/// The built-in applications the `corral` binary can serve (`server.app`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// The showcase routes (`GET /` lists them).
    Demo,
    /// Every request answered with a JSON description of itself (HTTP Garden's echo form).
    Echo,
    /// A chat page on Server-Sent Events and long-polling (`examples/chat.rs`).
    Chat,
}

/// The `[placement]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    /// How a new connection picks its scheduler (default `cost`). Env `CORRAL_PLACEMENT`,
    /// flag `--placement`.
    pub policy: Policy,
    /// In-flight requests per scheduler before new connections placed on it wait in its
    /// queue, where an idle scheduler may steal them (default 0 = no cap, no queue).
    pub max_active_requests: usize,
    /// Assumed cost of a request whose route has no samples yet, µs (default 50). Once
    /// requests have been measured, a connection whose first request is unknown counts the mean.
    pub default_cost_us: u64,
    /// How often the placement supervisor merges the per-scheduler cost shards, ms (default 100).
    pub merge_interval_ms: u64,
    /// Place a hibernated keep-alive connection again when its next request wakes it, by
    /// `policy`, instead of starting it on its old scheduler (default false). Only a
    /// connection that slept moves: one with pipelined input, a half-written answer or a
    /// stream, and WebSockets stay where they are. Env `CORRAL_PLACEMENT_AT_WAKE`.
    pub at_wake: bool,
}

/// The `[limits]` table: request sizes, each refused with its status when crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Request line + header fields, bytes (default 16384). Over it: 431.
    pub max_head_bytes: usize,
    /// Request target (URI), bytes (default 8192; at most `max_head_bytes`). Over it: 414.
    pub max_uri_bytes: usize,
    /// Number of header fields (default 64, at most 128). Over it: 431.
    pub max_headers: usize,
    /// Decoded request body, bytes (default 8388608, 8 MiB). Over it: 413.
    pub max_body_bytes: u64,
    /// One chunk-size line (with extensions) or one trailer line of a chunked body, bytes
    /// (default 4096). Over it: 400.
    pub max_chunk_line_bytes: usize,
    /// Open connections, hibernated and queued ones included (default 0 = automatic: the
    /// soft `RLIMIT_NOFILE` less a reserve of 1/16 of it, at least 64). Past it: a new
    /// connection gets 503 with `Retry-After` at once and is closed. At most 16777216.
    pub max_connections: usize,
    /// Admission control (default 1000; 0 = off): a request of a costly route (expected to
    /// occupy its scheduler for 100 µs or more) whose bytes waited longer than this behind
    /// other work on its scheduler is answered 503 with `Retry-After` instead of running, ms.
    pub max_queue_delay_ms: u64,
    /// One WebSocket message (all its fragments), bytes (default 1048576, 1 MiB; 125 to
    /// 1073741824). Over it, the server closes the WebSocket with 1009 (message too big).
    pub max_websocket_message_bytes: usize,
}

/// The `[timeouts]` table (the methods give each as a [`Duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// From the first byte of a request until its header block is complete, ms (default
    /// 10000). Over it: 408 and close.
    pub header_timeout_ms: u64,
    /// From the end of the header block until the body is complete, ms (default 30000).
    /// Over it: 408 and close.
    pub body_timeout_ms: u64,
    /// A keep-alive connection waiting for its next request, ms (default 60000). Over it:
    /// closed quietly.
    pub idle_timeout_ms: u64,
    /// One write of a response to a slow reader, ms (default 30000). Over it: the connection
    /// is closed.
    pub write_timeout_ms: u64,
    /// A keep-alive connection idle this long gives up its coroutine (stack, buffers) and
    /// waits as a bare socket in its scheduler's ward, ms (default 1000; 0 = never).
    pub hibernate_after_ms: u64,
}

/// The `[log]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The most verbose level logged (default `info`), set with `log::set_max_level` by
    /// [`Server::run`](crate::Server::run) at start and by
    /// [`Server::reconfigure`](crate::Server::reconfigure) when it changes. The logger's own
    /// filter (`RUST_LOG` for the `corral` binary) still chooses per module beneath it.
    pub level: LogLevel,
    /// How the `corral` binary writes log lines: `text` (default) or `json`, one object a
    /// line, for log collectors. Read at start (a change needs a restart).
    pub format: LogFormat,
}

/// A `log.format` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[time LEVEL target] message`, for people.
    Text,
    /// `{"ts":…,"level":…,"target":…,"msg":…}`, one object a line.
    Json,
}

impl LogFormat {
    /// The words `log.format` accepts.
    pub const NAMES: &'static [&'static str] = &["text", "json"];
}

/// A `log.level` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also the server's life: start, signals, reloads, restarts.
    Info,
    /// Also per-connection detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The words `log.level` accepts.
    pub const NAMES: &'static [&'static str] = &["off", "error", "warn", "info", "debug", "trace"];

    /// As the `log` crate's filter.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// The `[runtime]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// A scheduler stuck this long in one handler without yielding is logged once at warn,
    /// with the scheduler and the route, and counted in `corral_scheduler_stalls_total`, ms
    /// (default 1000; 0 = no watchdog).
    pub stall_warn_ms: u64,
}

/// The `[demo]` table: settings of the `corral` binary's built-in apps (`chat` uses the
/// poll and heartbeat ones too).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Directory served under `GET /static/...`, relative to the working directory (default
    /// `examples/static`).
    pub static_dir: PathBuf,
    /// How long `GET /poll` waits for a publish before answering 204, ms (default 30000).
    pub poll_timeout_ms: u64,
    /// Heartbeat comment interval on `GET /events` (Server-Sent Events) streams, ms
    /// (default 15000).
    pub sse_heartbeat_ms: u64,
}

/// The `[pubsub]` table: where the built-in apps' topics live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PubsubConfig {
    /// `""` (the default): topics live in this process. `redis://HOST[:PORT][/DB]` (with an
    /// optional `USER:PASSWORD@` or `:PASSWORD@`) or `unix:///PATH`: they are shared
    /// through that Redis with every Corral process using it.
    pub broker: String,
}

/// Overrides from the command line (each `None` when the flag is absent).
#[derive(Debug, Default, Clone)]
pub struct CliOverrides {
    /// `--config FILE`: a TOML file overriding any subset of the default's keys.
    pub config: Option<PathBuf>,
    /// `--listen ADDR`, for `server.listen`.
    pub listen: Option<String>,
    /// `--workers N`, for `server.workers`; the text must be a whole number.
    pub workers: Option<String>,
    /// `--app APP`, for `server.app`: `demo`, `echo` or `chat`.
    pub app: Option<String>,
    /// `--placement POLICY`, for `placement.policy`: one of [`Policy::NAMES`].
    pub placement: Option<String>,
}

/// The two environment variables we read, passed in so tests need not touch the process env.
#[derive(Debug, Default, Clone)]
pub struct EnvOverrides {
    /// `CORRAL_LISTEN`, for `server.listen`.
    pub listen: Option<String>,
    /// `CORRAL_WORKERS`, for `server.workers`; the text must be a whole number.
    pub workers: Option<String>,
    /// `CORRAL_PLACEMENT`, for `placement.policy`: one of [`Policy::NAMES`].
    pub placement: Option<String>,
    /// `CORRAL_PLACEMENT_AT_WAKE`, for `placement.at_wake`: `true` or `false`.
    pub placement_at_wake: Option<String>,
}

impl EnvOverrides {
    /// Reads the variables from this process's environment (unset or not UTF-8: `None`).
    pub fn from_process() -> Self {
        Self {
            listen: std::env::var("CORRAL_LISTEN").ok(),
            workers: std::env::var("CORRAL_WORKERS").ok(),
            placement: std::env::var("CORRAL_PLACEMENT").ok(),
            placement_at_wake: std::env::var("CORRAL_PLACEMENT_AT_WAKE").ok(),
        }
    }
}

impl Config {
    /// The embedded default alone (what the server runs with when given nothing).
    pub fn embedded() -> Self {
        Self::from_table(default_table(), &BTreeMap::new())
            .expect("the embedded default config deserialises (checked by a unit test)")
    }

    /// Applies default → file → env → CLI, then validates.
    pub fn load(cli: &CliOverrides, env: &EnvOverrides) -> Result<Self, ConfigError> {
        let mut table = default_table();
        let mut origins = BTreeMap::new();
        if let Some(path) = &cli.config {
            let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
                path: path.clone(),
                err,
            })?;
            check_integers(&text, &path.display().to_string())?;
            let file: toml::Table = toml::from_str(&text).map_err(|err| ConfigError::Toml {
                path: path.clone(),
                err,
            })?;
            merge_checked(
                &mut table,
                file,
                "",
                &path.display().to_string(),
                &mut origins,
            )?;
        }
        let layers = [
            ("server.listen", "CORRAL_LISTEN", env.listen.as_deref()),
            ("server.workers", "CORRAL_WORKERS", env.workers.as_deref()),
            (
                "placement.policy",
                "CORRAL_PLACEMENT",
                env.placement.as_deref(),
            ),
            (
                "placement.at_wake",
                "CORRAL_PLACEMENT_AT_WAKE",
                env.placement_at_wake.as_deref(),
            ),
            ("server.listen", "--listen", cli.listen.as_deref()),
            ("server.workers", "--workers", cli.workers.as_deref()),
            ("server.app", "--app", cli.app.as_deref()),
            ("placement.policy", "--placement", cli.placement.as_deref()),
        ];
        for (key, origin, value) in layers {
            if let Some(raw) = value {
                set_from_text(&mut table, key, raw, origin)?;
                origins.insert(key.to_string(), origin.to_string());
            }
        }
        let mut cfg = Self::from_table(table, &origins)?;
        cfg.validate()?;
        cfg.sources = Some(Sources {
            cli: cli.clone(),
            env: env.clone(),
        });
        Ok(cfg)
    }

    /// Loads the configuration again from what [`Config::load`] read this one from: the
    /// same `--config` file (read anew), environment values and flags, validated as at
    /// start, so a bad file gives the same error. `None` if this configuration was not made
    /// by `load` (there is nothing to read again).
    pub fn reload(&self) -> Option<Result<Config, ConfigError>> {
        let sources = self.sources.as_ref()?;
        Some(Config::load(&sources.cli, &sources.env))
    }

    /// The keys whose values differ between `self` and `newer`, in key order, with both
    /// values (as JSON text).
    pub(crate) fn changes(&self, newer: &Config) -> Vec<Change> {
        let (mut old, mut new) = (BTreeMap::new(), BTreeMap::new());
        flatten("", &to_json(self), &mut old);
        flatten("", &to_json(newer), &mut new);
        let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        keys.into_iter()
            .filter(|key| old.get(*key) != new.get(*key))
            .map(|key| Change {
                key: key.clone(),
                old: old.get(key).map_or_else(String::new, ToString::to_string),
                new: new.get(key).map_or_else(String::new, ToString::to_string),
            })
            .collect()
    }

    /// Whether a running server takes a new value of `key` (dotted) from a reload; every
    /// other key keeps its value until a restart.
    pub(crate) fn is_live_key(key: &str) -> bool {
        LIVE_KEYS
            .iter()
            .any(|live| key == *live || (live.ends_with('.') && key.starts_with(live)))
    }

    /// Takes the live keys of `newer`, and its sources, keeping everything else: what a
    /// running server is configured with after it applied `newer` (see [`LIVE_KEYS`]).
    pub(crate) fn take_live(&mut self, newer: &Config) {
        self.limits = newer.limits;
        self.timeouts = newer.timeouts;
        self.placement.policy = newer.placement.policy;
        self.placement.at_wake = newer.placement.at_wake;
        self.log = newer.log;
        self.server.drain_timeout_ms = newer.server.drain_timeout_ms;
        self.server.drain_delay_ms = newer.server.drain_delay_ms;
        self.origins.retain(|key, _| !Config::is_live_key(key));
        let taken = newer
            .origins
            .iter()
            .filter(|(key, _)| Config::is_live_key(key));
        self.origins
            .extend(taken.map(|(key, origin)| (key.clone(), origin.clone())));
        self.sources = newer.sources.clone();
    }

    fn from_table(
        table: toml::Table,
        origins: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut cfg: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|err: toml::de::Error| ConfigError::Invalid {
                    origin: "configuration".into(),
                    key: "?".into(),
                    problem: err.to_string(),
                })?;
        cfg.origins = origins.clone();
        Ok(cfg)
    }

    fn origin(&self, key: &str) -> String {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| DEFAULT_ORIGIN.to_string())
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin(key),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// Semantic checks, one per key, each naming where the bad value came from.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let capped = [
            ("server.workers", self.server.workers, MAX_WORKERS),
            (
                "server.coroutine_pool",
                self.server.coroutine_pool,
                MAX_CONNECTIONS,
            ),
            (
                "limits.max_headers",
                self.limits.max_headers,
                MAX_HEADERS_CAP,
            ),
            (
                "limits.max_connections",
                self.limits.max_connections,
                MAX_CONNECTIONS,
            ),
        ];
        if let Some((key, value, cap)) = capped.iter().find(|(_, v, cap)| v > cap) {
            return Err(self.invalid(key, format!("{value} is more than {cap}")));
        }
        let stack = self.server.stack_size_bytes;
        if stack < MIN_STACK_BYTES || !stack.is_multiple_of(16) {
            return Err(self.invalid(
                "server.stack_size_bytes",
                format!("{stack} must be a multiple of 16 and at least {MIN_STACK_BYTES}"),
            ));
        }
        let positive = [
            ("limits.max_head_bytes", self.limits.max_head_bytes as u64),
            ("limits.max_uri_bytes", self.limits.max_uri_bytes as u64),
            ("limits.max_headers", self.limits.max_headers as u64),
            (
                "limits.max_chunk_line_bytes",
                self.limits.max_chunk_line_bytes as u64,
            ),
            (
                "timeouts.header_timeout_ms",
                self.timeouts.header_timeout_ms,
            ),
            ("timeouts.body_timeout_ms", self.timeouts.body_timeout_ms),
            ("timeouts.idle_timeout_ms", self.timeouts.idle_timeout_ms),
            ("timeouts.write_timeout_ms", self.timeouts.write_timeout_ms),
            ("demo.poll_timeout_ms", self.demo.poll_timeout_ms),
            ("demo.sse_heartbeat_ms", self.demo.sse_heartbeat_ms),
            (
                "placement.merge_interval_ms",
                self.placement.merge_interval_ms,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(self.invalid(key, "must be greater than 0"));
        }
        let millis = self.millisecond_keys();
        if let Some((key, ms)) = millis.iter().find(|(_, ms)| *ms > MAX_MS) {
            return Err(self.invalid(key, too_long(&ms.to_string())));
        }
        let ws = self.limits.max_websocket_message_bytes;
        if !(MIN_WEBSOCKET_MESSAGE_BYTES..=MAX_WEBSOCKET_MESSAGE_BYTES).contains(&ws) {
            return Err(self.invalid(
                "limits.max_websocket_message_bytes",
                format!(
                    "{ws} is not from {MIN_WEBSOCKET_MESSAGE_BYTES} (a control frame's \
                     payload) to {MAX_WEBSOCKET_MESSAGE_BYTES} (1 GiB)"
                ),
            ));
        }
        if !(1..=MAX_LISTEN_BACKLOG).contains(&self.server.listen_backlog) {
            return Err(self.invalid(
                "server.listen_backlog",
                format!(
                    "{} is not from 1 to {MAX_LISTEN_BACKLOG}",
                    self.server.listen_backlog
                ),
            ));
        }
        if let Some(problem) = broker_url_problem(&self.pubsub.broker) {
            return Err(self.invalid("pubsub.broker", problem));
        }
        if self.limits.max_uri_bytes > self.limits.max_head_bytes {
            return Err(self.invalid(
                "limits.max_uri_bytes",
                "must not exceed limits.max_head_bytes (the URI is part of the head)",
            ));
        }
        Ok(())
    }

    /// Every `*_ms` key with its value (each bounded by `MAX_MS`).
    fn millisecond_keys(&self) -> [(&'static str, u64); 13] {
        let (t, demo) = (&self.timeouts, &self.demo);
        [
            ("runtime.stall_warn_ms", self.runtime.stall_warn_ms),
            ("limits.max_queue_delay_ms", self.limits.max_queue_delay_ms),
            ("server.drain_timeout_ms", self.server.drain_timeout_ms),
            ("server.drain_delay_ms", self.server.drain_delay_ms),
            ("server.defer_accept_ms", self.server.defer_accept_ms),
            (
                "placement.merge_interval_ms",
                self.placement.merge_interval_ms,
            ),
            ("timeouts.header_timeout_ms", t.header_timeout_ms),
            ("timeouts.body_timeout_ms", t.body_timeout_ms),
            ("timeouts.idle_timeout_ms", t.idle_timeout_ms),
            ("timeouts.write_timeout_ms", t.write_timeout_ms),
            ("timeouts.hibernate_after_ms", t.hibernate_after_ms),
            ("demo.poll_timeout_ms", demo.poll_timeout_ms),
            ("demo.sse_heartbeat_ms", demo.sse_heartbeat_ms),
        ]
    }

    /// The address to bind: `server.listen` parsed, or an error naming where it came from.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            self.invalid(
                "server.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080 or [::1]:8080",
                    self.server.listen
                ),
            )
        })
    }

    /// Scheduler threads to run: the configured number, or one per core.
    pub fn worker_count(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Timeouts {
    /// [`Self::header_timeout_ms`] as a [`Duration`].
    pub fn header(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    /// [`Self::body_timeout_ms`] as a [`Duration`].
    pub fn body(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
    /// [`Self::idle_timeout_ms`] as a [`Duration`].
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    /// [`Self::write_timeout_ms`] as a [`Duration`].
    pub fn write(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
    /// Zero: never hibernate.
    pub fn hibernate_after(&self) -> Duration {
        Duration::from_millis(self.hibernate_after_ms)
    }
}

/// What is wrong with a `pubsub.broker` value, if anything: the forms the Redis client
/// accepts, checked here so a typo stops the start with the key's name, not a failing link.
fn broker_url_problem(url: &str) -> Option<String> {
    const FORMS: &str = "must be empty, redis://HOST[:PORT][/DB] or unix:///PATH";
    if url.is_empty() {
        return None;
    }
    if let Some(path) = url.strip_prefix("unix://") {
        return (!path.starts_with('/'))
            .then(|| format!("{url:?}: a unix:// URL needs an absolute path; {FORMS}"));
    }
    if url.starts_with("rediss://") {
        return Some(format!(
            "{url:?}: TLS to Redis (rediss://) is not built in; reach Redis over loopback, \
             a private network or a TLS tunnel; {FORMS}"
        ));
    }
    let Some(rest) = url.strip_prefix("redis://") else {
        return Some(format!("{url:?} {FORMS}"));
    };
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    // `[v6]:port`, `[v6]`, `host:port` or `host`.
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => (host, Some(after.strip_prefix(':').unwrap_or("x"))),
            None => ("", None),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let bad_host = host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    if bad_host {
        return Some(format!("{url:?}: no valid host; {FORMS}"));
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Some(format!("{url:?}: the port must be 1 to 65535; {FORMS}"));
    }
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Some(format!(
            "{url:?}: the database after / must be a number; {FORMS}"
        ));
    }
    None
}

/// JSON rather than TOML for comparing: its numbers hold every `u64`.
fn to_json(config: &Config) -> serde_json::Value {
    serde_json::to_value(config).expect("a Config serialises: plain numbers, strings, enums")
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, inner) in fields {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten(&key, inner, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

fn default_table() -> toml::Table {
    toml::from_str(DEFAULT_TOML).expect("the embedded default config is valid TOML")
}

/// Merges `file` into `base`, refusing keys `base` lacks and values of another TOML type.
fn merge_checked(
    base: &mut toml::Table,
    file: toml::Table,
    prefix: &str,
    origin: &str,
    origins: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, value) in file {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let invalid = |problem: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.clone(),
            problem,
        };
        let Some(slot) = base.get_mut(&name) else {
            return Err(invalid("unknown key".into()));
        };
        match (slot, value) {
            (toml::Value::Table(inner), toml::Value::Table(sub)) => {
                merge_checked(inner, sub, &key, origin, origins)?;
            }
            (slot, value) if slot.type_str() == value.type_str() => {
                if let Some(problem) = enum_problem(&key, &value) {
                    return Err(invalid(problem));
                }
                if let toml::Value::Integer(n) = value
                    && n < 0
                {
                    return Err(invalid(format!("{n} is negative")));
                }
                *slot = value;
                origins.insert(key.clone(), origin.to_string());
            }
            (slot, value) => {
                return Err(invalid(format!(
                    "expected {}, found {}",
                    slot.type_str(),
                    value.type_str()
                )));
            }
        }
    }
    Ok(())
}

fn too_long(ms: &str) -> String {
    format!("{ms} ms is more than {MAX_MS} ms (24 h)")
}

/// Refuses an integer of the file that TOML cannot hold (more than `i64::MAX`), naming its
/// key: toml's own error would point at the line but not name the key, and for a timeout
/// (`idle_timeout_ms = 18446744073709551615`) say nothing of the bound. A file that does
/// not parse is left to `toml::from_str`, whose error points at the line.
fn check_integers(text: &str, origin: &str) -> Result<(), ConfigError> {
    fn walk(table: &toml::de::DeTable<'_>, prefix: &str, origin: &str) -> Result<(), ConfigError> {
        for (name, value) in table {
            let key = match prefix {
                "" => name.get_ref().to_string(),
                _ => format!("{prefix}.{}", name.get_ref()),
            };
            match value.get_ref() {
                toml::de::DeValue::Table(inner) => walk(inner, &key, origin)?,
                toml::de::DeValue::Integer(n)
                    if i64::from_str_radix(n.as_str(), n.radix()).is_err() =>
                {
                    let problem = match key.ends_with("_ms") {
                        true => too_long(&n.to_string()),
                        false => format!("{n} is too large (at most {})", i64::MAX),
                    };
                    return Err(ConfigError::Invalid {
                        origin: origin.to_string(),
                        key,
                        problem,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
    match toml::de::DeTable::parse(text) {
        Ok(table) => walk(table.get_ref(), "", origin),
        Err(_) => Ok(()),
    }
}

/// For keys that take one of a fixed set of words, what is wrong with `value`, if anything.
fn enum_problem(key: &str, value: &toml::Value) -> Option<String> {
    let choices: &[&str] = match key {
        "server.app" => &["demo", "echo", "chat"],
        "placement.policy" => Policy::NAMES,
        "log.level" => LogLevel::NAMES,
        "log.format" => LogFormat::NAMES,
        _ => return None,
    };
    let word = value.as_str().unwrap_or_default();
    (!choices.contains(&word)).then(|| format!("{word:?} is not one of: {}", choices.join(", ")))
}

/// Sets a dotted key from an env var or flag, typed like the default's value.
fn set_from_text(
    table: &mut toml::Table,
    key: &str,
    raw: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        origin: origin.to_string(),
        key: key.to_string(),
        problem,
    };
    let (section, name) = key.split_once('.').expect("override keys are dotted");
    let slot = table
        .get_mut(section)
        .and_then(|s| s.as_table_mut())
        .and_then(|s| s.get_mut(name))
        .expect("override keys exist in the default config");
    *slot = match slot {
        toml::Value::Integer(_) => match raw.parse::<u32>() {
            Ok(n) if raw.bytes().all(|b| b.is_ascii_digit()) => toml::Value::Integer(n.into()),
            _ => return Err(invalid(format!("{raw:?} is not a whole number"))),
        },
        toml::Value::Boolean(_) => match raw {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => return Err(invalid(format!("{raw:?} is not true or false"))),
        },
        _ => toml::Value::String(raw.to_string()),
    };
    match enum_problem(key, slot) {
        Some(problem) => Err(invalid(problem)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("corral-cfg-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).expect("temp file is writable");
        path
    }

    fn load_file(text: &str) -> (PathBuf, Result<Config, ConfigError>) {
        let path = file(text);
        let cli = CliOverrides {
            config: Some(path.clone()),
            ..Default::default()
        };
        let res = Config::load(&cli, &EnvOverrides::default());
        (path, res)
    }

    #[test]
    fn pubsub_broker_takes_redis_urls_and_names_the_key_and_file_of_a_bad_one() {
        for good in [
            "",
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://:secret@127.0.0.1:6380/2",
            "redis://user:pw@[::1]:6379",
            "redis://[::1]",
            "unix:///run/redis.sock",
        ] {
            assert_eq!(broker_url_problem(good), None, "{good}");
        }
        for bad in [
            "127.0.0.1:6379",
            "http://127.0.0.1:6379",
            "rediss://127.0.0.1:6379",
            "redis://",
            "redis://127.0.0.1:0",
            "redis://127.0.0.1:port",
            "redis://127.0.0.1:6379/db",
            "redis://[::1",
            "unix://relative.sock",
        ] {
            assert!(broker_url_problem(bad).is_some(), "{bad}");
        }
        let path = file("[pubsub]\nbroker = \"redis:/127.0.0.1\"\n");
        let cli = CliOverrides {
            config: Some(path.clone()),
            ..CliOverrides::default()
        };
        let err = Config::load(&cli, &EnvOverrides::default()).expect_err("a bad URL");
        let text = err.to_string();
        assert!(text.contains("`pubsub.broker`"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
    }

    #[test]
    fn embedded_default_is_complete_and_valid() {
        let cfg = Config::embedded();
        cfg.validate().expect("default validates");
        assert_eq!(cfg.server.app, AppKind::Demo);
        assert_eq!(cfg.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn precedence_is_cli_over_env_over_file_over_default() {
        let (path, _) = load_file("[server]\nworkers = 3\nlisten = \"127.0.0.1:1111\"\n");
        let mut cli = CliOverrides {
            config: Some(path),
            ..Default::default()
        };
        let mut env = EnvOverrides::default();
        let cfg = Config::load(&cli, &env).expect("valid");
        assert_eq!(
            (cfg.server.workers, cfg.server.listen.as_str()),
            (3, "127.0.0.1:1111")
        );
        env.workers = Some("5".into());
        let cfg = Config::load(&cli, &env).expect("valid");
        assert_eq!(cfg.server.workers, 5);
        assert_eq!(cfg.server.listen, "127.0.0.1:1111");
        cli.workers = Some("7".into());
        env.listen = Some("127.0.0.1:2222".into());
        let cfg = Config::load(&cli, &env).expect("valid");
        assert_eq!(
            (cfg.server.workers, cfg.server.listen.as_str()),
            (7, "127.0.0.1:2222")
        );
        assert_eq!(
            cfg.timeouts.idle_timeout_ms,
            Config::embedded().timeouts.idle_timeout_ms
        );
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let (path, res) = load_file("[limits]\nmax_bodee_bytes = 3\n");
        let msg = res.expect_err("unknown key").to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("`limits.max_bodee_bytes`: unknown key"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_section_is_an_error() {
        let (_, res) = load_file("[sever]\nworkers = 1\n");
        assert!(
            res.expect_err("unknown")
                .to_string()
                .contains("`sever`: unknown key")
        );
    }

    #[test]
    fn wrong_type_names_key_and_file() {
        let (path, res) = load_file("[server]\nworkers = \"two\"\n");
        let msg = res.expect_err("type").to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains("`server.workers`: expected integer, found string"),
            "{msg}"
        );
    }

    #[test]
    fn bad_value_names_its_origin() {
        let (path, res) = load_file("[server]\nstack_size_bytes = 1000\n");
        let msg = res.expect_err("bad stack").to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("server.stack_size_bytes"), "{msg}");

        let (path, res) = load_file("[server]\ncoroutine_pool = 16777217\n");
        let msg = res.expect_err("pool past the limit").to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("server.coroutine_pool"), "{msg}");

        let env = EnvOverrides {
            workers: Some("many".into()),
            ..Default::default()
        };
        let msg = Config::load(&CliOverrides::default(), &env)
            .expect_err("bad env")
            .to_string();
        assert!(msg.starts_with("CORRAL_WORKERS: `server.workers`"), "{msg}");

        let cli = CliOverrides {
            listen: Some("nowhere".into()),
            ..Default::default()
        };
        let msg = Config::load(&cli, &EnvOverrides::default())
            .expect_err("bad listen")
            .to_string();
        assert!(msg.starts_with("--listen: `server.listen`"), "{msg}");
    }

    #[test]
    fn placement_at_wake_is_a_boolean_from_the_file_or_the_environment() {
        assert!(Config::embedded().placement.at_wake, "on by default");
        let (path, res) = load_file("[placement]\nat_wake = false\n");
        assert!(!res.expect("a boolean").placement.at_wake);
        let (path_bad, res) = load_file("[placement]\nat_wake = \"yes\"\n");
        let msg = res.expect_err("not a boolean").to_string();
        assert!(msg.starts_with(&path_bad.display().to_string()), "{msg}");
        assert!(
            msg.contains("`placement.at_wake`: expected boolean, found string"),
            "{msg}"
        );
        let env = |value: &str| EnvOverrides {
            placement_at_wake: Some(value.into()),
            ..Default::default()
        };
        let cli = CliOverrides {
            config: Some(path),
            ..Default::default()
        };
        let from_env = Config::load(&cli, &env("false")).expect("false");
        assert!(
            !from_env.placement.at_wake,
            "the environment beats the file"
        );
        let msg = Config::load(&CliOverrides::default(), &env("on"))
            .expect_err("not true or false")
            .to_string();
        assert_eq!(
            msg,
            "CORRAL_PLACEMENT_AT_WAKE: `placement.at_wake`: \"on\" is not true or false"
        );
    }

    #[test]
    fn syntax_error_points_at_the_line() {
        let (path, res) = load_file("[server]\nworkers = = 2\n");
        let msg = res.expect_err("syntax").to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn websocket_message_limits_outside_their_bounds_are_refused() {
        for value in ["124", "1073741825"] {
            let (path, res) = load_file(&format!(
                "[limits]\nmax_websocket_message_bytes = {value}\n"
            ));
            let msg = res.expect_err("out of bounds").to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            assert!(
                msg.contains("`limits.max_websocket_message_bytes`"),
                "{msg}"
            );
            assert!(msg.contains("is not from 125"), "{msg}");
        }
        let (_, res) = load_file("[limits]\nmax_websocket_message_bytes = 125\n");
        assert_eq!(
            res.expect("the smallest")
                .limits
                .max_websocket_message_bytes,
            125
        );
    }

    #[test]
    fn a_listen_backlog_outside_1_to_65535_is_refused_naming_the_file_and_key() {
        for value in ["0", "65536"] {
            let (path, res) = load_file(&format!("[server]\nlisten_backlog = {value}\n"));
            let msg = res.expect_err("out of bounds").to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            let problem = format!("`server.listen_backlog`: {value} is not from 1 to 65535");
            assert!(msg.contains(&problem), "{msg}");
        }
        let (_, res) = load_file("[server]\nlisten_backlog = 65535\n");
        assert_eq!(res.expect("the largest").server.listen_backlog, 65535);
    }

    #[test]
    fn zero_limits_and_negative_numbers_are_refused() {
        let (_, res) = load_file("[limits]\nmax_headers = 0\n");
        assert!(
            res.expect_err("zero")
                .to_string()
                .contains("`limits.max_headers`")
        );
        let (_, res) = load_file("[timeouts]\nidle_timeout_ms = -5\n");
        assert!(
            res.expect_err("negative")
                .to_string()
                .contains("is negative")
        );
    }

    #[test]
    fn reload_reads_the_same_file_again_and_refuses_a_bad_one_as_load_does() {
        let (path, res) = load_file("[limits]\nmax_body_bytes = 100\n");
        let first = res.expect("valid");
        std::fs::write(&path, "[limits]\nmax_body_bytes = 10\n").expect("rewrite");
        let second = first.reload().expect("has sources").expect("valid");
        assert_eq!(second.limits.max_body_bytes, 10);
        std::fs::write(&path, "[limits]\nmax_body_bytes = \"ten\"\n").expect("rewrite");
        let from_reload = second
            .reload()
            .expect("has sources")
            .expect_err("bad")
            .to_string();
        let cli = CliOverrides {
            config: Some(path),
            ..Default::default()
        };
        let from_load = Config::load(&cli, &EnvOverrides::default())
            .expect_err("bad")
            .to_string();
        assert_eq!(from_reload, from_load);
        assert!(Config::embedded().reload().is_none(), "nothing to re-read");
    }

    #[test]
    fn changes_name_each_differing_key_with_both_values() {
        let old = Config::embedded();
        let mut new = old.clone();
        new.limits.max_body_bytes = 10;
        new.server.listen = "127.0.0.1:1".into();
        let changes = old.changes(&new);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["limits.max_body_bytes", "server.listen"]);
        assert_eq!(changes[1].old, "\"127.0.0.1:8080\"");
        assert_eq!(changes[1].new, "\"127.0.0.1:1\"");
    }

    #[test]
    fn take_live_takes_exactly_the_live_keys() {
        let mut running = Config::embedded();
        let mut new = running.clone();
        new.limits.max_body_bytes = 10;
        new.timeouts.idle_timeout_ms = 5;
        new.placement.policy = Policy::RoundRobin;
        new.log.level = LogLevel::Debug;
        new.server.drain_timeout_ms = 1;
        new.server.drain_delay_ms = 2;
        new.server.reuse_port = true;
        new.server.defer_accept_ms = 0;
        new.server.listen_backlog = 16;
        new.server.listen = "127.0.0.1:1".into();
        new.server.workers = 3;
        new.placement.merge_interval_ms = 7;
        new.demo.poll_timeout_ms = 9;
        let changed = running.changes(&new);
        assert!(changed.iter().any(|c| Config::is_live_key(&c.key)));
        running.take_live(&new);
        let left: Vec<String> = running.changes(&new).into_iter().map(|c| c.key).collect();
        assert_eq!(
            left,
            [
                "demo.poll_timeout_ms",
                "placement.merge_interval_ms",
                "server.defer_accept_ms",
                "server.listen",
                "server.listen_backlog",
                "server.reuse_port",
                "server.workers"
            ]
        );
        assert!(left.iter().all(|key| !Config::is_live_key(key)));
        assert!(
            changed
                .iter()
                .filter(|c| !left.contains(&c.key))
                .all(|c| Config::is_live_key(&c.key))
        );
    }

    #[test]
    fn log_level_is_one_of_its_words() {
        let (_, res) = load_file("[log]\nlevel = \"loud\"\n");
        let msg = res.expect_err("bad level").to_string();
        assert!(
            msg.contains("`log.level`: \"loud\" is not one of: off, error"),
            "{msg}"
        );
        let (_, res) = load_file("[log]\nlevel = \"debug\"\n");
        assert_eq!(
            res.expect("valid").log.level.filter(),
            log::LevelFilter::Debug
        );
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let cli = CliOverrides {
            config: Some("/nonexistent/corral.toml".into()),
            ..Default::default()
        };
        let msg = Config::load(&cli, &EnvOverrides::default())
            .expect_err("missing")
            .to_string();
        assert!(
            msg.starts_with("/nonexistent/corral.toml: cannot read"),
            "{msg}"
        );
    }

    #[test]
    fn timeouts_past_a_day_are_refused_naming_key_and_origin() {
        // u64::MAX does not fit a TOML integer (an i64); i64::MAX does, and overflowed
        // `Instant + Duration` alike.
        for value in ["18446744073709551615", "9223372036854775807", "86400001"] {
            let (path, res) = load_file(&format!("[timeouts]\nidle_timeout_ms = {value}\n"));
            let msg = res.expect_err(value).to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            assert!(msg.contains("`timeouts.idle_timeout_ms`"), "{msg}");
        }
        let (_, res) = load_file("[timeouts]\nidle_timeout_ms = 86400000\n");
        assert_eq!(
            res.expect("a day is allowed").timeouts.idle_timeout_ms,
            86_400_000
        );
    }

    #[test]
    fn every_ms_key_is_bounded() {
        let default = Config::embedded();
        let keys: Vec<String> = default
            .millisecond_keys()
            .iter()
            .map(|(key, _)| key.to_string())
            .collect();
        // Every `*_ms` key of the default file is in the list.
        for line in DEFAULT_TOML.lines() {
            if let Some((name, _)) = line.split_once(" = ")
                && name.ends_with("_ms")
            {
                assert!(
                    keys.iter().any(|k| k.ends_with(&format!(".{name}"))),
                    "{name}"
                );
            }
        }
        for key in keys {
            let (section, name) = key.split_once('.').expect("dotted");
            let (_, res) = load_file(&format!("[{section}]\n{name} = 86400001\n"));
            let msg = res.expect_err(&key).to_string();
            let want = format!("`{key}`: 86400001 ms is more than 86400000 ms (24 h)");
            assert!(msg.contains(&want), "{msg}");
        }
    }
}
