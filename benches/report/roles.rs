//! The Rust side of the cross-process measurements: this binary run as
//! `report --role SUBCOMMAND IMPL NAME [N]`, speaking the Go peer's line
//! protocol (`tests/peers/go/mutexpeer/main.go`): `handoff`, `hold` and
//! `contend-stamps`, with the same lines and the same clock (Unix
//! nanoseconds, CLOCK_REALTIME).
//!
//! IMPL is `mm` (this crate, default spec), `mm-nolegacy` (legacy socket
//! off), `mm-timeout` and `mm-nolegacy-timeout` (the same with a one-hour
//! timeout), `flock` (the raw floor: `open(O_CREAT)` + `flock(LOCK_EX)` to
//! acquire, `close` to release) or `flock-socket` (the same, then
//! `socket` + `bind` of the legacy abstract socket; released socket first).
//! In `handoff`, `flock-socket` also says how long its socket work took
//! (`acquired PID socket_ns=NS T`, `released PID close_ns=NS T`).

use std::io::{BufRead, Read, Write};
use std::os::unix::io::OwnedFd;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use machine_mutex::{Releaser, Spec};
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// The timeout of the `-timeout` roles: long enough never to pass.
const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Unix nanoseconds, as the Go peer's `now()`.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

enum Lock {
    Mm(Spec),
    Flock(PathBuf),
    FlockSocket(PathBuf, String),
}

#[allow(dead_code)] // the fields are held for their Drop
enum Guard {
    Mm(Releaser),
    Flock(OwnedFd),
    // Field order is drop order: the socket first, as the crate does; then
    // how long the socket + bind after the flock took, ns.
    FlockSocket(OwnedFd, OwnedFd, i64),
}

impl Lock {
    fn new(implementation: &str, name: &str) -> Lock {
        match implementation {
            "mm" => Lock::Mm(Spec::new(name)),
            "mm-nolegacy" => Lock::Mm(Spec::new(name).with_legacy_socket(false)),
            "mm-timeout" => Lock::Mm(Spec::new(name).with_timeout(HOUR)),
            "mm-nolegacy-timeout" => {
                Lock::Mm(Spec::new(name).with_legacy_socket(false).with_timeout(HOUR))
            }
            "mm-fair" => Lock::Mm(Spec::new(name).with_fair_queue(true)),
            "mm-fair-nolegacy" => Lock::Mm(
                Spec::new(name)
                    .with_legacy_socket(false)
                    .with_fair_queue(true),
            ),
            "flock" => Lock::Flock(machine_mutex::lock_file_path(name)),
            "flock-socket" => Lock::FlockSocket(
                machine_mutex::lock_file_path(name),
                format!("/var/lib/juju/mutex-/{name}"),
            ),
            other => fail(&format!("unknown implementation {other:?}")),
        }
    }

    fn acquire(&self) -> Guard {
        match self {
            Lock::Mm(spec) => Guard::Mm(spec.acquire().unwrap_or_else(|e| fail(&e.to_string()))),
            Lock::Flock(path) => Guard::Flock(raw_flock(path)),
            Lock::FlockSocket(path, socket) => {
                let file = raw_flock(path);
                let begin = std::time::Instant::now();
                let socket = bind_abstract(socket);
                Guard::FlockSocket(socket, file, begin.elapsed().as_nanos() as i64)
            }
        }
    }
}

impl Guard {
    /// The `socket_ns=` field of the `acquired` line (the raw floor with the
    /// socket: its socket + bind after the flock), or "".
    fn acquired_field(&self) -> String {
        match self {
            Guard::FlockSocket(_, _, socket_ns) => format!(" socket_ns={socket_ns}"),
            _ => String::new(),
        }
    }

    /// Releases; returns the `close_ns=` field of the `released` line (the
    /// raw floor with the socket: the close of its socket before the
    /// flock's), or "".
    fn release(self) -> String {
        match self {
            Guard::FlockSocket(socket, file, _) => {
                let begin = std::time::Instant::now();
                drop(socket);
                let close_ns = begin.elapsed().as_nanos();
                drop(file);
                format!(" close_ns={close_ns}")
            }
            other => {
                drop(other);
                String::new()
            }
        }
    }
}

/// `open(O_CREAT|O_RDONLY|O_CLOEXEC, 0600)` + `flock(LOCK_EX)`, as Go's
/// `flock()` in mutex_flock.go; closing the descriptor releases.
pub fn raw_flock(path: &std::path::Path) -> OwnedFd {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .unwrap_or_else(|e| fail(&format!("open {}: {e}", path.display())));
    loop {
        match rustix::fs::flock(&fd, FlockOperation::LockExclusive) {
            Ok(()) => return fd,
            Err(Errno::INTR) => continue,
            Err(e) => fail(&format!("flock {}: {e}", path.display())),
        }
    }
}

/// `socket(AF_UNIX, SOCK_STREAM)` + `bind` to the abstract `name`, as the
/// crate's legacy socket (the name is free: the holder closed it first).
pub fn bind_abstract(name: &str) -> OwnedFd {
    let addr = SocketAddrUnix::new_abstract_name(name.as_bytes())
        .unwrap_or_else(|e| fail(&format!("abstract address {name}: {e}")));
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap_or_else(|e| fail(&format!("socket: {e}")));
    rustix::net::bind(&fd, &addr).unwrap_or_else(|e| fail(&format!("bind {name}: {e}")));
    fd
}

fn fail(message: &str) -> ! {
    println!("error {message}");
    eprintln!("report role: {message}");
    std::process::exit(1);
}

/// `args`: SUBCOMMAND IMPL NAME [N].
pub fn main(args: &[String]) {
    let (subcommand, implementation, name) = match args {
        [s, i, n, ..] => (s.as_str(), i.as_str(), n.as_str()),
        _ => fail("usage: report --role handoff|hold|contend-stamps IMPL NAME [N]"),
    };
    let lock = Lock::new(implementation, name);
    match (subcommand, args.len()) {
        ("handoff", 3) => handoff(&lock),
        ("hold", 3) => hold(&lock),
        ("contend-stamps", 4) => {
            let n = args[3]
                .parse()
                .unwrap_or_else(|_| fail(&format!("bad N {:?}", args[3])));
            contend_stamps(&lock, n);
        }
        _ => fail(&format!("bad role arguments {args:?}")),
    }
}

fn handoff(lock: &Lock) {
    let pid = std::process::id();
    let mut held = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap_or_else(|e| fail(&format!("read stdin: {e}")));
        match line.as_str() {
            "acquire" => {
                if held.is_some() {
                    fail("acquire while holding");
                }
                println!("waiting {pid}");
                let guard = lock.acquire();
                let t = now();
                let field = guard.acquired_field();
                held = Some(guard);
                println!("acquired {pid}{field} {t}");
            }
            "release" => {
                let guard = held
                    .take()
                    .unwrap_or_else(|| fail("release while not holding"));
                let t = now();
                let field = guard.release();
                println!("released {pid}{field} {t}");
            }
            other => fail(&format!("handoff: unknown command {other:?}")),
        }
    }
}

fn hold(lock: &Lock) {
    let pid = std::process::id();
    println!("waiting {pid}");
    let guard = lock.acquire();
    println!("acquired {pid} {}", now());
    let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
    println!("releasing {pid} {}", now());
    drop(guard);
    println!("released {pid} {}", now());
}

fn contend_stamps(lock: &Lock, n: usize) {
    println!("ready {}", std::process::id());
    let mut start = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut start)
        .unwrap_or_else(|e| fail(&format!("waiting for the start line: {e}")));
    if start.is_empty() {
        fail("stdin closed before the start line");
    }
    let mut stamps = vec![0i64; n];
    let begin = std::time::Instant::now();
    for stamp in stamps.iter_mut() {
        let guard = lock.acquire();
        *stamp = now();
        drop(guard);
    }
    let total = begin.elapsed().as_nanos();
    let per_op = if n > 0 { total as f64 / n as f64 } else { 0.0 };
    let mut out = std::io::stdout().lock();
    let mut line = format!("bench n={n} total_ns={total} ns_per_op={per_op:.1}\nstamps");
    for stamp in &stamps {
        line.push(' ');
        line.push_str(&stamp.to_string());
    }
    line.push('\n');
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .unwrap_or_else(|e| fail(&format!("write stdout: {e}")));
}
