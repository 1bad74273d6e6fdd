//! The whole export: kick-off or re-attach, poll, download, verify, record.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;

use crate::FetchError;
use crate::client::{Client, ExportRequest, JobStatus, KickOff, diagnostics, parse_retry_after};
use crate::progress::{Event, Progress};
use crate::state::{
    ExportState, FileRecord, create_private_dir, load_state, open_private, save_state, work_dir,
    write_atomic,
};

/// Options of [`export`].
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Downloads at a time (BCDA recommends concurrent downloads; default 4).
    pub parallel: usize,
    /// Forget a saved job and its files and start a new export.
    pub new_job: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            parallel: 4,
            new_job: false,
        }
    }
}

/// What [`export`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// The job URL.
    pub job_url: String,
    /// The job was found (saved state or `/jobs`) rather than started.
    pub reattached: bool,
    /// The manifest's `transactionTime`.
    pub transaction_time: Option<String>,
    /// Every file of the export, in manifest order.
    pub files: Vec<FileRecord>,
    /// Files downloaded by this run.
    pub downloaded: usize,
    /// Bytes downloaded by this run.
    pub bytes_downloaded: u64,
}

impl ExportSummary {
    /// Resources (lines) per type, data files only, as counted while verifying the downloads.
    pub fn resources(&self) -> std::collections::BTreeMap<String, u64> {
        claimline_model::resources_per_type(&self.files)
    }

    /// The report `claimline fetch --json` prints: the job, `transactionTime`, resources per
    /// type, every file (name, type, bytes, SHA-256, error file), what this run downloaded and
    /// the wall time.
    pub fn report(&self, seconds: f64) -> serde_json::Value {
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|f| {
                serde_json::json!({"name": f.name, "type": f.resource_type, "bytes": f.size,
                    "sha256": f.sha256, "error": f.error_file})
            })
            .collect();
        serde_json::json!({
            "job_url": self.job_url,
            "reattached": self.reattached,
            "transaction_time": self.transaction_time,
            "resources": self.resources(),
            "files": files,
            "downloaded": self.downloaded,
            "bytes": self.files.iter().map(|f| f.size).sum::<u64>(),
            "bytes_downloaded": self.bytes_downloaded,
            "seconds": seconds,
        })
    }
}

/// One file the manifest lists.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    resource_type: String,
    /// Local name without `.gz`, relative to the export folder.
    stem: String,
    error_file: bool,
}

#[derive(serde::Deserialize)]
struct ManifestEntry {
    #[serde(rename = "type")]
    resource_type: String,
    url: String,
}

#[derive(serde::Deserialize)]
struct Manifest {
    #[serde(rename = "transactionTime")]
    transaction_time: Option<String>,
    #[serde(default)]
    output: Vec<ManifestEntry>,
    #[serde(default)]
    error: Vec<ManifestEntry>,
}

/// The job's manifest, checked: its `transactionTime` becomes the next run's `_since`, so text
/// that is not an instant would be committed, and shown, as it came.
fn read_manifest(text: &str, job_url: &str) -> Result<Manifest, FetchError> {
    let protocol = |reason: &str| FetchError::Protocol {
        url: job_url.to_owned(),
        reason: reason.to_owned(),
    };
    let manifest: Manifest = serde_json::from_str(text)
        .map_err(|_| protocol("the manifest is not the expected JSON"))?;
    if let Some(t) = &manifest.transaction_time
        && t.parse::<jiff::Timestamp>().is_err()
    {
        return Err(protocol(
            "the manifest's transactionTime is not an instant with an offset (as \
             2024-01-02T03:04:05.678Z)",
        ));
    }
    Ok(manifest)
}

/// Local names: `<type>.<NNN>.ndjson` per type in manifest order; error files under `errors/`.
fn plan(manifest: &Manifest, job_url: &str) -> Result<Vec<Target>, FetchError> {
    let mut counters: BTreeMap<(bool, &str), usize> = BTreeMap::new();
    let mut targets = Vec::new();
    for (error_file, entries) in [(false, &manifest.output), (true, &manifest.error)] {
        for entry in entries {
            let t = entry.resource_type.as_str();
            // The type names the file, and so every row's `_source_file`, and is printed.
            if !claimline_model::is_resource_type_name(t) {
                return Err(FetchError::Protocol {
                    url: job_url.to_owned(),
                    reason: "a manifest entry's type is not a resource type name".to_owned(),
                });
            }
            let n = counters.entry((error_file, t)).or_insert(0);
            let dir = if error_file { "errors/" } else { "" };
            targets.push(Target {
                url: entry.url.clone(),
                resource_type: t.to_owned(),
                stem: format!("{dir}{t}.{n:03}.ndjson"),
                error_file,
            });
            *n += 1;
        }
    }
    Ok(targets)
}

/// Path and sorted, decoded query of a request URL, to recognise the same request.
fn request_key(url: &str) -> (String, Vec<(String, String)>) {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path_and_query = without_scheme
        .find('/')
        .map_or("", |i| &without_scheme[i..]);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    params.sort();
    (decode(path), params)
}

/// Runs an export into `out`, or resumes the one saved there.
///
/// The job URL is saved in `out/.claimline/state.json` right after the kick-off; a rerun with the
/// same request re-attaches to it and downloads only the files that are missing, so the folder
/// ends byte-identical to an uninterrupted run. A 429 on kick-off re-attaches to the running job
/// with the same request (found through `/jobs`), or waits `Retry-After` and asks again.
///
/// A saved job that failed on BCDA's side or is gone (cancelled, expired) is not followed again:
/// its files are forgotten and a new job is started for the same request ([`Event::Restarted`]).
pub fn export(
    client: &Client,
    request: &ExportRequest,
    out: &Path,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportSummary, FetchError> {
    let saved = !options.new_job && load_state(out).ok().flatten().is_some();
    match export_once(client, request, out, options, progress) {
        Err(FetchError::JobFailed { job_url, .. } | FetchError::JobGone { job_url, .. })
            if saved =>
        {
            progress.event(&Event::Restarted { job_url: &job_url });
            let options = ExportOptions {
                new_job: true,
                ..options.clone()
            };
            export_once(client, request, out, &options, progress)
        }
        other => other,
    }
}

fn export_once(
    client: &Client,
    request: &ExportRequest,
    out: &Path,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportSummary, FetchError> {
    let timing = client.timing().clone();
    let work = work_dir(out);
    let tmp = work.join("tmp");
    create_private_dir(out)?;
    create_private_dir(&tmp)?;
    let request_url = request.kick_off_url(client.base_url());

    let mut saved = load_state(out)?;
    if let Some(state) = &saved {
        if options.new_job {
            for file in &state.files {
                let _ = fs::remove_file(out.join(&file.name));
            }
            let _ = fs::remove_file(out.join("manifest.json"));
            if let Ok(entries) = fs::read_dir(&tmp) {
                for entry in entries.flatten() {
                    let _ = fs::remove_file(entry.path());
                }
            }
            saved = None;
        } else if state.request_url != request_url {
            return Err(FetchError::Usage(format!(
                "{} holds another export ({}); choose another folder or pass --new-job",
                out.display(),
                state.request_url
            )));
        }
    }

    let (mut state, reattached) = match saved {
        Some(state) => {
            progress.event(&Event::Reattached {
                job_url: &state.job_url,
            });
            (state, true)
        }
        None => start_job(client, request, &request_url, out, progress)?,
    };

    let manifest_text = match &state.manifest {
        Some(text) => text.clone(),
        None => {
            let text = wait_for_manifest(client, &state.job_url, &timing, progress)?;
            state.manifest = Some(text.clone());
            save_state(&state, out)?;
            text
        }
    };
    let manifest = read_manifest(&manifest_text, &state.job_url)?;
    if state.transaction_time.is_none() {
        state.transaction_time = manifest.transaction_time.clone();
    }
    let targets = plan(&manifest, &state.job_url)?;
    for target in &targets {
        client.check_same_origin(&target.url)?;
    }
    if targets.iter().any(|t| t.error_file) {
        create_private_dir(&out.join("errors"))?;
    }

    let is_done = |target: &Target, records: &[FileRecord]| {
        records.iter().any(|r| {
            r.url == target.url
                && r.name.starts_with(&target.stem)
                && fs::metadata(out.join(&r.name)).is_ok_and(|m| m.len() == r.size)
        })
    };
    let pending: Vec<&Target> = targets
        .iter()
        .filter(|t| !is_done(t, &state.files))
        .collect();
    progress.event(&Event::Manifest {
        files: targets.len(),
        already_done: targets.len() - pending.len(),
    });

    let shared = Mutex::new(state);
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let first_error: Mutex<Option<FetchError>> = Mutex::new(None);
    let bytes = AtomicU64::new(0);
    let workers = options.parallel.clamp(1, 32).min(pending.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if abort.load(Ordering::SeqCst) {
                        return;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(target) = pending.get(index) else {
                        return;
                    };
                    let result =
                        download(client, target, out, &tmp, &abort, progress).and_then(|record| {
                            bytes.fetch_add(record.size, Ordering::SeqCst);
                            let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                            state.files.retain(|r| r.url != record.url);
                            state.files.push(record);
                            save_state(&state, out)
                        });
                    if let Err(error) = result {
                        abort.store(true, Ordering::SeqCst);
                        let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        if slot.is_none() {
                            *slot = Some(error);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(error) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(error);
    }
    let mut state = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    // Manifest order, so the record is stable whatever order the downloads finished in.
    let mut files = Vec::with_capacity(targets.len());
    for target in &targets {
        if let Some(record) = state.files.iter().find(|r| r.url == target.url) {
            files.push(record.clone());
        }
    }
    state.files = files.clone();
    write_atomic(&out.join("manifest.json"), manifest_text.as_bytes())?;
    state.complete = true;
    save_state(&state, out)?;
    Ok(ExportSummary {
        job_url: state.job_url.clone(),
        reattached,
        transaction_time: state.transaction_time.clone(),
        files,
        downloaded: pending.len(),
        bytes_downloaded: bytes.load(Ordering::SeqCst),
    })
}

/// Kicks off, saving the job URL before anything else; on 429 re-attaches to the running job
/// with the same request, or waits and retries.
fn start_job(
    client: &Client,
    request: &ExportRequest,
    request_url: &str,
    out: &Path,
    progress: &dyn Progress,
) -> Result<(ExportState, bool), FetchError> {
    let timing = client.timing();
    let started = Instant::now();
    let ours = request_key(request_url);
    loop {
        let (job_url, reattached) = match client.kick_off(request, progress)? {
            KickOff::Started(job_url) => (job_url, false),
            KickOff::Busy(retry_after) => {
                let running = client.jobs(request.api, &["Pending", "In Progress"], progress)?;
                let same = running
                    .iter()
                    .filter(|job| matches!(job.status.as_str(), "accepted" | "in-progress"))
                    .filter(|job| request_key(&job.request) == ours)
                    .max_by_key(|job| job.id.parse::<u64>().unwrap_or(0));
                match same {
                    Some(job) => (job.url.clone(), true),
                    None => {
                        if started.elapsed() >= timing.max_wait {
                            return Err(FetchError::WaitExceeded {
                                job_url: request_url.to_owned(),
                                waited_secs: started.elapsed().as_secs(),
                            });
                        }
                        // Retry-After as sent (BCDA's default is 0: then our poll interval).
                        let wait = retry_after
                            .unwrap_or(timing.poll_initial)
                            .max(timing.poll_initial)
                            .min(timing.max_wait);
                        progress.event(&Event::Busy { wait });
                        std::thread::sleep(wait);
                        continue;
                    }
                }
            }
        };
        let state = ExportState {
            format: 1,
            request_url: request_url.to_owned(),
            job_url,
            ..ExportState::default()
        };
        save_state(&state, out)?;
        if reattached {
            progress.event(&Event::Reattached {
                job_url: &state.job_url,
            });
        } else {
            progress.event(&Event::KickedOff {
                job_url: &state.job_url,
            });
        }
        return Ok((state, reattached));
    }
}

/// Polls until the manifest arrives, backing off from `poll_initial` to `poll_max`.
fn wait_for_manifest(
    client: &Client,
    job_url: &str,
    timing: &crate::Timing,
    progress: &dyn Progress,
) -> Result<String, FetchError> {
    let started = Instant::now();
    let mut interval = timing.poll_initial;
    loop {
        match client.poll(job_url, progress)? {
            JobStatus::Complete { manifest } => {
                return String::from_utf8(manifest).map_err(|_| FetchError::Protocol {
                    url: job_url.to_owned(),
                    reason: "the manifest is not UTF-8".to_owned(),
                });
            }
            JobStatus::Running { percent, text } => {
                progress.event(&Event::JobProgress {
                    percent,
                    text: &text,
                });
                if started.elapsed() + interval > timing.max_wait {
                    return Err(FetchError::WaitExceeded {
                        job_url: job_url.to_owned(),
                        waited_secs: started.elapsed().as_secs(),
                    });
                }
                std::thread::sleep(interval);
                interval = (interval * 2).min(timing.poll_max);
            }
        }
    }
}

/// Counts `\n` bytes written into it.
struct LineCounter(u64);

impl Write for LineCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a whole file through SHA-256 and, when `gzip`, a full multi-member decode (CRC-32 and
/// length of every member). Returns the hex digest and the decoded line count, or `None` when
/// the gzip stream is bad.
fn verify(path: &Path, gzip: bool) -> io::Result<Option<(String, u64)>> {
    struct Hashing<R> {
        inner: R,
        digest: ring::digest::Context,
    }
    impl<R: Read> Read for Hashing<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.digest.update(&buf[..n]);
            Ok(n)
        }
    }
    let mut reader = Hashing {
        inner: io::BufReader::new(fs::File::open(path)?),
        digest: ring::digest::Context::new(&ring::digest::SHA256),
    };
    let mut lines = LineCounter(0);
    if gzip {
        let mut decoder = MultiGzDecoder::new(&mut reader);
        if io::copy(&mut decoder, &mut lines).is_err() {
            return Ok(None);
        }
        // Trailing bytes after the last member would be ignored by the decoder: refuse them.
        let mut rest = [0u8; 1];
        if reader.read(&mut rest)? != 0 {
            return Ok(None);
        }
    } else {
        io::copy(&mut reader, &mut lines)?;
    }
    let digest = reader.digest.finish();
    let hex = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some((hex, lines.0)))
}

/// Why one attempt at a file failed.
enum Failure {
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
    NotFound,
    /// The token expired and was renewed (at most a few times a file): not an attempt that
    /// failed.
    Renewed,
}

/// Downloads one file into its `.part`, resuming with `Range`, verifies it and renames it.
fn download(
    client: &Client,
    target: &Target,
    out: &Path,
    tmp: &Path,
    abort: &AtomicBool,
    progress: &dyn Progress,
) -> Result<FileRecord, FetchError> {
    let timing = client.timing();
    let part = tmp.join(format!("{}.part", target.stem.replace('/', "_")));
    let mut attempt = 0u32;
    let mut renewals = 0u32;
    let mut not_found = 0u32;
    loop {
        if abort.load(Ordering::SeqCst) {
            return Err(FetchError::Unavailable {
                url: target.url.clone(),
                attempts: attempt,
                reason: "stopped after another file failed".to_owned(),
            });
        }
        let before = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let failure = match attempt_download(client, target, out, &part, &mut renewals, progress)? {
            Ok(record) => return Ok(record),
            Err(failure) => failure,
        };
        // An attempt that moved the download on is not one of the failures counted: a flaky
        // link that drops every answer part-way still gets the file.
        if fs::metadata(&part).map(|m| m.len()).unwrap_or(0) > before {
            attempt = 0;
            not_found = 0;
        }
        let (reason, wait) = match failure {
            Failure::Renewed => continue,
            Failure::NotFound => {
                not_found += 1;
                ("status 404".to_owned(), None)
            }
            Failure::Retry { reason, wait } => (reason, wait),
        };
        attempt += 1;
        if attempt >= timing.attempts {
            // Not found among attempts that all failed (whatever else failed in between: a 503,
            // a throttle): the job's files are gone, BCDA expired it, and a new job replaces it
            // (at worst a file found again is fetched again).
            if not_found > 0 {
                return Err(FetchError::JobGone {
                    job_url: target.url.clone(),
                    status: 404,
                    diagnostics: String::new(),
                });
            }
            return Err(FetchError::Unavailable {
                url: target.url.clone(),
                attempts: attempt,
                reason,
            });
        }
        let wait = wait
            .unwrap_or_else(|| timing.backoff(attempt))
            .min(timing.max_wait);
        progress.event(&Event::Retry {
            what: &target.stem,
            attempt,
            reason: &reason,
            wait,
        });
        std::thread::sleep(wait);
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// One attempt. The outer `Result` is fatal; the inner one says whether to retry.
fn attempt_download(
    client: &Client,
    target: &Target,
    out: &Path,
    part: &Path,
    renewals: &mut u32,
    progress: &dyn Progress,
) -> Result<Result<FileRecord, Failure>, FetchError> {
    let retry = |reason: String| Ok(Err(Failure::Retry { reason, wait: None }));
    let existing = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let token = client.bearer(progress)?;
    progress.event(&Event::FileStarted {
        name: &target.stem,
        resumed_at: existing,
    });
    let response = match client.get_data(&target.url, &token, existing) {
        Ok(response) => response,
        Err(e) => return retry(e.to_string()),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let gzip = header("Content-Encoding").is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let (offset, expected_total) = match status {
        200 => (
            0,
            header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok()),
        ),
        206 => match header("Content-Range").as_deref().and_then(content_range) {
            Some((start, total)) if start == existing && gzip => (start, total),
            _ => {
                let _ = fs::remove_file(part);
                return retry("unusable partial answer".to_owned());
            }
        },
        416 => {
            // Nothing past the part's end: when the server's length is the part's, the part is
            // the whole file (downloaded before a kill cut the rename); checked, not fetched again.
            let total = header("Content-Range")
                .as_deref()
                .and_then(content_range_unsatisfied);
            if existing > 0 && total == Some(existing) {
                drop(response);
                return finish(target, out, part, true, existing, progress);
            }
            let _ = fs::remove_file(part);
            return retry("status 416".to_owned());
        }
        401 => {
            let mut body = Vec::new();
            let _ = response
                .into_body()
                .into_reader()
                .take(1 << 20)
                .read_to_end(&mut body);
            if diagnostics(&body).contains("Expired Token") && *renewals < 5 {
                *renewals += 1;
                client.token_expired(&token);
                return Ok(Err(Failure::Renewed));
            }
            return Err(FetchError::Refused {
                url: target.url.clone(),
                status,
                diagnostics: diagnostics(&body),
            });
        }
        404 => return Ok(Err(Failure::NotFound)),
        410 => {
            return Err(FetchError::JobGone {
                job_url: target.url.clone(),
                status,
                diagnostics: String::new(),
            });
        }
        429 | 500..=599 => {
            let wait = header("Retry-After").as_deref().and_then(parse_retry_after);
            return Ok(Err(Failure::Retry {
                reason: format!("status {status}"),
                wait,
            }));
        }
        _ => {
            return Err(FetchError::Protocol {
                url: target.url.clone(),
                reason: format!("status {status} for a data file"),
            });
        }
    };
    let mut file = open_private(part, offset > 0)?;
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = offset;
    let dropped = loop {
        match reader.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                file.write_all(&buf[..n])
                    .map_err(|e| FetchError::io(part, e))?;
                written += n as u64;
                progress.event(&Event::Bytes {
                    name: &target.stem,
                    bytes: n as u64,
                });
                claimline_fault::point("fetch.chunk").map_err(|e| FetchError::io(part, e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    file.sync_all().map_err(|e| FetchError::io(part, e))?;
    drop(file);
    if let Some(reason) = dropped {
        // Kept: the next attempt resumes from here.
        return retry(format!(
            "connection dropped after {written} bytes: {reason}"
        ));
    }
    if let Some(total) = expected_total
        && written != total
    {
        return retry(format!("{written} of {total} bytes"));
    }
    finish(target, out, part, gzip, written, progress)
}

/// `bytes */TOTAL` (a 416's answer) → TOTAL.
fn content_range_unsatisfied(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

/// A downloaded `.part` of `size` bytes verified (a gzip stream: its CRC and length), renamed to
/// its file and recorded; a part that does not verify is removed and the download retried.
fn finish(
    target: &Target,
    out: &Path,
    part: &Path,
    gzip: bool,
    size: u64,
    progress: &dyn Progress,
) -> Result<Result<FileRecord, Failure>, FetchError> {
    let Some((sha256, lines)) = verify(part, gzip).map_err(|e| FetchError::io(part, e))? else {
        let _ = fs::remove_file(part);
        return Ok(Err(Failure::Retry {
            reason: "the gzip stream does not verify (CRC or length)".to_owned(),
            wait: None,
        }));
    };
    let name = if gzip {
        format!("{}.gz", target.stem)
    } else {
        target.stem.clone()
    };
    let dest: PathBuf = out.join(&name);
    claimline_fault::point("fetch.rename").map_err(|e| FetchError::io(&dest, e))?;
    fs::rename(part, &dest).map_err(|e| FetchError::io(&dest, e))?;
    if let Some(parent) = dest.parent() {
        claimline_model::sync_dir(parent).map_err(|e| FetchError::io(parent, e))?;
    }
    progress.event(&Event::FileDone { name: &name, size });
    Ok(Ok(FileRecord {
        name,
        resource_type: target.resource_type.clone(),
        url: target.url.clone(),
        size,
        sha256,
        lines,
        error_file: target.error_file,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_time_that_is_not_an_instant_stops_the_export_unshown() {
        let manifest = |t: &str| {
            format!(
                r#"{{"transactionTime":{t},"request":"x","requiresAccessToken":true,"output":[],"error":[]}}"#
            )
        };
        let err = read_manifest(&manifest(r#""9ZZ9ZZ9ZZ99 Canaryname""#), "https://b/jobs/1")
            .err()
            .expect("refused");
        assert!(!err.to_string().contains("9ZZ9ZZ9ZZ99"), "{err}");
        assert!(err.to_string().contains("transactionTime"), "{err}");
        for ok in [
            r#""2024-01-02T03:04:05.678Z""#,
            r#""2024-01-02T03:04:05-05:00""#,
            "null",
        ] {
            assert!(
                read_manifest(&manifest(ok), "https://b/jobs/1").is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn same_request_is_recognised_across_hosts_and_encodings() {
        assert_eq!(
            request_key(
                "http://127.0.0.1:9/api/v2/Patient/$export?_type=Patient,Coverage&_since=2024-01-01T00%3A00%3A00Z"
            ),
            request_key(
                "http://localhost:9/api/v2/Patient/%24export?_since=2024-01-01T00:00:00Z&_type=Patient%2CCoverage"
            ),
        );
        assert_ne!(
            request_key("https://h/api/v2/Patient/$export?_type=Patient"),
            request_key("https://h/api/v2/Patient/$export?_type=Coverage"),
        );
    }

    #[test]
    fn names_follow_the_export_folder_layout() {
        let manifest: Manifest = serde_json::from_str(
            r#"{"transactionTime":"t","output":[{"type":"Patient","url":"u1"},{"type":"ExplanationOfBenefit","url":"u2"},{"type":"ExplanationOfBenefit","url":"u3"}],
               "error":[{"type":"OperationOutcome","url":"u4"}],"JobID":1}"#,
        )
        .expect("manifest");
        let names: Vec<String> = plan(&manifest, "j")
            .expect("plan")
            .into_iter()
            .map(|t| t.stem)
            .collect();
        assert_eq!(
            names,
            [
                "Patient.000.ndjson",
                "ExplanationOfBenefit.000.ndjson",
                "ExplanationOfBenefit.001.ndjson",
                "errors/OperationOutcome.000.ndjson"
            ]
        );
        // A type that is no resource type name names no file (it would be every row's
        // `_source_file`, and printed): `../x`, an MBI, a name in lower case.
        for t in ["../x", "1EG4TE5MK73", "patient"] {
            let bad: Manifest =
                serde_json::from_value(serde_json::json!({"output": [{"type": t, "url": "u"}]}))
                    .expect("manifest");
            let err = plan(&bad, "j").err().map(|e| e.to_string());
            assert!(err.is_some_and(|e| !e.contains(t)), "{t}");
        }
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(content_range("bytes 10-99/100"), Some((10, Some(100))));
        assert_eq!(content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }
}
