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

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use claimline_fetch::{
    ApiVersion, Client, ClientConfig, Credentials, Endpoint, ExportOptions, ExportRequest,
    ExportState, FetchError, FileRecord, NoProgress, PROD_URL, SANDBOX_URL, Timestamp, Timing,
    export,
};
use claimline_sink::{RunRecord, create_private_dir};

use super::bcda::{Api, Env, Reporter};
use super::fetch::EndpointArg;
use super::load::{Format, LoadRequest, Report, execute};
use crate::config::{ConfigFile, Profile, locate};
use crate::views::{self, UsageError};

pub use crate::state::{EXPORTS_DIR, STATE_FILE};
use crate::state::{IssueCount, Pending, RunEntry, RunState, Scope, fnv1a64, prune};

/// Arguments of `claimline run`.
#[derive(clap::Args)]
pub struct Args {
    /// BCDA production or BCDA's public sandbox.
    #[arg(long, value_enum, conflicts_with_all = ["base_url", "local_sandbox"])]
    env: Option<Env>,
    /// Another BCDA-compatible base URL (HTTPS; plain HTTP only to a loopback sandbox).
    #[arg(long, conflicts_with = "local_sandbox")]
    base_url: Option<String>,
    /// Start the embedded BCDA sandbox on the bundled `sample-data/` and run against it (no
    /// credentials needed).
    #[arg(long)]
    local_sandbox: bool,
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
}

/// Where the export comes from.
enum Source {
    /// The embedded sandbox on this folder of samples.
    Local(PathBuf),
    /// A BCDA base URL.
    Url(String),
}

/// `--since`.
enum Since {
    Auto,
    At(Timestamp),
    /// Everything: a full export (no `_since`), e.g. to start a new chain of kept exports.
    Full,
}

/// Everything a run needs, from the flags and the profile.
struct Settings {
    profile: Option<String>,
    source: Source,
    api: ApiVersion,
    endpoint: Endpoint,
    types: Vec<String>,
    type_filter: Option<String>,
    since: Since,
    out: PathBuf,
    credentials: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timing: Timing,
    parallel: usize,
    views: Vec<String>,
    accept_rejects: bool,
    keep: Option<usize>,
    json: bool,
    log: Option<PathBuf>,
}

fn seconds(value: f64, what: &str) -> Result<Duration, UsageError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| UsageError(format!("{what} must be a positive number of seconds")))
}

fn value_enum<T: clap::ValueEnum>(text: &str, key: &str) -> Result<T, UsageError> {
    T::from_str(text, true)
        .map_err(|_| UsageError(format!("profile: {key} = {text:?} is not valid")))
}

/// The bundled samples for `api`: `sample-data/real/{stu3,r4,v3}` found beside the current
/// folder, beside the binary (or any folder above it), or in the source tree it was built from.
pub fn sample_data(api: ApiVersion) -> Option<PathBuf> {
    let sub = match api {
        ApiVersion::V1 => "stu3",
        ApiVersion::V2 => "r4",
        ApiVersion::V3 => "v3",
    };
    let rel = Path::new("sample-data").join("real").join(sub);
    let mut roots: Vec<PathBuf> = vec![PathBuf::from(".")];
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    roots.into_iter().map(|r| r.join(&rel)).find(|p| p.is_dir())
}

impl Settings {
    fn resolve(args: Args) -> Result<Settings, UsageError> {
        let profile: Profile = match &args.profile {
            Some(name) => {
                let path = locate(args.config.as_deref()).ok_or_else(|| {
                    UsageError(format!(
                        "--profile {name}: no config file (give --config FILE, set \
                         CLAIMLINE_CONFIG, or create ./claimline.toml)"
                    ))
                })?;
                let config = ConfigFile::read(&path).map_err(|e| UsageError(e.to_string()))?;
                config
                    .profile(&path, name)
                    .map_err(|e| UsageError(e.to_string()))?
            }
            None => Profile::default(),
        };
        let api: ApiVersion = match (args.api, &profile.api) {
            (Some(api), _) => api.into(),
            (None, Some(text)) => value_enum::<Api>(text, "api")?.into(),
            (None, None) => ApiVersion::V2,
        };
        let endpoint: Endpoint = match (args.endpoint, &profile.endpoint) {
            (Some(e), _) => e.into(),
            (None, Some(text)) => value_enum::<EndpointArg>(text, "endpoint")?.into(),
            (None, None) => Endpoint::GroupAll,
        };
        let source = if args.local_sandbox {
            let data = sample_data(api).ok_or_else(|| {
                UsageError(
                    "--local-sandbox: sample-data/real not found; run from the claimline \
                     checkout"
                        .to_owned(),
                )
            })?;
            Source::Local(data)
        } else if let Some(url) = args.base_url.clone() {
            Source::Url(url)
        } else if let Some(env) = args.env {
            Source::Url(match env {
                Env::Prod => PROD_URL.to_owned(),
                Env::Sandbox => SANDBOX_URL.to_owned(),
            })
        } else if let Some(url) = &profile.base_url {
            Source::Url(url.clone())
        } else if let Some(env) = &profile.env {
            Source::Url(match value_enum::<Env>(env, "env")? {
                Env::Prod => PROD_URL.to_owned(),
                Env::Sandbox => SANDBOX_URL.to_owned(),
            })
        } else {
            return Err(UsageError(
                "say where to fetch from: --env prod|sandbox, --base-url URL, --local-sandbox, \
                 or --profile NAME"
                    .to_owned(),
            ));
        };
        let out = args
            .out
            .or(profile.out)
            .ok_or_else(|| UsageError("--out DIR is required (or out in the profile)".into()))?;
        let mut types: Vec<String> = if args.types.is_empty() {
            profile.types.unwrap_or_default()
        } else {
            args.types
        };
        types = types
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let since = match args.since.as_deref() {
            None | Some("auto") => Since::Auto,
            Some("full") => Since::Full,
            Some(text) => Since::At(text.parse::<Timestamp>().map_err(|_| {
                UsageError(format!(
                    "--since {text:?} is not `auto`, `full` or an RFC 3339 instant with an offset \
                     (e.g. 2025-01-01T00:00:00Z)"
                ))
            })?),
        };
        let local = matches!(source, Source::Local(_));
        let mut timing = if local {
            Timing::fast()
        } else {
            Timing::default()
        };
        if let Some(p) = args.poll_interval {
            timing.poll_initial = seconds(p, "--poll-interval")?;
            timing.poll_max = timing.poll_max.max(timing.poll_initial);
        }
        if let Some(r) = args.retry_wait {
            timing.retry_initial = seconds(r, "--retry-wait")?;
            timing.retry_max = timing.retry_max.max(timing.retry_initial);
        }
        timing.max_wait = seconds(args.max_wait * 3600.0, "--max-wait")?;
        let keep = match (args.keep, profile.keep) {
            (Some(n), _) => Some(n as usize),
            (None, Some(0)) => return Err(UsageError("profile: keep must be at least 1".into())),
            (None, n) => n,
        };
        Ok(Settings {
            profile: args.profile,
            source,
            api,
            endpoint,
            types,
            type_filter: args.type_filter.or(profile.type_filter),
            since,
            out,
            credentials: args.credentials.or(profile.credentials),
            ca_file: args.ca_file.or(profile.ca_file),
            timing,
            parallel: args.parallel.max(1),
            views: if args.views.is_empty() {
                profile.views.unwrap_or_default()
            } else {
                args.views
            },
            // The bundled CMS samples carry placeholders (`IGNORED_FIELD`) that are row errors by
            // design; the demo accepts them.
            accept_rejects: args.accept_rejects || profile.accept_rejects == Some(true) || local,
            keep,
            json: args.json,
            log: args.log.or(profile.log),
        })
    }
}

/// The run records in `DIR/claimline.sqlite` (`None` when there is no database).
fn sqlite_runs(out: &Path) -> anyhow::Result<Option<Vec<RunRecord>>> {
    let db = out.join("claimline.sqlite");
    if !db.is_file() {
        return Ok(None);
    }
    let conn = claimline_sink::open_earlier(&db)?;
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = '_claimline_runs'",
        [],
        |r| r.get(0),
    )?;
    let mut runs = Vec::new();
    if exists > 0 {
        let mut stmt = conn.prepare("SELECT record FROM _claimline_runs")?;
        let texts = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for text in texts {
            runs.push(
                serde_json::from_str(&text).map_err(|e| claimline_sink::Error::Corrupt {
                    path: db.clone(),
                    message: format!("a record of table _claimline_runs is not a run record ({e})"),
                })?,
            );
        }
    }
    Ok(Some(runs))
}

/// The run records in `DIR/parquet/_claimline_runs.json` (`None` when there is none).
fn parquet_runs(out: &Path) -> anyhow::Result<Option<Vec<RunRecord>>> {
    let root = out.join("parquet");
    if !root.join("_claimline_runs.json").is_file() {
        return Ok(None);
    }
    Ok(Some(claimline_sink::read_parquet_runs(&root)?))
}

/// The run records of an output folder (`_claimline_runs` in SQLite, else Parquet's JSON), in
/// the order they finished.
pub fn read_runs(out: &Path) -> anyhow::Result<Vec<RunRecord>> {
    let mut runs = match sqlite_runs(out)? {
        Some(runs) => runs,
        None => parquet_runs(out)?.unwrap_or_default(),
    };
    runs.sort_by(|a, b| a.finished.cmp(&b.finished));
    Ok(runs)
}

/// The record of `run_id` when both outputs committed it (a run killed between the two commits
/// is loaded again: both sinks replace what the same run id wrote).
fn loaded_record(out: &Path, run_id: &str) -> anyhow::Result<Option<RunRecord>> {
    let find = |runs: Option<Vec<RunRecord>>| {
        runs.unwrap_or_default()
            .into_iter()
            .find(|r| r.run_id == run_id)
    };
    let sqlite = find(sqlite_runs(out)?);
    let parquet = find(parquet_runs(out)?);
    Ok(sqlite.filter(|_| parquet.is_some()))
}

/// `--log FILE`: timestamped lines, appended, owner-only. Never a secret or a resource.
struct RunLog {
    file: Option<std::fs::File>,
}

impl RunLog {
    fn open(path: Option<&Path>) -> anyhow::Result<RunLog> {
        let Some(path) = path else {
            return Ok(RunLog { file: None });
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options
            .open(path)
            .with_context(|| format!("opening the log {}", path.display()))?;
        Ok(RunLog { file: Some(file) })
    }

    fn line(&mut self, text: &str) {
        if let Some(file) = &mut self.file {
            // A log that cannot be written must not fail the run.
            let _ = writeln!(file, "{} {text}", Timestamp::now());
        }
    }
}

/// The downloaded export, from this run or from an earlier attempt's saved state.
struct Fetched {
    job_url: String,
    reattached: bool,
    transaction_time: Option<String>,
    files: Vec<FileRecord>,
    downloaded: usize,
    bytes_downloaded: u64,
}

impl Fetched {
    fn resources(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for f in self.files.iter().filter(|f| !f.error_file) {
            *counts.entry(f.resource_type.clone()).or_insert(0) += f.lines;
        }
        counts
    }
}

/// The resource types named in an OperationOutcome issue's text.
const RESOURCE_TYPES: [&str; 5] = [
    "ExplanationOfBenefit",
    "ClaimResponse",
    "Coverage",
    "Patient",
    "Claim",
];

/// Counts the issues of the export's error files per severity, code and resource type. Only
/// those three are read out of each line: the diagnostics text (which can name an MBI) is never
/// kept or printed.
pub fn summarise_errors(export: &Path, files: &[FileRecord]) -> Vec<IssueCount> {
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for f in files.iter().filter(|f| f.error_file) {
        let path = export.join(&f.name);
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let mut text = Vec::new();
        let read = if f.name.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(file).read_to_end(&mut text)
        } else {
            std::io::BufReader::new(file).read_to_end(&mut text)
        };
        if read.is_err() {
            continue;
        }
        for line in text.split(|&b| b == b'\n') {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            let issues = value
                .get("issue")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default();
            for issue in issues {
                let field = |k: &str| {
                    issue
                        .get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or("unknown")
                        .to_owned()
                };
                let words = [
                    issue.get("diagnostics").and_then(|v| v.as_str()),
                    issue
                        .get("details")
                        .and_then(|d| d.get("text"))
                        .and_then(|v| v.as_str()),
                ];
                let resource_type = RESOURCE_TYPES
                    .iter()
                    .find(|t| words.iter().flatten().any(|w| w.contains(*t)))
                    .map_or("unknown", |t| *t);
                *counts
                    .entry((field("severity"), field("code"), resource_type.to_owned()))
                    .or_insert(0) += 1;
            }
        }
    }
    counts
        .into_iter()
        .map(|((severity, code, resource_type), count)| IssueCount {
            severity,
            code,
            resource_type,
            count,
        })
        .collect()
}

/// Prints a BCDA failure as one line (for a scheduler's log) and gives its exit code.
fn fetch_failed(err: FetchError, log: &mut RunLog) -> anyhow::Result<ExitCode> {
    let line = err.to_string().replace('\n', " ");
    log.line(&format!("fetch failed (exit {}): {line}", err.exit_code()));
    Err(anyhow::Error::new(err).context(FetchLogged))
}

/// Marks an error `fetch_failed` has already written to the run log.
#[derive(Debug)]
struct FetchLogged;

impl std::fmt::Display for FetchLogged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fetch failed")
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
    let mut log = RunLog::open(settings.log.as_deref())?;
    match execute_run(&settings, &mut log) {
        Ok(code) => Ok(code),
        Err(err) => {
            if err.downcast_ref::<FetchLogged>().is_none() {
                log.line(&format!(
                    "failed (exit {}): {}",
                    crate::failure::exit_code(&err),
                    crate::failure::message(&err)
                ));
            }
            Err(err)
        }
    }
}

fn execute_run(settings: &Settings, log: &mut RunLog) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // The sandbox lives as long as this run.
    let (sandbox, base_url, scope_base, credentials) = match &settings.source {
        Source::Local(data) => {
            let mut config = claimline_sandbox::SandboxConfig::new(data);
            config.polls_to_complete = 2;
            let sandbox = claimline_sandbox::Sandbox::start(config.clone())
                .with_context(|| format!("starting the local sandbox on {}", data.display()))?;
            let url = sandbox.url().to_owned();
            let credentials = Credentials::new(config.client_id, config.client_secret);
            (Some(sandbox), url, "local-sandbox".to_owned(), credentials)
        }
        Source::Url(url) => {
            let credentials = match &settings.credentials {
                Some(path) => match Credentials::from_file(path) {
                    Ok(c) => c,
                    Err(err) => return fetch_failed(err, log),
                },
                None => match Credentials::from_env() {
                    Some(c) => c,
                    None => {
                        let err = FetchError::MissingCredentials(
                            "set BCDA_CLIENT_ID and BCDA_CLIENT_SECRET, or give --credentials \
                             FILE (or credentials in the profile)"
                                .to_owned(),
                        );
                        return fetch_failed(err, log);
                    }
                },
            };
            let base = url.trim_end_matches('/').to_owned();
            (None, base.clone(), base, credentials)
        }
    };
    let scope = Scope {
        base_url: scope_base,
        client: fnv1a64(&credentials.client_id),
        api: settings.api.as_str().to_owned(),
        endpoint: settings.endpoint.path().to_owned(),
        types: {
            let mut t = settings.types.clone();
            t.sort();
            t
        },
        type_filter: settings.type_filter.clone(),
    };
    let mut config = ClientConfig::new(&base_url);
    config.ca_file = settings.ca_file.clone();
    config.timing = settings.timing.clone();
    let client = match Client::new(config, credentials.clone()) {
        Ok(client) => client,
        Err(err) => return fetch_failed(err, log),
    };

    let out = &settings.out;
    create_private_dir(out).with_context(|| format!("creating {}", out.display()))?;
    create_private_dir(&out.join(EXPORTS_DIR))
        .with_context(|| format!("creating {}", out.join(EXPORTS_DIR).display()))?;
    let Some(_lock) = crate::output::lock(out)? else {
        return Err(crate::output::busy(out));
    };
    crate::output::recover(out)?;
    // The run records decide what is loaded; damaged ones stop the run before it asks BCDA for
    // anything or writes any state.
    read_runs(out)?;
    let mut state = RunState::load(out)?;
    let index = state.scope_index(&scope);
    let (run_id, since, resumed) = match &state.scopes[index].pending {
        Some(p) => (p.run_id.clone(), p.since.clone(), true),
        None => {
            let run_id = crate::output::new_run_id();
            let since = match &settings.since {
                Since::Auto => state.scopes[index].since.clone(),
                Since::At(ts) => Some(ts.to_string()),
                Since::Full => None,
            };
            state.scopes[index].pending = Some(Pending {
                run_id: run_id.clone(),
                since: since.clone(),
                started: Timestamp::now().to_string(),
            });
            state.save(out)?;
            (run_id, since, false)
        }
    };
    log.line(&format!(
        "run {run_id} {} ({} {} {}, since {})",
        if resumed { "resumed" } else { "started" },
        scope.base_url,
        scope.api,
        scope.endpoint,
        since.as_deref().unwrap_or("the beginning")
    ));
    if resumed && !settings.json && std::io::stderr().is_terminal() {
        eprintln!("resuming run {run_id}, which did not finish");
    }

    // Fetch (or find the export an earlier attempt finished).
    let export_rel = format!("{EXPORTS_DIR}/{run_id}");
    let export_dir = out.join(&export_rel);
    let since_ts = match since.as_deref().map(str::parse::<Timestamp>) {
        Some(Ok(ts)) => Some(ts),
        Some(Err(_)) => {
            return Err(anyhow::Error::new(claimline_sink::Error::Corrupt {
                path: out.join(STATE_FILE),
                message: "the saved _since of this scope is not an instant".into(),
            }));
        }
        None => None,
    };
    let request = ExportRequest {
        api: settings.api,
        endpoint: settings.endpoint,
        types: settings.types.clone(),
        since: since_ts,
        type_filter: settings.type_filter.clone(),
    };
    let saved = ExportState::load(&export_dir).ok().flatten();
    // Pre-flight before asking for a new export (a saved job is followed as it is).
    let mut attribution = None;
    let mut attribution_changed = false;
    if saved.is_none() {
        // Network trouble or a 5xx here is left to the export, which retries it.
        let checked = match client.attribution_status(settings.api, settings.endpoint, &NoProgress)
        {
            Err(FetchError::Unavailable { .. }) => Ok(None),
            other => other,
        };
        match checked {
            Ok(Some(at)) => {
                log.line(&format!("attribution last updated {at}"));
                let previous = state
                    .runs
                    .iter()
                    .rev()
                    .find(|r| r.scope == scope)
                    .and_then(|r| r.attribution.clone());
                attribution_changed = previous.as_deref().is_some_and(|p| p != at);
                if attribution_changed {
                    log.line("BCDA's attribution changed since the last run");
                }
                attribution = Some(at);
            }
            Ok(None) => {}
            Err(err) => return fetch_failed(err, log),
        }
    }
    let fetched = match saved.as_ref().filter(|s| s.complete) {
        Some(done) => Fetched {
            job_url: done.job_url.clone(),
            reattached: true,
            transaction_time: done.transaction_time.clone(),
            files: done.files.clone(),
            downloaded: 0,
            bytes_downloaded: 0,
        },
        None => {
            // Under a scheduler (stderr not a terminal) a failure is one line; progress goes to
            // the terminal or to --log.
            let reporter = Reporter::new(settings.json || !std::io::stderr().is_terminal());
            // The local sandbox of an earlier attempt is gone, and its job with it.
            let options = ExportOptions {
                parallel: settings.parallel,
                new_job: sandbox.is_some() && saved.is_some(),
            };
            // A saved job that failed or is gone is replaced by a new one inside `export`.
            let result = export(&client, &request, &export_dir, &options, &reporter);
            reporter.finish();
            match result {
                Ok(summary) => Fetched {
                    job_url: summary.job_url,
                    reattached: summary.reattached,
                    transaction_time: summary.transaction_time,
                    files: summary.files,
                    downloaded: summary.downloaded,
                    bytes_downloaded: summary.bytes_downloaded,
                },
                Err(err) => return fetch_failed(err, log),
            }
        }
    };
    let resources = fetched.resources();
    log.line(&format!(
        "fetched {} files ({} now) from {}: {}",
        fetched.files.len(),
        fetched.downloaded,
        fetched.job_url,
        resources
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let error_files = summarise_errors(&export_dir, &fetched.files);

    // Load.
    let sources = views::sources(&settings.views)?;
    let views_hash = views::hash(&sources);
    let runs = read_runs(out)?;
    let data_files = fetched.files.iter().filter(|f| !f.error_file).count();
    let mut report: Option<Report> = None;
    let (rejects, row_errors, already_loaded) = if let Some(done) = loaded_record(out, &run_id)? {
        log.line("this export was already loaded by an earlier attempt");
        (done.rejects, done.row_errors, true)
    } else if data_files == 0 {
        log.line("nothing new to load");
        (0, 0, false)
    } else {
        if let Some(last) = runs.last()
            && last.views_hash != views_hash
        {
            let line = format!(
                "the tables in {} were built by other views (views hash {}, now {views_hash}); \
                     rebuild them from the kept exports with `claimline reload --out {}` and these \
                     views, then run again",
                out.display(),
                last.views_hash,
                out.display()
            );
            log.line(&line);
            eprintln!("claimline: {line}");
            return Ok(ExitCode::from(2));
        }
        let outcome = execute(&LoadRequest {
            inputs: vec![export_dir.clone()],
            views: settings.views.clone(),
            out: out.clone(),
            format: Format::Both,
            strict: false,
            run_id: Some(run_id.clone()),
            threads: 0,
            include_partial: false,
            accept_damaged: settings.accept_rejects,
        })
        .with_context(|| format!("loading {}", export_dir.display()))?;
        let r = outcome.report;
        if !r.committed {
            // A damaged file (without --accept-rejects): nothing was loaded and the run stays
            // pending, so the next run loads the same export again.
            for d in &r.damaged {
                log.line(&d.message);
                eprintln!("claimline: {}", d.message);
            }
            let line = format!(
                "{} damaged file(s) in {}; nothing was loaded and _since was not committed (--accept-rejects loads what could be read)",
                r.damaged.len(),
                export_dir.display()
            );
            log.line(&line);
            eprintln!("claimline: {line}");
            return Ok(ExitCode::from(4));
        }
        let counts = (r.rejects.count, r.row_errors.count, false);
        log.line(&format!(
            "loaded: {} rows, {} rejects, {} row errors",
            r.tables.values().sum::<u64>(),
            r.rejects.count,
            r.row_errors.count
        ));
        report = Some(r);
        counts
    };

    // Commit.
    let clean = rejects == 0 && row_errors == 0;
    let (committed, reason) = match &fetched.transaction_time {
        None => (
            false,
            Some("the manifest has no transactionTime".to_owned()),
        ),
        Some(_) if clean || settings.accept_rejects => (true, None),
        Some(_) => (
            false,
            Some(format!(
                "{rejects} rejected lines and {row_errors} row errors (see {}/rejects); the next \
                 run asks for the same _since; pass --accept-rejects to accept them",
                out.display()
            )),
        ),
    };
    let scope_state = &mut state.scopes[index];
    scope_state.pending = None;
    if committed {
        scope_state.since = fetched.transaction_time.clone();
        scope_state.since_run = Some(run_id.clone());
    }
    let next_since = scope_state.since.clone();
    state.runs.push(RunEntry {
        run_id: run_id.clone(),
        profile: settings.profile.clone(),
        scope: scope.clone(),
        export: export_rel.clone(),
        since: since.clone(),
        transaction_time: fetched.transaction_time.clone(),
        resources: resources.clone(),
        rejects,
        row_errors,
        committed,
        error_files: error_files.clone(),
        attribution: attribution.clone(),
        pruned: false,
        finished: Timestamp::now().to_string(),
    });
    claimline_fault::point("run.before-state")?;
    let pruned = match settings.keep {
        Some(keep) => prune(&mut state, out, keep, &run_id),
        None => Vec::new(),
    };
    state.save(out)?;
    match &reason {
        None => log.line(&format!(
            "committed transactionTime {} as the next _since",
            next_since.as_deref().unwrap_or("-")
        )),
        Some(why) => log.line(&format!("transactionTime not committed: {why}")),
    }
    drop(sandbox);

    let seconds = started.elapsed().as_secs_f64();
    let mut stdout = std::io::stdout().lock();
    if settings.json {
        let doc = serde_json::json!({
            "run_id": run_id,
            "profile": settings.profile,
            "out": out,
            "export": export_dir,
            "scope": scope,
            "resumed": resumed,
            "since": since,
            "fetch": {
                "job_url": fetched.job_url,
                "reattached": fetched.reattached,
                "files": fetched.files.len(),
                "downloaded": fetched.downloaded,
                "bytes": fetched.files.iter().map(|f| f.size).sum::<u64>(),
                "bytes_downloaded": fetched.bytes_downloaded,
                "resources": resources,
            },
            "load": report,
            "already_loaded": already_loaded,
            "rejects": rejects,
            "row_errors": row_errors,
            "error_files": error_files,
            "attribution": attribution,
            "attribution_changed": attribution_changed,
            "transaction_time": fetched.transaction_time,
            "committed": committed,
            "not_committed": reason,
            "next_since": next_since,
            "pruned": pruned,
            "seconds": seconds,
        });
        serde_json::to_writer_pretty(&mut stdout, &doc)?;
        writeln!(stdout)?;
    } else {
        let profile = settings
            .profile
            .as_deref()
            .map(|p| format!(" (profile {p})"))
            .unwrap_or_default();
        writeln!(
            stdout,
            "fetched{profile} {} {} {} since {}: {} files ({} downloaded now) into {}",
            base_url,
            scope.api,
            scope.endpoint,
            since.as_deref().unwrap_or("the beginning"),
            fetched.files.len(),
            fetched.downloaded,
            export_dir.display()
        )?;
        if let Some(at) = &attribution {
            let changed = if attribution_changed {
                " (changed since the last run)"
            } else {
                ""
            };
            writeln!(stdout, "BCDA attribution last updated {at}{changed}")?;
        }
        match &report {
            Some(r) => r.write_text(&mut stdout)?,
            None if already_loaded => {
                writeln!(stdout, "run {run_id}: already loaded by an earlier attempt")?
            }
            None => writeln!(stdout, "run {run_id}: nothing new to load")?,
        }
        if !error_files.is_empty() {
            writeln!(
                stdout,
                "BCDA error files (kept in {}/errors):",
                export_dir.display()
            )?;
            for i in &error_files {
                writeln!(
                    stdout,
                    "  {:<8} {:<14} {:<22} {:>8}",
                    i.severity, i.code, i.resource_type, i.count
                )?;
            }
        }
        for p in &pruned {
            writeln!(stdout, "removed the export of run {p} (--keep)")?;
        }
        match &reason {
            None => writeln!(
                stdout,
                "next _since: {} (committed)",
                next_since.as_deref().unwrap_or("-")
            )?,
            Some(why) => writeln!(stdout, "transactionTime not committed: {why}")?,
        }
    }
    Ok(match reason {
        None => ExitCode::SUCCESS,
        Some(_) if fetched.transaction_time.is_none() => ExitCode::from(7),
        Some(_) => ExitCode::from(4),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, error_file: bool) -> FileRecord {
        FileRecord {
            name: name.to_owned(),
            resource_type: "OperationOutcome".to_owned(),
            url: String::new(),
            size: 0,
            sha256: String::new(),
            lines: 0,
            error_file,
        }
    }

    #[test]
    fn error_files_are_counted_without_their_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("errors")).expect("mkdir");
        std::fs::write(
            dir.path().join("errors/OperationOutcome.000.ndjson"),
            concat!(
                r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"Error retrieving ExplanationOfBenefit for beneficiary MBI 1S00E00AA00"}]}"#,
                "\n",
                r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"Error retrieving ExplanationOfBenefit for beneficiary MBI 2S00E00AA00"},{"severity":"warning","code":"informational","diagnostics":"x"}]}"#,
                "\n"
            ),
        )
        .expect("write");
        let files = [record("errors/OperationOutcome.000.ndjson", true)];
        let summary = summarise_errors(dir.path(), &files);
        assert_eq!(
            summary,
            [
                IssueCount {
                    severity: "error".into(),
                    code: "exception".into(),
                    resource_type: "ExplanationOfBenefit".into(),
                    count: 2
                },
                IssueCount {
                    severity: "warning".into(),
                    code: "informational".into(),
                    resource_type: "unknown".into(),
                    count: 1
                },
            ]
        );
        let text = serde_json::to_string(&summary).expect("json");
        assert!(!text.contains("1S00E00AA00"));
    }

    #[test]
    fn a_run_counts_as_loaded_only_when_both_outputs_committed_it() {
        use claimline_sink::Sink as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = claimline_sink::SqliteSink::open(&dir.path().join("claimline.sqlite"), &[])
            .expect("sqlite");
        Box::new(sink)
            .commit(&RunRecord::new("r1"))
            .expect("commit");
        assert!(loaded_record(dir.path(), "r1").expect("read").is_none());
        std::fs::create_dir(dir.path().join("parquet")).expect("mkdir");
        std::fs::write(
            dir.path().join("parquet/_claimline_runs.json"),
            serde_json::to_vec(&[RunRecord::new("r1")]).expect("json"),
        )
        .expect("write");
        assert!(loaded_record(dir.path(), "r1").expect("read").is_some());
        assert!(loaded_record(dir.path(), "r2").expect("read").is_none());
        assert_eq!(read_runs(dir.path()).expect("runs").len(), 1);
    }
}
