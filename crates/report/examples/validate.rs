//! Validates a `results.json` against the committed schema and loads it.
//!
//! `cargo run -p report --example validate -- out/results.json`

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: validate RESULTS.json")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let instance: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))?;
    let errors = testkit::schema::results_errors(&instance);
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
