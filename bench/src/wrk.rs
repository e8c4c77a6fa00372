//! wrk, the reference closed-loop load generator, for the cross-check that ours is not
//! the bottleneck: `wrk -t1 -cN -dS URL` on the same topology, between two of our runs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::topology;

/// What wrk did, or why it did not run.
#[derive(Debug, Clone, PartialEq)]
pub enum WrkRun {
    /// Its `Requests/sec`.
    Rate(f64),
    /// Not installed, or its output could not be read: the note says which.
    Skipped(String),
}

/// Runs `wrk -t1 -c<connections> -d<secs>s http://<entry><path>`.
pub fn run(
    entry: SocketAddr,
    path: &str,
    connections: usize,
    window: Duration,
) -> anyhow::Result<WrkRun> {
    let Some(wrk) = topology::find_program("wrk") else {
        return Ok(WrkRun::Skipped(
            "wrk is not installed: the load generator is not compared with it (apt-get install wrk)"
                .into(),
        ));
    };
    let secs = window.as_secs_f64().ceil().max(1.0) as u64;
    let url = format!("http://{entry}{path}");
    let out = std::process::Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            &url,
        ])
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(parse(&text).map_or_else(
        || WrkRun::Skipped(format!("could not read wrk's output: {}", text.trim())),
        WrkRun::Rate,
    ))
}

/// wrk's `Requests/sec:` line.
pub fn parse(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_requests_per_second() {
        let out = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n\
                   Requests/sec: 163130.05\nTransfer/sec:     20.38MB\n";
        assert_eq!(super::parse(out), Some(163130.05));
        assert_eq!(super::parse("unable to connect"), None);
    }
}
