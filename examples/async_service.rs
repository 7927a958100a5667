//! An async service that serialises a critical section across processes.
//!
//! Each job of the service waits for the machine-level mutex NAME without
//! blocking the runtime (`Spec::acquire_async`, feature `async`), then runs
//! its critical section: read a counter from a file, work for a while, write
//! the counter back plus one. Start the service in several terminals at
//! once: no update is lost, because only one job of all the processes is
//! inside at a time, and each process's jobs are served in the order they
//! started waiting.
//!
//! ```text
//! cargo run --example async_service -- [NAME [JOBS [COUNTER_FILE]]]
//! ```
//!
//! Ctrl-C shuts the service down: jobs still waiting stop waiting (the
//! dropped acquisition leaves the queue and never takes the mutex); a job
//! inside its critical section finishes it first.

// Examples build on current stable only; the MSRV (1.63) is the library's.
#![allow(clippy::incompatible_msrv)]

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use machine_mutex::Spec;
use tokio::sync::watch;

/// What the service does.
pub struct Config {
    /// The mutex name, the same in every process that shares the counter.
    pub name: String,
    /// How many jobs this process runs (all started at once).
    pub jobs: usize,
    /// The counter file that the critical section updates.
    pub counter: PathBuf,
    /// How long each job works inside the critical section.
    pub work: Duration,
}

impl Config {
    fn from_args() -> Result<Config, String> {
        let mut args = std::env::args().skip(1);
        let name = args
            .next()
            .unwrap_or_else(|| "async-service-example".to_owned());
        let jobs = match args.next() {
            Some(jobs) => jobs.parse().map_err(|e| format!("JOBS {jobs:?}: {e}"))?,
            None => 5,
        };
        let counter = args
            .next()
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("machine-mutex-async-service-counter"));
        Ok(Config {
            name,
            jobs,
            counter,
            work: Duration::from_millis(200),
        })
    }
}

#[tokio::main]
async fn main() {
    let config = match Config::from_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("usage: async_service [NAME [JOBS [COUNTER_FILE]]]: {e}");
            std::process::exit(2);
        }
    };
    let (shutdown, on_shutdown) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("shutting down");
            let _ = shutdown.send(true);
        }
    });
    match serve(&config, on_shutdown).await {
        Ok(done) => println!(
            "{done} of {} jobs done; counter {} is now {}",
            config.jobs,
            config.counter.display(),
            read_counter(&config.counter).unwrap_or(0)
        ),
        Err(e) => {
            eprintln!("async_service: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs the jobs of `config` at once, each waiting for the mutex, until
/// they are done or `shutdown` turns true. Returns how many jobs ran their
/// critical section.
///
/// # Errors
/// The first failed acquisition (for example the 60 s timeout) or I/O error,
/// or an overlap of two critical sections (which the mutex prevents).
pub async fn serve(config: &Config, shutdown: watch::Receiver<bool>) -> io::Result<usize> {
    let spec = Spec::new(&config.name).with_timeout(Duration::from_secs(60));
    let mut jobs = tokio::task::JoinSet::new();
    for job in 0..config.jobs {
        let (spec, counter, work) = (spec.clone(), config.counter.clone(), config.work);
        let mut shutdown = shutdown.clone();
        jobs.spawn(async move {
            let guard = tokio::select! {
                guard = spec.acquire_async() => guard?,
                // Dropping the acquisition cancels the wait.
                _ = shutdown.wait_for(|stop| *stop) => return Ok(false),
            };
            let value = critical_section(&counter, work).await?;
            println!("job {job} of {}: counter -> {value}", std::process::id());
            drop(guard);
            Ok::<bool, io::Error>(true)
        });
    }
    let mut done = 0;
    while let Some(job) = jobs.join_next().await {
        if job.map_err(io::Error::other)?? {
            done += 1;
        }
    }
    Ok(done)
}

/// Reads the counter, works, writes it back plus one. A marker file created
/// exclusively on entry proves that no other job of any process is inside.
async fn critical_section(counter: &Path, work: Duration) -> io::Result<u64> {
    let marker = counter.with_extension("inside");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .map_err(|e| io::Error::new(e.kind(), format!("another job is inside: {e}")))?;
    let updated = async {
        let value = read_counter(counter)? + 1;
        tokio::time::sleep(work).await;
        fs::write(counter, format!("{value}\n"))?;
        Ok(value)
    }
    .await;
    fs::remove_file(&marker)?;
    updated
}

/// The counter's value; 0 when the file does not exist yet.
pub fn read_counter(counter: &Path) -> io::Result<u64> {
    match fs::read_to_string(counter) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}
