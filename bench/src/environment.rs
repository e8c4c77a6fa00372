//! Where and how the bench runs: machine facts, the build profile, program versions, the
//! output directory.

use std::path::{Path, PathBuf};

use report::model::Environment;

/// Build profile facts, from the build script. Cargo names both the dev and the test
/// profile "debug"; a binary with debug assertions on was built by `cargo test` (the
/// workspace's `[profile.test]`) and its figures are not the dev build's, so it says so.
pub fn build_profile() -> (&'static str, bool) {
    let profile = match env!("BENCH_PROFILE") {
        "debug" if cfg!(debug_assertions) => "test (debug assertions)",
        "debug" => "dev",
        p => p,
    };
    (profile, env!("BENCH_OPT_LEVEL") != "0")
}

/// Machine facts for the report.
pub fn environment(
    nginx_version: Option<String>,
    versions: std::collections::BTreeMap<String, String>,
) -> Environment {
    let (profile, optimized) = build_profile();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let memory_bytes = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    Environment {
        build_profile: profile.into(),
        optimized,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory_bytes,
        kernel: format!("Linux {}", read("/proc/sys/kernel/osrelease").trim()),
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        started_at: now_rfc3339(),
        duration_s: 0.0,
        nginx_version,
        mode: "process".into(),
        timed_wakeup_cpu_us: probe_timed_wakeup(),
        versions,
    }
}

/// A program's version: the first line its version flag prints (stdout, else stderr),
/// e.g. `HAProxy version 2.6.12-1+deb12u3 2025/10/03 - https://haproxy.org/`.
pub fn program_version(program: &str) -> Option<String> {
    let path = crate::topology::find_program(program)?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let flags: &[&str] = match name.as_str() {
        "caddy" => &["version"],
        "nginx" | "haproxy" | "apache2" | "httpd" | "lighttpd" => &["-v"],
        _ => &["--version"],
    };
    let out = std::process::Command::new(&path)
        .args(flags)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let first = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    first(&out.stdout).or_else(|| first(&out.stderr))
}

/// The versions of the programs the topologies run (proxies and command services; our
/// own are the bench's version).
pub fn versions(
    s: &crate::scenario::Scenario,
    topologies: &[crate::scenario::TopologySpec],
) -> std::collections::BTreeMap<String, String> {
    let services = s.services();
    let mut programs = Vec::new();
    for t in topologies {
        match t.kind {
            crate::scenario::TopologyKind::Nginx => programs.push("nginx".to_owned()),
            crate::scenario::TopologyKind::External => programs.push(
                crate::topology::command_program(t.command.as_deref().unwrap_or("")).to_owned(),
            ),
            _ => {}
        }
        if let Some((_, spec)) = services.of(t.service.as_ref()) {
            if let Some(c) = &spec.command {
                programs.push(crate::topology::command_program(c).to_owned());
            }
        }
    }
    programs.sort();
    programs.dedup();
    programs
        .into_iter()
        .filter_map(|p| {
            let name = p.rsplit('/').next().unwrap_or(&p).to_owned();
            Some((name, program_version(&p)?))
        })
        .collect()
}

/// Now, UTC, RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `bench/results/<timestamp>` in the source tree when it is there, else
/// `./bench-results/<timestamp>`.
pub fn default_out_dir() -> PathBuf {
    let stamp = now_rfc3339().replace(':', "-");
    let stamp = stamp
        .split('.')
        .next()
        .unwrap_or(&stamp)
        .trim_end_matches('Z')
        .to_owned()
        + "Z";
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    if Path::new(env!("CARGO_MANIFEST_DIR")).is_dir() {
        tree.join(stamp)
    } else {
        PathBuf::from("bench-results").join(stamp)
    }
}

/// The CPU one timed wake-up costs a thread here, µs: 400 sleeps of 250 µs on a thread of
/// its own, its scheduler run time divided by the wake-ups (about 0.1 s of wall time).
pub fn probe_timed_wakeup() -> Option<f64> {
    const SLEEPS: u32 = 400;
    std::thread::Builder::new()
        .name("wake-probe".into())
        .spawn(|| {
            let _ = nix::sys::prctl::set_timerslack(1_000);
            let run_ns = || -> Option<u64> {
                let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
                s.split_ascii_whitespace().next()?.parse().ok()
            };
            let before = run_ns()?;
            for _ in 0..SLEEPS {
                std::thread::sleep(std::time::Duration::from_micros(250));
            }
            let after = run_ns()?;
            Some(after.saturating_sub(before) as f64 / 1e3 / f64::from(SLEEPS))
        })
        .ok()?
        .join()
        .ok()
        .flatten()
}
