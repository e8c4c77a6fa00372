//! The bench as a user runs it: the real binary, real child processes, real sockets.
//!
//! These runs are short (`--quick`) and check behaviour, not speed: every file is
//! written and valid, every topology has its rows, failures are explained, and no
//! child process outlives the bench, whether it is interrupted or killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn bench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bench"));
    // Scenario paths (config templates) are relative to the repository root.
    c.current_dir(repo_root());
    c
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyfish-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn installed(program: &str) -> bool {
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
    ]
    .iter()
    .any(|d| Path::new(d).join(program).is_file())
}

fn validate_against_schema(json: &serde_json::Value) {
    let schema_path = repo_root().join("bench/schema/results.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the committed schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "results.json does not match the schema:\n{}",
        errors.join("\n")
    );
}

#[test]
fn quick_run_writes_every_file_with_a_row_for_every_proxy() {
    let out = out_dir("quick");
    let o = bench()
        .args([
            "--scenario",
            "bench/scenarios/haproxy.toml",
            "--quick",
            "--no-progress",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for f in ["results.json", "summary.md", "report.html"] {
        let p = out.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 200,
            "{f} missing\n{}",
            text(&o)
        );
    }
    let raw = std::fs::read_to_string(out.join("results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
    validate_against_schema(&json);
    let results = report::load(out.join("results.json")).unwrap();
    assert!(results.complete);
    assert!(
        results.environment.build_profile == "dev"
            || results.environment.build_profile == "release"
    );

    let mut expected = vec!["direct", "proxied"];
    if installed("nginx") {
        expected.push("nginx");
    } else {
        eprintln!("SKIPPED part: nginx is not installed, so no nginx row is expected (scripts/setup installs it)");
    }
    if installed("haproxy") {
        expected.push("haproxy");
    } else {
        eprintln!("SKIPPED part: haproxy is not installed, so no haproxy row is expected");
    }
    for name in &expected {
        let trials: Vec<_> = results
            .results
            .iter()
            .filter(|t| t.topology == *name)
            .collect();
        assert_eq!(trials.len(), 2, "{name}: one rate × two rounds expected");
        for t in &trials {
            assert!(t.requests > 0 && t.achieved_rps > 0.0, "{name}: {t:?}");
            assert!(t.latency_us.p50 > 0.0 && t.latency_us.p50 <= t.latency_us.p99);
            let app = t.process("app").expect("app sampled");
            assert!(
                app.cpu_us_per_request > 0.0 && app.rss_peak_bytes > 0,
                "{name}: {app:?}"
            );
            assert!(t
                .process("loadgen")
                .is_some_and(|l| l.cpu_us_per_request > 0.0));
            if *name != "direct" {
                let proxy = t.process("proxy").expect("proxy sampled");
                assert!(
                    proxy.cpu_us_per_request > 0.0 && proxy.rss_peak_bytes > 0,
                    "{name}: {proxy:?}"
                );
            }
            // The app's own metrics reached the embedded agent.
            assert!(
                t.server.app_duration_us.is_some_and(|q| q.count > 0.0),
                "{name}: {:?}",
                t.server
            );
        }
        if *name != "direct" {
            let row = results
                .summary
                .iter()
                .find(|r| r.topology == *name)
                .expect("summary row");
            assert_eq!(row.baseline, "direct");
            let html = std::fs::read_to_string(out.join("report.html")).unwrap();
            let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
            assert!(html.contains(name) && md.contains(name));
        }
    }
    // Our proxy reports its own durations too.
    assert!(results
        .results
        .iter()
        .filter(|t| t.topology == "proxied")
        .all(|t| t.server.proxy_duration_us.is_some_and(|q| q.count > 0.0)));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("vCPU per 1000 req/s"),
        "headline missing:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_bad_scenario_is_one_clear_line_and_exit_2() {
    let dir = out_dir("bad-scenario");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    let good = std::fs::read_to_string(repo_root().join("bench/scenarios/default.toml")).unwrap();
    std::fs::write(&file, good.replace("rates = [", "rates = [\"fast\", ")).unwrap();
    let o = bench().arg("--scenario").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("\"fast\""),
        "{err}"
    );

    let o = bench()
        .args(["--scenario", "/does/not/exist.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/does/not/exist.toml"));

    let o = bench().arg("--no-such-flag").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_external_proxy_that_fails_to_start_is_explained() {
    let dir = out_dir("external");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    let good = std::fs::read_to_string(repo_root().join("bench/scenarios/default.toml")).unwrap();
    let scenario = good.split("[[topology]]").next().unwrap().to_owned()
        + "[[topology]]\nname = \"direct\"\nkind = \"direct\"\n\n[[topology]]\nname = \"broken\"\nkind = \"external\"\n"
        + "command = \"sh -c 'echo cannot bind {listen} for {upstream} >&2; exit 3'\"\n";
    std::fs::write(&file, scenario).unwrap();
    let t0 = Instant::now();
    let o = bench()
        .args(["--quick", "--no-progress", "--scenario"])
        .arg(&file)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken")
            && err.contains("exit code 3")
            && err.contains("cannot bind 127.0.0.1:"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Pids of every descendant of `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let Some(ppid) = f.get(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (c, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            out.push(*c);
            frontier.push(*c);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Starts a quick run and waits until it has at least `n` child processes.
// The child is returned to the caller, which waits on it; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn start_and_wait_for_children(out: &Path, n: usize) -> (std::process::Child, Vec<u32>) {
    let mut child = bench()
        .args(["--quick", "--no-progress", "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = descendants(child.id());
        if d.len() >= n {
            return (child, d);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the bench started no children within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_all_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            for p in &left {
                let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
            }
            panic!("orphans left behind: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killing_the_bench_leaves_no_orphan() {
    let out = out_dir("kill");
    let (mut child, kids) = start_and_wait_for_children(&out, 1);
    // Let it get a little further (a topology with a proxy may be starting).
    std::thread::sleep(Duration::from_millis(300));
    let mut all = kids;
    all.extend(descendants(child.id()));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    assert_all_gone(&all);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn ctrl_c_stops_children_writes_partial_results_and_exits_non_zero() {
    let out = out_dir("sigint");
    let (child, kids) = start_and_wait_for_children(&out, 1);
    std::thread::sleep(Duration::from_millis(500));
    let mut all = kids;
    all.extend(descendants(child.id()));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let t0 = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?} to stop",
        t0.elapsed()
    );
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert_all_gone(&all);
    let results = report::load(out.join("results.json")).expect("partial results written");
    assert!(!results.complete);
    assert!(results.warnings.iter().any(|w| w.contains("partial")));
    let _ = std::fs::remove_dir_all(&out);
}
