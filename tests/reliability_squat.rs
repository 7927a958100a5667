//! Fault 10, the legacy abstract socket squatted: another process binds
//! `@/var/lib/juju/mutex-/NAME` and never lets go. An acquisition with a
//! timeout gets the timeout error and releases the flock it took meanwhile;
//! one without a timeout can be cancelled; a try fails at once; when the
//! squatter goes, a waiter gets in. Linux only (the socket exists only there).
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::io::Read;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::thread;
use std::time::Duration;

use common::unique_name;
use faults::{say, spawn, Child, Opts, LIMIT};
use machine_mutex::{legacy_socket_name, CancelToken, Error, ManualClock, Spec};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "squat" => squat(name),
            _ => return false,
        }
        true
    });
}

/// Role `squat`: binds the legacy socket name of `name` (and nothing else),
/// prints `squatting`, keeps it until stdin closes.
fn squat(name: &str) {
    let abstract_name = legacy_socket_name(name);
    let addr = SocketAddr::from_abstract_name(abstract_name.strip_prefix('@').unwrap().as_bytes())
        .unwrap();
    let socket = UnixListener::bind_addr(&addr).expect("bind the legacy name");
    say("squatting");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(socket);
}

fn squatter(name: &str) -> Child {
    let mut child = spawn("squat", name, Opts::default());
    child.expect_line("squatting");
    child
}

/// Whether the flock part is held: a flock-only try fails.
fn flock_is_held(name: &str) -> bool {
    matches!(
        Spec::new(name).with_legacy_socket(false).try_acquire(),
        Err(Error::WouldBlock)
    )
}

/// Whether the flock part is free: a flock-only acquisition gets it. It may
/// wait a moment: another test of this binary spawning a child right then
/// gives that child, until its exec, a copy of the descriptor just closed
/// (RELIABILITY.md, "fork without exec"); LIMIT only guards against a hang.
fn flock_is_free(name: &str) -> bool {
    Spec::new(name)
        .with_legacy_socket(false)
        .with_timeout(LIMIT)
        .acquire()
        .is_ok()
}

/// With a timeout: while it polls the socket the acquisition holds the
/// flock; at the timeout (on a manual clock) it returns Timeout and the
/// flock is free again.
#[test]
fn squatted_socket_times_out_and_releases_the_flock() {
    let name = unique_name("squat-timeout");
    let squatter = squatter(&name);
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(10));
    let waiter = thread::spawn(move || spec.acquire().map(drop));
    assert!(clock.wait_for_waiters(1, LIMIT), "polling the socket");
    assert!(flock_is_held(&name), "the flock is held while polling");
    clock.advance(Duration::from_secs(10));
    assert!(matches!(waiter.join().unwrap(), Err(Error::Timeout)));
    assert!(flock_is_free(&name), "the flock was released");
    assert!(squatter.finish().success());
}

/// Without a timeout: cancel ends the wait with Cancelled and frees the flock.
#[test]
fn squatted_socket_without_timeout_can_be_cancelled() {
    let name = unique_name("squat-cancel");
    let squatter = squatter(&name);
    let clock = ManualClock::new();
    let token = CancelToken::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_cancel(token.clone());
    let waiter = thread::spawn(move || spec.acquire().map(drop));
    assert!(clock.wait_for_waiters(1, LIMIT));
    token.cancel();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled)));
    assert!(flock_is_free(&name));
    assert!(squatter.finish().success());
}

/// A try fails at once with WouldBlock and keeps nothing.
#[test]
fn squatted_socket_try_fails_at_once() {
    let name = unique_name("squat-try");
    let squatter = squatter(&name);
    assert!(matches!(
        Spec::new(&name).try_acquire(),
        Err(Error::WouldBlock)
    ));
    assert!(flock_is_free(&name));
    assert!(squatter.finish().success());
}

/// When the squatter exits, the next poll (one delay later on the manual
/// clock) binds the socket: the waiter gets the mutex.
#[test]
fn waiter_gets_in_when_the_squatter_leaves() {
    let name = unique_name("squat-leaves");
    let squatter = squatter(&name);
    let clock = ManualClock::new();
    let spec = Spec::new(&name).with_clock(clock.clone());
    let waiter = thread::spawn(move || spec.acquire().map(|g| g.is_held()));
    assert!(clock.wait_for_waiters(1, LIMIT));
    assert!(squatter.finish().success());
    clock.advance(Spec::DEFAULT_DELAY);
    assert!(waiter
        .join()
        .unwrap()
        .expect("acquired after the squatter left"));
}
