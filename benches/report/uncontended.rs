//! Family 1: uncontended acquire + release, in one process, per operation.
//!
//! Every case runs `iters` acquire + release pairs in a timed loop (after a
//! tenth as many untimed), once per run, the cases' order rotating from run
//! to run; the figure is the median over runs of the mean per pair. The Go
//! and Python peers time their own loops of `iters` pairs (one process per
//! run, its start-up not timed; no untimed warm-up).

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use machine_mutex::Spec;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::peers::{bench_field, Peer};
use crate::stats::median;
use crate::Context;

/// What a row is, for the report's grouping and the plot's colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A raw system-call floor.
    Floor,
    /// This crate.
    Ours,
    /// Another implementation.
    Peer,
}

/// One implementation's figure.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: &'static str,
    pub label: String,
    pub kind: Kind,
    /// Median over runs, nanoseconds per acquire + release.
    pub ns: f64,
    /// Each run's mean, nanoseconds.
    pub runs: Vec<f64>,
}

/// The keys of the floors, used by the report's targets.
pub const FLOOR_OPEN: &str = "floor-open-flock-close";
pub const FLOOR_KEPT: &str = "floor-kept-fd";
pub const FLOOR_KEPT_RECHECK: &str = "floor-kept-fd-recheck";
pub const FLOOR_SOCKET: &str = "floor-socket";
pub const MM_LEGACY: &str = "mm-legacy";
pub const MM_NOLEGACY: &str = "mm-nolegacy";
pub const MM_NOLEGACY_NOKEEP: &str = "mm-nolegacy-nokeep";
pub const MM_NOLEGACY_FAIR: &str = "mm-nolegacy-fair";
pub const GO: &str = "go";
pub const PYTHON: &str = "python";

type Op = Box<dyn FnMut()>;

struct Case {
    key: &'static str,
    label: String,
    kind: Kind,
    /// Runs the case for `iters` pairs; returns nanoseconds per pair.
    run: Box<dyn FnMut(usize) -> f64>,
}

/// Times `op` in process: `iters / 10` untimed, then `iters` timed.
fn in_process(mut op: Op) -> Box<dyn FnMut(usize) -> f64> {
    Box::new(move |iters| {
        for _ in 0..iters / 10 {
            op();
        }
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        start.elapsed().as_nanos() as f64 / iters as f64
    })
}

fn open_create(path: &Path) -> rustix::fd::OwnedFd {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn cases(ctx: &Context) -> Vec<Case> {
    let dir = &ctx.lock_dir;
    let mut cases = Vec::new();

    let path = machine_mutex::lock_file_path(&ctx.name("floor-open"));
    cases.push(Case {
        key: FLOOR_OPEN,
        label: "floor: open(O_CREAT) + flock(LOCK_EX) + close".to_owned(),
        kind: Kind::Floor,
        run: in_process(Box::new(move || {
            let fd = open_create(&path);
            rustix::fs::flock(&fd, FlockOperation::LockExclusive).expect("flock");
            drop(black_box(fd));
        })),
    });

    let kept = open_create(&machine_mutex::lock_file_path(&ctx.name("floor-kept")));
    cases.push(Case {
        key: FLOOR_KEPT,
        label: "floor: flock(LOCK_EX) + flock(LOCK_UN) on a kept descriptor".to_owned(),
        kind: Kind::Floor,
        run: in_process(Box::new(move || {
            rustix::fs::flock(&kept, FlockOperation::LockExclusive).expect("flock");
            rustix::fs::flock(&kept, FlockOperation::Unlock).expect("unlock");
        })),
    });

    let kept_path = machine_mutex::lock_file_path(&ctx.name("floor-recheck"));
    let kept = open_create(&kept_path);
    // The file's identity, read once when it was opened, as the crate
    // stores it with a kept descriptor.
    let open = rustix::fs::fstat(&kept).expect("fstat");
    cases.push(Case {
        key: FLOOR_KEPT_RECHECK,
        label: "floor: kept descriptor: flock + lstat(path) re-check + unlock".to_owned(),
        kind: Kind::Floor,
        run: in_process(Box::new(move || {
            // What the crate's kept descriptors cost: after locking, the
            // path must still name the open file (same device and inode).
            rustix::fs::flock(&kept, FlockOperation::LockExclusive).expect("flock");
            let by_path = rustix::fs::lstat(&kept_path).expect("lstat");
            assert!(by_path.st_ino == open.st_ino && by_path.st_dev == open.st_dev);
            rustix::fs::flock(&kept, FlockOperation::Unlock).expect("unlock");
        })),
    });

    let socket_name = format!("/var/lib/juju/mutex-/{}", ctx.name("floor-socket"));
    cases.push(Case {
        key: FLOOR_SOCKET,
        label: "floor: abstract socket() + bind() + close".to_owned(),
        kind: Kind::Floor,
        run: in_process(Box::new(move || {
            let addr = SocketAddrUnix::new_abstract_name(socket_name.as_bytes())
                .expect("abstract address");
            let fd = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .expect("socket");
            rustix::net::bind(&fd, &addr).expect("bind");
            drop(black_box(fd));
        })),
    });

    for (key, legacy, keep, fair) in [
        (MM_LEGACY, true, true, false),
        (MM_NOLEGACY, false, true, false),
        (MM_NOLEGACY_NOKEEP, false, false, false),
        (MM_NOLEGACY_FAIR, false, true, true),
    ] {
        let spec = Spec::new(ctx.name(key))
            .with_legacy_socket(legacy)
            .with_kept_descriptor(keep)
            .with_fair_queue(fair);
        cases.push(Case {
            key,
            label: format!(
                "machine-mutex, legacy socket {}{}{}",
                if legacy { "on (default)" } else { "off" },
                if keep {
                    ""
                } else {
                    ", kept descriptor off (open + close each time)"
                },
                if fair {
                    ", fair queue on (reads the queue's counters before locking)"
                } else {
                    ""
                }
            ),
            kind: Kind::Ours,
            run: in_process(Box::new(move || {
                let guard = spec.acquire().expect("acquire");
                drop(black_box(guard));
            })),
        });
    }

    let name = ctx.name("named-lock");
    cases.push(Case {
        key: "named-lock",
        label: "named-lock: create + lock + unlock + drop".to_owned(),
        kind: Kind::Peer,
        run: in_process(Box::new(move || {
            let lock = named_lock::NamedLock::create(&name).expect("named-lock create");
            let guard = lock.lock().expect("named-lock lock");
            drop(black_box(guard));
            drop(lock);
        })),
    });
    let lock = named_lock::NamedLock::create(&ctx.name("named-lock-kept")).expect("create");
    cases.push(Case {
        key: "named-lock-kept",
        label: "named-lock: lock + unlock, handle kept".to_owned(),
        kind: Kind::Peer,
        run: in_process(Box::new(move || {
            let guard = lock.lock().expect("named-lock lock");
            drop(black_box(guard));
        })),
    });

    let path = dir.join("fd-lock.lock");
    cases.push(Case {
        key: "fd-lock",
        label: "fd-lock: open + write lock + unlock + close".to_owned(),
        kind: Kind::Peer,
        run: in_process(Box::new(move || {
            let mut lock = fd_lock::RwLock::new(open_rw(&path));
            let guard = lock.write().expect("fd-lock write");
            drop(black_box(guard));
        })),
    });
    let mut kept = fd_lock::RwLock::new(open_rw(&dir.join("fd-lock-kept.lock")));
    cases.push(Case {
        key: "fd-lock-kept",
        label: "fd-lock: write lock + unlock, file kept".to_owned(),
        kind: Kind::Peer,
        run: in_process(Box::new(move || {
            let guard = kept.write().expect("fd-lock write");
            drop(black_box(guard));
        })),
    });

    let path = dir.join("std-file-lock.lock");
    cases.push(Case {
        key: "std",
        label: "std File::lock: open + lock + close".to_owned(),
        kind: Kind::Peer,
        run: in_process(Box::new(move || {
            let file = open_rw(&path);
            file.lock().expect("File::lock");
            drop(black_box(file));
        })),
    });
    let kept = open_rw(&dir.join("std-file-lock-kept.lock"));
    cases.push(Case {
        key: "std-kept",
        label: "std File::lock: lock + unlock, file kept".to_owned(),
        kind: Kind::Peer,
        run: in_process(Box::new(move || {
            kept.lock().expect("File::lock");
            kept.unlock().expect("File::unlock");
        })),
    });

    if let Some(go) = &ctx.go {
        let peer = Peer::Go(go.clone());
        let name = ctx.name("go-uncontended");
        cases.push(Case {
            key: GO,
            label: "Go juju/mutex v2: Acquire + Release (peer times its loop)".to_owned(),
            kind: Kind::Peer,
            run: peer_loop(peer, name, 1.0),
        });
    }
    if let Some(python) = &ctx.python {
        let peer = Peer::Python(python.clone());
        let name = ctx.name("py-uncontended");
        let scale =
            ctx.config.uncontended_python_iters as f64 / ctx.config.uncontended_iters as f64;
        cases.push(Case {
            key: PYTHON,
            label: "Python filelock: acquire + release (peer times its loop)".to_owned(),
            kind: Kind::Peer,
            run: peer_loop(peer, name, scale),
        });
    }
    cases
}

/// Runs the peer's `bench-uncontended` loop with `iters * scale` pairs.
fn peer_loop(peer: Peer, name: String, scale: f64) -> Box<dyn FnMut(usize) -> f64> {
    Box::new(move |iters| {
        let n = ((iters as f64 * scale) as usize).max(1);
        let mut child = peer.spawn("bench-uncontended", &name, &[n.to_string()]);
        let rest = child.expect_line("bench");
        let (status, _) = child.finish();
        assert!(status.success(), "{} ended with {status}", peer.label());
        bench_field(&rest, "ns_per_op")
    })
}

/// Measures every case; rows in case order.
pub fn run(ctx: &Context) -> Vec<Row> {
    let mut cases = cases(ctx);
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let n = cases.len();
    for r in 0..ctx.config.uncontended_runs {
        for k in 0..n {
            let i = (k + r) % n;
            let ns = (cases[i].run)(ctx.config.uncontended_iters);
            runs[i].push(ns);
        }
    }
    cases
        .into_iter()
        .zip(runs)
        .map(|(case, runs)| {
            let row = Row {
                key: case.key,
                label: case.label,
                kind: case.kind,
                ns: median(&runs),
                runs,
            };
            eprintln!("report:   {:<70} {:>9.0} ns", row.label, row.ns);
            row
        })
        .collect()
}
