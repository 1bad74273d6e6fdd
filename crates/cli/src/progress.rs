//! Progress on stderr: bars for long work, drawn only when stderr is a terminal, and the
//! notes of the fetch and load libraries.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use claimline_fetch::{Event, Progress as FetchProgress};
use claimline_load::Progress;
use claimline_model::human_bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting progress bar over `total` bytes, hidden when stderr is not a terminal or the
/// work is small enough to finish at once.
pub fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let show = std::io::stderr().is_terminal() && total > 64 << 20;
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

/// Progress on stderr: a bar of files and bytes when stderr is a terminal, plain lines for
/// the events that matter otherwise.
pub struct Reporter {
    bar: ProgressBar,
    quiet: bool,
    bytes: AtomicU64,
}

impl Reporter {
    /// A reporter; `quiet` keeps stderr to warnings (for `--json` runs under scripts).
    pub fn new(quiet: bool) -> Self {
        let target = if std::io::stderr().is_terminal() && !quiet {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{elapsed_precise}] {pos}/{len} files {prefix}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Reporter {
            bar,
            quiet,
            bytes: AtomicU64::new(0),
        }
    }

    fn line(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl FetchProgress for Reporter {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::KickedOff { job_url } => {
                self.bar.set_message("export running");
                if !self.quiet {
                    self.line(&format!("started export job {job_url}"));
                }
            }
            Event::Reattached { job_url } => {
                self.bar.set_message("export running");
                if !self.quiet {
                    self.line(&format!("following export job {job_url}"));
                }
            }
            Event::Restarted { job_url } => {
                // Said even when quiet: the job the folder pointed to is dead.
                self.line(&format!(
                    "the saved export job {job_url} failed or is gone; started a new one"
                ));
            }
            Event::Busy { wait } if !self.quiet => {
                self.line(&format!(
                    "another export is running on BCDA; asking again in {:.1} s",
                    wait.as_secs_f64()
                ));
            }
            Event::JobProgress { percent, text } => {
                let shown = match percent {
                    Some(p) => format!("job {p}%"),
                    None if text.is_empty() => "job running".to_owned(),
                    None => format!("job: {text}"),
                };
                self.bar.set_message(shown);
            }
            Event::Manifest {
                files,
                already_done,
            } => {
                self.bar.set_length(*files as u64);
                self.bar.set_position(*already_done as u64);
                self.bar.set_message("downloading");
                if !self.quiet && *already_done > 0 {
                    self.line(&format!(
                        "{already_done} of {files} files already downloaded by an earlier run"
                    ));
                }
            }
            Event::Bytes { bytes, .. } => {
                let total = self.bytes.fetch_add(*bytes, Ordering::Relaxed) + bytes;
                self.bar.set_prefix(human_bytes(total));
            }
            Event::FileDone { .. } => self.bar.inc(1),
            Event::Retry {
                what,
                attempt,
                reason,
                wait,
            } => {
                self.line(&format!(
                    "retrying {what} (attempt {attempt} failed: {reason}) in {:.1} s",
                    wait.as_secs_f64()
                ));
            }
            _ => {}
        }
    }
}

/// A byte bar on a terminal (bytes and resources per second), notes on stderr.
pub struct CliProgress {
    bar: std::sync::Mutex<Option<ProgressBar>>,
    what: &'static str,
    quiet: bool,
    resources: AtomicU64,
    since: std::time::Instant,
}

impl CliProgress {
    /// Progress of a job named `what` (`load`); `quiet` (`--json`) draws no bar.
    pub fn new(what: &'static str, quiet: bool) -> Self {
        CliProgress {
            bar: std::sync::Mutex::new(None),
            what,
            quiet,
            resources: AtomicU64::new(0),
            since: std::time::Instant::now(),
        }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for CliProgress {
    fn started(&self, total_bytes: u64) {
        if !self.quiet {
            *self.bar() = Some(bytes_bar(total_bytes, self.what));
        }
    }

    fn resources(&self, resources: u64) {
        let n = self.resources.fetch_add(resources, Ordering::Relaxed) + resources;
        if let Some(bar) = self.bar().as_ref() {
            let secs = self.since.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{} {} resources, {:.0}/s",
                self.what,
                n,
                n as f64 / secs
            ));
        }
    }

    fn advanced(&self, bytes: u64) {
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(bytes);
        }
    }

    fn finished(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }

    fn note(&self, text: &str) {
        eprintln!("claimline: {text}");
    }
}
