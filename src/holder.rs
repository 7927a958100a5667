//! [`holder()`]: who holds a mutex, without taking it.

use std::ffi::{OsStr, OsString};
use std::fmt;

use crate::sys::{LockBackend, LockFile};
use crate::{validate_name, Error, Namespace};

/// Which lock a [`Holder`] was found holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeldLock {
    /// The flock on the lock file ([`lock_file_path`](crate::lock_file_path)). Every holder using
    /// this crate or Go's juju/mutex v2 holds it. On Windows: the named
    /// mutex (there is no lock file).
    LockFile,
    /// Only the Linux legacy abstract socket `\0/var/lib/juju/mutex-/NAME`
    /// (see [`Spec::with_legacy_socket`](crate::Spec::with_legacy_socket)):
    /// a process using juju/mutex v1, which took no flock. An acquisition
    /// with the legacy socket on waits for it; one with it off does not.
    LegacySocket,
}

/// The process holding a mutex, as far as the platform can tell: the
/// answer of [`holder()`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    lock: HeldLock,
    pid: Option<u32>,
    command_line: Option<Vec<OsString>>,
}

impl Holder {
    pub(crate) fn new(
        lock: HeldLock,
        pid: Option<u32>,
        command_line: Option<Vec<OsString>>,
    ) -> Self {
        Holder {
            lock,
            pid,
            command_line,
        }
    }

    /// The mutex is held, by a process the platform cannot name.
    pub(crate) fn unknown(lock: HeldLock) -> Self {
        Holder::new(lock, None, None)
    }

    /// Which lock the holder holds.
    pub fn lock(&self) -> HeldLock {
        self.lock
    }

    /// The holder's process id; `None` when it could not be found out (see
    /// [`holder()`] for when).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The holder's command line, program first, as the process shows it
    /// (a process may have rewritten its own). `None` when the pid is
    /// unknown or the command line could not be read (for example a process
    /// that exited meanwhile).
    pub fn command_line(&self) -> Option<&[OsString]> {
        self.command_line.as_deref()
    }

    /// The command line as one printable line: arguments a shell would
    /// split single-quoted, control characters (escape sequences, newlines)
    /// escaped as `\u{1b}` or `\n`, bytes that are not UTF-8 replaced.
    /// Safe to print on a terminal whatever the holder's arguments are.
    /// `None` as for [`command_line`](Self::command_line).
    pub fn command_text(&self) -> Option<String> {
        self.command_line
            .as_deref()
            .map(|args| QuotedCommand(args).to_string())
    }
}

impl fmt::Display for Holder {
    /// `PID 1234 (prog arg 'two words')`, `PID 1234`, or `an unknown
    /// process`; the command as [`command_text`](Holder::command_text)
    /// writes it (quoted, control characters escaped, one line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            None => f.write_str("an unknown process")?,
            Some(pid) => {
                write!(f, "PID {pid}")?;
                match &self.command_line {
                    Some(args) if !args.is_empty() => write!(f, " ({})", QuotedCommand(args))?,
                    _ => {}
                }
            }
        }
        if self.lock == HeldLock::LegacySocket {
            f.write_str(" through the legacy socket")?;
        }
        Ok(())
    }
}

/// Writes `arg` as a POSIX shell word: bare when it is made of safe
/// characters, otherwise in single quotes (`'` written as `'\''`).
/// Control characters (escape sequences, newlines) are written escaped
/// (`\u{1b}`, `\n`), so a holder's command line can neither drive the
/// reader's terminal nor split the line it is printed on.
fn write_quoted(f: &mut fmt::Formatter<'_>, arg: &OsStr) -> fmt::Result {
    let text = arg.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        return f.write_str(&text);
    }
    f.write_str("'")?;
    for c in text.chars() {
        match c {
            '\'' => f.write_str("'\\''")?,
            c if c.is_control() => write!(f, "{}", c.escape_default())?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}

/// A command line as one shell-quoted, single line, control characters
/// escaped: what the `Display` of [`Holder`] shows in parentheses.
struct QuotedCommand<'a>(&'a [OsString]);

impl fmt::Display for QuotedCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write_quoted(f, arg)?;
        }
        Ok(())
    }
}

/// Who holds the mutex `name`: `Ok(None)` when it is free, otherwise the
/// holding process's pid and command line where the platform can tell.
///
/// It never takes the mutex where the platform can answer otherwise (Linux),
/// never creates the lock file, and never waits. The answer is a snapshot:
/// the mutex may change hands right after.
///
/// # Errors
/// - [`Error::InvalidSpec`]: `name` fails [`validate_name`]; nothing was touched.
/// - [`Error::Io`]: the lock file exists but could not be examined, or the
///   lock path is something no acquisition would lock (Unix: a symbolic
///   link, directory, FIFO, socket or device), with the same message and
///   hint as [`Spec::acquire`](crate::Spec::acquire) gives.
///
/// # Linux
/// Reads `/proc/locks` and takes the `FLOCK` entry (granted, not waiting)
/// whose device and inode are those of the lock file the path names *now*
/// (the path is examined before and after, and the reading repeated if the
/// file was replaced in between). So:
///
/// - a lock file that was **deleted** reads as free, and one that was
///   **replaced** reads as its new file does: a holder of an old inode that
///   no path leads to any more does not make new acquirers wait;
/// - **several processes sharing one open file description** (a holder that
///   forked without exec, or passed the descriptor to a program it ran):
///   `/proc/locks` lists the process that called flock(2). That pid is
///   reported if the process still has the descriptor (checked in
///   `/proc/PID/fdinfo`). If it has exited or closed its copy, the other
///   processes are searched (their `/proc/PID/fdinfo` lock lines) and the
///   lowest pid still holding it is reported;
/// - a **holder that exits** between the reads: the reading is repeated, and
///   the mutex reported free if it was released; if a process is found to
///   hold it but its command line is gone, the pid is still reported with
///   [`Holder::command_line`] `None`.
///
/// `/proc/locks` is produced one page per read(2), and when it is longer
/// than that an entry can be missed if other locks are removed while it is
/// read. So a reading without an entry for the lock file is final only if
/// it is short and came in one read; otherwise it is taken again (three
/// times in all), and if none shows the entry, the processes'
/// `/proc/PID/fdinfo` are searched for the lock.
///
/// Where `/proc` does not say (another user's process without root, a
/// holder in another pid namespace, `hidepid`), the pid is the one
/// `/proc/locks` lists when that process exists and `None` otherwise. If
/// `/proc/locks` cannot be read at all, the Unix probe below is used.
///
/// When the lock file is free, the legacy abstract socket is looked up in
/// `/proc/net/unix` (this network namespace); a process that has only it
/// bound (juju/mutex v1) is reported with [`HeldLock::LegacySocket`], its
/// pid found through `/proc/PID/fd` where this user may read it. When the
/// lock file is held but the socket is bound by another process (found the
/// same way, and only when this user may read the flock holder's
/// `/proc/PID/fd` to see that it lacks the socket), that process is
/// reported, with [`HeldLock::LegacySocket`]: the flock's holder is then
/// still waiting for the socket (an acquisition of this crate takes the
/// flock first), or does not use it.
///
/// Limits: on btrfs, `stat` reports a subvolume's own device number while
/// `/proc/locks` shows the file system's, so a lock file there reads as
/// free (as with `lslocks`); keep `TMPDIR` on tmpfs or another file system.
///
/// # Unix
/// Other Unix systems have no `/proc/locks`. There the lock file is opened
/// (if it exists; it is never created) and a shared, non-blocking flock is
/// tried: if it fails the mutex is held, [`Holder::pid`] `None` (*held,
/// holder unknown*); if it succeeds the mutex is free and the shared lock is
/// dropped at once. For that instant the probe does hold a shared lock: a
/// [`Spec::try_acquire`](crate::Spec::try_acquire) of another process at
/// that very moment reports the mutex held, and a waiting acquisition waits
/// that instant longer. It never makes a waiting acquisition fail.
///
/// # Windows
/// The default (session) named mutex `juju-mutex-NAME` is tried without
/// waiting and, if that took it, released at once: *free*; otherwise *held,
/// holder unknown* (Windows does not tell which process owns a mutex),
/// reported as [`HeldLock::LockFile`]. For that instant the query holds the
/// mutex outright (not a shared lock, as the Unix probe takes): another
/// process's `try_acquire` then finds it held, a waiter waits that instant
/// longer, and two queries at once may each report the other as holder.
/// This function looks in the session namespace only: for a mutex in the
/// [`Global`](crate::Namespace::Global) namespace ask
/// [`Spec::holder`](crate::Spec::holder) of a spec with that namespace.
pub fn holder(name: &str) -> Result<Option<Holder>, Error> {
    holder_in(name, Namespace::Session)
}

/// [`holder()`] of the mutex `name` in `namespace` (Windows; ignored
/// elsewhere): what [`Spec::holder`](crate::Spec::holder) answers.
pub(crate) fn holder_in(name: &str, namespace: Namespace) -> Result<Option<Holder>, Error> {
    validate_name(name)?;
    // The lock file on Unix, the kernel object's name on Windows.
    let target = <LockFile as LockBackend>::target(name, namespace);
    crate::sys::check_lock_path(&target)?;
    crate::sys::holder(name, &target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The display form quotes what a shell would split, names the legacy
    /// socket, and says when the process is unknown.
    #[test]
    fn display_forms() {
        let cmd = |args: &[&str]| Some(args.iter().map(OsString::from).collect());
        let h = Holder::new(
            HeldLock::LockFile,
            Some(12),
            cmd(&["sh", "-c", "it's here"]),
        );
        assert_eq!(h.to_string(), r"PID 12 (sh -c 'it'\''s here')");
        let h = Holder::new(HeldLock::LockFile, Some(12), cmd(&["a", ""]));
        assert_eq!(h.to_string(), "PID 12 (a '')");
        // Control characters are escaped: one line, no terminal escapes.
        let h = Holder::new(
            HeldLock::LockFile,
            Some(3),
            cmd(&["sh", "a\nb", "\u{1b}[31m"]),
        );
        assert_eq!(h.to_string(), r"PID 3 (sh 'a\nb' '\u{1b}[31m')");
        assert_eq!(h.command_text().unwrap(), r"sh 'a\nb' '\u{1b}[31m'");
        let h = Holder::new(HeldLock::LegacySocket, Some(7), None);
        assert_eq!(h.to_string(), "PID 7 through the legacy socket");
        assert_eq!(
            Holder::unknown(HeldLock::LockFile).to_string(),
            "an unknown process"
        );
    }
}
