//! Machinery of the fault tests (`tests/reliability_*.rs`): child processes
//! that can run as another user and whose output is read with a time limit
//! (a hang fails the test instead of stalling it), child roles shared by the
//! fault tests, throwaway users, root-only skips and `/proc` readers.
//!
//! Children re-run the test binary in a role (as `tests/common`): each test
//! file's ignored `child_process_entry` dispatches its own roles, then
//! [`run_role`], then `common::child_main`. Parents synchronise on the
//! children's output lines and on state the kernel shows (`/proc/locks`,
//! `/proc/PID`), never on sleeps.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child as StdChild, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use machine_mutex::{lock_file_path, Error, Spec};

/// How long a parent waits for any one event before failing: only a guard
/// against hangs, never a delay.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For root-only tests: prints why the test is skipped and returns `true`
/// when not root.
pub fn skip_unless_root(test: &str, why: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root ({why}); CI runs as root");
    true
}

/// A child process running this test binary in a role.
pub struct Child {
    child: StdChild,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
    role: String,
}

/// Options of [`spawn`].
#[derive(Default)]
pub struct Opts<'a> {
    /// Extra environment variables.
    pub env: Vec<(&'a str, OsString)>,
    /// Run as this user (needs root): `setpriv --reuid --regid --clear-groups`.
    pub user: Option<&'a User>,
    /// Working directory (default `/`, readable by any user).
    pub cwd: Option<&'a Path>,
}

impl<'a> Opts<'a> {
    /// Adds an environment variable.
    pub fn env(mut self, key: &'a str, value: impl Into<OsString>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    /// Runs the child as `user`.
    pub fn user(mut self, user: &'a User) -> Self {
        self.user = Some(user);
        self
    }

    /// Runs the child in `dir`.
    pub fn cwd(mut self, dir: &'a Path) -> Self {
        self.cwd = Some(dir);
        self
    }
}

/// Starts this test binary again as a child in `role` for the mutex `name`.
pub fn spawn(role: &str, name: &str, opts: Opts<'_>) -> Child {
    let exe = std::env::current_exe().expect("current test binary");
    let args = [
        "--ignored",
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut cmd = match opts.user {
        Some(user) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .arg("--clear-groups")
                .arg("--")
                .arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    cmd.args(args)
        .env("MM_TEST_ROLE", role)
        .env("MM_TEST_NAME", name)
        .current_dir(opts.cwd.unwrap_or_else(|| Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child test process");
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    Child {
        child,
        stdin,
        lines,
        seen: Vec::new(),
        role: role.to_owned(),
    }
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most [`LIMIT`]) for a line starting with `keyword`; returns
    /// the rest of it. Fails the test if the child ends or hangs first.
    pub fn expect_line(&mut self, keyword: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(keyword) {
                        return rest.trim().to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "child {:?} printed no {keyword:?} within {LIMIT:?} (hung?); it said {:?}",
                    self.role, self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "child {:?} ended before printing {keyword:?}; it said {:?}",
                    self.role, self.seen
                ),
            }
        }
    }

    /// The lines printed so far that start with `keyword` (does not wait).
    pub fn lines_so_far(&mut self, keyword: &str) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen
            .iter()
            .filter(|l| l.starts_with(keyword))
            .cloned()
            .collect()
    }

    /// Writes one line to the child's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to child");
        stdin.flush().expect("flush child stdin");
    }

    /// Closes the child's stdin (holders release and exit).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Closes stdin and waits (at most [`LIMIT`]) for the child to exit.
    pub fn finish(mut self) -> ExitStatus {
        self.close_stdin();
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {:?} did not exit within {LIMIT:?}; it said {:?}",
                self.role,
                self.seen
            );
            // Polls the child's state; not a synchronisation delay.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().expect("reap child")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds; fails the test with `what` after [`LIMIT`].
/// For conditions only the kernel shows (a lock request blocked, a process
/// gone): the poll interval is not a delay anything relies on.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    let mut spins = 0u32;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        spins += 1;
        if spins < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The inode number of `path` (not following links).
pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).expect("stat").ino()
}

/// Whether `/proc/locks` shows a FLOCK of process `pid` on inode `ino`:
/// `blocked` selects a request still waiting (`->`) or a granted lock.
///
/// `/proc/locks` is a seq_file: each read(2) yields at most a page, and the
/// next continues at an entry *position*, so an entry can be skipped when
/// locks listed before it come and go between two reads (the queue side
/// files' record locks make the listing longer than a page here). So an
/// entry counts as shown if any of 3 readings shows it.
pub fn has_flock(pid: u32, ino: u64, blocked: bool) -> bool {
    (0..3).any(|_| {
        let locks = std::fs::read_to_string("/proc/locks").expect("read /proc/locks");
        locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "1: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INO 0 EOF" or "1: -> FLOCK ..."
            let (is_blocked, rest) = match fields.get(1) {
                Some(&"->") => (true, &fields[2..]),
                Some(_) => (false, &fields[1..]),
                None => return false,
            };
            is_blocked == blocked
                && rest.first() == Some(&"FLOCK")
                && rest.get(3) == Some(&pid.to_string().as_str())
                && rest
                    .get(4)
                    .and_then(|id| id.rsplit(':').next())
                    .map_or(false, |i| i == ino.to_string())
        })
    })
}

/// Whether process `pid` may still run user code: it exists, is not a
/// zombie, and has not begun to exit (`PF_EXITING` in `/proc/PID/stat`).
/// A killed process stops running user code before its locks are released.
pub fn runs_user_code(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(_) => return false,
    };
    // "PID (comm) S ppid ... flags": fields after the last ')'.
    let after = match stat.rfind(')') {
        Some(i) => &stat[i + 1..],
        None => return false,
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("X");
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    !matches!(state, "Z" | "X" | "x") && flags & PF_EXITING == 0
}

/// Number of open descriptors and threads of this process.
pub fn fds_and_threads() -> (usize, usize) {
    let count = |dir: &str| std::fs::read_dir(dir).expect(dir).count();
    // read_dir's own descriptor is counted while it is open: subtract it.
    (count("/proc/self/fd") - 1, count("/proc/self/task"))
}

/// A user created for one test and deleted when dropped.
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// useradd and userdel lock /etc/passwd: one at a time in this process.
static USERDB: Mutex<()> = Mutex::new(());

impl User {
    /// Creates a system user without home directory or login shell.
    pub fn create() -> User {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mmt{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let _guard = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .status()
            .expect("run useradd");
        assert!(status.success(), "useradd {name}: {status}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("id")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        User { name, uid, gid }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _guard = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// A fresh directory under /tmp that every user can enter, removed on drop.
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("mm-rel-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The lock file a child with `TMPDIR=dir` uses for `name`.
pub fn lock_path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("juju-{name}"))
}

/// Forks a child that never execs (`raw_clone`: through the clone(2)
/// system call, which runs no fork handlers, as posix_spawn and vfork do
/// not), runs `in_child` there, then keeps the child paused until it is
/// killed. Returns the child's process id once `in_child` has run.
/// `in_child` must only make async-signal-safe calls.
pub fn fork_paused_child(raw_clone: bool, in_child: impl FnOnce()) -> libc::pid_t {
    let mut ack = [0 as libc::c_int; 2];
    // SAFETY: pipe writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(ack.as_mut_ptr()) }, 0);
    // SAFETY: after fork (or clone without CLONE_VM: a copy of the process)
    // the child runs `in_child` (async-signal-safe, by contract), writes
    // and pauses, and never returns.
    let pid = unsafe {
        if raw_clone {
            let flags = libc::c_long::from(libc::SIGCHLD);
            libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) as libc::pid_t
        } else {
            libc::fork()
        }
    };
    if pid == 0 {
        in_child();
        // SAFETY: async-signal-safe calls on descriptors this process owns.
        unsafe {
            libc::write(ack[1], b"x".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    assert!(pid > 0, "fork failed");
    let mut byte = [0u8];
    // SAFETY: reads one byte into a live buffer; closes the pipe afterwards.
    unsafe {
        libc::close(ack[1]);
        assert_eq!(libc::read(ack[0], byte.as_mut_ptr().cast(), 1), 1);
        libc::close(ack[0]);
    }
    pid
}

// ---- child side -------------------------------------------------------------

/// Prints one line for the parent and flushes it.
pub fn say(line: &str) {
    let out = std::io::stdout();
    let mut out = out.lock();
    // Leading newline: libtest has already printed "test ... " without one.
    writeln!(out, "\n{line}").unwrap();
    out.flush().unwrap();
}

/// The child's spec from its environment: `MM_TEST_LEGACY=0` turns the
/// legacy socket off, `MM_TEST_FAIR=1` the fair queue on,
/// `MM_TEST_TIMEOUT_MS` sets a timeout.
pub fn child_spec(name: &str) -> Spec {
    let mut spec = Spec::new(name);
    if std::env::var("MM_TEST_LEGACY").as_deref() == Ok("0") {
        spec = spec.with_legacy_socket(false);
    }
    if std::env::var("MM_TEST_FAIR").as_deref() == Ok("1") {
        spec = spec.with_fair_queue(true);
    }
    if let Ok(ms) = std::env::var("MM_TEST_TIMEOUT_MS") {
        spec = spec.with_timeout(Duration::from_millis(ms.parse().expect("timeout ms")));
    }
    spec
}

/// One line describing an acquisition's outcome: `ok`, or the error's
/// variant and text (`Io: cannot ...`).
pub fn describe(result: &Result<machine_mutex::Releaser, Error>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e @ Error::Io { .. }) => format!("Io: {e}"),
        Err(Error::Timeout) => "Timeout".to_owned(),
        Err(Error::Cancelled) => "Cancelled".to_owned(),
        Err(Error::WouldBlock) => "WouldBlock".to_owned(),
        Err(e) => format!("Other: {e}"),
    }
}

/// Runs the fault roles shared by the reliability tests; `false` if `role`
/// is not one of them.
///
/// - `attempt`: prints `path PATH`, then tries (`MM_ATTEMPT=try`) or
///   acquires (default) once and prints `result OUTCOME` ([`describe`]);
///   if it got the mutex and `MM_HOLD=1`, holds it until stdin closes, then
///   prints `released`.
pub fn run_role(role: &str, name: &str) -> bool {
    match role {
        "attempt" => {
            say(&format!("path {}", lock_file_path(name).display()));
            let spec = child_spec(name);
            let result = if std::env::var("MM_ATTEMPT").as_deref() == Ok("try") {
                spec.try_acquire()
            } else {
                spec.acquire()
            };
            say(&format!("result {}", describe(&result)));
            if let Ok(guard) = result {
                if std::env::var("MM_HOLD").as_deref() == Ok("1") {
                    let _ = std::io::stdin().read_to_end(&mut Vec::new());
                }
                drop(guard);
                say("released");
            }
            true
        }
        _ => false,
    }
}

/// The body of every fault file's `child_process_entry`: runs the role named
/// in `MM_TEST_ROLE` for the mutex `MM_TEST_NAME`, trying the file's own
/// roles (`own` returns `false` for a role it does not know), then the shared
/// fault roles ([`run_role`]), then `common`'s.
pub fn child_entry(own: impl FnOnce(&str, &str) -> bool) {
    let role = std::env::var("MM_TEST_ROLE").expect("MM_TEST_ROLE");
    let name = std::env::var("MM_TEST_NAME").expect("MM_TEST_NAME");
    if !own(&role, &name) && !run_role(&role, &name) {
        crate::common::child_main();
    }
}
