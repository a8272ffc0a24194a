//! Zero-downtime restarts of the real binary under load: a SIGUSR2 handoff of the listening
//! socket to a re-executed `corral`, and two processes on one port with `server.reuse_port`
//! (the old one SIGTERMed once the new one listens). Every request of the load is counted:
//! none may fail.

mod common;
mod procs;

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::Client;
use common::load::{Load, Shape, Tally, tcp};
use procs::{Adopted, Corral, PROCESS_TIMEOUT, become_subreaper, parse_announce, signal};
use rustix::process::{Pid, Signal};

/// One switch-over at a time: two loads at once on two cores would measure each other.
static SWITCH: Mutex<()> = Mutex::new(());

/// Requests the load must have done on each side of a switch.
const BEFORE: u64 = 300;
const AFTER: u64 = 300;

fn load_on(addr: std::net::SocketAddr) -> Load {
    load_with(addr, 2)
}

fn load_with(addr: std::net::SocketAddr, fresh_clients: usize) -> Load {
    Load::start(
        tcp(addr),
        Shape {
            path: "/whoami",
            keep_alive_clients: 1,
            paced_clients: 4,
            think: Duration::from_millis(20),
            fresh_clients,
            max_time: Duration::from_secs(30),
            max_requests: 20_000,
        },
    )
}

fn whoami(pid: Pid) -> String {
    format!("pid {}", pid.as_raw_nonzero())
}

fn report(what: &str, tally: &Tally) {
    eprintln!(
        "{what}: {} ok, {} failed, {} answers said Connection: close; by process {:?}; \
         first failures {:#?}",
        tally.ok, tally.failed, tally.closes, tally.bodies, tally.failures
    );
}

fn config_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("corral-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn sigusr2_hands_the_socket_to_a_new_process_and_no_request_fails() {
    let _one = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
    become_subreaper();
    let mut old = Corral::start(&["--workers", "1"], None);
    let addr = old.addr;
    // A long-poll waiting on the old process, and a keep-alive connection idle there.
    let mut poll = Client::connect(addr);
    poll.send(b"GET /poll?topic=restart HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut idle = Client::connect(addr);
    assert_eq!(idle.get("/plaintext").status, 200);

    let load = load_on(addr);
    load.wait_for(BEFORE, PROCESS_TIMEOUT);
    signal(old.pid(), Signal::USR2);
    let line = old.log_line("SIGUSR2: process ");
    let new_pid: i32 = line
        .split("SIGUSR2: process ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    let mut new = Adopted::new(Pid::from_raw(new_pid).expect("pid"));
    let announced = old
        .announced
        .recv_timeout(PROCESS_TIMEOUT)
        .expect("the new process announces itself");
    assert_eq!(parse_announce(&announced), addr, "the same address");
    assert_eq!(old.wait_exit(), 0, "the old process drains and exits 0");

    let waited = poll.reply();
    assert_eq!(waited.status, 204, "the long-poll's timeout answer");
    assert_eq!(waited.header("connection"), Some("close"));
    assert!(idle.closed_by_server(), "the idle connection was closed");

    load.wait_for(AFTER, PROCESS_TIMEOUT);
    let (old_answers, new_answers) = (
        load.answers_from(&whoami(old.pid())),
        load.answers_from(&whoami(new.pid)),
    );
    let tally = load.stop();
    report("SIGUSR2 handoff", &tally);
    assert_eq!(tally.failed, 0, "failed requests: {:#?}", tally.failures);
    assert!(
        old_answers >= BEFORE / 2,
        "the old process served: {old_answers}"
    );
    assert!(
        new_answers >= AFTER / 2,
        "the new process served: {new_answers}"
    );
    assert_eq!(tally.ok, tally.bodies.values().sum::<u64>());
    assert_eq!(tally.bodies.len(), 2, "only the two processes answered");

    signal(new.pid, Signal::TERM);
    assert_eq!(new.wait_exit(), 0, "the new process drains and exits 0 too");
}

#[test]
fn sigusr2_with_a_bad_new_config_keeps_the_old_process_serving() {
    let _one = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
    become_subreaper();
    let path = config_file("handoff-bad", "[server]\nworkers = 1\n");
    let old = Corral::start(&[], Some(&path));
    std::fs::write(&path, "[server]\nworkers = \"many\"\n").expect("rewrite");
    signal(old.pid(), Signal::USR2);
    let line = old.log_line("SIGUSR2: handoff failed");
    assert!(line.contains("exited before it served"), "{line}");
    assert!(line.contains("this process serves on"), "{line}");
    let mut c = Client::connect(old.addr);
    assert_eq!(c.get("/whoami").text().trim(), whoami(old.pid()));
    let _ = std::fs::remove_file(&path);
}

/// `corral ARGS` run to its end with `env` set: (exit code, stderr).
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .env_remove("CORRAL_LISTEN")
        .envs(env.iter().copied())
        .output()
        .expect("run corral");
    let code = out.status.code().expect("exited, not killed");
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_inherited_descriptor_that_is_not_the_configured_listening_socket_is_refused() {
    let me = std::process::id().to_string();
    let handed = |fd: &str| {
        [
            ("CORRAL_LISTEN_FD", fd.to_string()),
            ("CORRAL_HANDOFF_PARENT", me.clone()),
        ]
    };
    let refused = |listen: &str, fd: &str| {
        let env = handed(fd);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, stderr) = run_with_env(&["--listen", listen], &env);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr
                .contains("cannot adopt what the previous process handed over (CORRAL_LISTEN_FD)"),
            "{stderr}"
        );
        stderr
    };
    assert!(refused("127.0.0.1:0", "100").contains("descriptor 100 is not open"));
    // Duplicates without FD_CLOEXEC, so the child inherits them.
    let other = TcpListener::bind("127.0.0.1:0").expect("bind");
    let listening = rustix::io::dup(&other).expect("dup");
    let stderr = refused("127.0.0.2:0", &listening.as_raw_fd().to_string());
    let want = format!(
        "it listens on {}, but `server.listen` is 127.0.0.2:0",
        other.local_addr().expect("addr")
    );
    assert!(stderr.contains(&want), "{stderr}");
    let connected = TcpStream::connect(other.local_addr().expect("addr")).expect("connect");
    let connected = rustix::io::dup(&connected).expect("dup");
    let stderr = refused("127.0.0.1:0", &connected.as_raw_fd().to_string());
    assert!(stderr.contains("not listening"), "{stderr}");
}

#[test]
fn handoff_variables_meant_for_another_process_are_ignored() {
    // Left in the environment by an ancestor's handoff: the parent named is not ours.
    let srv = Corral::start_with_env(
        &["--workers", "1"],
        None,
        &[("CORRAL_LISTEN_FD", "100"), ("CORRAL_HANDOFF_PARENT", "1")],
    );
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.get("/whoami").text().trim(), whoami(srv.pid()));
}

/// Runs `f` on a thread in a network namespace of its own, with loopback up and
/// `net.ipv4.tcp_migrate_req` set to `migrate` there (the machine's own setting is not
/// touched); the threads and processes it starts live there too. `None` without the
/// privileges to make one.
fn in_own_netns<T: Send>(migrate: bool, f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: unshare(2) with CLONE_NEWNET moves only this thread into a new
                // network namespace; no memory is involved.
                #[allow(unsafe_code)]
                let unshared = unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0;
                if !unshared {
                    eprintln!(
                        "no network namespace of its own: {}",
                        std::io::Error::last_os_error()
                    );
                    return None;
                }
                let up = std::process::Command::new("ip")
                    .args(["link", "set", "lo", "up"])
                    .status();
                assert!(
                    up.as_ref().is_ok_and(|s| s.success()),
                    "ip link set lo up: {up:?}"
                );
                let value = if migrate { "1" } else { "0" };
                std::fs::write("/proc/sys/net/ipv4/tcp_migrate_req", value)
                    .expect("set tcp_migrate_req in the test's own namespace");
                Some(f())
            })
            .join()
            .expect("the namespace thread panicked")
    })
}

fn migrate_req_here() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}

/// Old → new with `server.reuse_port`: the new process binds the same port, announces
/// itself, and the old one is SIGTERMed. The load's tally.
fn reuse_port_switch(fresh_clients: usize) -> Tally {
    let path = config_file(
        &format!("reuse-port-{:?}", std::thread::current().id()),
        "[server]\nworkers = 1\nreuse_port = true\n",
    );
    let mut old = Corral::start(&[], Some(&path));
    let addr = old.addr;
    let load = load_with(addr, fresh_clients);
    load.wait_for(BEFORE, PROCESS_TIMEOUT);
    let listen = addr.to_string();
    let new = Corral::start(&["--listen", &listen], Some(&path));
    assert_eq!(new.addr, addr);
    signal(old.pid(), Signal::TERM);
    assert_eq!(old.wait_exit(), 0, "the old process drains and exits 0");
    load.wait_for(AFTER, PROCESS_TIMEOUT);
    let new_answers = load.answers_from(&whoami(new.pid()));
    let tally = load.stop();
    let _ = std::fs::remove_file(&path);
    assert!(
        new_answers >= AFTER / 2,
        "the new process served: {new_answers}"
    );
    tally
}

#[test]
fn reuse_port_a_second_process_takes_over_and_no_request_fails() {
    let _one = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
    let (tally, migrate) = match in_own_netns(true, || reuse_port_switch(2)) {
        Some(tally) => (tally, true),
        // No namespace: the machine's setting decides what this can show.
        None => (reuse_port_switch(2), migrate_req_here()),
    };
    report(
        "reuse_port, old SIGTERMed after the new one listens",
        &tally,
    );
    if migrate {
        assert_eq!(tally.failed, 0, "failed requests: {:#?}", tally.failures);
    } else {
        eprintln!(
            "net.ipv4.tcp_migrate_req is 0 here and no network namespace could be made: \
             {} requests failed, not asserted (connections queued on the old listener when it \
             closed are reset; SIGUSR2 avoids it)",
            tally.failed
        );
    }
}

/// The trap, measured: without `tcp_migrate_req` the connections still queued on the old
/// process's listener when it closes are reset. Prints the count; loss is a race, so it is
/// not asserted (`cargo test --test restart -- --ignored`; `FRESH_CLIENTS=N` for another
/// load than 8 fresh-connection clients, `MIGRATE_REQ=1` to compare with the sysctl on).
#[test]
#[ignore = "a measurement: prints what is lost without tcp_migrate_req"]
fn reuse_port_without_tcp_migrate_req_loses_what_is_queued() {
    let _one = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
    let fresh = std::env::var("FRESH_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8);
    let migrate = std::env::var("MIGRATE_REQ").is_ok_and(|v| v == "1");
    let Some(tally) = in_own_netns(migrate, || reuse_port_switch(fresh)) else {
        eprintln!("skipped: no network namespace of its own");
        return;
    };
    report(
        &format!("reuse_port, tcp_migrate_req = {}", u8::from(migrate)),
        &tally,
    );
}
