//! Command-line arguments (clap derive; doc comments are the help text).

use std::ffi::OsString;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Run commands under a named, machine-level mutex shared between processes.
///
/// Processes using the same NAME take turns: a Rust or Go (juju/mutex)
/// process holding it makes the others wait. Lock file: $TMPDIR/juju-NAME.
#[derive(Debug, Parser)]
#[command(name = "machine-mutex", version, after_help = EXIT_HELP)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Acquire NAME (waiting for it), run COMMAND, release it when COMMAND exits.
    ///
    /// Example: machine-mutex run deploy --timeout 30s -- ./deploy.sh --prod
    #[command(after_help = EXIT_HELP)]
    Run(RunArgs),
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Mutex name: a letter, then letters, digits or '-', at most 40 bytes.
    pub name: String,

    /// Give up after this long (e.g. 500ms, 5s, 2m, 1m30s); default: wait forever.
    #[arg(short = 't', long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,

    /// The command and its arguments (after --).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Parses a human duration such as `250ms`, `5s` or `1m30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 250ms, 5s, 1m30s)"))
}

const EXIT_HELP: &str = "\
Exit status: the command's own status (128+N if signal N ended it);
1 if the mutex was not acquired (timeout) or machine-mutex failed;
2 for usage errors; 126 if COMMAND cannot be executed; 127 if it is not found.";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Opts::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
    }
}
