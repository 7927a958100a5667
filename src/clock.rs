//! Time as the mutex sees it: [`Clock`], [`SystemClock`] and the test clock
//! [`ManualClock`].
//!
//! The spec's clock measures the timeout and paces the legacy-socket polling
//! (every [`Spec::delay`](crate::Spec::delay)). It mirrors the `Clock`
//! interface of the Go package (`Now` and `After`), with `After` replaced by
//! [`Clock::wait_until`] so that one waiter can sleep on a deadline, a cancel
//! signal and a hand-off at once.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Wakeup;

/// A source of time for timeouts and polling delays.
///
/// Implementations must be cheap to call and must never panic.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time on this clock.
    fn now(&self) -> Instant;

    /// Blocks the calling thread until [`now`](Self::now) reaches `deadline`
    /// or `wakeup` is notified, whichever comes first. It may return early
    /// (spuriously); callers re-check the time and their other conditions.
    /// A notification that arrives while it waits must end the wait.
    fn wait_until(&self, deadline: Instant, wakeup: &Wakeup);
}

/// The real monotonic clock ([`Instant::now`]); the default clock of a
/// [`Spec`](crate::Spec).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wait_until(&self, deadline: Instant, wakeup: &Wakeup) {
        let now = Instant::now();
        if deadline > now {
            wakeup.wait_timeout(deadline - now);
        }
    }
}

/// Which clock a [`Spec`](crate::Spec) uses, as far as telling the same time
/// goes: async acquisitions share one timer thread per clock (`timer.rs`).
///
/// Every [`SystemClock`] is the same clock; clones of one [`ManualClock`] are
/// one clock; any other clock is the one `Arc` a spec holds (clones of the
/// spec share it). The ids hold no reference: whoever keys on `Manual` or
/// `Other` keeps the clock alive, so the address is not reused meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClockId {
    System,
    Manual(usize),
    Other(usize),
}

impl ClockId {
    /// Shares `clock` and says which clock it is.
    pub(crate) fn share<C: Clock + 'static>(clock: C) -> (Arc<dyn Clock>, ClockId) {
        let any: &dyn Any = &clock;
        let known = if any.is::<SystemClock>() {
            Some(ClockId::System)
        } else {
            any.downcast_ref::<ManualClock>()
                .map(|manual| ClockId::Manual(Arc::as_ptr(&manual.inner) as usize))
        };
        let shared: Arc<dyn Clock> = Arc::new(clock);
        let id = known.unwrap_or(ClockId::Other(Arc::as_ptr(&shared) as *const () as usize));
        (shared, id)
    }
}

/// A clock that only moves when told to, so tests can check timeouts and
/// polling without sleeping.
///
/// It starts at the real time of its creation and advances only through
/// [`advance`](Self::advance). Threads blocked in [`Clock::wait_until`] on it
/// are counted ([`waiters`](Self::waiters)), so a test can wait until an
/// acquisition is really waiting before it moves time on. Async
/// acquisitions (feature `async`) do not block a thread of their own: all
/// of them that wait for a deadline on this clock (and its clones) are
/// served by one timer thread, which counts as one waiter while it sleeps.
///
/// Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    state: Mutex<ManualState>,
    changed: Condvar,
}

#[derive(Debug)]
struct ManualState {
    now: Instant,
    waiting: Vec<Wakeup>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock reading the current real time, standing still.
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                state: Mutex::new(ManualState {
                    now: Instant::now(),
                    waiting: Vec::new(),
                }),
                changed: Condvar::new(),
            }),
        }
    }

    /// Moves the clock forward by `by` and wakes every thread waiting on it.
    /// An advance past what [`Instant`] can represent leaves the time as it is.
    pub fn advance(&self, by: Duration) {
        let waiting = {
            let mut state = self.lock();
            if let Some(now) = state.now.checked_add(by) {
                state.now = now;
            }
            std::mem::take(&mut state.waiting)
        };
        self.inner.changed.notify_all();
        for wakeup in waiting {
            wakeup.notify();
        }
    }

    /// How many threads are blocked in [`Clock::wait_until`] on this clock now.
    pub fn waiters(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Blocks until at least `count` threads wait on this clock, or until
    /// `limit` of real time has passed. Returns whether the count was reached.
    /// The limit only guards a test against hanging; it is not a delay.
    pub fn wait_for_waiters(&self, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now().checked_add(limit);
        let mut state = self.lock();
        while state.waiting.len() < count {
            let now = Instant::now();
            let left = match deadline {
                Some(deadline) if now >= deadline => return false,
                Some(deadline) => deadline - now,
                None => Duration::from_secs(3600),
            };
            state = self
                .inner
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn lock(&self) -> MutexGuard<'_, ManualState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.lock().now
    }

    fn wait_until(&self, deadline: Instant, wakeup: &Wakeup) {
        {
            let mut state = self.lock();
            if state.now >= deadline {
                return;
            }
            state.waiting.push(wakeup.clone());
        }
        self.inner.changed.notify_all();
        wakeup.wait();
        self.lock().waiting.retain(|w| !w.same_as(wakeup));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter on the manual clock wakes when time passes its deadline, and
    /// not before.
    #[test]
    fn manual_clock_wakes_waiter_on_advance() {
        let clock = ManualClock::new();
        let deadline = clock.now() + Duration::from_secs(10);
        let waiter = {
            let clock = clock.clone();
            std::thread::spawn(move || {
                let wakeup = Wakeup::new();
                while clock.now() < deadline {
                    clock.wait_until(deadline, &wakeup);
                }
                clock.now()
            })
        };
        assert!(clock.wait_for_waiters(1, Duration::from_secs(10)));
        clock.advance(Duration::from_secs(5));
        assert!(clock.wait_for_waiters(1, Duration::from_secs(10)));
        clock.advance(Duration::from_secs(5));
        let woke_at = waiter.join().unwrap();
        assert!(woke_at >= deadline);
        assert_eq!(clock.waiters(), 0);
    }

    /// Advancing past the representable range leaves the time unchanged
    /// instead of panicking.
    #[test]
    fn manual_clock_advance_overflow_is_ignored() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), before);
    }
}
