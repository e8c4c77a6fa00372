//! Renders every output from realistic fake results, to look at them.
//!
//! ```sh
//! cargo run -p report --example render            # writes /tmp/report-demo/
//! cargo run -p report --example render -- /some/dir
//! cargo run -p report --example render -- /some/dir quick   # 1 rate, 1 round, like `--quick`
//! ```
//! Then open `report.html`, or screenshot it headless:
//! `chromium --headless --no-sandbox --screenshot=/tmp/report-demo/shot.png --window-size=1280,3000 file:///tmp/report-demo/report.html`

#[path = "../tests/common/mod.rs"]
mod common;

fn main() -> Result<(), report::ReportError> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/report-demo".to_string());
    let results = if std::env::args().nth(2).as_deref() == Some("quick") {
        common::fake_results(&["direct", "proxied"], &[2000.0], 1, 42)
    } else {
        common::fake_results(
            &["direct", "proxied", "nginx"],
            &[1000.0, 4000.0, 8000.0],
            5,
            42,
        )
    };
    print!("{}", report::terminal_tables(&results));
    for path in report::write_all(&results, std::path::Path::new(&dir))? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
