//! Taking the mutex for `run`, `try` and `hold`: at once if free, else
//! waiting (with the waiting message) unless told not to.

use std::time::Duration;

use machine_mutex::{CancelToken, Error, Releaser, Spec};

use crate::cli::{LockArgs, WaitArgs};
use crate::errors::CliError;
use crate::signals::SignalRouter;
use crate::waiting::WaitingMessage;

/// Acquires the mutex of `lock`. With `wait` `None` (`try`) or a zero
/// timeout, fails at once if it is held; otherwise waits as `wait` says.
/// `token` is the one the signal router cancels.
pub fn acquire(
    lock: &LockArgs,
    wait: Option<&WaitArgs>,
    token: &CancelToken,
    router: &SignalRouter,
) -> Result<Releaser, CliError> {
    let name = lock.name.as_str();
    let mut spec = Spec::new(name)
        .with_legacy_socket(!lock.no_legacy)
        .with_fair_queue(lock.fair)
        .with_cancel(token.clone());
    if let Some(wait) = wait {
        spec = spec.with_delay(wait.delay);
    }
    let failed = |source: Error| fail(lock, source, router);
    let waits = wait.filter(|wait| wait.timeout != Some(Duration::ZERO));
    // A try never queues: one that may wait and waits in line (--fair)
    // goes straight to the queue, behind those already waiting.
    if !(lock.fair && waits.is_some()) {
        match spec.try_acquire() {
            Ok(guard) => return Ok(guard),
            Err(Error::WouldBlock) => {}
            Err(e) => return Err(failed(e)),
        }
    }
    let wait = match waits {
        Some(wait) => wait,
        None => return Err(failed(Error::WouldBlock)),
    };
    if let Some(timeout) = wait.timeout {
        spec = spec.with_timeout(timeout);
    }
    let message = if wait.quiet {
        None
    } else {
        Some(WaitingMessage::start(name))
    };
    let acquired = spec.acquire();
    drop(message);
    acquired.map_err(|e| match e {
        Error::Timeout => CliError::Timeout {
            name: name.to_owned(),
            timeout: wait.timeout.unwrap_or_default(),
            holder: machine_mutex::holder(name).ok().flatten(),
            fair: lock.fair,
            code: lock.conflict_exit_code,
        },
        other => failed(other),
    })
}

/// The error for a failed acquisition other than a timeout.
fn fail(lock: &LockArgs, source: Error, router: &SignalRouter) -> CliError {
    let name = lock.name.clone();
    match source {
        Error::WouldBlock => CliError::Held {
            holder: machine_mutex::holder(&name).ok().flatten(),
            name,
            code: lock.conflict_exit_code,
        },
        Error::Cancelled => CliError::Interrupted {
            name,
            // Only the router cancels, after noting the signal.
            signal: router.received().unwrap_or(signal_hook::consts::SIGTERM),
        },
        source => CliError::Lock { name, source },
    }
}
