//! `bench agent --containers` against real containers: the container check reports each
//! container of its compose project (and no other project's) under the Datadog container
//! check's names and tags, the live page draws them with the requests and latency the
//! app sent, and a container that goes away leaves the page. Without an engine the
//! agent says so in one line and keeps serving DogStatsD.
//!
//! The containers are started with `docker run` and compose's labels (no compose needed),
//! on the host network so the app reaches the agent on 127.0.0.1, from the
//! `tinyfish:local` image (`deploy/build-offline`: nothing is pulled). They are removed
//! at the end, by id, even when the test fails. The agent runs on the host, reading the
//! host's /var/run/docker.sock and /sys/fs/cgroup (root, as in `.ci/run`).

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent::{SeriesPage, Snapshot};
use testkit::process::Process;

const IMAGE: &str = "tinyfish:local";

/// `docker ARGS`: its stdout, or its stderr as the error.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn require_engine_and_image() {
    if let Err(e) = docker(&["info", "--format", "{{.ServerVersion}}"]) {
        panic!("this test needs a Docker engine, and `docker info` failed: {e}");
    }
    if docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]).is_err() {
        panic!("image {IMAGE} not found: build it with deploy/build-offline (nothing is pulled)");
    }
}

/// Containers removed (by id) when dropped, whatever happened.
#[derive(Default)]
struct Containers(Vec<String>);

impl Containers {
    /// `docker run -d` an app container of compose project `project`, service `app`,
    /// unified service tag `service`, sending DogStatsD to 127.0.0.1:`dogstatsd`; its id
    /// and the address it listens on.
    fn app(&mut self, project: &str, service: &str, dogstatsd: u16) -> (String, SocketAddr) {
        let name = format!("{project}-app-1");
        let labels = [
            format!("com.docker.compose.project={project}"),
            "com.docker.compose.service=app".to_owned(),
            format!("com.datadoghq.tags.service={service}"),
            "com.datadoghq.tags.env=test".to_owned(),
            "com.datadoghq.tags.version=9.9.9".to_owned(),
        ];
        let envs = [
            "APP_LISTEN=127.0.0.1:0".to_owned(),
            "DD_AGENT_HOST=127.0.0.1".to_owned(),
            format!("DD_DOGSTATSD_PORT={dogstatsd}"),
            format!("DD_SERVICE={service}"),
            "DD_ENV=test".to_owned(),
        ];
        let mut args = vec!["run", "-d", "--name", &name, "--network", "host"];
        for l in &labels {
            args.extend(["--label", l]);
        }
        for e in &envs {
            args.extend(["--env", e]);
        }
        args.extend([IMAGE, "app"]);
        let id = docker(&args).unwrap_or_else(|e| panic!("docker run {name}: {e}"));
        self.0.push(id.clone());
        let addr = testkit::wait(format!("{name} to say where it listens"))
            .within(Duration::from_secs(30))
            .until_some(|| {
                let logs = Command::new("docker").args(["logs", &id]).output().ok()?;
                let text = String::from_utf8_lossy(&logs.stdout).into_owned()
                    + &String::from_utf8_lossy(&logs.stderr);
                text.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("listening on http://")?
                        .trim_end_matches('/')
                        .parse()
                        .ok()
                })
            });
        (id, addr)
    }

    fn remove(&mut self, id: &str) {
        docker(&["rm", "-f", id]).unwrap_or_else(|e| panic!("docker rm {id}: {e}"));
        self.0.retain(|c| c != id);
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}

/// `bench agent` on 127.0.0.1 port 0 with `extra` flags; its UDP address.
fn start_agent(extra: &[&str]) -> (Process, SocketAddr) {
    let agent = Process::start(
        Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(["agent", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(extra),
    );
    let udp = testkit::wait("the agent to say its UDP address").until_some(|| {
        let err = agent.stderr();
        let rest = &err[err.find("udp://")? + "udp://".len()..];
        rest.split(|c: char| c.is_whitespace()).next()?.parse().ok()
    });
    (agent, udp)
}

fn snapshot(http: SocketAddr) -> Snapshot {
    let r = testkit::http::get(http, "/");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_str(r.text()).expect("GET / is a snapshot")
}

fn series(http: SocketAddr) -> SeriesPage {
    let r = testkit::http::get(http, "/series");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_str(r.text()).expect("GET /series is a series page")
}

fn unique_project() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("tfagent{}x{nanos}", std::process::id())
}

#[test]
#[ignore = "needs a Docker engine: run by .ci/run with --ignored"]
fn the_agent_reports_its_projects_containers_and_draws_them() {
    require_engine_and_image();
    let project = unique_project();
    let other = format!("{project}other");
    let (mut agent, udp) = start_agent(&[
        "--containers",
        "--project",
        &project,
        "--docker-socket",
        "/var/run/docker.sock",
        "--cgroup-root",
        "/sys/fs/cgroup",
    ]);
    let http = agent.addr();
    let mut containers = Containers::default();
    let (app_id, app) = containers.app(&project, "tinyfish-app", udp.port());
    let (_, other_app) = containers.app(&other, "tinyfish-other", udp.port());
    let name = format!("{project}-app-1");

    // Load keeps the app's CPU above zero while we look.
    let load = |n: usize| {
        for _ in 0..n {
            assert_eq!(testkit::http::get(app, "/").status, 200);
        }
        assert_eq!(testkit::http::get(other_app, "/").status, 200);
    };
    let container_name = format!("container_name:{name}");
    let ours = &[
        "service:tinyfish-app",
        "compose_service:app",
        "env:test",
        "version:9.9.9",
        "short_image:tinyfish",
        container_name.as_str(),
    ][..];
    let snap = testkit::wait("container.cpu.usage > 0 and container.memory.rss > 0 for the app")
        .within(Duration::from_secs(60))
        .until_some(|| {
            load(50);
            let s = snapshot(http);
            let cpu = s.metric("container.cpu.usage", ours)?.value?;
            let rss = s.metric("container.memory.rss", ours)?.value?;
            (cpu > 0.0 && rss > 0.0).then_some(s)
        });
    let cpu = snap.metric("container.cpu.usage", ours).unwrap();
    assert_eq!(cpu.tag("container_id"), Some(app_id.as_str()), "{cpu:?}");
    assert_eq!(cpu.tag("compose_project"), Some(project.as_str()));
    for name in [
        "container.memory.usage",
        "container.memory.working_set",
        "container.cpu.user",
        "container.cpu.system",
    ] {
        assert!(snap.metric(name, ours).is_some(), "no {name} in {snap:#?}");
    }
    // The other project's container is not watched (its own DogStatsD still arrives).
    let leaked: Vec<_> = snap
        .metrics
        .iter()
        .filter(|m| m.name.starts_with("container."))
        .filter(|m| {
            m.tag("compose_project") == Some(other.as_str())
                || m.tag("service") == Some("tinyfish-other")
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "another project's container was reported: {leaked:#?}"
    );
    assert!(snap.total("tinyfish.app.requests", &["service:tinyfish-app"]) > 0.0);

    // The live page, and its series with a point for the service.
    let page = testkit::http::get(http, "/dashboard");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("<canvas"), "{}", page.text());
    let point = testkit::wait("a point of tinyfish-app with CPU, memory and requests")
        .within(Duration::from_secs(30))
        .until_some(|| {
            load(20);
            series(http).points.iter().rev().find_map(|p| {
                let s = p.services.get("tinyfish-app")?;
                (s.cpu_vcpu? > 0.0 && s.rss_mib? > 0.0 && s.requests_per_s? > 0.0)
                    .then(|| s.clone())
            })
        });
    assert!(point.p99_ms.is_some(), "{point:?}");
    let other_cpu = series(http).points.iter().any(|p| {
        p.services
            .get("tinyfish-other")
            .is_some_and(|s| s.cpu_vcpu.is_some())
    });
    assert!(
        !other_cpu,
        "the other project's container has CPU on the page"
    );

    // A container that goes away leaves the page's CPU graph within a few seconds.
    containers.remove(&app_id);
    testkit::wait("the removed container to leave the series")
        .within(Duration::from_secs(30))
        .until(|| {
            let page = series(http);
            let last = page.points.last().expect("points");
            last.services
                .get("tinyfish-app")
                .is_none_or(|s| s.cpu_vcpu.is_none())
        });

    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        agent.expect_exit(Duration::from_secs(10)),
        0,
        "{}",
        agent.stderr()
    );
    let err = agent.stderr_at_exit();
    assert!(!err.contains("cannot reach"), "{err}");
}

#[test]
fn without_an_engine_the_agent_says_so_once_and_serves_dogstatsd() {
    let dir = std::env::temp_dir().join(format!("tf-nodocker-{}", std::process::id()));
    let socket = dir.join("docker.sock");
    let (mut agent, udp) =
        start_agent(&["--containers", "--docker-socket", socket.to_str().unwrap()]);
    let want = format!(
        "cannot reach the Docker engine at unix://{}",
        socket.display()
    );
    testkit::wait("the agent to say the engine is unreachable")
        .until(|| agent.stderr().contains(&want));

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(b"tinyfish.app.requests:3|c|#service:tinyfish-app", udp)
        .unwrap();
    testkit::wait("the datagram in the snapshot").until(|| {
        snapshot(agent.addr()).total("tinyfish.app.requests", &["service:tinyfish-app"]) == 3.0
    });
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(agent.expect_exit(Duration::from_secs(10)), 0);
    let err = agent.stderr_at_exit();
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("Docker")).collect();
    assert_eq!(lines.len(), 1, "one line about the engine, got: {err}");
    assert!(
        lines[0].starts_with("bench agent: --containers: "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("still serving DogStatsD"), "{}", lines[0]);
}
