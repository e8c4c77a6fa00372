//! One worker thread's event loop: its connections, the open and closed loops, and what it
//! records.
//!
//! Over 600 lines on purpose: one hot loop, in one file so its per-wake-up path reads top
//! to bottom; what it calls (connection, schedule, wait, socket) are modules of their own.
//!
//! The loop is written directly on epoll (as wrk's is) rather than on an async runtime: a
//! load generator must cost less than the servers it measures, and at a fixed rate the
//! cost is wake-ups. Two choices keep them to about one per request:
//!
//! - **Arrival times come from the kernel.** Every read carries the kernel's receive
//!   timestamp of the response's last segment (`socket`), so a response need not be read
//!   the moment it lands. In open loop, a connection whose last response was small (at
//!   most [`LAZY_MAX_BYTES`], which the socket buffer holds whole) is not watched: its
//!   response is read when its next send is due, in the same wake-up. Larger responses,
//!   partial ones, connections that are late for a send, and everything after the window
//!   are read as soon as they are readable.
//! - **Sends are batched per wake-up.** The thread wakes a learnt margin before the next
//!   send is due ([`WakeMargin`]) and issues every send due within that margin.
//!
//! Latency of a response is `arrival − min(intended, sent)`: from the intended send time
//! (coordinated omission corrected, as wrk2), or from the actual send when a batch issued
//! it early. The uncorrected view is `arrival − sent`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::connection::{Completed, Connection};
use crate::cpu::ThreadCpu;
use crate::error::ErrorKind;
use crate::live::Live;
use crate::report::Recorder;
use crate::schedule::{Schedule, WakeMargin, LATE_THRESHOLD};
use crate::socket::{self, ClientSocket};
use crate::spec::{LoadSpec, Mode};
use crate::wait::{Interest, Waiter};

/// Responses up to this size are read lazily in open loop (see the module docs): far below
/// the receive buffer a fresh loopback connection starts with, so the server never waits.
pub(crate) const LAZY_MAX_BYTES: usize = 16 * 1024;
/// Housekeeping period: progress, cancellation, timeouts, reconnect back-off.
const TICK: Duration = Duration::from_millis(20);
/// Progress is published this often.
const PUBLISH: Duration = Duration::from_millis(100);
/// Pause after a failed reconnect, so a dead server is not hammered in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// A sleep shorter than this is not worth a system call.
const MIN_SLEEP: Duration = Duration::from_micros(2);

/// The phases of a run, as instants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub t0: Instant,
    pub measure_start: Instant,
    pub end: Instant,
    pub drain_end: Instant,
}

/// What every connection of one worker thread shares.
pub(crate) struct Ctx<'a> {
    pub spec: &'a LoadSpec,
    pub request: &'a [u8],
    pub w: Windows,
    pub live: &'a Live,
}

/// What a thread measured.
pub(crate) struct ThreadOutput {
    pub rec: Recorder,
    pub cpu: ThreadCpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Connected, nothing in flight.
    Idle,
    /// A non-blocking connect in progress.
    Connecting { since: Instant },
    /// A request partly written.
    Writing,
    /// A request written, its response not (all) read.
    Waiting,
    /// Waiting before reconnecting.
    Backoff { until: Instant },
}

struct Slot {
    /// Index among all the run's connections (staggers the schedules).
    conn: Option<Connection>,
    state: State,
    interest: Interest,
    /// Open loop: this connection's schedule and the index of its next send.
    sched: Option<Schedule>,
    next_k: u64,
    /// A send that came due while the connection was busy: (index, intended time).
    pending: Option<(u64, Instant)>,
    /// The request in flight.
    intended: Instant,
    sent: Instant,
    measured: bool,
    deadline: Instant,
    /// Read this connection's responses when its next send is due.
    lazy: bool,
    /// A lazily read response was not complete at its next send: never lazy again.
    lazy_off: bool,
    /// When the last completed response arrived.
    last_arrival: Instant,
    /// The connect in progress started inside the measured window.
    measured_reconnect: bool,
}

struct Loop<'a> {
    ctx: &'a Ctx<'a>,
    open: bool,
    slots: Vec<Slot>,
    /// Open loop: (next intended send, slot) of every slot with one scheduled.
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    waiter: Waiter,
    /// Slots with an interest registered in epoll.
    watched: usize,
    /// Closed loop: slots that became idle in this wake-up, sent to after it.
    deferred: Vec<usize>,
    /// The last wait's ready sockets (kept for its allocation).
    ready_buf: Vec<(usize, bool, bool)>,
    rec: Recorder,
    cmsg: Vec<u8>,
    margin: WakeMargin,
    /// Sends due within this much of a wake-up go out in it.
    send_window: Duration,
    ended: bool,
    cancelled: bool,
    cpu_start: Option<ThreadCpu>,
    cpu: Option<ThreadCpu>,
    published: (u64, u64),
    next_publish: Instant,
    next_tick: Instant,
}

/// Runs one worker thread's share of the load over its already connected sockets.
pub(crate) fn run(
    ctx: &Ctx<'_>,
    ids: &[usize],
    socks: Vec<ClientSocket>,
) -> std::io::Result<ThreadOutput> {
    let spec = ctx.spec;
    let open = matches!(spec.mode, Mode::Open { .. });
    let waiter = Waiter::new(socks.len() + 1)?;
    let socks_len = socks.len();
    let w = ctx.w;
    let mut slots = Vec::with_capacity(socks.len());
    let mut heap = BinaryHeap::with_capacity(socks.len());
    for (i, (sock, &id)) in socks.into_iter().zip(ids).enumerate() {
        waiter.add(sock.as_fd(), i, Interest::None)?;
        let conn = Connection::new(sock, spec.is_head(), spec.tls.as_ref())
            .map_err(|k| std::io::Error::other(format!("cannot start TLS: {}", k.as_str())))?;
        let sched = match spec.mode {
            Mode::Open { rate } => {
                let s = Schedule::for_connection(w.t0, rate, spec.connections, id);
                heap.push(Reverse((s.at(0), i)));
                Some(s)
            }
            Mode::Closed => None,
        };
        slots.push(Slot {
            conn: Some(conn),
            state: State::Idle,
            interest: Interest::None,
            sched,
            next_k: 0,
            pending: None,
            intended: w.t0,
            sent: w.t0,
            measured: false,
            deadline: w.drain_end,
            lazy: false,
            lazy_off: false,
            last_arrival: w.t0,
            measured_reconnect: false,
        });
    }
    let mut lp = Loop {
        ctx,
        open,
        slots,
        heap,
        waiter,
        watched: 0,
        deferred: Vec::with_capacity(socks_len),
        ready_buf: Vec::with_capacity(socks_len),
        rec: Recorder::new(spec.duration),
        cmsg: socket::control_buffer(),
        margin: WakeMargin::new(),
        send_window: spec.effective_send_window(),
        ended: false,
        cancelled: false,
        cpu_start: None,
        cpu: None,
        published: (0, 0),
        next_publish: Instant::now() + PUBLISH,
        next_tick: Instant::now() + TICK,
    };
    if !open {
        // Closed loop: every connection starts at once (each measured from its own send).
        for i in 0..lp.slots.len() {
            lp.send(i, Instant::now(), true);
        }
    }
    lp.run()?;
    lp.publish();
    let cpu = lp.cpu.unwrap_or_default();
    Ok(ThreadOutput { rec: lp.rec, cpu })
}

impl Loop<'_> {
    fn run(&mut self) -> std::io::Result<()> {
        let w = self.ctx.w;
        loop {
            let now = Instant::now();
            // Closed loop: the next requests go out after every ready response of the last
            // wake-up was read, as wrk does, so the server sees them together.
            let mut deferred = std::mem::take(&mut self.deferred);
            for &i in &deferred {
                if self.slots[i].state == State::Idle && !self.ended && now < w.end {
                    // Closed-loop latency runs from the actual send, not from the wake-up.
                    self.send(i, Instant::now(), true);
                }
            }
            deferred.clear();
            self.deferred = deferred;
            self.window_edges(now);
            if now >= self.next_tick {
                self.housekeeping(now);
                if self.cancelled {
                    self.abandon_all();
                    return Ok(());
                }
            }
            let margin = self.margin.get();
            let window = margin.max(self.send_window);
            while let Some(&Reverse((at, i))) = self.heap.peek() {
                if at > now + window {
                    break;
                }
                self.heap.pop();
                self.due(i, at);
            }
            if now >= w.end && !self.ended {
                self.end_of_window(now);
            }
            if self.ended {
                if !self.any_in_flight() {
                    return Ok(());
                }
                if now >= w.drain_end {
                    self.abandon_all();
                    return Ok(());
                }
            }
            // The next instant something must happen.
            let mut next = self
                .next_tick
                .min(if self.ended { w.drain_end } else { w.end });
            if self.cpu_start.is_none() {
                next = next.min(w.measure_start);
            }
            let mut for_send = false;
            if let Some(&Reverse((at, _))) = self.heap.peek() {
                let wake = at.checked_sub(margin).unwrap_or(at);
                if wake < next {
                    next = wake;
                    for_send = true;
                }
            }
            let now = Instant::now();
            if next <= now + MIN_SLEEP {
                continue;
            }
            if self.watched > 0 {
                self.waiter.wait_until(next)?;
                let mut ready = std::mem::take(&mut self.ready_buf);
                ready.extend(self.waiter.ready());
                if ready.is_empty() && for_send {
                    self.margin
                        .observe(Instant::now().saturating_duration_since(next));
                }
                for &(i, readable, writable) in &ready {
                    self.ready(i, readable, writable);
                }
                ready.clear();
                self.ready_buf = ready;
            } else {
                self.waiter.sleep_until(next);
                if for_send {
                    self.margin
                        .observe(Instant::now().saturating_duration_since(next));
                }
            }
        }
    }

    fn window_edges(&mut self, now: Instant) {
        let w = self.ctx.w;
        if self.cpu_start.is_none() && now >= w.measure_start {
            self.cpu_start = Some(ThreadCpu::now());
        }
        if self.cpu.is_none() && now >= w.end {
            if let Some(start) = self.cpu_start {
                self.cpu = Some(ThreadCpu::now().since(start));
            }
        }
    }

    fn any_in_flight(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, State::Waiting | State::Writing) && s.measured)
    }

    /// Open loop: slot `i`'s send intended at `at` is due.
    fn due(&mut self, i: usize, at: Instant) {
        let k = self.slots[i].next_k;
        self.slots[i].next_k += 1;
        if self.slots[i].state == State::Waiting && self.slots[i].lazy {
            // Its last response may be waiting in the socket buffer: read it now.
            self.read(i);
            let partial = self.slots[i].conn.as_ref().is_some_and(Connection::partial);
            if self.slots[i].state == State::Waiting && partial {
                // Part of it is there, not all: this connection's responses may be larger
                // than the socket buffer holds, so read them as they come from now on
                // (`read` has made it watched) and count it. (Nothing there at all is a
                // slow response: the send waits for it, and the connection stays lazy.)
                self.slots[i].lazy_off = true;
                self.rec.lazy_late += 1;
            } else if self.slots[i].state == State::Idle && self.peer_closed(i) {
                // The server closed it after the response (unwatched, the FIN went unseen):
                // reconnect rather than send into a closed connection.
                self.close(i);
                self.reconnect(i);
            }
        }
        match self.slots[i].state {
            // Free at its intended time if its last response had arrived by then.
            State::Idle => {
                let free = self.slots[i].last_arrival <= at;
                self.send_scheduled(i, at, free);
            }
            _ => {
                self.slots[i].pending = Some((k, at));
                if matches!(self.slots[i].state, State::Waiting) {
                    self.set_interest(i, Interest::Read);
                }
            }
        }
    }

    /// Whether the server has closed slot `i`'s connection (an EOF waiting to be read).
    fn peer_closed(&self, i: usize) -> bool {
        self.slots[i]
            .conn
            .as_ref()
            .is_some_and(Connection::peer_closed)
    }

    /// Sends the scheduled request intended at `at` and schedules the next.
    fn send_scheduled(&mut self, i: usize, at: Instant, free: bool) {
        self.send(i, at, free);
        let slot = &self.slots[i];
        if let Some(s) = slot.sched {
            let next = s.at(slot.next_k);
            if next < self.ctx.w.end {
                self.heap.push(Reverse((next, i)));
            }
        }
    }

    /// Writes a request on an idle slot; `free`: the connection was free at `intended`.
    fn send(&mut self, i: usize, intended: Instant, free: bool) {
        let w = self.ctx.w;
        let sent = Instant::now();
        let measured = intended >= w.measure_start && intended < w.end;
        if measured {
            self.rec.sent += 1;
            let late = sent.saturating_duration_since(intended) > LATE_THRESHOLD;
            if late {
                self.rec.late += 1;
            }
            if self.open && free {
                if late {
                    self.rec.pacing_late += 1;
                }
                self.rec.send_offset(intended, sent);
            }
        }
        let slot = &mut self.slots[i];
        slot.intended = intended;
        slot.sent = sent;
        slot.measured = measured;
        slot.deadline = sent + self.ctx.spec.request_timeout;
        // In flight from here: a failure now is a failed request.
        slot.state = State::Writing;
        let result = slot.conn.as_mut().map_or(Err(ErrorKind::Closed), |c| {
            c.start_request(self.ctx.request)
        });
        let lazy = self.open && slot.lazy && !self.ended;
        match result {
            Ok(true) => {
                self.slots[i].state = State::Waiting;
                self.set_interest(i, if lazy { Interest::None } else { Interest::Read });
            }
            Ok(false) => self.set_interest(i, Interest::Write),
            Err(kind) => self.fail(i, kind),
        }
    }

    /// An epoll event for slot `i`.
    fn ready(&mut self, i: usize, readable: bool, writable: bool) {
        match self.slots[i].state {
            State::Connecting { .. } if writable || readable => {
                let result = self.slots[i]
                    .conn
                    .as_ref()
                    .map_or(Err(std::io::ErrorKind::NotConnected.into()), |c| {
                        c.sock.finish_connect()
                    });
                match result {
                    Ok(()) => {
                        // Connected: an idle socket is always writable, so stop watching
                        // for that (the next send sets what it needs).
                        self.set_interest(i, Interest::None);
                        if self.slots[i].measured_reconnect {
                            self.rec.reconnects += 1;
                        }
                        self.became_idle(i);
                    }
                    Err(e) => self.connect_failed(i, ErrorKind::from_connect(&e)),
                }
            }
            State::Writing if writable || readable => {
                let r = self.slots[i]
                    .conn
                    .as_mut()
                    .map_or(Err(ErrorKind::Closed), |c| c.write_more(self.ctx.request));
                match r {
                    Ok(true) => {
                        self.slots[i].state = State::Waiting;
                        self.set_interest(i, Interest::Read);
                    }
                    Ok(false) => {}
                    Err(kind) => self.fail(i, kind),
                }
            }
            State::Waiting if readable => self.read(i),
            State::Idle if readable => {
                // The server closed an idle keep-alive connection (or sent stray bytes):
                // not a failed request; reconnect before the next one.
                self.close(i);
                self.reconnect(i);
            }
            _ => {}
        }
    }

    /// Reads what slot `i`'s response has brought so far.
    fn read(&mut self, i: usize) {
        let r = match self.slots[i].conn.as_mut() {
            Some(c) => c.read_response(&mut self.cmsg),
            None => Err(ErrorKind::Closed),
        };
        match r {
            Ok(Some(done)) => self.complete(i, done),
            Ok(None) => {
                let partial = self.slots[i].conn.as_ref().is_some_and(Connection::partial);
                if partial || self.slots[i].pending.is_some() || self.ended {
                    self.set_interest(i, Interest::Read);
                }
            }
            Err(kind) => self.fail(i, kind),
        }
    }

    fn complete(&mut self, i: usize, done: Completed) {
        let w = self.ctx.w;
        let slot = &mut self.slots[i];
        // The kernel's clock and ours agree to well under a microsecond; never let a
        // response arrive before its request left.
        let arrival = done.arrival.max(slot.sent);
        if slot.measured {
            let from = slot.intended.min(slot.sent);
            let corrected = arrival.saturating_duration_since(from).as_nanos() as u64;
            let uncorrected = self
                .open
                .then(|| arrival.saturating_duration_since(slot.sent).as_nanos() as u64);
            self.rec.response(
                done.status,
                corrected,
                uncorrected,
                arrival.saturating_duration_since(w.measure_start),
            );
            self.rec.read(done.read_delay, done.kernel);
        }
        // Lazy reading needs the kernel's arrival time: without it, reading late would
        // lengthen the latency measured.
        slot.lazy = self.open && !slot.lazy_off && done.kernel && done.bytes <= LAZY_MAX_BYTES;
        slot.last_arrival = arrival;
        let mut recycle = false;
        if let Some(conn) = slot.conn.as_mut() {
            if let Some(h) = conn.take_handshake() {
                if slot.measured {
                    self.rec.handshake(h.took, h.resumed);
                }
            }
            recycle = self
                .ctx
                .spec
                .requests_per_connection
                .is_some_and(|n| conn.requests >= n);
            if recycle && !done.close {
                conn.goodbye();
            }
        }
        if done.close || recycle {
            self.close(i);
            self.reconnect(i);
        } else {
            self.became_idle(i);
        }
    }

    /// Slot `i` is connected with nothing in flight: send what is waiting for it.
    fn became_idle(&mut self, i: usize) {
        // The interest stays as it was: an idle connection reports nothing unless the
        // server closes it, and the next send sets what it needs (no epoll_ctl per request).
        self.slots[i].state = State::Idle;
        if self.open {
            if let Some((_k, at)) = self.slots[i].pending.take() {
                if self.ended {
                    return;
                }
                self.send_scheduled(i, at, false);
            }
        } else if !self.ended && Instant::now() < self.ctx.w.end {
            self.deferred.push(i);
        }
    }

    /// The request in flight on slot `i` failed: count it, drop the connection, reconnect.
    fn fail(&mut self, i: usize, kind: ErrorKind) {
        let w = self.ctx.w;
        if self.rec.tls_error.is_none() {
            self.rec.tls_error = self.slots[i].conn.as_mut().and_then(Connection::tls_error);
        }
        if self.slots[i].measured && matches!(self.slots[i].state, State::Waiting | State::Writing)
        {
            let now = Instant::now();
            self.rec
                .error(kind, now.saturating_duration_since(w.measure_start));
        }
        self.slots[i].measured = false;
        self.close(i);
        self.reconnect(i);
    }

    fn close(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if let Some(c) = slot.conn.take() {
            self.waiter.remove(c.sock.as_fd());
        }
        if slot.interest != Interest::None {
            self.watched -= 1;
            slot.interest = Interest::None;
        }
        slot.state = State::Backoff {
            until: Instant::now(),
        };
    }

    /// Starts a new connection on slot `i` (if the run still needs one).
    fn reconnect(&mut self, i: usize) {
        let now = Instant::now();
        if self.ended || now >= self.ctx.w.end {
            self.slots[i].state = State::Backoff {
                until: self.ctx.w.drain_end,
            };
            return;
        }
        match ClientSocket::connect(self.ctx.spec.addr, self.ctx.spec.wants_timestamps()) {
            Ok((sock, done)) => {
                if let Err(e) = self.waiter.add(sock.as_fd(), i, Interest::None) {
                    self.connect_failed(i, ErrorKind::from_connect(&e));
                    return;
                }
                let measured = now >= self.ctx.w.measure_start;
                self.slots[i].measured_reconnect = measured;
                let spec = self.ctx.spec;
                match Connection::new(sock, spec.is_head(), spec.tls.as_ref()) {
                    Ok(c) => self.slots[i].conn = Some(c),
                    Err(kind) => {
                        self.connect_failed(i, kind);
                        return;
                    }
                }
                self.slots[i].lazy = false;
                if done {
                    if measured {
                        self.rec.reconnects += 1;
                    }
                    self.became_idle(i);
                } else {
                    self.slots[i].state = State::Connecting { since: now };
                    self.set_interest(i, Interest::Write);
                }
            }
            Err(e) => self.connect_failed(i, ErrorKind::from_connect(&e)),
        }
    }

    /// A reconnect failed: the send waiting for it fails too; try again after a pause.
    fn connect_failed(&mut self, i: usize, kind: ErrorKind) {
        let w = self.ctx.w;
        let now = Instant::now();
        if let Some(c) = self.slots[i].conn.take() {
            self.waiter.remove(c.sock.as_fd());
        }
        if self.slots[i].interest != Interest::None {
            self.watched -= 1;
            self.slots[i].interest = Interest::None;
        }
        let counted = if self.open {
            match self.slots[i].pending.take() {
                Some((k, at)) => {
                    let measured = at >= w.measure_start && at < w.end;
                    if let Some(s) = self.slots[i].sched {
                        let next = s.at(k + 1);
                        if next < w.end {
                            self.heap.push(Reverse((next, i)));
                        }
                    }
                    measured
                }
                None => false,
            }
        } else {
            now >= w.measure_start && now < w.end
        };
        if counted {
            self.rec.sent += 1;
            self.rec
                .error(kind, now.saturating_duration_since(w.measure_start));
        }
        self.slots[i].state = State::Backoff {
            until: now + RECONNECT_BACKOFF,
        };
    }

    fn set_interest(&mut self, i: usize, interest: Interest) {
        let slot = &mut self.slots[i];
        if slot.interest == interest {
            return;
        }
        let Some(conn) = slot.conn.as_ref() else {
            return;
        };
        if self.waiter.modify(conn.sock.as_fd(), i, interest).is_err() {
            return;
        }
        match (slot.interest, interest) {
            (Interest::None, _) => self.watched += 1,
            (_, Interest::None) => self.watched -= 1,
            _ => {}
        }
        slot.interest = interest;
    }

    /// Progress, cancellation, timeouts and reconnects, every [`TICK`].
    fn housekeeping(&mut self, now: Instant) {
        self.next_tick = now + TICK;
        if now >= self.next_publish {
            self.next_publish = now + PUBLISH;
            self.publish();
        }
        if self.ctx.live.is_cancelled() {
            self.cancelled = true;
            return;
        }
        let timeout = self.ctx.spec.request_timeout;
        for i in 0..self.slots.len() {
            match self.slots[i].state {
                State::Waiting | State::Writing if now >= self.slots[i].deadline => {
                    if self.slots[i].state == State::Waiting {
                        // A lazily read response may be complete in the buffer; reading
                        // it may also have sent the next request, which has not timed out.
                        let sent = self.slots[i].sent;
                        self.read(i);
                        if self.slots[i].state != State::Waiting || self.slots[i].sent != sent {
                            continue;
                        }
                    }
                    self.fail(i, ErrorKind::Timeout);
                }
                State::Connecting { since } if now >= since + timeout => {
                    self.connect_failed(i, ErrorKind::ConnectTimeout);
                }
                State::Backoff { until } if now >= until && !self.ended => self.reconnect(i),
                _ => {}
            }
        }
    }

    /// The measured window is over: no more sends; what was due and never sent is dropped;
    /// responses still coming are read as soon as they arrive.
    fn end_of_window(&mut self, now: Instant) {
        let w = self.ctx.w;
        self.ended = true;
        self.window_edges(now);
        self.heap.clear();
        for i in 0..self.slots.len() {
            if let (Some((k, _)), Some(s)) = (self.slots[i].pending.take(), self.slots[i].sched) {
                self.rec.dropped += s.count_from(k, w.measure_start, w.end);
            }
            if self.slots[i].state == State::Waiting && self.slots[i].measured {
                // Something may have arrived already.
                self.read(i);
                if self.slots[i].state == State::Waiting {
                    self.set_interest(i, Interest::Read);
                }
            }
        }
    }

    /// The drain ran out (or the run was cancelled): what is still in flight is abandoned.
    fn abandon_all(&mut self) {
        for s in &self.slots {
            if matches!(s.state, State::Waiting | State::Writing) && s.measured {
                self.rec.abandoned += 1;
            }
        }
        self.window_edges(Instant::now());
        if self.cpu.is_none() {
            // Cancelled inside the window: its CPU so far.
            self.cpu = self.cpu_start.map(|start| ThreadCpu::now().since(start));
        }
    }

    /// Adds what this thread recorded since the last call to the shared progress.
    fn publish(&mut self) {
        let done = self.rec.completed;
        let errs: u64 = self.rec.errors.iter().sum();
        let (pd, pe) = self.published;
        self.ctx.live.add_completed(done.saturating_sub(pd));
        self.ctx.live.add_errors(errs.saturating_sub(pe));
        self.published = (done, errs);
    }
}
