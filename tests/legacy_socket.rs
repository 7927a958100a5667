//! Rule 12 (Linux): the legacy abstract socket `\0/var/lib/juju/mutex-/NAME`
//! of juju/mutex v1 is bound while the mutex is held and free after release;
//! a socket bound by someone else makes acquire wait (polling every delay) or
//! time out, releasing the flock it took.
#![cfg(target_os = "linux")]
// Tests run on current stable; only the library keeps to the 1.63 MSRV.
#![allow(clippy::incompatible_msrv)]

mod common;

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::thread;
use std::time::Duration;

use common::unique_name;
use machine_mutex::{legacy_socket_name, CancelToken, Error, ManualClock, Spec};

const LIMIT: Duration = Duration::from_secs(30);

/// Binds the v1 socket of `name` as an old implementation would.
fn bind_v1(name: &str) -> io::Result<UnixListener> {
    let addr = SocketAddr::from_abstract_name(format!("/var/lib/juju/mutex-/{name}"))?;
    UnixListener::bind_addr(&addr)
}

fn listed_in_proc_net_unix(name: &str) -> bool {
    let wanted = legacy_socket_name(name);
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .any(|line| line.split_whitespace().last() == Some(wanted.as_str()))
}

/// While held, the socket name is bound (listed in /proc/net/unix, a second
/// bind fails with EADDRINUSE); after release it is free again.
#[test]
fn socket_bound_while_held_and_free_after_release() {
    let name = unique_name("sock-held");
    assert_eq!(
        legacy_socket_name(&name),
        format!("@/var/lib/juju/mutex-/{name}")
    );
    let mut guard = Spec::new(&name).acquire().unwrap();
    assert!(listed_in_proc_net_unix(&name));
    let err = bind_v1(&name).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    guard.release().unwrap();
    assert!(!listed_in_proc_net_unix(&name));
    drop(bind_v1(&name).expect("free after release"));
}

/// With the legacy socket turned off, only the flock is taken.
#[test]
fn legacy_socket_can_be_turned_off() {
    let name = unique_name("sock-off");
    let _guard = Spec::new(&name)
        .with_legacy_socket(false)
        .acquire()
        .unwrap();
    assert!(!listed_in_proc_net_unix(&name));
    drop(bind_v1(&name).expect("not bound"));
}

/// A pre-bound socket makes a timed acquire time out on the spec's clock,
/// and the flock taken meanwhile is released (a flock-only try succeeds).
#[test]
fn pre_bound_socket_times_out_and_releases_flock() {
    let name = unique_name("sock-timeout");
    let _v1 = bind_v1(&name).unwrap();
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_delay(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(5));
    let waiter = thread::spawn(move || spec.acquire().map(drop));
    for _ in 0..5 {
        assert!(clock.wait_for_waiters(1, LIMIT));
        clock.advance(Duration::from_secs(1));
    }
    assert!(matches!(waiter.join().unwrap(), Err(Error::Timeout)));
    drop(
        Spec::new(&name)
            .with_legacy_socket(false)
            .try_acquire()
            .expect("flock released"),
    );
    assert!(matches!(
        Spec::new(&name).try_acquire(),
        Err(Error::WouldBlock)
    ));
}

/// A pre-bound socket makes acquire wait, polling every delay; it gets the
/// mutex once the socket is closed.
#[test]
fn pre_bound_socket_waits_until_closed() {
    let name = unique_name("sock-wait");
    let v1 = bind_v1(&name).unwrap();
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_delay(Duration::from_millis(10));
    let waiter = thread::spawn(move || spec.acquire().map(|g| g.is_held()));
    // Two polls that find the socket still bound.
    for _ in 0..2 {
        assert!(clock.wait_for_waiters(1, LIMIT));
        clock.advance(Duration::from_millis(10));
    }
    assert!(clock.wait_for_waiters(1, LIMIT));
    drop(v1);
    clock.advance(Duration::from_millis(10));
    assert!(waiter.join().unwrap().unwrap());
}

/// Without a timeout, cancel ends a wait on a squatted socket.
#[test]
fn pre_bound_socket_wait_can_be_cancelled() {
    let name = unique_name("sock-cancel");
    let _v1 = bind_v1(&name).unwrap();
    let clock = ManualClock::new();
    let token = CancelToken::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_cancel(token.clone());
    let waiter = thread::spawn(move || spec.acquire().map(drop));
    assert!(clock.wait_for_waiters(1, LIMIT));
    token.cancel();
    assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled)));
    drop(
        Spec::new(&name)
            .with_legacy_socket(false)
            .try_acquire()
            .expect("flock released"),
    );
}
