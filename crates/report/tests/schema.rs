//! `results.json` against the committed JSON Schema (bench/schema/results.schema.json).

mod common;

use common::Fake;
use report::model::{Results, SCHEMA_VERSION};
use serde_json::{json, Value};

fn schema() -> Value {
    testkit::schema::results_schema()
}

fn errors_against(schema: &Value, instance: &Value) -> Vec<String> {
    testkit::schema::errors_against(schema, instance)
}

fn errors(instance: &Value) -> Vec<String> {
    testkit::schema::results_errors(instance)
}

fn realistic() -> Results {
    // 2 topologies × 2 rates × 6 rounds, the baseline twice a round, as a short real run
    // would write.
    common::fake_results(&["direct", "proxied"], &[1000.0, 4000.0], 6, 7)
}

/// Every optional part filled: a flagged rate, user-space timestamps, a calibration, a
/// wrk check, a send window, `--rates-from`.
fn full() -> Results {
    let mut r = Fake::new(&["direct", "proxied", "nginx"], &[1000.0, 4000.0], 6, 3)
        .machine_busy(4000.0, "nginx", 1, 0.8)
        .user_space(1000.0, "proxied", 0)
        .warning("compose mode: CPU and anonymous memory are per container")
        .raw();
    r.scenario.send_window_us = Some(250.0);
    r.rates_from = Some("runs/a/results.json".to_string());
    r.results[0].errors = 2;
    r.results[0]
        .errors_by_kind
        .insert("status_5xx".to_string(), 2);
    r.results[0].status_counts.insert("503".to_string(), 2);
    common::finish(&mut r);
    // A multi-shape run nests complete results per shape (validated by the same schema).
    let inner = r.clone();
    r.shapes = vec![report::model::ShapeResults {
        name: "post-16k".to_string(),
        method: "POST".to_string(),
        path: "/echo".to_string(),
        body_bytes: 16384,
        chunked: true,
        results: inner,
    }];
    r
}

fn assert_valid(r: &Results) {
    testkit::schema::assert_valid_results(&serde_json::to_value(r).unwrap());
}

#[test]
fn realistic_results_validate() {
    let r = realistic();
    // 6 rounds × 2 rates × (direct, proxied, direct again).
    assert_eq!(r.results.len(), 36);
    assert_eq!(r.results.iter().filter(|t| t.replicate == 1).count(), 12);
    assert_eq!(r.summary.len(), 2);
    assert_eq!(r.noise_floor.len(), 2);
    assert_eq!(r.rate_checks.len(), 2);
    assert_valid(&r);
}

#[test]
fn every_optional_part_filled_validates() {
    let r = full();
    assert!(!r.calibration.is_empty() && r.loadgen_check.is_some());
    assert!(r.rate_checks.iter().any(|c| !c.clean));
    assert!(r
        .results
        .iter()
        .any(|t| t.loadgen.timestamps == "user_space"));
    assert_valid(&r);
}

#[test]
fn nulls_validate_where_the_model_has_options() {
    let mut r = Fake::new(&["direct", "proxied", "nginx"], &[2000.0], 2, 3).build();
    r.scenario.file = None;
    r.scenario.send_window_us = None;
    r.environment.nginx_version = None;
    r.environment.timed_wakeup_cpu_us = None;
    r.loadgen_check = None;
    r.rates_from = None;
    r.results[0].server = Default::default();
    r.results[1].loadgen = Default::default();
    r.summary[0].proxy_cpu_us_per_request = None;
    r.summary[0].proxy_pss_bytes = None;
    r.summary[0].proxy_internal_p50_us = None;
    // Two rounds: no interval anywhere; an empty comparison has no p-value either.
    assert!(r.summary[0].added_latency_us.p50.ci.is_none());
    r.summary[0].added_latency_us.p50 = report::stats::paired(&[], &[]);
    assert!(r.summary[0].added_latency_us.p50.p_value.is_none());
    r.summary[0].added_latency_us.p90.noise_floor = None;
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["results"][0]["server"]["app_duration_us"].is_null());
    assert!(v["summary"][0]["added_latency_us"]["p50"]["ci"].is_null());
    assert!(v["summary"][0]["added_latency_us"]["p50"]["p_value"].is_null());
    assert!(v["summary"][0]["added_latency_us"]["p90"]["noise_floor"].is_null());
    assert_eq!(v["results"][1]["loadgen"]["timestamps"], "");
    let errs = errors(&v);
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn schema_rejects_what_the_model_would_not_write() {
    let good = serde_json::to_value(full()).unwrap();
    assert!(errors(&good).is_empty());

    let mut missing = good.clone();
    missing["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("latency_us");
    assert!(
        !errors(&missing).is_empty(),
        "a missing required field must fail"
    );

    let mut unknown = good.clone();
    unknown["environment"]["gpu"] = Value::String("none".into());
    assert!(
        !errors(&unknown).is_empty(),
        "a field the schema does not describe must fail"
    );

    let mut version = good.clone();
    version["schema_version"] = Value::from(SCHEMA_VERSION + 1);
    assert!(
        !errors(&version).is_empty(),
        "another schema_version must fail"
    );
    version["schema_version"] = Value::from(1);
    assert!(!errors(&version).is_empty(), "version 1 must fail");

    // Version 1 shapes are gone.
    let mut old = good.clone();
    old["results"][0]["processes"][0]["rss_mean_bytes"] = Value::from(1);
    assert!(!errors(&old).is_empty(), "rss_mean_bytes is not in v2");
    let mut old = good.clone();
    old["summary"][0]["added_rss_bytes"] = good["summary"][0]["added_pss_bytes"].clone();
    assert!(!errors(&old).is_empty(), "added_rss_bytes is not in v2");
    let mut old = good.clone();
    old["summary"][0]["added_latency_us"]["p50"] =
        json!({"median": 1.0, "ci95": [0.0, 2.0], "significant": true});
    assert!(!errors(&old).is_empty(), "a v1 estimate must fail");

    let mut short_sample = good.clone();
    short_sample["results"][0]["processes"][0]["samples"][0] = json!([0.1, 5.0, 1.0e6]);
    assert!(
        !errors(&short_sample).is_empty(),
        "a sample must be [s, CPU %, PSS bytes, RssAnon bytes]"
    );
    let mut long_sample = good;
    long_sample["results"][0]["processes"][0]["samples"][0] = json!([0.1, 5.0, 1.0e6, 1.0e6, 3]);
    assert!(!errors(&long_sample).is_empty(), "five numbers must fail");
}

#[test]
fn wrong_types_and_values_are_rejected_field_by_field() {
    let good = serde_json::to_value(full()).unwrap();
    // (JSON pointer, a value of the wrong type or out of range)
    let cases: &[(&str, Value)] = &[
        ("/rates_rps/0", json!("fast")),
        ("/results/0/replicate", json!(2)),
        ("/results/0/replicate", json!(-1)),
        ("/results/0/machine_busy", json!("high")),
        ("/results/0/loadgen_thread_busy", json!(-0.1)),
        ("/results/0/loadgen/timestamps", json!("ntp")),
        ("/results/0/loadgen/send_lag_us", json!(12)),
        ("/results/0/processes/0/pss_peak_bytes", json!(1.5)),
        ("/results/0/processes/0/anon_peak_bytes", json!(null)),
        ("/summary/0/added_latency_us/p50/ci", json!("wide")),
        ("/summary/0/added_latency_us/p50/ci", json!([1.0])),
        ("/summary/0/added_latency_us/p50/level", json!(1.5)),
        ("/summary/0/added_latency_us/p50/p_value", json!("small")),
        ("/summary/0/added_latency_us/p50/method", json!("bootstrap")),
        ("/summary/0/added_latency_us/p50/noise_floor", json!(-1.0)),
        ("/summary/0/added_latency_us/p50/measurable", json!("yes")),
        ("/summary/0/added_anon_bytes", json!(12)),
        ("/summary/0/proxy_pss_bytes", json!({"estimate": 1.0})),
        ("/summary/0/clean", json!(1)),
        ("/noise_floor/0/rounds", json!("six")),
        ("/noise_floor/0/cpu_us_per_request", json!(null)),
        ("/thresholds/machine_busy", json!(0)),
        ("/thresholds/loadgen_thread_busy", json!(1.5)),
        ("/rate_checks/0/clean", json!("no")),
        ("/rate_checks/0/reasons", json!("busy")),
        ("/calibration/0/steps/0/machine_busy", json!("half")),
        ("/calibration/0/ceiling_rps", json!(null)),
        ("/rates_from", json!(3)),
        ("/environment/timed_wakeup_cpu_us", json!("6 µs")),
        ("/scenario/baseline_twice", json!("twice")),
        ("/scenario/send_window_us", json!(-5)),
    ];
    for (pointer, bad) in cases {
        let mut v = good.clone();
        *v.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} is not in the fixture")) = bad.clone();
        assert!(!errors(&v).is_empty(), "{pointer} = {bad} must be rejected");
    }
}

#[test]
fn the_schema_is_what_validates_the_new_objects() {
    // Mutating the schema must break validation of the same good file: the definitions are
    // reached (a wrong `$ref` or a misspelt property would let anything through).
    let good = serde_json::to_value(full()).unwrap();
    let base = schema();
    for (pointer, replacement) in [
        ("/$defs/Estimate/properties/ci/type", json!("string")),
        (
            "/$defs/Estimate/properties/method/enum",
            json!(["bootstrap"]),
        ),
        ("/$defs/NoiseRow/properties/rounds/type", json!("string")),
        ("/$defs/RateCheck/properties/clean/type", json!("string")),
        (
            "/$defs/Thresholds/properties/machine_busy/maximum",
            json!(0.1),
        ),
        ("/$defs/Calibration/properties/note/type", json!("number")),
        (
            "/$defs/LoadgenAccuracy/properties/timestamps/enum",
            json!(["ntp"]),
        ),
        (
            "/$defs/ProcessUsage/properties/samples/items/minItems",
            json!(5),
        ),
        ("/$defs/Trial/properties/replicate/maximum", json!(0)),
        (
            "/$defs/SummaryRow/properties/proxy_pss_bytes/type",
            json!("string"),
        ),
        (
            "/$defs/Environment/properties/timed_wakeup_cpu_us/type",
            json!("string"),
        ),
        ("/properties/rates_from/type", json!("number")),
    ] {
        let mut s = base.clone();
        *s.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} is not in the schema")) = replacement;
        assert!(
            !errors_against(&s, &good).is_empty(),
            "with {pointer} changed the good file must fail"
        );
    }
}

#[test]
fn schema_version_matches_the_model() {
    assert_eq!(SCHEMA_VERSION, 2);
    assert_eq!(
        schema()["properties"]["schema_version"]["const"],
        Value::from(SCHEMA_VERSION)
    );
    assert_eq!(schema()["$id"], "urn:tinyfish:bench:results:v2");
}

/// Each definition and where the model writes one (a JSON pointer into [`full`]).
const OBJECTS: &[(&str, &str)] = &[
    ("", ""),
    ("Tool", "/tool"),
    ("Environment", "/environment"),
    ("ScenarioEcho", "/scenario"),
    ("Capacity", "/capacity/0"),
    ("Latency", "/capacity/0/latency_us"),
    ("Trial", "/results/0"),
    ("ProcessUsage", "/results/0/processes/0"),
    ("ServerSide", "/results/0/server"),
    ("Quantiles", "/results/0/server/app_duration_us"),
    ("LoadgenAccuracy", "/results/0/loadgen"),
    ("Handshakes", "/results/0/loadgen/tls_handshakes"),
    ("SummaryRow", "/summary/0"),
    ("AddedLatency", "/summary/0/added_latency_us"),
    ("Estimate", "/summary/0/added_latency_us/p50"),
    ("LoadgenCheck", "/loadgen_check"),
    ("NoiseRow", "/noise_floor/0"),
    ("VersusRow", "/versus/0"),
    ("Thresholds", "/thresholds"),
    ("RateCheck", "/rate_checks/0"),
    ("Calibration", "/calibration/0"),
    ("CalibrationStep", "/calibration/0/steps/0"),
    ("ShapeResults", "/shapes/0"),
];

fn pointer(name: &str) -> &'static str {
    OBJECTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no object for {name}"))
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// The fields a reader takes a default for (`#[serde(default)]` in model.rs): the only
/// ones the schema does not require.
const DEFAULTED: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "loadgen_check",
            "noise_floor",
            "calibration",
            "thresholds",
            "rate_checks",
            "rates_from",
            "versus",
            "shapes",
        ],
    ),
    ("Environment", &["timed_wakeup_cpu_us", "versions"]),
    (
        "ScenarioEcho",
        &["baseline_twice", "send_window_us", "services"],
    ),
    (
        "Trial",
        &[
            "replicate",
            "machine_busy",
            "loadgen_thread_busy",
            "loadgen",
        ],
    ),
    ("LoadgenAccuracy", &["tls_handshakes"]),
    ("Estimate", &["noise_floor", "measurable"]),
    ("SummaryRow", &["clean"]),
];

#[test]
fn the_schema_describes_exactly_the_fields_the_model_writes() {
    let s = schema();
    let v = serde_json::to_value(full()).unwrap();
    let defs: Vec<String> = s["$defs"].as_object().unwrap().keys().cloned().collect();
    for d in &defs {
        assert!(
            OBJECTS.iter().any(|(name, _)| name == d),
            "$defs/{d} is not checked here"
        );
    }
    for (name, at) in OBJECTS {
        let written = v
            .pointer(at)
            .unwrap_or_else(|| panic!("{at} is not in the fixture"));
        let def = if name.is_empty() {
            s.clone()
        } else {
            s["$defs"][name].clone()
        };
        assert_eq!(def["additionalProperties"], false, "{name}");
        let described = keys(&def["properties"]);
        assert_eq!(described, keys(written), "properties of {name:?}");
        let defaulted: &[&str] = DEFAULTED
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, f)| f);
        let mut required: Vec<String> = def["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        required.sort();
        let expected: Vec<String> = described
            .iter()
            .filter(|k| !defaulted.contains(&k.as_str()))
            .cloned()
            .collect();
        assert_eq!(required, expected, "required fields of {name:?}");
    }
}

#[test]
fn the_fields_the_schema_does_not_require_are_the_ones_the_reader_defaults() {
    let good = serde_json::to_value(full()).unwrap();
    for (name, fields) in DEFAULTED {
        let at = pointer(name);
        for field in *fields {
            let mut v = good.clone();
            v.pointer_mut(at)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(*field);
            assert!(errors(&v).is_empty(), "{name}.{field} may be absent");
            let r: Results = serde_json::from_value(v)
                .unwrap_or_else(|e| panic!("the reader must default {name}.{field}: {e}"));
            let _ = r;
        }
    }
    // What the defaults are.
    let mut v = good.clone();
    v["summary"][0].as_object_mut().unwrap().remove("clean");
    v.as_object_mut().unwrap().remove("thresholds");
    v["results"][1].as_object_mut().unwrap().remove("replicate");
    let r: Results = serde_json::from_value(v).unwrap();
    assert!(r.summary[0].clean, "a row without `clean` is clean");
    assert_eq!(r.thresholds, report::model::Thresholds::default());
    assert_eq!(r.results[1].replicate, 0);

    // And a required field really is required by the reader too.
    let mut v = good;
    v["results"][0].as_object_mut().unwrap().remove("round");
    assert!(serde_json::from_value::<Results>(v).is_err());
}

#[test]
fn every_model_field_is_described_with_a_description() {
    // Walk the schema: every property has a description (units live there).
    fn walk(v: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                if p.get("description").is_none() {
                    missing.push(format!("{path}.{k}"));
                }
            }
        }
        if let Some(defs) = v.get("$defs").and_then(Value::as_object) {
            for (k, d) in defs {
                if d.get("description").is_none() {
                    missing.push(k.clone());
                }
                walk(d, k, missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&schema(), "Results", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:?}"
    );
}
