//! Linux legacy lock: the abstract Unix socket `\0/var/lib/juju/mutex-/NAME`
//! that juju/mutex v1 bound (its `filepath.Join("@/var/lib/juju/mutex-", name)`
//! put the slash after the dash). Binding fails with `EADDRINUSE` while
//! another process has it bound; the kernel frees the name when the socket
//! closes, also when its process dies. Abstract names are per network
//! namespace.
//!
//! Also the Linux fork watch ([`fork_stamp`], [`forked_since`],
//! [`in_forked_child`]): fork handlers registered with `pthread_atfork(3)`
//! keep two counters, so a release learns without a system call whether the
//! process has forked.

use std::collections::HashSet;
use std::mem::ManuallyDrop;
use std::os::unix::io::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::{ForkStamp, LegacyBackend};
use crate::{legacy_socket_name, Error, LEGACY_SOCKET_PREFIX as SOCKET_PREFIX};

pub(crate) mod fair_queue;
mod holder;

pub(crate) use self::holder::holder;

/// A legacy socket, bound once [`bind`](LegacyBackend::bind) said so;
/// dropping it closes the socket and frees the name.
///
/// Its descriptor is listed in [`SOCKETS`] from its making to its closing,
/// so that a child forked meanwhile gets its copy replaced (`in_child`):
/// a socket is one object for all copies, and a child's copy would keep
/// the name bound after this process's release, or (made before the fork,
/// bound after it) bind it for the child too.
#[derive(Debug)]
pub(crate) struct LegacySocket {
    /// Closed by `drop`, under the [`SOCKETS`] lock.
    fd: ManuallyDrop<OwnedFd>,
    addr: SocketAddrUnix,
}

/// The descriptors of this process's legacy sockets (a set: a process
/// may hold thousands of names, released in any order). Each is made and
/// listed, and unlisted and closed, under this lock, which the fork
/// handlers hold across a fork: a forked child's list names exactly its
/// copies of them. `None` until the first socket.
static SOCKETS: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

type SocketList = MutexGuard<'static, Option<HashSet<RawFd>>>;

fn sockets() -> SocketList {
    SOCKETS.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// The socket list's lock, held by the forking thread across a fork.
    static SOCKETS_HELD_FOR_FORK: std::cell::RefCell<Option<SocketList>> =
        const { std::cell::RefCell::new(None) };
}

/// Fork prepare handler: takes the socket list's lock.
fn hold_sockets_for_fork() {
    let guard = sockets();
    let _ = SOCKETS_HELD_FOR_FORK.try_with(|held| *held.borrow_mut() = Some(guard));
}

/// Fork parent and child handlers: in the child, first puts `/dev/null`
/// (close-on-exec) in place of each listed socket descriptor, with
/// `dup3(2)`: the descriptor number stays valid, so the child's copy of a
/// guard closes it as before, and the child no longer refers to the socket,
/// whose name the parent's release then frees at once. Then lets the lock
/// go. If `/dev/null` cannot be opened (no `/dev`, no descriptor left) the
/// copies stay, as without this handler. The child's list is emptied: what
/// it lists from then on is its own. Async-signal-safe: open, dup3, close.
fn release_sockets_after_fork(in_child: bool) {
    let _ = SOCKETS_HELD_FOR_FORK.try_with(|held| {
        let mut held = held.borrow_mut();
        if let (true, Some(Some(list))) = (in_child, held.as_deref_mut()) {
            if !list.is_empty() {
                // SAFETY: a NUL-terminated path; the result is checked.
                let null = unsafe {
                    libc::open(
                        b"/dev/null\0".as_ptr().cast(),
                        libc::O_RDWR | libc::O_CLOEXEC,
                    )
                };
                if null >= 0 {
                    for &fd in list.iter() {
                        // SAFETY: `fd` is this child's copy of a listed
                        // socket; it becomes /dev/null, still open.
                        unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) };
                    }
                    // SAFETY: `null` was opened above and is not used again.
                    unsafe { libc::close(null) };
                }
                // The child's list starts empty: the copies are no sockets
                // now, and a guard of a parent's thread never drops here,
                // so its number would stay listed, and a later fork of the
                // child would replace whatever reuses it (found by a review
                // helper). No allocation: the capacity stays.
                list.clear();
            }
        }
        drop(held.take());
    });
}

impl Drop for LegacySocket {
    fn drop(&mut self) {
        let mut list = sockets();
        if let Some(list) = list.as_mut() {
            list.remove(&self.fd.as_raw_fd());
        }
        // Closed before the lock is let go: a fork cannot come between
        // (its child would replace a number that something else may have
        // opened by then).
        // SAFETY: taken once, here; `self` is not used again.
        drop(unsafe { ManuallyDrop::take(&mut self.fd) });
    }
}

impl LegacyBackend for LegacySocket {
    fn unbound(name: &str) -> Result<LegacySocket, Error> {
        // Built on the stack: the prefix (21 bytes) and a valid name (<= 40).
        let mut buf = [0u8; 128];
        let len = SOCKET_PREFIX.len() + name.len();
        let fail = |e: Errno| Error::io("bind legacy socket", display_name(name), e.into());
        let target = buf.get_mut(..len).ok_or_else(|| fail(Errno::NAMETOOLONG))?;
        target[..SOCKET_PREFIX.len()].copy_from_slice(SOCKET_PREFIX.as_bytes());
        target[SOCKET_PREFIX.len()..].copy_from_slice(name.as_bytes());
        let addr = SocketAddrUnix::new_abstract_name(target).map_err(fail)?;
        // The fork handlers must run from now on.
        let _ = fork_stamp();
        let mut list = sockets();
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::Io {
            action: "create legacy socket",
            path: display_name(name),
            source: e.into(),
            hint: matches!(e, Errno::MFILE | Errno::NFILE)
                .then(|| super::unix::TOO_MANY_FILES_HINT.to_owned()),
        })?;
        list.get_or_insert_with(HashSet::new).insert(fd.as_raw_fd());
        Ok(LegacySocket {
            fd: ManuallyDrop::new(fd),
            addr,
        })
    }

    fn bind(&mut self) -> Result<bool, Error> {
        match rustix::net::bind(&*self.fd, &self.addr) {
            Ok(()) => Ok(true),
            Err(Errno::ADDRINUSE) => Ok(false),
            Err(e) => {
                // The name is rebuilt only for the error (no allocation otherwise).
                let full = self.addr.abstract_name().unwrap_or_default();
                let name = full.get(SOCKET_PREFIX.len()..).unwrap_or_default();
                let name = String::from_utf8_lossy(name);
                Err(Error::io(
                    "bind legacy socket",
                    display_name(&name),
                    e.into(),
                ))
            }
        }
    }
}

/// The socket name as `/proc/net/unix` shows it: `@` for the NUL byte.
fn display_name(name: &str) -> PathBuf {
    PathBuf::from(legacy_socket_name(name))
}

/// This process's id, read once (0: not yet); reset in a forked child.
static PID: AtomicU32 = AtomicU32::new(0);
/// How many times this process has forked (bumped before each fork).
static FORKS: AtomicU32 = AtomicU32::new(0);
/// Which process this is in the fork tree: bumped in each forked child.
static GENERATION: AtomicU32 = AtomicU32::new(0);
static WATCH: Once = Once::new();

/// `pthread_atfork` prepare handler: runs in the forking thread before the
/// fork, so a release that starts afterwards in the parent sees it. It also
/// takes the library's process-wide locks (the hand-off queues, the kept
/// descriptors, the cross-process queues' side files, the async timers:
/// never taken in another order), so that the
/// child never starts with one held by a thread it does not have.
extern "C" fn before_fork() {
    FORKS.fetch_add(1, Ordering::SeqCst);
    crate::handoff::hold_for_fork();
    super::unix::hold_kept_for_fork();
    fair_queue::hold_for_fork();
    hold_sockets_for_fork();
    #[cfg(feature = "async")]
    crate::timer::hold_for_fork();
}

/// `pthread_atfork` parent handler: lets go of the locks taken before the fork.
extern "C" fn in_parent() {
    #[cfg(feature = "async")]
    crate::timer::release_after_fork();
    release_sockets_after_fork(false);
    fair_queue::release_after_fork(false);
    super::unix::release_kept_after_fork(false);
    crate::handoff::release_after_fork();
}

/// `pthread_atfork` child handler: the child is a new generation, so the
/// guards it inherited are not its own; the kept descriptors are closed
/// (the parent may lock them later); then the locks are let go.
extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    PID.store(0, Ordering::SeqCst);
    #[cfg(feature = "async")]
    crate::timer::release_after_fork();
    release_sockets_after_fork(true);
    fair_queue::release_after_fork(true);
    super::unix::release_kept_after_fork(true);
    crate::handoff::release_after_fork();
}

/// Whether the fork handlers are registered.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Whether a forked child closes the kept descriptors at once (the fork
/// handler is registered): only then are descriptors kept (`unix/kept.rs`).
pub(crate) fn closes_kept_in_forked_children() -> bool {
    WATCHING.load(Ordering::SeqCst)
}

/// Stamps a lock being taken, registering the fork handlers first (once per
/// process). Forks through `fork(3)` (also `std::process::Command` when it
/// forks) run the handlers; a raw `clone`/`vfork` system call does not,
/// which leaves the plain close-on-release behaviour of flock(2).
pub(crate) fn fork_stamp() -> ForkStamp {
    WATCH.call_once(|| {
        // SAFETY: registers three handlers that live for the whole program.
        // They touch atomics, close descriptors, and take (before the fork)
        // and let go (after it, in the same thread) two mutexes of this
        // library that are never held while calling code that could fork.
        // If registration fails (ENOMEM), forks go unnoticed, and no
        // descriptor is kept.
        let registered =
            unsafe { libc::pthread_atfork(Some(before_fork), Some(in_parent), Some(in_child)) }
                == 0;
        WATCHING.store(registered, Ordering::SeqCst);
    });
    ForkStamp(
        GENERATION.load(Ordering::SeqCst),
        FORKS.load(Ordering::SeqCst),
    )
}

/// Whether this process (or, in a child, its parent) forked since `stamp`
/// was taken: a descriptor opened before may then be shared with a child.
pub(crate) fn forked_since(stamp: ForkStamp) -> bool {
    fork_stamp() != stamp
}

/// This process's id without a system call once read: the fork handler
/// clears it in a child. A child made without fork handlers (raw clone)
/// still sees its parent's id here, which a release detects with a real
/// `getpid` (see `LockFile`'s drop).
pub(crate) fn process_id() -> u32 {
    match PID.load(Ordering::SeqCst) {
        0 => {
            let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
            PID.store(pid, Ordering::SeqCst);
            pid
        }
        pid => pid,
    }
}

/// Whether this is a child forked after `stamp` was taken in its parent:
/// a guard it inherited is a copy, whose release must not unlock the
/// parent's lock.
pub(crate) fn in_forked_child(stamp: ForkStamp) -> bool {
    GENERATION.load(Ordering::SeqCst) != stamp.0
}
