//! The TinyFish bench: what does a reverse proxy in front of my service cost?
//!
//! Pipeline, one module a stage:
//! - [`scenario`]: the TOML scenario, validated once;
//! - [`plan`]: the order of trials (rounds interleaved, the baseline twice: A/A) and
//!   the rates;
//! - [`calibrate`]: the clean-rate ceiling, from a short open-loop ramp;
//! - [`child`]: child processes (the bench re-executes itself as `app` and `proxy`,
//!   or runs nginx / an external proxy), stopped on drop, on Ctrl-C and when the
//!   bench dies;
//! - [`service`]: the service a topology serves: the TinyFish app, a user's command, or
//!   an address already running;
//! - [`template`]: programs started from config and command templates (NGINX, external
//!   proxies, command services);
//! - [`certs`]: the run's own TLS certificate (rcgen), for topologies that terminate TLS;
//! - [`topology`]: bringing one topology up and down, as processes or as a compose
//!   project ([`compose`]; its containers sampled by [`containers`]);
//! - [`sample`]: per-process CPU and memory (PSS, RssAnon, RSS) from /proc at 10 Hz, and
//!   the machine's CPU from /proc/stat;
//! - [`load`]: driving the load generator (progress, Ctrl-C, sampling, the window);
//! - [`window`]: a trial's measured window, read at the load generator's own edges;
//! - [`usage`]: what each process tree used over a window;
//! - [`trial`]: a trial's record for the results;
//! - [`wrk`]: the cross-check of our load generator against wrk;
//! - [`environment`]: machine facts, build profile, output directory;
//! - [`progress`]: progress bars;
//! - [`datadog_report`]: each trial's figures and boundaries to the user's Datadog agent,
//!   as the run happens;
//! - [`run`]: the orchestration of one bench run (capacity, ceiling, trials, agent);
//! - [`local_agent`]: `bench agent`, the DogStatsD agent with the container check
//!   ([`container_check`]: each compose container's CPU and memory, as Datadog's
//!   Docker integration reports them, tagged by [`container_meta`]);
//! - [`cli`]: flags and subcommands.
//!
//! The statistics, the rate checks and the warnings are the `report` crate's.
//!
//! Load generation lives in the `loadgen` crate, the DogStatsD agent in `agent`, the
//! results model, statistics and renderings in `report`.

pub mod baseline;
pub mod calibrate;
pub mod certs;
pub mod child;
pub mod cli;
pub mod compose;
pub mod container_check;
pub mod container_meta;
pub mod containers;
pub mod datadog_report;
pub mod environment;
pub mod healthcheck;
pub mod load;
pub mod local_agent;
pub mod plan;
pub mod progress;
pub mod run;
pub mod sample;
pub mod scenario;
pub mod service;
pub mod template;
pub mod topology;
pub mod trial;
pub mod usage;
pub mod window;
pub mod wrk;
