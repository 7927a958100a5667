//! `holder()`: who holds a mutex, with real processes and real lock files.
//! Children run this binary in a role (see tests/common/mod.rs) or are
//! ordinary programs (`sleep`, util-linux `flock`); the parent waits for
//! their lines, never sleeps.

// Tests build with current stable (abstract socket addresses need 1.70);
// only the library keeps to 1.63.
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::io::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{spawn_child, unique_name};
use machine_mutex::{holder, lock_file_path, Error, HeldLock, Spec};

/// The entry point of child processes: this file's roles first, then the
/// common ones.
#[test]
#[ignore]
fn child_process_entry() {
    let role = std::env::var("MM_TEST_ROLE").unwrap_or_default();
    if role == "flock-share" {
        flock_share();
    } else if role == "legacy-bind" {
        legacy_bind();
    } else if role == "fork-intermediate" {
        fork_intermediate();
    } else if role == "linger" {
        linger();
    } else {
        common::child_main();
    }
}

/// Role `flock-share`: flock the lock file on a descriptor that a `sleep`
/// started now inherits (one open file description, as after fork), close
/// this process's copy, print "shared SLEEP_PID", and live on until stdin
/// closes. /proc/locks keeps listing this process, which no longer has
/// the lock.
fn flock_share() {
    let name = std::env::var("MM_TEST_NAME").unwrap();
    let file = fs::File::open({
        let path = lock_file_path(&name);
        fs::write(&path, "").unwrap();
        path
    })
    .unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).unwrap();
    // Inherited across exec. Alone in this process (one test thread), so
    // no other child can inherit it by accident.
    rustix::io::fcntl_setfd(file.as_fd(), rustix::io::FdFlags::empty()).unwrap();
    // Left running on purpose (the parent kills it); this process never waits for it.
    #[allow(clippy::zombie_processes)]
    let sleeper = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    drop(file);
    let mut out = std::io::stdout();
    writeln!(out, "\nshared {}", sleeper.id()).unwrap();
    out.flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Role `legacy-bind`: bind the legacy abstract socket of the name only
/// (as juju/mutex v1 did), print "bound PID", keep it until stdin closes,
/// then print "unbound". In a child process, so that no process forked
/// meanwhile by another test can keep a copy of the socket.
fn legacy_bind() {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixListener};

        let name = std::env::var("MM_TEST_NAME").unwrap();
        let socket = format!("/var/lib/juju/mutex-/{name}");
        let addr = SocketAddr::from_abstract_name(socket.as_bytes()).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "\nbound {}", std::process::id()).unwrap();
        out.flush().unwrap();
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        drop(listener);
        writeln!(out, "\nunbound").unwrap();
        out.flush().unwrap();
    }
}

/// Kills a process that is not our child (or is) when the test ends.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Kills a process that is not our child if the test fails; nothing when
/// it passes (the process has ended by then and its pid may be reused).
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            drop(KillOnDrop(self.0));
        }
    }
}

/// Waits (in the kernel, no polling) until the mutex can be taken, then
/// releases it: the holder has gone.
fn wait_until_free(name: &str) {
    let mut guard = Spec::new(name)
        .with_legacy_socket(false)
        .with_timeout(Duration::from_secs(60))
        .acquire()
        .expect("the holder should have released");
    guard.release().unwrap();
}

fn strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// A free mutex has no holder, and asking creates no lock file.
#[test]
fn free_mutex_has_no_holder_and_query_creates_nothing() {
    let name = unique_name("holder-free");
    let path = lock_file_path(&name);
    assert_eq!(holder(&name).unwrap(), None);
    assert!(!path.exists(), "holder() created {}", path.display());
    // An existing, unlocked lock file is free too.
    fs::write(&path, "").unwrap();
    assert_eq!(holder(&name).unwrap(), None);
    fs::remove_file(path).unwrap();
}

#[test]
fn invalid_names_are_rejected_before_anything_is_touched() {
    for bad in ["", "4x", "a/b", "a b", &"a".repeat(41)] {
        assert!(matches!(holder(bad), Err(Error::InvalidSpec(_))), "{bad:?}");
    }
}

/// The holder is another process: its pid and its command line (this test
/// binary, run in the "hold" role) are reported; after it releases, free.
#[test]
fn holder_in_another_process_is_named_with_its_command_line() {
    let name = unique_name("holder-child");
    let mut child = spawn_child("hold", &name, &[]);
    let pid: u32 = child.expect_line("locked").parse().unwrap();
    assert_eq!(pid, child.child.id());

    let found = holder(&name).unwrap().expect("the child holds it");
    assert_eq!(found.pid(), Some(pid));
    assert_eq!(found.lock(), HeldLock::LockFile);
    let command = strings(found.command_line().expect("command line"));
    let exe = std::env::current_exe().unwrap();
    assert_eq!(command[0], exe.to_string_lossy());
    assert!(
        command.iter().any(|a| a == "child_process_entry"),
        "{command:?}"
    );
    assert!(found.to_string().starts_with(&format!("PID {pid} (")));

    child.release();
    child.expect_line("released");
    assert!(child.finish().0.success());
    assert_eq!(holder(&name).unwrap(), None);
    let _ = fs::remove_file(lock_file_path(&name));
}

/// A lock file deleted while held reads as free (new acquirers create a new
/// file and do not wait for the old holder), and so does a new file put in
/// its place; a holder of the new file is the one named.
#[test]
fn deleted_or_replaced_lock_file_reads_as_its_current_file() {
    let name = unique_name("holder-replaced");
    let path = lock_file_path(&name);
    let mut child = spawn_child("hold", &name, &[("MM_TEST_LEGACY", "0")]);
    let old_holder: u32 = child.expect_line("locked").parse().unwrap();
    assert_eq!(holder(&name).unwrap().unwrap().pid(), Some(old_holder));

    fs::remove_file(&path).unwrap();
    assert_eq!(holder(&name).unwrap(), None);
    assert!(!path.exists(), "holder() recreated the lock file");

    fs::write(&path, "").unwrap();
    assert_eq!(holder(&name).unwrap(), None);

    let mut guard = Spec::new(&name)
        .with_legacy_socket(false)
        .try_acquire()
        .expect("the new file is free although the old holder still runs");
    let found = holder(&name).unwrap().unwrap();
    assert_eq!(found.pid(), Some(std::process::id()));
    guard.release().unwrap();

    child.release();
    child.expect_line("released");
    let _ = fs::remove_file(&path);
}

/// util-linux flock(1) takes the lock and runs this binary (role
/// `fork-intermediate`), which inherits the descriptor and starts another
/// copy (role `linger`) that inherits it too; then both the intermediate and
/// flock(1) exit. /proc/locks still lists flock(1)'s pid; the process
/// holding the lock now is the lingering one, and it is reported.
#[test]
fn lock_kept_by_a_forked_process_after_the_locker_exited() {
    let name = unique_name("holder-fork");
    let path = lock_file_path(&name);
    let mut flock = Command::new("flock")
        .arg(&path)
        .arg(std::env::current_exe().unwrap())
        .args(CHILD_ARGS)
        .env("MM_TEST_ROLE", "fork-intermediate")
        .env("MM_TEST_NAME", &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("util-linux flock(1)");
    let mut stdout = BufReader::new(flock.stdout.take().unwrap());
    let lingering: u32 = expect_line(&mut stdout, "grandchild").parse().unwrap();
    let _kill = KillOnPanic(lingering);
    let locker = flock.id();
    // flock(1), the process that called flock(2), exits with the intermediate.
    let stdin = flock.stdin.take();
    assert!(flock.wait().unwrap().success());

    let found = holder(&name)
        .unwrap()
        .expect("the lingering process holds it");
    assert_ne!(found.pid(), Some(locker), "reported the exited locker");
    assert_eq!(found.pid(), Some(lingering));
    let command = strings(found.command_line().unwrap());
    assert_eq!(
        command[0],
        std::env::current_exe().unwrap().to_string_lossy()
    );

    // End of its stdin (shared with flock(1) and the intermediate): it exits.
    drop(stdin);
    // Blocks until the kernel released the lock. (No holder() check after
    // it: this process's own descriptor may live on for an instant in a
    // child another test forks.)
    wait_until_free(&name);
    let _ = fs::remove_file(&path);
}

/// The arguments that make this binary run `child_process_entry` only.
const CHILD_ARGS: [&str; 5] = [
    "--ignored",
    "--exact",
    "child_process_entry",
    "--nocapture",
    "--test-threads=1",
];

/// Reads lines until one starts with `keyword`; returns the rest of it.
fn expect_line(reader: &mut impl BufRead, keyword: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "ended before {keyword:?}"
        );
        if let Some(rest) = line.trim().strip_prefix(keyword) {
            return rest.trim().to_owned();
        }
    }
}

/// Role `fork-intermediate` (run by flock(1), its lock descriptor
/// inherited): start the `linger` role, which inherits the descriptor and
/// this process's stdin, wait until it runs, print "grandchild PID", exit.
fn fork_intermediate() {
    // Outlives this process on purpose: it keeps the lock after we exit.
    #[allow(clippy::zombie_processes)]
    let mut lingering = Command::new(std::env::current_exe().unwrap())
        .args(CHILD_ARGS)
        .env("MM_TEST_ROLE", "linger")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(lingering.stdout.take().unwrap());
    let pid = expect_line(&mut stdout, "lingering");
    let mut out = std::io::stdout();
    writeln!(out, "\ngrandchild {pid}").unwrap();
    out.flush().unwrap();
}

/// Role `linger`: print "lingering PID", then live until stdin closes.
fn linger() {
    let mut out = std::io::stdout();
    writeln!(out, "\nlingering {}", std::process::id()).unwrap();
    out.flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    // Its stdout was a pipe to the intermediate, long gone: end here, before
    // the test harness prints its summary into that closed pipe.
    std::process::exit(0);
}

/// The locker lives on but closed its descriptor; the process it shared the
/// open file description with holds the lock and is reported.
#[test]
fn lock_kept_by_a_sharer_while_the_locker_lives_on() {
    let name = unique_name("holder-share");
    let mut child = spawn_child("flock-share", &name, &[]);
    let sleeper: u32 = child.expect_line("shared").parse().unwrap();
    let kill = KillOnDrop(sleeper);

    let found = holder(&name).unwrap().expect("sleep holds it");
    assert_eq!(found.pid(), Some(sleeper));
    assert_ne!(found.pid(), Some(child.child.id()));

    drop(kill);
    wait_until_free(&name);
    child.release();
    let _ = child.finish();
    let _ = fs::remove_file(lock_file_path(&name));
}

/// `Spec::holder` answers as `holder()` of the spec's name (the namespace
/// counts on Windows only): free, then held by a child, then free.
#[test]
fn spec_holder_answers_as_holder() {
    let name = unique_name("spec-holder");
    let spec = Spec::new(&name);
    assert_eq!(spec.holder().unwrap(), None);
    let mut child = spawn_child("hold", &name, &[]);
    let pid: u32 = child.expect_line("locked").parse().unwrap();
    let found = spec.holder().unwrap().expect("held");
    assert_eq!(found.pid(), Some(pid));
    assert_eq!(Some(found), holder(&name).unwrap());
    child.release();
    child.expect_line("released");
    let _ = child.finish();
    assert_eq!(spec.holder().unwrap(), None);
    assert!(matches!(
        Spec::new("1-bad").holder(),
        Err(Error::InvalidSpec(_))
    ));
}

/// A process holding only the legacy abstract socket (as juju/mutex v1
/// did) is reported as such when the lock file is free.
#[cfg(target_os = "linux")]
#[test]
fn legacy_socket_holder_is_reported() {
    let name = unique_name("holder-legacy");
    let mut child = spawn_child("legacy-bind", &name, &[]);
    let pid: u32 = child.expect_line("bound").parse().unwrap();

    let found = holder(&name).unwrap().expect("the socket is bound");
    assert_eq!(found.lock(), HeldLock::LegacySocket);
    assert_eq!(found.pid(), Some(pid));
    assert!(found.to_string().ends_with("through the legacy socket"));
    assert!(!lock_file_path(&name).exists());

    child.release();
    child.expect_line("unbound");
    assert_eq!(holder(&name).unwrap(), None);
}

/// A process of this crate that has taken the flock but still waits for the
/// legacy socket, which a juju/mutex v1 process has bound, is not the
/// holder: the v1 process is reported (the waiting message of the CLI
/// named the waiter itself, found by a review helper).
#[cfg(target_os = "linux")]
#[test]
fn a_flock_holder_waiting_for_the_socket_is_not_reported() {
    let name = unique_name("holder-v1-first");
    let mut v1 = spawn_child("legacy-bind", &name, &[]);
    let v1_pid: u32 = v1.expect_line("bound").parse().unwrap();
    let mut waiter = spawn_child("acquire", &name, &[]);
    waiter.expect_line("started");
    let waiter_pid = waiter.child.id();
    // Until /proc/locks shows the waiter granted the flock (it then polls
    // the socket every `delay`).
    let path = lock_file_path(&name);
    faults::wait_until("the waiter holds the flock", || {
        path.exists() && faults::has_flock(waiter_pid, faults::inode(&path), false)
    });

    let found = holder(&name).unwrap().expect("held");
    assert_eq!(found.lock(), HeldLock::LegacySocket, "{found}");
    assert_eq!(found.pid(), Some(v1_pid), "{found}");

    v1.release();
    v1.expect_line("unbound");
    waiter.expect_line("acquired");
    let _ = waiter.finish();
    let _ = v1.finish();
    assert_eq!(holder(&name).unwrap(), None);
}

/// A lock path that no acquisition would lock (a symbolic link, a
/// directory) is an error naming the path, not "free".
#[test]
fn strange_lock_paths_are_errors_not_free() {
    let name = unique_name("holder-link");
    let path = lock_file_path(&name);
    std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
    let err = holder(&name).unwrap_err();
    let _ = fs::remove_file(&path);
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    fs::create_dir(&path).unwrap();
    let err = holder(&name).unwrap_err();
    let _ = fs::remove_dir(&path);
    assert!(err.to_string().contains("a directory"), "{err}");
}
