//! `claimline reload`: rebuild an output folder's tables from its kept exports, e.g. after a
//! mapping change (`claimline_run::reload`; this module parses the flags and prints).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::progress::CliProgress;

/// Arguments of `claimline reload`.
#[derive(clap::Args)]
pub struct Args {
    /// The output folder of `claimline run`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Views (default: the built-in set); later runs must use the same.
    #[arg(long, num_args = 1..)]
    views: Vec<String>,
    #[command(flatten)]
    output: crate::args::OutputArgs,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// Runs `claimline reload`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (format, postgres) = args.output.resolve()?;
    let r = claimline_run::reload_into(
        &args.out,
        &args.views,
        format,
        postgres.as_ref(),
        &CliProgress::new("reload", args.json),
    )?;
    crate::args::print(args.json, &r, |stdout| {
        writeln!(
            stdout,
            "rebuilt {} from {} kept exports: {} rows, {} rejects, {} row errors",
            r.out.display(),
            r.runs.len(),
            r.rows,
            r.rejects,
            r.row_errors
        )?;
        if !r.skipped.is_empty() {
            writeln!(
                stdout,
                "warning: {} earlier exports were removed by --keep; their data is not in the \
                 rebuilt tables unless a later export carries it",
                r.skipped.len()
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
