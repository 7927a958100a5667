//! `hold`, `status` and `list` through the real binary, text and JSON.

mod support;

use rustix::process::Signal;
use serde_json::Value;
use support::{shown, stderr, stdout, unread_stdout, Proc, Scratch, BIN};

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// `status` of a mutex never taken: free, exit 0, and no file created.
#[test]
fn status_of_a_free_mutex_creates_nothing() {
    let scratch = Scratch::new();
    let name = scratch.name("status-free");
    let out = scratch.output(&["status", &name]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("{name}: free\n"));
    let out = scratch.output(&["status", "--json", &name]);
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out.stdout);
    assert_eq!(report["name"], name.as_str());
    assert_eq!(report["state"], "free");
    assert_eq!(report["holder"], Value::Null);
    let lock_file = scratch.path().join(format!("juju-{name}"));
    assert_eq!(report["lock_file"], lock_file.to_str().unwrap());
    assert_eq!(scratch.entries(), Vec::<String>::new());
}

/// `status` of a held mutex: exit 1, the holder's pid and command line, as
/// text and as JSON.
#[test]
fn status_names_the_holder_pid_and_command_line() {
    let scratch = Scratch::new();
    let name = scratch.name("status-held");
    let (_holder, pid) = scratch.hold(&name, &["--no-legacy"]);
    let out = scratch.output(&["status", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "{name}: held by {}\n",
            shown(pid, &["hold", &name, "--no-legacy"])
        )
    );
    let out = scratch.output(&["status", "--json", &name]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out.stdout);
    assert_eq!(report["state"], "held");
    assert_eq!(report["holder"]["pid"], pid);
    assert_eq!(report["holder"]["lock"], "file");
    assert_eq!(
        report["holder"]["command"],
        serde_json::json!([BIN, "hold", name, "--no-legacy"])
    );
}

/// `hold --json` prints one JSON line; the holder ends on SIGTERM with
/// status 0 and the mutex is free after.
#[test]
fn hold_json_line_and_release_on_sigterm() {
    let scratch = Scratch::new();
    let name = scratch.name("hold-json");
    let mut holder = scratch.spawn(&["hold", "--json", &name]);
    let line = json(holder.stdout.next_line().as_bytes());
    assert_eq!(line["name"], name.as_str());
    assert_eq!(line["state"], "held");
    assert_eq!(line["pid"], holder.pid());
    let lock_file = scratch.path().join(format!("juju-{name}"));
    assert_eq!(line["lock_file"], lock_file.to_str().unwrap());

    let out = scratch.output(&["status", &name]);
    assert_eq!(out.status.code(), Some(1));
    holder.signal(Signal::TERM);
    assert_eq!(holder.wait().code(), Some(0));
    let out = scratch.output(&["status", &name]);
    assert_eq!(out.status.code(), Some(0));
}

/// `hold` releases at the end of its standard input, and with
/// --ignore-stdin only on a signal (SIGINT here).
#[test]
fn hold_releases_at_end_of_input_unless_told_to_ignore_it() {
    let scratch = Scratch::new();
    let name = scratch.name("hold-eof");
    let (mut holder, _) = scratch.hold(&name, &[]);
    holder.close_stdin();
    assert_eq!(holder.wait().code(), Some(0));
    assert_eq!(scratch.output(&["status", &name]).status.code(), Some(0));

    // stdin at its end from the start (/dev/null): --ignore-stdin keeps holding.
    let mut cmd = scratch.command(&["hold", "--ignore-stdin", &name]);
    cmd.stdin(std::process::Stdio::null());
    let mut holder = support::Proc::spawn(cmd);
    let pid = holder.pid();
    assert_eq!(
        holder.stdout.next_line(),
        format!("holds {name} as PID {pid}")
    );
    let out = scratch.output(&["status", "--json", &name]);
    assert_eq!(json(&out.stdout)["holder"]["pid"], pid);
    holder.signal(Signal::INT);
    assert_eq!(holder.wait().code(), Some(0));
    assert_eq!(scratch.output(&["status", &name]).status.code(), Some(0));
}

/// A `hold` whose stdout nobody reads still holds: writing its "holds"
/// line raises SIGPIPE in itself, which is not a signal to stop (the write
/// just fails). It reads its stdin (which it does only once past that
/// line: 1 MiB is more than a pipe buffers), is named the holder, and a
/// SIGPIPE sent by another process ends it as the other signals do.
#[test]
fn hold_whose_stdout_is_unread_holds_until_told() {
    use std::io::Write;
    let scratch = Scratch::new();
    let name = scratch.name("hold-unread");
    let mut cmd = scratch.command(&["hold", &name]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(unread_stdout());
    let mut holder = Proc::spawn(cmd);
    // Kept open to the end: only the signal ends the hold.
    let mut stdin = holder.take_stdin();
    stdin
        .write_all(&vec![b'\n'; 1 << 20])
        .expect("hold reads its stdin");
    let out = scratch.output(&["status", "--json", &name]);
    assert_eq!(json(&out.stdout)["holder"]["pid"], holder.pid());
    holder.signal(Signal::PIPE);
    let status = holder.wait();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(holder.stderr.rest(), Vec::<String>::new());
    assert_eq!(scratch.output(&["status", &name]).status.code(), Some(0));
    drop(stdin);
}

/// `status` and `list` with a stdout nobody reads: the failed write is no
/// panic, nothing on stderr, the usual status.
#[test]
fn status_and_list_with_unread_stdout() {
    let scratch = Scratch::new();
    let name = scratch.name("unread");
    let (_holder, _) = scratch.hold(&name, &[]);
    for (args, code) in [
        (vec!["status", name.as_str()], 1),
        (vec!["status", "--json", name.as_str()], 1),
        (vec!["list"], 0),
        (vec!["list", "--json"], 0),
    ] {
        let mut cmd = scratch.command(&args);
        cmd.stdout(unread_stdout());
        let mut proc = Proc::spawn(cmd);
        let status = proc.wait();
        assert_eq!(status.code(), Some(code), "{args:?}: {status:?}");
        assert_eq!(proc.stderr.rest(), Vec::<String>::new(), "{args:?}");
    }
}

/// A second `hold` waits; with a timeout it gives up with 1 (or -E N).
#[test]
fn hold_of_a_held_mutex_times_out() {
    let scratch = Scratch::new();
    let name = scratch.name("hold-timeout");
    let (_holder, pid) = scratch.hold(&name, &[]);
    let out = scratch.output(&["hold", "-t", "200ms", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!(
            "machine-mutex: timed out after 200ms waiting for '{name}', held by {}\n",
            shown(pid, &["hold", &name])
        )
    );
    let out = scratch.output(&["hold", "-t", "0", "-E", "3", &name]);
    assert_eq!(out.status.code(), Some(3));
}

/// `list` with two mutexes held and one free (its lock file left by an
/// earlier `run`), ignoring files that are not lock files: as JSON and as
/// a table, sorted by name.
#[test]
fn list_shows_two_held_and_one_free() {
    let scratch = Scratch::new();
    let held_a = scratch.name("list-a");
    let held_b = scratch.name("list-b");
    let free = scratch.name("list-c");
    let (_a, pid_a) = scratch.hold(&held_a, &[]);
    let (_b, pid_b) = scratch.hold(&held_b, &["--no-legacy"]);
    assert_eq!(
        scratch.output(&["run", &free, "--", "true"]).status.code(),
        Some(0)
    );
    std::fs::write(scratch.path().join("juju-not.a.name"), "").unwrap();
    std::fs::write(scratch.path().join("unrelated"), "").unwrap();
    std::fs::create_dir(scratch.path().join("juju-adir")).unwrap();

    let out = scratch.output(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let list = json(&out.stdout);
    let entries = list.as_array().expect("a JSON array");
    let summary: Vec<(String, String, Value)> = entries
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
                e["holder"]["pid"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (held_a.clone(), "held".to_owned(), Value::from(pid_a)),
            (held_b.clone(), "held".to_owned(), Value::from(pid_b)),
            (free.clone(), "free".to_owned(), Value::Null),
        ]
    );
    assert_eq!(
        entries[1]["holder"]["command"],
        serde_json::json!([BIN, "hold", held_b, "--no-legacy"])
    );

    let out = scratch.output(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(words(lines[0]), ["NAME", "STATE", "PID", "COMMAND"]);
    assert_eq!(
        words(lines[1]),
        [
            held_a.clone(),
            "held".into(),
            pid_a.to_string(),
            BIN.into(),
            "hold".into(),
            held_a
        ]
    );
    assert_eq!(
        words(lines[2])[..3],
        [held_b, "held".into(), pid_b.to_string()]
    );
    assert_eq!(words(lines[3]), [free, "free".to_owned(), "-".to_owned()]);
}

/// `list` in an empty directory prints nothing (JSON: an empty array).
#[test]
fn list_of_nothing() {
    let scratch = Scratch::new();
    let out = scratch.output(&["list"]);
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), String::new()));
    let out = scratch.output(&["list", "--json"]);
    assert_eq!(json(&out.stdout), serde_json::json!([]));
}

/// `list` where TMPDIR does not exist: exit 71 and one line.
#[test]
fn list_of_a_missing_directory_fails_with_71() {
    let scratch = Scratch::new();
    let missing = scratch.path().join("missing");
    let out = std::process::Command::new(BIN)
        .arg("list")
        .env("TMPDIR", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(71));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "machine-mutex: cannot list lock files in {}: ",
            missing.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

/// `list` with TMPDIR set but empty lists /tmp, where `run` (as Go's
/// `os.TempDir()`) puts the lock files then (it failed, reading "").
#[test]
fn list_with_an_empty_tmpdir_lists_tmp() {
    let scratch = Scratch::new();
    let name = scratch.name("list-empty-tmpdir");
    let lock_file = std::path::Path::new("/tmp").join(format!("juju-{name}"));
    let with_empty_tmpdir = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("TMPDIR", "")
            .output()
            .unwrap()
    };
    let out = with_empty_tmpdir(&["run", &name, "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(lock_file.exists());
    let out = with_empty_tmpdir(&["list", "--json"]);
    let _ = std::fs::remove_file(&lock_file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list = json(&out.stdout);
    let entry = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .find(|e| e["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {list}"));
    assert_eq!(entry["state"], "free");
}
