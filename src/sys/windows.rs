//! Windows backend: the named kernel mutex `juju-mutex-NAME`, as juju/mutex
//! v2 does (`mutex_windows.go`), held by one owner thread per acquisition.
//!
//! A Windows mutex belongs to the thread whose wait acquired it: only that
//! thread can release it (`ReleaseMutex` fails with `ERROR_NOT_OWNER`
//! anywhere else), and when that thread ends first the mutex is *abandoned*.
//! So, as the Go package does with `runtime.LockOSThread`, each acquisition
//! runs on an owner thread of its own, which
//!
//! 1. creates or opens the mutex and waits for it: without waiting
//!    (`try_lock`), or with no time limit together with the hand-off's
//!    cancel event (`lock`: `WaitForMultipleObjects`, the event first so
//!    that a cancel takes precedence, as in Go);
//! 2. reports the outcome to the thread that asked, and ends unless it got
//!    the mutex;
//! 3. holding it, parks until its [`NamedMutex`] is released or dropped,
//!    then calls `ReleaseMutex` and closes the handle.
//!
//! A [`NamedMutex`] holds only the owner thread's join handle and a release
//! flag, so it (and the `Releaser`) is `Send` and `Sync` and can be released
//! from any thread. Timeouts and cancel tokens are the hand-off waiters'
//! business, measured on the spec's clock; the kernel wait has no time limit
//! and is *aborted* (its cancel event set) once no waiter of this process
//! wants the mutex any more.
//!
//! A wait that returns `WAIT_ABANDONED` (the holder's thread or process
//! ended without releasing) grants the mutex like a normal wait, and counts
//! as acquired, as in the Go package.
//!
//! Whatever the namespace, the mutex is created with a security descriptor
//! that lets everyone wait for and release it, so that services, elevated
//! and normal processes can share it (see [`Namespace`]).

use std::ffi::OsStr;
use std::io;
use std::iter;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, Thread};

use windows_sys::Win32::Foundation::{
    LocalFree, ERROR_ACCESS_DENIED, ERROR_INVALID_HANDLE, HANDLE, WAIT_ABANDONED_0, WAIT_FAILED,
    WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};
use windows_sys::Win32::System::Threading::{
    CreateEventW, CreateMutexExW, ReleaseMutex, SetEvent, WaitForMultipleObjects,
    WaitForSingleObject, INFINITE, MUTEX_MODIFY_STATE, SYNCHRONIZATION_SYNCHRONIZE,
};

use super::{AbortWait, LockBackend};
use crate::holder::{HeldLock, Holder};
use crate::{mutex_object_name, Environment, Error, Namespace};

/// The security descriptor of every mutex this crate creates: Everyone may
/// wait for it and release it (`SYNCHRONIZE | MUTEX_MODIFY_STATE`), nothing
/// more; its owner (OWNER RIGHTS, `OW`) has all access (`MUTEX_ALL_ACCESS`).
///
/// The owner's ACE is for Go's juju/mutex, which opens an existing mutex
/// with `CreateMutexW(NULL, ...)`, and that asks for `MUTEX_ALL_ACCESS`:
/// without it, Windows grants an owner only `READ_CONTROL | WRITE_DAC`, and
/// a Go process of the same user failed (access denied) instead of waiting
/// whenever this crate had created the mutex (found by a review helper;
/// Wine grants an owner more, so the suite had not seen it).
const MUTEX_SDDL: &str = "D:(A;;0x100001;;;WD)(A;;0x1f0001;;;OW)";

/// The access this crate asks for: what waiting and releasing need.
const MUTEX_ACCESS: u32 = SYNCHRONIZATION_SYNCHRONIZE | MUTEX_MODIFY_STATE;

/// A named mutex held by its owner thread. Dropping it releases the mutex
/// and waits for the owner thread to end.
#[derive(Debug)]
pub(crate) struct NamedMutex {
    target: PathBuf,
    owner: OwnerThread,
}

impl LockBackend for NamedMutex {
    type Abort = AbortEvent;

    /// The kernel object name, `[Global\]juju-mutex-NAME`.
    fn target(name: &str, namespace: Namespace) -> PathBuf {
        PathBuf::from(mutex_object_name(name, namespace))
    }

    fn try_lock(target: &Path, _env: &dyn Environment) -> Result<Option<NamedMutex>, Error> {
        acquire(target, None)
    }

    fn lock(
        target: &Path,
        _env: &dyn Environment,
        _fair: bool,
        abort: &AbortEvent,
    ) -> Result<Option<NamedMutex>, Error> {
        acquire(target, Some(abort.clone()))
    }

    /// No queue of our own: Windows wakes the waiters of a kernel mutex in
    /// an order it does not promise (roughly arrival order, changed by
    /// kernel-mode APCs and priority boosts; Microsoft's docs say not to
    /// rely on FIFO).
    fn others_queued(_target: &Path) -> bool {
        false
    }

    /// Nothing is kept: each held mutex has its own owner thread.
    fn keep_on_release(&mut self, _target: PathBuf) {}

    fn release(mut self) -> Result<(), Error> {
        self.owner
            .finish()
            .map_err(|e| Error::io("release mutex", &self.target, e))
    }
}

/// The cancel event of one kernel wait: an anonymous manual-reset event
/// that the owner thread waits on together with the mutex.
#[derive(Clone, Debug)]
pub(crate) struct AbortEvent {
    event: Arc<OwnedHandle>,
}

impl AbortWait for AbortEvent {
    fn new(target: &Path) -> Result<AbortEvent, Error> {
        // SAFETY: no security attributes and no name (both null); manual
        // reset, initially not signalled. No pointer is kept.
        let handle = unsafe { CreateEventW(ptr::null(), 1, 0, ptr::null()) };
        if handle.is_null() {
            let e = io::Error::last_os_error();
            return Err(Error::io("create the cancel event for", target, e));
        }
        Ok(AbortEvent {
            // SAFETY: a handle just returned by CreateEventW, owned by nothing else.
            event: Arc::new(unsafe { owned(handle) }),
        })
    }

    fn abort(&self) -> bool {
        // SAFETY: the event handle stays open as long as `self`.
        unsafe { SetEvent(raw(&self.event)) != 0 }
    }
}

/// What the owner thread's wait ended with.
enum Wait {
    /// The mutex is the owner thread's (released or abandoned before).
    Acquired,
    /// Another thread holds it (only without waiting: `try_lock`).
    Busy,
    /// The cancel event was set first.
    Aborted,
}

/// A failed system call of the owner thread, and what it was doing.
type Failure = (&'static str, io::Error);

/// The owner thread of one acquisition, the flag that tells it to release,
/// and the channel on which it says it has released.
#[derive(Debug)]
struct OwnerThread {
    /// `None` once told to release (it is never joined: see `finish`).
    thread: Option<Thread>,
    release: Arc<AtomicBool>,
    released: mpsc::Receiver<io::Result<()>>,
}

impl OwnerThread {
    /// Tells the thread to release the mutex (if it holds it), and waits
    /// until it has (`ReleaseMutex` returned), not until the thread has
    /// ended: a guard dropped by a thread-local destructor runs under the
    /// loader lock, which a thread needs to end, so a join there never
    /// returned (found by a review helper). Returns the `ReleaseMutex`
    /// error, if any. Only the first call does anything.
    fn finish(&mut self) -> io::Result<()> {
        let thread = match self.thread.take() {
            Some(thread) => thread,
            None => return Ok(()),
        };
        self.release.store(true, Ordering::Release);
        thread.unpark();
        // The thread ends on its own afterwards (detached). A closed channel:
        // it held nothing to release (busy, aborted, failed), or panicked.
        self.released.recv().unwrap_or(Ok(()))
    }
}

impl Drop for OwnerThread {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Starts an owner thread for `target` and returns the mutex once it holds
/// it: `Ok(None)` when it is busy (`abort == None`) or the wait was aborted.
fn acquire(target: &Path, abort: Option<AbortEvent>) -> Result<Option<NamedMutex>, Error> {
    let name = wide(target.as_os_str());
    let release = Arc::new(AtomicBool::new(false));
    let (report, outcome) = mpsc::channel();
    let (done, released) = mpsc::channel();
    let thread = {
        let release = Arc::clone(&release);
        thread::Builder::new()
            .name("machine-mutex-owner".to_owned())
            .spawn(move || {
                let result = own(&name, abort, &report, &release);
                if let Some(result) = result {
                    let _ = done.send(result);
                }
            })
            .map_err(|e| Error::io("start the owner thread of", target, e))?
    };
    // From here on, dropping `owner` ends the thread and releases what it holds.
    let owner = OwnerThread {
        thread: Some(thread.thread().clone()),
        release,
        released,
    };
    let outcome = outcome.recv().unwrap_or_else(|_| {
        let e = io::Error::new(io::ErrorKind::Other, "owner thread ended without a report");
        Err(("wait for mutex", e))
    });
    match outcome {
        Ok(Wait::Acquired) => Ok(Some(NamedMutex {
            target: target.to_owned(),
            owner,
        })),
        Ok(Wait::Busy) | Ok(Wait::Aborted) => Ok(None),
        Err((action, e)) => Err(os_error(action, target, e)),
    }
}

/// The owner thread's body: create or open, wait, report; if it got the
/// mutex, hold it until `release` is set, then release it and return what
/// `ReleaseMutex` said (`None`: it got nothing to release).
fn own(
    name: &[u16],
    abort: Option<AbortEvent>,
    report: &mpsc::Sender<Result<Wait, Failure>>,
    release: &AtomicBool,
) -> Option<io::Result<()>> {
    let mutex = match create_mutex(name) {
        Ok(mutex) => mutex,
        Err(e) => {
            let _ = report.send(Err(("create or open mutex", e)));
            return None;
        }
    };
    match wait(&mutex, abort.as_ref()) {
        Ok(Wait::Acquired) => {}
        other => {
            let _ = report.send(other.map_err(|e| ("wait for mutex", e)));
            return None;
        }
    }
    drop(abort);
    // If nobody takes the report (the asking thread is gone), release at once.
    if report.send(Ok(Wait::Acquired)).is_ok() {
        while !release.load(Ordering::Acquire) {
            thread::park();
        }
    }
    // SAFETY: `mutex` is open, and this thread owns the mutex: its wait above acquired it.
    if unsafe { ReleaseMutex(raw(&mutex)) } == 0 {
        return Some(Err(io::Error::last_os_error()));
    }
    // Closed before the release is reported: once `release` returns, this
    // process no longer has the object open.
    drop(mutex);
    Some(Ok(()))
}

/// Creates the mutex `name` (NUL-terminated UTF-16), or opens it if it
/// exists, without taking it.
///
/// Not initially owned, so that acquisition (and abandonment) work the same
/// whether this call created the mutex or opened it (Go does the same).
fn create_mutex(name: &[u16]) -> io::Result<OwnedHandle> {
    let descriptor = SecurityDescriptor::parse(MUTEX_SDDL)?;
    let attributes = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor.0,
        bInheritHandle: 0,
    };
    // SAFETY: `name` is NUL-terminated (`wide`); `attributes` and the
    // descriptor it points to live until the call returns; nothing is kept.
    let handle = unsafe { CreateMutexExW(&attributes, name.as_ptr(), 0, MUTEX_ACCESS) };
    if handle.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a handle just returned by CreateMutexExW, owned by nothing else.
    Ok(unsafe { owned(handle) })
}

/// Waits for `mutex`: not at all when `abort` is `None`, else with no time
/// limit together with the cancel event, which comes first so that it wins
/// when both are signalled.
fn wait(mutex: &OwnedHandle, abort: Option<&AbortEvent>) -> io::Result<Wait> {
    let (result, mutex_index) = match abort {
        // SAFETY: `mutex` is an open handle; a zero timeout never blocks.
        None => (unsafe { WaitForSingleObject(raw(mutex), 0) }, 0),
        Some(abort) => {
            let handles = [raw(&abort.event), raw(mutex)];
            // SAFETY: two open handles, kept open by `abort` and `mutex`
            // until the call returns; the count matches the array.
            let result = unsafe { WaitForMultipleObjects(2, handles.as_ptr(), 0, INFINITE) };
            (result, 1)
        }
    };
    match result {
        r if r == WAIT_OBJECT_0 + mutex_index => Ok(Wait::Acquired),
        // The previous owner ended without releasing: ours all the same.
        r if r == WAIT_ABANDONED_0 + mutex_index => Ok(Wait::Acquired),
        WAIT_TIMEOUT => Ok(Wait::Busy),
        // Index 0 is the cancel event here (with no event, the mutex matched above).
        WAIT_OBJECT_0 => Ok(Wait::Aborted),
        WAIT_FAILED => Err(io::Error::last_os_error()),
        other => Err(io::Error::new(
            io::ErrorKind::Other,
            format!("unexpected wait result {other:#x}"),
        )),
    }
}

/// A security descriptor parsed from SDDL, freed on drop.
struct SecurityDescriptor(PSECURITY_DESCRIPTOR);

impl SecurityDescriptor {
    fn parse(sddl: &str) -> io::Result<SecurityDescriptor> {
        let sddl: Vec<u16> = sddl.encode_utf16().chain(iter::once(0)).collect();
        let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
        // SAFETY: `sddl` is NUL-terminated; the function stores a
        // LocalAlloc'ed descriptor in `descriptor` (freed in Drop); the
        // size output is optional (null).
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                ptr::null_mut(),
            )
        };
        if ok == 0 || descriptor.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(SecurityDescriptor(descriptor))
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW,
        // which documents LocalFree; freed once, here.
        unsafe { LocalFree(self.0) };
    }
}

/// Takes ownership of a raw handle.
///
/// # Safety
/// `handle` must be open and owned by nothing else.
unsafe fn owned(handle: HANDLE) -> OwnedHandle {
    OwnedHandle::from_raw_handle(handle as RawHandle)
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// `s` as NUL-terminated UTF-16, as the `W` functions take it.
fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(iter::once(0)).collect()
}

/// The error of a failed call, with advice for the usual causes. The OS
/// error (and its code) is kept as the source.
fn os_error(action: &'static str, target: &Path, source: io::Error) -> Error {
    let code = source.raw_os_error().map(|c| c as u32);
    let hint = match code {
        Some(ERROR_ACCESS_DENIED) => Some(
            "the mutex exists with a security descriptor that does not let this user wait \
             for it: it was likely created by another user, an elevated process or a service \
             without this crate's descriptor (the Go package uses the default one); it goes \
             away when every process has closed it"
                .to_owned(),
        ),
        Some(ERROR_INVALID_HANDLE) if action == "create or open mutex" => Some(
            "another kind of kernel object (event, semaphore, file mapping, ...) has this name"
                .to_owned(),
        ),
        _ => None,
    };
    Error::Io {
        action,
        path: target.to_owned(),
        source,
        hint,
    }
}

/// The holder query on Windows: the mutex `target` (its object name, in
/// the namespace asked for) is tried without waiting, by an owner thread as
/// in [`acquire`]. Taken: it was free, and is released at once. Busy: held,
/// holder unknown (Windows does not say which process owns a mutex).
pub(crate) fn holder(_name: &str, target: &Path) -> Result<Option<Holder>, Error> {
    match acquire(target, None)? {
        Some(mutex) => {
            mutex.release()?;
            Ok(None)
        }
        None => Ok(Some(Holder::unknown(HeldLock::LockFile))),
    }
}
