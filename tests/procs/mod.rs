//! The `corral` binary as a process for the tests that run several: started on loopback,
//! its announce lines and log read on threads, signalled and stopped by its own pid only.
//! (Not in `common`: it names the `corral` binary, which only `--features cli` builds.)
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

/// How long a test waits for a process to announce itself or to exit.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

/// A `corral` this test started (killed by its handle if the test ends early).
pub struct Corral {
    pub child: Child,
    pub addr: SocketAddr,
    /// Announce lines on stdout after the first (a SIGUSR2 successor shares the stream).
    pub announced: mpsc::Receiver<String>,
    /// The log (stderr), line by line.
    pub log: mpsc::Receiver<String>,
}

impl Corral {
    /// Starts `corral ARGS` (with `--listen 127.0.0.1:0` unless ARGS has a `--listen`) and
    /// waits for its announce line.
    pub fn start(args: &[&str], config: Option<&Path>) -> Corral {
        Corral::start_with_env(args, config, &[])
    }

    /// `start`, with these environment variables set.
    pub fn start_with_env(args: &[&str], config: Option<&Path>, env: &[(&str, &str)]) -> Corral {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
        cmd.envs(env.iter().copied());
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd
            .args(args)
            .env_remove("CORRAL_LISTEN")
            .env_remove("CORRAL_WORKERS")
            .env_remove("CORRAL_PLACEMENT")
            .env("RUST_LOG", "warn,corral=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corral");
        let announced = lines(child.stdout.take().expect("stdout"));
        let log = lines(child.stderr.take().expect("stderr"));
        let first = announced
            .recv_timeout(PROCESS_TIMEOUT)
            .expect("an announce line");
        let addr = parse_announce(&first);
        Corral {
            child,
            addr,
            announced,
            log,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).expect("a pid")
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(err) => panic!("no log line with {needle:?} after {seen:#?}: {err}"),
            }
        }
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().expect("exited, not killed");
            }
            assert!(
                Instant::now() < deadline,
                "still running after {PROCESS_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        // Only the process this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in `corral listening on http://ADDR`.
pub fn parse_announce(line: &str) -> SocketAddr {
    line.trim()
        .strip_prefix("corral listening on http://")
        .unwrap_or_else(|| panic!("unexpected announce line {line:?}"))
        .parse()
        .expect("an address")
}

fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    // Ends when every process writing to the stream has exited.
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

pub fn signal(pid: Pid, signal: Signal) {
    rustix::process::kill_process(pid, signal).expect("kill");
}

/// Makes this test process the reaper of its orphaned descendants: the process a SIGUSR2
/// handoff starts outlives its parent, and is then ours to wait for (and its pid cannot be
/// reused until we do).
pub fn become_subreaper() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("prctl");
}

/// A process this test did not start itself but reaps (see `become_subreaper`): stopped
/// with SIGKILL if the test ends before it exited.
pub struct Adopted {
    pub pid: Pid,
    reaped: bool,
}

impl Adopted {
    pub fn new(pid: Pid) -> Adopted {
        Adopted { pid, reaped: false }
    }

    /// Waits (bounded) for it to exit; its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + PROCESS_TIMEOUT;
        loop {
            match rustix::process::waitpid(Some(self.pid), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => {
                    self.reaped = true;
                    return status.exit_status().expect("exited, not killed");
                }
                Ok(None) => {}
                Err(err) => panic!("waitpid {}: {err}", self.pid.as_raw_nonzero()),
            }
            assert!(
                Instant::now() < deadline,
                "still running after {PROCESS_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        if !self.reaped {
            // Not reaped, so the pid is still this process's (a zombie at worst).
            let _ = rustix::process::kill_process(self.pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(self.pid), WaitOptions::empty());
        }
    }
}
