//! `claimline synth`: a synthetic BCDA export folder, shaped like the real CMS records, of any
//! size.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use claimline_synth::{ApiVersion, ExportConfig};

/// Arguments of `claimline synth`.
#[derive(clap::Args)]
pub struct Args {
    /// Beneficiaries.
    #[arg(long, value_name = "N")]
    benes: u64,
    /// Years of claims history.
    #[arg(long, default_value_t = 7, value_name = "Y")]
    years: u32,
    /// API version: v1 (STU3), v2 (R4) or v3 (R4 from CMS IDR).
    #[arg(long, default_value = "v2", value_parser = ["v1", "v2", "v3"])]
    version: String,
    /// Seed: the same seed and settings give the same bytes.
    #[arg(long, default_value_t = 0, value_name = "S")]
    seed: u64,
    /// Write gzip files (`*.ndjson.gz`), as BCDA stores them.
    #[arg(long)]
    gzip: bool,
    /// The export folder to create (must be empty or absent).
    #[arg(long, value_name = "EXPORT")]
    out: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `claimline synth`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let version = ApiVersion::parse(&args.version).ok_or_else(|| {
        crate::failure::UsageError(format!("--version {}: expected v1, v2 or v3", args.version))
    })?;
    let config = ExportConfig {
        benes: args.benes,
        years: args.years,
        version,
        seed: args.seed,
        gzip: args.gzip,
        ..ExportConfig::new(args.benes)
    };
    let start = Instant::now();
    let summary = match claimline_synth::write_export(&config, &args.out) {
        Ok(summary) => summary,
        // A folder that already holds files is a usage error (exit 2); nothing was written.
        Err(e @ claimline_synth::Error::NotEmpty { .. }) => {
            return Err(crate::failure::UsageError(e.to_string()).into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("writing the export to {}", args.out.display())));
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let ndjson = summary.ndjson_bytes();
    let mb_per_s = ndjson as f64 / 1e6 / seconds.max(1e-9);
    let types = ["ExplanationOfBenefit", "Patient", "Coverage"];
    let resources: u64 = types.iter().map(|t| summary.resources(t)).sum();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "out": args.out,
            "version": version.as_str(),
            "benes": args.benes,
            "years": args.years,
            "seed": args.seed,
            "files": summary.files.len(),
            "resources": types.iter().map(|t| (t.to_string(), serde_json::Value::from(summary.resources(t)))).collect::<serde_json::Map<_, _>>(),
            "ndjson_bytes": ndjson,
            "file_bytes": summary.file_bytes(),
            "seconds": seconds,
            "mb_per_s": mb_per_s,
            "resources_per_s": resources as f64 / seconds.max(1e-9),
        });
        writeln!(stdout, "{report}")?;
    } else {
        writeln!(
            stdout,
            "wrote {} ({} files, {:.2} MB of NDJSON, {:.2} MB on disk) in {seconds:.2} s: {mb_per_s:.0} MB/s",
            args.out.display(),
            summary.files.len(),
            ndjson as f64 / 1e6,
            summary.file_bytes() as f64 / 1e6,
        )?;
        for t in types {
            writeln!(stdout, "  {t:<22} {:>10}", summary.resources(t))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
