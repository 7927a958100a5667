//! Usage errors, help and version through the real binary.

mod support;

use support::{stderr, stdout, Scratch};

/// Invalid names, bad values, unknown flags and missing commands: exit 2,
/// one line on stderr saying what is wrong, nothing on stdout, nothing
/// created in TMPDIR.
#[test]
fn usage_errors_are_one_line_exit_2_and_create_nothing() {
    let scratch = Scratch::new();
    let long = "a".repeat(41);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "4x", "--", "true"],
            "invalid value '4x' for '<NAME>': name \"4x\" must start with an ASCII letter",
        ),
        (vec!["try", "a b", "--", "true"], "contains ' ' at byte 1"),
        (
            vec!["hold", &long],
            "name is 41 bytes long; at most 40 are allowed",
        ),
        (vec!["status", "a/b"], "contains '/' at byte 1"),
        (
            vec!["run", "ok", "--bogus", "--", "true"],
            "unexpected argument '--bogus' found",
        ),
        (
            vec!["run", "ok"],
            "the following required arguments were not provided: <COMMAND>...",
        ),
        (
            vec!["run", "ok", "--"],
            "the following required arguments were not provided: <COMMAND>...",
        ),
        (
            vec!["run", "ok", "make", "all"],
            "unexpected argument 'make' found; give COMMAND after '--'",
        ),
        (
            vec!["run", "-t", "soon", "ok", "--", "true"],
            "invalid value 'soon' for '--timeout <DURATION>'",
        ),
        (
            vec!["hold", "--delay", "0", "ok"],
            "the delay must be greater than zero",
        ),
        (
            vec!["run", "-t", "-1", "ok", "--", "true"],
            "\"-1\": a duration cannot be negative",
        ),
        (
            vec!["hold", "--delay", "-5ms", "ok"],
            "\"-5ms\": a duration cannot be negative",
        ),
        (
            vec!["run", "-t", "0.0000000001", "ok", "--", "true"],
            "\"0.0000000001\" is shorter than 1ns, the finest step (0 means do not wait)",
        ),
        (
            vec!["run", "-t", "0.5ns", "ok", "--", "true"],
            "\"0.5ns\" is too large, or finer than 1ns",
        ),
        (
            vec!["run", "-t", "99999999999999999999s", "ok", "--", "true"],
            "\"99999999999999999999s\" is too large (",
        ),
        (
            vec!["run", "-t", "18446744073709551616", "ok", "--", "true"],
            "\"18446744073709551616\" is too large (",
        ),
        (
            vec!["hold", "-t", "1000000000000000000000", "ok"],
            "\"1000000000000000000000\" is too large (",
        ),
        (
            vec!["run", "-t", "1e400", "ok", "--", "true"],
            "\"1e400\" is too large (",
        ),
        (
            vec!["run", "-t", "inf", "ok", "--", "true"],
            "\"inf\" is not a duration",
        ),
        (
            vec!["try", "-E", "256", "ok", "--", "true"],
            "256 is not in 0..=255",
        ),
        (vec!["list", "extra"], "unexpected argument 'extra' found"),
        (vec!["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    ];
    for (args, expected) in cases {
        let out = scratch.output(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("machine-mutex: "), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(stdout(&out), "", "{args:?}");
        assert_eq!(scratch.entries(), Vec::<String>::new(), "{args:?}");
    }
}

/// No arguments at all: the help, as a usage error.
#[test]
fn no_arguments_prints_help_and_exits_2() {
    let out = Scratch::new().output(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage: machine-mutex <COMMAND>"));
}

/// --help of the tool and of every command shows examples and the exit
/// statuses; --version prints the version. Both exit 0 on stdout.
#[test]
fn help_has_examples_and_exit_statuses() {
    let scratch = Scratch::new();
    let out = scratch.output(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for needle in [
        "Examples:",
        "Exit status",
        "71",
        "126",
        "128+N",
        "run",
        "try",
        "hold",
        "status",
        "list",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
    for command in ["run", "try", "hold", "status", "list"] {
        for flag in ["-h", "--help"] {
            let out = scratch.output(&[command, flag]);
            assert_eq!(out.status.code(), Some(0));
            let text = stdout(&out);
            assert!(
                text.contains("Examples:\n  machine-mutex"),
                "{command} {flag}"
            );
            assert!(text.contains("Exit status:"), "{command} {flag}");
        }
    }
    // -E: run and try tell it from COMMAND's status; hold runs no COMMAND.
    for (command, expected) in [
        ("run", "from COMMAND's own status 1"),
        ("try", "from COMMAND's own status 1"),
        (
            "hold",
            "sets the status a script checks for \"did not get the lock\"",
        ),
    ] {
        let text = stdout(&scratch.output(&[command, "--help"]));
        let flag = text
            .split("-E, --conflict-exit-code <N>")
            .nth(1)
            .and_then(|rest| rest.split("[default: 1]").next())
            .unwrap_or_else(|| panic!("{command} --help lacks -E: {text}"));
        let flag = flag.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flag.contains(expected), "{command}: {flag}");
        assert_eq!(
            command == "hold",
            !text.contains("COMMAND"),
            "{command}: {text}"
        );
    }
    let out = scratch.output(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        format!("machine-mutex {}\n", env!("CARGO_PKG_VERSION"))
    );
}
