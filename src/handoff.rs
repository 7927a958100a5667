//! Hand-off: one kernel waiter per lock file per process, and a FIFO queue of
//! the waiters of this process (blocking threads and async tasks alike).
//!
//! A blocking `flock` cannot be interrupted from another thread, and a
//! waiter may give up (timeout, cancel) while the kernel still waits. So, as
//! in the Go package's `acquireFlock`, waiting is split in two:
//!
//! - the **kernel waiter**, one thread per lock file, sleeps in
//!   `flock(LOCK_EX)`; each time the kernel grants the lock it hands it to
//!   the first waiter in the queue, then waits again for the next one;
//! - **waiters** (the threads calling `acquire`, and the futures of
//!   `acquire_async`) queue up with a [`Ticket`], sleep on their
//!   [`Wakeup`](crate::Wakeup) (a task registers its waker there), and take
//!   the lock when it is handed to them.
//!
//! A wait that nothing can end (no timeout, no cancel token: the plain
//! blocking `acquire`) needs no such split on Unix: when no kernel waiter
//! runs for the file, the caller sleeps in `flock` itself, in the kernel
//! waiter's place (`wait_in_place`, Unix), so the kernel wakes it directly: one
//! wake-up per hand-off instead of two.
//!
//! A waiter that gives up (or whose future is dropped) leaves the queue. Where the kernel wait can be
//! interrupted (Windows: a cancel event, see [`AbortWait`]), the last waiter
//! to leave removes the queue and aborts the kernel wait. Where it cannot
//! (flock), the kernel waiter keeps waiting; if the kernel grants the lock
//! when the queue is empty, the lock is released at once and the kernel
//! waiter ends. It also ends right after handing over to the last waiter.
//! So no lock leaks, and threads and descriptors are bounded by one per
//! lock file being waited for, never one per abandoned wait. The queue is
//! keyed by the lock's target (the lock file path; on Windows the kernel
//! object name) and stamped with the process id, so a child
//! forked while a kernel waiter ran does not wait for a thread it lacks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

// Slots and aborts live in the queue's own `Arc` (loom's under `--cfg loom`).
use crate::queue::{self, Arc as QArc, Next, Slot as QueueSlot};
use crate::sys::{AbortWait, LockBackend, LockFile};
use crate::wait::Waiter;
use crate::{Environment, Error};

type Abort = <LockFile as LockBackend>::Abort;

/// What the kernel waiter hands over: the lock, or its error.
type Outcome = Result<LockFile, Error>;

/// Where the kernel waiter puts the outcome for one waiter.
type Slot = QueueSlot<Outcome, crate::Wakeup>;

/// Queues by lock file path (the state machine is `queue.rs`). Present
/// means a kernel waiter runs: a thread, or a caller sleeping in flock
/// itself (`wait_in_place`, Unix).
static QUEUES: Mutex<Option<queue::Queues<PathBuf, Outcome, crate::Wakeup, Abort>>> =
    Mutex::new(None);

/// How many kernel waiter threads this process has started.
static KERNEL_WAITERS_STARTED: AtomicUsize = AtomicUsize::new(0);

impl<A: AbortWait> queue::Abort for A {
    fn abort(&self) -> bool {
        AbortWait::abort(self)
    }
}

fn queues() -> QueuesGuard {
    QUEUES.lock().unwrap_or_else(PoisonError::into_inner)
}

type QueuesGuard =
    MutexGuard<'static, Option<queue::Queues<PathBuf, Outcome, crate::Wakeup, Abort>>>;

thread_local! {
    /// The queue lock, held by the forking thread across a fork (Linux
    /// fork handlers), so that the child never inherits it held by a thread
    /// it does not have.
    static HELD_FOR_FORK: std::cell::RefCell<Option<QueuesGuard>> =
        const { std::cell::RefCell::new(None) };
}

/// Fork prepare handler (Linux): takes the queue lock in the forking thread.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn hold_for_fork() {
    let guard = queues();
    let _ = HELD_FOR_FORK.try_with(|held| *held.borrow_mut() = Some(guard));
}

/// Fork parent and child handlers (Linux): lets the queue lock go.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn release_after_fork() {
    let _ = HELD_FOR_FORK.try_with(|held| drop(held.borrow_mut().take()));
}

/// How many kernel waiter threads this process has started so far.
#[allow(dead_code)]
pub(crate) fn kernel_waiters_started() -> usize {
    KERNEL_WAITERS_STARTED.load(Ordering::Relaxed)
}

/// The fast path: locks without waiting, in the caller's thread, when no
/// kernel waiter of this process runs for `path`. Returns `Ok(None)` when
/// the caller must wait or give up instead:
///
/// - waiters of this process are queued for `path`: they go first;
/// - a kernel waiter runs whose waiters all gave up (it still sleeps in
///   flock) and the caller will wait (`wait`): it joins that kernel waiter's
///   queue rather than racing it, so the kernel waiter's next grant goes to
///   a caller instead of being taken and dropped after someone else's release.
///
/// A non-waiting caller facing such an idle kernel waiter tries the lock
/// itself; if it wins, the kernel waiter still takes the lock for an instant
/// after that caller releases, then releases it and ends.
pub(crate) fn try_lock(
    path: &Path,
    env: &dyn Environment,
    wait: bool,
    fair: bool,
) -> Result<Option<LockFile>, Error> {
    let must_queue = match queues().as_mut() {
        // The process id (a system call) only when a queue exists for `path`.
        Some(map) => queue::must_queue(map, path, std::process::id, wait),
        None => false,
    };
    // Waiters of other processes queued (Linux): a caller that would wait
    // takes its turn after them rather than a lock just freed for them.
    if must_queue || (wait && fair && LockFile::others_queued(path)) {
        return Ok(None);
    }
    LockFile::try_lock(path, env)
}

/// The slow path: joins the queue for `path` (starting its kernel waiter if
/// none runs) and sleeps until the lock is handed over or `waiter` gives up.
pub(crate) fn wait(
    path: &Path,
    env: Arc<dyn Environment>,
    fair: bool,
    waiter: &Waiter<'_>,
) -> Result<LockFile, Error> {
    let ticket = Ticket::enqueue(path, env, fair, waiter.wakeup())?;
    loop {
        if let Some(outcome) = ticket.take() {
            return outcome;
        }
        if let Err(give_up) = waiter.check() {
            // The lock may have been handed over since the check above: then it is ours.
            return match ticket.leave() {
                Some(outcome) => outcome,
                None => Err(give_up),
            };
        }
        waiter.sleep(None);
    }
}

/// The slow path of a wait that can never be given up (no deadline, no
/// cancel token), Unix only: the caller sleeps in `flock` itself, in the
/// kernel waiter's place, when no kernel waiter of this process runs for
/// `path`. Returns `Ok(None)` when one runs: the caller joins its queue
/// ([`wait`]) instead.
///
/// This saves the kernel waiter's thread and its hand-off: the kernel wakes
/// the caller directly (BENCHMARKS.md, hand-off). Nothing else changes:
/// while the caller sleeps, a queue for `path` exists, so later waiters of
/// this process queue behind it (FIFO) as behind a kernel waiter thread,
/// and when the kernel grants the lock, the caller starts a kernel waiter
/// thread for them before it returns.
#[cfg(unix)]
pub(crate) fn wait_in_place(
    path: &Path,
    env: Arc<dyn Environment>,
    fair: bool,
) -> Result<Option<LockFile>, Error> {
    let pid = std::process::id();
    let key = path.to_owned();
    if !queue::sleep_in_place(queues().get_or_insert_with(HashMap::new), &key, pid) {
        return Ok(None);
    }
    // flock cannot be aborted: `NoAbort` is only the signature's.
    let outcome = Abort::new(path).and_then(|abort| LockFile::lock(path, &*env, fair, &abort));
    let outcome = match outcome {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(Error::io(
            "lock",
            path,
            std::io::Error::new(std::io::ErrorKind::Other, "kernel wait aborted"),
        )),
        Err(e) => Err(e),
    };
    let mut guard = queues();
    let map = match guard.as_mut() {
        Some(map) => map,
        None => return outcome.map(Some),
    };
    // Others queued behind this caller: a kernel waiter thread takes over
    // for them (it sleeps in flock until this caller releases).
    let started = match queue::woke_in_place(map, path, || Abort::new(path)) {
        Ok(None) => return outcome.map(Some),
        Ok(Some(abort)) => thread::Builder::new()
            .name("machine-mutex-kernel-waiter".to_owned())
            .spawn(move || kernel_waiter(key, env, fair, abort))
            .map_err(|e| Error::io("start a waiter thread for", path, e)),
        Err(e) => Err(e),
    };
    match started {
        Ok(_) => {
            KERNEL_WAITERS_STARTED.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            // Nobody would serve them: they fail as they would have had
            // they started the thread themselves.
            let text = e.to_string();
            let slots = queue::disband(map, path, || {
                Err(Error::io(
                    "start a waiter thread for",
                    path,
                    std::io::Error::new(std::io::ErrorKind::Other, text.clone()),
                ))
            });
            drop(guard);
            for slot in slots {
                slot.notify();
            }
        }
    }
    outcome.map(Some)
}

/// One waiter's place in the queue of a lock file: what the blocking
/// ([`wait`]) and the async (`acquire_async.rs`) acquisitions share.
///
/// The kernel waiter hands the lock to the first ticket in the queue and
/// notifies that ticket's [`Wakeup`](crate::Wakeup); the owner then
/// [takes](Self::take) it. Dropping a ticket leaves the queue, and if the
/// lock was already handed to it, releases it, so the kernel waiter (which
/// waits again for the next ticket) gets it. So an abandoned wait never
/// keeps the lock, blocks the waiters behind it, or leaves anything behind.
pub(crate) struct Ticket {
    path: PathBuf,
    slot: QArc<Slot>,
    /// The fork state when it joined: a copy in a forked child (an async
    /// future polled there) waits in a queue whose kernel waiter is the
    /// parent's.
    #[cfg(unix)]
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    stamp: crate::sys::ForkStamp,
}

impl Ticket {
    /// Joins the end of the queue for `path`, starting its kernel waiter if
    /// none runs. `wakeup` is notified when the lock is handed to this ticket.
    ///
    /// Never blocks: the only wait is the kernel waiter's, in its own thread.
    pub(crate) fn enqueue(
        path: &Path,
        env: Arc<dyn Environment>,
        fair: bool,
        wakeup: &crate::Wakeup,
    ) -> Result<Ticket, Error> {
        let slot = Slot::new(wakeup.clone());
        #[cfg(unix)]
        let stamp = crate::sys::fork_stamp();
        join_queue(path, env, fair, &slot)?;
        Ok(Ticket {
            path: path.to_owned(),
            slot,
            #[cfg(unix)]
            stamp,
        })
    }

    /// Whether this is a copy in a child forked since the ticket joined (an
    /// async future polled there): its queue's kernel waiter is the
    /// parent's, so it would never be served, and whatever its slot holds
    /// is the parent's. The owner drops it and starts over.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn orphaned(&self) -> bool {
        #[cfg(unix)]
        return crate::sys::in_forked_child(self.stamp);
        #[cfg(not(unix))]
        return false;
    }

    /// The outcome handed to this ticket (the lock, or the kernel waiter's
    /// error), once; `None` while it is still queued.
    pub(crate) fn take(&self) -> Option<Result<LockFile, Error>> {
        self.slot.take()
    }

    /// Leaves the queue. Returns the outcome if the hand-off reached this
    /// ticket first: the hand-off happens under the same lock, so either it
    /// already did, or the slot leaves the queue untouched.
    pub(crate) fn leave(self) -> Option<Result<LockFile, Error>> {
        self.leave_queue()
    }

    fn leave_queue(&self) -> Option<Result<LockFile, Error>> {
        let mut guard = queues();
        match guard.as_mut() {
            Some(map) => queue::leave(map, &self.path, &self.slot),
            None => self.slot.take(),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // A lock handed over but never taken is released here (after the
        // queue lock is let go), and the kernel waiter gets it next.
        drop(self.leave_queue());
    }
}

fn join_queue(
    path: &Path,
    env: Arc<dyn Environment>,
    fair: bool,
    slot: &QArc<Slot>,
) -> Result<(), Error> {
    let mut guard = queues();
    let map = guard.get_or_insert_with(HashMap::new);
    let key = path.to_owned();
    let created = queue::join(map, &key, std::process::id(), slot, || Abort::new(path))?;
    let abort = match created {
        None => return Ok(()),
        Some(abort) => abort,
    };
    let started = thread::Builder::new()
        .name("machine-mutex-kernel-waiter".to_owned())
        .spawn(move || kernel_waiter(key, env, fair, abort));
    if let Err(e) = started {
        queue::abandon(map, path);
        return Err(Error::io("start a waiter thread for", path, e));
    }
    KERNEL_WAITERS_STARTED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The kernel waiter's loop: block in the kernel, hand the lock to the
/// first queued waiter (`queue::granted`), repeat while anyone waits.
///
/// `fair`: each wait first takes a turn in the cross-process queue (the
/// choice of the wait that started this kernel waiter).
fn kernel_waiter(path: PathBuf, env: Arc<dyn Environment>, fair: bool, abort: QArc<Abort>) {
    loop {
        let outcome = match LockFile::lock(&path, &*env, fair, &abort) {
            // Aborted: the last waiter has already removed the queue (`wait`).
            Ok(None) => return,
            Ok(Some(file)) => Ok(file),
            Err(e) => Err(e),
        };
        // Only its own queue: after an abort, a new queue (with its own
        // kernel waiter) may exist for the same path. Anything else, and
        // `outcome` is released under the queue lock.
        let next = match queues().as_mut() {
            Some(map) => queue::granted(map, &path, &abort, outcome),
            None => Next::NotMine,
        };
        // Notified outside the queue lock: a task's waker runs here, and
        // whatever it does must not wait for this lock (nor hold up others).
        match next {
            Next::HandedAndWait(slot) => slot.notify(),
            Next::HandedAndRetire(slot) => {
                if let Some(slot) = slot {
                    slot.notify();
                }
                // The waiter just woken often runs on this CPU: let it go
                // first, so that this thread's exit does not delay it (a
                // timed hand-off: 79 us -> 67 us median, BENCHMARKS.md).
                thread::yield_now();
                return;
            }
            Next::NotMine => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Spec};
    use std::time::{Duration, Instant};

    /// The unit tests that acquire take turns, so that the counter of
    /// kernel waiters started is theirs alone.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// Waits (yielding, up to a minute) until `done` holds for the queue of
    /// `path`: `None` when there is none, else the number of queued waiters.
    fn wait_for_queue(path: &Path, done: impl Fn(Option<usize>) -> bool) {
        let limit = Instant::now() + Duration::from_secs(60);
        loop {
            let state = queues().as_ref().and_then(|map| queue::queued(map, path));
            if done(state) {
                return;
            }
            assert!(Instant::now() < limit, "queue state {state:?}");
            thread::yield_now();
        }
    }

    /// Rule 5: an uncontended acquisition locks in the caller's thread (no
    /// kernel waiter is started); a contended one starts exactly one.
    #[test]
    fn only_contention_starts_a_kernel_waiter() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let name = format!("unit-fast-{}", std::process::id());
        let before = kernel_waiters_started();
        for _ in 0..100 {
            let guard = Spec::new(&name).acquire().unwrap();
            drop(guard);
        }
        assert_eq!(kernel_waiters_started(), before);
        let held = Spec::new(&name).acquire().unwrap();
        let spec = Spec::new(&name).with_timeout(Duration::from_millis(1));
        assert!(matches!(spec.acquire(), Err(Error::Timeout)));
        assert_eq!(kernel_waiters_started(), before + 1);
        drop(held);
    }

    /// A wait nothing can end (no timeout, no cancel token) sleeps in flock
    /// in its own thread: no kernel waiter thread is started for it. A
    /// waiter of this process that comes later queues behind it, and is
    /// served after it by a kernel waiter started when it gets the lock.
    #[cfg(unix)]
    #[test]
    fn a_wait_without_deadline_sleeps_in_flock_itself() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let name = format!("unit-in-place-{}", std::process::id());
        let path = crate::lock_file_path(&name);
        let before = kernel_waiters_started();
        let held = Spec::new(&name).acquire().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = {
            let (name, order) = (name.clone(), Arc::clone(&order));
            thread::spawn(move || {
                let guard = Spec::new(&name).acquire().unwrap();
                order.lock().unwrap().push("first");
                drop(guard);
            })
        };
        // The first waiter's queue, empty: it is its own kernel waiter.
        wait_for_queue(&path, |state| state == Some(0));
        assert_eq!(kernel_waiters_started(), before);
        let second = {
            let (name, order) = (name.clone(), Arc::clone(&order));
            thread::spawn(move || {
                let spec = Spec::new(&name).with_timeout(Duration::from_secs(3600));
                let guard = spec.acquire().unwrap();
                order.lock().unwrap().push("second");
                drop(guard);
            })
        };
        wait_for_queue(&path, |state| state == Some(1));
        assert_eq!(kernel_waiters_started(), before);
        drop(held);
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "second"]);
        assert_eq!(kernel_waiters_started(), before + 1);
        wait_for_queue(&path, |state| state.is_none());
        drop(Spec::new(&name).try_acquire().expect("nothing leaked"));
    }
}
