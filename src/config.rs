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

use serde::Deserialize;

use crate::http::parse::MAX_HEADERS_CAP;
pub use crate::placement::policy::Policy;

/// The embedded default configuration (every key, with comments and units).
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

const DEFAULT_ORIGIN: &str = "embedded config/default.toml";

/// The most scheduler threads we accept; more is almost certainly a typo.
const MAX_WORKERS: usize = 1024;
/// Smallest coroutine stack we accept: the connection loop itself needs ~8 KiB.
const MIN_STACK_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `origin` is a file path, a `CORRAL_*` variable or a `--flag`.
    #[error("{origin}: `{key}`: {problem}")]
    Invalid {
        origin: String,
        key: String,
        problem: String,
    },
    /// toml's message points at the line and column.
    #[error("{}: {err}", path.display())]
    Toml { path: PathBuf, err: toml::de::Error },
    #[error("{}: cannot read: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub placement: PlacementConfig,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub demo: DemoConfig,
    /// Where each key's value came from, for error messages (`server.workers` → `--workers`).
    #[serde(skip)]
    origins: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// 0 = one per core.
    pub workers: usize,
    pub stack_size_bytes: usize,
    pub app: AppKind,
    pub drain_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// The showcase routes (`GET /` lists them).
    Demo,
    /// Every request answered with a JSON description of itself (HTTP Garden's echo form).
    Echo,
    /// A chat page on Server-Sent Events and long-polling (`examples/chat.rs`).
    Chat,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    pub policy: Policy,
    pub max_active_requests: usize,
    pub default_cost_us: u64,
    pub merge_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: u64,
    pub max_chunk_line_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub hibernate_after_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    pub static_dir: PathBuf,
    pub poll_timeout_ms: u64,
    pub sse_heartbeat_ms: u64,
}

/// Overrides from the command line (each `None` when the flag is absent).
#[derive(Debug, Default, Clone)]
pub struct CliOverrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub workers: Option<String>,
    pub app: Option<String>,
    pub placement: Option<String>,
}

/// The two environment variables we read, passed in so tests need not touch the process env.
#[derive(Debug, Default, Clone)]
pub struct EnvOverrides {
    pub listen: Option<String>,
    pub workers: Option<String>,
    pub placement: Option<String>,
}

impl EnvOverrides {
    pub fn from_process() -> Self {
        Self {
            listen: std::env::var("CORRAL_LISTEN").ok(),
            workers: std::env::var("CORRAL_WORKERS").ok(),
            placement: std::env::var("CORRAL_PLACEMENT").ok(),
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
        let cfg = Self::from_table(table, &origins)?;
        cfg.validate()?;
        Ok(cfg)
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
        if self.server.workers > MAX_WORKERS {
            return Err(self.invalid(
                "server.workers",
                format!("{} is more than {MAX_WORKERS}", self.server.workers),
            ));
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
        if self.limits.max_headers > MAX_HEADERS_CAP {
            return Err(self.invalid(
                "limits.max_headers",
                format!("{} is more than {MAX_HEADERS_CAP}", self.limits.max_headers),
            ));
        }
        if self.limits.max_uri_bytes > self.limits.max_head_bytes {
            return Err(self.invalid(
                "limits.max_uri_bytes",
                "must not exceed limits.max_head_bytes (the URI is part of the head)",
            ));
        }
        Ok(())
    }

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
    pub fn header(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
    pub fn body(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub fn write(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
    /// Zero: never hibernate.
    pub fn hibernate_after(&self) -> Duration {
        Duration::from_millis(self.hibernate_after_ms)
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

/// For keys that take one of a fixed set of words, what is wrong with `value`, if anything.
fn enum_problem(key: &str, value: &toml::Value) -> Option<String> {
    let choices: &[&str] = match key {
        "server.app" => &["demo", "echo", "chat"],
        "placement.policy" => Policy::NAMES,
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
    fn syntax_error_points_at_the_line() {
        let (path, res) = load_file("[server]\nworkers = = 2\n");
        let msg = res.expect_err("syntax").to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
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
}
