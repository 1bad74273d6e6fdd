//! The report of a scan: what a set of NDJSON files holds (resources and claim types per file,
//! API versions, rejects, damage) and how fast it read, as `claimline scan` prints it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use claimline_model::human_bytes;

use crate::{Error, InputFile, ScanOptions, ScanSummary, claim_type, scan};

/// What the scan's workers return per resource: the claim type of an EOB.
#[derive(Clone, Copy)]
enum Seen {
    Other,
    Eob(Option<&'static str>),
}

/// Scans `files` (see [`scan`]), counting resources per type and EOBs per claim type;
/// `advanced` is told the bytes of each batch read (for a progress bar).
///
/// # Errors
/// As [`scan`].
pub fn scan_report(
    files: &[InputFile],
    opts: &ScanOptions,
    advanced: impl Fn(u64),
) -> Result<(ScanReport, ScanSummary), Error> {
    let mut claim_types: Vec<BTreeMap<&'static str, u64>> = vec![BTreeMap::new(); files.len()];
    let summary = scan(
        files,
        opts,
        || (),
        |(), r| {
            if r.resource_type == "ExplanationOfBenefit" {
                Seen::Eob(claim_type(r.root))
            } else {
                Seen::Other
            }
        },
        |batch| {
            advanced(batch.disk_bytes);
            let counts = &mut claim_types[batch.file_index];
            for seen in batch.items {
                if let Seen::Eob(t) = seen {
                    *counts.entry(t.unwrap_or("unknown")).or_insert(0) += 1;
                }
            }
            Ok(())
        },
    )?;
    Ok((ScanReport::new(&summary, &claim_types), summary))
}

/// What a scan found (`claimline scan --json` prints it as is).
#[derive(Debug, serde::Serialize)]
pub struct ScanReport {
    files: Vec<FileReport>,
    resources: BTreeMap<String, u64>,
    claim_types: BTreeMap<&'static str, u64>,
    api_versions: BTreeMap<String, u64>,
    rejects: Rejects,
    row_errors: RowErrors,
    bytes: u64,
    ndjson_bytes: u64,
    lines: u64,
    seconds: f64,
    mb_per_s: f64,
    resources_per_s: f64,
}

#[derive(Debug, serde::Serialize)]
struct Rejects {
    count: u64,
    file: Option<PathBuf>,
}

/// Scanning evaluates no views, so there are none; the key keeps `--json` the same shape for
/// every command.
#[derive(Debug, serde::Serialize)]
struct RowErrors {
    count: u64,
    by_column: BTreeMap<String, u64>,
    file: Option<PathBuf>,
}

#[derive(Debug, serde::Serialize)]
struct FileReport {
    path: PathBuf,
    bytes: u64,
    ndjson_bytes: u64,
    lines: u64,
    blank_lines: u64,
    resources: BTreeMap<String, u64>,
    claim_types: BTreeMap<&'static str, u64>,
    api_version: Option<String>,
    rejects: u64,
    truncated: bool,
    /// The file could not be read to its end.
    damaged: Option<crate::Damage>,
}

impl ScanReport {
    fn new(s: &ScanSummary, claim_types: &[BTreeMap<&'static str, u64>]) -> Self {
        let seconds = s.elapsed.as_secs_f64();
        let resources = s.resources();
        let n: u64 = resources.values().sum();
        let mut all_types = BTreeMap::new();
        let mut versions = BTreeMap::new();
        let files = s
            .files
            .iter()
            .zip(claim_types)
            .map(|(f, ct)| {
                for (k, v) in ct {
                    *all_types.entry(*k).or_insert(0) += v;
                }
                for (k, v) in &f.api_versions {
                    *versions.entry(k.clone()).or_insert(0) += v;
                }
                FileReport {
                    path: f.path.clone(),
                    bytes: f.bytes,
                    ndjson_bytes: f.ndjson_bytes,
                    lines: f.lines,
                    blank_lines: f.blank_lines,
                    resources: f.resources.clone(),
                    claim_types: ct.clone(),
                    api_version: f.api_version().map(|v| v.to_string()),
                    rejects: f.rejects,
                    truncated: f.truncated,
                    damaged: f.damaged.clone(),
                }
            })
            .collect();
        let rate = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
        ScanReport {
            files,
            resources,
            claim_types: all_types,
            api_versions: versions,
            rejects: Rejects {
                count: s.reject_count,
                file: s.rejects_file.clone(),
            },
            row_errors: RowErrors {
                count: 0,
                by_column: BTreeMap::new(),
                file: None,
            },
            bytes: s.bytes(),
            ndjson_bytes: s.ndjson_bytes(),
            lines: s.lines(),
            seconds,
            mb_per_s: rate(s.ndjson_bytes() as f64 / 1e6),
            resources_per_s: rate(n as f64),
        }
    }

    /// Writes the report as `claimline scan` prints it: a table of files, then the totals.
    ///
    /// # Errors
    /// Writing to `out` failed.
    pub fn write_summary(&self, out: &mut impl Write) -> std::io::Result<()> {
        let width = self
            .files
            .iter()
            .map(|f| f.path.display().to_string().len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            out,
            "{:<width$}  {:>10}  {:>8}  {:>3}  {:>7}  RESOURCES",
            "FILE", "BYTES", "LINES", "API", "REJECTS"
        )?;
        for f in &self.files {
            let mut what = join_counts(f.resources.iter().map(|(k, v)| (k.as_str(), *v)));
            if !f.claim_types.is_empty() {
                what.push_str(&format!(
                    " ({})",
                    join_counts(f.claim_types.iter().map(|(k, v)| (*k, *v)))
                ));
            }
            if f.truncated {
                what.push_str(" [gzip stream truncated]");
            }
            writeln!(
                out,
                "{:<width$}  {:>10}  {:>8}  {:>3}  {:>7}  {}",
                f.path.display(),
                human_bytes(f.bytes),
                f.lines,
                f.api_version.as_deref().unwrap_or("-"),
                f.rejects,
                what
            )?;
        }
        let n: u64 = self.resources.values().sum();
        writeln!(out)?;
        writeln!(
            out,
            "{} files, {} on disk, {} of NDJSON, {} lines",
            self.files.len(),
            human_bytes(self.bytes),
            human_bytes(self.ndjson_bytes),
            self.lines
        )?;
        writeln!(
            out,
            "resources: {n} ({})",
            join_counts(self.resources.iter().map(|(k, v)| (k.as_str(), *v)))
        )?;
        if !self.claim_types.is_empty() {
            writeln!(
                out,
                "ExplanationOfBenefit by claim type: {}",
                join_counts(self.claim_types.iter().map(|(k, v)| (*k, *v)))
            )?;
        }
        writeln!(
            out,
            "API versions: {}",
            join_counts(self.api_versions.iter().map(|(k, v)| (k.as_str(), *v)))
        )?;
        match &self.rejects.file {
            Some(p) => writeln!(
                out,
                "rejects: {} (written to {})",
                self.rejects.count,
                p.display()
            )?,
            None => writeln!(out, "rejects: {}", self.rejects.count)?,
        }
        writeln!(
            out,
            "time: {:.3} s, {:.1} MB/s, {:.0} resources/s",
            self.seconds, self.mb_per_s, self.resources_per_s
        )
    }
}

fn join_counts<'a>(items: impl Iterator<Item = (&'a str, u64)>) -> String {
    items
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
