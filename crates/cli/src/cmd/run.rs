//! `claimline run`: credentials to tables, incrementally. Fetch a BCDA export into a kept export
//! folder, load it, then commit its `transactionTime` as the next `_since`.
//!
//! The incremental state lives in `DIR/claimline-state.json` (owner-only), one entry per scope:
//! base URL, client (a hash of the client id, never the id or the secret), API version, endpoint,
//! types and type filter. A scope's `since` advances only when the download *and* the load
//! succeeded with no rejected lines and no row errors (or `--accept-rejects`). A run that fails or
//! is killed leaves its scope `pending` with its run id and `_since`, so the same command resumes
//! it: the fetcher re-attaches to the saved job and downloads only what is missing, and an export
//! already loaded (its run id is in `_claimline_runs`) is not loaded twice.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use claimline_run::{RunLog, RunSettings};

use crate::args::{Api, EndpointArg, Env};
use crate::failure::UsageError;
use crate::progress::{CliProgress, Reporter};
use claimline_run::config::{LocalData, RunFlags};

/// What `--local-sandbox` serves.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LocalArg {
    /// A seeded synthetic seven-year export with CMS's real sample records.
    Demo,
    /// CMS's real sample records alone.
    Real,
}

/// Arguments of `claimline run`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    output: crate::args::OutputArgs,
    /// BCDA production or BCDA's public sandbox.
    #[arg(long, value_enum, conflicts_with_all = ["base_url", "local_sandbox"])]
    env: Option<Env>,
    /// Another BCDA-compatible base URL (HTTPS; plain HTTP only to a loopback sandbox).
    #[arg(long, conflicts_with = "local_sandbox")]
    base_url: Option<String>,
    /// Start the embedded BCDA sandbox and run against it (no credentials needed): `demo` (the
    /// default) serves a seeded synthetic export with CMS's sample records, `real` only the
    /// samples (`sample-data/real/`).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "demo", require_equals = true)]
    local_sandbox: Option<LocalArg>,
    /// A profile of the config file (one per ACO).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// The config file (default: `$CLAIMLINE_CONFIG`, else `./claimline.toml`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// BCDA API version (default v2).
    #[arg(long, value_enum)]
    api: Option<Api>,
    /// What to export (default group/all).
    #[arg(long, value_enum)]
    endpoint: Option<EndpointArg>,
    /// Resource types (`_type`), comma-separated; BCDA's defaults when omitted.
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// `auto` (default): the last committed transactionTime of this scope, or everything on the
    /// first run; `full`: everything (a full export, which `claimline reload` can rebuild from);
    /// or an RFC 3339 instant with an offset.
    #[arg(long, value_name = "TIME|auto|full")]
    since: Option<String>,
    /// `_typeFilter` (v3 only).
    #[arg(long, value_name = "F")]
    type_filter: Option<String>,
    /// The output folder: tables, kept exports, run state.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A file of `BCDA_CLIENT_ID=…` and `BCDA_CLIENT_SECRET=…` lines, readable by its owner only
    /// (default: those environment variables).
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Extra PEM root certificates to trust, besides Mozilla's.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// First wait between job polls, in seconds (default 5; 0.02 with --local-sandbox).
    #[arg(long, value_name = "SECONDS")]
    poll_interval: Option<f64>,
    /// First wait before retrying a failed request, in seconds (default 2).
    #[arg(long, value_name = "SECONDS")]
    retry_wait: Option<f64>,
    /// Give up waiting for a job after this many hours.
    #[arg(long, default_value_t = 6.0, value_name = "HOURS")]
    max_wait: f64,
    /// Downloads at a time.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Views (default: the built-in set).
    #[arg(long, num_args = 1..)]
    views: Vec<String>,
    /// Commit transactionTime even if the load had rejected lines or row errors.
    #[arg(long)]
    accept_rejects: bool,
    /// Keep only the newest N exports under DIR/exports (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    keep: Option<u64>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
    /// Append what the run does to this file (owner-only), one timestamped line per step.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The form of `--log`: `text` (a timestamped line per step) or `json` (JSON lines with
    /// run id, phase, counts and durations, for a log shipper).
    #[arg(long, value_name = "text|json", default_value = "text")]
    log_format: String,
    /// Write the outcome (exit code, last success time, rows per table, rejects, durations) to
    /// FILE in Prometheus' text format, for node_exporter's textfile collector. Written on
    /// failure too.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Do not write the run's HTML report (`DIR/reports/<run_id>.html`).
    #[arg(long)]
    no_report: bool,
}

/// Everything a run needs, from the flags and the profile.
struct Settings {
    run: RunSettings,
    json: bool,
    log: Option<PathBuf>,
    log_json: bool,
    metrics: Option<PathBuf>,
    report: bool,
}

impl Settings {
    fn resolve(args: Args) -> Result<Settings, UsageError> {
        let flags = RunFlags {
            profile: args.profile,
            config: args.config,
            local_sandbox: args.local_sandbox.map(|l| match l {
                LocalArg::Demo => LocalData::Demo,
                LocalArg::Real => LocalData::Real,
            }),
            env: args.env.map(|e| {
                match e {
                    Env::Prod => "prod",
                    Env::Sandbox => "sandbox",
                }
                .to_owned()
            }),
            base_url: args.base_url,
            api: args.api.map(Into::into),
            endpoint: args.endpoint.map(Into::into),
            types: args.types,
            since: match &args.since {
                Some(text) => Some(text.parse().map_err(|e| UsageError(format!("--{e}")))?),
                None => None,
            },
            type_filter: args.type_filter,
            out: args.out,
            credentials: args.credentials,
            ca_file: args.ca_file,
            poll_interval: args.poll_interval,
            retry_wait: args.retry_wait,
            max_wait_hours: Some(args.max_wait),
            parallel: Some(args.parallel),
            views: args.views,
            accept_rejects: args.accept_rejects,
            keep: args.keep.map(|n| n as usize),
            format: args.output.format,
            postgres_url: args.output.postgres,
            postgres_schema: args.output.postgres_schema,
        };
        let (_, profile) = flags.profile().map_err(UsageError)?;
        let log = args.log.or(profile.log.clone());
        let run = flags.resolve(profile).map_err(UsageError)?;
        Ok(Settings {
            run,
            json: args.json,
            log,
            log_json: match args.log_format.as_str() {
                "text" => false,
                "json" => true,
                other => {
                    return Err(UsageError(format!(
                        "--log-format {other:?}: expected text or json"
                    )));
                }
            },
            metrics: args.metrics,
            report: !args.no_report,
        })
    }
}

/// Runs `claimline run`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = match Settings::resolve(args) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("claimline: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut log = RunLog::open_as(settings.log.as_deref(), settings.log_json)?;
    // Under a scheduler (stderr not a terminal) a failure is one line; progress goes to the
    // terminal or to --log.
    let reporter = Reporter::new(settings.json || !std::io::stderr().is_terminal());
    let outcome = claimline_run::run(
        &settings.run,
        &mut log,
        &reporter,
        &CliProgress::new("load", settings.json),
    );
    reporter.finish();
    let code = match &outcome {
        Ok(o) if o.report.not_committed.is_none() => 0,
        Ok(o) if o.no_transaction_time => 7,
        Ok(_) => 4,
        Err(e) => claimline_run::failure::exit_code(e),
    };
    if let Some(path) = &settings.metrics {
        let report = outcome.as_ref().ok().map(|o| &o.report);
        claimline_run::metrics::write(
            path,
            &claimline_run::metrics::Metrics::of_run(code, report),
        )?;
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            let err = anyhow::Error::new(err);
            let code = crate::failure::exit_code(&err);
            log.event(
                "error",
                &format!("failed (exit {code}): {}", crate::failure::message(&err)),
                [("exit_code".to_owned(), serde_json::Value::from(code))]
                    .into_iter()
                    .collect(),
            );
            return Err(err);
        }
    };
    let r = outcome.report;
    let loaded = r.load.as_ref().is_some_and(|l| l.committed);
    let page = (settings.report && loaded)
        .then(|| crate::cmd::report::after_load(&r.out, &r.run_id, &r))
        .flatten();
    crate::args::print(settings.json, &r, |out| {
        r.write_summary(out)?;
        crate::cmd::report::print_page(out, page.as_deref())
    })?;
    // A run that ends without committing its `_since` is a failure: one line on stderr, as
    // every failure has, for the scheduler's log (its JSON says it too).
    if let Some(why) = r.not_committed.as_deref().filter(|_| code != 0) {
        eprintln!("claimline: _since not committed: {why}");
    }
    Ok(ExitCode::from(code))
}
