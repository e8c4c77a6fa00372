//! `results.json` round trip: what `write_all` writes, `load` reads back equal, new
//! version 2 fields included; other versions are refused with a clear message.

mod common;

use common::Fake;
use report::model::{Results, Thresholds};

/// A run with every part of the model filled and no field at its default.
fn everything() -> Results {
    let mut r = Fake::new(&["direct", "proxied", "nginx"], &[1000.0, 4000.0], 6, 31)
        .thresholds(Thresholds {
            machine_busy: 0.6,
            loadgen_thread_busy: 0.55,
        })
        .machine_busy(4000.0, "nginx", 4, 0.66)
        .user_space(1000.0, "proxied", 2)
        .warning("compose mode: CPU and anonymous memory are per container")
        .raw();
    r.scenario.send_window_us = Some(250.0);
    r.rates_from = Some("runs/a/results.json".to_string());
    r.results[5].errors = 3;
    r.results[5].errors_by_kind.insert("timeout".to_string(), 3);
    r.results[5].loadgen.early_sends = 17;
    common::finish(&mut r);
    r
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("report-roundtrip-{name}-{}", std::process::id()))
}

#[test]
fn write_all_then_load_keeps_everything() {
    let r = everything();
    // The fixture really has the new fields away from their defaults.
    assert!(!r.noise_floor.is_empty() && !r.calibration.is_empty());
    assert!(r
        .rate_checks
        .iter()
        .any(|c| !c.clean && !c.reasons.is_empty()));
    assert_ne!(r.thresholds, Thresholds::default());
    assert!(r.results.iter().any(|t| t.replicate == 1));
    assert!(r
        .results
        .iter()
        .all(|t| t.machine_busy > 0.0 && t.loadgen_thread_busy > 0.0));
    assert!(r.environment.timed_wakeup_cpu_us.is_some() && r.scenario.baseline_twice);
    assert!(r.summary.iter().any(|s| !s.clean));
    assert!(r
        .summary
        .iter()
        .all(|s| s.added_latency_us.p50.noise_floor.is_some()));

    let dir = temp_dir("all");
    let paths = report::write_all(&r, &dir).unwrap();
    let loaded = report::load(&paths[0]).unwrap();
    assert_eq!(loaded, r);
    // Field by field where a mismatch would be hard to read in the whole.
    assert_eq!(loaded.noise_floor, r.noise_floor);
    assert_eq!(loaded.calibration, r.calibration);
    assert_eq!(loaded.thresholds, r.thresholds);
    assert_eq!(loaded.rate_checks, r.rate_checks);
    assert_eq!(loaded.rates_from, r.rates_from);
    assert_eq!(loaded.scenario.send_window_us, Some(250.0));
    assert_eq!(loaded.summary, r.summary);
    // What was written renders the same as what was measured.
    assert_eq!(
        report::terminal_tables(&loaded),
        report::terminal_tables(&r)
    );
    assert_eq!(
        std::fs::read_to_string(&paths[1]).unwrap(),
        report::summary_markdown(&loaded)
    );

    let json = std::fs::read_to_string(&paths[0]).unwrap();
    for key in [
        "\n  \"schema_version\": 2,",
        "\"replicate\": 1,",
        "\"machine_busy\": ",
        "\"loadgen_thread_busy\": ",
        "\"timestamps\": \"user_space\"",
        "\"pss_peak_bytes\": ",
        "\"pss_mean_bytes\": ",
        "\"anon_peak_bytes\": ",
        "\"added_anon_bytes\": {",
        "\"proxy_pss_bytes\": ",
        "\"measurable\": true",
        "\"noise_floor\": [",
        "\"method\": \"wilcoxon-signed-rank\"",
        "\"calibration\": [",
        "\"ceiling_rps\": ",
        "\"rate_checks\": [",
        "\"clean\": false",
        "\"rates_from\": \"runs/a/results.json\"",
        "\"timed_wakeup_cpu_us\": 6.5",
        "\"baseline_twice\": true",
        "\"send_window_us\": 250.0",
    ] {
        assert!(json.contains(key), "results.json lacks {key:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn other_versions_are_refused_with_a_clear_message() {
    let dir = temp_dir("versions");
    std::fs::create_dir_all(&dir).unwrap();
    let mut v = serde_json::to_value(everything()).unwrap();
    v["schema_version"] = serde_json::Value::from(1);
    let old = dir.join("v1.json");
    std::fs::write(&old, v.to_string()).unwrap();
    let err = report::load(&old).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: results schema_version 1, but this bench reads version 2: compare files \
             written by the same bench version, or re-run the bench to regenerate it",
            old.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // The committed reference runs were written by version 1.
    let reference = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/results/reference/2026-11-25-2vcpu-vm-fast-path/default/results.json"
    );
    if std::path::Path::new(reference).exists() {
        let err = report::load(reference).unwrap_err().to_string();
        assert!(
            err.contains("results schema_version 1, but this bench reads version 2"),
            "{err}"
        );
    }
}
