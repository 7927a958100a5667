//! `machine-mutex`: a thin command-line front to the `machine_mutex` library.

mod acquire;
mod cli;
mod errors;
mod exit_codes;
mod hold;
mod report;
mod run;
mod signals;
mod waiting;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Command, Opts, ParseOutcome};
use crate::errors::CliError;
use crate::exit_codes::ExitStatus;

fn main() -> ExitCode {
    match run() {
        Ok(status) => status.into(),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "machine-mutex: {err}");
            err.exit_status().into()
        }
    }
}

fn run() -> Result<ExitStatus, CliError> {
    let opts = match Opts::try_parse() {
        Ok(opts) => opts,
        Err(err) => {
            return match cli::parse_outcome(err) {
                ParseOutcome::Printed(0) => Ok(ExitStatus::Success),
                ParseOutcome::Printed(_) => Ok(ExitStatus::Usage),
                ParseOutcome::Usage(line) => Err(CliError::Usage(line)),
            }
        }
    };
    match &opts.command {
        Command::Run(args) => run::run(&args.lock, Some(&args.wait), &args.command),
        Command::Try(args) => match run::run(&args.lock, None, &args.command) {
            // --quiet: held is said by the exit status alone.
            Err(CliError::Held { code, .. }) if args.quiet => Ok(ExitStatus::Conflict(code)),
            other => other,
        },
        Command::Hold(args) => hold::hold(args),
        Command::Status(args) => report::status(args),
        Command::List(args) => report::list(args),
    }
}
