//! The user Dockerfile (deploy/Dockerfile) builds and runs, proven without a registry:
//! deploy/standin/make-builder makes a stand-in for the Rust builder image (a Debian
//! bookworm root from Debian's packages plus this machine's toolchain, `docker import`ed),
//! the real Dockerfile is built with it through the BUILDER argument, and the image is
//! run: the app answers over HTTP, the proxy and the bench start, the binaries are static
//! and stripped, the OCI labels carry the revision. A second build after a source change
//! reuses the dependency layer: cargo compiles the project's crates and no dependency.
//!
//! Needs a Docker engine, root (debootstrap) and Debian's mirror, so it is ignored by
//! default and run by `.ci/run` with `--ignored`; run so without them, it fails saying
//! what is missing. Minutes: the first build compiles every dependency in the builder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 40),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    );
    out
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn docker(args: &[&str]) -> String {
    stdout(&run(Command::new("docker").args(args)))
}

/// Removes what the test made, by id, even when an assertion fails.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A copy of the source tree without target/ and .git (what .dockerignore leaves out
/// anyway), so the test can change a file without touching the checkout.
fn copy_tree(root: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let pack = format!(
        "tar -C '{}' --exclude=./target --exclude=./.git --exclude=./bench/results -c . | tar -C '{}' -x",
        root.display(),
        to.display()
    );
    run(Command::new("sh").args(["-c", &pack]));
}

/// `docker build` of deploy/Dockerfile in `context`; the build's whole output.
fn build(context: &Path, builder: &str, tag: &str, revision: &str) -> String {
    let started = Instant::now();
    let out = run(Command::new("docker")
        .current_dir(context)
        .args(["build", "-f", "deploy/Dockerfile", "-t", tag])
        .args(["--build-arg", &format!("BUILDER={builder}")])
        .args(["--build-arg", &format!("REVISION={revision}")])
        .arg(".")
        .env("BUILDKIT_PROGRESS", "plain"));
    eprintln!("dockerfile test: {tag} built in {:?}", started.elapsed());
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The build log without terminal colour codes: the classic builder wraps each chunk of
/// a step's stderr in `ESC[91m … ESC[0m`, even inside a line ("Compiling" ESC… " app v0.1.0").
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn compiled(log: &str, krate: &str) -> bool {
    plain(log)
        .lines()
        .any(|l| l.contains(&format!("Compiling {krate} v")))
}

#[test]
fn colour_codes_inside_a_line_are_removed() {
    let log = "\u{1b}[91m   Compiling\u{1b}[0m\u{1b}[91m proxy v0.1.0 (/src/crates/proxy)\n";
    assert!(compiled(log, "proxy"));
    assert!(!compiled(log, "app"));
}

#[test]
#[ignore = "needs a Docker engine, root and Debian's mirror: run by .ci/run with --ignored"]
fn the_user_dockerfile_builds_with_a_stand_in_builder_and_runs() {
    if let Err(e) = bench::compose::engine_available() {
        panic!("this test needs a running Docker engine: {e}");
    }
    let root = bench::compose::default_root();
    let mut cleanup = Cleanup::default();

    let made = run(&mut Command::new(root.join("deploy/standin/make-builder")));
    let builder = stdout(&made).lines().last().unwrap_or_default().to_owned();
    assert!(!builder.is_empty(), "make-builder printed no image name");
    // The stand-in holds what the real image holds, and not cmake: the Dockerfile must
    // bring cmake itself (pingora-core's zlib-ng builds with it).
    let probe = Command::new("docker")
        .args(["run", "--rm", &builder, "sh", "-c", "command -v cmake"])
        .output()
        .unwrap();
    assert!(!probe.status.success(), "the stand-in {builder} has cmake");
    let cargo = docker(&["run", "--rm", &builder, "cargo", "--version"]);
    assert!(cargo.starts_with("cargo "), "{cargo}");

    let context = std::env::temp_dir().join(format!("tinyfish-dockerfile-{}", std::process::id()));
    cleanup.dirs.push(context.clone());
    copy_tree(&root, &context);
    let tag = format!("tinyfish-test/dockerfile:{}", std::process::id());
    cleanup.images.push(tag.clone());
    let revision = "0123456789abcdef0123456789abcdef01234567";
    // (Its layers may come from an earlier run's cache: nothing to assert on its log.)
    build(&context, &builder, &tag, revision);

    // OCI labels.
    let labels = docker(&["image", "inspect", "-f", "{{json .Config.Labels}}", &tag]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(
        labels["org.opencontainers.image.revision"], revision,
        "{labels}"
    );
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://")),
        "{labels}"
    );
    assert_eq!(
        labels["org.opencontainers.image.title"], "tinyfish",
        "{labels}"
    );
    let user = docker(&["image", "inspect", "-f", "{{.Config.User}}", &tag]);
    assert_eq!(user, "65532:65532");

    // Static and stripped binaries, copied out of a created (not started) container.
    let created = docker(&["create", &tag]);
    cleanup.containers.push(created.clone());
    let bin_dir = context.join("image-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for b in ["app", "proxy", "bench"] {
        let to = bin_dir.join(b);
        docker(&[
            "cp",
            &format!("{created}:/usr/local/bin/{b}"),
            to.to_str().unwrap(),
        ]);
        let sections = stdout(&run(Command::new("readelf").args(["-S", "-W"]).arg(&to)));
        assert!(!sections.contains(".debug_info"), "{b} keeps debug info");
        assert!(
            sections.contains(".symtab"),
            "{b}: symbols should stay (backtraces)"
        );
        let program = stdout(&run(Command::new("readelf").args(["-l", "-W"]).arg(&to)));
        assert!(
            !program.contains("Requesting program interpreter"),
            "{b} is dynamically linked: a FROM scratch image cannot run it"
        );
    }

    // It runs: the app says hello, the proxy and the bench start.
    let app = docker(&[
        "run",
        "-d",
        "-e",
        "APP_LISTEN=0.0.0.0:5000",
        "-p",
        "127.0.0.1::5000",
        "--read-only",
        "--cap-drop",
        "ALL",
        &tag,
    ]);
    cleanup.containers.push(app.clone());
    let port = docker(&["port", &app, "5000/tcp"]);
    let addr: std::net::SocketAddr = port
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("docker port said {port:?}"));
    let hello = testkit::wait("the app in the image to answer")
        .within(Duration::from_secs(30))
        .every(Duration::from_millis(200))
        .poll(|| {
            testkit::http::try_get(addr, "/")
                .ok()
                .filter(|r| r.status == 200)
        })
        .unwrap_or_else(|| {
            panic!(
                "the app did not answer on {addr}; its log:\n{}",
                docker(&["logs", &app])
            )
        });
    assert!(
        hello.text().starts_with("Hello World on this date "),
        "{}",
        hello.text()
    );
    for (bin, expect) in [("proxy", "proxy"), ("bench", "bench")] {
        let v = docker(&["run", "--rm", &tag, bin, "--version"]);
        assert!(v.starts_with(expect), "{bin} --version: {v}");
    }

    // Dependency caching: a source change rebuilds the project's crates only.
    let main = context.join("crates/app/src/main.rs");
    let mut text = std::fs::read_to_string(&main).unwrap();
    // Unique per run, so that no earlier run's cache holds this build's layers.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    text.push_str(&format!(
        "// a change ({}.{}): the dependency layer must be reused\n",
        now.as_secs(),
        now.subsec_nanos()
    ));
    std::fs::write(&main, text).unwrap();
    let tag2 = format!("{tag}-changed");
    cleanup.images.push(tag2.clone());
    let second = build(&context, &builder, &tag2, revision);
    assert!(
        compiled(&second, "app") && compiled(&second, "proxy"),
        "the second build did not rebuild the project's crates:\n{}",
        tail(&second, 60)
    );
    for dep in ["pingora-core", "tokio", "hyper", "libz-ng-sys"] {
        assert!(
            !compiled(&second, dep),
            "a source change recompiled the dependency {dep}: the dependency layer was not reused\n{}",
            tail(&second, 80)
        );
    }
    drop(cleanup);
}
