//! Fault 2, signals while waiting: a waiting process whose SIGUSR1 handler
//! was installed without SA_RESTART receives signals at a high rate, on every
//! thread, including the one blocked in flock(2). Acquisition still succeeds,
//! never reports EINTR, and the timeout and cancel still hold.
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::unique_name;
use faults::{say, spawn, Child, Opts};
use machine_mutex::{lock_file_path, CancelToken, Spec};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "signal-wait" => signal_wait(name),
            _ => return false,
        }
        true
    });
}

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// Role `signal-wait`: installs a SIGUSR1 handler without SA_RESTART, prints
/// `ready`, acquires (`MM_SIGNAL_MODE`: `acquire` waits forever, `timeout`
/// gives up after `MM_TEST_TIMEOUT_MS`, `cancel` until a `cancel` line on
/// stdin), then prints `result OUTCOME signals N elapsed_ms T`.
fn signal_wait(name: &str) {
    // SAFETY: a zeroed sigaction is valid; the handler only touches an
    // atomic (async-signal-safe); sa_flags 0 means no SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let mode = std::env::var("MM_SIGNAL_MODE").expect("MM_SIGNAL_MODE");
    let mut spec = faults::child_spec(name);
    if mode == "cancel" {
        let token = CancelToken::new();
        spec = spec.with_cancel(token.clone());
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
                if line.trim() == "cancel" {
                    token.cancel();
                    return;
                }
                line.clear();
            }
        });
    }
    say("ready");
    let start = Instant::now();
    let result = spec.acquire();
    let elapsed = start.elapsed().as_millis();
    say(&format!(
        "result {} signals {} elapsed_ms {elapsed}",
        faults::describe(&result),
        SIGNALS.load(Ordering::Relaxed)
    ));
}

/// Sends SIGUSR1 to every thread of a process as fast as it can, until
/// stopped; counts what it sent, and separately what went to the thread
/// blocked in flock (the kernel waiter thread, or for a wait with no timeout
/// and no cancel the caller's own thread, sleeping in flock in its place):
/// the thread whose `/proc/PID/task/TID/syscall` shows flock(2).
struct Storm {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    to_flock_thread: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Storm {
    fn start(pid: u32) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let to_flock_thread = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, sent, to_flock) = (stop.clone(), sent.clone(), to_flock_thread.clone());
            std::thread::spawn(move || {
                let mut tids: Vec<(i64, bool)> = Vec::new();
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    if round % 64 == 0 {
                        tids = threads_of(pid);
                    }
                    round += 1;
                    for &(tid, is_kernel_waiter) in &tids {
                        // SAFETY: tgkill only sends a signal; a thread that
                        // has exited makes it fail with ESRCH.
                        let r = unsafe {
                            libc::syscall(
                                libc::SYS_tgkill,
                                i64::from(pid),
                                tid,
                                i64::from(libc::SIGUSR1),
                            )
                        };
                        if r == 0 {
                            sent.fetch_add(1, Ordering::Relaxed);
                            if is_kernel_waiter {
                                to_flock.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        };
        Storm {
            stop,
            sent,
            to_flock_thread,
            thread: Some(thread),
        }
    }

    /// Waits until at least `n` signals went to the thread blocked in flock.
    fn wait_for_flock_signals(&self, n: usize) {
        faults::wait_until(&format!("{n} signals reached the flock thread"), || {
            self.to_flock_thread.load(Ordering::Relaxed) >= n
        });
    }

    fn stop(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.to_flock_thread.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The thread ids of `pid`, each with whether it is in the flock(2) system
/// call (the first field of its `syscall` file is the system call number).
fn threads_of(pid: u32) -> Vec<(i64, bool)> {
    let dir = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(dir) => dir,
        Err(_) => return Vec::new(),
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: i64 = e.file_name().to_str()?.parse().ok()?;
        let syscall = std::fs::read_to_string(e.path().join("syscall")).unwrap_or_default();
        let in_flock = syscall.split_whitespace().next() == Some(&libc::SYS_flock.to_string());
        Some((tid, in_flock))
    })
    .collect()
}

/// Parses `result OUTCOME signals N elapsed_ms T`.
fn parse_result(line: &str) -> (String, usize, u128) {
    let (outcome, rest) = line.split_once(" signals ").expect("result line");
    let (signals, elapsed) = rest.split_once(" elapsed_ms ").expect("result line");
    (
        outcome.to_owned(),
        signals.parse().unwrap(),
        elapsed.parse().unwrap(),
    )
}

/// Starts a `signal-wait` child in `mode` while the test holds the mutex,
/// waits until its kernel waiter is blocked in flock (seen in /proc/locks),
/// then storms it with signals.
fn blocked_child(name: &str, mode: &str, extra: Opts<'_>) -> (Child, Storm) {
    let mut child = spawn(
        "signal-wait",
        name,
        extra.env("MM_SIGNAL_MODE", mode.to_owned()),
    );
    child.expect_line("ready");
    let ino = faults::inode(&lock_file_path(name));
    let pid = child.pid();
    faults::wait_until("the child is blocked in flock", || {
        faults::has_flock(pid, ino, true)
    });
    let storm = Storm::start(pid);
    (child, storm)
}

/// Waiting forever: 2,000 signals reach the thread blocked in flock (and
/// more reach the others), then the holder releases: the child acquires.
#[test]
fn signals_while_waiting_do_not_break_acquire() {
    let name = unique_name("sig-acquire");
    let held = Spec::new(&name).acquire().unwrap();
    let (mut child, storm) = blocked_child(&name, "acquire", Opts::default());
    storm.wait_for_flock_signals(2000);
    drop(held);
    let line = child.expect_line("result");
    let (sent, to_flock) = storm.stop();
    let (outcome, received, _) = parse_result(&line);
    eprintln!("sent {sent} signals ({to_flock} to the flock thread); handled {received}");
    assert_eq!(outcome, "ok", "{line}");
    assert!(
        received > 0,
        "no signal was handled: the test proves nothing"
    );
    assert!(child.finish().success());
}

/// A timed wait under the storm ends with the timeout, not EINTR, and not
/// before the timeout.
#[test]
fn signals_while_waiting_keep_the_timeout() {
    let name = unique_name("sig-timeout");
    let _held = Spec::new(&name).acquire().unwrap();
    let (mut child, storm) = blocked_child(
        &name,
        "timeout",
        Opts::default().env("MM_TEST_TIMEOUT_MS", "1500"),
    );
    let line = child.expect_line("result");
    let (sent, to_flock) = storm.stop();
    let (outcome, received, elapsed) = parse_result(&line);
    eprintln!(
        "sent {sent} signals ({to_flock} to the flock thread); handled {received}; \
         timed out after {elapsed} ms"
    );
    assert_eq!(outcome, "Timeout", "{line}");
    assert!(elapsed >= 1500, "{line}");
    assert!(to_flock > 0 && received > 0, "no signal landed: {line}");
    assert!(child.finish().success());
}

/// A cancellable wait under the storm ends with Cancelled when cancelled.
#[test]
fn signals_while_waiting_keep_cancel() {
    let name = unique_name("sig-cancel");
    let _held = Spec::new(&name).acquire().unwrap();
    let (mut child, storm) = blocked_child(&name, "cancel", Opts::default());
    storm.wait_for_flock_signals(2000);
    child.send("cancel");
    let line = child.expect_line("result");
    let (sent, to_flock) = storm.stop();
    let (outcome, received, _) = parse_result(&line);
    eprintln!("sent {sent} signals ({to_flock} to the flock thread); handled {received}");
    assert_eq!(outcome, "Cancelled", "{line}");
    assert!(received > 0);
    assert!(child.finish().success());
}

/// Polling the legacy socket under the storm: the test binds the socket name
/// itself, so the child takes the flock and then polls every 100 ms (the
/// default delay); after 2,000 signals the test closes the socket and the
/// child gets the mutex.
#[test]
fn signals_while_polling_the_legacy_socket() {
    let name = unique_name("sig-socket");
    let addr = SocketAddr::from_abstract_name(
        machine_mutex::legacy_socket_name(&name)
            .strip_prefix('@')
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let squat = UnixListener::bind_addr(&addr).unwrap();
    let mut child = spawn(
        "signal-wait",
        &name,
        Opts::default().env("MM_SIGNAL_MODE", "acquire"),
    );
    child.expect_line("ready");
    let ino = {
        let path = lock_file_path(&name);
        faults::wait_until("the child created the lock file", || path.exists());
        faults::inode(&path)
    };
    let pid = child.pid();
    faults::wait_until("the child holds the flock", || {
        faults::has_flock(pid, ino, false)
    });
    let storm = Storm::start(pid);
    faults::wait_until("2000 signals sent", || {
        storm.sent.load(Ordering::Relaxed) >= 2000
    });
    drop(squat);
    let line = child.expect_line("result");
    let (sent, _) = storm.stop();
    let (outcome, received, _) = parse_result(&line);
    eprintln!("sent {sent} signals; handled {received}");
    assert_eq!(outcome, "ok", "{line}");
    assert!(received > 0);
    assert!(child.finish().success());
    // Nothing is left held.
    drop(
        Spec::new(&name)
            .with_timeout(Duration::from_secs(60))
            .acquire()
            .unwrap(),
    );
}
