//! The real `app` binary: stdout line, signals and draining, start-up errors, metrics
//! configured through the child's environment.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use testkit::dogstatsd::{Metric, DATADOG_VARS};
use testkit::http::get;
use testkit::{scaled, Process};

/// The app binary with `args` and the environment it reads cleared.
fn app_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in DATADOG_VARS
        .iter()
        .chain(&["APP_LISTEN", "APP_THREADS", "APP_GRACE"])
    {
        cmd.env_remove(v);
    }
    cmd
}

#[test]
fn prints_one_listening_line_and_serves() {
    let mut app = Process::start(&mut app_command(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
    ]));
    assert_ne!(app.addr().port(), 0);
    let r = get(app.addr(), "/");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"Hello World on this date "));
    app.signal(Signal::SIGINT);
    assert_eq!(app.expect_exit(Duration::from_secs(15)), 0);
    assert_eq!(
        app.stdout_at_exit(),
        "",
        "stdout must hold exactly one line"
    );
    let err = app.stderr_at_exit();
    assert!(
        err.contains(&app.addr().to_string()) && err.contains("metrics off"),
        "{err}"
    );
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let sink = testkit::dogstatsd();
    let mut cmd = app_command(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--grace",
        "60s",
    ]);
    cmd.envs(sink.env());
    let mut app = Process::start(&mut cmd);
    let addr = app.addr();
    let delay = scaled(Duration::from_secs(3));
    let slow = std::thread::spawn(move || {
        let r = get(
            addr,
            &format!("/work?delay_ms={}&bytes=5", delay.as_millis()),
        );
        (r, Instant::now())
    });
    // The request has reached the app (its in-flight gauge, sent every second) before the
    // signal.
    sink.expect("the request in flight at the app", |m| {
        m.name == telemetry::names::APP_INFLIGHT && m.value == 1.0
    });
    let signalled = Instant::now();
    app.signal(Signal::SIGTERM);
    let (r, answered) = slow.join().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"xxxxx"[..]));
    assert!(
        answered > signalled,
        "the request was not in flight at the signal"
    );
    assert_eq!(
        app.wait_exit(Duration::from_secs(15)),
        Some(0),
        "stderr: {}",
        app.stderr()
    );
}

#[test]
fn port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = app_command(&["--listen", &addr]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&addr) && err.contains("--listen"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_flags_are_a_one_line_error() {
    for args in [
        &["--bogus"][..],
        &["--threads", "0"],
        &["--threads", "lots"],
        &["--grace", "soon"],
        &["--listen", "not-an-address"],
        &["--listen", "unix:relative/app.sock"],
    ] {
        let out = app_command(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let out = app_command(&["--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--grace"));
}

#[test]
fn bad_datadog_variable_is_a_one_line_error() {
    let out = app_command(&["--listen", "127.0.0.1:0"])
        .env("DD_AGENT_HOST", "127.0.0.1")
        .env("DD_DOGSTATSD_PORT", "eighty")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("DD_DOGSTATSD_PORT"), "{err}");
}

#[test]
fn listen_address_and_metrics_come_from_the_environment() {
    let sink = testkit::dogstatsd();
    let mut cmd = app_command(&["--threads", "1"]);
    cmd.env("APP_LISTEN", "127.0.0.1:0")
        .env("DD_AGENT_HOST", "127.0.0.1")
        .env("DD_DOGSTATSD_PORT", sink.addr().port().to_string())
        .env("DD_ENV", "ci")
        .env("DD_VERSION", "9.9.9");
    let mut app = Process::start(&mut cmd);
    assert!(app.addr().ip().is_loopback());
    assert_eq!(get(app.addr(), "/healthz").status, 200);
    sink.expect("the request counted with the environment's tags", |m| {
        m.name == "tinyfish.app.requests"
            && m.tag("route") == Some("/healthz")
            && m.tag("env") == Some("ci")
            && m.tag("service") == Some(app::DEFAULT_SERVICE)
            && m.tag("version") == Some("9.9.9")
    });
    app.signal(Signal::SIGTERM);
    assert_eq!(app.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn sigusr1_flushes_everything_before_its_marker_and_keeps_serving() {
    let sink = testkit::dogstatsd();
    let mut cmd = app_command(&["--listen", "127.0.0.1:0", "--threads", "1"]);
    cmd.env("DD_AGENT_HOST", "127.0.0.1")
        .env("DD_DOGSTATSD_PORT", sink.addr().port().to_string());
    let app = Process::start(&mut cmd);
    for _ in 0..5 {
        assert_eq!(get(app.addr(), "/").status, 200);
    }
    app.signal(Signal::SIGUSR1);
    // The marker comes after everything the flush took out: when it arrives, the five
    // requests' count and their five durations are already in.
    sink.expect("the flush marker", |m| {
        m.name == telemetry::names::TELEMETRY_FLUSHES
    });
    let lines = sink.lines();
    let at = lines
        .iter()
        .position(|l| l.starts_with(telemetry::names::TELEMETRY_FLUSHES))
        .unwrap();
    let before: Vec<Metric> = lines[..at]
        .iter()
        .filter_map(|l| Metric::parse(l).ok())
        .collect();
    let counted: f64 = before
        .iter()
        .filter(|m| m.name == "tinyfish.app.requests" && m.tag("route") == Some("/"))
        .map(|m| m.value)
        .sum();
    assert_eq!(counted, 5.0, "lines before the marker: {:#?}", &lines[..at]);
    let durations: usize = before
        .iter()
        .filter(|m| m.name == "tinyfish.app.request.duration")
        .map(|m| m.values.len())
        .sum();
    assert_eq!(durations, 5, "lines before the marker: {:#?}", &lines[..at]);
    // The signal did not stop the app.
    assert_eq!(get(app.addr(), "/healthz").status, 200);
}

// ------------------------------------------------------------------ a Unix socket

/// A child killed (and reaped) on drop if still running, for an app whose first line is
/// not `listening on http://…` ([`Process`] reads that one).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns the app (`cmd`, stdout piped) and returns it with its first stdout line, read
/// within the patience bound.
fn spawn_reading_first_line(cmd: &mut Command) -> (Running, String) {
    use std::io::BufRead;
    let mut child = Running(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(scaled(Duration::from_secs(15)))
        .expect("the app printed its listening line");
    (child, line)
}

#[test]
fn listens_on_a_unix_socket_replacing_a_stale_one_and_removes_it_at_exit() {
    let dir = testkit::unix::SocketDir::new();
    let path = dir.path("app.sock");
    // A socket file nobody listens on any more (a killed app's).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let listen = format!("unix:{}", path.display());
    let (mut child, line) =
        spawn_reading_first_line(&mut app_command(&["--listen", &listen, "--threads", "1"]));
    assert_eq!(line, format!("listening on {listen}\n"));
    let r = testkit::unix::send(
        &path,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("Hello World on this date "),
        "{}",
        r.text()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = testkit::wait("the app to exit")
        .within(Duration::from_secs(15))
        .until_some(|| child.0.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
    assert!(!path.exists(), "the socket file is removed at exit");
}

#[test]
fn a_regular_file_at_the_socket_path_is_a_one_line_error_and_left_alone() {
    let dir = testkit::unix::SocketDir::new();
    let path = dir.path("app.sock");
    std::fs::write(&path, "not a socket").unwrap();
    let out = app_command(&["--listen", &format!("unix:{}", path.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "app: error: cannot listen on unix:{}: a regular file is in the way (only a stale \
             socket is removed); choose another path with --listen or APP_LISTEN\n",
            path.display()
        )
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}

#[test]
fn a_socket_path_in_a_missing_directory_is_a_one_line_error() {
    let dir = testkit::unix::SocketDir::new();
    let path = dir.path("missing").join("app.sock");
    let out = app_command(&["--listen", &format!("unix:{}", path.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("unix:{}", path.display()))
            && err.contains(&format!(
                "the directory {} does not exist",
                dir.path("missing").display()
            ))
            && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn a_unix_socket_a_server_listens_on_is_not_taken_over() {
    let dir = testkit::unix::SocketDir::new();
    let path = dir.path("app.sock");
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let out = app_command(&["--listen", &format!("unix:{}", path.display())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("a server is already listening"), "{err}");
    assert!(path.exists(), "the live server's socket is left alone");
    drop(live);
}
