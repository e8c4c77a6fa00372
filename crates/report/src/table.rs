//! One table, three renderings: aligned plain text, Markdown and HTML.
//!
//! Text columns align left, numeric columns right. Widths count characters, not
//! bytes (`µs` is one column wide).

use crate::html::escape;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table of already formatted cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = (S, Align)>) -> Self {
        Self {
            headers: columns.into_iter().map(|(h, a)| (h.into(), a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn widths(&self) -> Vec<usize> {
        self.headers
            .iter()
            .enumerate()
            .map(|(i, (h, _))| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain(std::iter::once(h.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Plain text: columns two spaces apart, a rule under the header, `indent` before each line.
    pub fn plain(&self, indent: &str) -> String {
        let widths = self.widths();
        let mut out = String::new();
        let line = |cells: Vec<&str>, out: &mut String| {
            let mut l = String::from(indent);
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    l.push_str("  ");
                }
                pad(&mut l, cell, widths[i], self.headers[i].1);
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(
            self.headers.iter().map(|(h, _)| h.as_str()).collect(),
            &mut out,
        );
        let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        out.push_str(indent);
        out.push_str(&"─".repeat(total));
        out.push('\n');
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect(), &mut out);
        }
        out
    }

    /// GitHub-flavoured Markdown, padded so the source reads as a table too.
    pub fn markdown(&self) -> String {
        let widths: Vec<usize> = self.widths().into_iter().map(|w| w.max(3)).collect();
        let mut out = String::new();
        let line = |cells: Vec<&str>, out: &mut String| {
            out.push('|');
            for (i, cell) in cells.iter().enumerate() {
                out.push(' ');
                let escaped = cell.replace('|', "\\|");
                pad(out, &escaped, widths[i], self.headers[i].1);
                out.push_str(" |");
            }
            out.push('\n');
        };
        line(
            self.headers.iter().map(|(h, _)| h.as_str()).collect(),
            &mut out,
        );
        out.push('|');
        for (i, (_, a)) in self.headers.iter().enumerate() {
            let dashes = "-".repeat(widths[i] - 1);
            match a {
                Align::Left => out.push_str(&format!(" {dashes}- |")),
                Align::Right => out.push_str(&format!(" {dashes}: |")),
            }
        }
        out.push('\n');
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect(), &mut out);
        }
        out
    }

    /// An HTML `<table>`; numeric cells get `class="num"`, cells ending in `n.s.` or
    /// `(noise)` (not a measurable cost) get `class="ns"`.
    pub fn html(&self) -> String {
        let mut out = String::from("<table>\n<thead><tr>");
        for (h, a) in &self.headers {
            out.push_str(&format!("<th{}>{}</th>", class(*a, ""), escape(h)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            out.push_str("<tr>");
            for (i, cell) in r.iter().enumerate() {
                out.push_str(&format!(
                    "<td{}>{}</td>",
                    class(self.headers[i].1, cell),
                    escape(cell)
                ));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

fn class(a: Align, cell: &str) -> &'static str {
    match (a, cell.ends_with("n.s.") || cell.ends_with("(noise)")) {
        (Align::Right, true) => " class=\"num ns\"",
        (Align::Right, false) => " class=\"num\"",
        (Align::Left, true) => " class=\"ns\"",
        (Align::Left, false) => "",
    }
}

fn pad(out: &mut String, cell: &str, width: usize, align: Align) {
    let fill = width.saturating_sub(cell.chars().count());
    match align {
        Align::Left => {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', fill));
        }
        Align::Right => {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(cell);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new([("topology", Align::Left), ("p50 µs", Align::Right)]);
        t.row(vec!["direct".into(), "85".into()]);
        t.row(vec!["proxied".into(), "1234".into()]);
        t
    }

    #[test]
    fn plain_aligns_numbers_right() {
        let s = sample().plain("");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "topology  p50 µs");
        assert_eq!(lines[2], "direct        85");
        assert_eq!(lines[3], "proxied     1234");
    }

    #[test]
    fn markdown_marks_alignment() {
        let s = sample().markdown();
        assert!(s.contains("| -------- | -----: |"), "{s}");
        assert!(s.contains("| proxied  |   1234 |"), "{s}");
    }

    #[test]
    fn html_escapes() {
        let mut t = Table::new([("a", Align::Left)]);
        t.row(vec!["<b>".into()]);
        assert!(t.html().contains("&lt;b&gt;"));
    }
}
