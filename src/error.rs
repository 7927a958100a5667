//! [`Error`] and [`InvalidSpec`]: everything an acquisition can fail with.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why an acquisition failed.
///
/// `Timeout` and `Cancelled` print exactly as the Go package's `ErrTimeout`
/// and `ErrCancelled`. I/O errors keep the OS error as their
/// [`source`](std::error::Error::source) and name the lock file (or the
/// legacy socket, written `@/var/lib/juju/mutex-/NAME`, or on Windows the
/// kernel object, `juju-mutex-NAME`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`Spec`](crate::Spec) was rejected before anything was touched.
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] InvalidSpec),

    /// The timeout passed, measured with the spec's clock (Go: `ErrTimeout`).
    #[error("timeout acquiring mutex")]
    Timeout,

    /// The spec's [`CancelToken`](crate::CancelToken) was cancelled before
    /// or during the wait (Go: `ErrCancelled`).
    #[error("cancelled acquiring mutex")]
    Cancelled,

    /// [`Spec::try_acquire`](crate::Spec::try_acquire) found the mutex held
    /// (flock's `EWOULDBLOCK`, the legacy socket's `EADDRINUSE`, a Windows
    /// mutex's `WAIT_TIMEOUT`, or another waiter of this process queued first).
    #[error("mutex is held by another holder")]
    WouldBlock,

    /// A system call on the lock file or socket failed.
    #[error("cannot {action} {}: {source}{}", .path.display(), Hint(.hint))]
    Io {
        /// What was being done: "open lock file", "lock", "bind legacy socket",
        /// "create or open mutex" (Windows), ...
        action: &'static str,
        /// The lock file path, the abstract socket name with a leading `@`, or
        /// the Windows kernel object name (`[Global\]juju-mutex-NAME`).
        path: PathBuf,
        /// The OS error, kind and code kept.
        #[source]
        source: io::Error,
        /// Advice for the user, where one helps (for example who owns the file).
        hint: Option<String>,
    },
}

impl Error {
    /// The OS error behind an [`Error::Io`], if this is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the error only says the mutex was not obtained in time or at
    /// once ([`Timeout`](Error::Timeout) or [`WouldBlock`](Error::WouldBlock)),
    /// as opposed to a failure.
    pub fn is_contention(&self) -> bool {
        matches!(self, Error::Timeout | Error::WouldBlock)
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
            hint: None,
        }
    }
}

impl From<Error> for io::Error {
    /// Maps to the matching [`io::ErrorKind`]: `TimedOut`, `WouldBlock`,
    /// `InvalidInput`, and `Other` for a cancelled wait (not `Interrupted`:
    /// std's `read_exact`, `write_all` and `io::copy` retry on that kind,
    /// and would ask again forever while the token stays cancelled); an I/O
    /// error keeps its kind (but `Other` for `Interrupted`, for the same
    /// reason). The result wraps this error (its message, with the path and
    /// hint; [`io::Error::get_ref`] gives it back), so its
    /// [`raw_os_error`](io::Error::raw_os_error) is `None`: the OS error is
    /// the `source` of [`Error::Io`].
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::InvalidSpec(_) => io::ErrorKind::InvalidInput,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Cancelled => io::ErrorKind::Other,
            Error::WouldBlock => io::ErrorKind::WouldBlock,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::Interrupted => {
                io::ErrorKind::Other
            }
            Error::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, err)
    }
}

struct Hint<'a>(&'a Option<String>);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, " ({hint})"),
            None => Ok(()),
        }
    }
}

/// Which rule a [`Spec`](crate::Spec) broke. The name rules are the Go
/// package's: `^[a-zA-Z][a-zA-Z0-9-]*$`, at most 40 bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSpec {
    /// The name is the empty string.
    #[error("name is empty; a name is an ASCII letter followed by letters, digits or '-'")]
    EmptyName,
    /// The name is longer than 40 bytes.
    #[error("name is {len} bytes long; at most 40 are allowed")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The first character is not an ASCII letter.
    #[error("name {name:?} must start with an ASCII letter (a-z, A-Z)")]
    NameStart {
        /// The rejected name.
        name: String,
    },
    /// A character other than an ASCII letter, digit or `-`.
    #[error("name {name:?} contains {ch:?} at byte {index}; only ASCII letters, digits and '-' are allowed")]
    NameCharacter {
        /// The rejected name.
        name: String,
        /// The first offending character.
        ch: char,
        /// Its byte offset.
        index: usize,
    },
    /// The polling delay is zero (Go: "non positive Delay").
    #[error("delay must be greater than zero")]
    ZeroDelay,
}
