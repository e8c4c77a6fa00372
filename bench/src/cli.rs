//! Flags and subcommands of the `bench` binary.
//!
//! `bench` alone runs a comparison (the default scenario unless `--scenario`);
//! `bench load`, `bench agent`, `bench compare` and `bench healthcheck` are tools of
//! their own; `bench app` and `bench proxy` (hidden) are how the bench re-executes
//! itself as the app and the proxy, so `cargo run -p bench` needs no other build.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::run::{self, RunOptions};
use crate::scenario::Scenario;

/// What does a reverse proxy in front of my service cost?
///
/// Runs the TinyFish app directly and behind proxies (ours, NGINX, any other), loads
/// each at the same fixed rates in interleaved rounds, samples every process's CPU
/// and memory, and reports the proxy's cost with 95% confidence intervals.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A tool other than the comparison.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The comparison's flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of the comparison run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML); default: bench/scenarios/default.toml (built in).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// A short run (about 30 s): one rate, two rounds, short windows.
    #[arg(long)]
    pub quick: bool,
    /// Output directory; default: bench/results/<timestamp>/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override the scenario's number of rounds.
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// No progress bars (they are also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Run direct and proxied as compose projects (compose/*.yml with the local agent)
    /// and sample the containers' cgroup counters; needs the tinyfish:local image
    /// (deploy/build-offline).
    #[arg(long)]
    pub compose: bool,
    /// Load at the absolute rates of an earlier run (its results.json), so the two runs
    /// can be compared with `bench compare`.
    #[arg(long, value_name = "RESULTS_JSON")]
    pub rates_from: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load any URL: open loop at --rate, or closed loop without it.
    Load(loadgen::Cli),
    /// A DogStatsD agent: receive, aggregate, serve a JSON snapshot and a live page;
    /// with --containers, each container's CPU and memory too.
    Agent(crate::local_agent::AgentArgs),
    /// What changed between two runs' results.json, with significance; exit 1 when a
    /// --fail-on rule finds a significant regression, 2 when the runs cannot be compared.
    Compare {
        /// The earlier run's results.json.
        a: PathBuf,
        /// The later run's results.json.
        b: PathBuf,
        /// Pair the runs' rates in order even when their values differ.
        #[arg(long)]
        by_position: bool,
        /// Fail (exit 1) on a significant regression beyond a limit, e.g.
        /// proxied.added_cpu_us_per_request=+5% or nginx.p99_us=+200; repeatable.
        #[arg(long, value_name = "TOPOLOGY.METRIC=+LIMIT")]
        fail_on: Vec<report::gate::FailRule>,
    },
    /// Exit 0 when URL answers 2xx within the timeout (for container healthchecks).
    Healthcheck {
        /// http://host:port/path
        url: String,
        /// How long to wait.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Run as the TinyFish app (used by the bench itself).
    #[command(hide = true)]
    App(app::Cli),
    /// Run as the TinyFish proxy (used by the bench itself).
    #[command(hide = true)]
    Proxy(proxy::Cli),
    /// Run as a minimal hyper server answering the app's greeting (the app's floor).
    #[command(hide = true)]
    HyperBaseline {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Accepted for symmetry with `app`; the baseline always runs one thread.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// Parses the command line and runs; the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "bench: {}; see 'bench --help'",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli.command {
        None => return compare_run(cli.run),
        Some(Command::Load(c)) => loadgen::run_cli(c),
        Some(Command::Agent(c)) => crate::local_agent::run(c),
        Some(Command::Compare {
            a,
            b,
            by_position,
            fail_on,
        }) => {
            return compare(
                &a,
                &b,
                &report::CompareOptions {
                    by_position,
                    fail_on,
                },
            )
        }
        Some(Command::Healthcheck { url, timeout }) => crate::healthcheck::check(&url, timeout),
        Some(Command::App(c)) => app::run(c, telemetry::DatadogEnv::from_process_env()),
        Some(Command::Proxy(c)) => proxy::run(c, telemetry::DatadogEnv::from_process_env()),
        Some(Command::HyperBaseline { listen, .. }) => crate::baseline::serve(listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `bench compare`: 0 when compared (and every --fail-on rule passed), 1 on a failed
/// rule, 2 when the files cannot be read or compared.
fn compare(a: &std::path::Path, b: &std::path::Path, opts: &report::CompareOptions) -> ExitCode {
    let load = |p: &std::path::Path| report::load(p).map_err(|e| format!("bench: {e}"));
    let (ra, rb) = match (load(a), load(b)) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match report::compare(&ra, &rb, opts) {
        Ok(c) => {
            print!("{}", c.text);
            if c.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("bench: {} --fail-on check(s) failed", c.failures.len());
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("bench: compare: {e}");
            ExitCode::from(2)
        }
    }
}

fn compare_run(args: RunArgs) -> ExitCode {
    let scenario = match &args.scenario {
        Some(p) => Scenario::from_file(p),
        None => Ok(Scenario::default_scenario()),
    };
    let mut scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(r) = args.rounds {
        if r == 0 {
            eprintln!("bench: --rounds: expected at least 1");
            return ExitCode::from(2);
        }
        scenario.rounds = r;
    }
    if args.quick {
        scenario = scenario.quick();
    }
    let datadog = match crate::datadog_report::Reporter::from_env(
        &telemetry::DatadogEnv::from_process_env(),
        &scenario.name,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e} (the bench reports each trial there; unset it to run without)");
            return ExitCode::from(2);
        }
    };
    let rates_from = match &args.rates_from {
        None => None,
        Some(p) => {
            match report::load(p) {
                Ok(r) if !r.rates_rps.is_empty() || !r.shapes.is_empty() => {
                    if args.quick {
                        eprintln!("bench: --rates-from and --quick: the quick run keeps all the file's rates");
                    }
                    let by_shape = if r.shapes.is_empty() {
                        vec![(String::new(), r.rates_rps)]
                    } else {
                        r.shapes
                            .into_iter()
                            .map(|s| (s.name, s.results.rates_rps))
                            .collect()
                    };
                    Some((p.clone(), by_shape))
                }
                Ok(_) => {
                    eprintln!("bench: --rates-from {}: that run has no rates", p.display());
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("bench: --rates-from: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bench: cannot find my own executable to start the app and proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled exits at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, interrupted.clone());
        let _ = signal_hook::flag::register(sig, interrupted.clone());
    }
    let opts = RunOptions {
        scenario,
        scenario_file: args.scenario.clone(),
        quick: args.quick,
        out: args
            .out
            .clone()
            .unwrap_or_else(crate::environment::default_out_dir),
        exe,
        progress: !args.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        compose: args.compose,
        rates_from,
        datadog,
    };
    let (profile, _) = crate::environment::build_profile();
    eprintln!(
        "bench: scenario {}{}, {} build; writing to {}",
        opts.scenario.name,
        if opts.quick { " (quick)" } else { "" },
        profile,
        opts.out.display()
    );
    if let Some(line) = opts.datadog.describe() {
        eprintln!("{line}");
    }
    match run::run(&opts, interrupted) {
        Ok(outcome) => {
            println!("{}", report::terminal_tables(&outcome.results));
            for f in &outcome.files {
                println!("wrote {}", f.display());
            }
            if outcome.interrupted {
                eprintln!("bench: interrupted: children stopped, partial results written");
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
