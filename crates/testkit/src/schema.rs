//! `results.json` against the committed JSON Schema (`bench/schema/results.schema.json`):
//! the one place tests (and the `validate` example) compile and apply it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// Where the committed schema is.
pub fn results_schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/schema/results.schema.json")
}

/// The committed schema, as JSON. Panics if it cannot be read or is not JSON.
pub fn results_schema() -> Value {
    let path = results_schema_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read the committed schema {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the committed schema is JSON")
}

/// What is wrong with `instance` according to `schema` (a changed copy of the committed
/// one, say), one line each (`message at /json/pointer`); empty when it validates. Panics if
/// `schema` is not a valid draft 2020-12 schema.
pub fn errors_against(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("a valid draft 2020-12 schema");
    collect(&validator, instance)
}

fn collect(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// What is wrong with `instance` according to the committed schema (compiled once).
pub fn results_errors(instance: &Value) -> Vec<String> {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(&results_schema()).expect("the committed schema compiles")
    });
    collect(validator, instance)
}

/// Panics, listing every error, unless `instance` matches the committed schema.
pub fn assert_valid_results(instance: &Value) {
    let errors = results_errors(instance);
    assert!(
        errors.is_empty(),
        "results.json does not match the schema:\n{}",
        errors.join("\n")
    );
}
