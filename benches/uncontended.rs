//! Micro-benchmarks (divan): one uncontended acquire + release in one
//! process, for this crate and its in-process peers, next to the raw
//! system-call floors measured by the same harness.
//!
//! `cargo bench --bench uncontended`. The cross-process figures (Go, Python,
//! hand-off, contention, scale, waiting) are in the report:
//! `bash scripts/bench.sh` (see BENCHMARKS.md).
//!
//! Lock files go to a private directory, made the `TMPDIR` of this process
//! before any benchmark runs, and removed at the end.

// Benchmarks build on current stable only (std::fs::File::lock, black_box);
// the library keeps to Rust 1.63.
#![allow(clippy::incompatible_msrv)]

use std::fs::{File, OpenOptions};
use std::os::unix::io::OwnedFd;
use std::path::{Path, PathBuf};

use divan::black_box;
use machine_mutex::Spec;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

fn main() {
    let dir = std::env::temp_dir().join(format!("machine-mutex-divan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the lock directory");
    // Before divan starts any thread: nothing else reads the environment yet.
    std::env::set_var("TMPDIR", &dir);
    divan::main();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A name unique to this process.
fn name(tag: &str) -> String {
    format!("divan-{}-{tag}", std::process::id())
}

fn lock_dir() -> PathBuf {
    machine_mutex::lock_file_path("x")
        .parent()
        .expect("a directory")
        .to_owned()
}

fn open_create(path: &Path) -> OwnedFd {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .expect("open the lock file")
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open the lock file")
}

/// The raw system calls.
mod floor {
    use super::*;

    /// `open(O_CREAT)` + `flock(LOCK_EX)` + `close`: the crate's floor.
    #[divan::bench]
    fn open_flock_close(bencher: divan::Bencher) {
        let path = machine_mutex::lock_file_path(&name("floor-open"));
        bencher.bench_local(|| {
            let fd = open_create(&path);
            rustix::fs::flock(&fd, FlockOperation::LockExclusive).expect("flock");
            drop(black_box(fd));
        });
    }

    /// `flock(LOCK_EX)` + `flock(LOCK_UN)` on a descriptor kept open.
    #[divan::bench]
    fn flock_kept_fd(bencher: divan::Bencher) {
        let fd = open_create(&machine_mutex::lock_file_path(&name("floor-kept")));
        bencher.bench_local(|| {
            rustix::fs::flock(&fd, FlockOperation::LockExclusive).expect("flock");
            rustix::fs::flock(&fd, FlockOperation::Unlock).expect("unlock");
        });
    }

    /// `socket` + `bind` (abstract name) + `close`: the legacy socket's floor.
    #[divan::bench]
    fn abstract_socket_bind_close(bencher: divan::Bencher) {
        let socket_name = format!("/var/lib/juju/mutex-/{}", name("floor-socket"));
        let addr = SocketAddrUnix::new_abstract_name(socket_name.as_bytes()).expect("address");
        bencher.bench_local(|| {
            let fd = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .expect("socket");
            rustix::net::bind(&fd, &addr).expect("bind");
            drop(black_box(fd));
        });
    }
}

/// This crate.
mod machine_mutex_crate {
    use super::*;

    /// The default spec: flock and the legacy socket (Linux).
    #[divan::bench]
    fn legacy_socket_on(bencher: divan::Bencher) {
        let spec = Spec::new(name("mm-on"));
        bencher.bench_local(|| drop(black_box(spec.acquire().expect("acquire"))));
    }

    /// flock only.
    #[divan::bench]
    fn legacy_socket_off(bencher: divan::Bencher) {
        let spec = Spec::new(name("mm-off")).with_legacy_socket(false);
        bencher.bench_local(|| drop(black_box(spec.acquire().expect("acquire"))));
    }

    /// flock only, the descriptor opened and closed each time (not kept).
    #[divan::bench]
    fn legacy_socket_off_kept_descriptor_off(bencher: divan::Bencher) {
        let spec = Spec::new(name("mm-off-nokeep"))
            .with_legacy_socket(false)
            .with_kept_descriptor(false);
        bencher.bench_local(|| drop(black_box(spec.acquire().expect("acquire"))));
    }

    /// `try_acquire`, flock only.
    #[divan::bench]
    fn try_acquire_legacy_socket_off(bencher: divan::Bencher) {
        let spec = Spec::new(name("mm-try")).with_legacy_socket(false);
        bencher.bench_local(|| drop(black_box(spec.try_acquire().expect("try_acquire"))));
    }
}

/// The `named-lock` crate (flock on `$TMPDIR/NAME.lock`).
mod named_lock_crate {
    use super::*;

    /// Create the lock (opens the file) + lock + unlock + drop (closes it).
    #[divan::bench]
    fn create_lock_unlock_drop(bencher: divan::Bencher) {
        let name = name("named-lock");
        bencher.bench_local(|| {
            let lock = named_lock::NamedLock::create(&name).expect("create");
            drop(black_box(lock.lock().expect("lock")));
        });
    }

    /// Lock + unlock on a kept handle.
    #[divan::bench]
    fn lock_unlock_kept(bencher: divan::Bencher) {
        let lock = named_lock::NamedLock::create(&name("named-lock-kept")).expect("create");
        bencher.bench_local(|| drop(black_box(lock.lock().expect("lock"))));
    }
}

/// The `fd-lock` crate (flock on a file you open).
mod fd_lock_crate {
    use super::*;

    /// Open + write lock + unlock + close.
    #[divan::bench]
    fn open_lock_unlock_close(bencher: divan::Bencher) {
        let path = lock_dir().join("divan-fd-lock.lock");
        bencher.bench_local(|| {
            let mut lock = fd_lock::RwLock::new(open_rw(&path));
            drop(black_box(lock.write().expect("write lock")));
        });
    }

    /// Write lock + unlock on a kept file.
    #[divan::bench]
    fn lock_unlock_kept(bencher: divan::Bencher) {
        let mut lock = fd_lock::RwLock::new(open_rw(&lock_dir().join("divan-fd-lock-kept.lock")));
        bencher.bench_local(|| drop(black_box(lock.write().expect("write lock"))));
    }
}

/// `std::fs::File::lock` (flock on Unix).
mod std_file_lock {
    use super::*;

    /// Open + lock + close.
    #[divan::bench]
    fn open_lock_close(bencher: divan::Bencher) {
        let path = lock_dir().join("divan-std.lock");
        bencher.bench_local(|| {
            let file = open_rw(&path);
            file.lock().expect("lock");
            drop(black_box(file));
        });
    }

    /// Lock + unlock on a kept file.
    #[divan::bench]
    fn lock_unlock_kept(bencher: divan::Bencher) {
        let file = open_rw(&lock_dir().join("divan-std-kept.lock"));
        bencher.bench_local(|| {
            file.lock().expect("lock");
            file.unlock().expect("unlock");
        });
    }
}
