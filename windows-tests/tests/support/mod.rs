//! Machinery of the Windows suite: unique names, child processes that run
//! this same test binary in a role (as `tests/common` does for Unix), and
//! raw Win32 calls that play the Go package's part or inspect what the
//! library created.
//!
//! Children report with one keyword line per event on stdout; parents wait
//! for those lines (pipes), never sleep.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::iter;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use machine_mutex::{Namespace, Spec};
use windows_sys::Win32::Foundation::{
    CloseHandle, LocalFree, HANDLE, INVALID_HANDLE_VALUE, WAIT_ABANDONED_0, WAIT_FAILED,
    WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1,
    SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
};
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::Threading::{
    CreateEventW, CreateMutexW, GetCurrentProcessId, GetCurrentThreadId, OpenMutexW, OpenThread,
    ReleaseMutex, WaitForMultipleObjects, WaitForSingleObject, INFINITE,
    SYNCHRONIZATION_SYNCHRONIZE,
};

/// How long a test waits for something that should happen at once, before
/// it declares a hang. A guard, never a delay.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A name no other test (or test run) uses: `w-TAG-PID-N`, at most 40 bytes.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut tag = tag.to_owned();
    tag.truncate(20);
    format!("w-{tag}-{}-{n}", std::process::id())
}

/// A fresh path in the temp directory for an events or counter file.
pub fn temp_file(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("machine-mutex-{}", unique_name(tag)));
    let _ = fs::remove_file(&path);
    path
}

/// A thread running one acquisition, whose result the test awaits.
pub struct Waiter<T> {
    result: mpsc::Receiver<T>,
    thread: JoinHandle<()>,
}

/// Runs `acquire` on a new thread.
pub fn spawn_waiter<T: Send + 'static>(acquire: impl FnOnce() -> T + Send + 'static) -> Waiter<T> {
    let (tx, result) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = tx.send(acquire());
    });
    Waiter { result, thread }
}

impl<T> Waiter<T> {
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// The result, waiting at most [`LIMIT`]: a waiter that is never served
    /// fails the test instead of hanging it.
    pub fn result(self) -> T {
        match self.result.recv_timeout(LIMIT) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the waiter was not served in {LIMIT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the waiter thread panicked"),
        }
    }
}

// ---------------------------------------------------------------------------
// Child processes

/// A running child, its stdin kept open until [`ChildProc::release`].
pub struct ChildProc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// Starts this test binary again as a child in `role` for mutex `name`.
pub fn spawn_child(role: &str, name: &str, env: &[(&str, String)]) -> ChildProc {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("MMW_ROLE", role)
    .env("MMW_NAME", name)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child test process");
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    ChildProc {
        child,
        stdin,
        stdout,
    }
}

impl ChildProc {
    /// Reads the child's stdout until a line starting with `keyword`;
    /// returns the rest of that line. Panics if the child ends first.
    pub fn expect_line(&mut self, keyword: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child ended before printing {keyword:?}");
            if let Some(rest) = line.trim_end().strip_prefix(keyword) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Closes the child's stdin: a holder releases and exits.
    pub fn release(&mut self) {
        self.stdin.take();
    }

    /// Waits for the child to end; returns whether it succeeded.
    pub fn finish(mut self) -> bool {
        self.stdin.take();
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        self.child.wait().expect("wait for child").success()
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends one line to an events file (append mode: whole lines).
pub fn append_event(path: &Path, event: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open events file");
    file.write_all(format!("{event}\n").as_bytes())
        .expect("write event");
}

/// The lines of an events file.
pub fn events(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One critical section of the stress roles: an "inside" marker created
/// exclusively detects overlap; the counter is read, bumped and written back.
pub fn stress_step(counter: &Path) {
    let marker = counter.with_extension("inside");
    if OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_err()
    {
        append_event(&counter.with_extension("overlaps"), "overlap");
    }
    let value: u64 = fs::read_to_string(counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    fs::write(counter, format!("{}\n", value + 1)).expect("write counter");
    fs::remove_file(&marker).expect("remove inside marker");
}

/// The spec a child uses: its name, plus MMW_NAMESPACE=global and
/// MMW_TIMEOUT_MS when set.
pub fn child_spec() -> Spec {
    let name = std::env::var("MMW_NAME").expect("MMW_NAME");
    let mut spec = Spec::new(name);
    if std::env::var("MMW_NAMESPACE").as_deref() == Ok("global") {
        spec = spec.with_namespace(Namespace::Global);
    }
    if let Ok(ms) = std::env::var("MMW_TIMEOUT_MS") {
        spec = spec.with_timeout(Duration::from_millis(ms.parse().expect("MMW_TIMEOUT_MS")));
    }
    spec
}

/// Prints one keyword line for the parent. The leading newline separates it
/// from libtest's "test ... " prefix.
pub fn say(line: &str) {
    let out = std::io::stdout();
    let mut out = out.lock();
    writeln!(out, "\n{line}").unwrap();
    out.flush().unwrap();
}

/// Blocks until the parent closes our stdin.
pub fn wait_for_parent() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

// ---------------------------------------------------------------------------
// Raw Win32: what the Go package does, and inspection

/// `s` as NUL-terminated UTF-16.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(iter::once(0)).collect()
}

/// An owned raw handle, closed on drop.
pub struct Handle(pub HANDLE);

// SAFETY: kernel handles may be used and closed from any thread.
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: an open handle owned by this value, closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The right to read an object's security descriptor.
pub const READ_CONTROL: u32 = 0x0002_0000;

/// Opens the existing mutex `object` for waiting, or `None` if it does not exist.
pub fn open_mutex(object: &str) -> Option<Handle> {
    open_mutex_for(object, 0)
}

/// Opens the existing mutex `object` for waiting and `access`.
pub fn open_mutex_for(object: &str, access: u32) -> Option<Handle> {
    let name = wide(object);
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let handle = unsafe { OpenMutexW(SYNCHRONIZATION_SYNCHRONIZE | access, 0, name.as_ptr()) };
    if handle.is_null() {
        None
    } else {
        Some(Handle(handle))
    }
}

/// What a raw zero-timeout wait on a mutex says.
#[derive(Debug, PartialEq, Eq)]
pub enum RawWait {
    Acquired,
    Abandoned,
    Busy,
}

/// Waits for `mutex` (raw handle) at most `ms` milliseconds.
pub fn raw_wait(mutex: &Handle, ms: u32) -> RawWait {
    // SAFETY: an open handle.
    match unsafe { WaitForSingleObject(mutex.0, ms) } {
        WAIT_OBJECT_0 => RawWait::Acquired,
        WAIT_ABANDONED_0 => RawWait::Abandoned,
        WAIT_TIMEOUT => RawWait::Busy,
        other => panic!(
            "wait failed: {other:#x} {}",
            std::io::Error::last_os_error()
        ),
    }
}

/// Releases a mutex the calling thread owns.
pub fn raw_release(mutex: &Handle) {
    // SAFETY: an open handle; the caller's thread owns the mutex.
    let ok = unsafe { ReleaseMutex(mutex.0) };
    assert!(ok != 0, "ReleaseMutex: {}", std::io::Error::last_os_error());
}

/// How a [`RawHolder`] ends.
pub enum RawEnd {
    /// ReleaseMutex, then close.
    Release,
    /// The thread exits holding it: the mutex is abandoned.
    Abandon,
}

/// A thread holding the mutex `object` exactly as the Go package does:
/// `CreateMutexW(NULL, FALSE, name)` and a wait, on a thread of its own.
pub struct RawHolder {
    stop: mpsc::Sender<RawEnd>,
    thread: JoinHandle<()>,
}

impl RawHolder {
    /// Returns once the thread holds the mutex.
    pub fn hold(object: &str) -> RawHolder {
        let name = wide(object);
        let (held_tx, held_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            // SAFETY: `name` is NUL-terminated; default security, not owned.
            let handle = unsafe { CreateMutexW(ptr::null(), 0, name.as_ptr()) };
            assert!(
                !handle.is_null(),
                "CreateMutexW: {}",
                std::io::Error::last_os_error()
            );
            let mutex = Handle(handle);
            let got = raw_wait(&mutex, INFINITE);
            assert!(matches!(got, RawWait::Acquired | RawWait::Abandoned));
            held_tx.send(()).unwrap();
            match stop_rx.recv() {
                Ok(RawEnd::Release) | Err(_) => raw_release(&mutex),
                // Leaves without ReleaseMutex: closing the handle does not
                // release it, the thread's exit abandons it.
                Ok(RawEnd::Abandon) => {}
            }
        });
        held_rx.recv().expect("raw holder got the mutex");
        RawHolder { stop, thread }
    }

    /// Ends the holder as told and waits for its thread to exit.
    pub fn end(self, how: RawEnd) {
        self.stop.send(how).unwrap();
        self.thread.join().unwrap();
    }
}

/// Creates an event (not a mutex) named `object`, to squat the name.
pub fn create_event(object: &str) -> Handle {
    let name = wide(object);
    // SAFETY: `name` is NUL-terminated; default security.
    let handle = unsafe { CreateEventW(ptr::null(), 1, 0, name.as_ptr()) };
    assert!(!handle.is_null(), "CreateEventW");
    Handle(handle)
}

/// Creates a mutex named `object` with the security descriptor `sddl`
/// (for example `D:`, an empty DACL that grants nobody anything).
pub fn create_mutex_with_sddl(object: &str, sddl: &str) -> Handle {
    let sddl = wide(sddl);
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; the descriptor is freed below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            ptr::null_mut(),
        )
    };
    assert!(ok != 0, "bad SDDL");
    let attributes = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: descriptor,
        bInheritHandle: 0,
    };
    let name = wide(object);
    // SAFETY: valid attributes and NUL-terminated name for the call's duration.
    let handle = unsafe { CreateMutexW(&attributes, 0, name.as_ptr()) };
    // SAFETY: allocated by the SDDL conversion above, freed once.
    unsafe { LocalFree(descriptor) };
    assert!(
        !handle.is_null(),
        "CreateMutexW: {}",
        std::io::Error::last_os_error()
    );
    Handle(handle)
}

/// The DACL of the kernel object behind `handle`, as SDDL.
pub fn dacl_sddl(handle: &Handle) -> String {
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: an open handle; only the descriptor output is requested (the
    // other outputs are optional and null); freed with LocalFree below.
    let rc = unsafe {
        GetSecurityInfo(
            handle.0,
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut descriptor,
        )
    };
    assert_eq!(rc, 0, "GetSecurityInfo: error {rc}");
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: a valid descriptor; the string is LocalAlloc'ed and freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            ptr::null_mut(),
        )
    };
    assert!(ok != 0, "descriptor to SDDL");
    // SAFETY: `text` is a NUL-terminated UTF-16 string from the call above.
    let sddl = unsafe { from_wide_nul(text) };
    // SAFETY: both were LocalAlloc'ed by the calls above; freed once.
    unsafe {
        LocalFree(text.cast());
        LocalFree(descriptor);
    }
    sddl
}

/// Reads a NUL-terminated UTF-16 string.
///
/// # Safety
/// `p` must point to a NUL-terminated UTF-16 string.
unsafe fn from_wide_nul(p: *const u16) -> String {
    let mut len = 0;
    while *p.add(len) != 0 {
        len += 1;
    }
    String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
}

/// The remote-desktop session of this process (0 is the services' session).
pub fn session_id() -> u32 {
    let mut session = 0;
    // SAFETY: the current process id and a valid output pointer.
    let ok = unsafe { ProcessIdToSessionId(GetCurrentProcessId(), &mut session) };
    assert!(ok != 0, "ProcessIdToSessionId");
    session
}

/// The ids of the threads of this process.
pub fn thread_ids() -> Vec<u32> {
    // SAFETY: a snapshot of all threads; closed by `Handle`.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
    assert!(snapshot != INVALID_HANDLE_VALUE, "thread snapshot");
    let snapshot = Handle(snapshot);
    // SAFETY: a plain C struct; all zeroes is a valid value.
    let mut entry: THREADENTRY32 = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    // SAFETY: no arguments.
    let pid = unsafe { GetCurrentProcessId() };
    let mut ids = Vec::new();
    // SAFETY: an open snapshot and an entry with dwSize set.
    let mut more = unsafe { Thread32First(snapshot.0, &mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            ids.push(entry.th32ThreadID);
        }
        // SAFETY: as for Thread32First.
        more = unsafe { Thread32Next(snapshot.0, &mut entry) } != 0;
    }
    ids
}

/// The id of the calling thread.
pub fn current_thread_id() -> u32 {
    // SAFETY: no arguments.
    unsafe { GetCurrentThreadId() }
}

/// Handles (SYNCHRONIZE) to the threads `ids` that still exist.
pub fn open_threads(ids: &[u32]) -> Vec<Handle> {
    ids.iter()
        .filter_map(|&id| {
            // SAFETY: a thread id; a null result (thread gone) is skipped.
            let thread = unsafe { OpenThread(SYNCHRONIZATION_SYNCHRONIZE, 0, id) };
            if thread.is_null() {
                None
            } else {
                Some(Handle(thread))
            }
        })
        .collect()
}

/// Waits until every thread in `threads` has ended, at most `limit`.
/// Returns whether they all did.
pub fn wait_all_ended(threads: &[Handle], limit: Duration) -> bool {
    if threads.is_empty() {
        return true;
    }
    let raw: Vec<HANDLE> = threads.iter().map(|t| t.0).collect();
    let ms = u32::try_from(limit.as_millis()).unwrap_or(INFINITE - 1);
    // SAFETY: open handles (fewer than 64), kept open by `threads`; wait for all.
    let result = unsafe { WaitForMultipleObjects(raw.len() as u32, raw.as_ptr(), 1, ms) };
    assert!(result != WAIT_FAILED, "{}", std::io::Error::last_os_error());
    result < WAIT_OBJECT_0 + raw.len() as u32
}
