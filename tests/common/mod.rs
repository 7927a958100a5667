//! Shared test machinery: unique names, and child processes that run this
//! same test binary in a given role (as the Go suite's `LockFromAnotherProc`).
//!
//! Each test file that uses children defines the ignored test
//! `child_process_entry`, which calls [`child_main`]; [`spawn_child`] re-runs
//! the binary with `--ignored --exact child_process_entry` and the role in
//! the environment. Children report on stdout with one keyword line per event
//! ("locked", "acquired", ...): parents wait for those lines, never sleep.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use machine_mutex::Spec;

/// A name no other test, test run or concurrent checkout uses:
/// `t-TAG-PID-N-TIME` (TIME: low bits of the clock in hex), at most 40 bytes.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(0);
    let mut tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    tag.truncate(12);
    let name = format!("t-{tag}-{pid}-{n}-{:05x}", nanos & 0xfffff);
    debug_assert!(name.len() <= machine_mutex::MAX_NAME_LEN);
    name
}

/// A running child in some role, its stdin kept open until [`ChildProc::release`].
pub struct ChildProc {
    pub child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// Starts this test binary again as a child in `role` for mutex `name`.
pub fn spawn_child(role: &str, name: &str, env: &[(&str, &str)]) -> ChildProc {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("MM_TEST_ROLE", role)
    .env("MM_TEST_NAME", name)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn child test process");
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    ChildProc {
        child,
        stdin,
        stdout,
    }
}

impl ChildProc {
    /// Reads the child's stdout until a line starting with `keyword`; returns
    /// the rest of that line. Panics if the child ends first.
    pub fn expect_line(&mut self, keyword: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child ended before printing {keyword:?}");
            if let Some(rest) = line.trim_end().strip_prefix(keyword) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Writes one line to the child's stdin (for example to open a gate).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("child stdin still open");
        writeln!(stdin, "{line}").expect("write to child stdin");
        stdin.flush().expect("flush child stdin");
    }

    /// Closes the child's stdin: a holder releases and exits.
    pub fn release(&mut self) {
        self.stdin.take();
    }

    /// Waits for the child to end and returns the rest of its stdout.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        self.stdin.take();
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        let status = self.child.wait().expect("wait for child");
        (status, rest)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends one line to an events file (O_APPEND: lines from several
/// processes never interleave).
pub fn append_event(path: &Path, event: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open events file");
    file.write_all(format!("{event}\n").as_bytes())
        .expect("write event");
}

/// The lines of an events file.
pub fn events(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key).map(PathBuf::from)
}

fn child_spec(name: &str) -> Spec {
    let mut spec = Spec::new(name);
    if std::env::var("MM_TEST_LEGACY").as_deref() == Ok("0") {
        spec = spec.with_legacy_socket(false);
    }
    if let Ok(ms) = std::env::var("MM_TEST_TIMEOUT_MS") {
        spec = spec.with_timeout(Duration::from_millis(
            ms.parse().expect("MM_TEST_TIMEOUT_MS"),
        ));
    }
    spec
}

/// The body of `child_process_entry`: runs the role named in MM_TEST_ROLE.
pub fn child_main() {
    let role = std::env::var("MM_TEST_ROLE")
        .expect("child_process_entry runs only as a child (MM_TEST_ROLE)");
    let name = std::env::var("MM_TEST_NAME").expect("MM_TEST_NAME");
    let events = env_path("MM_TEST_EVENTS");
    let out = std::io::stdout();
    let say = |line: &str| {
        let mut out = out.lock();
        // Leading newline: libtest has already printed "test ... " without one.
        writeln!(out, "\n{line}").unwrap();
        out.flush().unwrap();
    };
    match role.as_str() {
        // Acquire, say "locked PID", hold until stdin closes, then release.
        "hold" => {
            let mut guard = child_spec(&name).acquire().expect("child acquire");
            if let Some(ev) = &events {
                append_event(ev, "holder-locked");
            }
            say(&format!("locked {}", std::process::id()));
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            if let Some(ev) = &events {
                append_event(ev, "holder-releasing");
            }
            guard.release().unwrap();
            say("released");
        }
        // Acquire (waiting as the spec says), report, release.
        "acquire" => {
            say("started");
            match child_spec(&name).acquire() {
                Ok(guard) => {
                    if let Some(ev) = &events {
                        append_event(ev, "waiter-acquired");
                    }
                    say("acquired");
                    drop(guard);
                }
                Err(e) => say(&format!("error {e}")),
            }
        }
        // Acquire, start a long-lived program, report its pid, hold until stdin closes.
        "hold-spawn" => {
            let guard = child_spec(&name).acquire().expect("child acquire");
            // Left running on purpose: the parent checks it does not keep the lock, then kills it.
            #[allow(clippy::zombie_processes)]
            let sleeper = Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn sleep");
            say(&format!("locked {}", sleeper.id()));
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            drop(guard);
            say("released");
        }
        // MM_TEST_ITERS times: acquire, check and bump a counter file, release.
        "stress" => {
            let iters: usize = std::env::var("MM_TEST_ITERS").unwrap().parse().unwrap();
            let counter = env_path("MM_TEST_COUNTER").expect("MM_TEST_COUNTER");
            say("started");
            if std::env::var_os("MM_TEST_GATE").is_some() {
                // Wait for the parent's "go", so that all children start together.
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).expect("read gate");
            }
            for _ in 0..iters {
                let guard = child_spec(&name).acquire().expect("stress acquire");
                stress_step(&counter);
                drop(guard);
            }
            say("done");
        }
        // Try every name of MM_TEST_NAMES (NUL-separated): all must be rejected.
        "invalid-names" => {
            let names = std::env::var("MM_TEST_NAMES").unwrap();
            for bad in names.split('\u{1}') {
                let err = Spec::new(bad).acquire().expect_err("invalid name accepted");
                assert!(
                    matches!(err, machine_mutex::Error::InvalidSpec(_)),
                    "{bad:?}: {err}"
                );
                let err = Spec::new(bad)
                    .try_acquire()
                    .expect_err("invalid name accepted");
                assert!(
                    matches!(err, machine_mutex::Error::InvalidSpec(_)),
                    "{bad:?}: {err}"
                );
            }
            say("rejected");
        }
        other => panic!("unknown child role {other}"),
    }
}

/// One critical section of the stress roles: an "inside" marker created
/// exclusively detects overlap; the counter is read, bumped and written back.
pub fn stress_step(counter: &Path) {
    let marker = counter.with_extension("inside");
    if OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_err()
    {
        append_event(&counter.with_extension("overlaps"), "overlap");
    }
    let value: u64 = fs::read_to_string(counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    fs::write(counter, format!("{}\n", value + 1)).expect("write counter");
    let _ = fs::remove_file(&marker);
}
