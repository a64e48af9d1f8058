//! What a batch shows while it runs: on a terminal, a bar with rows/s and the time left; a log
//! line per part otherwise (a container's log, a CI job), and a summary at the end.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug)]
pub struct Progress {
    started: Instant,
    total: usize,
    /// Rows and errors in committed parts.
    done: Mutex<(usize, usize)>,
    /// The bar, on a terminal only.
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{bar:40} {pos}/{len} rows · {per_sec} · {eta} left")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            started: Instant::now(),
            total,
            done: Mutex::new((0, 0)),
            bar,
        }
    }

    /// Called as rows are scored (moves the bar).
    pub fn rows_scored(&self, rows: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(rows as u64);
        }
    }

    /// Called when a part file is committed.
    pub fn part_done(&self, part: &str, rows: usize, errors: usize) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        done.0 += rows;
        done.1 += errors;
        if self.bar.is_some() {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done.0 as f64 / seconds;
        let left = self.total.saturating_sub(done.0) as f64 / rate.max(1e-9);
        println!(
            "batch: {part} written ({rows} rows, {errors} errors); {}/{} rows, {rate:.1} rows/s, \
             about {left:.0} s left",
            done.0, self.total
        );
    }

    pub fn finish(&self, output: &Path) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let (rows, errors) = *self.done.lock().unwrap_or_else(PoisonError::into_inner);
        println!(
            "batch: scored {rows} rows ({errors} errors) in {seconds:.1} s ({:.1} rows/s) into {}",
            rows as f64 / seconds.max(1e-9),
            output.display()
        );
    }
}
