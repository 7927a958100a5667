//! Family 4: scale in names. One process acquires and holds 1, 100, 1,000
//! and 10,000 distinct names at once (this crate, legacy socket on and
//! off), then releases them all; the descriptors it has open while holding
//! them, less those before, give the descriptors per held lock.
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
            let specs: Vec<Spec> = (0..names)
                .map(|i| {
                    Spec::new(ctx.name(&format!("{tag}-{names}-{i}"))).with_legacy_socket(legacy)
                })
                .collect();
            let mut row = Row {
                legacy,
                names,
                acquire_ms: f64::NAN,
                release_ms: f64::NAN,
                fds_per_lock: f64::NAN,
                error: None,
            };
            // One descriptor per lock, two with the legacy socket, and a margin.
            let needed = names as u64 * if legacy { 2 } else { 1 } + procfs::open_fds() as u64 + 16;
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
            // Creates the lock files.
            if let Err(e) = acquire_all(&specs) {
                row.error = Some(format!("failed: {e}"));
                rows.push(row);
                continue;
            }
            let mut acquire = Vec::new();
            let mut release = Vec::new();
            let mut fds = Vec::new();
            for _ in 0..ctx.config.scale_runs {
                let before = procfs::open_fds();
                let start = Instant::now();
                let guards = match acquire_all(&specs) {
                    Ok(guards) => guards,
                    Err(e) => {
                        row.error = Some(format!("failed: {e}"));
                        break;
                    }
                };
                acquire.push(start.elapsed().as_secs_f64() * 1e3);
                fds.push((procfs::open_fds() - before) as f64 / names as f64);
                let start = Instant::now();
                drop(guards);
                release.push(start.elapsed().as_secs_f64() * 1e3);
            }
            row.acquire_ms = median(&acquire);
            row.release_ms = median(&release);
            row.fds_per_lock = median(&fds);
            eprintln!(
                "report:   legacy socket {:<3} {names:>6} names: acquire {:>9.3} ms ({:.2} us/name), \
                 release {:.3} ms, {:.2} descriptors/lock",
                if legacy { "on" } else { "off" },
                row.acquire_ms,
                row.acquire_ms * 1e3 / names as f64,
                row.release_ms,
                row.fds_per_lock
            );
            rows.push(row);
        }
    }
    rows
}
