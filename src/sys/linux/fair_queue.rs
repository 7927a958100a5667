//! The cross-process queue (Linux): processes that wait for a lock file
//! take turns in the order they came, so that a process that releases and
//! asks again at once no longer wins over the processes already waiting.
//!
//! flock(2) does not queue: on release the kernel wakes a waiter, and
//! whoever calls `flock` before that waiter runs takes the lock. A process
//! that locks in a loop starves the others (BENCHMARKS.md, fairness: before
//! this queue, the least served of 16 processes got 13 to 333 times less
//! than the most served). So waits go through a queue in a side file,
//! `<lock file>.queue` (mode 0600, like the lock file), built like the
//! queue locks of Mellor-Crummey and Scott (MCS) and Craig, Landin and
//! Hagersten (CLH): each waiter sleeps on its predecessor's turn only.
//!
//! - The side file's first page is shared memory (`mmap`) with two counters:
//!   `tail`, the next ticket, and `served`, one past the newest ticket whose
//!   waiter got the flock. `tail != served`: someone is queued.
//! - A waiter takes ticket `t` (`tail += 1`) and a POSIX record lock
//!   (`fcntl(F_SETLK)`, fcntl(2)) on byte [`FIRST_BYTE`]` + t`; sleeps in
//!   `F_SETLKW` until byte `t - 1` is free (its predecessor released the
//!   mutex, or gave up, or died); then sleeps in `flock` as before. It frees
//!   byte `t` right after its release's `LOCK_UN`: that wakes its successor.
//! - An acquisition that would wait first reads the counters (no system
//!   call): with someone queued, it queues too instead of taking the flock
//!   first ([`others_queued`]).
//! - **Slices.** A hand-off between processes costs a wake-up (tens of
//!   microseconds), so strict turns would cut the throughput of short
//!   critical sections several times over. As in `parking_lot`'s eventual
//!   fairness, a process the queue served may lock again without queueing
//!   for [`SLICE`] (0.5 ms), and keeps its byte meanwhile, so its successor
//!   sleeps on rather than being woken by every release. The slice ends
//!   early when the queue serves someone else. A keeper thread (one per
//!   process, only while a slice is kept) frees the byte when the slice ends,
//!   and so does the process's next wait.
//!
//! **The flock stays the mutex.** The queue only orders the waiters of this
//! crate. Go processes and older versions take the flock directly and are
//! excluded by it as before. Anything that goes wrong with the queue (the
//! side file cannot be opened or mapped, `EDEADLK`, a removed side file)
//! makes a waiter skip it and wait on the flock alone: less fair, never less
//! exclusive, never an error.
//!
//! **Death and fork.** Record locks belong to the process (fcntl(2)): the
//! kernel frees a dead process's bytes, so its successor goes on, and a
//! forked child inherits none. A ticket whose process died before it was
//! served leaves `tail != served` until the next waiter is served, which
//! moves `served` past it. Closing *any* descriptor of a file frees the
//! process's record locks on it, so a process opens each side file once and
//! keeps it open: the side file of a name this process waited for, or
//! released with a kept descriptor (`unix/kept.rs`: the next acquisition of
//! such a name reads the counters before locking), at most [`QUEUES_MAX`]
//! (past that, one not in use is closed).
//!
//! **Limits.** A side file truncated below one page by another process would
//! make reading its counters fault (SIGBUS), as with other shared-memory
//! lock files (SQLite's `-shm`); nothing in this crate truncates it. A side
//! file removed and created anew splits the waiters between two queues for
//! a while (less fair, still exclusive). A process that has not waited for a
//! name nor released it with a kept descriptor does not read its queue, and
//! may take the flock ahead of the queue once.

use std::os::unix::io::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustix::fs::{FileType, Mode, OFlags};

use super::{fork_stamp, in_forked_child};
use crate::sys::ForkStamp;

/// Ticket `t` is the record lock on byte `FIRST_BYTE + t % 2^60` of the side
/// file (the shared page's bytes are never locked).
pub(crate) const FIRST_BYTE: i64 = 4096;

/// Tickets wrap at this many (far beyond any run: 2^60 waits).
const TICKET_WRAP: u64 = 1 << 60;

/// Bytes mapped: the page with the counters.
const PAGE: usize = 4096;

/// At most this many side files are open per process.
pub(crate) const QUEUES_MAX: usize = 64;

/// How long a process the queue served may lock again without queueing:
/// 0.5 ms, the period of `parking_lot`'s eventual fairness (its
/// `FairTimeout`). BENCHMARKS.md, contention: the throughput with 2 to 16
/// processes and the spread between them, with this slice.
pub(crate) const SLICE: Duration = Duration::from_micros(500);

/// How long the keeper thread waits with no slice to end before it exits.
const KEEPER_IDLE: Duration = Duration::from_millis(100);

/// No ticket kept.
const NO_TICKET: u64 = u64::MAX;

/// The side file of `lock_path`: `<lock_path>.queue` (a mutex name has no
/// dot, so no lock file of another mutex has this name).
pub(crate) fn side_path(lock_path: &Path) -> PathBuf {
    let mut side = lock_path.as_os_str().to_owned();
    side.push(".queue");
    PathBuf::from(side)
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call).
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// One side file, open and mapped.
#[derive(Debug)]
struct Queue {
    /// The lock file it orders.
    lock_path: PathBuf,
    fd: OwnedFd,
    /// The side file (device, inode).
    id: (u64, u64),
    /// The shared page: `[tail, served]`.
    counters: NonNull<[AtomicU64; 2]>,
    /// Until when (monotonic, ns) this process's slice lasts.
    slice_end: AtomicU64,
    /// `served` as this process's last turn left it: the slice ends as soon
    /// as the queue serves someone else.
    slice_served: AtomicU64,
    /// The ticket whose byte this process keeps for the rest of its slice
    /// ([`NO_TICKET`]: none).
    kept_ticket: AtomicU64,
}

// SAFETY: the page is shared memory used only through atomics; the rest is
// owned data.
unsafe impl Send for Queue {}
// SAFETY: as above: every access to the page is atomic.
unsafe impl Sync for Queue {}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `counters` starts the PAGE-long mapping made in `open`,
        // which nothing uses once the last `Arc` of `self` is gone.
        unsafe {
            let _ = rustix::mm::munmap(self.counters.as_ptr().cast(), PAGE);
        }
    }
}

impl Queue {
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: the mapping lives as long as `self` (see `Drop`).
        unsafe { &self.counters.as_ref()[0] }
    }

    fn served(&self) -> &AtomicU64 {
        // SAFETY: as in `tail`.
        unsafe { &self.counters.as_ref()[1] }
    }

    /// Whether someone is queued and this process's slice is over.
    fn others_queued(&self) -> bool {
        let served = self.served().load(Ordering::SeqCst);
        self.tail().load(Ordering::SeqCst) != served && !self.in_slice(served)
    }

    /// Whether this process's slice is on, `served` being the counter's value.
    fn in_slice(&self, served: u64) -> bool {
        served == self.slice_served.load(Ordering::SeqCst)
            && monotonic_ns() < self.slice_end.load(Ordering::SeqCst)
    }

    /// Frees the byte kept for the rest of a slice, if any.
    fn free_kept_ticket(&self) {
        let ticket = self.kept_ticket.swap(NO_TICKET, Ordering::SeqCst);
        if ticket != NO_TICKET {
            self.record_lock(ticket, libc::F_UNLCK, false);
        }
    }

    /// Opens (creating it if needed) and maps the side file of `lock_path`,
    /// giving it to the sudo user as the lock file is. `None` on any
    /// failure: waits then skip the queue.
    fn open(lock_path: &Path, owner: Option<(u32, u32)>) -> Option<Queue> {
        let fd = rustix::fs::open(
            side_path(lock_path),
            OFlags::RDWR
                | OFlags::CREATE
                | OFlags::CLOEXEC
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::NOCTTY,
            Mode::RUSR | Mode::WUSR,
        )
        .ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return None;
        }
        if st.st_size < PAGE as i64 {
            // Only ever grown; new bytes read as zero: an empty queue.
            rustix::fs::ftruncate(&fd, PAGE as u64).ok()?;
        }
        if let Some((uid, gid)) = owner {
            crate::sys::unix::give_to_sudo_user(&fd, &st, uid, gid);
        }
        // SAFETY: a new shared mapping of the first page of a regular file
        // at least a page long; unmapped only in `Drop`.
        let page = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                PAGE,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .ok()?;
        let counters = NonNull::new(page.cast())?;
        #[allow(clippy::unnecessary_cast)] // the field types differ by platform
        let id = (st.st_dev as u64, st.st_ino as u64);
        Some(Queue {
            lock_path: lock_path.to_owned(),
            fd,
            id,
            counters,
            slice_end: AtomicU64::new(0),
            slice_served: AtomicU64::new(NO_TICKET),
            kept_ticket: AtomicU64::new(NO_TICKET),
        })
    }

    /// Takes (`F_WRLCK`), waits for and takes (`wait`), or frees
    /// (`F_UNLCK`) the record lock on `ticket`'s byte. Interrupted waits are
    /// retried. `false` on any error (`EAGAIN`: another process has it;
    /// `EDEADLK`: the kernel sees a cycle of record-lock waits).
    fn record_lock(&self, ticket: u64, kind: i32, wait: bool) -> bool {
        // SAFETY: `flock` is plain old data: all zeroes is a valid value.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = kind as _;
        lock.l_whence = libc::SEEK_SET as _;
        lock.l_start = FIRST_BYTE + (ticket % TICKET_WRAP) as i64;
        lock.l_len = 1;
        let command = if wait { libc::F_SETLKW } else { libc::F_SETLK };
        loop {
            // SAFETY: a record-lock command with a valid `flock` on an open descriptor.
            if unsafe { libc::fcntl(self.fd.as_raw_fd(), command, &mut lock) } == 0 {
                return true;
            }
            if rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                != Some(rustix::io::Errno::INTR)
            {
                return false;
            }
        }
    }
}

/// The side files this process has open, and whether its keeper runs.
struct State {
    queues: Vec<Arc<Queue>>,
    keeper_running: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    queues: Vec::new(),
    keeper_running: false,
});

/// Wakes the keeper: a slice to end was added.
static KEEPER_WAKE: Condvar = Condvar::new();

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn find(&self, lock_path: &Path) -> Option<usize> {
        self.queues
            .iter()
            .position(|q| q.lock_path.as_os_str() == lock_path.as_os_str())
    }

    /// Opens the side file of `lock_path` and adds it, closing one not in
    /// use (no ticket out, no kept byte) when [`QUEUES_MAX`] are open.
    fn open(&mut self, lock_path: &Path, owner: Option<(u32, u32)>) -> Option<Arc<Queue>> {
        if self.queues.len() >= QUEUES_MAX {
            let unused = self.queues.iter().position(|q| {
                Arc::strong_count(q) == 1 && q.kept_ticket.load(Ordering::SeqCst) == NO_TICKET
            })?;
            self.queues.swap_remove(unused);
        }
        let queue = Arc::new(Queue::open(lock_path, owner)?);
        self.queues.push(queue.clone());
        Some(queue)
    }
}

thread_local! {
    /// The state lock, held by the forking thread across a fork (Linux fork
    /// handlers), so that the child never inherits it held.
    static HELD_FOR_FORK: std::cell::RefCell<Option<MutexGuard<'static, State>>> =
        const { std::cell::RefCell::new(None) };
}

/// Fork prepare handler: takes the state lock in the forking thread.
pub(crate) fn hold_for_fork() {
    let guard = state();
    let _ = HELD_FOR_FORK.try_with(|held| *held.borrow_mut() = Some(guard));
}

/// Fork parent and child handlers: lets the state lock go. A child has no
/// keeper thread; it keeps the side files open (the parent's record locks
/// are not its own, so closing them frees nothing of the parent's).
pub(crate) fn release_after_fork(in_child: bool) {
    let _ = HELD_FOR_FORK.try_with(|held| {
        let mut held = held.borrow_mut();
        if in_child {
            if let Some(state) = held.as_mut() {
                state.keeper_running = false;
            }
        }
        drop(held.take());
    });
}

/// Whether waiters of this crate are queued for `lock_path`, and this
/// process's slice is over: from the side file's counters if this process
/// has it open, without a system call. An acquisition that would wait
/// then queues behind them instead of taking the flock first.
pub(crate) fn others_queued(lock_path: &Path) -> bool {
    let state = state();
    state
        .find(lock_path)
        .map_or(false, |at| state.queues[at].others_queued())
}

/// Opens the side file of `lock_path` if this process does not have it
/// open, so that its next acquisitions read the queue (a release that keeps
/// its descriptor: the process is likely to lock again soon).
pub(crate) fn watch(lock_path: &Path, owner: Option<(u32, u32)>) {
    let mut state = state();
    if state.find(lock_path).is_none() {
        let _ = state.open(lock_path, owner);
    }
}

/// The side file of `lock_path`, opened now if this process does not have
/// it, or if the path now names another file (removed or replaced).
fn queue_for(lock_path: &Path, owner: Option<(u32, u32)>) -> Option<Arc<Queue>> {
    #[allow(clippy::unnecessary_cast)] // the field types differ by platform
    let now = rustix::fs::lstat(side_path(lock_path))
        .ok()
        .map(|st| (st.st_dev as u64, st.st_ino as u64));
    let mut state = state();
    if let Some(at) = state.find(lock_path) {
        if Some(state.queues[at].id) == now {
            return Some(state.queues[at].clone());
        }
        // Closing it while one of its tickets is out would free that
        // ticket's byte: only an unused one is replaced.
        let queue = &state.queues[at];
        if Arc::strong_count(queue) > 1 || queue.kept_ticket.load(Ordering::SeqCst) != NO_TICKET {
            return None;
        }
        state.queues.swap_remove(at);
    }
    state.open(lock_path, owner)
}

/// A waiter's place in the queue of a lock file: the record lock on its
/// ticket's byte, held from [`take_turn`] until it is dropped (after the
/// flock's release), which wakes the next waiter.
#[derive(Debug)]
pub(crate) struct Turn {
    queue: Arc<Queue>,
    ticket: u64,
    /// A copy dropped in a forked child holds no record lock: nothing to free.
    stamp: ForkStamp,
    /// Whether its waiter got the flock (only then does a slice start).
    served: bool,
}

impl Turn {
    /// Marks the ticket served (its waiter has the flock), which starts this
    /// process's slice.
    pub(crate) fn served(&mut self) {
        self.served = true;
        let served = self.ticket.wrapping_add(1);
        let queue = &self.queue;
        queue.served().fetch_max(served, Ordering::SeqCst);
        queue.slice_served.store(served, Ordering::SeqCst);
        queue.slice_end.store(
            monotonic_ns().saturating_add(SLICE.as_nanos() as u64),
            Ordering::SeqCst,
        );
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if in_forked_child(self.stamp) {
            return;
        }
        // Within the slice the byte stays held: the next waiter sleeps on
        // rather than being woken by each release of a process that locks
        // again at once. The keeper frees it when the slice ends.
        let served = self.queue.served().load(Ordering::SeqCst);
        if self.served && self.queue.in_slice(served) && keep_for_slice(&self.queue, self.ticket) {
            return;
        }
        self.queue.record_lock(self.ticket, libc::F_UNLCK, false);
    }
}

/// Joins the queue of `lock_path` and sleeps until every waiter that came
/// before has released the mutex (or gave up, or died). `None`: the queue
/// could not be used, and the caller waits on the flock alone.
///
/// Sleeps in the kernel (`F_SETLKW`) with no deadline: only for waits that
/// sleep in flock(2) without one anyway (the kernel waiter, or a caller in
/// its place, `handoff.rs`).
pub(crate) fn take_turn(lock_path: &Path, owner: Option<(u32, u32)>) -> Option<Turn> {
    let queue = queue_for(lock_path, owner)?;
    // A byte kept from this process's last slice goes first: waiting behind
    // it would be waiting for ourselves.
    queue.free_kept_ticket();
    let stamp = fork_stamp();
    let ticket = queue.tail().fetch_add(1, Ordering::SeqCst);
    if !queue.record_lock(ticket, libc::F_WRLCK, false) {
        // Another process has it: the counters were reset under it (a side
        // file truncated, or made anew). Skip the queue this time.
        return None;
    }
    let turn = Turn {
        queue,
        ticket,
        stamp,
        served: false,
    };
    let before = ticket.wrapping_sub(1);
    // On an error (EDEADLK) stop waiting for the predecessor, keep the place.
    if turn.queue.record_lock(before, libc::F_WRLCK, true) {
        turn.queue.record_lock(before, libc::F_UNLCK, false);
    }
    Some(turn)
}

/// Hands `ticket`'s byte to the keeper until `queue`'s slice ends. `false`:
/// the keeper thread could not be started; the caller frees it now.
fn keep_for_slice(queue: &Arc<Queue>, ticket: u64) -> bool {
    let mut state = state();
    if !state.keeper_running {
        let started = std::thread::Builder::new()
            .name("machine-mutex-queue-keeper".to_owned())
            .spawn(keeper);
        if started.is_err() {
            return false;
        }
        state.keeper_running = true;
    }
    queue.kept_ticket.store(ticket, Ordering::SeqCst);
    KEEPER_WAKE.notify_one();
    true
}

/// The keeper thread: frees each kept byte when its slice ends; exits after
/// [`KEEPER_IDLE`] with nothing kept.
fn keeper() {
    let mut state = state();
    loop {
        let now = monotonic_ns();
        let mut next: Option<u64> = None;
        for queue in &state.queues {
            if queue.kept_ticket.load(Ordering::SeqCst) == NO_TICKET {
                continue;
            }
            let end = queue.slice_end.load(Ordering::SeqCst);
            if queue.in_slice(queue.served().load(Ordering::SeqCst)) {
                next = Some(next.map_or(end, |n| n.min(end)));
            } else {
                queue.free_kept_ticket();
            }
        }
        let wait = next.map_or(KEEPER_IDLE, |end| {
            Duration::from_nanos(end.saturating_sub(now))
        });
        let (guard, waited) = KEEPER_WAKE
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner);
        state = guard;
        let idle = state
            .queues
            .iter()
            .all(|q| q.kept_ticket.load(Ordering::SeqCst) == NO_TICKET);
        if next.is_none() && waited.timed_out() && idle {
            state.keeper_running = false;
            return;
        }
    }
}
