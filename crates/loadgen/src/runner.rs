//! Carrying out a [`LoadSpec`]: worker threads, connection tasks, the open and closed loops,
//! and merging what the threads recorded into a [`LoadReport`].
//!
//! Each worker thread (`loadgen-N`) runs a single-threaded tokio runtime and owns a share of
//! the connections, like wrk's threads: nothing is shared between threads on the hot path.
//! All threads connect first; the caller's thread then fixes one start time for all of them
//! (warm-up, then the measured window). After the window, a request still in flight gets a
//! bounded drain (at most 1 s, or the request timeout if shorter) and is then abandoned.

use std::cell::{Cell, RefCell};
use std::pin::pin;
use std::rc::Rc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::task::LocalSet;
use tokio::time::Sleep;

use crate::connection::{Connection, Response};
use crate::cpu::{CpuUsage, ThreadCpu};
use crate::error::{describe_connect_error, ErrorKind, LoadError};
use crate::live::Live;
use crate::report::{LatencyUs, LoadReport, Recorder};
use crate::schedule::{tighten_timer_slack, Pacer, Schedule, LATE_THRESHOLD};
use crate::spec::{LoadSpec, Mode};

/// Longest wait for in-flight responses after the measured window.
const MAX_DRAIN: Duration = Duration::from_secs(1);
/// Pause after a failed reconnect, so a dead server is not hammered in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);
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

    let results: Vec<Result<Option<ThreadResult>, LoadError>> = std::thread::scope(|s| {
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
                    "{} sends dropped: all {} connections were busy waiting for responses \
                     (server too slow for this rate; raise --connections or lower --rate)",
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

struct ThreadResult {
    rec: Recorder,
    cpu: ThreadCpu,
}

/// The phases of a run, as instants.
#[derive(Debug, Clone, Copy)]
struct Windows {
    measure_start: Instant,
    end: Instant,
    drain_end: Instant,
}

/// What every connection task of one worker thread shares.
struct Ctx {
    spec: LoadSpec,
    request: Box<[u8]>,
    w: Windows,
    rec: RefCell<Recorder>,
}

fn worker(
    spec: &LoadSpec,
    request: &[u8],
    conn_ids: Vec<usize>,
    gate: &Gate,
    live: &Live,
) -> Result<Option<ThreadResult>, LoadError> {
    // Whatever happens (even a panic), this thread reports to the gate exactly once, so the
    // caller never waits for it forever.
    let mut ready = ReadyGuard {
        gate,
        reported: false,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ready.report(false);
            gate.wait_go();
            return Err(LoadError::Runtime(e));
        }
    };
    if matches!(spec.mode, Mode::Open { .. }) {
        tighten_timer_slack();
    }
    let connected = rt.block_on(connect_all(spec, conn_ids.len()));
    ready.report(connected.is_ok());
    let start = gate.wait_go();
    let conns = connected?;
    let Some(t0) = start else { return Ok(None) };

    let measure_start = t0 + spec.warmup;
    let end = measure_start + spec.duration;
    let w = Windows {
        measure_start,
        end,
        drain_end: end + MAX_DRAIN.min(spec.request_timeout),
    };
    let ctx = Rc::new(Ctx {
        spec: spec.clone(),
        request: request.into(),
        w,
        rec: RefCell::new(Recorder::new(spec.duration)),
    });
    let local = LocalSet::new();
    let published = Cell::new((0, 0));
    let cpu = local.block_on(&rt, async {
        let cpu_task = tokio::task::spawn_local(measure_cpu(w));
        let mut tasks = Vec::with_capacity(conns.len());
        for (id, conn) in conn_ids.iter().zip(conns) {
            let task = match spec.mode {
                Mode::Closed => tokio::task::spawn_local(closed_loop(ctx.clone(), conn)),
                Mode::Open { rate } => {
                    let sched = Schedule::for_connection(t0, rate, spec.connections, *id);
                    tokio::task::spawn_local(open_loop(ctx.clone(), conn, sched))
                }
            };
            tasks.push(task);
        }
        let all_done = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        tokio::select! {
            () = all_done => {}
            () = publish_progress(&ctx, live, &published) => {}
            () = wait_cancelled(live) => cpu_task.abort(),
        }
        cpu_task.await.unwrap_or_default()
    });
    publish(&ctx, live, &published);
    let rec = ctx.rec.replace(Recorder::new(Duration::ZERO));
    Ok(Some(ThreadResult { rec, cpu }))
}

/// Adds what this thread recorded since the last call to `live`; `published` remembers
/// (completed, errors) already added.
fn publish(ctx: &Ctx, live: &Live, published: &Cell<(u64, u64)>) {
    let (done, errs) = {
        let r = ctx.rec.borrow();
        (r.completed, r.errors.iter().sum::<u64>())
    };
    let (pd, pe) = published.get();
    live.add_completed(done.saturating_sub(pd));
    live.add_errors(errs.saturating_sub(pe));
    published.set((done, errs));
}

/// Publishes progress every 100 ms (keeps atomics off the hot path); never returns.
async fn publish_progress(ctx: &Ctx, live: &Live, published: &Cell<(u64, u64)>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        publish(ctx, live, published);
    }
}

/// Returns once [`Live::cancel`] was called (checked every 20 ms, off the hot path).
async fn wait_cancelled(live: &Live) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if live.is_cancelled() {
            return;
        }
    }
}

async fn measure_cpu(w: Windows) -> ThreadCpu {
    tokio::time::sleep_until(w.measure_start.into()).await;
    let before = ThreadCpu::now();
    tokio::time::sleep_until(w.end.into()).await;
    ThreadCpu::now().since(before)
}

async fn connect_all(spec: &LoadSpec, n: usize) -> Result<Vec<Connection>, LoadError> {
    let mut set = tokio::task::JoinSet::new();
    let (addr, timeout, head) = (spec.addr, spec.request_timeout, spec.is_head());
    for _ in 0..n {
        set.spawn(Connection::connect(addr, timeout, head));
    }
    let mut conns = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => {
                return Err(LoadError::Connect {
                    addr,
                    reason: describe_connect_error(&e),
                })
            }
            Err(e) => return Err(LoadError::WorkerPanicked(e.to_string())),
        }
    }
    Ok(conns)
}

/// Result of one request.
enum Outcome {
    Response(Response),
    Failed(ErrorKind),
    /// Still in flight when the drain ran out.
    Abandoned,
}

/// One exchange bounded by the request timeout and the end of the drain. `timer` is
/// re-armed only when its deadline falls outside [sent + timeout, sent + 1.5 × timeout],
/// which keeps timer-wheel updates rare on fast keep-alive traffic: a timeout fires
/// between 1× and 1.5× the configured value.
async fn timed_exchange(
    ctx: &Ctx,
    conn: &mut Connection,
    mut timer: std::pin::Pin<&mut Sleep>,
    sent: Instant,
) -> Outcome {
    let timeout = ctx.spec.request_timeout;
    let earliest = (sent + timeout).min(ctx.w.drain_end);
    let latest = (sent + timeout + timeout / 2).min(ctx.w.drain_end);
    let deadline = timer.deadline().into_std();
    if deadline < earliest || deadline > latest {
        timer.as_mut().reset(latest.into());
    }
    tokio::select! {
        biased;
        r = conn.exchange(&ctx.request) => match r {
            Ok(resp) => Outcome::Response(resp),
            Err(kind) => Outcome::Failed(kind),
        },
        () = timer.as_mut() => {
            if Instant::now() >= ctx.w.drain_end {
                Outcome::Abandoned
            } else {
                Outcome::Failed(ErrorKind::Timeout)
            }
        }
    }
}

/// (Re)connects; counts the reconnect or the failure if in the window.
async fn reconnect(ctx: &Ctx, measured: bool) -> Result<Connection, ErrorKind> {
    let s = &ctx.spec;
    match Connection::connect(s.addr, s.request_timeout, s.is_head()).await {
        Ok(c) => {
            if measured {
                ctx.rec.borrow_mut().reconnects += 1;
            }
            Ok(c)
        }
        Err(e) => Err(ErrorKind::from_connect(&e)),
    }
}

/// Records a finished request (if in the window); returns whether the connection can be reused.
fn record(
    ctx: &Ctx,
    outcome: &Outcome,
    measured: bool,
    from: Instant,
    sent: Instant,
    done: Instant,
    open: bool,
) -> bool {
    let reusable = match outcome {
        Outcome::Response(r) => !r.close,
        _ => false,
    };
    if !measured {
        return reusable;
    }
    let since_start = done.saturating_duration_since(ctx.w.measure_start);
    let mut rec = ctx.rec.borrow_mut();
    match outcome {
        Outcome::Response(r) => {
            let corrected = done.saturating_duration_since(from).as_nanos() as u64;
            let uncorrected = open.then(|| done.saturating_duration_since(sent).as_nanos() as u64);
            rec.response(r.status, corrected, uncorrected, since_start);
        }
        Outcome::Failed(kind) => rec.error(*kind, since_start),
        Outcome::Abandoned => rec.abandoned += 1,
    }
    reusable
}

async fn backoff(until: Instant) {
    let t = (Instant::now() + RECONNECT_BACKOFF).min(until);
    tokio::time::sleep_until(t.into()).await;
}

/// Closed loop: next request as soon as the previous response is complete.
async fn closed_loop(ctx: Rc<Ctx>, conn: Connection) {
    let w = ctx.w;
    let mut conn = Some(conn);
    let mut timer = pin!(tokio::time::sleep_until(w.drain_end.into()));
    let mut now = Instant::now();
    while now < w.end {
        let measured = now >= w.measure_start;
        let c = match &mut conn {
            Some(c) => c,
            None => match reconnect(&ctx, measured).await {
                Ok(c) => {
                    now = Instant::now();
                    conn.insert(c)
                }
                Err(kind) => {
                    if measured {
                        let mut rec = ctx.rec.borrow_mut();
                        rec.sent += 1;
                        rec.error(kind, now.saturating_duration_since(w.measure_start));
                    }
                    backoff(w.end).await;
                    now = Instant::now();
                    continue;
                }
            },
        };
        let sent = now;
        let outcome = timed_exchange(&ctx, c, timer.as_mut(), sent).await;
        let done = Instant::now();
        let measured = sent >= w.measure_start;
        if measured {
            ctx.rec.borrow_mut().sent += 1;
        }
        if !record(&ctx, &outcome, measured, sent, sent, done, false) {
            conn = None;
        }
        if matches!(outcome, Outcome::Abandoned) {
            break;
        }
        now = done;
    }
}

/// Open loop: this connection's share of the rate, on its own schedule. A request's
/// latency counts from its intended send time, so a stalled server is charged for every
/// request it delayed (coordinated omission corrected).
async fn open_loop(ctx: Rc<Ctx>, conn: Connection, sched: Schedule) {
    let w = ctx.w;
    let mut conn = Some(conn);
    let mut timer = pin!(tokio::time::sleep_until(w.drain_end.into()));
    let mut pacer = Pacer::new();
    let mut k: u64 = 0;
    // When the connection last became free (its previous response completed).
    let mut free_since = w.measure_start.min(sched.at(0));
    loop {
        let intended = sched.at(k);
        if intended >= w.end {
            break;
        }
        if Instant::now() >= w.end {
            // Backlog left when time ran out: never sent.
            ctx.rec.borrow_mut().dropped += sched.count_from(k, w.measure_start, w.end);
            break;
        }
        pacer.sleep_until(intended).await;
        k += 1;
        let measured = intended >= w.measure_start;
        if measured
            && free_since <= intended
            && Instant::now().saturating_duration_since(intended) > LATE_THRESHOLD
        {
            // Late although the connection was free: the load generator's own delay.
            ctx.rec.borrow_mut().pacing_late += 1;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => match reconnect(&ctx, measured).await {
                Ok(c) => conn.insert(c),
                Err(kind) => {
                    let now = Instant::now();
                    if measured {
                        let mut rec = ctx.rec.borrow_mut();
                        rec.sent += 1;
                        rec.error(kind, now.saturating_duration_since(w.measure_start));
                    }
                    backoff(w.end).await;
                    free_since = Instant::now();
                    continue;
                }
            },
        };
        let sent = Instant::now();
        if measured {
            let mut rec = ctx.rec.borrow_mut();
            rec.sent += 1;
            if sent.saturating_duration_since(intended) > LATE_THRESHOLD {
                rec.late += 1;
            }
        }
        let outcome = timed_exchange(&ctx, c, timer.as_mut(), sent).await;
        let done = Instant::now();
        free_since = done;
        if !record(&ctx, &outcome, measured, intended, sent, done, true) {
            conn = None;
        }
        if matches!(outcome, Outcome::Abandoned) {
            ctx.rec.borrow_mut().dropped += sched.count_from(k, w.measure_start, w.end);
            break;
        }
    }
}
