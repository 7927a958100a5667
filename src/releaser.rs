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
/// Releasing closes them. A child forked *without* exec shares the open file
/// description and with it the flock: the mutex stays held until every copy
/// of the descriptor is closed (flock(2)). The guard is `Send` and `Sync`.
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
