//! Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE end a wait, are
//! passed on to COMMAND while it runs, and end a `hold`, as each would end
//! a process that left them at their default action (Rust's runtime
//! ignores SIGPIPE; COMMAND still starts with its default action).
//!
//! A SIGPIPE that machine-mutex raises itself, writing to a closed pipe or
//! socket (its sender is then machine-mutex's own pid), is not acted on:
//! the write fails with EPIPE instead, which is ignored, so a `hold` whose
//! reader has gone still holds, and a wait goes on when stderr has gone.
//!
//! One thread receives them (signal-hook) and acts according to the
//! current [`Route`]. Passing a signal on cannot hit a recycled pid: the
//! main thread sees COMMAND end with `waitid(WNOWAIT)`, which leaves it
//! unreaped, then switches the route off under the same lock the
//! forwarding thread holds while it calls kill(2), and only then reaps it.

use std::io;
use std::os::raw::c_int;
use std::process::{Child, Command};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use machine_mutex::CancelToken;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use signal_hook::consts::{SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::{Handle, SignalsInfo};
use signal_hook::low_level::siginfo::{Cause, Process};

/// The signals handled.
const HANDLED: [c_int; 5] = [SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM];

/// What a signal does now.
enum Route {
    /// Waiting for the mutex (or about to): cancel the wait.
    Cancel(CancelToken),
    /// COMMAND runs: pass the signal on to it.
    Forward(Pid),
    /// Holding (`hold`): tell the main thread.
    Notify(Sender<()>),
    /// COMMAND has ended and machine-mutex is about to exit.
    Ignore,
}

struct Shared {
    route: Mutex<Route>,
    /// The first signal received, if any.
    first: Mutex<Option<c_int>>,
}

impl Shared {
    fn route(&self) -> MutexGuard<'_, Route> {
        self.route.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn first(&self) -> MutexGuard<'_, Option<c_int>> {
        self.first.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The installed handlers and their thread; dropping it stops the thread
/// (the handlers stay installed and do nothing until the process exits).
pub struct SignalRouter {
    shared: Arc<Shared>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl SignalRouter {
    /// Installs the handlers; until a route is chosen, signals cancel `token`.
    pub fn install(token: CancelToken) -> io::Result<SignalRouter> {
        let mut signals = SignalsInfo::<WithOrigin>::new(HANDLED)?;
        let handle = signals.handle();
        let shared = Arc::new(Shared {
            route: Mutex::new(Route::Cancel(token)),
            first: Mutex::new(None),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("machine-mutex-signals".to_owned())
                .spawn(move || {
                    for origin in signals.forever() {
                        if !raised_by_a_write(origin.signal, origin.process) {
                            deliver(&shared, origin.signal, origin.cause);
                        }
                    }
                })?
        };
        Ok(SignalRouter {
            shared,
            handle,
            thread: Some(thread),
        })
    }

    /// The first signal received so far.
    pub fn received(&self) -> Option<c_int> {
        *self.shared.first()
    }

    /// Starts `command` and passes signals on to it. Returns `Ok(None)`
    /// without starting it if a signal has already arrived.
    pub fn spawn_forwarding(&self, command: &mut Command) -> io::Result<Option<Child>> {
        let mut route = self.shared.route();
        if self.received().is_some() {
            return Ok(None);
        }
        let child = command.spawn()?;
        // A pid always fits and is never zero; if it did not, signals would
        // just not be passed on.
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            *route = Route::Forward(pid);
        }
        Ok(Some(child))
    }

    /// Waits for `child` to end, stops passing signals on, then reaps it.
    pub fn wait_forwarding(&self, child: &mut Child) -> io::Result<std::process::ExitStatus> {
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            loop {
                match rustix::process::waitid(
                    WaitId::Pid(pid),
                    WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
                ) {
                    Ok(_) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        *self.shared.route() = Route::Ignore;
        child.wait()
    }

    /// Sends `()` on `tx` at the next signal (or now, returning `true`, if
    /// one has already arrived).
    pub fn notify(&self, tx: Sender<()>) -> bool {
        let mut route = self.shared.route();
        if self.received().is_some() {
            return true;
        }
        *route = Route::Notify(tx);
        false
    }
}

impl Drop for SignalRouter {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `signal` is the SIGPIPE the kernel raises in machine-mutex
/// itself when it writes to a pipe or socket nobody reads: Linux gives it
/// the writer's own pid as sender; one sent by another process has that
/// process's pid.
fn raised_by_a_write(signal: c_int, sender: Option<Process>) -> bool {
    signal == SIGPIPE
        && sender.is_none_or(|sender| u32::try_from(sender.pid).ok() == Some(std::process::id()))
}

/// Acts on one signal according to the route.
fn deliver(shared: &Shared, signal: c_int, cause: Cause) {
    let route = shared.route();
    shared.first().get_or_insert(signal);
    match &*route {
        Route::Cancel(token) => token.cancel(),
        Route::Forward(pid) => {
            // A terminal's Ctrl-C, Ctrl-\ or hangup (sent by the kernel to the
            // whole foreground process group) has reached COMMAND already:
            // sending it again would make it count twice (a second Ctrl-C
            // often means "force quit").
            if cause != Cause::Kernel {
                if let Some(signal) = Signal::from_named_raw(signal) {
                    let _ = rustix::process::kill_process(*pid, signal);
                }
            }
        }
        Route::Notify(tx) => {
            let _ = tx.send(());
        }
        Route::Ignore => {}
    }
}
