//! The DogStatsD datagram parser, as a pure function over bytes.
//!
//! About 580 lines of code and 150 of tests (the documentation's datagram table): one
//! grammar, one file.
//!
//! A packet holds one or more lines separated by `\n` (a trailing `\r` is dropped and
//! empty lines are skipped, as the Datadog agent does). Each line is one of:
//!
//! ```text
//! <NAME>:<VALUE>[:<VALUE>…]|<TYPE>|@<SAMPLE_RATE>|#<TAG>,<TAG>|c:<CONTAINER_ID>|T<TIMESTAMP>
//! _e{<TITLE_LEN>,<TEXT_LEN>}:<TITLE>|<TEXT>|d:<TS>|h:<HOST>|k:<KEY>|p:<PRIORITY>|s:<SOURCE>|t:<ALERT>|#<TAGS>
//! _sc|<NAME>|<STATUS>|d:<TS>|h:<HOST>|#<TAGS>|m:<MESSAGE>
//! ```
//!
//! Parsing follows the agent's `comp/dogstatsd/server` parser: optional fields may come
//! in any order, unknown optional fields are ignored, the last `#tags` / `@rate` field
//! wins, empty packed values (`1::2`) are skipped, and a bad event or service check
//! optional field (priority, alert type, timestamp) is ignored rather than rejected.
//! Where the agent is lenient in ways that hide broken clients, this parser is
//! stricter, and says so with a [`Malformed`] kind: a line must be valid UTF-8, metric
//! values must be finite numbers, a sample rate must be a positive finite number (it
//! scales counts by `1/rate`), and event lengths must land exactly on the `|`
//! separators (the agent only checks that the line is long enough).
//!
//! Nothing here allocates, except an event's title or text containing the `\n`
//! escape (`\\n`), which is unescaped into a new string.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The metric types of DogStatsD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// `c`: summed, scaled by `1/sample_rate`.
    Count,
    /// `g`: the last value.
    Gauge,
    /// `h`: a quantile sketch.
    Histogram,
    /// `ms`: a timing, aggregated as a histogram.
    Timing,
    /// `d`: a distribution (a quantile sketch).
    Distribution,
    /// `s`: distinct members.
    Set,
}

impl MetricKind {
    /// Every kind, in snapshot order.
    pub const ALL: [MetricKind; 6] = [
        MetricKind::Count,
        MetricKind::Gauge,
        MetricKind::Histogram,
        MetricKind::Timing,
        MetricKind::Distribution,
        MetricKind::Set,
    ];

    /// The kind a datagram's type field names (`c`, `g`, `h`, `ms`, `d`, `s`).
    pub fn from_symbol(symbol: &str) -> Option<Self> {
        Some(match symbol {
            "c" => MetricKind::Count,
            "g" => MetricKind::Gauge,
            "h" => MetricKind::Histogram,
            "ms" => MetricKind::Timing,
            "d" => MetricKind::Distribution,
            "s" => MetricKind::Set,
            _ => return None,
        })
    }

    /// The datagram's type symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            MetricKind::Count => "c",
            MetricKind::Gauge => "g",
            MetricKind::Histogram => "h",
            MetricKind::Timing => "ms",
            MetricKind::Distribution => "d",
            MetricKind::Set => "s",
        }
    }

    /// The name used in snapshots (`count`, `gauge`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Count => "count",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Timing => "timing",
            MetricKind::Distribution => "distribution",
            MetricKind::Set => "set",
        }
    }

    /// Whether values of this kind go into a quantile sketch (`h`, `ms`, `d`).
    pub fn is_sketch(self) -> bool {
        matches!(
            self,
            MetricKind::Histogram | MetricKind::Timing | MetricKind::Distribution
        )
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line was rejected. Counted by kind; never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// No `|<TYPE>` field (`name:1`), or an empty one (`name:1|`).
    NoType,
    /// A type other than `c`, `g`, `h`, `ms`, `d`, `s`.
    UnknownType,
    /// An empty metric or service check name (`:1|c`, `_sc||0`).
    EmptyName,
    /// No `:<VALUE>` (`name|c`), or an empty value (`name:|c`).
    NoValue,
    /// A value that is not a finite number (`name:abc|c`, `name:NaN|g`).
    BadValue,
    /// A sample rate that is not a positive finite number (`@x`, `@0`).
    BadSampleRate,
    /// A `T` timestamp that is not a positive integer.
    BadTimestamp,
    /// An event header that is not `_e{<TITLE_LEN>,<TEXT_LEN>}` with a non-empty title.
    BadEventHeader,
    /// Event lengths that do not match the title and text that follow.
    EventLengthMismatch,
    /// A service check without `_sc|<NAME>|<STATUS>`.
    BadServiceCheck,
    /// A service check status other than 0, 1, 2, 3.
    BadServiceCheckStatus,
}

impl Malformed {
    /// Number of kinds.
    pub const COUNT: usize = 12;
    /// Every kind.
    pub const ALL: [Malformed; Malformed::COUNT] = [
        Malformed::InvalidUtf8,
        Malformed::NoType,
        Malformed::UnknownType,
        Malformed::EmptyName,
        Malformed::NoValue,
        Malformed::BadValue,
        Malformed::BadSampleRate,
        Malformed::BadTimestamp,
        Malformed::BadEventHeader,
        Malformed::EventLengthMismatch,
        Malformed::BadServiceCheck,
        Malformed::BadServiceCheckStatus,
    ];

    /// The key used in snapshots (`malformed_by_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::InvalidUtf8 => "invalid_utf8",
            Malformed::NoType => "no_type",
            Malformed::UnknownType => "unknown_type",
            Malformed::EmptyName => "empty_name",
            Malformed::NoValue => "no_value",
            Malformed::BadValue => "bad_value",
            Malformed::BadSampleRate => "bad_sample_rate",
            Malformed::BadTimestamp => "bad_timestamp",
            Malformed::BadEventHeader => "bad_event_header",
            Malformed::EventLengthMismatch => "event_length_mismatch",
            Malformed::BadServiceCheck => "bad_service_check",
            Malformed::BadServiceCheckStatus => "bad_service_check_status",
        }
    }

    /// Index into a per-kind counter array.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Malformed {}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    /// A metric sample (possibly with packed values).
    Metric(Metric<'a>),
    /// An event (`_e{…}`).
    Event(Event<'a>),
    /// A service check (`_sc|…`).
    ServiceCheck(ServiceCheck<'a>),
}

/// The raw tag list of a line (`a:b,c`), split lazily; empty tags are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tags<'a>(pub &'a str);

impl<'a> Tags<'a> {
    /// The non-empty tags in the order sent (duplicates kept).
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.split(',').filter(|t| !t.is_empty())
    }

    /// Whether there is no non-empty tag.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// A metric line.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric<'a> {
    /// The metric name (non-empty).
    pub name: &'a str,
    /// The type.
    pub kind: MetricKind,
    /// The raw value field: one number, packed numbers `1:2:3`, or a set member.
    pub raw_value: &'a str,
    /// `@rate`, 1.0 when absent; positive and finite.
    pub sample_rate: f64,
    /// `#tags`.
    pub tags: Tags<'a>,
    /// `c:<CONTAINER_ID>` (origin detection; kept, not aggregated on).
    pub container_id: Option<&'a str>,
    /// `T<UNIX_SECONDS>`, when the client sent one.
    pub timestamp: Option<i64>,
}

impl<'a> Metric<'a> {
    /// The numeric values (packed values one by one; empty ones skipped). Not for sets.
    /// Every value was checked to be a finite number when the line was parsed.
    pub fn values(&self) -> impl Iterator<Item = f64> + 'a {
        self.raw_value
            .split(':')
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<f64>().unwrap_or(0.0))
    }

    /// The set member (the whole raw value). Only meaningful for sets.
    pub fn set_member(&self) -> &'a str {
        self.raw_value
    }
}

/// Event priority (`p:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// The default.
    #[default]
    Normal,
    /// `p:low`.
    Low,
}

/// Event alert type (`t:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlertType {
    /// `t:error`.
    Error,
    /// `t:warning`.
    Warning,
    /// The default.
    #[default]
    Info,
    /// `t:success`.
    Success,
}

/// An event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Title (`\\n` unescaped to a newline).
    pub title: Cow<'a, str>,
    /// Text (`\\n` unescaped to a newline).
    pub text: Cow<'a, str>,
    /// `d:` Unix seconds.
    pub timestamp: Option<i64>,
    /// `h:`.
    pub hostname: Option<&'a str>,
    /// `k:`.
    pub aggregation_key: Option<&'a str>,
    /// `p:`.
    pub priority: Priority,
    /// `s:`.
    pub source_type: Option<&'a str>,
    /// `t:`.
    pub alert_type: AlertType,
    /// `#tags`.
    pub tags: Tags<'a>,
    /// `c:`.
    pub container_id: Option<&'a str>,
}

/// Service check status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// `0`.
    Ok,
    /// `1`.
    Warning,
    /// `2`.
    Critical,
    /// `3`.
    Unknown,
}

/// A service check line.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCheck<'a> {
    /// Name (non-empty).
    pub name: &'a str,
    /// Status.
    pub status: CheckStatus,
    /// `d:` Unix seconds.
    pub timestamp: Option<i64>,
    /// `h:`.
    pub hostname: Option<&'a str>,
    /// `m:`.
    pub message: Option<&'a str>,
    /// `#tags`.
    pub tags: Tags<'a>,
    /// `c:`.
    pub container_id: Option<&'a str>,
}

/// The lines of a packet: split on `\n`, a trailing `\r` dropped, empty lines skipped.
pub fn lines(packet: &[u8]) -> impl Iterator<Item = &[u8]> {
    packet
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// Parses every line of a packet.
pub fn parse_packet(packet: &[u8]) -> impl Iterator<Item = Result<Item<'_>, Malformed>> {
    lines(packet).map(parse_line)
}

/// Parses one line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Result<Item<'_>, Malformed> {
    let line = std::str::from_utf8(line).map_err(|_| Malformed::InvalidUtf8)?;
    if line.starts_with("_e{") {
        parse_event(line).map(Item::Event)
    } else if line.starts_with("_sc") {
        parse_service_check(line).map(Item::ServiceCheck)
    } else {
        parse_metric(line).map(Item::Metric)
    }
}

fn parse_value(v: &str) -> Result<f64, Malformed> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(Malformed::BadValue),
    }
}

/// Parses a metric line.
pub fn parse_metric(line: &str) -> Result<Metric<'_>, Malformed> {
    let Some((name_value, rest)) = line.split_once('|') else {
        return Err(Malformed::NoType);
    };
    let Some((name, raw_value)) = name_value.split_once(':') else {
        return Err(Malformed::NoValue);
    };
    if name.is_empty() {
        return Err(Malformed::EmptyName);
    }
    if raw_value.is_empty() {
        return Err(Malformed::NoValue);
    }
    let (raw_type, mut rest) = match rest.split_once('|') {
        Some((t, r)) => (t, Some(r)),
        None => (rest, None),
    };
    if raw_type.is_empty() {
        return Err(Malformed::NoType);
    }
    let kind = MetricKind::from_symbol(raw_type).ok_or(Malformed::UnknownType)?;
    if kind != MetricKind::Set {
        let mut n = 0usize;
        for v in raw_value.split(':').filter(|v| !v.is_empty()) {
            parse_value(v)?;
            n += 1;
        }
        if n == 0 {
            return Err(Malformed::NoValue);
        }
    }
    let mut metric = Metric {
        name,
        kind,
        raw_value,
        sample_rate: 1.0,
        tags: Tags::default(),
        container_id: None,
        timestamp: None,
    };
    while let Some(r) = rest {
        let (field, next) = match r.split_once('|') {
            Some((f, n)) => (f, Some(n)),
            None => (r, None),
        };
        rest = next;
        if let Some(t) = field.strip_prefix('#') {
            metric.tags = Tags(t);
        } else if let Some(r) = field.strip_prefix('@') {
            metric.sample_rate = match r.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => x,
                _ => return Err(Malformed::BadSampleRate),
            };
        } else if let Some(t) = field.strip_prefix('T') {
            metric.timestamp = match t.parse::<i64>() {
                Ok(ts) if ts > 0 => Some(ts),
                _ => return Err(Malformed::BadTimestamp),
            };
        } else if let Some(c) = field.strip_prefix("c:") {
            metric.container_id = Some(c);
        }
        // Unknown optional fields (e:, card:, future ones) are ignored, as the agent does.
    }
    Ok(metric)
}

fn unescape(s: &str) -> Cow<'_, str> {
    if s.contains("\\n") {
        Cow::Owned(s.replace("\\n", "\n"))
    } else {
        Cow::Borrowed(s)
    }
}

fn parse_len(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an event line (`_e{…}`).
pub fn parse_event(line: &str) -> Result<Event<'_>, Malformed> {
    let Some((header, body)) = line.split_once(':') else {
        return Err(Malformed::BadEventHeader);
    };
    let lengths = header
        .strip_prefix("_e{")
        .and_then(|h| h.strip_suffix('}'))
        .ok_or(Malformed::BadEventHeader)?;
    let (title_len, text_len) = lengths.split_once(',').ok_or(Malformed::BadEventHeader)?;
    let title_len = parse_len(title_len).ok_or(Malformed::BadEventHeader)?;
    let text_len = parse_len(text_len).ok_or(Malformed::BadEventHeader)?;
    if title_len == 0 {
        return Err(Malformed::BadEventHeader);
    }
    let text_start = title_len
        .checked_add(1)
        .ok_or(Malformed::EventLengthMismatch)?;
    let end = text_start
        .checked_add(text_len)
        .ok_or(Malformed::EventLengthMismatch)?;
    let bytes = body.as_bytes();
    if bytes.len() < end || bytes[title_len] != b'|' {
        return Err(Malformed::EventLengthMismatch);
    }
    if bytes.len() > end && bytes[end] != b'|' {
        return Err(Malformed::EventLengthMismatch);
    }
    let title = body
        .get(..title_len)
        .ok_or(Malformed::EventLengthMismatch)?;
    let text = body
        .get(text_start..end)
        .ok_or(Malformed::EventLengthMismatch)?;
    let mut event = Event {
        title: unescape(title),
        text: unescape(text),
        timestamp: None,
        hostname: None,
        aggregation_key: None,
        priority: Priority::Normal,
        source_type: None,
        alert_type: AlertType::Info,
        tags: Tags::default(),
        container_id: None,
    };
    if bytes.len() > end {
        for field in body[end + 1..].split('|') {
            if let Some(d) = field.strip_prefix("d:") {
                // A bad optional field is ignored, as the agent does (it logs a warning).
                if let Ok(ts) = d.parse() {
                    event.timestamp = Some(ts);
                }
            } else if let Some(h) = field.strip_prefix("h:") {
                event.hostname = Some(h);
            } else if let Some(k) = field.strip_prefix("k:") {
                event.aggregation_key = Some(k);
            } else if let Some(p) = field.strip_prefix("p:") {
                match p {
                    "normal" => event.priority = Priority::Normal,
                    "low" => event.priority = Priority::Low,
                    _ => {}
                }
            } else if let Some(s) = field.strip_prefix("s:") {
                event.source_type = Some(s);
            } else if let Some(t) = field.strip_prefix("t:") {
                match t {
                    "error" => event.alert_type = AlertType::Error,
                    "warning" => event.alert_type = AlertType::Warning,
                    "info" => event.alert_type = AlertType::Info,
                    "success" => event.alert_type = AlertType::Success,
                    _ => {}
                }
            } else if let Some(t) = field.strip_prefix('#') {
                event.tags = Tags(t);
            } else if let Some(c) = field.strip_prefix("c:") {
                event.container_id = Some(c);
            }
        }
    }
    Ok(event)
}

/// Parses a service check line (`_sc|…`).
pub fn parse_service_check(line: &str) -> Result<ServiceCheck<'_>, Malformed> {
    let rest = line
        .strip_prefix("_sc|")
        .ok_or(Malformed::BadServiceCheck)?;
    let mut fields = rest.split('|');
    let name = fields.next().unwrap_or("");
    let Some(status) = fields.next() else {
        return Err(Malformed::BadServiceCheck);
    };
    if name.is_empty() {
        return Err(Malformed::EmptyName);
    }
    let status = match status {
        "0" => CheckStatus::Ok,
        "1" => CheckStatus::Warning,
        "2" => CheckStatus::Critical,
        "3" => CheckStatus::Unknown,
        _ => return Err(Malformed::BadServiceCheckStatus),
    };
    let mut check = ServiceCheck {
        name,
        status,
        timestamp: None,
        hostname: None,
        message: None,
        tags: Tags::default(),
        container_id: None,
    };
    for field in fields {
        if let Some(d) = field.strip_prefix("d:") {
            if let Ok(ts) = d.parse() {
                check.timestamp = Some(ts);
            }
        } else if let Some(h) = field.strip_prefix("h:") {
            check.hostname = Some(h);
        } else if let Some(t) = field.strip_prefix('#') {
            check.tags = Tags(t);
        } else if let Some(m) = field.strip_prefix("m:") {
            check.message = Some(m);
        } else if let Some(c) = field.strip_prefix("c:") {
            check.container_id = Some(c);
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(line: &str) -> Metric<'_> {
        match parse_line(line.as_bytes()) {
            Ok(Item::Metric(m)) => m,
            other => panic!("{line:?}: expected a metric, got {other:?}"),
        }
    }

    fn err(line: &[u8]) -> Malformed {
        match parse_line(line) {
            Err(e) => e,
            Ok(item) => panic!("{line:?}: expected an error, got {item:?}"),
        }
    }

    #[test]
    fn full_metric_line() {
        let m = metric("page.views:1.5|c|@0.5|#env:dev,route:/|c:abc123|T1656581400");
        assert_eq!(m.name, "page.views");
        assert_eq!(m.kind, MetricKind::Count);
        assert_eq!(m.values().collect::<Vec<_>>(), vec![1.5]);
        assert_eq!(m.sample_rate, 0.5);
        assert_eq!(
            m.tags.iter().collect::<Vec<_>>(),
            vec!["env:dev", "route:/"]
        );
        assert_eq!(m.container_id, Some("abc123"));
        assert_eq!(m.timestamp, Some(1656581400));
    }

    #[test]
    fn packed_values_skip_empty_ones() {
        let m = metric("lat:1:2::3|d");
        assert_eq!(m.values().collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
        assert_eq!(err(b"lat:::|d"), Malformed::NoValue);
        assert_eq!(err(b"lat:1:x|d"), Malformed::BadValue);
    }

    #[test]
    fn set_values_are_raw() {
        let m = metric("users:alice:1|s");
        assert_eq!(m.set_member(), "alice:1");
    }

    #[test]
    fn optional_fields_any_order_unknown_ignored() {
        let m = metric("a:1|g|#x|e:ext|card:high|@1|zzz|#y,z");
        assert_eq!(m.tags.iter().collect::<Vec<_>>(), vec!["y", "z"]);
        assert_eq!(m.sample_rate, 1.0);
    }

    #[test]
    fn malformed_kinds() {
        assert_eq!(err(b"a:1"), Malformed::NoType);
        assert_eq!(err(b"a:1|"), Malformed::NoType);
        assert_eq!(err(b"a:1|x"), Malformed::UnknownType);
        assert_eq!(err(b"a:1|cc"), Malformed::UnknownType);
        assert_eq!(err(b":1|c"), Malformed::EmptyName);
        assert_eq!(err(b"a|c"), Malformed::NoValue);
        assert_eq!(err(b"a:|c"), Malformed::NoValue);
        assert_eq!(err(b"a:x|c"), Malformed::BadValue);
        assert_eq!(err(b"a:NaN|g"), Malformed::BadValue);
        assert_eq!(err(b"a:inf|g"), Malformed::BadValue);
        assert_eq!(err(b"a:1|c|@x"), Malformed::BadSampleRate);
        assert_eq!(err(b"a:1|c|@0"), Malformed::BadSampleRate);
        assert_eq!(err(b"a:1|c|Tx"), Malformed::BadTimestamp);
        assert_eq!(err(b"a:1|c|T0"), Malformed::BadTimestamp);
        assert_eq!(err(b"a:\xff|c"), Malformed::InvalidUtf8);
    }

    #[test]
    fn events() {
        let line =
            "_e{5,10}:title|text\\nline|d:1656581400|h:host|k:key|p:low|s:src|t:error|#a:b,c|c:cid";
        let Ok(Item::Event(e)) = parse_line(line.as_bytes()) else {
            panic!("not an event")
        };
        assert_eq!(e.title, "title");
        assert_eq!(e.text, "text\nline");
        assert_eq!(e.timestamp, Some(1656581400));
        assert_eq!(e.hostname, Some("host"));
        assert_eq!(e.aggregation_key, Some("key"));
        assert_eq!(e.priority, Priority::Low);
        assert_eq!(e.source_type, Some("src"));
        assert_eq!(e.alert_type, AlertType::Error);
        assert_eq!(e.tags.iter().collect::<Vec<_>>(), vec!["a:b", "c"]);
        assert_eq!(e.container_id, Some("cid"));
    }

    #[test]
    fn event_lengths_are_utf8_bytes() {
        // "héllo" is 6 bytes.
        let Ok(Item::Event(e)) = parse_line("_e{6,2}:héllo|ok".as_bytes()) else {
            panic!("not an event")
        };
        assert_eq!(e.title, "héllo");
        assert_eq!(
            err("_e{5,2}:héllo|ok".as_bytes()),
            Malformed::EventLengthMismatch
        );
        assert_eq!(err(b"_e{5,5}:title|text"), Malformed::EventLengthMismatch);
        assert_eq!(err(b"_e{5,3}:title|text"), Malformed::EventLengthMismatch);
        assert_eq!(err(b"_e{4,4}:title|text"), Malformed::EventLengthMismatch);
        assert_eq!(err(b"_e{0,4}:|text"), Malformed::BadEventHeader);
        assert_eq!(err(b"_e{a,4}:title|text"), Malformed::BadEventHeader);
        assert_eq!(err(b"_e{5}:title|text"), Malformed::BadEventHeader);
        assert_eq!(err(b"_e{5,4"), Malformed::BadEventHeader);
        assert_eq!(
            err(b"_e{18446744073709551615,18446744073709551615}:x|y"),
            Malformed::EventLengthMismatch
        );
    }

    #[test]
    fn bad_event_optional_fields_are_ignored() {
        let Ok(Item::Event(e)) = parse_line(b"_e{1,1}:a|b|p:urgent|t:fatal|d:soon") else {
            panic!("not an event")
        };
        assert_eq!(e.priority, Priority::Normal);
        assert_eq!(e.alert_type, AlertType::Info);
        assert_eq!(e.timestamp, None);
    }

    #[test]
    fn service_checks() {
        let Ok(Item::ServiceCheck(c)) =
            parse_line(b"_sc|db.up|2|d:1656581400|h:host|#env:dev|m:down for maintenance")
        else {
            panic!("not a service check")
        };
        assert_eq!(c.name, "db.up");
        assert_eq!(c.status, CheckStatus::Critical);
        assert_eq!(c.timestamp, Some(1656581400));
        assert_eq!(c.hostname, Some("host"));
        assert_eq!(c.tags.iter().collect::<Vec<_>>(), vec!["env:dev"]);
        assert_eq!(c.message, Some("down for maintenance"));
        assert_eq!(err(b"_sc|db.up|5"), Malformed::BadServiceCheckStatus);
        assert_eq!(err(b"_sc|db.up"), Malformed::BadServiceCheck);
        assert_eq!(err(b"_sc||0"), Malformed::EmptyName);
        assert_eq!(err(b"_sc"), Malformed::BadServiceCheck);
    }

    #[test]
    fn lines_of_a_packet() {
        let items: Vec<_> = parse_packet(b"a:1|c\r\n\nb:2|g\nbad\n").collect();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_ok());
        assert_eq!(items[2], Err(Malformed::NoType));
    }
}
