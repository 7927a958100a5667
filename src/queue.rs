//! The hand-off queue's state machine: what happens under the queue lock
//! when a waiter joins, gives up, or the kernel waiter is granted the lock.
//!
//! `handoff.rs` runs it with the real lock file, [`Wakeup`](crate::Wakeup)s
//! and threads. It is generic over what is handed over (`T`), what a waiter
//! sleeps on (`N`) and how a kernel wait is aborted (`A`), so that the model
//! check (`loom_tests` below, run with `RUSTFLAGS="--cfg loom"`; see
//! RELIABILITY.md) runs this same code with a model lock and loom's
//! scheduler exploring the interleavings.
//!
//! Every function here expects the caller to hold the lock of the map it is
//! given: that lock is what orders joins, give-ups and grants.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::PoisonError;

// loom is a dev-dependency: its types only in the model check's test build.
#[cfg(all(test, loom))]
pub(crate) use loom::sync::Arc;
#[cfg(all(test, loom))]
use loom::sync::Mutex;
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::Arc;
#[cfg(not(all(test, loom)))]
use std::sync::Mutex;

/// What a waiter sleeps on: the queue notifies it when the lock is handed
/// to it.
pub(crate) trait Notify {
    /// Wakes the waiter (it re-checks its slot).
    fn notify(&self);
}

impl Notify for crate::Wakeup {
    fn notify(&self) {
        crate::Wakeup::notify(self)
    }
}

/// Stops a kernel wait, where the platform can (`sys::AbortWait`).
pub(crate) trait Abort {
    /// `true` if the kernel wait was (or will be) stopped; `false` where it
    /// cannot be: it goes on until the lock is granted.
    fn abort(&self) -> bool;
}

/// Where the kernel waiter puts the outcome for one waiter.
pub(crate) struct Slot<T, N> {
    outcome: Mutex<Option<T>>,
    waiter: N,
}

impl<T, N: Notify> Slot<T, N> {
    /// An empty slot whose owner sleeps on `waiter`.
    pub(crate) fn new(waiter: N) -> Arc<Slot<T, N>> {
        Arc::new(Slot {
            outcome: Mutex::new(None),
            waiter,
        })
    }

    /// The outcome handed over, once.
    pub(crate) fn take(&self) -> Option<T> {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn put(&self, outcome: T) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }

    /// Wakes the slot's owner.
    pub(crate) fn notify(&self) {
        self.waiter.notify();
    }
}

/// The waiters of one lock, in arrival order, and the kernel wait serving them.
pub(crate) struct Queue<T, N, A> {
    pid: u32,
    waiters: VecDeque<Arc<Slot<T, N>>>,
    /// The kernel waiter thread's abort; `None` while a caller sleeps in the
    /// kernel itself ([`sleep_in_place`]): its wait is never aborted.
    abort: Option<Arc<A>>,
}

/// Queues by lock target. Present means a kernel waiter runs for it.
pub(crate) type Queues<K, T, N, A> = HashMap<K, Queue<T, N, A>>;

/// Whether a caller of process `pid()` must queue instead of trying the
/// lock itself (see `handoff::try_lock`): waiters are queued, or (`wait`) an
/// idle kernel waiter runs whose next grant should go to a waiter. A queue of
/// another process (inherited through fork) is dropped: its kernel waiter
/// is the parent's. `pid` is only called when a queue exists for `key`.
pub(crate) fn must_queue<K, Q, T, N, A>(
    map: &mut Queues<K, T, N, A>,
    key: &Q,
    pid: impl FnOnce() -> u32,
    wait: bool,
) -> bool
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    match map.get(key).map(|q| (q.pid, q.waiters.is_empty())) {
        None => false,
        Some((owner, idle)) if owner == pid() => wait || !idle,
        Some(_) => {
            map.remove(key);
            false
        }
    }
}

/// Puts `slot` at the end of the queue for `key`. If no queue of this
/// process exists, creates one with a new `abort()` and returns that: the
/// caller then starts the kernel waiter (and calls [`abandon`] if it
/// cannot). If `abort()` fails, nothing changes.
pub(crate) fn join<K, T, N, A, E>(
    map: &mut Queues<K, T, N, A>,
    key: &K,
    pid: u32,
    slot: &Arc<Slot<T, N>>,
    abort: impl FnOnce() -> Result<A, E>,
) -> Result<Option<Arc<A>>, E>
where
    K: Hash + Eq + Clone,
{
    if let Some(queue) = map.get_mut(key) {
        if queue.pid == pid {
            queue.waiters.push_back(Arc::clone(slot));
            return Ok(None);
        }
    }
    let abort = Arc::new(abort()?);
    let mut waiters = VecDeque::new();
    waiters.push_back(Arc::clone(slot));
    let queue = Queue {
        pid,
        waiters,
        abort: Some(Arc::clone(&abort)),
    };
    map.insert(key.clone(), queue);
    Ok(Some(abort))
}

/// A caller of process `pid` whose wait can never be given up asks to sleep
/// in the kernel itself, in the kernel waiter's place. `true`: no queue of
/// this process existed, and an empty one now stands for the caller, so
/// later waiters queue behind it (FIFO) and it is never aborted; the caller
/// must then call [`woke_in_place`]. `false`: a queue exists; the caller
/// joins it instead.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) fn sleep_in_place<K, T, N, A>(map: &mut Queues<K, T, N, A>, key: &K, pid: u32) -> bool
where
    K: Hash + Eq + Clone,
{
    match map.get(key) {
        Some(queue) if queue.pid == pid => false,
        // None, or inherited through fork: its kernel waiter is the parent's.
        _ => {
            let queue = Queue {
                pid,
                waiters: VecDeque::new(),
                abort: None,
            };
            map.insert(key.clone(), queue);
            true
        }
    }
}

/// The caller that slept in place ([`sleep_in_place`]) has the lock (or its
/// error). If nobody queued behind it, removes the queue: `Ok(None)`.
/// Otherwise the queue becomes a kernel waiter thread's, with a new
/// `abort()` returned for it; the caller starts that thread (and calls
/// [`disband`] if it cannot). If `abort()` fails, nothing changes.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) fn woke_in_place<K, Q, T, N, A, E>(
    map: &mut Queues<K, T, N, A>,
    key: &Q,
    abort: impl FnOnce() -> Result<A, E>,
) -> Result<Option<Arc<A>>, E>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    let queue = match map.get_mut(key) {
        Some(queue) if queue.abort.is_none() => queue,
        // Not ours (unreachable: an in-place queue is only removed here).
        _ => return Ok(None),
    };
    if queue.waiters.is_empty() {
        map.remove(key);
        return Ok(None);
    }
    let abort = Arc::new(abort()?);
    queue.abort = Some(Arc::clone(&abort));
    Ok(Some(abort))
}

/// Removes the queue of `key` whose kernel waiter could not start, handing
/// each of its waiters `outcome()` (an error). Returns their slots, to be
/// notified after the queue lock is let go.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) fn disband<K, Q, T, N, A>(
    map: &mut Queues<K, T, N, A>,
    key: &Q,
    mut outcome: impl FnMut() -> T,
) -> Vec<Arc<Slot<T, N>>>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
    N: Notify,
{
    let waiters = map.remove(key).map(|q| q.waiters).unwrap_or_default();
    for slot in &waiters {
        slot.put(outcome());
    }
    waiters.into_iter().collect()
}

/// Undoes a [`join`] that created a queue whose kernel waiter could not start.
pub(crate) fn abandon<K, Q, T, N, A>(map: &mut Queues<K, T, N, A>, key: &Q)
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    map.remove(key);
}

/// A waiter gives up: returns the outcome if the hand-off reached its slot
/// first (then it is the waiter's, to use or drop), else takes the slot out
/// of the queue; the last waiter to leave aborts the kernel wait where the
/// platform can, and then removes the queue.
pub(crate) fn leave<K, T, N, A>(
    map: &mut Queues<K, T, N, A>,
    key: &K,
    slot: &Arc<Slot<T, N>>,
) -> Option<T>
where
    K: Hash + Eq,
    N: Notify,
    A: Abort,
{
    if let Some(outcome) = slot.take() {
        return Some(outcome);
    }
    if let Some(queue) = map.get_mut(key) {
        queue.waiters.retain(|s| !Arc::ptr_eq(s, slot));
        let aborted = || queue.abort.as_ref().map_or(false, |a| a.abort());
        if queue.waiters.is_empty() && aborted() {
            map.remove(key);
        }
    }
    None
}

/// How many waiters are queued for `key`; `None` when no queue exists.
#[cfg(test)]
pub(crate) fn queued<K, Q, T, N, A>(map: &Queues<K, T, N, A>, key: &Q) -> Option<usize>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    map.get(key).map(|queue| queue.waiters.len())
}

/// What the kernel waiter does after [`granted`].
pub(crate) enum Next<T, N> {
    /// Notify this slot's owner (after letting go of the queue lock), then
    /// wait in the kernel again.
    HandedAndWait(Arc<Slot<T, N>>),
    /// Notify this slot's owner, if any, then end: the queue is gone and
    /// anything unclaimed was released.
    HandedAndRetire(Option<Arc<Slot<T, N>>>),
    /// The queue is not this kernel waiter's (removed after an abort, maybe
    /// replaced): end; the outcome was released.
    NotMine,
}

/// The kernel was granted the lock (or failed with `outcome`'s error) for
/// the queue of `key` that `abort` identifies: hands it to the first waiter.
/// If nobody else waits, releases what nobody claimed and removes the
/// queue, both before the caller lets go of the queue lock, so no newcomer
/// finds the lock held by a kernel waiter that is leaving.
pub(crate) fn granted<K, T, N, A>(
    map: &mut Queues<K, T, N, A>,
    key: &K,
    abort: &Arc<A>,
    outcome: T,
) -> Next<T, N>
where
    K: Hash + Eq,
    N: Notify,
{
    let queue = match map.get_mut(key) {
        Some(queue)
            if queue
                .abort
                .as_ref()
                .map_or(false, |a| Arc::ptr_eq(a, abort)) =>
        {
            queue
        }
        _ => {
            drop(outcome);
            return Next::NotMine;
        }
    };
    let mut unclaimed = Some(outcome);
    let handed = queue.waiters.pop_front();
    if let Some(slot) = &handed {
        if let Some(outcome) = unclaimed.take() {
            slot.put(outcome);
        }
    }
    if queue.waiters.is_empty() {
        drop(unclaimed);
        map.remove(key);
        return Next::HandedAndRetire(handed);
    }
    match handed {
        Some(slot) => Next::HandedAndWait(slot),
        // Unreachable: a queue is never left empty with its kernel waiter
        // waiting; handled as retire all the same.
        None => Next::HandedAndRetire(None),
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Model check of the queue with loom: the main thread holds a model
    //! flock and, at a point loom chooses, releases it; two or three waiters
    //! (threads) join the queue, some giving up (a timeout or a cancel: the
    //! main thread sets their flag and wakes them, at a point loom chooses);
    //! a kernel waiter blocks on the model flock and runs [`granted`] for
    //! each queue created. In every interleaving (within loom's preemption bound):
    //! a waiter that returns with the lock really holds the model flock and
    //! is alone in the critical section; waiters that got the lock did so in
    //! queue order; every waiter that did not give up gets the lock; at the
    //! end the model flock is free (no leak), the queue is gone, and no
    //! thread is stuck (loom reports a deadlock otherwise).

    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use loom::sync::{Condvar, Mutex as LMutex};
    use loom::thread;

    /// A model flock: one holder at a time; `lock` blocks until free.
    #[derive(Default)]
    struct Flock {
        held: LMutex<bool>,
        freed: Condvar,
    }

    /// Holding the model flock; dropping it releases it.
    struct Guard(Arc<Flock>);

    impl Drop for Guard {
        fn drop(&mut self) {
            *self.0.held.lock().unwrap() = false;
            self.0.freed.notify_all();
        }
    }

    impl Flock {
        fn is_held(&self) -> bool {
            *self.held.lock().unwrap()
        }
    }

    /// Blocks until the model flock is free, then holds it.
    fn lock(flock: &Arc<Flock>) -> Guard {
        let mut held = flock.held.lock().unwrap();
        while *held {
            held = flock.freed.wait(held).unwrap();
        }
        *held = true;
        Guard(Arc::clone(flock))
    }

    /// Holds the model flock if it is free.
    fn try_lock(flock: &Arc<Flock>) -> Option<Guard> {
        let mut held = flock.held.lock().unwrap();
        if *held {
            return None;
        }
        *held = true;
        Some(Guard(Arc::clone(flock)))
    }

    /// A model Wakeup: a remembered notification.
    #[derive(Clone, Default)]
    struct Wake(Arc<(LMutex<bool>, Condvar)>);

    impl Notify for Wake {
        fn notify(&self) {
            *self.0 .0.lock().unwrap() = true;
            self.0 .1.notify_all();
        }
    }

    impl Wake {
        fn wait(&self) {
            let mut n = self.0 .0.lock().unwrap();
            while !*n {
                n = self.0 .1.wait(n).unwrap();
            }
            *n = false;
        }
    }

    /// flock cannot abort a kernel wait.
    struct NoAbort;

    impl Abort for NoAbort {
        fn abort(&self) -> bool {
            false
        }
    }

    type Map = Queues<u8, Guard, Wake, NoAbort>;
    const KEY: u8 = 7;
    const PID: u32 = 1;

    struct World {
        flock: Arc<Flock>,
        queues: LMutex<Map>,
        inside: AtomicUsize,
        /// Queue positions (join order) of the waiters that got the lock,
        /// in the order they got it.
        served: LMutex<Vec<usize>>,
        joined: AtomicUsize,
        /// Kernel waits to run: queues created by `join`, in order.
        kernel: LMutex<(VecDeque<Arc<NoAbort>>, bool)>,
        kernel_cv: Condvar,
    }

    /// The kernel waiter loop of one queue: as `handoff::kernel_waiter`.
    fn kernel_waiter(world: &World, abort: Arc<NoAbort>) {
        loop {
            let guard = lock(&world.flock);
            let next = granted(&mut world.queues.lock().unwrap(), &KEY, &abort, guard);
            match next {
                Next::HandedAndWait(slot) => slot.notify(),
                Next::HandedAndRetire(slot) => {
                    if let Some(slot) = slot {
                        slot.notify();
                    }
                    return;
                }
                Next::NotMine => return,
            }
        }
    }

    /// One thread runs the kernel waiter of each queue in turn, where
    /// `handoff` starts a thread per queue (loom allows 5 threads in all).
    /// A queue is only created after the previous one was removed, so their
    /// kernel waiters barely overlap: only the old one's last notify.
    fn kernel_service(world: Arc<World>) {
        loop {
            let abort = {
                let mut state = world.kernel.lock().unwrap();
                loop {
                    if let Some(abort) = state.0.pop_front() {
                        break abort;
                    }
                    if state.1 {
                        return;
                    }
                    state = world.kernel_cv.wait(state).unwrap();
                }
            };
            kernel_waiter(&world, abort);
        }
    }

    /// What a waiter of the model does.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Role {
        /// A timed or cancellable wait (through the queue) that is told to
        /// give up at a point loom chooses.
        GivesUp,
        /// A timed or cancellable wait (through the queue) that never gives up.
        Stays,
        /// A wait nothing can end: sleeps in the kernel itself when no queue
        /// exists (`handoff::wait_in_place`), else queues like `Stays`.
        InPlace,
    }

    /// Starts the kernel waiter of a queue just created (or taken over).
    fn start_kernel_waiter(world: &World, abort: Option<Arc<NoAbort>>) {
        if let Some(abort) = abort {
            world.kernel.lock().unwrap().0.push_back(abort);
            world.kernel_cv.notify_all();
        }
    }

    /// One waiter: the fast path (`must_queue`, try), else (`InPlace`, no
    /// queue) sleep in the kernel itself, else join the queue (starting a
    /// kernel waiter for a new queue) and sleep until handed the lock or
    /// told to give up (as `handoff::wait`). Returns whether it got the lock.
    fn waiter(world: Arc<World>, role: Role, give_up: Arc<AtomicBool>, wake: Wake) -> bool {
        let slot = Slot::new(wake.clone());
        // The fast path decides under the queue lock and tries the lock after it.
        if !must_queue(&mut world.queues.lock().unwrap(), &KEY, || PID, true) {
            if let Some(guard) = try_lock(&world.flock) {
                critical_section(&world, None, guard);
                return true;
            }
        }
        if role == Role::InPlace {
            let position = {
                let mut map = world.queues.lock().unwrap();
                sleep_in_place(&mut map, &KEY, PID)
                    .then(|| world.joined.fetch_add(1, Ordering::SeqCst))
            };
            if let Some(position) = position {
                let guard = lock(&world.flock);
                let created = woke_in_place(&mut world.queues.lock().unwrap(), &KEY, || {
                    Ok::<_, ()>(NoAbort)
                });
                start_kernel_waiter(&world, created.unwrap());
                critical_section(&world, Some(position), guard);
                return true;
            }
        }
        let position = {
            let mut map = world.queues.lock().unwrap();
            let position = world.joined.fetch_add(1, Ordering::SeqCst);
            let created = join(&mut map, &KEY, PID, &slot, || Ok::<_, ()>(NoAbort));
            start_kernel_waiter(&world, created.unwrap());
            position
        };
        let got = loop {
            if let Some(guard) = slot.take() {
                break Some(guard);
            }
            if give_up.load(Ordering::SeqCst) {
                break leave(&mut world.queues.lock().unwrap(), &KEY, &slot);
            }
            wake.wait();
        };
        match got {
            Some(guard) => {
                critical_section(&world, Some(position), guard);
                true
            }
            None => false,
        }
    }

    fn critical_section(world: &World, position: Option<usize>, guard: Guard) {
        assert!(world.flock.is_held(), "handed a lock that is not held");
        assert_eq!(
            world.inside.fetch_add(1, Ordering::SeqCst),
            0,
            "two holders"
        );
        if let Some(position) = position {
            world.served.lock().unwrap().push(position);
        }
        world.inside.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
    }

    /// Runs the model: `roles[i]` says what waiter i does; the main thread
    /// tells the `GivesUp` ones to give up before (or, `release_first`,
    /// after) releasing the lock it holds, each at a point loom chooses
    /// relative to the other threads.
    fn check(roles: &'static [Role], release_first: bool) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(2);
        }
        builder.check(move || {
            let world = Arc::new(World {
                flock: Arc::new(Flock::default()),
                queues: LMutex::new(HashMap::new()),
                inside: AtomicUsize::new(0),
                served: LMutex::new(Vec::new()),
                joined: AtomicUsize::new(0),
                kernel: LMutex::new((VecDeque::new(), false)),
                kernel_cv: Condvar::new(),
            });
            let mut held = Some(lock(&world.flock));
            let service = {
                let world = Arc::clone(&world);
                thread::spawn(move || kernel_service(world))
            };
            let mut waiters = Vec::new();
            for &role in roles {
                let flag = Arc::new(AtomicBool::new(false));
                let wake = Wake::default();
                let handle = {
                    let (world, flag, wake) = (Arc::clone(&world), flag.clone(), wake.clone());
                    thread::spawn(move || waiter(world, role, flag, wake))
                };
                waiters.push((flag, wake, handle));
            }
            // The cancels and timeouts, and the holder's release, interleave
            // with everything else as loom chooses.
            if release_first {
                drop(held.take());
            }
            for ((flag, wake, _), role) in waiters.iter().zip(roles) {
                if *role == Role::GivesUp {
                    flag.store(true, Ordering::SeqCst);
                    wake.notify();
                }
            }
            drop(held);
            let results: Vec<bool> = waiters
                .into_iter()
                .map(|(_, _, handle)| handle.join().unwrap())
                .collect();
            // Every kernel waiter retires once its queue empties.
            world.kernel.lock().unwrap().1 = true;
            world.kernel_cv.notify_all();
            service.join().unwrap();
            for (got, role) in results.iter().zip(roles) {
                assert!(
                    *got || *role == Role::GivesUp,
                    "a waiter that never gave up did not get the lock"
                );
            }
            let served = world.served.lock().unwrap().clone();
            assert!(
                served.windows(2).all(|w| w[0] < w[1]),
                "not served in queue order: {served:?}"
            );
            assert!(!world.flock.is_held(), "the lock leaked");
            assert!(
                world.queues.lock().unwrap().is_empty(),
                "a queue was left behind"
            );
        });
    }

    use Role::{GivesUp, InPlace, Stays};

    #[test]
    fn two_waiters() {
        check(&[Stays, Stays], false);
    }

    #[test]
    fn two_waiters_one_gives_up() {
        check(&[GivesUp, Stays], false);
        check(&[GivesUp, Stays], true);
    }

    #[test]
    fn two_waiters_second_gives_up() {
        check(&[Stays, GivesUp], false);
        check(&[Stays, GivesUp], true);
    }

    #[test]
    fn two_waiters_both_give_up() {
        check(&[GivesUp, GivesUp], false);
        check(&[GivesUp, GivesUp], true);
    }

    #[test]
    fn three_waiters_middle_gives_up() {
        check(&[Stays, GivesUp, Stays], false);
    }

    #[test]
    fn three_waiters_two_give_up() {
        check(&[GivesUp, Stays, GivesUp], true);
    }

    #[test]
    fn in_place_and_a_waiter() {
        check(&[InPlace, Stays], false);
        check(&[InPlace, Stays], true);
    }

    #[test]
    fn in_place_and_a_waiter_that_gives_up() {
        check(&[InPlace, GivesUp], false);
        check(&[InPlace, GivesUp], true);
    }

    #[test]
    fn two_in_place_and_a_waiter_that_gives_up() {
        check(&[InPlace, GivesUp, InPlace], false);
    }
}
