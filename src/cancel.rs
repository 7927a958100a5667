//! [`CancelToken`]: the cancel signal of a [`Spec`](crate::Spec).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::Wakeup;

/// A cloneable cancel signal, the counterpart of the Go package's
/// `Spec.Cancel` channel.
///
/// Once [`cancel`](Self::cancel) is called (from any thread, on any clone),
/// every acquisition whose spec carries this token ends its wait promptly
/// with [`Error::Cancelled`](crate::Error::Cancelled), and acquisitions
/// started later fail at once without taking the lock. A token cannot be
/// reset; make a new one.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    wakeups: Mutex<Vec<Wakeup>>,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every acquisition waiting with this token, now and later.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let wakeups = std::mem::take(&mut *self.wakeups());
        for wakeup in wakeups {
            wakeup.notify();
        }
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Notifies `wakeup` when the token is cancelled, until the returned
    /// registration is dropped. Callers check [`is_cancelled`](Self::is_cancelled)
    /// after registering, so a cancel in between is not missed.
    pub(crate) fn register(&self, wakeup: &Wakeup) -> Registration {
        self.wakeups().push(wakeup.clone());
        Registration {
            token: self.clone(),
            wakeup: wakeup.clone(),
        }
    }

    fn wakeups(&self) -> MutexGuard<'_, Vec<Wakeup>> {
        self.inner
            .wakeups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps a [`Wakeup`] registered with a [`CancelToken`]; removes it on drop.
/// It owns a clone of the token, so an async acquisition (which owns its
/// spec) can keep one across polls.
pub(crate) struct Registration {
    token: CancelToken,
    wakeup: Wakeup,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.token.wakeups().retain(|w| !w.same_as(&self.wakeup));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cancelling notifies registered waiters; dropping the registration
    /// removes it, so a token used by many waits does not grow.
    #[test]
    fn cancel_notifies_and_registrations_clean_up() {
        let token = CancelToken::new();
        let wakeup = Wakeup::new();
        {
            let _reg = token.register(&wakeup);
            assert_eq!(token.wakeups().len(), 1);
        }
        assert_eq!(token.wakeups().len(), 0);
        let _reg = token.register(&wakeup);
        let clone = token.clone();
        clone.cancel();
        assert!(token.is_cancelled());
        assert!(wakeup.wait_timeout(std::time::Duration::ZERO));
    }
}
