//! `claimline fetch`: a BCDA bulk export into an export folder, resumable after any crash.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use claimline_fetch::{ExportOptions, ExportRequest, Timestamp, export};

use crate::args::{Api, Connection, EndpointArg};
use crate::progress::Reporter;

/// Arguments of `claimline fetch`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connection: Connection,
    /// BCDA API version.
    #[arg(long, value_enum)]
    api: Api,
    /// What to export.
    #[arg(long, value_enum)]
    endpoint: EndpointArg,
    /// Resource types (`_type`), comma-separated; BCDA's defaults when omitted.
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Only resources updated after this instant (RFC 3339 with an offset, e.g.
    /// `2025-01-01T00:00:00Z`). `auto` (the last committed transactionTime) is `claimline run`'s.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// `_typeFilter` (v3 only), e.g. `ExplanationOfBenefit?service-date=gt2025-01-01`.
    #[arg(long, value_name = "F")]
    type_filter: Option<String>,
    /// The export folder (created owner-only).
    #[arg(long, value_name = "EXPORT")]
    out: PathBuf,
    /// Downloads at a time.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Forget the job saved in EXPORT (and its files) and start a new export.
    #[arg(long)]
    new_job: bool,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// Runs `claimline fetch`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let since = match args.since.as_deref() {
        None => None,
        Some("auto") => {
            eprintln!(
                "claimline: --since auto needs the run records of `claimline run`; give an instant"
            );
            return Ok(ExitCode::from(2));
        }
        Some(text) => match text.parse::<Timestamp>() {
            Ok(ts) => Some(ts),
            Err(_) => {
                eprintln!(
                    "claimline: --since {text:?} is not an RFC 3339 instant with an offset \
                     (e.g. 2025-01-01T00:00:00Z)"
                );
                return Ok(ExitCode::from(2));
            }
        },
    };
    let request = ExportRequest {
        api: args.api.into(),
        endpoint: args.endpoint.into(),
        types: args
            .types
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        since,
        type_filter: args.type_filter.clone(),
    };
    let client = args.connection.client()?;
    let options = ExportOptions {
        parallel: args.parallel.max(1),
        new_job: args.new_job,
    };
    let started = Instant::now();
    let reporter = Reporter::new(args.json);
    let result = export(&client, &request, &args.out, &options, &reporter);
    reporter.finish();
    let summary = result?;
    let seconds = started.elapsed().as_secs_f64();
    let resources = summary.resources();
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = summary.report(seconds);
        serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
        writeln!(out)?;
    } else {
        let total: u64 = summary.files.iter().map(|f| f.size).sum();
        writeln!(
            out,
            "{} files ({} downloaded now), {} as served, in {seconds:.1} s",
            summary.files.len(),
            summary.downloaded,
            claimline_model::human_bytes(total)
        )?;
        for (resource_type, count) in &resources {
            writeln!(out, "  {resource_type:<22} {count:>10}")?;
        }
        if let Some(tt) = &summary.transaction_time {
            writeln!(out, "transactionTime {tt}")?;
        }
        writeln!(out, "into {}", args.out.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
