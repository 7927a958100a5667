//! Family 3: contention throughput. N processes each acquire and release
//! one name a fixed number of times, starting together (each prints
//! `ready`, then all are sent the start line); the critical section is one
//! clock reading, which each process reports afterwards (`stamps`).
//!
//! - Throughput: all acquisitions over the time from the first to the last
//!   acquisition of the run.
//! - Fairness: at the moment the first process finishes, how many
//!   acquisitions each process has had; the spread is the largest count
//!   over the smallest (1 is perfectly even; infinite when a process had
//!   none).
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
    /// Microseconds per acquisition, the inverse of the throughput.
    pub us_per_acquisition: f64,
    /// Largest over smallest per-process count at the first finish (median over runs).
    pub spread: f64,
    /// The worst spread of the runs.
    pub worst_spread: f64,
}

/// One implementation's curve.
#[derive(Debug, Clone)]
pub struct Series {
    pub peer: Peer,
    pub points: Vec<Point>,
}

/// (acquisitions per second, spread) of one run from each process's stamps.
pub fn analyse(stamps: &[Vec<i64>]) -> (f64, f64) {
    let all = stamps.iter().flatten();
    let first = all.clone().copied().min().unwrap_or(0);
    let last = all.clone().copied().max().unwrap_or(0);
    let total = all.count();
    let window = (last - first).max(1) as f64 / 1e9;
    let per_second = total as f64 / window;
    let cut = stamps
        .iter()
        .filter_map(|s| s.iter().copied().max())
        .min()
        .unwrap_or(0);
    let counts: Vec<usize> = stamps
        .iter()
        .map(|s| s.iter().filter(|&&t| t <= cut).count())
        .collect();
    let most = counts.iter().copied().max().unwrap_or(0) as f64;
    let least = counts.iter().copied().min().unwrap_or(0) as f64;
    let spread = if least == 0.0 {
        f64::INFINITY
    } else {
        most / least
    };
    (per_second, spread)
}

fn one_run(ctx: &Context, peer: &Peer, n: usize, tag: &str) -> (f64, f64) {
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
    let peers = ctx
        .process_peers()
        .into_iter()
        .filter(|p| !matches!(p, Peer::Python(_) | Peer::FlockSocket));
    let mut series = Vec::new();
    for (p, peer) in peers.enumerate() {
        let mut points = Vec::new();
        for &n in &ctx.config.contention_ns {
            let mut rates = Vec::new();
            let mut spreads = Vec::new();
            for r in 0..ctx.config.contention_runs {
                let (rate, spread) = one_run(ctx, &peer, n, &format!("contend-{p}-{n}-{r}"));
                rates.push(rate);
                spreads.push(spread);
            }
            let per_second = median(&rates);
            let point = Point {
                n,
                per_second,
                us_per_acquisition: 1e6 / per_second,
                spread: median(&spreads),
                worst_spread: spreads.iter().copied().fold(1.0, f64::max),
            };
            eprintln!(
                "report:   {:<45} N={n:<2} {:>9.0} acquisitions/s, spread {:.2} (worst {:.2})",
                peer.label(),
                point.per_second,
                point.spread,
                point.worst_spread
            );
            points.push(point);
        }
        series.push(Series { peer, points });
    }
    series
}
