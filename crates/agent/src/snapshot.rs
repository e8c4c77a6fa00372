//! What the agent aggregated, as data: the JSON served on `GET /` and returned by
//! [`crate::AgentHandle::snapshot`].
//!
//! ```json
//! {"metrics": [{"name": "tinyfish.app.requests", "type": "count", "tags": ["env:dev"],
//!               "samples": 3, "value": 312.0}, …],
//!  "events": […], "service_checks": […],
//!  "malformed": 0, "malformed_by_kind": {}, "packets": 12, "bytes": 4000, "lines": 40,
//!  "kernel_drops": 0, "over_limit": 0, "window_secs": 1.5}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::parse::{AlertType, CheckStatus, MetricKind, Priority};

/// Everything aggregated in one window (since start, or since the last
/// [`crate::AgentHandle::take_snapshot`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// One entry per (type, name, tag set), sorted by name, type, tags.
    pub metrics: Vec<MetricSnapshot>,
    /// Events, oldest first (at most [`crate::aggregate::MAX_EVENTS`], the newest kept).
    pub events: Vec<EventSnapshot>,
    /// Service checks, oldest first (bounded like events).
    pub service_checks: Vec<ServiceCheckSnapshot>,
    /// Lines rejected, in total.
    pub malformed: u64,
    /// Lines rejected, by kind (`no_type`, `bad_value`, … see [`crate::parse::Malformed`]);
    /// kinds with no line are left out.
    pub malformed_by_kind: BTreeMap<String, u64>,
    /// Datagrams received.
    pub packets: u64,
    /// Bytes received (payload).
    pub bytes: u64,
    /// Non-empty lines received (valid and malformed).
    pub lines: u64,
    /// Datagrams the kernel dropped on the UDP socket because its buffer was full
    /// (`drops` of `/proc/net/udp`); `None` where it cannot be read.
    pub kernel_drops: Option<u64>,
    /// Samples, events and service checks not kept because a bound was reached (too
    /// many contexts or set members; oldest events and checks replaced).
    pub over_limit: u64,
    /// Seconds this window covers.
    pub window_secs: f64,
}

/// The aggregate of one metric context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSnapshot {
    /// Metric name.
    pub name: String,
    /// `count`, `gauge`, `histogram`, `timing`, `distribution`, `set`.
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Tags, sorted and without duplicates.
    pub tags: Vec<String>,
    /// Values received, unscaled (each packed value counts one).
    pub samples: u64,
    /// Count: the sum of values scaled by `1/sample_rate`; gauge: the last value;
    /// set: the number of distinct members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Sketches: values counted, scaled by `1/sample_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<f64>,
    /// Sketches: sum of values scaled by `1/sample_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Sketches: `sum / count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    /// Sketches: exact minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Sketches: median (1% relative error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// Sketches: 90th percentile (1% relative error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    /// Sketches: 99th percentile (1% relative error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// Sketches: exact maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Sets: the distinct members, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

impl MetricSnapshot {
    /// The value of tag `key` (`env` in `env:dev`); `Some("")` for a bare tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find_map(|t| match t.split_once(':') {
            Some((k, v)) if k == key => Some(v),
            None if t == key => Some(""),
            _ => None,
        })
    }

    /// Whether every filter matches a tag: `k:v` exactly, or `k` (any value of key `k`).
    pub fn has_tags(&self, filters: &[&str]) -> bool {
        filters.iter().all(|f| {
            if f.contains(':') {
                self.tags.iter().any(|t| t == f)
            } else {
                self.tag(f).is_some()
            }
        })
    }

    /// How many events this context counted: the scaled value of a count, the scaled
    /// count of a sketch, the samples of a gauge, the members of a set.
    pub fn total(&self) -> f64 {
        match self.kind {
            MetricKind::Count => self.value.unwrap_or(0.0),
            k if k.is_sketch() => self.count.unwrap_or(0.0),
            MetricKind::Set => self.value.unwrap_or(0.0),
            _ => self.samples as f64,
        }
    }
}

/// An event as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSnapshot {
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// `d:` Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `h:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `k:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_key: Option<String>,
    /// `p:` (`normal`, `low`).
    pub priority: Priority,
    /// `s:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// `t:` (`error`, `warning`, `info`, `success`).
    pub alert_type: AlertType,
    /// Tags, sorted and without duplicates.
    pub tags: Vec<String>,
    /// `c:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

/// A service check as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCheckSnapshot {
    /// Name.
    pub name: String,
    /// `ok`, `warning`, `critical`, `unknown`.
    pub status: CheckStatus,
    /// `d:` Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `h:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `m:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Tags, sorted and without duplicates.
    pub tags: Vec<String>,
    /// `c:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

impl Snapshot {
    /// The metrics named `name` whose tags match every filter (see
    /// [`MetricSnapshot::has_tags`]): `find("tinyfish.app.requests", &["status_class:2xx"])`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        filters: &'a [&'a str],
    ) -> impl Iterator<Item = &'a MetricSnapshot> + 'a {
        self.metrics
            .iter()
            .filter(move |m| m.name == name && m.has_tags(filters))
    }

    /// The first metric [`Snapshot::find`] finds.
    pub fn metric(&self, name: &str, filters: &[&str]) -> Option<&MetricSnapshot> {
        self.metrics
            .iter()
            .find(|m| m.name == name && m.has_tags(filters))
    }

    /// The sum of [`MetricSnapshot::total`] over what [`Snapshot::find`] finds: requests
    /// counted by a count, or values recorded by a distribution, across tag sets.
    pub fn total(&self, name: &str, filters: &[&str]) -> f64 {
        self.metrics
            .iter()
            .filter(|m| m.name == name && m.has_tags(filters))
            .map(MetricSnapshot::total)
            .sum()
    }

    /// Lines rejected with this kind.
    pub fn malformed_of(&self, kind: crate::parse::Malformed) -> u64 {
        self.malformed_by_kind
            .get(kind.as_str())
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tags: &[&str]) -> MetricSnapshot {
        MetricSnapshot {
            name: "x".into(),
            kind: MetricKind::Count,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            samples: 1,
            value: Some(2.0),
            count: None,
            sum: None,
            avg: None,
            min: None,
            p50: None,
            p90: None,
            p99: None,
            max: None,
            members: None,
        }
    }

    #[test]
    fn tag_filters() {
        let x = m(&["env:dev", "flag", "route:/a:b"]);
        assert_eq!(x.tag("env"), Some("dev"));
        assert_eq!(x.tag("flag"), Some(""));
        assert_eq!(x.tag("route"), Some("/a:b"));
        assert_eq!(x.tag("nope"), None);
        assert!(x.has_tags(&["env:dev", "flag", "route"]));
        assert!(!x.has_tags(&["env:prod"]));
        assert!(x.has_tags(&[]));
    }

    #[test]
    fn json_round_trip_and_unknown_fields_rejected() {
        let s = Snapshot {
            metrics: vec![m(&["a"])],
            malformed: 1,
            malformed_by_kind: [("no_type".to_string(), 1)].into(),
            kernel_drops: Some(0),
            ..Snapshot::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"type\":\"count\""), "{json}");
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.total("x", &["a"]), 2.0);
        let bad = json.replacen("\"metrics\"", "\"metricz\":[],\"metrics\"", 1);
        assert!(serde_json::from_str::<Snapshot>(&bad).is_err());
    }
}
