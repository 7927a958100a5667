//! Fault 8, strange lock files: the lock path is a directory, a symbolic
//! link (out of the temp dir, inside it, dangling), a FIFO, a device, or a
//! file with mode 0000. Each gives a clear error at once (also to an
//! acquisition without timeout: nothing blocks) or locks correctly. A
//! symbolic link is never followed (see RELIABILITY.md, "symlink policy").
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::unique_name;
use faults::{describe, fds_and_threads, say, spawn, Opts, User};
use machine_mutex::{lock_file_path, Spec};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "wait-counted" => wait_counted(name),
            _ => return false,
        }
        true
    });
}

/// Runs `attempt` (a try, then an acquisition without timeout) in `dir`,
/// optionally as `user` or with extra environment; returns both results.
fn attempts(
    name: &str,
    dir: &Path,
    user: Option<&User>,
    env: &[(&'static str, &str)],
) -> Vec<String> {
    ["try", "acquire"]
        .iter()
        .map(|how| {
            let mut opts = Opts::default()
                .env("TMPDIR", dir.as_os_str())
                .env("MM_ATTEMPT", *how);
            for (k, v) in env {
                opts = opts.env(k, *v);
            }
            if let Some(user) = user {
                opts = opts.user(user);
            }
            let mut child = spawn("attempt", name, opts);
            let line = child.expect_line("result");
            assert!(child.finish().success());
            line
        })
        .collect()
}

fn assert_all(lines: &[String], path: &Path, parts: &[&str]) {
    for line in lines {
        eprintln!("{line}");
        assert!(line.starts_with("Io: cannot "), "{line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        for part in parts {
            assert!(line.contains(part), "{line} lacks {part:?}");
        }
    }
}

/// A directory at the lock path: refused as not a regular file (the Go
/// package fails too: O_CREAT on a directory is EISDIR), left as it is.
#[test]
fn lock_path_is_a_directory() {
    let dir = faults::open_tempdir();
    let name = unique_name("strange-dir");
    let path = faults::lock_path_in(dir.path(), &name);
    std::fs::create_dir(&path).unwrap();
    assert_all(
        &attempts(&name, dir.path(), None, &[]),
        &path,
        &[
            "not a regular file",
            "the lock path is a directory",
            "remove it",
        ],
    );
    assert!(path.is_dir());
}

/// A symbolic link at the lock path, pointing out of the temp dir, inside
/// it, or nowhere: never followed (O_NOFOLLOW), refused with advice; the
/// target is neither created, nor touched, nor (under sudo) given away.
#[test]
fn lock_path_is_a_symlink() {
    let dir = faults::open_tempdir();
    let elsewhere = faults::open_tempdir();
    let outside = elsewhere.path().join("precious");
    std::fs::write(&outside, b"keep").unwrap();
    let inside = dir.path().join("inside");
    std::fs::write(&inside, b"").unwrap();
    let dangling = elsewhere.path().join("not-there");
    let sudo: &[(&str, &str)] = &[
        ("SUDO_COMMAND", "/usr/bin/true"),
        ("SUDO_UID", "12345"),
        ("SUDO_GID", "12345"),
    ];
    for (what, target) in [
        ("outside", &outside),
        ("inside", &inside),
        ("dangling", &dangling),
    ] {
        let name = unique_name(&format!("strange-link-{what}"));
        let path = faults::lock_path_in(dir.path(), &name);
        std::os::unix::fs::symlink(target, &path).unwrap();
        let before = std::fs::metadata(target).ok().map(|m| (m.uid(), m.mtime()));
        assert_all(
            &attempts(&name, dir.path(), None, sudo),
            &path,
            &[
                "the lock path is a symbolic link",
                "does not follow links",
                "remove it",
            ],
        );
        let after = std::fs::metadata(target).ok().map(|m| (m.uid(), m.mtime()));
        assert_eq!(before, after, "{what}: target untouched");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert!(
        !dangling.exists(),
        "nothing created through the dangling link"
    );
}

/// A FIFO at the lock path: opening it does not block (O_NONBLOCK), and it
/// is refused as not a regular file, also by an acquisition without timeout.
#[test]
fn lock_path_is_a_fifo() {
    let dir = faults::open_tempdir();
    let name = unique_name("strange-fifo");
    let path = faults::lock_path_in(dir.path(), &name);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_all(
        &attempts(&name, dir.path(), None, &[]),
        &path,
        &["not a regular file", "the lock path is a FIFO"],
    );
}

/// A character device at the lock path (root: mknod of /dev/null's
/// numbers): refused, never used as a lock.
#[test]
fn lock_path_is_a_device() {
    if faults::skip_unless_root("lock_path_is_a_device", "mknod") {
        return;
    }
    let dir = faults::open_tempdir();
    let name = unique_name("strange-dev");
    let path = faults::lock_path_in(dir.path(), &name);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; makedev(1, 3) is /dev/null.
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) },
        0
    );
    assert_all(
        &attempts(&name, dir.path(), None, &[]),
        &path,
        &["not a regular file", "the lock path is a character device"],
    );
}

/// A lock file with mode 0000. Root may open it regardless and locks it
/// correctly (a second root process is excluded). Its owner, not root, is
/// refused at once and told to chmod it. (Without root, the test runs the
/// owner case as itself.)
#[test]
fn lock_file_with_mode_0000() {
    let dir = faults::open_tempdir();
    let user = if faults::is_root() {
        Some(User::create())
    } else {
        None
    };
    let name = unique_name("strange-0000");
    let path = faults::lock_path_in(dir.path(), &name);
    std::fs::write(&path, b"").unwrap();
    if let Some(user) = &user {
        std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid)).unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let lines = attempts(&name, dir.path(), user.as_ref(), &[]);
    assert_all(
        &lines,
        &path,
        &[
            "Permission denied",
            "owned by this user",
            "mode 0000",
            &format!("run `chmod 600 {}`", path.display()),
        ],
    );
    if user.is_some() {
        let mut holder = spawn(
            "attempt",
            &name,
            Opts::default()
                .env("TMPDIR", dir.path().as_os_str())
                .env("MM_HOLD", "1"),
        );
        assert_eq!(holder.expect_line("result"), "ok", "root locks it");
        let mut second = spawn(
            "attempt",
            &name,
            Opts::default()
                .env("TMPDIR", dir.path().as_os_str())
                .env("MM_ATTEMPT", "try"),
        );
        assert_eq!(second.expect_line("result"), "WouldBlock", "and excludes");
        assert!(second.finish().success());
        holder.close_stdin();
        assert!(holder.finish().success());
    }
}

/// Role `wait-counted`: counts descriptors and threads, prints `waiting`,
/// acquires (no timeout, no legacy socket), prints `result OUTCOME`; then
/// waits until the counts are back to where they were (the kernel waiter
/// thread has ended) and prints `counts`.
fn wait_counted(name: &str) {
    let (f0, t0) = fds_and_threads();
    say("waiting");
    let result = Spec::new(name).with_legacy_socket(false).acquire();
    say(&format!("result {}", describe(&result)));
    drop(result);
    faults::wait_until("the kernel waiter has ended", || {
        fds_and_threads() == (f0, t0)
    });
    say(&format!("counts {f0} {t0}"));
}

/// The lock file is replaced by a directory while a process waits for it:
/// when the holder releases, the kernel waiter finds the old file removed,
/// reopens the path, refuses the directory and hands that error to the
/// waiter, which returns it (no hang); the kernel waiter thread ends and no
/// descriptor is left open.
#[test]
fn replaced_by_a_directory_while_waiting() {
    let name = unique_name("strange-replaced");
    let path = lock_file_path(&name);
    let held = Spec::new(&name)
        .with_legacy_socket(false)
        .acquire()
        .unwrap();
    let ino = faults::inode(&path);
    let mut child = spawn("wait-counted", &name, Opts::default());
    child.expect_line("waiting");
    let pid = child.pid();
    faults::wait_until("the child waits in flock", || {
        faults::has_flock(pid, ino, true)
    });
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    drop(held);
    let result = child.expect_line("result");
    eprintln!("{result}");
    assert!(
        result.starts_with("Io: cannot use lock file") && result.contains("a directory"),
        "{result}"
    );
    child.expect_line("counts");
    assert!(child.finish().success());
    std::fs::remove_dir(&path).unwrap();
    // With the directory gone the name works again.
    drop(
        Spec::new(&name)
            .with_timeout(Duration::from_secs(60))
            .acquire()
            .unwrap(),
    );
}
