//! `claimline report`, and the report every `load` and `run` writes (`claimline_report` does
//! the work; this module parses the flags and prints).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `claimline report`.
#[derive(clap::Args)]
pub struct Args {
    /// The output folder (its SQLite tables and run records).
    #[arg(long)]
    out: PathBuf,
    /// The run to report on (default: the last).
    #[arg(long)]
    run: Option<String>,
}

/// Runs `claimline report`: writes `DIR/reports/<run_id>.html` and prints its path.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = claimline_report::write(&args.out, args.run.as_deref())?;
    writeln!(std::io::stdout().lock(), "{}", path.display())?;
    Ok(ExitCode::SUCCESS)
}

/// The summary's last line naming the report `after_load` wrote, when it wrote one.
pub fn print_page(out: &mut impl Write, page: Option<&Path>) -> std::io::Result<()> {
    match page {
        Some(page) => writeln!(out, "report: {}", page.display()),
        None => Ok(()),
    }
}

/// After a committed `load` or `run` into `out`: saves the command's JSON report of run
/// `run_id` and writes the HTML report beside it; returns its path. The report is derived: a
/// failure to write it is a warning on stderr, never the command's failure. An output without
/// SQLite tables gets none.
pub fn after_load(out: &Path, run_id: &str, details: &impl serde::Serialize) -> Option<PathBuf> {
    if !out.join("claimline.sqlite").is_file() {
        return None;
    }
    let written = serde_json::to_value(details)
        .map_err(|e| claimline_report::ReportError::Usage(e.to_string()))
        .and_then(|v| claimline_report::save_details(out, run_id, &v))
        .and_then(|_| claimline_report::write(out, Some(run_id)));
    match written {
        Ok(path) => Some(path),
        Err(e) => {
            eprintln!("claimline: warning: no report for run {run_id}: {e}");
            None
        }
    }
}
