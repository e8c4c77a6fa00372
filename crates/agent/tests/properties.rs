//! Properties: arbitrary bytes never panic the parser or the aggregator and are all
//! accounted for; generated valid lines are aggregated to exactly what was sent.

use std::collections::{BTreeMap, BTreeSet};

use agent::parse::{self, Item};
use agent::{Aggregator, MetricKind, Snapshot};
use proptest::prelude::*;

fn check_accounting(packets: &[Vec<u8>]) {
    let mut a = Aggregator::new();
    let mut lines = 0u64;
    let mut bad = 0u64;
    for p in packets {
        for item in parse::parse_packet(p) {
            lines += 1;
            bad += u64::from(item.is_err());
        }
        a.ingest(p);
    }
    let s = a.snapshot();
    assert_eq!(s.packets, packets.len() as u64);
    assert_eq!(s.lines, lines);
    assert_eq!(s.malformed, bad);
    assert_eq!(s.malformed_by_kind.values().sum::<u64>(), bad);
    let json = serde_json::to_string(&s).expect("snapshot serialises");
    let back: Snapshot = serde_json::from_str(&json).expect("and parses back");
    assert_eq!(back.metrics.len(), s.metrics.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1500), 1..8)) {
        check_accounting(&packets);
    }

    #[test]
    fn dogstatsd_looking_garbage_never_panics(
        packets in prop::collection::vec("(_e\\{|_sc\\||[a-z.]{1,4}|[0-9]{1,3}|[|:#@,{}TcdghmsEe\\-\\n\\r]|é|\\\\n){0,60}", 1..8)
    ) {
        let packets: Vec<Vec<u8>> = packets.into_iter().map(String::into_bytes).collect();
        check_accounting(&packets);
    }
}

#[derive(Debug, Clone)]
struct Line {
    name: &'static str,
    kind: MetricKind,
    values: Vec<f64>,
    member: String,
    rate: Option<f64>,
    tags: Vec<&'static str>,
    extra: Option<&'static str>,
}

impl Line {
    fn render(&self) -> String {
        let value = if self.kind == MetricKind::Set {
            self.member.clone()
        } else {
            self.values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut s = format!("{}:{}|{}", self.name, value, self.kind.symbol());
        if let Some(r) = self.rate {
            s.push_str(&format!("|@{r}"));
        }
        if !self.tags.is_empty() {
            s.push_str(&format!("|#{}", self.tags.join(",")));
        }
        if let Some(x) = self.extra {
            s.push('|');
            s.push_str(x);
        }
        s
    }
}

fn line() -> impl Strategy<Value = Line> {
    (
        prop::sample::select(vec!["a", "b.c", "tinyfish.app.requests", "x_y-z"]),
        prop::sample::select(MetricKind::ALL.to_vec()),
        prop::collection::vec(-1.0e6..1.0e6f64, 1..4),
        "[a-z0-9]{1,3}",
        prop::option::of(prop::sample::select(vec![1.0, 0.5, 0.25, 0.1])),
        prop::collection::vec(
            prop::sample::select(vec!["env:dev", "route:/", "k", "status_class:2xx"]),
            0..4,
        ),
        prop::option::of(prop::sample::select(vec![
            "c:abc",
            "T1656581400",
            "e:x",
            "zz",
        ])),
    )
        .prop_map(|(name, kind, values, member, rate, tags, extra)| Line {
            name,
            kind,
            values,
            member,
            rate,
            tags,
            extra,
        })
}

#[derive(Debug, Default)]
struct Model {
    samples: u64,
    sum: f64,
    weight: f64,
    last: f64,
    min: f64,
    max: f64,
    members: BTreeSet<String>,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_lines_parse_to_what_was_sent(l in line()) {
        let text = l.render();
        let Ok(Item::Metric(m)) = parse::parse_line(text.as_bytes()) else {
            panic!("{text:?} did not parse as a metric");
        };
        prop_assert_eq!(m.name, l.name);
        prop_assert_eq!(m.kind, l.kind);
        prop_assert_eq!(m.sample_rate, l.rate.unwrap_or(1.0));
        prop_assert_eq!(m.tags.iter().collect::<Vec<_>>(), l.tags.clone());
        if l.kind == MetricKind::Set {
            prop_assert_eq!(m.set_member(), l.member.as_str());
        } else {
            prop_assert_eq!(m.values().collect::<Vec<_>>(), l.values.clone());
        }
    }

    #[test]
    fn valid_lines_aggregate_to_what_was_sent(lines in prop::collection::vec(line(), 1..60), per_packet in 1usize..8) {
        let mut a = Aggregator::new();
        for chunk in lines.chunks(per_packet) {
            let packet: Vec<String> = chunk.iter().map(Line::render).collect();
            a.ingest(packet.join("\n").as_bytes());
        }
        let mut model: BTreeMap<(String, MetricKind, Vec<String>), Model> = BTreeMap::new();
        for l in &lines {
            let tags: BTreeSet<String> = l.tags.iter().map(|t| t.to_string()).collect();
            let m = model
                .entry((l.name.to_owned(), l.kind, tags.into_iter().collect()))
                .or_insert_with(|| Model { min: f64::INFINITY, max: f64::NEG_INFINITY, ..Model::default() });
            let w = 1.0 / l.rate.unwrap_or(1.0);
            if l.kind == MetricKind::Set {
                m.samples += 1;
                m.members.insert(l.member.clone());
                continue;
            }
            for v in &l.values {
                m.samples += 1;
                m.sum += v * w;
                m.weight += w;
                m.last = *v;
                m.min = m.min.min(*v);
                m.max = m.max.max(*v);
            }
        }
        let s = a.snapshot();
        prop_assert_eq!(s.malformed, 0);
        prop_assert_eq!(s.metrics.len(), model.len());
        for ((name, kind, tags), want) in &model {
            let got = s.metrics.iter().find(|m| &m.name == name && m.kind == *kind && &m.tags == tags);
            let got = got.unwrap_or_else(|| panic!("{name} {kind} {tags:?} missing from {s:#?}"));
            prop_assert_eq!(got.samples, want.samples);
            match kind {
                MetricKind::Count => prop_assert!(close(got.value.unwrap(), want.sum), "{:?} vs {}", got.value, want.sum),
                MetricKind::Gauge => prop_assert_eq!(got.value, Some(want.last)),
                MetricKind::Set => {
                    prop_assert_eq!(got.value, Some(want.members.len() as f64));
                    let members: Vec<String> = want.members.iter().cloned().collect();
                    prop_assert_eq!(got.members.as_ref(), Some(&members));
                }
                _ => {
                    prop_assert!(close(got.count.unwrap(), want.weight));
                    prop_assert!(close(got.sum.unwrap(), want.sum));
                    prop_assert_eq!((got.min, got.max), (Some(want.min), Some(want.max)));
                    let p50 = got.p50.unwrap();
                    prop_assert!(p50 >= want.min && p50 <= want.max);
                }
            }
        }
    }
}
