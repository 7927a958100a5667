//! `status` and `list`: who holds which mutex, as text or JSON.

use std::io::{self, Write};
use std::path::Path;

use machine_mutex::{lock_file_path, validate_name, HeldLock, Holder};
use serde::Serialize;

use crate::cli::{ListArgs, StatusArgs};
use crate::errors::CliError;
use crate::exit_codes::ExitStatus;

/// One mutex, as `status --json` prints it (and `list --json`, in an array).
#[derive(Debug, Serialize)]
struct LockReport {
    name: String,
    lock_file: String,
    /// "free" or "held".
    state: &'static str,
    holder: Option<HolderReport>,
}

/// The holder part: pid and command null when unknown.
#[derive(Debug, Serialize)]
struct HolderReport {
    pid: Option<u32>,
    command: Option<Vec<String>>,
    /// The command as one quoted, escaped line, for the table.
    #[serde(skip)]
    command_text: Option<String>,
    /// "file" or "legacy-socket".
    lock: &'static str,
}

impl LockReport {
    fn new(name: &str, holder: Option<&Holder>) -> LockReport {
        LockReport {
            name: name.to_owned(),
            lock_file: lock_file_path(name).display().to_string(),
            state: if holder.is_some() { "held" } else { "free" },
            holder: holder.map(HolderReport::of),
        }
    }

    /// The command line for the table: quoted, control characters escaped.
    fn command_text(&self) -> String {
        self.holder
            .as_ref()
            .and_then(|h| h.command_text.clone())
            .unwrap_or_default()
    }

    fn pid_text(&self) -> String {
        match &self.holder {
            Some(HolderReport { pid: Some(pid), .. }) => pid.to_string(),
            Some(_) => "?".to_owned(),
            None => "-".to_owned(),
        }
    }
}

impl HolderReport {
    fn of(holder: &Holder) -> HolderReport {
        HolderReport {
            pid: holder.pid(),
            command: holder.command_line().map(|args| {
                args.iter()
                    .map(|arg| arg.to_string_lossy().into_owned())
                    .collect()
            }),
            command_text: holder.command_text(),
            lock: match holder.lock() {
                HeldLock::LegacySocket => "legacy-socket",
                _ => "file",
            },
        }
    }
}

/// Runs `status`: 0 when free, 1 when held.
pub fn status(args: &StatusArgs) -> Result<ExitStatus, CliError> {
    let holder = query(&args.name)?;
    let text = if args.json {
        serde_json::to_string(&LockReport::new(&args.name, holder.as_ref())).unwrap_or_default()
    } else {
        match &holder {
            Some(holder) => format!("{}: held by {holder}", args.name),
            None => format!("{}: free", args.name),
        }
    };
    let _ = writeln!(io::stdout(), "{text}");
    Ok(if holder.is_some() {
        ExitStatus::Held
    } else {
        ExitStatus::Success
    })
}

/// Who holds `name`.
fn query(name: &str) -> Result<Option<Holder>, CliError> {
    machine_mutex::holder(name).map_err(|source| CliError::Lock {
        name: name.to_owned(),
        source,
    })
}

/// Runs `list`.
pub fn list(args: &ListArgs) -> Result<ExitStatus, CliError> {
    // TMPDIR, else /tmp, as the lock files (not std::env::temp_dir(), which
    // takes an empty TMPDIR as it is).
    let dir = machine_mutex::lock_dir();
    let mut reports = Vec::new();
    for name in lock_names(&dir)? {
        reports.push(LockReport::new(&name, query(&name)?.as_ref()));
    }
    let mut out = io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&reports).unwrap_or_default()
        );
    } else if !reports.is_empty() {
        let name_width = reports
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let pid_width = reports
            .iter()
            .map(|r| r.pid_text().len())
            .max()
            .unwrap_or(0)
            .max(3);
        let _ = writeln!(
            out,
            "{:name_width$}  STATE  {:>pid_width$}  COMMAND",
            "NAME", "PID"
        );
        for r in &reports {
            let line = format!(
                "{:name_width$}  {:5}  {:>pid_width$}  {}",
                r.name,
                r.state,
                r.pid_text(),
                r.command_text()
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    Ok(ExitStatus::Success)
}

/// The names of the `juju-NAME` files in `dir` whose NAME is valid, sorted.
fn lock_names(dir: &Path) -> Result<Vec<String>, CliError> {
    let failed = |source| CliError::List {
        dir: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let file_name = entry.file_name();
        let name = match file_name.to_str().and_then(|f| f.strip_prefix("juju-")) {
            Some(name) if validate_name(name).is_ok() => name.to_owned(),
            _ => continue,
        };
        // Lock files are regular files; skip the rest (symlinks too: the
        // library refuses to lock through one).
        if std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
