//! [`Spec`]: what to lock and how to wait; name validation.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::ClockId;
use crate::{
    CancelToken, Clock, Environment, Error, InvalidSpec, Namespace, OsEnvironment, Releaser,
    SystemClock,
};

/// The longest valid name, in bytes (the Go package's limit).
pub const MAX_NAME_LEN: usize = 40;

/// Describes one mutex and how to wait for it: the counterpart of the Go
/// package's `Spec` (`Name`, `Clock`, `Delay`, `Timeout`, `Cancel`), plus the
/// [`Environment`] (Go: the package-level `Envars`), the legacy-socket switch and
/// the Windows [`Namespace`].
///
/// The common case is one line:
///
/// ```
/// use machine_mutex::Spec;
/// let _guard = Spec::new("doc-example").acquire()?;
/// // ... critical section; the mutex is released when `_guard` drops ...
/// # Ok::<(), machine_mutex::Error>(())
/// ```
///
/// Defaults: [`SystemClock`], delay [`DEFAULT_DELAY`](Self::DEFAULT_DELAY)
/// (100 ms), no timeout (wait forever), no cancel token, the process
/// environment, legacy socket on (Linux only; ignored elsewhere), kept
/// descriptor on (Unix), fair queue off (Linux), namespace
/// [`Namespace::Session`] (Windows only; ignored elsewhere).
///
/// Building a `Spec` never fails; [`validate`](Self::validate) (called by
/// every acquisition) reports a bad name or delay.
#[derive(Clone)]
pub struct Spec {
    name: String,
    clock: Arc<dyn Clock>,
    clock_id: ClockId,
    delay: Duration,
    timeout: Option<Duration>,
    cancel: Option<CancelToken>,
    environment: Arc<dyn Environment>,
    legacy_socket: bool,
    kept_descriptor: bool,
    fair_queue: bool,
    namespace: Namespace,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("clock", &self.clock)
            .field("delay", &self.delay)
            .field("timeout", &self.timeout)
            .field(
                "cancel",
                &self.cancel.as_ref().map(CancelToken::is_cancelled),
            )
            .field("environment", &self.environment)
            .field("legacy_socket", &self.legacy_socket)
            .field("kept_descriptor", &self.kept_descriptor)
            .field("fair_queue", &self.fair_queue)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Spec {
    /// The default legacy-socket polling interval: 100 ms.
    pub const DEFAULT_DELAY: Duration = Duration::from_millis(100);

    /// A spec for the mutex `name` with the defaults listed on [`Spec`].
    pub fn new(name: impl Into<String>) -> Spec {
        Spec {
            name: name.into(),
            clock: Arc::new(SystemClock),
            clock_id: ClockId::System,
            delay: Self::DEFAULT_DELAY,
            timeout: None,
            cancel: None,
            environment: Arc::new(OsEnvironment),
            legacy_socket: true,
            kept_descriptor: true,
            fair_queue: false,
            namespace: Namespace::Session,
        }
    }

    /// Uses `clock` to measure the timeout and pace the polling (tests pass
    /// a [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Spec {
        let (clock, id) = ClockId::share(clock);
        self.clock = clock;
        self.clock_id = id;
        self
    }

    /// Sets how often the legacy socket is retried while another process
    /// holds it (Go: `Delay`). Must be greater than zero. The flock part
    /// never polls: it blocks in the kernel.
    ///
    /// Meanwhile the waiter holds the flock, so other processes of this
    /// crate and Go's v2 wait behind it: a very long delay (up to
    /// `Duration::MAX`, accepted) means the socket is tried again only
    /// that much later, or at the timeout or a cancel, if any.
    pub fn with_delay(mut self, delay: Duration) -> Spec {
        self.delay = delay;
        self
    }

    /// Gives up with [`Error::Timeout`] after `timeout`, measured on the
    /// spec's clock from the start of the acquisition.
    ///
    /// A zero timeout means *wait forever*, as in the Go package (its
    /// `Timeout == 0`). To fail at once instead, use
    /// [`try_acquire`](Self::try_acquire). A timeout too large to add to the
    /// clock's current time also waits forever.
    ///
    /// Cost (Unix): flock(2) cannot be interrupted without a signal, and the
    /// library installs no signal handler. So a wait that can end (a timeout,
    /// or a [cancel token](Self::with_cancel)) sleeps in flock in a
    /// kernel-waiter thread, which hands the lock to the caller: two
    /// wake-ups per hand-off instead of one, about twice the latency of a
    /// wait without timeout or token, which sleeps in flock in the caller's
    /// own thread (BENCHMARKS.md, hand-off: tens of microseconds on a
    /// 2-core virtual machine). Waiting uses no CPU either way.
    pub fn with_timeout(mut self, timeout: Duration) -> Spec {
        self.timeout = if timeout.is_zero() {
            None
        } else {
            Some(timeout)
        };
        self
    }

    /// Waits forever (the default).
    pub fn without_timeout(mut self) -> Spec {
        self.timeout = None;
        self
    }

    /// Ends the wait with [`Error::Cancelled`] when `token` is cancelled (Go: `Cancel`).
    ///
    /// As with a timeout, a wait with a token sleeps in a kernel-waiter
    /// thread on Unix (see [`with_timeout`](Self::with_timeout) for the cost).
    pub fn with_cancel(mut self, token: CancelToken) -> Spec {
        self.cancel = Some(token);
        self
    }

    /// Reads the `SUDO_*` variables from `environment` instead of the process.
    pub fn with_environment(mut self, environment: impl Environment + 'static) -> Spec {
        self.environment = Arc::new(environment);
        self
    }

    /// Turns the Linux legacy abstract socket on (default) or off.
    ///
    /// # Linux
    /// When on, the holder also binds the abstract Unix socket
    /// `\0/var/lib/juju/mutex-/NAME`, as juju/mutex v1 did, so that
    /// processes using that old implementation are excluded too. Off, only
    /// the flock is taken: processes using juju/mutex v2 (which no longer
    /// binds the socket) are still excluded, v1 processes are not.
    ///
    /// Other platforms have no legacy socket; the setting is ignored.
    pub fn with_legacy_socket(mut self, on: bool) -> Spec {
        self.legacy_socket = on;
        self
    }

    /// Whether releasing keeps the lock file's descriptor open (unlocked)
    /// for the next acquisition of the same name in this process: on by
    /// default.
    ///
    /// # Unix
    /// On, an uncontended acquire and release make three system calls on
    /// the kept descriptor (`flock`, `lstat` of the path, `flock(LOCK_UN)`)
    /// instead of four (`open`, `flock`, `fstat`, `close`); see
    /// BENCHMARKS.md for the figures. It stays sound:
    ///
    /// - a kept descriptor serves one acquisition at a time; another one of
    ///   the same name in this process opens the file anew, so flock(2)
    ///   still excludes it;
    /// - after locking it, the path must still name its file, else (removed
    ///   by a temp-dir cleaner, or replaced) the path is opened anew;
    /// - a child forked without exec closes the kept descriptors at once
    ///   (Linux: `pthread_atfork` handlers), and a descriptor that was in
    ///   use at a fork (held, or being locked) is closed, not kept, at its
    ///   release, so a lock the parent takes later never outlives the
    ///   parent in the child; systems without fork handlers keep nothing;
    ///   kept descriptors are close-on-exec.
    ///
    /// Off or on, each acquisition looks in the cache (a process-wide lock
    /// held for a scan of at most 16 entries, taken across a fork by the
    /// fork handlers so that a forked child never inherits it held).
    ///
    /// The cost: up to 16 descriptors per process stay open between
    /// acquisitions (past that, a release closes as when off), and the lock
    /// file stays open, unlocked, after release. Off, a release always
    /// closes the descriptor, so nothing of the lock remains open in the
    /// process.
    ///
    /// Windows keeps nothing; the setting is ignored there.
    pub fn with_kept_descriptor(mut self, on: bool) -> Spec {
        self.kept_descriptor = on;
        self
    }

    /// Whether waiting processes take turns in arrival order (Linux): off by
    /// default, as in the Go package.
    ///
    /// flock(2) has no queue: on release the kernel wakes a waiter, and a
    /// process that asks again before that waiter runs takes the lock, so a
    /// process that locks in a loop can starve the others (BENCHMARKS.md,
    /// fairness: the least served of 16 processes got up to hundreds of
    /// times less than the most served). On, a wait first takes a ticket in
    /// a queue kept beside the lock file (`<lock file>.queue`, mode 0600:
    /// a ticket counter in a shared page, and a record lock per waiter, on
    /// which the next waiter sleeps; fcntl(2) open file description locks)
    /// and calls `flock` only once the waiters before it have released; an
    /// acquisition that could lock at once queues too when others are
    /// queued, unless this process was served less than 0.5 ms ago (its
    /// slice, as `parking_lot`'s eventual fairness: strict turns would cost
    /// a wake-up per acquisition). With 2 to 16 processes locking in a loop
    /// the shares then stay within 2x of each other (BENCHMARKS.md).
    ///
    /// The flock stays the mutex: the queue only orders the waits of specs
    /// with the queue on (Go processes, older versions and specs without it
    /// take the flock directly, as before). Turn it on for every process of
    /// a name: a process without it does not wait in line, and one that
    /// locks in a loop then gets far more turns than the processes in line
    /// (they take turns among themselves while it takes the lock whenever
    /// it is free; a review measured 70 times more). A queue that cannot be
    /// used (another user's side file, no space, a file size limit) is
    /// skipped: less fair, never less exclusive, never an error. A side
    /// file made under sudo stays root's (unlike the lock file, it is not
    /// given to the sudo user: a file another user can truncate could fault
    /// root's processes), so the user's later waits skip it until it is
    /// removed.
    ///
    /// The price, besides one more file per name in the temporary
    /// directory (4 KiB), a descriptor per name for the process's life (at
    /// most 64) and a keeper thread while a slice is kept (it ends 0.1 s
    /// after the last): a waiter that stops
    /// running while queued (SIGSTOP, a debugger, a frozen cgroup) holds up
    /// every waiter behind it until it runs again or dies, even while the
    /// lock is free; with flock alone they would go ahead. `try_acquire`
    /// never queues. Within a process, waiters are served in FIFO order
    /// either way; its kernel waiter for a name queues if the wait that
    /// started it asked for the queue.
    ///
    /// Other systems have no such queue; the setting is ignored there.
    pub fn with_fair_queue(mut self, on: bool) -> Spec {
        self.fair_queue = on;
        self
    }

    /// Chooses the Windows kernel object namespace: [`Namespace::Session`]
    /// (the default, the Go package's choice) or [`Namespace::Global`]. See
    /// [`Namespace`] for what each one excludes.
    ///
    /// Unix has no such namespaces (the lock file is shared by every process
    /// that sees the same temp directory); the setting is ignored there.
    pub fn with_namespace(mut self, namespace: Namespace) -> Spec {
        self.namespace = namespace;
        self
    }

    /// The mutex name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The legacy-socket polling interval.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The timeout; `None` waits forever.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The cancel token, if any.
    pub fn cancel_token(&self) -> Option<&CancelToken> {
        self.cancel.as_ref()
    }

    /// Where the `SUDO_*` variables are read.
    pub fn environment(&self) -> &dyn Environment {
        &*self.environment
    }

    pub(crate) fn environment_arc(&self) -> Arc<dyn Environment> {
        Arc::clone(&self.environment)
    }

    /// The clock, shared, and which clock it is (for the async timer).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn shared_clock(&self) -> (Arc<dyn Clock>, ClockId) {
        (Arc::clone(&self.clock), self.clock_id)
    }

    /// Whether the Linux legacy socket is taken too.
    pub fn legacy_socket(&self) -> bool {
        self.legacy_socket
    }

    /// Whether releasing keeps the lock file's descriptor open
    /// ([`with_kept_descriptor`](Self::with_kept_descriptor)).
    pub fn kept_descriptor(&self) -> bool {
        self.kept_descriptor
    }

    /// Whether waiting processes take turns in arrival order
    /// ([`with_fair_queue`](Self::with_fair_queue)).
    pub fn fair_queue(&self) -> bool {
        self.fair_queue
    }

    /// The Windows kernel object namespace.
    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// Checks the name ([`validate_name`]) and that the delay is not zero.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] naming the rule that failed.
    pub fn validate(&self) -> Result<(), Error> {
        validate_name(&self.name)?;
        if self.delay.is_zero() {
            return Err(InvalidSpec::ZeroDelay.into());
        }
        Ok(())
    }

    /// Acquires the mutex, waiting as the spec says; returns the guard that
    /// holds it until dropped or [released](Releaser::release).
    ///
    /// An uncontended acquisition locks in the calling thread without
    /// waiting. Under contention the caller sleeps until the holder releases
    /// (the kernel wakes the one waiter this process keeps per name; other
    /// waiters of this process queue behind it in FIFO order), until the
    /// timeout, or until the cancel token fires.
    ///
    /// # Errors
    /// - [`Error::InvalidSpec`]: the spec failed [`validate`](Self::validate); nothing was touched.
    /// - [`Error::Cancelled`]: the token was cancelled before or during the wait.
    /// - [`Error::Timeout`]: the timeout passed on the spec's clock.
    /// - [`Error::Io`]: the lock file (or socket) could not be opened or
    ///   locked; on Windows, the mutex could not be created, opened or
    ///   waited for (the OS error code is kept: access denied is 5, never a
    ///   timeout).
    ///
    /// # Unix
    /// Takes `flock(LOCK_EX)` on [`lock_file_path`]`(name)`, created if
    /// missing with mode 0600. Under sudo (`SUDO_COMMAND`, `SUDO_UID`,
    /// `SUDO_GID` set, as in the Go package) a lock file that this process
    /// owns and that has a single link is given to `SUDO_UID`/`SUDO_GID`
    /// once this acquisition holds its lock (Go: at open, before flock).
    /// A symbolic link, directory, FIFO or device at the path is an
    /// [`Error::Io`] (never followed, never blocked on); so is a file of
    /// another user that this one may not read, with a hint naming its
    /// owner and mode. If the file was removed or replaced while this
    /// acquisition waited, it starts over on the file now at the path.
    ///
    /// Who sleeps in `flock`: a wait that nothing can end (no timeout, no
    /// cancel token) sleeps in the calling thread itself when no other
    /// waiter of this process waits for the name, so the kernel wakes it
    /// directly on release. A wait with a timeout or a cancel token, and
    /// every waiter that queues behind another, is served by a kernel
    /// waiter thread (one per name per process, in `flock`), which hands
    /// the lock over: one wake-up more (see BENCHMARKS.md, hand-off).
    ///
    /// # Linux
    /// With [`with_fair_queue`](Self::with_fair_queue), waiting processes
    /// take turns in arrival order: before `flock`, a waiter takes a ticket
    /// in the queue beside the lock file and sleeps until the waiters
    /// before it have released.
    ///
    /// Then binds the legacy abstract socket unless turned off
    /// ([`with_legacy_socket`](Self::with_legacy_socket)), retrying every
    /// [`delay`](Self::delay) while another process has it bound.
    ///
    /// # Windows
    /// Creates or opens the named mutex [`mutex_object_name`](crate::mutex_object_name)`(name, namespace)`
    /// (`juju-mutex-NAME` by default, the Go package's name, so Go and Rust
    /// processes exclude each other) and waits for it in
    /// `WaitForMultipleObjects` together with a cancel event. A mutex whose
    /// holder died without releasing it (*abandoned*: the wait returns
    /// `WAIT_ABANDONED`) counts as acquired, as in the Go package; whatever
    /// the dead holder was protecting may be half-done.
    ///
    /// A Windows mutex belongs to the thread that acquired it and only that
    /// thread can release it, so each held mutex has an *owner thread* (as
    /// in the Go package): it creates the mutex, waits for it, holds it
    /// while the [`Releaser`] lives and releases it when told. The guard
    /// itself can be moved to and released from any thread. The fast path
    /// starts that thread too.
    ///
    /// Waiting follows the same hand-off as on Unix: one kernel waiter per
    /// name per process, other waiters of the process queue behind it in
    /// FIFO order, timeout and cancel are measured by the waiting caller.
    /// Unlike `flock`, the kernel wait can be interrupted: when the last
    /// waiter of the process gives up, its cancel event is set and the
    /// kernel wait ends without taking the mutex.
    pub fn acquire(&self) -> Result<Releaser, Error> {
        crate::wait::acquire(self, true)
    }

    /// Acquires the mutex only if that needs no waiting at all.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when another holder (or an earlier waiter of
    /// this process) has it; otherwise as [`acquire`](Self::acquire), except
    /// that the timeout does not apply.
    pub fn try_acquire(&self) -> Result<Releaser, Error> {
        crate::wait::acquire(self, false)
    }

    /// Who holds this spec's mutex, without taking it: [`holder()`](crate::holder())
    /// of its name, and on Windows in its [namespace](Self::with_namespace)
    /// (`holder()` looks in the session namespace only). The rest of the
    /// spec (clock, timeout, legacy socket, ...) plays no part.
    ///
    /// # Errors
    /// As [`holder()`](crate::holder()): an invalid name, or an I/O error
    /// naming the path.
    pub fn holder(&self) -> Result<Option<crate::Holder>, Error> {
        crate::holder::holder_in(self.name(), self.namespace())
    }
}

/// Checks a mutex name against the Go package's rules: an ASCII letter, then
/// ASCII letters, digits or `-`, at most [`MAX_NAME_LEN`] (40) bytes.
///
/// # Errors
/// The [`InvalidSpec`] rule that failed; the checks never panic on any input.
///
/// ```
/// use machine_mutex::{validate_name, InvalidSpec};
/// assert!(validate_name("deploy-42").is_ok());
/// assert_eq!(validate_name(""), Err(InvalidSpec::EmptyName));
/// assert!(validate_name("42").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), InvalidSpec> {
    if name.len() > MAX_NAME_LEN {
        return Err(InvalidSpec::NameTooLong { len: name.len() });
    }
    let mut chars = name.char_indices();
    match chars.next() {
        None => return Err(InvalidSpec::EmptyName),
        Some((_, c)) if !c.is_ascii_alphabetic() => {
            return Err(InvalidSpec::NameStart {
                name: name.to_owned(),
            })
        }
        Some(_) => {}
    }
    if let Some((index, ch)) = chars.find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-')) {
        return Err(InvalidSpec::NameCharacter {
            name: name.to_owned(),
            ch,
            index,
        });
    }
    Ok(())
}

/// The directory of the lock files, read from the environment at each call.
///
/// # Unix
/// As Go's `os.TempDir()`: `$TMPDIR` when it is set and not empty, else
/// `/tmp` (see [`lock_file_path`] for how this differs from
/// `std::env::temp_dir()`). Nothing is created or checked: the directory
/// may not exist.
///
/// # Windows
/// `std::env::temp_dir()`; no lock files are used there (the mutex is a
/// named kernel object, see [`mutex_object_name`](crate::mutex_object_name)).
pub fn lock_dir() -> PathBuf {
    crate::sys::temp_dir()
}

/// The lock file of the mutex `name`: `juju-NAME` in the temporary
/// directory ([`lock_dir`]), the same file as the Go package. It does not check the name.
///
/// # Unix
/// The directory follows Go's `os.TempDir()`: `$TMPDIR` when it is set and
/// not empty, else `/tmp`. (This is not always `std::env::temp_dir()`: that
/// returns an empty `TMPDIR` as it is, and on macOS falls back to a per-user
/// directory when `TMPDIR` is unset.) Processes exclude each other only if
/// they resolve the same file, so all of them must agree on `TMPDIR`.
///
/// This file carries the flock. It is never deleted by this crate: a process
/// that unlinked it could let a waiter still blocked on the old inode and a
/// newcomer that creates a new file both believe they hold the mutex. (If
/// something else deletes it, for example a temp-dir cleaner, a waiter
/// notices after locking and starts over on the new file; see
/// RELIABILITY.md.)
///
/// # Windows
/// Not used: the mutex is the named kernel object `juju-mutex-NAME`.
pub fn lock_file_path(name: &str) -> PathBuf {
    // One buffer: the directory read from the environment, grown once to
    // its final length (the fast path allocates nothing else for the path).
    let mut path = lock_dir().into_os_string();
    path.reserve_exact(1 + 5 + name.len());
    let mut path = PathBuf::from(path);
    path.push("juju-");
    let mut path = path.into_os_string();
    path.push(name);
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name grammar, rule by rule, including the byte-length limit.
    #[test]
    fn name_rules() {
        for ok in ["a", "A", "test-42", "a-", "Z9-z", &"a".repeat(40)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(validate_name(""), Err(InvalidSpec::EmptyName));
        for start in ["42", "-a", " a", "/a", ".a", "\0a", "éa"] {
            assert!(
                matches!(validate_name(start), Err(InvalidSpec::NameStart { .. })),
                "{start:?}"
            );
        }
        for bad in [
            "with a space",
            "a/b",
            "a..b",
            "a\0",
            "aé",
            "a_b",
            "a.b",
            "a\n",
        ] {
            assert!(
                matches!(validate_name(bad), Err(InvalidSpec::NameCharacter { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_name(&"a".repeat(41)),
            Err(InvalidSpec::NameTooLong { len: 41 })
        );
    }

    /// Zero timeout keeps the Go meaning (forever); zero delay is rejected.
    #[test]
    fn spec_defaults_and_delay() {
        let spec = Spec::new("a");
        assert_eq!(spec.delay(), Duration::from_millis(100));
        assert_eq!(spec.timeout(), None);
        assert!(spec.legacy_socket());
        assert_eq!(Spec::new("a").with_timeout(Duration::ZERO).timeout(), None);
        let err = Spec::new("a")
            .with_delay(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid spec: delay must be greater than zero"
        );
    }
}
