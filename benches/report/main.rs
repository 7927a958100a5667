//! The benchmark report: machine-mutex side by side with its peers, in one
//! run, written to `BENCHMARKS.md` with SVG plots.
//!
//! Run it with `bash scripts/bench.sh` (installs the Go and Python peers
//! first), or directly: `cargo bench --bench report -- [--smoke]
//! [--python PYTHON] [--out DIR] [--only FAMILY,...]`.
//!
//! Five families of measurements (see BENCHMARKS.md for what each means):
//! `uncontended`, `handoff`, `contention`, `scale`, `waiting`. Each takes the
//! median over repeated runs; every implementation is measured in the same
//! run, interleaved where that is cheap, so that ratios compare like with like.
//!
//! Peers: the Go package juju/mutex v2 through the Go peer
//! (`tests/peers/go/mutexpeer`, built by `tests/peers/go_peer.rs`), Python's
//! `filelock` through `filelock_peer.py` run by `--python` (an interpreter
//! that can import filelock), and the Rust crates named-lock and fd-lock and
//! `std::fs::File::lock` in process. A peer that is not available is skipped
//! with a printed reason, which the report repeats.
//!
//! This binary also plays the Rust side of the cross-process measurements:
//! run as `report --role SUBCOMMAND IMPL NAME [N]` it speaks the Go peer's
//! line protocol (see `roles.rs`).
//!
//! `--smoke` runs every family with tiny counts (a few seconds) and writes
//! to `target/tmp/bench-smoke/` (Cargo's `CARGO_TARGET_TMPDIR`) instead of
//! the repository: CI runs it to check that the harness still works; its
//! figures mean nothing.

// Benchmarks build on current stable only (std::fs::File::lock, black_box);
// the library keeps to Rust 1.63.
#![allow(clippy::incompatible_msrv)]

#[path = "../../tests/peers/go_peer.rs"]
mod go_peer;

mod contention;
mod handoff;
mod markdown;
mod peers;
mod plot;
mod procfs;
mod roles;
mod scale;
mod stats;
mod uncontended;
mod waiting;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peers::Peer;

/// Counts and durations of one report: the full run or the smoke run.
#[derive(Debug, Clone)]
pub struct Config {
    pub smoke: bool,
    /// Uncontended: repeated runs, and acquire + release pairs per run.
    pub uncontended_runs: usize,
    pub uncontended_iters: usize,
    /// The Python peer's loop is slower: fewer pairs per run.
    pub uncontended_python_iters: usize,
    /// Hand-off: runs (each with two fresh processes) and one-way hand-offs per run.
    pub handoff_runs: usize,
    pub handoff_rounds: usize,
    /// The polling peer needs ~25 ms per hand-off: fewer of them.
    pub handoff_python_runs: usize,
    pub handoff_python_rounds: usize,
    /// Contention: process counts, acquisitions per process, runs per count.
    pub contention_ns: Vec<usize>,
    pub contention_per_process: usize,
    pub contention_runs: usize,
    /// Scale: numbers of names held at once, runs per number.
    pub scale_names: Vec<usize>,
    pub scale_runs: usize,
    /// Waiting: processes waiting, and how long their CPU time is measured.
    pub waiting_processes: usize,
    pub waiting_window: Duration,
}

impl Config {
    fn full() -> Config {
        Config {
            smoke: false,
            uncontended_runs: 7,
            uncontended_iters: 20_000,
            uncontended_python_iters: 2_000,
            handoff_runs: 9,
            handoff_rounds: 200,
            handoff_python_runs: 3,
            handoff_python_rounds: 20,
            contention_ns: vec![1, 2, 4, 8, 16],
            contention_per_process: 1_000,
            contention_runs: 5,
            scale_names: vec![1, 100, 1_000, 10_000],
            scale_runs: 3,
            waiting_processes: 100,
            waiting_window: Duration::from_secs(5),
        }
    }

    fn smoke() -> Config {
        Config {
            smoke: true,
            uncontended_runs: 2,
            uncontended_iters: 200,
            uncontended_python_iters: 20,
            handoff_runs: 1,
            handoff_rounds: 6,
            handoff_python_runs: 1,
            handoff_python_rounds: 2,
            contention_ns: vec![1, 2, 4],
            contention_per_process: 30,
            contention_runs: 1,
            scale_names: vec![1, 100],
            scale_runs: 1,
            waiting_processes: 4,
            waiting_window: Duration::from_millis(300),
        }
    }
}

/// The measurement families, in report order.
pub const FAMILIES: [&str; 5] = ["uncontended", "handoff", "contention", "scale", "waiting"];

/// What the whole report shares: configuration, peers, and where files go.
pub struct Context {
    pub config: Config,
    /// The private lock directory (`TMPDIR` of this process and its children).
    pub lock_dir: PathBuf,
    pub go: Option<PathBuf>,
    pub python: Option<PathBuf>,
    /// Versions of the peers' runtimes, for the report.
    pub go_version: Option<String>,
    pub python_version: Option<String>,
    /// One line per peer skipped, with the reason.
    pub skipped: Vec<String>,
    /// The soft limit of open descriptors in force.
    pub nofile: u64,
}

impl Context {
    /// A name unique to this run: `bench-PID-TAG`.
    pub fn name(&self, tag: &str) -> String {
        let name = format!("bench-{}-{tag}", std::process::id());
        assert!(name.len() <= machine_mutex::MAX_NAME_LEN, "{name}");
        name
    }

    /// The cross-process peers available, in report order: the raw
    /// floors, this crate (default, legacy socket off, with a timeout), Go,
    /// Python.
    pub fn process_peers(&self) -> Vec<Peer> {
        let mut peers = vec![
            Peer::Flock,
            Peer::FlockSocket,
            peers::MM,
            peers::MM_NOLEGACY,
            peers::MM_TIMEOUT,
            peers::MM_FAIR,
            peers::MM_FAIR_NOLEGACY,
        ];
        if let Some(go) = &self.go {
            peers.push(Peer::Go(go.clone()));
        }
        if let Some(python) = &self.python {
            peers.push(Peer::Python(python.clone()));
        }
        peers
    }
}

struct Options {
    smoke: bool,
    python: Option<PathBuf>,
    out: Option<PathBuf>,
    only: Vec<String>,
}

fn usage(message: &str) -> ! {
    eprintln!("report: {message}");
    eprintln!(
        "usage: cargo bench --bench report -- [--smoke] [--python PYTHON] [--out DIR] \
         [--only {}]",
        FAMILIES.join(",")
    );
    std::process::exit(2);
}

fn parse_options() -> Options {
    let mut options = Options {
        smoke: false,
        python: None,
        out: None,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "--smoke" => options.smoke = true,
            "--python" => {
                let python = args
                    .next()
                    .unwrap_or_else(|| usage("--python needs a value"));
                if !python.is_empty() {
                    options.python = Some(PathBuf::from(python));
                }
            }
            "--out" => {
                options.out = Some(PathBuf::from(
                    args.next().unwrap_or_else(|| usage("--out needs a value")),
                ))
            }
            "--only" => {
                let list = args.next().unwrap_or_else(|| usage("--only needs a value"));
                for family in list.split(',') {
                    if !FAMILIES.contains(&family) {
                        usage(&format!("unknown family {family:?}"));
                    }
                    options.only.push(family.to_owned());
                }
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    options
}

/// The first line of `program args` (its version), if it runs.
fn version_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    Some(line.to_owned())
}

fn find_peers(ctx: &mut Context) {
    ctx.go = go_peer::binary();
    match &ctx.go {
        Some(_) => ctx.go_version = version_of(Path::new("go"), &["version"]),
        None => ctx.skipped.push(format!(
            "Go juju/mutex: the Go peer is unavailable ({}; scripts/install-interop-deps.sh \
             installs Go and the Debian package golang-github-juju-mutex-dev)",
            go_peer::unavailable_reason().unwrap_or_else(|| "reason unknown".to_owned())
        )),
    }
    let python = ctx.python.take();
    match python {
        None => ctx.skipped.push(
            "Python filelock: no --python interpreter given (scripts/bench.sh creates a \
             virtual environment with filelock)"
                .to_owned(),
        ),
        Some(python) => {
            let probe = "import sys, filelock; print('Python %d.%d.%d, filelock %s' % \
                         (sys.version_info[:3] + (filelock.__version__,)))";
            match version_of(&python, &["-c", probe]) {
                Some(version) => {
                    ctx.python_version = Some(version);
                    ctx.python = Some(python);
                }
                None => ctx.skipped.push(format!(
                    "Python filelock: {} cannot import filelock",
                    python.display()
                )),
            }
        }
    }
    for line in &ctx.skipped {
        eprintln!("report: SKIPPING {line}");
    }
}

/// Raises the soft limit of open descriptors to at least `want` (the hard
/// limit too, if allowed): holding 10,000 names with the legacy socket
/// takes 20,000 descriptors. Returns the soft limit in force.
fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let hard = current.maximum.unwrap_or(u64::MAX);
    let raised = Rlimit {
        current: Some(want),
        maximum: Some(hard.max(want)),
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        return want;
    }
    let to_hard = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    if setrlimit(Resource::Nofile, to_hard).is_ok() {
        return hard;
    }
    soft
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        roles::main(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--role-scale") {
        scale::role(&args[1..]);
        return;
    }
    let options = parse_options();
    let config = if options.smoke {
        Config::smoke()
    } else {
        Config::full()
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = options.out.clone().unwrap_or_else(|| {
        if config.smoke {
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke")
        } else {
            repo.clone()
        }
    });

    // All lock files of this run live in a private directory, which is the
    // TMPDIR of this process and of every peer (Go's os.TempDir() and
    // named-lock read it too), and is removed at the end.
    let lock_dir = std::env::temp_dir().join(format!("machine-mutex-bench-{}", std::process::id()));
    std::fs::create_dir_all(&lock_dir).expect("create the lock directory");
    // Still single-threaded here: no other thread reads the environment.
    std::env::set_var("TMPDIR", &lock_dir);
    let nofile = raise_nofile(65_536);

    let mut ctx = Context {
        config,
        lock_dir: lock_dir.clone(),
        go: None,
        python: options.python.clone(),
        go_version: None,
        python_version: None,
        skipped: Vec::new(),
        nofile,
    };
    find_peers(&mut ctx);

    let run_family =
        |family: &str| options.only.is_empty() || options.only.iter().any(|f| f == family);
    let started = Instant::now();
    let mut report = markdown::Report::new(&ctx);
    eprintln!(
        "report: {} run; load average {}",
        if ctx.config.smoke { "smoke" } else { "full" },
        procfs::loadavg()
    );

    if run_family("uncontended") {
        eprintln!("report: uncontended acquire + release ...");
        report.uncontended = Some(uncontended::run(&ctx));
    }
    if run_family("handoff") {
        eprintln!("report: two-process hand-off ...");
        report.handoff = Some(handoff::run(&ctx));
    }
    if run_family("contention") {
        eprintln!("report: contention throughput ...");
        report.contention = Some(contention::run(&ctx));
    }
    if run_family("scale") {
        eprintln!("report: scale in names ...");
        report.scale = Some(scale::run(&ctx));
    }
    if run_family("waiting") {
        eprintln!("report: waiting cost ...");
        report.waiting = Some(waiting::run(&ctx));
    }
    report.finish(started.elapsed());

    let plots_dir = out.join(markdown::PLOTS_DIR);
    std::fs::create_dir_all(&plots_dir).expect("create the plots directory");
    let plots = plot::draw_all(&report, &plots_dir);
    let text = report.render(&plots);
    let md = out.join("BENCHMARKS.md");
    std::fs::write(&md, &text).unwrap_or_else(|e| panic!("write {}: {e}", md.display()));
    print!("{}", report.summary());
    eprintln!("report: wrote {}", md.display());
    for plot in &plots {
        eprintln!("report: wrote {}", plots_dir.join(&plot.file).display());
    }

    let _ = std::fs::remove_dir_all(&lock_dir);
}
