//! Fault 1, killed holders: processes holding or waiting for the mutex are
//! killed with SIGKILL at random moments; the mutex is always acquirable
//! afterwards and never has two holders.
// Linux: /proc, abstract sockets, Linux errno texts. Tests build with
// current stable; only the library keeps to Rust 1.63.
#![cfg(target_os = "linux")]
#![allow(clippy::incompatible_msrv)]

mod common;
mod faults;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::unique_name;
use faults::{say, spawn, Opts, LIMIT};
use machine_mutex::Spec;

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    faults::child_entry(|role, name| {
        match role {
            "churn" => churn(name),
            _ => return false,
        }
        true
    });
}

/// The phases a churning process announces, in cycle order.
const WAITING: u8 = b'w';
const ACQUIRED: u8 = b'a';
const HOLDING: u8 = b'h';
const RELEASING: u8 = b'r';
const IDLE: u8 = b'i';

fn env_path(key: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(key).unwrap_or_else(|| panic!("{key} not set")))
}

/// Role `churn`: acquire, enter the critical section, leave, release, over
/// and over until stdin closes; then print `done CYCLES`. With `MM_PHASE`
/// set, writes its current phase as one byte at offset 0 of that file
/// before each step, so the parent can kill it in a chosen phase. Random
/// busy pauses of up to 30 us between steps widen every phase.
fn churn(name: &str) {
    let marker = env_path("MM_MARKER");
    let overlaps = env_path("MM_OVERLAPS");
    let phase = std::env::var_os("MM_PHASE").map(|p| {
        OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open phase file")
    });
    let set = |p: u8| {
        if let Some(file) = &phase {
            file.write_at(&[p], 0).expect("write phase");
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            stop.store(true, Ordering::SeqCst);
        });
    }
    let mut rng = u64::from(std::process::id()) | 1;
    let spec = faults::child_spec(name);
    let mut cycles = 0u64;
    while !stop.load(Ordering::SeqCst) {
        set(WAITING);
        spin(&mut rng);
        let guard = spec.acquire().expect("churn acquire");
        set(ACQUIRED);
        spin(&mut rng);
        enter(&marker, &overlaps);
        set(HOLDING);
        spin(&mut rng);
        leave(&marker, &overlaps);
        set(RELEASING);
        spin(&mut rng);
        drop(guard);
        set(IDLE);
        cycles += 1;
        if cycles == 1 {
            say("cycling");
        }
    }
    say(&format!("done {cycles}"));
}

/// Busy-waits a random 0-30 us (xorshift; no sleeping, no system calls).
fn spin(rng: &mut u64) {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let until = Instant::now() + Duration::from_nanos(*rng % 30_000);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Enters the critical section: creates `marker` holding this pid,
/// atomically (written aside, then hard-linked into place). A marker left
/// by a process that can no longer run user code (killed, exiting) is stale
/// and removed; one of a live process means two holders: recorded.
fn enter(marker: &Path, overlaps: &Path) {
    let me = std::process::id();
    let mine = marker.with_extension(me.to_string());
    fs::write(&mine, me.to_string()).expect("write marker");
    loop {
        match fs::hard_link(&mine, marker) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let other: Option<u32> = fs::read_to_string(marker)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                match other {
                    Some(pid) if pid != me && faults::runs_user_code(pid) => {
                        common::append_event(
                            overlaps,
                            &format!("{me} entered while {pid} was inside"),
                        );
                        break;
                    }
                    _ => {
                        let _ = fs::remove_file(marker);
                    }
                }
            }
            Err(e) => panic!("link marker: {e}"),
        }
    }
    let _ = fs::remove_file(&mine);
}

/// Leaves the critical section: the marker must still be this process's.
fn leave(marker: &Path, overlaps: &Path) {
    let me = std::process::id();
    let owner = fs::read_to_string(marker).unwrap_or_default();
    if owner.trim() != me.to_string() {
        common::append_event(
            overlaps,
            &format!("{me} left but the marker says {owner:?}"),
        );
    }
    let _ = fs::remove_file(marker);
}

/// 200 rounds: a victim process churns on the mutex against a survivor that
/// churns all along; each round kills the victim with SIGKILL at a random
/// moment of a chosen phase (waiting, just acquired, holding, releasing, in
/// turn). Half the victims also bind the legacy socket, as the survivor
/// does; the other half, and the test process, rely on the flock alone.
/// After each kill the test process itself acquires the mutex (with a time
/// limit that only guards against a hang) and runs the same critical section
/// check. No process ever finds a live process inside.
#[test]
fn killed_holders_200_rounds() {
    const ROUNDS: usize = 200;
    let name = unique_name("killed");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("inside");
    let overlaps = dir.path().join("overlaps");
    let phase = dir.path().join("phase");
    let base = || {
        Opts::default()
            .env("MM_MARKER", marker.as_os_str())
            .env("MM_OVERLAPS", overlaps.as_os_str())
    };
    let mut survivor = spawn("churn", &name, base());
    survivor.expect_line("cycling");
    let targets = [WAITING, ACQUIRED, HOLDING, RELEASING];
    let mut killed_in: BTreeMap<char, usize> = BTreeMap::new();
    for round in 0..ROUNDS {
        let target = targets[round % targets.len()];
        fs::write(&phase, [IDLE]).unwrap();
        // Half the victims take the legacy socket too (as the survivor does),
        // half only the flock: then the flock alone must exclude.
        let legacy = if (round / targets.len()) % 2 == 0 {
            "1"
        } else {
            "0"
        };
        let mut victim = spawn(
            "churn",
            &name,
            base()
                .env("MM_PHASE", phase.as_os_str())
                .env("MM_TEST_LEGACY", legacy),
        );
        victim.expect_line("cycling");
        let file = File::open(&phase).unwrap();
        let read_phase = || {
            let mut b = [0u8];
            file.read_at(&mut b, 0).unwrap();
            b[0]
        };
        let deadline = Instant::now() + LIMIT;
        while read_phase() != target {
            assert!(
                Instant::now() < deadline,
                "victim never reached phase {target}"
            );
            std::thread::yield_now();
        }
        let status = victim.kill();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: {status}"
        );
        *killed_in.entry(read_phase() as char).or_default() += 1;
        let guard = Spec::new(&name)
            .with_legacy_socket(false)
            .with_timeout(LIMIT)
            .acquire()
            .unwrap_or_else(|e| panic!("round {round}: not acquirable after the kill: {e}"));
        enter(&marker, &overlaps);
        leave(&marker, &overlaps);
        drop(guard);
    }
    survivor.close_stdin();
    let cycles: u64 = survivor.expect_line("done").parse().unwrap();
    let overlaps = fs::read_to_string(&overlaps).unwrap_or_default();
    eprintln!(
        "killed {ROUNDS} victims; last phase written before each kill: {killed_in:?}; \
         survivor cycles: {cycles}"
    );
    assert!(overlaps.is_empty(), "two holders seen:\n{overlaps}");
    assert!(cycles > 0);
}
