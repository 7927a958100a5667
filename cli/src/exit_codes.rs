//! Exit statuses of `machine-mutex`, following flock(1) where it has one.

use std::process::ExitCode;

/// How `machine-mutex` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command ran; its own status (0-255), or 128 + signal number when
    /// a signal ended it.
    Command(u8),
    /// The mutex was not obtained: timeout, or held (`try`). flock(1) uses 1.
    Conflict,
    /// Any other failure of machine-mutex itself (I/O on the lock file, ...).
    Failure,
    /// The command was found but could not be executed (as a shell: 126).
    CannotExecute,
    /// The command was not found (as a shell: 127).
    NotFound,
}

impl ExitStatus {
    /// The numeric status.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Command(code) => code,
            ExitStatus::Conflict => 1,
            ExitStatus::Failure => 1,
            ExitStatus::CannotExecute => 126,
            ExitStatus::NotFound => 127,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}
