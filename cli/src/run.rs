//! `run` and `try`: acquire, run COMMAND passing signals on, release when
//! it has ended, exit with its status.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use machine_mutex::CancelToken;

use crate::acquire::acquire;
use crate::cli::{LockArgs, WaitArgs};
use crate::errors::CliError;
use crate::exit_codes::ExitStatus;
use crate::signals::SignalRouter;

/// Runs `command` holding the mutex of `lock`; `wait` `None` is `try`.
pub fn run(
    lock: &LockArgs,
    wait: Option<&WaitArgs>,
    command: &[OsString],
) -> Result<ExitStatus, CliError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| CliError::Usage("a COMMAND is required after --".to_owned()))?;
    check_program(program)?;
    let token = CancelToken::new();
    let router = SignalRouter::install(token.clone()).map_err(|source| CliError::System {
        action: "cannot install signal handlers",
        source,
    })?;
    let mut guard = acquire(lock, wait, &token, &router)?;
    let mut process = Command::new(program);
    process.args(args);
    let spawned = router
        .spawn_forwarding(&mut process)
        .map_err(|source| CliError::Spawn {
            program: program.clone(),
            source,
        })?;
    let mut child = match spawned {
        Some(child) => child,
        None => {
            return Err(CliError::Interrupted {
                name: lock.name.clone(),
                signal: router.received().unwrap_or(signal_hook::consts::SIGTERM),
            })
        }
    };
    let status = router.wait_forwarding(&mut child);
    // Released only now that COMMAND has ended (also if waiting failed: a
    // child that cannot be waited for cannot be kept from running either).
    let released = guard.release();
    let status = status.map_err(|source| CliError::System {
        action: "cannot wait for COMMAND",
        source,
    })?;
    released.map_err(|source| CliError::Lock {
        name: lock.name.clone(),
        source,
    })?;
    Ok(ExitStatus::of_command(status))
}

/// Fails at once if COMMAND cannot be run, before the mutex is waited for:
/// a name without '/' must be found in PATH; a path must be an executable file.
fn check_program(program: &OsString) -> Result<(), CliError> {
    let path = Path::new(program);
    if !program.as_encoded_bytes().contains(&b'/') {
        return match which::which(path) {
            Ok(_) => Ok(()),
            Err(_) => Err(CliError::NotFound {
                program: program.clone(),
            }),
        };
    }
    let not_executable = |what: &str| CliError::Spawn {
        program: program.clone(),
        source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, what.to_owned()),
    };
    match std::fs::metadata(path) {
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => Err(CliError::NotFound {
            program: program.clone(),
        }),
        Err(source) => Err(CliError::Spawn {
            program: program.clone(),
            source,
        }),
        Ok(meta) if meta.is_dir() => Err(not_executable("is a directory")),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
            Err(not_executable("not executable (no x permission)"))
        }
        Ok(_) => Ok(()),
    }
}
