//! Unix backend: `flock(LOCK_EX)` on `<temp dir>/juju-NAME`, as juju/mutex
//! v2 does (`mutex_flock.go`). Shared by Linux, macOS and the BSDs: only
//! POSIX calls and `flock(2)` here.

use std::io;
use std::os::unix::io::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::{LockBackend, NoAbort};
use crate::environment::sudo_owner;
use crate::holder::{HeldLock, Holder};
use crate::{lock_file_path, Environment, Error, Namespace};

/// An open lock file on which this process holds `flock(LOCK_EX)`.
/// Dropping it closes the descriptor, which releases the lock.
#[derive(Debug)]
pub(crate) struct LockFile {
    _fd: OwnedFd,
}

impl LockBackend for LockFile {
    /// A blocking flock(2) cannot be interrupted from another thread.
    type Abort = NoAbort;

    /// The lock file; Unix has no object namespaces.
    fn target(name: &str, _namespace: Namespace) -> PathBuf {
        lock_file_path(name)
    }

    fn try_lock(path: &Path, env: &dyn Environment) -> Result<Option<LockFile>, Error> {
        let fd = open(path, env)?;
        match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(LockFile { _fd: fd })),
            Err(Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("lock", path, e.into())),
        }
    }

    fn lock(
        path: &Path,
        env: &dyn Environment,
        _abort: &NoAbort,
    ) -> Result<Option<LockFile>, Error> {
        let fd = open(path, env)?;
        match flock(&fd, FlockOperation::LockExclusive) {
            Ok(()) => Ok(Some(LockFile { _fd: fd })),
            Err(e) => Err(Error::io("lock", path, e.into())),
        }
    }

    /// Closing the descriptor always releases the flock.
    fn release(self) -> Result<(), Error> {
        drop(self);
        Ok(())
    }
}

/// The directory of the lock files, by the rule of Go's `os.TempDir()` on
/// Unix: `$TMPDIR` when it is set and not empty, else `/tmp`.
///
/// Not `std::env::temp_dir()`, which differs from Go in two cases: it
/// returns an empty `$TMPDIR` as it is (a path relative to the working
/// directory), and on macOS, when `TMPDIR` is unset, it returns the per-user
/// `confstr(_CS_DARWIN_USER_TEMP_DIR)` directory where Go uses `/tmp`.
pub(crate) fn temp_dir() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/tmp"),
    }
}

/// Whether the lock at `path` is held, found by trying it: the file is opened
/// if it exists (never created; a missing file is free) and a shared,
/// non-blocking flock is tried. `EWOULDBLOCK` means an exclusive holder has
/// it: held, holder unknown. Success means free; the shared lock is released
/// at once by closing the descriptor. The holder query of systems without
/// `/proc/locks` (see [`crate::holder`] for the instant this probe holds a
/// shared lock).
pub(crate) fn probe_holder(_name: &str, path: &Path) -> Result<Option<Holder>, Error> {
    // Non-blocking open: a FIFO put in the lock file's place must not hang the probe.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = loop {
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => break fd,
            Err(Errno::INTR) => continue,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(open_error("open lock file", path, e)),
        }
    };
    match flock(&fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(None),
        Err(Errno::WOULDBLOCK) => Ok(Some(Holder::unknown(HeldLock::LockFile))),
        Err(e) => Err(Error::io("probe the lock on", path, e.into())),
    }
}

/// flock(2), retried when a signal interrupts it.
fn flock(fd: &OwnedFd, op: FlockOperation) -> Result<(), Errno> {
    loop {
        match rustix::fs::flock(fd, op) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Opens the lock file read-only and close-on-exec, creating it with mode
/// 0600 when missing, and under sudo gives it to `SUDO_UID`/`SUDO_GID`
/// (Go: `chownFromRoot`; a failed chown is ignored, as there).
///
/// An existing file is opened without `O_CREAT`: with
/// `fs.protected_regular` set, `O_CREAT` on another user's file in a sticky
/// directory fails even when the mode would allow the open. A missing file
/// is created with `O_EXCL`; if another process creates it first, the open
/// is tried again.
fn open(path: &Path, env: &dyn Environment) -> Result<OwnedFd, Error> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let mut attempts = 0;
    let fd = loop {
        attempts += 1;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => break fd,
            Err(Errno::INTR) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(open_error("open lock file", path, e)),
        }
        match rustix::fs::open(
            path,
            flags | OFlags::CREATE | OFlags::EXCL,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => break fd,
            Err(Errno::EXIST) | Err(Errno::INTR) if attempts < 100 => continue,
            Err(e) => return Err(open_error("create lock file", path, e)),
        }
    };
    if let Some((uid, gid)) = sudo_owner(env) {
        let _ = rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
    }
    Ok(fd)
}

/// The error for a failed open, with advice for the usual causes.
fn open_error(action: &'static str, path: &Path, errno: Errno) -> Error {
    let dir = path.parent().unwrap_or(path).display();
    let hint = match errno {
        Errno::ACCESS | Errno::PERM => Some(match rustix::fs::stat(path) {
            Ok(st) => format!(
                "the file is owned by uid {} and this process runs as uid {}: it was likely \
                 created by another user, or by root without sudo; remove it or run as its owner",
                st.st_uid,
                rustix::process::getuid().as_raw()
            ),
            Err(_) => format!(
                "the directory {dir} is not writable by this user; set TMPDIR to one that is"
            ),
        }),
        Errno::NOENT => Some(format!("the directory {dir} does not exist; check TMPDIR")),
        Errno::NOTDIR => Some(format!("{dir} is not a directory; check TMPDIR")),
        Errno::ROFS => Some(format!(
            "{dir} is on a read-only file system; set TMPDIR elsewhere"
        )),
        Errno::MFILE | Errno::NFILE => {
            Some("too many open files; close descriptors or raise the limit (ulimit -n)".to_owned())
        }
        _ => None,
    };
    Error::Io {
        action,
        path: path.to_owned(),
        source: io::Error::from(errno),
        hint,
    }
}
