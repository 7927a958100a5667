//! Family 2: cross-process hand-off latency. Two processes of one
//! implementation pass one lock back and forth, each waiting for the
//! other's release.
//!
//! One round: the waiter is told `acquire` and answers `waiting`; the
//! harness waits until the waiter is really asleep (a kernel-blocking lock:
//! until /proc/locks shows it blocked in flock on the lock file, then 1 ms
//! more; the polling lock: a random pause of 1 to 101 ms, so that the
//! release falls at a random point of its polling period); then the holder
//! is told `release`. The one-way latency is the waiter's clock reading
//! right after its acquire returned minus the holder's reading right before
//! it released (CLOCK_REALTIME, one clock for the machine). Then the roles
//! swap. The first round of each run is not counted.

use std::time::Duration;

use crate::peers::{last_field, pid_field, Peer};
use crate::procfs;
use crate::stats::{median, quantile};
use crate::Context;

/// One implementation's hand-off figures.
#[derive(Debug, Clone)]
pub struct Row {
    pub peer: Peer,
    /// Median over runs of each run's median one-way latency, ns.
    pub median_ns: f64,
    /// The lowest and highest of the runs' medians, ns: how far the
    /// median moves from run to run.
    pub run_min_ns: f64,
    pub run_max_ns: f64,
    /// 10th and 90th percentiles of all samples, ns.
    pub p10_ns: f64,
    pub p90_ns: f64,
    pub samples: usize,
    pub runs: usize,
    /// Rounds where the waiter was not seen blocked within the limit (its
    /// sample still counts).
    pub not_seen_blocked: usize,
    /// The raw floor with the socket only (`flock-socket`), medians of all
    /// rounds, ns: the holder's close of its socket (before its flock's),
    /// and the waiter's socket + bind once it has the flock. Both are part
    /// of the one-way latency.
    pub socket_close_ns: Option<f64>,
    pub socket_bind_ns: Option<f64>,
}

/// What one run gives (or all runs of a peer, merged): the one-way
/// latencies, rounds not seen blocked, and the `close_ns=` and `socket_ns=`
/// fields (`flock-socket` only), ns.
#[derive(Clone, Default)]
struct RunSamples {
    latencies: Vec<f64>,
    not_seen: usize,
    closes: Vec<f64>,
    binds: Vec<f64>,
}

/// The `key=NS` field of a protocol line, if it has one.
fn ns_field(rest: &str, key: &str) -> Option<f64> {
    rest.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

const BLOCK_LIMIT: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_millis(1);

/// The fair queue's side file of the lock file `lock`.
fn side_path(lock: &std::path::Path) -> std::path::PathBuf {
    let mut side = lock.as_os_str().to_owned();
    side.push(".queue");
    side.into()
}

fn one_run(ctx: &Context, peer: &Peer, rounds: usize, tag: &str) -> RunSamples {
    let name = ctx.name(tag);
    let mut procs = [
        peer.spawn("handoff", &name, &[]),
        peer.spawn("handoff", &name, &[]),
    ];
    procs[0].send_line("acquire");
    procs[0].expect_line("waiting");
    procs[0].expect_line("acquired");
    let inode = if peer.blocks_in_kernel() {
        procfs::inode(&peer.lock_path(&name))
    } else {
        0
    };
    let mut samples = Vec::with_capacity(rounds);
    let (mut closes, mut binds) = (Vec::new(), Vec::new());
    let mut not_seen = 0;
    let mut holder = 0;
    for round in 0..=rounds {
        let waiter = 1 - holder;
        procs[waiter].send_line("acquire");
        let pid = pid_field(&procs[waiter].expect_line("waiting"));
        if peer.blocks_in_kernel() {
            let seen = if peer.is_fair() {
                // Asleep in flock, or on the turn before its own in the
                // queue's side file (one waiter: it can only be this one).
                let side = side_path(&peer.lock_path(&name));
                let end = std::time::Instant::now() + BLOCK_LIMIT;
                loop {
                    let blocked = procfs::blocked_on(inode).contains(&pid)
                        || (side.exists() && procfs::ofd_blocked_on(procfs::inode(&side)));
                    if blocked || std::time::Instant::now() >= end {
                        break blocked;
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            } else {
                procfs::wait_blocked(&[pid], inode, BLOCK_LIMIT)
            };
            if !seen {
                not_seen += 1;
            }
            std::thread::sleep(SETTLE);
        } else {
            std::thread::sleep(Duration::from_micros(fastrand::u64(1_000..101_000)));
        }
        procs[holder].send_line("release");
        let released = procs[holder].expect_line("released");
        let acquired = procs[waiter].expect_line("acquired");
        if round > 0 {
            samples.push((last_field(&acquired) - last_field(&released)) as f64);
            closes.extend(ns_field(&released, "close_ns"));
            binds.extend(ns_field(&acquired, "socket_ns"));
        }
        holder = waiter;
    }
    procs[holder].send_line("release");
    procs[holder].expect_line("released");
    for proc in procs {
        let (status, lines) = proc.finish();
        assert!(
            status.success(),
            "{} ended with {status}: {lines:?}",
            peer.label()
        );
    }
    RunSamples {
        latencies: samples,
        not_seen,
        closes,
        binds,
    }
}

/// Measures every cross-process peer. Runs are interleaved (run 1 of
/// every peer, then run 2, ...), so that a change in the machine's load
/// during the run weighs on every peer alike, not on the last ones.
pub fn run(ctx: &Context) -> Vec<Row> {
    let config = &ctx.config;
    let peers = ctx.process_peers();
    let runs_of = |peer: &Peer| match peer {
        Peer::Python(_) => (config.handoff_python_runs, config.handoff_python_rounds),
        _ => (config.handoff_runs, config.handoff_rounds),
    };
    let most_runs = peers.iter().map(|peer| runs_of(peer).0).max().unwrap_or(0);
    // Per peer: all its runs' samples merged, and each run's median.
    let mut results = vec![(RunSamples::default(), Vec::new()); peers.len()];
    for r in 0..most_runs {
        for (p, peer) in peers.iter().enumerate() {
            let (runs, rounds) = runs_of(peer);
            if r >= runs {
                continue;
            }
            let run = one_run(ctx, peer, rounds, &format!("handoff-{p}-{r}"));
            let (all, medians) = &mut results[p];
            medians.push(median(&run.latencies));
            all.latencies.extend(run.latencies);
            all.not_seen += run.not_seen;
            all.closes.extend(run.closes);
            all.binds.extend(run.binds);
        }
    }
    let mut rows = Vec::new();
    let median_of = |values: &[f64]| (!values.is_empty()).then(|| median(values));
    for (peer, (all, medians)) in peers.into_iter().zip(results) {
        let row = Row {
            median_ns: median(&medians),
            run_min_ns: medians.iter().copied().fold(f64::INFINITY, f64::min),
            run_max_ns: medians.iter().copied().fold(0.0, f64::max),
            p10_ns: quantile(&all.latencies, 0.1),
            p90_ns: quantile(&all.latencies, 0.9),
            samples: all.latencies.len(),
            runs: medians.len(),
            not_seen_blocked: all.not_seen,
            socket_close_ns: median_of(&all.closes),
            socket_bind_ns: median_of(&all.binds),
            peer,
        };
        eprintln!(
            "report:   {:<45} one-way median {:>10.1} us (p10 {:.1}, p90 {:.1})",
            row.peer.label(),
            row.median_ns / 1e3,
            row.p10_ns / 1e3,
            row.p90_ns / 1e3
        );
        rows.push(row);
    }
    rows
}
