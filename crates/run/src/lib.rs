//! The scheduled job as a library: `run` fetches a BCDA export (or resumes the one a failed
//! attempt left), loads it, then commits its `transactionTime` as the next `_since`, keeping the
//! incremental state of each scope in `DIR/claimline-state.json`; `reload` rebuilds the tables
//! from the kept exports. `claimline run` and `claimline reload` are thin layers over [`run()`] and
//! [`reload()`]; a Python binding or another scheduler calls them the same way.
//!
//! - [`RunSettings`]: where from (BCDA, a base URL, the local sandbox), what, since when, into
//!   which folder, with which views and retention.
//! - [`run()`] returns a [`RunOutcome`]: the [`RunReport`] (`claimline run --json` prints it) and
//!   whether the `_since` was committed.
//! - [`state`]: the state file, scopes, and the retention rule (`--keep`) that never removes
//!   what a rebuild needs.
//! - [`RunError`]: the one error type.
//!
//! ```no_run
//! use claimline_run::{RunLog, RunSettings, Source, run};
//!
//! let settings = RunSettings::new(Source::Local("sample-data/real/r4".into()), "claimline-out".into());
//! let mut log = RunLog::open(None)?;
//! let outcome = run(&settings, &mut log, &claimline_fetch::NoProgress, &claimline_load::NoProgress)?;
//! println!("next _since: {:?}", outcome.report.next_since);
//! # Ok::<(), claimline_run::RunError>(())
//! ```

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use claimline_fetch::{
    ApiVersion, Client, ClientConfig, Credentials, Endpoint, ExportOptions, ExportRequest,
    FetchError, FileRecord, NoProgress, Timestamp, Timing, export,
};
use claimline_load::{DamagedFile, LoadError, LoadReport, Loader, Progress, output, views};
use claimline_model::{RunRecord, create_private_dir};

pub mod config;
pub mod failure;
pub mod metrics;
mod reload;
pub mod state;
mod summary;

pub use reload::{ReloadReport, reload, reload_into};
pub use state::{EXPORTS_DIR, STATE_FILE};
use state::{IssueCount, Pending, RunEntry, RunState, Scope, fnv1a64, prune};

/// What can stop a run or a reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The settings do not make a run (a missing output folder, nothing to rebuild from, …).
    #[error("{0}")]
    Usage(String),
    /// The tables were built by other views: `reload` rebuilds them first.
    #[error("{0}")]
    ViewsChanged(String),
    /// A file of the export is damaged: nothing was loaded and the `_since` not committed.
    #[error("{message}")]
    Damaged {
        /// One sentence.
        message: String,
        /// Each damaged file, how far it was read.
        files: Vec<DamagedFile>,
    },
    /// BCDA refused, said to try later, or the fetch failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The load failed (its error says where).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A reload's load of one kept export failed; the tables were left as they were.
    #[error("reloading {}; the tables were left as they were: {source}", export.display())]
    Reload {
        /// The export.
        export: PathBuf,
        /// Why.
        source: Box<LoadError>,
    },
    /// The local sandbox could not start.
    #[error("the local sandbox: {0}")]
    Sandbox(#[from] claimline_sandbox::SandboxError),
    /// A file of the output folder could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl RunError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        RunError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Where the export comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The embedded BCDA sandbox, serving this folder of samples (no credentials).
    Local(PathBuf),
    /// The embedded BCDA sandbox serving the quick start's demo: a seeded synthetic export
    /// ([`DEMO`]: every claim type, versions and cancels) together with CMS's real sample
    /// records in `samples` (no credentials).
    Demo {
        /// The bundled samples of the API version (`sample-data/real/<r4|stu3|v3>`).
        samples: PathBuf,
        /// The API version of the synthetic part.
        version: claimline_model::ApiVersion,
    },
    /// A BCDA base URL.
    Url(String),
}

impl Source {
    /// True for the embedded sandbox (the demo or a folder of samples): no credentials, fast
    /// polling, the samples' placeholder row errors accepted.
    pub fn is_local(&self) -> bool {
        matches!(self, Source::Local(_) | Source::Demo { .. })
    }
}

/// `_since` of the export.
#[derive(Debug, Clone)]
pub enum Since {
    /// The last committed `transactionTime` of the scope, or everything on its first run.
    Auto,
    /// This instant.
    At(Timestamp),
    /// Everything: a full export (no `_since`), e.g. to start a new chain of kept exports.
    Full,
}

impl std::str::FromStr for Since {
    type Err = String;

    /// `auto`, `full`, or an RFC 3339 instant with an offset.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Since::Auto),
            "full" => Ok(Since::Full),
            _ => text.parse().map(Since::At).map_err(|_| {
                format!(
                    "since {text:?} is not `auto`, `full` or an RFC 3339 instant with an offset \
                     (e.g. 2025-01-01T00:00:00Z)"
                )
            }),
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The config profile it came from (recorded with the run).
    pub profile: Option<String>,
    /// Where the export comes from.
    pub source: Source,
    /// The API version.
    pub api: ApiVersion,
    /// Group/all, Group/runout or Patient.
    pub endpoint: Endpoint,
    /// `_type` (empty: BCDA's defaults).
    pub types: Vec<String>,
    /// `_typeFilter`.
    pub type_filter: Option<String>,
    /// `_since`.
    pub since: Since,
    /// The output folder.
    pub out: PathBuf,
    /// A credentials file (else `BCDA_CLIENT_ID` / `BCDA_CLIENT_SECRET`).
    pub credentials: Option<PathBuf>,
    /// Extra CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Polling, retries, waits.
    pub timing: Timing,
    /// Downloads at a time.
    pub parallel: usize,
    /// Views (empty: the built-in `cclf` set).
    pub views: Vec<String>,
    /// Commit `_since` despite rejects, row errors or damaged files.
    pub accept_rejects: bool,
    /// Keep the newest N exports with data (and every one a rebuild needs).
    pub keep: Option<usize>,
    /// The outputs (default SQLite and Parquet).
    pub format: claimline_load::Format,
    /// Where the postgres format writes.
    pub postgres: Option<claimline_sink::PgTarget>,
}

impl RunSettings {
    /// A v2 `Group/all` run of everything into `out`, with the documented defaults.
    pub fn new(source: Source, out: PathBuf) -> Self {
        let local = source.is_local();
        RunSettings {
            profile: None,
            source,
            api: ApiVersion::V2,
            endpoint: Endpoint::GroupAll,
            types: Vec::new(),
            type_filter: None,
            since: Since::Auto,
            out,
            credentials: None,
            ca_file: None,
            timing: if local {
                Timing::fast()
            } else {
                Timing::default()
            },
            parallel: 4,
            views: Vec::new(),
            accept_rejects: local,
            keep: None,
            format: claimline_load::Format::BOTH,
            postgres: None,
        }
    }
}

/// What the fetch did.
#[derive(Debug, serde::Serialize)]
pub struct FetchReport {
    /// The BCDA job.
    pub job_url: String,
    /// An earlier attempt's job was followed.
    pub reattached: bool,
    /// Files in the export.
    pub files: usize,
    /// Files downloaded by this attempt.
    pub downloaded: usize,
    /// Bytes of the export's files, as served.
    pub bytes: u64,
    /// Bytes downloaded by this attempt.
    pub bytes_downloaded: u64,
    /// Resources per type.
    pub resources: BTreeMap<String, u64>,
}

/// What a run did (`claimline run --json` prints it).
#[derive(Debug, serde::Serialize)]
pub struct RunReport {
    /// The run id (also the export folder's name).
    pub run_id: String,
    /// The config profile.
    pub profile: Option<String>,
    /// The output folder.
    pub out: PathBuf,
    /// The export folder.
    pub export: PathBuf,
    /// The base URL asked.
    #[serde(skip)]
    pub base_url: String,
    /// The scope (what makes runs incremental to each other).
    pub scope: Scope,
    /// A run an earlier attempt left pending was resumed.
    pub resumed: bool,
    /// The `_since` asked for.
    pub since: Option<String>,
    /// The fetch.
    pub fetch: FetchReport,
    /// The load (`None`: nothing new, or loaded by an earlier attempt).
    pub load: Option<LoadReport>,
    /// An earlier attempt loaded this export.
    pub already_loaded: bool,
    /// Rejected lines of the load.
    pub rejects: u64,
    /// Row errors of the load.
    pub row_errors: u64,
    /// The manifest's error files, summarised.
    pub error_files: Vec<IssueCount>,
    /// BCDA's last attribution update.
    pub attribution: Option<String>,
    /// It changed since the scope's last run.
    pub attribution_changed: bool,
    /// The export's `transactionTime`.
    pub transaction_time: Option<String>,
    /// It became the next `_since`.
    pub committed: bool,
    /// Why not.
    pub not_committed: Option<String>,
    /// The scope's next `_since`.
    pub next_since: Option<String>,
    /// Exports removed by `--keep`.
    pub pruned: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// What [`run()`] ends with.
#[derive(Debug)]
pub struct RunOutcome {
    /// What happened.
    pub report: RunReport,
    /// The manifest had no `transactionTime` (so nothing could be committed).
    pub no_transaction_time: bool,
}

/// The run records in `DIR/claimline.sqlite` (`None` when there is no database).
fn sqlite_runs(out: &Path) -> Result<Option<Vec<RunRecord>>, RunError> {
    let db = out.join("claimline.sqlite");
    if !claimline_sink::database_present(&db).map_err(LoadError::Sink)? {
        return Ok(None);
    }
    let conn = claimline_sink::open_earlier(&db).map_err(LoadError::Sink)?;
    Ok(Some(
        claimline_sink::read_sqlite_runs(&conn, &db).map_err(LoadError::Sink)?,
    ))
}

/// The run records in `DIR/parquet/_claimline_runs.json` (`None` when there is none).
fn parquet_runs(out: &Path) -> Result<Option<Vec<RunRecord>>, RunError> {
    let root = out.join("parquet");
    if !root.join("_claimline_runs.json").is_file() {
        return Ok(None);
    }
    Ok(Some(
        claimline_sink::read_parquet_runs(&root).map_err(LoadError::Sink)?,
    ))
}

/// The run records of an output folder (`_claimline_runs` in SQLite, else Parquet's JSON), in
/// the order they finished.
pub fn read_runs(out: &Path) -> Result<Vec<RunRecord>, RunError> {
    read_output_runs(out, None)
}

/// [`read_runs`], or, when the output has no files with runs and a PostgreSQL schema is one
/// of its outputs, that schema's.
fn read_output_runs(
    out: &Path,
    postgres: Option<&claimline_sink::PgTarget>,
) -> Result<Vec<RunRecord>, RunError> {
    let mut runs = match (sqlite_runs(out)?, postgres) {
        (Some(runs), _) => runs,
        (None, pg) => match (parquet_runs(out)?, pg) {
            (Some(runs), _) => runs,
            (None, Some(target)) => postgres_runs(target)?,
            (None, None) => Vec::new(),
        },
    };
    runs.sort_by(|a, b| a.finished.cmp(&b.finished));
    Ok(runs)
}

fn postgres_runs(target: &claimline_sink::PgTarget) -> Result<Vec<RunRecord>, RunError> {
    Ok(claimline_sink::read_postgres_runs(target).map_err(LoadError::Sink)?)
}

/// The record of `run_id` when every output of `format` committed it (a run killed between
/// two commits is loaded again: every sink replaces what the same run id wrote).
fn loaded_record(
    out: &Path,
    run_id: &str,
    format: claimline_load::Format,
    postgres: Option<&claimline_sink::PgTarget>,
) -> Result<Option<RunRecord>, RunError> {
    let find = |runs: Option<Vec<RunRecord>>| {
        runs.unwrap_or_default()
            .into_iter()
            .find(|r| r.run_id == run_id)
    };
    let mut found = Vec::new();
    if format.sqlite {
        found.push(find(sqlite_runs(out)?));
    }
    if format.parquet {
        found.push(find(parquet_runs(out)?));
    }
    if let Some(target) = postgres.filter(|_| format.postgres) {
        found.push(find(Some(postgres_runs(target)?)));
    }
    if found.iter().any(Option::is_none) {
        return Ok(None);
    }
    Ok(found.into_iter().flatten().next())
}

/// `--log FILE`: one entry per step, appended, owner-only; never a secret or a record. Text
/// (`<time> <message>`) or JSON lines (`{"time", "run_id", "phase", "message", …counts and
/// durations}`) for a log shipper.
pub struct RunLog {
    file: Option<std::fs::File>,
    json: bool,
    run_id: Option<String>,
}

impl RunLog {
    /// Opens (appending, owner-only) the log at `path`; `None`: no log. `json`: JSON lines.
    ///
    /// # Errors
    /// [`RunError::Io`] when the file cannot be opened.
    pub fn open(path: Option<&Path>) -> Result<RunLog, RunError> {
        Self::open_as(path, false)
    }

    /// As [`RunLog::open`], in JSON lines when `json`.
    ///
    /// # Errors
    /// [`RunError::Io`] when the file cannot be opened.
    pub fn open_as(path: Option<&Path>, json: bool) -> Result<RunLog, RunError> {
        let file = match path {
            Some(path) => {
                Some(claimline_model::append_private(path).map_err(|e| RunError::io(path, e))?)
            }
            None => None,
        };
        Ok(RunLog {
            file,
            json,
            run_id: None,
        })
    }

    /// The run the next entries are about.
    pub fn set_run(&mut self, run_id: &str) {
        self.run_id = Some(run_id.to_owned());
    }

    /// Appends one entry of `phase` (never a secret or a record).
    pub fn line(&mut self, text: &str) {
        self.event("run", text, serde_json::Map::new());
    }

    /// Appends one entry of `phase` with structured `fields` (counts, durations; never values
    /// of a record), which the text form leaves out.
    pub fn event(
        &mut self,
        phase: &str,
        text: &str,
        fields: serde_json::Map<String, serde_json::Value>,
    ) {
        let Some(file) = &mut self.file else { return };
        // A log that cannot be written must not fail the run.
        if self.json {
            let mut entry = serde_json::Map::new();
            entry.insert("time".into(), Timestamp::now().to_string().into());
            entry.insert(
                "run_id".into(),
                self.run_id
                    .clone()
                    .map_or(serde_json::Value::Null, Into::into),
            );
            entry.insert("phase".into(), phase.into());
            entry.insert("message".into(), text.into());
            entry.extend(fields);
            let _ = writeln!(file, "{}", serde_json::Value::Object(entry));
        } else {
            let _ = writeln!(file, "{} {text}", Timestamp::now());
        }
    }
}

/// JSON fields for [`RunLog::event`].
fn fields(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
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
        claimline_model::resources_per_type(&self.files)
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

/// Writes a BCDA failure to the run log (one line, as a scheduler's log wants it).
fn fetch_failed(err: FetchError, log: &mut RunLog) -> RunError {
    let line = err.to_string().replace('\n', " ");
    log.event(
        "fetch",
        &format!("fetch failed: {line}"),
        fields(&[("error", serde_json::Value::from(true))]),
    );
    RunError::Fetch(err)
}

/// The path a kept export is loaded from, canonical (absolute, `..` and links resolved): the
/// rows' `_source_file` names it, and a `reload` of the same folder, spelled another way
/// (`--out out`, `--out /srv/claims/out`, through a link), gives the same rows.
pub(crate) fn input_path(export: &Path) -> PathBuf {
    std::fs::canonicalize(export)
        .or_else(|_| std::path::absolute(export))
        .unwrap_or_else(|_| export.to_owned())
}

/// Runs one scheduled job: fetch (or resume) an export into `DIR/exports/<run_id>/`, load it,
/// then commit its `transactionTime` as the scope's next `_since`. `fetch_progress` hears the
/// fetcher, `load_progress` the load (and the notes of the run: a resumed run, a recovery).
///
/// # Errors
/// [`RunError`]: BCDA's refusals and "try later" ([`RunError::Fetch`]), views other than those
/// that built the tables ([`RunError::ViewsChanged`]), a damaged file in the export
/// ([`RunError::Damaged`]), and the load's errors.
pub fn run(
    settings: &RunSettings,
    log: &mut RunLog,
    fetch_progress: &dyn claimline_fetch::Progress,
    load_progress: &dyn Progress,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    // The sandbox lives as long as this run.
    let (sandbox, base_url, scope_base, credentials) = match &settings.source {
        Source::Local(_) | Source::Demo { .. } => {
            let data = match &settings.source {
                Source::Demo { samples, version } => demo_data(&settings.out, samples, *version)?,
                Source::Local(data) => data.clone(),
                Source::Url(_) => unreachable!("a local source"),
            };
            let mut config = claimline_sandbox::SandboxConfig::new(&data);
            config.polls_to_complete = 2;
            let sandbox = claimline_sandbox::Sandbox::start(config.clone())?;
            let url = sandbox.url().to_owned();
            let credentials = Credentials::new(config.client_id, config.client_secret);
            (Some(sandbox), url, "local-sandbox".to_owned(), credentials)
        }
        Source::Url(url) => {
            let credentials = match &settings.credentials {
                Some(path) => match Credentials::from_file(path) {
                    Ok(c) => c,
                    Err(err) => return Err(fetch_failed(err, log)),
                },
                None => match Credentials::from_env() {
                    Some(c) => c,
                    None => {
                        let err = FetchError::MissingCredentials(
                            "set BCDA_CLIENT_ID and BCDA_CLIENT_SECRET, or give --credentials \
                             FILE (or credentials in the profile)"
                                .to_owned(),
                        );
                        return Err(fetch_failed(err, log));
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
        Err(err) => return Err(fetch_failed(err, log)),
    };

    let out = &settings.out;
    let lock = output::lock_or_busy(out)?;
    let exports = out.join(EXPORTS_DIR);
    create_private_dir(&exports).map_err(|e| RunError::io(&exports, e))?;
    for note in output::recover(out)? {
        load_progress.note(&note);
    }
    // The run records decide what is loaded; damaged ones stop the run before it asks BCDA for
    // anything or writes any state. So do views other than those that built the tables: they
    // are checked before an export is asked for, not after its download.
    let earlier_runs = read_output_runs(out, settings.postgres.as_ref())?;
    let views_hash = views::hash(&views::sources(&settings.views)?);
    if let Some(last) = earlier_runs.last()
        && !last.views_hash.is_empty()
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
        return Err(RunError::ViewsChanged(line));
    }
    let mut state = RunState::load(out)?;
    let index = state.scope_index(&scope);
    let (run_id, since, resumed) = match &state.scopes[index].pending {
        Some(p) => (p.run_id.clone(), p.since.clone(), true),
        None => {
            let run_id = output::new_run_id();
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
    log.set_run(&run_id);
    log.line(&format!(
        "run {run_id} {} ({} {} {}, since {})",
        if resumed { "resumed" } else { "started" },
        scope.base_url,
        scope.api,
        scope.endpoint,
        since.as_deref().unwrap_or("the beginning")
    ));
    if resumed {
        load_progress.note(&format!("resuming run {run_id}, which did not finish"));
    }

    // Fetch (or find the export an earlier attempt finished).
    let fetch_started = Instant::now();
    let export_rel = format!("{EXPORTS_DIR}/{run_id}");
    let export_dir = out.join(&export_rel);
    let since_ts = match since.as_deref().map(str::parse::<Timestamp>) {
        Some(Ok(ts)) => Some(ts),
        Some(Err(_)) => {
            return Err(RunError::Load(LoadError::Sink(
                claimline_sink::Error::Corrupt {
                    path: out.join(STATE_FILE),
                    message: "the saved _since of this scope is not an instant".into(),
                },
            )));
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
    let saved = claimline_fetch::load_state(&export_dir).ok().flatten();
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
            Err(err) => return Err(fetch_failed(err, log)),
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
            // The local sandbox of an earlier attempt is gone, and its job with it.
            let options = ExportOptions {
                parallel: settings.parallel,
                new_job: sandbox.is_some() && saved.is_some(),
            };
            // A saved job that failed or is gone is replaced by a new one inside `export`.
            let result = export(&client, &request, &export_dir, &options, fetch_progress);
            match result {
                Ok(summary) => Fetched {
                    job_url: summary.job_url,
                    reattached: summary.reattached,
                    transaction_time: summary.transaction_time,
                    files: summary.files,
                    downloaded: summary.downloaded,
                    bytes_downloaded: summary.bytes_downloaded,
                },
                Err(err) => return Err(fetch_failed(err, log)),
            }
        }
    };
    let resources = fetched.resources();
    log.event(
        "fetch",
        &format!(
            "fetched {} files ({} now) from {}: {}",
            fetched.files.len(),
            fetched.downloaded,
            fetched.job_url,
            resources
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        fields(&[
            ("files", fetched.files.len().into()),
            ("downloaded", fetched.downloaded.into()),
            ("bytes_downloaded", fetched.bytes_downloaded.into()),
            ("resources", serde_json::json!(resources)),
            ("seconds", fetch_started.elapsed().as_secs_f64().into()),
        ]),
    );
    let error_files = summarise_errors(&export_dir, &fetched.files);

    // Load (the views were checked against the tables' runs above, under the same lock).
    let data_files = fetched.files.iter().filter(|f| !f.error_file).count();
    let mut report: Option<LoadReport> = None;
    // The transactionTime of what the tables hold of this run: the fetched export's, unless an
    // earlier attempt loaded the run from another export (its folder removed or damaged by hand
    // since, so this attempt fetched anew): then the one it loaded, which is what `_since` may
    // move to (the newer export's changes after it are not in the tables).
    let mut loaded_time = fetched.transaction_time.clone();
    let (rejects, row_errors, already_loaded) = if let Some(done) =
        loaded_record(out, &run_id, settings.format, settings.postgres.as_ref())?
    {
        log.line("this export was already loaded by an earlier attempt");
        if done.transaction_time != fetched.transaction_time {
            log.line(&format!(
                "the export in {} is not the one run {run_id} loaded (transactionTime {} against \
                 {}): _since moves to what the tables hold only",
                export_dir.display(),
                done.transaction_time.as_deref().unwrap_or("-"),
                fetched.transaction_time.as_deref().unwrap_or("-"),
            ));
            loaded_time = done.transaction_time.clone();
        }
        (done.rejects, done.row_errors, true)
    } else if data_files == 0 {
        log.line("nothing new to load");
        (0, 0, false)
    } else {
        let r = Loader::new(out)
            .views(settings.views.clone())
            .format(settings.format)
            .postgres(settings.postgres.clone())
            .run_id(Some(run_id.clone()))
            .accept_damaged(settings.accept_rejects)
            .load_holding_lock(
                std::slice::from_ref(&crate::input_path(&export_dir)),
                load_progress,
                &lock,
            )?;
        if !r.committed {
            // A damaged file (without --accept-rejects): nothing was loaded and the run stays
            // pending, so the next run loads the same export again.
            for d in &r.damaged {
                log.line(&d.message);
            }
            let line = format!(
                "{} damaged file(s) in {}; nothing was loaded and _since was not committed (--accept-rejects loads what could be read)",
                r.damaged.len(),
                export_dir.display()
            );
            log.line(&line);
            return Err(RunError::Damaged {
                message: line,
                files: r.damaged,
            });
        }
        let counts = (r.rejects.count, r.row_errors.count, false);
        log.event(
            "load",
            &format!(
                "loaded: {} rows, {} rejects, {} row errors",
                r.tables.values().sum::<u64>(),
                r.rejects.count,
                r.row_errors.count
            ),
            fields(&[
                ("tables", serde_json::json!(r.tables)),
                ("rejects", r.rejects.count.into()),
                ("row_errors", r.row_errors.count.into()),
                ("ndjson_bytes", r.ndjson_bytes.into()),
                ("seconds", r.seconds.into()),
            ]),
        );
        report = Some(r);
        counts
    };

    // Commit.
    let clean = rejects == 0 && row_errors == 0;
    let (committed, reason) = match &loaded_time {
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
        scope_state.since = loaded_time.clone();
        scope_state.since_run = Some(run_id.clone());
    }
    let next_since = scope_state.since.clone();
    state.runs.push(RunEntry {
        run_id: run_id.clone(),
        profile: settings.profile.clone(),
        scope: scope.clone(),
        export: export_rel.clone(),
        since: since.clone(),
        transaction_time: loaded_time.clone(),
        resources: resources.clone(),
        rejects,
        row_errors,
        committed,
        error_files: error_files.clone(),
        attribution: attribution.clone(),
        pruned: false,
        finished: Timestamp::now().to_string(),
    });
    claimline_fault::point("run.before-state").map_err(|e| RunError::io(out, e))?;
    let pruned = match settings.keep {
        Some(keep) => prune(&mut state, out, keep, &run_id),
        None => Vec::new(),
    };
    state.save(out)?;
    match &reason {
        None => log.event(
            "commit",
            &format!(
                "committed transactionTime {} as the next _since",
                next_since.as_deref().unwrap_or("-")
            ),
            fields(&[("committed", true.into())]),
        ),
        Some(why) => log.event(
            "commit",
            &format!("transactionTime not committed: {why}"),
            fields(&[("committed", false.into())]),
        ),
    }
    drop(sandbox);

    let seconds = started.elapsed().as_secs_f64();
    Ok(RunOutcome {
        no_transaction_time: fetched.transaction_time.is_none(),
        report: RunReport {
            run_id,
            profile: settings.profile.clone(),
            out: out.clone(),
            export: export_dir,
            base_url,
            scope,
            resumed,
            since,
            fetch: FetchReport {
                job_url: fetched.job_url.clone(),
                reattached: fetched.reattached,
                files: fetched.files.len(),
                downloaded: fetched.downloaded,
                bytes: fetched.files.iter().map(|f| f.size).sum::<u64>(),
                bytes_downloaded: fetched.bytes_downloaded,
                resources,
            },
            load: report,
            already_loaded,
            rejects,
            row_errors,
            error_files,
            attribution,
            attribution_changed,
            transaction_time: fetched.transaction_time,
            committed,
            not_committed: reason,
            next_since,
            pruned,
            seconds,
        },
    })
}

/// The quick start's synthetic part: beneficiaries, years of history, claims per year relative
/// to Medicare's, seed. About 25 MB of NDJSON (800 EOBs) with every claim type, versions and
/// cancels, generated in milliseconds.
pub const DEMO: (u64, u32, f64, u64) = (200, 7, 0.01, 2026);

/// The folder the demo sandbox serves, `out/.claimline-demo/<version>/`: `synthetic/` (the
/// seeded export of [`DEMO`], written once) and `cms-samples/` (a copy of CMS's real sample
/// records, labelled by the folder's name).
///
/// # Errors
/// [`RunError::Load`] (an I/O failure naming the folder) when it cannot be written.
pub fn demo_data(
    out: &Path,
    samples: &Path,
    version: claimline_model::ApiVersion,
) -> Result<PathBuf, RunError> {
    let io = |path: &Path, e: std::io::Error| {
        RunError::Load(claimline_load::LoadError::Io {
            path: path.to_owned(),
            source: e,
        })
    };
    let root = out.join(".claimline-demo").join(version.as_str());
    let synthetic = root.join("synthetic");
    if !synthetic.join("manifest.json").is_file() {
        let (benes, years, claim_scale, seed) = DEMO;
        if synthetic.exists() {
            std::fs::remove_dir_all(&synthetic).map_err(|e| io(&synthetic, e))?;
        }
        claimline_model::create_private_dir(&root).map_err(|e| io(&root, e))?;
        let config = claimline_synth::ExportConfig {
            years,
            version,
            seed,
            claim_scale,
            ..claimline_synth::ExportConfig::new(benes)
        };
        claimline_synth::write_export(&config, &synthetic)
            .map_err(|e| io(&synthetic, std::io::Error::other(e.to_string())))?;
    }
    let copy = root.join("cms-samples");
    claimline_model::create_private_dir(&copy).map_err(|e| io(&copy, e))?;
    for entry in std::fs::read_dir(samples).map_err(|e| io(samples, e))? {
        let entry = entry.map_err(|e| io(samples, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".ndjson") {
            let to = copy.join(&name);
            if !to.is_file() {
                std::fs::copy(entry.path(), &to).map_err(|e| io(&to, e))?;
            }
            // A copy keeps its source's mode: owner-only, as every output file is (a copy an
            // earlier version left readable too).
            claimline_model::make_private(&to).map_err(|e| io(&to, e))?;
        }
    }
    Ok(root)
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
        use claimline_sink::TableSink as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = claimline_sink::SqliteSink::open(&dir.path().join("claimline.sqlite"), &[])
            .expect("sqlite");
        Box::new(sink)
            .commit(&RunRecord::new("r1"))
            .expect("commit");
        assert!(
            loaded_record(dir.path(), "r1", claimline_load::Format::BOTH, None)
                .expect("read")
                .is_none()
        );
        std::fs::create_dir(dir.path().join("parquet")).expect("mkdir");
        std::fs::write(
            dir.path().join("parquet/_claimline_runs.json"),
            serde_json::to_vec(&[RunRecord::new("r1")]).expect("json"),
        )
        .expect("write");
        assert!(
            loaded_record(dir.path(), "r1", claimline_load::Format::BOTH, None)
                .expect("read")
                .is_some()
        );
        assert!(
            loaded_record(dir.path(), "r2", claimline_load::Format::BOTH, None)
                .expect("read")
                .is_none()
        );
        assert_eq!(read_runs(dir.path()).expect("runs").len(), 1);
    }
}
