//! A named, machine-level mutex shared between processes, compatible with
//! Go's [juju/mutex](https://github.com/juju/mutex) v2.
//!
//! A mutex has a name: an ASCII letter, then letters, digits or `-`, at most
//! 40 bytes. For each name at most one holder exists at a time, across
//! threads, acquisitions and processes of the machine. If the holding
//! process dies, the kernel releases the mutex.
//!
//! ```
//! use std::time::Duration;
//! use machine_mutex::{Error, Spec};
//!
//! let spec = Spec::new("crate-doc-example").with_timeout(Duration::from_secs(5));
//! let mut guard = spec.acquire()?;
//! // ... only one process of the machine runs this at a time ...
//! guard.release()?; // or let it drop
//! # Ok::<(), Error>(())
//! ```
//!
//! # How it locks
//!
//! - **Unix** (Linux, macOS): `flock(LOCK_EX)` on `<temp dir>/juju-NAME`
//!   ([`lock_file_path`]), the file the Go package uses, so Go and Rust
//!   processes exclude each other. The file is opened read-only and
//!   close-on-exec (created with mode 0600 when missing), and under sudo
//!   given to `SUDO_UID`/`SUDO_GID`. Unlike the Go package it never follows
//!   a symbolic link there, accepts only a regular file, checks after
//!   locking that the path still names the locked file (a temp-dir cleaner
//!   may have removed it), and refreshes timestamps older than an hour so
//!   that such cleaners leave a lock in use alone (RELIABILITY.md).
//! - **Linux** also binds the abstract Unix socket
//!   `\0/var/lib/juju/mutex-/NAME`, as juju/mutex v1 did, polling every
//!   [`Spec::delay`] while another process has it
//!   ([`Spec::with_legacy_socket`] turns this off).
//!
//! - **Windows**: the named kernel mutex `juju-mutex-NAME`
//!   ([`mutex_object_name`]), the Go package's name, waited for with
//!   `WaitForMultipleObjects` and a cancel event. An abandoned mutex (its
//!   holder died) counts as acquired. Each held mutex has an owner thread,
//!   because only the acquiring thread may release a Windows mutex; the
//!   [`Releaser`] stays `Send`. By default the name lives in the caller's
//!   session, as in Go; [`Namespace::Global`] shares it between sessions
//!   (see [`Namespace`] for what each excludes).
//!
//! Waiting blocks in the kernel: a released lock is handed to a waiter at
//! once, without polling. Inside one process, one thread per name waits in
//! the kernel and the process's waiters queue behind it in FIFO order (see
//! `handoff.rs`). Between processes flock(2) has no order: a process that
//! locks in a loop can starve the others. On Linux,
//! [`Spec::with_fair_queue`] makes waiting processes take turns in arrival
//! order through a queue beside the lock file (`sys/linux/fair_queue.rs`),
//! with 0.5 ms slices as `parking_lot`'s eventual fairness; off by default,
//! as in the Go package (see its documentation for the price).
//!
//! # Async
//!
//! With the cargo feature `async`, `Spec::acquire_async` returns a future
//! (`Acquire`) of the same guard and errors, for any executor (tokio,
//! smol, async-std, `futures::executor`): the crate depends on none, only on
//! [`std::task`]. Polling never blocks the thread. Async and blocking
//! waiters of one process share one FIFO queue per name; dropping the future
//! cancels its wait. Timeouts and the legacy-socket retries of async waiters
//! are watched by one timer thread per clock (not per waiter), started on
//! demand and ended when idle. "One clock" is [`SystemClock`], or one
//! [`ManualClock`] and its clones; each [`Spec::with_clock`] call with a
//! clock of your own counts as a clock of its own, so share one spec (or
//! clones of it) between many waiters.
//!
//! ```
//! # async fn service() -> Result<(), machine_mutex::Error> {
//! use std::time::Duration;
//! use machine_mutex::Spec;
//! let spec = Spec::new("crate-doc-async").with_timeout(Duration::from_secs(5));
//! let guard = spec.acquire_async().await?;
//! // ... only one process of the machine runs this at a time ...
//! drop(guard);
//! # Ok(())
//! # }
//! # futures::executor::block_on(service()).unwrap();
//! ```
//!
//! # Who holds it
//!
//! [`holder()`] tells who holds a mutex (pid and command line) without taking
//! it, so that a program can say what it waits for:
//!
//! ```
//! if let Some(holder) = machine_mutex::holder("crate-doc-example")? {
//!     eprintln!("waiting for crate-doc-example, held by {holder}");
//! }
//! # Ok::<(), machine_mutex::Error>(())
//! ```
//!
//! On Linux it reads `/proc/locks` and `/proc/PID`; elsewhere it can only
//! say *held* or *free* (see [`holder()`] for each platform and for forked
//! holders, replaced lock files and holders that exit meanwhile).
//!
//! # Notes on advisory locks
//!
//! The lock is advisory: it excludes only processes that take the same lock.
//! Anything may still read, write or delete the lock file. Two processes
//! exclude each other only if they see the same file (same `TMPDIR`, same
//! file system) and, for the legacy socket, the same network namespace.
//! flock(2) locks belong to the open file description: a child forked
//! without exec shares the holder's descriptor; the holder's release still
//! frees the flock at once (it unlocks explicitly), and the child's copy of
//! the guard never releases it (see [`Releaser`], "fork without exec"). The
//! child gets no working copy of the legacy socket (Linux): a fork handler
//! replaces it, so the release frees its name at once too. A program the
//! holder executes inherits neither (close-on-exec).
//!
//! Faults the crate is tested against (killed holders, signals, descriptor
//! exhaustion, bad or hostile temp dirs, other users, temp-dir cleaners,
//! strange files at the lock path, fork) are listed with their outcomes in
//! RELIABILITY.md.

#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

#[cfg(feature = "async")]
mod acquire_async;
mod cancel;
mod clock;
mod environment;
mod error;
mod handoff;
mod holder;
mod namespace;
mod queue;
mod releaser;
mod spec;
mod sys;
#[cfg(feature = "async")]
mod timer;
mod wait;
mod wakeup;

#[cfg(feature = "async")]
pub use crate::acquire_async::Acquire;
pub use crate::cancel::CancelToken;
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::environment::{Environment, FixedEnvironment, OsEnvironment};
pub use crate::error::{Error, InvalidSpec};
pub use crate::holder::{holder, HeldLock, Holder};
pub use crate::namespace::{mutex_object_name, Namespace};
pub use crate::releaser::Releaser;
pub use crate::spec::{lock_dir, lock_file_path, validate_name, Spec, MAX_NAME_LEN};
pub use crate::wakeup::Wakeup;

/// Acquires the mutex described by `spec`: the Go package's `Acquire`.
/// Same as [`Spec::acquire`].
///
/// # Errors
/// See [`Spec::acquire`].
pub fn acquire(spec: &Spec) -> Result<Releaser, Error> {
    spec.acquire()
}

/// Acquires the mutex described by `spec` without blocking the thread: the
/// async counterpart of [`acquire`]. Same as [`Spec::acquire_async`];
/// requires the cargo feature `async`.
///
/// # Errors
/// See [`Spec::acquire_async`].
#[cfg(feature = "async")]
pub fn acquire_async(spec: &Spec) -> Acquire {
    spec.acquire_async()
}

/// The abstract socket name that the legacy lock of `name` binds, as
/// `/proc/net/unix` prints it (`@` standing for the leading NUL byte):
/// `@/var/lib/juju/mutex-/NAME`. Only Linux binds it.
pub fn legacy_socket_name(name: &str) -> String {
    format!("@{LEGACY_SOCKET_PREFIX}{name}")
}

/// The legacy abstract socket name before the mutex name, after the NUL byte.
/// juju/mutex v1 built it with `filepath.Join("@/var/lib/juju/mutex-", name)`,
/// which put the slash after the dash.
pub(crate) const LEGACY_SOCKET_PREFIX: &str = "/var/lib/juju/mutex-/";
