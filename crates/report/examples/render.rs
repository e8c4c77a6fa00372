//! Renders every output from realistic fake results, to look at them.
//!
//! ```sh
//! cargo run -p report --example render            # writes /tmp/report-demo/
//! cargo run -p report --example render -- /some/dir
//! cargo run -p report --example render -- /some/dir quick     # 1 rate, 1 round, like `--quick`
//! cargo run -p report --example render -- /some/dir flagged   # the top rate saturated
//! ```
//! Then open `report.html`, or screenshot it headless:
//! `chromium --headless --no-sandbox --screenshot=/tmp/report-demo/shot.png --window-size=1280,3000 file:///tmp/report-demo/report.html`

#[path = "../tests/common/mod.rs"]
mod common;

use common::Fake;

fn main() -> Result<(), report::ReportError> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/report-demo".to_string());
    let full = || {
        Fake::new(
            &["direct", "proxied", "nginx"],
            &[1000.0, 4000.0, 8000.0],
            6,
            42,
        )
    };
    let results = match std::env::args().nth(2).as_deref() {
        Some("quick") => Fake::new(&["direct", "proxied"], &[2000.0], 1, 42).build(),
        Some("flagged") => full().machine_busy(8000.0, "nginx", 2, 0.72).build(),
        _ => full().build(),
    };
    print!("{}", report::terminal_tables(&results));
    for path in report::write_all(&results, std::path::Path::new(&dir))? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
