//! Exit statuses of `machine-mutex`, following flock(1) where it has one
//! (its "sysexits.h for everything else" gives 71, EX_OSERR, to failures of
//! the tool itself); the command's own status is passed on as a shell does.

use std::process::ExitCode;

/// How `machine-mutex` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the command, hold or query succeeded; `status` found the mutex free.
    Success,
    /// The command ran; its own status (0-255), or 128 + N when signal N
    /// ended it, as shells report it.
    Command(u8),
    /// The mutex was not obtained (held, or timeout): 1 unless `-E N` said
    /// otherwise (flock(1)'s `-E`).
    Conflict(u8),
    /// 1: `status` found the mutex held.
    Held,
    /// 2: a usage error (clap's status): unknown option, invalid name or
    /// duration, missing command. Nothing was created or run.
    Usage,
    /// 71 (EX_OSERR, as flock(1) uses sysexits.h): machine-mutex itself
    /// failed, for example the lock file could not be opened.
    Failure,
    /// 126: the command was found but could not be executed (as a shell).
    CannotExecute,
    /// 127: the command was not found (as a shell).
    NotFound,
    /// 128 + N: signal N ended the wait before the mutex was acquired.
    Signal(i32),
}

impl ExitStatus {
    /// The numeric status.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Command(code) | ExitStatus::Conflict(code) => code,
            ExitStatus::Held => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Failure => 71,
            ExitStatus::CannotExecute => 126,
            ExitStatus::NotFound => 127,
            ExitStatus::Signal(signal) => u8::try_from(128 + signal).unwrap_or(255),
        }
    }

    /// A finished command's status: its exit code, or 128 + the signal
    /// that killed it.
    pub fn of_command(status: std::process::ExitStatus) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        let code = match (status.code(), status.signal()) {
            (Some(code), _) => (code & 0xff) as u8,
            (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
            (None, None) => 1,
        };
        ExitStatus::Command(code)
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn codes() {
        assert_eq!(ExitStatus::Conflict(42).code(), 42);
        assert_eq!(ExitStatus::Signal(15).code(), 143);
        let killed = std::process::ExitStatus::from_raw(9);
        assert_eq!(ExitStatus::of_command(killed), ExitStatus::Command(137));
        let exited = std::process::ExitStatus::from_raw(7 << 8);
        assert_eq!(ExitStatus::of_command(exited), ExitStatus::Command(7));
    }
}
