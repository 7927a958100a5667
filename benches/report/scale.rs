//! Family 4: scale in names. One process acquires and holds 1, 100, 1,000
//! and 10,000 distinct names at once (this crate, legacy socket on and
//! off), then releases them all.
//!
//! Each (setting, N) runs in a fresh process (this binary as
//! `report --role-scale LEGACY N RUNS PREFIX`), so that descriptors the
//! crate keeps open after earlier releases (up to 16 per process,
//! `src/sys/unix/kept.rs`) are not counted as a baseline: the descriptors
//! it has open while holding the N names, less those it had before its
//! first acquisition, over N, give the descriptors per held lock; those
//! still open after the release are the kept ones.
//!
//! The lock files exist already (one untimed pass creates them): the
//! figures are for names used before, the common case. Medians over runs.

use std::time::Instant;

use machine_mutex::{Releaser, Spec};

use crate::procfs;
use crate::stats::median;
use crate::Context;

/// One (legacy setting, number of names) figure.
#[derive(Debug, Clone)]
pub struct Row {
    pub legacy: bool,
    pub names: usize,
    /// Time to acquire all the names, ms (median over runs).
    pub acquire_ms: f64,
    /// Time to release them all, ms.
    pub release_ms: f64,
    /// Open descriptors per held lock.
    pub fds_per_lock: f64,
    /// Descriptors still open after all are released (kept for the next
    /// acquisition of a name), median over runs.
    pub kept_after: f64,
    /// Why the row could not be measured (descriptor limit).
    pub error: Option<String>,
}

fn acquire_all(specs: &[Spec]) -> Result<Vec<Releaser>, String> {
    specs
        .iter()
        .map(|s| s.acquire().map_err(|e| e.to_string()))
        .collect()
}

/// Measures the crate with the legacy socket on, then off.
pub fn run(ctx: &Context) -> Vec<Row> {
    let mut rows = Vec::new();
    for legacy in [true, false] {
        for &names in &ctx.config.scale_names {
            let tag = if legacy { "s" } else { "sn" };
            let mut row = Row {
                legacy,
                names,
                acquire_ms: f64::NAN,
                release_ms: f64::NAN,
                fds_per_lock: f64::NAN,
                kept_after: f64::NAN,
                error: None,
            };
            // One descriptor per lock, two with the legacy socket, and a
            // margin for the child's standard streams and its /proc read.
            let needed = names as u64 * if legacy { 2 } else { 1 } + 16;
            if needed > ctx.nofile {
                row.error = Some(format!(
                    "skipped: needs about {needed} descriptors, the limit is {} and could not be raised",
                    ctx.nofile
                ));
                eprintln!(
                    "report:   {names} names, legacy socket {legacy}: {:?}",
                    row.error
                );
                rows.push(row);
                continue;
            }
            let prefix = ctx.name(&format!("{tag}-{names}"));
            match measure_in_child(legacy, names, ctx.config.scale_runs, &prefix) {
                Ok(figures) => {
                    row.acquire_ms = figures[0];
                    row.release_ms = figures[1];
                    row.fds_per_lock = figures[2];
                    row.kept_after = figures[3];
                }
                Err(e) => {
                    row.error = Some(format!("failed: {e}"));
                    eprintln!("report:   {names} names, legacy socket {legacy}: {e}");
                    rows.push(row);
                    continue;
                }
            }
            eprintln!(
                "report:   legacy socket {:<3} {names:>6} names: acquire {:>9.3} ms ({:.2} us/name), \
                 release {:.3} ms, {:.2} descriptors/lock, {} kept after",
                if legacy { "on" } else { "off" },
                row.acquire_ms,
                row.acquire_ms * 1e3 / names as f64,
                row.release_ms,
                row.fds_per_lock,
                row.kept_after
            );
            rows.push(row);
        }
    }
    rows
}

/// Runs one (setting, N) in a fresh process; returns the medians of its
/// runs: acquire ms, release ms, descriptors per lock, kept after release.
fn measure_in_child(
    legacy: bool,
    names: usize,
    runs: usize,
    prefix: &str,
) -> Result<[f64; 4], String> {
    let exe = std::env::current_exe().map_err(|e| format!("the report binary: {e}"))?;
    let out = std::process::Command::new(exe)
        .args(["--role-scale", if legacy { "1" } else { "0" }])
        .arg(names.to_string())
        .arg(runs.to_string())
        .arg(prefix)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("start the scale process: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(error) = text.lines().find_map(|l| l.strip_prefix("error ")) {
        return Err(error.to_owned());
    }
    if !out.status.success() {
        return Err(format!("the scale process ended with {}", out.status));
    }
    let mut columns = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for line in text.lines().filter_map(|l| l.strip_prefix("run ")) {
        let values: Vec<f64> = line
            .split_whitespace()
            .filter_map(|field| field.split_once('=')?.1.parse().ok())
            .collect();
        if values.len() != columns.len() {
            return Err(format!("bad line from the scale process: {line:?}"));
        }
        for (column, value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
    }
    if columns[0].is_empty() {
        return Err(format!("no figures from the scale process: {text:?}"));
    }
    Ok(columns.map(|column| median(&column)))
}

/// The child's side (`--role-scale LEGACY N RUNS PREFIX`): one untimed pass
/// creates the lock files, then each run acquires the N names, counts the
/// descriptors, releases; one `run ...` line per run, or `error ...`.
pub fn role(args: &[String]) {
    let fail = |message: String| -> ! {
        println!("error {message}");
        std::process::exit(1);
    };
    let (legacy, names, runs, prefix) = match args {
        [l, n, r, p] => (
            l == "1",
            n.parse::<usize>()
                .unwrap_or_else(|_| fail(format!("bad N {n:?}"))),
            r.parse::<usize>()
                .unwrap_or_else(|_| fail(format!("bad RUNS {r:?}"))),
            p,
        ),
        _ => fail(format!(
            "usage: --role-scale LEGACY N RUNS PREFIX, not {args:?}"
        )),
    };
    // Before any acquisition: nothing kept yet.
    let baseline = procfs::open_fds();
    let specs: Vec<Spec> = (0..names)
        .map(|i| Spec::new(format!("{prefix}-{i}")).with_legacy_socket(legacy))
        .collect();
    // Creates the lock files.
    drop(acquire_all(&specs).unwrap_or_else(|e| fail(e)));
    for _ in 0..runs {
        let start = Instant::now();
        let guards = acquire_all(&specs).unwrap_or_else(|e| fail(e));
        let acquire_ms = start.elapsed().as_secs_f64() * 1e3;
        let held = procfs::open_fds().saturating_sub(baseline);
        let start = Instant::now();
        drop(guards);
        let release_ms = start.elapsed().as_secs_f64() * 1e3;
        let kept = procfs::open_fds().saturating_sub(baseline);
        println!(
            "run acquire_ms={acquire_ms} release_ms={release_ms} fds_per_lock={} kept_after={kept}",
            held as f64 / names as f64
        );
    }
}
