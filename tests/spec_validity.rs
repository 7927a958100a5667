//! Rule 1 and 2: names and spec validity (Go: `TestSpecValidity`), and that
//! rejected specs touch nothing on disk.

mod common;

use std::time::Duration;

use machine_mutex::{validate_name, Error, InvalidSpec, Spec};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    common::child_main();
}

/// The Go package's validity table, plus its boundaries: the same names are
/// accepted and rejected, with a message naming the rule.
#[test]
fn spec_validity_table() {
    let cases: &[(&str, Duration, Option<&str>)] = &[
        (
            "",
            Duration::from_millis(1),
            Some("invalid spec: name is empty"),
        ),
        (
            "42",
            Duration::from_millis(1),
            Some("must start with an ASCII letter"),
        ),
        ("a", Duration::from_millis(1), None),
        (
            "a very very long name that is over the length limit",
            Duration::from_millis(1),
            Some("is 51 bytes long; at most 40 are allowed"),
        ),
        ("test-42", Duration::from_millis(1), None),
        (
            "with a space",
            Duration::from_millis(1),
            Some("contains ' ' at byte 4"),
        ),
        (
            "test-42",
            Duration::ZERO,
            Some("invalid spec: delay must be greater than zero"),
        ),
        (&"x".repeat(40), Duration::from_millis(1), None),
        (
            &"x".repeat(41),
            Duration::from_millis(1),
            Some("41 bytes long"),
        ),
        ("a/b", Duration::from_millis(1), Some("contains '/'")),
        ("a..b", Duration::from_millis(1), Some("contains '.'")),
        ("a\0", Duration::from_millis(1), Some("contains '\\0'")),
        (
            "añ",
            Duration::from_millis(1),
            Some("contains 'ñ' at byte 1"),
        ),
        (
            "é",
            Duration::from_millis(1),
            Some("must start with an ASCII letter"),
        ),
    ];
    for (name, delay, want) in cases {
        let got = Spec::new(*name).with_delay(*delay).validate();
        match (want, got) {
            (None, Ok(())) => {}
            (Some(want), Err(err)) => {
                let text = err.to_string();
                assert!(text.contains(want), "{name:?}: {text:?} lacks {want:?}");
                assert!(matches!(err, Error::InvalidSpec(_)));
            }
            (want, got) => panic!("{name:?}: wanted {want:?}, got {got:?}"),
        }
    }
    // A zero timeout is accepted and means "wait forever", as in Go.
    assert_eq!(Spec::new("a").with_timeout(Duration::ZERO).timeout(), None);
    assert!(matches!(validate_name("a-1-B"), Ok(())));
    assert!(matches!(
        validate_name("1"),
        Err(InvalidSpec::NameStart { .. })
    ));
}

/// Invalid names are rejected by acquire and try_acquire before anything is
/// created: a child with a private, empty TMPDIR tries them all, and the
/// directory stays empty.
#[test]
fn invalid_names_create_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(41);
    let names = [
        "",
        "1abc",
        " a",
        "a b",
        "a/b",
        "../a",
        "a..b",
        "..",
        "añ",
        "ñ",
        long.as_str(),
        "a\n",
        "-a",
    ];
    let joined = names.join("\u{1}");
    let tmpdir = dir.path().to_str().unwrap();
    let mut child = common::spawn_child(
        "invalid-names",
        "unused",
        &[("TMPDIR", tmpdir), ("MM_TEST_NAMES", &joined)],
    );
    child.expect_line("rejected");
    let (status, _) = child.finish();
    assert!(status.success());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files created: {left:?}");
    // A name with a NUL byte cannot travel through the environment; check it here.
    let err = Spec::new("a\0b").acquire().unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidSpec(InvalidSpec::NameCharacter { ch: '\0', .. })
    ));
}
