//! Fault 3, descriptor exhaustion and leaks: with RLIMIT_NOFILE used up,
//! acquisition fails at once with an error that says so, leaks nothing, and
//! works again once descriptors are free; 10,000 timed-out and cancelled
//! acquisitions of a held name leave the descriptor and thread counts where
//! they were. Each check runs in a child process of its own, so the counts
//! see no other test's threads or files.
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::fs::File;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::unique_name;
use faults::{describe, fds_and_threads, say, spawn, Opts};
use machine_mutex::{lock_file_path, CancelToken, Clock, Error, Spec, Wakeup};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "fd-exhaust" => fd_exhaust(name),
            "abandon-10k" => abandon_10k(name),
            _ => return false,
        }
        true
    });
}

/// Lowers the soft RLIMIT_NOFILE to a few slots above the highest open
/// descriptor and fills every free slot below it with /dev/null. Returns the
/// fillers and the old soft limit. The headroom makes sure that freeing the
/// fillers gives back at least the two descriptors one acquisition needs
/// (lock file and legacy socket) whatever descriptors the process inherited.
fn exhaust_descriptors() -> (Vec<File>, libc::rlim_t) {
    let highest: libc::rlim_t = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .max()
        .unwrap();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write or read the struct passed; nothing else.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = highest + 1 + 3;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        let mut fillers = Vec::new();
        loop {
            match File::open("/dev/null") {
                Ok(f) => fillers.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                    break;
                }
            }
        }
        assert!(fillers.len() >= 3, "only {} fillers", fillers.len());
        (fillers, old)
    }
}

fn restore_limit(old: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as in exhaust_descriptors.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = old;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// Role `fd-exhaust`: with no descriptor left, tries, acquires with a
/// timeout and acquires without one (each must fail at once); frees the
/// fillers, reports the counts, and acquires again, first under the low
/// limit, then under the old one.
fn fd_exhaust(name: &str) {
    let spec = Spec::new(name);
    let (fd0, t0) = fds_and_threads();
    let (mut fillers, old) = exhaust_descriptors();
    let tried = spec.try_acquire();
    let timed = spec
        .clone()
        .with_timeout(Duration::from_secs(3600))
        .acquire();
    let forever = spec.acquire();
    // One slot free: the lock file opens and is locked, the legacy socket
    // cannot be created.
    drop(fillers.pop());
    let one_free = spec.try_acquire();
    drop(fillers);
    let (fd1, t1) = fds_and_threads();
    say(&format!("try {}", describe(&tried)));
    say(&format!("timed {}", describe(&timed)));
    say(&format!("forever {}", describe(&forever)));
    say(&format!("one-free {}", describe(&one_free)));
    say(&format!("counts {fd0} {fd1} {t0} {t1}"));
    say(&format!("again {}", describe(&spec.try_acquire())));
    restore_limit(old);
    say(&format!("restored {}", describe(&spec.try_acquire())));
}

/// A clock whose every wait jumps time to the deadline: timeouts without
/// real waiting.
#[derive(Debug)]
struct JumpClock(Mutex<Instant>);

impl Clock for JumpClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
    fn wait_until(&self, deadline: Instant, _: &Wakeup) {
        let mut now = self.0.lock().unwrap();
        *now = (*now).max(deadline);
    }
}

/// A clock that cancels a token when a waiter starts to sleep on it: a
/// cancel that arrives while the acquisition is queued.
#[derive(Debug)]
struct CancelClock(CancelToken);

impl Clock for CancelClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wait_until(&self, _: Instant, _: &Wakeup) {
        self.0.cancel();
    }
}

/// Role `abandon-10k`: on a name the parent holds, one abandoned wait (it
/// starts the kernel waiter, which stays blocked in flock), then counts once
/// /proc/locks shows that waiter blocked;
/// then 10,000 abandoned acquisitions, in turn timed out on a jumping clock,
/// cancelled while queued, and timed out after 1 us of real time; then
/// counts again. Prints `counts START_FDS START_THREADS FDS THREADS
/// END_FDS END_THREADS`.
fn abandon_10k(name: &str) {
    let (fs, ts) = fds_and_threads();
    let timed_out = |spec: Spec| {
        let spec = spec.with_clock(JumpClock(Mutex::new(Instant::now())));
        assert!(matches!(spec.acquire(), Err(Error::Timeout)));
    };
    let base = Spec::new(name).with_timeout(Duration::from_secs(3600));
    timed_out(base.clone());
    // The kernel waiter outlives the wait that started it: count once it
    // is blocked in flock, holding its descriptor.
    let ino = faults::inode(&lock_file_path(name));
    faults::wait_until("the kernel waiter is blocked in flock", || {
        faults::has_flock(std::process::id(), ino, true)
    });
    let (f0, t0) = fds_and_threads();
    for i in 0..10_000 {
        match i % 3 {
            0 => timed_out(base.clone()),
            1 => {
                let token = CancelToken::new();
                let spec = base
                    .clone()
                    .with_cancel(token.clone())
                    .with_clock(CancelClock(token));
                assert!(matches!(spec.acquire(), Err(Error::Cancelled)));
            }
            _ => {
                let spec = Spec::new(name).with_timeout(Duration::from_micros(1));
                assert!(matches!(spec.acquire(), Err(Error::Timeout)));
            }
        }
    }
    let (f1, t1) = fds_and_threads();
    say(&format!("counts {fs} {ts} {f0} {t0} {f1} {t1}"));
}

fn counts(line: &str) -> Vec<usize> {
    line.split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// RLIMIT_NOFILE used up: try, timed and untimed acquire all fail at once
/// with EMFILE and a hint naming the cause; with one slot free the lock file
/// opens but the legacy socket fails, with the same hint; nothing leaks;
/// with the descriptors freed (even under the low limit) the mutex is
/// acquired.
#[test]
fn descriptor_exhaustion_fails_clearly_and_recovers() {
    let name = unique_name("fd-exhaust");
    let mut child = spawn("fd-exhaust", &name, Opts::default());
    let path = lock_file_path(&name);
    for attempt in ["try", "timed", "forever"] {
        let line = child.expect_line(attempt);
        assert!(line.starts_with("Io: "), "{attempt}: {line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains("Too many open files"), "{line}");
        assert!(line.contains("raise the limit (ulimit -n)"), "{line}");
    }
    let line = child.expect_line("one-free");
    assert!(
        line.starts_with("Io: cannot create legacy socket @/var/lib/juju/mutex-/"),
        "{line}"
    );
    assert!(line.contains("Too many open files"), "{line}");
    assert!(line.contains("raise the limit (ulimit -n)"), "{line}");
    let c = counts(&child.expect_line("counts"));
    assert_eq!(
        (c[0], c[2]),
        (c[1], c[3]),
        "fds, threads before/after: {c:?}"
    );
    assert_eq!(child.expect_line("again"), "ok");
    assert_eq!(child.expect_line("restored"), "ok");
    assert!(child.finish().success());
}

/// 10,000 timed-out and cancelled acquisitions on a held name: after the
/// first one (which starts the one kernel waiter thread this process keeps
/// blocked in flock for the name), neither descriptors nor threads grow.
#[test]
fn no_growth_over_10000_abandoned_acquisitions() {
    let name = unique_name("abandon-10k");
    let _held = Spec::new(&name).acquire().unwrap();
    let mut child = spawn("abandon-10k", &name, Opts::default());
    let c = counts(&child.expect_line("counts"));
    let (start_fds, start_threads, fds, threads, end_fds, end_threads) =
        (c[0], c[1], c[2], c[3], c[4], c[5]);
    eprintln!(
        "fds {start_fds} -> {fds} after the first abandoned wait -> {end_fds} after 10,000 more; \
         threads {start_threads} -> {threads} -> {end_threads}"
    );
    assert_eq!(fds, start_fds + 1, "the kernel waiter's descriptor");
    assert_eq!(threads, start_threads + 1, "the kernel waiter thread");
    assert_eq!((end_fds, end_threads), (fds, threads));
    assert!(child.finish().success());
}
