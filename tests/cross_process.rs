//! Rules 4, 8, 9, 10, 11 across real processes: children re-run this test
//! binary (see `common`), report on stdout, and the parent waits for those
//! lines, never sleeps.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{events, spawn_child, unique_name};
use machine_mutex::{lock_file_path, Error, FixedEnvironment, Spec};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    common::child_main();
}

/// Go `TestLockBlocks`: a mutex held by another process blocks an acquire
/// until that process releases; the events file shows the order
/// holder-locked, holder-releasing, waiter-acquired.
#[test]
fn lock_held_by_other_process_blocks_until_release() {
    let name = unique_name("blocks");
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("events");
    let ev_str = ev.to_str().unwrap();
    let mut holder = spawn_child("hold", &name, &[("MM_TEST_EVENTS", ev_str)]);
    holder.expect_line("locked");
    // Held elsewhere: a try in this process sees it at once.
    assert!(matches!(
        Spec::new(&name).try_acquire(),
        Err(Error::WouldBlock)
    ));
    let mut waiter = spawn_child("acquire", &name, &[("MM_TEST_EVENTS", ev_str)]);
    waiter.expect_line("started");
    holder.release();
    holder.expect_line("released");
    waiter.expect_line("acquired");
    assert!(waiter.finish().0.success());
    assert!(holder.finish().0.success());
    assert_eq!(
        events(&ev),
        vec!["holder-locked", "holder-releasing", "waiter-acquired"]
    );
}

/// Rule 8, Go `TestProcessReleasesWhenDead`: a holder killed with SIGKILL
/// frees the mutex for a waiter in this process (which was already waiting).
#[test]
fn holder_killed_frees_lock() {
    let name = unique_name("killed");
    let mut holder = spawn_child("hold", &name, &[]);
    holder.expect_line("locked");
    assert!(matches!(
        Spec::new(&name).try_acquire(),
        Err(Error::WouldBlock)
    ));
    let spec = Spec::new(&name).with_timeout(LIMIT);
    let waiter = std::thread::spawn(move || spec.acquire().map(drop));
    holder.child.kill().unwrap(); // SIGKILL
    holder.child.wait().unwrap();
    waiter
        .join()
        .unwrap()
        .expect("acquired after the holder was killed");
}

/// Rule 9, Go `TestMutexNotInherited`: the lock descriptor is close-on-exec,
/// so a program the holder started does not keep the mutex once the holder
/// has released and exited.
#[test]
fn lock_not_inherited_across_exec() {
    let name = unique_name("exec");
    let mut holder = spawn_child("hold-spawn", &name, &[]);
    let sleeper_pid: i32 = holder.expect_line("locked").parse().unwrap();
    holder.release();
    holder.expect_line("released");
    assert!(holder.finish().0.success());
    // A bounded wait, not a single try: the exec'd `sleep` lives 600 s, so
    // if it had inherited the lock this times out. (A single try right after
    // the holder exits was seen to fail about 1 run in 60 while other tests
    // of this binary spawn children, never in 150 runs alone: a transient
    // holder whose cause is not pinned down yet.)
    let got = Spec::new(&name)
        .with_timeout(Duration::from_secs(10))
        .acquire();
    let alive = std::path::Path::new(&format!("/proc/{sleeper_pid}")).exists();
    let _ = std::process::Command::new("kill")
        .arg(sleeper_pid.to_string())
        .status();
    assert!(alive, "the exec'd child must still run during the check");
    drop(got.expect("the exec'd child does not hold the lock"));
}

/// Rule 4: 4 processes x 250 acquisitions increment one counter file inside
/// the mutex; an exclusively created marker file detects overlap.
#[test]
fn multi_process_stress() {
    const PROCS: usize = 4;
    const ITERS: usize = 250;
    let name = unique_name("mp-stress");
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    let counter_str = counter.to_str().unwrap();
    let iters = ITERS.to_string();
    let mut children: Vec<_> = (0..PROCS)
        .map(|_| {
            spawn_child(
                "stress",
                &name,
                &[
                    ("MM_TEST_ITERS", &iters),
                    ("MM_TEST_COUNTER", counter_str),
                    ("MM_TEST_GATE", "1"),
                ],
            )
        })
        .collect();
    // All children are up before any starts, so they really contend.
    for child in &mut children {
        child.expect_line("started");
    }
    for child in &mut children {
        child.send_line("go");
    }
    for child in &mut children {
        child.expect_line("done");
    }
    for child in children {
        assert!(child.finish().0.success());
    }
    let total: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(total, PROCS * ITERS);
    assert!(
        !counter.with_extension("overlaps").exists(),
        "two processes were inside at once"
    );
}

/// Rule 10, Go `TestFilePermissions`: the lock file is
/// `temp_dir()/juju-NAME`, created with mode 0600 and owned by this user.
#[test]
fn file_mode_and_owner() {
    let name = unique_name("mode");
    let path = lock_file_path(&name);
    assert_eq!(path, std::env::temp_dir().join(format!("juju-{name}")));
    assert!(!path.exists());
    let guard = Spec::new(&name).acquire().unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    let mine = tempfile::tempfile().unwrap().metadata().unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (mine.uid(), mine.gid()));
    drop(guard);
    assert!(path.exists(), "the lock file is never deleted");
}

/// Rule 11, Go `TestFilePermissionsWithSudoEnvars`: with SUDO_COMMAND set in
/// the injected environment, the file is given to SUDO_UID/SUDO_GID. As
/// root the chown must happen; as another user it fails and the acquisition
/// must still succeed.
#[test]
fn sudo_chown_through_environment() {
    let name = unique_name("sudo");
    let path = lock_file_path(&name);
    let env = FixedEnvironment::new([
        ("SUDO_COMMAND", "/usr/bin/true"),
        ("SUDO_UID", "4242"),
        ("SUDO_GID", "4343"),
    ]);
    let mine = tempfile::tempfile().unwrap().metadata().unwrap();
    let guard = Spec::new(&name)
        .with_environment(env)
        .acquire()
        .expect("chown failure never fails acquire");
    let meta = std::fs::metadata(&path).unwrap();
    if mine.uid() == 0 {
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    } else {
        assert_eq!(meta.uid(), mine.uid(), "non-root cannot give the file away");
    }
    drop(guard);
    // Without SUDO_COMMAND (empty), nothing is changed.
    let name = unique_name("nosudo");
    let env = FixedEnvironment::new([
        ("SUDO_COMMAND", ""),
        ("SUDO_UID", "4242"),
        ("SUDO_GID", "4343"),
    ]);
    let _guard = Spec::new(&name).with_environment(env).acquire().unwrap();
    assert_eq!(
        std::fs::metadata(lock_file_path(&name)).unwrap().uid(),
        mine.uid()
    );
}

/// Rule 3: an I/O error names the lock file and the OS error, with a hint:
/// here TMPDIR points to a directory that does not exist (child process,
/// so this process's environment is untouched).
#[test]
fn io_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let mut child = spawn_child(
        "acquire",
        &unique_name("io"),
        &[("TMPDIR", missing.to_str().unwrap())],
    );
    let line = child.expect_line("error");
    assert!(line.starts_with("cannot create lock file"), "{line}");
    assert!(line.contains(&missing.display().to_string()), "{line}");
    assert!(
        line.contains("No such file or directory (os error 2)"),
        "{line}"
    );
    assert!(line.contains("does not exist; check TMPDIR"), "{line}");
}

/// Rule 3: EACCES says who owns the file and what to do (root bypasses
/// permission checks, so this runs as a non-root user only).
#[test]
fn permission_error_names_the_owner() {
    let mine = tempfile::tempfile().unwrap().metadata().unwrap();
    if mine.uid() == 0 {
        eprintln!(
            "skipped: root bypasses file permissions (the reliability suite covers other users)"
        );
        return;
    }
    let name = unique_name("eacces");
    let path = lock_file_path(&name);
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let err = Spec::new(&name).try_acquire().unwrap_err();
    let _ = std::fs::remove_file(&path);
    let text = err.to_string();
    assert!(
        text.contains(&format!("owned by uid {}", mine.uid())),
        "{text}"
    );
    assert!(text.contains("by root without sudo"), "{text}");
}
