//! Programs a test needs that the workspace does not build (caddy, uwsgi, …): found, or a
//! visible skip. Where CI has installed everything (`scripts/setup --all`), it sets
//! `TINYFISH_TEST_REQUIRE_ALL=1`, and a missing program fails the test instead: CI never
//! passes a row's test by skipping it.

use std::path::{Path, PathBuf};

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_ALL: &str = "TINYFISH_TEST_REQUIRE_ALL";

/// Where `program` is (`PATH`, then Debian's sbin directories), or `None`.
#[allow(
    clippy::disallowed_methods,
    reason = "PATH is where to look for a program, as the shell reads it"
)]
pub fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether every one of `what` is here (programs, or absolute paths of files such as a
/// plugin); when one is not, prints `SKIPPED <test>: <what> is not installed (<hint>)` on
/// stderr and returns false, or fails when [`REQUIRE_ALL`] is set.
pub fn or_skip(test: &str, what: &[&str], hint: &str) -> bool {
    let missing: Vec<&str> = what
        .iter()
        .copied()
        .filter(|w| {
            if w.starts_with('/') {
                !Path::new(w).exists()
            } else {
                find(w).is_none()
            }
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(
        test,
        &format!(
            "{} not installed ({hint})",
            if missing.len() == 1 {
                format!("{} is", missing[0])
            } else {
                format!("{} are", missing.join(", "))
            }
        ),
    );
    false
}

/// Skips `test` visibly (`SKIPPED <test>: <why>` on stderr), or fails when
/// [`REQUIRE_ALL`] is set.
#[allow(
    clippy::disallowed_methods,
    reason = "the test process's one CI setting, read where it is used: this is its edge"
)]
pub fn skip(test: &str, why: &str) {
    if std::env::var(REQUIRE_ALL).is_ok_and(|v| v == "1") {
        panic!("{test}: {why}; {REQUIRE_ALL}=1 says every program is installed here");
    }
    eprintln!("SKIPPED {test}: {why}");
}
