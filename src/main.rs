//! `corral`: serve a built-in app on the embedded default config (or a file, env, flags).

mod app;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use corral::{CliOverrides, Config, EnvOverrides, LogFormat, Server, ServerError};

/// mimalloc rather than glibc's malloc: it keeps each size class on its own pages and can
/// return a page once all its blocks are free. With glibc, the 4 KiB read buffers that
/// hibernating connections free stay interleaved with live small objects and cannot be given
/// back (5.6 KiB of RSS per idle connection, against 2.5 here: benches/longpoll.sh). `main`
/// also sets mimalloc's purge delay to 0: its delayed purges only run when the thread
/// allocates again, and a scheduler whose connections all hibernated does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// `mi_option_purge_delay` in mimalloc v2's `mimalloc.h` (libmimalloc-sys has no constant).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Exit code for a configuration error.
const EXIT_CONFIG: u8 = 2;
/// Exit code when requests were still in flight at the end of the drain timeout.
const EXIT_DRAIN_TIMEOUT: u8 = 3;
/// Exit code when a part of the server died and could not be restarted.
const EXIT_FAILED: u8 = 4;

/// An HTTP/1.1 server in the Erlang style (coroutine per connection, pinned schedulers).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "\
Environment:
  CORRAL_LISTEN      address to listen on (like --listen)
  CORRAL_WORKERS     scheduler threads (like --workers)
  CORRAL_PLACEMENT   placement policy (like --placement)
  CORRAL_PLACEMENT_AT_WAKE
                     true or false: place a hibernated connection again when it
                     wakes (placement.at_wake)
  RUST_LOG           log filter per module, e.g. corral::access=info (access log);
                     log.level in the config caps it (default info)
Precedence: flags > environment > --config file > the embedded default (config/default.toml).

Signals:
  SIGTERM, SIGINT    drain: answers say Connection: close, /healthz turns 503; after
                     server.drain_delay_ms stop accepting; in-flight requests get up to
                     server.drain_timeout_ms, idle connections close; then exit
  SIGUSR2            start this program again (same path and arguments) on the same
                     listening socket; once it serves, drain as on SIGTERM and exit 0
                     (if it fails, log why and serve on)
  SIGHUP             reload the config from the same file, environment and flags:
                     limits.*, timeouts.*, placement.policy, log.level,
                     server.drain_timeout_ms and server.drain_delay_ms apply at once,
                     every connection is kept; other changed keys (server.listen, server.workers, ...) are logged
                     as needing a restart; a bad config is logged and the old one stays

Exit codes:
  0  drained and stopped
  1  could not start (address in use, runtime or supervision error, an unusable
     socket handed over by SIGUSR2)
  2  configuration error (the message names the key and the file, variable or flag)
  3  the drain timeout passed with requests still in flight
  4  a part of the server died and could not be restarted (logged at error)"
)]
struct Cli {
    /// TOML file overriding keys of the embedded default config.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (env CORRAL_LISTEN).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Scheduler threads, 0 = one per core (env CORRAL_WORKERS).
    #[arg(long, value_name = "N")]
    workers: Option<String>,
    /// Built-in application: demo, echo or chat.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Placement policy: cost, round_robin, fd_hash or least_connections (env CORRAL_PLACEMENT).
    #[arg(long, value_name = "POLICY")]
    placement: Option<String>,
}

fn main() -> ExitCode {
    // SAFETY: sets a global allocator option; mimalloc documents it as callable at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    let cli = Cli::parse();
    let overrides = CliOverrides {
        config: cli.config,
        listen: cli.listen,
        workers: cli.workers,
        app: cli.app,
        placement: cli.placement,
    };
    let config = match Config::load(&overrides, &EnvOverrides::from_process()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("corral: config error: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logger(config.log.format);
    let router = app::build(&config);
    match Server::run_with(config, router, announce) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ ServerError::DrainTimeout { .. }) => {
            log::warn!("{err}");
            ExitCode::from(EXIT_DRAIN_TIMEOUT)
        }
        Err(err @ ServerError::Failed(_)) => {
            eprintln!("corral: {err}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(err) => {
            eprintln!("corral: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One machine-readable line on stdout, so scripts and tests learn the bound port.
#[allow(clippy::print_stdout)]
fn announce(server: &Server) {
    use std::io::Write;
    println!("corral listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
}

/// The logger, once the config says how lines look. Everything of Corral's passes the
/// filter: `log.level` (log::set_max_level, applied by Server::run and on SIGHUP) decides how
/// much, so a reload can change it.
fn init_logger(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,corral=trace,corral::access=off"),
    );
    if format == LogFormat::Json {
        builder.format(|out, record| {
            use std::io::Write;
            let line = serde_json::json!({
                "ts": out.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(out, "{line}")
        });
    }
    builder.init();
}
