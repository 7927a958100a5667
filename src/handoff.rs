//! Hand-off: one kernel waiter per lock file per process, and a FIFO queue of
//! the threads of this process that wait for it.
//!
//! A blocking `flock` cannot be interrupted from another thread, and a
//! waiter may give up (timeout, cancel) while the kernel still waits. So, as
//! in the Go package's `acquireFlock`, waiting is split in two:
//!
//! - the **kernel waiter**, one thread per lock file, sleeps in
//!   `flock(LOCK_EX)`; each time the kernel grants the lock it hands it to
//!   the first waiter in the queue, then waits again for the next one;
//! - **waiters** (the threads calling `acquire`) queue up, sleep on their
//!   [`Wakeup`](crate::Wakeup), and take the lock when it is handed to them.
//!
//! A waiter that gives up leaves the queue. Where the kernel wait can be
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

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use crate::sys::{AbortWait, LockBackend, LockFile};
use crate::wait::Waiter;
use crate::{Environment, Error};

/// Queues by lock file path. Present means a kernel waiter thread runs.
static QUEUES: Mutex<Option<HashMap<PathBuf, Queue>>> = Mutex::new(None);

/// How many kernel waiter threads this process has started.
static KERNEL_WAITERS_STARTED: AtomicUsize = AtomicUsize::new(0);

struct Queue {
    pid: u32,
    waiters: VecDeque<Arc<Slot>>,
    /// Stops this queue's kernel waiter; also tells it that the queue is its own.
    abort: Arc<Abort>,
}

type Abort = <LockFile as LockBackend>::Abort;

/// Where the kernel waiter puts the outcome for one waiter.
struct Slot {
    outcome: Mutex<Option<Result<LockFile, Error>>>,
    waiter: crate::Wakeup,
}

impl Slot {
    fn take(&self) -> Option<Result<LockFile, Error>> {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

fn queues() -> MutexGuard<'static, Option<HashMap<PathBuf, Queue>>> {
    QUEUES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many kernel waiter threads this process has started so far.
#[allow(dead_code)]
pub(crate) fn kernel_waiters_started() -> usize {
    KERNEL_WAITERS_STARTED.load(Ordering::Relaxed)
}

/// The fast path: locks without waiting, in the caller's thread, unless
/// waiters of this process are already queued for `path` (then they go
/// first and this returns `Ok(None)`).
///
/// After every waiter gave up, the kernel waiter still sleeps in flock; when
/// the holder releases, it holds the lock for the instant it takes to see
/// the empty queue and release it. A `try_acquire` in that instant sees the
/// mutex held, as it would if any other process had taken it.
pub(crate) fn try_lock(path: &Path, env: &dyn Environment) -> Result<Option<LockFile>, Error> {
    let queued = {
        let mut guard = queues();
        let queue = guard.as_mut().and_then(|q| q.get(path));
        match queue.map(|queue| (queue.pid, queue.waiters.is_empty())) {
            None => false,
            // A kernel waiter whose waiters all gave up does not block the fast path.
            Some((pid, no_waiters)) if pid == std::process::id() => !no_waiters,
            Some(_) => {
                // Inherited through fork: the kernel waiter is the parent's.
                if let Some(q) = guard.as_mut() {
                    q.remove(path);
                }
                false
            }
        }
    };
    if queued {
        return Ok(None);
    }
    LockFile::try_lock(path, env)
}

/// The slow path: joins the queue for `path` (starting its kernel waiter if
/// none runs) and sleeps until the lock is handed over or `waiter` gives up.
pub(crate) fn wait(
    path: &Path,
    env: Arc<dyn Environment>,
    waiter: &Waiter<'_>,
) -> Result<LockFile, Error> {
    let slot = Arc::new(Slot {
        outcome: Mutex::new(None),
        waiter: waiter.wakeup().clone(),
    });
    enqueue(path, env, &slot)?;
    loop {
        if let Some(outcome) = slot.take() {
            return outcome;
        }
        if let Err(give_up) = waiter.check() {
            let mut guard = queues();
            // The hand-off happens under the same lock: either it already
            // reached this slot, or the slot leaves the queue untouched.
            if let Some(outcome) = slot.take() {
                return outcome;
            }
            if let Some(map) = guard.as_mut() {
                if let Some(queue) = map.get_mut(path) {
                    queue.waiters.retain(|s| !Arc::ptr_eq(s, &slot));
                    // The last waiter left: stop the kernel wait if the platform can.
                    if queue.waiters.is_empty() && queue.abort.abort() {
                        map.remove(path);
                    }
                }
            }
            return Err(give_up);
        }
        waiter.sleep(None);
    }
}

fn enqueue(path: &Path, env: Arc<dyn Environment>, slot: &Arc<Slot>) -> Result<(), Error> {
    let pid = std::process::id();
    let mut guard = queues();
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(queue) = map.get_mut(path) {
        if queue.pid == pid {
            queue.waiters.push_back(Arc::clone(slot));
            return Ok(());
        }
    }
    let abort = Arc::new(Abort::new(path)?);
    let mut waiters = VecDeque::new();
    waiters.push_back(Arc::clone(slot));
    let queue = Queue {
        pid,
        waiters,
        abort: Arc::clone(&abort),
    };
    map.insert(path.to_owned(), queue);
    let owned = path.to_owned();
    let started = thread::Builder::new()
        .name("machine-mutex-kernel-waiter".to_owned())
        .spawn(move || kernel_waiter(owned, env, abort));
    if let Err(e) = started {
        map.remove(path);
        return Err(Error::io("start a waiter thread for", path, e));
    }
    KERNEL_WAITERS_STARTED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The kernel waiter's loop: block in the kernel, hand the lock to the
/// first queued waiter, repeat while anyone waits.
fn kernel_waiter(path: PathBuf, env: Arc<dyn Environment>, abort: Arc<Abort>) {
    loop {
        let outcome = match LockFile::lock(&path, &*env, &abort) {
            // Aborted: the last waiter has already removed the queue (`wait`).
            Ok(None) => return,
            Ok(Some(file)) => Ok(file),
            Err(e) => Err(e),
        };
        let mut guard = queues();
        // Only its own queue: after an abort, a new queue (with its own
        // kernel waiter) may exist for the same path. Anything else, and
        // `outcome` drops here, releasing what it holds.
        let queue = match guard.as_mut().and_then(|q| q.get_mut(&path)) {
            Some(queue) if Arc::ptr_eq(&queue.abort, &abort) => queue,
            _ => return,
        };
        let mut unclaimed = Some(outcome);
        if let Some(slot) = queue.waiters.pop_front() {
            *slot.outcome.lock().unwrap_or_else(PoisonError::into_inner) = unclaimed.take();
            slot.waiter.notify();
        }
        let done = queue.waiters.is_empty();
        if done {
            if let Some(q) = guard.as_mut() {
                q.remove(&path);
            }
        }
        drop(guard);
        // Nobody wanted it: dropping the lock file releases the lock.
        drop(unclaimed);
        if done {
            return;
        }
    }
}
