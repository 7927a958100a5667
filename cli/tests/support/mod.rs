//! Test machinery for the `machine-mutex` binary: a private TMPDIR per
//! test, unique names, and processes whose output lines are read as they
//! come. Tests synchronise on those lines and on process exits, never on
//! sleeps; the line reader's time limit only turns a hang into a failure.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_machine-mutex");

/// How long a line may take before the test is declared hung.
const HANG: Duration = Duration::from_secs(60);

/// A private temp directory, used as TMPDIR by every process of one test:
/// its lock files are the only ones `list` sees.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A name no other test or test run uses (the Linux legacy socket is
    /// machine-wide, whatever TMPDIR is).
    pub fn name(&self, tag: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("cli-{tag}-{}-{n}", std::process::id())
    }

    /// `machine-mutex ARGS` with this TMPDIR, stdin empty, output captured.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("TMPDIR", self.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `machine-mutex ARGS` to the end.
    pub fn output(&self, args: &[&str]) -> Output {
        let child = self.command(args).spawn().expect("run machine-mutex");
        let _watchdog = Watchdog::new(child.id());
        child.wait_with_output().expect("wait for machine-mutex")
    }

    /// Runs `machine-mutex ARGS` to the end with `dir` first in PATH.
    pub fn output_with_path(&self, dir: &Path, args: &[&str]) -> Output {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(dir.to_owned()).chain(std::env::split_paths(&path)),
        )
        .expect("PATH");
        let child = self
            .command(args)
            .env("PATH", path)
            .spawn()
            .expect("run machine-mutex");
        let _watchdog = Watchdog::new(child.id());
        child.wait_with_output().expect("wait for machine-mutex")
    }

    /// Starts `machine-mutex ARGS` with stdin a pipe.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped());
        Proc::spawn(cmd)
    }

    /// Starts `machine-mutex hold NAME EXTRA...` and waits for its "holds"
    /// line; returns it and its pid.
    pub fn hold(&self, name: &str, extra: &[&str]) -> (Proc, u32) {
        let mut args = vec!["hold", name];
        args.extend_from_slice(extra);
        let holder = self.spawn(&args);
        let pid = holder.pid();
        assert_eq!(
            holder.stdout.next_line(),
            format!("holds {name} as PID {pid}")
        );
        (holder, pid)
    }

    /// The file names in the directory.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// The lines of a stream, read by a thread as they arrive.
pub struct Lines {
    rx: Receiver<String>,
}

impl Lines {
    pub fn new(stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let sent = line.map(|line| tx.send(line).is_ok());
                if sent.ok() != Some(true) {
                    return;
                }
            }
        });
        Lines { rx }
    }

    /// The next line; panics at end of stream or if none comes in time.
    pub fn next_line(&self) -> String {
        match self.rx.recv_timeout(HANG) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line within {HANG:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("stream ended, a line was expected"),
        }
    }

    /// All remaining lines, until end of stream.
    pub fn rest(&self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.rx.recv_timeout(HANG) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => panic!("stream still open after {HANG:?}"),
            }
        }
    }
}

/// A running process with its stdout and stderr read line by line; killed
/// if the test ends first.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().expect("spawn");
        let stdin = child.stdin.take();
        // Not piped (see `unread_stdout`): no lines.
        let stdout = match child.stdout.take() {
            Some(stdout) => Lines::new(stdout),
            None => Lines::new(std::io::empty()),
        };
        let stderr = Lines::new(child.stderr.take().expect("stderr piped"));
        Proc {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stdin (a pipe), kept open by the caller (`wait` does not close it).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin piped and open")
    }

    /// Closes its stdin: a `hold` releases and exits.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Waits for it to end.
    pub fn wait(&mut self) -> ExitStatus {
        self.stdin.take();
        let _watchdog = Watchdog::new(self.pid());
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a process that has not ended within [`HANG`] of its creation,
/// so that a hung process fails the test instead of hanging it. Dropped
/// (stopped) as soon as the wait for the process returns.
struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    fn new(pid: u32) -> Watchdog {
        let (done, finished) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if finished.recv_timeout(HANG) == Err(RecvTimeoutError::Timeout) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        });
        Watchdog {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Kills a process that is not our child (a grandchild) if the test fails,
/// so that a failing test leaves no process behind. It does nothing when
/// the test passes: the process has ended, and its pid may be reused.
pub struct KillOnPanic(pub u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// A stdout nobody reads: one end of a socket pair whose other end is
/// closed, so a write to it fails with EPIPE and raises SIGPIPE in the
/// writer.
pub fn unread_stdout() -> Stdio {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    drop(ours);
    Stdio::from(std::os::fd::OwnedFd::from(theirs))
}

/// stdout of a finished command as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a finished command as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// How a holder is shown: `PID N (BIN hold NAME ...)`.
pub fn shown(pid: u32, args: &[&str]) -> String {
    format!("PID {pid} ({BIN} {})", args.join(" "))
}
