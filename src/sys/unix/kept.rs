//! Kept descriptors: after a release, the lock file's descriptor stays open
//! (unlocked) for the next acquisition of the same path in this process, so
//! that an uncontended acquire + release costs `flock` + `lstat` + `flock`
//! instead of `open` + `flock` + `fstat` + `close` (BENCHMARKS.md).
//!
//! Why it stays sound:
//!
//! - **One user at a time.** An acquisition *takes* the descriptor out of
//!   the cache and a release puts it back. Two acquisitions in this process
//!   never lock one open file description together (flock(2) would let both
//!   in); the second one opens the file afresh and conflicts as usual.
//! - **The path is checked after locking.** Before a kept descriptor is
//!   used, the path must still name its file (`lstat`: same device and
//!   inode). A lock file removed by a temp-dir cleaner, or replaced, is
//!   dropped from the cache and the path opened anew.
//! - **fork.** A child forked without exec would share the open file
//!   descriptions of the kept descriptors: if the parent later locked one
//!   and died, the child's copy would keep the lock. So the fork handlers
//!   (Linux: `pthread_atfork`, see `sys/linux.rs`) close every kept
//!   descriptor in the child at once ([`release_after_fork`]), holding the
//!   cache lock across the fork. A descriptor in use at the fork (locked,
//!   or being locked) is not kept at its release: its stamp shows the fork
//!   (`LockFile`'s drop). Systems without fork handlers keep nothing.
//!   Descriptors are close-on-exec.
//! - **Bounded.** At most [`KEPT_MAX`] descriptors per process; past that a
//!   released descriptor is closed as before. A spec can turn keeping off
//!   (`Spec::with_kept_descriptor(false)`): its release always closes.
//!
//! The cache lock is only held for a short scan, never across a system call.

use std::os::unix::io::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// At most this many descriptors are kept open per process.
pub(crate) const KEPT_MAX: usize = 16;

/// No descriptor in the slot. A `const` only to initialise [`FDS`] by array
/// repetition (Rust 1.63 has no inline `const` blocks); each use is a new atomic.
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicI32 = AtomicI32::new(-1);

/// The kept descriptors by slot (`-1`: none). Changed under [`SLOTS`]'s
/// lock, except by the fork handler in a child, which is single-threaded.
static FDS: [AtomicI32; KEPT_MAX] = [EMPTY; KEPT_MAX];

/// What each slot's descriptor is open on, by slot (a few entries, compared
/// by bytes: cheaper than hashing a path).
static SLOTS: Mutex<Vec<Option<Meta>>> = Mutex::new(Vec::new());

/// The file a kept descriptor is open on.
#[derive(Debug)]
struct Meta {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// An unlocked descriptor of a lock file, taken out of the cache.
#[derive(Debug)]
pub(super) struct Kept {
    pub(super) fd: OwnedFd,
    /// The file it was opened on.
    pub(super) dev: u64,
    pub(super) ino: u64,
}

fn slots() -> MutexGuard<'static, Vec<Option<Meta>>> {
    SLOTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the descriptor kept for `path`, if any.
pub(super) fn take(path: &Path) -> Option<Kept> {
    let mut slots = slots();
    let at = slots.iter().position(|m| {
        m.as_ref()
            .map_or(false, |m| m.path.as_os_str() == path.as_os_str())
    })?;
    let meta = slots[at].take()?;
    let raw = FDS[at].swap(-1, Ordering::SeqCst);
    if raw < 0 {
        // Closed by the fork handler: this is a child.
        return None;
    }
    // SAFETY: the slot owned `raw` alone (it was put there by `keep`, from
    // an `OwnedFd`, and only `take` or the fork handler take it out).
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    Some(Kept {
        fd,
        dev: meta.dev,
        ino: meta.ino,
    })
}

/// Keeps `fd` (unlocked, open on the file `dev`/`ino`) for `path`. Returns
/// a descriptor for the caller to close: `fd` itself when the cache is
/// full (or this system cannot keep descriptors safely), or an older one
/// kept for the same path.
pub(super) fn keep(path: PathBuf, fd: OwnedFd, dev: u64, ino: u64) -> Option<OwnedFd> {
    if !super::super::closes_kept_in_forked_children() {
        return Some(fd);
    }
    let mut slots = slots();
    let same = slots
        .iter()
        .position(|m| m.as_ref().map_or(false, |m| m.path == path));
    let at = match same.or_else(|| slots.iter().position(Option::is_none)) {
        Some(at) => at,
        None if slots.len() < KEPT_MAX => {
            slots.push(None);
            slots.len() - 1
        }
        None => return Some(fd),
    };
    slots[at] = Some(Meta { path, dev, ino });
    let old = FDS[at].swap(fd.into_raw_fd(), Ordering::SeqCst);
    // SAFETY: as in `take`: the slot owned `old` alone.
    (old >= 0).then(|| unsafe { OwnedFd::from_raw_fd(old) })
}

thread_local! {
    /// The cache lock, held by the forking thread across a fork (Linux
    /// fork handlers), so that the child never inherits it held by a thread
    /// it does not have, nor the cache half-changed.
    static HELD_FOR_FORK: std::cell::RefCell<Option<MutexGuard<'static, Vec<Option<Meta>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Fork prepare handler: takes the cache lock in the forking thread.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn hold_for_fork() {
    let guard = slots();
    let _ = HELD_FOR_FORK.try_with(|held| *held.borrow_mut() = Some(guard));
}

/// Fork parent and child handlers: in the child (`in_child`), first closes
/// every kept descriptor and empties the cache (the parent may lock its
/// copies of them later: a child's copy would keep such a lock after the
/// parent died); then lets the cache lock go.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn release_after_fork(in_child: bool) {
    let _ = HELD_FOR_FORK.try_with(|held| {
        let mut held = held.borrow_mut();
        if in_child {
            for slot in &FDS {
                let raw: RawFd = slot.swap(-1, Ordering::SeqCst);
                if raw >= 0 {
                    // SAFETY: the slot owned `raw`; the child's only thread
                    // is here, and nothing else in it uses the descriptor.
                    drop(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
            if let Some(slots) = held.as_mut() {
                slots.iter_mut().for_each(|meta| *meta = None);
            }
        }
        drop(held.take());
    });
}
