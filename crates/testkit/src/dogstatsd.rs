//! Parses one DogStatsD line (`name:value[:value…]|type[|@rate][|#k:v,…]`, packed values
//! of protocol v1.1 included), so tests can check
//! that what was sent is well formed, not just that a substring is there.

/// One parsed DogStatsD metric line.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric name.
    pub name: String,
    /// The (first) value, as a number.
    pub value: f64,
    /// Every value of the line (more than one when packed: `name:1:2:3|d`).
    pub values: Vec<f64>,
    /// The type: `c`, `g`, `d`, `h`, `ms` or `s`.
    pub kind: String,
    /// The tags in order, split at the first `:` (a tag without `:` has an empty value).
    pub tags: Vec<(String, String)>,
}

impl Metric {
    /// Parses `line`; `None` when it is not a well-formed DogStatsD metric.
    pub fn parse(line: &str) -> Option<Metric> {
        let (name, rest) = line.split_once(':')?;
        if name.is_empty() || name.contains(['|', '#', ' ', '\n']) {
            return None;
        }
        let mut parts = rest.split('|');
        let values: Vec<f64> = parts
            .next()?
            .split(':')
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let value = *values.first()?;
        let kind = parts.next()?;
        if !["c", "g", "d", "h", "ms", "s"].contains(&kind) {
            return None;
        }
        let mut tags = Vec::new();
        for part in parts {
            if let Some(rate) = part.strip_prefix('@') {
                rate.parse::<f64>().ok()?;
            } else if let Some(t) = part.strip_prefix('#') {
                for tag in t.split(',') {
                    if tag.is_empty() {
                        return None;
                    }
                    let (k, v) = tag.split_once(':').unwrap_or((tag, ""));
                    tags.push((k.to_owned(), v.to_owned()));
                }
            } else if part.starts_with("c:") || part.starts_with("T") {
                // Container ID and timestamp fields of newer protocol versions.
            } else {
                return None;
            }
        }
        Some(Metric {
            name: name.to_owned(),
            value,
            values,
            kind: kind.to_owned(),
            tags,
        })
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_distributions_gauges() {
        let m = Metric::parse("tinyfish.app.requests:3|c|#env:test,service:app,route:/").unwrap();
        assert_eq!(m.name, "tinyfish.app.requests");
        assert_eq!(m.value, 3.0);
        assert_eq!(m.kind, "c");
        assert_eq!(m.tag("route"), Some("/"));
        assert_eq!(m.tag("service"), Some("app"));
        let d = Metric::parse("x.duration:0.0421|d|@0.5|#a:b").unwrap();
        assert_eq!((d.kind.as_str(), d.value), ("d", 0.0421));
        assert_eq!(Metric::parse("g:-1|g").unwrap().value, -1.0);
        assert_eq!(
            Metric::parse("p:1:2.5:3|d").unwrap().values,
            vec![1.0, 2.5, 3.0]
        );
        assert!(Metric::parse("p:1::3|d").is_none());
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "",
            "name",
            "name:1",
            "name:x|c",
            ":1|c",
            "n:1|q",
            "n:1|c|#",
            "n:1|c|junk",
        ] {
            assert_eq!(Metric::parse(bad), None, "{bad:?}");
        }
    }
}
