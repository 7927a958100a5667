//! The platform boundary: the one place that picks code by operating system.
//!
//! - `unix` (Linux, macOS, the BSDs): the lock file and its `flock(2)`,
//!   and the temporary directory it lives in ([`temp_dir`]).
//! - `linux`: the legacy abstract Unix socket of juju/mutex v1, the holder
//!   query through procfs, the fork watch, and the cross-process queue of
//!   waiters (`fair_queue`: arrival order between processes).
//! - `windows`: the named kernel mutex `juju-mutex-NAME`, held by an owner
//!   thread per acquisition.
//! - other systems have no legacy socket (`no_legacy` below).
//!
//! The rest of the crate sees only [`LockFile`] (the platform's lock: a lock
//! file on Unix, a named mutex on Windows), [`LegacySocket`], [`Held`],
//! [`temp_dir`] and `holder`, and relies on the contracts written on
//! [`LockBackend`], [`AbortWait`] and [`LegacyBackend`].

use std::path::{Path, PathBuf};

use crate::{Environment, Error, Namespace};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use self::unix::{temp_dir, LockFile};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use self::windows::NamedMutex as LockFile;

#[cfg(target_os = "linux")]
mod linux;
// The cross-process queue of waiters (Linux); elsewhere waits use the flock alone.
#[cfg(target_os = "linux")]
pub(crate) use self::linux::fair_queue;
#[cfg(target_os = "linux")]
pub(crate) use self::linux::{
    closes_kept_in_forked_children, fork_stamp, forked_since, in_forked_child, process_id,
    LegacySocket,
};
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) use self::no_fair_queue as fair_queue;

#[cfg(not(target_os = "linux"))]
pub(crate) use self::no_legacy::LegacySocket;
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) use self::portable_fork::{
    closes_kept_in_forked_children, fork_stamp, forked_since, in_forked_child, process_id,
};

/// The temporary directory elsewhere: `std::env::temp_dir()`, which on
/// Windows is `GetTempPath`, as Go's `os.TempDir()`. (The Windows lock is a
/// named kernel object; [`lock_file_path`](crate::lock_file_path) only names
/// a file there.)
#[cfg(not(unix))]
pub(crate) fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir()
}

// The holder query, `holder(name, lock_file_path) -> Result<Option<Holder>, Error>`:
// who holds the mutex, `Ok(None)` when free; never creates the lock file,
// never waits, and takes no lock where the platform can answer without
// (Linux: procfs). Its documentation per platform is on `crate::holder`.
#[cfg(target_os = "linux")]
pub(crate) use self::linux::holder;
#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) use self::unix::probe_holder as holder;
#[cfg(windows)]
pub(crate) use self::windows::holder;

// What the holder query refuses before it looks: the lock path must be
// something an acquisition would lock (Unix: a regular file, no symlink).
#[cfg(unix)]
pub(crate) use self::unix::check_lock_path;
#[cfg(windows)]
pub(crate) fn check_lock_path(_path: &Path) -> Result<(), Error> {
    Ok(())
}

#[cfg(not(any(unix, windows)))]
compile_error!("machine-mutex supports Unix (flock) and Windows (named mutex) only");

/// The contract of a platform's lock: the hand-off and wait code
/// (`handoff.rs`, `wait.rs`) depend on nothing else.
///
/// A lock is known by its *target*: the lock file path on Unix, the kernel
/// object name on Windows. The hand-off queues are keyed by it and I/O
/// errors name it.
pub(crate) trait LockBackend: Sized + Send + 'static {
    /// What stops a blocking [`lock`](Self::lock) from another thread.
    type Abort: AbortWait;

    /// The target of the mutex `name` in `namespace` (ignored on Unix).
    fn target(name: &str, namespace: Namespace) -> PathBuf;

    /// Takes the lock without waiting: `Ok(None)` when another holder has
    /// it. Never blocks.
    fn try_lock(target: &Path, env: &dyn Environment) -> Result<Option<Self>, Error>;

    /// Takes the lock, sleeping in the kernel until it is free. Interrupted
    /// system calls are retried, never reported. Returns `Ok(None)` only
    /// after `abort` was [aborted](AbortWait::abort) (where the platform can
    /// abort a kernel wait at all). `fair`: first take a turn in the
    /// cross-process queue (Linux, `Spec::with_fair_queue`; ignored elsewhere).
    fn lock(
        target: &Path,
        env: &dyn Environment,
        fair: bool,
        abort: &Self::Abort,
    ) -> Result<Option<Self>, Error>;

    /// Whether waiters in other processes are queued for `target` (Linux,
    /// the fair queue: `sys/linux/fair_queue.rs`): a caller that would wait
    /// then queues behind them rather than taking a free lock first. `false`
    /// where there is no such queue. No system call once the queue is open
    /// (the first call for a target opens it).
    fn others_queued(target: &Path) -> bool;

    /// Asks that releasing keep what was opened for `target`, for the next
    /// acquisition in this process (Unix: the lock file's descriptor,
    /// `unix/kept.rs`); a no-op where nothing can be kept.
    fn keep_on_release(&mut self, target: PathBuf);

    /// Releases the lock and reports the OS error, if any. Dropping the
    /// value releases it too, ignoring errors.
    fn release(self) -> Result<(), Error>;
}

/// Stops one blocking [`LockBackend::lock`] from another thread.
pub(crate) trait AbortWait: Sized + Send + Sync + 'static {
    /// A fresh one, not aborted.
    fn new(target: &Path) -> Result<Self, Error>;

    /// Makes the `lock` call that waits with this end with `Ok(None)`
    /// (now, or as soon as it starts), unless it already took the lock.
    /// Returns `false` where the platform cannot abort a kernel wait: the
    /// wait then goes on until the lock is granted.
    fn abort(&self) -> bool;
}

/// The contract of the compatibility lock taken after the main one.
pub(crate) trait LegacyBackend: Sized + Send + Sync + 'static {
    /// Made but not taken yet (Linux: the socket, not bound). A waiter
    /// makes it before it sleeps, so that only [`bind`](Self::bind) is left
    /// to do once the main lock is granted.
    fn unbound(name: &str) -> Result<Self, Error>;

    /// Takes it without waiting: `Ok(false)` when another process has it
    /// (it may be tried again).
    fn bind(&mut self) -> Result<bool, Error>;

    /// Makes and takes it without waiting: `Ok(None)` when another process
    /// has it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn try_bind(name: &str) -> Result<Option<Self>, Error> {
        let mut legacy = Self::unbound(name)?;
        Ok(if legacy.bind()? { Some(legacy) } else { None })
    }
}

/// Recorded before a lock file descriptor is opened (or taken out of the
/// kept ones), to tell later whether the process forked since: then a child
/// may share the descriptor.
///
/// The contract of `fork_stamp() -> ForkStamp`, `forked_since(ForkStamp)`
/// and `in_forked_child(ForkStamp)` (one set per platform): all are
/// async-signal-safe, and on Linux none makes a system call.
#[cfg(unix)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ForkStamp(u32, u32);

/// Everything one acquisition holds; dropping it releases all of it.
#[derive(Debug)]
pub(crate) struct Held {
    // Field order is release order: the legacy socket goes first, then the lock.
    socket: Option<LegacySocket>,
    file: LockFile,
}

impl Held {
    pub(crate) fn new(file: LockFile, socket: Option<LegacySocket>) -> Held {
        Held { socket, file }
    }

    /// Releases the socket, then the lock; returns the lock's release error.
    pub(crate) fn release(self) -> Result<(), Error> {
        let Held { socket, file } = self;
        drop(socket);
        file.release()
    }
}

/// For platforms whose kernel waits cannot be interrupted (`flock(2)`):
/// aborting does nothing and says so.
#[allow(dead_code)] // not used on every platform
#[derive(Debug)]
pub(crate) struct NoAbort;

impl AbortWait for NoAbort {
    fn new(_target: &Path) -> Result<Self, Error> {
        Ok(NoAbort)
    }

    fn abort(&self) -> bool {
        false
    }
}

#[cfg(not(target_os = "linux"))]
mod no_legacy {
    //! Systems other than Linux have no abstract sockets; juju/mutex never
    //! took a second lock there.

    use super::LegacyBackend;
    use crate::Error;

    /// Nothing to hold.
    #[derive(Debug)]
    pub(crate) struct LegacySocket;

    impl LegacyBackend for LegacySocket {
        fn unbound(_name: &str) -> Result<Self, Error> {
            Ok(LegacySocket)
        }

        fn bind(&mut self) -> Result<bool, Error> {
            Ok(true)
        }
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod no_fair_queue {
    //! No cross-process queue (it needs the fork handlers of Linux): waiters
    //! wait on the flock alone, in no particular order.

    use std::path::Path;

    /// Nothing to hold.
    #[derive(Debug)]
    pub(crate) struct Turn;

    impl Turn {
        pub(crate) fn served(&self) {}
    }

    pub(crate) fn take_turn(_lock_path: &Path) -> Option<Turn> {
        None
    }

    pub(crate) fn others_queued(_lock_path: &Path) -> bool {
        false
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod portable_fork {
    //! Fork detection by process id, where the libc crate offers no
    //! `pthread_atfork`: one `getpid` at acquisition and one at release, and
    //! the acquiring process always unlocks explicitly.

    use super::ForkStamp;

    pub(crate) fn fork_stamp() -> ForkStamp {
        ForkStamp(rustix::process::getpid().as_raw_nonzero().get() as u32, 0)
    }

    /// Whether this process forked since `stamp`: unknown without fork
    /// handlers, so `false` (a descriptor open in a thread while another
    /// forks stays shared with that child: see RELIABILITY.md).
    pub(crate) fn forked_since(_stamp: ForkStamp) -> bool {
        false
    }

    /// No fork handler here: a forked child would keep the open file
    /// descriptions of kept descriptors, so none are kept.
    pub(crate) fn closes_kept_in_forked_children() -> bool {
        false
    }

    /// This process's id (no fork handler here to clear a cached one).
    pub(crate) fn process_id() -> u32 {
        rustix::process::getpid().as_raw_nonzero().get() as u32
    }

    /// Whether this is a child forked after `stamp` was taken in its parent.
    pub(crate) fn in_forked_child(stamp: ForkStamp) -> bool {
        fork_stamp().0 != stamp.0
    }
}
