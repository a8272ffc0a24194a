//! The `corral` binary as a process: startup, config errors, SIGTERM drain, SIGHUP reload.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Client, eventually, parse_prometheus};

struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only the process this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment variables the binary reads, removed from every child so that the
/// environment the tests run in does not leak into them.
const CORRAL_ENV: [&str; 3] = ["CORRAL_LISTEN", "CORRAL_WORKERS", "CORRAL_PLACEMENT"];

/// Starts the binary on an ephemeral port and reads the address it announces.
fn start(args: &[&str]) -> Running {
    start_with_env(args, &[])
}

fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    for var in CORRAL_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn corral");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("announce line");
    let addr = line
        .trim()
        .strip_prefix("corral listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    Running { child, addr }
}

fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(args);
    for var in CORRAL_ENV {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run corral");
    let code = out.status.code().expect("exited, not killed");
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
}

#[test]
fn runs_on_the_embedded_default_and_serves() {
    let srv = start(&[]);
    let r = Client::connect(srv.addr).get("/plaintext");
    assert_eq!((r.status, r.text()), (200, "Hello, World!"));
}

#[test]
fn echo_app_is_selected_by_flag() {
    let srv = start(&["--app", "echo"]);
    let r = Client::connect(srv.addr).get("/whatever");
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn sigterm_drains_an_in_flight_request_then_exits_0() {
    let mut srv = start(&["--workers", "2"]);
    let mut c = Client::connect(srv.addr);
    // `Expect: 100-continue` tells us exactly when the server holds the request in flight.
    c.send(b"GET /work?us=500000 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert_eq!(c.head().status, 100);
    let signalled = Instant::now();
    sigterm(&srv.child);
    c.send(b"x");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "ok"));
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "a draining server closes"
    );
    let status = srv.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_millis(400),
        "exited before the request finished"
    );
    assert!(
        std::net::TcpStream::connect(srv.addr).is_err(),
        "still accepting after exit"
    );
}

#[test]
fn config_errors_name_key_and_file_and_exit_nonzero() {
    let path = std::env::temp_dir().join(format!("corral-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[limits]\nmax_body_byte = 10\n").expect("write");
    let (code, stderr) = run_to_end(&["--config", path.to_str().expect("utf-8")], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("`limits.max_body_byte`: unknown key"),
        "{stderr}"
    );

    let (code, stderr) = run_to_end(&[], &[("CORRAL_WORKERS", "lots")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("CORRAL_WORKERS: `server.workers`"),
        "{stderr}"
    );

    let (code, stderr) = run_to_end(&["--app", "shop"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--app: `server.app`"), "{stderr}");
}

#[test]
fn env_sets_the_listen_address_and_flags_beat_env() {
    // CORRAL_LISTEN is overridden by --listen (start() passes --listen 127.0.0.1:0).
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--listen", "127.0.0.1:0"])
        .env("CORRAL_LISTEN", "not an address")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("corral listening on http://127.0.0.1:"),
        "{line}"
    );
}

/// The binary on a config file, with its log (stderr) read line by line.
struct Logged {
    running: Running,
    lines: mpsc::Receiver<String>,
}

impl Logged {
    /// Starts `corral --config FILE` (the file sets the listen address, so a reload sees it)
    /// with the binary's default log filter.
    fn start(config: &Path) -> Logged {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("--config")
            .arg(config)
            .env_remove("CORRAL_LISTEN")
            .env_remove("CORRAL_WORKERS")
            .env_remove("CORRAL_PLACEMENT")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corral");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        // Ends when the child's stderr closes (the child exits or is killed by Drop).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("announce line");
        let addr = line
            .trim()
            .strip_prefix("corral listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        Logged {
            running: Running { child, addr },
            lines,
        }
    }

    /// Waits for a log line containing `needle` (earlier lines are skipped); returns it.
    fn line_with(&self, needle: &str) -> String {
        self.lines_until(needle).pop().expect("at least the match")
    }

    /// The log lines up to and including the first one containing `needle`.
    fn lines_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(err) => panic!("no log line with {needle:?} after {seen:?}: {err}"),
            }
        }
    }

    fn sighup(&self) {
        let pid = rustix::process::Pid::from_raw(self.running.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("kill");
    }
}

fn config_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("corral-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

fn post_echo(c: &mut Client, body: &[u8]) -> u16 {
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes());
    c.send(body);
    c.reply().status
}

const RELOADABLE: &str = "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\n\
    [timeouts]\nhibernate_after_ms = 0\n";

#[test]
fn sighup_applies_a_new_limit_to_the_next_request_on_the_same_connection_and_keeps_streams() {
    let text = format!("{RELOADABLE}[limits]\nmax_body_bytes = 1000\n");
    let path = config_file("reload-limit", &text);
    let srv = Logged::start(&path);
    let mut kept = Client::connect(srv.running.addr);
    assert_eq!(post_echo(&mut kept, &[b'x'; 100]), 200);
    let mut stream = Client::connect(srv.running.addr);
    stream.send(b"GET /stream?n=20&ms=50 HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = stream.head();
    assert_eq!(head.status, 200);
    stream.read_until(b"chunk 0\n");

    let text = format!("{RELOADABLE}[limits]\nmax_body_bytes = 10\n");
    std::fs::write(&path, text).expect("rewrite");
    srv.sighup();
    srv.line_with("SIGHUP: configuration reloaded; applied limits.max_body_bytes");

    assert_eq!(
        post_echo(&mut kept, &[b'x'; 100]),
        413,
        "the new limit applies to the next request on the same connection"
    );
    // The last chunk, then the chunked body's end: the stream was not cut.
    let rest = stream.read_until(b"chunk 19\n\r\n0\r\n\r\n");
    assert!(rest.contains("chunk 10\n"), "the stream went on: {rest:?}");
    let mut fresh = Client::connect(srv.running.addr);
    assert_eq!(post_echo(&mut fresh, &[b'x'; 10]), 200);
}

#[test]
fn sighup_with_a_bad_config_logs_the_start_error_and_the_old_config_still_serves() {
    let text = format!("{RELOADABLE}[limits]\nmax_body_bytes = 1000\n");
    let path = config_file("reload-bad", &text);
    let mut srv = Logged::start(&path);
    // First a good reload: its values are the running configuration from then on.
    let text = format!("{RELOADABLE}[limits]\nmax_body_bytes = 10\n");
    std::fs::write(&path, text).expect("rewrite");
    srv.sighup();
    srv.line_with("SIGHUP: configuration reloaded; applied limits.max_body_bytes");
    std::fs::write(&path, "[limits]\nmax_body_bytes = \"ten\"\n").expect("rewrite");
    // What the binary says when it cannot start with this file.
    let (code, at_start) = run_to_end(&["--config", path.to_str().expect("utf-8")], &[]);
    assert_eq!(code, 2);
    let error = at_start
        .trim()
        .strip_prefix("corral: config error: ")
        .unwrap_or_else(|| panic!("unexpected start error {at_start:?}"));
    assert!(error.contains("`limits.max_body_bytes`"), "{error}");

    srv.sighup();
    let line = srv.line_with("SIGHUP: config error:");
    assert!(line.contains("ERROR"), "logged at error: {line}");
    assert!(
        line.contains(error),
        "the start error, word for word: {line}"
    );

    let mut c = Client::connect(srv.running.addr);
    assert_eq!(post_echo(&mut c, &[b'x'; 5]), 200);
    assert_eq!(
        post_echo(&mut c, &[b'x'; 50]),
        413,
        "the reloaded limit stays"
    );
    assert!(
        srv.running.child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
}

#[test]
fn sighup_logs_a_changed_listen_address_as_needing_a_restart_and_keeps_the_old_one() {
    let path = config_file("reload-listen", RELOADABLE);
    let srv = Logged::start(&path);
    let moved = RELOADABLE.replace("127.0.0.1:0", "127.0.0.1:1");
    std::fs::write(&path, moved).expect("rewrite");
    srv.sighup();
    let line = srv.line_with("`server.listen` changed");
    assert!(line.contains("WARN"), "logged at warn: {line}");
    assert!(line.contains("needs a restart"), "{line}");
    assert!(line.contains("\"127.0.0.1:1\""), "{line}");
    srv.line_with("SIGHUP: configuration reloaded; nothing to apply");
    let r = Client::connect(srv.running.addr).get("/plaintext");
    assert_eq!(r.status, 200, "still serving on the old address");
}

#[test]
fn sighup_applies_a_new_log_level() {
    let path = config_file(
        "reload-log",
        &format!("{RELOADABLE}[log]\nlevel = \"warn\"\n"),
    );
    let srv = Logged::start(&path);
    std::fs::write(&path, format!("{RELOADABLE}[log]\nlevel = \"info\"\n")).expect("rewrite");
    srv.sighup();
    // Logged at info, after the level changed: at `warn` it would not appear.
    let lines = srv.lines_until("SIGHUP: configuration reloaded; applied log.level");
    let (reloaded, before) = lines.split_last().expect("the match");
    assert!(reloaded.contains("INFO"), "{reloaded}");
    assert!(
        before.iter().all(|l| !l.contains("listening on")),
        "at warn, the start logged nothing at info: {before:?}"
    );
}

#[test]
fn log_format_json_writes_one_object_a_line() {
    let path = config_file("json-log", "[log]\nformat = \"json\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env_remove("CORRAL_LISTEN")
        .env_remove("CORRAL_WORKERS")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corral");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("announce line");
    sigterm(&child);
    let out = child.wait_with_output().expect("exit");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["target"] == "corral::server"
            && l["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening on http://"))
            && l["ts"].as_str().is_some_and(|t| t.ends_with('Z'))),
        "{stderr}"
    );
}

/// The policy a running binary reports in `/metrics`.
fn policy_of(srv: &Running) -> String {
    let text = Client::connect(srv.addr).get("/metrics").text().to_string();
    let series = parse_prometheus(&text)
        .into_iter()
        .find(|(series, value)| series.starts_with("corral_placement_policy{") && *value == 1.0)
        .expect("corral_placement_policy in /metrics")
        .0;
    series
        .trim_start_matches("corral_placement_policy{policy=\"")
        .trim_end_matches("\"}")
        .to_string()
}

#[test]
fn placement_is_set_by_flag_or_environment_and_the_flag_wins() {
    assert_eq!(policy_of(&start(&[])), "cost", "the default");
    assert_eq!(
        policy_of(&start(&["--placement", "round_robin"])),
        "round_robin"
    );
    assert_eq!(
        policy_of(&start_with_env(&[], &[("CORRAL_PLACEMENT", "fd_hash")])),
        "fd_hash"
    );
    let both = start_with_env(
        &["--placement", "least_connections"],
        &[("CORRAL_PLACEMENT", "fd_hash")],
    );
    assert_eq!(policy_of(&both), "least_connections");

    let (code, stderr) = run_to_end(&["--placement", "random"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--placement: `placement.policy`: \"random\" is not one of: cost,"),
        "{stderr}"
    );
    let (code, stderr) = run_to_end(&[], &[("CORRAL_PLACEMENT", "random")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("CORRAL_PLACEMENT: `placement.policy`"),
        "{stderr}"
    );
}

#[test]
fn a_drain_that_times_out_with_a_request_in_flight_exits_3() {
    let path = std::env::temp_dir().join(format!("corral-drain-{}.toml", std::process::id()));
    std::fs::write(&path, "[server]\ndrain_timeout_ms = 100\n").expect("write");
    let mut srv = start(&["--config", path.to_str().expect("utf-8"), "--workers", "2"]);
    let mut c = Client::connect(srv.addr);
    // In flight once the 100 arrives; then its handler sleeps 10 s, far past the drain.
    c.send(b"GET /work?us=10000000 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert_eq!(c.head().status, 100);
    c.send(b"x");
    sigterm(&srv.child);
    let mut status = None;
    eventually(common::CLIENT_TIMEOUT, "the server exits", || {
        status = srv.child.try_wait().expect("try_wait");
        status.is_some()
    });
    let _ = std::fs::remove_file(&path);
    assert_eq!(status.and_then(|s| s.code()), Some(3));
    // The request never got its answer: the connection just ends.
    let end = c.end_of_stream();
    assert!(
        matches!(end, Ok(()) | Err(std::io::ErrorKind::ConnectionReset)),
        "{end:?}"
    );
}
