//! Bring your own service: a scenario whose baseline is a user's command (here the
//! original Flask app on Flask's own server, a real Python process) is run by the real
//! bench binary, which starts the command, measures it like the app (its whole process
//! tree's CPU and memory), puts our proxy in front of it, and stops it with nothing left
//! behind; and a service that is already running is loaded but not sampled, which the
//! report says.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyfish-svc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A short scenario: one round at one low fixed rate, `service` as every topology's.
fn scenario(service: &str) -> String {
    format!(
        "name = \"byo\"\nrounds = 1\nrates = [100]\nbaseline_twice = false\nservice = \"mine\"\n\
         [load]\nconnections = 4\nthreads = 1\nwarmup = \"200ms\"\nmeasure = \"800ms\"\n\
         [capacity]\nconnections = 4\nwarmup = \"100ms\"\nmeasure = \"300ms\"\n\
         [services.mine]\n{service}\n\
         [[topology]]\nname = \"direct\"\nkind = \"direct\"\n\
         [[topology]]\nname = \"proxied\"\nkind = \"proxied\"\n"
    )
}

/// The bench running scenario `file` into `out`.
fn bench(file: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bench"));
    c.current_dir(testkit::process::repo_root())
        .arg("--scenario")
        .arg(file)
        .args(["--no-progress", "--out"])
        .arg(out);
    c
}

/// Its stdout and stderr, for a failure's message.
fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn results(out: &Path) -> report::model::Results {
    let raw = std::fs::read_to_string(out.join("results.json")).unwrap();
    testkit::schema::assert_valid_results(&serde_json::from_str(&raw).unwrap());
    report::load(out.join("results.json")).unwrap()
}

#[test]
fn a_command_service_is_started_sampled_and_stopped_with_nothing_left_behind() {
    if !testkit::installed::or_skip(
        "a user command as the baseline",
        &["/usr/bin/python3", "/usr/lib/python3/dist-packages/flask"],
        "scripts/setup --all installs python3-flask",
    ) {
        return;
    }
    let out = out_dir("command");
    let file = out.join("byo.toml");
    std::fs::write(
        &file,
        scenario(
            "command = \"/usr/bin/python3 {dir}/app.py --listen {listen}\"\n\
             dir = \"services/flask\"\nprogram = \"flask\"",
        ),
    )
    .unwrap();
    let child = bench(&file, &out.join("run"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The service's processes while the bench runs them.
    let service = testkit::wait("the bench to start the Flask service")
        .within(Duration::from_secs(60))
        .poll(|| {
            let d = testkit::process::descendants(child.id());
            let pids: Vec<u32> = d
                .iter()
                .filter(|(_, c)| c.contains("app.py --listen 127.0.0.1:"))
                .map(|(p, _)| *p)
                .collect();
            (!pids.is_empty()).then_some(pids)
        });
    let o = child.wait_with_output().unwrap();
    let said = output_text(&o);
    assert!(o.status.success(), "{said}");
    let service = service.unwrap_or_else(|| panic!("no Flask process was seen\n{said}"));
    testkit::process::assert_all_gone(&service);

    let r = results(&out.join("run"));
    for topology in ["direct", "proxied"] {
        let trial = r
            .results
            .iter()
            .find(|t| t.topology == topology)
            .unwrap_or_else(|| panic!("no {topology} trial\n{said}"));
        let app = trial
            .process("app")
            .unwrap_or_else(|| panic!("{topology}: the service was not sampled"));
        assert_eq!(app.program, "flask");
        assert!(app.cpu_s > 0.0 && app.pss_peak_bytes > 1_000_000, "{app:?}");
        assert!(
            trial.requests > 0 && trial.errors == 0,
            "{topology}: {trial:?}"
        );
    }
    assert!(
        r.scenario.services["direct"].starts_with("mine: /usr/bin/python3"),
        "{:?}",
        r.scenario.services
    );
    assert!(
        r.environment.versions.contains_key("python3"),
        "{:?}",
        r.environment.versions
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_running_service_is_loaded_but_not_sampled_and_the_report_says_so() {
    let app = testkit::app().start();
    let out = out_dir("address");
    let file = out.join("byo.toml");
    std::fs::write(&file, scenario(&format!("address = \"{}\"", app.addr()))).unwrap();
    let o = bench(&file, &out.join("run")).output().unwrap();
    let said = output_text(&o);
    assert!(o.status.success(), "{said}");
    let r = results(&out.join("run"));
    let note = r
        .warnings
        .iter()
        .find(|w| w.contains("already running"))
        .unwrap_or_else(|| panic!("no note about the running service: {:?}", r.warnings));
    assert!(
        note.contains(&app.addr().to_string()) && note.contains("direct, proxied"),
        "{note}"
    );
    assert!(said.contains("already running"), "{said}");
    for t in &r.results {
        assert!(
            t.process("app").is_none(),
            "{}: a service the bench did not start was sampled",
            t.topology
        );
        assert!(t.requests > 0 && t.errors == 0, "{}: {t:?}", t.topology);
    }
    let proxied = r.results.iter().find(|t| t.topology == "proxied").unwrap();
    assert!(proxied.process("proxy").is_some_and(|p| p.cpu_s > 0.0));
    let _ = std::fs::remove_dir_all(&out);
}

/// A service command that exits before it is ready is one error naming the topology and
/// the service, with the exit status and the program's last words, and a non-zero exit.
#[test]
fn a_service_that_exits_is_explained_with_its_last_words() {
    let out = out_dir("exits");
    let file = out.join("byo.toml");
    std::fs::write(
        &file,
        scenario(
            "command = \"sh -c 'echo cannot import app: no module named flask >&2; exit 3' {listen}\"",
        ),
    )
    .unwrap();
    let o = bench(&file, &out.join("run")).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    for want in [
        "topology direct",
        "mine exited (exit code 3) before it was ready",
        "| cannot import app: no module named flask",
    ] {
        assert!(stderr.contains(want), "{want:?} not in:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
