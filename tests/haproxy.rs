//! Several Corral processes behind a real HAProxy (`deploy/haproxy.cfg`, ports and paths
//! replaced) that terminates TLS with a certificate made here by `openssl`: requests reach
//! both instances, and one drained (SIGTERM) during a counted load loses nothing, because
//! its `/healthz` turns 503 at once and HAProxy takes it out of rotation before it stops
//! accepting (`server.drain_delay_ms`). `.ci/run` installs haproxy and openssl; without them
//! the test is skipped, unless `CI` is set.

mod common;
mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::eventually;
use common::load::{Conn, Connect, IO_TIMEOUT, Load, Shape};
use procs::{Corral, PROCESS_TIMEOUT, signal};
use rustix::process::{Pid, Signal};

/// The example, as shipped.
const EXAMPLE: &str = include_str!("../deploy/haproxy.cfg");

/// Whether `program` runs; if not, the test is skipped (outside CI) or fails (in CI).
fn have(program: &str, arg: &str) -> bool {
    match Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => true,
        outcome if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {program} is not usable ({outcome:?}); apt-get install {program}");
            false
        }
        outcome => panic!("{program} is required in CI: {outcome:?}"),
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1 in `dir`: (the certificate
/// alone, for the client to trust; certificate and key in one file, for HAProxy).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key, both) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("corral.pem"),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server's certificate, not a CA's (the TLS client refuses a CA as end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&cert).expect("cert")
        + &std::fs::read_to_string(&key).expect("key");
    std::fs::write(&both, pem).expect("write the PEM");
    (cert, both)
}

/// A loopback port nobody listens on now (for HAProxy's frontend).
fn free_port() -> u16 {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr").port()
}

/// TLS connections to `addr`, trusting `cert` only.
fn tls(cert: &Path, addr: SocketAddr) -> Connect {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(cert).expect("read the certificate") {
        roots
            .add(der.expect("a PEM certificate"))
            .expect("a usable certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    Arc::new(move || {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let tls =
            rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
        Ok(Box::new(rustls::StreamOwned::new(tls, tcp)) as Box<dyn Conn>)
    })
}

/// HAProxy started by this test, in the foreground (`-db`); stopped by its pid.
struct Haproxy {
    child: Child,
    stats: PathBuf,
}

impl Haproxy {
    fn start(config: &Path, stats: PathBuf, front: u16) -> Haproxy {
        let log = config.with_extension("log");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(config)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("haproxy's log file"))
            .spawn()
            .expect("spawn haproxy");
        let mut haproxy = Haproxy { child, stats };
        eventually(PROCESS_TIMEOUT, "haproxy listens", || {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("haproxy exited ({status}): {said}");
            }
            TcpStream::connect(("127.0.0.1", front)).is_ok() && haproxy.stats.exists()
        });
        haproxy
    }

    /// `show stat` for server `name` of backend `corral`: column → value.
    fn server_stat(&self, name: &str) -> Vec<(String, String)> {
        let mut sock = UnixStream::connect(&self.stats).expect("the stats socket");
        sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        sock.write_all(b"show stat\n").expect("ask");
        let mut csv = String::new();
        sock.read_to_string(&mut csv).expect("read the stats");
        let mut lines = csv.lines();
        let header = lines.next().unwrap_or("").trim_start_matches("# ");
        let columns: Vec<&str> = header.split(',').collect();
        let row = lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&"corral") && f.get(1) == Some(&name))
            .unwrap_or_else(|| panic!("no server {name} in {csv}"));
        columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.to_string(), v.to_string()))
            .collect()
    }

    fn stat(&self, server: &str, column: &str) -> String {
        let row = self.server_stat(server);
        row.into_iter()
            .find(|(c, _)| c == column)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no column {column}"))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // Only the process this test started, by its pid; killed if it does not go.
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn whoami(corral: &Corral) -> String {
    format!("pid {}", corral.child.id())
}

#[test]
fn haproxy_over_tls_reaches_both_instances_and_one_drained_under_load_loses_nothing() {
    if !have("haproxy", "-v") || !have("openssl", "version") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("corral-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, pem) = certificate(&dir);
    // Longer than the checks need to see the 503 (inter 250 ms x fall 2).
    let config = dir.join("corral.toml");
    std::fs::write(&config, "[server]\nworkers = 1\ndrain_delay_ms = 1000\n").expect("config");
    let mut one = Corral::start(&[], Some(&config));
    let two = Corral::start(&[], Some(&config));
    let front = free_port();
    let stats = dir.join("haproxy.sock");
    let text = EXAMPLE
        .replace("127.0.0.1:8443", &format!("127.0.0.1:{front}"))
        .replace("127.0.0.1:8081", &one.addr.to_string())
        .replace("127.0.0.1:8082", &two.addr.to_string())
        .replace(
            "/etc/haproxy/certs/corral.pem",
            pem.to_str().expect("utf-8"),
        )
        .replace("/run/haproxy/corral.sock", stats.to_str().expect("utf-8"));
    assert_ne!(text, EXAMPLE);
    let haproxy_cfg = dir.join("haproxy.cfg");
    std::fs::write(&haproxy_cfg, text).expect("write haproxy.cfg");
    let haproxy = Haproxy::start(&haproxy_cfg, stats, front);
    eventually(PROCESS_TIMEOUT, "both servers are up", || {
        haproxy.stat("corral1", "status") == "UP" && haproxy.stat("corral2", "status") == "UP"
    });

    let load = Load::start(
        tls(&cert, SocketAddr::from(([127, 0, 0, 1], front))),
        Shape {
            path: "/whoami",
            keep_alive_clients: 1,
            paced_clients: 4,
            think: Duration::from_millis(20),
            fresh_clients: 2,
            max_time: Duration::from_secs(30),
            max_requests: 20_000,
        },
    );
    load.wait_for(300, PROCESS_TIMEOUT);
    assert!(
        load.answers_from(&whoami(&one)) > 0,
        "instance one answered"
    );
    assert!(
        load.answers_from(&whoami(&two)) > 0,
        "instance two answered"
    );

    signal(one.pid(), Signal::TERM);
    // Taken out of rotation by its health check while it still runs.
    eventually(PROCESS_TIMEOUT, "haproxy marks instance one down", || {
        haproxy.stat("corral1", "status").starts_with("DOWN")
    });
    assert!(
        one.child.try_wait().expect("try_wait").is_none(),
        "marked down before it went"
    );
    assert_eq!(one.wait_exit(), 0, "instance one drains and exits 0");
    let served_by_two = load.answers_from(&whoami(&two));
    load.wait_for(300, PROCESS_TIMEOUT);
    let (retries, redispatches) = (
        haproxy.stat("corral1", "wretr"),
        haproxy.stat("corral1", "wredis"),
    );
    let tally = load.stop();
    eprintln!(
        "through haproxy: {} ok, {} failed; by process {:?}; haproxy retried {retries} and \
         redispatched {redispatches} requests of instance one; first failures {:#?}",
        tally.ok, tally.failed, tally.bodies, tally.failures
    );
    assert_eq!(tally.failed, 0, "failed requests: {:#?}", tally.failures);
    assert!(tally.bodies.get(&whoami(&two)).copied().unwrap_or(0) > served_by_two);
    assert_eq!(tally.bodies.len(), 2, "only the two instances answered");
    drop(haproxy);
    let _ = std::fs::remove_dir_all(&dir);
}
