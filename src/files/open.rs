//! The blocking side: opening a file beneath the root, its identity, reading it. Everything
//! here runs on the offload pool (`corral::offload`), never on a scheduler.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// What tells one version of a file from another: revalidation compares these, as nginx's
/// `open_file_cache` compares inode, size and mtime. An edit that keeps the size within one
/// tick of the file system's timestamp clock (a few ms on Linux) and the inode goes unseen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub modified: SystemTime,
}

/// What a look at one path found.
pub(super) enum Probe {
    /// The file is still the version the cache holds (`FileId` unchanged).
    Unchanged,
    /// A regular file small enough to hold whole, read. `id` is `None` if the file changed
    /// while it was read: serve these bytes, but neither cache nor validate them.
    Small { bytes: Vec<u8>, id: Option<FileId> },
    /// A regular file too large to hold whole, open: it is streamed in pieces.
    Large { file: File, id: FileId },
    /// A directory (answered with a redirect to the path with a trailing '/').
    Directory,
    /// No such file beneath the root (or a symlink out of it, or not a regular file).
    NotFound,
    /// The file is there but may not be read.
    Forbidden,
    /// An I/O error other than those (logged at warn).
    Failed,
}

/// Opens `relative` beneath `root` and looks at it. `known` is the version the cache
/// holds, if any: when the file is still that, nothing is read. Files of at most
/// `max_small` bytes are read whole.
pub(super) fn probe(root: &Path, relative: &Path, known: Option<FileId>, max_small: u64) -> Probe {
    let file = match open_beneath(root, relative) {
        Ok(file) => file,
        Err(err) => return refusal(&err),
    };
    let id = match identify(&file) {
        Ok(Some(id)) => id,
        Ok(None) if is_dir(&file) => return Probe::Directory,
        Ok(None) => return Probe::NotFound,
        Err(err) => return refusal(&err),
    };
    if known == Some(id) {
        return Probe::Unchanged;
    }
    if id.len > max_small {
        return Probe::Large { file, id };
    }
    let mut bytes = Vec::with_capacity(id.len as usize);
    // One byte more than the limit: a file that grew past it is not mistaken for whole.
    if let Err(err) = (&file).take(max_small + 1).read_to_end(&mut bytes) {
        return refusal(&err);
    }
    let stable =
        matches!(identify(&file), Ok(Some(after)) if after == id) && bytes.len() as u64 == id.len;
    Probe::Small {
        bytes,
        id: stable.then_some(id),
    }
}

/// Reads into all of `buf` from `at`, short only at the end of the file.
pub(super) fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// `openat2` with `RESOLVE_BENEATH`: the kernel refuses any path that leaves the root,
/// through `..` or through a symlink (one that stays inside is followed). Non-blocking, so
/// that a FIFO does not hang the pool; reads of a regular file ignore the flag.
fn open_beneath(root: &Path, relative: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, relative, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(File::from(fd)),
        // Linux before 5.6 has no openat2: resolve the path and check it stays inside.
        Err(rustix::io::Errno::NOSYS) => open_checked(root, relative, flags),
        Err(err) => Err(err.into()),
    }
}

/// The fallback for kernels without `openat2`: the canonical path must lie under the
/// canonical root. A symlink swapped in between the check and the open is not caught.
fn open_checked(root: &Path, relative: &Path, flags: OFlags) -> io::Result<File> {
    let root = root.canonicalize()?;
    let path = root.join(relative).canonicalize()?;
    if !path.starts_with(&root) {
        return Err(io::ErrorKind::NotFound.into());
    }
    let fd = rustix::fs::open(&path, flags, Mode::empty())?;
    Ok(File::from(fd))
}

/// The identity of a regular file; `None` for anything else.
fn identify(file: &File) -> io::Result<Option<FileId>> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        modified: meta.modified()?,
    }))
}

fn is_dir(file: &File) -> bool {
    file.metadata().is_ok_and(|meta| meta.is_dir())
}

/// Not found covers every way of not being beneath the root (`EXDEV` from
/// `RESOLVE_BENEATH`, `ELOOP`, `ENOTDIR`, a name too long): none of them says more to a
/// client. Permission denied is 403, as nginx answers it.
fn refusal(err: &io::Error) -> Probe {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::EXDEV | libc::ELOOP | libc::ENOTDIR | libc::ENAMETOOLONG) => {
            Probe::NotFound
        }
        Some(libc::EACCES | libc::EPERM) => Probe::Forbidden,
        _ if err.kind() == io::ErrorKind::NotFound => Probe::NotFound,
        _ => {
            log::warn!("static file could not be read: {err}");
            Probe::Failed
        }
    }
}
