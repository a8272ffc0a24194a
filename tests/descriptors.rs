//! The `corral` binary with few descriptors (#11 §3): run in a child process whose
//! `RLIMIT_NOFILE` is lowered before exec, so that this test process keeps its own. Out of
//! descriptors the acceptor pauses without spinning and serves again once they free up; with
//! `limits.max_connections` under the limit (the automatic one is), a new connection gets a
//! 503 before the descriptors run out.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{CLIENT_TIMEOUT, Client, eventually, parse_prometheus, sample};

/// The child's descriptor limit, soft and hard: small enough to reach with a few hundred
/// sockets, large enough for the server's own (about 15 on 2 workers).
const NOFILE: u64 = 128;

struct Running {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
    stderr: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only the process this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

impl Running {
    /// Starts the binary with `RLIMIT_NOFILE` = `NOFILE` and `config` as its config file.
    fn start(name: &str, config: &str) -> Running {
        let dir = std::env::temp_dir();
        let tag = format!("corral-fd-{}-{name}", std::process::id());
        let config_path = dir.join(format!("{tag}.toml"));
        std::fs::write(&config_path, config).unwrap();
        let stderr = dir.join(format!("{tag}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
        command
            .args(["--listen", "127.0.0.1:0", "--workers", "2", "--config"])
            .arg(&config_path)
            .env_remove("CORRAL_LISTEN")
            .env_remove("CORRAL_WORKERS")
            .env("RUST_LOG", "warn,corral=info")
            .stdout(Stdio::piped())
            // A file, not a pipe: a pipe nobody drains would block the server's logging.
            .stderr(std::fs::File::create(&stderr).unwrap());
        let limit = rustix::process::Rlimit {
            current: Some(NOFILE),
            maximum: Some(NOFILE),
        };
        // SAFETY: between fork and exec the closure only calls setrlimit, a raw syscall
        // (async-signal-safe), and allocates nothing.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().expect("spawn corral");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("announce line");
        let addr = line
            .trim()
            .strip_prefix("corral listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        Running {
            child,
            addr,
            config: config_path,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Descriptors the server holds now.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// The server's CPU time so far (utime + stime of `/proc/PID/stat`), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields resume after the command name's closing parenthesis, at field 3.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        fields[14 - 3].parse::<u64>().unwrap() + fields[15 - 3].parse::<u64>().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// A connection that does not wait long: these tests expect some connects to sit unanswered.
fn quiet_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect (the listen backlog holds 4096)");
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// One GET /plaintext on a fresh connection that gives up after `wait`: did it get 200?
fn answered_within(addr: SocketAddr, wait: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(wait));
    if stream
        .write_all(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

#[test]
fn out_of_descriptors_the_acceptor_pauses_without_spinning_and_serves_again_once_they_free() {
    // A configured limit far above what the descriptors allow: EMFILE comes first.
    let srv = Running::start("emfile", "[limits]\nmax_connections = 100000\n");
    assert!(
        srv.log().contains("max_connections = 100000 is more than"),
        "a warning at start: {}",
        srv.log()
    );
    let mut kept = Client::connect(srv.addr);
    assert_eq!(kept.get("/plaintext").status, 200);
    // Twice what fits: the rest wait in the listen backlog.
    let flood: Vec<TcpStream> = (0..2 * NOFILE).map(|_| quiet_connect(srv.addr)).collect();
    eventually(
        CLIENT_TIMEOUT,
        "the server holds every descriptor it may",
        || srv.open_fds() as u64 >= NOFILE,
    );
    // At the limit: CPU over one second of wall time (a spinning accept loop would burn a
    // whole core; pausing between tries costs next to nothing).
    let (ticks, started) = (srv.cpu_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    let share = (srv.cpu_ticks() - ticks) as f64 / per_second / started.elapsed().as_secs_f64();
    eprintln!(
        "at the descriptor limit ({NOFILE}): server CPU {:.1}% of one core",
        share * 100.0
    );
    assert!(
        share < 0.5,
        "the acceptor spins: {:.0}% of a core",
        share * 100.0
    );
    // A connection it already holds is served meanwhile.
    assert_eq!(kept.get("/plaintext").status, 200);
    assert!(
        srv.log()
            .contains("new connections wait in the listen backlog"),
        "{}",
        srv.log()
    );
    // The clients give up: the descriptors come free and new connections are served again.
    drop(flood);
    eventually(
        Duration::from_secs(10),
        "a new connection is served",
        || answered_within(srv.addr, Duration::from_millis(500)),
    );
    let m = parse_prometheus(kept.get("/metrics").text());
    assert!(sample(&m, "corral_accept_pauses_total") >= 1.0);
    assert_eq!(
        sample(&m, r#"corral_shed_total{reason="max_connections"}"#),
        0.0
    );
}

#[test]
fn the_automatic_max_connections_answers_503_before_the_descriptors_run_out() {
    let srv = Running::start("auto", "[limits]\nmax_connections = 0\n");
    // The automatic limit: NOFILE less a reserve of max(NOFILE / 16, 64).
    let room = (NOFILE - 64) as usize;
    // More connections than the server has descriptors for.
    let extra = NOFILE as usize + 16 - room;
    let mut admitted = Vec::new();
    let mut refused = 0;
    for _ in 0..room + extra {
        let mut c = Client::connect(srv.addr);
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
        let reply = c.reply();
        match reply.status {
            200 => admitted.push(c),
            503 => {
                assert_eq!(reply.header("retry-after"), Some("1"));
                assert!(c.closed_by_server());
                refused += 1;
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!((admitted.len(), refused), (room, extra));
    assert!(
        (srv.open_fds() as u64) < NOFILE,
        "descriptors to spare at the limit: {} of {NOFILE}",
        srv.open_fds()
    );
    let m = parse_prometheus(admitted[0].get("/metrics").text());
    assert_eq!(sample(&m, "corral_connections_limit"), room as f64);
    assert_eq!(
        sample(&m, r#"corral_shed_total{reason="max_connections"}"#),
        extra as f64
    );
    assert_eq!(sample(&m, "corral_accept_pauses_total"), 0.0, "no EMFILE");
    // One leaves: room for one more.
    drop(admitted.pop());
    eventually(CLIENT_TIMEOUT, "a new connection is admitted", || {
        answered_within(srv.addr, Duration::from_millis(500))
    });
    assert!(!srv.log().contains("Too many open files"), "{}", srv.log());
}
