//! `machine-mutex`: a thin command-line front to the `machine_mutex` library.

mod cli;
mod errors;
mod exit_codes;

use std::process::{Command as Process, ExitCode};

use clap::Parser;
use machine_mutex::Spec;

use crate::cli::{Command, Opts, RunArgs};
use crate::errors::CliError;
use crate::exit_codes::ExitStatus;

fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(opts) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("machine-mutex: {err}");
            err.exit_status().into()
        }
    }
}

fn run(opts: Opts) -> Result<ExitStatus, CliError> {
    match opts.command {
        Command::Run(args) => run_command(args),
    }
}

/// `run`: acquire, run the command with inherited stdio, release, pass its status on.
fn run_command(args: RunArgs) -> Result<ExitStatus, CliError> {
    let mut spec = Spec::new(args.name.clone());
    if let Some(timeout) = args.timeout {
        spec = spec.with_timeout(timeout);
    }
    let guard = spec.acquire().map_err(|source| CliError::Acquire {
        name: args.name.clone(),
        source,
    })?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let status = Process::new(program)
        .args(rest)
        .status()
        .map_err(|source| CliError::Spawn {
            program: program.clone(),
            source,
        })?;
    drop(guard);
    Ok(ExitStatus::Command(status_code(status)))
}

/// The command's exit status, or 128 + signal number as shells report it.
fn status_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return (code & 0xff) as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return (128 + signal).min(255) as u8;
        }
    }
    1
}
