//! Routing and the BCDA behaviour of each endpoint.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::data::{Dataset, gunzip, gzip_lines};
use crate::fault::{Fault, FaultState, hash_str, mix};
use crate::{Clock, SandboxConfig, SandboxStats};

/// Resource types each API version accepts in `_type`.
fn allowed_types(version: &str) -> &'static [&'static str] {
    match version {
        "v2" => &[
            "Patient",
            "Coverage",
            "ExplanationOfBenefit",
            "Claim",
            "ClaimResponse",
        ],
        _ => &["Patient", "Coverage", "ExplanationOfBenefit"],
    }
}
const DEFAULT_TYPES: [&str; 3] = ["Patient", "ExplanationOfBenefit", "Coverage"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

#[derive(Debug)]
struct JobFile {
    name: String,
    resource_type: String,
    gz: Arc<Vec<u8>>,
}

#[derive(Debug)]
struct Job {
    version: String,
    request_url: String,
    types: Vec<String>,
    all_types: bool,
    created: Timestamp,
    polls: u32,
    status: Status,
    completed: Option<Timestamp>,
    transaction_time: Timestamp,
    output: Vec<JobFile>,
    error: Vec<JobFile>,
}

#[derive(Debug, Default)]
struct State {
    /// Token → (expiry instant, requests left before it "expires early").
    tokens: HashMap<String, (Timestamp, Option<u32>)>,
    issued: u64,
    jobs: BTreeMap<u64, Job>,
    faults: FaultState,
}

/// Everything the request threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub data: Dataset,
    pub clock: Clock,
    state: Mutex<State>,
    pub stats: Mutex<SandboxStats>,
    /// When the sandbox started: its last attribution and runout ingestion.
    started: Timestamp,
}

/// A response body.
enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// A slice of a served file; `cut_at` drops the connection after that many body bytes.
    File {
        data: Arc<Vec<u8>>,
        start: usize,
        end: usize,
        cut_at: Option<usize>,
    },
    /// Decompressed on the fly: no Content-Length.
    Stream(Vec<u8>),
}

pub(crate) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

impl Reply {
    /// The HTTP status.
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn json(status: u16, content_type: &str, value: &serde_json::Value) -> Self {
        let mut reply = Reply::new(status).header("Content-Type", content_type);
        reply.body = Body::Bytes(serde_json::to_vec(value).unwrap_or_default());
        reply
    }
    fn text(status: u16, text: &str) -> Self {
        let mut reply = Reply::new(status).header("Content-Type", "text/plain; charset=utf-8");
        reply.body = Body::Bytes(text.as_bytes().to_vec());
        reply
    }
}

/// An OperationOutcome error response, shaped per version as BCDA shapes it.
fn outcome(status: u16, version: &str, diagnostics: &str) -> Reply {
    let code = match status {
        400 => "structure",
        401 | 403 => "forbidden",
        404 | 410 => "not-found",
        _ => "exception",
    };
    let mut issue = json!({"severity": "error", "code": code, "diagnostics": diagnostics});
    if version != "v1" {
        issue["details"] = json!({
            "coding": [{"system": "http://hl7.org/fhir/ValueSet/operation-outcome",
                        "code": "Request Error", "display": diagnostics}],
            "text": diagnostics,
        });
    }
    let body = json!({"resourceType": "OperationOutcome", "issue": [issue]});
    Reply::json(status, "application/fhir+json", &body)
}

/// `%XX` and `+` decoding of a query component.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

/// Go's `time.Time.String()` shape used by BCDA's manifest `Expires` header.
fn go_time(ts: Timestamp) -> String {
    let mut s = ts.strftime("%Y-%m-%d %H:%M:%S%.f").to_string();
    s.push_str(" +0000 UTC");
    s
}

/// An RFC 9110 HTTP-date.
pub(crate) fn http_date(ts: Timestamp) -> String {
    ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A deterministic UUID-shaped name.
fn uuid_like(seed: u64, job: u64, index: usize) -> String {
    let a = mix(hash_str(seed, "file") ^ mix(job) ^ mix(index as u64 + 1));
    let b = mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

pub(crate) struct Incoming<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
}

impl Incoming<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn origin(&self) -> String {
        format!("http://{}", self.header("Host").unwrap_or("127.0.0.1"))
    }
}

impl Shared {
    pub(crate) fn new(config: SandboxConfig, data: Dataset, clock: Clock) -> Self {
        Shared {
            config,
            data,
            started: clock.now(),
            clock,
            state: Mutex::new(State::default()),
            stats: Mutex::new(SandboxStats::default()),
        }
    }

    /// Accepts `token` as a bearer token that never expires (for the fuzz target, which must
    /// reach the routes behind authorization).
    pub(crate) fn grant_token(&self, token: &str) {
        self.state()
            .tokens
            .insert(token.to_owned(), (Timestamp::MAX, None));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut SandboxStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn handle(&self, rq: &Incoming<'_>) -> Reply {
        let (path, query) = rq.url.split_once('?').unwrap_or((rq.url, ""));
        let path = path.replace("%24", "$");
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let is_data = segments.first() == Some(&"data");
        let is_token = path == "/auth/token";
        let unfaulted = matches!(segments.as_slice(), ["_version" | "_health" | "_auth"])
            || segments.get(2) == Some(&"metadata");
        if !unfaulted {
            let key = format!("{} {}", rq.method, path);
            let fault = self.state().faults.decide(
                &self.config.faults,
                self.config.seed,
                &key,
                is_data,
                is_token,
            );
            let retry_after = self.config.retry_after_secs.to_string();
            match fault {
                Fault::ServerError { status } => {
                    self.count(|s| s.injected_server_errors += 1);
                    let reply = if is_token {
                        Reply::text(status, "service temporarily unavailable")
                    } else {
                        outcome(status, "v2", "")
                    };
                    return if status == 503 {
                        reply.header("Retry-After", retry_after)
                    } else {
                        reply
                    };
                }
                Fault::Throttle => {
                    self.count(|s| s.injected_throttles += 1);
                    return Reply::text(429, "too many requests")
                        .header("Retry-After", retry_after);
                }
                Fault::NotFound => {
                    self.count(|s| s.injected_not_found += 1);
                    return outcome(404, "v2", "");
                }
                Fault::Drop => return self.route(rq, &segments, query, true),
                Fault::None => {}
            }
        }
        self.route(rq, &segments, query, false)
    }

    fn route(&self, rq: &Incoming<'_>, segments: &[&str], query: &str, drop: bool) -> Reply {
        match (rq.method, segments) {
            ("POST", ["auth", "token"]) => self.token(rq),
            ("GET", ["auth", "welcome"]) => match self.authorize(rq, "v2") {
                Ok(()) => Reply::json(
                    200,
                    "application/json",
                    &json!({"success": "Welcome to the Beneficiary Claims Data API!"}),
                ),
                Err(reply) => reply,
            },
            ("GET", ["_version"]) => {
                Reply::json(200, "application/json", &json!({"version": "sandbox"}))
            }
            ("GET", ["_health"]) => Reply::json(
                200,
                "application/json",
                &json!({"database": "ok", "ssas": "ok", "ssas_introspect": "ok"}),
            ),
            ("GET", ["_auth"]) => Reply::json(
                200,
                "application/json",
                &json!({"auth_provider": "ssas", "version": "sandbox"}),
            ),
            ("GET", ["api", v @ ("v1" | "v2" | "v3"), "metadata"]) => {
                let fhir = if *v == "v1" { "3.0.1" } else { "4.0.1" };
                let token_url = format!("{}/auth/token", rq.origin());
                Reply::json(
                    200,
                    "application/json",
                    &json!({
                        "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                        "fhirVersion": fhir,
                        "rest": [{"mode": "server", "security": {"extension": [{
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": token_url}]}]}}]
                    }),
                )
            }
            (
                "GET",
                [
                    "api",
                    v @ ("v1" | "v2" | "v3"),
                    "Group",
                    "all" | "runout",
                    "$export",
                ],
            ) => self.kick_off(rq, v, segments[3], query),
            ("GET", ["api", v @ ("v1" | "v2" | "v3"), "Patient", "$export"]) => {
                self.kick_off(rq, v, "patient", query)
            }
            ("GET", ["api", v @ ("v1" | "v2" | "v3"), "attribution_status"]) => {
                self.attribution_status(rq, v)
            }
            ("GET", ["api", v @ ("v1" | "v2" | "v3"), "jobs"]) => self.list_jobs(rq, v, query),
            ("GET", ["api", v @ ("v1" | "v2" | "v3"), "jobs", id]) => self.job_status(rq, v, id),
            ("DELETE", ["api", v @ ("v1" | "v2" | "v3"), "jobs", id]) => self.cancel(rq, v, id),
            ("GET", ["data", id, file]) => self.data(rq, id, file, drop),
            (_, ["data", _, _]) => Reply::new(405),
            _ => Reply::text(404, "404 page not found"),
        }
    }

    fn token(&self, rq: &Incoming<'_>) -> Reply {
        let Some(basic) = rq
            .header("Authorization")
            .and_then(|h| h.strip_prefix("Basic "))
        else {
            return Reply::text(400, "Authorization header is missing or not Basic");
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let expected = format!("{}:{}", self.config.client_id, self.config.client_secret);
        if decoded.as_deref() != Some(expected.as_str()) {
            self.count(|s| s.rejected_credentials += 1);
            return Reply::text(401, "invalid client id or secret");
        }
        let now = self.clock.now();
        let lifetime = self.config.token_lifetime_secs;
        let token = {
            let mut state = self.state();
            state.issued += 1;
            let a = mix(hash_str(self.config.seed, "token") ^ mix(state.issued));
            let token = format!("{a:016x}{:016x}", mix(a));
            let expiry = now
                .saturating_add(SignedDuration::from_secs(lifetime as i64))
                .unwrap_or(Timestamp::MAX);
            let uses = self.config.faults.token_max_uses;
            state.tokens.insert(token.clone(), (expiry, uses));
            token
        };
        self.count(|s| s.tokens_issued += 1);
        Reply::json(
            200,
            "application/json",
            &json!({"access_token": token, "expires_in": lifetime.to_string(), "token_type": "bearer"}),
        )
        .header("Cache-Control", "no-store")
        .header("Pragma", "no-cache")
    }

    /// Checks the bearer token; an error reply is a 401 OperationOutcome.
    fn authorize(&self, rq: &Incoming<'_>, version: &str) -> Result<(), Reply> {
        let token = rq
            .header("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let now = self.clock.now();
        let mut state = self.state();
        let Some(entry) = token.and_then(|t| state.tokens.get_mut(t)) else {
            return Err(outcome(401, version, "Invalid Token"));
        };
        let used_up = match &mut entry.1 {
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        };
        if used_up || now >= entry.0 {
            drop(state);
            self.count(|s| s.expired_token_rejections += 1);
            return Err(outcome(401, version, "Expired Token"));
        }
        Ok(())
    }

    /// `GET /api/{v}/attribution_status`: when attribution and runout files were last ingested.
    fn attribution_status(&self, rq: &Incoming<'_>, version: &str) -> Reply {
        if let Err(reply) = self.authorize(rq, version) {
            return reply;
        }
        if self.config.no_attribution {
            return outcome(404, version, "no attribution file found");
        }
        let at = self.started.to_string();
        Reply::json(
            200,
            "application/json",
            &json!({"ingestion_dates": [
                {"timestamp": at, "type": "last_attribution_update"},
                {"timestamp": at, "type": "last_runout_update"},
            ]}),
        )
    }

    /// The 404 BCDA answers instead of starting an export, when one of the "try later"
    /// situations is switched on for `group` (`all`, `runout` or `patient`).
    fn unavailable(&self, version: &str, group: &str) -> Option<Reply> {
        let diagnostics = if self.config.no_attribution {
            "Unable to retrieve attribution data: no attribution file found for this ACO"
        } else if self.config.blackout && group != "runout" {
            "Unable to retrieve attribution data for the current performance year: BCDA's \
             yearly update is in progress (January); try again once the new attribution is loaded"
        } else if self.config.runout_closed && group == "runout" {
            "runout data is no longer available for this ACO"
        } else {
            return None;
        };
        Some(outcome(404, version, diagnostics))
    }

    fn kick_off(&self, rq: &Incoming<'_>, version: &str, group: &str, query: &str) -> Reply {
        if let Err(reply) = self.authorize(rq, version) {
            return reply;
        }
        if let Some(reply) = self.unavailable(version, group) {
            return reply;
        }
        if rq.header("Accept") != Some("application/fhir+json") {
            return outcome(
                400,
                version,
                "Accept header is required to be application/fhir+json",
            );
        }
        if rq.header("Prefer") != Some("respond-async") {
            return outcome(
                400,
                version,
                "Prefer header is required to be respond-async",
            );
        }
        let params = parse_query(query);
        let mut types: Option<Vec<String>> = None;
        let mut since = None;
        let mut type_filters = 0;
        let mut tag_given = false;
        for (key, value) in &params {
            match key.as_str() {
                k if k.starts_with('?') => {
                    return outcome(
                        400,
                        version,
                        "Invalid parameter: query parameters cannot start with ?",
                    );
                }
                "_elements" => {
                    return outcome(
                        400,
                        version,
                        "Invalid parameter: this server does not support _elements",
                    );
                }
                "_outputFormat"
                    if !["ndjson", "application/fhir+ndjson", "application/ndjson"]
                        .contains(&value.as_str()) =>
                {
                    return outcome(
                        400,
                        version,
                        "_outputFormat parameter must be application/fhir+ndjson, application/ndjson, or ndjson",
                    );
                }
                "_type" if types.is_none() => {
                    let mut list = Vec::new();
                    for t in value.split(',') {
                        if list.iter().any(|x: &String| x == t) {
                            return outcome(400, version, &format!("Repeated resource type {t}"));
                        }
                        if !allowed_types(version).contains(&t) {
                            return outcome(400, version, &format!("invalid resource type {t}"));
                        }
                        list.push(t.to_owned());
                    }
                    types = Some(list);
                }
                "_since" => {
                    let Ok(ts) = value.parse::<Timestamp>() else {
                        return outcome(
                            400,
                            version,
                            "Invalid date format supplied in _since parameter. Date must be in FHIR Instant format.",
                        );
                    };
                    if ts > self.clock.now() {
                        return outcome(
                            400,
                            version,
                            "Invalid date format supplied in _since parameter. Date must be a date that has already passed",
                        );
                    }
                    since = Some(ts);
                }
                "_typeFilter" if version == "v3" => {
                    type_filters += 1;
                    if type_filters > 1 || !value.starts_with("ExplanationOfBenefit?") {
                        return outcome(400, version, "Invalid _typeFilter parameter");
                    }
                    tag_given |= value.contains("System-Type");
                }
                _ => {}
            }
        }
        let all_types = types.is_none();
        let types: Vec<String> =
            types.unwrap_or_else(|| DEFAULT_TYPES.iter().map(|t| (*t).to_owned()).collect());
        let origin = rq.origin();
        let request_url = format!("{origin}{}", rq.url);
        let now = self.clock.now();
        let day = SignedDuration::from_hours(24);
        let mut state = self.state();
        let overlapping = state.jobs.values().any(|job| {
            matches!(job.status, Status::Pending | Status::InProgress)
                && job.version == version
                && now.duration_since(job.created) < day
                && (job.request_url == request_url
                    || job.all_types
                    || all_types
                    || job.types.iter().any(|t| types.contains(t)))
        });
        if overlapping {
            drop(state);
            self.count(|s| s.overlap_rejections += 1);
            return Reply::new(429).header("Retry-After", self.config.retry_after_secs.to_string());
        }
        let id = self.config.first_job_id + state.jobs.len() as u64;
        let mut output = Vec::new();
        for resource_type in &types {
            let Some(batches) = self.data.batches.get(resource_type) else {
                continue;
            };
            for batch in batches {
                let kept: Vec<&[u8]> = batch
                    .iter()
                    .filter(|line| match (since, line.last_updated) {
                        // BCDA asks BFD for `_lastUpdated=le<transactionTime>`.
                        (_, Some(t)) if t > now => false,
                        (None, _) => true,
                        (Some(since), updated) => updated.is_some_and(|t| t > since),
                    })
                    .map(|line| line.text.as_slice())
                    .collect();
                if kept.is_empty() {
                    continue;
                }
                output.push(JobFile {
                    name: format!("{}.ndjson", uuid_like(self.config.seed, id, output.len())),
                    resource_type: resource_type.clone(),
                    gz: Arc::new(gzip_lines(kept.into_iter())),
                });
            }
        }
        let mut error = Vec::new();
        if version == "v3" && !tag_given && types.iter().any(|t| t == "ExplanationOfBenefit") {
            let warning = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "informational",
                "diagnostics": "No System-Type _tag given: ExplanationOfBenefit covers NationalClaimsHistory and DDPS only"}]});
            let line = serde_json::to_vec(&warning).unwrap_or_default();
            error.push(JobFile {
                name: "warnings-and-info.ndjson".to_owned(),
                resource_type: "OperationOutcome".to_owned(),
                gz: Arc::new(gzip_lines(std::iter::once(line.as_slice()))),
            });
        }
        if !self.data.errors.is_empty() {
            let index = output.len() + error.len();
            error.push(JobFile {
                name: format!("{}-error.ndjson", uuid_like(self.config.seed, id, index)),
                resource_type: "OperationOutcome".to_owned(),
                gz: Arc::new(gzip_lines(
                    self.data.errors.iter().map(|l| l.text.as_slice()),
                )),
            });
        }
        state.jobs.insert(
            id,
            Job {
                version: version.to_owned(),
                request_url,
                types,
                all_types,
                created: now,
                polls: 0,
                status: Status::Pending,
                completed: None,
                transaction_time: now,
                output,
                error,
            },
        );
        drop(state);
        self.count(|s| s.jobs_started += 1);
        Reply::new(202).header(
            "Content-Location",
            format!("{origin}/api/{version}/jobs/{id}"),
        )
    }

    fn expiry(&self) -> SignedDuration {
        SignedDuration::from_secs(self.config.job_expiry_secs as i64)
    }

    fn job_status(&self, rq: &Incoming<'_>, version: &str, id: &str) -> Reply {
        if let Err(reply) = self.authorize(rq, version) {
            return reply;
        }
        let Ok(id) = id.parse::<u64>() else {
            return outcome(400, version, "cannot convert jobID to uint");
        };
        let now = self.clock.now();
        let expiry = self.expiry();
        let polls_to_complete = self.config.polls_to_complete.max(1);
        let fail = self.config.faults.fail_jobs;
        let mut state = self.state();
        let Some(job) = state.jobs.get_mut(&id) else {
            return outcome(404, version, "");
        };
        if matches!(job.status, Status::Pending | Status::InProgress) {
            job.polls += 1;
            if job.polls >= polls_to_complete {
                job.status = if fail {
                    Status::Failed
                } else {
                    Status::Completed
                };
                job.completed = Some(now);
            } else if job.polls == 1 {
                job.status = Status::Pending;
            } else {
                job.status = Status::InProgress;
            }
        }
        match job.status {
            Status::Pending => Reply::new(202).header("X-Progress", "Pending"),
            Status::InProgress => {
                let percent = (job.polls - 1) * 100 / polls_to_complete;
                Reply::new(202).header("X-Progress", format!("In Progress ({percent}%)"))
            }
            Status::Failed => outcome(
                500,
                version,
                "Service encountered numerous errors. Job failed to complete.",
            ),
            Status::Cancelled => outcome(404, version, "Job has been cancelled."),
            Status::Completed => {
                let completed = job.completed.unwrap_or(now);
                let expires = completed.saturating_add(expiry).unwrap_or(Timestamp::MAX);
                if now >= expires {
                    return outcome(410, version, "The requested job has expired.")
                        .header("Expires", go_time(expires));
                }
                let origin = rq.origin();
                let entries = |files: &[JobFile]| -> Vec<serde_json::Value> {
                    files
                        .iter()
                        .map(|f| json!({"type": f.resource_type, "url": format!("{origin}/data/{id}/{}", f.name)}))
                        .collect()
                };
                let manifest = json!({
                    "transactionTime": job.transaction_time.to_string(),
                    "request": job.request_url,
                    "requiresAccessToken": true,
                    "output": entries(&job.output),
                    "error": entries(&job.error),
                    "JobID": id,
                });
                Reply::json(200, "application/json", &manifest).header("Expires", go_time(expires))
            }
        }
    }

    fn cancel(&self, rq: &Incoming<'_>, version: &str, id: &str) -> Reply {
        if let Err(reply) = self.authorize(rq, version) {
            return reply;
        }
        let Ok(id) = id.parse::<u64>() else {
            return outcome(400, version, "cannot convert jobID to uint");
        };
        let mut state = self.state();
        let Some(job) = state.jobs.get_mut(&id) else {
            return outcome(404, version, "");
        };
        if matches!(job.status, Status::Pending | Status::InProgress) {
            job.status = Status::Cancelled;
            drop(state);
            self.count(|s| s.jobs_cancelled += 1);
            Reply::new(202)
        } else {
            outcome(
                410,
                version,
                "Job was not cancelled because it is not Pending or In Progress",
            )
        }
    }

    fn status_name(&self, job: &Job, now: Timestamp) -> &'static str {
        match job.status {
            Status::Pending => "Pending",
            Status::InProgress => "In Progress",
            Status::Failed => "Failed",
            Status::Cancelled => "Cancelled",
            Status::Completed => {
                let completed = job.completed.unwrap_or(now);
                if now
                    >= completed
                        .saturating_add(self.expiry())
                        .unwrap_or(Timestamp::MAX)
                {
                    "Archived"
                } else {
                    "Completed"
                }
            }
        }
    }

    fn list_jobs(&self, rq: &Incoming<'_>, version: &str, query: &str) -> Reply {
        if let Err(reply) = self.authorize(rq, version) {
            return reply;
        }
        if rq.header("Accept") != Some("application/fhir+json")
            || rq.header("Prefer") != Some("respond-async")
        {
            return outcome(400, version, "Accept and Prefer headers are required");
        }
        const NAMES: [&str; 9] = [
            "Pending",
            "In Progress",
            "Completed",
            "Archived",
            "Expired",
            "Failed",
            "FailedExpired",
            "Cancelled",
            "CancelledExpired",
        ];
        let mut wanted: Vec<String> = Vec::new();
        for (key, value) in parse_query(query) {
            if key == "_status" {
                for status in value.split(',') {
                    if !NAMES.contains(&status) || wanted.iter().any(|w| w == status) {
                        return outcome(
                            400,
                            version,
                            &format!("Repeated or invalid status {status}"),
                        );
                    }
                    wanted.push(status.to_owned());
                }
            }
        }
        let now = self.clock.now();
        let origin = rq.origin();
        let state = self.state();
        let entries: Vec<serde_json::Value> = state
            .jobs
            .iter()
            .filter(|(_, job)| wanted.is_empty() || wanted.iter().any(|w| w == self.status_name(job, now)))
            .map(|(id, job)| {
                let task_status = match job.status {
                    Status::Pending => "accepted",
                    Status::InProgress => "in-progress",
                    Status::Completed => "completed",
                    Status::Failed => "failed",
                    Status::Cancelled => "cancelled",
                };
                let mut period = json!({"start": job.created.to_string()});
                if let Some(end) = job.completed {
                    period["end"] = json!(end.to_string());
                }
                json!({"resource": {
                    "resourceType": "Task",
                    "identifier": [{"system": format!("{origin}/api/{}/jobs", job.version), "value": id.to_string()}],
                    "status": task_status,
                    "intent": "order",
                    "input": [{"type": {"text": "BULK FHIR Export"}, "valueString": format!("GET {}", job.request_url)}],
                    "executionPeriod": period,
                }})
            })
            .collect();
        if entries.is_empty() {
            return outcome(404, version, "no jobs found");
        }
        let bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries});
        Reply::json(200, "application/fhir+json", &bundle)
    }

    fn data(&self, rq: &Incoming<'_>, id: &str, file: &str, drop: bool) -> Reply {
        if let Err(reply) = self.authorize(rq, "v2") {
            return reply;
        }
        let now = self.clock.now();
        let expiry = self.expiry();
        let found = {
            let state = self.state();
            id.parse::<u64>()
                .ok()
                .and_then(|id| state.jobs.get(&id))
                .and_then(|job| {
                    let live = job.status == Status::Completed
                        && job.completed.is_some_and(|c| {
                            now < c.saturating_add(expiry).unwrap_or(Timestamp::MAX)
                        });
                    if !live {
                        return None;
                    }
                    job.output
                        .iter()
                        .chain(&job.error)
                        .find(|f| f.name == file)
                        .map(|f| Arc::clone(&f.gz))
                })
        };
        let Some(gz) = found else {
            return outcome(404, "v2", "");
        };
        let gzip_ok = rq
            .header("Accept-Encoding")
            .is_some_and(|h| h.split(',').any(|e| e.trim().starts_with("gzip")));
        let reply = Reply::new(200).header("Content-Type", "application/fhir+ndjson");
        if !gzip_ok {
            self.count(|s| s.data_requests += 1);
            return Reply {
                body: Body::Stream(gunzip(&gz)),
                ..reply
            };
        }
        let len = gz.len();
        let mut reply = reply
            .header("Content-Encoding", "gzip")
            .header("Accept-Ranges", "bytes")
            .header("Last-Modified", http_date(now));
        let (mut start, mut end) = (0, len);
        if let Some(range) = rq.header("Range") {
            match parse_range(range, len) {
                Some((s, e)) => {
                    start = s;
                    end = e;
                    reply.status = 206;
                    reply = reply.header("Content-Range", format!("bytes {s}-{}/{len}", e - 1));
                    self.count(|s| s.range_requests += 1);
                }
                None => {
                    return Reply::new(416).header("Content-Range", format!("bytes */{len}"));
                }
            }
        }
        let cut_at = if drop && end - start > 1 {
            self.count(|s| s.injected_drops += 1);
            Some((end - start) / 2)
        } else {
            self.count(|s| s.data_requests += 1);
            None
        };
        Reply {
            body: Body::File {
                data: gz,
                start,
                end,
                cut_at,
            },
            ..reply
        }
    }
}

/// A single `bytes=START-[END]` range → half-open `[start, end)`, or `None` when unsatisfiable.
fn parse_range(header: &str, len: usize) -> Option<(usize, usize)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: usize = a.trim().parse().ok()?;
    let end = if b.trim().is_empty() {
        len
    } else {
        (b.trim().parse::<usize>().ok()? + 1).min(len)
    };
    (start < end).then_some((start, end))
}

/// A reader over part of a file that fails after `cut_at` bytes (a dropped connection).
struct Slice {
    data: Arc<Vec<u8>>,
    pos: usize,
    end: usize,
    fail_at: Option<usize>,
    /// Bytes per second, when the body is throttled.
    rate: Option<u64>,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self.fail_at.unwrap_or(self.end);
        if self.pos >= limit {
            if self.fail_at.is_some() {
                return Err(io::Error::other("sandbox: connection dropped on purpose"));
            }
            return Ok(0);
        }
        let mut n = buf.len().min(limit - self.pos);
        if let Some(rate) = self.rate.filter(|r| *r > 0) {
            n = n.min(8 * 1024);
            std::thread::sleep(std::time::Duration::from_secs_f64(n as f64 / rate as f64));
        }
        let Some(src) = self.data.get(self.pos..self.pos + n) else {
            return Ok(0);
        };
        buf[..n].copy_from_slice(src);
        self.pos += n;
        Ok(n)
    }
}

/// Sends a reply on a tiny_http request; `rate` throttles data bodies (bytes per second).
pub(crate) fn send(request: tiny_http::Request, reply: Reply, rate: Option<u64>) {
    let mut headers: Vec<tiny_http::Header> = reply
        .headers
        .iter()
        .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
        .collect();
    let status = tiny_http::StatusCode(reply.status);
    let _ = match reply.body {
        Body::Empty => request.respond(tiny_http::Response::new(
            status,
            headers,
            io::empty(),
            Some(0),
            None,
        )),
        Body::Bytes(bytes) => {
            let len = bytes.len();
            request.respond(
                tiny_http::Response::new(status, headers, io::Cursor::new(bytes), Some(len), None)
                    .with_chunked_threshold(usize::MAX),
            )
        }
        Body::Stream(bytes) => {
            headers.retain(|h| !h.field.equiv("Content-Length"));
            request.respond(tiny_http::Response::new(
                status,
                headers,
                io::Cursor::new(bytes),
                None,
                None,
            ))
        }
        Body::File {
            data,
            start,
            end,
            cut_at,
        } => {
            let reader = Slice {
                data,
                pos: start,
                end,
                fail_at: cut_at.map(|c| start + c),
                rate,
            };
            request.respond(
                tiny_http::Response::new(status, headers, reader, Some(end - start), None)
                    .with_chunked_threshold(usize::MAX),
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=10-", 100), Some((10, 100)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 20)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("items=1-2", 100), None);
    }

    #[test]
    fn query_decoding_follows_go() {
        assert_eq!(
            parse_query("_since=2024-01-01T00:00:00%2B05:00&_type=Patient,Coverage"),
            [
                ("_since".to_owned(), "2024-01-01T00:00:00+05:00".to_owned()),
                ("_type".to_owned(), "Patient,Coverage".to_owned())
            ]
        );
        assert_eq!(percent_decode("a+b"), "a b");
    }

    #[test]
    fn go_time_shape() {
        let ts: Timestamp = "2026-08-22T15:02:15.1Z".parse().expect("ts");
        assert_eq!(go_time(ts), "2026-08-22 15:02:15.1 +0000 UTC");
    }
}
