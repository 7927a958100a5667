//! The Go peer (`tests/peers/go/mutexpeer`): building it once per test (or
//! bench) binary, and running it (or any other child that speaks the same
//! line protocol) as a child process that reports on stdout.
//!
//! Include it with `#[path = "peers/go_peer.rs"] mod go_peer;` (from a bench:
//! `#[path = "../tests/peers/go_peer.rs"]`). The peer is built in GOPATH mode
//! against the Debian sources of juju/mutex v2:
//! `GO111MODULE=off GOPATH=/usr/share/gocode go build`, into
//! `CARGO_TARGET_TMPDIR/go-mutexpeer/`, with the Go build cache next to it.
//!
//! When `go` or the juju/mutex sources are missing, [`binary`] prints why and
//! returns `None` (the caller skips); with `MACHINE_MUTEX_REQUIRE_INTEROP=1`
//! it panics instead. `MACHINE_MUTEX_GOPATH` replaces the default GOPATH
//! (`/usr/share/gocode`, Debian's layout).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

/// Set to `1` (CI does) to fail instead of skipping when Go is missing.
pub const REQUIRE_ENV: &str = "MACHINE_MUTEX_REQUIRE_INTEROP";

/// Overrides the GOPATH used to build the peer.
pub const GOPATH_ENV: &str = "MACHINE_MUTEX_GOPATH";

/// Debian installs Go package sources under this GOPATH.
pub const DEFAULT_GOPATH: &str = "/usr/share/gocode";

/// How long a test waits for one line of the peer before it fails. A guard
/// against hanging, never a synchronisation delay.
pub const LINE_LIMIT: Duration = Duration::from_secs(60);

/// The built peer, or why it is unavailable (`Err(skip reason)`); built on
/// first use. A build failure with Go and the sources present panics.
static PEER: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);

fn required() -> bool {
    std::env::var(REQUIRE_ENV).as_deref() == Ok("1")
}

/// The path of the built peer, or `None` after printing why the caller must
/// skip. Panics when interop is required (`MACHINE_MUTEX_REQUIRE_INTEROP=1`)
/// but unavailable, or when the build itself fails.
pub fn binary() -> Option<PathBuf> {
    let mut slot = PEER.lock().unwrap_or_else(|e| e.into_inner());
    let first = slot.is_none();
    if first {
        *slot = Some(build());
    }
    match slot.as_ref().unwrap() {
        Ok(path) => Some(path.clone()),
        Err(reason) if required() => {
            panic!("{REQUIRE_ENV}=1 but the Go interop peer is unavailable: {reason}")
        }
        Err(reason) => {
            // Written to the real stderr, not through the test harness's
            // capture, so that a plain `cargo test` shows it.
            let mut err = std::io::stderr().lock();
            if first {
                let _ = writeln!(
                    err,
                    "SKIPPING the Go interop tests: {reason}. Install Go and juju/mutex with \
                     scripts/install-interop-deps.sh; set {REQUIRE_ENV}=1 to fail instead."
                );
            }
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            let _ = writeln!(err, "SKIPPED {test}: Go interop peer unavailable");
            None
        }
    }
}

/// Why the peer is unavailable, once [`binary`] has tried to build it;
/// `None` when it is available or not yet tried (the benchmark report
/// prints it among the skipped peers).
#[allow(dead_code)] // used by the benchmark report, not by every test binary
pub fn unavailable_reason() -> Option<String> {
    let slot = PEER.lock().unwrap_or_else(|e| e.into_inner());
    slot.as_ref()
        .and_then(|built| built.as_ref().err().cloned())
}

fn gopath() -> String {
    std::env::var(GOPATH_ENV).unwrap_or_else(|_| DEFAULT_GOPATH.to_owned())
}

/// `Err(reason)` when the prerequisites are missing; panics when they are
/// present and the build fails (a real defect of the peer or the setup).
fn build() -> Result<PathBuf, String> {
    match Command::new("go").arg("version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Err(format!("`go version` failed: {}", out.status)),
        Err(e) => return Err(format!("the `go` command is not available ({e})")),
    }
    let gopath = gopath();
    let found = std::env::split_paths(&gopath)
        .any(|p| p.join("src/github.com/juju/mutex/mutex.go").is_file());
    if !found {
        return Err(format!(
            "the Go package github.com/juju/mutex is not under GOPATH {gopath} \
             (Debian package golang-github-juju-mutex-dev)"
        ));
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/go/mutexpeer");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-mutexpeer");
    std::fs::create_dir_all(&out_dir).expect("create the Go peer's build directory");
    let exe = out_dir.join("mutexpeer");
    // Several test binaries may build at once: each writes its own file and
    // renames it into place (atomic), so none runs a half-written binary.
    let tmp = out_dir.join(format!("mutexpeer.tmp-{}", std::process::id()));
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOFLAGS", "")
        .env("GOCACHE", out_dir.join("cache"))
        .stdin(Stdio::null())
        .output()
        .expect("run go build");
    assert!(
        out.status.success(),
        "building the Go peer failed (GO111MODULE=off GOPATH={gopath} go build in {}): {}\n{}",
        src.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &exe).expect("move the Go peer into place");
    Ok(exe)
}

/// A running peer: its stdin stays open until [`close_stdin`](Self::close_stdin)
/// (a holder releases on EOF); its stdout lines arrive through a reader thread.
pub struct GoPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line read so far, in order.
    pub seen: Vec<String>,
}

impl GoPeer {
    /// Starts `bin` with `args` and extra environment `env`.
    pub fn spawn(bin: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> GoPeer {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        GoPeer::spawn_command(cmd)
    }

    /// Starts `cmd` (its stdin, stdout and stderr are set here).
    pub fn spawn_command(mut cmd: Command) -> GoPeer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // `spawn` returns once the child has executed its program (or failed
        // to), so it no longer holds copies of this process's descriptors.
        let mut child = {
            cmd.spawn()
                .unwrap_or_else(|e| panic!("start peer {cmd:?}: {e}"))
        };
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("peer stdout"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        GoPeer {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Runs the peer to completion with stdin closed; returns its status and lines.
    pub fn run(bin: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> (ExitStatus, Vec<String>) {
        let mut peer = GoPeer::spawn(bin, args, env);
        peer.close_stdin();
        peer.finish()
    }

    /// The next line; panics if the peer ends or stays silent for [`LINE_LIMIT`].
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(LINE_LIMIT) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "Go peer silent for {LINE_LIMIT:?}; lines so far: {:?}",
                    self.seen
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                panic!("Go peer ended ({status:?}); lines so far: {:?}", self.seen)
            }
        }
    }

    /// Reads the next line, which must start with `keyword`; returns the rest.
    pub fn expect_line(&mut self, keyword: &str) -> String {
        let line = self.next_line();
        match line.split_once(' ') {
            Some((k, rest)) if k == keyword => rest.to_owned(),
            None if line == keyword => String::new(),
            _ => panic!(
                "Go peer said {line:?}, expected {keyword:?}; lines so far: {:?}",
                self.seen
            ),
        }
    }

    /// Reads lines until one starts with `keyword` (skipping others, such as
    /// the test harness's own output when the child is a Rust test binary);
    /// returns the rest of that line.
    pub fn skip_to(&mut self, keyword: &str) -> String {
        loop {
            let line = self.next_line();
            match line.split_once(' ') {
                Some((k, rest)) if k == keyword => return rest.to_owned(),
                None if line == keyword => return String::new(),
                _ => {}
            }
        }
    }

    /// Writes one line to the peer's stdin (the start signal of gated loops).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("peer stdin still open");
        writeln!(stdin, "{line}").expect("write to peer stdin");
        stdin.flush().expect("flush peer stdin");
    }

    /// Closes the peer's stdin: a holder releases and exits.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Kills the peer with SIGKILL (on Unix) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill Go peer");
        self.child.wait().expect("reap Go peer")
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes stdin, reads the remaining lines and waits for the exit.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        self.close_stdin();
        loop {
            match self.lines.recv_timeout(LINE_LIMIT) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "Go peer did not end within {LINE_LIMIT:?} of its stdin closing; lines: {:?}",
                    self.seen
                ),
            }
        }
        let status = self.child.wait().expect("wait for Go peer");
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
