//! Per-process CPU and memory, read from /proc at 10 Hz.
//!
//! A [`Target`] is a role (`app`, `proxy`, `loadgen`) and the root pid of a process
//! tree: NGINX's master and its workers count together, as the Datadog Docker
//! integration counts a container. CPU is on-CPU time (user + system) in
//! nanoseconds, the sum over a process's threads of `/proc/PID/task/TID/schedstat`
//! (the scheduler's exact `sum_exec_runtime`; `/proc/PID/stat`'s utime + stime are
//! the same quantity in 10 ms ticks, used where schedstat is missing). Memory is read
//! three ways, because processes share pages (libraries, NGINX's master and workers):
//!
//! - **PSS** (`/proc/PID/smaps_rollup` `Pss`): each shared page divided among the
//!   processes mapping it, so a tree's PSS sums to what it really occupies. The bench's
//!   memory figure.
//! - **RssAnon** (`/proc/PID/status`): anonymous resident memory, what Datadog's
//!   `docker.mem.rss` reports for a container (cgroup `anon`/`rss`).
//! - **VmRSS**: every resident page, shared ones counted once per process; summing it
//!   over a tree counts a shared library as many times as processes map it.
//!
//! The load generator runs inside the bench process, so its target is the bench's
//! own pid restricted to the threads whose name starts with `loadgen`.
//!
//! The [`Sampler`] records a time series for the report's charts; the exact CPU
//! over a measured window comes from [`cpu_ns`] read at the window's edges.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::containers::CgroupCounters;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Sampling period.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// What to sample.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `app`, `proxy` or `loadgen`.
    pub role: String,
    /// What runs in that role, for the report.
    pub program: String,
    /// Root of the process tree.
    pub pid: u32,
    /// Only threads whose name starts with this (for the in-process load generator);
    /// `None`: the whole tree.
    pub thread_prefix: Option<String>,
    /// A container instead of a process tree (compose mode): its cgroup counters, the
    /// figures the Docker Engine API and the Datadog integration report (`pid` unused).
    pub container: Option<CgroupCounters>,
}

/// CPU time and memory of a target (a thread-restricted target: the whole process's
/// memory).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// user + system, nanoseconds.
    pub cpu_ns: u64,
    /// Sum of VmRSS, bytes (shared pages counted once per process).
    pub rss_bytes: u64,
    /// Sum of PSS, bytes (shared pages divided among their processes).
    pub pss_bytes: u64,
    /// Sum of RssAnon, bytes (containers: the cgroup's anonymous memory).
    pub anon_bytes: u64,
    /// Processes counted.
    pub processes: usize,
}

/// Memory of one process, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Memory {
    rss: u64,
    pss: u64,
    anon: u64,
}

fn memory(pid: u32) -> Memory {
    let kb = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_ascii_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Memory {
        rss: kb(&status, "VmRSS:"),
        pss: kb(&rollup, "Pss:"),
        anon: kb(&status, "RssAnon:"),
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Reads a target now. A process that has gone reads as zero.
pub fn read(target: &Target) -> Reading {
    if let Some(counters) = &target.container {
        let Ok(c) = counters.read() else {
            return Reading::default();
        };
        // CPU and anonymous memory from the cgroup, as the Docker integration reports
        // them; PSS and RSS from the container's processes (host pids).
        let mut r = Reading {
            cpu_ns: c.cpu_ns,
            anon_bytes: c.rss_bytes,
            processes: 0,
            ..Reading::default()
        };
        for pid in counters.pids() {
            let m = memory(pid);
            r.rss_bytes += m.rss;
            r.pss_bytes += m.pss;
            r.processes += 1;
        }
        r.processes = r.processes.max(1);
        return r;
    }
    match &target.thread_prefix {
        Some(prefix) => {
            let m = memory(target.pid);
            Reading {
                cpu_ns: threads_ns(target.pid, Some(prefix)),
                rss_bytes: m.rss,
                pss_bytes: m.pss,
                anon_bytes: m.anon,
                processes: 1,
            }
        }
        None => {
            let mut r = Reading::default();
            for pid in tree(target.pid) {
                let ns = threads_ns(pid, None);
                if ns > 0 || Path::new(&format!("/proc/{pid}")).exists() {
                    let m = memory(pid);
                    r.cpu_ns += ns;
                    r.rss_bytes += m.rss;
                    r.pss_bytes += m.pss;
                    r.anon_bytes += m.anon;
                    r.processes += 1;
                }
            }
            r
        }
    }
}

/// CPU nanoseconds of a target now (see [`read`]).
pub fn cpu_ns(target: &Target) -> u64 {
    read(target).cpu_ns
}

/// `(utime + stime, ppid)` from a stat file.
fn stat(path: &str) -> Option<(u64, u32)> {
    let s = fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

/// On-CPU nanoseconds of a process's threads (those named `prefix…` only, if given).
fn threads_ns(pid: u32, prefix: Option<&str>) -> u64 {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for e in dir.flatten() {
        let tid = e.file_name();
        let tid = tid.to_string_lossy();
        if let Some(prefix) = prefix {
            let comm =
                fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
            if !comm.trim_end().starts_with(prefix) {
                continue;
            }
        }
        total += task_ns(pid, &tid);
    }
    total
}

fn task_ns(pid: u32, tid: &str) -> u64 {
    let sched = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok();
    if let Some(ns) = sched.and_then(|s| s.split_ascii_whitespace().next()?.parse::<u64>().ok()) {
        return ns;
    }
    stat(&format!("/proc/{pid}/task/{tid}/stat")).map_or(0, |(ticks, _)| {
        (ticks as f64 * 1e9 / ticks_per_second()) as u64
    })
}

/// `root` and all its descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some((_, ppid)) = stat(&format!("/proc/{pid}/stat")) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// The machine's CPU time from `/proc/stat` (all CPUs, clock ticks): busy includes steal,
/// time a virtual CPU wanted to run and the host ran something else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// Ticks not idle and not waiting for I/O.
    pub busy: u64,
    /// All ticks.
    pub total: u64,
}

impl MachineCpu {
    /// Reads the aggregate `cpu` line now (zeros when unreadable).
    pub fn read() -> MachineCpu {
        let text = fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
            return MachineCpu::default();
        };
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
        // already counted in user.
        let f: Vec<u64> = line
            .split_ascii_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() < 5 {
            return MachineCpu::default();
        }
        let total: u64 = f.iter().sum();
        MachineCpu {
            busy: total - f[3] - f[4],
            total,
        }
    }

    /// Share of the machine's CPU time that was busy between `earlier` and `self`.
    pub fn busy_share_since(&self, earlier: &MachineCpu) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

/// One sample of one target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When.
    pub at: Instant,
    /// The reading.
    pub reading: Reading,
}

/// A background thread sampling targets every [`INTERVAL`].
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    series: Arc<Mutex<Vec<Vec<Point>>>>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `targets`; series are indexed like `targets`.
    pub fn start(targets: Vec<Target>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let series = Arc::new(Mutex::new(vec![Vec::new(); targets.len()]));
        let (s, d) = (stop.clone(), series.clone());
        let handle = thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                let mut next = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    let points: Vec<Point> = targets
                        .iter()
                        .map(|t| Point {
                            at: now,
                            reading: read(t),
                        })
                        .collect();
                    {
                        let mut d = d.lock().unwrap_or_else(|p| p.into_inner());
                        for (i, p) in points.into_iter().enumerate() {
                            d[i].push(p);
                        }
                    }
                    next += INTERVAL;
                    let now = Instant::now();
                    if next > now {
                        thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
            })
            .ok();
        Sampler {
            stop,
            series,
            handle,
        }
    }

    /// Stops and returns the series, one per target.
    pub fn finish(mut self) -> Vec<Vec<Point>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        std::mem::take(&mut *self.series.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU the calling thread has used so far, measured by the kernel's rusage (not by the
    /// /proc files under test).
    fn thread_cpu() -> Duration {
        use nix::sys::resource::{getrusage, UsageWho};
        let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage(RUSAGE_THREAD)");
        let d = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        d(u.user_time()) + d(u.system_time())
    }

    /// Spins until this thread has used `cpu` of CPU time: the same work on an idle or a
    /// loaded machine (wall time is what load stretches).
    fn spin_for_cpu(cpu: Duration) {
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - start < cpu {
            for _ in 0..10_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
    }

    fn me() -> Target {
        Target {
            role: "self".into(),
            program: "test".into(),
            pid: std::process::id(),
            thread_prefix: None,
            container: None,
        }
    }

    #[test]
    fn reads_own_process_and_sees_cpu_grow() {
        let me = me();
        let a = read(&me);
        assert!(a.rss_bytes > 0 && a.processes >= 1, "{a:?}");
        assert!(a.pss_bytes > 0 && a.pss_bytes <= a.rss_bytes, "{a:?}");
        assert!(a.anon_bytes > 0 && a.anon_bytes <= a.rss_bytes, "{a:?}");
        spin_for_cpu(Duration::from_millis(150));
        let b = read(&me);
        // The process used at least this thread's 150 ms (10 ms ticks where schedstat is
        // missing: allow a few).
        assert!(b.cpu_ns > a.cpu_ns + 100_000_000, "{a:?} {b:?}");
    }

    #[test]
    fn machine_cpu_sees_a_busy_thread() {
        let a = MachineCpu::read();
        assert!(a.total > 0, "/proc/stat should be readable: {a:?}");
        spin_for_cpu(Duration::from_millis(300));
        let b = MachineCpu::read();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let share = b.busy_share_since(&a);
        // One spinning thread keeps at least one CPU busy while it runs; whatever else ran
        // meanwhile only adds to the busy share.
        assert!(share >= 0.5 / cpus && share <= 1.0, "busy share {share}");
    }

    #[test]
    fn tree_includes_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = tree(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(t.contains(&child.id()), "{t:?}");
    }

    #[test]
    fn thread_filter_counts_only_named_threads() {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let h = thread::Builder::new()
            .name("loadgen-test".into())
            .spawn(move || {
                let mut x = 0u64;
                while !s.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x
            })
            .unwrap();
        let target = Target {
            role: "loadgen".into(),
            program: "bench".into(),
            pid: std::process::id(),
            thread_prefix: Some("loadgen-test".into()),
            container: None,
        };
        // The named thread spins until its CPU time shows (bounded by testkit's patience).
        let seen = testkit::wait("the named thread's CPU time to show")
            .within(Duration::from_secs(10))
            .holds(|| cpu_ns(&target) > 0);
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert!(seen, "the spinning thread should have CPU time");
        let none = Target {
            thread_prefix: Some("no-such-thread".into()),
            ..target
        };
        assert_eq!(cpu_ns(&none), 0);
    }

    #[test]
    fn sampler_collects_points() {
        let s = Sampler::start(vec![me()]);
        testkit::eventually("two samples", || s.series.lock().unwrap()[0].len() >= 2);
        let series = s.finish();
        assert_eq!(series.len(), 1);
        assert!(series[0].len() >= 2, "{}", series[0].len());
    }
}
