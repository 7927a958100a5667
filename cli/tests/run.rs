//! `run` and `try` through the real binary: statuses, conflicts, timeouts,
//! the waiting message, and signals.

mod support;

use std::os::unix::process::ExitStatusExt;

use rustix::process::Signal;
use support::{shown, stderr, stdout, KillOnPanic, Scratch, BIN};

/// COMMAND runs holding the mutex (a `status` run inside it names the `run`
/// process as the holder), its status is passed on, and the mutex is free
/// once it has ended.
#[test]
fn run_holds_while_command_runs_and_passes_its_status_on() {
    let scratch = Scratch::new();
    let name = scratch.name("run-status");
    let script = r#""$0" status --json "$1"; exit 7"#;
    let mut run = scratch.spawn(&["run", &name, "--", "sh", "-c", script, BIN, &name]);
    let run_pid = run.pid();
    let report: serde_json::Value = serde_json::from_str(&run.stdout.next_line()).unwrap();
    assert_eq!(run.wait().code(), Some(7));
    assert_eq!(report["state"], "held");
    assert_eq!(report["holder"]["pid"], run_pid);
    assert_eq!(report["holder"]["lock"], "file");
    assert_eq!(report["holder"]["command"][1], "run");

    let after = scratch.output(&["status", &name]);
    assert_eq!(after.status.code(), Some(0));
    assert_eq!(stdout(&after), format!("{name}: free\n"));
}

/// A command killed by signal N makes machine-mutex exit 128+N (as a
/// shell reports it), by a normal exit, not by dying itself.
#[test]
fn command_killed_by_a_signal_gives_128_plus_n() {
    let scratch = Scratch::new();
    let name = scratch.name("run-killed");
    let out = scratch.output(&["run", &name, "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let out = scratch.output(&["try", &name, "--", "sh", "-c", "exit 200"]);
    assert_eq!(out.status.code(), Some(200));
}

/// `try` runs COMMAND when the mutex is free; when it is held, COMMAND does
/// not run, the exit status is 1 (or -E N), and stderr names the holder
/// (nothing with --quiet).
#[test]
fn try_fails_at_once_naming_the_holder() {
    let scratch = Scratch::new();
    let name = scratch.name("try");
    let out = scratch.output(&["try", &name, "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));

    let (_holder, pid) = scratch.hold(&name, &[]);
    let marker = scratch.path().join("ran");
    let marker = marker.to_str().unwrap();
    let out = scratch.output(&["try", &name, "--", "touch", marker]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "machine-mutex: '{name}' is held by {}\n",
            shown(pid, &["hold", &name])
        )
    );
    let out = scratch.output(&["try", "-E", "42", &name, "--", "touch", marker]);
    assert_eq!(out.status.code(), Some(42));
    // --quiet: held is said by the exit status alone; other failures still print.
    let out = scratch.output(&["try", "-q", &name, "--", "touch", marker]);
    assert_eq!((out.status.code(), stderr(&out)), (Some(1), String::new()));
    let out = scratch.output(&["try", "--quiet", "-E", "0", &name, "--", "touch", marker]);
    assert_eq!((out.status.code(), stderr(&out)), (Some(0), String::new()));
    let out = scratch.output(&["try", "-q", &name, "--", "no-such-command-mm"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("no-such-command-mm"),
        "{}",
        stderr(&out)
    );
    // --timeout 0 is "do not wait", as flock -w 0.
    let out = scratch.output(&["run", "-t", "0", &name, "--", "touch", marker]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!std::path::Path::new(marker).exists(), "COMMAND ran");
}

/// A timeout gives 1 (or -E N) and one line naming the holder; --quiet
/// silences the waiting message even though the wait passes one second.
#[test]
fn timeout_exits_1_or_e_and_quiet_silences_the_waiting_message() {
    let scratch = Scratch::new();
    let name = scratch.name("timeout");
    let (_holder, pid) = scratch.hold(&name, &[]);
    let out = scratch.output(&["run", "-q", "--timeout", "1500ms", &name, "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "machine-mutex: timed out after 1s 500ms waiting for '{name}', held by {}\n",
            shown(pid, &["hold", &name])
        )
    );
    let out = scratch.output(&["run", "-q", "-t", "0.2", "-E", "75", &name, "--", "true"]);
    assert_eq!(out.status.code(), Some(75));
}

/// `-t` takes up to u64::MAX seconds, the largest duration, in any
/// spelling: such a run waits (as long as it takes), and runs COMMAND once
/// the holder lets go. `-t -0` is `-t 0`: do not wait.
#[test]
fn largest_timeout_waits_and_minus_zero_does_not() {
    let scratch = Scratch::new();
    let name = scratch.name("huge-timeout");
    let (mut holder, _) = scratch.hold(&name, &[]);
    let out = scratch.output(&["run", "-t", "-0", &name, "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is held by"), "{}", stderr(&out));
    let mut runs: Vec<_> = ["18446744073709551615", "18446744073709551615s"]
        .into_iter()
        .map(|timeout| scratch.spawn(&["run", "-t", timeout, &name, "--", "echo", timeout]))
        .collect();
    for run in &runs {
        assert!(run.stderr.next_line().contains("waiting for"));
    }
    holder.close_stdin();
    assert_eq!(holder.wait().code(), Some(0));
    for (run, timeout) in runs
        .iter_mut()
        .zip(["18446744073709551615", "18446744073709551615s"])
    {
        assert_eq!(run.stdout.next_line(), timeout);
        assert_eq!(run.wait().code(), Some(0));
    }
}

/// With stderr not a terminal, a wait longer than about a second prints one
/// line naming what it waits for and who holds it; when the holder
/// releases, COMMAND runs and nothing more is printed on stderr.
#[test]
fn waiting_message_names_the_holder_on_one_line() {
    let scratch = Scratch::new();
    let name = scratch.name("waiting");
    let (mut holder, pid) = scratch.hold(&name, &[]);
    let mut run = scratch.spawn(&["run", &name, "--", "echo", "acquired"]);
    assert_eq!(
        run.stderr.next_line(),
        format!(
            "machine-mutex: waiting for '{name}', held by {}",
            shown(pid, &["hold", &name])
        )
    );
    holder.close_stdin();
    assert_eq!(holder.wait().code(), Some(0));
    assert_eq!(run.stdout.next_line(), "acquired");
    assert_eq!(run.wait().code(), Some(0));
    assert_eq!(run.stderr.rest(), Vec::<String>::new());
}

/// SIGTERM and SIGINT sent to `run` reach COMMAND (here a `hold` of another
/// mutex that ignores its stdin, so only a signal ends it: it releases and
/// exits 0); `run` then exits with its status (0, by exiting, not killed)
/// and both mutexes are free.
#[test]
fn sigterm_and_sigint_are_passed_on_and_the_mutex_released_after() {
    for signal in [Signal::TERM, Signal::INT] {
        let scratch = Scratch::new();
        let outer = scratch.name("fwd-outer");
        let inner = scratch.name("fwd-inner");
        let mut run = scratch.spawn(&["run", &outer, "--", BIN, "hold", "--ignore-stdin", &inner]);
        let line = run.stdout.next_line();
        let inner_pid: u32 = line
            .strip_prefix(&format!("holds {inner} as PID "))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .parse()
            .unwrap();
        let _inner = KillOnPanic(inner_pid);
        assert_ne!(inner_pid, run.pid());

        run.signal(signal);
        let status = run.wait();
        assert_eq!(status.signal(), None, "run itself was killed");
        assert_eq!(status.code(), Some(0), "{signal:?}");
        for name in [&outer, &inner] {
            let out = scratch.output(&["status", name]);
            assert_eq!(stdout(&out), format!("{name}: free\n"));
        }
    }
}

/// A COMMAND that does not handle SIGTERM (or SIGPIPE) dies of it; `run`
/// reports 143 (141) by exiting, and the mutex is released. (COMMAND
/// starts with SIGPIPE at its default action, though Rust ignores it in
/// machine-mutex.)
#[test]
fn signal_that_kills_command_gives_128_plus_n() {
    for (signal, code) in [(Signal::TERM, 143), (Signal::PIPE, 141)] {
        let scratch = Scratch::new();
        let name = scratch.name("fwd-kill");
        let mut run = scratch.spawn(&["run", &name, "--", "sh", "-c", "echo $$; exec sleep 600"]);
        let _sleep = KillOnPanic(run.stdout.next_line().parse().unwrap());
        run.signal(signal);
        let status = run.wait();
        assert_eq!((status.code(), status.signal()), (Some(code), None));
        let out = scratch.output(&["status", &name]);
        assert_eq!(out.status.code(), Some(0));
    }
}

/// `machine-mutex run NAME -- yes | head -1` ends: `yes` dies of SIGPIPE
/// when its reader goes, and `run` exits 141.
#[test]
fn command_whose_reader_goes_dies_of_sigpipe() {
    let scratch = Scratch::new();
    let name = scratch.name("yes");
    let mut run = scratch.spawn(&["run", &name, "--", "yes"]);
    assert_eq!(run.stdout.next_line(), "y");
    // Drops the reader: its thread ends, closing the pipe, at the next line.
    run.stdout = support::Lines::new(std::io::empty());
    let status = run.wait();
    assert_eq!((status.code(), status.signal()), (Some(141), None));
    assert_eq!(run.stderr.rest(), Vec::<String>::new());
}

/// A signal during the wait ends it, SIGPIPE too (as flock(1)): COMMAND
/// is not run, the status is 128+N, and the holder keeps the mutex.
#[test]
fn signal_while_waiting_ends_the_wait_without_running_command() {
    for (signal, code, signame) in [
        (Signal::TERM, 143, "SIGTERM"),
        (Signal::PIPE, 141, "SIGPIPE"),
    ] {
        let scratch = Scratch::new();
        let name = scratch.name("wait-signal");
        let (_holder, pid) = scratch.hold(&name, &[]);
        let marker = scratch.path().join("ran");
        let mut run = scratch.spawn(&["run", &name, "--", "touch", marker.to_str().unwrap()]);
        assert!(run.stderr.next_line().contains("waiting for"));
        run.signal(signal);
        let status = run.wait();
        assert_eq!((status.code(), status.signal()), (Some(code), None));
        assert_eq!(
            run.stderr.rest(),
            vec![format!(
                "machine-mutex: {signame} received while waiting for '{name}'; not acquired"
            )]
        );
        assert!(!marker.exists());
        let out = scratch.output(&["status", "--json", &name]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["holder"]["pid"], pid);
    }
}

/// A COMMAND that is not found or not executable fails before the mutex is
/// taken (127, 126), on one line, leaving nothing on disk.
#[test]
fn missing_or_unrunnable_command_fails_before_locking() {
    let scratch = Scratch::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let plain = elsewhere.path().join("plain-file");
    std::fs::write(&plain, "").unwrap();
    let missing = elsewhere.path().join("missing");
    for (args, code, message) in [
        (
            vec!["no-such-command-mm"],
            127,
            "no-such-command-mm: command not found".to_owned(),
        ),
        (
            vec![missing.to_str().unwrap()],
            127,
            format!("{}: command not found", missing.display()),
        ),
        (
            vec![plain.to_str().unwrap()],
            126,
            format!(
                "cannot run {}: not executable (no x permission)",
                plain.display()
            ),
        ),
    ] {
        for verb in ["run", "try"] {
            let mut all = vec![verb, "cmd-check", "--"];
            all.extend_from_slice(&args);
            let out = scratch.output(&all);
            assert_eq!(out.status.code(), Some(code), "{all:?}");
            assert_eq!(stderr(&out), format!("machine-mutex: {message}\n"));
            assert_eq!(scratch.entries(), Vec::<String>::new(), "{all:?}");
        }
    }
}

/// Writes an executable file `name` in `dir` with `text`.
fn script(dir: &std::path::Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// An executable file without a `#!` line is run by /bin/sh, as execvp(3)
/// and flock(1) do, whether given as a path or found in PATH ($0 is then
/// its full path, as with execvp), holding the mutex; its status is passed on.
#[test]
fn executable_without_hash_bang_is_run_by_sh() {
    let scratch = Scratch::new();
    let name = scratch.name("no-hash-bang");
    let dir = tempfile::tempdir().unwrap();
    let text = format!("echo \"$0 [$1] [$2]\"\n\"{BIN}\" status \"$3\"\nexit 5\n");
    let path = script(dir.path(), "plain-script", &text);
    for verb in ["run", "try"] {
        for program in [path.as_str(), "plain-script"] {
            let out = scratch
                .output_with_path(dir.path(), &[verb, &name, "--", program, "a b", "", &name]);
            assert_eq!(
                out.status.code(),
                Some(5),
                "{verb} {program}: {}",
                stderr(&out)
            );
            let mut lines = stdout(&out).lines().map(str::to_owned).collect::<Vec<_>>();
            assert_eq!(
                lines.remove(0),
                format!("{path} [a b] []"),
                "{verb} {program}"
            );
            assert!(
                lines[0].starts_with(&format!("{name}: held by ")),
                "{verb} {program}: {lines:?}"
            );
            assert_eq!(stderr(&out), "");
        }
    }
}

/// A script whose `#!` interpreter is missing exists, so it is not "not
/// found" (127): it cannot be executed (126), and the message says why.
#[test]
fn missing_hash_bang_interpreter_is_126_bad_interpreter() {
    let scratch = Scratch::new();
    let name = scratch.name("bad-interp");
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        "bad-interp",
        "#! /nonexistent/interp-mm -x\necho hi\n",
    );
    for verb in ["run", "try"] {
        for program in [path.as_str(), "bad-interp"] {
            let out = scratch.output_with_path(dir.path(), &[verb, &name, "--", program]);
            assert_eq!(out.status.code(), Some(126), "{verb} {program}");
            assert_eq!(
                stderr(&out),
                format!(
                    "machine-mutex: cannot run {program}: the file exists, but its interpreter \
                     /nonexistent/interp-mm could not be run: No such file or directory (os error 2)\n"
                )
            );
            assert_eq!(stdout(&out), "");
        }
    }
}

/// A script with DOS line endings names the interpreter `/bin/sh\r`: the
/// message shows the carriage return (it was printed raw, and on a terminal
/// read as "/bin/sh could not be run"; found by a review helper) and says
/// what it means.
#[test]
fn dos_line_endings_in_the_hash_bang_line_are_named() {
    let scratch = Scratch::new();
    let name = scratch.name("crlf");
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "crlf", "#!/bin/sh\r\necho hi\r\n");
    let out = scratch.output(&["run", &name, "--", &path]);
    assert_eq!(out.status.code(), Some(126));
    assert_eq!(
        stderr(&out),
        format!(
            "machine-mutex: cannot run {path}: the file exists, but its interpreter /bin/sh\\r \
             could not be run: No such file or directory (os error 2) (the #! line ends with a \
             carriage return: DOS line endings)\n"
        )
    );
}

/// When the lock file cannot be created (TMPDIR does not exist), `run`,
/// `try` and `hold` fail with 71 and one line naming the file and the cause.
#[test]
fn lock_file_that_cannot_be_created_gives_71() {
    let scratch = Scratch::new();
    let missing = scratch.path().join("missing");
    for args in [
        vec!["run", "nodir", "--", "true"],
        vec!["try", "nodir", "--", "true"],
        vec!["hold", "nodir"],
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .env("TMPDIR", &missing)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(71), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with(&format!(
                "machine-mutex: nodir: cannot create lock file {}/juju-nodir: ",
                missing.display()
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("check TMPDIR"), "{args:?}: {err}");
    }
}

/// Waits (60 s at most) until the queue of NAME has given out `tail`
/// tickets: its counter, the first 8 bytes of `juju-NAME.queue`.
fn wait_for_tickets(scratch: &Scratch, name: &str, tail: u64) {
    let side = scratch.path().join(format!("juju-{name}.queue"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let bytes = std::fs::read(&side).unwrap_or_default();
        let taken = bytes
            .get(..8)
            .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap()));
        if taken >= tail {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{taken} tickets of {tail}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether `/proc/locks` shows the granted record lock of queue ticket
/// `ticket` (byte 4096 + ticket) on the side file with inode `ino`:
/// "N: OFDLCK ADVISORY WRITE -1 MAJ:MIN:INO START END".
fn has_place(ino: u64, ticket: u64) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let start = (4096 + ticket).to_string();
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"OFDLCK")
            && fields
                .get(5)
                .and_then(|id| id.rsplit(':').next())
                .is_some_and(|i| i == ino.to_string())
            && fields.get(6) == Some(&start.as_str())
    })
}

/// `--fair`: two `run --fair` processes queue while NAME is held, each seen
/// to take its ticket (the queue's counter in `juju-NAME.queue`) before the
/// next starts; once the holder lets go they run in the order they came.
#[test]
fn fair_runs_are_served_in_the_order_they_came() {
    let scratch = Scratch::new();
    let name = scratch.name("run-fair");
    let log = scratch.path().join("order");
    let log = log.to_str().unwrap();
    let (mut holder, _) = scratch.hold(&name, &["--fair"]);
    let mut runs = Vec::new();
    for (tag, tail) in [("a", 1), ("b", 2)] {
        let script = format!("echo {tag} >> {log}");
        runs.push(scratch.spawn(&["run", "--fair", "-q", &name, "--", "sh", "-c", &script]));
        wait_for_tickets(&scratch, &name, tail);
    }
    holder.close_stdin();
    assert!(holder.wait().success());
    for mut run in runs {
        assert!(run.wait().success());
    }
    assert_eq!(std::fs::read_to_string(log).unwrap(), "a\nb\n");
}

/// A `--fair` waiter stopped while in line keeps its place: a later
/// `--fair` wait times out although nobody holds the mutex, and says so
/// (rather than naming a holder); once the stopped one continues, it runs.
#[test]
fn a_fair_wait_behind_a_stopped_waiter_says_nobody_holds_it() {
    let scratch = Scratch::new();
    let name = scratch.name("run-fair-stopped");
    let (mut holder, _) = scratch.hold(&name, &["--fair"]);
    let mut first = scratch.spawn(&["run", "--fair", "-q", &name, "--", "true"]);
    wait_for_tickets(&scratch, &name, 1);
    // Its place is its record lock on byte 4096 + ticket 0: taken just
    // after the ticket, and stopped without it there would be no place.
    let side = scratch.path().join(format!("juju-{name}.queue"));
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&side).unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !has_place(ino, 0) {
        assert!(std::time::Instant::now() < deadline, "no place taken");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    first.signal(Signal::STOP);
    // Stopped for real, every thread, before the holder lets go (else the
    // thread that waits may take the lock in between and stop holding it).
    let tasks = format!("/proc/{}/task", first.pid());
    let stopped = |task: std::fs::DirEntry| {
        std::fs::read_to_string(task.path().join("stat"))
            .unwrap_or_default()
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('T'))
    };
    while !std::fs::read_dir(&tasks)
        .unwrap()
        .all(|task| task.is_ok_and(stopped))
    {
        assert!(std::time::Instant::now() < deadline, "not stopped");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    holder.close_stdin();
    assert!(holder.wait().success());
    let out = scratch.output(&["run", "--fair", "-q", "-t", "0.3", &name, "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in line behind earlier --fair waiters; nobody holds it now"),
        "{}",
        stderr(&out)
    );
    first.signal(Signal::CONT);
    assert!(first.wait().success());
}
