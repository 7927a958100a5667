//! The waiting message: after about a second of waiting, stderr says what
//! is waited for and who holds it. On a terminal it is a spinner with the
//! elapsed time, its holder refreshed every second (indicatif); otherwise
//! a single line.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How long a wait stays silent.
const QUIET_FOR: Duration = Duration::from_secs(1);

/// How often the spinner asks again who holds the mutex.
const REFRESH: Duration = Duration::from_secs(1);

/// The message's thread; dropping it (when the wait is over) clears the
/// spinner before anything else is printed.
pub struct WaitingMessage {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WaitingMessage {
    /// Starts the message for a wait that begins now. If the thread cannot
    /// be started there is no message, and the wait goes on.
    pub fn start(name: &str) -> WaitingMessage {
        let (stop, stopped) = mpsc::channel();
        let name = name.to_owned();
        let started = Instant::now();
        let thread = thread::Builder::new()
            .name("machine-mutex-waiting".to_owned())
            .spawn(move || show(&name, started, &stopped))
            .ok();
        WaitingMessage {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for WaitingMessage {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The message's thread: silent for [`QUIET_FOR`], then the spinner or the line
/// until `stopped` is disconnected.
fn show(name: &str, started: Instant, stopped: &mpsc::Receiver<()>) {
    if stopped.recv_timeout(QUIET_FOR) != Err(RecvTimeoutError::Timeout) {
        return;
    }
    if !std::io::stderr().is_terminal() {
        let _ = writeln!(std::io::stderr(), "machine-mutex: {}", describe(name));
        let _ = stopped.recv();
        return;
    }
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let spinner = ProgressBar::new_spinner()
        .with_style(style)
        .with_elapsed(started.elapsed());
    spinner.set_message(describe(name));
    spinner.enable_steady_tick(Duration::from_millis(100));
    while stopped.recv_timeout(REFRESH) == Err(RecvTimeoutError::Timeout) {
        spinner.set_message(describe(name));
    }
    spinner.finish_and_clear();
}

/// `waiting for 'NAME', held by PID 1234 (cmd ...)`, or without the holder
/// when it cannot be told (or has just released).
fn describe(name: &str) -> String {
    match machine_mutex::holder(name) {
        Ok(Some(holder)) => format!("waiting for '{name}', held by {holder}"),
        _ => format!("waiting for '{name}'"),
    }
}
