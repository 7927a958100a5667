//! The implementations measured across processes, and how to start one as
//! a child process speaking the Go peer's line protocol.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::go_peer::GoPeer;

/// One implementation of a named machine lock, run as child processes.
#[derive(Debug, Clone)]
pub enum Peer {
    /// `open(O_CREAT)` + `flock(LOCK_EX)` to acquire, `close` to release:
    /// the raw system calls, the floor (this binary in a role).
    Flock,
    /// The same, then `socket` + `bind` of the legacy abstract socket, as
    /// the crate's default does; the floor of the default.
    FlockSocket,
    /// This crate: legacy socket on (the default) or off; with a timeout
    /// (served by the kernel-waiter thread, which hands the lock over) or
    /// without (the caller sleeps in flock itself); with the cross-process
    /// fair queue (`Spec::with_fair_queue`) or not (the default). This
    /// binary in a role.
    Mm {
        legacy: bool,
        timeout: bool,
        fair: bool,
    },
    /// Go's juju/mutex v2 through the Go peer (its path).
    Go(PathBuf),
    /// Python's filelock through `filelock_peer.py`, run by this interpreter.
    Python(PathBuf),
}

/// The crate's default spec.
pub const MM: Peer = Peer::Mm {
    legacy: true,
    timeout: false,
    fair: false,
};
/// The crate without the legacy socket.
pub const MM_NOLEGACY: Peer = Peer::Mm {
    legacy: false,
    timeout: false,
    fair: false,
};
/// The crate's default spec with a timeout.
pub const MM_TIMEOUT: Peer = Peer::Mm {
    legacy: true,
    timeout: true,
    fair: false,
};
/// The crate's default spec with the fair queue.
pub const MM_FAIR: Peer = Peer::Mm {
    legacy: true,
    timeout: false,
    fair: true,
};
/// The crate with the fair queue, without the legacy socket.
pub const MM_FAIR_NOLEGACY: Peer = Peer::Mm {
    legacy: false,
    timeout: false,
    fair: true,
};

impl Peer {
    /// The name in tables and plots.
    pub fn label(&self) -> &'static str {
        match self {
            Peer::Flock => "floor: raw flock (open + flock; close)",
            Peer::FlockSocket => "floor: raw flock + legacy socket bind",
            Peer::Mm {
                legacy: true,
                timeout: false,
                fair: false,
            } => "machine-mutex (default: legacy socket on)",
            Peer::Mm {
                legacy: false,
                timeout: false,
                fair: false,
            } => "machine-mutex (legacy socket off)",
            Peer::Mm {
                legacy: true,
                timeout: true,
                fair: false,
            } => "machine-mutex with a timeout (legacy socket on)",
            Peer::Mm {
                legacy: false,
                timeout: true,
                fair: false,
            } => "machine-mutex with a timeout (legacy socket off)",
            Peer::Mm {
                legacy: true,
                fair: true,
                ..
            } => "machine-mutex, fair queue (legacy socket on)",
            Peer::Mm {
                legacy: false,
                fair: true,
                ..
            } => "machine-mutex, fair queue (legacy socket off)",
            Peer::Go(_) => "Go juju/mutex v2",
            Peer::Python(_) => "Python filelock (polls every 50 ms)",
        }
    }

    /// A short name for plot legends.
    pub fn short(&self) -> &'static str {
        match self {
            Peer::Flock => "raw flock",
            Peer::FlockSocket => "raw flock + socket",
            Peer::Mm {
                legacy: true,
                timeout: false,
                fair: false,
            } => "machine-mutex",
            Peer::Mm {
                legacy: false,
                timeout: false,
                fair: false,
            } => "machine-mutex, no legacy socket",
            Peer::Mm {
                timeout: true,
                fair: false,
                ..
            } => "machine-mutex, timeout",
            Peer::Mm {
                legacy: true,
                fair: true,
                ..
            } => "machine-mutex, fair queue",
            Peer::Mm {
                legacy: false,
                fair: true,
                ..
            } => "machine-mutex, fair queue, no legacy socket",
            Peer::Go(_) => "Go juju/mutex",
            Peer::Python(_) => "Python filelock",
        }
    }

    /// The role name of this binary's Rust roles.
    fn role(&self) -> &'static str {
        match self {
            Peer::Flock => "flock",
            Peer::FlockSocket => "flock-socket",
            Peer::Mm {
                legacy: true,
                timeout: false,
                fair: false,
            } => "mm",
            Peer::Mm {
                legacy: false,
                timeout: false,
                fair: false,
            } => "mm-nolegacy",
            Peer::Mm {
                legacy: true,
                timeout: true,
                fair: false,
            } => "mm-timeout",
            Peer::Mm {
                legacy: false,
                timeout: true,
                fair: false,
            } => "mm-nolegacy-timeout",
            Peer::Mm {
                legacy: true,
                fair: true,
                ..
            } => "mm-fair",
            Peer::Mm {
                legacy: false,
                fair: true,
                ..
            } => "mm-fair-nolegacy",
            Peer::Go(_) | Peer::Python(_) => unreachable!("not a Rust role"),
        }
    }

    /// Whether it is the same implementation as `other` (ignoring paths).
    pub fn same(&self, other: &Peer) -> bool {
        self.role_or_kind() == other.role_or_kind()
    }

    fn role_or_kind(&self) -> &'static str {
        match self {
            Peer::Go(_) => "go",
            Peer::Python(_) => "python",
            _ => self.role(),
        }
    }

    pub fn is_mm(&self) -> bool {
        matches!(self, Peer::Mm { .. })
    }

    /// Whether it is this crate with the fair queue on.
    pub fn is_fair(&self) -> bool {
        matches!(self, Peer::Mm { fair: true, .. })
    }

    /// Whether a waiter sleeps in `flock(LOCK_EX)`, where `/proc/locks`
    /// shows it blocked; the polling lock (Python) never blocks there.
    pub fn blocks_in_kernel(&self) -> bool {
        !matches!(self, Peer::Python(_))
    }

    /// The file whose flock is the lock of `name`: the juju lock file for
    /// all but Python's filelock, which locks a path of its own.
    pub fn lock_path(&self, name: &str) -> PathBuf {
        match self {
            Peer::Python(_) => crate_temp_dir().join(format!("pyfilelock-{name}.lock")),
            _ => machine_mutex::lock_file_path(name),
        }
    }

    /// The command for `subcommand` (`handoff`, `hold`, `contend-stamps`,
    /// `bench-uncontended`) on `name`, with extra arguments.
    pub fn command(&self, subcommand: &str, name: &str, extra: &[String]) -> Command {
        let mut cmd = match self {
            Peer::Go(bin) => {
                let mut cmd = Command::new(bin);
                cmd.arg(subcommand).arg(name);
                cmd
            }
            Peer::Python(python) => {
                let mut cmd = Command::new(python);
                cmd.arg(python_script())
                    .arg(subcommand)
                    .arg(self.lock_path(name));
                cmd
            }
            _ => {
                let exe = std::env::current_exe().expect("the report binary");
                let mut cmd = Command::new(exe);
                cmd.args(["--role", subcommand, self.role(), name]);
                cmd
            }
        };
        cmd.args(extra);
        cmd
    }

    /// Starts `subcommand` as a child process.
    pub fn spawn(&self, subcommand: &str, name: &str, extra: &[String]) -> GoPeer {
        GoPeer::spawn_command(self.command(subcommand, name, extra))
    }
}

/// The Python peer script.
pub fn python_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/report/filelock_peer.py")
}

/// The lock directory (this process's `TMPDIR`, set by `main`).
pub fn crate_temp_dir() -> PathBuf {
    machine_mutex::lock_file_path("x")
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

/// The last space-separated field of a protocol line, as a number.
pub fn last_field(rest: &str) -> i64 {
    rest.split_whitespace()
        .last()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number at the end of {rest:?}"))
}

/// The `key=value` field of a "bench" line.
pub fn bench_field(rest: &str, key: &str) -> f64 {
    rest.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in bench line {rest:?}"))
}

/// The first field of a protocol line, as a process id.
pub fn pid_field(rest: &str) -> u32 {
    rest.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid at the start of {rest:?}"))
}
