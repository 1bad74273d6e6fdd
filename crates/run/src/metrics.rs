//! The outcome of a `load` or `run` in Prometheus' text format, for node_exporter's textfile
//! collector (write it under its folder; the CLI's `--metrics FILE`). Counts, bytes and
//! durations only: never a value of a record.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use claimline_load::LoadReport;

/// What a job tells the scheduler's monitoring.
#[derive(Default)]
pub struct Metrics<'a> {
    /// `load` or `run`.
    pub job: &'a str,
    /// The exit code the job ends with.
    pub exit_code: u8,
    /// The load's report, when the load ran.
    pub load: Option<&'a LoadReport>,
    /// Seconds per phase (`total`, `load`, `fetch`).
    pub seconds: BTreeMap<&'a str, f64>,
    /// `run`: the `_since` advanced.
    pub committed: Option<bool>,
}

impl<'a> Metrics<'a> {
    /// The metrics of a `run` that ended with `exit_code` (and its report, when it got one).
    pub fn of_run(exit_code: u8, report: Option<&'a crate::RunReport>) -> Self {
        let mut seconds = BTreeMap::new();
        if let Some(r) = report {
            seconds.insert("total", r.seconds);
            if let Some(l) = &r.load {
                seconds.insert("load", l.seconds);
            }
        }
        Metrics {
            job: "run",
            exit_code,
            load: report.and_then(|r| r.load.as_ref()),
            seconds,
            committed: report.map(|r| r.committed),
        }
    }
}

/// The value of `name` in an earlier metrics file (to carry the last success time over a
/// failure).
fn previous(path: &Path, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A label value as Prometheus' text format writes it: `\\`, `\"` and `\n` escaped, so no value
/// can end its sample's line or begin another.
fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `m` to `path` atomically (owner-only); the last success time of an earlier file is
/// kept when this job failed.
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, m: &Metrics<'_>) -> std::io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let job = escape(m.job);
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{job=\"{job}\"{labels}}} {value}");
        }
    };
    let success = m.exit_code == 0;
    metric(
        "claimline_last_run_success",
        "1 when the last job succeeded (exit code 0).",
        vec![(String::new(), f64::from(u8::from(success)))],
    );
    metric(
        "claimline_last_run_exit_code",
        "The exit code of the last job (ARCHITECTURE.md: 7 retry later, others alert).",
        vec![(String::new(), f64::from(m.exit_code))],
    );
    metric(
        "claimline_last_run_timestamp_seconds",
        "When the last job ended.",
        vec![(String::new(), now)],
    );
    let key = format!("claimline_last_success_timestamp_seconds{{job=\"{job}\"}}");
    let last_success = if success {
        Some(now)
    } else {
        previous(path, &key)
    };
    if let Some(at) = last_success {
        metric(
            "claimline_last_success_timestamp_seconds",
            "When a job last succeeded.",
            vec![(String::new(), at)],
        );
    }
    if let Some(committed) = m.committed {
        metric(
            "claimline_since_committed",
            "1 when the run committed its transactionTime as the next _since.",
            vec![(String::new(), f64::from(u8::from(committed)))],
        );
    }
    metric(
        "claimline_duration_seconds",
        "Wall time per phase of the last job.",
        m.seconds
            .iter()
            .map(|(phase, s)| (format!(",phase=\"{}\"", escape(phase)), *s))
            .collect(),
    );
    if let Some(r) = m.load {
        metric(
            "claimline_rows",
            "Rows the last load wrote, per table.",
            r.tables
                .iter()
                .map(|(t, n)| (format!(",table=\"{}\"", escape(t)), *n as f64))
                .collect(),
        );
        metric(
            "claimline_resources",
            "Resources the last load read, per type.",
            r.resources
                .iter()
                .map(|(t, n)| (format!(",type=\"{}\"", escape(t)), *n as f64))
                .collect(),
        );
        metric(
            "claimline_rejects",
            "Rejected lines of the last load.",
            vec![(String::new(), r.rejects.count as f64)],
        );
        metric(
            "claimline_row_errors",
            "Values of the last load that did not fit their column.",
            vec![(String::new(), r.row_errors.count as f64)],
        );
        metric(
            "claimline_damaged_files",
            "Input files of the last load that could not be read to their end.",
            vec![(String::new(), r.damaged.len() as f64)],
        );
        metric(
            "claimline_input_bytes",
            "Bytes the last load read: on disk, and of NDJSON.",
            vec![
                (",form=\"disk\"".to_owned(), r.bytes as f64),
                (",form=\"ndjson\"".to_owned(), r.ndjson_bytes as f64),
            ],
        );
        let p = &r.phases;
        metric(
            "claimline_load_phase_seconds",
            "Wall time per phase of the last load (setup, scan, claim history, commit, current tables).",
            [
                ("setup", p.setup),
                ("scan", p.scan),
                ("history", p.history),
                ("commit", p.commit),
                ("current", p.current),
            ]
            .into_iter()
            .map(|(phase, s)| (format!(",phase=\"{phase}\""), s))
            .collect(),
        );
    }
    claimline_model::write_atomic(path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_last_success_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claimline.prom");
        write(
            &path,
            &Metrics {
                job: "run",
                ..Metrics::default()
            },
        )
        .expect("write");
        let first = std::fs::read_to_string(&path).expect("read");
        let key = "claimline_last_success_timestamp_seconds{job=\"run\"}";
        let at = previous(&path, key).expect("a success time");
        write(
            &path,
            &Metrics {
                job: "run",
                exit_code: 7,
                ..Metrics::default()
            },
        )
        .expect("write");
        let second = std::fs::read_to_string(&path).expect("read");
        assert!(first.contains("claimline_last_run_success{job=\"run\"} 1"));
        assert!(second.contains("claimline_last_run_success{job=\"run\"} 0"));
        assert!(second.contains("claimline_last_run_exit_code{job=\"run\"} 7"));
        assert_eq!(previous(&path, key), Some(at));
    }

    #[test]
    fn a_label_value_cannot_end_its_line() {
        assert_eq!(
            escape("Pat\"} 9\nforged{x=\"a\\b"),
            "Pat\\\"} 9\\nforged{x=\\\"a\\\\b"
        );
        assert!(!escape("a\nb").contains('\n'));
    }
}
