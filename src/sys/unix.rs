//! Unix backend: `flock(LOCK_EX)` on `<temp dir>/juju-NAME`, as juju/mutex
//! v2 does (`mutex_flock.go`). Shared by Linux, macOS and the BSDs: only
//! POSIX calls and `flock(2)` here.
//!
//! Beyond the Go package, the lock is hardened against its environment (see
//! RELIABILITY.md for the faults and their tests):
//!
//! - **Removed lock files.** Temp-dir cleaners delete old files. A waiter
//!   blocked on a file that was deleted (and maybe created anew by someone
//!   else) would lock an inode nobody else looks at. So after locking, the
//!   descriptor is checked: a link count of 0 (locked at once: from the one
//!   `fstat`), or a path that now names another inode or nothing (after a
//!   blocking wait: one `lstat`, the only system call between the wake-up
//!   and the return), releases it and starts over.
//! - **Ageing.** Each acquisition refreshes the file's timestamps when they
//!   are more than [`REFRESH_AFTER`] old, so age-based cleaners leave a lock
//!   in regular use alone.
//! - **Strange files.** The lock path is opened with `O_NOFOLLOW` (a symbolic
//!   link there is refused, never followed), `O_NONBLOCK` (opening a FIFO does
//!   not hang) and `O_NOCTTY`, and must be a regular file.
//! - **Sticky temp dirs.** An existing file is opened without `O_CREAT`
//!   (`fs.protected_regular`), a missing one is created with `O_EXCL`.
//! - **fork without exec.** flock(2) locks belong to the open file
//!   description, which a forked child shares (also a child that another
//!   thread starts, until its exec). Releasing in the process that
//!   acquired always unlocks explicitly (`LOCK_UN`), so the mutex is free
//!   even while such a child lives; dropping the guard in a forked child
//!   only closes its copy. Forks are noticed without a system call per
//!   acquisition ([`fork_stamp`](super::fork_stamp)).
//! - **Kept descriptors** (`unix/kept.rs`). A released descriptor stays open,
//!   unlocked, for the next acquisition of the same path in this process
//!   (at most [`kept::KEPT_MAX`]); that acquisition locks it and checks that
//!   the path still names its file.

use std::io;
use std::mem::ManuallyDrop;
use std::os::unix::io::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

use super::fair_queue::{self, Turn};
use super::{
    fork_stamp, forked_since, in_forked_child, process_id, ForkStamp, LockBackend, NoAbort,
};

mod kept;

/// Fork prepare handler (Linux): takes the kept descriptors' lock.
#[cfg(target_os = "linux")]
pub(crate) fn hold_kept_for_fork() {
    kept::hold_for_fork();
}

/// Fork parent and child handlers (Linux): in the child, closes the kept
/// descriptors first; then lets the lock go.
#[cfg(target_os = "linux")]
pub(crate) fn release_kept_after_fork(in_child: bool) {
    kept::release_after_fork(in_child);
}
use crate::environment::sudo_owner;
use crate::holder::{HeldLock, Holder};
use crate::{lock_file_path, Environment, Error, Namespace};

/// Timestamps older than this are refreshed when the lock is taken: an hour,
/// far below the ages temp-dir cleaners use (systemd-tmpfiles: 10 days for
/// `/tmp`, 30 for `/var/tmp`; macOS: 3 days), and rare enough to cost nothing.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_secs(3600);

/// How many times in a row the lock file may turn out removed or replaced
/// after locking it before the acquisition gives up with an error.
const MAX_STALE: usize = 100;

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

/// An open lock file on which this process holds `flock(LOCK_EX)`.
/// Dropping it releases the lock: `LOCK_UN` in the process that took it,
/// then close (only close in a forked child holding a copy).
///
/// With [`keep_on_release`](LockBackend::keep_on_release), dropping it
/// unlocks (`LOCK_UN`) and keeps the descriptor open for the next
/// acquisition of the path in this process (`unix/kept.rs`).
#[derive(Debug)]
pub(crate) struct LockFile {
    /// Taken out only in `drop`.
    fd: ManuallyDrop<OwnedFd>,
    /// Which process took the lock, and whether it had forked.
    stamp: ForkStamp,
    /// The process id of the process that took the lock (as
    /// `process_id` says, without a system call): a child made without fork
    /// handlers (raw clone, vfork) has another one.
    pid: u32,
    /// The locked file (device, inode), as checked after locking.
    file_id: (u64, u64),
    /// Where to keep the descriptor on release; `None`: close it.
    keep: Option<PathBuf>,
    /// Whether this process holds the flock through it (`false` only for a
    /// kept descriptor that failed to lock: dropping it just keeps it).
    locked: bool,
    /// Its place in the cross-process queue (a lock taken after waiting),
    /// freed right after the flock, which wakes the next waiter (boxed: the
    /// guard stays small for the common case without one).
    turn: Option<Box<Turn>>,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // SAFETY: `fd` is taken out once, here, and `self` is not used again.
        let fd = unsafe { ManuallyDrop::take(&mut self.fd) };
        // The description may be shared with other processes: children
        // forked without exec, and children that another thread is starting
        // (posix_spawn, vfork, a raw clone: no fork handler runs) until
        // their exec. Closing would release the lock only once they all
        // closed it, so the acquiring process unlocks explicitly, for all of
        // them, whether or not it knows that it forked. A copy of the guard
        // dropped in a child (forked: the fork handler tells; made another
        // way: its process id does) must not take the lock from the parent:
        // it only closes. Without a descriptor to keep, async-signal-safe
        // (atomics, flock, close); keeping one takes the cache's lock.
        let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
        if in_forked_child(self.stamp) || pid != self.pid {
            return;
        }
        let unlocked = !self.locked || flock(&fd, FlockOperation::Unlock).is_ok();
        // The next waiter in the cross-process queue goes on to the flock.
        drop(self.turn.take());
        // A descriptor that a child forked since it was opened may share is
        // not kept: the child's copy would keep a later lock of it alive.
        let keep = unlocked && !forked_since(self.stamp);
        if let (Some(path), true) = (self.keep.take(), keep) {
            let (dev, ino) = self.file_id;
            // Full: closed here.
            drop(kept::keep(path, fd, dev, ino));
        }
    }
}

impl LockBackend for LockFile {
    /// A blocking flock(2) cannot be interrupted from another thread.
    type Abort = NoAbort;

    /// The lock file; Unix has no object namespaces.
    fn target(name: &str, _namespace: Namespace) -> PathBuf {
        lock_file_path(name)
    }

    fn try_lock(path: &Path, env: &dyn Environment) -> Result<Option<LockFile>, Error> {
        // Stamped before the descriptor is in hand: a fork from then on may
        // have given a child a copy of it (checked after locking).
        let stamp = fork_stamp();
        if let Some(kept) = kept::take(path) {
            let mut file = LockFile::stamped(kept.fd, stamp);
            file.file_id = (kept.dev, kept.ino);
            match flock(&file.fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    // The path must still name the kept file (else it was
                    // removed or replaced), and no child may share it: else
                    // dropping `file` unlocks and closes it, and the path is
                    // opened anew below.
                    if let Ok(st) = rustix::fs::lstat(path) {
                        if file_id(&st) == file.file_id && !forked_since(stamp) {
                            file.settle(&st, sudo_owner(env));
                            return Ok(Some(file));
                        }
                    }
                }
                Err(Errno::WOULDBLOCK) => {
                    file.locked = false;
                    // Held, if the path still names the kept file (then it
                    // is kept again as it drops); if not, the file now at
                    // the path is tried below.
                    let same = rustix::fs::lstat(path).map_or(false, |st| {
                        file_id(&st) == file.file_id && check_type(&st, path).is_ok()
                    });
                    if same {
                        file.keep_on_release(path.to_owned());
                        return Ok(None);
                    }
                }
                // Closed; the path is opened anew below.
                Err(_) => file.locked = false,
            }
        }
        for _ in 0..MAX_STALE {
            let stamp = fork_stamp();
            let fd = open(path)?;
            match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => {
                    // A FIFO or directory is reported as what it is, not as "held".
                    check_type(&fstat(&fd, path)?, path)?;
                    return Ok(None);
                }
                Err(e) => return Err(Error::io("lock", path, e.into())),
            }
            let mut file = LockFile::stamped(fd, stamp);
            // The one extra system call of the fast path: type, link count,
            // owner and times at once.
            let st = fstat(&file.fd, path)?;
            check_type(&st, path)?;
            if st.st_nlink == 0 || forked_since(stamp) {
                // Removed between open and flock: another process may
                // already lock a new file at the path. Or a child forked
                // meanwhile shares the descriptor, and would keep the lock
                // if this process died. Release and start over.
                continue;
            }
            file.file_id = file_id(&st);
            file.settle(&st, sudo_owner(env));
            return Ok(Some(file));
        }
        Err(stale_error(path))
    }

    fn lock(
        path: &Path,
        env: &dyn Environment,
        fair: bool,
        _abort: &NoAbort,
    ) -> Result<Option<LockFile>, Error> {
        // With the fair queue, the waiters queued before this one (other
        // processes) go first, then the flock; the turn is freed (dropped)
        // if this fails. Taken once the file is open, so that only flock
        // is left once the turn comes.
        let mut turn = None;
        let mut queued = !fair;
        // Read before the wait (the environment), used after it.
        let sudo = sudo_owner(env);
        for _ in 0..MAX_STALE {
            let stamp = fork_stamp();
            let fd = open(path)?;
            // Never block on something that is not a lock file.
            let st = fstat(&fd, path)?;
            check_type(&st, path)?;
            if !queued {
                turn = fair_queue::take_turn(path);
                queued = true;
            }
            match flock(&fd, FlockOperation::LockExclusive) {
                Ok(()) => {}
                Err(e) => return Err(Error::io("lock", path, e.into())),
            }
            let mut file = LockFile::stamped(fd, stamp);
            // The wait may have been long: the file may have been removed,
            // and the path may name a new file that someone else locks now.
            // Or the process forked while this thread waited: the child has
            // a copy of the descriptor, which would keep the lock after
            // this process died. Either way, release and start over.
            //
            // The path's `lstat` is the one system call after the wait: the
            // file it names has links, and the upkeep reads owner, link count
            // and times from it. (As for kept descriptors, a device and inode
            // are taken to name one file while it is open; a wrapped 32-bit
            // tmpfs inode counter could in theory break that.) The sudo owner
            // is given only now, never while another process holds the file.
            let now = match same_file_at(path, &st)? {
                Some(now) if !forked_since(stamp) => now,
                _ => continue,
            };
            file.file_id = file_id(&st);
            file.settle(&now, sudo);
            if let Some(turn) = &mut turn {
                turn.served();
            }
            file.turn = turn.take().map(Box::new);
            return Ok(Some(file));
        }
        Err(stale_error(path))
    }

    /// Closing the descriptor (after `LOCK_UN` where a forked child may share
    /// it), or unlocking it to keep it, always releases the flock.
    fn release(self) -> Result<(), Error> {
        drop(self);
        Ok(())
    }

    fn others_queued(path: &Path) -> bool {
        fair_queue::others_queued(path)
    }

    fn keep_on_release(&mut self, path: PathBuf) {
        self.keep = Some(path);
    }
}

/// A file's identity: device and inode.
#[allow(clippy::unnecessary_cast)] // the field types differ by platform
fn file_id(st: &Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

impl LockFile {
    /// `fd`, locked (or, for a kept descriptor, being locked), stamped with
    /// the fork state from before it was opened or taken out of the cache.
    fn stamped(fd: OwnedFd, stamp: ForkStamp) -> LockFile {
        LockFile {
            fd: ManuallyDrop::new(fd),
            stamp,
            pid: process_id(),
            file_id: (0, 0),
            keep: None,
            locked: true,
            turn: None,
        }
    }

    /// Best-effort upkeep once the lock is held, using the `fstat` or `lstat`
    /// already made: the file given to `sudo` (the sudo user, from
    /// [`sudo_owner`]), and fresh timestamps when they are old.
    fn settle(&self, st: &Stat, sudo: Option<(u32, u32)>) {
        if let Some((uid, gid)) = sudo {
            give_to_sudo_user(&self.fd, st, uid, gid);
        }
        if is_old(st, SystemTime::now()) {
            // Needs ownership or write permission; without them the file
            // ages as before (RELIABILITY.md, "remaining hole").
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            };
            let _ = rustix::fs::futimens(
                &*self.fd,
                &Timestamps {
                    last_access: now,
                    last_modification: now,
                },
            );
        }
    }
}

/// Under sudo, gives a lock file that root owns to `SUDO_UID`/`SUDO_GID`
/// (Go: `chownFromRoot`; failures are ignored, as there). Unlike the Go
/// package, only a file with one link that this process owns is changed, so
/// a hard link planted at the path never hands another file to the user.
fn give_to_sudo_user(fd: &OwnedFd, st: &Stat, uid: u32, gid: u32) {
    let me = rustix::process::geteuid().as_raw();
    let already = st.st_uid == uid && st.st_gid == gid;
    #[allow(clippy::unnecessary_cast)] // st_nlink is u32 or u64 by platform
    let one_link = st.st_nlink as u64 == 1;
    if already || st.st_uid != me || !one_link {
        return;
    }
    let _ = rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
}

/// Whether the file's access, modification or change time is older than
/// [`REFRESH_AFTER`] at `now`, so that a cleaner's clock would start on it.
#[allow(clippy::unnecessary_cast)] // time_t is i64 or i32 by platform
pub(crate) fn is_old(st: &Stat, now: SystemTime) -> bool {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(now) => now.as_secs() as i64,
        Err(_) => return false,
    };
    let oldest = (st.st_atime as i64)
        .min(st.st_mtime as i64)
        .min(st.st_ctime as i64);
    now.saturating_sub(oldest) > REFRESH_AFTER.as_secs() as i64
}

/// Whether the lock at `path` is held, found by trying it: the file is opened
/// if it exists (never created; a missing file is free) and a shared,
/// non-blocking flock is tried. `EWOULDBLOCK` means an exclusive holder has
/// it: held, holder unknown. Success means free; the shared lock is released
/// at once by closing the descriptor. The holder query of systems without
/// `/proc/locks` (see [`crate::holder`] for the instant this probe holds a
/// shared lock).
pub(crate) fn probe_holder(_name: &str, path: &Path) -> Result<Option<Holder>, Error> {
    // Opened as for locking: a FIFO must not hang the probe, a link is not followed.
    let fd = loop {
        match rustix::fs::open(path, OPEN_FLAGS, Mode::empty()) {
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

/// What `path` (not following a symbolic link) names now, if it is still
/// the file of `st`: `None` if it names another file or nothing.
fn same_file_at(path: &Path, st: &Stat) -> Result<Option<Stat>, Error> {
    match rustix::fs::lstat(path) {
        Ok(now) => Ok((file_id(&now) == file_id(st)).then_some(now)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("check lock file", path, e.into())),
    }
}

fn fstat(fd: &OwnedFd, path: &Path) -> Result<Stat, Error> {
    rustix::fs::fstat(fd).map_err(|e| Error::io("check lock file", path, e.into()))
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

/// How the lock file is opened (see [`open`]).
const OPEN_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// Opens the lock file read-only and close-on-exec, creating it with mode
/// 0600 when missing.
///
/// An existing file is opened without `O_CREAT`: with
/// `fs.protected_regular` set, `O_CREAT` on another user's file in a sticky
/// directory fails even when the mode would allow the open. A missing file
/// is created with `O_EXCL`; if another process creates it first, the open
/// is tried again.
///
/// `O_NOFOLLOW`: a symbolic link at the path is an error, never followed
/// (it could point anywhere, out of the temporary directory too).
/// `O_NONBLOCK`: opening a FIFO returns at once (its type is then refused);
/// it has no effect on a regular file or on flock. `O_NOCTTY`: a terminal
/// device there never becomes the controlling terminal.
fn open(path: &Path) -> Result<OwnedFd, Error> {
    let flags = OPEN_FLAGS;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::INTR) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(open_error("open lock file", path, e)),
        }
        match rustix::fs::open(
            path,
            flags | OFlags::CREATE | OFlags::EXCL,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => return Ok(fd),
            Err(Errno::EXIST) | Err(Errno::INTR) if attempts < 100 => continue,
            Err(e) => return Err(open_error("create lock file", path, e)),
        }
    }
}

/// Refuses what acquiring would refuse at the lock path, without opening
/// it: a symbolic link, or anything but a regular file. A missing file (or
/// one that cannot be examined here) passes: the caller reports on it.
pub(crate) fn check_lock_path(path: &Path) -> Result<(), Error> {
    match rustix::fs::lstat(path) {
        #[allow(clippy::unnecessary_cast)] // st_mode is u32 or u16 by platform
        Ok(st) if FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink => {
            Err(open_error("open lock file", path, Errno::LOOP))
        }
        Ok(st) => check_type(&st, path),
        Err(_) => Ok(()),
    }
}

/// Refuses anything but a regular file at the lock path.
fn check_type(st: &Stat, path: &Path) -> Result<(), Error> {
    #[allow(clippy::unnecessary_cast)] // st_mode is u32 or u16 by platform
    let kind = match FileType::from_raw_mode(st.st_mode as _) {
        FileType::RegularFile => return Ok(()),
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a regular file",
    };
    Err(Error::Io {
        action: "use lock file",
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        hint: Some(format!(
            "the lock path is {kind}; juju/mutex and machine-mutex only create regular files \
             there: remove it"
        )),
    })
}

/// The error after [`MAX_STALE`] removed or replaced files in a row.
fn stale_error(path: &Path) -> Error {
    Error::Io {
        action: "lock",
        path: path.to_owned(),
        source: io::Error::new(
            io::ErrorKind::Other,
            "the lock file was removed or replaced every time it was locked",
        ),
        hint: Some(
            "something keeps deleting it (a temp-dir cleaner?); exclude juju-* from it or set \
             TMPDIR to a directory that is not cleaned"
                .to_owned(),
        ),
    }
}

/// Advice for `EMFILE`/`ENFILE`, whichever descriptor could not be opened.
pub(super) const TOO_MANY_FILES_HINT: &str =
    "too many open files; close descriptors or raise the limit (ulimit -n)";

/// The error for a failed open, with advice for the usual causes.
fn open_error(action: &'static str, path: &Path, errno: Errno) -> Error {
    let dir = path.parent().unwrap_or(path).display();
    let hint = match errno {
        Errno::ACCESS | Errno::PERM => Some(match rustix::fs::lstat(path) {
            Ok(st) => permission_hint(path, &st),
            Err(_) => format!(
                "the directory {dir} is not writable by this user; set TMPDIR to one that is"
            ),
        }),
        Errno::NOENT => Some(match rustix::fs::stat(path.parent().unwrap_or(path)) {
            Err(_) => format!("the directory {dir} does not exist; check TMPDIR"),
            // It exists, but cannot hold the file (such as /proc).
            Ok(_) => format!("{dir} cannot hold lock files; set TMPDIR to a temporary directory"),
        }),
        Errno::NOTDIR => Some(format!("{dir} is not a directory; check TMPDIR")),
        Errno::ROFS => Some(format!(
            "{dir} is on a read-only file system; set TMPDIR elsewhere"
        )),
        // Linux and macOS say ELOOP for O_NOFOLLOW on a link, FreeBSD EMLINK.
        Errno::LOOP | Errno::MLINK => Some(
            "the lock path is a symbolic link; machine-mutex does not follow links there \
             (one could point out of the temporary directory): remove it"
                .to_owned(),
        ),
        Errno::MFILE | Errno::NFILE => Some(TOO_MANY_FILES_HINT.to_owned()),
        _ => None,
    };
    Error::Io {
        action,
        path: path.to_owned(),
        source: io::Error::from(errno),
        hint,
    }
}

/// Who owns the file, with which mode, and what to do about it.
fn permission_hint(path: &Path, st: &Stat) -> String {
    let me = rustix::process::geteuid().as_raw();
    let mode = st.st_mode & 0o7777;
    let owner = if st.st_uid == 0 {
        "root (uid 0)".to_owned()
    } else {
        format!("uid {}", st.st_uid)
    };
    let path = path.display();
    if st.st_uid == me {
        format!(
            "the file is owned by this user ({owner}) but has mode {mode:04o}; \
             run `chmod 600 {path}` or remove it"
        )
    } else if st.st_uid == 0 {
        format!(
            "the file is owned by {owner} with mode {mode:04o} and this process runs as uid \
             {me}: it was likely created by root without sudo; remove it (`sudo rm {path}`) \
             or run as root"
        )
    } else {
        format!(
            "the file is owned by {owner} with mode {mode:04o} and this process runs as uid \
             {me}: another user made this lock file; use another name or TMPDIR, run as \
             that user, or have that user (or root) remove the file"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_of(path: &Path) -> Stat {
        rustix::fs::stat(path).unwrap()
    }

    /// Times within the hour are fresh, older ones are refreshed.
    #[test]
    fn old_means_older_than_refresh_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("juju-old");
        std::fs::write(&path, b"").unwrap();
        let st = stat_of(&path);
        let now = SystemTime::now();
        assert!(!is_old(&st, now));
        assert!(!is_old(&st, now + REFRESH_AFTER - Duration::from_secs(5)));
        assert!(is_old(&st, now + REFRESH_AFTER + Duration::from_secs(5)));
        assert!(
            !is_old(&st, UNIX_EPOCH),
            "a clock before the file never refreshes"
        );
    }

    /// A locked file that was unlinked is never returned as held: the blocking
    /// path sees the mismatch, the fast path the link count.
    #[test]
    fn removed_file_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("juju-removed");
        let fd = open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        assert_eq!(st.st_nlink, 0);
        assert!(same_file_at(&path, &st).unwrap().is_none());
        std::fs::write(&path, b"").unwrap();
        assert!(
            same_file_at(&path, &st).unwrap().is_none(),
            "a new file at the path"
        );
        let fresh = rustix::fs::fstat(open(&path).unwrap()).unwrap();
        let now = same_file_at(&path, &fresh)
            .unwrap()
            .expect("the file at the path");
        assert_eq!((now.st_ino, now.st_nlink), (fresh.st_ino, 1));
    }
}
