//! Carrying out a [`LoadSpec`]: worker threads, their common start,
//! and merging what the threads recorded into a [`LoadReport`].
//!
//! Each worker thread (`loadgen-N`) runs its own event loop ([`crate::event_loop`]) over a
//! share of the connections, like wrk's threads: nothing is shared between threads on the
//! hot path.
//! All threads connect first; the caller's thread then fixes one start time for all of them
//! (warm-up, then the measured window). After the window, a request still in flight gets a
//! bounded drain (at most 1 s, or the request timeout if shorter) and is then abandoned.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cpu::{CpuUsage, ThreadCpu};
use crate::error::{describe_connect_error, LoadError};
use crate::event_loop::{self, Ctx, ThreadOutput, Windows};
use crate::live::Live;
use crate::report::{LatencyUs, LoadReport, Recorder, TlsHandshakes};
use crate::schedule::LATE_THRESHOLD;
use crate::socket::{ClientSocket, TimestampSource};
use crate::spec::{LoadSpec, Mode};
use crate::wait::tighten_timer_slack;

/// Longest wait for in-flight responses after the measured window.
const MAX_DRAIN: Duration = Duration::from_secs(1);
/// Achieved/target below this means the rate was not held.
const RATE_TOLERANCE: f64 = 0.99;
/// Worker CPU utilisation above which the load generator may be the bottleneck.
const BUSY_UTILISATION: f64 = 0.9;

/// Runs the load described by `spec`, blocking the calling thread until done; `live` is
/// updated for progress display. Returns an error if the spec is invalid or a connection
/// cannot be established before the start (errors during the run are counted instead).
pub fn run(spec: &LoadSpec, live: &Live) -> Result<LoadReport, LoadError> {
    let result = run_threads(spec, live);
    live.finish();
    result
}

fn run_threads(spec: &LoadSpec, live: &Live) -> Result<LoadReport, LoadError> {
    spec.validate()?;
    let request = spec.request_bytes();
    let gate = Gate::default();
    let threads = spec.threads;

    let results: Vec<Result<Option<ThreadOutput>, LoadError>> = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let conn_ids: Vec<usize> = (t..spec.connections).step_by(threads).collect();
            let (request, gate) = (&request, &gate);
            let spawned = std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn_scoped(s, move || worker(spec, request, conn_ids, gate, live));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    gate.wait_ready(handles.len());
                    gate.go(None);
                    let mut out: Vec<_> = handles.into_iter().map(join).collect();
                    out.push(Err(LoadError::Runtime(e)));
                    return out;
                }
            }
        }
        let failed = gate.wait_ready(threads);
        if failed {
            gate.go(None);
        } else {
            let t0 = Instant::now();
            let measure_start = t0 + spec.warmup;
            live.start(measure_start, measure_start + spec.duration);
            gate.go(Some(t0));
        }
        handles.into_iter().map(join).collect()
    });

    let mut merged: Option<Recorder> = None;
    let mut cpus = Vec::with_capacity(threads);
    for r in results {
        let Some(tr) = r? else { continue };
        cpus.push(tr.cpu);
        match &mut merged {
            Some(m) => m.merge(&tr.rec),
            None => merged = Some(tr.rec),
        }
    }
    let rec = merged.ok_or_else(|| LoadError::WorkerPanicked("no worker finished".into()))?;
    Ok(build_report(spec, rec, &cpus))
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, LoadError>>) -> Result<T, LoadError> {
    h.join().unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(LoadError::WorkerPanicked(msg))
    })
}

fn build_report(spec: &LoadSpec, rec: Recorder, cpus: &[ThreadCpu]) -> LoadReport {
    let window_s = spec.duration.as_secs_f64();
    let achieved = rec.completed as f64 / window_s;
    let cpu = CpuUsage::from_threads(cpus, rec.completed, spec.duration);
    let errors = rec.error_counts();
    let error_total: u64 = errors.values().sum();
    let (mode, target, uncorrected) = match spec.mode {
        Mode::Open { rate } => ("open", Some(rate), rec.uncorrected.clone()),
        Mode::Closed => ("closed", None, rec.corrected.clone()),
    };
    let mut notes: Vec<String> = Vec::new();
    let mut rate_held = true;
    if let Some(rate) = target {
        if achieved < RATE_TOLERANCE * rate {
            rate_held = false;
            notes.push(format!(
                "achieved {achieved:.1} req/s of the {rate:.1} req/s target ({:.1} %)",
                100.0 * achieved / rate
            ));
            if rec.dropped > 0 {
                notes.push(format!(
                    "{} sends dropped: all {} connections were busy waiting for responses or \
                     reconnecting (server too slow or down for this rate; raise --connections \
                     or lower --rate)",
                    rec.dropped, spec.connections
                ));
            }
            if error_total > 0 {
                notes.push(format!("{error_total} requests failed"));
            }
        }
        if rec.sent > 0 && rec.pacing_late * 100 > rec.sent {
            notes.push(format!(
                "{} of {} sends were more than {} ms late although their connection was free \
                 (the load generator or the machine was busy)",
                rec.pacing_late,
                rec.sent,
                LATE_THRESHOLD.as_millis()
            ));
        }
    }
    if target.is_some() && rec.completed > 0 && rec.kernel_stamped < rec.completed {
        notes.push(format!(
            "{} of {} responses had no kernel receive timestamp: their latency ends when the \
             load generator read them, which includes its own wake-up",
            rec.completed - rec.kernel_stamped,
            rec.completed
        ));
    }
    if let Some(e) = &rec.tls_error {
        notes.push(format!(
            "TLS failed ({e}): is the CA (--ca) the server's certificate or its issuer, and is \
             the certificate for the URL's host (--server-name)?"
        ));
    }
    if rec.lazy_late > 0 {
        notes.push(format!(
            "{} response(s) were larger than a socket buffer holds and were read late once \
             (their connection then read responses as they came): their latency may include \
             that wait",
            rec.lazy_late
        ));
    }
    if cpu.utilisation > BUSY_UTILISATION {
        notes.push(format!(
            "load generator threads were busy {:.0} % of the time: it may be the bottleneck \
             (raise --threads)",
            cpu.utilisation * 100.0
        ));
    }
    LoadReport {
        mode,
        connections: spec.connections,
        threads: spec.threads,
        target_rps: target,
        achieved_rps: achieved,
        sent: rec.sent,
        completed: rec.completed,
        duration_s: window_s,
        latency_us: LatencyUs::from_histogram(&rec.corrected),
        timestamps: if rec.completed > 0 && rec.kernel_stamped == rec.completed {
            TimestampSource::Kernel
        } else {
            TimestampSource::UserSpace
        },
        kernel_timestamped: rec.kernel_stamped,
        read_delay_us: LatencyUs::from_histogram(&rec.read_delay),
        send_lag_us: LatencyUs::from_histogram(&rec.send_lag),
        early_sends: rec.early_sends,
        max_early_us: rec.max_early_ns as f64 / 1e3,
        latency: rec.corrected.clone(),
        latency_uncorrected: uncorrected,
        status_counts: rec.status_counts(),
        errors,
        late_sends: rec.late,
        pacing_late_sends: rec.pacing_late,
        dropped_sends: rec.dropped,
        abandoned: rec.abandoned,
        reconnects: rec.reconnects,
        rate_held,
        rate_note: (!notes.is_empty()).then(|| notes.join("; ")),
        timeline: rec.timeline_points(),
        cpu,
        tls: spec.tls.as_ref().map(|_| TlsHandshakes {
            handshakes: rec.handshakes,
            resumed: rec.resumed,
            handshake_us: LatencyUs::from_histogram(&rec.handshake),
        }),
    }
}

/// Start line shared by the caller's thread and the workers: workers report "connected"
/// (or not), the caller then releases them with a start time (or tells them to quit).
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    ready: usize,
    failed: bool,
    released: bool,
    start: Option<Instant>,
}

impl Gate {
    fn ready(&self, ok: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.ready += 1;
        s.failed |= !ok;
        self.cv.notify_all();
    }

    /// Waits until `n` workers are ready; returns whether any failed.
    fn wait_ready(&self, n: usize) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.ready < n {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.failed
    }

    fn go(&self, start: Option<Instant>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.released = true;
        s.start = start;
        self.cv.notify_all();
    }

    fn wait_go(&self) -> Option<Instant> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !s.released {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.start
    }
}

/// Reports a worker as failed to the gate if it ends without reporting.
struct ReadyGuard<'a> {
    gate: &'a Gate,
    reported: bool,
}

impl ReadyGuard<'_> {
    fn report(&mut self, ok: bool) {
        if !self.reported {
            self.reported = true;
            self.gate.ready(ok);
        }
    }
}

impl Drop for ReadyGuard<'_> {
    fn drop(&mut self) {
        self.report(false);
    }
}

fn worker(
    spec: &LoadSpec,
    request: &[u8],
    conn_ids: Vec<usize>,
    gate: &Gate,
    live: &Live,
) -> Result<Option<ThreadOutput>, LoadError> {
    // Whatever happens (even a panic), this thread reports to the gate exactly once, so the
    // caller never waits for it forever.
    let mut ready = ReadyGuard {
        gate,
        reported: false,
    };
    tighten_timer_slack();
    let connected = connect_all(spec, conn_ids.len());
    ready.report(connected.is_ok());
    let start = gate.wait_go();
    let socks = connected?;
    let Some(t0) = start else { return Ok(None) };
    let measure_start = t0 + spec.warmup;
    let end = measure_start + spec.duration;
    let ctx = Ctx {
        spec,
        request,
        w: Windows {
            t0,
            measure_start,
            end,
            drain_end: end + MAX_DRAIN.min(spec.request_timeout),
        },
        live,
    };
    // Wait for the common start (connections are open; the first sends are due at t0).
    let now = Instant::now();
    if t0 > now {
        std::thread::sleep(t0 - now);
    }
    let out = match spec.h2_streams {
        Some(_) => crate::h2_loop::run(&ctx, &conn_ids, socks),
        None => event_loop::run(&ctx, &conn_ids, socks),
    };
    out.map(Some).map_err(LoadError::Runtime)
}

fn connect_all(spec: &LoadSpec, n: usize) -> Result<Vec<ClientSocket>, LoadError> {
    (0..n)
        .map(|_| {
            ClientSocket::connect_blocking(spec.addr, spec.request_timeout, spec.wants_timestamps())
                .map_err(|e| LoadError::Connect {
                    addr: spec.addr,
                    reason: describe_connect_error(&e),
                })
        })
        .collect()
}
