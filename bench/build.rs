//! Records the build profile, so the report can say how the bench (and so the app and
//! proxy it re-executes) was built.
// clippy.toml: a build script's inputs are the environment variables cargo sets.
#[allow(clippy::disallowed_methods)]
fn main() {
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let opt = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=BENCH_PROFILE={profile}");
    println!("cargo:rustc-env=BENCH_OPT_LEVEL={opt}");
    println!("cargo:rerun-if-changed=build.rs");
}
