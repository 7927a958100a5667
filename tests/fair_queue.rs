//! The cross-process queue (`src/sys/linux/fair_queue.rs`): processes that
//! wait for a name are served in the order they came, a process that
//! releases and asks again at once queues behind them, and neither a killed
//! waiter nor a child forked by a waiter stalls the queue. Real processes,
//! synchronised through pipes and the queue's own counter (each waiter is
//! seen to have taken its ticket before the next one starts), never
//! through sleeps.
// Linux: /proc, record locks. Tests build with current stable; only the
// library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use common::{append_event, events, unique_name};
use faults::{say, spawn, Opts};
use machine_mutex::{lock_file_path, Spec};

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "queue-wait" => queue_wait(name),
            "queue-fork" => queue_fork(name),
            "queue-two" => queue_two(name),
            "fsize-wait" => fsize_wait(name),
            _ => return false,
        }
        true
    });
}

/// The fair queue on; flock only: the legacy socket (bound by every
/// holder) plays no part.
fn spec(name: &str) -> Spec {
    Spec::new(name)
        .with_legacy_socket(false)
        .with_fair_queue(true)
}

/// The queue's side file of `name`.
fn side_file(name: &str) -> PathBuf {
    let mut side = lock_file_path(name).into_os_string();
    side.push(".queue");
    PathBuf::from(side)
}

/// How many tickets the queue of `name` has given out: its side file's
/// first counter (`tail`, native-endian u64 at offset 0); 0 without a side
/// file.
fn tickets(name: &str) -> u64 {
    let bytes = std::fs::read(side_file(name)).unwrap_or_default();
    bytes
        .get(..8)
        .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap()))
}

/// Starts a `queue-wait` process for `name` and returns it once it has
/// taken its ticket (the queue's `tail` reached `tail`).
fn queued_waiter(name: &str, tag: &str, events: &Path, tail: u64) -> faults::Child {
    let child = spawn(
        "queue-wait",
        name,
        Opts::default()
            .env("MM_TAG", tag)
            .env("MM_EVENTS", events.as_os_str()),
    );
    faults::wait_until(&format!("{tag} takes ticket {}", tail - 1), || {
        tickets(name) >= tail
    });
    child
}

/// Role `queue-wait`: prints `waiting`, acquires NAME (no timeout), appends
/// `MM_TAG` to the `MM_EVENTS` file, releases, prints `served`.
fn queue_wait(name: &str) {
    let tag = std::env::var("MM_TAG").expect("MM_TAG");
    let events = PathBuf::from(std::env::var_os("MM_EVENTS").expect("MM_EVENTS"));
    say("waiting");
    let guard = spec(name).acquire().expect("acquire");
    append_event(&events, &tag);
    drop(guard);
    say("served");
}

/// Three processes queue up, one after the other, for a name this process
/// holds. This process then releases and at once acquires again, 20 times:
/// it is served after the three, in their order, although its flock call
/// comes before any of them wakes (without the queue it takes the lock
/// first, as a released flock is free for whoever asks first).
#[test]
fn waiters_are_served_in_arrival_order_and_a_releaser_queues_behind_them() {
    let name = unique_name("queue-order");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    // Acquired and released once first, so that this process keeps the
    // descriptor and reads the queue, as a process locking in a loop does.
    drop(spec(&name).acquire().unwrap());
    let held = spec(&name).acquire().unwrap();
    let waiters: Vec<faults::Child> = ["a", "b", "c"]
        .iter()
        .zip(1..)
        .map(|(tag, tail)| queued_waiter(&name, tag, &log, tail))
        .collect();
    drop(held);
    for _ in 0..20 {
        let guard = spec(&name).acquire().unwrap();
        append_event(&log, "releaser");
        drop(guard);
    }
    for mut waiter in waiters {
        waiter.expect_line("served");
        assert!(waiter.finish().success());
    }
    let order = events(&log);
    assert_eq!(
        order[..4],
        ["a", "b", "c", "releaser"],
        "service order: {order:?}"
    );
    assert_eq!(order.len(), 23, "{order:?}");
}

/// A waiter killed while it sleeps in the queue, and one killed while it
/// holds the mutex it waited for (its place still held), do not stall the
/// processes queued behind them: the kernel frees a dead process's record
/// locks, as it frees its flock.
#[test]
fn a_killed_waiter_or_holder_does_not_stall_the_queue() {
    let name = unique_name("queue-killed");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let held = spec(&name).acquire().unwrap();
    let doomed = queued_waiter(&name, "doomed", &log, 1);
    let next = queued_waiter(&name, "next", &log, 2);
    // `next` sleeps on `doomed`'s place; `doomed` dies in flock.
    doomed.kill();
    drop(held);
    let mut next = next;
    next.expect_line("served");
    assert!(next.finish().success());
    assert_eq!(events(&log), ["next"]);

    // A holder served by the queue, killed while holding: the waiter behind
    // it is served.
    let held = spec(&name).acquire().unwrap();
    let mut holder = spawn(
        "attempt",
        &name,
        Opts::default()
            .env("MM_HOLD", "1")
            .env("MM_TEST_LEGACY", "0")
            .env("MM_TEST_FAIR", "1"),
    );
    faults::wait_until("the holder takes ticket 2", || tickets(&name) >= 3);
    drop(held);
    assert_eq!(holder.expect_line("result"), "ok");
    let behind = queued_waiter(&name, "behind", &log, 4);
    holder.kill();
    let mut behind = behind;
    behind.expect_line("served");
    assert!(behind.finish().success());
    assert_eq!(events(&log), ["next", "behind"]);
}

/// Role `queue-fork`: a thread acquires NAME (it sleeps in the queue or in
/// flock, and is never served: the process is killed first); on the stdin
/// line `fork` the main thread forks a child that never execs and prints
/// `forked PID`.
fn queue_fork(name: &str) {
    let name = name.to_owned();
    std::thread::spawn(move || {
        let _guard = spec(&name).acquire();
    });
    say("waiting");
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().trim() {
            "fork" => {
                let pid = faults::fork_paused_child(false, || {});
                say(&format!("forked {pid}"));
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// A process waiting in the queue forks a child that never execs, then is
/// killed: the child, which lives on, holds no place in the queue (the fork
/// handler closes each turn's descriptor in the child; the open file
/// description it shared would keep the dead waiter's record lock), so the
/// process behind it is served.
#[test]
fn a_child_forked_by_a_killed_waiter_holds_no_place() {
    let name = unique_name("queue-fork");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let held = spec(&name).acquire().unwrap();
    let mut forker = spawn("queue-fork", &name, Opts::default());
    forker.expect_line("waiting");
    faults::wait_until("the forker takes ticket 0", || tickets(&name) >= 1);
    let behind = queued_waiter(&name, "behind", &log, 2);
    forker.send("fork");
    let child: i32 = forker.expect_line("forked").parse().unwrap();
    let _child = KillOnDrop(child);
    forker.kill();
    drop(held);
    let mut behind = behind;
    behind.expect_line("served");
    assert!(behind.finish().success());
    assert!(
        Path::new(&format!("/proc/{child}")).exists(),
        "the forked child lives on"
    );
    assert_eq!(events(&log), ["behind"]);
}

/// Role `queue-two`: thread `a` acquires NAME and prints `a-holding`; on
/// the stdin line `start-b`, thread `b` acquires too (it waits: `a` holds)
/// and, once served, appends `p-b` to `MM_EVENTS` and releases; on
/// `release-a`, `a` releases. Prints `done` when `b` was served.
fn queue_two(name: &str) {
    let events = PathBuf::from(std::env::var_os("MM_EVENTS").expect("MM_EVENTS"));
    let a = spec(name).acquire().expect("a");
    say("a-holding");
    let mut a = Some(a);
    let mut b = None;
    for line in std::io::stdin().lock().lines() {
        match line.unwrap().trim() {
            "start-b" => {
                let (name, events) = (name.to_owned(), events.clone());
                b = Some(std::thread::spawn(move || {
                    let guard = spec(&name).acquire().expect("b");
                    append_event(&events, "p-b");
                    drop(guard);
                }));
            }
            "release-a" => {
                drop(a.take());
                b.take().expect("b started").join().unwrap();
                say("done");
                return;
            }
            other => panic!("unknown command {other}"),
        }
    }
}

/// One process with two waiters of a name, another process between them:
/// the first waiter (`a`) holds the mutex (its turn served), process `q`
/// queues, then the same process's second waiter (`b`) queues. When `a`
/// releases, `q` is served before `b`: the second waiter of a process takes
/// its own turn behind `q`, its own description ordering it like another
/// process's (with process-owned record locks the kernel reported a
/// deadlock between the two processes' interleaved turns, and `b` went
/// straight to flock ahead of `q`; the place `a` kept for its slice was
/// then lost, and `q` waited until the process exited).
#[test]
fn a_second_waiter_of_a_process_queues_behind_other_processes() {
    let name = unique_name("queue-two");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let held = spec(&name).acquire().unwrap();
    let mut two = spawn(
        "queue-two",
        &name,
        Opts::default().env("MM_EVENTS", log.as_os_str()),
    );
    faults::wait_until("a takes ticket 0", || tickets(&name) >= 1);
    drop(held);
    two.expect_line("a-holding");
    let q = queued_waiter(&name, "q", &log, 2);
    two.send("start-b");
    faults::wait_until("b takes ticket 2", || tickets(&name) >= 3);
    two.send("release-a");
    two.expect_line("done");
    assert!(two.finish().success());
    let mut q = q;
    q.expect_line("served");
    assert!(q.finish().success());
    assert_eq!(events(&log), ["q", "p-b"]);
}

/// Role `fsize-wait`: sets the file size limit (`RLIMIT_FSIZE`) to 0,
/// prints `waiting`, acquires NAME with the queue on, prints `result ok`.
fn fsize_wait(name: &str) {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &zero) }, 0);
    say("waiting");
    let result = spec(name).acquire();
    say(&format!("result {}", faults::describe(&result)));
}

/// A waiter whose file size limit is 0 would be killed (SIGXFSZ) by giving
/// the new side file its page: it skips the queue and waits on the flock
/// alone, and gets the mutex when it is released.
#[test]
fn a_file_size_limit_skips_the_queue_instead_of_killing() {
    let name = unique_name("queue-fsize");
    // Without the queue: the waiter makes the side file.
    let held = Spec::new(&name)
        .with_legacy_socket(false)
        .acquire()
        .unwrap();
    let mut waiter = spawn("fsize-wait", &name, Opts::default());
    waiter.expect_line("waiting");
    let (pid, ino) = (waiter.pid(), faults::inode(&lock_file_path(&name)));
    faults::wait_until("the waiter sleeps in flock", || {
        faults::has_flock(pid, ino, true)
    });
    assert_eq!(tickets(&name), 0, "no ticket taken");
    drop(held);
    assert_eq!(waiter.expect_line("result"), "ok");
    assert!(waiter.finish().success());
}

/// A side file owned by another user (root only: it plants one) is never
/// used: its owner could truncate it under the mapping (a SIGBUS in every
/// user of the name) or hold places forever. The waiter skips the queue
/// and waits on the flock alone; no ticket is taken from that file.
#[test]
fn another_users_side_file_is_not_used() {
    if faults::skip_unless_root(
        "another_users_side_file_is_not_used",
        "planting a side file owned by another user needs chown",
    ) {
        return;
    }
    let name = unique_name("queue-owner");
    let side = side_file(&name);
    std::fs::write(&side, vec![0u8; 4096]).unwrap();
    std::os::unix::fs::chown(&side, Some(65534), Some(65534)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events");
    let held = spec(&name).acquire().unwrap();
    let mut waiter = spawn(
        "queue-wait",
        &name,
        Opts::default()
            .env("MM_TAG", "w")
            .env("MM_EVENTS", log.as_os_str()),
    );
    waiter.expect_line("waiting");
    let (pid, ino) = (waiter.pid(), faults::inode(&lock_file_path(&name)));
    faults::wait_until("the waiter sleeps in flock", || {
        faults::has_flock(pid, ino, true)
    });
    drop(held);
    waiter.expect_line("served");
    assert!(waiter.finish().success());
    assert_eq!(tickets(&name), 0, "the planted side file was used");
    std::fs::remove_file(&side).unwrap();
}

/// A hard link planted at the side file's path (to a file of this user)
/// is not used: the counters would be written into that file's content.
/// The acquisition waits on the flock alone; the file is left as it was.
#[test]
fn a_hard_link_at_the_side_file_path_is_not_used() {
    let name = unique_name("queue-link");
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.conf");
    std::fs::write(&victim, "important=config\n").unwrap();
    std::fs::hard_link(&victim, side_file(&name)).unwrap();
    for _ in 0..3 {
        drop(spec(&name).acquire().unwrap());
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "important=config\n"
    );
    std::fs::remove_file(side_file(&name)).unwrap();
}

/// Kills a process (an orphaned forked child) when dropped.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid this test forked (through its parent).
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
        }
    }
}
