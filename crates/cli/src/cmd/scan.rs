//! `claimline scan`: what a set of NDJSON files holds, and how fast it reads.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use claimline_ndjson::{RejectTarget, ScanOptions, discover, scan_report};

use crate::progress::bytes_bar;

/// Arguments of `claimline scan`.
#[derive(clap::Args)]
pub struct Args {
    /// NDJSON files (`.ndjson` or `.ndjson.gz`) or folders to read recursively.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Stop at the first rejected line, with exit code 4.
    #[arg(long)]
    strict: bool,
    /// Where rejected lines are written (created owner-only, only if there are any).
    #[arg(long, default_value = "claimline-rejects.ndjson")]
    rejects: PathBuf,
}

/// Runs `claimline scan`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = discover(&args.inputs)?;
    let opts = ScanOptions {
        strict: args.strict,
        rejects: RejectTarget::File(args.rejects.clone()),
        // Nothing here reads a resource's line number (rejects always carry file lines).
        lines_in_batch: true,
        ..ScanOptions::default()
    };
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    let bar = bytes_bar(total, "scan");
    let scanned = scan_report(&files, &opts, |bytes| bar.inc(bytes));
    bar.finish_and_clear();
    let (report, summary) = scanned?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
        writeln!(out)?;
    } else {
        report.write_summary(&mut out)?;
    }
    // A damaged file is not a rejected line: what follows the damage is lost, so the scan did
    // not see the whole input (exit 4, as for rejects under --strict).
    let mut damaged = false;
    for (f, d) in summary.damaged() {
        eprintln!("claimline: {}", d.describe(&f.path));
        damaged = true;
    }
    if damaged {
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}
