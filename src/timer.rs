//! Deadlines for async acquisitions: one timer thread per clock in use.
//!
//! A blocking waiter sleeps in [`Clock::wait_until`] itself. An async waiter
//! must not block the thread that polls it, so a timer thread sleeps for it:
//! it waits on the clock until the earliest deadline of the waiters it
//! serves, then notifies their [`Wakeup`]s (which wake their tasks) and
//! sleeps again. Deadlines are the timeouts and the legacy-socket retries
//! (every [`Spec::delay`](crate::Spec::delay)).
//!
//! - **Bounded**: one thread per *clock* that has async waiters with a
//!   deadline, never one per waiter. Every spec on the default
//!   [`SystemClock`](crate::SystemClock) shares one; clones of a
//!   [`ManualClock`](crate::ManualClock) share one; any other clock is
//!   identified by the spec's `Arc`, which clones of the spec share
//!   ([`ClockId`]).
//! - **Lazy**: a thread starts with the first deadline on its clock and ends
//!   as soon as it has none left, so a process with no pending deadline has
//!   no timer thread.
//! - **No polling**: the thread sleeps in the clock's `wait_until` until the
//!   earliest deadline. A new, earlier deadline notifies it so it sleeps
//!   again with that one; a removed deadline lets it wake once at the old
//!   one for nothing (or at once, when none is left, to end).
//! - **On the spec's clock**: it sleeps through [`Clock::wait_until`], so a
//!   [`ManualClock`](crate::ManualClock) moved by a test wakes it, and a
//!   deadline is due when the clock's [`now`](Clock::now) reaches it.
//!
//! Timers are keyed by clock and stamped with the process id: a child forked
//! while a timer thread ran starts its own.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use crate::clock::ClockId;
use crate::{Clock, Wakeup};

/// Timer groups by clock. Present means a timer thread runs for that clock.
static TIMERS: Mutex<Option<HashMap<ClockId, Group>>> = Mutex::new(None);

/// Makes deadline keys unique, so that equal instants never collide.
static NEXT_KEY: AtomicUsize = AtomicUsize::new(0);

/// A deadline entry's key: when, then which.
type Key = (Instant, usize);

/// The deadlines of one clock, and its thread.
struct Group {
    pid: u32,
    /// Notified to make the thread look at the deadlines again.
    wake: Wakeup,
    /// Who to notify at which instant.
    entries: BTreeMap<Key, Wakeup>,
}

type TimersGuard = MutexGuard<'static, Option<HashMap<ClockId, Group>>>;

fn timers() -> TimersGuard {
    TIMERS.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// The timers' lock, held by the forking thread across a fork (Linux
    /// fork handlers), so that the child never inherits it held by a thread
    /// it does not have.
    static HELD_FOR_FORK: std::cell::RefCell<Option<TimersGuard>> =
        const { std::cell::RefCell::new(None) };
}

/// Fork prepare handler (Linux): takes the timers' lock in the forking thread.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn hold_for_fork() {
    let guard = timers();
    let _ = HELD_FOR_FORK.try_with(|held| *held.borrow_mut() = Some(guard));
}

/// Fork parent and child handlers (Linux): lets the timers' lock go.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn release_after_fork() {
    let _ = HELD_FOR_FORK.try_with(|held| drop(held.borrow_mut().take()));
}

/// One async waiter's deadline on its clock: at most one at a time. Dropping
/// it removes the deadline.
pub(crate) struct Alarm {
    clock: Arc<dyn Clock>,
    id: ClockId,
    key: Option<Key>,
}

impl Alarm {
    /// An alarm on `clock` (which is the clock `id`), not set.
    pub(crate) fn new(clock: Arc<dyn Clock>, id: ClockId) -> Alarm {
        Alarm {
            clock,
            id,
            key: None,
        }
    }

    /// Makes sure `wakeup` is notified once the clock reaches `deadline`,
    /// replacing the alarm's earlier deadline. Setting the same deadline
    /// again is cheap (nothing changes while it is pending). Never blocks.
    ///
    /// # Errors
    /// When the clock's timer thread had to be started and could not be.
    pub(crate) fn set(&mut self, deadline: Instant, wakeup: &Wakeup) -> io::Result<()> {
        let pid = std::process::id();
        let mut guard = timers();
        let map = guard.get_or_insert_with(HashMap::new);
        if let Some(group) = map.get_mut(&self.id).filter(|group| group.pid == pid) {
            if let Some(key) = self.key {
                if key.0 == deadline && group.entries.contains_key(&key) {
                    return Ok(());
                }
                group.entries.remove(&key);
            }
            let earliest = group.entries.keys().next().map(|key| key.0);
            let key = (deadline, NEXT_KEY.fetch_add(1, Ordering::Relaxed));
            group.entries.insert(key, wakeup.clone());
            self.key = Some(key);
            if earliest.map_or(true, |earliest| deadline < earliest) {
                group.wake.notify();
            }
            return Ok(());
        }
        let key = (deadline, NEXT_KEY.fetch_add(1, Ordering::Relaxed));
        let mut entries = BTreeMap::new();
        entries.insert(key, wakeup.clone());
        let wake = Wakeup::new();
        let (id, clock, thread_wake) = (self.id, Arc::clone(&self.clock), wake.clone());
        thread::Builder::new()
            .name("machine-mutex-timer".to_owned())
            .spawn(move || run(id, clock, thread_wake))?;
        // The thread waits for this lock before it looks for its group.
        map.insert(self.id, Group { pid, wake, entries });
        self.key = Some(key);
        Ok(())
    }

    /// Removes the deadline, if one is pending.
    pub(crate) fn clear(&mut self) {
        let key = match self.key.take() {
            Some(key) => key,
            None => return,
        };
        let mut guard = timers();
        if let Some(group) = guard.as_mut().and_then(|map| map.get_mut(&self.id)) {
            if group.entries.remove(&key).is_some() && group.entries.is_empty() {
                // Let the thread end now rather than at the removed deadline.
                group.wake.notify();
            }
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The timer thread of clock `id`: notify who is due, sleep on the clock
/// until the next deadline, end when none is left.
fn run(id: ClockId, clock: Arc<dyn Clock>, wake: Wakeup) {
    let _exit = Exit {
        id,
        wake: wake.clone(),
    };
    let mut due = Vec::new();
    loop {
        // Read outside the lock: a clock may be slow, and no `Alarm` waits on it.
        let now = clock.now();
        let next = {
            let mut guard = timers();
            let map = match guard.as_mut() {
                Some(map) => map,
                None => return,
            };
            let group = match map.get_mut(&id) {
                Some(group) if group.wake.same_as(&wake) => group,
                // Replaced (only after a fork, in the child): not ours.
                _ => return,
            };
            while let Some(key) = group.entries.keys().next().copied() {
                if key.0 > now {
                    break;
                }
                due.extend(group.entries.remove(&key));
            }
            let next = group.entries.keys().next().map(|key| key.0);
            if next.is_none() {
                map.remove(&id);
            }
            next
        };
        // Notified outside the lock: waking a task may poll it right here
        // (some executors do), and its poll sets its alarm again.
        for wakeup in due.drain(..) {
            wakeup.notify();
        }
        match next {
            Some(next) => clock.wait_until(next, &wake),
            None => return,
        }
    }
}

/// Ends a timer thread's group however the thread ends. Normally the group
/// is already gone; if a clock panicked in `wait_until` (the [`Clock`]
/// contract forbids it), its waiters are woken so that their next poll
/// starts a new thread rather than wait for a deadline nobody watches.
struct Exit {
    id: ClockId,
    wake: Wakeup,
}

impl Drop for Exit {
    fn drop(&mut self) {
        let orphans = {
            let mut guard = timers();
            let map = match guard.as_mut() {
                Some(map) => map,
                None => return,
            };
            match map.get(&self.id) {
                Some(group) if group.wake.same_as(&self.wake) => {}
                _ => return,
            }
            map.remove(&self.id)
        };
        if let Some(group) = orphans {
            for wakeup in group.entries.into_values() {
                wakeup.notify();
            }
        }
    }
}
