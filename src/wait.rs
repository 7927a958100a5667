//! The timed slow path: one `acquire(spec, wait)` for blocking, timed and
//! non-blocking acquisition, and the [`Waiter`] that sleeps until the
//! hand-off, a deadline on the spec's clock, or a cancel.

use std::time::Instant;

use crate::cancel::Registration;
use crate::sys::{Held, LegacyBackend, LegacySocket, LockBackend, LockFile};
use crate::{handoff, CancelToken, Clock, Error, Releaser, Spec, Wakeup};

/// Acquires as `spec` says; `wait == false` is `try_acquire`.
pub(crate) fn acquire(spec: &Spec, wait: bool) -> Result<Releaser, Error> {
    spec.validate()?;
    if spec.cancel_token().map_or(false, CancelToken::is_cancelled) {
        return Err(Error::Cancelled);
    }
    // The deadline is fixed once; one too far to represent means forever.
    let deadline = match spec.timeout() {
        Some(timeout) if wait => spec.clock().now().checked_add(timeout),
        _ => None,
    };
    // The lock file on Unix, the kernel object name on Windows.
    let path = LockFile::target(spec.name(), spec.namespace());
    // Made only when the caller has to sleep: the fast path allocates nothing more.
    let mut waiter = None;
    // A caller that sleeps makes its legacy socket first, so that only
    // bind(2) is left once the lock is handed over.
    let mut socket = None;
    let fair = spec.fair_queue();
    let file = match handoff::try_lock(&path, spec.environment(), wait, fair)? {
        Some(file) => file,
        None if !wait => return Err(Error::WouldBlock),
        None => {
            if spec.legacy_socket() {
                socket = Some(LegacySocket::unbound(spec.name())?);
            }
            match wait_in_place(spec, &path, deadline)? {
                Some(file) => file,
                None => handoff::wait(
                    &path,
                    spec.environment_arc(),
                    fair,
                    waiter.get_or_insert_with(|| Waiter::new(spec, deadline)),
                )?,
            }
        }
    };
    // If this fails, `file` drops here and the flock is released.
    let socket = if spec.legacy_socket() {
        Some(legacy_socket(spec, wait, deadline, &mut waiter, socket)?)
    } else {
        None
    };
    // Only an acquisition that succeeds keeps its descriptor on release.
    let mut file = file;
    if spec.kept_descriptor() {
        file.keep_on_release(path);
    }
    Ok(Releaser::new(Held::new(file, socket)))
}

/// A wait that nothing can end (no deadline, no cancel token) sleeps in the
/// kernel in the caller's thread where the platform allows (Unix: flock;
/// see `handoff::wait_in_place`). `Ok(None)`: wait in the queue instead.
fn wait_in_place(
    spec: &Spec,
    path: &std::path::Path,
    deadline: Option<Instant>,
) -> Result<Option<LockFile>, Error> {
    #[cfg(unix)]
    if deadline.is_none() && spec.cancel_token().is_none() {
        return handoff::wait_in_place(path, spec.environment_arc(), spec.fair_queue());
    }
    let _ = (spec, path, deadline);
    Ok(None)
}

/// Binds the legacy socket (`unbound`, or a new one), retrying every
/// `spec.delay()` while another process has it, until the deadline or a
/// cancel.
fn legacy_socket<'a>(
    spec: &'a Spec,
    wait: bool,
    deadline: Option<Instant>,
    waiter: &mut Option<Waiter<'a>>,
    unbound: Option<LegacySocket>,
) -> Result<LegacySocket, Error> {
    let mut socket = match unbound {
        Some(socket) => socket,
        None => LegacySocket::unbound(spec.name())?,
    };
    loop {
        if socket.bind()? {
            return Ok(socket);
        }
        if !wait {
            return Err(Error::WouldBlock);
        }
        let waiter = waiter.get_or_insert_with(|| Waiter::new(spec, deadline));
        waiter.check()?;
        let next_try = waiter.clock.now().checked_add(spec.delay());
        waiter.sleep(next_try);
    }
}

/// One waiting acquisition: its clock, deadline and cancel token, and the
/// [`Wakeup`] that any of them (or the hand-off) notifies.
pub(crate) struct Waiter<'a> {
    clock: &'a dyn Clock,
    deadline: Option<Instant>,
    cancel: Option<&'a CancelToken>,
    wakeup: Wakeup,
    _registration: Option<Registration>,
}

impl<'a> Waiter<'a> {
    pub(crate) fn new(spec: &'a Spec, deadline: Option<Instant>) -> Waiter<'a> {
        let wakeup = Wakeup::new();
        let cancel = spec.cancel_token();
        Waiter {
            clock: spec.clock(),
            deadline,
            cancel,
            _registration: cancel.map(|token| token.register(&wakeup)),
            wakeup,
        }
    }

    pub(crate) fn wakeup(&self) -> &Wakeup {
        &self.wakeup
    }

    /// `Err` when the wait must end: cancelled (checked first), or the
    /// deadline has passed on the spec's clock.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.cancel.map_or(false, CancelToken::is_cancelled) {
            return Err(Error::Cancelled);
        }
        match self.deadline {
            Some(deadline) if self.clock.now() >= deadline => Err(Error::Timeout),
            _ => Ok(()),
        }
    }

    /// Sleeps until notified, or until `until` or the deadline (the earlier)
    /// passes on the clock. May return early.
    pub(crate) fn sleep(&self, until: Option<Instant>) {
        let until = match (until, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match until {
            Some(until) => self.clock.wait_until(until, &self.wakeup),
            None => self.wakeup.wait(),
        }
    }
}
