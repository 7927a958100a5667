//! Async acquisition (feature `async`): [`Spec::acquire_async`] and its
//! future, [`Acquire`].
//!
//! The future depends on no executor: it uses only [`std::task`]. Polling
//! never blocks the polling thread:
//!
//! - the first poll tries the lock without waiting (open and non-blocking
//!   `flock`), as the blocking call's fast path does;
//! - otherwise it joins the same per-name FIFO queue as blocking waiters
//!   (`handoff.rs`): the one kernel waiter thread of that name hands the lock
//!   over and notifies the task's [`Wakeup`](crate::Wakeup), which wakes it;
//! - deadlines (the timeout, and the legacy-socket retries every
//!   [`Spec::delay`]) are watched by one timer thread per clock
//!   (`timer.rs`), on the spec's clock;
//! - the cancel token notifies the same `Wakeup`.
//!
//! Dropping the future leaves the queue; if the lock had been handed to it
//! already, it is released and the kernel waiter hands it to the next
//! waiter. Its deadline and cancel registration go with it.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::cancel::Registration;
use crate::handoff::{self, Ticket};
use crate::sys::{Held, LegacyBackend, LegacySocket, LockBackend, LockFile};
use crate::timer::Alarm;
use crate::{lock_file_path, Error, Releaser, Spec, Wakeup};

impl Spec {
    /// Acquires the mutex without blocking the thread: returns a future of
    /// the guard, for any async executor (tokio, smol, async-std,
    /// `futures::executor`, ...). Requires the cargo feature `async`.
    ///
    /// The future does the same as [`acquire`](Self::acquire), and waits in
    /// the same queue: blocking and async waiters of one process are served
    /// in the order they started waiting. The timeout is measured on the
    /// spec's clock from this call. The future owns a copy of the spec, so
    /// it borrows nothing and can be spawned (it is `Send` and `Unpin`).
    ///
    /// Dropping the future before it completes cancels the wait: it leaves
    /// the queue and never takes the mutex (a mutex already handed to it is
    /// released, and goes to the next waiter). So it fits `select!`, timeouts
    /// of the executor and task cancellation.
    ///
    /// ```
    /// # async fn service() -> Result<(), machine_mutex::Error> {
    /// use machine_mutex::Spec;
    /// let guard = Spec::new("async-doc-example").acquire_async().await?;
    /// // ... only one process of the machine runs this at a time ...
    /// drop(guard);
    /// # Ok(())
    /// # }
    /// # futures::executor::block_on(service()).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire), from the future: [`Error::InvalidSpec`],
    /// [`Error::Cancelled`], [`Error::Timeout`], [`Error::Io`]. It also
    /// returns [`Error::Io`] if a helper thread (the name's kernel waiter,
    /// or the clock's timer thread) cannot be started.
    ///
    /// # Unix
    /// The first poll opens the lock file and tries `flock(LOCK_EX |
    /// LOCK_NB)` in the polling thread (no waiting). Waiting happens in the
    /// kernel waiter thread that this process keeps per name while anyone
    /// waits, blocked in `flock(LOCK_EX)`.
    ///
    /// # Linux
    /// With the legacy socket on, the future tries to bind it once it holds
    /// the lock file, and again every [`delay`](Self::delay) on the spec's
    /// clock while another process has it; it holds the lock file meanwhile,
    /// as the blocking call does.
    pub fn acquire_async(&self) -> Acquire {
        let deadline = self
            .timeout()
            .and_then(|timeout| self.clock().now().checked_add(timeout));
        Acquire {
            path: lock_file_path(self.name()),
            spec: self.clone(),
            deadline,
            wakeup: Wakeup::new(),
            cancel: None,
            alarm: None,
            step: Step::Start,
        }
    }
}

/// The future of an async acquisition, from [`Spec::acquire_async`] (or
/// [`acquire_async`](crate::acquire_async)). Requires the cargo feature
/// `async`.
///
/// It resolves to the same guard and errors as [`Spec::acquire`]. Dropping
/// it before it completes cancels the wait (see [`Spec::acquire_async`]).
/// Once it has completed, polling it again returns [`Poll::Pending`] and
/// never anything else (it does not panic, and does not acquire again).
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Acquire {
    spec: Spec,
    path: PathBuf,
    /// On the spec's clock; `None` waits forever.
    deadline: Option<Instant>,
    /// What the hand-off, the timer and the cancel token notify; it wakes the task.
    wakeup: Wakeup,
    /// Made when the future first has to wait.
    cancel: Option<Registration>,
    /// Made when the future first has to wait for a deadline.
    alarm: Option<Alarm>,
    step: Step,
}

/// Where an acquisition is.
enum Step {
    /// Not polled yet.
    Start,
    /// Queued for the lock file.
    Queued(Ticket),
    /// Holds the lock file; the legacy socket (if on) is next.
    Locked(LockFile),
    /// Completed (or failed).
    Done,
}

impl Future for Acquire {
    type Output = Result<Releaser, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `Acquire` is `Unpin`: nothing in it is pinned.
        let this = self.get_mut();
        match this.advance(cx) {
            Ok(None) => Poll::Pending,
            Ok(Some(releaser)) => {
                this.finish();
                Poll::Ready(Ok(releaser))
            }
            Err(e) => {
                this.finish();
                Poll::Ready(Err(e))
            }
        }
    }
}

impl Acquire {
    /// Moves on as far as possible without blocking: `Ok(None)` when the
    /// task is set to be woken and must wait.
    fn advance(&mut self, cx: &mut Context<'_>) -> Result<Option<Releaser>, Error> {
        loop {
            // On every early return below, the step stays `Done`.
            match std::mem::replace(&mut self.step, Step::Done) {
                Step::Start => {
                    self.spec.validate()?;
                    if self.cancelled() {
                        return Err(Error::Cancelled);
                    }
                    let fair = self.spec.fair_queue();
                    self.step =
                        match handoff::try_lock(&self.path, self.spec.environment(), true, fair)? {
                            Some(file) => Step::Locked(file),
                            None => {
                                self.watch_cancel();
                                Step::Queued(Ticket::enqueue(
                                    &self.path,
                                    self.spec.environment_arc(),
                                    fair,
                                    &self.wakeup,
                                )?)
                            }
                        };
                }
                Step::Queued(ticket) => {
                    if ticket.orphaned() {
                        // A copy in a forked child: leave the parent's
                        // queue (a lock in the slot is the parent's: it is
                        // only closed) and start over in this process.
                        drop(ticket);
                        self.step = Step::Start;
                        continue;
                    }
                    if let Some(outcome) = ticket.take() {
                        self.step = Step::Locked(outcome?);
                        continue;
                    }
                    if let Err(give_up) = self.check() {
                        // Handed over since the check above: then it is ours.
                        self.step = Step::Locked(ticket.leave().ok_or(give_up)??);
                        continue;
                    }
                    self.step = Step::Queued(ticket);
                    if !self.sleep(cx, None)? {
                        return Ok(None);
                    }
                }
                Step::Locked(file) => {
                    if !self.spec.legacy_socket() {
                        return Ok(Some(self.hold(file, None)));
                    }
                    if let Some(socket) = LegacySocket::try_bind(self.spec.name())? {
                        return Ok(Some(self.hold(file, Some(socket))));
                    }
                    self.watch_cancel();
                    // On error `file` drops here and the lock file is released.
                    self.check()?;
                    let next_try = self.spec.clock().now().checked_add(self.spec.delay());
                    self.step = Step::Locked(file);
                    if !self.sleep(cx, next_try)? {
                        return Ok(None);
                    }
                }
                Step::Done => return Ok(None),
            }
        }
    }

    /// The guard of a successful acquisition (which keeps its descriptor
    /// on release if the spec says so).
    fn hold(&self, mut file: LockFile, socket: Option<LegacySocket>) -> Releaser {
        if self.spec.kept_descriptor() {
            file.keep_on_release(self.path.clone());
        }
        Releaser::new(Held::new(file, socket))
    }

    fn cancelled(&self) -> bool {
        self.spec
            .cancel_token()
            .map_or(false, crate::CancelToken::is_cancelled)
    }

    /// Has the cancel token notify this acquisition's [`Wakeup`], once,
    /// before the wait begins (callers check the token afterwards).
    fn watch_cancel(&mut self) {
        if self.cancel.is_none() {
            self.cancel = self
                .spec
                .cancel_token()
                .map(|token| token.register(&self.wakeup));
        }
    }

    /// `Err` when the wait must end: cancelled (checked first), or the
    /// deadline has passed on the spec's clock. As the blocking `Waiter`.
    fn check(&self) -> Result<(), Error> {
        if self.cancelled() {
            return Err(Error::Cancelled);
        }
        match self.deadline {
            Some(deadline) if self.spec.clock().now() >= deadline => Err(Error::Timeout),
            _ => Ok(()),
        }
    }

    /// Sets the alarm for `until` or the deadline (the earlier) and
    /// registers the task's waker. Returns `true` when a notification came
    /// in since the last one was consumed: poll on at once instead of waiting.
    fn sleep(&mut self, cx: &mut Context<'_>, until: Option<Instant>) -> Result<bool, Error> {
        let until = match (until, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match until {
            Some(until) => {
                let spec = &self.spec;
                let alarm = self.alarm.get_or_insert_with(|| {
                    let (clock, id) = spec.shared_clock();
                    Alarm::new(clock, id)
                });
                alarm
                    .set(until, &self.wakeup)
                    .map_err(|e| Error::io("start a timer thread for", &self.path, e))?;
            }
            None => {
                if let Some(alarm) = &mut self.alarm {
                    alarm.clear();
                }
            }
        }
        Ok(self.wakeup.register_waker(cx.waker()))
    }

    /// Completed: keep nothing registered anywhere.
    fn finish(&mut self) {
        self.step = Step::Done;
        self.alarm = None;
        self.cancel = None;
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.step {
            Step::Start => "start",
            Step::Queued(_) => "queued",
            Step::Locked(_) => "locked, binding the legacy socket",
            Step::Done => "done",
        };
        f.debug_struct("Acquire")
            .field("name", &self.spec.name())
            .field("step", &step)
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The future can be spawned on multi-threaded executors and moved
    /// freely: it is `Send` and `Unpin` (and `Sync`).
    #[test]
    fn acquire_is_send_sync_unpin() {
        fn assert_traits<T: Send + Sync + Unpin + 'static>() {}
        assert_traits::<Acquire>();
    }
}
