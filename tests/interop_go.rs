//! Interoperability with the real Go package: juju/mutex v2 (Debian's
//! `golang-github-juju-mutex-dev`, 2.0.0) and, on Linux, the abstract-socket
//! lock of juju/mutex v1.
//!
//! The Go side is `tests/peers/go/mutexpeer` (built once per run by
//! `peers/go_peer.rs`). The Rust side is this test process or children
//! re-running this binary in a role (`tests/common`). The two sides report
//! through stdout lines and through one shared events file that every
//! process appends to with `O_APPEND`; the tests assert the order of the
//! events and never sleep to synchronise. Where a Rust waiter must be known
//! to be waiting, it uses a [`ManualClock`] and the test waits until it is
//! blocked on that clock.
//!
//! Without `go` or the juju/mutex sources, each test prints a skip reason and
//! passes; with `MACHINE_MUTEX_REQUIRE_INTEROP=1` it fails instead.
//!
//! The mapping from the Go package's own tests to ours is in
//! `docs/go-test-mapping.md`.
#![cfg(unix)]

mod common;
#[path = "peers/go_peer.rs"]
mod go_peer;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{append_event, events, stress_step, unique_name};
use go_peer::GoPeer;
use machine_mutex::{Error, ManualClock, Releaser, Spec};

/// Guard against a hanging test; never a synchronisation delay.
const LIMIT: Duration = Duration::from_secs(60);

/// Long enough never to pass during a test: waits end by hand-off or not at all.
const FOREVER: Duration = Duration::from_secs(3600);

/// The Go peer, or return from the test after the skip message.
macro_rules! go_peer_or_skip {
    () => {
        match go_peer::binary() {
            Some(peer) => peer,
            None => return,
        }
    };
}

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    if std::env::var("MM_TEST_ROLE").as_deref() == Ok("gated-stress") {
        gated_stress();
        return;
    }
    common::child_main();
}

/// Child role: print "ready", wait for one line on stdin, then
/// `MM_TEST_ITERS` critical sections on the counter file `MM_TEST_COUNTER`,
/// each under the mutex, and print "done".
fn gated_stress() {
    let name = std::env::var("MM_TEST_NAME").expect("MM_TEST_NAME");
    let iters: usize = std::env::var("MM_TEST_ITERS").unwrap().parse().unwrap();
    let counter = PathBuf::from(std::env::var_os("MM_TEST_COUNTER").expect("MM_TEST_COUNTER"));
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        // Leading newline: libtest has already printed "test ... " without one.
        writeln!(out, "\n{line}").unwrap();
        out.flush().unwrap();
    };
    say("ready");
    let mut start = String::new();
    std::io::stdin().read_line(&mut start).expect("start line");
    let spec = Spec::new(name);
    for _ in 0..iters {
        let guard = spec.acquire().expect("stress acquire");
        stress_step(&counter);
        drop(guard);
    }
    say("done");
}

/// Acquires `spec` on a thread, appending `rust-acquired` to `events` once it
/// holds the mutex. The result is read with [`joined`].
fn acquire_in_thread(spec: Spec, events: &Path) -> mpsc::Receiver<Result<Releaser, Error>> {
    let (tx, rx) = mpsc::channel();
    let events = events.to_owned();
    thread::spawn(move || {
        let result = spec.acquire();
        if result.is_ok() {
            append_event(&events, "rust-acquired");
        }
        let _ = tx.send(result);
    });
    rx
}

/// Starts this test binary again as a child in `role` (see
/// [`child_process_entry`]), with stdin and stdout piped like a Go peer.
fn spawn_rust_role(role: &str, name: &str, env: &[(&str, &OsStr)]) -> GoPeer {
    GoPeer::spawn_command(rust_role_command(role, name, env))
}

/// The command of [`spawn_rust_role`], to adjust before starting it.
fn rust_role_command(role: &str, name: &str, env: &[(&str, &OsStr)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current test binary"));
    cmd.args([
        "--ignored",
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("MM_TEST_ROLE", role)
    .env("MM_TEST_NAME", name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The result of [`acquire_in_thread`]; fails the test if it takes over [`LIMIT`].
fn joined(rx: mpsc::Receiver<Result<Releaser, Error>>) -> Result<Releaser, Error> {
    rx.recv_timeout(LIMIT)
        .expect("the Rust waiter did not finish in time")
}

fn os(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// Issue item 1 (Go `TestLockBlocks`, across languages): while a Go process
/// holds NAME, a Rust acquisition waits, and gets the mutex only after the Go
/// holder releases.
#[test]
fn go_holder_blocks_rust_until_release() {
    let peer = go_peer_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("events");
    let name = unique_name("go-holds");

    let mut go = GoPeer::spawn(
        &peer,
        &["hold", &name, "--events", &ev.to_string_lossy()],
        &[],
    );
    go.expect_line("waiting");
    go.expect_line("acquired");

    let spec = Spec::new(&name);
    assert!(
        matches!(spec.try_acquire(), Err(Error::WouldBlock)),
        "Rust got the mutex while Go holds it"
    );
    let err = spec
        .clone()
        .with_timeout(Duration::from_millis(20))
        .acquire()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err}");

    let clock = ManualClock::new();
    let waiter = acquire_in_thread(spec.with_clock(clock.clone()).with_timeout(FOREVER), &ev);
    assert!(clock.wait_for_waiters(1, LIMIT), "Rust waiter is blocked");
    append_event(&ev, "rust-waiting");

    go.close_stdin();
    let guard = joined(waiter).expect("Rust acquires after Go releases");
    go.expect_line("releasing");
    go.expect_line("released");
    let (status, _) = go.finish();
    assert!(status.success(), "{status}");
    drop(guard);

    let got = events(&ev);
    assert_eq!(
        got[..4],
        ["go-waiting", "go-acquired", "rust-waiting", "go-releasing"],
        "{got:?}"
    );
    let mut tail = got[4..].to_vec();
    tail.sort();
    assert_eq!(tail, ["go-released", "rust-acquired"], "{got:?}");
}

/// Issue item 2 (Go `TestLockContentionWithinProcessTimeout`, across
/// languages): while Rust holds NAME, Go's acquire with a short timeout
/// returns `ErrTimeout` (same text as ours); a Go waiter that found it busy
/// acquires once Rust releases.
#[test]
fn rust_holder_times_out_go_then_go_acquires() {
    let peer = go_peer_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("events");
    let evs = ev.to_string_lossy();
    let name = unique_name("rust-holds");

    let mut guard = Spec::new(&name).acquire().unwrap();
    append_event(&ev, "rust-acquired");

    let (status, lines) = GoPeer::run(
        &peer,
        &[
            "try",
            &name,
            "--timeout",
            "50ms",
            "--events",
            &evs,
            "--tag",
            "go-try",
        ],
        &[],
    );
    assert!(status.success(), "{status}");
    assert_eq!(lines, [format!("timeout {}", Error::Timeout)]);
    assert_eq!(Error::Timeout.to_string(), "timeout acquiring mutex");

    // --probe: the peer first tries with a 1 ms timeout and says "busy" on
    // ErrTimeout, then waits without a timeout.
    let mut go = GoPeer::spawn(&peer, &["hold", &name, "--probe", "--events", &evs], &[]);
    go.expect_line("busy");
    go.expect_line("waiting");
    append_event(&ev, "rust-releasing");
    guard.release().unwrap();
    go.expect_line("acquired");
    assert!(
        matches!(Spec::new(&name).try_acquire(), Err(Error::WouldBlock)),
        "Go holds it now"
    );
    let (status, _) = go.finish();
    assert!(status.success(), "{status}");

    assert_eq!(
        events(&ev),
        [
            "rust-acquired",
            "go-try-timeout",
            "go-busy",
            "go-waiting",
            "rust-releasing",
            "go-acquired",
            "go-releasing",
            "go-released",
        ]
    );
    // Timed, not try_acquire: see go_v2_ignores_v1_socket_rust_respects_both.
    drop(
        Spec::new(&name)
            .with_timeout(LIMIT)
            .acquire()
            .expect("free at the end"),
    );
}

/// Issue item 3 (Go `TestProcessReleasesWhenDead`, across languages): a Go
/// holder killed with SIGKILL never releases by itself; the kernel frees the
/// lock and the blocked Rust waiter acquires.
#[test]
fn go_holder_killed_rust_waiter_acquires() {
    let peer = go_peer_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("events");
    let name = unique_name("go-killed");

    let mut go = GoPeer::spawn(
        &peer,
        &["hold", &name, "--events", &ev.to_string_lossy()],
        &[],
    );
    go.expect_line("waiting");
    go.expect_line("acquired");

    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(FOREVER);
    let waiter = acquire_in_thread(spec, &ev);
    assert!(clock.wait_for_waiters(1, LIMIT), "Rust waiter is blocked");

    append_event(&ev, "killing-go");
    let status = go.kill();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    drop(joined(waiter).expect("Rust acquires after the Go holder died"));

    assert_eq!(
        events(&ev),
        ["go-waiting", "go-acquired", "killing-go", "rust-acquired"]
    );
}

/// Issue item 4 (Go `TestStress`, across processes and languages): 2 Go and 2
/// Rust processes, 300 acquisitions each on one name, started together; each
/// critical section bumps one counter file and detects overlap with an
/// exclusively created marker file. Exact total, zero overlaps.
#[test]
fn mixed_stress_two_go_two_rust() {
    const ITERS: usize = 300;
    let peer = go_peer_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    let name = unique_name("mixed-stress");
    let iters = ITERS.to_string();

    let mut gos: Vec<GoPeer> = (0..2)
        .map(|_| {
            GoPeer::spawn(
                &peer,
                &[
                    "stress",
                    &name,
                    &iters,
                    &counter.to_string_lossy(),
                    "--gate",
                ],
                &[],
            )
        })
        .collect();
    let mut rusts: Vec<GoPeer> = (0..2)
        .map(|_| {
            spawn_rust_role(
                "gated-stress",
                &name,
                &[
                    ("MM_TEST_ITERS", OsStr::new(&iters)),
                    ("MM_TEST_COUNTER", os(&counter)),
                ],
            )
        })
        .collect();
    for go in &mut gos {
        go.expect_line("ready");
    }
    for rust in &mut rusts {
        rust.skip_to("ready");
    }
    // Start all four loops together.
    for peer in gos.iter_mut().chain(rusts.iter_mut()) {
        peer.send_line("go");
    }

    for go in gos {
        let (status, lines) = go.finish();
        assert!(status.success(), "{status} {lines:?}");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("done 300"),
            "{lines:?}"
        );
    }
    for mut rust in rusts {
        rust.skip_to("done");
        let (status, _) = rust.finish();
        assert!(status.success(), "{status}");
    }

    let total: usize = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let overlaps = std::fs::read_to_string(counter.with_extension("overlaps")).unwrap_or_default();
    assert_eq!(overlaps.lines().count(), 0, "two holders at once");
    assert_eq!(total, 4 * ITERS, "lost updates");
}

/// Issue item 5: the lock file lives in the temporary directory
/// (`$TMPDIR/juju-NAME` on both sides). With one private TMPDIR, Go and Rust
/// exclude each other through that file; a Rust process with another TMPDIR
/// locks another file and does not wait for Go. This is expected: the name
/// means "this file", so every party must agree on TMPDIR.
#[test]
fn shared_private_tmpdir_excludes_other_tmpdir_does_not() {
    let peer = go_peer_or_skip!();
    let shared = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let name = unique_name("tmpdir");
    let file = format!("juju-{name}");
    let in_shared = [("TMPDIR", shared.path().as_os_str())];

    // Go holds NAME in the shared TMPDIR.
    let mut go = GoPeer::spawn(&peer, &["hold", &name], &in_shared);
    go.expect_line("waiting");
    go.expect_line("acquired");
    assert!(
        shared.path().join(&file).is_file(),
        "Go's lock file is in TMPDIR"
    );
    assert!(
        !machine_mutex::lock_file_path(&name).exists(),
        "nothing in this process's temp dir"
    );

    // A Rust process with the same TMPDIR times out...
    let mut rust = spawn_rust_role(
        "acquire",
        &name,
        &[
            ("TMPDIR", os(shared.path())),
            ("MM_TEST_TIMEOUT_MS", OsStr::new("50")),
        ],
    );
    rust.skip_to("started");
    assert_eq!(rust.skip_to("error"), "timeout acquiring mutex");
    assert!(rust.finish().0.success());

    // ...a Rust process with another TMPDIR gets its own file at once.
    let mut rust = spawn_rust_role(
        "acquire",
        &name,
        &[
            ("TMPDIR", os(other.path())),
            ("MM_TEST_TIMEOUT_MS", OsStr::new("60000")),
        ],
    );
    rust.skip_to("started");
    rust.skip_to("acquired");
    assert!(rust.finish().0.success());
    // Both created their file the same way: mode 0600 (umask permitting).
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(other.path().join(&file)),
        mode(shared.path().join(&file))
    );
    assert_eq!(mode(shared.path().join(&file)) & !0o600, 0);

    let (status, _) = go.finish();
    assert!(status.success(), "{status}");

    // The other way round: Rust holds in the shared TMPDIR.
    let mut rust = spawn_rust_role("hold", &name, &[("TMPDIR", os(shared.path()))]);
    rust.skip_to("locked");
    let (_, lines) = GoPeer::run(&peer, &["try", &name, "--timeout", "50ms"], &in_shared);
    assert_eq!(lines, ["timeout timeout acquiring mutex"]);
    let other_env = [("TMPDIR", other.path().as_os_str())];
    let (status, lines) = GoPeer::run(&peer, &["try", &name, "--timeout", "60s"], &other_env);
    assert!(status.success(), "{status}");
    assert_eq!(
        lines.first().map(|l| l.starts_with("acquired ")),
        Some(true),
        "{lines:?}"
    );
    rust.close_stdin();
    rust.skip_to("released");
    assert!(rust.finish().0.success());
}

/// An empty TMPDIR counts as unset, as in Go's `os.TempDir()`: both sides
/// lock `/tmp/juju-NAME` (not `juju-NAME` in the working directory).
#[test]
fn empty_tmpdir_means_tmp_on_both_sides() {
    let peer = go_peer_or_skip!();
    let cwd = tempfile::tempdir().unwrap();
    let name = unique_name("tmpdir-empty");
    let empty = [("TMPDIR", OsStr::new(""))];

    let mut cmd = Command::new(&peer);
    cmd.args(["hold", &name])
        .env("TMPDIR", "")
        .current_dir(cwd.path());
    let mut go = GoPeer::spawn_command(cmd);
    go.expect_line("waiting");
    go.expect_line("acquired");
    let in_tmp = Path::new("/tmp").join(format!("juju-{name}"));
    assert!(in_tmp.is_file(), "Go locks {}", in_tmp.display());

    let mut cmd = rust_role_command(
        "acquire",
        &name,
        &[empty[0], ("MM_TEST_TIMEOUT_MS", OsStr::new("50"))],
    );
    cmd.current_dir(cwd.path());
    let mut rust = GoPeer::spawn_command(cmd);
    rust.skip_to("started");
    assert_eq!(rust.skip_to("error"), "timeout acquiring mutex");
    assert!(rust.finish().0.success());
    assert!(
        std::fs::read_dir(cwd.path()).unwrap().next().is_none(),
        "nothing created in the working directory"
    );

    let (status, _) = go.finish();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_file(in_tmp);
}

/// Linux caveat of item 5: two *Rust* processes with different TMPDIRs still
/// exclude each other through the legacy abstract socket (one per network
/// namespace, not per directory), unless the socket is turned off.
#[cfg(target_os = "linux")]
#[test]
fn rust_processes_with_different_tmpdirs_share_the_legacy_socket() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let name = unique_name("tmpdir-sock");
    let mut holder = spawn_rust_role("hold", &name, &[("TMPDIR", os(a.path()))]);
    holder.skip_to("locked");

    let mut rust = spawn_rust_role(
        "acquire",
        &name,
        &[
            ("TMPDIR", os(b.path())),
            ("MM_TEST_TIMEOUT_MS", OsStr::new("50")),
        ],
    );
    rust.skip_to("started");
    assert_eq!(rust.skip_to("error"), "timeout acquiring mutex");
    assert!(rust.finish().0.success());

    let mut rust = spawn_rust_role(
        "acquire",
        &name,
        &[
            ("TMPDIR", os(b.path())),
            ("MM_TEST_LEGACY", OsStr::new("0")),
            ("MM_TEST_TIMEOUT_MS", OsStr::new("60000")),
        ],
    );
    rust.skip_to("started");
    rust.skip_to("acquired");
    assert!(rust.finish().0.success());

    holder.close_stdin();
    holder.skip_to("released");
    assert!(holder.finish().0.success());
}

/// Issue item 6: the legacy lock of juju/mutex v1, the abstract Unix socket
/// `@/var/lib/juju/mutex-/NAME` (Linux only).
#[cfg(target_os = "linux")]
mod legacy {
    use std::io;
    use std::os::unix::net::UnixListener;

    use super::*;

    /// Whether `/proc/net/unix` lists a socket bound to `@/var/lib/juju/mutex-/NAME`.
    fn socket_listed(name: &str) -> bool {
        let want = machine_mutex::legacy_socket_name(name);
        std::fs::read_to_string("/proc/net/unix")
            .expect("read /proc/net/unix")
            .lines()
            .skip(1)
            .any(|line| line.split_whitespace().nth(7) == Some(want.as_str()))
    }

    /// Binds the legacy socket name with std (a stream socket, as Go's
    /// `net.ListenUnix("unix", ...)`).
    #[allow(clippy::incompatible_msrv)] // tests build on current stable only
    fn bind_legacy(name: &str) -> io::Result<UnixListener> {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(
            format!("/var/lib/juju/mutex-/{name}").as_bytes(),
        )?;
        UnixListener::bind_addr(&addr)
    }

    /// A v1 holder (Go code binding the socket as v1 did) makes a Rust
    /// acquisition wait: it takes the flock, then retries the socket every
    /// delay, and gets it once the v1 holder closes the socket.
    #[test]
    fn v1_socket_holder_blocks_rust_until_closed() {
        let peer = go_peer_or_skip!();
        let dir = tempfile::tempdir().unwrap();
        let ev = dir.path().join("events");
        let name = unique_name("v1-holds");

        let mut v1 = GoPeer::spawn(
            &peer,
            &[
                "v1-hold",
                &name,
                "--events",
                &ev.to_string_lossy(),
                "--tag",
                "v1",
            ],
            &[],
        );
        v1.expect_line("bound");
        assert!(socket_listed(&name));
        assert!(
            matches!(Spec::new(&name).try_acquire(), Err(Error::WouldBlock)),
            "Rust got the mutex while a v1 holder has the socket"
        );

        let clock = ManualClock::new();
        let delay = Duration::from_secs(1);
        let spec = Spec::new(&name)
            .with_clock(clock.clone())
            .with_delay(delay)
            .with_timeout(FOREVER);
        let waiter = acquire_in_thread(spec, &ev);
        assert!(
            clock.wait_for_waiters(1, LIMIT),
            "Rust waits for the socket"
        );
        // One more poll while the socket is still bound: still waiting.
        clock.advance(delay);
        assert!(
            clock.wait_for_waiters(1, LIMIT),
            "Rust polled and waits again"
        );
        append_event(&ev, "rust-waiting");

        v1.close_stdin();
        v1.expect_line("closed");
        assert!(!socket_listed(&name));
        clock.advance(delay);
        let guard = joined(waiter).expect("Rust acquires once the socket is closed");
        assert!(socket_listed(&name), "now Rust has the socket");
        drop(guard);
        assert!(v1.finish().0.success());

        assert_eq!(
            events(&ev),
            [
                "v1-bound",
                "rust-waiting",
                "v1-closing",
                "v1-closed",
                "rust-acquired"
            ]
        );
    }

    /// While Rust holds NAME, the v1 socket name is bound: it is listed in
    /// `/proc/net/unix`, and binding it again fails with EADDRINUSE, both
    /// from Rust and from Go's v1 code. After release it is free again.
    ///
    /// The holder is a child process that starts no programs itself: a
    /// process that does (this one, running tests in parallel) lends each
    /// new child a copy of its descriptors until the child's exec has closed
    /// them, which the kernel does only after the parent has been told the
    /// exec succeeded; so "free right after release" is checked on a holder
    /// that never forks.
    #[test]
    fn rust_holder_binds_the_v1_socket() {
        let peer = go_peer_or_skip!();
        let name = unique_name("v1-rust-holds");
        assert!(!socket_listed(&name));

        let mut holder = spawn_rust_role("hold", &name, &[]);
        holder.skip_to("locked");
        assert!(socket_listed(&name), "socket listed in /proc/net/unix");
        let err = bind_legacy(&name).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");

        let (status, lines) = GoPeer::run(&peer, &["v1-try", &name], &[]);
        assert!(status.success(), "{status}");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("in-use "), "{lines:?}");
        assert!(lines[0].contains("address already in use"), "{lines:?}");
        let (status, lines) = GoPeer::run(&peer, &["v1-hold", &name], &[]);
        assert_eq!(status.code(), Some(3), "{lines:?}");

        holder.close_stdin();
        holder.skip_to("released");
        assert!(!socket_listed(&name), "released with the guard");
        let (status, lines) = GoPeer::run(&peer, &["v1-try", &name], &[]);
        assert!(status.success(), "{status}");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("bound "), "{lines:?}");
        drop(bind_legacy(&name).expect("free after release"));
        assert!(holder.finish().0.success());
    }

    /// Go v2 (2.0.0) no longer binds the socket, so a v2 holder and a v1
    /// holder do not exclude each other; Rust takes both locks and so waits
    /// for either. With the legacy socket turned off, Rust behaves as v2.
    #[test]
    fn go_v2_ignores_v1_socket_rust_respects_both() {
        let peer = go_peer_or_skip!();
        let name = unique_name("v1-v2");

        let mut v1 = GoPeer::spawn(&peer, &["v1-hold", &name], &[]);
        v1.expect_line("bound");

        // Go v2 acquires despite the v1 holder.
        let (status, lines) = GoPeer::run(&peer, &["try", &name, "--timeout", "60s"], &[]);
        assert!(status.success(), "{status}");
        assert!(lines[0].starts_with("acquired "), "{lines:?}");

        // A Go v2 holder, too, gets the flock while v1 has the socket.
        let mut v2 = GoPeer::spawn(&peer, &["hold", &name], &[]);
        v2.expect_line("waiting");
        v2.expect_line("acquired");
        assert!(
            matches!(
                Spec::new(&name).with_legacy_socket(false).try_acquire(),
                Err(Error::WouldBlock)
            ),
            "v2 holds the flock"
        );
        assert!(v2.finish().0.success());

        // Rust: with the socket (default) it waits for v1; without, it does
        // not. (Timed waits rather than try_acquire after a release: a child
        // being started by a parallel test may still hold a copy of a
        // descriptor this process just closed, for the moment until its exec
        // completes.)
        assert!(matches!(
            Spec::new(&name).try_acquire(),
            Err(Error::WouldBlock)
        ));
        let guard = Spec::new(&name)
            .with_legacy_socket(false)
            .with_timeout(LIMIT)
            .acquire()
            .expect("flock-only acquisition ignores the v1 socket");
        drop(guard);

        assert!(v1.finish().0.success());
        drop(
            Spec::new(&name)
                .with_timeout(LIMIT)
                .acquire()
                .expect("both free at the end"),
        );
    }
}
