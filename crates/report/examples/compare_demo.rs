//! Prints `compare` of two fake runs: the second with a slower proxy (+20 µs at p50 and
//! 20 % more proxy CPU per request).
//!
//! ```sh
//! cargo run -p report --example compare_demo
//! cargo run -p report --example compare_demo -- --fail-on proxied.added_cpu_us_per_request=+5%
//! cargo run -p report --example compare_demo -- --rates-differ                # refused: exit 2
//! cargo run -p report --example compare_demo -- --rates-differ --by-position
//! ```
//! Exits 0 when every `--fail-on` rule passed, 1 when one failed, 2 when the runs cannot
//! be compared (as `bench compare` does).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Fake, Metrics};
use report::gate::FailRule;
use report::CompareOptions;

fn main() {
    let mut opts = CompareOptions::default();
    let mut rates_differ = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--by-position" => opts.by_position = true,
            "--rates-differ" => rates_differ = true,
            "--fail-on" => {
                let rule = args.next().unwrap_or_default();
                match rule.parse::<FailRule>() {
                    Ok(r) => opts.fail_on.push(r),
                    Err(e) => {
                        eprintln!("{e}");
                        std::process::exit(2);
                    }
                }
            }
            other => {
                eprintln!(
                    "unknown argument {other:?}; expected --by-position, --rates-differ or --fail-on RULE"
                );
                std::process::exit(2);
            }
        }
    }
    let topologies = ["direct", "proxied", "nginx"];
    let a = Fake::new(&topologies, &[1000.0, 4000.0], 6, 1).build();
    let b_rates: &[f64] = if rates_differ {
        &[1000.0, 4400.0]
    } else {
        &[1000.0, 4000.0]
    };
    let proxied = common::default_shift("proxied");
    let b = Fake::new(&topologies, b_rates, 6, 2)
        .shift(
            "proxied",
            Metrics {
                p50_us: proxied.p50_us + 20.0,
                cpu_us: proxied.cpu_us * 1.2,
                ..proxied
            },
        )
        .build();
    match report::compare(&a, &b, &opts) {
        Ok(c) => {
            print!("{}", c.text);
            if !c.failures.is_empty() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("bench compare: {e}");
            std::process::exit(2);
        }
    }
}
