//! Aggregation per context (type, name, tag set), as the Datadog agent does:
//! counts summed and scaled by `1/sample_rate`, the last gauge, histograms, timings
//! and distributions in a DDSketch (1% relative error) with exact min/max and
//! scaled count/sum, sets as distinct members; events and service checks kept,
//! bounded. Malformed lines are counted by kind.
//!
//! Tag sets are order-insensitive and de-duplicated (`#b,a,a` is `#a,b`). Looking up
//! an existing context allocates nothing: the context hash combines per-tag hashes
//! commutatively, and the comparison is one string comparison when the tags come in
//! the order first seen (else a search of the stored, sorted tags).
//!
//! Sample rates weigh counts and sums; sketch quantiles are of the values received
//! (the agent's histograms do the same), so they are exact for uniformly sampled
//! series.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use sketches_ddsketch::{Config, DDSketch};

use crate::parse::{self, Item, Malformed, Metric, MetricKind, Tags};
use crate::snapshot::{EventSnapshot, MetricSnapshot, ServiceCheckSnapshot, Snapshot};

/// Most contexts kept per window; samples of new contexts beyond it are counted in
/// `over_limit` and dropped.
pub const MAX_CONTEXTS: usize = 100_000;
/// Most distinct members kept per set.
pub const MAX_SET_MEMBERS: usize = 10_000;
/// Most events kept per window (the newest).
pub const MAX_EVENTS: usize = 1_000;
/// Most service checks kept per window (the newest).
pub const MAX_SERVICE_CHECKS: usize = 1_000;

/// The aggregates of one window. Not thread-safe by itself: the receiver keeps it
/// behind a mutex.
#[derive(Debug)]
pub struct Aggregator {
    contexts: HashMap<u64, Vec<Context>, BuildHasherDefault<IdHasher>>,
    n_contexts: usize,
    events: VecDeque<EventSnapshot>,
    service_checks: VecDeque<ServiceCheckSnapshot>,
    malformed: [u64; Malformed::COUNT],
    packets: u64,
    bytes: u64,
    lines: u64,
    over_limit: u64,
    started: Instant,
    /// Reused per line: the line's unique tags as (offset, length).
    scratch: Vec<TagRef>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
struct Context {
    kind: MetricKind,
    name: Box<str>,
    /// Sorted, unique, non-empty.
    tags: Box<[Box<str>]>,
    /// The tag field as first received, for a cheap exact comparison.
    raw_tags: Box<str>,
    samples: u64,
    agg: Agg,
}

#[derive(Debug)]
enum Agg {
    Count(f64),
    Gauge(f64),
    Sketch(Box<Sketch>),
    Set(HashSet<Box<str>>),
}

struct Sketch {
    sketch: DDSketch,
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// A pass-through hasher for keys that are already hashes.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// FxHash-style: fast, deterministic, good enough for keys that are compared in full.
fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    for b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
    }
    // Final avalanche so that sums of tag hashes spread well.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// A tag of the current line: offset and length in the raw tag string, and its hash.
type TagRef = (u32, u32, u64);

fn tag_str<'a>(raw: &'a str, &(o, l, _): &TagRef) -> &'a str {
    &raw[o as usize..(o + l) as usize]
}

/// The unique non-empty tags of a line, collected into a reused buffer: no allocation
/// once the buffer has grown. Duplicates are found by hash first.
fn unique_tags(raw: &str, out: &mut Vec<TagRef>) {
    out.clear();
    let base = raw.as_ptr() as usize;
    for t in raw.split(',') {
        if t.is_empty() {
            continue;
        }
        let h = hash_bytes(t.as_bytes());
        if out.iter().any(|r| r.2 == h && tag_str(raw, r) == t) {
            continue;
        }
        out.push(((t.as_ptr() as usize - base) as u32, t.len() as u32, h));
    }
}

fn context_hash(kind: MetricKind, name: &str, tags: &[TagRef]) -> u64 {
    let sum = tags.iter().fold(0u64, |acc, t| acc.wrapping_add(t.2));
    hash_bytes(name.as_bytes())
        ^ sum.rotate_left(17)
        ^ (kind as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Tags of a line as stored: sorted, unique, non-empty.
pub fn normalize_tags(tags: Tags<'_>) -> Vec<String> {
    let mut v: Vec<String> = tags.iter().map(str::to_owned).collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Context {
    fn matches(&self, kind: MetricKind, name: &str, raw: &str, tags: &[TagRef]) -> bool {
        self.kind == kind
            && &*self.name == name
            // Fast path: clients send a series' tags the same way every time.
            && (&*self.raw_tags == raw
                || (self.tags.len() == tags.len()
                    && tags.iter().all(|t| {
                        let t = tag_str(raw, t);
                        self.tags.binary_search_by(|s| (**s).cmp(t)).is_ok()
                    })))
    }

    fn new(m: &Metric<'_>) -> Self {
        let tags: Vec<Box<str>> = normalize_tags(m.tags)
            .into_iter()
            .map(String::into_boxed_str)
            .collect();
        let agg = match m.kind {
            MetricKind::Count => Agg::Count(0.0),
            MetricKind::Gauge => Agg::Gauge(0.0),
            MetricKind::Set => Agg::Set(HashSet::new()),
            _ => Agg::Sketch(Box::new(Sketch {
                sketch: DDSketch::new(Config::defaults()),
                count: 0.0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            })),
        };
        Context {
            kind: m.kind,
            name: m.name.into(),
            tags: tags.into_boxed_slice(),
            raw_tags: m.tags.0.into(),
            samples: 0,
            agg,
        }
    }

    /// Adds a metric line's values; returns how many were dropped over a limit.
    fn add(&mut self, m: &Metric<'_>) -> u64 {
        let weight = 1.0 / m.sample_rate;
        match &mut self.agg {
            Agg::Count(sum) => {
                for v in m.values() {
                    *sum += v * weight;
                    self.samples += 1;
                }
            }
            Agg::Gauge(last) => {
                for v in m.values() {
                    *last = v;
                    self.samples += 1;
                }
            }
            Agg::Sketch(s) => {
                for v in m.values() {
                    s.sketch.add(v);
                    s.count += weight;
                    s.sum += v * weight;
                    s.min = s.min.min(v);
                    s.max = s.max.max(v);
                    self.samples += 1;
                }
            }
            Agg::Set(members) => {
                self.samples += 1;
                let member = m.set_member();
                if !members.contains(member) {
                    if members.len() >= MAX_SET_MEMBERS {
                        return 1;
                    }
                    members.insert(member.into());
                }
            }
        }
        0
    }

    fn snapshot(&self) -> MetricSnapshot {
        let mut s = MetricSnapshot {
            name: self.name.to_string(),
            kind: self.kind,
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
            samples: self.samples,
            value: None,
            count: None,
            sum: None,
            avg: None,
            min: None,
            p50: None,
            p90: None,
            p99: None,
            max: None,
            members: None,
        };
        match &self.agg {
            Agg::Count(v) | Agg::Gauge(v) => s.value = Some(*v),
            Agg::Set(members) => {
                let mut m: Vec<String> = members.iter().map(|m| m.to_string()).collect();
                m.sort_unstable();
                s.value = Some(m.len() as f64);
                s.members = Some(m);
            }
            Agg::Sketch(k) => {
                if k.sketch.count() > 0 {
                    let q = |q: f64| k.sketch.quantile(q).ok().flatten();
                    s.count = Some(k.count);
                    s.sum = Some(k.sum);
                    s.avg = Some(k.sum / k.count);
                    s.min = Some(k.min);
                    s.max = Some(k.max);
                    // The sketch's estimates are within 1%; keep them inside [min, max].
                    let clamp = |v: Option<f64>| v.map(|v| v.clamp(k.min, k.max));
                    s.p50 = clamp(q(0.5));
                    s.p90 = clamp(q(0.9));
                    s.p99 = clamp(q(0.99));
                }
            }
        }
        s
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

impl Aggregator {
    /// An empty window starting now.
    pub fn new() -> Self {
        Aggregator {
            contexts: HashMap::default(),
            n_contexts: 0,
            events: VecDeque::new(),
            service_checks: VecDeque::new(),
            malformed: [0; Malformed::COUNT],
            packets: 0,
            bytes: 0,
            lines: 0,
            over_limit: 0,
            started: Instant::now(),
            scratch: Vec::new(),
        }
    }

    /// Parses and aggregates one datagram.
    pub fn ingest(&mut self, packet: &[u8]) {
        self.count_packet(packet.len());
        for item in parse::parse_packet(packet) {
            self.ingest_result(&item);
        }
    }

    /// Counts a datagram of `len` bytes (its lines go to [`Aggregator::ingest_result`]).
    pub fn count_packet(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }

    /// Aggregates one parsed line, or counts it as malformed.
    pub fn ingest_result(&mut self, item: &Result<Item<'_>, Malformed>) {
        self.lines += 1;
        match item {
            Ok(item) => self.ingest_item(item),
            Err(kind) => self.malformed[kind.index()] += 1,
        }
    }

    /// Aggregates one parsed item.
    pub fn ingest_item(&mut self, item: &Item<'_>) {
        match item {
            Item::Metric(m) => self.ingest_metric(m),
            Item::Event(e) => {
                if self.events.len() >= MAX_EVENTS {
                    self.events.pop_front();
                    self.over_limit += 1;
                }
                self.events.push_back(EventSnapshot {
                    title: e.title.to_string(),
                    text: e.text.to_string(),
                    timestamp: e.timestamp,
                    hostname: owned(e.hostname),
                    aggregation_key: owned(e.aggregation_key),
                    priority: e.priority,
                    source_type: owned(e.source_type),
                    alert_type: e.alert_type,
                    tags: normalize_tags(e.tags),
                    container_id: owned(e.container_id),
                });
            }
            Item::ServiceCheck(c) => {
                if self.service_checks.len() >= MAX_SERVICE_CHECKS {
                    self.service_checks.pop_front();
                    self.over_limit += 1;
                }
                self.service_checks.push_back(ServiceCheckSnapshot {
                    name: c.name.to_owned(),
                    status: c.status,
                    timestamp: c.timestamp,
                    hostname: owned(c.hostname),
                    message: owned(c.message),
                    tags: normalize_tags(c.tags),
                    container_id: owned(c.container_id),
                });
            }
        }
    }

    fn ingest_metric(&mut self, m: &Metric<'_>) {
        let raw = m.tags.0;
        unique_tags(raw, &mut self.scratch);
        let tags = &self.scratch;
        let h = context_hash(m.kind, m.name, tags);
        let bucket = self.contexts.entry(h).or_default();
        let i = match bucket
            .iter()
            .position(|c| c.matches(m.kind, m.name, raw, tags))
        {
            Some(i) => i,
            None => {
                if self.n_contexts >= MAX_CONTEXTS {
                    self.over_limit += 1;
                    return;
                }
                self.n_contexts += 1;
                bucket.push(Context::new(m));
                bucket.len() - 1
            }
        };
        self.over_limit += bucket[i].add(m);
    }

    /// Number of contexts (metric series) in this window.
    pub fn contexts(&self) -> usize {
        self.n_contexts
    }

    /// The sketches of metric `name` in this window, each with its context's tags
    /// (sorted): what [`crate::series`] merges per service.
    pub(crate) fn sketches<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a [Box<str>], &'a DDSketch)> + 'a {
        self.contexts
            .values()
            .flatten()
            .filter(move |c| &*c.name == name)
            .filter_map(|c| match &c.agg {
                Agg::Sketch(s) => Some((&*c.tags, &s.sketch)),
                _ => None,
            })
    }

    /// Lines rejected so far, by kind.
    pub fn malformed(&self, kind: Malformed) -> u64 {
        self.malformed[kind.index()]
    }

    /// Lines rejected so far.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }

    /// Datagrams ingested so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Lines ingested so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The window as data (`kernel_drops` is left `None`: the receiver fills it in).
    pub fn snapshot(&self) -> Snapshot {
        let mut metrics: Vec<MetricSnapshot> = self
            .contexts
            .values()
            .flatten()
            .map(Context::snapshot)
            .collect();
        metrics.sort_by(|a, b| (&a.name, a.kind, &a.tags).cmp(&(&b.name, b.kind, &b.tags)));
        Snapshot {
            metrics,
            events: self.events.iter().cloned().collect(),
            service_checks: self.service_checks.iter().cloned().collect(),
            malformed: self.malformed_total(),
            malformed_by_kind: Malformed::ALL
                .iter()
                .filter(|k| self.malformed[k.index()] > 0)
                .map(|k| (k.as_str().to_owned(), self.malformed[k.index()]))
                .collect(),
            packets: self.packets,
            bytes: self.bytes,
            lines: self.lines,
            kernel_drops: None,
            over_limit: self.over_limit,
            window_secs: self.started.elapsed().as_secs_f64(),
        }
    }

    /// The window as data, and a new empty window starting now.
    pub fn take_snapshot(&mut self) -> Snapshot {
        std::mem::take(self).snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(packets: &[&str]) -> Snapshot {
        let mut a = Aggregator::new();
        for p in packets {
            a.ingest(p.as_bytes());
        }
        a.snapshot()
    }

    #[test]
    fn counts_are_summed_and_scaled() {
        let s = agg(&["hits:1|c|#a:1", "hits:2|c|@0.5|#a:1", "hits:1:1|c|#a:1"]);
        let m = s.metric("hits", &["a:1"]).unwrap();
        assert_eq!(m.value, Some(1.0 + 4.0 + 2.0));
        assert_eq!(m.samples, 4);
    }

    #[test]
    fn tag_sets_are_order_insensitive_and_deduplicated() {
        let s = agg(&[
            "x:1|c|#b,a",
            "x:1|c|#a,b,a",
            "x:1|c|#a,,b",
            "x:1|c|#a",
            "x:1|c",
        ]);
        assert_eq!(s.metrics.len(), 3);
        assert_eq!(s.metric("x", &["a", "b"]).unwrap().value, Some(3.0));
        assert_eq!(s.metric("x", &["a", "b"]).unwrap().tags, vec!["a", "b"]);
    }

    #[test]
    fn same_name_different_types_are_separate() {
        let s = agg(&["x:1|c", "x:5|g"]);
        assert_eq!(s.metrics.len(), 2);
        assert_eq!(s.metrics[0].kind, MetricKind::Count);
        assert_eq!(s.metrics[1].kind, MetricKind::Gauge);
    }

    #[test]
    fn gauges_keep_the_last_value() {
        let s = agg(&["g:1|g", "g:7|g\ng:3:4|g"]);
        assert_eq!(s.metric("g", &[]).unwrap().value, Some(4.0));
    }

    #[test]
    fn sketches_have_quantiles() {
        let mut a = Aggregator::new();
        for i in 1..=1000 {
            a.ingest(format!("lat:{i}|d|#r:/").as_bytes());
        }
        a.ingest(b"lat:5|d|@0.5|#r:/");
        let s = a.snapshot();
        let m = s.metric("lat", &["r:/"]).unwrap();
        assert_eq!(m.samples, 1001);
        assert_eq!(m.count, Some(1002.0));
        assert_eq!(m.min, Some(1.0));
        assert_eq!(m.max, Some(1000.0));
        assert_eq!(m.sum, Some(500_500.0 + 10.0));
        let near = |v: Option<f64>, x: f64| (v.unwrap() - x).abs() <= x * 0.03;
        assert!(near(m.p50, 500.0), "{:?}", m.p50);
        assert!(near(m.p90, 900.0), "{:?}", m.p90);
        assert!(near(m.p99, 990.0), "{:?}", m.p99);
    }

    #[test]
    fn timings_and_histograms_are_sketches() {
        let s = agg(&["t:3|ms", "h:-2:0:2|h"]);
        assert_eq!(s.metric("t", &[]).unwrap().kind, MetricKind::Timing);
        assert_eq!(s.metric("t", &[]).unwrap().p50, Some(3.0));
        let h = s.metric("h", &[]).unwrap();
        assert_eq!((h.min, h.max, h.count), (Some(-2.0), Some(2.0), Some(3.0)));
    }

    #[test]
    fn sets_count_distinct_members() {
        let s = agg(&["u:alice|s", "u:bob|s\nu:alice|s"]);
        let m = s.metric("u", &[]).unwrap();
        assert_eq!(m.value, Some(2.0));
        assert_eq!(m.samples, 3);
        assert_eq!(
            m.members.as_deref(),
            Some(&["alice".to_owned(), "bob".to_owned()][..])
        );
    }

    #[test]
    fn malformed_are_counted_by_kind_and_take_resets() {
        let mut a = Aggregator::new();
        a.ingest(b"a:1\nb:x|c\n:1|c\nok:1|c");
        let s = a.take_snapshot();
        assert_eq!(s.malformed, 3);
        assert_eq!(s.malformed_of(Malformed::NoType), 1);
        assert_eq!(s.malformed_of(Malformed::BadValue), 1);
        assert_eq!(s.malformed_of(Malformed::EmptyName), 1);
        assert_eq!((s.packets, s.lines, s.metrics.len()), (1, 4, 1));
        let s = a.snapshot();
        assert_eq!((s.malformed, s.packets, s.metrics.len()), (0, 0, 0));
    }

    #[test]
    fn events_and_checks_are_bounded() {
        let mut a = Aggregator::new();
        for i in 0..MAX_EVENTS + 5 {
            let title = format!("t{i}");
            a.ingest(format!("_e{{{},1}}:{title}|x", title.len()).as_bytes());
            a.ingest(b"_sc|c|0");
        }
        let s = a.snapshot();
        assert_eq!(s.events.len(), MAX_EVENTS);
        assert_eq!(
            s.events.last().unwrap().title,
            format!("t{}", MAX_EVENTS + 4)
        );
        assert_eq!(s.service_checks.len(), MAX_SERVICE_CHECKS);
        assert_eq!(s.over_limit, 10);
    }
}
