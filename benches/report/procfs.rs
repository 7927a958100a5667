//! What the harness reads from Linux's /proc: who is blocked in flock, the
//! CPU time of a process, open descriptors, load and machine facts.

use std::path::Path;
use std::time::{Duration, Instant};

/// The inode number of `path`.
pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// The processes that `/proc/locks` shows blocked in `flock` on `inode`
/// (the lines with `->`: "N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF").
pub fn blocked_on(inode: u64) -> Vec<u32> {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut pids = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"->") || fields.get(2) != Some(&"FLOCK") {
            continue;
        }
        let (Some(pid), Some(dev_ino)) = (fields.get(5), fields.get(6)) else {
            continue;
        };
        let ino = dev_ino
            .rsplit(':')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        if ino == Some(inode) {
            if let Ok(pid) = pid.parse() {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Whether `/proc/locks` shows a request blocked on an open file
/// description record lock (`OFDLCK`, listed with pid -1) of `inode`: a
/// waiter of the fair queue asleep on its predecessor's turn.
pub fn ofd_blocked_on(inode: u64) -> bool {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    text.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"->")
            && fields.get(2) == Some(&"OFDLCK")
            && fields
                .get(6)
                .and_then(|id| id.rsplit(':').next())
                .and_then(|s| s.parse::<u64>().ok())
                == Some(inode)
    })
}

/// Waits until every process of `pids` is blocked in flock on `inode`, or
/// `limit` passes; returns whether they all were. Polls /proc/locks.
pub fn wait_blocked(pids: &[u32], inode: u64, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        let blocked = blocked_on(inode);
        if pids.iter().all(|p| blocked.contains(p)) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// CPU time and voluntary context switches (sleeps) of process `pid`, all
/// threads: the sum of `se.sum_exec_runtime` (ms, ns precision) and
/// `nr_voluntary_switches` of /proc/PID/task/*/sched. Falls back to utime +
/// stime of /proc/PID/stat (clock ticks) when `sched` is missing.
pub fn cpu(pid: u32) -> Option<(Duration, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0f64;
    let mut switches = 0u64;
    let mut found = false;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("sched")) else {
            continue;
        };
        for line in text.lines() {
            let mut parts = line.splitn(2, ':');
            let key = parts.next().unwrap_or("").trim();
            let value = parts.next().unwrap_or("").trim();
            match key {
                "se.sum_exec_runtime" => {
                    ns += value.parse::<f64>().unwrap_or(0.0) * 1e6;
                    found = true;
                }
                "nr_voluntary_switches" => switches += value.parse::<u64>().unwrap_or(0),
                _ => {}
            }
        }
    }
    if found {
        return Some((Duration::from_nanos(ns as u64), switches));
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, which is 100 on Linux.
    Some((Duration::from_millis(ticks * 10), 0))
}

/// The number of open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg prints them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// "MODEL, N CPUs, M GiB RAM, Linux KERNEL".
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cpus} CPUs, {:.0} GiB RAM, Linux {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}
