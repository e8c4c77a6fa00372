//! `results.json` against the committed JSON Schema (bench/schema/results.schema.json).

mod common;

use report::model::{Results, SCHEMA_VERSION};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/schema/results.schema.json"
    );
    let text = std::fs::read_to_string(path).expect("read the committed schema");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn errors(instance: &Value) -> Vec<String> {
    let schema = schema();
    let validator =
        jsonschema::validator_for(&schema).expect("the schema is a valid draft 2020-12 schema");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn realistic() -> Results {
    // 2 topologies × 2 rates × 3 rounds, as a short real run would write.
    common::fake_results(&["direct", "proxied"], &[1000.0, 4000.0], 3, 7)
}

#[test]
fn realistic_results_validate() {
    let r = realistic();
    assert_eq!(r.results.len(), 12);
    assert_eq!(r.summary.len(), 2);
    let v = serde_json::to_value(&r).unwrap();
    let errs = errors(&v);
    assert!(
        errs.is_empty(),
        "results.json does not match the schema:\n{}",
        errs.join("\n")
    );
}

#[test]
fn nulls_validate_where_the_model_has_options() {
    let mut r = common::fake_results(&["direct", "proxied", "nginx"], &[2000.0], 2, 3);
    r.scenario.file = None;
    r.environment.nginx_version = None;
    r.results[0].server = Default::default();
    r.summary[0].proxy_cpu_us_per_request = None;
    r.summary[0].proxy_rss_bytes = None;
    r.summary[0].proxy_internal_p50_us = None;
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["results"][0]["server"]["app_duration_us"].is_null());
    let errs = errors(&v);
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn schema_rejects_what_the_model_would_not_write() {
    let good = serde_json::to_value(realistic()).unwrap();

    let mut missing = good.clone();
    missing["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("latency_us");
    assert!(
        !errors(&missing).is_empty(),
        "a missing required field must fail"
    );

    let mut wrong_type = good.clone();
    wrong_type["rates_rps"][0] = Value::String("fast".into());
    assert!(!errors(&wrong_type).is_empty(), "a string rate must fail");

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

    let mut bad_sample = good;
    bad_sample["results"][0]["processes"][0]["samples"][0] = serde_json::json!([0.1, 5.0]);
    assert!(
        !errors(&bad_sample).is_empty(),
        "a sample must be [s, CPU %, bytes]"
    );
}

#[test]
fn schema_version_matches_the_model() {
    assert_eq!(
        schema()["properties"]["schema_version"]["const"],
        Value::from(SCHEMA_VERSION)
    );
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
