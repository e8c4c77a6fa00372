//! Small hand-written SVG charts: line charts on linear, log or "nines" axes, and
//! grouped bar charts with confidence whiskers.
//!
//! About 645 lines of code and 95 of tests: one renderer; axes, ticks and marks share
//! the same scales and are kept together.
//!
//! Hand-written rather than `plotters`: plotters' SVG backend needs a font crate to
//! measure text (and reads system fonts with its default features), while the browser
//! lays out `<text>` itself. The output is inline SVG for an HTML5 page (no
//! `xmlns`, no external references), with presentation attributes inline.

use std::fmt::Write as _;

use crate::html::escape;

/// How an axis maps values to positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear; the domain includes zero.
    Linear,
    /// Base-10 logarithmic; values ≤ 0 are dropped.
    Log,
    /// Percentiles (0–100) on the "nines" scale, log10(1 / (1 − p)) as HdrHistogram
    /// plots them: 90% is one step, 99% two, 99.9% three. 100% is dropped.
    Nines,
}

impl Scale {
    fn map(self, v: f64) -> Option<f64> {
        let m = match self {
            Scale::Linear => v,
            Scale::Log if v > 0.0 => v.log10(),
            Scale::Log => return None,
            Scale::Nines if (0.0..100.0).contains(&v) => -(1.0 - v / 100.0).log10(),
            Scale::Nines => return None,
        };
        m.is_finite().then_some(m)
    }
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub color: String,
    /// SVG `stroke-dasharray`, if dashed.
    pub dash: Option<String>,
    /// Stroke opacity (1 for the main lines, lower for secondary rounds).
    pub opacity: f64,
    /// Whether the legend lists this series (rounds after the first usually do not).
    pub in_legend: bool,
    /// Data points `(x, y)` in data units.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A solid, opaque series shown in the legend.
    pub fn new(
        label: impl Into<String>,
        color: impl Into<String>,
        points: Vec<(f64, f64)>,
    ) -> Self {
        Self {
            label: label.into(),
            color: color.into(),
            dash: None,
            opacity: 1.0,
            in_legend: true,
            points,
        }
    }
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X axis label, with its unit.
    pub x_label: String,
    /// Y axis label, with its unit.
    pub y_label: String,
    /// X scale.
    pub x_scale: Scale,
    /// Y scale.
    pub y_scale: Scale,
    /// Lines.
    pub series: Vec<Series>,
    /// Width in px.
    pub width: f64,
    /// Height in px.
    pub height: f64,
}

/// One bar of a bar group.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Value.
    pub value: f64,
    /// Its confidence interval, drawn as a whisker.
    pub ci: Option<[f64; 2]>,
    /// Why the bar is not a measured cost (`n.s.`, `noise`, `no CI`): drawn lighter and
    /// labelled with it.
    pub note: Option<String>,
}

/// A grouped bar chart: one group per category, one bar per series in each.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// Y axis label, with its unit.
    pub y_label: String,
    /// Group labels along x.
    pub categories: Vec<String>,
    /// `(legend label, colour, one optional bar per category)`.
    pub series: Vec<(String, String, Vec<Option<Bar>>)>,
    /// Per category, the instrument's noise floor: a grey band from −floor to +floor
    /// behind the bars (a bar inside it is not a measurable cost).
    pub noise: Vec<Option<f64>>,
    /// Width in px.
    pub width: f64,
    /// Height in px.
    pub height: f64,
}

const LEFT: f64 = 64.0;
const RIGHT: f64 = 30.0;
const BOTTOM: f64 = 42.0;
const TITLE_H: f64 = 24.0;
const LEGEND_ROW: f64 = 16.0;
const CHAR_W: f64 = 6.6;
const TEXT: &str = "#4b5563";
const GRID: &str = "#e5e7eb";
const AXIS: &str = "#9ca3af";

/// Data domain mapped onto pixels.
#[derive(Debug, Clone, Copy)]
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    px0: f64,
    px1: f64,
    py0: f64,
    py1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        self.px0 + (v - self.x0) / (self.x1 - self.x0) * (self.px1 - self.px0)
    }
    fn y(&self, v: f64) -> f64 {
        self.py0 - (v - self.y0) / (self.y1 - self.y0) * (self.py0 - self.py1)
    }
}

/// Legend entries laid out in rows under the title; returns (svg, height used).
fn legend(
    entries: &[(String, String, Option<String>, bool)],
    width: f64,
    top: f64,
) -> (String, f64) {
    let mut out = String::new();
    let mut x = LEFT;
    let mut y = top + 10.0;
    let mut rows = if entries.is_empty() { 0.0 } else { 1.0 };
    for (label, color, dash, bar) in entries {
        let w = 26.0 + label.chars().count() as f64 * CHAR_W + 14.0;
        if x + w > width - RIGHT && x > LEFT {
            x = LEFT;
            y += LEGEND_ROW;
            rows += 1.0;
        }
        if *bar {
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="16" height="9" fill="{}" rx="1"/>"#,
                x,
                y - 7.0,
                color
            );
        } else {
            let _ = write!(
                out,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2.2"{}/>"#,
                x,
                y - 3.0,
                x + 20.0,
                y - 3.0,
                color,
                dash.as_ref()
                    .map(|d| format!(r#" stroke-dasharray="{d}""#))
                    .unwrap_or_default()
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{TEXT}">{}</text>"#,
            x + 26.0,
            y,
            escape(label)
        );
        x += w;
    }
    (out, rows * LEGEND_ROW)
}

fn open(width: f64, height: f64, title: &str) -> String {
    format!(
        r##"<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"><title>{t}</title><text class="title" x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#111827">{t}</text>"##,
        w = width,
        h = height,
        t = escape(title)
    )
}

/// Tick positions (in mapped units) with labels.
fn ticks(scale: Scale, lo: f64, hi: f64) -> Vec<(f64, String)> {
    match scale {
        Scale::Linear => {
            let step = nice_step((hi - lo) / 5.0);
            let mut v = (lo / step).ceil() * step;
            let mut out = Vec::new();
            while v <= hi + step * 1e-9 && out.len() < 50 {
                out.push((v, short_number(if v.abs() < step * 1e-9 { 0.0 } else { v })));
                v += step;
            }
            out
        }
        Scale::Log => {
            let decades = hi - lo;
            let mults: &[f64] = if decades <= 1.5 {
                &[1.0, 2.0, 3.0, 5.0, 7.0]
            } else if decades <= 3.0 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            let mut out = Vec::new();
            let mut k = lo.floor() as i32;
            while f64::from(k) <= hi.ceil() && out.len() < 60 {
                for m in mults {
                    let v = m * 10f64.powi(k);
                    let p = v.log10();
                    if p >= lo - 1e-9 && p <= hi + 1e-9 {
                        out.push((p, short_number(v)));
                    }
                }
                k += 1;
            }
            out
        }
        Scale::Nines => {
            let mut out = Vec::new();
            let mut k = lo.ceil() as i32;
            while f64::from(k) <= hi + 1e-9 && out.len() < 12 {
                out.push((f64::from(k), nines_label(k)));
                k += 1;
            }
            out
        }
    }
}

/// `0%`, `90%`, `99%`, `99.9%`, … for k nines.
pub fn nines_label(k: i32) -> String {
    match k {
        i32::MIN..=0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        _ => format!("99.{}%", "9".repeat((k - 2) as usize)),
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// `1.5k`, `20M`, `0.25`, `300`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x == x.round() {
        format!("{x:.0}")
    } else if (x * 10.0) == (x * 10.0).round() {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    format!("{s}{suffix}")
}

/// Axis domain in mapped units, padded to look tidy.
fn domain(scale: Scale, values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    match scale {
        Scale::Linear => {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
            if hi - lo < 1e-12 {
                hi = lo + 1.0;
            }
            let step = nice_step((hi - lo) / 5.0);
            ((lo / step).floor() * step, (hi / step).ceil() * step)
        }
        Scale::Log => {
            // Snap to 1-2-5 steps so the ends carry labels.
            let snap_down = |p: f64| {
                let k = p.floor();
                let m = 10f64.powf(p - k);
                let m = [5.0, 2.0, 1.0]
                    .into_iter()
                    .find(|c| *c <= m + 1e-9)
                    .unwrap_or(1.0);
                k + m.log10()
            };
            let snap_up = |p: f64| {
                let k = p.floor();
                let m = 10f64.powf(p - k);
                let m = [1.0, 2.0, 5.0, 10.0]
                    .into_iter()
                    .find(|c| *c >= m - 1e-9)
                    .unwrap_or(10.0);
                k + m.log10()
            };
            let (l, h) = (snap_down(lo), snap_up(hi));
            if h - l < 0.3 {
                (l - 0.15, h + 0.15)
            } else {
                (l, h)
            }
        }
        Scale::Nines => (0.0, hi.ceil().max(1.0)),
    }
}

fn frame_svg(
    out: &mut String,
    f: &Frame,
    xt: &[(f64, String)],
    yt: &[(f64, String)],
    x_label: &str,
    y_label: &str,
) {
    for (v, label) in yt {
        let y = f.y(*v);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{GRID}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="{TEXT}" text-anchor="end">{}</text>"#,
            f.px0,
            f.px1,
            f.px0 - 6.0,
            y + 3.5,
            escape(label)
        );
    }
    for (v, label) in xt {
        let x = f.x(*v);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{GRID}"/><text x="{x:.1}" y="{:.1}" font-size="11" fill="{TEXT}" text-anchor="middle">{}</text>"#,
            f.py1,
            f.py0,
            f.py0 + 15.0,
            escape(label)
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{AXIS}"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{AXIS}"/>"#,
        f.px0, f.py0, f.px1, f.py0, f.px0, f.py1, f.px0, f.py0
    );
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{TEXT}" text-anchor="middle">{}</text>"#,
        (f.px0 + f.px1) / 2.0,
        f.py0 + 32.0,
        escape(x_label)
    );
    let cy = (f.py0 + f.py1) / 2.0;
    let _ = write!(
        out,
        r#"<text x="14" y="{cy:.1}" font-size="11" fill="{TEXT}" text-anchor="middle" transform="rotate(-90 14 {cy:.1})">{}</text>"#,
        escape(y_label)
    );
}

impl LineChart {
    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let mapped: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .filter_map(|(x, y)| Some((self.x_scale.map(*x)?, self.y_scale.map(*y)?)))
                    .collect()
            })
            .collect();
        let (x0, x1) = domain(self.x_scale, mapped.iter().flatten().map(|p| p.0));
        let (y0, y1) = domain(self.y_scale, mapped.iter().flatten().map(|p| p.1));
        let entries: Vec<(String, String, Option<String>, bool)> = self
            .series
            .iter()
            .filter(|s| s.in_legend)
            .map(|s| (s.label.clone(), s.color.clone(), s.dash.clone(), false))
            .collect();
        let (legend_svg, legend_h) = legend(&entries, self.width, TITLE_H);
        let top = TITLE_H + legend_h + 8.0;
        let f = Frame {
            x0,
            x1,
            y0,
            y1,
            px0: LEFT,
            px1: self.width - RIGHT,
            py0: self.height - BOTTOM,
            py1: top,
        };
        let mut out = open(self.width, self.height, &self.title);
        out.push_str(&legend_svg);
        frame_svg(
            &mut out,
            &f,
            &ticks(self.x_scale, x0, x1),
            &ticks(self.y_scale, y0, y1),
            &self.x_label,
            &self.y_label,
        );
        if mapped.iter().all(Vec::is_empty) {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="12" fill="{TEXT}" text-anchor="middle">no data</text>"#,
                (f.px0 + f.px1) / 2.0,
                (f.py0 + f.py1) / 2.0
            );
        }
        for (s, pts) in self.series.iter().zip(&mapped) {
            if pts.is_empty() {
                continue;
            }
            let mut d = String::new();
            for (i, (x, y)) in pts.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { " L" },
                    f.x(*x),
                    f.y(*y)
                );
            }
            let _ = write!(
                out,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.8" stroke-opacity="{:.2}" stroke-linejoin="round"{}><title>{}</title></path>"#,
                s.color,
                s.opacity,
                s.dash
                    .as_ref()
                    .map(|d| format!(r#" stroke-dasharray="{d}""#))
                    .unwrap_or_default(),
                escape(&s.label)
            );
        }
        out.push_str("</svg>");
        out
    }
}

impl BarChart {
    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let values = self
            .series
            .iter()
            .flat_map(|(_, _, bars)| bars.iter().flatten())
            .flat_map(|b| {
                let mut v = vec![b.value];
                if let Some([lo, hi]) = b.ci {
                    v.extend([lo, hi]);
                }
                v
            })
            .chain(self.noise.iter().flatten().flat_map(|f| [*f, -*f]));
        let (y0, y1) = domain(Scale::Linear, values);
        let entries: Vec<(String, String, Option<String>, bool)> = self
            .series
            .iter()
            .map(|(l, c, _)| (l.clone(), c.clone(), None, true))
            .collect();
        let (legend_svg, legend_h) = legend(&entries, self.width, TITLE_H);
        let top = TITLE_H + legend_h + 8.0;
        let f = Frame {
            x0: 0.0,
            x1: self.categories.len().max(1) as f64,
            y0,
            y1,
            px0: LEFT,
            px1: self.width - RIGHT,
            py0: self.height - BOTTOM,
            py1: top,
        };
        let mut out = open(self.width, self.height, &self.title);
        out.push_str(&legend_svg);
        let xt: Vec<(f64, String)> = self
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (i as f64 + 0.5, c.clone()))
            .collect();
        // Category ticks without vertical grid lines: draw the frame, then mask nothing.
        frame_svg(
            &mut out,
            &f,
            &[],
            &ticks(Scale::Linear, y0, y1),
            "",
            &self.y_label,
        );
        // Labels wider than their category take two rows, alternately, so none overlaps.
        let slot = (f.px1 - f.px0) / xt.len().max(1) as f64;
        let stagger = xt
            .iter()
            .any(|(_, l)| l.chars().count() as f64 * CHAR_W > slot - 4.0);
        for (i, (v, label)) in xt.iter().enumerate() {
            let row = if stagger && i % 2 == 1 { 28.0 } else { 15.0 };
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{TEXT}" text-anchor="middle">{}</text>"#,
                f.x(*v),
                f.py0 + row,
                escape(label)
            );
        }
        let zero = f.y(0.0);
        let n = self.series.len().max(1) as f64;
        let group_w = (f.px1 - f.px0) / f.x1;
        for (ci, floor) in self.noise.iter().enumerate() {
            let Some(floor) = floor.filter(|v| *v > 0.0) else {
                continue;
            };
            let (top_y, bottom_y) = (f.y(floor), f.y(-floor));
            let _ = write!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#9ca3af" fill-opacity="0.22"><title>noise floor ±{}</title></rect>"##,
                f.x(ci as f64) + group_w * 0.08,
                top_y,
                group_w * 0.84,
                (bottom_y - top_y).max(0.5),
                short_number(floor)
            );
        }
        let bar_w = (group_w * 0.7 / n).min(48.0);
        for (si, (label, color, bars)) in self.series.iter().enumerate() {
            for (ci, bar) in bars.iter().enumerate() {
                let Some(b) = bar else { continue };
                let cx = f.x(ci as f64 + 0.5) + (si as f64 - (n - 1.0) / 2.0) * bar_w;
                let y = f.y(b.value);
                let (top_y, h) = if y < zero {
                    (y, zero - y)
                } else {
                    (zero, y - zero)
                };
                let _ = write!(
                    out,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}" fill-opacity="{}" stroke="{color}" stroke-width="1"><title>{}: {}{}</title></rect>"#,
                    cx - bar_w * 0.45,
                    top_y,
                    bar_w * 0.9,
                    h.max(0.5),
                    if b.note.is_some() { "0.35" } else { "0.85" },
                    escape(label),
                    short_number(b.value),
                    b.note
                        .as_ref()
                        .map_or(String::new(), |n| format!(" ({})", escape(n)))
                );
                if let Some([lo, hi]) = b.ci {
                    let (ylo, yhi) = (f.y(lo), f.y(hi));
                    let _ = write!(
                        out,
                        r##"<path d="M{cx:.1},{ylo:.1} L{cx:.1},{yhi:.1} M{:.1},{ylo:.1} L{:.1},{ylo:.1} M{:.1},{yhi:.1} L{:.1},{yhi:.1}" stroke="#1f2937" stroke-width="1.2" fill="none"/>"##,
                        cx - 4.0,
                        cx + 4.0,
                        cx - 4.0,
                        cx + 4.0
                    );
                }
                if let Some(note) = &b.note {
                    let ty = f.y(b.ci.map_or(b.value, |c| c[1].max(b.value))) - 4.0;
                    let _ = write!(
                        out,
                        r#"<text x="{cx:.1}" y="{ty:.1}" font-size="10" fill="{TEXT}" text-anchor="middle">{}</text>"#,
                        escape(note)
                    );
                }
            }
        }
        let _ = write!(
            out,
            r#"<line x1="{:.1}" y1="{zero:.1}" x2="{:.1}" y2="{zero:.1}" stroke="{AXIS}"/>"#,
            f.px0, f.px1
        );
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_map_and_label() {
        assert_eq!(Scale::Nines.map(0.0), Some(0.0));
        assert!((Scale::Nines.map(99.0).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(Scale::Nines.map(100.0), None);
        assert_eq!(nines_label(3), "99.9%");
        assert_eq!(Scale::Log.map(0.0), None);
    }

    #[test]
    fn line_chart_renders_paths_and_ticks() {
        let c = LineChart {
            title: "t <1>".into(),
            x_label: "percentile".into(),
            y_label: "µs".into(),
            x_scale: Scale::Nines,
            y_scale: Scale::Log,
            series: vec![Series::new(
                "direct",
                "#123456",
                vec![(50.0, 80.0), (99.0, 200.0), (99.9, 900.0)],
            )],
            width: 400.0,
            height: 300.0,
        };
        let s = c.render();
        assert!(s.starts_with("<svg"));
        assert!(s.contains("<path d=\"M"));
        assert!(s.contains(">99.9%<"));
        assert!(s.contains("t &lt;1&gt;"));
        assert!(s.ends_with("</svg>"));
    }

    #[test]
    fn bar_chart_marks_what_is_not_measurable_and_the_noise_band() {
        let c = BarChart {
            title: "added".into(),
            y_label: "µs".into(),
            categories: vec!["1000 req/s".into()],
            series: vec![(
                "proxied".into(),
                "#f00".into(),
                vec![Some(Bar {
                    value: 2.0,
                    ci: Some([-1.0, 5.0]),
                    note: Some("n.s.".into()),
                })],
            )],
            noise: vec![Some(3.0)],
            width: 300.0,
            height: 200.0,
        };
        let s = c.render();
        assert!(s.contains("<rect"));
        assert!(s.contains(">n.s.<"));
        assert!(s.contains("<title>noise floor ±3</title>"), "{s}");
    }

    #[test]
    fn category_labels_too_wide_for_their_slot_take_two_rows() {
        let chart = |categories: Vec<String>| BarChart {
            title: "added".into(),
            y_label: "µs".into(),
            series: vec![(
                "proxied".into(),
                "#f00".into(),
                categories.iter().map(|_| None).collect(),
            )],
            noise: categories.iter().map(|_| None).collect(),
            categories,
            width: 300.0,
            height: 200.0,
        };
        let rows = |svg: &str, label: &str| -> Vec<String> {
            svg.split("<text ")
                .filter(|t| t.contains(&format!(">{label}<")))
                .filter_map(|t| t.split("y=\"").nth(1)?.split('"').next().map(str::to_owned))
                .collect()
        };
        let short = chart(vec!["a".into(), "b".into()]).render();
        assert_eq!(
            rows(&short, "a"),
            rows(&short, "b"),
            "short labels share a row"
        );
        let long: Vec<String> = (0..8).map(|i| format!("post-64k-chunked-{i}")).collect();
        let svg = chart(long).render();
        assert_ne!(
            rows(&svg, "post-64k-chunked-0"),
            rows(&svg, "post-64k-chunked-1"),
            "neighbours on different rows"
        );
        assert_eq!(
            rows(&svg, "post-64k-chunked-0"),
            rows(&svg, "post-64k-chunked-2")
        );
    }
}
