//! Command-line arguments (clap derive; doc comments are the help text).

use std::ffi::OsString;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};

/// Run commands under a named, machine-level mutex, and see who holds one.
///
/// A mutex is a NAME shared by every process of the machine: while one
/// process holds it, the others wait. machine-mutex takes the same lock as
/// Go's juju/mutex (a flock(2) on $TMPDIR/juju-NAME; on Linux also the
/// abstract socket @/var/lib/juju/mutex-/NAME), so shell scripts, Rust and
/// Go programs exclude each other. The kernel releases the mutex when its
/// holder exits, however it exits; stale lock files are harmless.
///
/// NAME is an ASCII letter, then letters, digits or '-', at most 40 bytes.
/// Processes share a mutex only if they see the same TMPDIR.
#[derive(Debug, Parser)]
#[command(
    name = "machine-mutex",
    version,
    after_help = MAIN_AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Opts {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for NAME, run COMMAND while holding it, release it when COMMAND ends.
    ///
    /// COMMAND runs with machine-mutex's standard input, output and error,
    /// in the same process group (Ctrl-C at a terminal reaches it
    /// directly). SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE sent to
    /// machine-mutex are passed on to COMMAND; the mutex stays held until
    /// COMMAND has ended, and machine-mutex exits with COMMAND's status.
    /// COMMAND does not inherit the lock's descriptor (as flock(1) -o): if
    /// machine-mutex itself is killed with SIGKILL, which it cannot pass on,
    /// the mutex is free at once while COMMAND may still run.
    ///
    /// COMMAND is looked up in PATH before the mutex is taken: a missing one
    /// fails at once (127) instead of after the wait. As with execvp(3) (and
    /// flock(1)), an executable file with no `#!` line that the system
    /// cannot execute is run by /bin/sh; a file whose `#!` interpreter is
    /// missing cannot be executed (126).
    ///
    /// While the wait lasts longer than about a second, stderr says what it
    /// waits for and who holds it: updated in place on a terminal, a single
    /// line otherwise (--quiet turns it off). A signal during the wait ends
    /// it: COMMAND is not run, and the status is 128 + the signal number.
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),

    /// Run COMMAND holding NAME only if NAME is free now; never wait.
    ///
    /// As `run`, but if another process holds NAME, COMMAND is not run and
    /// machine-mutex exits 1 (or -E N) at once, naming the holder on stderr.
    #[command(after_help = TRY_AFTER_HELP)]
    Try(TryArgs),

    /// Acquire NAME and hold it until a signal or the end of standard input.
    ///
    /// Once acquired, prints one line on stdout, `holds NAME as PID N` (a
    /// JSON object with --json), then holds the mutex until it receives
    /// SIGINT, SIGTERM, SIGHUP, SIGQUIT or SIGPIPE, or until its standard
    /// input reaches end of file (Ctrl-D at a terminal, the writer closing a
    /// pipe); then it releases the mutex and exits 0. It holds on if nobody
    /// reads its stdout. Waiting works as for `run`.
    ///
    /// Started in the background by a non-interactive shell, a program's
    /// standard input is /dev/null, which is at its end at once: use
    /// --ignore-stdin there, and end the holder with a signal.
    #[command(
        after_help = HOLD_AFTER_HELP,
        mut_arg("conflict_exit_code", |arg| arg.long_help(HOLD_CONFLICT_EXIT_CODE_HELP))
    )]
    Hold(HoldArgs),

    /// Say whether NAME is free or held, and by which process.
    ///
    /// Prints `NAME: free` or `NAME: held by PID N (COMMAND LINE)`. Takes
    /// nothing and creates nothing.
    ///
    /// On Linux the answer is read from /proc/locks (the lock file's device
    /// and inode) and /proc/PID: status never touches the lock, so it can
    /// never make an acquisition fail or wait. If several processes share
    /// the lock (a holder that forked), the one that took it is named while
    /// it still has it, else the lowest pid still holding it. Another
    /// user's holder is named only as far as /proc shows it. When the lock
    /// file is free but a juju/mutex v1 process has the legacy socket
    /// bound, that process is reported.
    ///
    /// Elsewhere the holder cannot be named: status tries a shared lock
    /// without waiting and drops it at once, and says "held by an unknown
    /// process" if that fails. For that instant a `try` of another process
    /// would find the mutex held.
    #[command(after_help = STATUS_AFTER_HELP)]
    Status(StatusArgs),

    /// List every mutex that has a lock file in the temp directory.
    ///
    /// Looks for $TMPDIR/juju-NAME files (TMPDIR, else /tmp), and prints
    /// each NAME with its state, holder pid and command line, sorted by
    /// name; how the holder is found is described under `status`. Lock
    /// files stay after their holders end, so free entries are normal.
    /// juju/mutex v1 processes that hold only the legacy socket have no
    /// file and are not listed (ask `status NAME`).
    #[command(after_help = LIST_AFTER_HELP)]
    List(ListArgs),
}

/// The mutex and how to take it.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The mutex: an ASCII letter, then letters, digits or '-', at most 40 bytes.
    #[arg(value_parser = parse_name)]
    pub name: String,

    // `hold` runs no COMMAND: its long help is HOLD_CONFLICT_EXIT_CODE_HELP.
    /// Exit status when the mutex is not acquired (held, or timeout); 0-255.
    ///
    /// As flock(1)'s -E: lets a script tell "did not get the lock" from
    /// COMMAND's own status 1.
    #[arg(
        short = 'E',
        long,
        value_name = "N",
        default_value_t = 1,
        help_heading = "Locking"
    )]
    pub conflict_exit_code: u8,

    /// Take only the lock file, not the Linux legacy socket of juju/mutex v1.
    ///
    /// Then processes using juju/mutex v1 are not excluded; v2 and
    /// machine-mutex processes still are. Ignored on other systems.
    #[arg(long, help_heading = "Locking")]
    pub no_legacy: bool,

    /// Wait in line: processes waiting with --fair are served in the order
    /// they came (Linux; ignored elsewhere).
    ///
    /// Without it, whoever asks when the lock is released may take it, and
    /// a process that locks in a loop can starve the others. Use it for
    /// every process of a name: processes without --fair (and Go's
    /// juju/mutex) are still excluded, but do not wait in line, and one
    /// that locks in a loop gets far more turns than the waiters in line.
    /// A process stopped while it waits (Ctrl-Z) holds up those behind it
    /// until it runs again (status then shows the name free). `try` and
    /// `-t 0` never wait, so they never wait in line either. Leaves
    /// $TMPDIR/juju-NAME.queue (4 KiB) beside the lock file; a queue file
    /// made under sudo stays root's, and the user's --fair then skips it
    /// (remove it).
    #[arg(long, help_heading = "Locking")]
    pub fair: bool,
}

/// How long and how to wait.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Give up after DURATION: 250ms, 5s, 1m30s, or plain seconds (2.5).
    ///
    /// Default: wait as long as it takes. 0 means do not wait at all, as
    /// flock(1)'s -w 0.
    #[arg(short = 't', long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true, help_heading = "Waiting")]
    pub timeout: Option<Duration>,

    /// How often to retry the legacy socket while a juju/mutex v1 process has it.
    ///
    /// The lock file itself is never polled: the kernel wakes the waiter.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_delay, allow_hyphen_values = true, help_heading = "Waiting")]
    pub delay: Duration,

    /// Do not print the "waiting for NAME, held by ..." message.
    #[arg(short, long, help_heading = "Waiting")]
    pub quiet: bool,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub lock: LockArgs,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// The command to run and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Arguments of `try`.
#[derive(Debug, Args)]
pub struct TryArgs {
    #[command(flatten)]
    pub lock: LockArgs,

    /// Print nothing when NAME is held: the exit status alone (1, or -E N) says so.
    ///
    /// Other failures (a bad name, COMMAND not found) are still printed.
    #[arg(short, long)]
    pub quiet: bool,

    /// The command to run and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Arguments of `hold`.
#[derive(Debug, Args)]
pub struct HoldArgs {
    #[command(flatten)]
    pub lock: LockArgs,

    #[command(flatten)]
    pub wait: WaitArgs,

    /// Print the "holds" line as a JSON object: {"name", "lock_file", "state", "pid"}.
    #[arg(long)]
    pub json: bool,

    /// Hold until a signal only; do not release at end of standard input.
    #[arg(long)]
    pub ignore_stdin: bool,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The mutex: an ASCII letter, then letters, digits or '-', at most 40 bytes.
    #[arg(value_parser = parse_name)]
    pub name: String,

    /// Print a JSON object: {"name", "lock_file", "state", "holder"}.
    ///
    /// state is "free" or "held"; holder is null or {"pid", "command",
    /// "lock"}, pid and command (an array of arguments) null when unknown,
    /// lock "file" or "legacy-socket".
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array of objects as `status --json` prints.
    #[arg(long)]
    pub json: bool,
}

/// Checks a mutex name with the library's rules, before anything is touched.
fn parse_name(text: &str) -> Result<String, String> {
    machine_mutex::validate_name(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

/// Parses `250ms`, `5s`, `1m30s` (humantime), or a plain number of seconds
/// (`2.5`, `1e3`). Up to u64::MAX seconds is accepted (as a timeout, the
/// library then waits forever); larger is refused as too large, whatever
/// the spelling (a plain number with a fraction is read as an f64, so within
/// a second of that limit it may be refused too). Negative durations, and
/// ones finer than 1 ns other than zero (`0.0000000001`, `0.5ns`), are
/// refused rather than rounded; `-0` is zero.
fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXAMPLES: &str = "examples: 250ms, 5s, 1m30s, 2.5";
    let not_a_duration = || format!("{text:?} is not a duration ({EXAMPLES})");
    let too_large = || format!("{text:?} is too large ({EXAMPLES})");
    if let Some(rest) = text.trim_start().strip_prefix('-') {
        let digits = rest.starts_with(|c: char| c.is_ascii_digit() || c == '.');
        return match parse_duration(rest) {
            Ok(zero) if digits && zero.is_zero() => Ok(Duration::ZERO),
            _ if digits => Err(format!(
                "{text:?}: a duration cannot be negative ({EXAMPLES})"
            )),
            _ => Err(not_a_duration()),
        };
    }
    // Whole seconds exactly: as f64, u64::MAX would round up past the
    // largest Duration.
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        // f64 also reads "inf" and "nan"; a number has digits.
        let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
        if !mantissa.contains(|c: char| c.is_ascii_digit()) {
            return Err(not_a_duration());
        }
        return match Duration::try_from_secs_f64(seconds) {
            // 1e-400 is read as 0.0.
            Ok(zero) if zero.is_zero() && mantissa.contains(|c| ('1'..='9').contains(&c)) => Err(
                format!("{text:?} is shorter than 1ns, the finest step (0 means do not wait)"),
            ),
            Ok(duration) => Ok(duration),
            // Only too large (1e400 is read as infinity) fails here: the sign was taken off.
            Err(_) => Err(too_large()),
        };
    }
    humantime::parse_duration(text).map_err(|e| match e {
        // Without a fraction, only a number too large overflows.
        humantime::DurationError::NumberOverflow if !text.contains('.') => too_large(),
        // humantime says the same for both.
        humantime::DurationError::NumberOverflow => {
            format!("{text:?} is too large, or finer than 1ns ({EXAMPLES})")
        }
        other => format!("{other} ({EXAMPLES})"),
    })
}

/// A duration greater than zero.
fn parse_delay(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        delay if delay.is_zero() => Err("the delay must be greater than zero".to_owned()),
        delay => Ok(delay),
    }
}

/// What a clap error should do: help and version are printed and succeed;
/// a missing subcommand prints the help as a usage error; every other
/// error becomes one line (see [`one_line`]).
pub enum ParseOutcome {
    /// Printed; exit with this status.
    Printed(i32),
    /// A usage error, as one line without the "error: " prefix.
    Usage(String),
}

/// Sorts a clap error into a [`ParseOutcome`], printing help or version.
pub fn parse_outcome(err: clap::Error) -> ParseOutcome {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ParseOutcome::Printed(0)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ParseOutcome::Printed(2)
        }
        _ => {
            let mut line = one_line(&err.render().to_string());
            // `run NAME make all`: clap does not suggest the `--` it needs.
            let takes_command = matches!(err.get(ContextKind::Usage),
                Some(ContextValue::StyledStr(usage)) if usage.to_string().contains("-- <COMMAND>"));
            let stray_word = matches!(err.get(ContextKind::InvalidArg),
                Some(ContextValue::String(arg)) if !arg.starts_with('-'));
            if err.kind() == ErrorKind::UnknownArgument && takes_command && stray_word {
                line.push_str("; give COMMAND after '--', as in: NAME -- COMMAND ARGS...");
            }
            ParseOutcome::Usage(line)
        }
    }
}

/// clap's error text as one line: its lines up to the usage, without
/// blank lines and the "error: " prefix, joined with "; " (so a tip such
/// as "to pass 'x' as a value, use '-- x'" is kept).
fn one_line(text: &str) -> String {
    let parts: Vec<String> = text
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .map(|line| line.strip_prefix("error: ").unwrap_or(line).to_owned())
        .collect();
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(&part);
    }
    line
}

const MAIN_AFTER_HELP: &str = "\
Examples:
  machine-mutex run deploy -- ./deploy.sh --prod     wait for 'deploy', run, release
  machine-mutex run -t 30s apt -- apt-get install x  give up after 30 s (exit 1)
  machine-mutex try nightly -- ./backup.sh           skip the job if one is running
  machine-mutex hold db-migrate --ignore-stdin &     hold it in the background
  machine-mutex status deploy                        who holds 'deploy'?
  machine-mutex list --json                          every lock file, for scripts

Exit status (as flock(1), where it has one):
  0      done: COMMAND exited 0, a hold ended, status found NAME free
  1      not acquired: NAME held (try, -t 0) or timeout (-t); change it with -E N.
         status: NAME is held
  2      usage error: unknown option, invalid NAME or DURATION, missing COMMAND;
         nothing was created or run
  71     machine-mutex itself failed (lock file cannot be opened or locked, ...),
         EX_OSERR of sysexits.h
  126    COMMAND cannot be executed;  127  COMMAND not found
  128+N  a signal N ended the wait (130 for SIGINT, 143 for SIGTERM), or killed COMMAND
  other  COMMAND's own exit status

'machine-mutex COMMAND --help' describes each command with examples.";

const RUN_AFTER_HELP: &str = "\
Examples:
  machine-mutex run deploy -- ./deploy.sh --prod
  machine-mutex run deploy --timeout 1m30s -E 75 -- make release
  machine-mutex run -q cache -- sh -c 'update-cache && prune-cache'
  machine-mutex run -t 10s -E 99 build -- make || echo \"failed: $?\"

Exit status: COMMAND's own, 128+N if signal N killed it; 1 (or -E N) on timeout
or with -t 0 when held; 128+N if signal N ended the wait; 2 usage error;
71 machine-mutex failed; 126 COMMAND cannot be executed; 127 not found.";

const TRY_AFTER_HELP: &str = "\
Examples:
  machine-mutex try nightly -- ./backup.sh || echo 'a backup is already running'
  machine-mutex try -q -E 0 cron-sync -- rsync -a src/ dst/    # held: skip silently, exit 0

Exit status: COMMAND's own, 128+N if signal N killed it; 1 (or -E N) when NAME
is held; 2 usage error; 71 machine-mutex failed; 126 COMMAND cannot be
executed; 127 not found.";

const HOLD_AFTER_HELP: &str = "\
Examples:
  machine-mutex hold maintenance                  # hold until Ctrl-C or Ctrl-D
  machine-mutex hold maintenance --ignore-stdin & pid=$!; ...; kill $pid
  coproc machine-mutex hold --json db; read -r line <&\"${COPROC[0]}\"   # wait for it
  machine-mutex hold -t 5s db < /dev/null         # just check it can be taken

Exit status: 0 after holding and releasing; 1 (or -E N) on timeout or with
-t 0 when held; 128+N if signal N ended the wait; 2 usage error; 71
machine-mutex failed.";

/// The long help of `hold -E`: the shared text speaks of COMMAND.
const HOLD_CONFLICT_EXIT_CODE_HELP: &str = "\
Exit status when the mutex is not acquired (held, or timeout); 0-255.

As flock(1)'s -E: sets the status a script checks for \"did not get the lock\" \
(1 by default; hold's other statuses are 0, 2, 71 and 128+N).";

const STATUS_AFTER_HELP: &str = "\
Examples:
  machine-mutex status deploy                  deploy: held by PID 4242 (make deploy)
  machine-mutex status deploy && echo free
  machine-mutex status --json deploy | jq .holder.pid

Exit status: 0 free; 1 held; 2 usage error; 71 the state could not be read.";

const LIST_AFTER_HELP: &str = "\
Examples:
  machine-mutex list
  machine-mutex list --json | jq -r '.[] | select(.state == \"held\") | .name'
  TMPDIR=/run/locks machine-mutex list

Exit status: 0 listed (also when nothing is held); 2 usage error; 71 the temp
directory could not be read.";

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
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_delay("0s").is_err());
    }

    /// Up to Duration::MAX whole seconds in every spelling; beyond it,
    /// "too large" in every spelling; zero with a minus sign is zero.
    #[test]
    fn durations_at_the_limits() {
        let max = Duration::from_secs(u64::MAX);
        assert_eq!(parse_duration("18446744073709551615"), Ok(max));
        assert_eq!(parse_duration("18446744073709551615s"), Ok(max));
        assert_eq!(
            parse_duration("1e19"),
            Ok(Duration::from_secs(10u64.pow(19)))
        );
        for text in [
            "18446744073709551616",
            "18446744073709551616s",
            "1000000000000000000000",
            "1000000000000000000000s",
            "1e21",
            "1e400",
            "9999999999999999h",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(format!(
                    "{text:?} is too large (examples: 250ms, 5s, 1m30s, 2.5)"
                )),
            );
        }
        for text in ["-0", "-0s", "-0.0", "-0ms", "-.0"] {
            assert_eq!(parse_duration(text), Ok(Duration::ZERO), "{text}");
        }
        for text in ["-1", "-1s", "-1e400", "-0.0000000001"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("cannot be negative"), "{text}: {err}");
        }
        for text in ["--0", "-inf", "inf", "nan", "-x"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("is not a duration"), "{text}: {err}");
        }
        let err = parse_duration("1e-400").unwrap_err();
        assert!(err.contains("shorter than 1ns"), "{err}");
    }

    #[test]
    fn clap_errors_become_one_line() {
        let text = "error: unexpected argument 'echo' found\n\n  tip: to pass 'echo' as a value, \
                    use '-- echo'\n\nUsage: machine-mutex run <NAME> -- <COMMAND>...\n\nFor more \
                    information, try '--help'.\n";
        assert_eq!(
            one_line(text),
            "unexpected argument 'echo' found; tip: to pass 'echo' as a value, use '-- echo'"
        );
        let text = "error: the following required arguments were not provided:\n  \
                    <COMMAND>...\n\nUsage: x\n";
        assert_eq!(
            one_line(text),
            "the following required arguments were not provided: <COMMAND>..."
        );
    }
}
