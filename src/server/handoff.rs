//! Handing the listening socket to a new process, as nginx upgrades its binary: on SIGUSR2
//! `Server::run` starts its own program again (same path, same arguments) with a duplicate
//! of the listening socket left open across `exec`, waits until the new process says it
//! serves, then drains and exits.
//!
//! Why this and not two processes with `SO_REUSEPORT` alone (`server.reuse_port`): each
//! `SO_REUSEPORT` listener has its own accept queue, and closing one resets the connections
//! still queued on it unless the kernel migrates them (`net.ipv4.tcp_migrate_req`, Linux
//! 5.14+, off by default). Here there is one socket with one queue, held open by both
//! processes for the length of the switch: the port is never unbound and nothing queued is
//! lost, whatever the sysctl says.
//!
//! The protocol, through the environment of the new process:
//! - `CORRAL_LISTEN_FD`: the number of the inherited listening socket. `Server::start`
//!   adopts it instead of binding, once it checked that it is a listening TCP socket on
//!   the configured address;
//! - `CORRAL_READY_FD`: the write end of a pipe; `Server::run` writes `ready` to it once the
//!   new server listens, and the old process starts its drain;
//! - `CORRAL_HANDOFF_PARENT`: the old process's pid. Only its direct child adopts anything,
//!   so the variables a program leaves to its own children later are ignored there (as
//!   systemd's `LISTEN_PID` does for socket activation).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::FdFlags;
use rustix::net::SocketType;
use rustix::time::Timespec;

use super::ServerError;

/// The inherited listening socket's descriptor number.
pub(crate) const LISTEN_FD: &str = "CORRAL_LISTEN_FD";
/// The descriptor of the pipe the new process announces itself on.
pub(crate) const READY_FD: &str = "CORRAL_READY_FD";
/// The pid of the process that handed the socket over.
pub(crate) const PARENT: &str = "CORRAL_HANDOFF_PARENT";
/// What the new process writes once it serves.
const READY: &[u8] = b"ready\n";
/// How long the old process waits for the new one to serve before it gives up, stops it
/// and serves on (the new process starts a runtime and an application: seconds at most).
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether this process already took its inherited descriptors: a second `Server::start`
/// in it must not adopt the same number again (it may be another file by then).
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why a handoff did not happen; the old process logs it and serves on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandoffError {
    #[error("cannot find this program's path: {0}")]
    Exe(io::Error),
    #[error("cannot pass the listening socket on: {0}")]
    Dup(io::Error),
    #[error("cannot start {}: {err}", exe.display())]
    Spawn { exe: PathBuf, err: io::Error },
    #[error("the new process (pid {pid}) exited before it served ({status})")]
    Exited { pid: u32, status: ExitStatus },
    #[error(
        "the new process (pid {pid}) did not serve within {}s; it was stopped",
        READY_TIMEOUT.as_secs()
    )]
    NotReady { pid: u32 },
    #[error("waiting for the new process (pid {pid}): {err}")]
    Wait { pid: u32, err: io::Error },
}

/// The variable's value as a descriptor number, if this process is the handoff's child.
fn inherited(var: &'static str) -> Result<Option<i32>, ServerError> {
    let Some(raw) = std::env::var_os(var) else {
        return Ok(None);
    };
    let parent = std::env::var(PARENT)
        .ok()
        .and_then(|p| p.parse::<i32>().ok());
    let ppid = rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get());
    if parent.is_none() || parent != ppid {
        // Left in the environment by an ancestor's handoff: not ours to adopt.
        log::debug!("{var} is set but {PARENT} is not this process's parent: ignored");
        return Ok(None);
    }
    let fd = raw
        .to_str()
        .and_then(|text| text.parse::<i32>().ok())
        .filter(|fd| *fd > 2)
        .ok_or_else(|| ServerError::Inherited {
            var,
            problem: format!("{raw:?} is not a descriptor number above 2"),
        })?;
    Ok(Some(fd))
}

/// Takes ownership of inherited descriptor `fd` (named by `var`), closed on `exec` from now
/// on so it goes no further.
fn own(var: &'static str, fd: i32) -> Result<OwnedFd, ServerError> {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails (EBADF) if `fd` is not open.
    #[allow(unsafe_code)]
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
    if !open {
        return Err(ServerError::Inherited {
            var,
            problem: format!("descriptor {fd} is not open"),
        });
    }
    // SAFETY: `fd` is open, was left to this process by its parent for it to own (the
    // handoff protocol, checked by `inherited`), and nothing else in the process uses it:
    // `TAKEN` lets only one caller get here.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, FdFlags::CLOEXEC).map_err(|err| ServerError::Inherited {
        var,
        problem: format!("descriptor {fd}: {err}"),
    })?;
    Ok(owned)
}

/// The inherited descriptors of a process started by a handoff.
pub(crate) struct Inherited {
    pub listener: Option<TcpListener>,
    /// Where to say that this process serves (`announce_ready`).
    pub ready: Option<File>,
}

/// Adopts what a handoff left this process, if it is a handoff's child: the listening
/// socket, checked to be a listening TCP socket on `addr` (port 0 there: any port), and
/// the readiness pipe. Once per process; later calls get nothing.
pub(crate) fn adopt(addr: SocketAddr) -> Result<Inherited, ServerError> {
    let none = Inherited {
        listener: None,
        ready: None,
    };
    let (Some(listen_fd), ready_fd) = (inherited(LISTEN_FD)?, inherited(READY_FD)?) else {
        return Ok(none);
    };
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Ok(none);
    }
    let ready = match ready_fd {
        Some(fd) => Some(File::from(own(READY_FD, fd)?)),
        None => None,
    };
    let socket = own(LISTEN_FD, listen_fd)?;
    let listener = check_listener(socket, addr).map_err(|problem| ServerError::Inherited {
        var: LISTEN_FD,
        problem: format!("descriptor {listen_fd}: {problem}"),
    })?;
    Ok(Inherited {
        listener: Some(listener),
        ready,
    })
}

fn check_listener(socket: OwnedFd, addr: SocketAddr) -> Result<TcpListener, String> {
    let fault = |err: rustix::io::Errno| format!("not a socket ({err})");
    if rustix::net::sockopt::socket_type(&socket).map_err(fault)? != SocketType::STREAM {
        return Err("not a stream socket".into());
    }
    if rustix::net::sockopt::socket_protocol(&socket).map_err(fault)?
        != Some(rustix::net::ipproto::TCP)
    {
        return Err("not a TCP socket".into());
    }
    if !rustix::net::sockopt::socket_acceptconn(&socket).map_err(fault)? {
        return Err("not listening".into());
    }
    let listener = TcpListener::from(socket);
    let bound = listener
        .local_addr()
        .map_err(|err| format!("no local address ({err})"))?;
    if bound.ip() != addr.ip() || (addr.port() != 0 && bound.port() != addr.port()) {
        return Err(format!(
            "it listens on {bound}, but `server.listen` is {addr}"
        ));
    }
    Ok(listener)
}

/// Tells the old process that this one serves (a failure only costs the handoff: the
/// old process then stops this one and serves on).
pub(crate) fn announce_ready(mut pipe: File) {
    if let Err(err) = pipe.write_all(READY) {
        log::error!("cannot tell the previous process that this one serves: {err}");
    }
}

/// The old process's side: starts this program again with `listener`, and returns the new
/// process once it serves. On an error the new process is gone (or never started).
pub(crate) fn start_successor(listener: &TcpListener) -> Result<Child, HandoffError> {
    let exe = program().map_err(HandoffError::Exe)?;
    // The only descriptors without FD_CLOEXEC, so the only ones the new process inherits
    // (the standard streams aside). Closed here once it started.
    let socket = rustix::io::dup(listener.as_fd()).map_err(|e| HandoffError::Dup(e.into()))?;
    let (ready_read, ready_cloexec) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| HandoffError::Dup(e.into()))?;
    let ready_write = rustix::io::dup(&ready_cloexec).map_err(|e| HandoffError::Dup(e.into()))?;
    // Only the new process may hold a write end: the read sees EOF when it is gone.
    drop(ready_cloexec);
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let spawned = Command::new(&exe)
        .args(&args)
        .env(LISTEN_FD, socket.as_raw_fd().to_string())
        .env(READY_FD, ready_write.as_raw_fd().to_string())
        .env(PARENT, std::process::id().to_string())
        .spawn();
    drop((socket, ready_write));
    let mut child = spawned.map_err(|err| HandoffError::Spawn { exe, err })?;
    let pid = child.id();
    let deadline = Instant::now() + READY_TIMEOUT;
    let outcome = match wait_ready(File::from(ready_read), deadline) {
        Ok(true) => return Ok(child),
        // The pipe closed without a word: the new process failed to start (it said why on
        // its standard error) and is exiting.
        Ok(false) => match wait_exit(&mut child, deadline) {
            Ok(Some(status)) => return Err(HandoffError::Exited { pid, status }),
            Ok(None) => HandoffError::NotReady { pid },
            Err(err) => HandoffError::Wait { pid, err },
        },
        Err(err) if err.kind() == io::ErrorKind::TimedOut => HandoffError::NotReady { pid },
        Err(err) => HandoffError::Wait { pid, err },
    };
    // Stuck (or the wait failed): stop it rather than leave a second server behind.
    let _ = child.kill();
    let _ = child.wait();
    Err(outcome)
}

/// The child's exit status if it exits before `deadline`.
fn wait_exit(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    /// How often to look; only a failed start waits here, for its process to exit.
    const POLL: Duration = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// This program's path. A binary replaced on disk (the upgrade SIGUSR2 is for) shows as
/// `PATH (deleted)` in /proc/self/exe: the new binary is at PATH.
fn program() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.as_os_str().to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(path) => Ok(PathBuf::from(path)),
        None => Ok(exe),
    }
}

/// Reads the readiness pipe until it closes, until `deadline`: whether the new process said
/// `ready`.
fn wait_ready(mut pipe: File, deadline: Instant) -> io::Result<bool> {
    let mut said = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let timeout = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&pipe, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            // A signal for this process (they wait in the signal pipe meanwhile).
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err.into()),
        }
        let mut chunk = [0u8; 64];
        match pipe.read(&mut chunk) {
            Ok(0) => return Ok(said.starts_with(READY)),
            Ok(n) => {
                said.extend_from_slice(&chunk[..n]);
                // Announced: no need to wait for the close.
                if said.starts_with(READY) {
                    return Ok(true);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}
