//! The real `app` binary: stdout line, signals and draining, start-up errors, metrics
//! configured through the child's environment.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use testkit::dogstatsd::Metric;
use testkit::http::get;
use testkit::UdpSink;

const DD_VARS: [&str; 7] = [
    "DD_AGENT_HOST",
    "DD_DOGSTATSD_PORT",
    "DD_DOGSTATSD_URL",
    "DD_ENV",
    "DD_SERVICE",
    "DD_VERSION",
    "APP_LISTEN",
];

fn app_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in DD_VARS.iter().chain(&["APP_THREADS", "APP_GRACE"]) {
        cmd.env_remove(v);
    }
    cmd
}

/// A started app process; killed on drop if still running.
struct Running {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(cmd: &mut Command) -> Running {
    let mut child = cmd.spawn().expect("spawn app");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read stdout");
    let addr = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}"))
        .parse()
        .expect("address");
    Running {
        child,
        addr,
        stdout,
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "app did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn prints_one_listening_line_and_serves() {
    let mut app = start(&mut app_command(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
    ]));
    assert_ne!(app.addr.port(), 0);
    let (status, _, body) = get(app.addr, "/");
    assert_eq!(status, 200);
    assert!(body.starts_with(b"Hello World on this date "));
    kill(Pid::from_raw(app.child.id() as i32), Signal::SIGINT).unwrap();
    let status = wait_exit(&mut app.child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    app.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout must hold exactly one line");
    let err = stderr_of(&mut app.child);
    assert!(
        err.contains(&app.addr.to_string()) && err.contains("metrics off"),
        "{err}"
    );
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let mut app = start(&mut app_command(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--grace",
        "20s",
    ]));
    let addr = app.addr;
    let slow = std::thread::spawn(move || get(addr, "/work?delay_ms=1500&bytes=5"));
    // Let the request reach the app before the signal.
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(app.child.id() as i32), Signal::SIGTERM).unwrap();
    let (status, _, body) = slow.join().unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"xxxxx"[..]));
    let exit = wait_exit(&mut app.child, Duration::from_secs(15));
    assert_eq!(
        exit.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&mut app.child)
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
    let sink = UdpSink::bind();
    let mut cmd = app_command(&["--threads", "1"]);
    cmd.env("APP_LISTEN", "127.0.0.1:0")
        .env("DD_AGENT_HOST", "127.0.0.1")
        .env("DD_DOGSTATSD_PORT", sink.addr().port().to_string())
        .env("DD_ENV", "ci")
        .env("DD_VERSION", "9.9.9");
    let mut app = start(&mut cmd);
    assert!(app.addr.ip().is_loopback());
    assert_eq!(get(app.addr, "/healthz").0, 200);
    let line = sink.wait_for(
        |l| {
            Metric::parse(l).is_some_and(|m| {
                m.name == "tinyfish.app.requests"
                    && m.tag("route") == Some("/healthz")
                    && m.tag("env") == Some("ci")
                    && m.tag("service") == Some(app::DEFAULT_SERVICE)
                    && m.tag("version") == Some("9.9.9")
            })
        },
        Duration::from_secs(15),
    );
    assert!(line.is_some(), "lines: {:#?}", sink.lines());
    kill(Pid::from_raw(app.child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(
        wait_exit(&mut app.child, Duration::from_secs(15)).code(),
        Some(0)
    );
}

#[test]
fn sigusr1_flushes_everything_before_its_marker_and_keeps_serving() {
    let sink = UdpSink::bind();
    let mut cmd = app_command(&["--listen", "127.0.0.1:0", "--threads", "1"]);
    cmd.env("DD_AGENT_HOST", "127.0.0.1")
        .env("DD_DOGSTATSD_PORT", sink.addr().port().to_string());
    let app = start(&mut cmd);
    for _ in 0..5 {
        assert_eq!(get(app.addr, "/").0, 200);
    }
    kill(Pid::from_raw(app.child.id() as i32), Signal::SIGUSR1).unwrap();
    // The marker comes after everything the flush took out: when it arrives, the five
    // requests' count and their five durations are already in.
    let marker = sink.wait_for(
        |l| Metric::parse(l).is_some_and(|m| m.name == telemetry::names::TELEMETRY_FLUSHES),
        Duration::from_secs(15),
    );
    assert!(
        marker.is_some(),
        "no flush marker; lines: {:#?}",
        sink.lines()
    );
    let lines = sink.lines();
    let at = lines
        .iter()
        .position(|l| l.starts_with(telemetry::names::TELEMETRY_FLUSHES))
        .unwrap();
    let before: Vec<Metric> = lines[..at]
        .iter()
        .filter_map(|l| Metric::parse(l))
        .collect();
    let counted: f64 = before
        .iter()
        .filter(|m| m.name == "tinyfish.app.requests" && m.tag("route") == Some("/"))
        .map(|m| m.value)
        .sum();
    assert_eq!(counted, 5.0, "lines before the marker: {:#?}", &lines[..at]);
    let durations: usize = lines[..at]
        .iter()
        .filter(|l| l.starts_with("tinyfish.app.request.duration:"))
        .map(|l| l.split('|').next().unwrap().split(':').count() - 1)
        .sum();
    assert_eq!(durations, 5, "lines before the marker: {:#?}", &lines[..at]);
    // The signal did not stop the app.
    assert_eq!(get(app.addr, "/healthz").0, 200);
}
