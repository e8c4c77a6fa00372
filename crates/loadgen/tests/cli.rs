//! `bench load` as users see it: flags, messages, the JSON file.

mod support;

use clap::Parser;
use loadgen::Cli;
use support::{Behaviour, TestServer};

/// Stands in for the bench binary, which flattens `Cli` into its `load` subcommand.
#[derive(Debug, Parser)]
struct Bench {
    #[command(flatten)]
    cli: Cli,
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Bench::try_parse_from(std::iter::once("load").chain(args.iter().copied())).map(|b| b.cli)
}

#[test]
fn flags_and_defaults() {
    let cli = parse(&["--url", "http://127.0.0.1:1/"]).unwrap();
    assert_eq!(cli.connections, 32);
    assert_eq!(cli.duration, std::time::Duration::from_secs(10));
    assert_eq!(cli.warmup, std::time::Duration::from_secs(1));
    assert_eq!(cli.rate, None);
    let cli = parse(&[
        "--url",
        "http://127.0.0.1:1/",
        "--connections",
        "8",
        "--duration",
        "8s",
        "--rate",
        "1500",
        "--header",
        "X-Test: a b",
        "--json",
        "/tmp/x.json",
        "--timeout",
        "250ms",
    ])
    .unwrap();
    assert_eq!((cli.connections, cli.rate), (8, Some(1500.0)));
    assert_eq!(cli.headers, vec![("X-Test".to_owned(), "a b".to_owned())]);
    assert_eq!(cli.timeout, std::time::Duration::from_millis(250));
}

#[test]
fn bad_flags_are_rejected_clearly() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--url", "http://h/", "--rate=-5"],
            "positive number of requests per second",
        ),
        (
            &["--url", "http://h/", "--rate", "fast"],
            "positive number of requests per second",
        ),
        (
            &["--url", "http://h/", "--duration", "5 parsecs"],
            "expected a duration",
        ),
        (
            &["--url", "http://h/", "--header", "nocolon"],
            "Name: value",
        ),
        (
            &["--url", "http://h/", "--connections", "many"],
            "invalid value",
        ),
    ];
    for (args, want) in cases {
        let err = parse(args).unwrap_err().to_string();
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert!(parse(&[]).unwrap_err().to_string().contains("--url"));
}

#[test]
fn bad_urls_are_rejected_clearly() {
    for (url, want) in [
        ("ftp://example.com/", "expected http:// or https://"),
        (
            "https://127.0.0.1:1/",
            "an https:// URL needs the CA certificate to trust (--ca FILE)",
        ),
        (
            "example.com",
            "invalid URL \"example.com\": expected http://host[:port]/path",
        ),
        ("http://127.0.0.1:99999/", "invalid port"),
    ] {
        let err = loadgen::run_cli(parse(&["--url", url]).unwrap()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(want), "{url}: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
    let err =
        loadgen::run_cli(parse(&["--url", "http://127.0.0.1:1/", "--connections", "0"]).unwrap())
            .unwrap_err();
    assert!(
        format!("{err:#}").contains("connections must be at least 1"),
        "{err:#}"
    );
}

#[test]
fn unreachable_url_gives_one_clear_line() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{addr}/");
    let err = loadgen::run_cli(parse(&["--url", &url, "--duration", "1s"]).unwrap()).unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(
        msg,
        format!("cannot connect to {addr}: connection refused — is the server running?")
    );
}

#[test]
fn writes_json_with_rate_and_latency() {
    let server = TestServer::start(Behaviour::Hello);
    let dir = std::env::temp_dir().join(format!("loadgen-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.json");
    let url = server.url("/");
    let cli = parse(&[
        "--url",
        &url,
        "--connections",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "100ms",
        "--rate",
        "200",
        "--json",
        path.to_str().unwrap(),
    ])
    .unwrap();
    loadgen::run_cli(cli).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let achieved = json["achieved_rps"].as_f64().unwrap();
    // A 1 s run on a loaded machine: a worker descheduled near the end drops a few sends.
    assert!((achieved - 200.0).abs() <= 6.0, "{achieved}: {json:#}");
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            json["latency_us"][key].as_f64().unwrap() > 0.0,
            "{key}: {json}"
        );
    }
    assert_eq!(json["rate_held"], serde_json::Value::Bool(true));
    assert_eq!(json["target_rps"].as_f64(), Some(200.0));
}

#[test]
fn table_is_aligned_and_names_units() {
    let server = TestServer::start(Behaviour::Hello);
    let mut spec = loadgen::LoadSpec::from_url(&server.url("/")).unwrap();
    spec.connections = 2;
    spec.warmup = std::time::Duration::ZERO;
    spec.duration = std::time::Duration::from_millis(300);
    spec.mode = loadgen::Mode::Open { rate: 100.0 };
    let report = loadgen::run(&spec, &loadgen::Live::new()).unwrap();
    let table = loadgen::cli::render_table(&report);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines.iter().any(|l| l.contains("rate held")), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("p99") && (l.contains("µs") || l.contains("ms"))),
        "{table}"
    );
    assert!(lines.iter().any(|l| l.contains("loadgen CPU")), "{table}");
    assert!(lines.iter().any(|l| l.contains("200: ")), "{table}");
    // Keys are right-aligned, so every value starts in the same column.
    let cpu = lines.iter().find(|l| l.contains("loadgen CPU")).unwrap();
    let c = cpu.find("loadgen CPU").unwrap() + "loadgen CPU".len();
    for l in &lines {
        assert!(l.is_char_boundary(c + 2), "{table}");
        assert_eq!(&l[c..c + 2], "  ", "{table}");
        assert_ne!(&l[c - 1..c], " ", "{table}");
        assert_ne!(&l[c + 2..c + 3], " ", "{table}");
    }
}

#[test]
fn formats_units() {
    assert_eq!(loadgen::cli::format_us(12.34), "12.3 µs");
    assert_eq!(loadgen::cli::format_us(1234.0), "1.23 ms");
    assert_eq!(loadgen::cli::format_us(2_500_000.0), "2.50 s");
}
