//! Async acquisition (feature `async`) on tokio (multi-thread and
//! current-thread runtimes) and on `futures::executor`: contention, timeout
//! and cancel on the spec's clock, cancel by drop (also while another
//! process holds the mutex), `select!` with a shutdown signal, one FIFO
//! queue shared with blocking waiters, the legacy socket's retries.
//!
//! Cross-process steps synchronise through the children's stdout lines;
//! in-process steps through wakers and the manual clock's waiter count.

// Tests build on current stable only; the MSRV (1.63) is the library's.
#![allow(clippy::incompatible_msrv)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{spawn_child, unique_name};
use machine_mutex::{CancelToken, Error, ManualClock, Spec};

const LIMIT: Duration = Duration::from_secs(30);

/// The example, compiled into this test so that child processes can run it.
#[allow(dead_code)]
#[path = "../examples/async_service.rs"]
mod async_service;

#[test]
#[ignore = "runs only as a child process of the other tests"]
fn child_process_entry() {
    match std::env::var("MM_TEST_ROLE").as_deref() {
        // Run the example's service: MM_TEST_JOBS jobs on counter MM_TEST_COUNTER.
        Ok("example-service") => {
            let config = async_service::Config {
                name: std::env::var("MM_TEST_NAME").unwrap(),
                jobs: std::env::var("MM_TEST_JOBS").unwrap().parse().unwrap(),
                counter: std::env::var("MM_TEST_COUNTER").unwrap().into(),
                work: Duration::from_millis(1),
            };
            let (_shutdown, on_shutdown) = tokio::sync::watch::channel(false);
            let done = multi_thread()
                .block_on(async_service::serve(&config, on_shutdown))
                .expect("service");
            println!("\nserved {done}");
        }
        _ => common::child_main(),
    }
}

/// Polls `fut` once, in the calling task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Returns `Pending` once (waking itself), so other tasks run: an
/// executor-neutral `yield_now`.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A waker that reports each wake on a channel, to see from outside
/// exactly when a future is woken.
struct ChannelWaker(Mutex<mpsc::Sender<()>>);

impl Wake for ChannelWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}

fn channel_waker() -> (Waker, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    (Waker::from(Arc::new(ChannelWaker(Mutex::new(tx)))), rx)
}

/// Polls `fut` once with `waker`, outside any executor.
fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Two tasks take the mutex in turns, `ROUNDS` times each. A holder keeps
/// the mutex until the other task has found it held and is waiting (or has
/// finished), so every hand-over between them goes through a real wait.
/// Never two holders at once; every round completes. On a current-thread
/// executor this also shows that a waiting poll does not block the thread:
/// if it did, the holder could never run again to release.
async fn two_tasks_contend<S>(name: String, spawn: S)
where
    S: Fn(Pin<Box<dyn Future<Output = ()> + Send>>) -> Pin<Box<dyn Future<Output = ()> + Send>>,
{
    const ROUNDS: usize = 50;
    let inside = Arc::new(AtomicUsize::new(0));
    let waits = Arc::new(AtomicUsize::new(0));
    // Per task: 1 while it waits for the mutex, 2 once it has finished.
    let state: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let tasks: Vec<_> = (0..2)
        .map(|me| {
            let (name, inside, waits, state) =
                (name.clone(), inside.clone(), waits.clone(), state.clone());
            spawn(Box::pin(async move {
                let spec = Spec::new(name);
                for _ in 0..ROUNDS {
                    let mut acquire = spec.acquire_async();
                    let guard = match poll_once(&mut acquire).await {
                        Poll::Ready(result) => result.unwrap(),
                        Poll::Pending => {
                            waits.fetch_add(1, Ordering::SeqCst);
                            state[me].store(1, Ordering::SeqCst);
                            let guard = acquire.await.unwrap();
                            state[me].store(0, Ordering::SeqCst);
                            guard
                        }
                    };
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    while state[1 - me].load(Ordering::SeqCst) == 0 {
                        yield_now().await;
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                }
                state[me].store(2, Ordering::SeqCst);
            }))
        })
        .collect();
    for task in tasks {
        task.await;
    }
    // Each task waited in every round but possibly its first and last.
    let waits = waits.load(Ordering::SeqCst);
    assert!(waits >= 2 * ROUNDS - 2, "only {waits} waits");
    assert_free(&name);
}

/// The mutex is free: a blocking acquisition gets it within `LIMIT`.
///
/// Not `try_acquire`: right after a release, the lock can still look held
/// for an instant, while the name's kernel waiter takes and drops it (when
/// every waiter gave up), or while another test's child process, forked
/// but not yet exec'd, holds a copy of the released descriptor.
fn assert_free(name: &str) {
    let guard = Spec::new(name)
        .with_timeout(LIMIT)
        .acquire()
        .expect("the mutex is free");
    assert!(guard.is_held());
}

#[test]
fn two_tasks_contend_on_tokio_multi_thread() {
    let rt = multi_thread();
    let handle = rt.handle().clone();
    rt.block_on(two_tasks_contend(unique_name("async-mt"), move |fut| {
        let task = handle.spawn(fut);
        Box::pin(async move { task.await.unwrap() })
    }));
}

#[test]
fn two_tasks_contend_on_tokio_current_thread() {
    let rt = current_thread();
    rt.block_on(two_tasks_contend(unique_name("async-ct"), |fut| {
        let task = tokio::spawn(fut);
        Box::pin(async move { task.await.unwrap() })
    }));
}

#[test]
fn two_tasks_contend_on_futures_thread_pool() {
    use futures::task::SpawnExt;
    let pool = futures::executor::ThreadPool::builder()
        .pool_size(2)
        .create()
        .unwrap();
    futures::executor::block_on(two_tasks_contend(unique_name("async-fx"), move |fut| {
        Box::pin(pool.spawn_with_handle(fut).unwrap())
    }));
}

/// An uncontended acquisition completes on the first poll, in the polling
/// thread, and holds the mutex against every other acquisition.
#[test]
fn uncontended_completes_on_first_poll() {
    let spec = Spec::new(unique_name("async-fast"));
    let mut acquire = spec.acquire_async();
    let (waker, _woken) = channel_waker();
    let mut guard = match poll_with(&mut acquire, &waker) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("an uncontended acquisition waited"),
    };
    assert!(guard.is_held());
    assert!(matches!(spec.try_acquire(), Err(Error::WouldBlock)));
    // Polled again after completion: pending, nothing acquired, no panic.
    assert!(poll_with(&mut acquire, &waker).is_pending());
    guard.release().unwrap();
    assert_free(spec.name());
}

/// The timeout runs on the spec's clock: with a manual clock the task waits
/// while time stands still, and fails with `Timeout` only when the clock
/// passes the deadline. Afterwards nothing is left held.
#[test]
fn timeout_follows_the_spec_clock_on_tokio() {
    let name = unique_name("async-clock");
    let held = Spec::new(&name).acquire().unwrap();
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(60));
    let rt = multi_thread();
    let task = rt.spawn(spec.acquire_async());
    // The clock's one timer thread sleeps until the task's deadline.
    assert!(clock.wait_for_waiters(1, LIMIT));
    clock.advance(Duration::from_secs(59));
    assert!(clock.wait_for_waiters(1, LIMIT), "still waiting");
    assert!(!task.is_finished());
    clock.advance(Duration::from_secs(1));
    let result = rt.block_on(task).unwrap();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    drop(held);
    assert_free(&name);
}

/// A real-clock timeout on the `futures` executor.
#[test]
fn timeout_on_system_clock_on_futures_executor() {
    let name = unique_name("async-sys-timeout");
    let _held = Spec::new(&name).acquire().unwrap();
    let spec = Spec::new(&name).with_timeout(Duration::from_millis(20));
    let err = futures::executor::block_on(spec.acquire_async()).unwrap_err();
    assert!(matches!(err, Error::Timeout));
    assert_eq!(err.to_string(), "timeout acquiring mutex");
}

/// Many async waiters on one manual clock (each spec given its own clone of
/// it) are served by one timer thread: the clock sees one waiter. When the
/// time passes, every one of them times out.
#[test]
fn async_waiters_on_one_clock_share_one_timer_thread() {
    let name = unique_name("async-one-timer");
    let _held = Spec::new(&name).acquire().unwrap();
    let clock = ManualClock::new();
    let (waker, _woken) = channel_waker();
    let mut waiting: Vec<_> = (1..=3)
        .map(|minutes| {
            let spec = Spec::new(&name)
                .with_clock(clock.clone())
                .with_timeout(Duration::from_secs(60 * minutes));
            let mut acquire = spec.acquire_async();
            assert!(poll_with(&mut acquire, &waker).is_pending());
            acquire
        })
        .collect();
    assert!(clock.wait_for_waiters(1, LIMIT));
    assert_eq!(clock.waiters(), 1, "one timer thread for the clock");
    clock.advance(Duration::from_secs(180));
    let results = futures::executor::block_on(futures::future::join_all(waiting.drain(..)));
    assert!(results.iter().all(|r| matches!(r, Err(Error::Timeout))));
}

/// The cancel token wakes a waiting task, which ends with `Cancelled`; a
/// token cancelled before the call means no acquisition, even of a free mutex.
#[test]
fn cancel_token_wakes_the_task() {
    let name = unique_name("async-cancel");
    let _held = Spec::new(&name).acquire().unwrap();
    let token = CancelToken::new();
    let spec = Spec::new(&name).with_cancel(token.clone());
    let mut acquire = spec.acquire_async();
    let (waker, woken) = channel_waker();
    assert!(poll_with(&mut acquire, &waker).is_pending());
    token.cancel();
    woken.recv_timeout(LIMIT).expect("cancel woke the task");
    match poll_with(&mut acquire, &waker) {
        Poll::Ready(Err(err)) => {
            assert!(matches!(err, Error::Cancelled));
            assert_eq!(err.to_string(), "cancelled acquiring mutex");
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }

    let free = Spec::new(unique_name("async-precancel")).with_cancel(token);
    let result = futures::executor::block_on(free.acquire_async());
    assert!(matches!(result, Err(Error::Cancelled)));
    assert_free(free.name());
}

/// Invalid specs fail from the future, touching nothing.
#[test]
fn invalid_spec_fails_from_the_future() {
    let result = futures::executor::block_on(Spec::new("not valid").acquire_async());
    assert!(matches!(result, Err(Error::InvalidSpec(_))), "{result:?}");
    let result = futures::executor::block_on(machine_mutex::acquire_async(
        &Spec::new("a").with_delay(Duration::ZERO),
    ));
    assert!(matches!(result, Err(Error::InvalidSpec(_))), "{result:?}");
}

/// Cancel by drop while another process holds the mutex: the future is
/// queued (its name's kernel waiter blocks in flock), then dropped; when
/// the holder releases, the dropped waiter must not take the mutex: a third
/// process acquires it (with a 30 s timeout, so a leak fails the test), and
/// then this process does too.
#[test]
fn drop_while_another_process_holds_does_not_acquire() {
    let name = unique_name("async-drop-xproc");
    let mut holder = spawn_child("hold", &name, &[]);
    holder.expect_line("locked");
    let rt = multi_thread();
    let spec = Spec::new(&name);
    rt.block_on(async {
        let mut acquire = spec.acquire_async();
        assert!(poll_once(&mut acquire).await.is_pending(), "queued");
        drop(acquire);
    });
    holder.release();
    holder.expect_line("released");
    let (status, _) = holder.finish();
    assert!(status.success());

    let mut third = spawn_child("acquire", &name, &[("MM_TEST_TIMEOUT_MS", "30000")]);
    third.expect_line("started");
    third.expect_line("acquired");
    let (status, _) = third.finish();
    assert!(status.success());

    let again = rt.block_on(spec.clone().with_timeout(LIMIT).acquire_async());
    assert!(again.unwrap().is_held());
}

/// A future dropped after the lock was handed to it, but before it was
/// polled again, releases it, and the next waiter is served.
///
/// Flock only: with the legacy socket, the second future's first bind may
/// fail while a child that another test thread is starting still shares
/// the just-closed socket (until its exec), and it then polls again after
/// the delay: Pending at the first poll (seen once in 20 runs of this file).
#[test]
fn drop_after_handoff_serves_the_next_waiter() {
    let name = unique_name("async-drop-handed");
    let held = Spec::new(&name).acquire().unwrap();
    let spec = Spec::new(&name).with_legacy_socket(false);
    let (first_waker, first_woken) = channel_waker();
    let (second_waker, second_woken) = channel_waker();
    let mut first = spec.acquire_async();
    let mut second = spec.acquire_async();
    assert!(poll_with(&mut first, &first_waker).is_pending());
    assert!(poll_with(&mut second, &second_waker).is_pending());
    drop(held);
    first_woken
        .recv_timeout(LIMIT)
        .expect("lock handed to first");
    drop(first);
    second_woken
        .recv_timeout(LIMIT)
        .expect("lock handed on to second");
    let guard = match poll_with(&mut second, &second_waker) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("woken but not handed the lock"),
    };
    assert!(matches!(spec.try_acquire(), Err(Error::WouldBlock)));
    drop(guard);
    assert_free(&name);
}

/// A service waiting for the mutex (held by another process) stops on a
/// shutdown signal through `tokio::select!`: the acquisition is dropped,
/// and when the holder releases, a later acquisition gets the mutex.
#[test]
fn select_with_shutdown_signal_on_tokio() {
    let name = unique_name("async-select");
    let mut holder = spawn_child("hold", &name, &[]);
    holder.expect_line("locked");
    let rt = multi_thread();
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let (queued_tx, queued_rx) = tokio::sync::oneshot::channel::<()>();
    let spec = Spec::new(&name);
    let service = rt.spawn({
        let spec = spec.clone();
        async move {
            let mut acquire = spec.acquire_async();
            assert!(poll_once(&mut acquire).await.is_pending());
            queued_tx.send(()).unwrap();
            tokio::select! {
                result = &mut acquire => Some(result.map(|guard| guard.is_held())),
                _ = shutdown_rx => None,
            }
        }
    });
    rt.block_on(async {
        queued_rx.await.unwrap();
        shutdown_tx.send(()).unwrap();
        assert!(service.await.unwrap().is_none(), "shut down, not acquired");
    });
    holder.release();
    holder.expect_line("released");
    let guard = rt
        .block_on(spec.clone().with_timeout(LIMIT).acquire_async())
        .expect("acquired after the shut-down waiter left");
    assert!(guard.is_held());
}

/// Blocking and async waiters of one process share one FIFO queue per
/// name: blocking, async, blocking, in the order they queued.
#[test]
fn blocking_and_async_waiters_share_one_fifo() {
    let name = unique_name("async-mixed");
    let held = Spec::new(&name).acquire().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let blocking = |label: &'static str| {
        let clock = ManualClock::new();
        let spec = Spec::new(&name)
            .with_clock(clock.clone())
            .with_timeout(Duration::from_secs(3600));
        let order = order.clone();
        let thread = std::thread::spawn(move || {
            let guard = spec.acquire().unwrap();
            order.lock().unwrap().push(label);
            drop(guard);
        });
        // Sleeping on its clock means it is queued.
        assert!(clock.wait_for_waiters(1, LIMIT), "{label} queued");
        thread
    };
    let first = blocking("blocking-1");
    let rt = multi_thread();
    let mut acquire = Spec::new(&name).acquire_async();
    assert!(rt.block_on(poll_once(&mut acquire)).is_pending());
    let task = rt.spawn({
        let order = order.clone();
        async move {
            let guard = acquire.await.unwrap();
            order.lock().unwrap().push("async");
            drop(guard);
        }
    });
    let third = blocking("blocking-2");
    drop(held);
    first.join().unwrap();
    rt.block_on(task).unwrap();
    third.join().unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        vec!["blocking-1", "async", "blocking-2"]
    );
}

/// Linux legacy socket: with the lock file free but the socket bound by
/// someone else, the future takes the lock file, then retries the socket
/// every `delay` on the spec's clock (one timer thread, no busy polling),
/// and completes once the socket is free. Dropping it while it retries
/// releases the lock file.
#[cfg(target_os = "linux")]
#[test]
fn legacy_socket_is_retried_on_the_clock() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};

    let name = unique_name("async-legacy");
    let socket_name = machine_mutex::legacy_socket_name(&name);
    let addr = SocketAddr::from_abstract_name(&socket_name.as_bytes()[1..]).unwrap();
    let other = UnixListener::bind_addr(&addr).unwrap();
    let clock = ManualClock::new();
    let spec = Spec::new(&name)
        .with_clock(clock.clone())
        .with_delay(Duration::from_secs(1));
    let flock_only = Spec::new(&name).with_legacy_socket(false);
    let (waker, woken) = channel_waker();

    // Dropped while retrying: the lock file it held is released.
    let mut acquire = spec.acquire_async();
    assert!(poll_with(&mut acquire, &waker).is_pending());
    assert!(matches!(flock_only.try_acquire(), Err(Error::WouldBlock)));
    drop(acquire);
    drop(
        flock_only
            .clone()
            .with_timeout(LIMIT)
            .acquire()
            .expect("lock file released on drop"),
    );

    // Retried every delay: completes once the socket is free.
    let mut acquire = spec.acquire_async();
    assert!(poll_with(&mut acquire, &waker).is_pending());
    assert!(
        clock.wait_for_waiters(1, LIMIT),
        "timer sleeps until the retry"
    );
    clock.advance(Duration::from_secs(1));
    woken.recv_timeout(LIMIT).expect("woken to retry");
    assert!(poll_with(&mut acquire, &waker).is_pending(), "still bound");
    drop(other);
    assert!(clock.wait_for_waiters(1, LIMIT));
    clock.advance(Duration::from_secs(1));
    woken.recv_timeout(LIMIT).expect("woken to retry");
    let guard = match poll_with(&mut acquire, &waker) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("socket free but not taken"),
    };
    assert!(UnixListener::bind_addr(&addr).is_err(), "socket held");
    drop(guard);
    // Lock file and socket both free (the socket is retried every 100 ms).
    assert_free(&name);
}

/// The example service (`examples/async_service.rs`), run by two processes
/// at once on one counter: every job of both runs its critical section
/// (no lost update), and no two were ever inside at once (the example
/// fails on overlap).
#[test]
fn example_service_serialises_two_processes() {
    const JOBS: usize = 20;
    let name = unique_name("async-example");
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    let counter_env = counter.to_str().unwrap();
    let jobs = JOBS.to_string();
    let env = [
        ("MM_TEST_JOBS", jobs.as_str()),
        ("MM_TEST_COUNTER", counter_env),
    ];
    let services = [
        spawn_child("example-service", &name, &env),
        spawn_child("example-service", &name, &env),
    ];
    for mut service in services {
        assert_eq!(service.expect_line("served"), JOBS.to_string());
        let (status, _) = service.finish();
        assert!(status.success());
    }
    assert_eq!(
        async_service::read_counter(&counter).unwrap(),
        2 * JOBS as u64
    );
}

/// A waker that calls into the library when woken: it finds the mutex
/// `other` held (`try_acquire`, which reads the queues), and starts and
/// drops an acquisition of it with a deadline (which queues, sets a timer
/// and leaves both again). It reports whether all that worked.
struct ReentrantWaker {
    other: String,
    report: Mutex<mpsc::Sender<bool>>,
}

impl Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        let busy = matches!(Spec::new(&self.other).try_acquire(), Err(Error::WouldBlock));
        let mut inner = Spec::new(&self.other).with_timeout(LIMIT).acquire_async();
        let waiting = poll_with(&mut inner, Waker::noop()).is_pending();
        drop(inner);
        let _ = self.report.lock().unwrap().send(busy && waiting);
    }
}

/// Wakers run in the library's helper threads (the kernel waiter, a timer
/// thread) with no lock of the library held: a waker that calls into the
/// library itself, as an executor that polls from `wake` would, does not
/// deadlock, on the hand-off path nor on the deadline path.
#[test]
fn wakers_may_call_into_the_library() {
    let name = unique_name("async-reentrant");
    let other = unique_name("async-reentrant-other");
    let _other_held = Spec::new(&other).acquire().unwrap();
    let (report, reports) = mpsc::channel();
    let waker = Waker::from(Arc::new(ReentrantWaker {
        other: other.clone(),
        report: Mutex::new(report),
    }));

    let held = Spec::new(&name).acquire().unwrap();
    let mut handed = Spec::new(&name).acquire_async();
    assert!(poll_with(&mut handed, &waker).is_pending());
    drop(held);
    let report = reports.recv_timeout(LIMIT);
    if report.is_err() {
        // Deadlocked: dropping it would wait for the library's lock forever.
        std::mem::forget(handed);
        panic!("the waker woken by the hand-off never finished");
    }
    assert!(report.unwrap());
    assert!(poll_with(&mut handed, &waker).is_ready());

    let clock = ManualClock::new();
    let mut timed = Spec::new(&other)
        .with_clock(clock.clone())
        .with_timeout(Duration::from_secs(60))
        .acquire_async();
    assert!(poll_with(&mut timed, &waker).is_pending());
    assert!(clock.wait_for_waiters(1, LIMIT));
    clock.advance(Duration::from_secs(60));
    let report = reports.recv_timeout(LIMIT);
    if report.is_err() {
        std::mem::forget(timed);
        panic!("the waker woken by the timer never finished");
    }
    assert!(report.unwrap());
    assert!(matches!(
        poll_with(&mut timed, &waker),
        Poll::Ready(Err(Error::Timeout))
    ));
}
