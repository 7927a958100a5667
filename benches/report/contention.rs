//! Family 3: contention throughput. N processes each acquire and release
//! one name a fixed number of times, starting together (each prints
//! `ready`, then all are sent the start line); the critical section is one
//! clock reading, which each process reports afterwards (`stamps`).
//!
//! - Throughput: the acquisitions made while all N contended (see below)
//!   over that time; the whole run's figure (first to last acquisition,
//!   the staggered start included) is reported too.
//! - Fairness: how many acquisitions each process had while all N
//!   contended (from the last process's first acquisition to the first
//!   process's last one); the spread is the largest count over the smallest
//!   (1 is perfectly even; infinite when a process had none). The processes
//!   start within a few milliseconds of each other, and an early starter
//!   that locks alone meanwhile is not being favoured, so the window leaves
//!   the start out. The spread at the moment the first process finishes
//!   (start included) is reported too.
//!
//! Figures are medians over runs.

use crate::go_peer::GoPeer;
use crate::peers::{bench_field, Peer};
use crate::stats::median;
use crate::Context;

/// One process count's figures.
#[derive(Debug, Clone)]
pub struct Point {
    pub n: usize,
    /// Acquisitions per second (median over runs).
    pub per_second: f64,
    /// Acquisitions per second over the whole run, the start included (median over runs).
    pub whole_per_second: f64,
    /// Microseconds per acquisition, the inverse of the throughput.
    pub us_per_acquisition: f64,
    /// Largest over smallest per-process count while all contended (median over runs).
    pub spread: f64,
    /// The worst spread of the runs.
    pub worst_spread: f64,
    /// Largest over smallest per-process count at the first finish, the
    /// start included (median over runs).
    pub finish_spread: f64,
}

/// One implementation's curve.
#[derive(Debug, Clone)]
pub struct Series {
    pub peer: Peer,
    pub points: Vec<Point>,
}

/// Largest over smallest count; infinite when one is 0.
fn spread_of(counts: &[usize]) -> f64 {
    let most = counts.iter().copied().max().unwrap_or(0) as f64;
    let least = counts.iter().copied().min().unwrap_or(0) as f64;
    if least == 0.0 {
        f64::INFINITY
    } else {
        most / least
    }
}

/// Figures of one run, from each process's stamps.
pub struct RunFigures {
    /// Acquisitions per second while all N contended.
    pub per_second: f64,
    /// Acquisitions per second over the whole run (the start included).
    pub whole_per_second: f64,
    /// Spread while all N contended.
    pub spread: f64,
    /// Spread at the first finish (the start included).
    pub finish_spread: f64,
}

/// The figures of one run from each process's stamps.
pub fn analyse(stamps: &[Vec<i64>]) -> RunFigures {
    let all = stamps.iter().flatten();
    let first = all.clone().copied().min().unwrap_or(0);
    let last = all.clone().copied().max().unwrap_or(0);
    let total = all.count();
    let whole_per_second = total as f64 / ((last - first).max(1) as f64 / 1e9);
    // The first process to finish ends the window; the last to start opens it.
    let cut = stamps
        .iter()
        .filter_map(|s| s.iter().copied().max())
        .min()
        .unwrap_or(0);
    let start = stamps
        .iter()
        .filter_map(|s| s.iter().copied().min())
        .max()
        .unwrap_or(0);
    let at_finish: Vec<usize> = stamps
        .iter()
        .map(|s| s.iter().filter(|&&t| t <= cut).count())
        .collect();
    let together: Vec<usize> = stamps
        .iter()
        .map(|s| s.iter().filter(|&&t| t >= start && t <= cut).count())
        .collect();
    let per_second = if cut > start {
        together.iter().sum::<usize>() as f64 / ((cut - start) as f64 / 1e9)
    } else {
        // No moment where all contended: the whole run is all there is.
        whole_per_second
    };
    RunFigures {
        per_second,
        whole_per_second,
        spread: spread_of(&together),
        finish_spread: spread_of(&at_finish),
    }
}

fn one_run(ctx: &Context, peer: &Peer, n: usize, tag: &str) -> RunFigures {
    let name = ctx.name(tag);
    let per_process = ctx.config.contention_per_process.to_string();
    let mut procs: Vec<GoPeer> = (0..n)
        .map(|_| peer.spawn("contend-stamps", &name, std::slice::from_ref(&per_process)))
        .collect();
    for proc in &mut procs {
        proc.expect_line("ready");
    }
    for proc in &mut procs {
        proc.send_line("go");
    }
    let mut stamps = Vec::with_capacity(n);
    for proc in &mut procs {
        let bench = proc.expect_line("bench");
        let count = bench_field(&bench, "n") as usize;
        let line = proc.expect_line("stamps");
        let these: Vec<i64> = line
            .split_whitespace()
            .map(|t| t.parse().expect("a stamp"))
            .collect();
        assert_eq!(these.len(), count, "{}: stamps", peer.label());
        stamps.push(these);
    }
    for proc in procs {
        let (status, lines) = proc.finish();
        assert!(
            status.success(),
            "{} ended with {status}: {lines:?}",
            peer.label()
        );
    }
    analyse(&stamps)
}

/// Measures this crate (default, legacy socket off, with a timeout), the
/// raw flock floor and Go (the polling lock is not in this family).
pub fn run(ctx: &Context) -> Vec<Series> {
    let peers: Vec<Peer> = ctx
        .process_peers()
        .into_iter()
        .filter(|p| !matches!(p, Peer::Python(_) | Peer::FlockSocket))
        .collect();
    let ns = &ctx.config.contention_ns;
    // Runs are interleaved (run 1 of every peer and N, then run 2, ...), so
    // that a change in the machine's load weighs on every figure alike.
    // Per peer and N: each run's rate, whole-run rate, spread, spread at
    // the first finish.
    let mut results =
        vec![vec![(Vec::new(), Vec::new(), Vec::new(), Vec::new()); ns.len()]; peers.len()];
    for r in 0..ctx.config.contention_runs {
        for (p, peer) in peers.iter().enumerate() {
            for (i, &n) in ns.iter().enumerate() {
                let run = one_run(ctx, peer, n, &format!("contend-{p}-{n}-{r}"));
                let (rates, whole_rates, spreads, finish_spreads) = &mut results[p][i];
                rates.push(run.per_second);
                whole_rates.push(run.whole_per_second);
                spreads.push(run.spread);
                finish_spreads.push(run.finish_spread);
            }
        }
    }
    let mut series = Vec::new();
    for (peer, per_n) in peers.into_iter().zip(results) {
        let mut points = Vec::new();
        for (&n, (rates, whole_rates, spreads, finish_spreads)) in ns.iter().zip(per_n) {
            let per_second = median(&rates);
            let point = Point {
                n,
                per_second,
                us_per_acquisition: 1e6 / per_second,
                whole_per_second: median(&whole_rates),
                spread: median(&spreads),
                worst_spread: spreads.iter().copied().fold(1.0, f64::max),
                finish_spread: median(&finish_spreads),
            };
            eprintln!(
                "report:   {:<45} N={n:<2} {:>9.0} acquisitions/s (whole run {:.0}), spread {:.2} (worst {:.2}; at the first finish {:.2})",
                peer.label(),
                point.per_second,
                point.whole_per_second,
                point.spread,
                point.worst_spread,
                point.finish_spread
            );
            points.push(point);
        }
        series.push(Series { peer, points });
    }
    series
}
