//! Linux holder query, read from procfs without touching the lock:
//! `/proc/locks` (who locked which device and inode), `/proc/PID/fd` and
//! `/proc/PID/fdinfo` (which process still has that lock), `/proc/PID/cmdline`,
//! and `/proc/net/unix` for the legacy abstract socket.
//!
//! Formats (fs/locks.c, `lock_get_status`; fs/proc/fd.c; net/unix/af_unix.c):
//!
//! ```text
//! /proc/locks:      1: FLOCK  ADVISORY  WRITE 2160 fe:00:10012479 0 EOF
//!                   1: -> FLOCK  ADVISORY  WRITE 2161 fe:00:10012479 0 EOF   (waiting)
//! fdinfo:           lock:<TAB>1: FLOCK  ADVISORY  WRITE 2160 fe:00:10012479 0 EOF
//! /proc/net/unix:   0000000000000000: 00000002 00000000 00000000 0001 01 56789 @/var/lib/juju/mutex-/NAME
//! ```
//!
//! The device is `MAJOR:MINOR` in hex, the inode in decimal. The pid of a
//! flock entry is the process that called flock(2), translated into the pid
//! namespace of this `/proc` (0 when not visible there), and kept even
//! after that process exits while a process it forked still holds the lock.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::holder::{HeldLock, Holder};
use crate::{legacy_socket_name, Error};

/// How many times the reading is repeated while the lock file or its holder
/// changes under it.
const ATTEMPTS: usize = 5;

/// How many readings of a `/proc/locks` longer than a page are taken
/// before an absent entry is checked with the processes themselves.
const FREE_READINGS: usize = 3;

/// A reading of `/proc/locks` shorter than this, in one read, is one
/// consistent snapshot (half a page).
const ONE_PIECE_BELOW: usize = 2048;

/// The granted entries of the lock file in `/proc/locks`.
#[derive(Debug, PartialEq, Eq)]
enum Listed {
    /// The pids listed (one, or several for a shared lock).
    Pids(Vec<i64>),
    /// None: the file is not locked.
    None,
    /// None seen, but the readings were taken in pieces and may have
    /// missed it.
    Unsure,
}

/// Who holds the mutex `name` whose lock file is `path`; see [`crate::holder`].
pub(crate) fn holder(name: &str, path: &Path) -> Result<Option<Holder>, Error> {
    let procfs = Procfs::new("/proc");
    let file = match procfs.file_holder(path)? {
        Reading::Known(file) => file,
        Reading::NoProcLocks => super::super::unix::probe_holder(name, path)?,
    };
    let socket = legacy_socket_name(name);
    match file {
        // A process with the flock but not the bound socket, while another
        // process has the socket bound, is still waiting for the socket
        // (or does not use it): the socket's holder is the one inside.
        Some(holder) => Ok(Some(
            procfs
                .socket_bound_by_another(&socket, &holder)
                .unwrap_or(holder),
        )),
        None => Ok(procfs.legacy_holder(&socket)),
    }
}

/// What `/proc/locks` told about the lock file.
#[derive(Debug, PartialEq, Eq)]
enum Reading {
    /// Free (`None`) or held.
    Known(Option<Holder>),
    /// `/proc/locks` could not be read (no procfs, or masked).
    NoProcLocks,
}

/// A file as `/proc/locks` names it: the device of its file system and its inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    major: u32,
    minor: u32,
    inode: u64,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            major: rustix::fs::major(meta.dev()),
            minor: rustix::fs::minor(meta.dev()),
            inode: meta.ino(),
        }
    }

    /// Parses `fe:00:10012479` (hex major and minor, decimal inode).
    fn parse(text: &str) -> Option<FileId> {
        let mut parts = text.split(':');
        let major = u32::from_str_radix(parts.next()?, 16).ok()?;
        let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
        let inode = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(FileId {
            major,
            minor,
            inode,
        })
    }
}

/// One `FLOCK` entry of `/proc/locks`, or of a `lock:` line of an fdinfo file.
#[derive(Debug, PartialEq, Eq)]
struct FlockEntry {
    /// False for a process waiting for the lock (`->`).
    granted: bool,
    /// As printed: may be 0 (not in this pid namespace) or negative.
    pid: i64,
    file: FileId,
}

impl FlockEntry {
    /// Parses one line; `None` for other lock types and for lines it does
    /// not understand.
    fn parse(line: &str) -> Option<FlockEntry> {
        let mut fields = line.split_whitespace();
        let _ordinal = fields.next()?;
        let mut kind = fields.next()?;
        let granted = kind != "->";
        if !granted {
            kind = fields.next()?;
        }
        if kind != "FLOCK" {
            return None;
        }
        let _advisory = fields.next()?;
        let _read_or_write = fields.next()?;
        let pid = fields.next()?.parse().ok()?;
        let file = FileId::parse(fields.next()?)?;
        Some(FlockEntry { granted, pid, file })
    }
}

/// Whether a process holds the lock, as far as its `/proc/PID` shows.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Holds,
    /// It exists, but this user may not look at its descriptors.
    CannotTell,
    /// It does not hold it, or no longer exists.
    No,
}

/// A procfs tree: `/proc`, or a fake one in tests.
struct Procfs {
    root: PathBuf,
}

impl Procfs {
    fn new(root: impl Into<PathBuf>) -> Procfs {
        Procfs { root: root.into() }
    }

    /// The holder of the flock on the file `path` names now.
    fn file_holder(&self, path: &Path) -> Result<Reading, Error> {
        let mut scanned = false;
        for _ in 0..ATTEMPTS {
            let file = match file_id(path)? {
                Some(file) => file,
                None => return Ok(Reading::Known(None)),
            };
            let listed = match self.granted(file) {
                Some(listed) => listed,
                None => return Ok(Reading::NoProcLocks),
            };
            if file_id(path)? != Some(file) {
                // Replaced or deleted while /proc/locks was read: look again.
                continue;
            }
            let mut listed = match listed {
                Listed::Pids(pids) => pids,
                Listed::None => return Ok(Reading::Known(None)),
                Listed::Unsure => {
                    // Ask the processes themselves (their fdinfo lock lines).
                    return Ok(Reading::Known(
                        self.scan(|pid| self.verdict(pid, file) == Verdict::Holds)
                            .map(|pid| self.process(HeldLock::LockFile, pid)),
                    ));
                }
            };
            listed.sort_unstable();
            // Normally one entry; several only for shared locks (flock -s).
            for pid in listed.into_iter().filter_map(|pid| u32::try_from(pid).ok()) {
                if pid != 0 && self.verdict(pid, file) != Verdict::No {
                    return Ok(Reading::Known(Some(self.process(HeldLock::LockFile, pid))));
                }
            }
            // The listed process is gone or closed its copy: a process that
            // shares its open file description may hold the lock now.
            if scanned {
                break;
            }
            scanned = true;
            if let Some(pid) = self.scan(|pid| self.verdict(pid, file) == Verdict::Holds) {
                return Ok(Reading::Known(Some(self.process(HeldLock::LockFile, pid))));
            }
            // Nobody found: it may have been released meanwhile; read again.
        }
        Ok(Reading::Known(Some(Holder::unknown(HeldLock::LockFile))))
    }

    /// The pids of the granted flock entries of `file` in `/proc/locks`;
    /// `None` if it cannot be read.
    ///
    /// `/proc/locks` is a seq_file: each read(2) produces at most a page
    /// (4 KiB) under the kernel's lock, the next one continues at the next
    /// entry's *position*. When locks listed before that position are
    /// removed in between, later entries move up and some are never shown
    /// (seen here under load: about one reading in a hundred missed a
    /// long-held lock). So a reading without an entry is final only when it
    /// came in one read well short of a page ([`ONE_PIECE_BELOW`]): then the
    /// kernel produced it in one go, ending at the list's end. Otherwise up
    /// to [`FREE_READINGS`] readings are taken, and if none shows an entry
    /// the answer is [`Listed::Unsure`].
    fn granted(&self, file: FileId) -> Option<Listed> {
        for _ in 0..FREE_READINGS {
            let (locks, whole) = read_in_one_piece(&self.root.join("locks")).ok()?;
            let pids: Vec<i64> = locks
                .lines()
                .filter_map(FlockEntry::parse)
                .filter(|entry| entry.granted && entry.file == file)
                .map(|entry| entry.pid)
                .collect();
            if !pids.is_empty() {
                return Some(Listed::Pids(pids));
            }
            if whole {
                return Some(Listed::None);
            }
        }
        Some(Listed::Unsure)
    }

    /// Whether `pid` holds the flock on `file`: one of its descriptors
    /// refers to the file and its fdinfo lists the granted lock.
    fn verdict(&self, pid: u32, file: FileId) -> Verdict {
        let dir = self.root.join(pid.to_string());
        let fds = match fs::read_dir(dir.join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                // Another user's process: trust /proc/locks while it runs
                // (a zombie or a vanished process has no command line).
                return if self.command_line(pid).is_some() {
                    Verdict::CannotTell
                } else {
                    Verdict::No
                };
            }
            Err(_) => return Verdict::No,
        };
        for fd in fds.flatten() {
            let same_file = fs::metadata(fd.path()).map_or(false, |m| FileId::of(&m) == file);
            if !same_file {
                continue;
            }
            let info = match fs::read_to_string(dir.join("fdinfo").join(fd.file_name())) {
                Ok(info) => info,
                Err(_) => continue,
            };
            let holds = info
                .lines()
                .filter_map(|line| line.strip_prefix("lock:"))
                .filter_map(FlockEntry::parse)
                .any(|entry| entry.granted && entry.file == file);
            if holds {
                return Verdict::Holds;
            }
        }
        Verdict::No
    }

    /// The lowest pid for which `matches` is true.
    fn scan(&self, mut matches: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut pids: Vec<u32> = fs::read_dir(&self.root)
            .ok()?
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        pids.into_iter().find(|&pid| matches(pid))
    }

    /// A holder with `pid` and, if it can still be read, its command line.
    fn process(&self, lock: HeldLock, pid: u32) -> Holder {
        Holder::new(lock, Some(pid), self.command_line(pid))
    }

    /// `/proc/PID/cmdline` split at its NUL bytes; `None` when it is gone,
    /// unreadable, or empty (a zombie or a kernel thread).
    fn command_line(&self, pid: u32) -> Option<Vec<OsString>> {
        let bytes = fs::read(self.root.join(pid.to_string()).join("cmdline")).ok()?;
        let bytes = bytes.strip_suffix(b"\0").unwrap_or(&bytes);
        if bytes.is_empty() {
            return None;
        }
        Some(
            bytes
                .split(|&b| b == 0)
                .map(|arg| OsString::from_vec(arg.to_vec()))
                .collect(),
        )
    }

    /// The process that has the legacy abstract socket `socket` (as
    /// `/proc/net/unix` prints it, `@...`) bound, if any is.
    fn legacy_holder(&self, socket: &str) -> Option<Holder> {
        let target = self.bound_socket(socket)?;
        let pid = self.scan(|pid| self.has_open(pid, &target));
        Some(match pid {
            Some(pid) => self.process(HeldLock::LegacySocket, pid),
            None => Holder::unknown(HeldLock::LegacySocket),
        })
    }

    /// The process that has the legacy socket bound, when that is not the
    /// flock's `holder` and can be named: then `holder` is waiting for the
    /// socket (a juju/mutex v1 process has it) or does not use it. `None`
    /// when the socket is free, bound by `holder` itself, or this user
    /// cannot tell (the holder's pid unknown, or its `/proc/PID/fd` not
    /// readable: then every process would be searched for each held name,
    /// which made `list` of another user's holders several times slower, and
    /// found nothing surer): then `holder` stands.
    fn socket_bound_by_another(&self, socket: &str, holder: &Holder) -> Option<Holder> {
        let target = self.bound_socket(socket)?;
        if self.open_in(holder.pid()?, &target)? {
            return None;
        }
        let pid = self.scan(|pid| self.has_open(pid, &target))?;
        Some(self.process(HeldLock::LegacySocket, pid))
    }

    /// `socket:[INODE]`, the `/proc/PID/fd` link of the socket bound to the
    /// abstract name `socket` (as `/proc/net/unix` shows it), if one is.
    fn bound_socket(&self, socket: &str) -> Option<String> {
        let table = fs::read_to_string(self.root.join("net").join("unix")).ok()?;
        let inode = table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, _, _, _, _, _, inode, path] if *path == socket => Some(*inode),
                _ => None,
            }
        })?;
        Some(format!("socket:[{inode}]"))
    }

    /// Whether process `pid` has a descriptor whose link reads `target`
    /// (not if its descriptors cannot be read).
    fn has_open(&self, pid: u32, target: &str) -> bool {
        self.open_in(pid, target).unwrap_or(false)
    }

    /// Whether process `pid` has a descriptor whose link reads `target`;
    /// `None` when its `/proc/PID/fd` cannot be read.
    fn open_in(&self, pid: u32, target: &str) -> Option<bool> {
        let fds = fs::read_dir(self.root.join(pid.to_string()).join("fd")).ok()?;
        Some(
            fds.flatten().any(|fd| {
                fs::read_link(fd.path()).map_or(false, |link| link.as_os_str() == target)
            }),
        )
    }
}

/// The whole content of a procfs file, and whether it is one consistent
/// snapshot: it came in one read(2) and is shorter than
/// [`ONE_PIECE_BELOW`]. A seq_file produces each read under its lock, and
/// stops a read early only when the next entry does not fit in the page; an
/// entry over 2 KiB (a lock with some 35 waiters) would be needed to stop
/// one that short.
fn read_in_one_piece(path: &Path) -> io::Result<(String, bool)> {
    let mut file = fs::File::open(path)?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut text = Vec::new();
    let mut reads = 0;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        text.extend_from_slice(&chunk[..n]);
        reads += 1;
    }
    let whole = reads <= 1 && text.len() < ONE_PIECE_BELOW;
    Ok((String::from_utf8_lossy(&text).into_owned(), whole))
}

/// The device and inode the path names now; `None` if nothing is there.
fn file_id(path: &Path) -> Result<Option<FileId>, Error> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(FileId::of(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("examine lock file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    //! The parsing, and the decisions taken on fake procfs trees (real
    //! processes are exercised in tests/holder.rs).

    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn parses_proc_locks_lines() {
        let id = FileId {
            major: 0xfe,
            minor: 0,
            inode: 10012479,
        };
        assert_eq!(
            FlockEntry::parse("1: FLOCK  ADVISORY  WRITE 2160 fe:00:10012479 0 EOF"),
            Some(FlockEntry {
                granted: true,
                pid: 2160,
                file: id
            })
        );
        assert_eq!(
            FlockEntry::parse("1:  -> FLOCK  ADVISORY  WRITE 2164 fe:00:10012479 0 EOF"),
            Some(FlockEntry {
                granted: false,
                pid: 2164,
                file: id
            })
        );
        // fdinfo's form, after "lock:".
        assert_eq!(
            FlockEntry::parse("\t1: FLOCK  ADVISORY  READ 0 103:1a:7 0 EOF"),
            Some(FlockEntry {
                granted: true,
                pid: 0,
                file: FileId {
                    major: 0x103,
                    minor: 0x1a,
                    inode: 7
                }
            })
        );
        for other in [
            "2: POSIX  ADVISORY  WRITE 31698 fe:00:382078 0 EOF",
            "3: OFDLCK ADVISORY  WRITE -1 00:05:1234 0 EOF",
            "4: LEASE  ACTIVE    READ 5 00:05:99 0 EOF",
            "5: FLOCK  ADVISORY  WRITE 12 <none>:0 0 EOF",
            "6: FLOCK",
            "",
        ] {
            assert_eq!(FlockEntry::parse(other), None, "{other:?}");
        }
    }

    /// A fake procfs whose fd entries are symlinks to real files, so that
    /// `stat` through them sees the real device and inode.
    struct Fake {
        dir: tempfile::TempDir,
        lock_file: PathBuf,
        id: FileId,
    }

    impl Fake {
        fn new() -> Fake {
            let dir = tempfile::tempdir().unwrap();
            let lock_file = dir.path().join("juju-fake");
            fs::write(&lock_file, "").unwrap();
            let id = FileId::of(&fs::metadata(&lock_file).unwrap());
            fs::create_dir(dir.path().join("proc")).unwrap();
            Fake { dir, lock_file, id }
        }

        fn procfs(&self) -> Procfs {
            Procfs::new(self.dir.path().join("proc"))
        }

        fn lock_line(&self, pid: i64, waiting: bool) -> String {
            let arrow = if waiting { "-> " } else { "" };
            format!(
                "1: {arrow}FLOCK  ADVISORY  WRITE {pid} {:02x}:{:02x}:{} 0 EOF\n",
                self.id.major, self.id.minor, self.id.inode
            )
        }

        fn set_locks(&self, text: &str) {
            fs::write(self.dir.path().join("proc/locks"), text).unwrap();
        }

        /// A process with `cmdline`; `fd 3` open on the lock file, its fdinfo
        /// showing the lock (listing `lister` as its pid) if `holds`.
        fn process(&self, pid: u32, cmdline: &str, lister: Option<i64>) {
            let base = self.dir.path().join(format!("proc/{pid}"));
            fs::create_dir_all(base.join("fd")).unwrap();
            fs::create_dir_all(base.join("fdinfo")).unwrap();
            fs::write(base.join("cmdline"), cmdline).unwrap();
            symlink(&self.lock_file, base.join("fd/3")).unwrap();
            let mut info = "pos:\t0\nflags:\t02100000\n".to_owned();
            if let Some(lister) = lister {
                info.push_str("lock:\t");
                info.push_str(&self.lock_line(lister, false));
            }
            fs::write(base.join("fdinfo/3"), info).unwrap();
        }
    }

    fn pid_and_cmd(reading: Reading) -> (Option<u32>, Option<Vec<String>>) {
        match reading {
            Reading::Known(Some(h)) => (
                h.pid(),
                h.command_line()
                    .map(|c| c.iter().map(|a| a.to_string_lossy().into_owned()).collect()),
            ),
            other => panic!("expected a holder, got {other:?}"),
        }
    }

    #[test]
    fn listed_holder_that_still_has_the_lock() {
        let fake = Fake::new();
        fake.set_locks(&(fake.lock_line(10, false) + &fake.lock_line(11, true)));
        fake.process(10, "prog\0arg one\0", Some(10));
        fake.process(11, "waiter\0", None);
        let (pid, cmd) = pid_and_cmd(fake.procfs().file_holder(&fake.lock_file).unwrap());
        assert_eq!(pid, Some(10));
        assert_eq!(cmd, Some(vec!["prog".to_owned(), "arg one".to_owned()]));
    }

    /// The process that called flock exited; a child it forked keeps the
    /// shared open file description, and with it the lock. /proc/locks still
    /// lists the dead pid; the child is found through its fdinfo. A process
    /// that merely has the file open (a waiter) is not taken for the holder.
    #[test]
    fn exited_locker_is_replaced_by_the_process_sharing_its_lock() {
        let fake = Fake::new();
        fake.set_locks(&(fake.lock_line(10, false) + &fake.lock_line(12, true)));
        fake.process(12, "waiter\0", None);
        fake.process(30, "child\0", Some(10));
        fake.process(40, "other-child\0", Some(10));
        let (pid, cmd) = pid_and_cmd(fake.procfs().file_holder(&fake.lock_file).unwrap());
        assert_eq!(pid, Some(30));
        assert_eq!(cmd, Some(vec!["child".to_owned()]));
    }

    /// The listed pid was reused by an unrelated process: it has no lock, so
    /// it is not reported; with no process found, the mutex is held by an
    /// unknown process.
    #[test]
    fn reused_pid_is_not_reported() {
        let fake = Fake::new();
        fake.set_locks(&fake.lock_line(10, false));
        let base = fake.dir.path().join("proc/10");
        fs::create_dir_all(base.join("fd")).unwrap();
        fs::write(base.join("cmdline"), "unrelated\0").unwrap();
        let reading = fake.procfs().file_holder(&fake.lock_file).unwrap();
        assert_eq!(
            reading,
            Reading::Known(Some(Holder::unknown(HeldLock::LockFile)))
        );
    }

    /// A holder found through its fdinfo whose command line has gone (it is
    /// exiting) is still reported by pid.
    #[test]
    fn holder_without_command_line_keeps_its_pid() {
        let fake = Fake::new();
        fake.set_locks(&fake.lock_line(10, false));
        fake.process(10, "", Some(10));
        let (pid, cmd) = pid_and_cmd(fake.procfs().file_holder(&fake.lock_file).unwrap());
        assert_eq!((pid, cmd), (Some(10), None));
    }

    /// Only entries for this device and inode count; a deleted lock file is
    /// free; an unreadable /proc/locks is reported as such.
    #[test]
    fn other_files_deleted_file_and_missing_proc_locks() {
        let fake = Fake::new();
        let other = FileId {
            inode: fake.id.inode + 1,
            ..fake.id
        };
        fake.set_locks(&format!(
            "1: FLOCK  ADVISORY  WRITE 10 {:02x}:{:02x}:{} 0 EOF\n",
            other.major, other.minor, other.inode
        ));
        let procfs = fake.procfs();
        assert_eq!(
            procfs.file_holder(&fake.lock_file).unwrap(),
            Reading::Known(None)
        );
        fake.set_locks(&fake.lock_line(10, false));
        fs::remove_file(&fake.lock_file).unwrap();
        assert_eq!(
            procfs.file_holder(&fake.lock_file).unwrap(),
            Reading::Known(None)
        );
        fs::write(&fake.lock_file, "").unwrap();
        fs::remove_file(fake.dir.path().join("proc/locks")).unwrap();
        assert_eq!(
            procfs.file_holder(&fake.lock_file).unwrap(),
            Reading::NoProcLocks
        );
    }

    /// A /proc/locks read in several pieces that shows no entry for the
    /// file is not trusted: the processes are asked.
    #[test]
    fn reading_in_pieces_without_the_entry_asks_the_processes() {
        let fake = Fake::new();
        // More than one 64 KiB read of other files' locks.
        let other = "1: FLOCK  ADVISORY  WRITE 9 00:01:1 0 EOF\n".repeat(3000);
        fake.set_locks(&other);
        fake.process(30, "holder\0", Some(10));
        let (pid, _) = pid_and_cmd(fake.procfs().file_holder(&fake.lock_file).unwrap());
        assert_eq!(pid, Some(30));
        fs::remove_file(fake.dir.path().join("proc/30/fdinfo/3")).unwrap();
        fs::write(fake.dir.path().join("proc/30/fdinfo/3"), "pos:\t0\n").unwrap();
        assert_eq!(
            fake.procfs().file_holder(&fake.lock_file).unwrap(),
            Reading::Known(None)
        );
        // Read in one piece, the same absence is final (no process asked).
        fake.set_locks("");
        fake.process(31, "unlisted\0", Some(31));
        assert_eq!(
            fake.procfs().file_holder(&fake.lock_file).unwrap(),
            Reading::Known(None)
        );
    }

    #[test]
    fn legacy_socket_holder() {
        let fake = Fake::new();
        let proc = fake.dir.path().join("proc");
        fs::create_dir_all(proc.join("net")).unwrap();
        fs::write(
            proc.join("net/unix"),
            "Num       RefCount Protocol Flags    Type St Inode Path\n\
             0000000000000000: 00000002 00000000 00000000 0001 01 555 @/var/lib/juju/mutex-/other\n\
             0000000000000000: 00000002 00000000 00000000 0001 01 777 @/var/lib/juju/mutex-/mine\n\
             0000000000000000: 00000002 00000000 00000000 0001 01 888\n",
        )
        .unwrap();
        fs::create_dir_all(proc.join("20/fd")).unwrap();
        fs::write(proc.join("20/cmdline"), "juju-v1\0").unwrap();
        symlink("socket:[777]", proc.join("20/fd/5")).unwrap();
        let procfs = fake.procfs();
        let holder = procfs.legacy_holder("@/var/lib/juju/mutex-/mine").unwrap();
        assert_eq!(holder.lock(), HeldLock::LegacySocket);
        assert_eq!(holder.pid(), Some(20));
        assert_eq!(procfs.legacy_holder("@/var/lib/juju/mutex-/none"), None);
        let unseen = procfs.legacy_holder("@/var/lib/juju/mutex-/other").unwrap();
        assert_eq!(unseen, Holder::unknown(HeldLock::LegacySocket));
    }
}
