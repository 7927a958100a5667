//! Family 5: the cost of waiting. This process holds a name; P processes
//! (`hold` role) wait for it. Once all of them wait (kernel-blocking locks:
//! /proc/locks shows every one blocked in flock; the polling lock: 200 ms
//! after the last said `waiting`), their CPU time and voluntary context
//! switches (wake-ups) are read from /proc, again after the window, and the
//! differences summed. Then the name is released and they all finish.

use std::os::unix::io::OwnedFd;
use std::time::{Duration, Instant};

use crate::go_peer::GoPeer;
use crate::peers::{self, pid_field, Peer};
use crate::procfs;
use crate::Context;

/// One implementation's waiting cost.
#[derive(Debug, Clone)]
pub struct Row {
    pub peer: Peer,
    pub processes: usize,
    pub window: Duration,
    /// CPU time of all the waiters during the window.
    pub cpu: Duration,
    /// Wake-ups (voluntary context switches) of all waiters in the window.
    pub wakeups: u64,
    /// Whether every waiter was seen blocked in flock (kernel-blocking locks).
    pub all_blocked: Option<bool>,
}

impl Row {
    /// CPU time as a share of one core over the window, in percent.
    pub fn core_percent(&self) -> f64 {
        self.cpu.as_secs_f64() / self.window.as_secs_f64() * 100.0
    }
}

enum Holder {
    Mm(#[allow(dead_code)] machine_mutex::Releaser),
    Flock(#[allow(dead_code)] OwnedFd),
}

fn measure(ctx: &Context, peer: &Peer, tag: &str) -> Row {
    let name = ctx.name(tag);
    let processes = ctx.config.waiting_processes;
    let window = ctx.config.waiting_window;
    let holder = match peer {
        Peer::Python(_) => Holder::Flock(crate::roles::raw_flock(&peer.lock_path(&name))),
        _ => Holder::Mm(
            machine_mutex::Spec::new(&name)
                .acquire()
                .expect("hold the name"),
        ),
    };
    let mut waiters: Vec<GoPeer> = (0..processes)
        .map(|_| peer.spawn("hold", &name, &[]))
        .collect();
    let pids: Vec<u32> = waiters
        .iter_mut()
        .map(|w| pid_field(&w.expect_line("waiting")))
        .collect();
    let all_blocked = if peer.blocks_in_kernel() {
        let inode = procfs::inode(&peer.lock_path(&name));
        Some(procfs::wait_blocked(&pids, inode, Duration::from_secs(60)))
    } else {
        std::thread::sleep(Duration::from_millis(200));
        None
    };
    let sample = || -> (Duration, u64) {
        pids.iter()
            .fold((Duration::ZERO, 0), |(cpu, wakeups), &pid| {
                let (c, w) = procfs::cpu(pid).expect("read a waiter's CPU time");
                (cpu + c, wakeups + w)
            })
    };
    let (cpu0, wakeups0) = sample();
    let start = Instant::now();
    std::thread::sleep(window);
    let (cpu1, wakeups1) = sample();
    let window = start.elapsed();
    drop(holder);
    for waiter in &mut waiters {
        waiter.close_stdin();
    }
    for waiter in waiters {
        let (status, lines) = waiter.finish();
        assert!(
            status.success(),
            "{} ended with {status}: {lines:?}",
            peer.label()
        );
    }
    Row {
        peer: peer.clone(),
        processes,
        window,
        cpu: cpu1.saturating_sub(cpu0),
        wakeups: wakeups1.saturating_sub(wakeups0),
        all_blocked,
    }
}

/// Measures this crate (default spec, and with a timeout), Go and Python.
pub fn run(ctx: &Context) -> Vec<Row> {
    let peers = ctx.process_peers().into_iter().filter(|p| {
        p.same(&peers::MM)
            || p.same(&peers::MM_TIMEOUT)
            || matches!(p, Peer::Go(_) | Peer::Python(_))
    });
    let mut rows = Vec::new();
    for (p, peer) in peers.enumerate() {
        let row = measure(ctx, &peer, &format!("waiting-{p}"));
        eprintln!(
            "report:   {:<45} {} waiters, {:.1?}: CPU {:.3?} ({:.3}% of a core), {} wake-ups",
            row.peer.label(),
            row.processes,
            row.window,
            row.cpu,
            row.core_percent(),
            row.wakeups
        );
        rows.push(row);
    }
    rows
}
