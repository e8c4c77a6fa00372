//! Request durations, batched off the request path.
//!
//! Handing each duration straight to [`Telemetry::distribution`] costs the request a
//! formatted string, a queue push and, at the rates the bench runs, a wake-up of the
//! sending thread per request: measured, it more than doubled the app's CPU per hello
//! request. Instead a request pushes `(cell, ms)` into one of a few sharded buffers (an
//! uncontended lock and a push), and a background thread hands the buffered values to
//! telemetry every [`FLUSH_EVERY`], in one burst, so the sender wakes once per burst.
//! Every value is still sent as its own distribution point with its own tags.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use telemetry::Telemetry;

/// How often buffered durations are handed to telemetry.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Buffered values per shard before new ones are dropped (and counted): about 0.2 s at
/// 80k requests/s on one thread, ten flush periods.
pub const SHARD_CAPACITY: usize = 16 * 1024;
const SHARDS: usize = 16;

/// Which distribution a value belongs to (e.g. route × status class), and its tags.
pub type Cell = u8;

/// Sharded buffers of durations and the thread that empties them.
#[derive(Debug)]
pub struct Durations {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    name: &'static str,
    /// Tags of each cell.
    tags: Vec<[(&'static str, &'static str); 2]>,
    shards: [Mutex<Vec<(Cell, f64)>>; SHARDS],
    dropped: AtomicU64,
}

impl Durations {
    /// Starts the flushing thread; `tags[cell]` are the tags of values recorded in `cell`.
    /// With metrics off nothing is started and [`Durations::record`] must not be called.
    pub fn start(
        telemetry: &Telemetry,
        name: &'static str,
        tags: Vec<[(&'static str, &'static str); 2]>,
    ) -> Self {
        let shared = Arc::new(Shared {
            name,
            tags,
            shards: std::array::from_fn(|_| Mutex::new(Vec::new())),
            dropped: AtomicU64::new(0),
        });
        if telemetry.is_enabled() {
            let weak = Arc::downgrade(&shared);
            let t = telemetry.clone();
            // If the thread cannot start, values pile up to the cap and are dropped: the
            // app still serves.
            let _ = thread::Builder::new()
                .name("app-metrics".into())
                .spawn(move || flush_loop(&weak, &t));
        }
        Durations { shared }
    }

    /// Buffers one value; a lock nobody else holds and a push.
    #[inline]
    pub fn record(&self, cell: Cell, ms: f64) {
        let shard = &self.shared.shards[shard_index()];
        let mut buf = shard.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() < SHARD_CAPACITY {
            buf.push((cell, ms));
        } else {
            drop(buf);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Values dropped because a buffer was full (the flushing thread fell behind).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Hands every buffered value to `telemetry` now.
    pub fn flush(&self, telemetry: &Telemetry) {
        self.shared.flush(telemetry);
    }
}

impl Shared {
    fn flush(&self, telemetry: &Telemetry) {
        let mut batch = Vec::new();
        for shard in &self.shards {
            {
                let mut buf = shard.lock().unwrap_or_else(|p| p.into_inner());
                if buf.is_empty() {
                    continue;
                }
                // Swap in the emptied batch so each shard keeps a warm allocation.
                std::mem::swap(&mut *buf, &mut batch);
            }
            for &(cell, ms) in &batch {
                let tags = self.tags.get(usize::from(cell)).map_or(&[][..], |t| &t[..]);
                telemetry.distribution(self.name, ms, tags);
            }
            batch.clear();
        }
    }
}

fn flush_loop(weak: &Weak<Shared>, telemetry: &Telemetry) {
    loop {
        thread::sleep(FLUSH_EVERY);
        let Some(shared) = weak.upgrade() else { return };
        shared.flush(telemetry);
    }
}

/// This thread's shard: assigned round-robin on first use, so up to [`SHARDS`] worker
/// threads never share a lock.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_until_full_then_counts_drops() {
        let d = Durations::start(&Telemetry::off(), "x", vec![[("a", "b"), ("c", "d")]]);
        for i in 0..SHARD_CAPACITY + 10 {
            d.record(0, i as f64);
        }
        assert_eq!(d.dropped(), 10);
        d.flush(&Telemetry::off());
        d.record(0, 1.0);
        assert_eq!(d.dropped(), 10, "a flush makes room again");
    }
}
