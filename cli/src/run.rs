//! `run` and `try`: acquire, run COMMAND passing signals on, release when
//! it has ended, exit with its status.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    let file = check_program(program)?;
    let token = CancelToken::new();
    let router = SignalRouter::install(token.clone()).map_err(|source| CliError::System {
        action: "cannot install signal handlers",
        source,
    })?;
    let mut guard = acquire(lock, wait, &token, &router)?;
    let mut process = Command::new(program);
    process.args(args);
    let spawned = match router.spawn_forwarding(&mut process) {
        // Neither a binary nor a `#!` script: run it with /bin/sh, as
        // execvp(3) does (and so flock(1)); std's spawn does not.
        Err(e) if rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::NOEXEC) => {
            let mut shell = Command::new("/bin/sh");
            shell.arg(&file).args(args);
            router.spawn_forwarding(&mut shell)
        }
        other => other,
    }
    .map_err(|source| spawn_error(program, &file, source))?;
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
/// Returns the file: the path itself, or the name's match in PATH.
fn check_program(program: &OsString) -> Result<PathBuf, CliError> {
    let path = Path::new(program);
    if !program.as_encoded_bytes().contains(&b'/') {
        return which::which(path).map_err(|_| CliError::NotFound {
            program: program.clone(),
        });
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
        Ok(_) => Ok(path.to_owned()),
    }
}

/// The error for a COMMAND (found as `file`) that could not be started.
/// execve(2) says ENOENT also when the file exists but its interpreter does
/// not (a `#!` line's, or the loader of a binary): that is "cannot execute"
/// (126), not "not found" (127).
fn spawn_error(program: &OsString, file: &Path, source: std::io::Error) -> CliError {
    if source.kind() == std::io::ErrorKind::NotFound && file.is_file() {
        return CliError::BadInterpreter {
            program: program.clone(),
            interpreter: interpreter(file),
            source,
        };
    }
    CliError::Spawn {
        program: program.clone(),
        source,
    }
}

/// The interpreter a `#!` line at the start of `path` names: the first word
/// after `#!`, as the kernel reads it (within the first 256 bytes).
fn interpreter(path: &Path) -> Option<String> {
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(path)
        .and_then(|file| file.take(256).read_to_end(&mut head))
        .ok()?;
    let line = head.strip_prefix(b"#!")?.split(|&b| b == b'\n').next()?;
    let word = line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|word| !word.is_empty())?;
    Some(String::from_utf8_lossy(word).into_owned())
}
