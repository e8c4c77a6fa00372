//! The TinyFish bench: what does a reverse proxy in front of my service cost?
//!
//! Pipeline, one module a stage:
//! - [`scenario`]: the TOML scenario, validated once;
//! - [`plan`]: topologies × rates × rounds, interleaved;
//! - [`child`]: child processes (the bench re-executes itself as `app` and `proxy`,
//!   or runs nginx / an external proxy), stopped on drop, on Ctrl-C and when the
//!   bench dies;
//! - [`topology`]: bringing one topology up and down;
//! - [`sample`]: per-process CPU and RSS from /proc at 10 Hz;
//! - [`run`]: the orchestration of one bench run (capacity, trials, embedded agent);
//! - [`cli`]: flags and subcommands.
//!
//! Load generation lives in the `loadgen` crate, the DogStatsD agent in `agent`, the
//! results model, statistics and renderings in `report`.

pub mod baseline;
pub mod child;
pub mod cli;
pub mod compose;
pub mod healthcheck;
pub mod run;
pub mod sample;
pub mod scenario;
pub mod topology;
