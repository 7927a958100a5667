//! Kept descriptors (`Spec::with_kept_descriptor`, `src/sys/unix/kept.rs`):
//! a released lock file descriptor stays open, unlocked, for the next
//! acquisition of the name in the process. Each test shows one rule that
//! keeps this sound, with real processes and files: it is unlocked while
//! kept, reused, bounded, serves one acquisition at a time, is never used
//! once the path names another file, and is closed in a forked child.
// Linux: /proc, the fork handler. Tests build with current stable; only the
// library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::io::BufRead;
use std::path::Path;

use common::unique_name;
use faults::{describe, fds_and_threads, say, spawn, Opts};
use machine_mutex::{lock_file_path, Error, Spec};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "kept-reuse" => kept_reuse(name),
            "kept-fork" => kept_fork(name),
            _ => return false,
        }
        true
    });
}

/// The spec of these tests: flock only, so that the legacy socket (bound
/// by every holder) never hides what the flock does.
fn spec(name: &str) -> Spec {
    Spec::new(name).with_legacy_socket(false)
}

/// Another process that tries NAME (flock only) and, having it, holds it
/// until its stdin closes (prints `result ok`, later `released`).
fn flock_holder(name: &str) -> faults::Child {
    spawn(
        "attempt",
        name,
        Opts::default()
            .env("MM_HOLD", "1")
            .env("MM_ATTEMPT", "try")
            .env("MM_TEST_LEGACY", "0"),
    )
}

/// How many descriptors of this process are open on `path`.
fn open_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

/// Role `kept-reuse`: 100 acquisitions of NAME, then of NAME-off with
/// keeping turned off, then of 40 more names; prints `counts` (descriptors
/// open on NAME's lock file, on NAME-off's, and in all: before, after NAME,
/// after NAME-off, after the 40). Then, for each stdin line `try`, tries
/// NAME once and prints `result OUTCOME`.
fn kept_reuse(name: &str) {
    let path = lock_file_path(name);
    let off = format!("{name}-off");
    let (all0, _) = fds_and_threads();
    for _ in 0..100 {
        drop(spec(name).acquire().unwrap());
    }
    let (all1, _) = fds_and_threads();
    for _ in 0..100 {
        drop(spec(&off).with_kept_descriptor(false).acquire().unwrap());
    }
    let (all2, _) = fds_and_threads();
    for i in 0..40 {
        drop(spec(&format!("{name}-{i}")).acquire().unwrap());
    }
    let (all3, _) = fds_and_threads();
    say(&format!(
        "counts {} {} {all0} {all1} {all2} {all3}",
        open_on(&path),
        open_on(&lock_file_path(&off))
    ));
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().trim() {
            "try" => say(&format!("result {}", describe(&spec(name).try_acquire()))),
            other => panic!("unknown command {other}"),
        }
    }
}

/// A released descriptor is kept (one per name, not one per acquisition),
/// unlocked: another process takes the mutex meanwhile, and the keeper's
/// next try through the kept descriptor sees it held, then free again.
/// Keeping is bounded (16 per process) and can be turned off per spec.
#[test]
fn released_descriptors_are_kept_unlocked_reused_and_bounded() {
    let name = unique_name("kept-reuse");
    let mut child = spawn("kept-reuse", &name, Opts::default());
    let counts: Vec<usize> = child
        .expect_line("counts")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (on_name, on_off, all0, all1, all2, all3) = (
        counts[0], counts[1], counts[2], counts[3], counts[4], counts[5],
    );
    assert_eq!(on_name, 1, "one kept descriptor for 100 acquisitions");
    assert_eq!(on_off, 0, "keeping off: closed on release");
    assert_eq!(all1, all0 + 1, "{counts:?}");
    assert_eq!(all2, all1, "{counts:?}");
    assert_eq!(all3, all0 + 16, "at most 16 kept: {counts:?}");
    // Kept, not locked: this process takes the mutex.
    let held = spec(&name).try_acquire().expect("free while kept");
    child.send("try");
    assert_eq!(child.expect_line("result"), "WouldBlock");
    drop(held);
    child.send("try");
    assert_eq!(child.expect_line("result"), "ok");
    assert!(child.finish().success());
}

/// A kept descriptor serves one acquisition at a time: while it is in use,
/// another acquisition in the same process opens the file anew, and flock(2)
/// excludes it (one open file description locked twice would let both in).
#[test]
fn a_kept_descriptor_serves_one_acquisition_at_a_time() {
    let name = unique_name("kept-one");
    drop(spec(&name).acquire().unwrap());
    let first = spec(&name)
        .try_acquire()
        .expect("through the kept descriptor");
    for _ in 0..3 {
        assert!(matches!(spec(&name).try_acquire(), Err(Error::WouldBlock)));
    }
    drop(first);
    drop(spec(&name).try_acquire().expect("free again"));
}

/// The lock file is removed while its descriptor is kept (a temp-dir
/// cleaner), and another process creates and holds a new one: the next
/// acquisition must see the mutex held, not lock the removed file through
/// the kept descriptor. Once the other process releases, it gets the new
/// file.
#[test]
fn a_kept_descriptor_of_a_removed_file_is_not_used() {
    let name = unique_name("kept-removed");
    let path = lock_file_path(&name);
    drop(spec(&name).acquire().unwrap());
    let old = faults::inode(&path);
    std::fs::remove_file(&path).unwrap();
    let mut other = flock_holder(&name);
    assert_eq!(other.expect_line("result"), "ok");
    let new = faults::inode(&path);
    assert_ne!(old, new, "a new lock file");
    assert!(matches!(spec(&name).try_acquire(), Err(Error::WouldBlock)));
    other.close_stdin();
    other.expect_line("released");
    let guard = spec(&name).acquire().unwrap();
    assert!(faults::has_flock(std::process::id(), new, false));
    drop(guard);
    assert!(other.finish().success());
}

/// The kept descriptor's file is held by another process and then removed:
/// a try must not report the mutex held because locking the kept (removed)
/// file would block; it locks the new file at the path. With a directory
/// put at the path instead, it reports the directory.
#[test]
fn a_kept_descriptor_of_a_held_removed_file_is_not_taken_for_the_mutex() {
    for replacement in ["nothing", "directory"] {
        let name = unique_name("kept-held-removed");
        let path = lock_file_path(&name);
        drop(spec(&name).acquire().unwrap());
        let mut other = flock_holder(&name);
        assert_eq!(other.expect_line("result"), "ok");
        std::fs::remove_file(&path).unwrap();
        if replacement == "directory" {
            std::fs::create_dir(&path).unwrap();
            let err = spec(&name).try_acquire().expect_err("a directory");
            assert!(err.to_string().contains("directory"), "{err}");
            std::fs::remove_dir(&path).unwrap();
        } else {
            let guard = spec(&name).try_acquire().expect("the new file is free");
            assert!(faults::has_flock(
                std::process::id(),
                faults::inode(&path),
                false
            ));
            drop(guard);
        }
        other.close_stdin();
        other.expect_line("released");
        assert!(other.finish().success());
    }
}

/// Role `kept-fork`: keeps NAME's descriptor (acquire, release), forks a
/// child that never execs and only waits, prints `forked PID` and the
/// number of descriptors the child has open on the lock file
/// (`child-open N`), then acquires NAME again (through the kept descriptor)
/// and prints `holding`, and waits to be killed.
fn kept_fork(name: &str) {
    let path = lock_file_path(name);
    drop(faults::child_spec(name).acquire().unwrap());
    assert_eq!(open_on(&path), 1, "kept before the fork");
    let pid = faults::fork_paused_child(false, || {});
    let child_open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == &path)
        .count();
    say(&format!("forked {pid}"));
    say(&format!("child-open {child_open}"));
    let guard = faults::child_spec(name).acquire().unwrap();
    assert_eq!(open_on(&path), 1, "through the kept descriptor");
    say("holding");
    let _ = std::io::stdin().read_line(&mut String::new());
    drop(guard);
}

/// A child forked without exec closes the kept descriptors at once (the
/// fork handler), so a lock its parent takes afterwards through a kept
/// descriptor dies with the parent: after the parent is killed while
/// holding, the mutex is free although the forked child lives on. (Had the
/// child kept its copy of the open file description, the lock would stay
/// held until the child ended.)
#[test]
fn a_forked_child_closes_the_kept_descriptors() {
    let name = unique_name("kept-fork");
    let mut parent = spawn(
        "kept-fork",
        &name,
        Opts::default().env("MM_TEST_LEGACY", "0"),
    );
    let forked: i32 = parent.expect_line("forked").parse().unwrap();
    // Killed however the test ends (it holds this test's output pipe).
    let _forked = KillOnDrop(forked);
    assert_eq!(parent.expect_line("child-open"), "0");
    parent.expect_line("holding");
    assert!(matches!(spec(&name).try_acquire(), Err(Error::WouldBlock)));
    parent.kill();
    let freed = spec(&name).try_acquire();
    assert!(
        Path::new(&format!("/proc/{forked}")).exists(),
        "the forked child lives on"
    );
    drop(freed.expect("free once the holder died, forked child alive"));
}

/// Kills a process (the orphaned forked child, reaped by init) when dropped.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal, to the process this test made.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
        }
    }
}
