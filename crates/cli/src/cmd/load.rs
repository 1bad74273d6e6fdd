//! `claimline load`: NDJSON on disk to Parquet and SQLite tables, in one pass.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use claimline_link::{BeneIndex, Excluded, Plan, ResourceOutput, Scratch, patient_mbi};
use claimline_ndjson::{
    InputFile, Manifest, RejectTarget, ScanOptions, discover, scan, scan_collect,
};
use claimline_sink::{
    Cell, ParquetSink, RunRecord, Sink, SqliteSink, create_private_dir, format_timestamp,
};

use crate::progress::{bytes_bar, human_bytes};
use crate::views;

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `DIR/claimline.sqlite`
    Sqlite,
    /// `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`
    Parquet,
    /// Both.
    Both,
}

/// Arguments of `claimline load`.
#[derive(clap::Args)]
pub struct Args {
    /// NDJSON files (`.ndjson` or `.ndjson.gz`) or export folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Views: a built-in set (`cclf`, the default: the CCLF claim tables; or `basic`) or
    /// ViewDefinition files and folders (a folder named `v1`, `v2` or `v3` limits its views to
    /// that API version).
    #[arg(long, num_args = 1..)]
    views: Vec<String>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "both")]
    format: Format,
    /// Print one JSON document instead of a summary.
    #[arg(long)]
    json: bool,
    /// Fail (exit 4) and write nothing if any line is rejected or any value does not fit its
    /// column.
    #[arg(long)]
    strict: bool,
    /// Run id (default: the start time, `YYYYMMDDTHHMMSS.ffffffZ`); the same input and run id
    /// give byte-identical Parquet files.
    #[arg(long)]
    run_id: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Keep v3 partially adjudicated and prior-authorization EOBs in the CCLF tables (they are
    /// counted and left out by default).
    #[arg(long)]
    include_partial: bool,
}

/// What one load does; `claimline load` and `claimline run` both build one.
pub struct LoadRequest {
    /// Files and folders to read.
    pub inputs: Vec<PathBuf>,
    /// `--views` arguments (empty: the default built-in set).
    pub views: Vec<String>,
    /// Output folder.
    pub out: PathBuf,
    /// Output formats.
    pub format: Format,
    /// Commit nothing if there is any reject or row error.
    pub strict: bool,
    /// Run id (default: the start time).
    pub run_id: Option<String>,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Keep v3 partially adjudicated and prior-authorization EOBs in the CCLF tables.
    pub include_partial: bool,
}

/// What a load did.
pub struct LoadOutcome {
    /// The summary printed to the user.
    pub report: Report,
}

/// Runs `claimline load`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let request = LoadRequest {
        inputs: args.inputs,
        views: args.views,
        out: args.out,
        format: args.format,
        strict: args.strict,
        run_id: args.run_id,
        threads: args.threads,
        include_partial: args.include_partial,
    };
    let LoadOutcome { report } = execute(&request)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        report.write_text(&mut out)?;
    }
    if !report.committed {
        eprintln!(
            "claimline: --strict: {} rejected lines and {} row errors; nothing was written",
            report.rejects.count, report.row_errors.count
        );
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads `req.inputs` into `req.out`: scan, evaluate every view, write both formats, commit.
pub fn execute(args: &LoadRequest) -> anyhow::Result<LoadOutcome> {
    let started_at = Instant::now();
    let started = now_micros();
    let files = discover(&args.inputs)?;
    let sources = views::sources(&args.views)?;
    let mut plan =
        Plan::new(views::load(&sources)?).map_err(|e| views::UsageError(e.to_string()))?;
    plan.set_include_partial(args.include_partial);
    let benes = if plan.needs_bene_index() {
        let index = bene_index(&files, args.threads)?;
        let n = index.len() as u64;
        plan.set_bene_index(index);
        Some(n)
    } else {
        None
    };
    let views_hash = views::hash(&sources);
    let run_id = args.run_id.clone().unwrap_or_else(|| run_id_from(started));

    create_private_dir(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let rejects_dir = args.out.join("rejects");
    create_private_dir(&rejects_dir)
        .with_context(|| format!("creating {}", rejects_dir.display()))?;
    let tables = plan.tables().to_vec();
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if matches!(args.format, Format::Sqlite | Format::Both) {
        sinks.push(Box::new(SqliteSink::open(
            &args.out.join("claimline.sqlite"),
            &tables,
        )?));
    }
    if matches!(args.format, Format::Parquet | Format::Both) {
        sinks.push(Box::new(ParquetSink::open(
            &args.out.join("parquet"),
            &run_id,
            &tables,
        )?));
    }

    let opts = ScanOptions {
        strict: args.strict,
        rejects: RejectTarget::File(rejects_dir.join(format!("{run_id}.ndjson"))),
        threads: args.threads,
        ..ScanOptions::default()
    };
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    let bar = bytes_bar(total, "load");
    let mut rows_per_table = vec![0u64; tables.len()];
    let mut issues = IssueLog::new(rejects_dir.join(format!("{run_id}-row-errors.ndjson")));
    let mut fault = SinkFault::from_env();
    let mut claims = ClaimCounts::default();
    let summary = scan(
        &files,
        &opts,
        Scratch::default,
        |scratch, r| {
            let out = plan.evaluate(r, &run_id, scratch);
            (out, r.file_index, r.line)
        },
        |batch| {
            bar.inc(batch.disk_bytes);
            fault.tick()?;
            let mut per_table: Vec<Vec<Vec<Cell>>> = vec![Vec::new(); tables.len()];
            for (
                ResourceOutput {
                    rows,
                    issues: found,
                    unresolved_mbi,
                    excluded,
                },
                file_index,
                line,
            ) in batch.items
            {
                claims.unresolved_mbi += u64::from(unresolved_mbi);
                match excluded {
                    Some(Excluded::Partial) => claims.excluded_partial += 1,
                    Some(Excluded::PriorAuth) => claims.excluded_prior_auth += 1,
                    None => {}
                }
                for row in rows {
                    per_table[row.table].push(row.cells);
                }
                for issue in found {
                    issues.record(
                        &tables[issue.table].name,
                        &issue,
                        &files[file_index].path,
                        line,
                    )?;
                }
            }
            for (t, rows) in per_table.into_iter().enumerate() {
                if rows.is_empty() {
                    continue;
                }
                rows_per_table[t] += rows.len() as u64;
                let n = sinks.len();
                for (i, sink) in sinks.iter_mut().enumerate() {
                    if i + 1 == n {
                        sink.write(t, rows)?;
                        break;
                    }
                    sink.write(t, rows.clone())?;
                }
            }
            Ok(())
        },
    );
    bar.finish_and_clear();
    let summary = summary?;
    issues.finish()?;

    let table_counts: BTreeMap<String, u64> = tables
        .iter()
        .zip(&rows_per_table)
        .map(|(t, n)| (t.name.clone(), *n))
        .collect();
    let mut versions: Vec<String> = summary
        .files
        .iter()
        .flat_map(|f| f.api_versions.keys().cloned())
        .collect();
    versions.sort();
    versions.dedup();
    let record = RunRecord {
        run_id: run_id.clone(),
        started: format_timestamp(started),
        finished: format_timestamp(now_micros()),
        inputs: files.iter().map(|f| f.path.display().to_string()).collect(),
        api_versions: versions,
        views_hash,
        resources: summary.resources(),
        tables: table_counts.clone(),
        rejects: summary.reject_count,
        row_errors: issues.count,
        transaction_time: transaction_time(&args.inputs),
    };
    let failed_strict = args.strict && (summary.reject_count > 0 || issues.count > 0);
    if !failed_strict {
        for sink in sinks {
            sink.commit(&record)?;
        }
    } else {
        drop(sinks);
    }

    let seconds = started_at.elapsed().as_secs_f64();
    let report = Report {
        run_id,
        resources: summary.resources(),
        tables: table_counts,
        rejects: Rejects {
            count: summary.reject_count,
            file: summary.rejects_file.clone(),
        },
        row_errors: RowErrors {
            count: issues.count,
            by_column: issues.by_column.clone(),
            file: issues.written.then(|| issues.path.clone()),
        },
        bytes: summary.bytes(),
        ndjson_bytes: summary.ndjson_bytes(),
        seconds,
        mb_per_s: if seconds > 0.0 {
            summary.ndjson_bytes() as f64 / 1e6 / seconds
        } else {
            0.0
        },
        outputs: outputs(args),
        committed: !failed_strict,
        beneficiaries: benes.map(|n| Beneficiaries {
            with_mbi: n,
            unresolved_claims: claims.unresolved_mbi,
        }),
        excluded: ExcludedClaims {
            partial: claims.excluded_partial,
            prior_auth: claims.excluded_prior_auth,
        },
    };
    Ok(LoadOutcome { report })
}

/// Per-claim counts of the link stage.
#[derive(Default)]
struct ClaimCounts {
    unresolved_mbi: u64,
    excluded_partial: u64,
    excluded_prior_auth: u64,
}

/// First pass: the Patient files of the input (by manifest type, else by a file name starting
/// with `Patient`) to beneficiary id → current MBI. Rejects are left to the main pass.
fn bene_index(files: &[InputFile], threads: usize) -> anyhow::Result<BeneIndex> {
    let patients: Vec<InputFile> = files
        .iter()
        .filter(|f| match &f.expected_type {
            Some(t) => t == "Patient",
            None => f
                .path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("Patient")),
        })
        .cloned()
        .collect();
    let mut index = BeneIndex::default();
    if patients.is_empty() {
        return Ok(index);
    }
    let opts = ScanOptions {
        threads,
        ..ScanOptions::default()
    };
    let (found, _) = scan_collect(&patients, &opts, patient_mbi)?;
    for (version, bene, mbi) in found.into_iter().flatten() {
        index.insert(version, bene, mbi);
    }
    Ok(index)
}

/// A sink failure injected after N batches, for the project's own atomicity tests
/// (`CLAIMLINE_FAULT_SINK_AFTER_BATCHES=N`). Unset, it does nothing.
struct SinkFault {
    after: Option<u64>,
    seen: u64,
}

impl SinkFault {
    const ENV: &'static str = "CLAIMLINE_FAULT_SINK_AFTER_BATCHES";

    fn from_env() -> Self {
        SinkFault {
            after: std::env::var(Self::ENV).ok().and_then(|v| v.parse().ok()),
            seen: 0,
        }
    }

    fn tick(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.seen += 1;
        match self.after {
            Some(n) if self.seen > n => {
                Err(format!("injected sink failure ({})", Self::ENV).into())
            }
            _ => Ok(()),
        }
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `20261127T180102.123456Z`: unique per start, sortable, and a valid Hive partition value.
fn run_id_from(micros: i64) -> String {
    let whole = format_timestamp(micros - micros.rem_euclid(1_000_000));
    let compact = whole.trim_end_matches('Z').replace(['-', ':'], "");
    format!("{compact}.{:06}Z", micros.rem_euclid(1_000_000))
}

/// The `transactionTime` of the manifest in the first input folder that has one.
fn transaction_time(inputs: &[PathBuf]) -> Option<String> {
    inputs
        .iter()
        .map(|p| {
            if p.is_dir() {
                p.join("manifest.json")
            } else {
                p.with_file_name("manifest.json")
            }
        })
        .filter(|m| m.is_file())
        .find_map(|m| Manifest::read(&m).ok().and_then(|m| m.transaction_time))
}

fn outputs(args: &LoadRequest) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if matches!(args.format, Format::Sqlite | Format::Both) {
        v.push(args.out.join("claimline.sqlite"));
    }
    if matches!(args.format, Format::Parquet | Format::Both) {
        v.push(args.out.join("parquet"));
    }
    v
}

/// Row errors: counted per `table.column`, and written (no values: they may be PHI) to an
/// owner-only NDJSON file beside the rejects.
struct IssueLog {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    written: bool,
    count: u64,
    by_column: BTreeMap<String, u64>,
}

impl IssueLog {
    fn new(path: PathBuf) -> Self {
        IssueLog {
            path,
            out: None,
            written: false,
            count: 0,
            by_column: BTreeMap::new(),
        }
    }

    fn record(
        &mut self,
        table: &str,
        issue: &claimline_link::RowIssue,
        file: &Path,
        line: u64,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.count += 1;
        let key = if issue.column.is_empty() {
            table.to_owned()
        } else {
            format!("{table}.{}", issue.column)
        };
        *self.by_column.entry(key).or_insert(0) += 1;
        if self.out.is_none() {
            let f = claimline_ndjson::create_private(&self.path)?;
            self.out = Some(std::io::BufWriter::new(f));
            self.written = true;
        }
        if let Some(out) = &mut self.out {
            let rec = serde_json::json!({
                "file": file.display().to_string(),
                "line": line,
                "resource_id": issue.resource_id,
                "table": table,
                "column": issue.column,
                "error": issue.reason,
            });
            serde_json::to_writer(&mut *out, &rec)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
        }
        Ok(())
    }
}

/// The summary of a load (`--json` prints it as is).
#[derive(serde::Serialize)]
pub struct Report {
    /// The run's id.
    pub run_id: String,
    /// Resources read per type.
    pub resources: BTreeMap<String, u64>,
    /// Rows written per table.
    pub tables: BTreeMap<String, u64>,
    /// Rejected lines.
    pub rejects: Rejects,
    /// Values that did not fit their column.
    pub row_errors: RowErrors,
    /// Bytes on disk read.
    pub bytes: u64,
    /// Bytes of NDJSON read.
    pub ndjson_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// NDJSON MB per second.
    pub mb_per_s: f64,
    /// What was written.
    pub outputs: Vec<PathBuf>,
    /// False when `--strict` found problems and nothing was written.
    pub committed: bool,
    /// MBI resolution, when a view has a `BENE_MBI_ID`-style link column.
    pub beneficiaries: Option<Beneficiaries>,
    /// v3 EOBs left out of the CCLF tables (see `--include-partial`).
    pub excluded: ExcludedClaims,
}

/// MBI resolution of a load.
#[derive(serde::Serialize)]
pub struct Beneficiaries {
    /// Beneficiaries of the input's Patients with a current MBI.
    pub with_mbi: u64,
    /// Claims whose beneficiary no Patient resolved (their `BENE_MBI_ID` is NULL).
    pub unresolved_claims: u64,
}

/// v3 EOBs left out of the CCLF tables.
#[derive(serde::Serialize)]
pub struct ExcludedClaims {
    /// Partially adjudicated (`outcome` = `partial`).
    pub partial: u64,
    /// Prior authorizations (`use` = `preauthorization`).
    pub prior_auth: u64,
}

/// Rejected lines of a load.
#[derive(serde::Serialize)]
pub struct Rejects {
    /// How many.
    pub count: u64,
    /// Where they were written.
    pub file: Option<PathBuf>,
}

/// Row errors of a load.
#[derive(serde::Serialize)]
pub struct RowErrors {
    /// How many.
    pub count: u64,
    /// Per `table.column`.
    pub by_column: BTreeMap<String, u64>,
    /// Where they were written.
    pub file: Option<PathBuf>,
}

impl Report {
    /// The human summary.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let n: u64 = self.resources.values().sum();
        writeln!(out, "run {}", self.run_id)?;
        writeln!(
            out,
            "read {} ({} of NDJSON): {n} resources ({})",
            human_bytes(self.bytes),
            human_bytes(self.ndjson_bytes),
            self.resources
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(out, "rows:")?;
        for (t, n) in &self.tables {
            writeln!(out, "  {t:<24} {n:>10}")?;
        }
        match &self.rejects.file {
            Some(p) => writeln!(out, "rejects: {} (in {})", self.rejects.count, p.display())?,
            None => writeln!(out, "rejects: 0")?,
        }
        match &self.row_errors.file {
            Some(p) => {
                writeln!(
                    out,
                    "row errors: {} (in {})",
                    self.row_errors.count,
                    p.display()
                )?;
                for (c, n) in &self.row_errors.by_column {
                    writeln!(out, "  {c:<40} {n:>8}")?;
                }
            }
            None => writeln!(out, "row errors: 0")?,
        }
        if let Some(b) = &self.beneficiaries {
            writeln!(
                out,
                "beneficiaries: {} with an MBI; claims with no MBI resolved: {}",
                b.with_mbi, b.unresolved_claims
            )?;
        }
        if self.excluded.partial + self.excluded.prior_auth > 0 {
            writeln!(
                out,
                "left out of CCLF tables (v3): {} partially adjudicated, {} prior authorizations (--include-partial keeps them)",
                self.excluded.partial, self.excluded.prior_auth
            )?;
        }
        writeln!(
            out,
            "time: {:.2} s, {:.1} MB/s",
            self.seconds, self.mb_per_s
        )?;
        if self.committed {
            for o in &self.outputs {
                writeln!(out, "wrote {}", o.display())?;
            }
        }
        Ok(())
    }
}
