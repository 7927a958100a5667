//! The errors `machine-mutex` reports, with their exact messages. Each is
//! printed as one line, `machine-mutex: MESSAGE`, on stderr.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use machine_mutex::Holder;

use crate::exit_codes::ExitStatus;

/// A failure of the tool itself, or the mutex not being obtained (not a
/// failure of the command it runs, whose status is passed on).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, as clap reported them on one line.
    #[error("{0}")]
    Usage(String),

    /// `try` (or `-t 0`) found the mutex held.
    #[error("'{name}' is held by {}", holder_text(.holder))]
    Held {
        name: String,
        holder: Option<Holder>,
        code: u8,
    },

    /// The timeout passed before the mutex was free (or, waiting in line,
    /// before the waiters ahead had their turns).
    #[error("timed out after {} waiting for '{name}', {}",
        humantime::format_duration(*.timeout), timeout_reason(.holder, *.fair))]
    Timeout {
        name: String,
        timeout: Duration,
        holder: Option<Holder>,
        /// Whether it waited in line (`--fair`).
        fair: bool,
        code: u8,
    },

    /// A signal ended the wait.
    #[error("{} received while waiting for '{name}'; not acquired", signal_name(*.signal))]
    Interrupted { name: String, signal: i32 },

    /// Acquiring, releasing or examining the mutex failed.
    #[error("{name}: {source}")]
    Lock {
        name: String,
        #[source]
        source: machine_mutex::Error,
    },

    /// The temp directory could not be listed.
    #[error("cannot list lock files in {}: {source}", .dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },

    /// COMMAND is not in PATH, or the path given does not exist.
    #[error("{}: command not found", .program.to_string_lossy())]
    NotFound { program: OsString },

    /// COMMAND exists, but execve(2) did not find its interpreter (that
    /// of its `#!` line, or the loader of a binary).
    #[error("cannot run {}: the file exists, but its interpreter{} could not be run: {source}{}",
        .program.to_string_lossy(),
        .interpreter.as_ref().map(|i| format!(" {}", i.escape_debug())).unwrap_or_default(),
        if .interpreter.as_ref().is_some_and(|i| i.ends_with('\r')) {
            " (the #! line ends with a carriage return: DOS line endings)"
        } else {
            ""
        })]
    BadInterpreter {
        program: OsString,
        /// The interpreter its `#!` line names, if it has one.
        interpreter: Option<String>,
        #[source]
        source: io::Error,
    },

    /// COMMAND could not be started.
    #[error("cannot run {}: {source}", .program.to_string_lossy())]
    Spawn {
        program: OsString,
        #[source]
        source: io::Error,
    },

    /// Signal handling or waiting for COMMAND failed.
    #[error("{action}: {source}")]
    System {
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl CliError {
    /// The exit status this error ends the tool with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            CliError::Usage(_) => ExitStatus::Usage,
            CliError::Held { code, .. } | CliError::Timeout { code, .. } => {
                ExitStatus::Conflict(*code)
            }
            CliError::Interrupted { signal, .. } => ExitStatus::Signal(*signal),
            CliError::Lock { .. } | CliError::List { .. } | CliError::System { .. } => {
                ExitStatus::Failure
            }
            CliError::NotFound { .. } => ExitStatus::NotFound,
            CliError::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ExitStatus::NotFound
            }
            CliError::Spawn { .. } | CliError::BadInterpreter { .. } => ExitStatus::CannotExecute,
        }
    }
}

/// "PID 1234 (cmd ...)", "an unknown process", or, when the holder left
/// between the failure and the query, "another process".
fn holder_text(holder: &Option<Holder>) -> String {
    match holder {
        Some(holder) => holder.to_string(),
        None => "another process".to_owned(),
    }
}

/// Why a wait timed out: "held by ..."; waiting in line with nobody holding
/// it now, the waiters ahead (one of them may be stopped: it keeps its
/// place, and the ones behind it wait).
fn timeout_reason(holder: &Option<Holder>, fair: bool) -> String {
    match (holder, fair) {
        (None, true) => "in line behind earlier --fair waiters; nobody holds it now \
                         (is one of them stopped?)"
            .to_owned(),
        _ => format!("held by {}", holder_text(holder)),
    }
}

/// SIGINT, SIGTERM, ... or "signal N".
pub fn signal_name(signal: i32) -> String {
    signal_hook::low_level::signal_name(signal)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("signal {signal}"))
}
