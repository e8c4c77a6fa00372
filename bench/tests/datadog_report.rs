//! The bench reporting to a user's Datadog agent: the real binary, a real DogStatsD agent
//! (the project's own, on an ephemeral UDP port) named by `DD_AGENT_HOST` and
//! `DD_DOGSTATSD_PORT`, a short run of two topologies at two rates over two rounds.
//!
//! The agent must receive each trial's `tinyfish.bench.*` gauges, tagged with its topology,
//! rate and round, and a start and an end event per trial; and none of the app's or the
//! proxy's own metrics, which go to the bench's embedded agent (the results show they
//! arrived there).

use std::path::PathBuf;
use std::process::{Command, Output};

use agent::{AgentConfig, AgentHandle, Snapshot};

fn bench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bench"));
    c.current_dir(testkit::process::repo_root());
    for v in testkit::dogstatsd::DATADOG_VARS {
        c.env_remove(v);
    }
    c
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyfish-dd-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn text(o: &Output) -> String {
    testkit::process::describe(o)
}

/// The user's agent, on a runtime of its own.
fn user_agent() -> (tokio::runtime::Runtime, AgentHandle) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let agent = rt.block_on(agent::start(AgentConfig::ephemeral())).unwrap();
    (rt, agent)
}

const TOPOLOGIES: [&str; 2] = ["direct", "proxied"];
const RATES: [&str; 2] = ["200", "400"];
const ROUNDS: usize = 2;

#[test]
fn each_trial_reaches_the_users_agent_and_the_apps_metrics_do_not() {
    let (rt, agent) = user_agent();
    let d = dir("run");
    std::fs::create_dir_all(&d).unwrap();
    let scenario = d.join("tiny.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"dd-tiny\"\nrounds = {ROUNDS}\nrates = [{}]\nbaseline_twice = false\n\
             [thresholds]\nmachine_busy = 1.0\nloadgen_thread_busy = 1.0\n\
             [load]\nconnections = 4\nwarmup = \"100ms\"\nmeasure = \"400ms\"\n\
             [capacity]\nconnections = 4\nwarmup = \"100ms\"\nmeasure = \"300ms\"\n\
             [[topology]]\nname = \"direct\"\nkind = \"direct\"\n\
             [[topology]]\nname = \"proxied\"\nkind = \"proxied\"\n",
            RATES.join(", ")
        ),
    )
    .unwrap();
    let port = agent.udp_addr().port().to_string();
    let o = bench()
        .args(["--no-progress", "--scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(d.join("out"))
        .env("DD_AGENT_HOST", "127.0.0.1")
        .env("DD_DOGSTATSD_PORT", &port)
        .env("DD_ENV", "dd-test")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!(
            "reporting each trial to Datadog at udp://127.0.0.1:{port}"
        )),
        "one line says where the reports go\n{}",
        text(&o)
    );

    let trials = TOPOLOGIES.len() * RATES.len() * ROUNDS;
    // Sent before the bench exited; the agent may still be reading its socket.
    let mut snap = Snapshot::default();
    testkit::eventually("every trial's end event at the user's agent", || {
        snap = agent.snapshot();
        snap.events.len() >= 2 * trials
    });
    rt.block_on(agent.shutdown());
    assert_eq!(snap.malformed, 0, "{:?}", snap.malformed_by_kind);

    // Two events a trial: started and finished, each tagged with where it was.
    assert_eq!(snap.events.len(), 2 * trials, "{:#?}", snap.events);
    let has = |tags: &[String], t: &str| tags.iter().any(|x| x == t);
    for phase in ["started", "finished"] {
        let of_phase: Vec<_> = snap
            .events
            .iter()
            .filter(|e| has(&e.tags, &format!("trial:{phase}")))
            .collect();
        assert_eq!(of_phase.len(), trials, "{phase}: {:#?}", snap.events);
        for e in of_phase {
            assert!(e.title.starts_with("tinyfish bench: "), "{e:?}");
            assert!(e.title.ends_with(phase), "{e:?}");
            for t in ["service:tinyfish-bench", "env:dd-test", "scenario:dd-tiny"] {
                assert!(has(&e.tags, t), "{t} in {e:?}");
            }
        }
    }

    // Every trial's gauges, by topology, rate and round.
    for topology in TOPOLOGIES {
        for rate in RATES {
            for round in 1..=ROUNDS {
                let tags = [
                    format!("topology:{topology}"),
                    format!("rate:{rate}"),
                    format!("round:{round}"),
                ];
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                for name in [
                    "tinyfish.bench.rate.achieved",
                    "tinyfish.bench.latency.p50",
                    "tinyfish.bench.latency.p99",
                    "tinyfish.bench.server.cpu.us_per_request",
                    "tinyfish.bench.server.memory.pss",
                    "tinyfish.bench.errors",
                ] {
                    let m = snap
                        .metric(name, &tags)
                        .unwrap_or_else(|| panic!("{name} {tags:?} at the user's agent"));
                    assert!(m.value.is_some_and(f64::is_finite), "{m:?}");
                }
                let achieved = snap
                    .metric("tinyfish.bench.rate.achieved", &tags)
                    .and_then(|m| m.value)
                    .unwrap_or(0.0);
                assert!(achieved > 0.0, "{tags:?}: achieved {achieved}");
                let app = [&tags[..], &["role:app", "program:tinyfish-app"]].concat();
                for name in [
                    "tinyfish.bench.cpu.us_per_request",
                    "tinyfish.bench.memory.pss",
                ] {
                    assert!(snap.metric(name, &app).is_some(), "{name} {app:?}");
                }
            }
        }
    }
    assert!(snap
        .metric(
            "tinyfish.bench.cpu.us_per_request",
            &["topology:proxied", "role:proxy"]
        )
        .is_some());

    // Only the bench's reports: the app's and proxy's metrics went to the embedded agent.
    let strays: Vec<&str> = snap
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .filter(|n| !n.starts_with("tinyfish.bench."))
        .collect();
    assert!(strays.is_empty(), "not the bench's: {strays:?}");
    let results = report::load(d.join("out/results.json")).unwrap();
    assert_eq!(results.results.len(), trials);
    for t in &results.results {
        assert!(
            t.server.app_requests.is_some_and(|n| n > 0.0),
            "{} round {}: the app's metrics reached the bench's own agent: {:?}",
            t.topology,
            t.round,
            t.server
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_unparsable_dogstatsd_url_is_one_line_and_exit_2_before_anything_starts() {
    let d = dir("bad-url");
    let out = d.join("out");
    let o = bench()
        .args(["--quick", "--no-progress", "--out"])
        .arg(&out)
        .env("DD_DOGSTATSD_URL", "tcp://127.0.0.1:8125")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(
        lines[0].starts_with("bench: DD_DOGSTATSD_URL: ")
            && lines[0].contains("udp://host:port")
            && lines[0].contains("\"tcp://127.0.0.1:8125\""),
        "{}",
        lines[0]
    );
    assert!(o.stdout.is_empty(), "{}", text(&o));
    assert!(!out.exists(), "nothing was started or written");

    let o = bench()
        .args(["--quick", "--no-progress", "--out"])
        .arg(&out)
        .env("DD_AGENT_HOST", "127.0.0.1")
        .env("DD_DOGSTATSD_PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("bench: DD_DOGSTATSD_PORT: "),
        "{}",
        text(&o)
    );
}
