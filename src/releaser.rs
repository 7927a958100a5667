//! [`Releaser`]: the guard that holds an acquired mutex.

use crate::sys;
use crate::Error;

/// Holds an acquired mutex until it is dropped or [released](Self::release):
/// the counterpart of the Go package's `Releaser`.
///
/// Dropping the guard releases the mutex; errors are ignored there and drop
/// never panics. If the process dies, the kernel releases it.
///
/// # Unix
/// The guard owns the lock file's descriptor (close-on-exec, so programs the
/// holder executes do not keep the lock) and, on Linux, the legacy socket.
/// Releasing closes them (unlocking the file first with `flock(LOCK_UN)`
/// once the process has forked, see below). The guard is `Send` and `Sync`.
///
/// **fork without exec.** A child forked without exec gets a copy of the
/// descriptor, which shares the open file description and with it the
/// flock (flock(2)). The rule is that the process that acquired owns the
/// mutex:
/// - its release (or drop) frees the mutex at once, even while forked
///   children still have their copies;
/// - the guard's copy in a forked child never releases the parent's hold:
///   dropping or releasing it there only closes the child's descriptor
///   (async-signal-safe, so allowed in the child of a multithreaded parent);
///   until the parent releases, the mutex stays held for everyone, the child
///   included (the child does not hold it in its own right: it must not rely
///   on it once the parent may have released);
/// - if the parent ends without releasing (it exits or is killed), the lock
///   stays with the children's copies until they close them or exit. A
///   parent that wants to hand the mutex to a forked child does exactly
///   that: it exits (or [`std::mem::forget`]s the guard) instead of releasing.
///
/// The legacy socket (Linux) cannot be released for all copies at once (a
/// socket name stays bound until its last copy is closed), so it is not
/// shared: a fork handler (`pthread_atfork(3)`) puts `/dev/null` in the
/// child's copy of each of this process's legacy socket descriptors (the
/// descriptor number stays valid). So the release frees the socket name at
/// once too, and a parent that exits without releasing leaves its child the
/// flock only: processes of this crate and Go's v2 still wait for the
/// child, juju/mutex v1 processes (socket only) no longer do. A child made
/// without fork handlers (a raw `clone`, `vfork`) keeps a copy of the
/// socket, and the name stays bound until it exits or execs.
///
/// # Windows
/// A Windows mutex can only be released by the thread that acquired it, so
/// the mutex is held by an owner thread started for this acquisition (as in
/// the Go package); the guard holds that thread's handle. Releasing tells
/// the owner thread to call `ReleaseMutex`, and waits until it has: when
/// `release` returns, another process can take the mutex. The guard is
/// `Send` and `Sync` here too: it may be released or dropped on any thread,
/// and async code can hold it across `.await`. If the process dies, the
/// mutex is *abandoned* and the next waiter acquires it.
#[must_use = "if unused the mutex will immediately unlock"]
#[clippy::has_significant_drop]
#[derive(Debug)]
pub struct Releaser {
    held: Option<sys::Held>,
}

impl Releaser {
    pub(crate) fn new(held: sys::Held) -> Releaser {
        Releaser { held: Some(held) }
    }

    /// Releases the mutex. Only the first call releases; later calls do
    /// nothing and return `Ok(())` (as Go's `Release`, which may be called
    /// many times). Releasing never affects another holder: each guard
    /// releases only what it acquired.
    ///
    /// # Errors
    /// The OS error of the release, if any. On Unix closing a descriptor
    /// always releases it, so this returns `Ok(())`. On Windows, the error of
    /// `ReleaseMutex` (not expected: the owner thread does own the mutex); the
    /// handle is closed and the owner thread ended all the same.
    pub fn release(&mut self) -> Result<(), Error> {
        match self.held.take() {
            Some(held) => held.release(),
            None => Ok(()),
        }
    }

    /// Whether the guard still holds the mutex (it has not been released).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

impl Drop for Releaser {
    fn drop(&mut self) {
        let _ = self.release();
    }
}
