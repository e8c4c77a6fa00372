//! Driving the load generator from the bench: on a thread of its own, with the progress
//! bar fed and Ctrl-C passed on, and for open-loop trials every server process sampled
//! and the window read at the load generator's own edges ([`crate::window`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use loadgen::{Live, LoadReport, LoadSpec};
use report::model::roles;

use crate::progress::Progress;
use crate::sample::{Point, Sampler, Target};
use crate::window::{Observer, Window};

/// What one open-loop load observed.
pub struct Observed {
    /// The load generator's report.
    pub report: LoadReport,
    /// The window's edges and the servers' metrics over it.
    pub window: Window,
    /// What was sampled: the servers' targets, then the load generator's.
    pub targets: Vec<Target>,
    /// The 10 Hz samples, one series per target.
    pub series: Vec<Vec<Point>>,
}

/// A closed-loop load (capacity): only the load generator's own figures.
pub fn closed(
    spec: &LoadSpec,
    progress: &Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<LoadReport> {
    let live = Live::new();
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("loadgen-main".into())
            .spawn_scoped(scope, || loadgen::run(spec, &live))
            .context("cannot start the load generator thread")?;
        while !handle.is_finished() {
            progress.live(&live.snapshot());
            if interrupted.load(Ordering::Relaxed) {
                live.cancel();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))?
            .map_err(anyhow::Error::from)
    })
}

/// An open-loop load on a topology whose processes are `servers`; `flush` are the pids of
/// our own app and proxy (their metrics are flushed at the window's edges).
pub fn open(
    spec: &LoadSpec,
    servers: Vec<Target>,
    flush: &[u32],
    agent: &agent::AgentHandle,
    progress: &Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Observed> {
    let mut targets = servers;
    let n_servers = targets.len();
    targets.push(Target {
        role: roles::LOADGEN.into(),
        program: "bench".into(),
        pid: std::process::id(),
        thread_prefix: Some("loadgen-".into()),
        container: None,
    });
    let observer = Observer {
        targets: &targets[..n_servers],
        flush,
        agent: Some(agent),
    };
    let sampler = Sampler::start(targets.clone());
    let live = Live::new();
    let (report, window) = std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("loadgen-main".into())
            .spawn_scoped(scope, || loadgen::run(spec, &live))
            .context("cannot start the load generator thread")?;
        let window = observer.observe(&live, |snap| {
            progress.live(snap);
            !interrupted.load(Ordering::Relaxed)
        });
        let report = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))?;
        anyhow::Ok((report, window))
    })?;
    let series = sampler.finish();
    let report = report?;
    let Some(window) = window else {
        bail!("the load generator's measured window was not observed");
    };
    Ok(Observed {
        report,
        window,
        targets,
        series,
    })
}
