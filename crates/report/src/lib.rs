//! The bench's results model and its renderings.
//!
//! A bench run fills a [`model::Results`]; this crate turns it into what people read:
//!
//! - [`terminal_tables`] and [`headline`]: what the bench prints (plain text, ≤ 120 columns);
//! - [`summary_markdown`]: `summary.md`, the tables for a pull request or a post;
//! - [`html()`]: `report.html`, self-contained, with SVG charts;
//! - [`write_all`]: writes `results.json` (pretty, versioned), `summary.md` and `report.html`;
//! - [`load`] and [`compare()`]: `bench compare A.json B.json`.
//!
//! Layout: [`model`] (the versioned shape, schema in `bench/schema/results.schema.json`),
//! [`exact`] (exact rank statistics: Wilcoxon signed-rank and Mann–Whitney with
//! Hodges–Lehmann estimates and their exact intervals), [`stats`] (medians, the estimates
//! the report states, noise floors), [`summary`] (each topology against the baseline, and
//! the baseline against itself), [`checks`] (clean rates and warnings), `digest` (medians
//! over rounds per topology × rate), `views` (the report's tables), `table`
//! (plain/Markdown/HTML table rendering), `units` (number formats), `svg` (hand-written
//! charts), and one module per output.
#![forbid(unsafe_code)]

pub mod checks;
pub mod compare;
mod digest;
mod error;
pub mod exact;
pub mod gate;
pub mod html;
mod markdown;
pub mod model;
pub mod shapes;
pub mod stats;
pub mod summary;
pub mod svg;
mod table;
mod terminal;
pub mod units;
pub mod versus;
mod views;

use std::path::{Path, PathBuf};

pub use compare::{compare, load, CompareError, CompareOptions, Comparison};
pub use error::ReportError;
pub use html::html;
pub use markdown::summary_markdown;
pub use terminal::{headline, terminal_tables};
pub use views::memory_line;

use model::Results;

/// Fills what a run derives from its trials, in order: the rate checks, the A/A noise
/// floor, the summary, ours head to head with the other proxies, the warnings and the
/// headline. A multi-shape run's shapes are
/// finished already; its own warnings gain theirs (once where every shape has the same,
/// else named by shape) and its headline compares the shapes.
pub fn finish(results: &mut Results) {
    if results.shapes.is_empty() {
        results.rate_checks = checks::rate_checks(results);
        results.noise_floor = summary::noise_floor(results);
        results.summary = summary::summarize(results);
        results.versus = versus::versus(results);
        let warnings = checks::trial_warnings(results);
        results.warnings.extend(warnings);
    } else {
        let shapes = &results.shapes;
        let mut warnings: Vec<String> = Vec::new();
        for s in shapes {
            for w in &s.results.warnings {
                let everywhere = shapes.iter().all(|o| o.results.warnings.contains(w));
                let line = if everywhere {
                    w.clone()
                } else {
                    format!("shape {}: {w}", s.name)
                };
                if !warnings.contains(&line) && !results.warnings.contains(&line) {
                    warnings.push(line);
                }
            }
        }
        results.warnings.extend(warnings);
    }
    results.headline = headline(results);
}

/// File names [`write_all`] writes.
pub const RESULTS_JSON: &str = "results.json";
/// Markdown summary file name.
pub const SUMMARY_MD: &str = "summary.md";
/// HTML report file name.
pub const REPORT_HTML: &str = "report.html";

/// Writes `results.json` (pretty), `summary.md` and `report.html` into `dir`
/// (created if missing) and returns their paths in that order.
///
/// If the results would not read back (a NaN or infinity becomes `null` in JSON),
/// every file is still written and [`ReportError::RoundTrip`] says so.
pub fn write_all(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut json = serde_json::to_string_pretty(results)?;
    json.push('\n');
    let files = [
        (RESULTS_JSON, json.clone()),
        (SUMMARY_MD, summary_markdown(results)),
        (REPORT_HTML, html(results)),
    ];
    let mut paths = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        paths.push(path);
    }
    if let Err(source) = serde_json::from_str::<Results>(&json) {
        return Err(ReportError::RoundTrip {
            path: paths[0].clone(),
            source,
        });
    }
    Ok(paths)
}
