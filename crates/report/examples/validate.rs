//! Validates a `results.json` against the committed schema and loads it.
//!
//! `cargo run -p report --example validate -- out/results.json`

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: validate RESULTS.json")?;
    let schema_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/schema/results.schema.json"
    );
    let read = |p: &str| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{p}: not JSON: {e}"))
    };
    let schema = read(schema_path)?;
    let instance = read(&path)?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("bad schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "{path} does not match the schema:\n{}",
            errors.join("\n")
        ));
    }
    let results = report::load(&path).map_err(|e| e.to_string())?;
    println!(
        "{path}: valid (schema v{}, {} trials)",
        results.schema_version,
        results.results.len()
    );
    Ok(())
}
