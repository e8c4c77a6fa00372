//! The containers end to end: the compose files validate (Compose v2 or docker-compose
//! 1.29, whichever runs here), `deploy/build-offline` builds the image without pulling,
//! and each topology comes up with the local agent, says hello on its published port,
//! gets its metrics to the agent with a service tag, is sampled through the Engine API
//! and through its cgroup counters (what the bench reads), and goes down leaving nothing
//! behind.
//!
//! One test function: the host ports 5000, 8080 and 8181 are fixed by the compose files
//! and cannot be shared by tests running in parallel. It needs a Docker engine and
//! compose, so it is ignored by default and run by `.ci/run` with `--ignored`; run so
//! without an engine, it fails saying what is missing. The first run builds static
//! release binaries for the image: minutes, not seconds.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bench::compose::{self, ComposeCommand, Project, Role, Topology, UpOptions};
use bench::containers::ContainerSampler;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether a `config` output publishes host port `port`: docker-compose 1.29 prints
/// `127.0.0.1:5000:5000/tcp`, Compose v2 the long form with `published: "5000"`.
fn publishes(cfg: &str, port: u16) -> bool {
    cfg.lines().any(|l| {
        let l = l.trim().trim_start_matches("- ");
        l.contains(&format!(":{port}:"))
            || l.starts_with(&format!("{port}:"))
            || l == format!("published: \"{port}\"")
            || l == format!("published: {port}")
    })
}

fn validate_configs(compose: &ComposeCommand, root: &Path, project: &str) {
    let local = compose::LOCAL_AGENT_FILE;
    // Alone (with the Datadog agent). The key is read by the agent container at start,
    // so `config` needs no datadog.env; a dummy image shows the override variable works.
    for topology in Topology::ALL {
        let cfg = compose
            .config(
                root,
                project,
                &[topology.file()],
                &[("DD_AGENT_IMAGE", "example.test/agent:dummy")],
            )
            .unwrap_or_else(|e| panic!("{} does not validate: {e}", topology.file()));
        for needle in [
            "example.test/agent:dummy",
            "DD_DOGSTATSD_NON_LOCAL_TRAFFIC",
            "/var/run/docker.sock",
            "/host/proc",
            "/host/sys/fs/cgroup",
            "datadog.env.example",
            "DD_AGENT_HOST: agent",
            "com.datadoghq.tags.service: tinyfish-app",
            "DD_SERVICE: tinyfish-app",
            "no-new-privileges:true",
            "read_only: true",
            "65532:65532",
            "bench",
            "/healthz",
            // compose/common.yml, through `extends`:
            "pid: host",
            "DD_CONTAINER_INCLUDE",
            "REVISION",
        ] {
            assert!(
                cfg.contains(needle),
                "{}: no {needle:?} in\n{cfg}",
                topology.file()
            );
        }
        assert!(
            !publishes(&cfg, 8125),
            "{}: DogStatsD must not be published\n{cfg}",
            topology.file()
        );
        match topology {
            Topology::Direct => assert!(publishes(&cfg, 5000), "{cfg}"),
            Topology::Proxied => {
                assert!(publishes(&cfg, 8080), "{cfg}");
                assert!(
                    !publishes(&cfg, 5000),
                    "the app must not be published\n{cfg}"
                );
                for needle in [
                    "condition: service_healthy",
                    "PROXY_UPSTREAMS: app:5000",
                    "deploy/proxy.toml",
                    "/etc/tinyfish/proxy.toml",
                    "DD_SERVICE: tinyfish-proxy",
                    "com.datadoghq.tags.service: tinyfish-proxy",
                    "/.proxy/health",
                ] {
                    assert!(cfg.contains(needle), "proxied: no {needle:?} in\n{cfg}");
                }
            }
        }
        // With the local agent: the Datadog agent is behind a profile, ours answers as `agent`.
        let cfg = compose
            .config(root, project, &[topology.file(), local], &[])
            .unwrap_or_else(|e| panic!("{} + {local} does not validate: {e}", topology.file()));
        for needle in [
            "local-agent:",
            "- datadog",
            "- agent",
            "--listen",
            "--containers",
            "/var/run/docker.sock:/var/run/docker.sock:ro",
            "/sys/fs/cgroup:/host/sys/fs/cgroup:ro",
        ] {
            assert!(
                cfg.contains(needle),
                "{} + {local}: no {needle:?} in\n{cfg}",
                topology.file()
            );
        }
        assert!(
            publishes(&cfg, 8181),
            "the agent snapshot must be published\n{cfg}"
        );
        assert!(
            !publishes(&cfg, 8125),
            "DogStatsD must not be published\n{cfg}"
        );
    }
}

/// compose/nginx.yml (NGINX in front of the app, Datadog's NGINX integration through
/// Autodiscovery) and compose/cgroup-host.yml (Compose v2 only).
fn validate_nginx_and_overrides(compose: &ComposeCommand, root: &Path, project: &str) {
    let nginx = "compose/nginx.yml";
    let cfg = compose
        .config(
            root,
            project,
            &[nginx],
            &[("NGINX_IMAGE", "example.test/nginx:dummy")],
        )
        .unwrap_or_else(|e| panic!("{nginx} does not validate: {e}"));
    for needle in [
        "example.test/nginx:dummy",
        "com.datadoghq.ad.checks",
        "nginx_status_url",
        "%%host%%:8081/nginx_status",
        "deploy/nginx/compose.conf",
        "/etc/tinyfish/nginx.conf",
        "condition: service_healthy",
        "com.datadoghq.tags.service: tinyfish-nginx",
        "com.datadoghq.tags.service: tinyfish-app",
        "pid: host",
        "read_only: true",
    ] {
        assert!(cfg.contains(needle), "{nginx}: no {needle:?} in\n{cfg}");
    }
    assert!(publishes(&cfg, 8080), "{cfg}");
    for port in [5000, 8081, 8125] {
        assert!(!publishes(&cfg, port), "{nginx} publishes {port}\n{cfg}");
    }
    let cfg = compose
        .config(root, project, &[nginx, compose::LOCAL_AGENT_FILE], &[])
        .unwrap_or_else(|e| panic!("{nginx} + local agent does not validate: {e}"));
    assert!(
        cfg.contains("local-agent:") && publishes(&cfg, 8181),
        "{cfg}"
    );

    // `cgroup: host` is Compose v2's; docker-compose 1.29 rejects the key, which is why
    // it is an override of its own.
    let files = ["compose/proxied.yml", "compose/cgroup-host.yml"];
    let with = compose.config(root, project, &files, &[]);
    if compose.is_v2() {
        let cfg = with.unwrap_or_else(|e| panic!("{files:?} do not validate: {e}"));
        assert!(cfg.contains("cgroup: host"), "{cfg}");
    } else {
        assert!(
            with.is_err(),
            "docker-compose 1.29 accepted `cgroup: host`: it can move into common.yml"
        );
    }
}

/// Polls the agent until `metric` tagged `service:<service>` counted at least one request.
fn wait_for_metric(project: &Project, metric: &str, service: &str) {
    let tag = format!("service:{service}");
    let mut last = String::from("no snapshot yet");
    let wait = testkit::wait(format!("{metric} with {tag} to reach the agent"))
        .within(Duration::from_secs(45))
        .every(Duration::from_millis(250));
    let found = wait.poll(|| match project.agent_snapshot() {
        Ok(snap) if snap.total(metric, &[tag.as_str()]) >= 1.0 => {
            Some(snap.metric(metric, &[tag.as_str()]).unwrap().clone())
        }
        Ok(snap) => {
            last = format!(
                "{} metrics: {:?}",
                snap.metrics.len(),
                snap.metrics
                    .iter()
                    .map(|m| (&m.name, &m.tags))
                    .collect::<Vec<_>>()
            );
            None
        }
        Err(e) => {
            last = e.to_string();
            None
        }
    });
    let Some(m) = found else {
        panic!(
            "{metric} with {tag} did not reach the agent within {:?}; last: {last}",
            wait.bound()
        );
    };
    assert!(
        m.tag("env").is_some() && m.tag("version").is_some(),
        "{m:?}"
    );
}

fn leftovers(project: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project={project}");
    let mut left = Vec::new();
    for (kind, args) in [
        (
            "container",
            vec!["ps", "-a", "-q", "--filter", label.as_str()],
        ),
        (
            "network",
            vec!["network", "ls", "-q", "--filter", label.as_str()],
        ),
        (
            "volume",
            vec!["volume", "ls", "-q", "--filter", label.as_str()],
        ),
    ] {
        left.extend(docker(&args).lines().map(|id| format!("{kind} {id}")));
    }
    left
}

fn check_topology(
    compose: &ComposeCommand,
    topology: Topology,
    opts: &UpOptions,
    sampler: &ContainerSampler,
) {
    let mut project = Project::up(compose, topology, opts)
        .unwrap_or_else(|e| panic!("{topology}: up failed: {e}"));
    assert_eq!(project.containers().len(), topology.roles().len());

    // Hardened and only the entry (and the agent's snapshot on loopback) published.
    for c in project.containers() {
        let sec = docker(&[
            "inspect",
            "--format",
            "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.SecurityOpt}}",
            &c.id,
        ]);
        // The local agent is uid 0 for the Engine API socket (root's), with nothing else.
        let user = if c.role == Role::Agent {
            "0:0"
        } else {
            "65532:65532"
        };
        assert_eq!(
            sec,
            format!("{user} true [no-new-privileges:true]"),
            "{}",
            c.service
        );
        if c.role == Role::Agent {
            let caps = docker(&["inspect", "--format", "{{.HostConfig.CapDrop}}", &c.id]);
            assert_eq!(caps, "[ALL]", "{}: capabilities", c.service);
        }
        let ports = docker(&["port", &c.id]);
        let expected = match c.role {
            Role::App if topology == Topology::Direct => "5000/tcp -> 127.0.0.1:5000",
            Role::Proxy => "8080/tcp -> 127.0.0.1:8080",
            Role::Agent => "8181/tcp -> 127.0.0.1:8181",
            Role::App => "",
        };
        assert_eq!(ports, expected, "{topology}: {} publishes", c.service);
    }

    let app = project
        .container(Role::App)
        .expect("an app container")
        .id
        .clone();
    let before = sampler.read(&app).expect("app stats");
    assert!(before.cpu_ns > 0 && before.rss_bytes > 0, "{before:?}");

    let r = testkit::http::get(project.entry(), "/");
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(
        r.status, 200,
        "{topology}: GET / answered {}: {body}",
        r.status
    );
    assert!(
        body.starts_with("Hello World on this date "),
        "{topology}: {body}"
    );
    for _ in 0..50 {
        assert_eq!(testkit::http::get(project.entry(), "/").status, 200);
    }

    wait_for_metric(&project, "tinyfish.app.requests", "tinyfish-app");
    if topology == Topology::Proxied {
        wait_for_metric(&project, "tinyfish.proxy.requests", "tinyfish-proxy");
    }
    // The local agent's container check, as Datadog's Docker integration: each service's
    // container CPU and memory, under Datadog's names and unified service tags.
    for role in topology.roles() {
        let service = match role {
            Role::App => "tinyfish-app",
            Role::Proxy => "tinyfish-proxy",
            Role::Agent => continue,
        };
        wait_for_metric(&project, "container.cpu.usage", service);
        wait_for_metric(&project, "container.memory.rss", service);
    }

    let after = sampler.read(&app).expect("app stats");
    assert!(
        after.cpu_ns > before.cpu_ns,
        "51 requests cost no CPU? {before:?} {after:?}"
    );
    // What the bench reads: the cgroup counters behind the API's figures, read directly.
    // The API's sample is up to a second old, so the counters are at least as far along.
    let direct = sampler
        .cgroup(&app)
        .and_then(|c| c.read().map_err(Into::into))
        .unwrap_or_else(|e| panic!("{topology}: the app's cgroup counters: {e}"));
    assert!(
        direct.cpu_ns >= after.cpu_ns && direct.rss_bytes > 0,
        "{topology}: cgroup counters {direct:?} behind the Engine API's {after:?}"
    );
    assert!(
        direct.rss_bytes < after.rss_bytes * 2 && after.rss_bytes < direct.rss_bytes * 2,
        "{topology}: cgroup memory {direct:?} and the Engine API's {after:?} disagree"
    );
    for c in project.containers() {
        let r = sampler
            .read(&c.id)
            .unwrap_or_else(|e| panic!("{}: {e}", c.service));
        assert!(r.cpu_ns > 0 && r.rss_bytes > 0, "{}: {r:?}", c.service);
        // A scratch container holds one small static process: far below 200 MB.
        assert!(r.rss_bytes < 200 << 20, "{}: {r:?}", c.service);
    }

    project
        .down()
        .unwrap_or_else(|e| panic!("{topology}: down failed: {e}"));
    let left = leftovers(project.name());
    assert!(
        left.is_empty(),
        "{topology}: left behind after down: {left:?}"
    );
}

/// `down -v --remove-orphans` of a project run from `files`, on drop.
struct Down<'a> {
    compose: &'a ComposeCommand,
    root: &'a Path,
    project: &'a str,
    files: &'a [&'a str],
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self
            .compose
            .command(self.root, self.project, self.files)
            .args(["down", "-v", "--remove-orphans", "--timeout", "10"])
            .output();
    }
}

/// compose/nginx.yml with the local agent, NGINX from a stand-in image made of Debian's
/// package (deploy/standin/make-nginx): hello through NGINX on 8080, `stub_status` on
/// 8081 inside the project's network (what Datadog's NGINX check reads), the app's
/// metrics at the agent, nothing left after `down`.
fn check_nginx(compose: &ComposeCommand, root: &Path, project: &str) {
    let out = Command::new(root.join("deploy/standin/make-nginx"))
        .output()
        .expect("deploy/standin/make-nginx runs");
    assert!(
        out.status.success(),
        "deploy/standin/make-nginx failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let files = ["compose/nginx.yml", compose::LOCAL_AGENT_FILE];
    let down = Down {
        compose,
        root,
        project,
        files: &files,
    };
    let up = compose
        .command(root, project, &files)
        .args(["up", "-d", "--no-build"])
        .env("NGINX_IMAGE", &image)
        .output()
        .expect("compose up runs");
    assert!(
        up.status.success(),
        "nginx.yml: up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let entry = Topology::Proxied.entry();
    let ps = |service: &str| {
        let out = compose
            .command(root, project, &files)
            .args(["ps", "-q", service])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let nginx = ps("nginx");
    let hello = testkit::wait("NGINX in compose/nginx.yml to answer on 127.0.0.1:8080")
        .within(Duration::from_secs(120))
        .every(Duration::from_millis(250))
        .poll(|| {
            testkit::http::try_get(entry, "/")
                .ok()
                .filter(|r| r.status == 200)
        })
        .unwrap_or_else(|| {
            panic!(
                "nginx.yml: no answer; nginx's log:\n{}",
                docker(&["logs", &nginx])
            )
        });
    assert!(
        hello.text().starts_with("Hello World on this date "),
        "{}",
        hello.text()
    );
    let sec = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}",
        &nginx,
    ]);
    assert_eq!(sec, "true [ALL]", "nginx hardening");
    // stub_status, from inside the project's network (the app's image has `bench`).
    let app = ps("app");
    // `docker` asserts the exit status: healthcheck exits 0 only on a 200.
    docker(&[
        "exec",
        &app,
        "bench",
        "healthcheck",
        "http://nginx:8081/nginx_status",
    ]);
    for _ in 0..20 {
        assert_eq!(testkit::http::get(entry, "/").status, 200);
    }
    let tag = "service:tinyfish-app";
    let seen = testkit::wait("the app's requests behind NGINX to reach the agent")
        .within(Duration::from_secs(45))
        .every(Duration::from_millis(250))
        .poll(|| {
            compose::agent_snapshot(compose::AGENT_HTTP, Duration::from_secs(5))
                .ok()
                .filter(|s| s.total("tinyfish.app.requests", &[tag]) >= 20.0)
        });
    assert!(
        seen.is_some(),
        "nginx.yml: the app's metrics did not reach the agent"
    );
    drop(down);
    let left = leftovers(project);
    assert!(
        left.is_empty(),
        "nginx.yml: left behind after down: {left:?}"
    );
}

#[test]
#[ignore = "needs a Docker engine and compose: run by .ci/run with --ignored"]
fn compose_topologies_end_to_end() {
    if let Err(e) = compose::engine_available() {
        panic!("this test needs a running Docker engine: {e}");
    }
    let compose = ComposeCommand::detect().unwrap_or_else(|e| {
        panic!("this test needs Compose v2 (`docker compose`) or docker-compose 1.29: {e}")
    });
    let root = compose::default_root();
    let project = format!("tinyfish-test-{}", std::process::id());
    let _ = writeln!(
        std::io::stderr(),
        "docker test: {} project {project}",
        compose.describe()
    );

    validate_configs(&compose, &root, &project);
    validate_nginx_and_overrides(&compose, &root, &project);

    let started = Instant::now();
    let status = Command::new(root.join("deploy/build-offline"))
        .current_dir(&root)
        .status()
        .expect("deploy/build-offline runs");
    assert!(status.success(), "deploy/build-offline failed: {status}");
    let _ = writeln!(
        std::io::stderr(),
        "docker test: image built in {:?}",
        started.elapsed()
    );

    let sampler = ContainerSampler::connect().expect("the Docker Engine API answers");
    let opts = UpOptions {
        root: root.clone(),
        project: project.clone(),
        health_timeout: Duration::from_secs(120),
    };
    for topology in Topology::ALL {
        check_topology(&compose, topology, &opts, &sampler);
    }
    check_nginx(&compose, &root, &project);
    assert!(leftovers(&project).is_empty());
}

/// The Datadog agent's start script (the `command:` of service `agent`), with compose's
/// `$$` escapes undone and the mounted directory replaced by `dir`.
fn agent_start_script(file: &Path, dir: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let start = text.find("      - |\n").expect("the agent's start script") + "      - |\n".len();
    let script: Vec<&str> = text[start..]
        .lines()
        .take_while(|l| l.starts_with("        ") || l.is_empty())
        .map(|l| l.get(8..).unwrap_or(""))
        .collect();
    script
        .join("\n")
        .replace("$$", "$")
        .replace("/etc/tinyfish/datadog", &dir.display().to_string())
        .replace(
            "exec /bin/entrypoint.sh",
            "echo entrypoint; env | grep '^DD_'",
        )
}

/// Runs the script under the host's /bin/sh, as the agent image's shell would.
fn run_script(script: &str) -> (bool, String, String) {
    let out = Command::new("/bin/sh")
        .args(["-c", script])
        .env_remove("DD_API_KEY")
        .env_remove("DD_SITE")
        .output()
        .expect("/bin/sh runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn datadog_agent_refuses_to_start_without_a_key() {
    let root = compose::default_root();
    let dir = std::env::temp_dir().join(format!("tinyfish-datadog-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let env = dir.join("datadog.env");
    // Written once, in compose/common.yml, which every topology extends.
    {
        let file = "compose/common.yml";
        let script = agent_start_script(&root.join(file), &dir);
        let _ = std::fs::remove_file(&env);

        let (ok, out, err) = run_script(&script);
        assert!(
            !ok && !out.contains("entrypoint"),
            "{}: started without datadog.env",
            file
        );
        assert!(
            err.contains("cp deploy/datadog/datadog.env.example deploy/datadog/datadog.env")
                && err.contains("local-agent.yml"),
            "{}: {err}",
            file
        );

        // The example as shipped has no key: still refused.
        std::fs::copy(root.join("deploy/datadog/datadog.env.example"), &env).unwrap();
        let (ok, out, err) = run_script(&script);
        assert!(
            !ok && !out.contains("entrypoint"),
            "{}: started with an empty key",
            file
        );
        assert!(err.contains("DD_API_KEY is empty"), "{}: {err}", file);

        std::fs::write(
            &env,
            "# test\nDD_API_KEY=0123456789abcdef0123456789abcdef\nDD_SITE=datadoghq.eu\n",
        )
        .unwrap();
        let (ok, out, err) = run_script(&script);
        assert!(ok, "{}: {err}", file);
        assert!(out.contains("entrypoint"), "{out}");
        assert!(
            out.contains("DD_API_KEY=0123456789abcdef0123456789abcdef"),
            "{out}"
        );
        assert!(out.contains("DD_SITE=datadoghq.eu"), "{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
