//! Progress bars: the run (trials, ETA) and the current trial (its measured window).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress bars: the run (trials, ETA) and the current trial (live rate).
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    current: ProgressBar,
    visible: bool,
}

impl Progress {
    /// Bars on stderr when `enabled`, else lines on stderr; `len` trials in all.
    pub fn new(enabled: bool, len: u64) -> Progress {
        let target = if enabled {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(len));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{elapsed_precise}] {bar:32.cyan/blue} {pos}/{len} trials  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        overall.set_prefix("bench");
        let current = multi.add(ProgressBar::new(1000));
        current.set_style(
            ProgressStyle::with_template("  {spinner} {msg:<40} {bar:20} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Progress {
            multi,
            overall,
            current,
            visible: enabled,
        }
    }

    /// A new trial starts.
    pub fn trial(&self, what: &str) {
        self.current.set_message(what.to_owned());
        self.current.set_position(0);
    }

    /// The current trial's progress.
    pub fn live(&self, snap: &loadgen::LiveSnapshot) {
        if !snap.window.is_zero() {
            let frac = snap.elapsed.as_secs_f64() / snap.window.as_secs_f64();
            self.current.set_position((frac * 1000.0) as u64);
        }
        self.current.tick();
    }

    /// A trial finished: `line` describes it.
    pub fn done(&self, line: &str) {
        self.overall.inc(1);
        self.println(line);
    }

    /// A warning line.
    pub fn warn(&self, line: &str) {
        self.println(line);
    }

    /// A line above the bars.
    pub fn println(&self, line: &str) {
        if self.visible {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// Clears the bars.
    pub fn finish(&self) {
        self.current.finish_and_clear();
        self.overall.finish_and_clear();
    }
}

/// `850 µs`, or `12.3 ms` from 10 ms.
pub fn fmt_us(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
