//! BENCHMARKS.md: the machine, the commands, the targets with their
//! verdicts, one table per family, and the plots.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::peers::{self, Peer};
use crate::plot::Plot;
use crate::uncontended::{self as unc, Kind};
use crate::{contention, handoff, procfs, scale, waiting, Context};

/// Where the plots go, relative to BENCHMARKS.md.
pub const PLOTS_DIR: &str = "docs/benchmarks";

/// The reference figures quoted by the issue that asked for this report
/// (one run on a 2-core machine of the same kind), for context only:
/// verdicts compare ratios within this run.
const REFERENCE: &[(&str, &str)] = &[
    (unc::FLOOR_OPEN, "2.3 us"),
    (unc::FLOOR_KEPT, "0.6 us"),
    (unc::FLOOR_SOCKET, "4.6 us"),
    (unc::GO, "5.2 us"),
];

/// Everything measured, and the facts of the run.
pub struct Report {
    pub smoke: bool,
    pub machine: String,
    pub date: String,
    pub commit: String,
    pub rustc: String,
    pub go_version: Option<String>,
    pub python_version: Option<String>,
    pub load_before: String,
    pub load_after: String,
    pub nofile: u64,
    pub config: crate::Config,
    pub skipped: Vec<String>,
    pub elapsed: Duration,
    pub uncontended: Option<Vec<unc::Row>>,
    pub handoff: Option<Vec<handoff::Row>>,
    pub contention: Option<Vec<contention::Series>>,
    pub scale: Option<Vec<scale::Row>>,
    pub waiting: Option<Vec<waiting::Row>>,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn us(ns: f64) -> String {
    if !ns.is_finite() {
        return "n/a".to_owned();
    }
    let us = ns / 1e3;
    if us >= 1000.0 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 100.0 {
        format!("{us:.0} us")
    } else if us >= 10.0 {
        format!("{us:.1} us")
    } else {
        format!("{us:.2} us")
    }
}

fn ratio(x: f64) -> String {
    if x.is_infinite() {
        "inf".to_owned()
    } else if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "n/a".to_owned()
    }
}

/// One stated target and what this run measured against it.
pub struct Target {
    pub target: String,
    pub measured: String,
    /// `None` when it could not be evaluated (a peer or family missing).
    pub met: Option<bool>,
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

impl Report {
    pub fn new(ctx: &Context) -> Report {
        let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let mut commit = command_line("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
        if command_line("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty())
        {
            commit.push_str(" (with uncommitted changes)");
        }
        Report {
            smoke: ctx.config.smoke,
            machine: procfs::machine(),
            date,
            commit,
            rustc: command_line("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".to_owned()),
            go_version: ctx.go_version.clone(),
            python_version: ctx.python_version.clone(),
            load_before: procfs::loadavg(),
            load_after: String::new(),
            nofile: ctx.nofile,
            config: ctx.config.clone(),
            skipped: ctx.skipped.clone(),
            elapsed: Duration::ZERO,
            uncontended: None,
            handoff: None,
            contention: None,
            scale: None,
            waiting: None,
        }
    }

    pub fn finish(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        self.load_after = procfs::loadavg();
    }

    fn unc(&self, key: &str) -> f64 {
        self.uncontended
            .iter()
            .flatten()
            .find(|r| r.key == key)
            .map_or(f64::NAN, |r| r.ns)
    }

    fn handoff_of(&self, pick: impl Fn(&Peer) -> bool) -> f64 {
        self.handoff
            .iter()
            .flatten()
            .find(|r| pick(&r.peer))
            .map_or(f64::NAN, |r| r.median_ns)
    }

    /// The issue's targets, evaluated on this run's figures.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let known = |x: f64| x.is_finite();
        let check = |x: f64, ok: bool| known(x).then_some(ok);

        let floor = self.unc(unc::FLOOR_OPEN);
        let kept = self.unc(unc::FLOOR_KEPT);
        let socket = self.unc(unc::FLOOR_SOCKET);
        let off = self.unc(unc::MM_NOLEGACY);
        let on = self.unc(unc::MM_LEGACY);
        let go = self.unc(unc::GO);
        let r = off / floor;
        targets.push(Target {
            target: "Uncontended, legacy socket off: within 1.2x of open + flock + close".into(),
            measured: format!("{} vs {}: {}", us(off), us(floor), ratio(r)),
            met: check(r, r <= 1.2),
        });
        let r = go / off;
        targets.push(Target {
            target:
                "... which makes it about 2x faster than the Go package (checked: Go / ours >= 1.8)"
                    .into(),
            measured: format!("Go {} vs {}: Go takes {}", us(go), us(off), ratio(r)),
            met: check(r, r >= 1.8),
        });
        let r = on / (floor + socket);
        targets.push(Target {
            target:
                "Uncontended, legacy socket on: within 1.2x of that floor plus the socket floor"
                    .into(),
            measured: format!("{} vs {} + {}: {}", us(on), us(floor), us(socket), ratio(r)),
            met: check(r, r <= 1.2),
        });
        let r = off / kept;
        let recheck = self.unc(unc::FLOOR_KEPT_RECHECK);
        targets.push(Target {
            target: "Stretch: approach the kept-descriptor floor (checked: within 1.2x)".into(),
            measured: format!(
                "{} vs {}: {} (vs the kept floor with the path re-check, {}: {})",
                us(off),
                us(kept),
                ratio(r),
                us(recheck),
                ratio(off / recheck)
            ),
            met: check(r, r <= 1.2),
        });

        let raw = self.handoff_of(|p| matches!(p, Peer::Flock));
        let go = self.handoff_of(|p| matches!(p, Peer::Go(_)));
        let py = self.handoff_of(|p| matches!(p, Peer::Python(_)));
        for variant in [
            peers::MM,
            peers::MM_NOLEGACY,
            peers::MM_TIMEOUT,
            peers::MM_FAIR,
        ] {
            let ours = self.handoff_of(|p| p.same(&variant));
            let which = variant.short();
            let r = ours / raw;
            targets.push(Target {
                target: format!("Hand-off ({which}): within 2x of a raw flock hand-off"),
                measured: format!("{} vs {}: {}", us(ours), us(raw), ratio(r)),
                met: check(r, r <= 2.0),
            });
            let r = go / ours;
            // Medians move between runs: say so when the two ranges overlap.
            let range = |pick: &dyn Fn(&Peer) -> bool| {
                self.handoff
                    .iter()
                    .flatten()
                    .find(|row| pick(&row.peer))
                    .map(|row| (row.run_min_ns, row.run_max_ns))
            };
            let overlap = match (
                range(&|p| p.same(&variant)),
                range(&|p| matches!(p, Peer::Go(_))),
            ) {
                (Some((a_min, a_max)), Some((b_min, b_max)))
                    if a_min <= b_max && b_min <= a_max =>
                {
                    format!(
                        "; a near tie: the runs' medians overlap ({} to {}, Go {} to {})",
                        us(a_min),
                        us(a_max),
                        us(b_min),
                        us(b_max)
                    )
                }
                _ => String::new(),
            };
            targets.push(Target {
                target: format!("Hand-off ({which}): faster than the Go package's"),
                measured: format!(
                    "{} vs Go {}: Go takes {}{overlap}",
                    us(ours),
                    us(go),
                    ratio(r)
                ),
                met: check(r, r > 1.0),
            });
            let r = py / ours;
            targets.push(Target {
                target: format!("Hand-off ({which}): at least 100x faster than a polling lock"),
                measured: format!("{} vs Python filelock {}: {}", us(ours), us(py), ratio(r)),
                met: check(r, r >= 100.0),
            });
        }

        for series in self.contention.iter().flatten().filter(|s| s.peer.is_mm()) {
            let at = |n: usize| series.points.iter().find(|p| p.n == n);
            let base = at(2).map_or(f64::NAN, |p| p.per_second);
            let later: Vec<&contention::Point> = series.points.iter().filter(|p| p.n > 2).collect();
            let lowest = later
                .iter()
                .map(|p| p.per_second)
                .fold(f64::INFINITY, f64::min);
            let r = lowest / base;
            let listed = series
                .points
                .iter()
                .filter(|p| p.n >= 2)
                .map(|p| format!("N={}: {:.0}/s", p.n, p.per_second))
                .collect::<Vec<_>>()
                .join(", ");
            targets.push(Target {
                target: format!(
                    "Throughput ({}) does not fall from N=2 to N={} (checked: every N >= 90% of N=2)",
                    series.peer.short(),
                    later.last().map_or(2, |p| p.n)
                ),
                measured: format!("{listed}; lowest / N=2: {}", ratio(r)),
                met: (known(r) && !later.is_empty()).then_some(r >= 0.9),
            });
            let worst = series.points.iter().map(|p| p.spread).fold(1.0, f64::max);
            let listed = series
                .points
                .iter()
                .filter(|p| p.n >= 2)
                .map(|p| format!("N={}: {}", p.n, ratio(p.spread)))
                .collect::<Vec<_>>()
                .join(", ");
            targets.push(Target {
                target: format!(
                    "Fairness ({}): max/min per-process share at most 2 (median of runs)",
                    series.peer.short()
                ),
                measured: listed,
                met: Some(worst <= 2.0),
            });
        }

        for row in self.waiting.iter().flatten().filter(|r| r.peer.is_mm()) {
            targets.push(Target {
                target: format!(
                    "{} waiting processes ({}) use close to zero CPU (checked: below 1% of one core, all together)",
                    row.processes,
                    row.peer.short()
                ),
                measured: format!(
                    "{:.1} ms CPU in {:.1} s: {:.3}% of one core",
                    row.cpu.as_secs_f64() * 1e3,
                    row.window.as_secs_f64(),
                    row.core_percent()
                ),
                met: Some(row.core_percent() < 1.0),
            });
        }
        targets
    }

    /// Why targets are or are not met, with this run's figures.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let raw = self.handoff_of(|p| matches!(p, Peer::Flock));
        let raw_socket = self.handoff_of(|p| matches!(p, Peer::FlockSocket));
        let default = self.handoff_of(|p| p.same(&peers::MM));
        let timed = self.handoff_of(|p| p.same(&peers::MM_TIMEOUT));
        if raw.is_finite() && raw_socket.is_finite() && default.is_finite() {
            notes.push(format!(
                "Hand-off with the legacy socket (the default): the socket is part of every \
                 hand-off (the holder closes it, the waiter binds it once it has the flock), and the \
                 raw floor of exactly that, flock + socket, is {} against {} for the flock alone. \
                 The crate's default takes {}: {} of its own floor, {} of the bare flock.",
                us(raw_socket),
                us(raw),
                us(default),
                ratio(default / raw_socket),
                ratio(default / raw)
            ));
        }
        let floor_row = self
            .handoff
            .iter()
            .flatten()
            .find(|r| matches!(r.peer, Peer::FlockSocket));
        if let Some((close, bind)) =
            floor_row.and_then(|r| Some((r.socket_close_ns?, r.socket_bind_ns?)))
        {
            let uncontended = self.unc(unc::FLOOR_SOCKET);
            let loop_figure = if uncontended.is_finite() {
                format!(
                    "; in the uncontended loop the whole socket + bind + close takes {}",
                    us(uncontended)
                )
            } else {
                String::new()
            };
            notes.push(format!(
                "Why the socket weighs more in a hand-off than uncontended: in the raw flock + \
                 socket hand-off, the holder's close of its socket (before it unlocks) takes {} \
                 and the waiter's socket + bind (once it has the flock) {} (medians of all \
                 rounds), both inside the one-way latency{loop_figure}. In a hand-off each \
                 process has slept (the holder about 1 ms, waiting for its turn to release), so \
                 these calls run cold. The crate makes its socket before it sleeps, so only the \
                 bind is left after the wake-up; the holder's close stays.",
                us(close),
                us(bind),
            ));
        }
        if raw.is_finite() && timed.is_finite() && default.is_finite() {
            notes.push(format!(
                "Hand-off cost of the kernel-waiter thread: a wait that can give up (a timeout or \
                 a cancel token) cannot sleep in flock(2) itself, which cannot be interrupted \
                 without a signal, so a kernel-waiter thread sleeps in flock and hands the lock to \
                 the caller (src/handoff.rs): two wake-ups instead of one. A wait that nothing can \
                 end (the default: no timeout, no cancel) sleeps in flock in its own thread, one \
                 wake-up. With a timeout a hand-off takes {}, without {}.",
                us(timed),
                us(default)
            ));
        }
        if let Some(series) = &self.contention {
            let last = |pick: &dyn Fn(&Peer) -> bool| {
                series
                    .iter()
                    .find(|s| pick(&s.peer))
                    .and_then(|s| s.points.last())
                    .map(|p| (p.n, p.spread))
            };
            if let (Some((n, raw)), go) = (
                last(&|p| matches!(p, Peer::Flock)),
                last(&|p| matches!(p, Peer::Go(_))),
            ) {
                let go = go.map_or(String::new(), |(_, s)| format!(", Go's {}", ratio(s)));
                let ours = last(&|p| p.same(&peers::MM)).map_or(String::new(), |(_, s)| {
                    format!(", this crate's default {}", ratio(s))
                });
                let fair = last(&|p| p.same(&peers::MM_FAIR)).map_or(String::new(), |(_, s)| {
                    format!(", with the fair queue {}", ratio(s))
                });
                notes.push(format!(
                    "Fairness: flock(2) does not queue waiters in order. On release the kernel wakes \
                     a waiter, and a process that asks again at once (here: immediately, the \
                     critical section is one clock reading) usually takes the lock before it runs, \
                     so by default the spread depends on which process the scheduler runs when, and \
                     moves widely from run to run. With `Spec::with_fair_queue(true)` (Linux, \
                     off by default as in Go) waiting processes take turns in arrival order (a \
                     ticket and a record lock per waiter in `<lock file>.queue`, \
                     src/sys/linux/fair_queue.rs), and a process that could lock at once queues \
                     behind them, after a slice of 0.5 ms in which the process last served may lock \
                     again without queueing (parking_lot's eventual fairness period): strict turns \
                     would cost a cross-process wake-up (tens of µs) per acquisition. It is off by \
                     default because a waiter stopped while queued (Ctrl-Z, a debugger) holds up \
                     those behind it (RELIABILITY.md). Spread at N={n}: raw flock floor {}{go}{ours}{fair}.",
                    ratio(raw),
                ));
            }
        }
        let kept = self.unc(unc::FLOOR_KEPT);
        let recheck = self.unc(unc::FLOOR_KEPT_RECHECK);
        let floor = self.unc(unc::FLOOR_OPEN);
        let off = self.unc(unc::MM_NOLEGACY);
        let nokeep = self.unc(unc::MM_NOLEGACY_NOKEEP);
        if kept.is_finite() && recheck.is_finite() && off.is_finite() && nokeep.is_finite() {
            notes.push(format!(
                "Kept descriptors (the stretch): on release the crate keeps the lock file's \
                 descriptor open, unlocked, for the next acquisition of the name in the process \
                 (src/sys/unix/kept.rs; at most 16 per process; Spec::with_kept_descriptor(false) \
                 turns it off). To stay sound it takes the descriptor out while in use (a second \
                 acquisition in the process opens the file anew, so flock still excludes it), \
                 checks after locking that the path still names the file (lstat: a temp cleaner \
                 may have removed it, another process may lock a new one), and closes every kept \
                 descriptor in a child forked without exec (a pthread_atfork handler). The \
                 path check is what keeps it from the bare kept floor: {} for flock + lstat + \
                 unlock against {} without the lstat. The crate takes {} with kept descriptors and \
                 {} without (open + flock + fstat + close each time; the open + flock + close \
                 floor is {}).",
                us(recheck),
                us(kept),
                us(off),
                us(nokeep),
                us(floor)
            ));
        }
        let fair = self.unc(unc::MM_NOLEGACY_FAIR);
        if fair.is_finite() && off.is_finite() {
            notes.push(format!(
                "Fair queue, uncontended: with Spec::with_fair_queue(true) an acquisition that \
                 could lock at once first reads the queue's counters (shared memory, no system \
                 call; a process-wide lock and a scan of the side files this process has open), \
                 to queue behind processes already waiting: {} against {} with the queue off \
                 (legacy socket off, descriptor kept, both).",
                us(fair),
                us(off)
            ));
        }
        notes
    }

    /// The short text printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = String::from("\nTargets:\n");
        for t in self.targets() {
            let _ = writeln!(
                s,
                "  [{}] {}: {}",
                verdict(t.met).trim_matches('*'),
                t.target,
                t.measured
            );
        }
        s
    }

    /// The whole BENCHMARKS.md.
    pub fn render(&self, plots: &[Plot]) -> String {
        let mut md = String::new();
        self.header(&mut md);
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(
            md,
            "The targets of the benchmark issue, checked against this run's figures (ratios within \
             this run; the thresholds used for words like \"about\" are stated).\n"
        );
        let _ = writeln!(md, "| target | this run | verdict |\n| --- | --- | --- |");
        for t in self.targets() {
            let _ = writeln!(md, "| {} | {} | {} |", t.target, t.measured, verdict(t.met));
        }
        let _ = writeln!(md);
        let notes = self.notes();
        if !notes.is_empty() {
            let _ = writeln!(md, "Notes on the targets (figures from this run):\n");
            for note in notes {
                let _ = writeln!(md, "- {note}");
            }
            let _ = writeln!(md);
        }
        self.uncontended_section(&mut md, plots);
        self.handoff_section(&mut md, plots);
        self.contention_section(&mut md, plots);
        self.scale_section(&mut md);
        self.waiting_section(&mut md);
        md
    }

    fn header(&self, md: &mut String) {
        let c = &self.config;
        let _ = writeln!(md, "# Benchmarks\n");
        if self.smoke {
            let _ = writeln!(
                md,
                "**Smoke run** (tiny counts, to check that the harness works): these figures mean nothing.\n"
            );
        }
        let _ = writeln!(
            md,
            "machine-mutex side by side with its peers, all measured in one run of one command:\n\n\
             ```sh\nbash scripts/bench.sh\n```\n\n\
             which installs the peers (Go and juju/mutex from Debian with \
             `scripts/install-interop-deps.sh`; Python `filelock` into a virtual environment it creates \
             under `target/`), then runs `cargo bench --bench report`, which rewrites this file and the \
             plots in `{PLOTS_DIR}/`. A peer that cannot be installed is skipped with a printed reason \
             (listed below). `bash scripts/bench.sh --smoke` runs everything with tiny counts into \
             `target/tmp/bench-smoke/` (CI runs it). The harness is `benches/report/`; the in-process \
             micro-benchmarks are `cargo bench --bench uncontended` (divan).\n"
        );
        let _ = writeln!(md, "## This run\n");
        let _ = writeln!(md, "- Date: {}; commit {}", self.date, self.commit);
        let _ = writeln!(md, "- Machine: {}", self.machine);
        let _ = writeln!(
            md,
            "- Load average (1, 5, 15 min) at the start: {}; at the end: {} (which counts this run's \
             own processes: up to 16 contending and 100 waiting). The machine is shared: a load above \
             the number of CPUs inflates every figure, the ratios less so.",
            self.load_before, self.load_after
        );
        let _ = writeln!(md, "- Toolchains: {}", self.rustc);
        let _ = writeln!(
            md,
            "- Go peer: {}",
            self.go_version.as_deref().unwrap_or("skipped")
        );
        let _ = writeln!(
            md,
            "- Python peer: {}",
            self.python_version.as_deref().unwrap_or("skipped")
        );
        let _ = writeln!(
            md,
            "- Lock files in a private directory under the system temporary directory (its `TMPDIR` for \
             every process of the run); open-descriptor limit {} (raised as far as allowed).",
            self.nofile
        );
        let _ = writeln!(
            md,
            "- Counts: uncontended {} runs x {} pairs (Python {}); hand-off {} runs x {} rounds (Python \
             {} x {}); contention N = {:?}, {} acquisitions per process, {} runs; scale {:?} names, {} runs; \
             waiting {} processes for {:.1} s. Whole run: {:.0} s.",
            c.uncontended_runs,
            c.uncontended_iters,
            c.uncontended_python_iters,
            c.handoff_runs,
            c.handoff_rounds,
            c.handoff_python_runs,
            c.handoff_python_rounds,
            c.contention_ns,
            c.contention_per_process,
            c.contention_runs,
            c.scale_names,
            c.scale_runs,
            c.waiting_processes,
            c.waiting_window.as_secs_f64(),
            self.elapsed.as_secs_f64()
        );
        if self.skipped.is_empty() {
            let _ = writeln!(md, "- Skipped peers: none.");
        } else {
            for s in &self.skipped {
                let _ = writeln!(md, "- Skipped: {s}");
            }
        }
        let _ = writeln!(md);
    }

    fn plot_line(md: &mut String, plots: &[Plot], file: &str) {
        if let Some(plot) = plots.iter().find(|p| p.file == file) {
            let _ = writeln!(md, "![{}]({PLOTS_DIR}/{})\n", plot.title, plot.file);
        }
    }

    fn uncontended_section(&self, md: &mut String, plots: &[Plot]) {
        let Some(rows) = &self.uncontended else {
            return;
        };
        let _ = writeln!(md, "## 1. Uncontended acquire + release, one process\n");
        let _ = writeln!(
            md,
            "Per acquire + release pair: the median over runs of each run's mean. Floors are the bare \
             system calls measured by the same harness. In-process cases run a tenth as many pairs \
             untimed first; the Go and Python peers time their own loops, with no such warm-up. \
             \"Reference\" is the issue's figure from another run, for context only.\n"
        );
        let floor = self.unc(unc::FLOOR_OPEN);
        let _ = writeln!(
            md,
            "| implementation | per pair | vs open + flock + close | runs (min to max) | reference |\n\
             | --- | ---: | ---: | ---: | ---: |"
        );
        for row in rows {
            let reference = REFERENCE
                .iter()
                .find(|(k, _)| *k == row.key)
                .map_or("", |(_, v)| v);
            let name = match row.kind {
                Kind::Ours => format!("**{}**", row.label),
                _ => row.label.clone(),
            };
            let lo = row.runs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = row.runs.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} to {} | {reference} |",
                us(row.ns),
                ratio(row.ns / floor),
                us(lo),
                us(hi)
            );
        }
        let _ = writeln!(
            md,
            "\nThe crate keeps the lock file's descriptor open between acquisitions of a name \
             (see the notes on kept descriptors), and must check on each acquisition that the \
             path still names that file: its floor is the kept descriptor with the path re-check. \
             Off, it opens and closes the file each time: its floor is open + flock + close.\n"
        );
        Self::plot_line(md, plots, "uncontended.svg");
    }

    fn handoff_section(&self, md: &mut String, plots: &[Plot]) {
        let Some(rows) = &self.handoff else { return };
        let _ = writeln!(md, "## 2. Cross-process hand-off latency\n");
        let _ = writeln!(
            md,
            "Two processes pass one lock back and forth. Each round the waiter asks for the lock; once \
             it sleeps (for locks that block in `flock`: when /proc/locks shows it blocked, plus 1 ms; \
             for the polling lock: after a random 1 to 101 ms, so the release falls anywhere in its \
             polling period) the holder releases. One-way latency: from the holder's clock reading \
             just before it releases to the waiter's just after its acquire returns. Median over runs \
             of each run's median; percentiles over all samples. The runs are interleaved (run 1 \
             of every implementation, then run 2, ...), so that a change in the machine's load \
             weighs on all alike.\n"
        );
        let raw = self.handoff_of(|p| matches!(p, Peer::Flock));
        let raw_socket = self.handoff_of(|p| matches!(p, Peer::FlockSocket));
        let _ = writeln!(
            md,
            "| implementation | one-way median | runs' medians (min to max) | p10 | p90 | vs raw flock | vs raw flock + socket | samples | reference |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for row in rows {
            let reference = match row.peer {
                Peer::Go(_) => "about 21 us",
                Peer::Python(_) => "about 25 ms",
                _ => "",
            };
            let mut samples = format!("{} (runs: {})", row.samples, row.runs);
            if row.not_seen_blocked > 0 {
                let _ = write!(samples, "; {} not seen blocked", row.not_seen_blocked);
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} to {} | {} | {} | {} | {} | {samples} | {reference} |",
                if row.peer.is_mm() {
                    format!("**{}**", row.peer.label())
                } else {
                    row.peer.label().to_owned()
                },
                us(row.median_ns),
                us(row.run_min_ns),
                us(row.run_max_ns),
                us(row.p10_ns),
                us(row.p90_ns),
                ratio(row.median_ns / raw),
                ratio(row.median_ns / raw_socket)
            );
        }
        let _ = writeln!(md);
        Self::plot_line(md, plots, "handoff.svg");
    }

    fn contention_section(&self, md: &mut String, plots: &[Plot]) {
        let Some(series) = &self.contention else {
            return;
        };
        let _ = writeln!(md, "## 3. Contention throughput and fairness\n");
        let _ = writeln!(
            md,
            "N processes each acquire and release one name {} times, started one after the other \
             within a few milliseconds; the critical section is one clock reading. Both figures are \
             taken while all N contend: from the last process's first acquisition to the first \
             process's last one (a process that starts early and locks alone meanwhile is neither \
             contending nor favoured). Throughput: the acquisitions in that window over its length. \
             Spread: the most acquisitions any process had in it over the fewest (1 = even; inf = a \
             process had none). Medians over runs (worst run in brackets); the runs are interleaved \
             (run 1 of every implementation and N, then run 2, ...). The figures over the \
             whole run (throughput from the first acquisition to the last; spread at the moment \
             the first process finishes) follow the plot.\n",
            self.config.contention_per_process
        );
        let ns = &self.config.contention_ns;
        let mut head = String::from("| implementation |");
        let mut rule = String::from("| --- |");
        for n in ns {
            let _ = write!(head, " N={n} |");
            rule.push_str(" ---: |");
        }
        let _ = writeln!(md, "Acquisitions per second:\n\n{head}\n{rule}");
        for s in series {
            let mut line = format!("| {} |", s.peer.label());
            for p in &s.points {
                let _ = write!(line, " {:.0} |", p.per_second);
            }
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(
            md,
            "\nSpread (max/min per-process share):\n\n{head}\n{rule}"
        );
        for s in series {
            let mut line = format!("| {} |", s.peer.label());
            for p in &s.points {
                let _ = write!(line, " {} ({}) |", ratio(p.spread), ratio(p.worst_spread));
            }
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md);
        Self::plot_line(md, plots, "contention.svg");
        let _ = writeln!(
            md,
            "\nOver the whole run, the staggered start included: acquisitions per second, and \
             spread at the moment the first process finishes:\n\n{head}\n{rule}"
        );
        for s in series {
            let mut line = format!("| {} |", s.peer.label());
            for p in &s.points {
                let _ = write!(
                    line,
                    " {:.0}; {} |",
                    p.whole_per_second,
                    ratio(p.finish_spread)
                );
            }
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md);
    }

    fn scale_section(&self, md: &mut String) {
        let Some(rows) = &self.scale else { return };
        let _ = writeln!(md, "## 4. Scale in names\n");
        let _ = writeln!(
            md,
            "One process acquires and holds N distinct names at once (lock files already exist), \
             then releases them all; a fresh process for each row. Descriptors per lock: open \
             descriptors while holding, less those open before the process's first acquisition, \
             over N. Kept after release: descriptors still open once all are released, which the \
             crate keeps for the next acquisition of a name (at most 16 per process; \
             `Spec::with_kept_descriptor(false)` keeps none). Medians over runs.\n"
        );
        let _ = writeln!(
            md,
            "| legacy socket | names | acquire all | per name | release all | descriptors per lock | kept after release |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for row in rows {
            let legacy = if row.legacy { "on (default)" } else { "off" };
            match &row.error {
                Some(e) => {
                    let _ = writeln!(md, "| {legacy} | {} | {e} | | | | |", row.names);
                }
                None => {
                    let _ = writeln!(
                        md,
                        "| {legacy} | {} | {:.3} ms | {} | {:.3} ms | {:.2} | {} |",
                        row.names,
                        row.acquire_ms,
                        us(row.acquire_ms * 1e6 / row.names as f64),
                        row.release_ms,
                        row.fds_per_lock,
                        row.kept_after
                    );
                }
            }
        }
        let _ = writeln!(md);
    }

    fn waiting_section(&self, md: &mut String) {
        let Some(rows) = &self.waiting else { return };
        let _ = writeln!(md, "## 5. Waiting cost\n");
        let _ = writeln!(
            md,
            "This process holds a name while P processes wait for it. Once all wait (blocked in flock \
             per /proc/locks; for the polling lock, 200 ms after the last started waiting), their CPU \
             time (sum of `se.sum_exec_runtime` of every thread, /proc/PID/task/*/sched) and voluntary \
             context switches (wake-ups) over the window are summed.\n"
        );
        let _ = writeln!(
            md,
            "| implementation | waiters | window | CPU, all waiters | share of one core | wake-ups | all seen blocked |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for row in rows {
            let blocked = match row.all_blocked {
                Some(true) => "yes",
                Some(false) => "no",
                None => "(polls)",
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} s | {:.1} ms | {:.3}% | {} | {blocked} |",
                row.peer.label(),
                row.processes,
                row.window.as_secs_f64(),
                row.cpu.as_secs_f64() * 1e3,
                row.core_percent(),
                row.wakeups
            );
        }
        let _ = writeln!(md);
    }
}
