//! Fault 9, fork without exec. flock(2) locks belong to the open file
//! description, which a child forked without exec shares. The documented
//! rule (see `Releaser`): the acquiring process owns the mutex. Its release
//! frees the mutex even while forked children live; the guard's copy in a
//! child never releases the parent's hold; a parent that exits without
//! releasing leaves the flock to its children. The legacy socket is not
//! shared: the fork handler replaces a child's copy with /dev/null.
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use common::unique_name;
use faults::{say, spawn, Child, Opts, LIMIT};
use machine_mutex::{lock_file_path, Error, Releaser, Spec};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "fork-holder" => fork_holder(name),
            "fork-relock" => fork_relock(name),
            "fork-while-waiting" => fork_while_waiting(name),
            "fork-loop" => fork_loop(name),
            "fork-async" => fork_async(name),
            "fork-timer-loop" => fork_timer_loop(name),
            "fork-stale-socket" => fork_stale_socket(name),
            _ => return false,
        }
        true
    });
}

/// Role `fork-holder`: acquires, forks a child that never execs
/// (`MM_FORK_MODE=drop`: the child first drops its copy of the guard), and
/// prints `forked CHILD_PID` once the child is set. Then obeys stdin lines:
/// `release` releases the guard (prints `released`), `exit` exits at once
/// without releasing.
fn fork_holder(name: &str) {
    let mode = std::env::var("MM_FORK_MODE").unwrap_or_default();
    // `rawclone`: the child is made by the clone(2) system call, which runs
    // no fork handlers (as posix_spawn and vfork do not), so this process
    // never learns that it forked; the descriptor is not kept either, so
    // the release takes the close path.
    let raw_clone = mode.starts_with("rawclone");
    let spec = faults::child_spec(name).with_kept_descriptor(!raw_clone);
    let mut guard: Option<Releaser> = Some(spec.acquire().expect("acquire"));
    let drop_in_child = mode == "drop" || mode == "rawclone-drop";
    // In the child, dropping the guard only makes getpid and close calls.
    let pid = faults::fork_paused_child(raw_clone, || {
        if drop_in_child {
            drop(guard.take());
        }
    });
    say(&format!("forked {pid}"));
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().trim() {
            "release" => {
                guard.take().unwrap().release().unwrap();
                say("released");
            }
            "exit" => std::process::exit(0),
            other => panic!("unknown command {other}"),
        }
    }
}

/// The `/proc/PID/fd` link of the socket bound to the legacy name of
/// `name` (from `/proc/net/unix`), if one is bound.
fn legacy_socket_link(name: &str) -> Option<String> {
    let wanted = format!("@/var/lib/juju/mutex-/{name}");
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() == 8 && fields[7] == wanted).then(|| format!("socket:[{}]", fields[6]))
    })
}

/// The descriptor of process `pid` ("self" for this one) whose link is
/// `target`, if it has one.
fn fd_linking(pid: &str, target: &str) -> Option<i32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| std::fs::read_link(e.path()).map_or(false, |l| l.as_os_str() == target))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
}

/// The descriptor number of this process's legacy socket of `name`.
fn own_socket_fd(name: &str) -> i32 {
    let target = legacy_socket_link(name).expect("the socket is bound");
    fd_linking("self", &target).expect("this process has the socket open")
}

/// Role `fork-stale-socket`: a second thread acquires NAME (legacy socket
/// on) and holds it; the main thread forks a child, which puts a pipe at
/// the number of its (replaced) copy of the socket, as a daemon closing and
/// reopening descriptors would, then forks a grandchild that checks what
/// that number is. Prints `grandchild-fd pipe` or `grandchild-fd other`.
fn fork_stale_socket(name: &str) {
    let (held, holding) = std::sync::mpsc::channel();
    let spec = faults::child_spec(name);
    std::thread::spawn(move || {
        let guard = spec.acquire().expect("acquire");
        held.send(()).unwrap();
        std::thread::park();
        drop(guard);
    });
    holding.recv().unwrap();
    let fd = own_socket_fd(name);
    // Built before the fork: the children only make async-signal-safe calls.
    let link = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap();
    let mut report = [0 as libc::c_int; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(report.as_mut_ptr()) }, 0);
    // SAFETY: the child and grandchild make only async-signal-safe calls
    // (pipe, dup2, fork, readlink, waitpid, write, _exit).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            let mut p = [0 as libc::c_int; 2];
            libc::pipe(p.as_mut_ptr());
            libc::dup2(p[0], fd);
            let grandchild = libc::fork();
            if grandchild == 0 {
                let mut buf = [0u8; 64];
                let n = libc::readlink(link.as_ptr(), buf.as_mut_ptr().cast(), buf.len());
                let is_pipe = n > 5 && &buf[..5] == b"pipe:";
                libc::_exit(if is_pipe { 0 } else { 1 });
            }
            let mut status = 0;
            libc::waitpid(grandchild, &mut status, 0);
            let code = [libc::WEXITSTATUS(status) as u8];
            libc::write(report[1], code.as_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    assert!(pid > 0, "fork failed");
    let mut code = [9u8];
    // SAFETY: reads one byte into a live buffer; reaps the child.
    unsafe {
        libc::close(report[1]);
        assert_eq!(libc::read(report[0], code.as_mut_ptr().cast(), 1), 1);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    say(&format!(
        "grandchild-fd {}",
        if code[0] == 0 { "pipe" } else { "other" }
    ));
}

/// Role `fork-relock`: acquires NAME (flock only, descriptor kept), forks an
/// idle child while holding, releases, acquires again, prints `forked PID`
/// and `holding`, and waits to be killed (it never releases).
fn fork_relock(name: &str) {
    let spec = Spec::new(name).with_legacy_socket(false);
    let guard = spec.acquire().expect("acquire");
    let pid = faults::fork_paused_child(false, || {});
    drop(guard);
    let again = spec.acquire().expect("acquire again");
    say(&format!("forked {pid}"));
    say("holding");
    let _ = std::io::stdin().read_line(&mut String::new());
    drop(again);
}

/// Role `fork-while-waiting`: holds NAME (flock only, nothing kept) while a
/// second thread acquires it (`MM_TEST_TIMEOUT_MS` set: a timed wait, served
/// by the kernel waiter thread; else a wait in place); once that wait is
/// blocked in flock (`/proc/locks`), forks an idle child, prints
/// `forked PID`, releases; once the thread has the mutex, prints `holding`
/// and waits to be killed (the thread never releases).
fn fork_while_waiting(name: &str) {
    let spec = faults::child_spec(name).with_kept_descriptor(false);
    let held = spec.acquire().expect("acquire");
    let ino = faults::inode(&lock_file_path(name));
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = spec.clone();
    std::thread::spawn(move || {
        let guard = waiter.acquire().expect("the waiting thread acquires");
        tx.send(()).unwrap();
        std::mem::forget(guard);
    });
    faults::wait_until("the thread is blocked in flock", || {
        faults::has_flock(std::process::id(), ino, true)
    });
    let pid = faults::fork_paused_child(false, || {});
    say(&format!("forked {pid}"));
    drop(held);
    rx.recv().unwrap();
    say("holding");
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// Role `fork-loop`: a thread acquires and releases NAME in a loop (the
/// descriptor kept) while the main thread forks 300 children one after the
/// other; each child tries NAME-child once and exits. A child that has not
/// exited within 10 s is hung (it inherited a lock of the library held by
/// a thread it does not have): killed and counted. Prints `forks N hung H`.
fn fork_loop(name: &str) {
    let looping = Spec::new(name).with_legacy_socket(false);
    std::thread::spawn(move || loop {
        drop(looping.acquire().expect("acquire"));
    });
    let other = Spec::new(format!("{name}-child")).with_legacy_socket(false);
    fork_300_children(|| if other.try_acquire().is_ok() { 0 } else { 3 });
}

/// Forks 300 children one after the other; each runs `child` and exits
/// with its status. A child not done within 10 s is hung: killed and
/// counted. Prints `forks N hung H`.
fn fork_300_children(child: impl Fn() -> libc::c_int) {
    let (mut forks, mut hung) = (0, 0);
    for _ in 0..300 {
        // SAFETY: the child runs `child` and exits (what a program that
        // forks a worker does); the parent only waits for it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = child();
            // SAFETY: ends the child at once, without running the parent's
            // exit handlers.
            unsafe { libc::_exit(code) };
        }
        assert!(pid > 0, "fork failed");
        forks += 1;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        // SAFETY: waits for (or kills) the child just forked.
        unsafe {
            while libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 {
                if std::time::Instant::now() > deadline {
                    hung += 1;
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                    break;
                }
                // Polls the child's state; not a synchronisation delay.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    say(&format!("forks {forks} hung {hung}"));
}

/// Polls `future` (with a waker that does nothing) every millisecond until
/// it is ready or `limit` has passed.
fn poll_until<F: std::future::Future + Unpin>(
    future: &mut F,
    limit: Duration,
) -> Option<F::Output> {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let std::task::Poll::Ready(out) = std::pin::Pin::new(&mut *future).poll(&mut cx) {
            return Some(out);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        // Polls; not a synchronisation delay.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Role `fork-async`: an async acquisition of NAME (held by the test, flock
/// only) is polled once (queued; the kernel waiter blocks in flock), then
/// the process forks a child that keeps polling its copy of the future.
/// Prints `forked PID`; each side prints `parent acquired` / `child
/// acquired` (or `child gave up`, after 30 s) once its future is ready, and
/// releases at once. The parent then prints `child exited CODE`.
fn fork_async(name: &str) {
    let spec = Spec::new(name).with_legacy_socket(false);
    let mut future = spec.acquire_async();
    assert!(
        poll_until(&mut future, Duration::ZERO).is_none(),
        "held by the test"
    );
    let ino = faults::inode(&lock_file_path(name));
    faults::wait_until("the kernel waiter blocks in flock", || {
        faults::has_flock(std::process::id(), ino, true)
    });
    // SAFETY: the child polls the future and exits with _exit (what a
    // program that forks a worker with work in progress does).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match poll_until(&mut future, Duration::from_secs(30)) {
            Some(Ok(guard)) => {
                say("child acquired");
                drop(guard);
                0
            }
            _ => {
                say("child gave up");
                1
            }
        };
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    assert!(pid > 0, "fork failed");
    say(&format!("forked {pid}"));
    let guard = poll_until(&mut future, LIMIT)
        .expect("ready")
        .expect("acquired");
    say("parent acquired");
    drop(guard);
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    say(&format!("child exited {}", libc::WEXITSTATUS(status)));
}

/// Role `fork-timer-loop`: holds NAME; a thread keeps starting async
/// acquisitions of it with a one-hour timeout, polling each once (which
/// sets a timer) and dropping it (which clears it), while one such wait
/// stays pending (so no thread starts or ends); meanwhile the main
/// thread forks 300 children one after the other, each waiting 10 ms for
/// NAME asynchronously (its own timer thread ends the wait: `Timeout`).
/// A child not done within 10 s is hung: killed and counted. Prints
/// `forks N hung H`.
fn fork_timer_loop(name: &str) {
    let spec = Spec::new(name).with_legacy_socket(false);
    let _held = spec.acquire().expect("acquire");
    let looping = spec.clone().with_timeout(Duration::from_secs(3600));
    // One wait kept pending keeps the timer thread alive, so the loop below
    // only changes timers (under the timers' lock) and starts no threads:
    // std itself is not fork-safe while threads start (a child's new
    // threads can block on a lock of std's that a starting thread held).
    let mut keeper = looping.acquire_async();
    assert!(poll_until(&mut keeper, Duration::ZERO).is_none());
    std::thread::spawn(move || loop {
        let mut future = looping.acquire_async();
        let _ = poll_until(&mut future, Duration::ZERO);
    });
    let short = spec.with_timeout(Duration::from_millis(10));
    fork_300_children(|| {
        let outcome = futures::executor::block_on(short.acquire_async());
        if matches!(outcome, Err(Error::Timeout)) {
            0
        } else {
            3
        }
    });
}

/// The forked child of a `fork-holder`, killed when dropped.
struct Forked(i32);

impl Forked {
    fn start(name: &str, mode: &str, legacy: bool) -> (Child, Forked) {
        let mut holder = spawn(
            "fork-holder",
            name,
            Opts::default()
                .env("MM_FORK_MODE", mode.to_owned())
                .env("MM_TEST_LEGACY", if legacy { "1" } else { "0" }),
        );
        let pid = holder.expect_line("forked").parse().unwrap();
        (holder, Forked(pid))
    }

    /// Whether the child has a descriptor open on `path`.
    fn has_open(&self, path: &Path) -> bool {
        std::fs::read_dir(format!("/proc/{}/fd", self.0))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|target| target == path)
    }

    /// Whether the child has the legacy socket of `name` open (its
    /// `/proc/PID/fd` links to the inode `/proc/net/unix` lists for it).
    fn has_socket_bound(&self, name: &str) -> bool {
        legacy_socket_link(name).map_or(false, |target| {
            fd_linking(&self.0.to_string(), &target).is_some()
        })
    }

    fn alive(&self) -> bool {
        faults::runs_user_code(self.0 as u32)
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        // SAFETY: sends a signal to the grandchild this test started.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

fn try_flock(name: &str) -> Result<Releaser, Error> {
    Spec::new(name).with_legacy_socket(false).try_acquire()
}

/// The check of the release tests: a `fork-holder` in `mode` holds, its
/// child (alive, its copy of the descriptor open) shares the lock file;
/// the holder releases: the mutex is free at once.
fn release_frees_while_child_lives(tag: &str, mode: &str) {
    let name = unique_name(tag);
    let (mut holder, forked) = Forked::start(&name, mode, false);
    assert!(
        forked.has_open(&lock_file_path(&name)),
        "the child shares it"
    );
    assert!(matches!(try_flock(&name), Err(Error::WouldBlock)));
    holder.send("release");
    holder.expect_line("released");
    assert!(forked.alive() && forked.has_open(&lock_file_path(&name)));
    drop(try_flock(&name).expect("free although the child keeps its copy"));
    drop(forked);
    assert!(holder.finish().success());
}

/// The check of the child-drop tests: a `fork-holder` in `mode` holds, its
/// child drops its copy of the guard (closing its descriptor); the parent
/// still holds the mutex until it releases.
fn child_drop_keeps_the_parents_hold(tag: &str, mode: &str) {
    let name = unique_name(tag);
    let (mut holder, forked) = Forked::start(&name, mode, false);
    assert!(
        !forked.has_open(&lock_file_path(&name)),
        "the child closed its copy"
    );
    assert!(
        matches!(try_flock(&name), Err(Error::WouldBlock)),
        "still held by the parent"
    );
    holder.send("release");
    holder.expect_line("released");
    drop(try_flock(&name).expect("free after the parent's release"));
    drop(forked);
    assert!(holder.finish().success());
}

/// The holder releases while its forked child lives with a copy of the
/// descriptor: the mutex is free at once (the release unlocks explicitly).
#[test]
fn release_frees_the_mutex_while_a_forked_child_lives() {
    release_frees_while_child_lives("fork-release", "idle");
}

/// As above, with a child made by the raw clone(2) system call, which runs
/// no fork handlers (like posix_spawn and vfork, which std::process uses):
/// the holder does not know that it forked, and its descriptor is not kept.
/// The release still unlocks explicitly before it closes, so the mutex is
/// free at once, not only once the child's copy is closed.
#[test]
fn release_frees_the_mutex_while_a_raw_clone_child_lives() {
    release_frees_while_child_lives("fork-rawclone", "rawclone");
}

/// A child made by a raw clone(2) (no fork handler ran) drops its copy of
/// the guard: it only closes its descriptor (its process id is not the
/// acquirer's), and the parent still holds the mutex until it releases.
#[test]
fn a_raw_clone_childs_guard_never_releases_the_parent() {
    child_drop_keeps_the_parents_hold("fork-rawclone-drop", "rawclone-drop");
}

/// A process forks while it holds, releases (the descriptor is kept for
/// the next acquisition), acquires again and dies without releasing: the
/// mutex is free although the forked child lives. The descriptor the child
/// shares is not kept at the release (a fork happened since it was opened),
/// so the second acquisition opened the file anew.
#[test]
fn a_lock_taken_after_a_fork_dies_with_its_holder() {
    let name = unique_name("fork-relock");
    let mut holder = spawn("fork-relock", &name, Opts::default());
    let forked = Forked(holder.expect_line("forked").parse().unwrap());
    holder.expect_line("holding");
    assert!(matches!(try_flock(&name), Err(Error::WouldBlock)));
    holder.kill();
    assert!(forked.alive());
    drop(try_flock(&name).expect("free once its holder died, the forked child alive"));
}

/// A thread waits for the mutex (in place: no timeout) while another
/// thread of its process forks; it gets the mutex after the fork and the
/// process dies without releasing: the mutex is free although the child
/// lives. (The waiting descriptor, which the child shares, is released and
/// the file opened anew once the wait ends.)
#[test]
fn a_lock_granted_after_a_fork_dies_with_its_holder() {
    for timed in [false, true] {
        let name = unique_name("fork-waiting");
        let opts = if timed {
            Opts::default().env("MM_TEST_TIMEOUT_MS", "3600000")
        } else {
            Opts::default()
        };
        let mut holder = spawn("fork-while-waiting", &name, opts.env("MM_TEST_LEGACY", "0"));
        let forked = Forked(holder.expect_line("forked").parse().unwrap());
        holder.expect_line("holding");
        assert!(matches!(try_flock(&name), Err(Error::WouldBlock)));
        holder.kill();
        assert!(forked.alive());
        drop(
            try_flock(&name)
                .unwrap_or_else(|e| panic!("timed {timed}: free once its holder died: {e}")),
        );
    }
}

/// 300 forks while another thread acquires and releases in a loop: every
/// child can use the library (none inherits one of its locks held by a
/// thread that does not exist in the child).
#[test]
fn children_forked_while_another_thread_locks_never_hang() {
    let name = unique_name("fork-loop");
    let mut looper = spawn("fork-loop", &name, Opts::default());
    assert_eq!(looper.expect_line("forks"), "300 hung 0");
}

/// An async acquisition is waiting (queued, its kernel waiter in flock)
/// when the process forks, and the child keeps polling its copy of the
/// future: once the test releases, both the parent and the child acquire
/// (one after the other), none waits forever for a kernel waiter that only
/// the parent has.
#[test]
fn an_async_wait_copied_into_a_forked_child_is_served() {
    let name = unique_name("fork-async");
    let held = try_flock(&name).unwrap();
    let mut holder = spawn("fork-async", &name, Opts::default());
    let _forked = Forked(holder.expect_line("forked").parse().unwrap());
    drop(held);
    let code = holder.expect_line("child exited");
    let lines = holder.lines_so_far("");
    assert!(lines.iter().any(|l| l == "parent acquired"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "child acquired"), "{lines:?}");
    assert_eq!(code, "0");
    assert!(holder.finish().success());
}

/// 300 forks while another thread keeps setting and clearing async timers:
/// every child's own timed async wait ends with its timeout (none inherits
/// the timers' lock held by a thread that does not exist in the child).
#[test]
fn children_forked_while_timers_change_never_hang() {
    let name = unique_name("fork-timers");
    let mut looper = spawn("fork-timer-loop", &name, Opts::default());
    assert_eq!(looper.expect_line("forks"), "300 hung 0");
}

/// The forked child drops its copy of the guard: that closes its descriptor
/// only, and the parent still holds the mutex until it releases.
#[test]
fn a_forked_childs_guard_never_releases_the_parent() {
    child_drop_keeps_the_parents_hold("fork-drop", "drop");
}

/// The parent exits without releasing: the forked child's copy keeps the
/// mutex held (this is how a parent hands it to a child) until the child
/// ends.
#[test]
fn a_parent_that_exits_leaves_the_mutex_to_its_child() {
    let name = unique_name("fork-exit");
    let (mut holder, forked) = Forked::start(&name, "idle", false);
    holder.send("exit");
    assert!(holder.finish().success());
    assert!(forked.alive());
    assert!(
        matches!(try_flock(&name), Err(Error::WouldBlock)),
        "the child keeps it"
    );
    drop(forked);
    drop(
        Spec::new(&name)
            .with_legacy_socket(false)
            .with_timeout(LIMIT)
            .acquire()
            .expect("free once the child is gone"),
    );
}

/// A forked child whose copy of a socket (held by another thread of its
/// parent, whose guard never drops in the child) was replaced, and which
/// then reuses that descriptor number, keeps it when it forks in turn: its
/// list of sockets starts empty (a stale entry made the grandchild's fork
/// handler put /dev/null there; found by a review helper).
#[test]
fn a_forked_childs_reused_descriptor_survives_its_own_fork() {
    let name = unique_name("fork-stale");
    let mut child = spawn("fork-stale-socket", &name, Opts::default());
    assert_eq!(child.expect_line("grandchild-fd"), "pipe");
    assert!(child.finish().success());
}

/// With the legacy socket (Linux default): the release frees the flock and
/// the socket name at once, while the forked child lives: the fork handler
/// put /dev/null in place of the child's copy of the socket (a socket is
/// one object for all copies: the child's copy kept the name bound until
/// the child ended).
#[test]
fn legacy_socket_is_free_after_the_release_while_a_forked_child_lives() {
    let name = unique_name("fork-legacy");
    let (mut holder, forked) = Forked::start(&name, "idle", true);
    assert!(forked.alive());
    assert!(
        !forked.has_socket_bound(&name),
        "the child's copy of the socket was replaced"
    );
    assert!(
        matches!(Spec::new(&name).try_acquire(), Err(Error::WouldBlock)),
        "still held by the parent"
    );
    holder.send("release");
    holder.expect_line("released");
    assert!(forked.alive());
    drop(
        Spec::new(&name)
            .try_acquire()
            .expect("the flock and the socket are free while the child lives"),
    );
    drop(forked);
    assert!(holder.finish().success());
}
