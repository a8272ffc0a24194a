//! The `corral` binary as a process: startup, config errors, SIGTERM drain.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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
