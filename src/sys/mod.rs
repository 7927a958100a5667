//! The platform boundary: the one place that picks code by operating system.
//!
//! - [`unix`] (Linux, macOS, the BSDs): the lock file and its `flock(2)`,
//!   and the temporary directory it lives in ([`temp_dir`]).
//! - [`linux`]: the legacy abstract Unix socket of juju/mutex v1, and the
//!   holder query through procfs.
//! - other Unix systems have no legacy socket (`no_legacy` below).
//!
//! The rest of the crate sees only [`LockFile`], [`LegacySocket`],
//! [`Held`] and [`temp_dir`], and relies on the contracts written on
//! [`LockBackend`] and [`LegacyBackend`].

use std::path::Path;

use crate::{Environment, Error};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use self::unix::{temp_dir, LockFile};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use self::linux::LegacySocket;

#[cfg(all(unix, not(target_os = "linux")))]
pub(crate) use self::no_legacy::LegacySocket;

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

#[cfg(not(unix))]
compile_error!("machine-mutex supports Unix (flock) and Windows (named mutex) only");

/// The contract of a platform's lock: the hand-off and wait code
/// (`handoff.rs`, `wait.rs`) depend on nothing else.
pub(crate) trait LockBackend: Sized + Send + 'static {
    /// Takes the lock at `path` without waiting: `Ok(None)` when another
    /// holder has it. Never blocks.
    fn try_lock(path: &Path, env: &dyn Environment) -> Result<Option<Self>, Error>;

    /// Takes the lock at `path`, sleeping in the kernel until it is free.
    /// Interrupted system calls are retried, never reported. Dropping the
    /// value releases the lock.
    fn lock(path: &Path, env: &dyn Environment) -> Result<Self, Error>;
}

/// The contract of the compatibility lock taken after the main one.
pub(crate) trait LegacyBackend: Sized + Send + Sync + 'static {
    /// Takes it without waiting: `Ok(None)` when another process has it.
    fn try_bind(name: &str) -> Result<Option<Self>, Error>;
}

/// Everything one acquisition holds; dropping it releases all of it.
#[derive(Debug)]
pub(crate) struct Held {
    // Field order is release order: the legacy socket goes first, then the flock.
    _socket: Option<LegacySocket>,
    _file: LockFile,
}

impl Held {
    pub(crate) fn new(file: LockFile, socket: Option<LegacySocket>) -> Held {
        Held {
            _socket: socket,
            _file: file,
        }
    }

    /// Releases the socket, then the lock file.
    pub(crate) fn release(self) -> Result<(), Error> {
        drop(self);
        Ok(())
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod no_legacy {
    //! Unix systems other than Linux have no abstract sockets; juju/mutex
    //! never took a second lock there.

    use super::LegacyBackend;
    use crate::Error;

    /// Nothing to hold.
    #[derive(Debug)]
    pub(crate) struct LegacySocket;

    impl LegacyBackend for LegacySocket {
        fn try_bind(_name: &str) -> Result<Option<Self>, Error> {
            Ok(Some(LegacySocket))
        }
    }
}
