//! `claimline load`: NDJSON on disk to Parquet and SQLite tables, in one pass (the pipeline is
//! `claimline_load::Loader`; this module parses the flags and prints).

use std::path::PathBuf;
use std::process::ExitCode;

use claimline_load::Loader;

use crate::args::OutputArgs;
use crate::progress::CliProgress;

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
    #[command(flatten)]
    output: OutputArgs,
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
    /// Threads (default 0: one per core, and one scan worker more for a load into SQLite or
    /// PostgreSQL): the workers that parse and evaluate, and the pool that encodes the tables
    /// once the scan is over.
    #[arg(long, default_value_t = 0, value_parser = crate::args::threads)]
    threads: usize,
    /// Keep v3 partially adjudicated and prior-authorization EOBs in the CCLF tables (they are
    /// counted and left out by default).
    #[arg(long)]
    include_partial: bool,
    /// Keep every version of a v1/v2 claim (keyed by `_resource_id`) instead of the current
    /// one per claim group. Use the same choice for every load into one output.
    #[arg(long)]
    all_versions: bool,
    /// Parse every member of every line instead of only those the views read (each line is
    /// checked whole either way, and the tables are the same): slower, for comparison.
    #[arg(long)]
    parse_whole: bool,
    /// The memory the run's claim history holds before it waits on disk (each EOB's claim key,
    /// id, status, time and place until the claim-history rule decides; sorted by claim group
    /// in owner-only files under DIR/.claimline-history, removed as they are read back). A
    /// size: 32MiB, 512KiB, 1GiB. The tables are the same either way.
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = crate::args::size)]
    history_memory: usize,
    /// Commit what could be read of a damaged input file (a cut or corrupt gzip stream) instead
    /// of stopping with exit 4; the damage is reported either way.
    #[arg(long)]
    accept_rejects: bool,
    /// Write the outcome (rows per table, rejects, row errors, bytes, durations, exit code, last
    /// success time) to FILE in Prometheus' text format, for node_exporter's textfile
    /// collector. Written on failure too.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Do not write the run's HTML report (`DIR/reports/<run_id>.html`).
    #[arg(long)]
    no_report: bool,
}

/// Runs `claimline load`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cmd::cap_threads(args.threads);
    let (format, postgres) = args.output.resolve()?;
    let loader = Loader::new(&args.out)
        .views(args.views)
        .format(format)
        .postgres(postgres)
        .strict(args.strict)
        .run_id(args.run_id)
        .threads(args.threads)
        .include_partial(args.include_partial)
        .accept_damaged(args.accept_rejects)
        .all_versions(args.all_versions)
        .parse_whole(args.parse_whole)
        .history_memory(args.history_memory);
    let started = std::time::Instant::now();
    let loaded = loader.load(&args.inputs, &CliProgress::new("load", args.json));
    let code = match &loaded {
        Ok(r) if !r.committed => 4,
        Ok(_) => 0,
        Err(e) => claimline_run::failure::exit_code(e),
    };
    if let Some(path) = &args.metrics {
        let m = claimline_run::metrics::Metrics {
            job: "load",
            exit_code: code,
            load: loaded.as_ref().ok(),
            seconds: [("total", started.elapsed().as_secs_f64())].into(),
            committed: None,
        };
        claimline_run::metrics::write(path, &m)?;
    }
    let report = loaded?;
    let page = (report.committed && !args.no_report)
        .then(|| crate::cmd::report::after_load(&args.out, &report.run_id, &report))
        .flatten();
    crate::args::print(args.json, &report, |out| {
        report.write_summary(out)?;
        crate::cmd::report::print_page(out, page.as_deref())
    })?;
    for d in &report.damaged {
        eprintln!("claimline: {}", d.message);
    }
    if !report.committed {
        // The tables are as they were; the rejects, kept, say what was wrong (found by a
        // review: "nothing was written" beside a rejects file that was).
        let kept = report
            .rejects
            .file
            .as_ref()
            .map(|f| format!("; the rejected lines are in {}", f.display()))
            .unwrap_or_default();
        if report.damaged.is_empty() {
            eprintln!(
                "claimline: --strict: {} rejected lines and {} row errors; nothing was committed{kept}",
                report.rejects.count, report.row_errors.count
            );
        } else {
            // A corrupt stream's lines are never loaded: no flag helps.
            let hint = if report.damaged.iter().all(|d| d.damage.read_is_trusted) {
                " (--accept-rejects loads what could be read)"
            } else {
                ""
            };
            eprintln!(
                "claimline: {} damaged input file(s); nothing was committed{kept}{hint}",
                report.damaged.len()
            );
        }
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}
