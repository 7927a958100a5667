//! Bad input: property tests over arbitrary strings and durations.
//! Validation never panics and accepts exactly the Go package's grammar
//! (`^[a-zA-Z][a-zA-Z0-9-]*$`, at most 40 bytes); an invalid name creates
//! nothing on disk; any timeout or delay is handled without panic or
//! overflow. (A cargo-fuzz target covers the same ground without bounds:
//! fuzz/README.md.)
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::time::{Duration, Instant};

use common::unique_name;
use faults::{say, spawn, Opts};
use machine_mutex::{
    lock_file_path, validate_name, CancelToken, Clock, Error, InvalidSpec, ManualClock, Spec,
    Wakeup, MAX_NAME_LEN,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, _name| {
        match role {
            "invalid-names-prop" => invalid_names_prop(),
            _ => return false,
        }
        true
    });
}

/// The grammar, written independently of the library: regular expression
/// `^[a-zA-Z][a-zA-Z0-9-]*$` and the byte limit.
fn grammar(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 40
        && bytes.next().map_or(false, |b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Strings of every kind: any Unicode, printable ASCII around the length
/// limit, near-valid names, and names with one character spliced in.
fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,48}",
        "[a-zA-Z][a-zA-Z0-9-]{0,45}",
        (
            "[a-zA-Z][a-zA-Z0-9-]{0,39}",
            any::<char>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(s, c, i)| {
                let mut s = s;
                let at = i.index(s.len() + 1);
                s.insert(at, c);
                s
            }),
    ]
}

proptest! {
    #![proptest_config(Config::with_cases(2000))]

    /// Accepts exactly the grammar; each rejection names the first rule
    /// broken, with a character and byte offset that are really there.
    #[test]
    fn validation_accepts_exactly_the_grammar(name in names()) {
        let got = validate_name(&name);
        prop_assert_eq!(got.is_ok(), grammar(&name), "{:?}: {:?}", name, got);
        if let Err(err) = &got {
            let _ = err.to_string();
            match err {
                InvalidSpec::EmptyName => prop_assert!(name.is_empty()),
                InvalidSpec::NameTooLong { len } => {
                    prop_assert_eq!(*len, name.len());
                    prop_assert!(*len > MAX_NAME_LEN);
                }
                InvalidSpec::NameStart { name: n } => {
                    prop_assert_eq!(n, &name);
                    prop_assert!(!name.as_bytes()[0].is_ascii_alphabetic());
                }
                InvalidSpec::NameCharacter { name: n, ch, index } => {
                    prop_assert_eq!(n, &name);
                    prop_assert_eq!(name[*index..].chars().next(), Some(*ch));
                    prop_assert!(grammar(&name[..*index]), "earlier bytes were fine");
                    prop_assert!(!(ch.is_ascii_alphanumeric() || *ch == '-'));
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        // Spec::validate agrees, and building a spec or its path never panics.
        let spec = Spec::new(name.clone());
        prop_assert_eq!(spec.validate().is_ok(), got.is_ok());
        let path = lock_file_path(&name);
        if got.is_ok() {
            let dir = lock_file_path("a");
            prop_assert_eq!(path.parent(), dir.parent(), "a valid name stays in the temp dir");
        }
    }

    /// Any timeout and delay: a free mutex is acquired (zero delay is the
    /// one invalid value), with no panic and no overflow, for acquire and
    /// try_acquire alike, and a manual clock can be advanced by anything.
    #[test]
    fn any_durations_on_a_free_mutex(
        timeout in any::<(u64, u32)>(),
        delay in prop_oneof![Just((0u64, 0u32)), any::<(u64, u32)>()],
        advance in any::<(u64, u32)>(),
    ) {
        let d = |(s, n): (u64, u32)| Duration::new(s, n % 1_000_000_000);
        let (timeout, delay) = (d(timeout), d(delay));
        let clock = ManualClock::new();
        clock.advance(d(advance));
        // Flock only: other tests of this binary spawn children, and a child
        // between fork and exec briefly keeps a copy of a just-closed legacy
        // socket bound, so a free mutex could need one more poll, which the
        // standing manual clock would never grant (RELIABILITY.md).
        let spec = Spec::new(shared_name())
            .with_legacy_socket(false)
            .with_timeout(timeout)
            .with_delay(delay)
            .with_clock(clock);
        for attempt in [Spec::acquire, Spec::try_acquire] {
            match attempt(&spec) {
                Ok(guard) => prop_assert!(!delay.is_zero() && guard.is_held()),
                Err(Error::InvalidSpec(InvalidSpec::ZeroDelay)) => prop_assert!(delay.is_zero()),
                // The try right after the acquisition's release: a child that
                // another test spawns right then holds a copy of the closed
                // descriptor until its exec (RELIABILITY.md, "fork without exec").
                Err(Error::WouldBlock) => {}
                Err(e) => prop_assert!(false, "{}", e),
            }
        }
    }

    /// Any representable timeout on a held mutex ends in Timeout: the clock
    /// jumps to whatever deadline the waiter sleeps towards.
    #[test]
    fn any_timeout_on_a_held_mutex_times_out(secs in 0u64..(100 * 365 * 86400), nanos in 0u32..1_000_000_000) {
        let name = held_name();
        let spec = Spec::new(name)
            .with_timeout(Duration::new(secs, nanos))
            .with_clock(JumpClock(std::sync::Mutex::new(Instant::now())));
        let result = spec.acquire();
        if secs == 0 && nanos == 0 {
            prop_assert!(false, "zero means forever; not generated: {:?}", result.map(drop));
        }
        prop_assert!(matches!(result, Err(Error::Timeout)), "{:?}", result.map(drop));
    }
}

/// One name for all the free-mutex cases (one lock file, not thousands).
fn shared_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| unique_name("prop-free"))
}

/// A name held for the whole test run by this process.
fn held_name() -> &'static str {
    static HELD: std::sync::OnceLock<(String, machine_mutex::Releaser)> =
        std::sync::OnceLock::new();
    let (name, _) = HELD.get_or_init(|| {
        let name = unique_name("prop-held");
        let guard = Spec::new(&name).acquire().unwrap();
        (name, guard)
    });
    name
}

/// A clock whose every wait jumps to the deadline.
#[derive(Debug)]
struct JumpClock(std::sync::Mutex<Instant>);

impl Clock for JumpClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
    fn wait_until(&self, deadline: Instant, _: &Wakeup) {
        let mut now = self.0.lock().unwrap();
        *now = (*now).max(deadline);
    }
}

/// A timeout too large to add to the clock (Duration::MAX) waits forever,
/// as documented, without overflow; a cancel ends it. The cancel comes once
/// the waiter's kernel waiter is seen blocked in flock (/proc/locks).
#[test]
fn unrepresentable_timeout_waits_until_cancelled() {
    let name = unique_name("prop-max");
    let held = Spec::new(&name).acquire().unwrap();
    let ino = faults::inode(&lock_file_path(&name));
    let token = CancelToken::new();
    let spec = Spec::new(&name)
        .with_timeout(Duration::MAX)
        .with_cancel(token.clone());
    let waiter = std::thread::spawn(move || spec.acquire().map(drop));
    faults::wait_until("the waiter is queued behind the flock", || {
        faults::has_flock(std::process::id(), ino, true)
    });
    assert!(!waiter.is_finished());
    token.cancel();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled)));
    drop(held);
}

/// Role `invalid-names-prop`: 1,000 generated invalid names, each tried with
/// acquire and try_acquire: every one is rejected as InvalidSpec.
fn invalid_names_prop() {
    let mut runner = TestRunner::new(Config::with_cases(1000));
    let count = std::cell::Cell::new(0usize);
    runner
        .run(&names().prop_filter("invalid", |n| !grammar(n)), |name| {
            for result in [
                Spec::new(name.clone()).acquire(),
                Spec::new(name.clone()).try_acquire(),
            ] {
                prop_assert!(
                    matches!(result, Err(Error::InvalidSpec(_))),
                    "{:?}: {:?}",
                    name,
                    result.map(drop)
                );
            }
            count.set(count.get() + 1);
            Ok(())
        })
        .unwrap();
    say(&format!("rejected {}", count.get()));
}

/// Invalid names create nothing: a child with a private, empty TMPDIR two
/// levels below a fresh directory rejects 1,000 generated invalid names
/// (with `/`, `..`, NUL-free control characters, Unicode...); afterwards
/// both directories hold exactly what they held before.
#[test]
fn invalid_names_create_nothing_on_disk() {
    let root = faults::open_tempdir();
    let tmpdir = root.path().join("a").join("tmp");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let mut child = spawn(
        "invalid-names-prop",
        "unused",
        Opts::default()
            .env("TMPDIR", tmpdir.as_os_str())
            .cwd(root.path()),
    );
    let count: usize = child.expect_line("rejected").parse().unwrap();
    assert!(child.finish().success());
    assert!(count >= 1000, "{count}");
    let list = |p: &std::path::Path| -> Vec<_> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    assert!(list(&tmpdir).is_empty(), "{:?}", list(&tmpdir));
    assert_eq!(list(&root.path().join("a")), ["tmp"]);
    assert_eq!(list(root.path()), ["a"]);
}
