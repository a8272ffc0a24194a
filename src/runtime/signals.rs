//! SIGTERM, SIGINT, SIGHUP and SIGUSR2 as a blocking wait, for `Server::run`: the signal handler only writes
//! the signal's number to a pipe (all a handler may safely do), and the waiting thread reads
//! it. Written by hand so that a library user does not compile a signal crate. The server
//! also writes to the pipe itself (`interrupt`) when it must stop without a signal.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the pipe the handler reports to (-1: none installed yet).
static REPORT_TO: AtomicI32 = AtomicI32::new(-1);
/// Installed once per process and never closed: the handler must never write to a
/// descriptor number that was closed and reused.
static INSTALLED: Mutex<Option<&'static Signals>> = Mutex::new(None);

/// What the pipe carries besides signal numbers: "look at the server" (`interrupt`).
const WAKE: u8 = 0;

/// What woke [`Signals::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    /// SIGTERM or SIGINT, by number.
    Stop(i32),
    /// SIGHUP: read the configuration again.
    Reload,
    /// SIGUSR2: hand the listening socket to a new process of the same program (nginx's
    /// binary upgrade).
    Handoff,
    /// [`interrupt`]: something in the process wants the waiter to look at its server.
    Wake,
}

/// Wakes whoever waits in [`Signals::wait`] with [`Wakeup::Wake`] (nothing, if the
/// handlers were never installed: no one waits then).
pub fn interrupt() {
    let fd = REPORT_TO.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: as in `on_signal`; the descriptor is never closed once stored.
        #[allow(unsafe_code)]
        unsafe {
            libc::write(fd, (&WAKE as *const u8).cast(), 1);
        }
    }
}

/// Installed handlers for SIGTERM, SIGINT, SIGHUP and SIGUSR2; `wait` returns the next that
/// arrives.
pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = REPORT_TO.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte. A full
        // pipe (a storm of signals) only drops the extra reports.
        #[allow(unsafe_code)]
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

impl Signals {
    /// Installs the handlers (once per process; later calls get the same). From then on
    /// SIGTERM, SIGINT, SIGHUP and SIGUSR2 no longer kill the process: they are reported to
    /// `wait`.
    pub fn install() -> io::Result<&'static Signals> {
        let mut installed = INSTALLED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(signals) = *installed {
            return Ok(signals);
        }
        let signals: &'static Signals = Box::leak(Box::new(Self::create()?));
        *installed = Some(signals);
        Ok(signals)
    }

    fn create() -> io::Result<Signals> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`, which we then own.
        #[allow(unsafe_code)]
        let (read, write) = unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) != 0 {
                return Err(io::Error::last_os_error());
            }
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        // The read side blocks: `wait` sleeps in read(2).
        rustix::io::ioctl_fionbio(&read, false)?;
        REPORT_TO.store(write.as_raw_fd(), Ordering::Relaxed);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR2] {
            // SAFETY: a zeroed sigaction with a handler that only calls write(2) is valid;
            // SA_RESTART keeps other threads' syscalls from failing with EINTR.
            #[allow(unsafe_code)]
            let failed = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut()) != 0
            };
            if failed {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Signals {
            read,
            _write: write,
        })
    }

    /// Blocks until SIGTERM, SIGINT, SIGHUP or SIGUSR2 arrives, or someone calls
    /// [`interrupt`].
    pub fn wait(&self) -> io::Result<Wakeup> {
        let mut byte = [0u8; 1];
        loop {
            match rustix::io::read(&self.read, &mut byte) {
                Ok(1) if byte[0] == WAKE => return Ok(Wakeup::Wake),
                Ok(1) if i32::from(byte[0]) == libc::SIGHUP => return Ok(Wakeup::Reload),
                Ok(1) if i32::from(byte[0]) == libc::SIGUSR2 => return Ok(Wakeup::Handoff),
                Ok(1) => return Ok(Wakeup::Stop(i32::from(byte[0]))),
                Ok(_) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
}
