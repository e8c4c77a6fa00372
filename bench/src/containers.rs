//! Sampling containers: CPU and memory of each container of a compose project.
//!
//! [`ContainerSampler`] finds a container's cgroup through the Docker Engine API
//! (bollard: the container's main pid, then `/proc/PID/cgroup`), and [`CgroupCounters`]
//! reads its CPU and memory from the cgroup files directly: the counters behind the
//! Engine API's stats and the Datadog Docker integration's `docker.cpu.*` and
//! `docker.mem.rss`, exact at any instant. The API's own one-shot stats
//! ([`ContainerSampler::read`], a [`ContainerReading`]) refresh once a second, too coarse
//! for a measured window's edges; the bench uses them only to cross-check.

use std::path::{Path, PathBuf};

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use futures::StreamExt;

use crate::compose::ComposeError;

/// One reading of a container, as the Datadog Docker integration reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerReading {
    /// Cumulative CPU time of the container's cgroup, user + system, nanoseconds
    /// (`cpu_stats.cpu_usage.total_usage`: cgroup v1 `cpuacct.usage`, cgroup v2
    /// `cpu.stat usage_usec` × 1000). `docker.cpu.usage` is its rate, in % of a core.
    pub cpu_ns: u64,
    /// Resident memory, bytes: `memory_stats.stats.rss` on cgroup v1 (memory.stat
    /// `rss`: anonymous memory and swap cache, no page cache), `anon` on cgroup v2 (the
    /// same quantity; the Datadog agent reports v2's `anon` as docker.mem.rss). Mapped
    /// files (`file_mapped`) are page cache on both and are not counted, as the
    /// integration does not count them.
    pub rss_bytes: u64,
}

impl ContainerReading {
    /// The reading in one stats answer, or the name of the figure that is missing (a
    /// stopped container answers without figures).
    pub fn from_stats(stats: &ContainerStatsResponse) -> Result<Self, &'static str> {
        let cpu_ns = stats
            .cpu_stats
            .as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .ok_or("cpu_stats.cpu_usage.total_usage")?;
        let mem = stats
            .memory_stats
            .as_ref()
            .and_then(|m| m.stats.as_ref())
            .ok_or("memory_stats.stats")?;
        let rss_bytes = mem
            .get("rss")
            .or_else(|| mem.get("anon"))
            .copied()
            .ok_or("memory_stats.stats.rss (cgroup v1) or .anon (cgroup v2)")?;
        Ok(ContainerReading { cpu_ns, rss_bytes })
    }
}

/// Finds containers' cgroups (and reads their stats) through the Docker Engine API,
/// blocking (a small runtime of its own, so call it from plain threads, not from inside a
/// tokio runtime).
#[derive(Debug)]
pub struct ContainerSampler {
    docker: bollard::Docker,
    runtime: tokio::runtime::Runtime,
}

impl ContainerSampler {
    /// Connects to the local engine (DOCKER_HOST or the default socket) and negotiates
    /// the API version (engines older than bollard's default answer too).
    pub fn connect() -> Result<Self, ComposeError> {
        // Multi-threaded so the sampler thread and the run's window-edge readings can
        // each block_on a request at the same time without queueing behind each other.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("docker-stats")
            .enable_all()
            .build()?;
        let docker = runtime.block_on(async {
            bollard::Docker::connect_with_local_defaults()?
                .negotiate_version()
                .await
        })?;
        Ok(ContainerSampler { docker, runtime })
    }

    /// Connects to the engine at the Unix socket `socket` (`bench agent
    /// --docker-socket`), negotiating the API version: an error here means the engine
    /// does not answer there.
    pub fn connect_socket(socket: &Path) -> Result<Self, ComposeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("docker-api")
            .enable_all()
            .build()?;
        let path = socket.to_string_lossy();
        let docker = runtime.block_on(async {
            bollard::Docker::connect_with_unix(&path, 10, bollard::API_DEFAULT_VERSION)?
                .negotiate_version()
                .await
        })?;
        Ok(ContainerSampler { docker, runtime })
    }

    /// Runs an Engine API call to completion (from a plain thread).
    pub fn block_on<F: std::future::Future>(&self, call: F) -> F::Output {
        self.runtime.block_on(call)
    }

    /// The engine client, for async callers (see [`read_stats`]).
    pub fn docker(&self) -> &bollard::Docker {
        &self.docker
    }

    /// One reading of container `id` through the stats API. The engine refreshes a
    /// container's stats about once a second and a call waits for the next refresh
    /// (measured: 0.8–1 s a call), too coarse for a measured window's edges and a
    /// 10 Hz series: the bench reads [`CgroupCounters`] instead.
    pub fn read(&self, id: &str) -> Result<ContainerReading, ComposeError> {
        self.runtime.block_on(read_stats(&self.docker, id))
    }

    /// The cgroup counters behind container `id`'s stats, found through the engine
    /// (the container's main pid) and `/proc/PID/cgroup`.
    pub fn cgroup(&self, id: &str) -> Result<CgroupCounters, ComposeError> {
        let info = self.runtime.block_on(self.docker.inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        ))?;
        let pid = info
            .state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .ok_or(ComposeError::NoStats(id.to_owned(), "State.Pid"))?;
        CgroupCounters::for_pid(pid as u32)
            .map_err(|_| ComposeError::NoStats(id.to_owned(), "cgroup of State.Pid"))
    }
}

/// The cgroup files the Docker Engine API computes a container's stats from, read
/// directly: exact at any instant, where the API answers with a sample up to a second
/// old. CPU: cgroup v1 `cpuacct.usage`, v2 `cpu.stat usage_usec` (the API's
/// `cpu_stats.cpu_usage.total_usage`); memory: `memory.stat` `rss` (v1) or `anon` (v2),
/// the API's `memory_stats.stats.rss`/`anon` and the Datadog integration's docker.mem.rss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupCounters {
    cpu: PathBuf,
    memory_stat: PathBuf,
    v2: bool,
}

impl CgroupCounters {
    /// The counters of the cgroup process `pid` is in (the host's /sys/fs/cgroup).
    pub fn for_pid(pid: u32) -> std::io::Result<CgroupCounters> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        Self::from_proc_cgroup(&text, Path::new("/sys/fs/cgroup"))
            .ok_or_else(|| std::io::Error::other(format!("no cpu accounting cgroup for pid {pid}")))
    }

    /// Parses `/proc/PID/cgroup` against the cgroup mount `root`, preferring v1
    /// controllers (cpuacct, memory) and falling back to the v2 unified hierarchy.
    pub fn from_proc_cgroup(text: &str, root: &Path) -> Option<CgroupCounters> {
        let mut cpu = None;
        let mut mem = None;
        let mut unified = None;
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let path = path.trim_start_matches('/');
            if controllers.is_empty() {
                unified = Some(root.join(path));
            }
            for c in controllers.split(',') {
                match c {
                    "cpuacct" => {
                        for dir in ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"] {
                            let p = root.join(dir).join(path).join("cpuacct.usage");
                            if p.exists() || cpu.is_none() {
                                cpu = Some(p);
                            }
                        }
                    }
                    "memory" => mem = Some(root.join("memory").join(path).join("memory.stat")),
                    _ => {}
                }
            }
        }
        match (cpu, mem) {
            (Some(cpu), Some(memory_stat)) if cpu.exists() => Some(CgroupCounters {
                cpu,
                memory_stat,
                v2: false,
            }),
            _ => unified.map(|dir| CgroupCounters {
                cpu: dir.join("cpu.stat"),
                memory_stat: dir.join("memory.stat"),
                v2: true,
            }),
        }
    }

    /// The counters of container `id` (the full id), found in the cgroup hierarchy
    /// mounted at `root` without its pid: `/proc` may be another pid namespace's (the
    /// agent in a container). Looks where Docker puts containers (cgroupfs driver
    /// `docker/ID`, systemd driver `system.slice/docker-ID.scope`), then a few levels
    /// deep for a directory named after the id. cgroup v1 (cpuacct and memory
    /// controllers) when `root` has them, else v2.
    pub fn for_container(root: &Path, id: &str) -> std::io::Result<CgroupCounters> {
        let missing = || {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no cgroup for container {id} under {}", root.display()),
            )
        };
        let cpuacct = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
            .iter()
            .map(|d| root.join(d))
            .find(|d| d.join("cpuacct.usage").exists());
        if let Some(cpuacct) = cpuacct {
            let memory = root.join("memory");
            let cpu_dir = find_container_dir(&cpuacct, id).ok_or_else(missing)?;
            let rel = cpu_dir.strip_prefix(&cpuacct).unwrap_or(&cpu_dir);
            let mem_dir = Some(memory.join(rel))
                .filter(|d| d.join("memory.stat").exists())
                .or_else(|| find_container_dir(&memory, id))
                .ok_or_else(missing)?;
            return Ok(CgroupCounters {
                cpu: cpu_dir.join("cpuacct.usage"),
                memory_stat: mem_dir.join("memory.stat"),
                v2: false,
            });
        }
        let dir = find_container_dir(root, id)
            .filter(|d| d.join("cpu.stat").exists())
            .ok_or_else(missing)?;
        Ok(CgroupCounters {
            cpu: dir.join("cpu.stat"),
            memory_stat: dir.join("memory.stat"),
            v2: true,
        })
    }

    /// Everything the Datadog container check reports from this cgroup, read now.
    pub fn read_detail(&self) -> std::io::Result<CgroupDetail> {
        let basic = self.read()?;
        let mem = std::fs::read_to_string(&self.memory_stat)?;
        let dir = |p: &Path, f: &str| p.with_file_name(f);
        let read_u64 =
            |p: PathBuf| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
        let (user_ns, system_ns, usage, cache, inactive_file) = if self.v2 {
            let cpu = std::fs::read_to_string(&self.cpu).unwrap_or_default();
            (
                stat_value(&cpu, "user_usec").map(|us| us * 1000),
                stat_value(&cpu, "system_usec").map(|us| us * 1000),
                read_u64(dir(&self.memory_stat, "memory.current")),
                stat_value(&mem, "file"),
                stat_value(&mem, "inactive_file"),
            )
        } else {
            // cpuacct.usage_user/_sys are nanoseconds (Linux 4.7+); cpuacct.stat is in
            // USER_HZ ticks, 100 a second on every Linux the engine runs on.
            let ticks = std::fs::read_to_string(dir(&self.cpu, "cpuacct.stat")).unwrap_or_default();
            let user = read_u64(dir(&self.cpu, "cpuacct.usage_user"))
                .or_else(|| stat_value(&ticks, "user").map(|t| t * 10_000_000));
            let system = read_u64(dir(&self.cpu, "cpuacct.usage_sys"))
                .or_else(|| stat_value(&ticks, "system").map(|t| t * 10_000_000));
            (
                user,
                system,
                read_u64(dir(&self.memory_stat, "memory.usage_in_bytes")),
                stat_value(&mem, "cache"),
                stat_value(&mem, "total_inactive_file")
                    .or_else(|| stat_value(&mem, "inactive_file")),
            )
        };
        Ok(CgroupDetail {
            cpu_ns: basic.cpu_ns,
            user_ns,
            system_ns,
            memory_usage: usage,
            rss_bytes: basic.rss_bytes,
            cache_bytes: cache,
            working_set: usage.map(|u| u.saturating_sub(inactive_file.unwrap_or(0))),
        })
    }

    /// Host pids of the processes in the cgroup (`cgroup.procs` beside `memory.stat`).
    pub fn pids(&self) -> Vec<u32> {
        let procs = self.memory_stat.with_file_name("cgroup.procs");
        std::fs::read_to_string(procs)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Reads both counters now.
    pub fn read(&self) -> std::io::Result<ContainerReading> {
        let cpu = std::fs::read_to_string(&self.cpu)?;
        let cpu_ns = if self.v2 {
            stat_value(&cpu, "usage_usec").map(|us| us * 1000)
        } else {
            cpu.trim().parse().ok()
        }
        .ok_or_else(|| std::io::Error::other(format!("cannot read {}", self.cpu.display())))?;
        let mem = std::fs::read_to_string(&self.memory_stat)?;
        let rss_bytes = stat_value(&mem, if self.v2 { "anon" } else { "rss" }).unwrap_or(0);
        Ok(ContainerReading { cpu_ns, rss_bytes })
    }
}

/// What [`CgroupCounters::read_detail`] reads: the figures behind the Datadog
/// container check's `container.cpu.*` and `container.memory.*` metrics. `None`: the
/// kernel does not offer that file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupDetail {
    /// Cumulative CPU time, user + system, ns (as [`ContainerReading::cpu_ns`]).
    pub cpu_ns: u64,
    /// Cumulative user CPU time, ns.
    pub user_ns: Option<u64>,
    /// Cumulative system CPU time, ns.
    pub system_ns: Option<u64>,
    /// Memory charged to the cgroup, page cache included, bytes (v1
    /// `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_usage: Option<u64>,
    /// Anonymous memory, bytes (as [`ContainerReading::rss_bytes`]).
    pub rss_bytes: u64,
    /// Page cache, bytes (v1 `cache`, v2 `file`).
    pub cache_bytes: Option<u64>,
    /// Usage less inactive file pages: what the kernel cannot reclaim easily, bytes.
    pub working_set: Option<u64>,
}

/// The directory of container `id` in the cgroup hierarchy at `root`: the places the
/// engine's cgroup drivers use, then a breadth-first search a few levels deep.
fn find_container_dir(root: &Path, id: &str) -> Option<PathBuf> {
    let scope = format!("docker-{id}.scope");
    for rel in [
        format!("docker/{id}"),
        format!("system.slice/{scope}"),
        id.to_owned(),
    ] {
        let d = root.join(rel);
        if d.is_dir() {
            return Some(d);
        }
    }
    let mut level = vec![root.to_path_buf()];
    let mut visited = 0;
    for _ in 0..5 {
        let mut next = Vec::new();
        for dir in level {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                visited += 1;
                if visited > 20_000 {
                    return None;
                }
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name == id || name == scope.as_str() || name.contains(id) {
                    return Some(e.path());
                }
                next.push(e.path());
            }
        }
        level = next;
    }
    None
}

fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// One reading of container `id`, async.
pub async fn read_stats(
    docker: &bollard::Docker,
    id: &str,
) -> Result<ContainerReading, ComposeError> {
    let options = StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(true)
        .build();
    let mut stream = docker.stats(id, Some(options));
    let stats = stream
        .next()
        .await
        .ok_or(ComposeError::NoStats(id.to_owned(), "answer"))??;
    ContainerReading::from_stats(&stats).map_err(|what| ComposeError::NoStats(id.to_owned(), what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_counters_are_found_and_read_on_v1_and_v2() {
        let root = std::env::temp_dir().join(format!("tf-cgroup-{}", std::process::id()));
        let id = "docker/abc";
        std::fs::create_dir_all(root.join("cpuacct").join(id)).unwrap();
        std::fs::create_dir_all(root.join("memory").join(id)).unwrap();
        std::fs::write(
            root.join("cpuacct").join(id).join("cpuacct.usage"),
            "123456789\n",
        )
        .unwrap();
        std::fs::write(
            root.join("memory").join(id).join("memory.stat"),
            "cache 5\nrss 4096\ntotal_rss 4096\n",
        )
        .unwrap();
        let v1 = "4:memory:/docker/abc\n2:cpuacct:/docker/abc\n1:cpu:/docker/abc\n0::/docker/abc\n";
        let c = CgroupCounters::from_proc_cgroup(v1, &root).unwrap();
        assert_eq!(
            c.read().unwrap(),
            ContainerReading {
                cpu_ns: 123_456_789,
                rss_bytes: 4096
            }
        );

        std::fs::create_dir_all(root.join("system.slice/docker-abc.scope")).unwrap();
        std::fs::write(
            root.join("system.slice/docker-abc.scope/cpu.stat"),
            "usage_usec 42\nuser_usec 40\n",
        )
        .unwrap();
        std::fs::write(
            root.join("system.slice/docker-abc.scope/memory.stat"),
            "anon 8192\nfile 1\n",
        )
        .unwrap();
        let c =
            CgroupCounters::from_proc_cgroup("0::/system.slice/docker-abc.scope\n", &root).unwrap();
        assert_eq!(
            c.read().unwrap(),
            ContainerReading {
                cpu_ns: 42_000,
                rss_bytes: 8192
            }
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    fn stats(json: serde_json::Value) -> ContainerStatsResponse {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn readings_from_cgroup_v1_and_v2_stats() {
        let v1 = stats(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 123_456_789u64}},
            "memory_stats": {"usage": 9_000_000u64,
                             "stats": {"rss": 2_000_000u64, "total_rss": 2_000_000u64, "cache": 5_000_000u64}}
        }));
        assert_eq!(
            ContainerReading::from_stats(&v1).unwrap(),
            ContainerReading {
                cpu_ns: 123_456_789,
                rss_bytes: 2_000_000
            }
        );
        let v2 = stats(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 5_000u64}},
            "memory_stats": {"stats": {"anon": 3_000_000u64, "file": 7_000_000u64, "file_mapped": 100u64}}
        }));
        assert_eq!(
            ContainerReading::from_stats(&v2).unwrap(),
            ContainerReading {
                cpu_ns: 5_000,
                rss_bytes: 3_000_000
            }
        );
        let stopped = stats(serde_json::json!({"cpu_stats": {}, "memory_stats": {}}));
        assert!(ContainerReading::from_stats(&stopped)
            .unwrap_err()
            .contains("total_usage"));
    }
}
