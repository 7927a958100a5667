//! The cross-process queue (Linux, `Spec::with_fair_queue`): processes that
//! wait for a lock file take turns in the order they came, so that a
//! process that releases and asks again at once no longer wins over the
//! processes already waiting.
//!
//! flock(2) does not queue: on release the kernel wakes a waiter, and
//! whoever calls `flock` before that waiter runs takes the lock. A process
//! that locks in a loop starves the others (BENCHMARKS.md, fairness: without
//! the queue, the least served of 16 processes gets 13 to 333 times less
//! than the most served). So waits go through a queue in a side file,
//! `<lock file>.queue` (mode 0600), built like the queue locks of
//! Mellor-Crummey and Scott (MCS) and Craig, Landin and Hagersten (CLH):
//! each waiter sleeps on its predecessor's turn only.
//!
//! - The side file's first page is shared memory (`mmap`) with two counters:
//!   `tail`, the next ticket, and `served`, one past the newest ticket whose
//!   waiter got the flock. `tail != served`: someone is queued.
//! - A waiter takes ticket `t` (`tail += 1`) and a record lock on byte
//!   [`FIRST_BYTE`]` + t` through its own open file description
//!   (`F_OFD_SETLK`, fcntl(2)); sleeps in `F_OFD_SETLKW` until byte `t - 1`
//!   is free (its predecessor released the mutex, or gave up, or died); then
//!   sleeps in `flock` as before (the lock file is opened before the turn
//!   wait, so only `flock` is left once the turn comes). It frees byte `t`
//!   right after its release's `LOCK_UN`: that wakes its successor. Each turn has its own
//!   description, so two turns of one process (a holder and the kernel
//!   waiter serving the process's next waiters) are two owners that order
//!   each other like any two processes, and the kernel's deadlock check of
//!   process-owned locks (which would see a cycle between two processes
//!   whose turns interleave) does not apply.
//! - An acquisition that would wait first reads the counters (no system
//!   call once the process has the side file open: its first acquisition
//!   of the name opens it): with someone queued, it queues too instead of
//!   taking the flock first ([`others_queued`]).
//! - **Slices.** A hand-off between processes costs a wake-up (tens of
//!   microseconds), so strict turns would cut the throughput of short
//!   critical sections several times over. As in `parking_lot`'s eventual
//!   fairness, a process the queue served may lock again without queueing
//!   for [`SLICE`] (0.5 ms), and keeps its byte meanwhile, so its successor
//!   sleeps on rather than being woken by every release. The slice ends
//!   early when the queue serves someone else. A keeper thread (one per
//!   process, only while a place is kept) frees the byte when the slice
//!   ends, and so does the process's next wait.
//!
//! **The flock stays the mutex.** The queue only orders the waiters that
//! use it. Go processes, older versions and specs without the queue take
//! the flock directly and are excluded by it as before. Anything that goes
//! wrong with the queue makes a waiter skip it and wait on the flock alone:
//! less fair, never less exclusive, never an error. A side file is only
//! used if it is a regular file owned by this process's effective user
//! (another user could truncate it under the mapping, or hold places
//! forever); it is created with `O_EXCL`; its page gets storage before it
//! is mapped (`fallocate`: a full file system means no queue, not a fault
//! when the counters are written), and a file size limit below a page
//! (`RLIMIT_FSIZE`, whose excess kills with SIGXFSZ) means no queue.
//!
//! **Death and fork.** A record lock goes with the last descriptor of its
//! open file description, so the kernel frees a dead process's places and
//! its successor goes on. A child forked without exec would share those
//! descriptions: the fork handler closes every turn's descriptor in the
//! child (as for kept lock file descriptors), so a place never outlives its
//! process in a child. A ticket whose process died before it was served
//! leaves `tail != served` until the next waiter is served, which moves
//! `served` past it. A process keeps each side file it used open for its
//! life (each acquisition reads the counters before locking), at most
//! [`QUEUES_MAX`] (past that, one not in use is closed).
//!
//! **Limits.** A waiter that stops running while queued (SIGSTOP, a
//! debugger) holds up everyone behind it until it runs again or dies, even
//! while the lock is free: the price of any queue lock. A side file
//! truncated below one page by its owner's processes would make reading the
//! counters fault (SIGBUS), as with other shared-memory lock files (SQLite's
//! `-shm`); nothing in this crate truncates it. A side file removed and
//! created anew splits the waiters between two queues for a while (less
//! fair, still exclusive). `try_acquire` never queues.

use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

/// One side file, open and mapped (its counters); turns open it anew.
#[derive(Debug)]
struct Queue {
    /// The lock file it orders.
    lock_path: PathBuf,
    /// Kept open for the mapping only (closing it frees no record lock:
    /// those belong to each turn's own open file description).
    _fd: OwnedFd,
    /// The side file (device, inode).
    id: (u64, u64),
    /// The shared page: `[tail, served]`.
    counters: NonNull<[AtomicU64; 2]>,
    /// Until when (monotonic, ns) this process's slice lasts.
    slice_end: AtomicU64,
    /// `served` as this process's last turn left it: the slice ends as soon
    /// as the queue serves someone else.
    slice_served: AtomicU64,
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

/// Opens the side file of `lock_path`, creating it (mode 0600, `O_EXCL`)
/// if missing. `None` unless it is a regular file with one link, owned by
/// this process's effective user: another user's side file is never used
/// (its owner could truncate it under the mapping, or hold tickets
/// forever), nor a hard link to some other file.
fn open_side_file(lock_path: &Path) -> Option<(OwnedFd, rustix::fs::Stat)> {
    let side = side_path(lock_path);
    let flags =
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match rustix::fs::open(&side, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            match rustix::fs::open(
                &side,
                flags | OFlags::CREATE | OFlags::EXCL,
                Mode::RUSR | Mode::WUSR,
            ) {
                Ok(fd) => fd,
                // Made by another process meanwhile.
                Err(rustix::io::Errno::EXIST) => {
                    rustix::fs::open(&side, flags, Mode::empty()).ok()?
                }
                Err(_) => return None,
            }
        }
        Err(_) => return None,
    };
    let st = rustix::fs::fstat(&fd).ok()?;
    let mine = st.st_uid == rustix::process::geteuid().as_raw();
    // One link: a hard link planted at the path would have another file's
    // content overwritten by the counters.
    #[allow(clippy::unnecessary_cast)] // st_nlink is u32 or u64 by platform
    let one_link = st.st_nlink as u64 == 1;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || !mine || !one_link {
        return None;
    }
    Some((fd, st))
}

impl Queue {
    /// Opens and maps the side file of `lock_path`. Its first page gets
    /// storage first (`fallocate`), so that writing the counters cannot
    /// fault on a full file system; a file size limit below a page
    /// (`RLIMIT_FSIZE`, which would kill with SIGXFSZ) skips the queue.
    /// `None` on any failure: waits then skip the queue.
    fn open(lock_path: &Path) -> Option<Queue> {
        let (fd, st) = open_side_file(lock_path)?;
        #[allow(clippy::unnecessary_cast)] // the field types differ by platform
        let allocated = (st.st_blocks as u64).saturating_mul(512);
        if allocated < PAGE as u64 || (st.st_size as u64) < PAGE as u64 {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize);
            if limit.current.map_or(false, |max| max < PAGE as u64) {
                return None;
            }
            rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, PAGE as u64).ok()?;
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
        Some(Queue {
            lock_path: lock_path.to_owned(),
            _fd: fd,
            id: file_id(&st),
            counters,
            slice_end: AtomicU64::new(0),
            slice_served: AtomicU64::new(u64::MAX),
        })
    }

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
}

/// A file's device and inode.
#[allow(clippy::unnecessary_cast)] // the field types differ by platform
fn file_id(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Takes (`F_WRLCK`), waits for and takes (`wait`), or frees (`F_UNLCK`)
/// the record lock on `ticket`'s byte through `fd`'s open file description
/// (`F_OFD_SETLK`, fcntl(2)). Interrupted waits are retried. `false` on any
/// error (`EAGAIN`: someone else has it).
fn record_lock(fd: &OwnedFd, ticket: u64, kind: i32, wait: bool) -> bool {
    // SAFETY: `flock` is plain old data: all zeroes is a valid value (and
    // `l_pid` must be 0 for open file description locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = FIRST_BYTE + (ticket % TICKET_WRAP) as i64;
    lock.l_len = 1;
    let command = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: a record-lock command with a valid `flock` on an open descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), command, &mut lock) } == 0 {
            return true;
        }
        if rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
            != Some(rustix::io::Errno::INTR)
        {
            return false;
        }
    }
}

/// Frees a turn's byte and closes its descriptor. Unlocked explicitly
/// first: a child that another thread is starting (`posix_spawn`, no fork
/// handler) shares the description until its exec.
fn free(fd: OwnedFd, ticket: u64) {
    record_lock(&fd, ticket, libc::F_UNLCK, false);
    drop(fd);
}

/// The process-wide state: the side files open, the turns out, the places
/// kept for slices, and whether the keeper runs.
struct State {
    queues: Vec<Arc<Queue>>,
    /// The descriptors of the turns out (closed in a forked child), and
    /// their queues.
    turns: Vec<(RawFd, Arc<Queue>)>,
    /// Places kept for the rest of a slice: the queue, the turn's
    /// descriptor and its ticket. At most one per queue.
    kept: Vec<(Arc<Queue>, OwnedFd, u64)>,
    keeper_running: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    queues: Vec::new(),
    turns: Vec::new(),
    kept: Vec::new(),
    keeper_running: false,
});

/// Wakes the keeper: a place was kept.
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
    /// use when [`QUEUES_MAX`] are open.
    fn open(&mut self, lock_path: &Path) -> Option<Arc<Queue>> {
        if self.queues.len() >= QUEUES_MAX {
            let unused = self.queues.iter().position(|q| Arc::strong_count(q) == 1)?;
            self.queues.swap_remove(unused);
        }
        let queue = Arc::new(Queue::open(lock_path)?);
        self.queues.push(queue.clone());
        Some(queue)
    }

    /// Takes the place kept for `queue`'s slice out, if any.
    fn take_kept(&mut self, queue: &Arc<Queue>) -> Option<(OwnedFd, u64)> {
        let at = self
            .kept
            .iter()
            .position(|(q, _, _)| Arc::ptr_eq(q, queue))?;
        let (_, fd, ticket) = self.kept.swap_remove(at);
        Some((fd, ticket))
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

/// Fork parent and child handlers: lets the state lock go. In the child
/// (`in_child`), first closes the descriptors of every turn and kept place
/// (the child shares their open file descriptions, whose locks would
/// outlive the parent in it), and notes that no keeper runs there.
pub(crate) fn release_after_fork(in_child: bool) {
    let _ = HELD_FOR_FORK.try_with(|held| {
        let mut held = held.borrow_mut();
        if let (true, Some(state)) = (in_child, held.as_mut()) {
            for (raw, _) in state.turns.drain(..) {
                // SAFETY: a turn's descriptor, registered while the turn
                // lives; the turn (a copy in this child) never closes it
                // (its drop sees the fork).
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
            }
            // Closing, not unlocking: the locks are the parent's too.
            state.kept.clear();
            state.keeper_running = false;
        }
        drop(held.take());
    });
}

/// Whether waiters are queued for `lock_path`, and this process's slice is
/// over: from the side file's counters, without a system call once this
/// process has the side file open (the first call for a path opens it,
/// creating it if needed). An acquisition that would wait then queues
/// behind them instead of taking the flock first.
pub(crate) fn others_queued(lock_path: &Path) -> bool {
    let mut state = state();
    let queue = match state.find(lock_path) {
        Some(at) => state.queues[at].clone(),
        None => match state.open(lock_path) {
            Some(queue) => queue,
            None => return false,
        },
    };
    queue.others_queued()
}

/// The side file of `lock_path` as this process has it mapped, if that is
/// the file `id` (device, inode) that the path names now; else mapped anew
/// (the side file was removed or replaced since).
fn queue_for(state: &mut State, lock_path: &Path, id: (u64, u64)) -> Option<Arc<Queue>> {
    if let Some(at) = state.find(lock_path) {
        if state.queues[at].id == id {
            return Some(state.queues[at].clone());
        }
        state.queues.swap_remove(at);
    }
    state.open(lock_path)
}

/// A waiter's place in the queue of a lock file: the record lock on its
/// ticket's byte, through its own open file description, held from
/// [`take_turn`] until it is dropped (after the flock's release), which
/// wakes the next waiter.
#[derive(Debug)]
pub(crate) struct Turn {
    queue: Arc<Queue>,
    /// Its own description (so two turns of one process are two owners).
    fd: Option<OwnedFd>,
    ticket: u64,
    /// A copy in a forked child: its descriptor was closed by the fork handler.
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
        let fd = match self.fd.take() {
            Some(fd) => fd,
            None => return,
        };
        if in_forked_child(self.stamp) {
            // Closed by the fork handler; the number may be reused.
            std::mem::forget(fd);
            return;
        }
        let mut state = state();
        let raw = fd.as_raw_fd();
        state.turns.retain(|(t, _)| *t != raw);
        // Within the slice the place stays held: the next waiter sleeps on
        // rather than being woken by each release of a process that locks
        // again at once. The keeper frees it when the slice ends. Not when
        // this process has another turn out in the queue: that waiter of
        // this process is next, and would wait for the slice to end.
        let own_next = state.turns.iter().any(|(_, q)| Arc::ptr_eq(q, &self.queue));
        let served = self.queue.served().load(Ordering::SeqCst);
        if self.served && !own_next && self.queue.in_slice(served) && start_keeper(&mut state) {
            let older = state.take_kept(&self.queue);
            state.kept.push((self.queue.clone(), fd, self.ticket));
            KEEPER_WAKE.notify_one();
            drop(state);
            if let Some((fd, ticket)) = older {
                free(fd, ticket);
            }
            return;
        }
        drop(state);
        free(fd, self.ticket);
    }
}

/// Joins the queue of `lock_path` and sleeps until every waiter that came
/// before has released the mutex (or gave up, or died). `None`: the queue
/// could not be used, and the caller waits on the flock alone.
///
/// Sleeps in the kernel (`F_OFD_SETLKW`) with no deadline: only for waits
/// that sleep in flock(2) without one anyway (the kernel waiter, or a
/// caller in its place, `handoff.rs`).
pub(crate) fn take_turn(lock_path: &Path) -> Option<Turn> {
    // Opened and registered under the state lock, which the fork handlers
    // hold across a fork: a child never gets the descriptor unregistered
    // (it would keep this turn's place if this process died).
    let mut state = state();
    // Its own description: record locks of one description never conflict.
    // Its identity also tells whether the mapped side file is still the
    // one at the path.
    let (fd, st) = open_side_file(lock_path)?;
    let queue = queue_for(&mut state, lock_path, file_id(&st))?;
    if file_id(&st) != queue.id {
        // Replaced again between the two opens: skip the queue this time.
        return None;
    }
    // A place kept from this process's last slice goes first: waiting
    // behind it would be waiting for ourselves.
    let kept = state.take_kept(&queue);
    state.turns.push((fd.as_raw_fd(), queue.clone()));
    let stamp = fork_stamp();
    drop(state);
    if let Some((kept_fd, ticket)) = kept {
        free(kept_fd, ticket);
    }
    let ticket = queue.tail().fetch_add(1, Ordering::SeqCst);
    let turn = Turn {
        queue,
        fd: Some(fd),
        ticket,
        stamp,
        served: false,
    };
    let fd = turn.fd.as_ref()?;
    if !record_lock(fd, ticket, libc::F_WRLCK, false) {
        // Someone else has it: the counters were reset under them (a side
        // file made anew). Skip the queue this time.
        return None;
    }
    // Its lock on the predecessor's byte, taken to wait, stays until this
    // turn's description is closed: nobody else waits for that byte, and
    // one system call less stands between the turn and the flock.
    record_lock(fd, ticket.wrapping_sub(1), libc::F_WRLCK, true);
    Some(turn)
}

/// Starts the keeper thread if it does not run. `false`: it could not be
/// started (places are then freed at once).
fn start_keeper(state: &mut State) -> bool {
    if !state.keeper_running {
        let started = std::thread::Builder::new()
            .name("machine-mutex-queue-keeper".to_owned())
            .spawn(keeper);
        if started.is_err() {
            return false;
        }
        state.keeper_running = true;
    }
    true
}

/// The keeper thread: frees each kept place when its slice ends; exits
/// after [`KEEPER_IDLE`] with nothing kept.
fn keeper() {
    let mut state = state();
    loop {
        let now = monotonic_ns();
        let mut next: Option<u64> = None;
        let mut ended = Vec::new();
        let mut at = 0;
        while at < state.kept.len() {
            let queue = &state.kept[at].0;
            if queue.in_slice(queue.served().load(Ordering::SeqCst)) {
                let end = queue.slice_end.load(Ordering::SeqCst);
                next = Some(next.map_or(end, |n| n.min(end)));
                at += 1;
            } else {
                let (_, fd, ticket) = state.kept.swap_remove(at);
                ended.push((fd, ticket));
            }
        }
        for (fd, ticket) in ended {
            free(fd, ticket);
        }
        let wait = next.map_or(KEEPER_IDLE, |end| {
            Duration::from_nanos(end.saturating_sub(now))
        });
        let (guard, waited) = KEEPER_WAKE
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner);
        state = guard;
        if next.is_none() && waited.timed_out() && state.kept.is_empty() {
            state.keeper_running = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The side file of `lock_path` as this process has it mapped.
    fn mapped(lock_path: &Path) -> Arc<Queue> {
        let state = state();
        state.queues[state.find(lock_path).expect("mapped")].clone()
    }

    /// Whether this process keeps a place for `lock_path`'s slice.
    fn keeps_place(lock_path: &Path) -> bool {
        state()
            .kept
            .iter()
            .any(|(q, _, _)| q.lock_path.as_os_str() == lock_path.as_os_str())
    }

    /// A served turn released within its slice keeps its place, unless
    /// another turn of this process is out in the same queue: that waiter
    /// is next, and would wait for this process's own slice to end (a
    /// process with two threads on one name was held to one acquisition per
    /// slice, found by a review helper).
    #[test]
    fn a_place_is_kept_for_the_slice_unless_this_process_is_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("juju-slice");

        let mut alone = take_turn(&path).expect("a turn");
        alone.served();
        drop(alone);
        assert!(keeps_place(&path), "kept for the slice");

        let mut first = take_turn(&path).expect("a turn");
        let tail = mapped(&path).tail().load(Ordering::SeqCst);
        let (taken, second_taken) = std::sync::mpsc::channel();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let second = take_turn(&path).expect("a turn");
                taken.send(()).unwrap();
                drop(second);
            })
        };
        let queue = mapped(&path);
        while queue.tail().load(Ordering::SeqCst) == tail {
            std::thread::yield_now();
        }
        first.served();
        drop(first);
        assert!(!keeps_place(&path), "kept although this process is next");
        second_taken.recv().unwrap();
        waiter.join().unwrap();
    }
}
