//! Fault 6, the lock file removed by a temp-dir cleaner.
//!
//! (a) A waiter blocked on a file that is then removed (and created anew by
//! a newcomer who locks it) must not believe it holds the mutex when the old
//! file's lock is granted: it checks the descriptor against the path and
//! starts over. (b) Each acquisition refreshes timestamps older than an
//! hour, so that an age-based cleaner (here the real systemd-tmpfiles)
//! leaves a lock in regular use alone. The remaining hole, a removal while
//! the mutex is held, is shown as it is.
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::fs::{File, FileTimes};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::unique_name;
use faults::{spawn, Child, Opts};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|_, _| false);
}

/// A `common` role child on `name` in `dir`, legacy socket as given, events
/// appended to `events`.
fn child(role: &str, name: &str, dir: &Path, events: &Path, legacy: bool) -> Child {
    spawn(
        role,
        name,
        Opts::default()
            .env("TMPDIR", dir.as_os_str())
            .env("MM_TEST_EVENTS", events.as_os_str())
            .env("MM_TEST_LEGACY", if legacy { "1" } else { "0" }),
    )
}

/// (a) Holder A locks file 1; waiter W blocks on file 1 (seen in
/// /proc/locks); the cleaner removes the file; newcomer N creates file 2 and
/// locks it; A releases. W is granted file 1's lock, notices that the path
/// no longer names it, and blocks again, now on file 2 (seen in
/// /proc/locks); only when N releases does W acquire. Flock only (legacy
/// socket off), as on macOS; with the socket, Linux would exclude anyway.
#[test]
fn waiter_on_a_removed_file_starts_over() {
    let dir = faults::open_tempdir();
    let events = dir.path().join("events");
    let name = unique_name("cleaner-wait");
    let path = faults::lock_path_in(dir.path(), &name);

    let mut a = child("hold", &name, dir.path(), &events, false);
    a.expect_line("locked");
    let first = faults::inode(&path);
    let mut w = child("acquire", &name, dir.path(), &events, false);
    w.expect_line("started");
    let wpid = w.pid();
    faults::wait_until("W blocks on file 1", || {
        faults::has_flock(wpid, first, true)
    });

    std::fs::remove_file(&path).unwrap();
    let mut n = child("hold", &name, dir.path(), &events, false);
    n.expect_line("locked");
    let second = faults::inode(&path);
    assert_ne!(first, second);

    a.close_stdin();
    a.expect_line("released");
    faults::wait_until("W blocks on file 2, having let go of file 1", || {
        assert!(
            w.lines_so_far("acquired").is_empty(),
            "W acquired the removed file while N holds the new one"
        );
        faults::has_flock(wpid, second, true) && !faults::has_flock(wpid, first, false)
    });
    n.close_stdin();
    n.expect_line("released");
    w.expect_line("acquired");
    let log = common::events(&events);
    assert_eq!(
        log,
        [
            "holder-locked",
            "holder-locked",
            "holder-releasing",
            "holder-releasing",
            "waiter-acquired"
        ],
        "W acquired only after both holders released"
    );
    for c in [a, n, w] {
        assert!(c.finish().success());
    }
}

/// The remaining hole: a removal while the mutex is held lets a newcomer
/// lock a new file at the same path. With flock alone, both hold it (this
/// is what a cleaner's age limit must not allow: see RELIABILITY.md); with
/// the Linux legacy socket on (the default), the newcomer still waits for
/// the socket, so the mutex keeps one holder.
#[test]
fn removal_while_held_is_the_remaining_hole() {
    let dir = faults::open_tempdir();
    let events = dir.path().join("events");
    for legacy in [false, true] {
        let name = unique_name("cleaner-held");
        let path = faults::lock_path_in(dir.path(), &name);
        let mut holder = child("hold", &name, dir.path(), &events, legacy);
        holder.expect_line("locked");
        std::fs::remove_file(&path).unwrap();
        let mut newcomer = spawn(
            "attempt",
            &name,
            Opts::default()
                .env("TMPDIR", dir.path().as_os_str())
                .env("MM_TEST_LEGACY", if legacy { "1" } else { "0" })
                .env("MM_ATTEMPT", "try"),
        );
        let result = newcomer.expect_line("result");
        eprintln!("legacy socket {legacy}: newcomer after removal while held: {result}");
        if legacy {
            assert_eq!(result, "WouldBlock", "the socket keeps the exclusion");
        } else {
            assert_eq!(result, "ok", "flock alone: the documented hole");
        }
        assert!(newcomer.finish().success());
        assert!(holder.finish().success());
    }
}

fn set_times(path: &Path, age: Duration) {
    let then = SystemTime::now() - age;
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(then).set_modified(then))
        .unwrap();
}

fn times(path: &Path) -> (SystemTime, SystemTime) {
    let m = std::fs::metadata(path).unwrap();
    (m.accessed().unwrap(), m.modified().unwrap())
}

/// Acquires `name` once in a child with `TMPDIR=dir`.
fn acquire_once(name: &str, dir: &Path) {
    let mut c = spawn(
        "attempt",
        name,
        Opts::default().env("TMPDIR", dir.as_os_str()),
    );
    assert_eq!(c.expect_line("result"), "ok");
    assert!(c.finish().success());
}

/// (b) Times older than an hour are set to now by the next acquisition;
/// times younger than that are left as they are (no extra system call).
#[test]
fn acquisition_refreshes_old_timestamps_only() {
    let dir = faults::open_tempdir();
    let name = unique_name("cleaner-times");
    let path = faults::lock_path_in(dir.path(), &name);
    acquire_once(&name, dir.path());

    set_times(&path, Duration::from_secs(30 * 86400));
    let before = SystemTime::now() - Duration::from_secs(1);
    acquire_once(&name, dir.path());
    let (atime, mtime) = times(&path);
    assert!(
        atime >= before && mtime >= before,
        "refreshed: {atime:?} {mtime:?}"
    );

    set_times(&path, Duration::from_secs(600));
    let kept = times(&path);
    acquire_once(&name, dir.path());
    assert_eq!(times(&path), kept, "ten minutes old: left alone");
}

/// (b) with the real cleaner: two lock files aged 30 days; one is then
/// acquired. `systemd-tmpfiles --clean` with a 1-day age removes the other
/// and keeps the one in use. The rule ages by access and modification time
/// (`am:1d`): a test cannot age a file's change time, which the default
/// rule also checks and which an acquisition refreshes along with the others.
#[test]
fn systemd_tmpfiles_spares_a_lock_in_use() {
    if Command::new("systemd-tmpfiles")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED systemd_tmpfiles_spares_a_lock_in_use: systemd-tmpfiles not found");
        return;
    }
    let dir = faults::open_tempdir();
    let locks = dir.path().join("tmp");
    std::fs::create_dir(&locks).unwrap();
    let (used, unused) = (unique_name("cleaner-used"), unique_name("cleaner-unused"));
    for name in [&used, &unused] {
        acquire_once(name, &locks);
        set_times(
            &faults::lock_path_in(&locks, name),
            Duration::from_secs(30 * 86400),
        );
    }
    acquire_once(&used, &locks);
    let conf = dir.path().join("clean.conf");
    std::fs::write(&conf, format!("e {} - - - am:1d\n", locks.display())).unwrap();
    let status = Command::new("systemd-tmpfiles")
        .arg("--clean")
        .arg(&conf)
        .status()
        .unwrap();
    assert!(status.success(), "systemd-tmpfiles: {status}");
    assert!(
        !faults::lock_path_in(&locks, &unused).exists(),
        "the cleaner removes an old, unused lock file (else this test proves nothing)"
    );
    assert!(
        faults::lock_path_in(&locks, &used).exists(),
        "the lock in use survives"
    );
}
