//! The errors `machine-mutex` reports, with their exact messages.

use std::ffi::OsString;
use std::io;

use crate::exit_codes::ExitStatus;

/// A failure of the tool itself (not of the command it runs).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Acquiring the mutex failed.
    #[error("{name}: {source}")]
    Acquire {
        name: String,
        #[source]
        source: machine_mutex::Error,
    },
    /// The command could not be started.
    #[error("{}: {source}", .program.to_string_lossy())]
    Spawn {
        program: OsString,
        #[source]
        source: io::Error,
    },
}

impl CliError {
    /// The exit status this error ends the tool with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            CliError::Acquire { source, .. } if source.is_contention() => ExitStatus::Conflict,
            CliError::Acquire { .. } => ExitStatus::Failure,
            CliError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ExitStatus::NotFound
            }
            CliError::Spawn { .. } => ExitStatus::CannotExecute,
        }
    }
}
