//! The Windows suite: the named kernel mutex backend, on a real Windows API
//! (here, Wine). Go counterparts (juju/mutex `mutex_test.go`) are named in
//! each test's doc line. Cross-process tests use children of this binary
//! and synchronise through pipes and files, never sleeps.
#![cfg(windows)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use machine_mutex::{mutex_object_name, CancelToken, Error, ManualClock, Namespace, Spec};
use support::*;

/// Object name of `name` in the session namespace (the Go package's).
fn object(name: &str) -> String {
    mutex_object_name(name, Namespace::Session)
}

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    let role = std::env::var("MMW_ROLE").expect("child_process_entry runs only as a child");
    let events = std::env::var_os("MMW_EVENTS").map(std::path::PathBuf::from);
    match role.as_str() {
        // Acquire, say "locked PID", hold until stdin closes, then release.
        "hold" => {
            let mut guard = child_spec().acquire().expect("child acquire");
            say(&format!("locked {}", std::process::id()));
            wait_for_parent();
            if let Some(ev) = &events {
                append_event(ev, "holder-releasing");
            }
            guard.release().unwrap();
            say("released");
        }
        // A thread keeps its guard in a thread-local and ends: the guard
        // drops in the thread-local destructor (under the loader lock).
        // Says "result joined" if the thread ended within 20 s, else
        // "result hung".
        "thread-local-guard" => {
            thread_local! {
                static KEPT: std::cell::RefCell<Option<machine_mutex::Releaser>> =
                    std::cell::RefCell::new(None);
            }
            let spec = child_spec();
            let thread = thread::spawn(move || {
                let guard = spec.acquire().expect("acquire");
                KEPT.with(|kept| *kept.borrow_mut() = Some(guard));
            });
            let (joined, join) = mpsc::channel();
            thread::spawn(move || {
                let _ = joined.send(thread.join().is_ok());
            });
            match join.recv_timeout(Duration::from_secs(20)) {
                Ok(true) => say("result joined"),
                Ok(false) => say("result panicked"),
                Err(_) => say("result hung"),
            }
            // Ends at once: a hung thread would hold up a normal exit.
            std::process::exit(0);
        }
        // Acquire as the spec says (MMW_TIMEOUT_MS), report, release.
        "acquire" => {
            say("started");
            match child_spec().acquire() {
                Ok(guard) => {
                    say("acquired");
                    drop(guard);
                }
                Err(e) => say(&format!("error {e}")),
            }
        }
        // MMW_ITERS times: acquire, check and bump the counter file, release.
        "stress" => {
            let iters: usize = std::env::var("MMW_ITERS").unwrap().parse().unwrap();
            let counter = std::path::PathBuf::from(std::env::var_os("MMW_COUNTER").unwrap());
            let spec = child_spec();
            say("ready");
            wait_for_parent();
            for _ in 0..iters {
                let guard = spec.acquire().expect("stress acquire");
                stress_step(&counter);
                drop(guard);
            }
            say("done");
        }
        // The parent holds the mutex. Wait for it (manual clock), find the
        // threads the library started for the wait, give up, then check
        // that they all end while the parent still holds the mutex. (The
        // kernel waiter, which exists before the waiter sleeps, cannot end
        // before the owner thread it starts has stopped waiting.)
        "give-up" => {
            let before = thread_ids();
            let clock = ManualClock::new();
            let spec = child_spec()
                .with_clock(clock.clone())
                .with_timeout(Duration::from_secs(3600));
            let (id_tx, id_rx) = mpsc::channel();
            let waiter = spawn_waiter(move || {
                id_tx.send(current_thread_id()).unwrap();
                spec.acquire().map(drop)
            });
            let waiter_id = id_rx.recv().unwrap();
            assert!(clock.wait_for_waiters(1, LIMIT), "waiter is waiting");
            let started = thread_ids()
                .into_iter()
                .filter(|id| !before.contains(id) && *id != waiter_id)
                .count();
            say(&format!("waiting-threads {started}"));
            clock.advance(Duration::from_secs(3600));
            assert!(matches!(waiter.result(), Err(Error::Timeout)));
            let started: Vec<u32> = thread_ids()
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect();
            let left = open_threads(&started);
            if wait_all_ended(&left, LIMIT) {
                say(&format!("threads-ended {}", left.len()));
            } else {
                say(&format!("threads-left {}", left.len()));
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Go `TestLockNoContention`: an uncontended acquire succeeds and releases,
/// and the named object exists only while someone has it open.
#[test]
fn lock_no_contention() {
    let name = unique_name("nocont");
    let spec = Spec::new(&name);
    let mut guard = spec.acquire().unwrap();
    assert!(guard.is_held());
    assert!(
        open_mutex(&object(&name)).is_some(),
        "juju-mutex-NAME exists"
    );
    guard.release().unwrap();
    assert!(!guard.is_held());
    assert!(open_mutex(&object(&name)).is_none(), "closed after release");
    drop(spec.try_acquire().expect("free again after release"));
}

/// Go `TestLockContentionWithinProcessTimeout`: a second acquisition in the
/// same process times out (real clock, 1 ms) with the Go error text.
#[test]
fn contention_within_process_timeout() {
    let spec = Spec::new(unique_name("cont-timeout")).with_timeout(Duration::from_millis(1));
    let _held = spec.acquire().unwrap();
    let err = spec.acquire().unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");
    assert_eq!(err.to_string(), "timeout acquiring mutex");
    assert!(matches!(spec.try_acquire(), Err(Error::WouldBlock)));
}

/// Two acquisitions by one thread conflict: each has its own owner thread,
/// so a Windows mutex's recursion never makes a second holder.
#[test]
fn same_thread_second_acquisition_conflicts() {
    let spec = Spec::new(unique_name("same-thread"));
    let held = spec.try_acquire().unwrap();
    assert!(matches!(spec.try_acquire(), Err(Error::WouldBlock)));
    drop(held);
    drop(spec.try_acquire().unwrap());
}

/// The timeout is measured on the spec's clock: the waiter waits while the
/// manual clock stands still and times out when it passes the timeout.
#[test]
fn timeout_follows_the_spec_clock() {
    let name = unique_name("clock-timeout");
    let _held = Spec::new(&name).acquire().unwrap();
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(60));
    let waiter = spawn_waiter(move || spec.acquire().map(drop));
    assert!(clock.wait_for_waiters(1, LIMIT));
    clock.advance(Duration::from_secs(59));
    assert!(clock.wait_for_waiters(1, LIMIT), "still waiting");
    assert!(!waiter.is_finished());
    clock.advance(Duration::from_secs(1));
    assert!(matches!(waiter.result(), Err(Error::Timeout)));
}

/// Go `TestLockContentionWithinProcessCancel`: cancelling a waiting
/// acquisition ends it with the Go error text; the mutex stays with its holder.
#[test]
fn cancel_while_waiting() {
    let name = unique_name("cancel");
    let held = Spec::new(&name).acquire().unwrap();
    let clock = ManualClock::new();
    let token = CancelToken::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(3600))
        .with_cancel(token.clone());
    let waiter = spawn_waiter(move || spec.acquire().map(drop));
    assert!(clock.wait_for_waiters(1, LIMIT), "waiter is sleeping");
    token.cancel();
    let err = waiter.result().unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(err.to_string(), "cancelled acquiring mutex");
    assert!(matches!(
        Spec::new(&name).try_acquire(),
        Err(Error::WouldBlock)
    ));
    drop(held);
    drop(Spec::new(&name).try_acquire().expect("free after release"));
}

/// A token cancelled before the call means no acquisition, even of a free mutex.
#[test]
fn cancelled_before_call_does_not_acquire() {
    let token = CancelToken::new();
    token.cancel();
    let name = unique_name("pre-cancel");
    let spec = Spec::new(&name).with_cancel(token);
    assert!(matches!(spec.acquire(), Err(Error::Cancelled)));
    assert!(matches!(spec.try_acquire(), Err(Error::Cancelled)));
    assert!(open_mutex(&object(&name)).is_none(), "nothing was created");
}

/// Go `TestSecondReleaseFine`: release twice, then drop: harmless, and the
/// second release does not touch a later holder.
#[test]
fn second_release_is_harmless() {
    let spec = Spec::new(unique_name("release2"));
    let mut first = spec.acquire().unwrap();
    first.release().unwrap();
    let second = spec.try_acquire().unwrap();
    first.release().unwrap();
    drop(first);
    assert!(
        matches!(spec.try_acquire(), Err(Error::WouldBlock)),
        "second holder unaffected"
    );
    drop(second);
}

/// Go `TestDifferentNamesDontBlock`.
#[test]
fn different_names_do_not_block() {
    let a = Spec::new(unique_name("diff-a")).with_timeout(Duration::from_millis(1));
    let b = Spec::new(unique_name("diff-b")).with_timeout(Duration::from_millis(1));
    let _ga = a.acquire().unwrap();
    let _gb = b.acquire().unwrap();
}

/// Thread affinity: a guard acquired on one thread is released on another,
/// and the release is a real `ReleaseMutex` by the owner thread: the next
/// raw wait finds the mutex released, not abandoned.
#[test]
fn guard_released_from_another_thread() {
    let name = unique_name("affinity");
    let guard = thread::spawn({
        let name = name.clone();
        move || Spec::new(name).acquire().unwrap()
    })
    .join()
    .unwrap();
    let raw = open_mutex(&object(&name)).expect("the mutex exists");
    assert_eq!(raw_wait(&raw, 0), RawWait::Busy, "held by the owner thread");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut guard = guard;
        tx.send(guard.release()).unwrap();
    });
    rx.recv().unwrap().expect("released from another thread");
    assert_eq!(
        raw_wait(&raw, 0),
        RawWait::Acquired,
        "released, not abandoned"
    );
    raw_release(&raw);
}

/// Go compatibility: the kernel object is `juju-mutex-NAME` in the session
/// namespace. A raw holder doing what the Go package does (`CreateMutexW`
/// and a wait) excludes us, and we exclude it.
#[test]
fn go_style_raw_holder_and_library_exclude_each_other() {
    let name = unique_name("go-name");
    let raw = RawHolder::hold(&object(&name));
    let spec = Spec::new(&name).with_timeout(Duration::from_millis(1));
    assert!(matches!(spec.try_acquire(), Err(Error::WouldBlock)));
    let err = spec.acquire().unwrap_err();
    assert!(err.is_contention() && err.io_error().is_none(), "{err}");
    raw.end(RawEnd::Release);

    let guard = spec.acquire().unwrap();
    let mutex = open_mutex(&object(&name)).expect("the library's mutex has Go's name");
    assert_eq!(raw_wait(&mutex, 0), RawWait::Busy);
    drop(guard);
    assert_eq!(raw_wait(&mutex, 0), RawWait::Acquired);
    raw_release(&mutex);
}

/// An abandoned mutex (its holder thread ended without releasing) counts as
/// acquired, for a new acquisition and for a waiter already waiting.
#[test]
fn abandoned_mutex_counts_as_acquired() {
    let name = unique_name("abandoned");
    // A handle kept open keeps the object (and its abandoned state) alive.
    let keep = RawHolder::hold(&object(&name));
    let raw = open_mutex(&object(&name)).unwrap();
    keep.end(RawEnd::Abandon);
    assert_eq!(
        raw_wait(&raw, 0),
        RawWait::Abandoned,
        "the platform reports it"
    );
    raw_release(&raw);

    RawHolder::hold(&object(&name)).end(RawEnd::Abandon);
    let mut guard = Spec::new(&name)
        .try_acquire()
        .expect("abandoned = acquired");
    guard.release().unwrap();
    assert_eq!(
        raw_wait(&raw, 0),
        RawWait::Acquired,
        "released, no longer abandoned"
    );
    raw_release(&raw);

    let holder = RawHolder::hold(&object(&name));
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(3600));
    let waiter = spawn_waiter(move || spec.acquire().map(|g| g.is_held()));
    assert!(clock.wait_for_waiters(1, LIMIT));
    holder.end(RawEnd::Abandon);
    assert!(waiter.result().expect("waiter gets the abandoned mutex"));
}

/// Waiters of one process are served in the order they queued.
#[test]
fn in_process_waiters_are_served_fifo() {
    let name = unique_name("fifo");
    let held = Spec::new(&name).acquire().unwrap();
    let clock = ManualClock::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..5 {
        let spec = Spec::new(&name)
            .with_clock(clock.clone())
            .with_timeout(Duration::from_secs(3600));
        let order = Arc::clone(&order);
        waiters.push(thread::spawn(move || {
            let guard = spec.acquire().unwrap();
            order.lock().unwrap().push(i);
            drop(guard);
        }));
        assert!(clock.wait_for_waiters(i + 1, LIMIT), "waiter {i} queued");
    }
    drop(held);
    for w in waiters {
        w.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
}

/// Go `TestLockFromOtherProcess`: a mutex held by another process makes
/// try_acquire fail and a timed acquire time out; a waiter blocks until the
/// holder releases, then gets it.
#[test]
fn held_by_another_process_blocks_until_released() {
    let name = unique_name("other-proc");
    let log = temp_file("other-proc-events");
    let mut holder = spawn_child("hold", &name, &[("MMW_EVENTS", log.display().to_string())]);
    holder.expect_line("locked");

    assert!(matches!(
        Spec::new(&name).try_acquire(),
        Err(Error::WouldBlock)
    ));
    let timed = Spec::new(&name).with_timeout(Duration::from_millis(1));
    assert!(matches!(timed.acquire(), Err(Error::Timeout)));

    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(3600));
    let waiter = {
        let log = log.clone();
        spawn_waiter(move || {
            let guard = spec.acquire();
            append_event(&log, "waiter-acquired");
            guard.map(drop)
        })
    };
    assert!(clock.wait_for_waiters(1, LIMIT), "waiter is waiting");
    assert!(!waiter.is_finished());
    holder.release();
    waiter.result().expect("acquired after the holder released");
    holder.expect_line("released");
    assert!(holder.finish());
    assert_eq!(events(&log), ["holder-releasing", "waiter-acquired"]);
    let _ = std::fs::remove_file(&log);
}

/// The other direction: a child's timed acquire times out while this
/// process holds the mutex, and succeeds after it releases.
#[test]
fn other_process_times_out_while_held_here() {
    let name = unique_name("held-here");
    let held = Spec::new(&name).acquire().unwrap();
    let timeout = [("MMW_TIMEOUT_MS", "1".to_owned())];
    let mut child = spawn_child("acquire", &name, &timeout);
    child.expect_line("started");
    assert_eq!(child.expect_line("error"), "timeout acquiring mutex");
    assert!(child.finish());
    drop(held);
    let mut child = spawn_child("acquire", &name, &timeout);
    child.expect_line("acquired");
    assert!(child.finish());
}

/// Go `TestLockFromOtherProcessKilled` (as on Unix with SIGKILL): a holder
/// killed with TerminateProcess frees the mutex; the waiter gets it (the
/// abandoned mutex counts as acquired).
#[test]
fn killed_holder_frees_the_lock() {
    let name = unique_name("killed");
    let mut holder = spawn_child("hold", &name, &[]);
    holder.expect_line("locked");
    // Keeps the object alive across the kill, so that the abandoned state
    // reaches the waiter even if its owner thread opens the mutex only after
    // the holder is gone.
    let _keep = open_mutex(&object(&name)).expect("the holder's mutex");
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(3600));
    let waiter = spawn_waiter(move || spec.acquire().map(|g| g.is_held()));
    assert!(clock.wait_for_waiters(1, LIMIT), "waiter is waiting");
    holder.child.kill().expect("TerminateProcess the holder");
    assert!(!holder.child.wait().unwrap().success());
    assert!(waiter.result().expect("acquired after the kill"));
}

/// When the last waiter of a process gives up, its kernel wait is aborted
/// (the cancel event): the kernel-waiter and owner threads end while the
/// other process still holds the mutex. (On Unix a blocked flock cannot be
/// interrupted; there the kernel waiter stays until the lock is granted.)
#[test]
fn giving_up_ends_the_kernel_wait() {
    let name = unique_name("give-up");
    let _held = Spec::new(&name).acquire().unwrap();
    let mut child = spawn_child("give-up", &name, &[]);
    let waiting: usize = child.expect_line("waiting-threads").parse().unwrap();
    assert!(waiting >= 1, "the kernel waiter thread is found");
    let threads = child.expect_line("threads-");
    assert!(threads.starts_with("ended"), "threads {threads}");
    assert!(child.finish());
}

/// `Namespace::Global` names `Global\juju-mutex-NAME`, excludes other
/// processes using it, and is a different object from the session's name
/// except in session 0, where the two namespaces are one.
#[test]
fn global_namespace() {
    let name = unique_name("global");
    let global = Spec::new(&name).with_namespace(Namespace::Global);
    let env = [("MMW_NAMESPACE", "global".to_owned())];
    let mut holder = spawn_child("hold", &name, &env);
    holder.expect_line("locked");
    assert!(open_mutex(&mutex_object_name(&name, Namespace::Global)).is_some());
    assert!(matches!(global.try_acquire(), Err(Error::WouldBlock)));
    // Spec::holder looks in the spec's namespace (holder() looked in the
    // session's only: a Global holder read as free; found by a review helper).
    let found = global.holder().unwrap().expect("held in Global");
    assert!(found.pid().is_none(), "{found}");
    let session = Spec::new(&name).try_acquire();
    if session_id() == 0 {
        assert!(
            matches!(session, Err(Error::WouldBlock)),
            "one namespace in session 0"
        );
    } else {
        drop(session.expect("session namespace is separate"));
        assert!(machine_mutex::holder(&name).unwrap().is_none());
    }
    holder.release();
    holder.expect_line("released");
    assert!(holder.finish());
    assert!(global.holder().unwrap().is_none());
    drop(
        global
            .try_acquire()
            .expect("free after the holder released"),
    );
}

/// A guard dropped by a thread-local destructor as its thread ends releases
/// the mutex and lets the thread end (the release joined the owner thread,
/// which cannot end while the loader lock is held: a hang; found by a
/// review helper).
#[test]
fn a_guard_dropped_in_a_thread_local_destructor_does_not_hang() {
    let name = unique_name("tls");
    let mut child = spawn_child("thread-local-guard", &name, &[]);
    assert_eq!(child.expect_line("result"), "joined");
    let _ = child.finish();
    drop(
        Spec::new(&name)
            .try_acquire()
            .expect("released by the destructor"),
    );
}

/// The mutex is created with this crate's security descriptor, which lets
/// every user (services included) wait for and release it, and its owner
/// do anything (Go opens an existing mutex asking for all access).
#[test]
fn mutex_grants_everyone_synchronize() {
    for namespace in [Namespace::Session, Namespace::Global] {
        let name = unique_name("dacl");
        let _held = Spec::new(&name)
            .with_namespace(namespace)
            .acquire()
            .unwrap();
        let mutex = open_mutex_for(&mutex_object_name(&name, namespace), READ_CONTROL)
            .expect("its creator may read its security descriptor");
        assert_eq!(
            dacl_sddl(&mutex),
            "D:(A;;0x100001;;;WD)(A;;0x1f0001;;;OW)",
            "{namespace:?}"
        );
    }
}

/// Errors keep the OS code, and contention is never a permission error (nor
/// the reverse): a mutex whose DACL grants nothing fails with error 5 and a
/// hint; a name taken by an event fails with error 6; neither waits.
#[test]
fn os_errors_are_not_contention() {
    let name = unique_name("denied");
    let _squat = create_mutex_with_sddl(&object(&name), "D:");
    let spec = Spec::new(&name).with_timeout(Duration::from_secs(3600));
    for err in [spec.try_acquire().unwrap_err(), spec.acquire().unwrap_err()] {
        assert!(!err.is_contention(), "{err}");
        let os = err.io_error().expect("an OS error");
        assert_eq!(os.raw_os_error(), Some(5), "{err}");
        assert_eq!(os.kind(), std::io::ErrorKind::PermissionDenied);
        let text = err.to_string();
        assert!(text.contains(&object(&name)), "{text}");
        assert!(text.contains("security descriptor"), "{text}");
    }

    let name = unique_name("event");
    let _event = create_event(&object(&name));
    let err = Spec::new(&name).try_acquire().unwrap_err();
    assert!(!err.is_contention(), "{err}");
    assert_eq!(
        err.io_error().and_then(|e| e.raw_os_error()),
        Some(6),
        "{err}"
    );
    assert!(
        err.to_string().contains("another kind of kernel object"),
        "{err}"
    );
}

/// Go `TestStress`: 10 threads x 200 acquisitions; an atomic "inside"
/// counter never exceeds 1 and every acquisition is counted.
#[test]
fn stress_ten_threads() {
    const THREADS: usize = 10;
    const ATTEMPTS: usize = 200;
    let name = unique_name("stress");
    let inside = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (name, inside, total, start) =
                (name.clone(), inside.clone(), total.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let spec = Spec::new(name);
                for _ in 0..ATTEMPTS {
                    let guard = spec.acquire().unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                    total.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(total.load(Ordering::SeqCst), THREADS * ATTEMPTS);
}

/// Several processes x many acquisitions increment a counter file: exact
/// total, no overlap.
#[test]
fn stress_processes() {
    const PROCS: usize = 3;
    const ITERS: usize = 100;
    let name = unique_name("stress-procs");
    let counter = temp_file("stress-counter");
    let env = [
        ("MMW_ITERS", ITERS.to_string()),
        ("MMW_COUNTER", counter.display().to_string()),
    ];
    let mut children: Vec<_> = (0..PROCS)
        .map(|_| spawn_child("stress", &name, &env))
        .collect();
    for c in &mut children {
        c.expect_line("ready");
    }
    for c in &mut children {
        c.release();
    }
    for mut c in children {
        c.expect_line("done");
        assert!(c.finish());
    }
    let total: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(total, PROCS * ITERS);
    assert!(events(&counter.with_extension("overlaps")).is_empty());
    let _ = std::fs::remove_file(&counter);
}

/// `holder()` on Windows: free reads as `None` and leaves the mutex free;
/// held reads as held with the holder unknown (Windows does not say which
/// process owns a mutex), and the query does not disturb the holder.
#[test]
fn holder_reports_free_and_held() {
    let name = unique_name("holder");
    assert!(machine_mutex::holder(&name).unwrap().is_none());
    drop(
        Spec::new(&name)
            .try_acquire()
            .expect("still free after the query"),
    );
    let held = Spec::new(&name).acquire().unwrap();
    let found = machine_mutex::holder(&name).unwrap().expect("held");
    assert_eq!(found.pid(), None);
    assert_eq!(found.lock(), machine_mutex::HeldLock::LockFile);
    assert!(matches!(
        Spec::new(&name).try_acquire(),
        Err(Error::WouldBlock)
    ));
    drop(held);
    assert!(machine_mutex::holder(&name).unwrap().is_none());
}
