//! Faults 5 and 7, other users (root only: throwaway users made with
//! useradd, children run as them with setpriv): a lock file of another user
//! with mode 0600, one made by root with and without the SUDO_* variables,
//! and `fs.protected_regular=2` with another user's file in a sticky
//! directory. Each case works, or fails at once with an error naming the
//! path, the owner and what to do.
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::unique_name;
use faults::{spawn, Opts, User};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|_, _| false);
}

/// A world-writable sticky directory (mode 1777, owned by root), like /tmp.
fn sticky_dir() -> tempfile::TempDir {
    let dir = faults::open_tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// One `attempt` child in `dir` (as `user`, or root), with extra `env`.
/// Returns its result line.
fn attempt(
    name: &str,
    dir: &Path,
    user: Option<&User>,
    how: &str,
    env: &[(&'static str, String)],
) -> String {
    let mut opts = Opts::default()
        .env("TMPDIR", dir.as_os_str())
        .env("MM_ATTEMPT", how.to_owned())
        // Never inherit the caller's sudo variables.
        .env("SUDO_COMMAND", "");
    for (k, v) in env {
        opts = opts.env(k, v.clone());
    }
    if let Some(user) = user {
        opts = opts.user(user);
    }
    let mut child = spawn("attempt", name, opts);
    let result = child.expect_line("result");
    assert!(child.finish().success());
    result
}

fn sudo_env(user: &User) -> Vec<(&'static str, String)> {
    vec![
        ("SUDO_COMMAND", "/usr/bin/true".to_owned()),
        ("SUDO_UID", user.uid.to_string()),
        ("SUDO_GID", user.gid.to_string()),
    ]
}

fn owner(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Both a try and an acquisition without timeout fail at once with EACCES,
/// naming the path, the owner, the mode and the advice.
fn assert_denied(name: &str, dir: &Path, user: &User, owner_text: &str, advice: &str) {
    let path = faults::lock_path_in(dir, name);
    for how in ["try", "acquire"] {
        let line = attempt(name, dir, Some(user), how, &[]);
        eprintln!("{line}");
        assert!(line.starts_with("Io: cannot open lock file"), "{line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains("Permission denied"), "{line}");
        assert!(line.contains(owner_text), "{line} lacks {owner_text:?}");
        assert!(line.contains("mode 0600"), "{line}");
        assert!(line.contains(advice), "{line} lacks {advice:?}");
    }
}

/// A user's lock file (mode 0600) in a sticky directory: a second user is
/// refused at once with the owner's uid and what to do; root may use it.
#[test]
fn lock_file_of_another_user() {
    if faults::skip_unless_root("lock_file_of_another_user", "creates users") {
        return;
    }
    let (a, b) = (User::create(), User::create());
    let dir = sticky_dir();
    let name = unique_name("user-other");
    assert_eq!(attempt(&name, dir.path(), Some(&a), "try", &[]), "ok");
    let path = faults::lock_path_in(dir.path(), &name);
    assert_eq!(owner(&path), (a.uid, a.gid, 0o600));
    assert_denied(
        &name,
        dir.path(),
        &b,
        &format!("owned by uid {}", a.uid),
        "another user made this lock file; use another name or TMPDIR",
    );
    assert_eq!(attempt(&name, dir.path(), None, "try", &[]), "ok", "root");
    assert_eq!(owner(&path), (a.uid, a.gid, 0o600), "root changed nothing");
}

/// A lock file made by root without sudo is root's, mode 0600: a user is
/// refused at once and told to remove it with sudo. Under sudo (SUDO_*
/// set), root gives a new file, and an existing one of its own, to
/// SUDO_UID/SUDO_GID, after which that user can use it.
#[test]
fn lock_file_made_by_root_with_and_without_sudo() {
    if faults::skip_unless_root(
        "lock_file_made_by_root_with_and_without_sudo",
        "creates users",
    ) {
        return;
    }
    let user = User::create();
    let dir = sticky_dir();

    let plain = unique_name("user-root");
    assert_eq!(attempt(&plain, dir.path(), None, "try", &[]), "ok");
    let path = faults::lock_path_in(dir.path(), &plain);
    assert_eq!(owner(&path), (0, 0, 0o600));
    assert_denied(
        &plain,
        dir.path(),
        &user,
        "owned by root (uid 0)",
        &format!(
            "created by root without sudo; remove it (`sudo rm {}`)",
            path.display()
        ),
    );
    // The same existing file, acquired by root under sudo, goes to the user.
    assert_eq!(
        attempt(&plain, dir.path(), None, "try", &sudo_env(&user)),
        "ok"
    );
    assert_eq!(owner(&path), (user.uid, user.gid, 0o600));
    assert_eq!(
        attempt(&plain, dir.path(), Some(&user), "acquire", &[]),
        "ok"
    );

    let fresh = unique_name("user-sudo");
    assert_eq!(
        attempt(&fresh, dir.path(), None, "acquire", &sudo_env(&user)),
        "ok"
    );
    let path = faults::lock_path_in(dir.path(), &fresh);
    assert_eq!(owner(&path), (user.uid, user.gid, 0o600));
    assert_eq!(attempt(&fresh, dir.path(), Some(&user), "try", &[]), "ok");
}

/// Under sudo, root never gives away a file that has another link: a hard
/// link planted at the lock path (here to a root file of the same
/// directory) keeps its owner.
#[test]
fn sudo_never_chowns_a_hard_linked_file() {
    if faults::skip_unless_root("sudo_never_chowns_a_hard_linked_file", "creates users") {
        return;
    }
    let user = User::create();
    let dir = sticky_dir();
    let name = unique_name("user-link");
    let precious = dir.path().join("precious");
    std::fs::write(&precious, b"root's").unwrap();
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(&precious, faults::lock_path_in(dir.path(), &name)).unwrap();
    assert_eq!(
        attempt(&name, dir.path(), None, "try", &sudo_env(&user)),
        "ok"
    );
    assert_eq!(owner(&precious), (0, 0, 0o600));
}

/// Under sudo, a waiter gives the file away only once it holds the lock:
/// never while another process (here: this test's root holder) holds it,
/// since the wait could still fail or be given up. Juju/mutex v2 chowns at
/// open, before its flock; a user given the file could remove it in a
/// sticky directory and lock a new one while root's hold lasts.
#[test]
fn sudo_waiter_gives_the_file_away_only_once_it_holds_the_lock() {
    if faults::skip_unless_root(
        "sudo_waiter_gives_the_file_away_only_once_it_holds_the_lock",
        "chowns to another uid",
    ) {
        return;
    }
    let name = unique_name("user-sudo-wait");
    let path = machine_mutex::lock_file_path(&name);
    let held = machine_mutex::Spec::new(&name).acquire().unwrap();
    let ino = faults::inode(&path);
    let waiter = {
        let name = name.clone();
        std::thread::spawn(move || {
            let env = machine_mutex::FixedEnvironment::new([
                ("SUDO_COMMAND", "/usr/bin/true"),
                ("SUDO_UID", "4242"),
                ("SUDO_GID", "4343"),
            ]);
            machine_mutex::Spec::new(&name)
                .with_environment(env)
                .acquire()
                .map(drop)
        })
    };
    faults::wait_until("the waiter sleeps in flock", || {
        faults::has_flock(std::process::id(), ino, true)
    });
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "given away during the wait"
    );
    drop(held);
    waiter.join().unwrap().expect("acquired");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "given once held");
}

/// Sets a sysctl for the life of the guard, restoring the old value.
struct Sysctl {
    path: &'static str,
    old: String,
}

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Option<Sysctl> {
        let old = std::fs::read_to_string(path).ok()?;
        std::fs::write(path, value).ok()?;
        Some(Sysctl { path, old })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, self.old.trim());
    }
}

/// Opens `path` as juju/mutex does: O_CREAT | O_RDONLY | O_CLOEXEC, 0600.
fn open_like_go(path: &Path) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; the descriptor is closed at once.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_RDONLY | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    unsafe { libc::close(fd) };
    Ok(())
}

/// `fs.protected_regular=2` (set for the test, then restored): in a sticky
/// directory, O_CREAT on an existing file of another user fails even for
/// root and even where the mode allows the open — the Go package's open
/// fails here. machine-mutex opens an existing file without O_CREAT, so
/// root and a second user both lock user A's file (mode 0644), and exclude
/// each other.
#[test]
fn protected_regular_sticky_dir() {
    if faults::skip_unless_root(
        "protected_regular_sticky_dir",
        "creates users and sets fs.protected_regular",
    ) {
        return;
    }
    let _sysctl = match Sysctl::set("/proc/sys/fs/protected_regular", "2") {
        Some(guard) => guard,
        None => {
            eprintln!("SKIPPED protected_regular_sticky_dir: cannot set fs.protected_regular");
            return;
        }
    };
    let (a, b) = (User::create(), User::create());
    let dir = sticky_dir();
    let name = unique_name("user-protected");
    assert_eq!(attempt(&name, dir.path(), Some(&a), "try", &[]), "ok");
    let path = faults::lock_path_in(dir.path(), &name);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    let go_style = open_like_go(&path).expect_err("protected_regular is in force");
    assert_eq!(go_style.raw_os_error(), Some(libc::EACCES), "{go_style}");

    let mut root_holds = spawn(
        "attempt",
        &name,
        Opts::default()
            .env("TMPDIR", dir.path().as_os_str())
            .env("SUDO_COMMAND", "")
            .env("MM_HOLD", "1"),
    );
    assert_eq!(
        root_holds.expect_line("result"),
        "ok",
        "root locks A's file"
    );
    assert_eq!(
        attempt(&name, dir.path(), Some(&b), "try", &[]),
        "WouldBlock",
        "user B sees root's hold"
    );
    root_holds.close_stdin();
    root_holds.expect_line("released");
    assert!(root_holds.finish().success());
    assert_eq!(
        attempt(&name, dir.path(), Some(&b), "acquire", &[]),
        "ok",
        "user B locks A's file"
    );
    assert_eq!(owner(&path), (a.uid, a.gid, 0o644));
}
