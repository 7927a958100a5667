//! 1,000 async waiters on one name in one process (feature `async`): FIFO
//! order, a bounded number of OS threads, and no busy polling while they
//! sleep, measured by process CPU time.
//!
//! This file holds a single test: it counts the threads of the whole
//! process (`/proc/self/task`), which other tests running in parallel in
//! the same binary would disturb.
#![cfg(target_os = "linux")]
// Tests build on current stable only; the MSRV (1.63) is the library's.
#![allow(clippy::incompatible_msrv)]

mod common;

use std::fs;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::unique_name;
use machine_mutex::Spec;

const WAITERS: usize = 1000;

/// Threads of this process now.
fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

/// The names of this process's threads, for failure messages.
fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|entry| fs::read_to_string(entry.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// CPU time (user + system) this process has used, all threads.
fn process_cpu_time() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// 1,000 tasks wait on one name (held by this process), each with a
/// one-hour timeout on the system clock so the timer is in use too:
/// - while they wait, the process has at most two more threads than before
///   (the name's kernel waiter and the clock's timer thread);
/// - over a 500 ms window while they all sleep, the process uses under
///   100 ms of CPU time (busy polling by 1,000 tasks would use about the
///   whole window on each of the runtime's two workers);
/// - on release they acquire one at a time (an "inside" counter never
///   exceeds one) in the order they queued;
/// - afterwards both helper threads end (waited for with a 30 s limit: a
///   thread's exit has no other signal to wait on).
#[test]
fn thousand_async_waiters_fifo_bounded_threads_idle_cpu() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // Start the workers before the baseline is taken.
    rt.block_on(async {
        let workers: Vec<_> = (0..4).map(|_| tokio::spawn(async {})).collect();
        for worker in workers {
            worker.await.unwrap();
        }
    });
    let name = unique_name("async-many");
    let spec = Spec::new(&name).with_timeout(Duration::from_secs(3600));
    let held = Spec::new(&name).acquire().unwrap();
    let baseline = threads();

    let order = Arc::new(Mutex::new(Vec::with_capacity(WAITERS)));
    let inside = Arc::new(AtomicUsize::new(0));
    let tasks = rt.block_on(async {
        let mut tasks = Vec::with_capacity(WAITERS);
        for i in 0..WAITERS {
            let mut acquire = spec.acquire_async();
            // Polled here, in order: this is when it joins the queue.
            let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut acquire).poll(cx)));
            assert!(first.await.is_pending(), "waiter {i} did not queue");
            let (order, inside) = (order.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let guard = acquire.await.unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                order.lock().unwrap().push(i);
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
            }));
        }
        tasks
    });

    let waiting = threads();
    assert!(
        waiting <= baseline + 2,
        "{waiting} threads while {WAITERS} tasks wait, {baseline} before: {:?}",
        thread_names()
    );

    let cpu_before = process_cpu_time();
    let wall_before = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let cpu = process_cpu_time() - cpu_before;
    let wall = wall_before.elapsed();
    eprintln!("{WAITERS} sleeping waiters: {cpu:?} CPU in {wall:?}, {waiting} threads ({baseline} before)");
    assert!(
        cpu < Duration::from_millis(100),
        "{cpu:?} of CPU time in {wall:?} while every waiter sleeps"
    );

    let released_at = Instant::now();
    drop(held);
    rt.block_on(async {
        for task in tasks {
            task.await.unwrap();
        }
    });
    eprintln!("{WAITERS} hand-offs in {:?}", released_at.elapsed());
    let order = order.lock().unwrap();
    assert_eq!(order.len(), WAITERS);
    assert!(
        order.iter().copied().eq(0..WAITERS),
        "not served in FIFO order"
    );

    let limit = Instant::now() + Duration::from_secs(30);
    while threads() > baseline && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        threads() <= baseline,
        "helper threads left behind: {:?}",
        thread_names()
    );
    drop(spec.try_acquire().expect("free at the end"));
}
