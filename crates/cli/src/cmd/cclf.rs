//! `claimline export cclf`, `claimline load-cclf` and `claimline reconcile`: CCLF fixed-width
//! files both ways, and the two feeds compared (the work is `claimline_load::cclf`; this module
//! parses the flags and prints).

use std::path::PathBuf;
use std::process::ExitCode;

use claimline_load::cclf::{CclfExport, CclfLoad};

use crate::args::{OutputArgs, print};
use crate::progress::CliProgress;

/// Arguments of `claimline export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    what: Export,
}

#[derive(clap::Subcommand)]
enum Export {
    /// The CCLF tables as CMS's fixed-width CCLF files (CCLF0–9, A, B), named as CMS names them.
    Cclf(ExportCclf),
}

#[derive(clap::Args)]
struct ExportCclf {
    /// Folder for the CCLF files.
    #[arg(long)]
    out: PathBuf,
    /// The output folder to read (written by `load` or `run` with SQLite).
    #[arg(long, default_value = ".")]
    from: PathBuf,
    /// The ACO id in the file names (`P.A<ACO>.ACO.ZC1Y…`).
    #[arg(long, default_value = "0000")]
    aco: String,
    /// Only the rows this run loaded (that are still current).
    #[arg(long, conflicts_with = "current")]
    run: Option<String>,
    /// Every current row (the claim-history rule across runs): the default.
    #[arg(long)]
    current: bool,
    /// Print one JSON document instead of a summary.
    #[arg(long)]
    json: bool,
    /// Exit 4 when a row is left out because a value does not fit its field.
    #[arg(long)]
    strict: bool,
}

/// Runs `claimline export`.
pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let Export::Cclf(args) = args.what;
    let report = claimline_load::cclf::export_cclf(&CclfExport {
        from: args.from,
        out: args.out,
        aco: args.aco,
        run: args.run,
    })?;
    print(args.json, &report, |out| report.write_summary(out))?;
    Ok(if args.strict && report.rejects > 0 {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    })
}

/// Arguments of `claimline load-cclf`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// CCLF files, zip files of them as CMS ships them, or folders.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    /// The table of every input (`cclf5`) when the file names do not tell it.
    #[arg(long)]
    table: Option<String>,
    /// Run id (default: the start time).
    #[arg(long)]
    run_id: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0, value_parser = crate::args::threads)]
    threads: usize,
    /// Fail (exit 4) and write nothing if any record is rejected.
    #[arg(long)]
    strict: bool,
    /// Print one JSON document instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Runs `claimline load-cclf`.
pub fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    crate::cmd::cap_threads(args.threads);
    let (format, postgres) = args.output.resolve()?;
    let report = claimline_load::cclf::load_cclf(
        &CclfLoad {
            inputs: args.inputs,
            out: args.out,
            sinks: format
                .sinks(postgres.as_ref())
                .map_err(crate::failure::UsageError)?,
            table: args.table,
            run_id: args.run_id,
            threads: args.threads,
            strict: args.strict,
        },
        &CliProgress::new("load-cclf", args.json),
    )?;
    print(args.json, &report, |out| report.write_summary(out))?;
    if !report.committed {
        eprintln!(
            "claimline: --strict: {} records rejected; nothing was committed{}",
            report.rejects,
            report
                .rejects_file
                .as_ref()
                .map(|f| format!("; the rejected records are in {}", f.display()))
                .unwrap_or_default()
        );
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `claimline reconcile`.
#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// The output folder holding both feeds (BCDA loads and `load-cclf`).
    #[arg(long)]
    out: PathBuf,
    /// The BCDA API version whose claims are compared (v1, v2, v3); default the newest loaded.
    #[arg(long, value_parser = ["v1", "v2", "v3"])]
    api: Option<String>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `claimline reconcile`.
pub fn reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let report = claimline_load::cclf::reconcile(&args.out, args.api.as_deref())?;
    print(args.json, &report, |out| report.write_summary(out))?;
    Ok(ExitCode::SUCCESS)
}
