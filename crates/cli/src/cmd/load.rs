//! `claimline load`: NDJSON on disk to Parquet and SQLite tables, in one pass (the pipeline is
//! `claimline_load::Loader`; this module parses the flags and prints).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use claimline_load::{Format, LoadReport, Loader, Progress};
use indicatif::ProgressBar;

use crate::progress::{bytes_bar, human_bytes};

/// Output formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// `DIR/claimline.sqlite`
    Sqlite,
    /// `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`
    Parquet,
    /// Both.
    Both,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Sqlite => Format::Sqlite,
            FormatArg::Parquet => Format::Parquet,
            FormatArg::Both => Format::Both,
        }
    }
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
    format: FormatArg,
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
    /// Keep every version of a v1/v2 claim (keyed by `_resource_id`) instead of the current
    /// one per claim group. Use the same choice for every load into one output.
    #[arg(long)]
    all_versions: bool,
    /// Commit what could be read of a damaged input file (a cut or corrupt gzip stream) instead
    /// of stopping with exit 4; the damage is reported either way.
    #[arg(long)]
    accept_rejects: bool,
    /// Write the outcome (rows per table, rejects, row errors, bytes, durations, exit code, last
    /// success time) to FILE in Prometheus' text format, for node_exporter's textfile
    /// collector. Written on failure too.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
}

/// A byte bar on a terminal, notes on stderr.
pub struct CliProgress {
    bar: std::sync::Mutex<Option<ProgressBar>>,
    what: &'static str,
}

impl CliProgress {
    /// Progress of a job named `what` (`load`).
    pub fn new(what: &'static str) -> Self {
        CliProgress {
            bar: std::sync::Mutex::new(None),
            what,
        }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for CliProgress {
    fn started(&self, total_bytes: u64) {
        *self.bar() = Some(bytes_bar(total_bytes, self.what));
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

/// Runs `claimline load`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loader = Loader::new(&args.out)
        .views(args.views)
        .format(args.format.into())
        .strict(args.strict)
        .run_id(args.run_id)
        .threads(args.threads)
        .include_partial(args.include_partial)
        .accept_damaged(args.accept_rejects)
        .all_versions(args.all_versions);
    let started = std::time::Instant::now();
    let loaded = loader.load(&args.inputs, &CliProgress::new("load"));
    let code = match &loaded {
        Ok(r) if !r.committed => 4,
        Ok(_) => 0,
        Err(e) => claimline_run::failure::exit_code(e),
    };
    if let Some(path) = &args.metrics {
        let m = crate::metrics::Metrics {
            job: "load",
            exit_code: code,
            load: loaded.as_ref().ok(),
            seconds: [("total", started.elapsed().as_secs_f64())].into(),
            committed: None,
        };
        crate::metrics::write(path, &m)?;
    }
    let report = loaded?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&report, &mut out)?;
    }
    for d in &report.damaged {
        eprintln!("claimline: {}", d.message);
    }
    if !report.committed {
        if report.damaged.is_empty() {
            eprintln!(
                "claimline: --strict: {} rejected lines and {} row errors; nothing was written",
                report.rejects.count, report.row_errors.count
            );
        } else {
            eprintln!(
                "claimline: {} damaged input file(s); nothing was written (--accept-rejects loads what could be read)",
                report.damaged.len()
            );
        }
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human summary of a load.
pub fn write_text(report: &LoadReport, out: &mut impl Write) -> std::io::Result<()> {
    let this = report;
    {
        let n: u64 = this.resources.values().sum();
        writeln!(out, "run {}", this.run_id)?;
        writeln!(
            out,
            "read {} ({} of NDJSON): {n} resources ({})",
            human_bytes(this.bytes),
            human_bytes(this.ndjson_bytes),
            this.resources
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(out, "rows:")?;
        for (t, n) in &this.tables {
            writeln!(out, "  {t:<24} {n:>10}")?;
        }
        match &this.rejects.file {
            Some(p) => writeln!(out, "rejects: {} (in {})", this.rejects.count, p.display())?,
            None => writeln!(out, "rejects: 0")?,
        }
        match &this.row_errors.file {
            Some(p) => {
                writeln!(
                    out,
                    "row errors: {} (in {})",
                    this.row_errors.count,
                    p.display()
                )?;
                for (c, n) in &this.row_errors.by_column {
                    writeln!(out, "  {c:<40} {n:>8}")?;
                }
            }
            None => writeln!(out, "row errors: 0")?,
        }
        if let Some(b) = &this.beneficiaries {
            writeln!(
                out,
                "beneficiaries: {} with an MBI; claims with no MBI resolved: {}",
                b.with_mbi, b.unresolved_claims
            )?;
        }
        let h = &this.history;
        if h.superseded + h.stale_groups + h.removed_groups + h.cancels > 0 {
            writeln!(
                out,
                "claim versions: {} left out (earlier or cancelled versions, duplicates), {} older than what the output holds, {} claims removed by a cancel",
                h.superseded, h.stale_groups, h.removed_groups
            )?;
        }
        if !this.v2_v3_overlap_months.is_empty() {
            writeln!(
                out,
                "warning: v2 and v3 claims for the same service months ({}): see the README's cutover recipe",
                claimline_load::month_ranges(&this.v2_v3_overlap_months)
            )?;
        }
        // Views of the user's: a column NULL in every row is most often a path typo.
        for (table, columns) in this.null_columns.iter().filter(|_| this.custom_views) {
            writeln!(
                out,
                "note: {table}: NULL in every row: {} (check their paths)",
                columns.join(", ")
            )?;
        }
        if this.excluded.partial + this.excluded.prior_auth > 0 {
            writeln!(
                out,
                "left out of CCLF tables (v3): {} partially adjudicated, {} prior authorizations (--include-partial keeps them)",
                this.excluded.partial, this.excluded.prior_auth
            )?;
        }
        writeln!(
            out,
            "time: {:.2} s, {:.1} MB/s",
            this.seconds, this.mb_per_s
        )?;
        if this.committed {
            for o in &this.outputs {
                writeln!(out, "wrote {}", o.display())?;
            }
        }
        Ok(())
    }
}
