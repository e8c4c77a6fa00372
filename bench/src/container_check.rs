//! The container check of `bench agent --containers`: what the Datadog agent's Docker
//! integration reports, for the containers of one compose project, into the agent's
//! own windows (so `GET /`, `--print` and the live page show them).
//!
//! Every second it lists the project's running containers through the Engine API
//! (label `com.docker.compose.project`: its own project when it runs in a container of
//! one, else `--project`), finds each new one's cgroup under the host's cgroup mount
//! ([`CgroupCounters::for_container`]; no pid needed, so no `pid: host`), and submits
//! the Datadog container check's gauges:
//!
//! | metric | value |
//! |---|---|
//! | `container.cpu.usage`, `.user`, `.system` | nanocores: cgroup CPU ns per second |
//! | `container.memory.usage` | bytes charged, page cache included |
//! | `container.memory.rss` | anonymous memory (v1 `rss`, v2 `anon`), bytes |
//! | `container.memory.cache` | page cache, bytes |
//! | `container.memory.working_set` | usage less inactive file pages, bytes |
//!
//! tagged as the Datadog agent tags a container ([`container_tags`]): `container_name`,
//! `container_id`, `image_name`, `short_image`, `image_tag`, `docker_image`; `env`,
//! `service`, `version` from the `com.datadoghq.tags.*` labels, else from the
//! container's `DD_ENV`/`DD_SERVICE`/`DD_VERSION`; and `compose_project`,
//! `compose_service` (the Datadog agent has no built-in tag for the compose labels:
//! these are the names `DD_CONTAINER_LABELS_AS_TAGS` would give them in our pack).
//!
//! An engine that does not answer is said once, in one line, and retried every 10 s;
//! the agent serves DogStatsD meanwhile.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};

use crate::compose::ComposeError;
use crate::container_meta::{
    container_id, container_tags, own_container_id, ContainerInfo, PROJECT_LABEL,
};
use crate::containers::{CgroupCounters, CgroupDetail, ContainerSampler};

/// How often the check runs.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait before trying an unreachable engine again.
const RETRY: Duration = Duration::from_secs(10);

/// Flags of the container check (part of `bench agent`).
#[derive(Debug, Clone, clap::Args)]
pub struct ContainerArgs {
    /// Report each container of this compose project (CPU and memory from its cgroup),
    /// as the Datadog agent's Docker integration does: container.cpu.usage, …
    #[arg(long, env = "AGENT_CONTAINERS")]
    pub containers: bool,

    /// The Docker Engine API socket.
    #[arg(
        long,
        value_name = "PATH",
        env = "AGENT_DOCKER_SOCKET",
        default_value = "/var/run/docker.sock"
    )]
    pub docker_socket: PathBuf,

    /// Where the host's cgroup hierarchy is mounted (in a container: the host's
    /// /sys/fs/cgroup mounted read-only, e.g. at /host/sys/fs/cgroup).
    #[arg(
        long,
        value_name = "PATH",
        env = "AGENT_CGROUP_ROOT",
        default_value = "/sys/fs/cgroup"
    )]
    pub cgroup_root: PathBuf,

    /// The compose project to watch; default: the project of the agent's own container.
    #[arg(long, value_name = "NAME", env = "AGENT_PROJECT")]
    pub project: Option<String>,
}

/// The gauges for a container between two readings `secs` apart (CPU only then) or at
/// its first reading (`prev` none: memory only), as (metric, value).
pub fn gauges(
    prev: Option<&CgroupDetail>,
    now: &CgroupDetail,
    secs: f64,
) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    if let Some(p) = prev.filter(|_| secs > 0.0) {
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        out.push(("container.cpu.usage", rate(p.cpu_ns, now.cpu_ns)));
        if let (Some(a), Some(b)) = (p.user_ns, now.user_ns) {
            out.push(("container.cpu.user", rate(a, b)));
        }
        if let (Some(a), Some(b)) = (p.system_ns, now.system_ns) {
            out.push(("container.cpu.system", rate(a, b)));
        }
    }
    out.push(("container.memory.rss", now.rss_bytes as f64));
    for (name, v) in [
        ("container.memory.usage", now.memory_usage),
        ("container.memory.cache", now.cache_bytes),
        ("container.memory.working_set", now.working_set),
    ] {
        if let Some(v) = v {
            out.push((name, v as f64));
        }
    }
    out
}

/// The running check; dropping it stops it (within a second).
#[derive(Debug)]
pub struct ContainerCheck {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ContainerCheck {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the check on a thread of its own, submitting into `agent`.
pub fn start(args: &ContainerArgs, agent: agent::Submitter) -> std::io::Result<ContainerCheck> {
    let stop = Arc::new(AtomicBool::new(false));
    let (args, flag) = (args.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("container-check".into())
        .spawn(move || run(&args, &agent, &flag))?;
    Ok(ContainerCheck {
        stop,
        thread: Some(thread),
    })
}

/// Sleeps `d` in short steps; false when asked to stop.
fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

fn run(args: &ContainerArgs, agent: &agent::Submitter, stop: &AtomicBool) {
    let socket = args.docker_socket.display();
    let mut said_unreachable = false;
    while !stop.load(Ordering::Relaxed) {
        let sampler = match ContainerSampler::connect_socket(&args.docker_socket) {
            Ok(s) => s,
            Err(e) => {
                if !said_unreachable {
                    eprintln!(
                        "bench agent: --containers: cannot reach the Docker engine at unix://{socket} ({}): mount it (-v /var/run/docker.sock:/var/run/docker.sock:ro) or set --docker-socket; still serving DogStatsD, retrying every {}s",
                        cause(&e),
                        RETRY.as_secs()
                    );
                    said_unreachable = true;
                }
                if !pause(RETRY, stop) {
                    return;
                }
                continue;
            }
        };
        let project = match &args.project {
            Some(p) => p.clone(),
            None => match own_project(&sampler) {
                Ok(p) => p,
                Err(why) => {
                    eprintln!("bench agent: --containers: {why}");
                    return;
                }
            },
        };
        eprintln!(
            "bench agent: container check: compose project {project:?}, cgroups under {}, every {}s",
            args.cgroup_root.display(),
            INTERVAL.as_secs()
        );
        said_unreachable = false;
        let mut check = Check::new(project, args.cgroup_root.clone());
        loop {
            let started = Instant::now();
            if let Err(e) = check.tick(&sampler, agent) {
                eprintln!(
                    "bench agent: container check: Docker Engine API at unix://{socket}: {}; reconnecting",
                    cause(&e)
                );
                break;
            }
            if !pause(INTERVAL.saturating_sub(started.elapsed()), stop) {
                return;
            }
        }
        if !pause(Duration::from_secs(1), stop) {
            return;
        }
    }
}

/// The innermost cause, which is what says what is wrong (`No such file or directory`,
/// `Permission denied`), on one line.
fn cause(e: &ComposeError) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        s = c.to_string();
        source = c.source();
    }
    s.replace('\n', " ")
}

/// The compose project of the container this process runs in.
fn own_project(sampler: &ContainerSampler) -> Result<String, String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let hostname = read("/proc/sys/kernel/hostname").trim().to_owned();
    let mut candidates: Vec<String> =
        own_container_id(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"))
            .into_iter()
            .collect();
    // Compose and `docker run` name the container's host after its short id.
    if hostname.len() == 12 && hostname.chars().all(|c| c.is_ascii_hexdigit()) {
        candidates.push(hostname);
    }
    if candidates.is_empty() {
        return Err("not running in a container, so there is no compose project of its own to watch: pass --project NAME".into());
    }
    for id in &candidates {
        let Ok(info) = sampler.block_on(
            sampler
                .docker()
                .inspect_container(id, None::<InspectContainerOptions>),
        ) else {
            continue;
        };
        let name = info.name.unwrap_or_default();
        return info
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(PROJECT_LABEL).cloned())
            .ok_or_else(|| {
                format!(
                    "the agent's container {} has no {PROJECT_LABEL} label (not started by compose?): pass --project NAME",
                    name.trim_start_matches('/')
                )
            });
    }
    Err(format!(
        "the engine does not know the agent's container ({}): pass --project NAME",
        candidates.join(", ")
    ))
}

/// A container being watched.
#[derive(Debug)]
struct Watched {
    name: String,
    tags: Vec<String>,
    cgroup: Option<CgroupCounters>,
    last: Option<(Instant, CgroupDetail)>,
    /// Whether the missing cgroup was said already.
    said: bool,
}

/// The check's state: the project and its containers by id.
#[derive(Debug)]
struct Check {
    project: String,
    cgroup_root: PathBuf,
    watched: HashMap<String, Watched>,
}

impl Check {
    fn new(project: String, cgroup_root: PathBuf) -> Self {
        Check {
            project,
            cgroup_root,
            watched: HashMap::new(),
        }
    }

    /// One round: containers that came are added, those gone dropped, all read.
    fn tick(
        &mut self,
        sampler: &ContainerSampler,
        agent: &agent::Submitter,
    ) -> Result<(), ComposeError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{PROJECT_LABEL}={}", self.project)],
        )]);
        let list = sampler.block_on(sampler.docker().list_containers(Some(
            ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            },
        )))?;
        let ids: HashSet<String> = list.into_iter().filter_map(|c| c.id).collect();
        self.watched.retain(|id, _| ids.contains(id));
        for id in ids {
            if self.watched.contains_key(&id) {
                continue;
            }
            match self.describe(sampler, &id) {
                Ok(w) => {
                    self.watched.insert(id, w);
                }
                // Gone between the list and the inspect: the next round will tell.
                Err(ComposeError::Docker(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for w in self.watched.values_mut() {
            Self::read(w, &self.cgroup_root, agent);
        }
        Ok(())
    }

    fn describe(&self, sampler: &ContainerSampler, id: &str) -> Result<Watched, ComposeError> {
        let info = sampler.block_on(
            sampler
                .docker()
                .inspect_container(id, None::<InspectContainerOptions>),
        )?;
        let config = info.config.unwrap_or_default();
        let c = ContainerInfo {
            id: id.to_owned(),
            name: info
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
        };
        Ok(Watched {
            tags: container_tags(&c),
            name: c.name,
            cgroup: None,
            last: None,
            said: false,
        })
    }

    fn read(w: &mut Watched, root: &Path, agent: &agent::Submitter) {
        if w.cgroup.is_none() {
            match CgroupCounters::for_container(root, container_id(&w.tags)) {
                Ok(c) => w.cgroup = Some(c),
                Err(e) => {
                    if !w.said {
                        eprintln!("bench agent: container check: {}: {e} (is the host's /sys/fs/cgroup mounted at --cgroup-root?); retrying", w.name);
                        w.said = true;
                    }
                    return;
                }
            }
        }
        let Some(cgroup) = &w.cgroup else { return };
        let Ok(now) = cgroup.read_detail() else {
            // The container stopped: the next list drops it (and nothing is said).
            w.cgroup = None;
            w.said = true;
            return;
        };
        let at = Instant::now();
        let prev = w.last.as_ref();
        let secs = prev.map_or(0.0, |(t, _)| at.duration_since(*t).as_secs_f64());
        for (name, value) in gauges(prev.map(|(_, d)| d), &now, secs) {
            agent.gauge(name, value, &w.tags);
        }
        w.last = Some((at, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_a_rate_in_nanocores_memory_a_level() {
        let a = CgroupDetail {
            cpu_ns: 1_000_000_000,
            user_ns: Some(600_000_000),
            system_ns: Some(400_000_000),
            memory_usage: Some(10_000),
            rss_bytes: 4096,
            cache_bytes: Some(5000),
            working_set: Some(8000),
        };
        let b = CgroupDetail {
            cpu_ns: 1_500_000_000,
            user_ns: Some(900_000_000),
            system_ns: Some(600_000_000),
            rss_bytes: 8192,
            ..a
        };
        let first = gauges(None, &a, 0.0);
        assert!(!first.iter().any(|(n, _)| n.starts_with("container.cpu")));
        assert!(first.contains(&("container.memory.rss", 4096.0)));
        let g: HashMap<_, _> = gauges(Some(&a), &b, 2.0).into_iter().collect();
        assert_eq!(g["container.cpu.usage"], 250_000_000.0); // a quarter of a core
        assert_eq!(g["container.cpu.user"], 150_000_000.0);
        assert_eq!(g["container.cpu.system"], 100_000_000.0);
        assert_eq!(g["container.memory.rss"], 8192.0);
        assert_eq!(g["container.memory.working_set"], 8000.0);
        // A counter that went back (a restarted cgroup) is not a negative rate.
        let g: HashMap<_, _> = gauges(Some(&b), &a, 1.0).into_iter().collect();
        assert_eq!(g["container.cpu.usage"], 0.0);
    }

    #[test]
    fn the_cgroup_of_a_container_is_found_without_its_pid() {
        let root = std::env::temp_dir().join(format!("tf-check-{}", std::process::id()));
        let id = "f".repeat(64);
        // cgroup v1, cgroupfs driver.
        for (dir, file, text) in [
            ("cpuacct", "cpuacct.usage", "0\n"),
            (
                &format!("cpuacct/docker/{id}") as &str,
                "cpuacct.usage",
                "2000\n",
            ),
            (
                &format!("cpuacct/docker/{id}"),
                "cpuacct.stat",
                "user 1\nsystem 2\n",
            ),
            (
                &format!("memory/docker/{id}"),
                "memory.stat",
                "cache 10\nrss 20\ntotal_inactive_file 4\n",
            ),
            (
                &format!("memory/docker/{id}"),
                "memory.usage_in_bytes",
                "50\n",
            ),
        ] {
            std::fs::create_dir_all(root.join("v1").join(dir)).unwrap();
            std::fs::write(root.join("v1").join(dir).join(file), text).unwrap();
        }
        let d = CgroupCounters::for_container(&root.join("v1"), &id)
            .unwrap()
            .read_detail()
            .unwrap();
        assert_eq!(
            d,
            CgroupDetail {
                cpu_ns: 2000,
                user_ns: Some(10_000_000),
                system_ns: Some(20_000_000),
                memory_usage: Some(50),
                rss_bytes: 20,
                cache_bytes: Some(10),
                working_set: Some(46),
            }
        );
        // cgroup v2, systemd driver, found by the search.
        let scope = root.join(format!("v2/system.slice/deeper/docker-{id}.scope"));
        std::fs::create_dir_all(&scope).unwrap();
        std::fs::write(
            scope.join("cpu.stat"),
            "usage_usec 7\nuser_usec 5\nsystem_usec 2\n",
        )
        .unwrap();
        std::fs::write(
            scope.join("memory.stat"),
            "anon 30\nfile 12\ninactive_file 3\n",
        )
        .unwrap();
        std::fs::write(scope.join("memory.current"), "60\n").unwrap();
        let d = CgroupCounters::for_container(&root.join("v2"), &id)
            .unwrap()
            .read_detail()
            .unwrap();
        assert_eq!(
            (d.cpu_ns, d.user_ns, d.system_ns),
            (7000, Some(5000), Some(2000))
        );
        assert_eq!(
            (d.rss_bytes, d.cache_bytes, d.working_set),
            (30, Some(12), Some(57))
        );
        assert!(CgroupCounters::for_container(&root.join("v2"), &"e".repeat(64)).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
