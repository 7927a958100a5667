//! [`Wakeup`]: the signal a waiting thread sleeps on.
//!
//! One waiter owns one `Wakeup`. Whatever may end its wait — the hand-off
//! granting it the lock, a [`CancelToken`](crate::CancelToken), a
//! [`Clock`](crate::Clock) reaching a deadline — calls [`Wakeup::notify`],
//! and the waiter re-checks why it woke.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

/// A wake-up signal shared between one waiting thread (or task) and the
/// things that may end its wait.
///
/// A notification is remembered until the next [`wait`](Self::wait) or
/// [`wait_timeout`](Self::wait_timeout) consumes it, so a `notify` that
/// happens just before the wait begins is not lost. Waits may also return
/// spuriously: callers always re-check their condition.
///
/// Clones share the same signal. Custom [`Clock`](crate::Clock)
/// implementations receive a `Wakeup` in [`Clock::wait_until`](crate::Clock::wait_until).
#[derive(Clone, Debug, Default)]
pub struct Wakeup {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct State {
    notified: bool,
    waker: Option<Waker>,
}

impl Wakeup {
    /// A new signal, not yet notified.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the waiter: a thread blocked in [`wait`](Self::wait) or
    /// [`wait_timeout`](Self::wait_timeout) returns, and a registered task is
    /// woken. If nobody waits yet, the next wait returns at once.
    pub fn notify(&self) {
        let waker = {
            let mut state = self.lock();
            state.notified = true;
            state.waker.take()
        };
        self.inner.cond.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Blocks the calling thread until notified, then consumes the notification.
    pub fn wait(&self) {
        let mut state = self.lock();
        while !state.notified {
            state = self
                .inner
                .cond
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.notified = false;
    }

    /// Blocks the calling thread until notified or until `timeout` (real time)
    /// has passed. Returns `true` when it consumed a notification.
    ///
    /// A timeout too large to represent as an [`Instant`] waits forever.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = match Instant::now().checked_add(timeout) {
            Some(deadline) => deadline,
            None => {
                self.wait();
                return true;
            }
        };
        let mut state = self.lock();
        while !state.notified {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .inner
                .cond
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.notified = false;
        true
    }

    /// Whether `self` and `other` are clones of one signal.
    pub fn same_as(&self, other: &Wakeup) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Registers the task to wake on the next notification (async waiters).
    /// Returns `true`, consuming it, when a notification is already pending.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn register_waker(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        if state.notified {
            state.notified = false;
            return true;
        }
        match &state.waker {
            Some(current) if current.will_wake(waker) => {}
            _ => state.waker = Some(waker.clone()),
        }
        false
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
