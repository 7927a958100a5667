//! Fault 4, a bad lock directory: TMPDIR missing, a regular file, not
//! writable, on a read-only mount, or empty. Each acquisition (also one
//! without a timeout) ends at once with an error naming the path and the
//! cause, in a child that exits normally: no panic, no hang.
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::unique_name;
use faults::{spawn, Opts, User};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|_, _| false);
}

/// Runs `attempt` (try, then a separate acquire without timeout) with
/// `TMPDIR=tmpdir`, optionally as `user`; returns both result lines and
/// checks the path the child used.
fn attempt_both(name: &str, tmpdir: &Path, user: Option<&User>) -> [String; 2] {
    let mut out = Vec::new();
    for how in ["try", "acquire"] {
        let mut opts = Opts::default()
            .env("TMPDIR", tmpdir.as_os_str())
            .env("MM_ATTEMPT", how);
        if let Some(user) = user {
            opts = opts.user(user);
        }
        let mut child = spawn("attempt", name, opts);
        let path = child.expect_line("path");
        assert_eq!(
            PathBuf::from(&path),
            faults::lock_path_in(tmpdir, name),
            "lock path"
        );
        out.push(child.expect_line("result"));
        assert!(child.finish().success(), "the child exits normally");
    }
    [out.remove(0), out.remove(0)]
}

fn assert_io_error(results: &[String; 2], path: &Path, cause: &str, hint: &str) {
    for line in results {
        assert!(line.starts_with("Io: cannot "), "{line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains(cause), "{line} lacks {cause:?}");
        assert!(line.contains(hint), "{line} lacks {hint:?}");
    }
}

/// TMPDIR names a directory that does not exist.
#[test]
fn tmpdir_missing() {
    let dir = faults::open_tempdir();
    let missing = dir.path().join("missing");
    let name = unique_name("dir-missing");
    let results = attempt_both(&name, &missing, None);
    eprintln!("{results:?}");
    assert_io_error(
        &results,
        &faults::lock_path_in(&missing, &name),
        "No such file or directory",
        "does not exist; check TMPDIR",
    );
    assert!(!missing.exists(), "nothing was created");
}

/// TMPDIR names a directory that exists but cannot hold files (/proc):
/// the hint does not claim it is missing (found by a review helper).
#[cfg(target_os = "linux")]
#[test]
fn tmpdir_that_cannot_hold_files() {
    let proc_dir = Path::new("/proc");
    let name = unique_name("dir-proc");
    let results = attempt_both(&name, proc_dir, None);
    eprintln!("{results:?}");
    assert_io_error(
        &results,
        &faults::lock_path_in(proc_dir, &name),
        "No such file or directory",
        "/proc cannot hold lock files; set TMPDIR",
    );
}

/// TMPDIR names a regular file.
#[test]
fn tmpdir_is_a_regular_file() {
    let dir = faults::open_tempdir();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let name = unique_name("dir-file");
    let results = attempt_both(&name, &file, None);
    eprintln!("{results:?}");
    assert_io_error(
        &results,
        &faults::lock_path_in(&file, &name),
        "Not a directory",
        "is not a directory; check TMPDIR",
    );
}

/// TMPDIR is not writable (mode 0555). Root ignores modes, so as root the
/// child runs as a throwaway user.
#[test]
fn tmpdir_not_writable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = faults::open_tempdir();
    let locked = dir.path().join("ro");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let user = if faults::is_root() {
        Some(User::create())
    } else {
        None
    };
    let name = unique_name("dir-ro");
    let results = attempt_both(&name, &locked, user.as_ref());
    eprintln!("{results:?}");
    assert_io_error(
        &results,
        &faults::lock_path_in(&locked, &name),
        "Permission denied",
        "is not writable by this user; set TMPDIR to one that is",
    );
}

/// A tmpfs mounted here for the test, unmounted (lazily) on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Option<Mount> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(at)
            .status()
            .map_or(false, |s| s.success());
        ok.then(|| Mount(at.to_owned()))
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// TMPDIR on a read-only mount (root: mounts a tmpfs, then remounts it
/// read-only). A lock file made before the remount still locks (flock needs
/// no write access; the timestamp refresh fails quietly); a missing one
/// cannot be created: EROFS, named as such.
#[test]
fn tmpdir_on_a_read_only_mount() {
    if faults::skip_unless_root("tmpdir_on_a_read_only_mount", "mounts a tmpfs") {
        return;
    }
    let dir = faults::open_tempdir();
    let at = dir.path().join("mnt");
    std::fs::create_dir(&at).unwrap();
    let mount = match Mount::tmpfs(&at) {
        Some(mount) => mount,
        None => {
            eprintln!("SKIPPED tmpdir_on_a_read_only_mount: mount -t tmpfs failed here");
            return;
        }
    };
    let existing = unique_name("ro-existing");
    let mut maker = spawn(
        "attempt",
        &existing,
        Opts::default().env("TMPDIR", at.as_os_str()),
    );
    assert_eq!(maker.expect_line("result"), "ok");
    assert!(maker.finish().success());
    mount.remount_read_only();

    let mut holder = spawn(
        "attempt",
        &existing,
        Opts::default()
            .env("TMPDIR", at.as_os_str())
            .env("MM_HOLD", "1"),
    );
    assert_eq!(holder.expect_line("result"), "ok", "existing file locks");
    let mut second = spawn(
        "attempt",
        &existing,
        Opts::default()
            .env("TMPDIR", at.as_os_str())
            .env("MM_ATTEMPT", "try"),
    );
    assert_eq!(second.expect_line("result"), "WouldBlock", "and excludes");
    assert!(second.finish().success());
    holder.close_stdin();
    holder.expect_line("released");
    assert!(holder.finish().success());

    let missing = unique_name("ro-missing");
    let results = attempt_both(&missing, &at, None);
    eprintln!("{results:?}");
    assert_io_error(
        &results,
        &faults::lock_path_in(&at, &missing),
        "Read-only file system",
        "is on a read-only file system; set TMPDIR elsewhere",
    );
    drop(mount);
}

/// An empty TMPDIR means /tmp, as for Go's os.TempDir (std::env::temp_dir
/// would return "" and put the lock file in the current directory, where
/// processes started elsewhere would not see it): the child holds the mutex
/// through /tmp/juju-NAME and leaves its working directory empty.
#[test]
fn empty_tmpdir_means_slash_tmp() {
    let cwd = faults::open_tempdir();
    let name = unique_name("dir-empty");
    let mut holder = spawn(
        "attempt",
        &name,
        Opts::default()
            .env("TMPDIR", "")
            .env("MM_HOLD", "1")
            .cwd(cwd.path()),
    );
    let path = holder.expect_line("path");
    assert_eq!(path, format!("/tmp/juju-{name}"));
    assert_eq!(holder.expect_line("result"), "ok");
    // A process with TMPDIR unset sees it held.
    let mut other = spawn("attempt", &name, Opts::default().env("MM_ATTEMPT", "try"));
    assert_eq!(other.expect_line("result"), "WouldBlock");
    assert!(other.finish().success());
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "created in the working directory: {left:?}"
    );
    holder.close_stdin();
    assert!(holder.finish().success());
}
