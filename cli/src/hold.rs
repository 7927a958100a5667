//! `hold`: acquire, say so on stdout, hold until a signal or the end of
//! standard input, release.

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;

use machine_mutex::{lock_file_path, CancelToken};
use serde::Serialize;

use crate::acquire::acquire;
use crate::cli::HoldArgs;
use crate::errors::CliError;
use crate::exit_codes::ExitStatus;
use crate::signals::SignalRouter;

/// The `--json` form of the "holds" line.
#[derive(Serialize)]
struct Holds<'a> {
    name: &'a str,
    lock_file: String,
    state: &'static str,
    pid: u32,
}

/// Runs `hold`.
pub fn hold(args: &HoldArgs) -> Result<ExitStatus, CliError> {
    let token = CancelToken::new();
    let router = SignalRouter::install(token.clone()).map_err(|source| CliError::System {
        action: "cannot install signal handlers",
        source,
    })?;
    let mut guard = acquire(&args.lock, Some(&args.wait), &token, &router)?;
    let name = args.lock.name.as_str();
    let line = if args.json {
        let holds = Holds {
            name,
            lock_file: lock_file_path(name).display().to_string(),
            state: "held",
            pid: std::process::id(),
        };
        serde_json::to_string(&holds).unwrap_or_default()
    } else {
        format!("holds {name} as PID {}", std::process::id())
    };
    // The reader may be gone; holding goes on regardless.
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    drop(stdout);

    let (tx, rx) = mpsc::channel();
    if !router.notify(tx.clone()) {
        if !args.ignore_stdin {
            // Ends with the process if stdin never closes.
            let _ = thread::Builder::new()
                .name("machine-mutex-stdin".to_owned())
                .spawn(move || {
                    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
                    let _ = tx.send(());
                });
        } else {
            drop(tx);
        }
        let _ = rx.recv();
    }
    guard.release().map_err(|source| CliError::Lock {
        name: name.to_owned(),
        source,
    })?;
    Ok(ExitStatus::Success)
}
