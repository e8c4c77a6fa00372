//! A trial's measured window, read at the load generator's own edges.
//!
//! The load generator fixes its window (`[start, end)`) once its connections are open and
//! publishes it ([`loadgen::Live::window`]); this thread sleeps until each edge and reads,
//! in this order:
//!
//! 1. it sends SIGUSR1 to our app and proxy, which flush what they hold and then send a
//!    `tinyfish.telemetry.flushes` count (first, because their flush runs on their own
//!    threads and starts late on a loaded machine);
//! 2. the CPU time of every sampled process tree and of the machine (`/proc/stat`), the
//!    readings whose difference is the window's CPU;
//! 3. the servers' own metrics: once the embedded agent has seen a flush marker from each
//!    server, its aggregates are taken. At the start edge that empties the
//!    agent of everything before the window; at the end edge the aggregates are the
//!    window's, so the servers' request counts match the load generator's to within the
//!    requests in flight at the edges.

use std::time::{Duration, Instant};

use loadgen::{Live, LiveSnapshot};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::sample::{self, MachineCpu, Target};

/// Longest wait for the servers' flush markers at an edge.
const FLUSH_WAIT: Duration = Duration::from_millis(250);
/// How often progress is drawn while waiting for an edge.
const TICK: Duration = Duration::from_millis(50);

/// The readings at one edge.
#[derive(Debug, Clone)]
pub struct Edge {
    /// When they were taken.
    pub at: Instant,
    /// CPU nanoseconds per target, in target order.
    pub cpu_ns: Vec<u64>,
    /// The machine's CPU ticks.
    pub machine: MachineCpu,
}

/// Both edges and what the servers reported in between.
#[derive(Debug, Clone)]
pub struct Window {
    /// At the start.
    pub start: Edge,
    /// At the end.
    pub end: Edge,
    /// The embedded agent's aggregates over the window.
    pub agent: Option<agent::Snapshot>,
    /// Why the servers' metrics may not match the window exactly.
    pub note: Option<String>,
}

impl Window {
    /// Share of the machine's CPUs busy over the window.
    pub fn machine_busy(&self) -> f64 {
        self.end.machine.busy_share_since(&self.start.machine)
    }

    /// CPU seconds of target `i` over the window.
    pub fn cpu_s(&self, i: usize) -> f64 {
        self.end.cpu_ns[i].saturating_sub(self.start.cpu_ns[i]) as f64 / 1e9
    }
}

/// What to read at the edges.
pub struct Observer<'a> {
    /// Process trees whose CPU is read at the edges.
    pub targets: &'a [Target],
    /// Pids of our app and proxy (they flush their metrics on SIGUSR1).
    pub flush: &'a [u32],
    /// The embedded agent, if metrics are heard.
    pub agent: Option<&'a agent::AgentHandle>,
}

impl Observer<'_> {
    /// Follows the run `live` reports on (running on another thread) and reads both edges
    /// of its window. `tick` is called with progress at least every 50 ms; when it returns
    /// false the run is cancelled. `None` when the run ended before its window did.
    pub fn observe(
        &self,
        live: &Live,
        mut tick: impl FnMut(&LiveSnapshot) -> bool,
    ) -> Option<Window> {
        let mut tick = |live: &Live| {
            if !tick(&live.snapshot()) {
                live.cancel();
            }
        };
        let (start, end) = loop {
            if let Some(w) = live.window() {
                break w;
            }
            if live.is_done() {
                return None;
            }
            tick(live);
            std::thread::sleep(Duration::from_millis(1));
        };
        if !sleep_until(live, start, &mut tick) {
            return None;
        }
        let (start_edge, _, note_start) = self.edge();
        if !sleep_until(live, end, &mut tick) {
            return None;
        }
        let (end_edge, agent, note_end) = self.edge();
        tick(live);
        Some(Window {
            start: start_edge,
            end: end_edge,
            agent,
            note: note_start.or(note_end),
        })
    }

    /// Reads one edge: the servers are signalled to flush first (their flush runs on their
    /// own threads, so every millisecond it starts late shifts their window against the
    /// load generator's), then CPU is read (exact, the bench's own system calls), then the
    /// agent waits for the servers' markers.
    fn edge(&self) -> (Edge, Option<agent::Snapshot>, Option<String>) {
        let want = self.agent.and_then(|agent| self.signal_servers(agent));
        let edge = Edge {
            at: Instant::now(),
            cpu_ns: self.targets.iter().map(sample::cpu_ns).collect(),
            machine: MachineCpu::read(),
        };
        let Some(agent) = self.agent else {
            return (edge, None, None);
        };
        let note = want.and_then(|want| wait_for_flush(agent, want));
        (edge, Some(agent.take_snapshot()), note)
    }

    /// Asks our servers to flush; the count of flush markers the agent will have seen once
    /// they all did (`None` without servers to ask).
    fn signal_servers(&self, agent: &agent::AgentHandle) -> Option<f64> {
        if self.flush.is_empty() {
            return None;
        }
        let before = agent
            .snapshot()
            .total(telemetry::names::TELEMETRY_FLUSHES, &[]);
        for pid in self.flush {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGUSR1);
        }
        Some(before + self.flush.len() as f64)
    }
}

/// Waits (bounded) until the agent has seen `want` flush markers; why not, if it has not.
fn wait_for_flush(agent: &agent::AgentHandle, want: f64) -> Option<String> {
    let deadline = Instant::now() + FLUSH_WAIT;
    loop {
        let seen = agent
            .snapshot()
            .total(telemetry::names::TELEMETRY_FLUSHES, &[]);
        if seen >= want {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(format!(
                "the servers' metrics flush did not reach the agent within {} ms: their \
                 request counts cover the window only to the nearest flush (1 s)",
                FLUSH_WAIT.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Sleeps until `at` (calling `tick` every 50 ms); false if the run ended first.
fn sleep_until(live: &Live, at: Instant, tick: &mut impl FnMut(&Live)) -> bool {
    loop {
        let now = Instant::now();
        if now >= at {
            return true;
        }
        if live.is_done() {
            return false;
        }
        std::thread::sleep((at - now).min(TICK));
        tick(live);
    }
}
